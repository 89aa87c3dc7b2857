#!/usr/bin/env python3
"""
greylist_test.py - integration tests for smtpfault's greylisting and the
                   spam-rejection scenarios

USAGE   python3 tests/integration/greylist_test.py build/smtpfault [FILTER]

        Every test starts its own smtpfault on 127.0.0.1 port 0 with
        --port-file, --events and --capture in a temp dir.  Greylisting
        tests write a scenario file of their own ([server] xclient = yes,
        a [greylist] section with delays of 1-3 s, one "action = greylist"
        rule): a scenario given with -s is loaded after -c, so [greylist]
        settings belong in it.  Shipped scenarios (greylisting*, spam-*,
        provider-throttle) run as shipped, with -c only for [server]
        xclient = yes; TEST-ONLY XCLIENT ADDR= lets the loopback client
        play 40.107.1.2, 10.1.2.3 or 2a01:111:f403::1.  Each test stops
        its servers with SIGTERM; after a passing test the server must
        still be alive, exit 0 and have no sanitizer report on stderr.

        One line per test, "ok NAME" or "FAIL NAME: why", then exactly one
        line "greylist: N passed, N failed"; exit 1 if any failed.
        FILTER selects tests whose name contains it (or matches it as a
        shell glob when it has * ? or [).  greylisting_fast waits 10 s
        (the shipped delay); the whole file takes about 15 s.

ENV     SMTPFAULT_JOBS  tests run at once (default 4)
        SMTPFAULT_SLOW  multiply every timeout by this factor (default 1)
        SMTPFAULT_KEEP  keep the temp dirs of failed tests (path printed)
        SMTPFAULT_TIMES print each test's duration

Python standard library only.  The harness (Ctx, Server, Client, runner)
is the one of scenarios_test.py, in sfharness.py beside this file.
"""

import collections
import os
import re
import smtplib
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import sfharness as H  # noqa: E402
from sfharness import (  # noqa: E402
    HOST, SHIPPED, TESTS, Fail, T, body, check, data, derive, envelope,
    header_of, scenario_arg, short, start_event, test)


# ================================================================ helpers

PG_TEXT = ("<%s>: Recipient address rejected: Greylisted, see "
           "http://postgrey.schweikert.ch/help/%s.html")
XCLIENT_CONF = "[server]\nxclient = yes\n"


def pg_reply(rcpt):
    """[greylist] reply at its Postgrey default, %r and %D expanded."""
    return "451 4.7.1 " + PG_TEXT % (rcpt, rcpt.rsplit("@", 1)[1])


def gl_scenario(ctx, greylist, extra="", rule="action = greylist\n"):
    """A scenario file of our own: XCLIENT on, the [greylist] settings of
    the test (a -s file is loaded after -c, so they must be here) and one
    greylist rule."""
    return ctx.write("greylist.ini",
                     "; greylist_test.py scenario\n" + XCLIENT_CONF +
                     "\n[greylist]\n" + greylist + "\n" + extra +
                     "\n[rule greylist]\n" + rule)


def xclient(c, addr, helo=None):
    c.cmd("XCLIENT ADDR=%s%s" % (addr, " HELO=" + helo if helo else ""))
    return c.expect_reply(b"220 ")


def last_line(c):
    return c.reply()[1][-1].decode("utf-8", "replace")


def quit_(c):
    c.cmd("QUIT")
    c.expect_reply(b"221")
    c.close()


def attempt(srv, frm="a@example.com", rcpt="b@example.com", addr=None,
            helo="client.test", tag=None):
    """One delivery attempt as an MTA makes it, in a session of its own:
    (XCLIENT ADDR=addr,) EHLO, MAIL (must pass), RCPT; when RCPT gets 250
    and tag is given, DATA with body(tag) must be queued.  Returns the
    RCPT reply line."""
    c = srv.connect()
    if addr:
        xclient(c, addr)
    c.ehlo(helo)
    c.cmd("MAIL FROM:<%s>" % frm)
    c.expect_reply(b"250 2.1.0")
    c.cmd("RCPT TO:<%s>" % rcpt)
    ln = last_line(c)
    if ln.startswith("250") and tag is not None:
        data(c, body(tag))
    quit_(c)
    return ln


def attempt_data(srv, tag, frm="a@example.com", rcpts=("b@example.com",),
                 helo="client.test", addr=None):
    """A whole message whose recipients must all get 250; returns the
    reply to the final dot."""
    c = srv.connect()
    if addr:
        xclient(c, addr)
    c.ehlo(helo)
    c.cmd("MAIL FROM:<%s>" % frm)
    c.expect_reply(b"250 2.1.0")
    for r in rcpts:
        c.cmd("RCPT TO:<%s>" % r)
        c.expect_reply(b"250 2.1.5")
    c.cmd("DATA")
    c.expect_reply(b"354")
    c.send(body(tag) + b".\r\n")
    ln = last_line(c)
    quit_(c)
    return ln


def gl_ev(srv, n, more=0, **want):
    """The n-th greylist event (1-based); it must have the fields in want,
    and at most `more` greylist events may follow it yet (one per
    recipient of the same command)."""
    evs = srv.wait_event(event="greylist", count=n)
    ev = evs[n - 1]
    for k, v in want.items():
        check(ev.get(k) == v, "greylist event %d: %s = %r, want %r; event "
              "%s" % (n, k, ev.get(k), v, ev))
    check(len(evs) <= n + more, "%d greylist events, expected %d; last %s"
          % (len(evs), n + more, evs[-1]))
    return ev


def sleep_until(t):
    d = t - time.monotonic()
    if d > 0:
        time.sleep(d)


# ============================================================ greylisting

@test()
def gl_rcpt_first_early_passed_known(ctx):
    """Postgrey's sequence at RCPT with a 2 s delay; the message is
    captured once, on the retry after the delay."""
    srv = ctx.server(gl_scenario(ctx, "delay = 2s\nauto_whitelist = 0\n"))
    t0 = time.monotonic()
    ln = attempt(srv)
    t0e = time.monotonic()
    check(ln == pg_reply("b@example.com"), "first attempt got %r" % ln)
    ev = gl_ev(srv, 1, result="new", rcpt="b@example.com",
               triplet="127.0.0.0/24|a@example.com|b@example.com")
    check(abs(ev.get("seconds_left", -1) - 2) < 1e-3 and
          "waited" not in ev and "client_passes" not in ev,
          "first event %s" % ev)

    time.sleep(0.6)
    t1 = time.monotonic()
    ln = attempt(srv)
    t1e = time.monotonic()
    check(ln == pg_reply("b@example.com"), "early retry got %r" % ln)
    ev = gl_ev(srv, 2, result="early_retry")
    # the seconds still missing: 2 - (retry - first seen), bounded by
    # what the client saw of both
    lo, hi = 2 - (t1e - t0), 2 - (t1 - t0e)
    sl = ev.get("seconds_left", -1)
    check(lo - 0.01 <= sl <= hi + 0.01, "early retry seconds_left %s, "
          "expected %.3f..%.3f" % (sl, lo, hi))
    srv.no_new(0)

    sleep_until(t0e + 2.1)
    t2 = time.monotonic()
    ln = attempt(srv, tag="gl-passed")
    check(ln.startswith("250 2.1.5"), "retry after the delay got %r" % ln)
    ev = gl_ev(srv, 3, result="passed")
    check(2 <= ev.get("waited", 0) <= time.monotonic() - t0 + 0.01 and
          "seconds_left" not in ev, "passed event %s" % ev)
    srv.wait_new(1)
    check(len(srv.find(event="message")) == 1, "message events %s" %
          srv.find(event="message"))

    ln = attempt(srv, tag="gl-known")
    check(ln.startswith("250 2.1.5"), "later attempt got %r" % ln)
    ev = gl_ev(srv, 4, result="known")
    check("seconds_left" not in ev and "waited" not in ev,
          "known event %s" % ev)
    check(time.monotonic() - t2 < T(3), "later attempt was not at once")
    srv.wait_new(2)
    f = srv.faults()
    check(len(f) == 4 and all(e.get("action") == "greylist" and
                              e.get("hook") == "rcpt" for e in f),
          "fault events %s" % f)


@test()
def gl_reply_seconds_left(ctx):
    """%s in the reply is the seconds the triplet still has to wait, the
    same number the event carries."""
    srv = ctx.server(gl_scenario(
        ctx, "delay = 3s\nauto_whitelist = 0\nreply = 451 4.7.1 Greylisted,"
        " please come back in %s seconds\n"))
    ln = attempt(srv)
    t0e = time.monotonic()
    check(ln == "451 4.7.1 Greylisted, please come back in 3 seconds",
          "first attempt got %r" % ln)
    time.sleep(1.2)
    ln = attempt(srv)
    m = re.match(r"451 4\.7\.1 Greylisted, please come back in (\d+) "
                 r"seconds$", ln)
    check(m, "early retry got %r" % ln)
    n = int(m.group(1))
    ev = gl_ev(srv, 2, result="early_retry")
    sl = ev.get("seconds_left", -1)
    check(0 < sl <= 3 - 1.2 + 0.01, "seconds_left %s" % sl)
    check(abs(n - (sl + 0.499)) <= 0.501 and 1 <= n <= 2,
          "reply says %d seconds, the event %s" % (n, sl))
    sleep_until(t0e + 3.1)
    ln = attempt(srv, tag="gl-s")
    check(ln.startswith("250 2.1.5"), "after the delay got %r" % ln)
    srv.wait_new(1)


@test(timeout=40)
def gl_state_dir_restart(ctx):
    """With [faults] state_dir the table survives restarts: a triplet first
    seen by one process is an early retry for the next and known to the
    third."""
    state = ctx.path("state")
    sc = gl_scenario(ctx, "delay = 3s\nauto_whitelist = 0\n",
                     extra="[faults]\nstate_dir = %s\n" % state)
    s1 = ctx.server(sc)
    check(start_event(s1).get("state") == "lmdb", "start event %s" %
          start_event(s1))
    ln = attempt(s1)
    t0e = time.monotonic()
    check(ln == pg_reply("b@example.com"), "first attempt got %r" % ln)
    gl_ev(s1, 1, result="new")
    s1.stop()

    s2 = ctx.server(sc)
    ln = attempt(s2)
    check(ln == pg_reply("b@example.com"), "after restart got %r" % ln)
    ev = gl_ev(s2, 1, result="early_retry",
               triplet="127.0.0.0/24|a@example.com|b@example.com")
    check(0 < ev.get("seconds_left", -1) < 3, "event %s" % ev)
    sleep_until(t0e + 3.1)
    ln = attempt(s2, tag="gl-restart")
    check(ln.startswith("250 2.1.5"), "after the delay got %r" % ln)
    ev = gl_ev(s2, 2, result="passed")
    check(ev.get("waited", 0) >= 3, "passed event %s" % ev)
    s2.wait_new(1)
    s2.stop()

    s3 = ctx.server(sc)
    ln = attempt(s3, tag="gl-restart2")
    check(ln.startswith("250 2.1.5"), "after second restart got %r" % ln)
    gl_ev(s3, 1, result="known")
    s3.wait_new(1)


@test()
def gl_auto_whitelist(ctx):
    """auto_whitelist = 2 with awl_interval = 0: after two deliveries the
    client's /24 skips greylisting for new triplets; another /24 does
    not."""
    srv = ctx.server(gl_scenario(
        ctx, "delay = 1s\nauto_whitelist = 2\nawl_interval = 0\n"))
    ln = attempt(srv)
    t0e = time.monotonic()
    check(ln.startswith("451 4.7.1 "), "first attempt got %r" % ln)
    gl_ev(srv, 1, result="new", client_passes=0)
    sleep_until(t0e + 1.1)
    ln = attempt(srv, tag="awl1")
    check(ln.startswith("250 2.1.5"), "retry got %r" % ln)
    gl_ev(srv, 2, result="passed", client_passes=1)
    ln = attempt(srv, tag="awl2")
    check(ln.startswith("250 2.1.5"), "second delivery got %r" % ln)
    gl_ev(srv, 3, result="known", client_passes=2)
    ln = attempt(srv, rcpt="new@example.com", tag="awl3")
    check(ln.startswith("250 2.1.5"), "new triplet of a whitelisted "
          "client got %r" % ln)
    gl_ev(srv, 4, result="whitelisted", client_passes=2,
          rcpt="new@example.com")
    ln = attempt(srv, frm="other@example.net", rcpt="x@example.org",
                 addr="127.0.0.200", tag="awl4")
    check(ln.startswith("250 2.1.5"), "other sender, same /24 got %r" % ln)
    gl_ev(srv, 5, result="whitelisted")
    ln = attempt(srv, rcpt="new@example.com", addr="192.0.2.10")
    check(ln == pg_reply("new@example.com"), "another /24 got %r" % ln)
    gl_ev(srv, 6, result="new", client_passes=0,
          triplet="192.0.2.0/24|a@example.com|new@example.com")
    srv.wait_new(4)


@test()
def gl_netmask_subnet(ctx):
    """netmask = subnet (default): 10.1.2.3 and 10.1.2.4 share a triplet
    (/24), 10.1.3.3 does not; IPv6 by /64."""
    srv = ctx.server(gl_scenario(ctx, "delay = 1s\nauto_whitelist = 0\n"))
    trip = "10.1.2.0/24|a@example.com|b@example.com"
    ln = attempt(srv, addr="10.1.2.3")
    t0e = time.monotonic()
    check(ln == pg_reply("b@example.com"), "10.1.2.3 got %r" % ln)
    gl_ev(srv, 1, result="new", triplet=trip, client="10.1.2.3")
    ln = attempt(srv, addr="10.1.2.4")
    check(ln.startswith("451 4.7.1 "), "10.1.2.4 got %r" % ln)
    gl_ev(srv, 2, result="early_retry", triplet=trip, client="10.1.2.4")
    ln = attempt(srv, addr="IPV6:2001:db8::1")
    check(ln.startswith("451 4.7.1 "), "2001:db8::1 got %r" % ln)
    gl_ev(srv, 3, result="new",
          triplet="2001:db8::/64|a@example.com|b@example.com")
    sleep_until(t0e + 1.1)
    ln = attempt(srv, addr="10.1.2.4", tag="sub1")
    check(ln.startswith("250 2.1.5"), "10.1.2.4 after the delay got %r" %
          ln)
    gl_ev(srv, 4, result="passed", triplet=trip)
    ln = attempt(srv, addr="10.1.2.3", tag="sub2")
    check(ln.startswith("250 2.1.5"), "10.1.2.3 then got %r" % ln)
    gl_ev(srv, 5, result="known", triplet=trip)
    ln = attempt(srv, addr="10.1.3.3")
    check(ln.startswith("451 4.7.1 "), "10.1.3.3 got %r" % ln)
    gl_ev(srv, 6, result="new",
          triplet="10.1.3.0/24|a@example.com|b@example.com")
    ln = attempt(srv, addr="2001:db8::ffff:1", tag="sub3")
    check(ln.startswith("250 2.1.5"), "same /64 got %r" % ln)
    gl_ev(srv, 7, result="passed")
    srv.wait_new(3)


@test()
def gl_netmask_host(ctx):
    """netmask = host: 10.1.2.3 and 10.1.2.4 are separate triplets."""
    srv = ctx.server(gl_scenario(
        ctx, "delay = 1s\nauto_whitelist = 0\nnetmask = host\n"))
    ln = attempt(srv, addr="10.1.2.3")
    t0e = time.monotonic()
    check(ln == pg_reply("b@example.com"), "10.1.2.3 got %r" % ln)
    gl_ev(srv, 1, result="new",
          triplet="10.1.2.3|a@example.com|b@example.com")
    ln = attempt(srv, addr="10.1.2.4")
    check(ln.startswith("451 4.7.1 "), "10.1.2.4 got %r" % ln)
    gl_ev(srv, 2, result="new",
          triplet="10.1.2.4|a@example.com|b@example.com")
    sleep_until(t0e + 1.1)
    for i, a in enumerate(("10.1.2.3", "10.1.2.4")):
        ln = attempt(srv, addr=a, tag="host%d" % i)
        check(ln.startswith("250 2.1.5"), "%s after the delay got %r" % (
            a, ln))
        gl_ev(srv, 3 + i, result="passed",
              triplet="%s|a@example.com|b@example.com" % a)
    ln = attempt(srv, addr="10.1.2.5")
    check(ln.startswith("451 4.7.1 "), "10.1.2.5 got %r" % ln)
    gl_ev(srv, 5, result="new")
    srv.wait_new(2)


@test()
def gl_stage_data_end(ctx):
    """stage = data_end: RCPT and DATA pass, the 451 comes after the final
    dot; one recipient that must wait defers the whole message."""
    srv = ctx.server(gl_scenario(
        ctx, "delay = 1s\nauto_whitelist = 0\nstage = data_end\n"))
    c = srv.connect()
    envelope(c, rcpts=("b@example.com", "c@example.com"))
    time.sleep(0.1)
    check(not srv.find(event="greylist"), "greylist events before DATA: "
          "%s" % srv.find(event="greylist"))
    c.cmd("DATA")
    c.expect_reply(b"354")
    check(not srv.find(event="greylist"), "greylist event at DATA")
    c.send(body("de1") + b".\r\n")
    ln = last_line(c)
    t0e = time.monotonic()
    check(ln == pg_reply("b@example.com"), "after the dot got %r" % ln)
    gl_ev(srv, 1, more=1, result="new", rcpt="b@example.com")
    gl_ev(srv, 2, result="new", rcpt="c@example.com")
    f = srv.faults()
    check(len(f) == 1 and f[0].get("hook") == "data_end" and
          f[0].get("action") == "greylist", "fault events %s" % f)
    r = srv.wait_event(event="message_refused")
    check(len(r) == 1 and r[0].get("reason") == "fault", "message_refused "
          "%s" % r)
    # the session goes on after the deferral
    c.cmd("NOOP")
    c.expect_reply(b"250")
    quit_(c)
    srv.no_new(0.2)

    sleep_until(t0e + 1.1)
    ln = attempt_data(srv, "de2", rcpts=("b@example.com", "c@example.com"))
    check(ln.startswith("250 2.0.0 Ok: queued as "), "retry got %r" % ln)
    gl_ev(srv, 3, more=1, result="passed", rcpt="b@example.com")
    gl_ev(srv, 4, result="passed", rcpt="c@example.com")
    srv.wait_new(1)
    ln = attempt_data(srv, "de3", rcpts=("b@example.com", "d@example.com"))
    check(ln == pg_reply("b@example.com"), "known + new recipient got %r"
          % ln)
    gl_ev(srv, 5, more=1, result="known", rcpt="b@example.com")
    gl_ev(srv, 6, result="new", rcpt="d@example.com")
    srv.wait_new(1)


@test()
def gl_spamd_profile(ctx):
    """profile = spamd (delay set to 1 s, the rest from the profile): the
    exact address and the HELO name are in the key, the deferral comes
    after the dot with spamd's text."""
    srv = ctx.server(gl_scenario(ctx, "profile = spamd\ndelay = 1s\n"))
    spamd = "451 4.7.1 Temporary failure, please try again later."
    ln = attempt_data(srv, "sp1", helo="a.test")
    t0e = time.monotonic()
    check(ln == spamd, "first attempt got %r" % ln)
    ev = gl_ev(srv, 1, result="new",
               triplet="127.0.0.1|a@example.com|b@example.com|a.test")
    check(abs(ev.get("seconds_left", -1) - 1) < 1e-3 and
          "client_passes" not in ev, "event %s" % ev)
    sleep_until(t0e + 1.1)
    ln = attempt_data(srv, "sp2", helo="b.test")
    check(ln == spamd, "other HELO got %r" % ln)
    gl_ev(srv, 2, result="new",
          triplet="127.0.0.1|a@example.com|b@example.com|b.test")
    ln = attempt_data(srv, "sp3", helo="A.Test")
    check(ln.startswith("250 2.0.0 Ok: queued as "), "same HELO after the "
          "delay got %r" % ln)
    gl_ev(srv, 3, result="passed")
    ln = attempt_data(srv, "sp4", helo="a.test", addr="127.0.0.2")
    check(ln == spamd, "127.0.0.2 got %r" % ln)
    gl_ev(srv, 4, result="new",
          triplet="127.0.0.2|a@example.com|b@example.com|a.test")
    srv.wait_new(1)


@test()
def greylisting(ctx):
    """The shipped scenario: Postgrey's defaults (300 s, /24, AWL 5)."""
    srv = ctx.server(scenario_arg("greylisting"))
    c = srv.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<Bounce-12345@Lists.Example.COM>")
    c.expect_reply(b"250 2.1.0")
    for rc in ("b@example.com", "c@example.org"):
        c.cmd("RCPT TO:<%s>" % rc)
        ln = last_line(c)
        check(ln == pg_reply(rc), "RCPT %s got %r" % (rc, ln))
    c.cmd("DATA")
    c.expect_reply(b"503 5.5.1 ")       # no recipient was accepted
    quit_(c)
    ev = gl_ev(srv, 1, more=1, result="new", client_passes=0,
               triplet="127.0.0.0/24|bounce-#@lists.example.com|"
               "b@example.com")
    check(abs(ev.get("seconds_left", -1) - 300) < 1e-3, "event %s" % ev)
    gl_ev(srv, 2, result="new", rcpt="c@example.org")
    # another VERP address of the list is the same triplet
    ln = attempt(srv, frm="bounce-67890@lists.example.com")
    check(ln == pg_reply("b@example.com"), "retry got %r" % ln)
    ev = gl_ev(srv, 3, result="early_retry")
    check(295 < ev.get("seconds_left", -1) < 300, "event %s" % ev)
    srv.no_new(0)


@test(timeout=45)
def greylisting_fast(ctx):
    """The shipped 10-second variant: first 451, an early retry 451, the
    retry after 10 s accepted and captured once."""
    srv = ctx.server(scenario_arg("greylisting-fast"))
    ln = attempt(srv)
    t0e = time.monotonic()
    check(ln == pg_reply("b@example.com"), "first attempt got %r" % ln)
    ev = gl_ev(srv, 1, result="new")
    check(abs(ev.get("seconds_left", -1) - 10) < 1e-3, "event %s" % ev)
    time.sleep(2)
    ln = attempt(srv)
    check(ln == pg_reply("b@example.com"), "retry at 2 s got %r" % ln)
    ev = gl_ev(srv, 2, result="early_retry")
    check(6 < ev.get("seconds_left", -1) < 8.1, "event %s" % ev)
    srv.no_new(0)
    sleep_until(t0e + 10.2)
    ln = attempt(srv, tag="fast")
    check(ln.startswith("250 2.1.5"), "retry after 10 s got %r" % ln)
    ev = gl_ev(srv, 3, result="passed")
    check(10 <= ev.get("waited", 0) < T(20), "event %s" % ev)
    srv.wait_new(1)
    check(len(srv.find(event="message")) == 1, "message events %s" %
          srv.find(event="message"))


# ================================================================== spam

EXO_HELO = "NAM12-BN8-obe.outbound.protection.outlook.com"


@test()
def spam_block_exo(ctx):
    """Exchange Online addresses (v4 and v6) and HELO names get 550 5.7.1
    at RCPT; others are accepted."""
    srv = ctx.server(scenario_arg("spam-block-exo"), conf=XCLIENT_CONF)
    blocked = ("550 5.7.1 Service unavailable, client host [%s] blocked by "
               "policy: mail from Exchange Online is not accepted")
    for addr in ("40.107.1.2", "2a01:111:f403::1", "104.47.0.25"):
        ln = attempt(srv, addr=addr, helo="mail.example.com")
        check(ln == blocked % addr, "%s got %r" % (addr, ln))
    ln = attempt(srv, addr="192.0.2.10", helo="mail.example.com",
                 tag="exo-ok1")
    check(ln.startswith("250 2.1.5"), "192.0.2.10 got %r" % ln)
    ln = attempt(srv, helo=EXO_HELO)
    check(ln == "550 5.7.1 Service unavailable, HELO %s blocked by policy:"
          " mail from Exchange Online is not accepted" % EXO_HELO,
          "HELO %s got %r" % (EXO_HELO, ln))
    ln = attempt(srv, addr="192.0.2.10", helo="mail-db8eur05on2093."
                 "OUTBOUND.protection.outlook.com")
    check(ln.startswith("550 5.7.1 Service unavailable, HELO "),
          "upper-case EXO HELO got %r" % ln)
    ln = attempt(srv, helo="mail.example.com", tag="exo-ok2")
    check(ln.startswith("250 2.1.5"), "mail.example.com got %r" % ln)
    # a real client: smtplib sees the refusal of its only recipient
    s = srv.smtp(helo=EXO_HELO)
    s.connect("127.0.0.1", srv.port)
    try:
        s.sendmail("a@example.com", ["b@example.com"], body("exo-lib"))
        raise Fail("smtplib: sendmail accepted from an EXO HELO")
    except smtplib.SMTPRecipientsRefused as e:
        code = e.recipients.get("b@example.com", (0,))[0]
        check(code == 550, "smtplib saw %s" % e.recipients)
    s.quit()
    f = srv.faults()
    check([e.get("rule") for e in f] == ["exo-clients"] * 3 +
          ["exo-helo"] * 3 and all(e.get("code") == 550 and
                                   e.get("hook") == "rcpt" for e in f),
          "fault events %s" % [(e.get("rule"), e.get("code")) for e in f])
    srv.wait_new(2)


@test()
def spam_block_exo_banner(ctx):
    """The banner variant matches the client address at connect, before
    any command, so XCLIENT (which changes the address after the banner
    and answers with a plain new 220) cannot reach it.  Sound approach: a
    copy of the shipped file whose only change is the client list, set
    to 127.0.0.0/8, shows the 554 banner and the QUIT-only session with
    the shipped reply text; the shipped file itself, as is, must let
    127.0.0.1 (no Exchange Online address) in with a 220.  Which
    addresses the list holds is checked by the unit tests (conf/lists)
    and by spam_block_exo, which uses the same list at RCPT."""
    copy = derive(ctx, "spam-block-exo-banner",
                  [(r"^client *= *@\.\./lists/exchange-online\.cidr$",
                    "client = 127.0.0.0/8")])
    srv = ctx.server(copy)
    c = srv.connect(banner=False)
    ln = c.expect_reply(b"554 ")
    check(ln == "554 5.7.1 %s No SMTP service here - client host "
          "[127.0.0.1] blocked" % HOST, "banner %r" % ln)
    for cmd in ("EHLO client.test", "MAIL FROM:<a@example.com>",
                "XCLIENT ADDR=192.0.2.10"):
        c.cmd(cmd)
        c.expect_reply(b"503 5.5.1 ")
    quit_(c)
    try:
        smtplib.SMTP("127.0.0.1", srv.port, timeout=T(10)).close()
        raise Fail("smtplib accepted a 554 banner")
    except smtplib.SMTPConnectError as e:
        check(e.smtp_code == 554, "smtplib saw %s %s" % (e.smtp_code,
                                                        e.smtp_error))
    f = srv.wait_event(event="fault", count=2)
    check(all(e.get("rule") == "exo-banner" and e.get("hook") == "connect"
              and e.get("code") == 554 for e in f), "fault events %s" % f)
    srv.no_new(0)

    shipped = ctx.server(scenario_arg("spam-block-exo-banner"))
    ln = attempt(shipped, tag="banner-ok")
    check(ln.startswith("250 2.1.5"), "127.0.0.1 under the shipped "
          "banner scenario got %r" % ln)
    check(not shipped.faults(), "faults for 127.0.0.1: %s" %
          shipped.faults())
    shipped.wait_new(1)


@test()
def spam_tempfail_exo(ctx):
    """The 4xx variant: every attempt from Exchange Online is deferred with
    451 4.7.1, attempt after attempt; others are accepted."""
    srv = ctx.server(scenario_arg("spam-tempfail-exo"), conf=XCLIENT_CONF)
    deferred = ("451 4.7.1 Service temporarily unavailable, client host "
                "[%s] deferred by policy, try again later")
    for i in range(3):
        ln = attempt(srv, addr="40.107.1.2", helo="mail.example.com")
        check(ln == deferred % "40.107.1.2", "attempt %d got %r" % (i, ln))
    ln = attempt(srv, addr="2a01:111:f403::1", helo="mail.example.com")
    check(ln == deferred % "2a01:111:f403::1", "IPv6 got %r" % ln)
    ln = attempt(srv, helo=EXO_HELO)
    check(ln == "451 4.7.1 Service temporarily unavailable, HELO %s "
          "deferred by policy, try again later" % EXO_HELO,
          "EXO HELO got %r" % ln)
    ln = attempt(srv, addr="192.0.2.10", helo="mail.example.com",
                 tag="tf-ok")
    check(ln.startswith("250 2.1.5"), "192.0.2.10 got %r" % ln)
    f = srv.faults()
    check([e.get("rule") for e in f] == ["exo-clients"] * 4 +
          ["exo-helo"] and all(e.get("code") == 451 for e in f),
          "fault events %s" % [(e.get("rule"), e.get("code")) for e in f])
    srv.wait_new(1)


@test()
def spam_content(ctx):
    """Header and body patterns refused with 550 5.7.1 after the dot."""
    srv = ctx.server(scenario_arg("spam-content"))
    c = srv.connect()
    spam = b"550 5.7.1 Message rejected as spam"
    cases = (
        ("lottery", body("sc1", subject="You won the LOTTERY"), spam),
        ("clean", body("sc2", subject="Quarterly report"), None),
        ("click here", body("sc3", extra=b"Please click here to claim your"
                            b" prize\r\n"), spam),
        ("X-Spam-Flag", b"X-Spam-Flag: YES\r\n" + body("sc4"), spam),
        ("lottery only in the body", body("sc5", extra=b"the lottery "
                                          b"results\r\n"), None),
    )
    helo = True
    for name, msg, want in cases:
        envelope(c, helo=helo)
        helo = False
        ln = data(c, msg, expect=want or b"250 2.0.0 Ok: queued as ")
        check(want is None or ln == want.decode(), "%s: %r" % (name, ln))
    quit_(c)
    files = srv.wait_new(2)
    subjects = sorted(header_of(f, "Subject") for f in files)
    check(subjects == ["Quarterly report", "test sc5"], "stored %s" %
          subjects)
    r = srv.find(event="message_refused")
    check(len(r) == 3 and all(e.get("reason") == "fault" for e in r),
          "message_refused %s" % r)
    check([e.get("rule") for e in srv.faults()] ==
          ["spam-subject", "spam-body", "spam-flag"],
          "fault rules %s" % [e.get("rule") for e in srv.faults()])


THROTTLE = {
    "tss04": "421 4.7.0 [TSS04] Messages from 127.0.0.1 temporarily "
             "deferred due to user complaints - 4.16.55.1; see "
             "https://postmaster.yahooinc.com/error-codes",
    "eop": "451 4.7.500 Server busy. Please try again later from "
           "[127.0.0.1]. (AS77712344)",
    "gmail": "450 4.2.1 The user you are trying to contact is receiving "
             "mail too quickly. Please resend your message at a later time.",
}


def throttle_run(srv, n):
    """n delivery attempts in turn; the outcome of each."""
    out = []
    for i in range(n):
        c = srv.connect(banner=False)
        code, lines = c.reply()
        ln = lines[-1].decode()
        if code == 421:
            check(ln == THROTTLE["tss04"], "banner %r" % ln)
            c.wait_closed()
            c.close()
            out.append("tss04")
            continue
        check(code == 220, "banner %r" % ln)
        c.ehlo()
        c.cmd("MAIL FROM:<a@example.com>")
        c.expect_reply(b"250 2.1.0")
        c.cmd("RCPT TO:<b@example.com>")
        ln = last_line(c)
        kind = [k for k, v in THROTTLE.items() if v == ln]
        if kind:
            out.append(kind[0])
        else:
            check(ln.startswith("250 2.1.5"), "RCPT %d got %r" % (i, ln))
            data(c, body("thr%d" % i))
            out.append("ok")
        quit_(c)
    return out


@test(timeout=40)
def provider_throttle(ctx):
    """--seed fixes the draws: the three provider texts appear, some
    attempts succeed, and the same seed replays the same outcomes."""
    seed = "20260101"
    srv = ctx.server(scenario_arg("provider-throttle"), args=["--seed", seed])
    check(start_event(srv).get("seed") == int(seed), "start event %s" %
          start_event(srv))
    out = throttle_run(srv, 40)
    counts = collections.Counter(out)
    check(all(counts[k] > 0 for k in ("tss04", "eop", "gmail", "ok")),
          "outcomes %s" % dict(counts))
    srv.wait_new(counts["ok"])
    again = ctx.server(scenario_arg("provider-throttle"),
                       args=["--seed", seed])
    out2 = throttle_run(again, 40)
    check(out2 == out, "same seed, other outcomes:\n%s\n%s" % (out, out2))


# ================================================================ xclient

@test()
def xclient_refused_when_off(ctx):
    """Without [server] xclient = yes XCLIENT is 502 and changes nothing."""
    srv = ctx.server(scenario_arg("spam-block-exo"))
    c = srv.connect()
    c.cmd("XCLIENT ADDR=40.107.1.2")
    c.expect_reply(b"502 5.5.1 ")
    c.ehlo("mail.example.com")
    c.cmd("MAIL FROM:<a@example.com>")
    c.expect_reply(b"250 2.1.0")
    c.cmd("RCPT TO:<b@example.com>")
    c.expect_reply(b"250 2.1.5")
    quit_(c)
    check(not srv.find(event="xclient"), "xclient events %s" %
          srv.find(event="xclient"))
    check(not srv.faults(), "faults %s" % srv.faults())
    check(all(e.get("client") == "127.0.0.1" for e in srv.events()
              if "client" in e), "an event has another client address")


@test()
def xclient_syntax(ctx):
    """With xclient on: bad arguments are 501, XCLIENT inside a
    transaction is refused, a good one is a new 220 and an event."""
    srv = ctx.server(gl_scenario(ctx, "delay = 1s\n"))
    c = srv.connect()
    for arg in ("ADDR=not-an-address", "NAME=mx.example", "",
                "ADDR=10.1.2.300"):
        c.cmd(("XCLIENT " + arg).strip())
        c.expect_reply(b"501 5.5.4 ")
    c.ehlo()
    c.cmd("MAIL FROM:<a@example.com>")
    c.expect_reply(b"250 2.1.0")
    c.cmd("XCLIENT ADDR=10.1.2.3")
    c.expect_reply(b"503 ")
    c.cmd("RSET")
    c.expect_reply(b"250")
    ln = xclient(c, "10.1.2.3", helo="helo.example")
    check(ln == "220 %s ESMTP smtpfault" % HOST, "XCLIENT reply %r" % ln)
    ev = srv.wait_event(event="xclient")
    check(len(ev) == 1 and ev[0].get("was") == "127.0.0.1" and
          ev[0].get("addr") == "10.1.2.3", "xclient event %s" % ev)
    # the session starts over: MAIL before EHLO is out of sequence
    c.cmd("MAIL FROM:<a@example.com>")
    c.expect_reply(b"503 ")
    quit_(c)


@test()
def greylist_scenarios_covered(ctx):
    """Every shipped greylisting*, spam-* and provider-throttle scenario
    passes --check-config, opens with the comment block, and has a test
    of its own in this file (scenarios_test.py counts them as covered
    here)."""
    names = sorted(f[:-4] for f in os.listdir(SHIPPED)
                   if f.endswith(".ini") and
                   re.match(r"(greylisting|spam-|provider-throttle\.ini$)",
                            f))
    for must in ("greylisting", "greylisting-fast", "spam-block-exo",
                 "spam-block-exo-banner", "spam-tempfail-exo",
                 "spam-content", "provider-throttle"):
        check(must in names, "shipped scenario %s missing" % must)
    tested = {t[0] for t in TESTS}
    missing = [n for n in names if n.replace("-", "_") not in tested]
    check(not missing, "shipped scenarios without a test: %s" % missing)
    H.check_shipped(ctx, names)


# ================================================================== runner

HEAVY = {"greylisting_fast", "gl_state_dir_restart", "provider_throttle"}

if __name__ == "__main__":
    sys.exit(H.main(sys.argv, "greylist", "greylist_test", "sf-gl",
                    heavy=HEAVY))
