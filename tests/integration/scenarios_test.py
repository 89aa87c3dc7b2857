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

Python standard library only.
"""

import collections
import email
import errno
import fnmatch
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(HERE, "scenarios")
SHIPPED = os.path.join(REPO, "conf", "scenarios")
SLOW = float(os.environ.get("SMTPFAULT_SLOW", "1") or 1)
JOBS = int(os.environ.get("SMTPFAULT_JOBS", "4") or 4)
BIN = None                      # set in main()
HOST = "mx.test"                # --hostname of every server
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                   "UndefinedBehaviorSanitizer", "Assertion", "PANIC")


class Fail(Exception):
    pass


class Skip(Exception):
    pass


def T(sec):
    """A timeout, scaled for slow machines."""
    return sec * SLOW


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def short(b, n=160):
    if isinstance(b, (bytes, bytearray)):
        r = repr(bytes(b))[2:-1]
    else:
        r = str(b)
    return r if len(r) <= n else r[:n] + "...(%d chars)" % len(r)


def poll(fn, timeout, interval=0.02):
    """Call fn until it returns a true value or timeout passes."""
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= end:
            return v
        time.sleep(interval)


def between(secs, lo, hi, what):
    check(lo <= secs < T(hi), "%s took %.2fs, expected %.1fs to %.1fs" % (
        what, secs, lo, T(hi)))


# ---------------------------------------------------------------- registry

TESTS = []          # (name, fn, timeout)


def test(timeout=30):
    def deco(fn):
        TESTS.append((fn.__name__, fn, timeout))
        return fn
    return deco


# ------------------------------------------------------------------ context

def kill_proc(p):
    if p.poll() is None:
        try:
            os.kill(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


LIVE = set()        # contexts of running tests, for an interrupted run
LIVE_LOCK = threading.Lock()


class Ctx:
    """Everything one test started, so that it can all be cleaned up."""

    def __init__(self, name):
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix="sf-scn-%s-" % name[:40])
        self.servers = []
        self.clients = []
        self.procs = []
        self.lock = threading.Lock()
        self.aborted = False

    def path(self, *p):
        return os.path.join(self.tmp, *p)

    def write(self, name, text):
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def server(self, scenario=None, conf=None, args=(), wait=True):
        with self.lock:             # flaky starts servers at once
            s = Server(self, scenario=scenario, conf=conf, args=args)
            self.servers.append(s)
        s.start()
        if wait:
            s.wait_ready()
        return s

    def track(self, c):
        with self.lock:
            if self.aborted:
                c.close()
                raise Fail("test aborted")
            self.clients.append(c)
        return c

    def run(self, argv, timeout=60):
        p = subprocess.Popen(argv, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL,
                             start_new_session=True, cwd=self.tmp)
        with self.lock:
            self.procs.append(p)
        try:
            out, err = p.communicate(timeout=T(timeout))
        except subprocess.TimeoutExpired:
            kill_proc(p)
            out, err = p.communicate()
            raise Fail("%s timed out after %ss" % (
                os.path.basename(argv[0]), timeout))
        return subprocess.CompletedProcess(argv, p.returncode, out, err)

    def close_clients(self):
        with self.lock:
            cl, self.clients = self.clients, []
        for c in cl:
            c.close()

    def abort(self):
        with self.lock:
            self.aborted = True
        self.close_clients()
        for p in list(self.procs):
            kill_proc(p)
        for s in list(self.servers):
            s.kill()

    def cleanup(self, ok):
        why = None
        self.close_clients()
        for p in list(self.procs):
            kill_proc(p)
        for s in list(self.servers):
            try:
                r = s.finish(check=ok and not self.aborted)
            except Exception as e:      # never leak a process
                r = "cleanup error: %r" % (e,)
            s.kill()
            why = why or r
        if os.environ.get("SMTPFAULT_KEEP") and (why or not ok):
            return why, self.tmp
        shutil.rmtree(self.tmp, ignore_errors=True)
        return why, None


# ------------------------------------------------------------------- server

def scenario_arg(name):
    """-s argument for a shipped scenario: its name when the binary finds
    it by itself (build/../conf/scenarios), else the full path."""
    near = os.path.join(os.path.dirname(BIN), "..", "conf", "scenarios",
                        name + ".ini")
    return name if os.path.exists(near) else os.path.join(SHIPPED,
                                                          name + ".ini")


def fixture(name):
    p = os.path.join(FIXTURES, name)
    if not os.path.exists(p):
        raise Fail("fixture %s missing" % p)
    return p


def derive(ctx, name, subs):
    """A copy of shipped scenario NAME with each (regex, replacement)
    applied exactly once; the copy keeps everything else (rule names,
    reply texts), so the shipped file is what is tested."""
    with open(os.path.join(SHIPPED, name + ".ini")) as f:
        text = f.read()
    for pat, rep in subs:
        text, n = re.subn(pat, rep, text, flags=re.M)
        check(n == 1, "shipped %s.ini: %r matched %d times" % (name, pat, n))
    return ctx.write(name + "-fast.ini", text)


class Server:
    """One smtpfault process."""

    def __init__(self, ctx, scenario=None, conf=None, args=()):
        self.ctx = ctx
        self.dir = ctx.path("srv%d" % len(ctx.servers))
        os.makedirs(self.dir)
        self.port_file = os.path.join(self.dir, "ports")
        self.events_file = os.path.join(self.dir, "events.jsonl")
        self.maildir = os.path.join(self.dir, "maildir")
        self.conf_file = None
        self.argv = [BIN]
        if conf is not None:
            self.conf_file = os.path.join(self.dir, "smtpfault.ini")
            with open(self.conf_file, "w") as f:
                f.write(conf)
            self.argv += ["-c", self.conf_file]
        if scenario is not None:
            self.argv += ["-s", scenario]
        self.argv += ["--listen", "127.0.0.1:0", "--port-file",
                      self.port_file, "--events", self.events_file,
                      "--capture", self.maildir, "--hostname", HOST]
        self.argv += list(args)
        self.proc = None
        self.port = None
        self.expect_exit = False
        self._ev_off = 0
        self._events = []
        self._elock = threading.Lock()

    def start(self):
        self.out = open(os.path.join(self.dir, "stdout"), "wb")
        self.err = open(os.path.join(self.dir, "stderr"), "wb")
        self.proc = subprocess.Popen(self.argv, stdout=self.out,
                                     stderr=self.err,
                                     stdin=subprocess.DEVNULL,
                                     start_new_session=True, cwd=self.dir)

    def stderr(self):
        try:
            with open(os.path.join(self.dir, "stderr"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_ready(self, timeout=10):
        def ready():
            if self.proc.poll() is not None:
                return "exit"
            try:
                with open(self.port_file) as f:
                    t = f.read()
            except OSError:
                return None
            return t if t.endswith("\n") else None
        t = poll(ready, T(timeout))
        if t == "exit":
            raise Fail("server exited with %s before serving; stderr: %s" %
                       (self.proc.returncode, short(self.stderr(), 400)))
        check(t, "no port file after %ss; stderr: %s" % (
            timeout, short(self.stderr(), 400)))
        m = re.match(r"smtp 127\.0\.0\.1:(\d+)\n", t)
        check(m, "bad port file %r" % t)
        self.port = int(m.group(1))
        check(0 < self.port < 65536, "bad port in %r" % t)

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def stop(self, timeout=10):
        """SIGTERM and wait; fails unless it exits 0."""
        self.expect_exit = True
        self.signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=T(timeout))
        except subprocess.TimeoutExpired:
            raise Fail("server did not exit within %ss of SIGTERM" % timeout)
        check(rc == 0, "server exit status %s after SIGTERM; stderr %s" % (
            rc, short(self.stderr(), 300)))

    def kill(self):
        if self.proc is not None:
            kill_proc(self.proc)
        for f in ("out", "err"):
            fp = getattr(self, f, None)
            if fp:
                fp.close()

    def finish(self, check=True):
        """End-of-test health checks and a graceful stop."""
        why = None
        if self.proc is None:
            return None
        if check and not self.expect_exit and self.proc.poll() is not None:
            why = "server died during the test (exit %s); stderr: %s" % (
                self.proc.returncode, short(self.stderr(), 400))
        if check and os.path.isdir(self.maildir):
            if not poll(lambda: not self.tmp_files(), T(3)):
                why = why or "files left in Maildir tmp/: %s" % \
                    self.tmp_files()[:5]
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=T(10))
                if rc != 0 and check:
                    why = why or "server exit status %s after SIGTERM" % rc
            except subprocess.TimeoutExpired:
                why = why or "server did not exit within 10s of SIGTERM"
        if check:
            err = self.stderr()
            for mark in SANITIZER_MARKS:
                if mark in err:
                    i = err.index(mark)
                    why = why or "server stderr has %r: %s" % (
                        mark, short(err[max(0, i - 100):], 400))
                    break
        return why

    # -- clients
    def connect(self, banner=True, timeout=10):
        c = Client("127.0.0.1", self.port, timeout=timeout)
        self.ctx.track(c)
        if banner:
            c.expect_reply(b"220 ")
        return c

    def smtp(self, timeout=10, helo="client.test", source=None):
        """An smtplib client; the caller reads the banner via connect()."""
        s = smtplib.SMTP(local_hostname=helo, timeout=T(timeout),
                         source_address=(source, 0) if source else None)
        self.ctx.track(Closer(s))
        return s

    # -- maildir
    def new_files(self):
        d = os.path.join(self.maildir, "new")
        try:
            return sorted(os.path.join(d, f) for f in os.listdir(d)
                          if not f.startswith("."))
        except FileNotFoundError:
            return []

    def tmp_files(self):
        d = os.path.join(self.maildir, "tmp")
        try:
            return [f for f in os.listdir(d) if not f.startswith(".")]
        except FileNotFoundError:
            return []

    def wait_new(self, n, timeout=5):
        got = poll(lambda: len(self.new_files()) >= n, T(timeout))
        files = self.new_files()
        check(got and len(files) == n, "Maildir new/ has %d files, expected"
              " %d" % (len(files), n))
        return files

    def no_new(self, settle=0.3):
        time.sleep(settle)
        files = self.new_files()
        check(not files, "Maildir new/ has %d file(s), expected none: %s" % (
            len(files), [os.path.basename(f) for f in files]))

    # -- events
    def events(self):
        with self._elock:
            try:
                with open(self.events_file, "rb") as f:
                    f.seek(self._ev_off)
                    data = f.read()
            except FileNotFoundError:
                return list(self._events)
            end = data.rfind(b"\n")
            if end >= 0:
                for raw in data[:end].split(b"\n"):
                    try:
                        ev = json.loads(raw.decode("utf-8"))
                    except (ValueError, UnicodeDecodeError) as e:
                        raise Fail("event line not JSON (%s): %s" % (
                            e, short(raw, 200)))
                    self._events.append(ev)
                self._ev_off += end + 1
            return list(self._events)

    def find(self, **match):
        return [e for e in self.events()
                if all(e.get(k) == v for k, v in match.items())]

    def wait_event(self, timeout=5, count=1, **match):
        r = poll(lambda: len(self.find(**match)) >= count, T(timeout))
        check(r, "no%s event %s within %ss (have %d)" % (
            "" if count == 1 else " %d" % count, match, timeout,
            len(self.find(**match))))
        return self.find(**match)

    def faults(self, **match):
        return self.find(event="fault", **match)


class Closer:
    """Lets the context close an smtplib client."""

    def __init__(self, s):
        self.s = s

    def close(self):
        try:
            self.s.close()
        except Exception:
            pass


# ------------------------------------------------------------------- client

class Client:
    """A raw SMTP client socket with a line reader."""

    def __init__(self, host, port, timeout=10):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.timeout = T(timeout)
        self.sock.settimeout(self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.eof = False
        self.reset_seen = False     # the server closed with an RST
        try:
            self.sock.connect((host, port))
        except ConnectionResetError:
            # reset so early that connect() itself reports it
            self.eof = self.reset_seen = True
        except OSError as e:
            self.sock.close()
            raise Fail("connect to %s:%d: %s" % (host, port, e))
        self._lines = collections.deque()
        self._part = b""
        self.closed = False
        self.chunks = []            # (monotonic time, bytes) of each recv
        self.transcript = []

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise Fail("send %s: %s" % (short(data, 60), e))

    def cmd(self, line):
        self.send((line if isinstance(line, bytes) else line.encode()) +
                  b"\r\n")

    def _fill(self, timeout=None):
        """One recv into the buffer.  None on timeout, b"" on EOF/RST."""
        if timeout is not None:
            self.sock.settimeout(max(timeout, 0.001))
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            return None
        except ConnectionResetError:
            self.reset_seen = True
            d = b""
        finally:
            if timeout is not None and not self.closed:
                self.sock.settimeout(self.timeout)
        if not d:
            self.eof = True
        else:
            self.chunks.append((time.monotonic(), d))
            self._part += d
            if b"\n" in d:
                parts = self._part.split(b"\n")
                self._part = parts.pop()
                self._lines.extend(x + b"\n" for x in parts)
        return d

    @property
    def buf(self):
        return b"".join(self._lines) + self._part

    def line(self, timeout=None):
        end = time.monotonic() + (T(timeout) if timeout is not None
                                  else self.timeout)
        while not self._lines:
            if self.eof:
                raise Fail("connection %s by the server while waiting for "
                           "a line; got %s; transcript %s" % (
                               "reset" if self.reset_seen else "closed",
                               short(self.buf), self.tail()))
            left = end - time.monotonic()
            if left <= 0:
                raise Fail("timeout waiting for a reply line; got %s; "
                           "transcript %s" % (short(self.buf), self.tail()))
            self._fill(left)
        raw = self._lines.popleft()
        check(raw.endswith(b"\r\n"), "reply line not ended by CRLF: %s" %
              short(raw))
        ln = raw[:-2]
        self.transcript.append(b"S: " + ln)
        del self.transcript[:-20]
        return ln

    def tail(self):
        return " | ".join(short(x, 80) for x in self.transcript[-6:])

    def reply(self, timeout=None):
        """A whole (multi-line) reply: (code, [lines])."""
        lines = []
        while True:
            ln = self.line(timeout)
            lines.append(ln)
            check(re.match(rb"^\d\d\d([ -]|$)", ln),
                  "malformed reply line %s" % short(ln))
            if len(ln) == 3 or ln[3:4] == b" ":
                check(len({l[:3] for l in lines}) == 1,
                      "mixed codes in one reply: %s" % lines)
                return int(ln[:3]), lines

    def expect_reply(self, prefix, timeout=None):
        """One whole reply whose last line starts with prefix."""
        if isinstance(prefix, str):
            prefix = prefix.encode()
        code, lines = self.reply(timeout)
        if not lines[-1].startswith(prefix):
            raise Fail("expected %s..., got %s (transcript %s)" % (
                short(prefix), short(b" / ".join(lines), 300), self.tail()))
        return lines[-1].decode("utf-8", "replace")

    def wait_closed(self, timeout=5):
        """The server must close without sending anything more; returns
        the seconds waited."""
        t0 = time.monotonic()
        end = t0 + T(timeout)
        while not self.eof:
            check(not self.buf, "expected close, got data: %s" %
                  short(self.buf))
            left = end - time.monotonic()
            check(left > 0, "server did not close the connection within %ss"
                  " (transcript %s)" % (timeout, self.tail()))
            self._fill(left)
        check(not self.buf, "expected close, got data: %s" % short(self.buf))
        return time.monotonic() - t0

    def expect_silence(self, secs):
        """Nothing may arrive and the connection must stay open."""
        end = time.monotonic() + secs
        while not self.buf and not self.eof:
            left = end - time.monotonic()
            if left <= 0:
                return
            self._fill(left)
        check(not self.buf, "unexpected data: %s" % short(self.buf))
        raise Fail("connection %s within %ss (transcript %s)" % (
            "reset" if self.reset_seen else "closed", secs, self.tail()))

    def ehlo(self, name="client.test"):
        self.cmd("EHLO " + name)
        code, lines = self.reply()
        check(code == 250, "EHLO got %s" % lines)
        return lines

    def close(self):
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass


def body(tag, subject=None, extra=b"", msgid=True):
    subject = subject if subject is not None else "test " + tag
    h = (b"From: a@example.com\r\nTo: b@example.com\r\n"
         b"Subject: " + subject.encode() + b"\r\n")
    if msgid:
        h += b"Message-ID: <" + tag.encode() + b"@client.test>\r\n"
    return h + b"\r\nbody of " + tag.encode() + b"\r\n" + extra


def envelope(c, frm="a@example.com", rcpts=("b@example.com",), helo=True):
    """EHLO (optionally), MAIL and RCPTs that must all succeed."""
    if helo:
        c.ehlo()
    c.cmd("MAIL FROM:<%s>" % frm)
    c.expect_reply(b"250 2.1.0")
    for r in rcpts:
        c.cmd("RCPT TO:<%s>" % r)
        c.expect_reply(b"250 2.1.5")


def data(c, msg, expect=b"250 2.0.0 Ok: queued as "):
    c.cmd("DATA")
    c.expect_reply(b"354")
    c.send(msg + b".\r\n")
    return c.expect_reply(expect)


def header_of(path, name):
    with open(path, "rb") as f:
        m = email.message_from_bytes(f.read())
    return m.get(name)


def rcpt_reply(srv, rcpt, frm="a@example.com"):
    """One smtplib session up to RCPT; returns (code, text)."""
    s = srv.smtp()
    s.connect("127.0.0.1", srv.port)
    s.ehlo()
    code, _ = s.mail(frm)
    check(code == 250, "MAIL got %s" % code)
    code, text = s.rcpt(rcpt)
    try:
        s.quit()
    except smtplib.SMTPException:
        pass
    return code, text.decode("utf-8", "replace")


def swaks(ctx, srv, *extra):
    if not shutil.which("swaks"):
        raise Skip("swaks not installed")
    r = ctx.run(["swaks", "--server", "127.0.0.1", "--port", str(srv.port),
                 "--helo", "swaks.test", "--timeout", "20"] + list(extra),
                timeout=40)
    return r.returncode, r.stdout.decode("utf-8", "replace") + \
        r.stderr.decode("utf-8", "replace")


def start_event(srv):
    return srv.wait_event(event="start")[0]


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
    for n in names:
        r = ctx.run([BIN, "--check-config", "-s", scenario_arg(n)],
                    timeout=10)
        check(r.returncode == 0 and b"configuration OK" in r.stdout,
              "%s: exit %d %s" % (n, r.returncode, short(r.stderr, 300)))
        with open(os.path.join(SHIPPED, n + ".ini")) as f:
            head = f.read(400)
        check(re.match(r"; NAME +%s\n" % re.escape(n), head),
              "%s.ini does not start with '; NAME %s'" % (n, n))


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
    r = ctx.run([BIN, "--check-config", "-s", path], timeout=10)
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
    r = ctx.run([BIN, "-s", path, "--listen", "127.0.0.1:0", "--port-file",
                 ctx.path("ports"), "--events", ""], timeout=10)
    check(r.returncode == 2, "server with a bad scenario: exit %d" %
          r.returncode)
    check(not os.path.exists(ctx.path("ports")), "port file written")
    # a rule that contradicts itself is caught too
    bad = ctx.write("cross.ini", "[rule header-at-rcpt]\nhook = rcpt\n"
                    "header = ^Subject: x\nreply = 550 5.7.1 no\n")
    r = ctx.run([BIN, "--check-config", "-s", bad], timeout=10)
    err = r.stderr.decode("utf-8", "replace")
    check(r.returncode == 2 and "%s:1:" % bad in err and
          "header-at-rcpt" in err, "cross-key error: exit %d %s" % (
              r.returncode, short(err, 300)))
    # and the good fixtures pass
    for name in ("content.ini", "cidr.ini", "override.ini"):
        r = ctx.run([BIN, "--check-config", "-s", fixture(name)],
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

def run_one(name, fn, timeout):
    ctx = Ctx(name)
    with LIVE_LOCK:
        LIVE.add(ctx)
    try:
        return run_ctx(ctx, fn, timeout)
    finally:
        with LIVE_LOCK:
            LIVE.discard(ctx)


def run_ctx(ctx, fn, timeout):
    result = {}

    def body_():
        try:
            fn(ctx)
            result["ok"] = True
        except Skip as e:
            result["skip"] = str(e)
        except Fail as e:
            result["fail"] = str(e)
        except Exception as e:
            tb = traceback.extract_tb(e.__traceback__)
            where = "%s:%d" % (os.path.basename(tb[-1].filename),
                               tb[-1].lineno) if tb else "?"
            result["fail"] = "%s: %r (at %s)" % (type(e).__name__, e, where)

    t = threading.Thread(target=body_, daemon=True)
    t0 = time.monotonic()
    t.start()
    t.join(T(timeout))
    if t.is_alive():
        ctx.abort()
        t.join(10)
        result = {"fail": "timed out after %ss" % timeout}
    why, kept = ctx.cleanup(ok="ok" in result)
    if why and "ok" in result:
        result = {"fail": why}
    if kept:
        result["kept"] = kept
    result["secs"] = time.monotonic() - t0
    return result


def report(name, r):
    extra = " [%.1fs]" % r["secs"] if os.environ.get("SMTPFAULT_TIMES") \
        else ""
    if "fail" in r:
        msg = r["fail"].replace("\n", " ")
        if r.get("kept"):
            msg += " (kept %s)" % r["kept"]
        print("FAIL %s: %s%s" % (name, msg, extra))
    elif "skip" in r:
        print("ok %s # skip %s%s" % (name, r["skip"], extra))
    else:
        print("ok %s%s" % (name, extra))
    sys.stdout.flush()
    return "fail" not in r


def main(argv):
    global BIN
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        sys.stderr.write("usage: %s SMTPFAULT-BINARY [NAME-FILTER]\n" %
                         argv[0])
        return 2
    BIN = os.path.abspath(argv[1])
    if not os.access(BIN, os.X_OK):
        sys.stderr.write("scenarios_test: %s is not an executable\n" % BIN)
        return 2
    tests = list(TESTS)
    if len(argv) > 2:
        pat = argv[2]
        if any(ch in pat for ch in "*?["):
            tests = [t for t in tests if fnmatch.fnmatchcase(t[0], pat)]
        else:
            tests = [t for t in tests if pat in t[0]]
    # the long ones first, so that they overlap with the many short ones
    heavy = {"flaky", "network_timeout_tarpit", "defer_for_window",
             "fail_then_accept_state_dir", "slow_replies"}
    order = sorted(range(len(tests)), key=lambda i: tests[i][0] not in heavy)
    results = [None] * len(tests)
    cond = threading.Condition()
    sem = threading.Semaphore(max(1, JOBS))
    t0 = time.monotonic()

    def worker(i):
        try:
            results[i] = run_one(*tests[i])
        except Exception as e:
            results[i] = {"fail": "runner error %r" % (e,), "secs": 0}
        finally:
            sem.release()
            with cond:
                cond.notify_all()

    try:
        return run_all(tests, order, results, cond, sem, worker, t0)
    except KeyboardInterrupt:
        with LIVE_LOCK:
            live = list(LIVE)
        for ctx in live:
            ctx.abort()
            ctx.cleanup(False)
        sys.stderr.write("scenarios_test: interrupted\n")
        return 130


def run_all(tests, order, results, cond, sem, worker, t0):
    passed = failed = 0
    nxt = 0
    for i in order:
        sem.acquire()
        threading.Thread(target=worker, args=(i,), daemon=True).start()
        with cond:
            while nxt < len(tests) and results[nxt] is not None:
                if report(tests[nxt][0], results[nxt]):
                    passed += 1
                else:
                    failed += 1
                nxt += 1
    with cond:
        while nxt < len(tests):
            while results[nxt] is None:
                cond.wait(1)
            if report(tests[nxt][0], results[nxt]):
                passed += 1
            else:
                failed += 1
            nxt += 1
    if os.environ.get("SMTPFAULT_TIMES"):
        sys.stderr.write("scenarios_test: %.1fs\n" % (time.monotonic() - t0))
    print("scenarios: %d passed, %d failed" % (passed, failed))
    sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
