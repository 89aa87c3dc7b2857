#!/usr/bin/env python3
"""
report_test.py - integration tests for `smtpfault report`, the retry timeline

USAGE   python3 tests/integration/report_test.py build/smtpfault [FILTER]

        Two kinds of tests.  Synthetic ones run `smtpfault report` on event
        files written by hand (tests/integration/report/*.jsonl, in the
        format of docs/events.md) or generated below (the retry schedules
        of the --profile tests), and check the text and --json output and
        the exit status of every option.  Real ones start smtpfault on
        127.0.0.1 port 0 with --port-file, --events and --capture in a temp
        dir (-s fail-then-accept, ttl-expired, duplicate-maker, ...), drive
        it with smtplib or a raw socket (for pipelining: smtplib does not
        pipeline), stop it with SIGTERM and check the report of the events
        it wrote.

        One line per test, "ok NAME" or "FAIL NAME: why", then exactly one
        line "report: N passed, N failed"; exit 1 if any failed.  FILTER
        selects tests whose name contains it (or matches it as a shell glob
        when it has * ? or [).

        Tests named bug_* reproduce defects found in responder/report.c;
        they fail until report.c is fixed (the fixture named in each test
        holds the event lines of the reproduction).

ENV     SMTPFAULT_JOBS  tests run at once (default 4)
        SMTPFAULT_SLOW  multiply every timeout by this factor (default 1)
        SMTPFAULT_KEEP  keep the temp dirs of failed tests (path printed)
        SMTPFAULT_TIMES print each test's duration

Python standard library only.  The harness (Ctx, Server, Client, runner)
is in sfharness.py beside this file.
"""

import calendar
import json
import os
import re
import signal
import smtplib
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import sfharness as H  # noqa: E402
from sfharness import (  # noqa: E402
    HERE, HOST, SANITIZER_MARKS, Fail, T, body, check, scenario_arg, short)

FIXTURES = os.path.join(HERE, "report")


def test(timeout=20):
    return H.test(timeout)


def fixture(name):
    return H.fixture(name, FIXTURES)


class Client(H.Client):
    CHECK_MIXED_CODES = False


class Server(H.Server):
    """Without the end-of-test Maildir tmp/ check, and its Client does
    not check a reply for mixed codes (as this suite always had it)."""

    CLIENT = Client
    CHECK_MAILDIR_TMP = False


class Ctx(H.Ctx):
    SERVER = Server


# ------------------------------------------------------- running the report

def sf_report(ctx, args, rc=0, stdin=None):
    """Run `smtpfault report ARGS`; check the exit status (unless rc is
    None) and that no sanitizer spoke.  Returns (stdout, stderr)."""
    argv = [H.BIN, "report"] + [str(a) for a in args]
    r = ctx.run(argv, timeout=20, stdin=stdin)
    out = r.stdout.decode("utf-8", "replace")
    err = r.stderr.decode("utf-8", "replace")
    for mark in SANITIZER_MARKS:
        check(mark not in err, "report %s: stderr has %r: %s" % (
            shown(args), mark, short(err, 400)))
    if rc is not None:
        check(r.returncode == rc, "report %s: exit %d, want %d; stdout %s; "
              "stderr %s" % (shown(args), r.returncode, rc, short(out, 300),
                             short(err, 300)))
    return out, err


def sf_rc(ctx, args, stdin=None):
    argv = [H.BIN, "report"] + [str(a) for a in args]
    r = ctx.run(argv, timeout=20, stdin=stdin)
    return (r.returncode, r.stdout.decode("utf-8", "replace"),
            r.stderr.decode("utf-8", "replace"))


def sf_json(ctx, args, rc=0, stdin=None):
    out, err = sf_report(ctx, ["--json"] + list(args), rc=rc, stdin=stdin)
    try:
        j = json.loads(out)
    except ValueError as e:
        raise Fail("report --json %s: not JSON (%s): %s" % (
            shown(args), e, short(out, 300)))
    check(isinstance(j, dict), "report --json: not an object: %s" %
          short(out))
    return j


def shown(args):
    return " ".join(os.path.basename(str(a)) if os.sep in str(a) else str(a)
                    for a in args)


def one_message(j, what=""):
    ms = j.get("messages")
    check(isinstance(ms, list) and len(ms) == 1, "%swant 1 message, got %s" %
          (what, summary(j)))
    return ms[0]


def summary(j):
    """A short description of a --json report, for failure messages."""
    def grp(g):
        return "%s %s/%s %s [%s]" % (
            g.get("message_id") or g.get("client"),
            g.get("from"), ",".join(g.get("rcpts") or []), g.get("outcome"),
            ", ".join(att(a) for a in g.get("attempts", [])))
    return "messages: %s; connections: %s" % (
        "; ".join(grp(g) for g in j.get("messages", [])) or "none",
        "; ".join(grp(g) for g in j.get("connections", [])) or "none")


def att(a):
    return "%s/%s/%s" % (a.get("hook"), a.get("code"), a.get("result"))


def atts(g):
    return [(a.get("hook"), a.get("code"), a.get("result"))
            for a in g.get("attempts", [])]


def near(x, y, eps=0.002):
    return isinstance(x, (int, float)) and abs(x - y) <= eps


def near_all(xs, ys, eps=0.002):
    return len(xs) == len(ys) and all(near(x, y, eps) for x, y in zip(xs, ys))


def epoch(iso):
    """2026-11-30T09:00:00.123456Z -> seconds since the epoch."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?Z",
                     iso)
    check(m, "not an event time: %r" % iso)
    t = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    return t + (float("0." + m.group(2)) if m.group(2) else 0.0)


def fail_lines(text):
    return [l for l in text.splitlines() if l.startswith("FAIL ")]


# ------------------------------------------------ generated retry schedules

BASE = calendar.timegm((2026, 11, 30, 0, 0, 0, 0, 0, 0))


def iso(t):
    us = int(round(t * 1e6))
    sec, us = divmod(us, 1000000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + \
        ".%06dZ" % us


def deferral_log(offsets, client="192.0.2.60"):
    """Events of one message deferred at RCPT at every attempt; attempt n
    (its MAIL) comes offsets[n] seconds after BASE + 0.002."""
    seq = [0]
    lines = []

    def ev(t, name, sid=None, **kw):
        seq[0] += 1
        e = {"time": iso(t), "seq": seq[0], "event": name}
        if sid is not None:
            e["session"] = sid
            e["client"] = client
        e.update(kw)
        lines.append(json.dumps(e, separators=(",", ":")))

    ev(BASE - 1, "start", version="0.1.0", pid=1, hostname=HOST, seed=1,
       scenario="ttl-expired.ini", rules=1, state="memory")
    for n, off in enumerate(offsets):
        t, sid = BASE + off, "%08x" % (n + 1)
        ev(t, "connect", sid, port=50000 + n, listener="127.0.0.1:2525")
        ev(t + 0.00001, "reply", sid, code=220, text=HOST + " ESMTP")
        ev(t + 0.001, "command", sid, verb="EHLO", arg="sender.test")
        ev(t + 0.00101, "reply", sid, code=250, text=HOST + " greets")
        ev(t + 0.002, "command", sid, verb="MAIL", arg="FROM:<a@sender.test>")
        ev(t + 0.00201, "reply", sid, code=250, text="2.1.0 Ok")
        ev(t + 0.003, "command", sid, verb="RCPT", arg="TO:<b@example.test>")
        ev(t + 0.00301, "fault", sid, rule="defer-forever", action="reply",
           hook="rcpt", attempt=n + 1, code=451, reply="try again later")
        ev(t + 0.00302, "reply", sid, code=451,
           text="4.7.0 <b@example.test>: try again later (attempt %d)" %
           (n + 1))
        ev(t + 0.004, "command", sid, verb="QUIT", arg="")
        ev(t + 0.00401, "reply", sid, code=221, text="2.0.0 Bye")
        ev(t + 0.00402, "close", sid, reason="quit", rx=80, tx=300,
           duration=0.004, messages=0)
    return "\n".join(lines) + "\n"


def offsets_of(intervals):
    o = [0]
    for iv in intervals:
        o.append(o[-1] + iv)
    return o


def profile_case(ctx, profile, name, intervals, fits, why=None):
    """The report of a message retried at these intervals must (not) fit
    the profile; why: text the reason must contain."""
    f = ctx.write(name + ".jsonl", deferral_log(offsets_of(intervals)))
    out, _ = sf_report(ctx, ["--profile", profile, f])
    check(out.startswith("profile %s: " % profile), "%s: no profile header:"
          " %s" % (name, short(out, 200)))
    lines = [l.strip() for l in out.splitlines()
             if re.match(r"\s+(fits|does not fit) ", l)]
    check(len(lines) == 1, "%s: want one fits line, got %s" % (name, lines))
    if fits:
        check(lines[0] == "fits " + profile, "%s (intervals %s): %r, want "
              "'fits %s'" % (name, short(intervals, 80), lines[0], profile))
    else:
        check(lines[0].startswith("does not fit %s: " % profile) and
              why in lines[0], "%s (intervals %s): %r, want 'does not fit "
              "%s: ...%s...'" % (name, short(intervals, 80), lines[0],
                                 profile, why))
    m = one_message(sf_json(ctx, ["--profile", profile, f]), name + ": ")
    check(len(m["attempts"]) == len(intervals) + 1, "%s: %d attempts" % (
        name, len(m["attempts"])))
    p = m.get("profile")
    check(isinstance(p, dict) and p.get("name") == profile and
          p.get("fits") is fits and
          (p.get("why") is None if fits else why in (p.get("why") or "")),
          "%s: --json profile %s" % (name, p))


# ============================================================ synthetic

@test()
def deferred_then_delivered(ctx):
    f = fixture("deferred_then_delivered.jsonl")
    out, _ = sf_report(ctx, [f])
    lines = out.splitlines()
    check(lines[0] == "MESSAGE 1  <student@localhost> -> <user@example.test>"
          "  <20261130090000.1@lab>", "header %r" % lines[0])
    check(lines[1] == "  outcome delivered after 3 attempts over 900.9 s; "
          "copies kept 1", "summary %r" % lines[1])
    rows = [l.split() for l in lines if re.match(r"  \d+ ", l)]
    check(len(rows) == 3, "want 3 attempt rows: %s" % short(out, 600))
    check([r[1] for r in rows] == ["2026-11-30T09:00:00.102000Z",
                                   "2026-11-30T09:05:00.502000Z",
                                   "2026-11-30T09:15:01.002000Z"],
          "attempt times (the MAIL of each try) %s" % [r[1] for r in rows])
    check([r[2:5] for r in rows] == [["-", "rcpt", "deferred"],
                                     ["+300.4s", "rcpt", "deferred"],
                                     ["+600.5s", "data_end", "accepted"]],
          "rows %s" % rows)
    check(rows[0][5:7] == ["451", "4.7.1"] and rows[2][5:7] == ["250", "2.0.0"]
          and "Ok: queued as 000000030001" in lines[lines.index(
              [l for l in lines if l.startswith("  3 ")][0])],
          "replies %s" % rows)
    check(all(l.endswith("[rule defer-twice]") for l in lines
              if re.match(r"  [12] ", l)), "rule missing on the deferrals")
    check("DUPLICATE" not in out and "line(s) were not events" not in out,
          "unexpected: %s" % short(out, 600))
    check(len([l for l in lines if l.startswith("MESSAGE ")]) == 1 and
          "CONNECTIONS" not in out, "other groups: %s" % short(out, 600))


@test()
def deferred_then_delivered_json(ctx):
    f = fixture("deferred_then_delivered.jsonl")
    j = sf_json(ctx, [f])
    m = one_message(j)
    check(m["from"] == "student@localhost" and
          m["rcpts"] == ["user@example.test"], "envelope %s %s (addresses "
          "are compared lower-cased)" % (m["from"], m["rcpts"]))
    check(m["message_id"] == "<20261130090000.1@lab>", "message_id %r" %
          m["message_id"])
    check(m["outcome"] == "delivered" and m["accepted"] == 1 and
          m["duplicate"] is False, "outcome %s accepted %s duplicate %s" % (
              m["outcome"], m["accepted"], m["duplicate"]))
    check(near_all(m["intervals"], [300.4, 600.5]), "intervals %s" %
          m["intervals"])
    a = m["attempts"]
    check(atts(m) == [("rcpt", 451, "deferred"), ("rcpt", 451, "deferred"),
                      ("data_end", 250, "accepted")], "attempts %s" % atts(m))
    check([x["session"] for x in a] == ["00000001", "00000002", "00000003"] and
          all(x["client"] == "192.0.2.7" for x in a), "sessions/clients %s" %
          [(x["session"], x["client"]) for x in a])
    check(all(near(x["t"], epoch(x["time"]), 1e-5) for x in a),
          "t does not match time: %s" % [(x["t"], x["time"]) for x in a])
    check(a[0]["reply"] == "4.7.1 <User@Example.TEST>: Temporary failure, "
          "attempt 1 of 2" and a[2]["reply"] == "2.0.0 Ok: queued as "
          "000000030001", "replies %r %r" % (a[0]["reply"], a[2]["reply"]))
    check([x["rule"] for x in a] == ["defer-twice", "defer-twice", None],
          "rules %s" % [x["rule"] for x in a])
    check(m.get("first") == a[0]["time"] and m.get("last") == a[2]["time"],
          "first/last %s %s" % (m.get("first"), m.get("last")))
    check(j["connections"] == [] and j["bad_lines"] == 0, "connections %s "
          "bad_lines %s" % (j["connections"], j["bad_lines"]))


@test()
def json_shape(ctx):
    log = ctx.path("mixed.jsonl")
    with open(log, "w") as w:
        for n in ("drop_then_retry.jsonl", "hang_data_end.jsonl",
                  "conn_failures.jsonl"):
            with open(fixture(n)) as r:
                w.write(r.read())
    j = sf_json(ctx, [log])
    check(set(j) >= {"messages", "connections", "bad_lines"},
          "top-level keys %s" % sorted(j))
    check(isinstance(j["bad_lines"], int) and j["bad_lines"] == 0,
          "bad_lines %r" % j["bad_lines"])
    att_keys = {"time", "t", "session", "client", "hook", "code", "reply",
                "result", "rule"}
    check(len(j["messages"]) == 2 and len(j["connections"]) == 3,
          "groups: %s" % summary(j))
    for g in j["messages"] + j["connections"]:
        check(isinstance(g.get("attempts"), list) and g["attempts"],
              "attempts of %s" % short(g, 200))
        check(isinstance(g.get("intervals"), list) and
              len(g["intervals"]) == len(g["attempts"]) - 1,
              "intervals %s for %d attempts" % (g.get("intervals"),
                                                len(g["attempts"])))
        check(g.get("outcome") in ("delivered", "gave-up", "deferred",
                                   "rejected"), "outcome %r" %
              g.get("outcome"))
        for a in g["attempts"]:
            check(set(a) == att_keys, "attempt keys %s, want %s" % (
                sorted(a), sorted(att_keys)))
            check(isinstance(a["time"], str) and
                  isinstance(a["t"], (int, float)) and
                  isinstance(a["session"], str) and
                  isinstance(a["client"], str) and
                  isinstance(a["hook"], str) and
                  (a["code"] is None or isinstance(a["code"], int)) and
                  (a["reply"] is None or isinstance(a["reply"], str)) and
                  a["result"] in ("accepted", "deferred", "rejected", "lost",
                                  "unanswered") and
                  (a["rule"] is None or isinstance(a["rule"], str)),
                  "attempt types: %s" % a)
    for m in j["messages"]:
        check(isinstance(m.get("from"), str) and
              isinstance(m.get("rcpts"), list) and
              "message_id" in m and isinstance(m.get("duplicate"), bool) and
              isinstance(m.get("accepted"), int) and "client" not in m,
              "message keys/types: %s" % sorted(m))
    for c in j["connections"]:
        check(isinstance(c.get("client"), str) and "from" not in c and
              "duplicate" not in c, "connection keys: %s" % sorted(c))
    dup = [m for m in j["messages"] if m["duplicate"]]
    check(len(dup) == 1 and dup[0]["message_id"] == "<dup.1@sender.test>",
          "duplicates %s" % summary(j))
    hung = [m for m in j["messages"] if not m["duplicate"]][0]
    a = hung["attempts"][0]
    check(a["code"] is None and a["result"] == "lost", "a lost attempt has "
          "code null: %s" % a)


@test()
def quiet_gave_up_vs_deferred(ctx):
    # three deferrals 10 s apart, the last one 1.0 s before the last event
    f = fixture("ttl_deferred.jsonl")
    for args, want in (([], "deferred"),
                       (["--quiet", "0.5s"], "gave-up"),
                       (["--quiet", "500ms"], "gave-up"),
                       (["--quiet", "2s"], "deferred"),
                       (["--quiet", "10m"], "deferred"),
                       (["--quiet", "0"], "gave-up")):
        m = one_message(sf_json(ctx, args + [f]))
        check(m["outcome"] == want, "%s: outcome %s, want %s" % (
            " ".join(args) or "(default --quiet 10m)", m["outcome"], want))
        check(atts(m) == [("rcpt", 451, "deferred")] * 3, "attempts %s" %
              atts(m))
    out, _ = sf_report(ctx, ["--quiet", "0.5s", f])
    check("  outcome gave-up after 3 attempts over 20.0 s; copies kept 0"
          in out.splitlines(), "text: %s" % short(out, 300))


@test()
def now_judges_gave_up(ctx):
    f = fixture("ttl_deferred.jsonl")        # last attempt 10:00:20.002
    for args, want in (
            (["--now", "2026-11-30T10:30:00.000000Z"], "gave-up"),
            (["--now", "2026-11-30T10:30:00Z"], "gave-up"),
            (["--now", "2026-11-30T10:05:00.000000Z"], "deferred"),
            (["--now", "2026-11-30T11:00:00Z", "--quiet", "2h"], "deferred"),
            (["--now", "2026-11-30T10:00:20.100000Z", "--quiet", "0.5s"],
             "deferred"),
            (["--now", "2026-11-30T10:00:21.000000Z", "--quiet", "0.5s"],
             "gave-up")):
        m = one_message(sf_json(ctx, args + [f]))
        check(m["outcome"] == want, "%s: outcome %s, want %s" % (
            " ".join(args), m["outcome"], want))


@test()
def bug_now_fraction(ctx):
    # --now 10:10:20.9Z is 600.898 s after the last attempt (10:00:20.002):
    # gave-up under the default --quiet 10m, as with .900000Z.  report.c
    # reads the fraction with %d, so ".9" becomes 9 microseconds.
    f = fixture("ttl_deferred.jsonl")
    got = {}
    for now in ("2026-11-30T10:10:20.900000Z", "2026-11-30T10:10:20.9Z"):
        got[now] = one_message(sf_json(ctx, ["--now", now, f]))["outcome"]
    check(set(got.values()) == {"gave-up"}, "outcomes %s" % got)


@test()
def rejected_at_rcpt(ctx):
    f = fixture("rejected_rcpt.jsonl")
    for args in ([], ["--quiet", "0"]):
        m = one_message(sf_json(ctx, args + [f]))
        check(m["outcome"] == "rejected", "%s: outcome %s" % (args,
                                                              m["outcome"]))
        check(atts(m) == [("rcpt", 550, "rejected")], "attempts %s" % atts(m))
        a = m["attempts"][0]
        check(a["reply"] == "5.7.1 <user@example.test>: blocked by policy" and
              a["rule"] == "exo-block" and a["client"] == "40.92.0.5",
              "attempt %s" % a)
    sf_report(ctx, ["--expect-outcome", "rejected", "--expect-attempts", "1",
                    f])
    out, _ = sf_report(ctx, ["--expect-outcome", "delivered", f], rc=1)
    check("FAIL message 1 (boss@contoso.test -> user@example.test): outcome "
          "rejected, expected delivered" in out.splitlines(),
          "FAIL line: %s" % fail_lines(out))


@test()
def pipelined_data_503_behind_refused_rcpt(ctx):
    f = fixture("pipelined_503.jsonl")
    m = one_message(sf_json(ctx, [f]))
    check(atts(m) == [("rcpt", 451, "deferred")], "attempts %s (the 503 to "
          "the pipelined DATA is not the answer)" % atts(m))
    check(m["attempts"][0]["reply"] == "4.3.0 <b@example.test>: Temporary "
          "local problem", "reply %r" % m["attempts"][0]["reply"])
    check(m["outcome"] == "deferred", "outcome %s" % m["outcome"])
    out, _ = sf_report(ctx, [f])
    check("503" not in out and "need RCPT" not in out, "the 503 shows: %s" %
          short(out, 400))


@test()
def hang_at_data_end(ctx):
    f = fixture("hang_data_end.jsonl")
    m = one_message(sf_json(ctx, [f]))
    check(atts(m) == [("data_end", None, "lost")], "attempts %s" % atts(m))
    a = m["attempts"][0]
    check(a["reply"] == "client_gone" and a["rule"] == "stall-after-dot",
          "attempt %s" % a)
    check(m["message_id"] == "<slow.1@sender.test>", "message_id %r (from "
          "the close event)" % m["message_id"])
    check(m["accepted"] == 0 and m["duplicate"] is False, "accepted %s dup "
          "%s" % (m["accepted"], m["duplicate"]))
    # the log ends 300 s after the attempt began
    check(m["outcome"] == "deferred", "outcome %s" % m["outcome"])
    m = one_message(sf_json(ctx, ["--quiet", "1m", f]))
    check(m["outcome"] == "gave-up", "--quiet 1m: outcome %s" % m["outcome"])
    out, _ = sf_report(ctx, [f])
    check(re.search(r"^  1 +2026-11-30T12:00:01\.002000Z +- +data_end +lost "
                    r"+client_gone \[rule stall-after-dot\]$", out, re.M),
          "row: %s" % short(out, 400))


@test()
def drop_after_data_then_retry(ctx):
    f = fixture("drop_then_retry.jsonl")
    m = one_message(sf_json(ctx, [f]))
    check(atts(m) == [("data_end", None, "unanswered"),
                      ("data_end", 250, "accepted")], "attempts %s" % atts(m))
    check(m["attempts"][0]["reply"] == "stored, connection closed without a "
          "reply", "reply %r" % m["attempts"][0]["reply"])
    check(m["duplicate"] is True and m["accepted"] == 2 and
          m["message_id"] == "<dup.1@sender.test>" and
          m["outcome"] == "delivered", "message %s" % summary({"messages":
                                                               [m]}))
    check(near_all(m["intervals"], [5.5]), "intervals %s" % m["intervals"])
    out, _ = sf_report(ctx, [f])
    check("  outcome delivered after 2 attempts over 5.5 s; copies kept 2 "
          "(DUPLICATE)" in out.splitlines(), "text: %s" % short(out, 400))
    out, _ = sf_report(ctx, ["--expect-no-duplicates", f], rc=1)
    fl = fail_lines(out)
    check(fl == ["FAIL message 1 (a@sender.test -> b@example.test): "
                 "duplicate: 2 copies of Message-ID <dup.1@sender.test> kept"],
          "FAIL lines %s" % fl)
    sf_report(ctx, ["--expect-outcome", "delivered", "--expect-attempts", "2",
                    f])


@test()
def two_messages_one_envelope(ctx):
    f = fixture("two_messages.jsonl")
    j = sf_json(ctx, [f])
    ms = j["messages"]
    check(len(ms) == 2, "want 2 messages: %s" % summary(j))
    by = {m["message_id"]: m for m in ms}
    check(set(by) == {"<issue.1@sender.test>", "<issue.2@sender.test>"},
          "message ids %s" % sorted(by))
    for mid, iv, t0 in (("<issue.1@sender.test>", 60.0,
                         "2026-11-30T14:00:00.002000Z"),
                        ("<issue.2@sender.test>", 120.0,
                         "2026-11-30T14:10:00.002000Z")):
        m = by[mid]
        check(atts(m) == [("rcpt", 451, "deferred"),
                          ("data_end", 250, "accepted")],
              "%s: attempts %s" % (mid, atts(m)))
        check(near_all(m["intervals"], [iv]) and
              m["attempts"][0]["time"] == t0, "%s: intervals %s first %s" % (
                  mid, m["intervals"], m["attempts"][0]["time"]))
        check(m["outcome"] == "delivered" and not m["duplicate"] and
              m["accepted"] == 1 and m["from"] == "news@sender.test" and
              m["rcpts"] == ["reader@example.test"], "%s: %s" % (
                  mid, summary({"messages": [m]})))
    sf_report(ctx, ["--expect-no-duplicates", "--expect-attempts", "2",
                    "--expect-outcome", "delivered", f])


@test()
def connection_groups(ctx):
    f = fixture("conn_failures.jsonl")
    j = sf_json(ctx, [f])
    check(j["messages"] == [], "messages %s" % summary(j))
    cs = j["connections"]
    check([c["client"] for c in cs] == ["40.92.0.20", "192.0.2.21",
                                        "192.0.2.22"],
          "connection groups %s (the client that greeted and quit is no "
          "failure)" % [c["client"] for c in cs])
    check(atts(cs[0]) == [("connect", 554, "rejected")] * 2 and
          cs[0]["outcome"] == "rejected", "554 banner: %s" % summary(j))
    check(cs[0]["attempts"][0]["reply"] == "5.7.1 mx.test No SMTP service "
          "here - client host [40.92.0.20] blocked" and
          cs[0]["attempts"][0]["rule"] == "exo-banner", "554 attempt %s" %
          cs[0]["attempts"][0])
    check(atts(cs[1]) == [("connect", None, "lost")] * 2, "no banner: %s" %
          atts(cs[1]))
    check([a["reply"] for a in cs[1]["attempts"]] ==
          ["closed: client_gone", "closed: fault_close"], "replies %s" %
          [a["reply"] for a in cs[1]["attempts"]])
    check(atts(cs[2]) == [("connect", 421, "deferred")], "421 banner: %s" %
          atts(cs[2]))
    check(near_all(cs[0]["intervals"], [20.0]) and
          near_all(cs[1]["intervals"], [10.0]), "intervals %s %s" % (
              cs[0]["intervals"], cs[1]["intervals"]))
    # the log ends 28 s after 192.0.2.21's last attempt
    check(cs[1]["outcome"] == "deferred", "outcome %s" % cs[1]["outcome"])
    j = sf_json(ctx, ["--quiet", "10s", f])
    check([c["outcome"] for c in j["connections"]] ==
          ["rejected", "gave-up", "gave-up"], "--quiet 10s: outcomes %s" %
          [c["outcome"] for c in j["connections"]])
    out, _ = sf_report(ctx, [f])
    heads = [l for l in out.splitlines() if l.startswith(("CONNECTIONS",
                                                          "MESSAGE"))]
    check(heads == ["CONNECTIONS 1 from 40.92.0.20",
                    "CONNECTIONS 2 from 192.0.2.21",
                    "CONNECTIONS 3 from 192.0.2.22"], "headers %s" % heads)


@test()
def connection_expectations(ctx):
    f = fixture("conn_failures.jsonl")
    # no transaction in the log: the expectations judge the connections
    sf_report(ctx, ["--expect-attempts", "1-2", f])
    sf_report(ctx, ["--expect-attempts", "<=2", "--expect-min-interval",
                    "10s", "--expect-max-interval", "20s", f])
    out, _ = sf_report(ctx, ["--expect-attempts", "2", f], rc=1)
    check(fail_lines(out) == ["FAIL connections 3 (from 192.0.2.22): 1 "
                              "attempts, expected 2 to 2"],
          "FAIL lines %s" % fail_lines(out))
    out, _ = sf_report(ctx, ["--expect-outcome", "rejected", f], rc=1)
    fl = fail_lines(out)
    check(len(fl) == 2 and fl[0].startswith("FAIL connections 2 (from "
                                            "192.0.2.21): outcome") and
          fl[1].startswith("FAIL connections 3 (from 192.0.2.22): outcome "
                           "deferred, expected rejected"),
          "FAIL lines %s" % fl)
    out, _ = sf_report(ctx, ["--expect-min-interval", "15s", f], rc=1)
    check(fail_lines(out) == ["FAIL connections 2 (from 192.0.2.21): "
                              "interval 1 is 10.000 s, under the minimum "
                              "15.000 s"], "FAIL lines %s" % fail_lines(out))


@test()
def connections_not_judged_beside_messages(ctx):
    log = ctx.path("both.jsonl")
    with open(log, "w") as w:
        for n in ("deferred_then_delivered.jsonl", "conn_failures.jsonl"):
            with open(fixture(n)) as r:
                w.write(r.read())
    j = sf_json(ctx, [log])
    check(len(j["messages"]) == 1 and len(j["connections"]) == 3,
          "groups %s" % summary(j))
    sf_report(ctx, ["--expect-outcome", "delivered", "--expect-attempts", "3",
                    log])
    out, _ = sf_report(ctx, ["--expect-outcome", "gave-up", log], rc=1)
    fl = fail_lines(out)
    check(len(fl) == 1 and fl[0].startswith("FAIL message 1 "), "FAIL lines"
          " %s" % fl)


@test()
def restart_session_ids_begin_again(ctx):
    f = fixture("restart.jsonl")
    m = one_message(sf_json(ctx, [f]))
    a = m["attempts"]
    check(atts(m) == [("rcpt", 451, "deferred"), ("rcpt", 451, "deferred"),
                      ("data_end", None, "lost"),
                      ("data_end", 250, "accepted")], "attempts %s" % atts(m))
    check([x["session"] for x in a] == ["00000001", "00000002", "00000002",
                                        "00000001"], "sessions %s" %
          [x["session"] for x in a])
    check(a[2]["reply"] == "server restart", "the transaction open at the "
          "restart ended with %r, want 'server restart'" % a[2]["reply"])
    check(a[0]["time"] == "2026-11-30T16:00:00.002000Z" and
          a[3]["time"] == "2026-11-30T16:03:00.002000Z", "times %s" %
          [x["time"] for x in a])
    check(near_all(m["intervals"], [60.0, 29.998, 90.002]), "intervals %s" %
          m["intervals"])
    check(m["outcome"] == "delivered" and m["accepted"] == 1 and
          not m["duplicate"] and m["message_id"] == "<restart.1@sender.test>",
          "message %s" % summary({"messages": [m]}))


@test()
def malformed_lines_skipped(ctx):
    f = fixture("malformed.jsonl")
    j = sf_json(ctx, [f])
    check(j["bad_lines"] == 6, "bad_lines %s, want 6 (text, truncated "
          "object, array, no time, no event, number; the blank line is not "
          "counted)" % j["bad_lines"])
    m = one_message(j)
    check(atts(m) == [("data_end", 250, "accepted")] and
          m["message_id"] == "<ok.1@sender.test>", "message %s" % summary(j))
    out, _ = sf_report(ctx, [f])
    check("6 line(s) were not events and were skipped" in out.splitlines(),
          "text: %s" % short(out, 400))
    sf_report(ctx, ["--expect-outcome", "delivered", f])


@test()
def bug_bad_time_not_counted(ctx):
    # a connect line whose time is not ISO 8601 is malformed; report.c
    # counts it only when the field is missing, reads it as the epoch and
    # shows a 1796076001 s interval
    f = fixture("bug_bad_time.jsonl")
    j = sf_json(ctx, [f])
    cs = j["connections"]
    ivs = [iv for c in cs for iv in c["intervals"]]
    check(j["bad_lines"] == 1 and len(cs) == 1 and
          near_all(ivs, [20.0]), "bad_lines %s, intervals %s (%s)" % (
              j["bad_lines"], ivs, summary(j)))


@test()
def expect_attempts(ctx):
    f = fixture("ttl_deferred.jsonl")          # 3 attempts
    for spec in ("3", ">=3", ">=1", "<=3", "<=9", "2-3", "3-5", "1-3"):
        sf_report(ctx, ["--expect-attempts", spec, f])
    for spec, msg in (("4", "3 attempts, expected 4 to 4"),
                      ("2", "3 attempts, expected 2 to 2"),
                      (">=4", "3 attempts, expected at least 4"),
                      ("<=2", "3 attempts, expected 0 to 2"),
                      ("4-6", "3 attempts, expected 4 to 6"),
                      ("1-2", "3 attempts, expected 1 to 2")):
        out, _ = sf_report(ctx, ["--expect-attempts", spec, f], rc=1)
        check(fail_lines(out) == ["FAIL message 1 (late@sender.test -> "
                                  "late@example.test): " + msg],
              "--expect-attempts %s: FAIL lines %s" % (spec,
                                                       fail_lines(out)))


@test()
def expect_intervals(ctx):
    f = fixture("ttl_deferred.jsonl")          # intervals 10 s, 10 s
    for args in (["--expect-min-interval", "9s"],
                 ["--expect-min-interval", "9500ms"],
                 ["--expect-min-interval", "10s"],
                 ["--expect-max-interval", "11s"],
                 ["--expect-max-interval", "1m"],
                 ["--expect-min-interval", "5", "--expect-max-interval",
                  "15"]):
        sf_report(ctx, args + [f])
    pre = "FAIL message 1 (late@sender.test -> late@example.test): "
    out, _ = sf_report(ctx, ["--expect-min-interval", "11s", f], rc=1)
    check(fail_lines(out) == [
        pre + "interval 1 is 10.000 s, under the minimum 11.000 s",
        pre + "interval 2 is 10.000 s, under the minimum 11.000 s"],
        "min 11s: FAIL lines %s" % fail_lines(out))
    out, _ = sf_report(ctx, ["--expect-max-interval", "9.5s", f], rc=1)
    check(fail_lines(out) == [
        pre + "interval 1 is 10.000 s, over the maximum 9.500 s",
        pre + "interval 2 is 10.000 s, over the maximum 9.500 s"],
        "max 9.5s: FAIL lines %s" % fail_lines(out))
    out, _ = sf_report(ctx, ["--expect-min-interval", "1m",
                             "--expect-max-interval", "1s", f], rc=1)
    check(len(fail_lines(out)) == 4, "both: FAIL lines %s" %
          fail_lines(out))
    # one attempt: no interval to violate
    sf_report(ctx, ["--expect-min-interval", "1h",
                    fixture("rejected_rcpt.jsonl")])


@test()
def expect_outcome(ctx):
    cases = (("deferred_then_delivered.jsonl", [], "delivered"),
             ("ttl_deferred.jsonl", [], "deferred"),
             ("ttl_deferred.jsonl", ["--quiet", "0.5s"], "gave-up"),
             ("rejected_rcpt.jsonl", [], "rejected"))
    for name, extra, want in cases:
        f = fixture(name)
        sf_report(ctx, extra + ["--expect-outcome", want, f])
        for other in ("delivered", "gave-up", "deferred", "rejected"):
            if other == want:
                continue
            out, _ = sf_report(ctx, extra + ["--expect-outcome", other, f],
                               rc=1)
            fl = fail_lines(out)
            check(len(fl) == 1 and fl[0].startswith("FAIL message 1 (") and
                  fl[0].endswith("outcome %s, expected %s" % (want, other)),
                  "%s %s --expect-outcome %s: FAIL lines %s" % (
                      name, " ".join(extra), other, fl))


@test()
def expect_no_duplicates(ctx):
    for name in ("deferred_then_delivered.jsonl", "two_messages.jsonl",
                 "ttl_deferred.jsonl", "hang_data_end.jsonl"):
        sf_report(ctx, ["--expect-no-duplicates", fixture(name)])
    out, _ = sf_report(ctx, ["--expect-no-duplicates",
                             fixture("drop_then_retry.jsonl")], rc=1)
    check(any("<dup.1@sender.test>" in l for l in fail_lines(out)),
          "the FAIL line does not name the Message-ID: %s" % fail_lines(out))


@test()
def expect_all_together(ctx):
    f = fixture("deferred_then_delivered.jsonl")
    sf_report(ctx, ["--expect-attempts", "3", "--expect-min-interval", "5m",
                    "--expect-max-interval", "15m", "--expect-outcome",
                    "delivered", "--expect-no-duplicates", "--quiet", "1m",
                    "--profile", "postfix-default", f])
    out, _ = sf_report(ctx, ["--expect-attempts", ">=4",
                             "--expect-max-interval", "6m",
                             "--expect-outcome", "gave-up", f], rc=1)
    check(len(fail_lines(out)) == 3, "FAIL lines %s" % fail_lines(out))
    check(out.startswith("MESSAGE 1 "), "the timeline is printed before the "
          "FAIL lines: %s" % short(out, 200))


@test()
def expect_with_json_fails_on_stderr(ctx):
    f = fixture("drop_then_retry.jsonl")
    out, err = sf_report(ctx, ["--json", "--expect-no-duplicates", f], rc=1)
    try:
        j = json.loads(out)
    except ValueError:
        raise Fail("stdout is not JSON when an expectation fails: %s" %
                   short(out, 300))
    check(one_message(j)["duplicate"] is True, "duplicate flag")
    check(fail_lines(err) and "<dup.1@sender.test>" in err and
          not fail_lines(out), "FAIL lines belong on stderr: out %s err %s" %
          (fail_lines(out), short(err, 300)))


@test()
def empty_log(ctx):
    f = ctx.write("empty.jsonl", open(fixture("ttl_deferred.jsonl"))
                  .readline())                  # the start event only
    out, _ = sf_report(ctx, [f])
    check(out.strip() == "no delivery attempts in the log", "out %r" % out)
    j = sf_json(ctx, [f])
    check(j["messages"] == [] and j["connections"] == [] and
          j["bad_lines"] == 0, "json %s" % j)
    out, _ = sf_report(ctx, ["--expect-outcome", "delivered", f], rc=1)
    check("FAIL no message attempts in the log to check" in out.splitlines(),
          "out %s" % short(out, 300))
    sf_report(ctx, ["--expect-attempts", "0", ctx.write("nothing.jsonl", "")],
              rc=1)


@test()
def usage_errors(ctx):
    f = fixture("ttl_deferred.jsonl")
    bad = (["--bogus", f], ["-x", f], ["--quiet", "10x", f],
           ["--quiet", "soon", f], ["--quiet", "-5s", f], ["--quiet", "", f],
           ["--expect-min-interval", "soon", f],
           ["--expect-max-interval", "1 minute", f],
           ["--profile", "sendmail-default", f], ["--profile", "", f],
           ["--expect-outcome", "bounced", f], ["--expect-outcome", "", f],
           ["--expect-attempts", "abc", f], ["--expect-attempts", "3-1", f],
           ["--expect-attempts", "", f], ["--now", "yesterday", f],
           ["--now", "2026-11-30", f], [], ["--json"], [f, f],
           ["--quiet"])
    for args in bad:
        rc, out, err = sf_rc(ctx, args)
        check(rc == 2, "report %s: exit %d, want 2; out %s err %s" % (
            shown(args), rc, short(out, 200), short(err, 200)))
        check("usage: smtpfault report" in err, "report %s: no usage on "
              "stderr: %s" % (shown(args), short(err, 200)))
        check(not fail_lines(out), "report %s printed %s" % (shown(args),
                                                             fail_lines(out)))
    missing = ctx.path("no-such-events.jsonl")
    rc, out, err = sf_rc(ctx, [missing])
    check(rc == 2 and "no-such-events.jsonl" in err, "missing file: exit %d "
          "err %s" % (rc, short(err, 200)))
    rc, out, err = sf_rc(ctx, ["--expect-outcome", "delivered", missing])
    check(rc == 2, "missing file with expectations: exit %d" % rc)
    rc, out, err = sf_rc(ctx, [ctx.tmp])
    check(rc == 2, "a directory: exit %d, want 2 (out %s err %s)" % (
        rc, short(out, 100), short(err, 100)))
    rc, out, err = sf_rc(ctx, ["-h"])
    check(rc == 0 and "usage: smtpfault report" in out, "-h: exit %d out %s"
          % (rc, short(out, 100)))


@test()
def profile_postfix_default(ctx):
    p = "postfix-default"
    profile_case(ctx, p, "pf-fits", [300, 600, 1200, 2400, 4000, 4000], True)
    profile_case(ctx, p, "pf-bounds", [240, 4600], True)
    profile_case(ctx, p, "pf-short", [300, 60, 1200], False,
                 "interval 2 is 60 s, shorter than 240 s")
    profile_case(ctx, p, "pf-long", [300, 600, 5000], False,
                 "interval 3 is 5000 s, longer than 4600 s")
    profile_case(ctx, p, "pf-lifetime-ok", [4000] * 108, True)
    profile_case(ctx, p, "pf-lifetime", [4000] * 120, False,
                 "retried for 480000 s, past the 432000 s lifetime")


@test()
def profile_exim_default(ctx):
    p = "exim-default"
    sched = [900] * 8 + [3600, 5400, 8100, 12150, 18225, 21600, 21600]
    profile_case(ctx, p, "ex-fits", sched, True)
    profile_case(ctx, p, "ex-short", [900, 600], False,
                 "interval 2 is 600 s, shorter than 720 s")
    profile_case(ctx, p, "ex-postfix", [300, 600], False,
                 "interval 1 is 300 s, shorter than 720 s")
    profile_case(ctx, p, "ex-long", [900, 32400], False,
                 "interval 2 is 32400 s, longer than 28800 s")
    profile_case(ctx, p, "ex-lifetime", [21600] * 17, False,
                 "retried for 367200 s, past the 345600 s lifetime")


@test()
def profile_exchange_online(ctx):
    p = "exchange-online"
    profile_case(ctx, p, "eo-fits", [300, 600, 900, 1800, 3600, 3600], True)
    profile_case(ctx, p, "eo-fast", [5, 10, 20, 40], True)
    profile_case(ctx, p, "eo-early", [1200, 600], False,
                 "early interval 1 is 1200 s, longer than 960 s")
    profile_case(ctx, p, "eo-early3", [600, 600, 1000], False,
                 "early interval 3 is 1000 s, longer than 960 s")
    profile_case(ctx, p, "eo-late-ok", [600, 600, 600, 1000], True)
    profile_case(ctx, p, "eo-long", [300, 600, 900, 4200], False,
                 "interval 4 is 4200 s, longer than 3900 s")
    profile_case(ctx, p, "eo-lifetime-ok", [900, 900, 900] + [3600] * 24,
                 True)
    profile_case(ctx, p, "eo-lifetime", [900, 900, 900] + [3600] * 26, False,
                 "past the 86400 s lifetime")


@test()
def profile_on_fixture(ctx):
    # 300.4 s then 600.5 s: Postfix-like, not Exim (15 min at least)
    f = fixture("deferred_then_delivered.jsonl")
    for p, fits in (("postfix-default", True), ("exim-default", False),
                    ("exchange-online", True)):
        m = one_message(sf_json(ctx, ["--profile", p, f]))
        check(m["profile"]["fits"] is fits, "%s: %s" % (p, m["profile"]))
        # a profile only describes; it is no expectation
        sf_report(ctx, ["--profile", p, f])
    m = one_message(sf_json(ctx, [f]))
    check("profile" not in m, "profile without --profile: %s" %
          m.get("profile"))


@test()
def stdin_dash(ctx):
    f = fixture("deferred_then_delivered.jsonl")
    with open(f, "rb") as r:
        data = r.read()
    want, _ = sf_report(ctx, [f])
    got, _ = sf_report(ctx, ["-"], stdin=data)
    check(got == want, "stdin output differs: %s" % short(got, 300))
    j = sf_json(ctx, ["-"], stdin=data)
    check(one_message(j)["outcome"] == "delivered", "json %s" % summary(j))
    sf_report(ctx, ["--expect-attempts", "3", "-"], stdin=data)
    sf_report(ctx, ["--expect-attempts", "4", "-"], stdin=data, rc=1)
    with open(fixture("malformed.jsonl"), "rb") as r:
        j = sf_json(ctx, ["-"], stdin=r.read())
    check(j["bad_lines"] == 6, "stdin bad_lines %s" % j["bad_lines"])


# ----------------------------------------------- bugs found in report.c

@test()
def bug_split_keeps_envelopes_apart(ctx):
    # <post.42@lists.test> went to bob and to carol in two transactions,
    # each envelope also carries another message.  split_by_msgid() looks
    # for the new group of a Message-ID among all new groups, whatever
    # their envelope: carol's copy lands in bob's group, which is then
    # flagged DUPLICATE, and carol's message disappears.
    f = fixture("bug_split_envelopes.jsonl")
    j = sf_json(ctx, [f])
    got = sorted((m["from"], tuple(m["rcpts"]), m["message_id"],
                  len(m["attempts"]), m["duplicate"])
                 for m in j["messages"])
    want = sorted([
        ("owner@lists.test", ("bob@example.test",), "<digest.41@lists.test>",
         1, False),
        ("owner@lists.test", ("bob@example.test",), "<post.42@lists.test>",
         1, False),
        ("owner@lists.test", ("carol@example.test",),
         "<welcome.7@lists.test>", 1, False),
        ("owner@lists.test", ("carol@example.test",), "<post.42@lists.test>",
         1, False)])
    check(got == want, "messages %s, want %s" % (got, want))
    sf_report(ctx, ["--expect-no-duplicates", f])


@test()
def bug_message_without_id_not_duplicate(ctx):
    # two different messages on one envelope, the first without a
    # Message-ID header: the group takes the second one's ID and counts
    # both stored copies as two copies of it
    f = fixture("bug_no_message_id.jsonl")
    j = sf_json(ctx, [f])
    dup = [m for m in j["messages"] if m["duplicate"]]
    check(not dup, "flagged duplicate: %s" % summary(j))
    sf_report(ctx, ["--expect-no-duplicates", f])


@test()
def bug_rule_of_previous_transaction(ctx):
    # one session, two transactions: the first deferred by rule
    # mailbox-full, the second accepted without any rule.  The accepted
    # attempt is shown "[rule mailbox-full]": the session's last rule, not
    # the rule that produced its reply (docs/lab-4.4.7.md, "Reading the
    # timeline")
    f = fixture("bug_rule_next_transaction.jsonl")
    j = sf_json(ctx, [f])
    by = {tuple(m["rcpts"]): m for m in j["messages"]}
    check(set(by) == {("full@example.test",), ("fine@example.test",)},
          "messages %s" % summary(j))
    a = by[("full@example.test",)]["attempts"][0]
    check(a["rule"] == "mailbox-full", "deferred attempt rule %r" %
          a["rule"])
    a = by[("fine@example.test",)]["attempts"][0]
    check(a["result"] == "accepted" and a["rule"] is None,
          "accepted attempt shows rule %r" % a["rule"])


@test()
def bug_starttls_refused_is_a_connection_attempt(ctx):
    # tls-unavailable: STARTTLS answered 454, the sender (which requires
    # TLS) quits and retries later.  Both sessions failed before MAIL, but
    # conn_finish() drops every session that got a 220 banner and ended
    # with QUIT, so the report shows nothing ("no delivery attempts") and
    # any --expect-* fails with "no message attempts in the log"
    f = fixture("bug_starttls_refused.jsonl")
    j = sf_json(ctx, [f])
    at = [a for c in j["connections"] for a in c["attempts"]]
    check(len(at) == 2 and all(a["hook"] == "starttls" for a in at),
          "want 2 connection attempts ending at starttls: %s" % summary(j))
    sf_report(ctx, ["--expect-attempts", "2", f])


# ================================================================ real runs

def stop_and_report(srv):
    srv.stop()
    check(os.path.exists(srv.events_file), "no events file")
    return srv.events_file


@test(timeout=30)
def real_fail_then_accept(ctx):
    srv = ctx.server(scenario_arg("fail-then-accept"))
    msg = body("fta")
    for n in range(1, 5):
        s = srv.smtp()
        s.connect("127.0.0.1", srv.port)
        try:
            refused = s.sendmail("a@example.com", ["b@example.com"], msg)
            check(n == 4 and not refused, "attempt %d accepted (%s)" % (
                n, refused))
        except smtplib.SMTPRecipientsRefused as e:
            code, text = e.recipients["b@example.com"]
            check(n < 4 and code == 451 and
                  ("attempt %d of 3" % n).encode() in text,
                  "attempt %d: %s %r" % (n, code, text))
        s.quit()
        time.sleep(0.25)
    srv.wait_new(1)
    ev = stop_and_report(srv)
    sf_report(ctx, ["--expect-outcome", "delivered", "--expect-attempts", "4",
                    "--expect-min-interval", "0.2s", "--expect-max-interval",
                    "%ds" % T(5), "--expect-no-duplicates", ev])
    m = one_message(sf_json(ctx, [ev]))
    check(atts(m) == [("rcpt", 451, "deferred")] * 3 +
          [("data_end", 250, "accepted")], "attempts %s" % atts(m))
    a = m["attempts"]
    check([x["rule"] for x in a] == ["first-three-deferred"] * 3 + [None],
          "rules %s" % [x["rule"] for x in a])
    check(all(("attempt %d of 3" % (i + 1)) in a[i]["reply"]
              for i in range(3)) and
          a[3]["reply"].startswith("2.0.0 Ok: queued as "),
          "replies %s" % [x["reply"] for x in a])
    check(len({x["session"] for x in a}) == 4 and
          all(x["client"] == "127.0.0.1" for x in a), "sessions %s" %
          [(x["session"], x["client"]) for x in a])
    check(m["message_id"] == "<fta@client.test>" and m["outcome"] ==
          "delivered" and m["accepted"] == 1 and m["duplicate"] is False and
          m["from"] == "a@example.com" and m["rcpts"] == ["b@example.com"],
          "message %s" % summary({"messages": [m]}))
    check(len(m["intervals"]) == 3 and
          all(0.2 <= iv < T(5) for iv in m["intervals"]),
          "intervals %s" % m["intervals"])
    out, _ = sf_report(ctx, ["--expect-attempts", "3", ev], rc=1)
    check(fail_lines(out) == ["FAIL message 1 (a@example.com -> "
                              "b@example.com): 4 attempts, expected 3 to 3"],
          "FAIL lines %s" % fail_lines(out))


@test(timeout=30)
def real_ttl_expired_gave_up(ctx):
    srv = ctx.server(scenario_arg("ttl-expired"))
    msg = body("ttl")
    for n in range(1, 4):
        s = srv.smtp()
        s.connect("127.0.0.1", srv.port)
        try:
            s.sendmail("a@example.com", ["late@example.com"], msg)
            raise Fail("attempt %d accepted" % n)
        except smtplib.SMTPRecipientsRefused as e:
            code, text = e.recipients["late@example.com"]
            check(code == 451 and ("(attempt %d)" % n).encode() in text,
                  "attempt %d: %s %r" % (n, code, text))
        s.quit()
        time.sleep(0.1)
    srv.wait_event(event="close", count=3)
    time.sleep(1.4)             # the sender "gave up": stop 1.4 s later
    ev = stop_and_report(srv)
    sf_report(ctx, ["--quiet", "1s", "--expect-outcome", "gave-up",
                    "--expect-attempts", "3", ev])
    m = one_message(sf_json(ctx, ["--quiet", "1s", ev]))
    check(m["outcome"] == "gave-up" and
          atts(m) == [("rcpt", 451, "deferred")] * 3, "message %s" %
          summary({"messages": [m]}))
    check(all(("(attempt %d)" % (i + 1)) in a["reply"] and
              a["rule"] == "defer-forever"
              for i, a in enumerate(m["attempts"])), "attempts %s" %
          [(a["reply"], a["rule"]) for a in m["attempts"]])
    check(m["message_id"] is None and m["accepted"] == 0, "message_id %r "
          "accepted %s (no attempt reached DATA)" % (m["message_id"],
                                                     m["accepted"]))
    m = one_message(sf_json(ctx, [ev]))
    check(m["outcome"] == "deferred", "default --quiet: outcome %s" %
          m["outcome"])
    out, _ = sf_report(ctx, ["--quiet", "1h", "--expect-outcome", "gave-up",
                             ev], rc=1)
    check(len(fail_lines(out)) == 1 and "outcome deferred, expected gave-up"
          in out, "FAIL lines %s" % fail_lines(out))


@test(timeout=30)
def real_duplicate_maker(ctx):
    srv = ctx.server(scenario_arg("duplicate-maker"))
    msg = body("dup")
    s = srv.smtp()
    s.connect("127.0.0.1", srv.port)
    try:
        s.sendmail("a@example.com", ["b@example.com"], msg)
        raise Fail("first attempt got an answer to its final dot")
    except smtplib.SMTPServerDisconnected:
        pass
    srv.wait_event(event="close")
    time.sleep(0.2)
    s = srv.smtp()
    s.connect("127.0.0.1", srv.port)
    check(not s.sendmail("a@example.com", ["b@example.com"], msg),
          "retry refused")
    s.quit()
    srv.wait_new(2)
    ev = stop_and_report(srv)
    out, _ = sf_report(ctx, ["--expect-no-duplicates", ev], rc=1)
    fl = fail_lines(out)
    check(len(fl) == 1 and "<dup@client.test>" in fl[0], "FAIL lines %s" %
          fl)
    sf_report(ctx, ["--expect-outcome", "delivered", "--expect-attempts", "2",
                    ev])
    m = one_message(sf_json(ctx, [ev]))
    check(atts(m) == [("data_end", None, "unanswered"),
                      ("data_end", 250, "accepted")], "attempts %s" % atts(m))
    check(m["duplicate"] is True and m["accepted"] == 2 and
          m["message_id"] == "<dup@client.test>", "message %s" %
          summary({"messages": [m]}))
    check(m["attempts"][0]["rule"] == "drop-first-reply", "rule %r" %
          m["attempts"][0]["rule"])


@test(timeout=30)
def real_pipelined_rcpt_refused(ctx):
    srv = ctx.server(scenario_arg("not-accepting-rcpt"))
    c = srv.connect()
    lines = c.ehlo()
    check(any(b"PIPELINING" in l for l in lines), "no PIPELINING: %s" % lines)
    # one write, as a pipelining client sends it
    c.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
           b"DATA\r\n")
    c.expect_reply(b"250 ")
    c.expect_reply(b"451 4.3.0 <b@example.com>: Temporary local problem")
    c.expect_reply(b"503 ")
    c.cmd("QUIT")
    c.expect_reply(b"221 ")
    srv.wait_event(event="close")
    ev = stop_and_report(srv)
    m = one_message(sf_json(ctx, [ev]))
    check(atts(m) == [("rcpt", 451, "deferred")], "attempts %s (the 503 to "
          "the pipelined DATA is not the answer)" % atts(m))
    check(m["attempts"][0]["reply"].startswith("4.3.0 <b@example.com>: "
                                               "Temporary local problem") and
          m["attempts"][0]["rule"] == "rcpt-tempfail", "attempt %s" %
          m["attempts"][0])
    out, _ = sf_report(ctx, ["--expect-outcome", "deferred", ev])
    check("503" not in out, "the 503 shows: %s" % short(out, 400))


@test(timeout=30)
def real_network_timeout(ctx):
    srv = ctx.server(scenario_arg("network-timeout"))
    s = srv.smtp(timeout=1)
    s.connect("127.0.0.1", srv.port)
    try:
        s.sendmail("a@example.com", ["b@example.com"], body("nt"))
        raise Fail("the final dot was answered")
    except (smtplib.SMTPServerDisconnected, socket.timeout, OSError):
        pass
    s.close()
    srv.wait_event(event="close", timeout=5)
    ev = stop_and_report(srv)
    m = one_message(sf_json(ctx, [ev]))
    check(atts(m) == [("data_end", None, "lost")], "attempts %s" % atts(m))
    a = m["attempts"][0]
    check(a["rule"] == "stall-after-dot" and a["reply"] == "client_gone",
          "attempt %s" % a)
    check(m["message_id"] == "<nt@client.test>" and m["accepted"] == 0,
          "message %s" % summary({"messages": [m]}))


@test(timeout=30)
def real_destination_offline(ctx):
    srv = ctx.server(scenario_arg("destination-offline"))
    for n in range(2):
        c = srv.connect(banner=False)
        time.sleep(0.2)
        c.close()
        srv.wait_event(event="close", count=n + 1)
    time.sleep(0.8)
    ev = stop_and_report(srv)
    sf_report(ctx, ["--quiet", "0.5s", "--expect-attempts", "2",
                    "--expect-outcome", "gave-up", ev])
    j = sf_json(ctx, ["--quiet", "0.5s", ev])
    check(j["messages"] == [] and len(j["connections"]) == 1, "groups %s" %
          summary(j))
    c = j["connections"][0]
    check(c["client"] == "127.0.0.1" and c["outcome"] == "gave-up" and
          atts(c) == [("connect", None, "lost")] * 2, "connections %s" %
          summary(j))
    check(all(a["rule"] == "no-banner" and a["reply"].startswith("closed: ")
              for a in c["attempts"]), "attempts %s" % c["attempts"])
    out, _ = sf_report(ctx, ["--expect-outcome", "gave-up", ev], rc=1)
    check(fail_lines(out) == ["FAIL connections 1 (from 127.0.0.1): outcome "
                              "deferred, expected gave-up"],
          "default --quiet: FAIL lines %s" % fail_lines(out))


@test(timeout=30)
def real_restart(ctx):
    # a transaction hangs at the final dot, the server is killed (no close
    # event), a new server appends to the same events file and the retry
    # is accepted in its session 00000001 again
    one = ctx.server(scenario_arg("network-timeout"))
    ev = one.events_file
    c = one.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<a@example.com>")
    c.expect_reply(b"250 ")
    c.cmd("RCPT TO:<b@example.com>")
    c.expect_reply(b"250 ")
    c.cmd("DATA")
    c.expect_reply(b"354 ")
    c.send(body("restart") + b".\r\n")
    one.wait_event(event="fault", hook="data_end")
    one.expect_exit = True
    one.signal(signal.SIGKILL)
    one.proc.wait(timeout=T(5))
    c.close()
    two = ctx.server(scenario_arg("accept-all"), events=ev)
    s = two.smtp()
    s.connect("127.0.0.1", two.port)
    check(not s.sendmail("a@example.com", ["b@example.com"], body("restart")),
          "retry refused")
    s.quit()
    two.wait_event(event="close")
    two.stop()
    with open(ev) as f:
        starts = [l for l in f if '"event":"start"' in l]
    check(len(starts) == 2, "%d start events in the shared file" %
          len(starts))
    m = one_message(sf_json(ctx, [ev]))
    check(atts(m) == [("data_end", None, "lost"),
                      ("data_end", 250, "accepted")], "attempts %s" % atts(m))
    a = m["attempts"]
    check([x["session"] for x in a] == ["00000001", "00000001"],
          "sessions %s" % [x["session"] for x in a])
    check(a[0]["reply"] == "server restart", "reply %r" % a[0]["reply"])
    check(m["outcome"] == "delivered" and m["accepted"] == 1 and
          m["message_id"] == "<restart@client.test>", "message %s" %
          summary({"messages": [m]}))


# ================================================================== runner

if __name__ == "__main__":
    # the real runs first, so that they overlap with the many short ones
    sys.exit(H.main(sys.argv, "report", "report_test", "sf-rep",
                    heavy=lambda name: name.startswith("real_"),
                    ctx_class=Ctx))
