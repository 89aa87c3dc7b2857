#!/usr/bin/env python3
"""
tls_test.py - integration tests for smtpfault's TLS: STARTTLS, implicit
              TLS (SMTPS) and the TLS fault scenarios

USAGE   python3 tests/integration/tls_test.py build/smtpfault [FILTER]

        Every test starts its own smtpfault on 127.0.0.1 port 0 with
        --port-file, --events, --capture and --tls-ca-out in a temp dir
        (plus --listen-tls 127.0.0.1:0 when it needs implicit TLS), drives
        it with real clients (smtplib, ssl, raw sockets, openssl s_client,
        swaks) and stops it with SIGTERM.  Certificates of its own (for
        [tls] cert/key and client certificates) are made with the openssl
        command in the test's temp dir.

        One line per test, "ok NAME" or "FAIL NAME: why", then exactly one
        line "tls: N passed, N failed"; exit 1 if any failed.  FILTER
        selects tests whose name contains it (or matches it as a shell
        glob when it has * ? or [).

        After every passing test the server must still be alive (unless the
        test stopped it), its Maildir tmp/ empty, it must exit 0 within
        10 s of SIGTERM and its stderr must show no sanitizer report.

ENV     SMTPFAULT_JOBS  tests run at once (default 4)
        SMTPFAULT_SLOW  multiply every timeout by this factor (default 1)
        SMTPFAULT_KEEP  keep the temp dirs of failed tests (path printed)
        SMTPFAULT_TIMES print each test's duration

Python standard library only.  The harness (Ctx, Server, Client, runner)
is in sfharness.py beside this file; the TLS parts of Server and Client
are below.
"""

import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import sfharness as H  # noqa: E402
from sfharness import (  # noqa: E402
    HOST, SHIPPED, TESTS, Closer, Fail, Skip, T, between, body, check, data,
    envelope, header_of, kill_proc, read_file, scenario_arg, short, swaks,
    test)

# TLS 1.0 is asked for on purpose (tls-old-protocol)
warnings.filterwarnings("ignore", category=DeprecationWarning)

# the Received: line of a message that came over TLS 1.3
ESMTPS13 = rb"with ESMTPS \(TLSv1\.3:TLS_[A-Z0-9_]+\) id "
# close reason of a failed handshake (renamed from tls_failed in the
# starttls.c split; docs/events.md lists neither yet)
HS_FAILED = ("starttls_failed", "tls_failed")


# ------------------------------------------------------------------- server

class Server(H.Server):
    """One smtpfault process that writes its CA (--tls-ca-out) and, when
    implicit, listens for SMTPS too (--listen-tls)."""

    def __init__(self, ctx, scenario=None, conf=None, args=(),
                 implicit=False):
        self.implicit = implicit
        self.tls_port = None
        super().__init__(ctx, scenario=scenario, conf=conf, args=args)

    @property
    def ca(self):
        return os.path.join(self.dir, "ca.pem")

    def listen_args(self):
        a = super().listen_args() + ["--tls-ca-out", self.ca]
        if self.implicit:
            a += ["--listen-tls", "127.0.0.1:0"]
        return a

    def parse_ports(self, t):
        want = r"smtp 127\.0\.0\.1:(\d+)\n"
        if self.implicit:
            want += r"smtps 127\.0\.0\.1:(\d+)\n"
        m = re.fullmatch(want, t)
        check(m, "bad port file %r" % t)
        self.port = int(m.group(1))
        check(0 < self.port < 65536, "bad port in %r" % t)
        if self.implicit:
            self.tls_port = int(m.group(2))
            check(0 < self.tls_port < 65536 and self.tls_port != self.port,
                  "bad smtps port in %r" % t)
        check(os.path.getsize(self.ca) > 0, "--tls-ca-out wrote nothing")

    # -- clients
    def connect(self, banner=True, timeout=10, implicit=False, tls=None,
                hostname=None):
        """A raw client; implicit: to the SMTPS port, TLS first (with the
        tls context, verifying against our CA by default)."""
        if implicit:
            tls = tls or verifying(self.ca)
            c = Client("127.0.0.1", self.tls_port, timeout=timeout,
                       ctx=self.ctx)
            c.wrap(tls, hostname or "127.0.0.1")
        else:
            c = Client("127.0.0.1", self.port, timeout=timeout, ctx=self.ctx)
        if banner:
            c.expect_reply(b"220 ")
        return c

    def smtp_named(self, hostname="localhost", timeout=10,
                   helo="client.test"):
        """smtplib connected to the plain port, EHLO sent; starttls() will
        name the server hostname (SNI and verification)."""
        s = self.smtp(timeout=timeout, helo=helo)
        s.connect("127.0.0.1", self.port)
        s._host = hostname          # what starttls() verifies and sends
        s.ehlo()
        return s

    def smtp_tls(self, tls, hostname="localhost", timeout=10,
                 helo="client.test"):
        """smtplib to the plain port, EHLO, STARTTLS with context tls."""
        s = self.smtp_named(hostname, timeout=timeout, helo=helo)
        check(s.has_extn("starttls"), "EHLO lacks STARTTLS: %r" %
              s.esmtp_features)
        code, text = s.starttls(context=tls)
        check(code == 220, "STARTTLS got %s %r" % (code, text))
        return s

    def smtps(self, tls, timeout=10, helo="client.test"):
        """smtplib.SMTP_SSL to the implicit-TLS port (named 127.0.0.1)."""
        s = smtplib.SMTP_SSL("127.0.0.1", self.tls_port, local_hostname=helo,
                             timeout=T(timeout), context=tls)
        self.ctx.track(Closer(s))
        return s

    def exactly(self, n, timeout=5, **match):
        """Wait for n events like match; there must not be more."""
        if n:
            self.wait_event(timeout=timeout, count=n, **match)
        got = self.find(**match)
        check(len(got) == n, "%d events %s, expected %d: %s" % (
            len(got), match, n, short(got, 400)))
        return got

    def session_of(self, path):
        """The session id a stored message came in."""
        return header_of(path, "X-Smtpfault-Session")


class Ctx(H.Ctx):
    SERVER = Server


# ------------------------------------------------------------------- client

def verifying(cafile, tls12=False):
    """A client context that verifies the server against cafile."""
    c = ssl.create_default_context(cafile=cafile)
    if tls12:
        c.maximum_version = ssl.TLSVersion.TLSv1_2
    return c


def insecure():
    """A client context that checks nothing (opportunistic TLS)."""
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def client_hello(tls=None, hostname="localhost"):
    """The bytes of a real ClientHello, made without a socket."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = (tls or insecure()).wrap_bio(inc, out, server_hostname=hostname)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = out.read()
    check(hello[:1] == b"\x16", "not a handshake record: %s" % short(hello))
    return hello


class Client(H.Client):
    """A raw SMTP client socket with a line reader; wrap() puts TLS on
    the same socket (the reader must be empty then)."""

    EARLY_RESET_OK = False

    def __init__(self, host, port, timeout=10, ctx=None):
        self.tls = False
        super().__init__(host, port, timeout=timeout, ctx=ctx)

    def wrap(self, tls, hostname=None):
        """TLS handshake on this connection; raises what ssl raises."""
        check(not self.buf, "plaintext bytes before the handshake: %s" %
              short(self.buf))
        self.sock = tls.wrap_socket(self.sock, server_hostname=hostname)
        self.tls = True
        return self.sock

    def starttls(self, tls, hostname="localhost"):
        self.cmd("STARTTLS")
        self.expect_reply(b"220 2.0.0 ")
        return self.wrap(tls, hostname)

    def raw(self, timeout):
        """Whatever arrives (not split into lines) until EOF or timeout."""
        end = time.monotonic() + T(timeout)
        while not self.eof and time.monotonic() < end:
            self._fill(end - time.monotonic())
        data = self.buf
        self._lines.clear()
        self._part = b""
        return data

    def ehlo(self, name="client.test"):
        self.cmd("EHLO " + name)
        code, lines = self.reply()
        check(code == 250, "EHLO got %s" % lines)
        return [l[4:].decode() for l in lines[1:]]


def send_msg(s, tag):
    """One message through a connected smtplib client; then QUIT."""
    refused = s.sendmail("a@example.com", ["b@example.com"], body(tag))
    check(refused == {}, "refused %s" % refused)
    try:
        s.quit()
    except smtplib.SMTPServerDisconnected:
        pass


def stored_tls(srv, tag, n=1, proto=ESMTPS13):
    """The n-th stored message is tag's and came over TLS; returns its
    path."""
    f = srv.wait_new(n)[-1]
    raw = read_file(f)
    check(("Subject: test %s\r\n" % tag).encode() in raw,
          "stored message is not %s: %s" % (tag, short(raw, 300)))
    check(re.search(proto, raw), "Received: lacks %s: %s" % (
        proto.decode(), short(raw[:raw.find(b"Date:")], 400)))
    return f


def s_client(ctx, srv, ca, *extra, smtp=b"EHLO sclient.test\r\nQUIT\r\n"):
    """openssl s_client -starttls smtp; it sends smtp after the handshake
    and reads until the server closes.  (rc, stdout, stderr)"""
    if not shutil.which("openssl"):
        raise Skip("openssl command not installed")
    r = ctx.run(["openssl", "s_client", "-starttls", "smtp", "-connect",
                 "127.0.0.1:%d" % srv.port, "-CAfile", ca, "-ign_eof",
                 "-nocommands"] + list(extra), timeout=20, stdin=smtp)
    return (r.returncode, r.stdout.decode("utf-8", "replace"),
            r.stderr.decode("utf-8", "replace"))


def openssl(ctx, *args):
    """Run the openssl command in the test's temp dir; it must work."""
    if not shutil.which("openssl"):
        raise Skip("openssl command not installed")
    r = ctx.run(["openssl"] + list(args), timeout=20)
    check(r.returncode == 0, "openssl %s: exit %d %s" % (
        args[0], r.returncode, short(r.stderr, 300)))


def make_pki(ctx):
    """With the openssl command, in the temp dir, all ECDSA P-256: a root
    CA; a server certificate for localhost/127.0.0.1 and a client
    certificate for client.test signed by it; an intermediate CA and a
    second server certificate (srv2) signed by that."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl(ctx, "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt",
            "-days", "30", "-subj", "/O=tls_test/CN=tls_test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    ctx.write("srv.ext", "basicConstraints=CA:FALSE\n"
              "keyUsage=critical,digitalSignature\n"
              "extendedKeyUsage=serverAuth\n"
              "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ctx.write("cli.ext", "basicConstraints=CA:FALSE\n"
              "keyUsage=critical,digitalSignature\n"
              "extendedKeyUsage=clientAuth\n")
    ctx.write("int.ext", "basicConstraints=critical,CA:TRUE,pathlen:0\n"
              "keyUsage=critical,keyCertSign,cRLSign\n")
    serial = [int(time.time()) << 8]
    for who, cn, ext, ca in (("srv", "localhost", "srv", "ca"),
                             ("cli", "client.test", "cli", "ca"),
                             ("int", "tls_test intermediate", "int", "ca"),
                             ("srv2", "localhost", "srv", "int")):
        serial[0] += 1
        openssl(ctx, "req", *ec, "-keyout", who + ".key", "-out",
                who + ".csr", "-subj", "/O=tls_test/CN=" + cn)
        openssl(ctx, "x509", "-req", "-in", who + ".csr", "-CA",
                ca + ".crt", "-CAkey", ca + ".key", "-set_serial",
                str(serial[0]), "-days", "30", "-out", who + ".crt",
                "-extfile", ext + ".ext")
    return {k: ctx.path(k) for k in (
        "ca.crt", "srv.crt", "srv.key", "cli.crt", "cli.key", "int.crt",
        "srv2.crt", "srv2.key")}


def tls_event(srv, f):
    """The tls event of the session that stored message file f."""
    sess = srv.session_of(f)
    ev = srv.wait_event(event="tls", session=sess)
    check(len(ev) == 1, "%d tls events for session %s" % (len(ev), sess))
    return ev[0]


def close_event(srv, sess=None, **match):
    if sess is not None:
        match["session"] = sess
    return srv.wait_event(event="close", **match)[-1]


# ====================================================== STARTTLS, SMTPS

@test()
def starttls_smtplib_verified(ctx):
    """smtplib STARTTLS verified against --tls-ca-out, named localhost and
    127.0.0.1; each message lands with an ESMTPS Received: line."""
    srv = ctx.server()
    for i, name in enumerate(("localhost", "127.0.0.1")):
        s = srv.smtp_tls(verifying(srv.ca), hostname=name)
        check(s.sock.version() == "TLSv1.3", "negotiated %s" %
              s.sock.version())
        peer = dict(x[0] for x in s.sock.getpeercert()["subject"])
        check(peer.get("commonName") == HOST, "server certificate %s" % peer)
        s.ehlo()
        check(not s.has_extn("starttls"), "EHLO after TLS offers STARTTLS")
        send_msg(s, "verified-%d" % i)
        f = stored_tls(srv, "verified-%d" % i, n=i + 1)
        ev = tls_event(srv, f)
        check(ev.get("certificate") == "good" and
              ev.get("protocol") == "TLSv1.3", "tls event %s" % ev)
        m = srv.wait_event(event="message", session=srv.session_of(f))[0]
        check(m.get("file") and os.path.basename(m["file"]) ==
              os.path.basename(f), "message event %s" % m)
        close_event(srv, srv.session_of(f), reason="quit")


@test()
def implicit_tls_smtplib(ctx):
    """SMTP_SSL to --listen-tls: the banner comes over TLS, a message lands;
    the plain listener keeps offering STARTTLS, the TLS one does not."""
    srv = ctx.server(implicit=True)
    s = srv.smtps(verifying(srv.ca))
    check(s.sock.version() == "TLSv1.3", "negotiated %s" % s.sock.version())
    code, text = s.ehlo()
    check(code == 250 and not s.has_extn("starttls"),
          "EHLO on SMTPS: %s %r" % (code, text))
    code, text = s.docmd("STARTTLS")
    check(code == 502, "STARTTLS on SMTPS got %s %r" % (code, text))
    send_msg(s, "smtps")
    f = stored_tls(srv, "smtps")
    sess = srv.session_of(f)
    conn = srv.find(event="connect", session=sess)
    check(conn and conn[0].get("listener") == "127.0.0.1:%d" % srv.tls_port,
          "connect event %s" % conn)
    # the banner was sent after the handshake, not before
    evs = [e for e in srv.events() if e.get("session") == sess]
    order = [e["event"] for e in evs if e["event"] in ("tls", "reply")]
    check(order[:2] == ["tls", "reply"] and
          evs[[e["event"] for e in evs].index("reply")].get("code") == 220,
          "events of the SMTPS session: %s" % order)
    check(tls_event(srv, f).get("certificate") == "good", "tls event")
    # a plaintext client on the SMTPS port is not greeted
    c = Client("127.0.0.1", srv.tls_port, timeout=5, ctx=ctx)
    c.cmd("EHLO plain.test")
    data_ = c.raw(3)
    check(not re.match(rb"\d\d\d", data_), "plaintext reply on the SMTPS "
          "port: %s" % short(data_))
    check(c.eof, "SMTPS port kept a plaintext client open")


@test()
def openssl_s_client_starttls(ctx):
    srv = ctx.server()
    rc, out, err = s_client(ctx, srv, srv.ca, "-verify_return_error",
                            "-verify_hostname", "localhost")
    check(rc == 0, "s_client exit %d: %s %s" % (rc, short(out[-300:], 300),
                                                short(err, 300)))
    check("Verify return code: 0 (ok)" in out, "no successful verification"
          " in %s" % short(out, 600))
    check(re.search(r"250-%s greets sclient\.test" % re.escape(HOST), out) and
          "221 2.0.0 Bye" in out, "no EHLO/QUIT replies over TLS: %s" %
          short(out[-600:], 600))
    ev = srv.wait_event(event="tls")[0]
    check(ev.get("protocol") == "TLSv1.3" and ev.get("certificate") ==
          "good", "tls event %s" % ev)
    close_event(srv, ev["session"], reason="quit")


@test()
def swaks_starttls(ctx):
    srv = ctx.server()
    rc, out = swaks(ctx, srv.port, "--tls", "--tls-verify", "--tls-ca-path",
                    srv.ca, "--tls-sni", "localhost", "--from",
                    "a@example.com", "--to", "b@example.com", "--header",
                    "Subject: test swaks-starttls")
    check(rc == 0, "swaks exit %d: %s" % (rc, short(out[-500:], 500)))
    check(re.search(r"TLS started with cipher TLSv1\.3:", out),
          "no TLS in swaks output: %s" % short(out, 500))
    check(re.search(r"<~  250 2\.0\.0 Ok: queued as [0-9A-F]+", out),
          "no queued reply (over TLS) in swaks output: %s" %
          short(out[-400:], 400))
    f = stored_tls(srv, "swaks-starttls")
    check(header_of(f, "X-Smtpfault-Helo") == "swaks.test", "helo")
    check(tls_event(srv, f).get("sni") == "localhost", "sni")


@test()
def swaks_implicit_tls(ctx):
    srv = ctx.server(implicit=True)
    rc, out = swaks(ctx, srv.tls_port, "--tlsc", "--tls-verify",
                    "--tls-ca-path", srv.ca, "--from", "a@example.com",
                    "--to", "b@example.com", "--header",
                    "Subject: test swaks-tlsc")
    check(rc == 0, "swaks exit %d: %s" % (rc, short(out[-500:], 500)))
    check(re.search(r"TLS started with cipher TLSv1\.3:", out),
          "no TLS in swaks output: %s" % short(out, 500))
    check(re.search(r"<~  250 2\.0\.0 Ok: queued as [0-9A-F]+", out),
          "no queued reply in swaks output: %s" % short(out[-400:], 400))
    stored_tls(srv, "swaks-tlsc")


# ===================================================== protocol details

@test()
def starttls_injection(ctx):
    """CVE-2011-0411: 'STARTTLS\\r\\nEHLO x\\r\\n' in one write gets one
    reply; the EHLO sent in plaintext is never run, even after TLS."""
    srv = ctx.server()
    c = srv.connect()
    c.ehlo()
    c.send(b"STARTTLS\r\nEHLO x\r\n")
    c.expect_reply(b"220 2.0.0 ")
    c.expect_silence(0.5)           # no second plaintext reply
    ssock = c.wrap(verifying(srv.ca), "localhost")
    check(ssock.version() == "TLSv1.3", "version %s" % ssock.version())
    c.expect_silence(0.5)           # nor one over TLS
    c.cmd("MAIL FROM:<a@example.com>")
    c.expect_reply(b"503 5.5.1 ")   # the injected EHLO did not count
    lines = c.ehlo("after.test")
    check("STARTTLS" not in lines, "EHLO after TLS: %s" % lines)
    envelope(c, helo=False)
    data(c, body("injection"))
    c.cmd("QUIT")
    c.expect_reply(b"221")
    f = stored_tls(srv, "injection")
    check(header_of(f, "X-Smtpfault-Helo") == "after.test", "helo %s" %
          header_of(f, "X-Smtpfault-Helo"))
    ev = srv.wait_event(event="tls_injection")
    check(len(ev) == 1 and ev[0].get("discarded") == len(b"EHLO x\r\n"),
          "tls_injection events %s" % ev)
    ehlos = [e.get("arg") for e in srv.find(event="command", verb="EHLO")]
    check(ehlos == ["client.test", "after.test"], "EHLO commands run: %s" %
          ehlos)
    replies = [e.get("code") for e in srv.find(event="reply")]
    check(replies.count(220) == 2, "replies %s" % replies)


@test()
def starttls_twice(ctx):
    srv = ctx.server()
    c = srv.connect()
    c.ehlo()
    c.starttls(verifying(srv.ca))
    c.cmd("STARTTLS")               # before and after the new EHLO
    c.expect_reply(b"503 5.5.1 ")
    c.ehlo()
    c.cmd("STARTTLS")
    c.expect_reply(b"503 5.5.1 ")
    envelope(c, helo=False)         # the session is still usable
    data(c, body("twice"))
    c.cmd("QUIT")
    c.expect_reply(b"221")
    stored_tls(srv, "twice")
    check(len(srv.find(event="tls")) == 1, "tls events %s" %
          srv.find(event="tls"))


@test()
def starttls_with_argument(ctx):
    srv = ctx.server()
    c = srv.connect()
    c.ehlo()
    c.cmd("STARTTLS now")
    c.expect_reply(b"501 5.5.4 ")
    c.expect_silence(0.3)           # no handshake was started
    c.cmd("NOOP")
    c.expect_reply(b"250 ")
    c.starttls(verifying(srv.ca))   # the plain STARTTLS still works
    c.ehlo()
    c.cmd("QUIT")
    c.expect_reply(b"221")
    check(len(srv.find(event="tls")) == 1, "no tls event")


@test()
def require_tls(ctx):
    srv = ctx.server(conf="[tls]\nrequire_tls = yes\n")
    c = srv.connect()
    lines = c.ehlo()
    check("STARTTLS" in lines, "EHLO lacks STARTTLS: %s" % lines)
    c.cmd("MAIL FROM:<a@example.com>")
    c.expect_reply(b"530 5.7.0 ")
    c.starttls(verifying(srv.ca))
    c.ehlo()
    envelope(c, helo=False)
    data(c, body("required"))
    c.cmd("QUIT")
    c.expect_reply(b"221")
    stored_tls(srv, "required")
    # smtplib without STARTTLS is refused the same way
    s = srv.smtp()
    s.connect("127.0.0.1", srv.port)
    s.ehlo()
    code, text = s.mail("a@example.com")
    check(code == 530, "plaintext MAIL got %s %r" % (code, text))
    s.quit()


@test()
def session_reset_after_tls(ctx):
    """RFC 3207 4.2: after the handshake the client must EHLO again; what
    it said before is forgotten and STARTTLS is no longer offered."""
    srv = ctx.server()
    c = srv.connect()
    lines = c.ehlo("before.test")
    check("STARTTLS" in lines, "EHLO lacks STARTTLS: %s" % lines)
    c.cmd("MAIL FROM:<a@example.com>")
    c.expect_reply(b"250 2.1.0")
    c.cmd("STARTTLS")               # not inside a transaction
    c.expect_reply(b"503 5.5.1 ")
    c.cmd("RSET")
    c.expect_reply(b"250")
    c.starttls(verifying(srv.ca))
    c.cmd("MAIL FROM:<a@example.com>")
    c.expect_reply(b"503 5.5.1 ")
    c.cmd("RCPT TO:<b@example.com>")
    c.expect_reply(b"503 5.5.1 ")
    lines = c.ehlo("after.test")
    check("STARTTLS" not in lines, "EHLO after TLS: %s" % lines)
    check("PIPELINING" in lines and any(l.startswith("SIZE") for l in lines),
          "EHLO after TLS lost extensions: %s" % lines)
    c.cmd("RCPT TO:<b@example.com>")
    c.expect_reply(b"503 5.5.1 ")   # no MAIL survived the handshake
    envelope(c, helo=False)
    data(c, body("reset"))
    c.cmd("QUIT")
    c.expect_reply(b"221")
    f = stored_tls(srv, "reset")
    check(header_of(f, "X-Smtpfault-Helo") == "after.test", "helo %s" %
          header_of(f, "X-Smtpfault-Helo"))
    check(b"Received: from after.test " in read_file(f), "Received: names "
          "the old HELO")


@test()
def garbage_client_hello(ctx):
    """What follows the 220 must be a TLS handshake: anything else ends the
    session, never a fall-back to plaintext SMTP."""
    srv = ctx.server(implicit=True)
    junk = (b"GET / HTTP/1.0\r\n\r\n",
            b"EHLO x\r\nMAIL FROM:<a@example.com>\r\n",
            b"\x16\x03\x01\x00\x10" + b"\xff" * 16)
    for j in junk:
        c = srv.connect()
        c.ehlo()
        c.cmd("STARTTLS")
        c.expect_reply(b"220 2.0.0 ")
        c.send(j)
        got = c.raw(5)
        check(c.eof, "session still open after %s" % short(j))
        check(not re.search(rb"\d\d\d[ -]", got), "SMTP reply after garbage "
              "%s: %s" % (short(j), short(got)))
        check(got == b"" or got[:1] == b"\x15", "not a TLS alert: %s" %
              short(got))
    c = Client("127.0.0.1", srv.tls_port, timeout=5, ctx=ctx)
    c.send(junk[1])
    got = c.raw(5)
    check(c.eof and not re.search(rb"\d\d\d[ -]", got),
          "SMTPS answered plaintext: %s" % short(got))
    errs = srv.wait_event(event="tls_error", count=4)
    check(all(e.get("stage") == "handshake" and e.get("reason")
              for e in errs), "tls_error events %s" % errs)
    closes = srv.wait_event(event="close", count=4)
    check(all(e.get("reason") in HS_FAILED for e in closes),
          "close events %s" % closes)
    check(not srv.find(event="command", verb="MAIL") and
          len(srv.find(event="command", verb="EHLO")) == 3,
          "a command after STARTTLS was run: %s" % srv.find(event="command"))
    check(not srv.find(event="tls"), "a handshake succeeded")


@test()
def handshake_timeout(ctx):
    """[tls] handshake_timeout = 1s: silent, or stopping half-way through
    the ClientHello, the session is closed within a few seconds."""
    srv = ctx.server(conf="[tls]\nhandshake_timeout = 1s\n", implicit=True)
    a = srv.connect()
    a.ehlo()
    a.cmd("STARTTLS")
    a.expect_reply(b"220 2.0.0 ")
    ta = time.monotonic()
    b = srv.connect()
    b.ehlo()
    b.cmd("STARTTLS")
    b.expect_reply(b"220 2.0.0 ")
    tb = time.monotonic()
    hello = client_hello()
    b.send(hello[:len(hello) // 2])
    c = Client("127.0.0.1", srv.tls_port, timeout=5, ctx=ctx)
    tc = time.monotonic()
    for cl, t0, what in ((a, ta, "silent STARTTLS"),
                         (b, tb, "half a ClientHello"),
                         (c, tc, "silent SMTPS")):
        cl.wait_closed(timeout=6)
        between(time.monotonic() - t0, 0.8, 4, what)
    closes = srv.wait_event(event="close", count=3)
    check([e.get("reason") for e in closes] == ["tls_timeout"] * 3,
          "close events %s" % closes)
    # a normal handshake is unaffected
    s = srv.smtp_tls(verifying(srv.ca))
    send_msg(s, "after-timeouts")
    stored_tls(srv, "after-timeouts")


@test()
def tls_event_fields(ctx):
    srv = ctx.server(implicit=True)
    ca = srv.ca
    seen = []
    # STARTTLS naming localhost: SNI sent
    c = srv.connect()
    c.ehlo()
    s1 = c.starttls(verifying(ca), "localhost")
    seen.append((s1, "localhost", "TLSv1.3"))
    # STARTTLS naming an IP address: no SNI
    d = srv.connect()
    d.ehlo()
    s2 = d.starttls(verifying(ca), "127.0.0.1")
    seen.append((s2, None, "TLSv1.3"))
    # SMTPS with TLS 1.2, naming the server's host name
    e = srv.connect(implicit=True, tls=verifying(ca, tls12=True),
                    hostname=HOST)
    seen.append((e.sock, HOST, "TLSv1.2"))
    srv.wait_event(event="tls", count=3)
    # handshakes may finish on the server in any order: go by session
    sessions = [e["session"] for e in srv.exactly(3, event="connect")]
    evs = [srv.exactly(1, event="tls", session=x)[0] for x in sessions]
    for ev, (sock, sni, proto) in zip(evs, seen):
        name, version, bits = sock.cipher()
        want = {"protocol": proto, "cipher": name, "bits": bits, "sni": sni,
                "certificate": "good", "client": "127.0.0.1"}
        got = {k: ev.get(k, "<missing>") for k in want}
        check(got == want and sock.version() == proto, "tls event %s, "
              "expected %s" % (ev, want))
        check("sni" in ev and "client_cert" not in ev and
              re.fullmatch(r"[0-9a-f]{8}", ev.get("session", "")) and
              isinstance(ev.get("seq"), int) and ev.get("time"),
              "tls event fields %s" % ev)
    check(evs[2]["cipher"].startswith("ECDHE-ECDSA-"), "TLS 1.2 cipher %s" %
          evs[2]["cipher"])
    for cl in (c, d, e):
        cl.ehlo()
        cl.cmd("QUIT")
        cl.expect_reply(b"221")


@test()
def client_cert_logged(ctx):
    pki = make_pki(ctx)
    srv = ctx.server(conf="[tls]\nask_client_cert = yes\n")
    tls = verifying(srv.ca)
    tls.load_cert_chain(pki["cli.crt"], pki["cli.key"])
    s = srv.smtp_tls(tls)
    send_msg(s, "client-cert")
    ev = tls_event(srv, stored_tls(srv, "client-cert"))
    cc = ev.get("client_cert") or ""
    check("CN=client.test" in cc and "O=tls_test" in cc, "client_cert %r in "
          "%s" % (cc, ev))
    # asked, but none given: still accepted, nothing logged
    s = srv.smtp_tls(verifying(srv.ca))
    send_msg(s, "no-client-cert")
    ev = tls_event(srv, stored_tls(srv, "no-client-cert", n=2))
    check("client_cert" not in ev, "client_cert without one: %s" % ev)
    # not asked: a client certificate is never sent, so not logged
    srv2 = ctx.server()
    tls = verifying(srv2.ca)
    tls.load_cert_chain(pki["cli.crt"], pki["cli.key"])
    s = srv2.smtp_tls(tls)
    send_msg(s, "unasked")
    ev = tls_event(srv2, stored_tls(srv2, "unasked"))
    check("client_cert" not in ev, "client_cert not asked for: %s" % ev)


@test()
def cert_key_files(ctx):
    """[tls] cert/key from files made with openssl; key inside the cert
    file; a bad key path, a bad cert path and a key that does not match
    fail --check-config with a message naming the file."""
    pki = make_pki(ctx)
    conf = "[tls]\ncert = %s\nkey = %s\n" % (pki["srv.crt"], pki["srv.key"])
    srv = ctx.server(conf=conf)
    s = srv.smtp_tls(verifying(pki["ca.crt"]), hostname="localhost")
    peer = dict(x[0] for x in s.sock.getpeercert()["subject"])
    check(peer.get("commonName") == "localhost" and
          peer.get("organizationName") == "tls_test", "peer %s" % peer)
    send_msg(s, "own-cert")
    stored_tls(srv, "own-cert")
    # the generated CA does not vouch for it
    try:
        srv.smtp_tls(verifying(srv.ca))
        raise Fail("our certificate verified against the generated CA")
    except ssl.SSLCertVerificationError as e:
        check("unable to get local issuer certificate" in e.verify_message,
              "verify_message %r" % e.verify_message)
    # key in the cert file
    both = ctx.write("both.pem", open(pki["srv.crt"]).read() +
                     open(pki["srv.key"]).read())
    good = ctx.write("both.ini", "[tls]\ncert = %s\n" % both)
    r = ctx.run([H.BIN, "-c", good, "--check-config"], timeout=10)
    check(r.returncode == 0 and b"configuration OK" in r.stdout,
          "cert+key in one file: exit %d %s" % (r.returncode,
                                                short(r.stderr, 300)))
    srv2 = ctx.server(conf="[tls]\ncert = %s\n" % both)
    s = srv2.smtp_tls(verifying(pki["ca.crt"]))
    send_msg(s, "both")
    stored_tls(srv2, "both")
    # [tls] chain: the intermediate is sent after the certificate
    srv3 = ctx.server(conf="[tls]\ncert = %s\nkey = %s\nchain = %s\n" % (
        pki["srv2.crt"], pki["srv2.key"], pki["int.crt"]))
    s = srv3.smtp_tls(verifying(pki["ca.crt"]))
    send_msg(s, "chain")
    stored_tls(srv3, "chain")
    missing = ctx.path("no-such-dir", "missing.key")
    for name, text, words in (
            ("badkey", "cert = %s\nkey = %s\n" % (pki["srv.crt"], missing),
             (missing,)),
            ("badcert", "cert = %s\nkey = %s\n" % (ctx.path("nope.crt"),
                                                   pki["srv.key"]),
             (ctx.path("nope.crt"),)),
            ("mismatch", "cert = %s\nkey = %s\n" % (pki["srv.crt"],
                                                    pki["cli.key"]),
             ("key",)),
            ("badchain", "cert = %s\nkey = %s\nchain = %s\n" % (
                pki["srv2.crt"], pki["srv2.key"], ctx.path("nochain.pem")),
             (ctx.path("nochain.pem"),))):
        ini = ctx.write(name + ".ini", "[tls]\n" + text)
        r = ctx.run([H.BIN, "-c", ini, "--check-config"], timeout=10)
        err = r.stderr.decode("utf-8", "replace")
        check(r.returncode == 2, "%s: --check-config exit %d, want 2; %s" % (
            name, r.returncode, short(err, 300)))
        check(b"configuration OK" not in r.stdout, "%s: stdout says OK" %
              name)
        check(all(w in err for w in words), "%s: stderr does not name %s: "
              "%s" % (name, words, short(err, 300)))
        # the server refuses to start with it
        pf = ctx.path(name + ".ports")
        r = ctx.run([H.BIN, "-c", ini, "--listen", "127.0.0.1:0",
                     "--port-file", pf, "--events", ""], timeout=10)
        check(r.returncode == 2 and not os.path.exists(pf),
              "%s: server started (exit %d)" % (name, r.returncode))


@test()
def min_version_tls13(ctx):
    srv = ctx.server(conf="[tls]\nmin_version = TLSv1.3\n")
    try:
        srv.smtp_tls(verifying(srv.ca, tls12=True))
        raise Fail("a TLS 1.2-only client got through min_version TLSv1.3")
    except ssl.SSLCertVerificationError as e:
        raise Fail("certificate error instead of a version one: %s" % e)
    except ssl.SSLError as e:
        check("VERSION" in str(e).upper() or "PROTOCOL" in str(e).upper(),
              "TLS 1.2 client failed with %r" % e)
    err = srv.wait_event(event="tls_error")[0]
    check(err.get("stage") == "handshake" and "protocol" in
          err.get("reason", ""), "tls_error %s" % err)
    check(close_event(srv, err["session"]).get("reason") in HS_FAILED,
          "close event %s" % close_event(srv, err["session"]))
    s = srv.smtp_tls(verifying(srv.ca))
    check(s.sock.version() == "TLSv1.3", "version %s" % s.sock.version())
    send_msg(s, "tls13")
    stored_tls(srv, "tls13")


@test()
def pipelined_noops_tls(ctx):
    """2000 NOOPs in one write over TLS are all answered, in order; then a
    pipelined transaction with a 1 MB BDAT chunk in one write."""
    srv = ctx.server()
    c = srv.connect()
    c.ehlo()
    c.starttls(verifying(srv.ca))
    c.ehlo()
    n = 2000
    c.send(b"NOOP\r\n" * n + b"HELP\r\n")
    for i in range(n):
        c.expect_reply(b"250 2.0.0 Ok", timeout=20)
    c.expect_reply(b"214 ")
    chunk = (b"Subject: test bdat-tls\r\n\r\n" +
             b"".join(b"%07d %s\r\n" % (i, b"b" * 60) for i in range(15000)))
    c.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n" +
           b"BDAT %d LAST\r\n" % len(chunk) + chunk + b"QUIT\r\n")
    c.expect_reply(b"250 2.1.0")
    c.expect_reply(b"250 2.1.5")
    c.expect_reply(b"250 2.0.0 Ok: queued as ", timeout=20)
    c.expect_reply(b"221")
    f = stored_tls(srv, "bdat-tls")
    check(read_file(f).endswith(chunk), "BDAT message not stored intact")
    noops = srv.find(event="command", verb="NOOP")
    check(len(noops) == n, "%d NOOP command events" % len(noops))


@test()
def big_message_tls(ctx):
    """A 2 MB message through smtplib over TLS is stored byte for byte."""
    srv = ctx.server()
    lines = []
    i = 0
    size = 0
    while size < 2 * 1024 * 1024:
        ln = b"%s%08d %s" % (b"." if i % 37 == 0 else b"", i,
                             bytes([65 + i % 26]) * (40 + i % 900))
        lines.append(ln)
        size += len(ln) + 2
        i += 1
    msg = (b"From: a@example.com\r\nTo: b@example.com\r\n"
           b"Subject: test big-tls\r\n\r\n" + b"\r\n".join(lines) + b"\r\n")
    s = srv.smtp_tls(verifying(srv.ca), timeout=30)
    s.ehlo()
    refused = s.sendmail("a@example.com", ["b@example.com"], msg)
    check(refused == {}, "refused %s" % refused)
    s.quit()
    f = stored_tls(srv, "big-tls")
    raw = read_file(f)
    check(raw.endswith(msg), "stored message differs (%d bytes stored, %d "
          "sent)" % (len(raw), len(msg)))
    ev = srv.wait_event(event="message")[0]
    check(ev.get("size") == len(msg), "message size %s, sent %d" % (
        ev.get("size"), len(msg)))


@test()
def version_cipher_settings(ctx):
    """[tls] max_version, ciphers and ciphersuites are what a client gets;
    a cipher list OpenSSL refuses fails --check-config."""
    srv = ctx.server(conf="[tls]\nmax_version = TLSv1.2\n"
                     "ciphers = ECDHE-ECDSA-CHACHA20-POLY1305\n")
    s = srv.smtp_tls(verifying(srv.ca))
    check(s.sock.version() == "TLSv1.2" and s.sock.cipher()[0] ==
          "ECDHE-ECDSA-CHACHA20-POLY1305", "max_version/ciphers: got %s %s"
          % (s.sock.version(), s.sock.cipher()))
    send_msg(s, "tls12")
    stored_tls(srv, "tls12", proto=rb"with ESMTPS \(TLSv1\.2:ECDHE-ECDSA-"
               rb"CHACHA20-POLY1305\)")
    srv2 = ctx.server(conf="[tls]\nciphersuites = "
                      "TLS_CHACHA20_POLY1305_SHA256\n")
    s = srv2.smtp_tls(verifying(srv2.ca))
    check(s.sock.cipher()[0] == "TLS_CHACHA20_POLY1305_SHA256",
          "ciphersuites: got %s" % (s.sock.cipher(),))
    s.quit()
    ev = srv2.wait_event(event="tls")[0]
    check(ev.get("cipher") == "TLS_CHACHA20_POLY1305_SHA256" and
          ev.get("bits") == 256, "tls event %s" % ev)
    bad = ctx.write("bad.ini", "[tls]\nciphers = NO-SUCH-CIPHER\n")
    r = ctx.run([H.BIN, "-c", bad, "--check-config"], timeout=10)
    check(r.returncode == 2 and b"NO-SUCH-CIPHER" in r.stderr,
          "bad ciphers: exit %d %s" % (r.returncode, short(r.stderr, 300)))


@test()
def starttls_hook_rules(ctx):
    """Rules at the starttls hook and the tls matcher: a delayed 220 still
    drops what was pipelined after STARTTLS; a rule can refuse MAIL only
    in plaintext; a TLS fault can be picked by HELO name."""
    conf = ("[rule plaintext-mail]\nhook = mail\ntls = no\n"
            "reply = 550 5.7.1 Use TLS\n"
            "[rule expired-for-some]\nhook = starttls\n"
            "helo = *.expired.test\naction = tls_fault\n"
            "tls_fault = expired\n"
            "[rule slow-starttls]\nhook = starttls\ndelay = 1s\n")
    srv = ctx.server(conf=conf)
    c = srv.connect()
    c.ehlo()
    c.cmd("MAIL FROM:<a@example.com>")
    c.expect_reply(b"550 5.7.1 Use TLS")
    t0 = time.monotonic()
    c.send(b"STARTTLS\r\nEHLO x\r\n")
    c.expect_reply(b"220 2.0.0 ")
    between(time.monotonic() - t0, 0.9, 4, "delayed STARTTLS")
    c.expect_silence(0.3)
    c.wrap(verifying(srv.ca), "localhost")
    c.expect_silence(0.3)
    c.ehlo("after.test")
    envelope(c, helo=False)         # the tls = no rule no longer matches
    data(c, body("rules"))
    c.cmd("QUIT")
    c.expect_reply(b"221")
    stored_tls(srv, "rules")
    ev = srv.wait_event(event="tls_injection")
    check(len(ev) == 1 and ev[0].get("discarded") == 8, "tls_injection %s" %
          ev)
    try:
        srv.smtp_tls(verifying(srv.ca), helo="mx1.expired.test")
        raise Fail("the expired certificate verified")
    except ssl.SSLCertVerificationError as e:
        check("certificate has expired" in e.verify_message, "verify %r" %
              e.verify_message)
    fl = [(f.get("rule"), f.get("hook")) for f in srv.exactly(3,
                                                               event="fault")]
    check(fl == [("plaintext-mail", "mail"), ("slow-starttls", "starttls"),
                 ("expired-for-some", "starttls")], "fault events %s" % fl)


@test()
def key_update_tls13(ctx):
    """TLS 1.3 KeyUpdate from the client (openssl s_client's K and k
    commands) mid-session: the server answers on."""
    if not shutil.which("openssl"):
        raise Skip("openssl command not installed")
    srv = ctx.server()
    p = subprocess.Popen(["openssl", "s_client", "-starttls", "smtp",
                          "-connect", "127.0.0.1:%d" % srv.port, "-CAfile",
                          srv.ca, "-crlf"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True, cwd=ctx.tmp)
    with ctx.lock:
        ctx.procs.append(p)
    # lower-case SMTP: s_client takes a line starting with Q, R, K or k
    # as its own command
    for line in (b"ehlo keys.test", b"K", b"noop", b"k", b"noop", b"quit"):
        p.stdin.write(line + b"\n")
        p.stdin.flush()
        time.sleep(0.25)
    try:
        out, _ = p.communicate(timeout=T(10))
    except subprocess.TimeoutExpired:
        kill_proc(p)
        raise Fail("s_client did not finish")
    out = out.decode("utf-8", "replace")
    check(out.count("KEYUPDATE") == 2, "s_client sent no KeyUpdate: %s" %
          short(out[-400:], 400))
    replies = re.findall(r"^(\d{3}) (.*)$", out, re.M)
    check([r[0] for r in replies][-4:] == ["250", "250", "250", "221"],
          "replies over TLS: %s" % replies)
    ev = close_event(srv, reason="quit")
    check(not srv.find(event="tls_error"), "tls_error %s" %
          srv.find(event="tls_error"))
    check(ev.get("messages") == 0, "close %s" % ev)


@test()
def sigterm_during_handshake(ctx):
    """SIGTERM while handshakes are in progress: those sessions end at
    once (no SMTP reply can be sent: the client speaks TLS), an
    established TLS session gets its 421 over TLS, and the server exits
    0 promptly instead of waiting for handshake_timeout."""
    srv = ctx.server(implicit=True)
    problems = []
    a = srv.connect()               # STARTTLS answered, then silence
    a.ehlo()
    a.cmd("STARTTLS")
    a.expect_reply(b"220 2.0.0 ")
    b = srv.connect()               # half a ClientHello
    b.ehlo()
    b.cmd("STARTTLS")
    b.expect_reply(b"220 2.0.0 ")
    hello = client_hello()
    b.send(hello[:len(hello) // 2])
    c = Client("127.0.0.1", srv.tls_port, timeout=10, ctx=ctx)  # SMTPS
    d = srv.connect()               # TLS established, idle
    d.ehlo()
    d.starttls(verifying(srv.ca))
    d.ehlo()
    srv.wait_event(event="connect", count=4)
    time.sleep(0.2)
    t0 = time.monotonic()
    srv.expect_exit = True
    srv.signal(signal.SIGTERM)
    got = d.raw(5)
    if not got.startswith(b"421 4.3.2 ") or not d.eof:
        problems.append("established session got %s (closed: %s)" % (
            short(got), d.eof))
    for cl, what in ((a, "silent STARTTLS handshake"),
                     (b, "half-done STARTTLS handshake"),
                     (c, "silent SMTPS handshake")):
        got = cl.raw(max(0.1, t0 + 3 - time.monotonic()))
        if re.search(rb"\d\d\d[ -]", got):
            problems.append("%s got a plaintext reply %s" % (what,
                                                            short(got)))
        if not cl.eof:
            problems.append("%s still open %.1fs after SIGTERM" % (
                what, time.monotonic() - t0))
    try:
        rc = srv.proc.wait(timeout=max(0.1, t0 + T(5) - time.monotonic()))
        if rc != 0:
            problems.append("exit status %s" % rc)
    except subprocess.TimeoutExpired:
        problems.append("server still running %.1fs after SIGTERM (killed)"
                        % (time.monotonic() - t0))
        srv.kill()
    closes = {e["session"]: e.get("reason") for e in srv.find(event="close")}
    if len(closes) != 4 or set(closes.values()) != {"shutdown"}:
        problems.append("close reasons %s" % closes)
    check(not problems, "; ".join(problems))


# ======================================================= shipped scenarios

@test()
def tls_unavailable(ctx):
    srv = ctx.server(scenario_arg("tls-unavailable"))
    c = srv.connect()
    check("STARTTLS" in c.ehlo(), "STARTTLS not advertised")
    c.cmd("STARTTLS")
    ln = c.expect_reply(b"454 4.7.0 ")
    check("TLS not available" in ln, "reply %r" % ln)
    envelope(c, helo=False)         # plaintext goes on
    data(c, body("plain"))
    c.cmd("QUIT")
    c.expect_reply(b"221")
    f = srv.wait_new(1)[0]
    check(re.search(rb"with ESMTP id ", read_file(f)), "Received: of a "
          "plaintext message")
    # smtplib: a refused STARTTLS is an error it reports
    s = srv.smtp()
    s.connect("127.0.0.1", srv.port)
    s.ehlo()
    try:
        s.starttls(context=verifying(srv.ca))
        raise Fail("smtplib starttls() succeeded")
    except smtplib.SMTPResponseException as e:
        check(e.smtp_code == 454, "smtplib got %s" % e.smtp_code)
    s.quit()
    fl = srv.exactly(2, event="fault")
    check(all(x.get("hook") == "starttls" and x.get("code") == 454
              for x in fl), "fault events %s" % fl)
    check(not srv.find(event="tls"), "a handshake happened")


@test()
def tls_abort(ctx):
    srv = ctx.server(scenario_arg("tls-abort"))
    c = srv.connect()
    c.ehlo()
    c.cmd("STARTTLS")
    c.expect_reply(b"220 2.0.0 ")
    c.wait_closed(timeout=3)        # before we sent a handshake byte
    check(not c.reset_seen, "closed with RST, expected a FIN")
    close_event(srv, reason="fault_tls_abort")
    s = srv.smtp_named()
    try:
        s.starttls(context=verifying(srv.ca))
        raise Fail("smtplib's handshake succeeded")
    except ssl.SSLCertVerificationError as e:
        raise Fail("certificate error: %s" % e)
    except (OSError, smtplib.SMTPServerDisconnected):
        pass
    srv.exactly(2, event="fault", action="tls_abort", hook="starttls")
    srv.exactly(2, event="close", reason="fault_tls_abort")


@test()
def tls_reset(ctx):
    srv = ctx.server(scenario_arg("tls-reset"))
    # a real client's handshake
    c = srv.connect()
    c.ehlo()
    c.cmd("STARTTLS")
    c.expect_reply(b"220 2.0.0 ")
    try:
        c.wrap(verifying(srv.ca), "localhost")
        raise Fail("handshake succeeded")
    except ssl.SSLCertVerificationError as e:
        raise Fail("certificate error: %s" % e)
    except ConnectionResetError:
        pass
    except ssl.SSLError as e:
        check("EOF" not in type(e).__name__, "handshake ended by FIN, not RST:"
              " %r" % e)
    close_event(srv, reason="fault_tls_reset")
    # byte-level: the ClientHello is answered by a reset, nothing else
    d = srv.connect()
    d.ehlo()
    d.cmd("STARTTLS")
    d.expect_reply(b"220 2.0.0 ")
    d.expect_silence(0.3)           # nothing until the ClientHello
    d.send(client_hello())
    got = d.raw(3)
    check(d.eof and d.reset_seen and not got, "after the ClientHello: %s, "
          "eof %s, reset %s" % (short(got), d.eof, d.reset_seen))
    srv.exactly(2, event="close", reason="fault_tls_reset")
    srv.exactly(2, event="fault", action="tls_reset", hook="starttls")


@test()
def tls_stall(ctx):
    srv = ctx.server(scenario_arg("tls-stall"),
                     conf="[faults]\nhold_max = 3s\n")
    c = srv.connect()
    c.ehlo()
    c.cmd("STARTTLS")
    c.expect_reply(b"220 2.0.0 ")
    t0 = time.monotonic()
    c.send(client_hello())
    # smtplib, meanwhile, gives up after its own 2 s
    s = srv.smtp_named(timeout=2)
    t1 = time.monotonic()
    try:
        s.starttls(context=verifying(srv.ca))
        raise Fail("smtplib's handshake succeeded")
    except (socket.timeout, TimeoutError):
        between(time.monotonic() - t1, 1.8, 4, "smtplib handshake timeout")
    except OSError as e:
        raise Fail("smtplib handshake failed with %r, expected a timeout" % e)
    s.close()
    c.expect_silence(max(0.0, t0 + 2 - time.monotonic()))  # no ServerHello
    c.wait_closed(timeout=8)
    between(time.monotonic() - t0, 2.5, 8, "stall until hold_max")
    srv.exactly(1, event="close", reason="hold_max")
    srv.exactly(1, event="close", reason="client_gone")
    srv.exactly(2, event="fault", action="tls_stall", hook="starttls")
    check(not srv.find(event="tls"), "a handshake finished")


# verify_message of Python's ssl, (code, text) of openssl's Verify return code
CERT_FAULTS = {
    "tls-expired": ("expired", "certificate has expired",
                    (10, "certificate has expired")),
    "tls-not-yet-valid": ("not_yet_valid", "certificate is not yet valid",
                          (9, "certificate is not yet valid")),
    "tls-wrong-host": ("wrong_host", "Hostname mismatch",
                       (62, "hostname mismatch")),
    "tls-self-signed": ("self_signed", "self-signed certificate",
                        (18, "self-signed certificate")),
    "tls-unknown-ca": ("unknown_ca", "unable to get local issuer certificate",
                       (20, "unable to get local issuer certificate")),
}


def cert_fault(ctx, name):
    variant, message, (code, text) = CERT_FAULTS[name]
    srv = ctx.server(scenario_arg(name))
    # a verifying client refuses the certificate
    try:
        srv.smtp_tls(verifying(srv.ca), hostname="localhost")
        raise Fail("verifying client accepted the %s certificate" % variant)
    except ssl.SSLCertVerificationError as e:
        check(message in (e.verify_message or ""), "verify_message %r, "
              "expected %r" % (e.verify_message, message))
    err = srv.wait_event(event="tls_error")[0]
    check(err.get("stage") == "handshake", "tls_error %s" % err)
    close_event(srv, err["session"])
    # openssl s_client stops on it with -verify_return_error ...
    rc, out, err = s_client(ctx, srv, srv.ca, "-verify_hostname", "localhost",
                            "-verify_return_error")
    m = re.findall(r"Verify return code: (\d+) \(([^)]*)\)", out)
    check(rc != 0 and m and m[0] == (str(code), text), "s_client -verify_"
          "return_error: exit %d, %s, expected %d (%s)" % (rc, m, code, text))
    check("221 2.0.0 Bye" not in out, "SMTP went on after a failed verify")
    # ... and without it reports it and goes on
    rc, out, err = s_client(ctx, srv, srv.ca, "-verify_hostname", "localhost")
    check("verify error:num=%d:%s" % (code, text) in err, "s_client: no "
          "verify error %d (%s) in %s" % (code, text, short(err, 400)))
    check(rc == 0 and "221 2.0.0 Bye" in out, "s_client exit %d: %s" % (
        rc, short(out[-300:], 300)))
    # an opportunistic client completes the handshake and delivers
    s = srv.smtp_tls(insecure(), hostname="localhost")
    s.ehlo()
    send_msg(s, "opportunistic")
    f = stored_tls(srv, "opportunistic")
    ev = tls_event(srv, f)
    check(ev.get("certificate") == variant, "tls event %s" % ev)
    srv.exactly(4, event="fault", action="tls_fault", hook="starttls")


@test()
def tls_expired(ctx):
    cert_fault(ctx, "tls-expired")


@test()
def tls_not_yet_valid(ctx):
    cert_fault(ctx, "tls-not-yet-valid")


@test()
def tls_wrong_host(ctx):
    cert_fault(ctx, "tls-wrong-host")


@test()
def tls_self_signed(ctx):
    cert_fault(ctx, "tls-self-signed")


@test()
def tls_unknown_ca(ctx):
    cert_fault(ctx, "tls-unknown-ca")


@test()
def tls_old_protocol(ctx):
    srv = ctx.server(scenario_arg("tls-old-protocol"))
    try:
        srv.smtp_tls(verifying(srv.ca))
        raise Fail("a default client accepted TLS 1.0")
    except ssl.SSLCertVerificationError as e:
        raise Fail("certificate error instead of a version one: %s" % e)
    except ssl.SSLError as e:
        check("VERSION" in str(e).upper() or "PROTOCOL" in str(e).upper(),
              "default client failed with %r" % e)
    err = srv.wait_event(event="tls_error")[0]
    check("protocol" in err.get("reason", ""), "tls_error %s" % err)
    # a client that still allows TLS 1.0
    old = insecure()
    try:
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ValueError, ssl.SSLError) as e:
        ctx.note("TLS 1.0 client not possible here: %s" % e)
        return
    try:
        s = srv.smtp_tls(old)
    except ssl.SSLError as e:
        ctx.note("local OpenSSL refuses TLS 1.0: %s" % e)
        return
    check(s.sock.version() == "TLSv1", "version %s" % s.sock.version())
    s.ehlo()
    send_msg(s, "tls10")
    f = stored_tls(srv, "tls10", proto=rb"with ESMTPS \(TLSv1:")
    ev = tls_event(srv, f)
    check(ev.get("protocol") == "TLSv1" and ev.get("certificate") == "tls1",
          "tls event %s" % ev)


@test()
def tls_weak_ciphers(ctx):
    srv = ctx.server(scenario_arg("tls-weak-ciphers"))
    try:
        srv.smtp_tls(verifying(srv.ca))
        raise Fail("a default client agreed on a cipher")
    except ssl.SSLCertVerificationError as e:
        raise Fail("certificate error instead of a cipher one: %s" % e)
    except ssl.SSLError as e:
        check("HANDSHAKE_FAILURE" in str(e).upper(), "default client failed "
              "with %r" % e)
    err = srv.wait_event(event="tls_error")[0]
    check("no shared cipher" in err.get("reason", ""), "tls_error %s" % err)
    check(close_event(srv, err["session"]).get("reason") in HS_FAILED,
          "close event %s" % close_event(srv, err["session"]))
    # a client that offers only NULL ciphers gets one
    null = insecure()
    try:
        null.maximum_version = ssl.TLSVersion.TLSv1_2
        null.set_ciphers("NULL-SHA256:NULL-SHA:@SECLEVEL=0")
    except (ValueError, ssl.SSLError) as e:
        ctx.note("NULL-cipher client not possible here: %s" % e)
        return
    try:
        s = srv.smtp_tls(null)
    except ssl.SSLError as e:
        errs = srv.wait_event(event="tls_error", count=2)
        if "no shared cipher" in errs[-1].get("reason", ""):
            # NULL-SHA256 and NULL-SHA authenticate with RSA; the fault's
            # certificate is ECDSA, so no client at all can connect
            ctx.note("a client offering exactly NULL-SHA256:NULL-SHA gets "
                     "no shared cipher either (RSA suites, ECDSA key)")
        else:
            ctx.note("local OpenSSL refuses NULL ciphers: %s" % e)
        return
    check(s.sock.cipher()[0].startswith("NULL-"), "cipher %s" %
          (s.sock.cipher(),))
    s.ehlo()
    send_msg(s, "null-cipher")
    f = stored_tls(srv, "null-cipher", proto=rb"with ESMTPS \(TLSv1\.2:NULL-")
    check(tls_event(srv, f).get("certificate") == "weak_ciphers", "tls event")


@test()
def tls_not_offered(ctx):
    srv = ctx.server(scenario_arg("tls-not-offered"))
    c = srv.connect()
    lines = c.ehlo()
    check("STARTTLS" not in lines, "EHLO offers STARTTLS: %s" % lines)
    c.cmd("STARTTLS")
    c.expect_reply(b"502 5.5.1 ")
    envelope(c, helo=False)
    data(c, body("not-offered"))
    c.cmd("QUIT")
    c.expect_reply(b"221")
    s = srv.smtp()
    s.connect("127.0.0.1", srv.port)
    s.ehlo()
    try:
        s.starttls(context=verifying(srv.ca))
        raise Fail("smtplib starttls() succeeded")
    except smtplib.SMTPNotSupportedError:
        pass
    s.quit()
    f = srv.wait_new(1)[0]
    check(re.search(rb"with ESMTP id ", read_file(f)), "Received: of a "
          "plaintext message")
    check(not srv.find(event="tls") and not srv.find(event="tls_error"),
          "TLS events without TLS")


@test()
def tls_scenarios_covered(ctx):
    """Every shipped tls-* scenario passes --check-config, opens with the
    comment block, and has a test of its own in this file."""
    names = sorted(f[:-4] for f in os.listdir(SHIPPED)
                   if f.startswith("tls-") and f.endswith(".ini"))
    check(names, "no shipped tls-* scenarios")
    tested = {t[0] for t in TESTS}
    missing = [n for n in names if n.replace("-", "_") not in tested]
    check(not missing, "shipped TLS scenarios without a test: %s" % missing)
    H.check_shipped(ctx, names)


# ================================================================== runner

HEAVY = {"tls_stall", "sigterm_during_handshake", "handshake_timeout",
         "key_update_tls13", "starttls_hook_rules", "big_message_tls",
         "cert_key_files", "client_cert_logged", "pipelined_noops_tls"}

if __name__ == "__main__":
    sys.exit(H.main(sys.argv, "tls", "tls_test", "sf-tls", heavy=HEAVY,
                    ctx_class=Ctx))
