#!/usr/bin/env python3
"""
control_test.py - integration tests for smtpfault's control API and /metrics

USAGE   python3 tests/integration/control_test.py build/smtpfault [FILTER]

        Every test starts its own smtpfault with --listen 127.0.0.1:0
        --control 127.0.0.1:0 --port-file F (lines "smtp 127.0.0.1:P" and
        "control 127.0.0.1:Q"), --events and --capture in a temp dir, talks
        to the API with urllib, raw sockets and curl (when `curl` is on the
        PATH; otherwise those checks are skipped with a note), drives SMTP
        with smtplib and raw sockets, and stops the server with SIGTERM.
        Endpoints under test: docs/api.md.

        One line per test, "ok NAME" or "FAIL NAME: why", then exactly one
        line "control: N passed, N failed"; exit 1 if any failed.  FILTER
        selects tests whose name contains it (or matches it as a shell glob
        when it has * ? or [).

        After every passing test the server must still be alive, answer an
        SMTP banner and GET /v1/status, exit 0 within 10 s of SIGTERM, show
        no sanitizer report on stderr and leave no smtpfault-api-*.ini in
        its TMPDIR.

ENV     SMTPFAULT_JOBS  tests run at once (default 4)
        SMTPFAULT_SLOW  multiply every timeout by this factor (default 1)
        SMTPFAULT_KEEP  keep the temp dirs of failed tests (path printed)
        SMTPFAULT_TIMES print each test's duration

Python standard library only (curl optional).  The harness (Ctx,
Server, Client, runner) is in sfharness.py beside this file; the control
API parts of Ctx and Server are below.
"""

import collections
import json
import math
import os
import random
import re
import shutil
import smtplib
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import sfharness as H  # noqa: E402
from sfharness import (  # noqa: E402
    HOST, SLOW, Fail, T, body, check, poll, rcpt_reply, scenario_arg, short,
    test)

CURL = shutil.which("curl")
# urllib must never go through an http_proxy from the environment
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# ------------------------------------------------------------------- client

class Client(H.Client):
    CHECK_MIXED_CODES = False
    EARLY_RESET_OK = False


# ------------------------------------------------------------------- server

def shipped_name(name):
    """What PUT {"name": ...} should get for a shipped scenario: the same
    lookup as -s, so the name when the binary finds it, else the path."""
    return scenario_arg(name)


class Resp:
    def __init__(self, status, headers, body, what):
        self.status = status
        self.headers = headers
        self.body = body
        self.what = what

    @property
    def ctype(self):
        return (self.headers.get("Content-Type") or "") if self.headers \
            else ""

    def json(self):
        check(self.ctype.startswith("application/json"),
              "%s: Content-Type %r, body %s" % (self.what, self.ctype,
                                                short(self.body, 200)))
        try:
            return json.loads(self.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise Fail("%s: body is not JSON (%s): %s" % (
                self.what, e, short(self.body, 300)))


class Server(H.Server):
    """One smtpfault process with its control API."""

    CLIENT = Client

    def __init__(self, ctx, scenario=None, conf=None, args=(), token=None,
                 events=True, capture=True, seed=None):
        self.token = token
        self.seed = seed
        self.cport = None
        super().__init__(ctx, scenario=scenario, conf=conf, args=args,
                         events=None if events else False, capture=capture)
        self.tmpdir = os.path.join(self.dir, "tmp")
        os.makedirs(self.tmpdir)

    def listen_args(self):
        a = [] if self.seed is None else ["--seed", str(self.seed)]
        a += ["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0",
              "--port-file", self.port_file,
              "--events", self.events_file or "",
              "--hostname", HOST]
        if self.maildir:
            a += ["--capture", self.maildir]
        return a

    def env(self):
        env = dict(os.environ)
        env["TMPDIR"] = self.tmpdir     # where PUT scenario texts go
        return env

    def parse_ports(self, t):
        m = re.match(r"smtp 127\.0\.0\.1:(\d+)\ncontrol 127\.0\.0\.1:(\d+)\n"
                     r"\Z", t)
        check(m, "bad port file %r" % t)
        self.port, self.cport = int(m.group(1)), int(m.group(2))
        check(0 < self.port < 65536 and 0 < self.cport < 65536 and
              self.port != self.cport, "bad ports in %r" % t)

    def still_serving(self):
        """End-of-test probe: SMTP and the API both answer."""
        if self.proc is None or self.expect_exit:
            return None
        if not self.alive():
            return "server died during the test (exit %s); stderr: %s" % (
                self.proc.returncode, short(self.stderr(), 400))
        c = Client("127.0.0.1", self.port, timeout=5)
        try:
            c.expect_reply(b"220 ")
            c.cmd("QUIT")
            c.expect_reply(b"221")
        finally:
            c.close()
        r = self.api("GET", "/v1/status")
        if r.status != 200:
            return "GET /v1/status at the end: %d" % r.status
        return None

    def end_checks(self):
        left = [f for f in os.listdir(self.tmpdir)
                if f.startswith("smtpfault-api-")]
        if left:
            return "PUT scenario files left in TMPDIR: %s" % left
        return None

    # -- HTTP
    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.cport, path)

    def api(self, method, path, body=None, token=None, headers=None,
            timeout=10):
        """One request; never raises on an HTTP status.  token: None =
        the server's token, "" = no Authorization header."""
        if isinstance(body, str):
            body = body.encode("utf-8")
        h = dict(headers or {})
        tok = self.token if token is None else token
        if tok:
            h["Authorization"] = "Bearer " + tok
        what = "%s %s" % (method, path)
        req = urllib.request.Request(self.url(path), data=body,
                                     method=method, headers=h)
        try:
            with OPENER.open(req, timeout=T(timeout)) as r:
                return Resp(r.status, r.headers, r.read(), what)
        except urllib.error.HTTPError as e:
            try:
                b = e.read()
            finally:
                e.close()
            return Resp(e.code, e.headers, b, what)
        except (urllib.error.URLError, OSError) as e:
            raise Fail("%s: %s" % (what, e))

    def j(self, method, path, body=None, expect=200, **kw):
        """A request that must answer `expect` with a JSON body."""
        r = self.api(method, path, body, **kw)
        check(r.status == expect, "%s %s: status %d, expected %d: %s" % (
            method, path, r.status, expect, short(r.body, 400)))
        return r.json()

    def error(self, method, path, status, body=None, **kw):
        """A request that must fail with status and {"error": "..."}."""
        r = self.api(method, path, body, **kw)
        check(r.status == status, "%s %s: status %d, expected %d: %s" % (
            method, path, r.status, status, short(r.body, 300)))
        o = r.json()
        check(isinstance(o, dict) and isinstance(o.get("error"), str) and
              o["error"], "%s %s: error body %s" % (method, path, o))
        return o

    def status(self):
        return self.j("GET", "/v1/status")

    def put_scenario(self, body, expect=200):
        if isinstance(body, dict):
            body = json.dumps(body)
        return self.j("PUT", "/v1/scenario", body, expect=expect)

    def ring(self, since=0):
        """Every event the ring holds after since, paging by 1000."""
        out = []
        while True:
            o = self.j("GET", "/v1/events?since=%d&limit=1000" % since)
            out += o["events"]
            if not o["events"]:
                return out
            since = o["last"]

    # -- clients
    def smtp(self, timeout=10, helo="client.test"):
        s = smtplib.SMTP(local_hostname=helo, timeout=T(timeout))
        self.ctx.track(H.Closer(s))
        s.connect("127.0.0.1", self.port)
        return s

    # -- events
    def event_lines(self):
        """The events file as {seq: raw line}."""
        out = {}
        with open(self.events_file, "rb") as f:
            for raw in f.read().split(b"\n"):
                if raw:
                    out[json.loads(raw.decode())["seq"]] = raw.decode()
        return out

    def synced(self, timeout=5):
        """Wait until the events file holds everything the ring has;
        returns the newest seq."""
        want = self.last_seq()
        ok = poll(lambda: self.events() and
                  self.events()[-1]["seq"] >= want, T(timeout))
        check(ok, "events file stops at seq %s, the ring at %s" % (
            self.events()[-1]["seq"] if self.events() else None, want))
        return want

    def last_seq(self):
        """The newest seq in the ring (pages forward from 0)."""
        since = 0
        while True:
            o = self.j("GET", "/v1/events?since=%d&limit=1000" % since)
            if not o["events"]:
                return since
            since = o["last"]


class Ctx(H.Ctx):
    SERVER = Server

    def curl(self, srv, path, *args, token=None, timeout=10, ok_rc=(0,)):
        """curl against the control port: (HTTP status, body bytes), or
        None when curl is not installed (the caller skips the check)."""
        if not CURL:
            return None
        out = self.path("curl-%d.out" % random.randrange(1 << 30))
        argv = [CURL, "-sS", "--noproxy", "*", "--max-time",
                str(T(timeout)), "-o", out, "-w", "%{http_code}"]
        tok = srv.token if token is None else token
        if tok:
            argv += ["-H", "Authorization: Bearer " + tok]
        argv += list(args) + ["http://127.0.0.1:%d%s" % (srv.cport, path)]
        r = self.run(argv, timeout=timeout + 10)
        check(r.returncode in ok_rc, "curl %s exit %d: %s" % (
            path, r.returncode, short(r.stderr, 300)))
        try:
            with open(out, "rb") as f:
                body = f.read()
        except FileNotFoundError:
            body = b""
        try:
            code = int(r.stdout.decode().strip() or 0)
        except ValueError:
            raise Fail("curl -w gave %r" % r.stdout)
        return code, body


def deliver(srv, tag, frm="a@example.com", rcpts=("b@example.com",),
            extra=b""):
    """One whole session with one message that must be accepted."""
    c = srv.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<%s>" % frm)
    c.expect_reply(b"250 ")
    for r in rcpts:
        c.cmd("RCPT TO:<%s>" % r)
        c.expect_reply(b"250 ")
    c.cmd("DATA")
    c.expect_reply(b"354")
    c.send(body(tag, extra=extra) + b".\r\n")
    c.expect_reply(b"250 2.0.0 Ok: queued as ")
    c.cmd("QUIT")
    c.expect_reply(b"221")
    c.close()


# ------------------------------------------------------ event stream (SSE)

class SSE:
    """A raw-socket Server-Sent Events reader (HTTP/1.1, chunked)."""

    def __init__(self, srv, path="/v1/events/stream", timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", srv.cport),
                                             timeout=T(timeout))
        srv.ctx.track(self)
        self.closed = False
        req = "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" \
              "Accept: text/event-stream\r\n" % path
        if srv.token:
            req += "Authorization: Bearer %s\r\n" % srv.token
        self.sock.sendall((req + "\r\n").encode())
        self.raw = b""
        self.text = b""
        self.eof = False
        end = time.monotonic() + T(timeout)
        while b"\r\n\r\n" not in self.raw:
            check(time.monotonic() < end and self._recv(end),
                  "no response head from %s: %s" % (path, short(self.raw)))
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
        check(m, "bad status line %r" % lines[0])
        self.status = int(m.group(1))
        self.headers = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.chunked = "chunked" in self.headers.get("transfer-encoding",
                                                     "").lower()
        self._decode()

    def _recv(self, end):
        left = end - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(max(left, 0.001))
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            return False
        except OSError:
            d = b""
        if not d:
            self.eof = True
            return False
        self.raw += d
        return True

    def _decode(self):
        if not self.chunked:
            self.text += self.raw
            self.raw = b""
            return
        while True:
            i = self.raw.find(b"\r\n")
            if i < 0:
                return
            size = int(self.raw[:i].split(b";")[0], 16)
            if size == 0:
                self.eof = True
                self.raw = b""
                return
            if len(self.raw) < i + 2 + size + 2:
                return
            self.text += self.raw[i + 2:i + 2 + size]
            self.raw = self.raw[i + 2 + size + 2:]

    def next(self, timeout=5):
        """The next event as (id, data text), or None on timeout/EOF."""
        end = time.monotonic() + T(timeout)
        while b"\n\n" not in self.text:
            if self.eof or not self._recv(end):
                if b"\n\n" in self.text:
                    break
                return None
            self._decode()
        block, self.text = self.text.split(b"\n\n", 1)
        ev = {}
        for ln in block.decode("utf-8").split("\n"):
            k, _, v = ln.partition(":")
            ev.setdefault(k, []).append(v[1:] if v.startswith(" ") else v)
        check(set(ev) == {"id", "data"} and len(ev["id"]) == 1 and
              len(ev["data"]) == 1, "SSE block not id+data: %r" % block)
        return int(ev["id"][0]), ev["data"][0]

    def until(self, pred, timeout=5):
        """Events up to and including the first one pred accepts."""
        out = []
        end = time.monotonic() + T(timeout)
        while True:
            left = end - time.monotonic()
            e = self.next(left / SLOW) if left > 0 else None
            check(e, "stream ended or went quiet; got %d events, last %s" %
                  (len(out), out[-1] if out else None))
            out.append(e)
            if pred(json.loads(e[1])):
                return out

    def close(self):
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass


# ----------------------------------------------------- Prometheus text

PROM_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
PROM_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\\n]|'
                        r'\\[\\"n])*)"\s*(,|$)')
PROM_TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def prom_value(s):
    if s in ("NaN", "+Inf", "-Inf", "Inf"):
        return float(s.replace("Inf", "inf"))
    check(re.match(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$", s),
          "sample value %r is not a number" % s)
    return float(s)


def parse_prom(text):
    """Parse the Prometheus text format (0.0.4).  Returns (types,
    samples): {family: type}, {(name, ((label, value), ...)): float}.
    Raises Fail on anything a Prometheus server would reject."""
    check(text.endswith("\n"), "metrics text does not end with a newline")
    types, helps, samples, seen = {}, {}, {}, set()
    for n, ln in enumerate(text.split("\n")[:-1], 1):
        where = "line %d %r" % (n, ln)
        if ln.startswith("#"):
            parts = ln.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                check(re.match("^%s$" % PROM_NAME, name), "bad name: " +
                      where)
                if parts[1] == "HELP":
                    check(name not in helps, "second HELP: " + where)
                    helps[name] = parts[3] if len(parts) > 3 else ""
                else:
                    check(len(parts) == 4 and parts[3] in PROM_TYPES,
                          "bad TYPE: " + where)
                    check(name not in types, "second TYPE: " + where)
                    check(name not in seen, "TYPE after samples: " + where)
                    types[name] = parts[3]
            continue
        check(ln.strip(), "blank line inside the metrics: " + where)
        m = re.match(r"^(%s)(\{(.*)\})?[ \t]+(\S+)([ \t]+-?\d+)?$" %
                     PROM_NAME, ln)
        check(m, "malformed sample: " + where)
        name, labels = m.group(1), []
        if m.group(2):
            rest = m.group(3)
            while rest.strip():
                lm = PROM_LABEL.match(rest)
                check(lm, "malformed labels: " + where)
                labels.append((lm.group(1), lm.group(2)))
                rest = rest[lm.end():]
        check(len({k for k, _ in labels}) == len(labels),
              "repeated label: " + where)
        fam = name
        if fam not in types:
            for suf in ("_bucket", "_sum", "_count"):
                if name.endswith(suf) and types.get(name[:-len(suf)]) in (
                        "histogram", "summary"):
                    fam = name[:-len(suf)]
        check(fam in types, "sample without a TYPE: " + where)
        seen.add(fam)
        key = (name, tuple(sorted(labels)))
        check(key not in samples, "duplicate sample: " + where)
        v = prom_value(m.group(4))
        if types[fam] == "counter":
            check(v >= 0 and not math.isnan(v), "negative counter: " + where)
        samples[key] = v
    for name in types:
        check(name in helps, "TYPE without HELP: %s" % name)
    return types, samples


def metric(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def series(samples, name, label):
    """{label value: sample} of one metric with one label."""
    return {dict(k[1])[label]: v for k, v in samples.items()
            if k[0] == name}


# ==================================================================== tests

@test()
def status_fields(ctx):
    srv = ctx.server(scenario_arg("accept-all"), seed=4242)
    ver = ctx.run([H.BIN, "--version"]).stdout.decode().split()[-1]
    st = srv.status()
    want = {"version", "uptime", "seed", "scenario", "rules", "listeners",
            "sessions", "connections", "messages", "bytes", "state"}
    check(want <= set(st), "status lacks %s: %s" % (want - set(st), st))
    check(st["version"] == ver, "version %r, --version says %r" % (
        st["version"], ver))
    check(st["seed"] == 4242, "seed %r" % st["seed"])
    start = srv.wait_event(event="start")[0]
    check(start["seed"] == 4242 and start["scenario"] == st["scenario"],
          "start event %s vs status %s" % (start, st))
    check(str(st["scenario"]).endswith("accept-all.ini") and
          st["rules"] == 0, "scenario %r rules %r" % (st["scenario"],
                                                      st["rules"]))
    check(st["listeners"] == [{"kind": "smtp", "addr": "127.0.0.1:%d" %
                               srv.port}], "listeners %s" % st["listeners"])
    check(st["state"] == "memory", "state %r" % st["state"])
    check((st["sessions"], st["connections"], st["messages"],
           st["bytes"]) == (0, 0, 0, 0), "counters at start: %s" % st)
    check(isinstance(st["uptime"], float) and 0 <= st["uptime"] < T(30),
          "uptime %r" % st["uptime"])
    # a session open now is counted
    c = srv.connect()
    st2 = poll(lambda: (lambda s: s if s["sessions"] == 1 else None)(
        srv.status()), T(3))
    check(st2 and st2["connections"] == 1, "with one client: %s" % (
        st2 or srv.status()))
    check(st2["uptime"] >= st["uptime"], "uptime went back: %s -> %s" % (
        st["uptime"], st2["uptime"]))
    c.cmd("QUIT")
    c.expect_reply(b"221")
    c.close()
    deliver(srv, "st1")
    ev = srv.wait_event(event="message")[0]
    srv.wait_event(event="close", count=2)
    st3 = poll(lambda: (lambda s: s if s["sessions"] == 0 else None)(
        srv.status()), T(3))
    check(st3 and st3["connections"] == 2 and st3["messages"] == 1 and
          st3["bytes"] == ev["size"], "after a message of %d octets: %s" % (
              ev["size"], st3 or srv.status()))
    r = ctx.curl(srv, "/v1/status")
    if r is not None:
        check(r[0] == 200 and json.loads(r[1])["seed"] == 4242,
              "curl /v1/status: %s %s" % (r[0], short(r[1])))


@test()
def scenario_switch_same_connection(ctx):
    srv = ctx.server(scenario_arg("accept-all"))
    s = srv.smtp()
    s.ehlo()
    check(s.mail("a@example.com")[0] == 250, "MAIL under accept-all")
    check(s.rcpt("b@example.com")[0] == 250, "RCPT under accept-all")
    o = srv.put_scenario({"name": shipped_name("ttl-expired")})
    check(str(o.get("scenario")).endswith("ttl-expired.ini") and
          [r["name"] for r in o["rules"]] == ["defer-forever"],
          "PUT answer %s" % short(o, 300))
    check(srv.status()["scenario"] == o["scenario"], "status scenario")
    # the same connection: the next transaction sees the new scenario
    check(s.rset()[0] == 250, "RSET")
    check(s.mail("a@example.com")[0] == 250, "MAIL under ttl-expired")
    code, text = s.rcpt("b@example.com")
    check(code == 451 and text.startswith(b"4.7.0 <b@example.com>: "
                                          b"Temporary failure"),
          "RCPT under ttl-expired: %d %r" % (code, text))
    # and back (with curl when there is one)
    r = ctx.curl(srv, "/v1/scenario", "-X", "PUT", "--data-binary",
                 json.dumps({"name": shipped_name("accept-all")}))
    if r is None:
        srv.put_scenario({"name": shipped_name("accept-all")})
    else:
        check(r[0] == 200 and json.loads(r[1])["rules"] == [],
              "curl PUT: %s %s" % (r[0], short(r[1])))
    check(s.rset()[0] == 250, "RSET")
    check(not s.sendmail("a@example.com", ["b@example.com"],
                         body("back")), "refused after switching back")
    s.quit()
    srv.wait_new(1)
    ev = srv.wait_event(event="reload", count=2)
    check([(e.get("ok"), e.get("via")) for e in ev] ==
          [(True, "api"), (True, "api")], "reload events %s" % ev)
    check(str(ev[0]["scenario"]).endswith("ttl-expired.ini") and
          str(ev[1]["scenario"]).endswith("accept-all.ini"),
          "reload events %s" % ev)
    faults = srv.find(event="fault")
    check(len(faults) == 1 and faults[0]["rule"] == "defer-forever",
          "fault events %s" % faults)


RULE_INI = """; made by control_test.py
[rule api-block]
hook  = mail
from  = blocked@example.com
reply = 550 5.7.1 blocked by the api rule
"""


@test()
def put_ini_text_with_rule(ctx):
    srv = ctx.server(scenario_arg("accept-all"))
    o = srv.put_scenario(RULE_INI)
    check(o["text"] == RULE_INI, "text %r" % o["text"])
    check(len(o["rules"]) == 1, "rules %s" % o["rules"])
    r = o["rules"][0]
    want = {"name": "api-block", "enabled": True, "hooks": ["mail"],
            "action": "reply", "fired": 0,
            "reply": "550 5.7.1 blocked by the api rule",
            "file": o["scenario"]}
    check(all(r.get(k) == v for k, v in want.items()) and
          isinstance(r.get("line"), int) and 1 <= r["line"] <= 5,
          "rule %s, expected %s" % (r, want))
    got = srv.j("GET", "/v1/scenario")
    check(got == o, "GET /v1/scenario %s differs from the PUT answer %s" % (
        short(got, 300), short(o, 300)))
    st = srv.status()
    check(st["scenario"] == o["scenario"] and st["rules"] == 1,
          "status %s" % st)
    c = srv.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<blocked@example.com>")
    c.expect_reply(b"550 5.7.1 blocked by the api rule")
    c.cmd("MAIL FROM:<fine@example.com>")
    c.expect_reply(b"250 ")
    c.cmd("QUIT")
    c.expect_reply(b"221")
    ev = srv.wait_event(event="fault")
    check(len(ev) == 1 and ev[0]["rule"] == "api-block" and
          ev[0]["hook"] == "mail", "fault events %s" % ev)
    check(srv.j("GET", "/v1/scenario")["rules"][0]["fired"] == 1,
          "fired not counted")
    # the same text from a file, with curl
    path = ctx.write("api.ini", RULE_INI.replace("api-block",
                                                      "api-block-2"))
    r = ctx.curl(srv, "/v1/scenario", "-X", "PUT", "--data-binary",
                 "@" + path, "-H", "Content-Type: text/plain")
    if r is not None:
        check(r[0] == 200 and [x["name"] for x in json.loads(r[1])["rules"]]
              == ["api-block-2"], "curl PUT file: %s %s" % (r[0],
                                                          short(r[1])))
    # {"name": ...} takes shipped names only: a path would let the API
    # read (and echo in errors) any file the server can read
    r = srv.api("PUT", "/v1/scenario", json.dumps({"name": path}))
    check(r.status == 400, "PUT by path: %s %s" % (r.status, short(r.body)))


BAD_INI = """; line 1
[rule good]
hook  = mail
reply = 550 5.7.1 never loaded
bogus = 1
[rule bad-reply]
hook  = rcpt
reply = 999 nope
"""


def scn_key(o):
    """What identifies a loaded scenario (not the fired counters)."""
    return (o["scenario"], o["text"], [(r["name"], r["enabled"], r["reply"],
                                        r["line"]) for r in o["rules"]])


@test()
def bad_scenario_rejected(ctx):
    srv = ctx.server(scenario_arg("ttl-expired"))
    before = srv.j("GET", "/v1/scenario")
    o = srv.j("PUT", "/v1/scenario", BAD_INI, expect=400)
    check(isinstance(o.get("error"), str) and isinstance(o.get("errors"),
                                                         list),
          "400 body %s" % o)
    errs = o["errors"]
    check(len(errs) == 2, "errors %s" % errs)
    m = [re.match(r"^(\S+\.ini):(\d+): (.*)$", e) for e in errs]
    check(all(m), "errors not FILE:LINE: %s" % errs)
    check([int(x.group(2)) for x in m] == [5, 8], "lines %s" % errs)
    # the same text through --check-config gives the same messages
    path = ctx.write("bad.ini", BAD_INI)
    r = ctx.run([H.BIN, "--check-config", "-s", path])
    check(r.returncode == 2, "--check-config exit %d" % r.returncode)
    cli = [ln[len("smtpfault: "):] for ln in
           r.stderr.decode().splitlines() if ln.startswith("smtpfault: " +
                                                            path)]
    check([c.replace(path, "F") for c in cli] ==
          [e.replace(x.group(1), "F") for e, x in zip(errs, m)],
          "API errors %s, --check-config %s" % (errs, cli))
    # nothing changed
    check(scn_key(srv.j("GET", "/v1/scenario")) == scn_key(before),
          "scenario changed")
    code, text = rcpt_reply(srv, "b@example.com")
    check(code == 451, "RCPT after a refused PUT: %d %s" % (code, text))
    ev = srv.wait_event(event="reload")
    check(ev[0].get("ok") is False, "reload event %s" % ev)
    # the refused text is not left behind
    check(not os.path.exists(m[0].group(1)), "temp file %s kept" %
          m[0].group(1))
    # a name that does not exist
    o = srv.j("PUT", "/v1/scenario", '{"name": "no-such-scenario"}',
              expect=400)
    check(any("no-such-scenario" in e for e in o.get("errors", [])),
          "errors %s" % o)
    check(scn_key(srv.j("GET", "/v1/scenario")) == scn_key(before),
          "scenario changed")
    r = ctx.curl(srv, "/v1/scenario", "-X", "PUT", "--data-binary",
                 "@" + path)
    if r is not None:
        check(r[0] == 400 and len(json.loads(r[1])["errors"]) == 2,
              "curl: %s %s" % (r[0], short(r[1])))


@test()
def malformed_json_400(ctx):
    srv = ctx.server(scenario_arg("ttl-expired"))
    before = srv.j("GET", "/v1/scenario")
    for b in ('{"name": ', '{"name": 5}', '{"nope": "accept-all"}',
              '{"name": "accept-all"', '{}'):
        srv.error("PUT", "/v1/scenario", 400, b)
        check(srv.j("GET", "/v1/scenario") == before,
              "scenario changed by %r" % b)
    check(rcpt_reply(srv, "b@example.com")[0] == 451, "ttl-expired gone")


RULES_INI = """[rule deny-mail]
hook  = mail
from  = deny@example.com
reply = 550 5.7.1 denied by deny-mail

[rule later-rcpt]
hook    = rcpt
to      = later@example.com
enabled = no
reply   = 451 4.7.1 later, says later-rcpt
"""


@test()
def rule_enable_disable(ctx):
    srv = ctx.server(scenario_arg("accept-all"))
    srv.put_scenario(RULES_INI)
    rules = {r["name"]: r for r in srv.j("GET", "/v1/scenario")["rules"]}
    check(rules["deny-mail"]["enabled"] is True and
          rules["later-rcpt"]["enabled"] is False, "rules %s" % rules)
    c = srv.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<deny@example.com>")
    c.expect_reply(b"550 5.7.1 denied by deny-mail")
    o = srv.j("POST", "/v1/rules/deny-mail/disable")
    check(o.get("name") == "deny-mail" and o.get("enabled") is False and
          o.get("fired") == 1, "disable answer %s" % o)
    ev = srv.wait_event(event="rule")
    check(ev[-1].get("rule") == "deny-mail" and ev[-1].get("enabled") is
          False, "rule event %s" % ev)
    c.cmd("MAIL FROM:<deny@example.com>")
    c.expect_reply(b"250 ")
    c.cmd("RSET")
    c.expect_reply(b"250 ")
    # twice is fine
    check(srv.j("POST", "/v1/rules/deny-mail/disable")["enabled"] is False,
          "second disable")
    r = ctx.curl(srv, "/v1/rules/deny-mail/enable", "-X", "POST")
    if r is None:
        srv.j("POST", "/v1/rules/deny-mail/enable")
    else:
        check(r[0] == 200 and json.loads(r[1])["enabled"] is True,
              "curl enable: %s %s" % (r[0], short(r[1])))
    c.cmd("MAIL FROM:<deny@example.com>")
    c.expect_reply(b"550 5.7.1 denied by deny-mail")
    # a rule that starts disabled
    c.cmd("MAIL FROM:<a@example.com>")
    c.expect_reply(b"250 ")
    c.cmd("RCPT TO:<later@example.com>")
    c.expect_reply(b"250 ")
    o = srv.j("POST", "/v1/rules/later-rcpt/enable")
    check(o["enabled"] is True and o["fired"] == 0, "enable %s" % o)
    c.cmd("RCPT TO:<later@example.com>")
    c.expect_reply(b"451 4.7.1 later, says later-rcpt")
    c.cmd("QUIT")
    c.expect_reply(b"221")
    rules = {r["name"]: r for r in srv.j("GET", "/v1/scenario")["rules"]}
    check(rules["deny-mail"]["enabled"] and rules["deny-mail"]["fired"] == 2
          and rules["later-rcpt"]["enabled"] and
          rules["later-rcpt"]["fired"] == 1, "rules now %s" % rules)
    check([(e["rule"], e["enabled"]) for e in srv.find(event="rule")] ==
          [("deny-mail", False), ("deny-mail", False), ("deny-mail", True),
           ("later-rcpt", True)], "rule events %s" % srv.find(event="rule"))
    srv.error("POST", "/v1/rules/no-such-rule/enable", 404)
    srv.error("POST", "/v1/rules/deny-mail/toggle", 404)
    srv.error("POST", "/v1/rules//enable", 404)


GREY_INI = """[greylist]
delay          = 1s
retry_window   = 10m
awl_interval   = 0
auto_whitelist = 5

[rule greylist]
action = greylist
"""


def gl_rcpt(c, rcpt, expect):
    c.cmd("RCPT TO:<%s>" % rcpt)
    return c.expect_reply(expect)


@test()
def greylist_list_and_delete(ctx):
    srv = ctx.server(ctx.write("grey.ini", GREY_INI))
    t0 = time.time()
    c = srv.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<a@example.com>")
    c.expect_reply(b"250 ")
    gl_rcpt(c, "b@example.com", b"451 4.7.1 ")
    gl_rcpt(c, "c@example.com", b"451 4.7.1 ")
    ev = srv.wait_event(event="greylist", count=2)
    kb, kc = ev[0]["triplet"], ev[1]["triplet"]
    check(kb.endswith("|b@example.com") and kc.endswith("|c@example.com"),
          "greylist events %s" % ev)
    g = srv.j("GET", "/v1/greylist")
    check(set(g) == {"triplets", "clients"} and g["clients"] == [],
          "greylist %s" % g)
    tr = {t["triplet"]: t for t in g["triplets"]}
    check(set(tr) == {kb, kc}, "triplets %s, events say %s" % (
        sorted(tr), [kb, kc]))
    for t in tr.values():
        check(t["attempts"] == 1 and t["passed"] is False and
              t["passed_at"] is None and
              t0 - 5 <= t["first_seen"] <= t["last_seen"] <= time.time() + 5,
              "new triplet %s" % t)
    # an early retry
    gl_rcpt(c, "b@example.com", b"451 4.7.1 ")
    srv.wait_event(event="greylist", result="early_retry")
    tr = {t["triplet"]: t for t in srv.j("GET", "/v1/greylist")["triplets"]}
    check(tr[kb]["attempts"] == 2 and tr[kb]["last_seen"] >=
          tr[kb]["first_seen"], "after an early retry %s" % tr[kb])
    # c passes after the delay: a passed triplet and a client record
    time.sleep(1.2)
    gl_rcpt(c, "c@example.com", b"250 ")
    srv.wait_event(event="greylist", result="passed")
    g = srv.j("GET", "/v1/greylist")
    tr = {t["triplet"]: t for t in g["triplets"]}
    check(tr[kc]["passed"] is True and isinstance(tr[kc]["passed_at"], float)
          and tr[kc]["passed_at"] >= tr[kc]["first_seen"],
          "passed triplet %s" % tr[kc])
    check(len(g["clients"]) == 1 and g["clients"][0]["passes"] == 1 and
          kc.startswith(g["clients"][0]["client"]),
          "clients %s" % g["clients"])
    # DELETE one triplet (the key as shown, URL-encoded)
    o = srv.j("DELETE", "/v1/greylist?triplet=" +
              urllib.parse.quote(kb, safe=""))
    check(o == {"deleted": 1}, "DELETE one: %s" % o)
    g = srv.j("GET", "/v1/greylist")
    check([t["triplet"] for t in g["triplets"]] == [kc] and
          len(g["clients"]) == 1, "after DELETE of %s: %s" % (kb, g))
    gl_rcpt(c, "b@example.com", b"451 4.7.1 ")
    ev = srv.wait_event(event="greylist", count=5)
    check(ev[4]["result"] == "new" and ev[4]["triplet"] == kb,
          "b after its DELETE: %s" % ev[4])
    # DELETE all: triplets and clients
    if CURL:
        r = ctx.curl(srv, "/v1/greylist", "-X", "DELETE")
        check(r[0] == 200, "curl DELETE: %s %s" % r)
        o = json.loads(r[1])
    else:
        o = srv.j("DELETE", "/v1/greylist")
    check(o == {"deleted": 3}, "DELETE all (2 triplets, 1 client): %s" % o)
    check(srv.j("GET", "/v1/greylist") == {"triplets": [], "clients": []},
          "greylist after DELETE all")
    gl_rcpt(c, "c@example.com", b"451 4.7.1 ")
    ev = srv.wait_event(event="greylist", count=6)
    check(ev[5]["result"] == "new", "c after DELETE all: %s" % ev[5])
    c.cmd("QUIT")
    c.expect_reply(b"221")


@test()
def greylist_delete_unknown_triplet(ctx):
    srv = ctx.server(ctx.write("grey.ini", GREY_INI))
    c = srv.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<a@example.com>")
    c.expect_reply(b"250 ")
    gl_rcpt(c, "b@example.com", b"451 4.7.1 ")
    c.cmd("QUIT")
    c.expect_reply(b"221")
    key = "10.9.9.0/24|nobody@example.org|nobody@example.net"
    o = srv.j("DELETE", "/v1/greylist?triplet=" +
              urllib.parse.quote(key, safe=""))
    check(len(srv.j("GET", "/v1/greylist")["triplets"]) == 1,
          "the known triplet went too")
    check(o == {"deleted": 0}, "DELETE of a triplet that is not there "
          "answers %s, expected {\"deleted\": 0}" % o)


@test()
def events_since_limit(ctx):
    srv = ctx.server(scenario_arg("accept-all"))
    deliver(srv, "ev1")
    c = srv.connect()
    c.ehlo()
    for _ in range(60):
        c.cmd("NOOP")
        c.expect_reply(b"250 ")
    c.cmd("QUIT")
    c.expect_reply(b"221")
    srv.wait_event(event="close", count=2)
    last = srv.synced()
    fevents = srv.events()
    check(last == fevents[-1]["seq"] and last > 130, "last %d, file %d" % (
        last, fevents[-1]["seq"]))
    check([e["seq"] for e in fevents] == list(range(1, last + 1)),
          "file seqs not 1..N")
    # everything, in one page
    o = srv.j("GET", "/v1/events?since=0&limit=1000")
    check(o["events"] == fevents and o["last"] == last,
          "ring differs from the file (%d vs %d events)" % (
              len(o["events"]), len(fevents)))
    # the default page is 100
    o = srv.j("GET", "/v1/events")
    check([e["seq"] for e in o["events"]] == list(range(1, 101)) and
          o["last"] == 100, "default page: %s" % [
              e["seq"] for e in o["events"]][:5])
    # since/limit
    o = srv.j("GET", "/v1/events?since=3&limit=5")
    check(o["events"] == fevents[3:8] and o["last"] == 8,
          "since=3&limit=5: %s" % [e["seq"] for e in o["events"]])
    # paging by 7 gives the file again
    got, since = [], 0
    while True:
        o = srv.j("GET", "/v1/events?since=%d&limit=7" % since)
        if not o["events"]:
            check(o["last"] == since, "empty page last %s" % o["last"])
            break
        check(len(o["events"]) <= 7, "page larger than limit")
        got += o["events"]
        since = o["last"]
    check(got == fevents, "paged events differ from the file")
    o = srv.j("GET", "/v1/events?since=%d" % (last + 50))
    check(o == {"events": [], "last": last + 50}, "past the end: %s" % o)
    o = srv.j("GET", "/v1/events?limit=1000&since=%d" % (last - 1))
    check(o["events"] == fevents[-1:], "the last one")
    for q in ("limit=0", "limit=1001", "limit=x", "since=-1", "since=abc",
              "since="):
        srv.error("GET", "/v1/events?" + q, 400)
    r = ctx.curl(srv, "/v1/events?since=0&limit=2")
    if r is not None:
        check(r[0] == 200 and json.loads(r[1])["events"] == fevents[:2],
              "curl events: %s %s" % (r[0], short(r[1])))


@test()
def events_ring_keeps_the_newest(ctx):
    srv = ctx.server(scenario_arg("accept-all"),
                     conf="[control]\nevents_ring = 100\n")
    c = srv.connect()
    c.ehlo()
    for _ in range(80):
        c.cmd("NOOP")
        c.expect_reply(b"250 ")
    c.cmd("QUIT")
    c.expect_reply(b"221")
    srv.wait_event(event="close")
    poll(lambda: srv.ring()[-1]["seq"] == srv.events()[-1]["seq"], T(3))
    fevents = srv.events()
    ring = srv.ring()
    check(len(fevents) > 150 and len(ring) == 100 and
          ring == fevents[-100:], "ring of 100: %d events, %s..%s; file %d"
          % (len(ring), ring[0]["seq"], ring[-1]["seq"], len(fevents)))
    o = srv.j("GET", "/v1/events?since=0&limit=5")
    check(o["events"] == fevents[-100:-95], "since=0 starts at the oldest "
          "kept: %s" % [e["seq"] for e in o["events"]])


@test()
def sse_stream(ctx):
    srv = ctx.server(scenario_arg("accept-all"))
    base = srv.last_seq()
    st = SSE(srv)
    check(st.status == 200 and st.headers.get("content-type", "")
          .startswith("text/event-stream"), "stream answer %d %s" % (
              st.status, st.headers))
    check(st.next(timeout=0.3) is None, "stream sent old events")
    deliver(srv, "sse1")
    got = st.until(lambda e: e["event"] == "close")
    lines = srv.event_lines()
    check([i for i, _ in got] == list(range(base + 1, base + 1 + len(got))),
          "ids %s, expected from %d" % ([i for i, _ in got][:5], base + 1))
    for i, d in got:
        check(lines.get(i) == d, "SSE id %d data %s, file %s" % (
            i, short(d), short(lines.get(i))))
        check(json.loads(d)["seq"] == i, "id %d seq %s" % (i, d))
    check(any(json.loads(d)["event"] == "message" for _, d in got),
          "no message event in the stream")
    st.close()
    # resume from the middle: the backlog comes at once, then new ones
    mid = got[len(got) // 2][0]
    last = got[-1][0]
    st2 = SSE(srv, "/v1/events/stream?since=%d" % mid)
    back = st2.until(lambda e: e["seq"] == last, timeout=3)
    check([i for i, _ in back] == list(range(mid + 1, last + 1)),
          "resumed ids %s" % [i for i, _ in back])
    check(all(lines[i] == d for i, d in back), "resumed data differs")
    c = srv.connect()
    c.cmd("QUIT")
    c.expect_reply(b"221")
    more = st2.until(lambda e: e["event"] == "close")
    check(more[0][0] == last + 1, "after the backlog: id %d" % more[0][0])
    # several streams at once get the same events
    st3 = SSE(srv, "/v1/events/stream?since=%d" % last)
    a = st3.until(lambda e: e["event"] == "close")
    check(a == more, "two streams differ")
    # curl, from the start
    r = ctx.curl(srv, "/v1/events/stream?since=0", "-N", timeout=1,
                 ok_rc=(0, 28))
    if r is not None:
        check(r[0] == 200 and r[1].startswith(b"id: 1\ndata: {") and
              b"\n\nid: 2\ndata: " in r[1], "curl stream: %s" %
              short(r[1], 200))


@test()
def sse_client_gone(ctx):
    srv = ctx.server(scenario_arg("accept-all"))
    for _ in range(5):
        s = SSE(srv)
        s.close()
    # wake the dead streams: the server must notice and go on
    deliver(srv, "gone1")
    deliver(srv, "gone2")
    st = SSE(srv)
    deliver(srv, "gone3")
    got = st.until(lambda e: e["event"] == "close")
    check(any(json.loads(d)["event"] == "message" for _, d in got),
          "live stream got %d events without the message" % len(got))
    srv.wait_new(3)


@test(timeout=40)
def sse_slots_freed_on_disconnect(ctx):
    """64 streams at most (503 past it); a stream client that goes away
    must give its slot back even when no event is written meanwhile."""
    srv = ctx.server(scenario_arg("accept-all"))
    streams = [SSE(srv) for _ in range(64)]
    check(all(s.status == 200 for s in streams), "64 streams: %s" % [
        s.status for s in streams])
    srv.error("GET", "/v1/events/stream", 503)
    for s in streams:
        s.close()

    def free_slot():
        s = SSE(srv)
        s.close()
        return s.status == 200
    # no SMTP traffic, no event: a quiet server, as in a lab at night
    check(poll(free_slot, T(10), interval=0.5), "64 stream clients left "
          "10 s ago and a new stream still gets 503 (their slots are only "
          "freed by the next event)")


def message_events(srv, n):
    return srv.wait_event(event="message", count=n)


@test()
def messages_list_raw_delete(ctx):
    srv = ctx.server(scenario_arg("accept-all"))
    deliver(srv, "m1")
    deliver(srv, "m2", frm="x@example.org",
            rcpts=("c@example.com", "d@example.net"))
    files = srv.wait_new(2)
    ev = message_events(srv, 2)
    lst = srv.j("GET", "/v1/messages")["messages"]
    check(sorted(m["id"] for m in lst) == sorted(os.path.basename(f)
                                                 for f in files),
          "ids %s, Maildir %s" % ([m["id"] for m in lst], files))
    byfile = {os.path.basename(e["file"]): e for e in ev}
    for m in lst:
        path = os.path.join(srv.maildir, "new", m["id"])
        sb = os.stat(path)
        e = byfile[m["id"]]
        check(m["size"] == sb.st_size and m["time"] == int(sb.st_mtime),
              "size/time %s vs %d/%d" % (m, sb.st_size, sb.st_mtime))
        check(m["to"] == e["rcpt"], "to %s, event rcpt %s" % (m["to"],
                                                              e["rcpt"]))
        check(m.get("from", "").strip("<>") == e["from"],
              "from %r, event %r" % (m.get("from"), e["from"]))
        tag = e["message_id"][1:].split("@")[0]
        check(m.get("message_id") == e["message_id"] and
              m.get("subject") == "test " + tag, "headers %s" % m)
        r = srv.api("GET", "/v1/messages/" + m["id"])
        with open(path, "rb") as f:
            raw = f.read()
        check(r.status == 200 and r.body == raw and
              r.ctype.startswith("message/rfc822"),
              "raw %s: %d %s %s" % (m["id"], r.status, r.ctype,
                                    short(r.body)))
    r = ctx.curl(srv, "/v1/messages/" + lst[0]["id"])
    if r is not None:
        with open(os.path.join(srv.maildir, "new", lst[0]["id"]),
                  "rb") as f:
            check(r == (200, f.read()), "curl raw: %s" % short(r))
    # a message an MUA moved to cur/ is still there
    mv = lst[0]["id"]
    os.rename(os.path.join(srv.maildir, "new", mv),
              os.path.join(srv.maildir, "cur", mv + ":2,S"))
    ids = sorted(m["id"] for m in srv.j("GET", "/v1/messages")["messages"])
    check(ids == sorted([mv + ":2,S", lst[1]["id"]]), "after a move to "
          "cur/: %s" % ids)
    check(srv.api("GET", "/v1/messages/" + urllib.parse.quote(
        mv + ":2,S")).status == 200, "raw of a cur/ message")
    srv.error("GET", "/v1/messages/1234.M1P1Q1.nosuch", 404)
    srv.error("GET", "/v1/messages/.hidden", 400)
    srv.error("GET", "/v1/messages/..%2F..%2Fevents.jsonl", 400)
    o = srv.j("DELETE", "/v1/messages")
    check(o == {"deleted": 2}, "DELETE %s" % o)
    check(not srv.new_files() and not srv.new_files("cur"),
          "Maildir not empty after DELETE")
    check(srv.j("GET", "/v1/messages") == {"messages": []}, "list after "
          "DELETE")
    check(srv.j("DELETE", "/v1/messages") == {"deleted": 0}, "DELETE again")
    deliver(srv, "m3")
    check(len(srv.j("GET", "/v1/messages")["messages"]) == 1,
          "capture after DELETE")


@test()
def messages_capture_off(ctx):
    srv = ctx.server(scenario_arg("accept-all"), capture=False)
    srv.error("GET", "/v1/messages", 404)
    srv.error("DELETE", "/v1/messages", 404)
    srv.error("GET", "/v1/messages/x", 404)


@test()
def messages_to_ignores_body(ctx):
    srv = ctx.server(scenario_arg("accept-all"))
    deliver(srv, "quoted", extra=b"> X-Smtpfault-Rcpt-To: <evil@x.test>\r\n"
            b"X-Smtpfault-Rcpt-To: <evil2@x.test>\r\n")
    srv.wait_new(1)
    m = srv.j("GET", "/v1/messages")["messages"]
    check(m[0]["to"] == ["b@example.com"], "\"to\" of a message whose body "
          "quotes X-Smtpfault-Rcpt-To: %s" % m[0]["to"])


def report_json(ctx, srv, *opts, path=None):
    r = ctx.run([H.BIN, "report", "--json"] + list(opts) +
                [path or srv.events_file])
    check(r.returncode == 0, "report exit %d: %s" % (r.returncode,
                                                     short(r.stderr, 300)))
    return json.loads(r.stdout.decode())


def timeline_traffic(srv):
    """A deferred attempt, then the same message delivered."""
    c = srv.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<a@example.com>")
    c.expect_reply(b"250 ")
    c.cmd("RCPT TO:<b@example.com>")
    c.expect_reply(b"451 4.7.0")
    c.cmd("QUIT")
    c.expect_reply(b"221")
    srv.put_scenario({"name": shipped_name("accept-all")})
    deliver(srv, "tl1")
    srv.wait_event(event="close", count=2)


@test()
def timeline_matches_report(ctx):
    srv = ctx.server(scenario_arg("ttl-expired"))
    timeline_traffic(srv)
    tl = srv.j("GET", "/v1/timeline")
    check(tl.get("messages") and tl.get("bad_lines") == 0,
          "timeline %s" % short(tl, 300))
    check(tl == report_json(ctx, srv), "GET /v1/timeline differs from "
          "report --json: %s" % short(tl, 300))
    q = "/v1/timeline?quiet=1s&profile=postfix-default"
    tl2 = srv.j("GET", q)
    check(tl2 == report_json(ctx, srv, "--quiet", "1s", "--profile",
                             "postfix-default"),
          "%s differs from the CLI: %s" % (q, short(tl2, 300)))
    r = ctx.curl(srv, "/v1/timeline?quiet=1s&profile=postfix-default")
    if r is not None:
        check(r[0] == 200 and json.loads(r[1]) == tl2, "curl timeline")
    srv.error("GET", "/v1/timeline?quiet=soon", 400)


@test()
def timeline_from_ring(ctx):
    srv = ctx.server(scenario_arg("ttl-expired"), events=False)
    timeline_traffic_ring(srv)
    ring = srv.ring()
    path = ctx.write("ring.jsonl", "".join(json.dumps(e) + "\n"
                                           for e in ring))
    tl = srv.j("GET", "/v1/timeline")
    check(tl.get("messages") and tl == report_json(ctx, srv, path=path),
          "timeline without an events file differs from report --json of "
          "the ring: %s" % short(tl, 300))


def timeline_traffic_ring(srv):
    c = srv.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<a@example.com>")
    c.expect_reply(b"250 ")
    c.cmd("RCPT TO:<b@example.com>")
    c.expect_reply(b"451 4.7.0")
    c.cmd("QUIT")
    c.expect_reply(b"221")
    srv.put_scenario({"name": shipped_name("accept-all")})
    deliver(srv, "tl1")
    check(poll(lambda: sum(e["event"] == "close" for e in srv.ring()) == 2,
               T(5)), "no 2 close events in the ring")


@test()
def timeline_mail_without_rcpt(ctx):
    """A transaction with a sender and no recipient yet, open or ended."""
    srv = ctx.server(scenario_arg("accept-all"))
    c = srv.connect()
    c.cmd("HELO client.test")
    c.expect_reply(b"250 ")
    c.cmd("MAIL FROM:<a@example.com>")
    c.expect_reply(b"250 ")
    c.cmd("QUIT")
    c.expect_reply(b"221")
    srv.wait_event(event="close")
    d = srv.connect()
    d.cmd("HELO client.test")
    d.expect_reply(b"250 ")
    d.cmd("MAIL FROM:<a@example.com>")
    d.expect_reply(b"250 ")
    tl = srv.j("GET", "/v1/timeline")       # d is still inside MAIL
    check(tl.get("bad_lines") == 0, "timeline %s" % short(tl, 300))
    check(tl == report_json(ctx, srv), "timeline differs from report")
    d.cmd("QUIT")
    d.expect_reply(b"221")


@test()
def timeline_unknown_profile(ctx):
    srv = ctx.server(scenario_arg("accept-all"))
    r = ctx.run([H.BIN, "report", "--json", "--profile", "no-such-profile",
                 srv.events_file])
    check(r.returncode == 2, "report --profile no-such-profile: exit %d" %
          r.returncode)
    srv.error("GET", "/v1/timeline?profile=no-such-profile", 400)


METRICS_INI = """[greylist]
delay        = 10s
awl_interval = 0

[rule deny]
hook  = mail
from  = deny@example.com
reply = 550 5.7.1 denied by test

[rule grey]
hook   = rcpt
to     = grey@example.com
action = greylist
"""


@test()
def metrics_prometheus(ctx):
    srv = ctx.server(ctx.write("metrics.ini", METRICS_INI))
    r = srv.api("GET", "/metrics")
    check(r.status == 200 and r.ctype.startswith("text/plain") and
          "version=0.0.4" in r.ctype, "GET /metrics: %d %r" % (r.status,
                                                              r.ctype))
    types, s0 = parse_prom(r.body.decode("utf-8"))
    want = {
        "smtpfault_connections_total": "counter",
        "smtpfault_connections_refused_total": "counter",
        "smtpfault_sessions_active": "gauge",
        "smtpfault_commands_total": "counter",
        "smtpfault_replies_total": "counter",
        "smtpfault_faults_total": "counter",
        "smtpfault_messages_accepted_total": "counter",
        "smtpfault_messages_refused_total": "counter",
        "smtpfault_bytes_accepted_total": "counter",
        "smtpfault_greylist_decisions_total": "counter",
        "smtpfault_state_entries": "gauge",
        "smtpfault_tls_handshakes_total": "counter",
        "smtpfault_tls_failures_total": "counter",
    }
    check(types == want, "metric families %s" % types)
    check(metric(s0, "smtpfault_connections_total") == 0 and
          metric(s0, "smtpfault_faults_total", rule="deny",
                 action="reply") == 0, "fresh counters")
    # A: one message
    c = srv.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<a@example.com>")
    c.expect_reply(b"250 ")
    c.cmd("RCPT TO:<b@example.com>")
    c.expect_reply(b"250 ")
    c.cmd("DATA")
    c.expect_reply(b"354")
    c.send(body("met1") + b".\r\n")
    c.expect_reply(b"250 ")
    c.cmd("QUIT")
    c.expect_reply(b"221")
    # B: a fault, an unknown command
    c = srv.connect()
    c.cmd("HELO client.test")
    c.expect_reply(b"250 ")
    c.cmd("MAIL FROM:<deny@example.com>")
    c.expect_reply(b"550 5.7.1 denied by test")
    c.cmd("NOOP")
    c.expect_reply(b"250 ")
    c.cmd("XYZZY")
    c.expect_reply(b"500 ")
    c.cmd("RSET")
    c.expect_reply(b"250 ")
    c.cmd("QUIT")
    c.expect_reply(b"221")
    # C: greylisted, then an early retry; left open for sessions_active
    c = srv.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<a@example.com>")
    c.expect_reply(b"250 ")
    c.cmd("RCPT TO:<grey@example.com>")
    c.expect_reply(b"451 4.7.1")
    c.cmd("RCPT TO:<grey@example.com>")
    c.expect_reply(b"451 4.7.1")
    srv.wait_event(event="close", count=2)
    _, s1 = parse_prom(srv.api("GET", "/metrics").body.decode())
    check(metric(s1, "smtpfault_sessions_active") == 1, "sessions_active "
          "with one open: %s" % metric(s1, "smtpfault_sessions_active"))
    c.cmd("QUIT")
    c.expect_reply(b"221")
    srv.wait_event(event="close", count=3)
    poll(lambda: srv.status()["sessions"] == 0, T(3))
    if CURL:
        code, raw = ctx.curl(srv, "/metrics")
        check(code == 200, "curl /metrics %d" % code)
        text = raw.decode()
    else:
        text = srv.api("GET", "/metrics").body.decode()
    _, s = parse_prom(text)
    ev = srv.events()
    msg = [e for e in ev if e["event"] == "message"]

    def eq(name, value, **labels):
        got = metric(s, name, **labels)
        check(got == value, "%s%s = %s, expected %s" % (
            name, labels or "", got, value))

    eq("smtpfault_connections_total", 3)
    eq("smtpfault_connections_refused_total", 0)
    eq("smtpfault_sessions_active", 0)
    eq("smtpfault_messages_accepted_total", 1)
    eq("smtpfault_messages_refused_total", 0)
    eq("smtpfault_bytes_accepted_total", msg[0]["size"])
    eq("smtpfault_tls_handshakes_total", 0)
    eq("smtpfault_tls_failures_total", 0)
    cmds = series(s, "smtpfault_commands_total", "verb")
    check(cmds == {"EHLO": 2, "HELO": 1, "MAIL": 3, "RCPT": 3, "DATA": 1,
                   "NOOP": 1, "RSET": 1, "QUIT": 3, "unknown": 1},
          "commands_total %s" % cmds)
    replies = series(s, "smtpfault_replies_total", "code")
    check(replies == {"220": 3, "250": 9, "354": 1, "221": 3, "550": 1,
                      "500": 1, "451": 2}, "replies_total %s" % replies)
    faults = {(dict(k[1])["rule"], dict(k[1])["action"]): v
              for k, v in s.items() if k[0] == "smtpfault_faults_total"}
    check(faults == {("deny", "reply"): 1, ("grey", "greylist"): 2},
          "faults_total %s" % faults)
    gl = series(s, "smtpfault_greylist_decisions_total", "result")
    check(gl == {"new": 1, "early_retry": 1, "passed": 0, "known": 0,
                 "whitelisted": 0}, "greylist_decisions_total %s" % gl)
    check(metric(s, "smtpfault_state_entries") >= 1, "state_entries %s" %
          metric(s, "smtpfault_state_entries"))
    # and the same numbers from the events
    evc = collections.Counter("unknown" if e["verb"] == "?" else e["verb"]
                              for e in ev if e["event"] == "command")
    check(dict(evc) == cmds, "command events %s" % dict(evc))
    evr = collections.Counter(str(e["code"]) for e in ev
                              if e["event"] == "reply")
    check(dict(evr) == replies, "reply events %s" % dict(evr))
    check(sum(e["event"] == "connect" for e in ev) == 3, "connect events")
    evf = collections.Counter((e["rule"], e["action"]) for e in ev
                              if e["event"] == "fault")
    check(dict(evf) == faults, "fault events %s" % dict(evf))
    # faults_total counts since the scenario was loaded
    with open(srv.argv[srv.argv.index("-s") + 1]) as f:
        srv.put_scenario(f.read())
    _, s2 = parse_prom(srv.api("GET", "/metrics").body.decode())
    check(metric(s2, "smtpfault_faults_total", rule="deny",
                 action="reply") == 0 and
          metric(s2, "smtpfault_connections_total") == 3,
          "after reloading the scenario")


def test_parse_prom_rejects():
    """The parser in this file must itself catch bad input."""
    bad = ["x 1\n", "# TYPE x counter\nx{a=\"1\"} one\n",
           "# HELP x h\n# TYPE x counter\nx{a=1} 1\n",
           "# HELP x h\n# TYPE x counter\nx 1\nx 2\n",
           "# HELP x h\n# TYPE x counter\nx 1",
           "# HELP x h\nx 1\n# TYPE x counter\n",
           "# HELP x h\n# TYPE x counter\nx -1\n",
           "# HELP x h\n# TYPE x countr\nx 1\n"]
    for b in bad:
        try:
            parse_prom(b)
        except Fail:
            continue
        raise Fail("parse_prom accepted %r" % b)
    parse_prom('# HELP x h\n# TYPE x counter\nx{a="q\\"",b="\\\\"} 1\n')


@test()
def metrics_parser_selftest(ctx):
    test_parse_prom_rejects()


TOKEN = "s3cret-t0ken"


@test()
def token_enforced(ctx):
    srv = ctx.server(scenario_arg("ttl-expired"),
                     conf="[control]\ntoken = %s\n" % TOKEN, token=TOKEN)
    before = srv.j("GET", "/v1/scenario")
    for m, p in (("GET", "/v1/status"), ("GET", "/metrics"),
                 ("GET", "/v1/events"), ("GET", "/v1/messages"),
                 ("GET", "/v1/no-such-thing"), ("DELETE", "/v1/greylist"),
                 ("POST", "/v1/rules/defer-forever/disable")):
        srv.error(m, p, 401, token="")
        srv.error(m, p, 401, token="wrong")
    srv.error("PUT", "/v1/scenario", 401, '{"name": "accept-all"}',
              token="")
    srv.error("GET", "/v1/status", 401, token="",
              headers={"Authorization": "Basic " + TOKEN})
    srv.error("GET", "/v1/status", 401, token="",
              headers={"Authorization": "Bearer " + TOKEN + "x"})
    srv.error("GET", "/v1/status", 401, token=TOKEN[:-1])
    check(srv.j("GET", "/v1/scenario") == before and
          srv.j("GET", "/v1/scenario")["rules"][0]["enabled"],
          "an unauthorised request changed something")
    check(srv.api("GET", "/metrics").status == 200, "/metrics with token")
    check(srv.status()["scenario"] == before["scenario"], "status")
    st = SSE(srv)           # carries the token
    check(st.status == 200, "stream with token: %d" % st.status)
    st.close()
    r = ctx.curl(srv, "/v1/status", token="")
    if r is not None:
        check(r[0] == 401, "curl without token: %d" % r[0])
        r = ctx.curl(srv, "/v1/status")
        check(r[0] == 200, "curl with token: %d %s" % r)
    # the token allows a non-loopback control address
    r = ctx.run([H.BIN, "--check-config", "-c", srv.conf_file, "--control",
                 "0.0.0.0:0"])
    check(r.returncode == 0, "--check-config with a token: %d %s" % (
        r.returncode, short(r.stderr, 300)))


@test()
def body_too_large_413(ctx):
    srv = ctx.server(scenario_arg("ttl-expired"),
                     conf="[control]\nmax_body = 1k\n")
    before = srv.j("GET", "/v1/scenario")
    big = RULE_INI + ";" + "x" * 2000 + "\n"
    srv.error("PUT", "/v1/scenario", 413, big)
    srv.error("PUT", "/v1/scenario", 413, "{\"name\": \"accept-all\"}" +
              " " * 1100)
    check(srv.j("GET", "/v1/scenario") == before, "scenario changed")
    # chunked, no Content-Length
    s = socket.create_connection(("127.0.0.1", srv.cport), timeout=T(5))
    ctx.track(s)
    req = b"PUT /v1/scenario HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" \
          b"Transfer-Encoding: chunked\r\n\r\n"
    for _ in range(4):
        req += b"200\r\n" + b";" * 0x200 + b"\r\n"
    s.sendall(req + b"0\r\n\r\n")
    resp = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        resp += d
    s.close()
    check(resp.startswith(b"HTTP/1.1 413"), "chunked 2 KiB: %s" %
          short(resp, 200))
    # just under the limit is fine
    ok = RULE_INI + ";" + "x" * (1000 - len(RULE_INI)) + "\n"
    check(len(ok) <= 1024, "test body %d" % len(ok))
    o = srv.put_scenario(ok)
    check(o["rules"][0]["name"] == "api-block", "PUT under the limit")
    r = ctx.curl(srv, "/v1/scenario", "-X", "PUT", "--data-binary", big)
    if r is not None:
        check(r[0] == 413 and "error" in json.loads(r[1]),
              "curl 413: %s %s" % r)


@test()
def errors_404_405(ctx):
    srv = ctx.server(scenario_arg("accept-all"))
    for p in ("/", "/nope", "/v1", "/v1/", "/v1/nope", "/v2/status",
              "/metrics/x", "/index.html"):
        srv.error("GET", p, 404)
    for m, p in (("POST", "/v1/status"), ("DELETE", "/v1/status"),
                 ("POST", "/v1/scenario"), ("DELETE", "/v1/scenario"),
                 ("PUT", "/v1/greylist"), ("POST", "/v1/greylist"),
                 ("POST", "/v1/events"), ("DELETE", "/v1/events"),
                 ("POST", "/v1/events/stream"), ("DELETE", "/v1/timeline"),
                 ("POST", "/metrics"), ("PUT", "/metrics"),
                 ("GET", "/v1/rules/x/enable"),
                 ("PUT", "/v1/rules/x/disable")):
        srv.error(m, p, 405)
    r = ctx.curl(srv, "/v1/nope")
    if r is not None:
        check(r[0] == 404 and "error" in json.loads(r[1]), "curl 404")
        r = ctx.curl(srv, "/v1/status", "-X", "DELETE")
        check(r[0] == 405 and "error" in json.loads(r[1]), "curl 405")


@test()
def errors_405_messages(ctx):
    srv = ctx.server(scenario_arg("accept-all"))
    deliver(srv, "m405")
    mid = os.path.basename(srv.wait_new(1)[0])
    for m, p in (("POST", "/v1/messages"), ("PUT", "/v1/messages"),
                 ("DELETE", "/v1/messages/" + mid),
                 ("PUT", "/v1/messages/" + mid)):
        srv.error(m, p, 405)
    check(len(srv.new_files()) == 1, "message gone")


@test()
def errors_404_unknown_subpaths(ctx):
    srv = ctx.server(scenario_arg("accept-all"))
    for p in ("/v1/scenarios", "/v1/statusx", "/v1/greylisting",
              "/v1/eventsx", "/v1/timelines"):
        srv.error("GET", p, 404)


GARBAGE = [
    b"\x00\x01\x02\xff" * 64 + b"\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET /v1/status\r\n\r\n",
    b"GET /v1/status HTTP/9.9\r\n\r\n",
    b"GET /v1/status HTTP/1.1\r\nX-Long: " + b"a" * 100000 + b"\r\n\r\n",
    b"GET /" + b"v" * 30000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v1/status HTTP/1.1\r\nHost: x\r\n",
    b"PUT /v1/scenario HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
    b"\r\n[rule half",
    b"PUT /v1/scenario HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"PUT /v1/scenario HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999"
    b"999999999999\r\n\r\nx",
    b"PUT /v1/scenario HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
    b"\r\n\r\nzz\r\n[rule x]\r\n0\r\n\r\n",
    b"PUT /v1/scenario HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
    b"\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x42" * 500,
    b"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n" * 40,
    b"GET /v1/events/stream HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v1/messages/%00%ff%2e%2e HTTP/1.1\r\nHost: x\r\n\r\n",
    b"DELETE /v1/greylist?triplet=%zz%00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v1/events?since=99999999999999999999999&limit=-1 HTTP/1.1\r\n"
    b"Host: x\r\n\r\n",
    b"POST /v1/rules/" + b"r" * 5000 + b"/enable HTTP/1.1\r\nHost: x\r\n"
    b"\r\n",
    b"GET /v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
    b"t" * 20000 + b"\r\n\r\n",
]


def garbage_send(port, data, rst=False, wait=0.3):
    s = socket.create_connection(("127.0.0.1", port), timeout=T(5))
    try:
        try:
            s.sendall(data)
        except OSError:
            pass            # the server may refuse the rest: fine
        end = time.monotonic() + T(wait)
        while time.monotonic() < end:
            s.settimeout(max(end - time.monotonic(), 0.01))
            try:
                if not s.recv(65536):
                    break
            except socket.timeout:
                break
            except OSError:
                break
        if rst:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         b"\x01\x00\x00\x00\x00\x00\x00\x00")
    finally:
        s.close()


@test(timeout=45)
def garbage_http(ctx):
    srv = ctx.server(scenario_arg("ttl-expired"))
    before = srv.j("GET", "/v1/scenario")
    rnd = random.Random(20261130)
    # idle connections must not block the others
    idle = [socket.create_connection(("127.0.0.1", srv.cport),
                                     timeout=T(5)) for _ in range(20)]
    for s in idle:
        ctx.track(s)
    for i, g in enumerate(GARBAGE):
        garbage_send(srv.cport, g, rst=i % 3 == 0)
        check(srv.alive(), "server died after garbage #%d %s" % (
            i, short(g, 60)))
    for i in range(30):
        garbage_send(srv.cport, bytes(rnd.randrange(256) for _ in
                                      range(rnd.randrange(1, 3000))),
                     rst=i % 2 == 0, wait=0.05)
    check(srv.alive(), "server died after random garbage")
    check(srv.j("GET", "/v1/scenario") == before, "garbage changed the "
          "scenario")
    check(srv.status()["scenario"] == before["scenario"], "status")
    check(rcpt_reply(srv, "b@example.com")[0] == 451, "SMTP after garbage")
    srv.put_scenario({"name": shipped_name("accept-all")})
    deliver(srv, "after-garbage")
    srv.wait_new(1)
    for s in idle:
        s.close()
    check(srv.api("GET", "/metrics").status == 200, "metrics at the end")


@test()
def check_config_non_loopback(ctx):
    for addr in ("0.0.0.0:0", "[::]:0", "192.0.2.1:8080"):
        r = ctx.run([H.BIN, "--check-config", "--control", addr])
        err = r.stderr.decode("utf-8", "replace")
        check(r.returncode == 2 and "[control] listen = %s: not a loopback "
              "address" % addr in err, "--control %s: exit %d %s" % (
                  addr, r.returncode, short(err, 300)))
    for addr in ("127.0.0.1:0", "[::1]:0", "127.0.0.2:0"):
        r = ctx.run([H.BIN, "--check-config", "--control", addr])
        check(r.returncode == 0, "--control %s: exit %d %s" % (
            addr, r.returncode, short(r.stderr, 300)))
    conf = ctx.write("c.ini", "[control]\nlisten = 0.0.0.0:0\n")
    r = ctx.run([H.BIN, "--check-config", "-c", conf])
    check(r.returncode == 2, "[control] listen in a file: exit %d" %
          r.returncode)
    # the server refuses to start with it, too (nothing is bound)
    pf = ctx.path("ports")
    r = ctx.run([H.BIN, "--listen", "127.0.0.1:0", "--control", "0.0.0.0:0",
                 "--port-file", pf, "--events", ""], timeout=10)
    check(r.returncode == 2 and not os.path.exists(pf),
          "start with a non-loopback control: exit %d" % r.returncode)


SIDE_INI = """[rule side]
hook  = rcpt
to    = *@blocked.test
reply = 550 5.7.1 side rule
"""


@test(timeout=45)
def smtp_served_throughout(ctx):
    srv = ctx.server(scenario_arg("accept-all"))
    side = ctx.write("side.ini", SIDE_INI)
    stop = threading.Event()
    res = {"ok": 0, "fail": []}

    def sender():
        n = 0
        while not stop.is_set():
            n += 1
            try:
                s = smtplib.SMTP("127.0.0.1", srv.port, timeout=T(10),
                                 local_hostname="bg.test")
                try:
                    s.sendmail("bg@example.com", ["b@example.com"],
                               body("bg%d" % n))
                    res["ok"] += 1
                finally:
                    s.close()
            except Exception as e:
                res["fail"].append("%d: %r" % (n, e))
    t = threading.Thread(target=sender, daemon=True)
    t.start()
    try:
        st = SSE(srv)
        for i in range(15):
            if i % 2 == 0:
                with open(side) as f:
                    srv.put_scenario(f.read())
            else:
                srv.put_scenario({"name": shipped_name("accept-all")})
            srv.status()
            parse_prom(srv.api("GET", "/metrics").body.decode())
            srv.j("GET", "/v1/events?limit=50")
            srv.j("GET", "/v1/messages")
            srv.j("GET", "/v1/greylist")
            srv.j("GET", "/v1/timeline")
            srv.api("GET", "/v1/nope")
            check(st.next(timeout=3) is not None, "stream went quiet")
            time.sleep(0.02)
    finally:
        stop.set()
        t.join(T(15))
    check(not res["fail"], "background SMTP failed: %s" % res["fail"][:3])
    check(res["ok"] >= 5, "only %d background messages" % res["ok"])
    srv.wait_new(res["ok"])
    check(len(srv.wait_event(event="message", count=res["ok"])) ==
          res["ok"], "message events")
    st.close()


@test()
def sigterm_with_api_clients(ctx):
    srv = ctx.server(scenario_arg("accept-all"))
    st = SSE(srv)
    half = socket.create_connection(("127.0.0.1", srv.cport), timeout=T(5))
    ctx.track(half)
    half.sendall(b"PUT /v1/scenario HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Length: 500\r\n\r\n[rule")
    c = srv.connect()
    c.cmd("NOOP")
    c.expect_reply(b"250 ")
    check(st.until(lambda e: e["event"] == "reply") is not None, "stream")
    t0 = time.monotonic()
    srv.stop()
    check(time.monotonic() - t0 < T(5), "SIGTERM took %.1fs" % (
        time.monotonic() - t0))
    ev = srv.events()
    check(ev and ev[-1]["event"] == "stop", "last event %s" % (
        ev[-1] if ev else None))


# ================================================================== runner

HEAVY = {"garbage_http", "smtp_served_throughout",
         "greylist_list_and_delete", "sse_stream"}


def curl_note():
    if not CURL:
        print("# note: curl not found; the curl checks are skipped")


if __name__ == "__main__":
    sys.exit(H.main(sys.argv, "control", "control_test", "sf-ctl",
                    heavy=HEAVY, ctx_class=Ctx, on_start=curl_note))
