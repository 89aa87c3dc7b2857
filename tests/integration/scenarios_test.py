#!/usr/bin/env python3
"""
scenarios_test.py - integration tests for smtpfault's fault scenarios

USAGE   python3 tests/integration/scenarios_test.py build/smtpfault [FILTER]

        Every test starts its own smtpfault on 127.0.0.1 port 0 with
        --port-file, --events and --capture in a temp dir, picks a scenario
        (-s NAME for the shipped ones in conf/scenarios, -s FILE for the
        fixtures in tests/integration/scenarios/ or for a copy of a shipped
        scenario with shorter timings), drives it with real clients
        (smtplib, raw sockets, swaks) and stops it with SIGTERM.

        One line per test, "ok NAME" or "FAIL NAME: why", then exactly one
        line "scenarios: N passed, N failed"; exit 1 if any failed.
        FILTER selects tests whose name contains it (or matches it as a
        shell glob when it has * ? or [).

        Timing bounds are deliberately generous: a delay of 2 s must take
        at least 1.8 s and less than 10 s.

ENV     SMTPFAULT_JOBS  tests run at once (default 4)
        SMTPFAULT_SLOW  multiply every timeout by this factor (default 1)
        SMTPFAULT_KEEP  keep the temp dirs of failed tests (path printed)
        SMTPFAULT_TIMES print each test's duration

Python standard library only.  The harness (Ctx, Server, Client, runner)
is in sfharness.py beside this file.
"""

import collections
import email
import errno
import os
import re
import signal
import smtplib
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import sfharness as H  # noqa: E402
from sfharness import (  # noqa: E402
    HERE, HOST, SHIPPED, SLOW, TESTS, Fail, T, between, body, check, data,
    derive, envelope, fixture, header_of, rcpt_reply, scenario_arg, short,
    start_event, swaks, test)


# ====================================================== shipped scenarios

@test()
def accept_all(ctx):
    srv = ctx.server(scenario_arg("accept-all"))
    st = start_event(srv)
    check(str(st.get("scenario", "")).endswith("accept-all.ini") and
          st.get("rules") == 0, "start event %s" % st)
    rc, out = swaks(ctx, srv, "--from", "a@example.com", "--to",
                    "b@example.com", "--header", "Subject: baseline",
                    "--body", "healthy destination")
    check(rc == 0, "swaks exit %d: %s" % (rc, short(out[-500:], 500)))
    check(re.search(r"<-  250 2\.0\.0 Ok: queued as [0-9A-F]+", out),
          "no queued reply in swaks output: %s" % short(out[-400:], 400))
    f = srv.wait_new(1)[0]
    check(header_of(f, "Subject") == "baseline", "stored Subject %r" %
          header_of(f, "Subject"))
    srv.wait_event(event="close")
    check(not srv.faults(), "fault events: %s" % srv.faults()[:2])


@test()
def destination_offline(ctx):
    srv = ctx.server(scenario_arg("destination-offline"),
                     conf="[faults]\nhold_max = 3s\n")
    t0 = time.monotonic()
    c = srv.connect(banner=False)
    c.expect_silence(2)                     # no banner within 2 s (< hold)
    c.wait_closed(timeout=10)
    between(time.monotonic() - t0, 2.7, 10, "hold until close")
    ev = srv.wait_event(event="close")[0]
    check(ev.get("reason") == "hold_max" and ev.get("tx") == 0,
          "close event %s" % ev)
    f = srv.faults()
    check(len(f) == 1 and f[0].get("rule") == "no-banner" and
          f[0].get("action") == "hang" and f[0].get("hook") == "connect",
          "fault events %s" % f)
    # smtplib gives up on the missing greeting by itself
    s = srv.smtp(timeout=1)
    try:
        s.connect("127.0.0.1", srv.port)
        raise Fail("smtplib got a greeting from destination-offline")
    except (socket.timeout, TimeoutError, smtplib.SMTPServerDisconnected):
        pass


@test()
def destination_offline_close(ctx):
    srv = ctx.server(scenario_arg("destination-offline-close"))
    c = srv.connect(banner=False)
    c.wait_closed(timeout=5)
    check(not c.reset_seen, "closed with RST, expected a FIN")
    ev = srv.wait_event(event="close")[0]
    check(ev.get("reason") == "fault_close" and ev.get("tx") == 0,
          "close event %s" % ev)
    f = srv.faults()
    check(f and f[0].get("action") == "close" and
          f[0].get("hook") == "connect", "fault events %s" % f)
    s = srv.smtp()
    try:
        s.connect("127.0.0.1", srv.port)
        raise Fail("smtplib connected to destination-offline-close")
    except smtplib.SMTPServerDisconnected:
        pass


@test()
def not_accepting(ctx):
    srv = ctx.server(scenario_arg("not-accepting"))
    c = srv.connect(banner=False)
    ln = c.expect_reply(b"421 4.3.2 ")
    check(ln == "421 4.3.2 %s Service not available, not accepting "
          "messages now" % HOST, "banner %r" % ln)
    c.wait_closed(timeout=5)
    try:
        smtplib.SMTP("127.0.0.1", srv.port, timeout=T(10)).close()
        raise Fail("smtplib accepted a 421 banner")
    except smtplib.SMTPConnectError as e:
        check(e.smtp_code == 421 and b"not accepting messages" in
              e.smtp_error, "smtplib saw %s %s" % (e.smtp_code, e.smtp_error))
    f = srv.wait_event(event="fault", count=2)
    check(len(f) == 2 and all(x.get("code") == 421 and
                              x.get("hook") == "connect" for x in f),
          "fault events %s" % f)


@test()
def not_accepting_rcpt(ctx):
    srv = ctx.server(scenario_arg("not-accepting-rcpt"))
    s = srv.smtp()
    s.connect("127.0.0.1", srv.port)
    try:
        s.sendmail("a@example.com", ["b@example.com", "c@example.com"],
                   body("nar"))
        raise Fail("sendmail succeeded against not-accepting-rcpt")
    except smtplib.SMTPRecipientsRefused as e:
        got = {k: (v[0], v[1].decode()) for k, v in e.recipients.items()}
        for r in ("b@example.com", "c@example.com"):
            check(got.get(r) == (451, "4.3.0 <%s>: Temporary local problem, "
                                 "please try again later" % r),
                  "recipient %s got %s" % (r, got.get(r)))
    s.quit()
    srv.no_new()
    f = srv.wait_event(event="fault", count=2, hook="rcpt",
                       rule="rcpt-tempfail")
    check(len(f) == 2, "fault events %s" % srv.faults())


@test()
def network_timeout(ctx):
    srv = ctx.server(scenario_arg("network-timeout"))
    c = srv.connect()
    envelope(c)
    c.cmd("DATA")
    c.expect_reply(b"354")
    c.send(body("nt") + b".\r\n")
    c.expect_silence(T(2.5))                # the final dot is never answered
    srv.no_new(0)
    check(not srv.find(event="message"), "message event for a stalled dot")
    f = srv.faults()
    check(len(f) == 1 and f[0].get("action") == "hang" and
          f[0].get("hook") == "data_end", "fault events %s" % f)
    # the sender gives up; the held session is freed and nothing is kept
    c.close()
    ev = srv.wait_event(event="close", timeout=3)[0]
    check(ev.get("reason") == "client_gone", "close event %s" % ev)
    srv.no_new()
    check(not srv.tmp_files(), "Maildir tmp/ keeps %s" % srv.tmp_files())


@test(timeout=40)
def network_timeout_tarpit(ctx):
    scn = derive(ctx, "network-timeout-tarpit",
                 [(r"^tarpit_interval\s*=\s*2s$", "tarpit_interval = 200ms")])
    srv = ctx.server(scn)
    want = ("220 %s ESMTP smtpfault\r\n" % HOST).encode()
    t0 = time.monotonic()
    c = srv.connect(banner=False, timeout=30)
    ln = c.line(timeout=30)
    took = time.monotonic() - t0
    check(ln + b"\r\n" == want, "banner %s" % short(ln))
    # one byte every 200 ms: 29 bytes take about 5.8 s
    lo = 0.2 * (len(want) - 1) * 0.9
    between(took, lo, 30, "tarpitted banner")
    check(len(c.chunks) >= len(want) // 2, "banner came in %d pieces, "
          "expected about one per byte" % len(c.chunks))
    f = srv.faults(rule="tarpit-everything", action="tarpit")
    check(f and f[0].get("hook") == "connect", "fault events %s" %
          srv.faults())
    c.close()
    ev = srv.wait_event(event="close", timeout=3)[0]
    check(ev.get("reason") in ("client_gone", "eof"), "close event %s" % ev)


@test()
def ttl_expired(ctx):
    srv = ctx.server(scenario_arg("ttl-expired"))
    for n in (1, 2, 3):
        code, text = rcpt_reply(srv, "late@example.com")
        want = ("4.7.0 <late@example.com>: Temporary failure, please try "
                "again later (attempt %d)" % n)
        check((code, text) == (451, want), "attempt %d: got %s %r, want 451"
              " %r" % (n, code, text, want))
    att = [e.get("attempt") for e in
           srv.wait_event(event="fault", count=3, hook="rcpt")]
    check(att == [1, 2, 3], "fault event attempts %s, want [1, 2, 3]" % att)
    srv.no_new(0)


@test()
def proxy_failure(ctx):
    srv = ctx.server(scenario_arg("proxy-failure"))
    c = srv.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<a@example.com>")
    c.expect_reply(b"250")
    c.cmd("RCPT TO:<b@example.com>")
    ln = c.expect_reply(b"451 ")
    want = ('451 4.4.0 Primary target IP address responded with: "421 4.4.2 '
            'Connection dropped due to SocketError." Attempted failover to '
            'alternate host, but that did not succeed. Either there are no '
            'alternate hosts, or delivery failed to all alternate hosts.')
    check(ln == want, "RCPT reply %r" % ln)
    c.cmd("DATA")
    c.expect_reply(b"503")
    c.cmd("QUIT")
    c.expect_reply(b"221")
    srv.no_new(0)


def fta_attempt(srv, n, accepted, source=None):
    s = srv.smtp(source=source)
    s.connect("127.0.0.1", srv.port)
    msg = body("fta%d" % n)
    if accepted:
        refused = s.sendmail("a@example.com", ["b@example.com"], msg)
        check(not refused, "attempt %d refused %s" % (n, refused))
    else:
        try:
            s.sendmail("a@example.com", ["b@example.com"], msg)
            raise Fail("attempt %d was accepted" % n)
        except smtplib.SMTPRecipientsRefused as e:
            code, text = e.recipients["b@example.com"]
            want = ("4.7.1 <b@example.com>: Temporary failure, attempt %d of"
                    " 3, try again later" % n)
            check((code, text.decode()) == (451, want),
                  "attempt %d: %s %r, want 451 %r" % (n, code, text, want))
    s.quit()


@test()
def fail_then_accept(ctx):
    srv = ctx.server(scenario_arg("fail-then-accept"))
    fta_attempt(srv, 1, False)
    fta_attempt(srv, 2, False)
    # the triplet's client part is the /24: 127.0.0.2 goes on counting
    fta_attempt(srv, 3, False, source="127.0.0.2")
    srv.no_new(0)
    fta_attempt(srv, 4, True)
    f = srv.wait_new(1)[0]
    check(header_of(f, "Message-ID") == "<fta4@client.test>",
          "stored %s" % header_of(f, "Message-ID"))
    # another triplet (other recipient) starts its own count
    code, text = rcpt_reply(srv, "other@example.com")
    check(code == 451 and "attempt 1 of 3" in text, "new triplet: %s %s" %
          (code, text))
    # so does another /24
    fta_attempt(srv, 1, False, source="127.0.1.1")


@test(timeout=40)
def fail_then_accept_state_dir(ctx):
    state = ctx.path("state")
    os.makedirs(state)
    conf = "[faults]\nstate_dir = %s\n" % state
    one = ctx.server(scenario_arg("fail-then-accept"), conf=conf)
    st = start_event(one)
    check(st.get("state") not in (None, "memory"), "start event state %s" %
          st.get("state"))
    fta_attempt(one, 1, False)
    fta_attempt(one, 2, False)
    one.stop()
    two = ctx.server(scenario_arg("fail-then-accept"), conf=conf)
    fta_attempt(two, 3, False)              # the count survived the restart
    two.wait_event(event="fault", count=1)
    two.expect_exit = True                  # and a kill -9 (store.h)
    two.signal(signal.SIGKILL)
    two.proc.wait(timeout=T(5))
    four = ctx.server(scenario_arg("fail-then-accept"), conf=conf)
    fta_attempt(four, 4, True)
    four.wait_new(1)
    four.stop()
    # without state_dir a restart starts from attempt 1 again
    three = ctx.server(scenario_arg("fail-then-accept"))
    fta_attempt(three, 1, False)


@test(timeout=40)
def defer_for_window(ctx):
    scn = derive(ctx, "defer-for-window",
                 [(r"^since_first_seen\s*=\s*<2m$", "since_first_seen = <3s")])
    srv = ctx.server(scn)
    t0 = time.monotonic()
    code, text = rcpt_reply(srv, "b@example.com")
    m = re.fullmatch(r"4\.7\.1 <b@example\.com>: Service unavailable, try "
                     r"again in (\d+) seconds", text)
    check(code == 451 and m, "first attempt: %s %r" % (code, text))
    left1 = int(m.group(1))
    check(2 <= left1 <= 3, "first attempt says %d seconds left, want 3" %
          left1)
    time.sleep(1.2)
    code, text = rcpt_reply(srv, "b@example.com")
    m = re.search(r"try again in (\d+) seconds", text)
    check(code == 451 and m, "second attempt: %s %r" % (code, text))
    left2 = int(m.group(1))
    check(left2 < left1 and left2 >= 1, "seconds left went %d -> %d" % (
        left1, left2))
    # a triplet seen later has its own window
    code, text = rcpt_reply(srv, "c@example.com")
    check(code == 451, "new triplet not deferred: %s %r" % (code, text))
    time.sleep(max(0, 3.5 - (time.monotonic() - t0)))
    s = srv.smtp()
    s.connect("127.0.0.1", srv.port)
    refused = s.sendmail("a@example.com", ["b@example.com"], body("dfw"))
    check(not refused, "after the window: refused %s" % refused)
    s.quit()
    srv.wait_new(1)


def flaky_run(ctx, seed, conns=30):
    """One server, conns sequential connections; the outcome of each as
    the sender sees it: reset, slow (MAIL unanswered for 1 s: the sender
    gives up), defer (451 at RCPT) or ok."""
    srv = ctx.server(scenario_arg("flaky"), args=["--seed", str(seed)])
    st = start_event(srv)
    check(st.get("seed") == seed, "start event seed %s, want %s" % (
        st.get("seed"), seed))
    out = []
    for i in range(conns):
        c = srv.connect(banner=False)
        try:
            code, _ = c.reply(timeout=5)
        except Fail:
            check(c.eof and c.reset_seen, "connection %d: no banner and no"
                  " reset (transcript %s)" % (i, c.tail()))
            out.append("reset")
            c.close()
            continue
        check(code == 220, "connection %d: banner %d" % (i, code))
        c.ehlo()
        c.cmd("MAIL FROM:<s%d@example.com>" % i)
        try:
            # the slow rule waits 2 to 4 s; a normal reply takes ms
            c.expect_reply(b"250", timeout=1.5 / SLOW)
        except Fail:
            check(not c.eof, "connection %d: closed at MAIL" % i)
            out.append("slow")
            c.close()
            continue
        c.cmd("RCPT TO:<r%d@example.com>" % i)
        code, lines = c.reply()
        if code == 451:
            check(lines[-1].startswith(b"451 4.3.0 <r%d@example.com>: "
                                       b"Temporary failure" % i),
                  "connection %d: %s" % (i, lines))
            out.append("defer")
        else:
            check(code == 250, "connection %d: RCPT %s" % (i, lines))
            out.append("ok")
        c.cmd("QUIT")
        c.expect_reply(b"221")
        c.close()
    srv.wait_event(event="close", count=conns, timeout=10)
    rules = [(e.get("rule"), e.get("hook")) for e in srv.faults()]
    return out, rules


@test(timeout=90)
def flaky(ctx):
    res = {}

    def go(key, seed):
        try:
            res[key] = flaky_run(ctx, seed)
        except Exception as e:              # reported below
            res[key] = e
    th = [threading.Thread(target=go, args=(k, s), daemon=True)
          for k, s in (("a", 7), ("b", 7), ("c", 8))]
    for t in th:
        t.start()
    for t in th:
        t.join(T(80))
    for k in "abc":
        if isinstance(res.get(k), Exception):
            raise res[k]
        check(k in res, "run %s did not finish" % k)
    (a, fa), (b, fb), (c, _) = res["a"], res["b"], res["c"]
    check(a == b, "seed 7 twice gave different outcomes:\n  %s\n  %s" % (
        " ".join(a), " ".join(b)))
    check(fa == fb, "seed 7 twice gave different fault events")
    check(len(set(a)) >= 3, "seed 7 outcomes lack variety: %s" % " ".join(a))
    n = collections.Counter(a)
    check(n["ok"] >= 8, "seed 7: only %d of 30 delivered (%s)" % (
        n["ok"], " ".join(a)))
    check(a != c, "seed 8 gave the same outcomes as seed 7: %s" %
          " ".join(a))


@test()
def duplicate_maker(ctx):
    srv = ctx.server(scenario_arg("duplicate-maker"))
    msg = body("dup")
    s = srv.smtp()
    s.connect("127.0.0.1", srv.port)
    try:
        s.sendmail("a@example.com", ["b@example.com"], msg)
        raise Fail("first attempt got an answer to its final dot")
    except smtplib.SMTPServerDisconnected:
        pass
    ev = srv.wait_event(event="close")[0]
    check(ev.get("reason") == "fault_drop_after_data", "close event %s" % ev)
    replies = [e for e in srv.find(event="reply") if e.get("code") == 250 and
               "queued" in e.get("text", "")]
    check(not replies, "a queued reply was sent: %s" % replies)
    srv.wait_new(1)
    s = srv.smtp()
    s.connect("127.0.0.1", srv.port)
    refused = s.sendmail("a@example.com", ["b@example.com"], msg)
    check(not refused, "retry refused %s" % refused)
    s.quit()
    files = srv.wait_new(2)
    ids = [header_of(f, "Message-ID") for f in files]
    check(ids == ["<dup@client.test>"] * 2, "Message-IDs %s" % ids)
    msgs = srv.wait_event(event="message", count=2)
    check(len(msgs) == 2 and msgs[0].get("unanswered") is True and
          not msgs[1].get("unanswered") and
          all(m.get("message_id") == "<dup@client.test>" for m in msgs),
          "message events %s" % msgs)
    f = srv.faults()
    check(len(f) == 1 and f[0].get("action") == "drop_after_data" and
          f[0].get("attempt") == 1, "fault events %s" % f)


@test()
def silent_loss(ctx):
    srv = ctx.server(scenario_arg("silent-loss"))
    rc, out = swaks(ctx, srv, "--from", "a@example.com", "--to",
                    "b@example.com", "--header", "Subject: lost")
    check(rc == 0, "swaks exit %d: %s" % (rc, short(out[-500:], 500)))
    check(re.search(r"<-  250 2\.0\.0 Ok: queued as", out),
          "no 250 in swaks output: %s" % short(out[-400:], 400))
    s = srv.smtp()
    s.connect("127.0.0.1", srv.port)
    check(not s.sendmail("a@example.com", ["c@example.com"], body("lost2")),
          "smtplib send refused")
    s.quit()
    msgs = srv.wait_event(event="message", count=2)
    check(all(m.get("discarded") is True for m in msgs),
          "message events %s" % msgs)
    srv.no_new()
    check(not srv.tmp_files(), "Maildir tmp/ keeps %s" % srv.tmp_files())


@test()
def slow_replies(ctx):
    srv = ctx.server(scenario_arg("slow-replies"))
    t0 = time.monotonic()
    c = srv.connect(banner=False, timeout=15)
    c.expect_reply(b"220 %s " % HOST.encode(), timeout=15)
    between(time.monotonic() - t0, 1.8, 10, "banner")
    t0 = time.monotonic()
    c.ehlo()
    between(time.monotonic() - t0, 1.8, 10, "EHLO reply")
    f = srv.faults(rule="two-seconds", action="delay")
    check([e.get("hook") for e in f] == ["connect", "helo"],
          "fault events %s" % srv.faults())
    check(all(abs(e.get("delay", 0) - 2) < 0.01 for e in f),
          "delays %s" % [e.get("delay") for e in f])


@test()
def shipped_scenarios_covered(ctx):
    """Every shipped scenario passes --check-config, starts the comment
    block the others have, and has a test of its own in this file (the
    tls-* ones in tls_test.py; greylisting*, spam-* and provider-throttle
    in greylist_test.py; both check them the same way)."""
    names = sorted(f[:-4] for f in os.listdir(SHIPPED) if f.endswith(".ini"))
    check(len(names) >= 15, "only %d shipped scenarios" % len(names))
    tested = {t[0] for t in TESTS}

    def tests_of(fname):
        try:
            with open(os.path.join(HERE, fname)) as f:
                return set(re.findall(r"^@test\([^)]*\)\ndef (\w+)\(",
                                      f.read(), re.M))
        except OSError:
            return set()
    tls_tested = tests_of("tls_test.py")
    gl_tested = tests_of("greylist_test.py")

    def elsewhere(n):
        t = n.replace("-", "_")
        if n.startswith("tls-"):
            return t in tls_tested
        if re.match(r"(greylisting(-|$)|spam-|provider-throttle$)", n):
            return t in gl_tested
        return False
    missing = [n for n in names if n.replace("-", "_") not in tested and
               not elsewhere(n)]
    check(not missing, "shipped scenarios without a test: %s" % missing)
    H.check_shipped(ctx, names)


# ========================================================== rule language

@test()
def rule_hang(ctx):
    srv = ctx.server(fixture("hang.ini"))
    c = srv.connect()
    c.ehlo()
    t0 = time.monotonic()
    c.cmd("MAIL FROM:<a@example.com>")
    c.expect_silence(1.5)                   # no reply (hold is 2 s)
    c.wait_closed(timeout=8)                # hold = 2s, then closed
    between(time.monotonic() - t0, 1.8, 10, "hang until close")
    ev = srv.wait_event(event="close")[0]
    check(ev.get("reason") == "hold_max", "close event %s" % ev)


@test()
def rule_reset(ctx):
    srv = ctx.server(fixture("reset.ini"))
    c = srv.connect()
    c.cmd("EHLO client.test")
    c.sock.settimeout(T(5))
    try:
        d = c.sock.recv(4096)
        raise Fail("expected ECONNRESET, got %s" % (
            "EOF" if d == b"" else short(d)))
    except ConnectionResetError as e:
        check(e.errno == errno.ECONNRESET, "errno %s" % e.errno)
    except socket.timeout:
        raise Fail("no reset within 5s")
    ev = srv.wait_event(event="close")[0]
    check(ev.get("reason") == "fault_reset", "close event %s" % ev)
    s = srv.smtp()
    s.connect("127.0.0.1", srv.port)
    try:
        s.ehlo()
        raise Fail("smtplib EHLO succeeded")
    except smtplib.SMTPServerDisconnected as e:
        check("reset" in str(e).lower(), "smtplib saw %s" % e)


@test()
def rule_close(ctx):
    srv = ctx.server(fixture("close.ini"))
    c = srv.connect()
    envelope(c, rcpts=())
    c.cmd("RCPT TO:<b@example.com>")
    c.wait_closed(timeout=5)
    check(not c.reset_seen, "closed with RST, expected FIN")
    ev = srv.wait_event(event="close")[0]
    check(ev.get("reason") == "fault_close", "close event %s" % ev)
    f = srv.faults()
    check(len(f) == 1 and f[0].get("hook") == "rcpt" and "code" not in f[0],
          "fault events %s" % f)


@test()
def rule_disconnect_after_bytes(ctx):
    srv = ctx.server(fixture("cut.ini"))
    c = srv.connect()
    envelope(c)
    c.cmd("DATA")
    c.expect_reply(b"354")
    msg = body("cut", extra=b"x" * 70 + b"\r\n")
    check(len(msg) > 130, "test message too short")
    chunks = [msg[i:i + 40] for i in range(0, len(msg), 40)]

    def gone(wait):
        """True when the server dropped the connection within wait s."""
        try:
            c.sock.settimeout(wait)
            d = c.sock.recv(4096)
            check(d == b"", "unexpected data mid-DATA: %s" % short(d))
            return True
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
    # 80 octets are allowed through; the connection must stay up
    for ch in chunks[:2]:
        c.send(ch)
    check(not gone(0.4), "dropped before 100 body octets")
    dropped = False
    try:
        for ch in chunks[2:]:
            c.sock.sendall(ch)
            if gone(0.5):
                dropped = True
                break
        if not dropped:
            c.sock.sendall(b".\r\n")
            dropped = gone(T(3))
    except (BrokenPipeError, ConnectionResetError):
        dropped = True
    check(dropped, "connection not dropped mid-DATA")
    ev = srv.wait_event(event="close")[0]
    check(ev.get("reason") == "fault_disconnect_after_bytes",
          "close event %s" % ev)
    srv.no_new()
    check(not srv.find(event="message"), "message event for a cut message")


@test()
def rule_probability(ctx):
    srv = ctx.server(fixture("probability.ini"))
    c = srv.connect()
    envelope(c, rcpts=())
    for _ in range(20):
        c.cmd("RCPT TO:<never@example.com>")
        c.expect_reply(b"250 2.1.5")
        c.cmd("RCPT TO:<always@example.com>")
        c.expect_reply(b"451 4.7.1 <always@example.com>: the always rule")
    c.cmd("QUIT")
    c.expect_reply(b"221")
    srv.wait_event(event="close")
    f = srv.faults()
    check(len(f) == 20 and {e.get("rule") for e in f} == {"always"},
          "fault events: %d, rules %s" % (len(f), {e.get("rule") for e in f}))


@test()
def rule_times(ctx):
    srv = ctx.server(fixture("times.ini"))
    got = []
    for i in range(5):
        got.append(rcpt_reply(srv, "t%d@example.com" % i)[0])
    check(got == [451, 451, 250, 250, 250], "RCPT codes %s, want 451 451 "
          "250 250 250" % got)
    srv.wait_event(event="close", count=5)
    check(len(srv.faults(rule="twice")) == 2, "fault events %s" %
          srv.faults())


@test()
def rule_first_match_wins(ctx):
    srv = ctx.server(fixture("first-match.ini"))
    c = srv.connect()
    envelope(c, rcpts=())
    for rcpt, want in (("vip@example.com", "250 2.1.5"),
                       ("x@example.com", "451 4.7.1 <x@example.com>: first "
                        "rule"),
                       ("y@other.test", "550 5.7.1 <y@other.test>: second "
                        "rule")):
        c.cmd("RCPT TO:<%s>" % rcpt)
        c.expect_reply(want)
    f = [(e.get("rule"), e.get("action")) for e in
         srv.wait_event(event="fault", count=3)]
    check(f == [("vip-pass", "accept"), ("first", "reply"),
                ("second", "reply")], "fault events %s" % f)


@test()
def rule_client_cidr(ctx):
    srv = ctx.server(fixture("cidr.ini"))
    code, text = rcpt_reply(srv, "b@example.com")
    check((code, text) == (451, "4.7.1 <b@example.com>: loopback matched "
                           "127.0.0.1"), "got %s %r" % (code, text))
    code, text = rcpt_reply(srv, "listed@example.com")
    check((code, text) == (452, "4.7.1 <listed@example.com>: list file "
                           "matched 127.0.0.1"), "got %s %r" % (code, text))
    srv.wait_event(event="close", count=2)
    check(not srv.faults(rule="ten-net"), "10.0.0.0/8 matched 127.0.0.1")


@test()
def rule_globs(ctx):
    srv = ctx.server(fixture("globs.ini"))
    c = srv.connect()
    c.cmd("EHLO mail.bad.test")
    c.expect_reply(b"550 5.7.1 HELO mail.bad.test refused")
    c.cmd("EHLO MX.Bad.Test")
    c.expect_reply(b"550 5.7.1 HELO MX.Bad.Test refused")
    c.ehlo("good.test")
    c.cmd("MAIL FROM:<x@spam.test>")
    c.expect_reply(b"550 5.7.1 Sender <x@spam.test> refused")
    c.cmd("MAIL FROM:<x@spam.test.example>")
    c.expect_reply(b"250 2.1.0")
    for rcpt, ok in (("blocked-1@example.com", False),
                     ("BLOCKED-two@EXAMPLE.COM", False),
                     ("blocked@example.com", True),
                     ("ok@example.com", True),
                     ("anyone@example.org", False),
                     ("anyone@sub.example.org", True)):
        c.cmd("RCPT TO:<%s>" % rcpt)
        c.expect_reply(b"250 2.1.5" if ok else
                       ("550 5.1.1 <%s>: Recipient blocked" % rcpt).encode())
    data(c, body("globs"))
    f = srv.wait_new(1)[0]
    check(header_of(f, "X-Smtpfault-Helo") == "good.test", "helo %s" %
          header_of(f, "X-Smtpfault-Helo"))


@test()
def rule_size_over(ctx):
    srv = ctx.server(fixture("size.ini"))
    c = srv.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<a@example.com> SIZE=20000")
    c.expect_reply(b"552 5.3.4 Declared size too big")
    c.cmd("MAIL FROM:<a@example.com> SIZE=5000")
    c.expect_reply(b"250 2.1.0")
    c.cmd("RSET")
    c.expect_reply(b"250")
    envelope(c, helo=False)                 # no SIZE= at all
    data(c, body("small"))
    envelope(c, helo=False)
    data(c, body("big", extra=(b"y" * 70 + b"\r\n") * 40),
         expect=b"552 5.3.4 Message body too big")
    srv.wait_new(1)
    ref = srv.wait_event(event="message_refused")
    check(len(ref) == 1 and ref[0].get("reason") == "fault",
          "message_refused events %s" % ref)


@test()
def rule_header_body(ctx):
    srv = ctx.server(fixture("content.ini"))
    c = srv.connect()
    envelope(c)
    data(c, body("spam1", subject="Win the LOTTERY today"),
         expect=b"550 5.7.1 Message content rejected (subject)")
    # the next message in the same session starts clean
    envelope(c, helo=False)
    data(c, body("ham1", subject="quarterly report"))
    envelope(c, helo=False)
    data(c, body("virus", extra=b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$"
                 b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*\r\n"),
         expect=b"554 5.7.1 Message content rejected (body)")
    # header patterns look at headers only, body patterns at the body only
    envelope(c, helo=False)
    data(c, body("ham2", extra=b"Subject: cheap viagra\r\n"))
    envelope(c, helo=False)
    data(c, (b"Subject: eicar-standard-antivirus-test in a header\r\n"
             b"Message-ID: <ham3@client.test>\r\n\r\nclean body\r\n"))
    files = srv.wait_new(3)
    ids = sorted(header_of(f, "Message-ID") for f in files)
    check(ids == ["<ham1@client.test>", "<ham2@client.test>",
                  "<ham3@client.test>"], "stored %s" % ids)
    ref = srv.wait_event(event="message_refused", count=2)
    check([r.get("reason") for r in ref] == ["fault", "fault"],
          "message_refused events %s" % ref)
    # smtplib sees the refusal as an exception
    s = srv.smtp()
    s.connect("127.0.0.1", srv.port)
    try:
        s.sendmail("a@example.com", ["b@example.com"],
                   body("spam2", subject="viagra offer"))
        raise Fail("smtplib: spam subject accepted")
    except smtplib.SMTPDataError as e:
        check(e.smtp_code == 550, "smtplib saw %s" % e.smtp_code)
    s.quit()
    srv.wait_new(3)


@test()
def rule_multiline_reply(ctx):
    srv = ctx.server(fixture("multiline.ini"))
    c = srv.connect()
    envelope(c, rcpts=())
    c.cmd("RCPT TO:<b@example.com>")
    code, lines = c.reply()
    check(lines == [b"451-4.7.1 first line", b"451-4.7.1 second line",
                    b"451 4.7.1 third line"], "reply %s" % lines)
    code, text = rcpt_reply(srv, "c@example.com")
    check(code == 451 and text.splitlines() == [
        "4.7.1 first line", "4.7.1 second line", "4.7.1 third line"],
        "smtplib got %s %r" % (code, text))


@test()
def rule_placeholders(ctx):
    srv = ctx.server(fixture("placeholders.ini"))
    for n in (1, 2):
        code, text = rcpt_reply(srv, "r@example.com", frm="f@example.com")
        want = ("4.7.1 c=127.0.0.1 h=client.test f=f@example.com "
                "r=r@example.com H=%s a=%d pct=%%" % (HOST, n))
        check((code, text) == (451, want), "got %s %r, want 451 %r" % (
            code, text, want))


@test()
def rule_2xx_override(ctx):
    srv = ctx.server(fixture("override.ini"))
    c = srv.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<a@example.com>")
    c.expect_reply("250 2.1.0 Sender a@example.com fine by %s" % HOST)
    c.cmd("RCPT TO:<b@example.com>")
    c.expect_reply(b"250 2.1.5 Recipient <b@example.com> welcome, "
                   b"client.test")
    c.cmd("RCPT TO:<c@example.com>")
    c.expect_reply(b"250 2.1.5 Recipient <c@example.com> welcome")
    c.cmd("DATA")
    c.expect_reply(b"354 Go ahead, end with a dot")
    c.send(body("ovr") + b".\r\n")
    c.expect_reply(b"250 2.0.0 Stored with care")
    c.cmd("NOOP")
    c.expect_reply(b"250 2.0.0 Ok")
    f = srv.wait_new(1)[0]
    with open(f, "rb") as fp:
        m = email.message_from_bytes(fp.read())
    check(m.get_all("X-Smtpfault-Rcpt-To") == ["<b@example.com>",
                                              "<c@example.com>"],
          "stored recipients %s" % m.get_all("X-Smtpfault-Rcpt-To"))
    check(m.get("Message-ID") == "<ovr@client.test>", "stored message")
    msg = srv.wait_event(event="message")[0]
    check(msg.get("rcpt") == ["b@example.com", "c@example.com"],
          "message event %s" % msg)


@test()
def rule_2xx_override_not_leaked(ctx):
    """A 2xx rule whose command then fails must not lend its words to a
    later, unrelated 2xx reply."""
    srv = ctx.server(fixture("override.ini"))
    c = srv.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<a@example.com> SIZE=999999999")
    c.expect_reply(b"552 5.3.4")
    c.cmd("NOOP")
    c.expect_reply(b"250 2.0.0 Ok")
    c.cmd("RSET")
    c.expect_reply(b"250 2.0.0 Ok")


@test()
def rule_554_banner(ctx):
    srv = ctx.server(fixture("banner554.ini"))
    c = srv.connect(banner=False)
    c.expect_reply("554 5.7.1 %s No SMTP service here" % HOST)
    c.cmd("EHLO client.test")
    c.expect_reply(b"503 5.5.1")
    c.cmd("MAIL FROM:<a@example.com>")
    c.expect_reply(b"503 5.5.1")
    c.cmd("QUIT")
    c.expect_reply(b"221")
    c.wait_closed(timeout=5)
    try:
        smtplib.SMTP("127.0.0.1", srv.port, timeout=T(10)).close()
        raise Fail("smtplib accepted a 554 banner")
    except smtplib.SMTPConnectError as e:
        check(e.smtp_code == 554, "smtplib saw %s" % e.smtp_code)


@test()
def rule_delay_jitter(ctx):
    srv = ctx.server(fixture("jitter.ini"))
    c = srv.connect()
    envelope(c, rcpts=())
    for i in range(3):
        t0 = time.monotonic()
        c.cmd("RCPT TO:<j%d@example.com>" % i)
        c.expect_reply(b"250 2.1.5", timeout=10)
        took = time.monotonic() - t0
        ev = srv.wait_event(event="fault", count=i + 1)[i]
        d = ev.get("delay")
        check(isinstance(d, (int, float)) and 0.5 <= d <= 1.5,
              "fault event delay %s, want 0.5 to 1.5" % d)
        between(took, d - 0.1, d + 5, "RCPT delayed by %.2fs" % d)


@test()
def bad_scenario_check_config(ctx):
    path = fixture("bad-rules.ini")
    with open(path) as f:
        lines = f.read().splitlines()
    ln_act = 1 + next(i for i, l in enumerate(lines) if "explode" in l)
    ln_rng = 1 + next(i for i, l in enumerate(lines) if "5-2" in l)
    r = ctx.run([H.BIN, "--check-config", "-s", path], timeout=10)
    err = r.stderr.decode("utf-8", "replace")
    check(r.returncode == 2, "--check-config exit %d, want 2; stderr %s" % (
        r.returncode, short(err, 300)))
    for ln, rule, key in ((ln_act, "exploding-rule", "action"),
                          (ln_rng, "bad-range", "attempt")):
        m = [l for l in err.splitlines() if "%s:%d:" % (path, ln) in l]
        check(m, "no %s:%d: in %s" % (os.path.basename(path), ln,
                                      short(err, 400)))
        check(rule in m[0].lower() and key in m[0], "message %r lacks rule "
              "%s or key %s" % (m[0], rule, key))
    check("configuration OK" not in r.stdout.decode(), "stdout says OK")
    # the server refuses to start with it
    r = ctx.run([H.BIN, "-s", path, "--listen", "127.0.0.1:0", "--port-file",
                 ctx.path("ports"), "--events", ""], timeout=10)
    check(r.returncode == 2, "server with a bad scenario: exit %d" %
          r.returncode)
    check(not os.path.exists(ctx.path("ports")), "port file written")
    # a rule that contradicts itself is caught too
    bad = ctx.write("cross.ini", "[rule header-at-rcpt]\nhook = rcpt\n"
                    "header = ^Subject: x\nreply = 550 5.7.1 no\n")
    r = ctx.run([H.BIN, "--check-config", "-s", bad], timeout=10)
    err = r.stderr.decode("utf-8", "replace")
    check(r.returncode == 2 and "%s:1:" % bad in err and
          "header-at-rcpt" in err, "cross-key error: exit %d %s" % (
              r.returncode, short(err, 300)))
    # and the good fixtures pass
    for name in ("content.ini", "cidr.ini", "override.ini"):
        r = ctx.run([H.BIN, "--check-config", "-s", fixture(name)],
                    timeout=10)
        check(r.returncode == 0, "%s: exit %d %s" % (
            name, r.returncode, short(r.stderr, 300)))


@test()
def sighup_switch_scenario(ctx):
    conf = "[faults]\nscenario = %s\n"
    srv = ctx.server(conf=conf % scenario_arg("accept-all"))
    check(str(start_event(srv).get("scenario")).endswith("accept-all.ini"),
          "start event %s" % start_event(srv))
    check(rcpt_reply(srv, "b@example.com")[0] == 250, "accept-all deferred")
    with open(srv.conf_file, "w") as f:
        f.write(conf % scenario_arg("ttl-expired"))
    srv.signal(signal.SIGHUP)
    ev = srv.wait_event(event="reload")[0]
    check(ev.get("ok") is True and
          str(ev.get("scenario")).endswith("ttl-expired.ini"),
          "reload event %s" % ev)
    code, text = rcpt_reply(srv, "b@example.com")
    check(code == 451 and text.startswith("4.7.0 <b@example.com>: "
                                          "Temporary failure"),
          "after reload to ttl-expired: %s %r" % (code, text))
    with open(srv.conf_file, "w") as f:
        f.write(conf % scenario_arg("accept-all"))
    srv.signal(signal.SIGHUP)
    ev = srv.wait_event(event="reload", count=2)[1]
    check(ev.get("ok") is True and
          str(ev.get("scenario")).endswith("accept-all.ini"),
          "second reload event %s" % ev)
    s = srv.smtp()
    s.connect("127.0.0.1", srv.port)
    check(not s.sendmail("a@example.com", ["b@example.com"], body("back")),
          "refused after switching back")
    s.quit()
    srv.wait_new(1)


@test()
def client_gone_during_delay(ctx):
    srv = ctx.server(fixture("client-gone.ini"))
    c = srv.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<a@example.com>")
    srv.wait_event(event="fault")
    time.sleep(0.3)
    t0 = time.monotonic()
    c.close()
    ev = srv.wait_event(event="close", timeout=4)[0]
    took = time.monotonic() - t0
    check(ev.get("reason") == "client_gone", "close event %s" % ev)
    check(took < 2, "freed %.2fs after the client left" % took)
    check(ev.get("duration", 99) < 3, "session lasted %s s" %
          ev.get("duration"))
    # the server goes on serving
    d = srv.connect()
    d.cmd("QUIT")
    d.expect_reply(b"221")


# ================================================================== runner

# the long ones first, so that they overlap with the many short ones
HEAVY = {"flaky", "network_timeout_tarpit", "defer_for_window",
         "fail_then_accept_state_dir", "slow_replies"}

if __name__ == "__main__":
    sys.exit(H.main(sys.argv, "scenarios", "scenarios_test", "sf-scn",
                    heavy=HEAVY))
