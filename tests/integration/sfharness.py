"""
sfharness.py - the harness shared by the *_test.py integration suites

        scenarios_test.py, greylist_test.py, tls_test.py, report_test.py
        and control_test.py import this module (from their own directory)
        for: the @test registry, Ctx (everything one test started, cleaned
        up afterwards), Server (one smtpfault on 127.0.0.1 port 0 with
        --port-file, --events and --capture in the test's temp dir), Client
        (a raw SMTP socket with a reply reader), the SMTP helpers (body,
        envelope, data, rcpt_reply, swaks, ...) and the runner (parallel
        jobs, "ok NAME" / "FAIL NAME: why" lines, one summary line, exit 1
        on failure).

        A suite with needs of its own subclasses Ctx, Server or Client and
        hands its Ctx class to main(); where the suites differ in a check,
        it is a class attribute (Server.CHECK_MAILDIR_TMP,
        Client.CHECK_MIXED_CODES, Client.EARLY_RESET_OK) or a parameter.

        After every passing test the runner checks that each server is still
        alive (unless the test stopped it), that its Maildir tmp/ is empty,
        that it exits 0 within 10 s of SIGTERM and that its stderr shows no
        sanitizer report.  Every test has a timeout; on overrun its sockets,
        client programs and servers are killed and its temp dir removed.

ENV     SMTPFAULT_JOBS  tests run at once (default 4)
        SMTPFAULT_SLOW  multiply every timeout by this factor (default 1)
        SMTPFAULT_KEEP  keep the temp dirs of failed tests (path printed)
        SMTPFAULT_TIMES print each test's duration

Python standard library only.
"""

import collections
import email
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
BIN = None                      # set in main(); read it as sfharness.BIN
HOST = "mx.test"                # --hostname of every server
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                   "UndefinedBehaviorSanitizer", "Assertion", "PANIC")
QUEUED = b"250 2.0.0 Ok: queued as "


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

    SERVER = None       # the Server class ctx.server() starts (None: Server)

    def __init__(self, name, prefix="sf"):
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix="%s-%s-" % (prefix, name[:40]))
        self.servers = []
        self.clients = []
        self.procs = []
        self.notes = []     # printed after "ok NAME" as "# note: ..."
        self.lock = threading.Lock()
        self.aborted = False

    def path(self, *p):
        return os.path.join(self.tmp, *p)

    def write(self, name, text):
        p = self.path(name)
        with open(p, "wb" if isinstance(text, bytes) else "w") as f:
            f.write(text)
        return p

    def note(self, text):
        self.notes.append(text)

    def server(self, scenario=None, conf=None, args=(), wait=True, **kw):
        with self.lock:             # flaky starts servers at once
            s = (self.SERVER or Server)(self, scenario=scenario, conf=conf,
                                        args=args, **kw)
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

    def run(self, argv, timeout=60, stdin=None, env=None):
        p = subprocess.Popen(argv, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE,
                             stdin=subprocess.PIPE if stdin is not None
                             else subprocess.DEVNULL,
                             start_new_session=True, cwd=self.tmp, env=env)
        with self.lock:
            self.procs.append(p)
        try:
            out, err = p.communicate(input=stdin, timeout=T(timeout))
        except subprocess.TimeoutExpired:
            kill_proc(p)
            out, err = p.communicate()
            raise Fail("%s timed out after %ss" % (
                os.path.basename(argv[0]), timeout))
        with self.lock:
            self.procs.remove(p)
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
        for s in list(self.servers):
            if ok and not self.aborted:
                try:
                    why = why or s.still_serving()
                except Exception as e:
                    why = why or "end-of-test probe: %r" % (e,)
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


# ------------------------------------------------------------------- client

class Client:
    """A raw SMTP client socket with a line reader."""

    CHECK_MIXED_CODES = True    # reply(): every line of a reply, one code
    EARLY_RESET_OK = True       # an RST during connect() is an EOF, no Fail

    def __init__(self, host, port, timeout=10, ctx=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.timeout = T(timeout)
        self.sock.settimeout(self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.eof = False
        self.reset_seen = False     # the server closed with an RST
        self.closed = False
        self._lines = collections.deque()
        self._part = b""
        self.chunks = []            # (monotonic time, bytes) of each recv
        self.transcript = []
        if ctx is not None:
            ctx.track(self)
        try:
            self.sock.connect((host, port))
        except ConnectionResetError as e:
            if not self.EARLY_RESET_OK:
                self.close()
                raise Fail("connect to %s:%d: %s" % (host, port, e))
            # reset so early that connect() itself reports it
            self.eof = self.reset_seen = True
        except OSError as e:
            self.close()
            raise Fail("connect to %s:%d: %s" % (host, port, e))

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
                if self.CHECK_MIXED_CODES:
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


class Closer:
    """Lets the context close an smtplib client."""

    def __init__(self, s):
        self.s = s

    def close(self):
        try:
            self.s.close()
        except Exception:
            pass


# ------------------------------------------------------------------- server

def scenario_arg(name):
    """-s argument for a shipped scenario: its name when the binary finds
    it by itself (build/../conf/scenarios), else the full path."""
    near = os.path.join(os.path.dirname(BIN), "..", "conf", "scenarios",
                        name + ".ini")
    return name if os.path.exists(near) else os.path.join(SHIPPED,
                                                          name + ".ini")


def check_shipped(ctx, names):
    """Each shipped scenario in names loads with --check-config and starts
    with its "; NAME" comment line."""
    for n in names:
        r = ctx.run([BIN, "--check-config", "-s", scenario_arg(n)],
                    timeout=10)
        check(r.returncode == 0 and b"configuration OK" in r.stdout,
              "%s: exit %d %s" % (n, r.returncode, short(r.stderr, 300)))
        with open(os.path.join(SHIPPED, n + ".ini")) as f:
            head = f.read(400)
        check(re.match(r"; NAME +%s\n" % re.escape(n), head),
              "%s.ini does not start with '; NAME %s'" % (n, n))


def fixture(name, folder=FIXTURES):
    p = os.path.join(folder, name)
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
    """One smtpfault process.  Subclasses change the command line
    (listen_args), the environment (env), what the port file must hold
    (parse_ports) and add end-of-test checks (still_serving, end_checks)."""

    CLIENT = Client             # what connect() opens
    CHECK_MAILDIR_TMP = True    # finish(): Maildir tmp/ must be empty

    def __init__(self, ctx, scenario=None, conf=None, args=(), events=None,
                 capture=True):
        """events: the events file (None: one in the server's dir; False:
        none).  capture: keep a Maildir in the server's dir."""
        self.ctx = ctx
        self.dir = ctx.path("srv%d" % len(ctx.servers))
        os.makedirs(self.dir)
        self.port_file = os.path.join(self.dir, "ports")
        self.events_file = None if events is False else \
            events or os.path.join(self.dir, "events.jsonl")
        self.maildir = os.path.join(self.dir, "maildir") if capture \
            else None
        self.conf_file = None
        self.argv = [BIN]
        if conf is not None:
            self.conf_file = os.path.join(self.dir, "smtpfault.ini")
            with open(self.conf_file, "w") as f:
                f.write(conf)
            self.argv += ["-c", self.conf_file]
        if scenario is not None:
            self.argv += ["-s", scenario]
        self.argv += self.listen_args()
        self.argv += list(args)
        self.proc = None
        self.port = None
        self.expect_exit = False
        self._ev_off = 0
        self._events = []
        self._elock = threading.Lock()

    def listen_args(self):
        a = ["--listen", "127.0.0.1:0", "--port-file", self.port_file,
             "--events", self.events_file or ""]
        if self.maildir:
            a += ["--capture", self.maildir]
        return a + ["--hostname", HOST]

    def env(self):
        """The server's environment (None: this process's)."""
        return None

    def start(self):
        self.out = open(os.path.join(self.dir, "stdout"), "wb")
        self.err = open(os.path.join(self.dir, "stderr"), "wb")
        self.proc = subprocess.Popen(self.argv, stdout=self.out,
                                     stderr=self.err,
                                     stdin=subprocess.DEVNULL,
                                     start_new_session=True, cwd=self.dir,
                                     env=self.env())

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
        self.parse_ports(t)

    def parse_ports(self, t):
        """Take the ports from the complete port file text t."""
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

    def still_serving(self):
        """End-of-test probe while the server still runs: None or why
        not (none here)."""
        return None

    def end_checks(self):
        """More end-of-test checks once the server has stopped: None or
        why not (none here)."""
        return None

    def finish(self, check=True):
        """End-of-test health checks and a graceful stop."""
        why = None
        if self.proc is None:
            return None
        if check and not self.expect_exit and self.proc.poll() is not None:
            why = "server died during the test (exit %s); stderr: %s" % (
                self.proc.returncode, short(self.stderr(), 400))
        if check and self.CHECK_MAILDIR_TMP and self.maildir and \
                os.path.isdir(self.maildir):
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
            why = why or self.end_checks()
        return why

    # -- clients
    def connect(self, banner=True, timeout=10):
        c = self.CLIENT("127.0.0.1", self.port, timeout=timeout, ctx=self.ctx)
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
    def new_files(self, sub="new"):
        d = os.path.join(self.maildir, sub)
        try:
            return sorted(os.path.join(d, f) for f in os.listdir(d)
                          if not f.startswith("."))
        except FileNotFoundError:
            return []

    def tmp_files(self):
        return [os.path.basename(f) for f in self.new_files("tmp")]

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


# ------------------------------------------------------------ SMTP helpers

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


def data(c, msg, expect=QUEUED):
    c.cmd("DATA")
    c.expect_reply(b"354")
    c.send(msg + b".\r\n")
    return c.expect_reply(expect)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def header_of(path, name):
    return email.message_from_bytes(read_file(path)).get(name)


def rcpt_reply(srv, rcpt, frm="a@example.com"):
    """One smtplib session up to RCPT; returns (code, text)."""
    s = srv.smtp()
    if s.sock is None:              # not connected by srv.smtp()
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
    """swaks against srv (a Server, or a port number)."""
    if not shutil.which("swaks"):
        raise Skip("swaks not installed")
    port = srv if isinstance(srv, int) else srv.port
    r = ctx.run(["swaks", "--server", "127.0.0.1", "--port", str(port),
                 "--helo", "swaks.test", "--timeout", "20"] + list(extra),
                timeout=40)
    return r.returncode, r.stdout.decode("utf-8", "replace") + \
        r.stderr.decode("utf-8", "replace")


def start_event(srv):
    return srv.wait_event(event="start")[0]


# ================================================================== runner

def run_one(ctx_class, prefix, name, fn, timeout):
    ctx = ctx_class(name, prefix)
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
    result["notes"] = list(ctx.notes)
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
        notes = "".join(" # note: " + n.replace("\n", " ")
                        for n in r.get("notes", ()))
        print("ok %s%s%s" % (name, notes, extra))
    sys.stdout.flush()
    return "fail" not in r


def main(argv, suite, prog, prefix, heavy=(), ctx_class=Ctx, on_start=None):
    """Run the registered tests: "SUITE: N passed, N failed" last; 1 if
    any failed.  prog names the script in messages, prefix the temp dirs;
    heavy: test names (or a predicate on a name) to start first, so that
    the long ones overlap with the many short ones; on_start: called once
    the binary is known, before the first test."""
    global BIN
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        sys.stderr.write("usage: %s SMTPFAULT-BINARY [NAME-FILTER]\n" %
                         argv[0])
        return 2
    BIN = os.path.abspath(argv[1])
    if not os.access(BIN, os.X_OK):
        sys.stderr.write("%s: %s is not an executable\n" % (prog, BIN))
        return 2
    if on_start:
        on_start()
    tests = list(TESTS)
    if len(argv) > 2:
        pat = argv[2]
        if any(ch in pat for ch in "*?["):
            tests = [t for t in tests if fnmatch.fnmatchcase(t[0], pat)]
        else:
            tests = [t for t in tests if pat in t[0]]
    first = heavy if callable(heavy) else set(heavy).__contains__
    order = sorted(range(len(tests)), key=lambda i: not first(tests[i][0]))
    results = [None] * len(tests)
    cond = threading.Condition()
    sem = threading.Semaphore(max(1, JOBS))
    t0 = time.monotonic()

    def worker(i):
        try:
            results[i] = run_one(ctx_class, prefix, *tests[i])
        except Exception as e:
            results[i] = {"fail": "runner error %r" % (e,), "secs": 0}
        finally:
            sem.release()
            with cond:
                cond.notify_all()

    try:
        return run_all(suite, prog, tests, order, results, cond, sem, worker,
                       t0)
    except KeyboardInterrupt:
        with LIVE_LOCK:
            live = list(LIVE)
        for ctx in live:
            ctx.abort()
            ctx.cleanup(False)
        sys.stderr.write("%s: interrupted\n" % prog)
        return 130


def run_all(suite, prog, tests, order, results, cond, sem, worker, t0):
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
        sys.stderr.write("%s: %.1fs\n" % (prog, time.monotonic() - t0))
    print("%s: %d passed, %d failed" % (suite, passed, failed))
    sys.stdout.flush()
    return 1 if failed else 0
