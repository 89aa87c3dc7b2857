#!/usr/bin/env python3
"""bench-tls.py - STARTTLS half of scripts/bench (python3 stdlib only).

  tls --json OUT [opts] NAME:PID:PORT
        1. hold --idle sessions that did STARTTLS and EHLO again, then sit
           idle: VmRSS per idle TLS session;
        2. --clients worker processes run full STARTTLS transactions
           (connect, EHLO, STARTTLS, EHLO, MAIL, RCPT, DATA, 1 KB, QUIT)
           for --secs seconds: transactions per second, server CPU each.
  worker PORT START END OUT
        one worker of 2 (internal).

The certificate is not verified (smtpfault's own generated one; the CA is
of no interest here).  TLS as Python's ssl negotiates it (TLS 1.3 with
OpenSSL's defaults), a full handshake each time (no session resumption).
Only 127.0.0.1 is contacted; every loop is bounded in count and time.
"""

import argparse
import importlib.util
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time


def _load_helper():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        "bench-helper.py")
    spec = importlib.util.spec_from_file_location("bench_helper", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


H = _load_helper()
HOST = H.HOST
GOAL_TLS_RSS_KB = 20.0

def _body(size=1024):
    head = (b"From: <sender@bench.test>\r\nTo: <rcpt@bench.test>\r\n"
            b"Subject: bench\r\n\r\n")
    line = b"x" * 70 + b"\r\n"
    n = max((size - len(head)) // len(line), 1)
    return head + line * n


BODY = _body()      # 1 KB or just under, as smtp-source -l 1024 sends


def client_ctx():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Conn:
    """A line-oriented SMTP client over a blocking socket (plain or TLS)."""

    def __init__(self, port, timeout):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.buf = b""

    def reply(self):
        """Read one complete reply; return its code (int)."""
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                if len(line) < 4:
                    raise ConnectionError("bad reply line %r" % line)
                if line[3:4] != b"-":
                    return int(line[:3])
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk

    def cmd(self, data, want):
        self.sock.sendall(data)
        code = self.reply()
        if code != want:
            raise ConnectionError("%r -> %d" % (data[:20], code))

    def starttls(self, ctx):
        self.cmd(b"EHLO bench.test\r\n", 250)
        self.cmd(b"STARTTLS\r\n", 220)
        if self.buf:
            raise ConnectionError("data after the 220 to STARTTLS")
        self.sock = ctx.wrap_socket(self.sock, server_hostname="localhost")
        self.cmd(b"EHLO bench.test\r\n", 250)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def open_tls(port, ctx, timeout=5.0):
    c = Conn(port, timeout)
    try:
        if c.reply() != 220:
            raise ConnectionError("no 220 banner")
        c.starttls(ctx)
    except BaseException:
        c.close()
        raise
    return c


def transaction(port, ctx):
    c = open_tls(port, ctx)
    try:
        # MAIL, RCPT and DATA pipelined (RFC 2920), as an MTA sends them
        c.sock.sendall(b"MAIL FROM:<sender@bench.test>\r\n"
                       b"RCPT TO:<rcpt@bench.test>\r\nDATA\r\n")
        for want in (250, 250, 354):
            code = c.reply()
            if code != want:
                raise ConnectionError("MAIL/RCPT/DATA: %d" % code)
        c.cmd(BODY + b".\r\n", 250)
        c.cmd(b"QUIT\r\n", 221)
    finally:
        c.close()


# -------------------------------------------------------------------- worker

def cmd_worker(args):
    """Transactions from START to END (time.time()); counts the ones that
    finished in between.  Writes {"done": N, "errors": N, "first": msg}."""
    ctx = client_ctx()
    done = errors = 0
    first = None
    time.sleep(max(args.start - time.time(), 0))
    while time.time() < args.end:
        try:
            transaction(args.port, ctx)
            if time.time() <= args.end:
                done += 1
        except (OSError, ConnectionError, ssl.SSLError) as e:
            errors += 1
            first = first or str(e)
            if errors > 100:
                break
            time.sleep(0.01)
    with open(args.out, "w") as f:
        json.dump({"done": done, "errors": errors, "first": first}, f)


# ----------------------------------------------------------------------- tls

def tls_idle(srv, count, budget):
    pid, port = srv["pid"], srv["port"]
    ctx = client_ctx()
    # warm-up: the first handshakes set up OpenSSL's tables and caches
    for _ in range(20):
        transaction(port, ctx)
    time.sleep(0.5)
    rss0 = H.proc_rss_kb(pid)
    held, why = [], None
    t = time.monotonic()
    end = t + budget
    while len(held) < count:
        if time.monotonic() > end:
            why = "time budget of %gs used up" % budget
            break
        try:
            held.append(open_tls(port, ctx))
        except (OSError, ConnectionError, ssl.SSLError) as e:
            why = "STARTTLS session %d: %s" % (len(held) + 1, e)
            break
    took = time.monotonic() - t
    time.sleep(1.0)
    rss1 = H.proc_rss_kb(pid)
    alive = 0
    for c in held:
        try:
            c.sock.setblocking(False)
            d = c.sock.recv(1)
            alive += 1 if d else 0
        except (BlockingIOError, ssl.SSLWantReadError):
            alive += 1
        except (OSError, ssl.SSLError):
            pass
    for c in held:
        c.close()
    per = (rss1 - rss0) / alive if alive else float("nan")
    return {"wanted": count, "opened": len(held), "held": alive,
            "open_secs": took, "rss_before_kb": rss0, "rss_held_kb": rss1,
            "kb_per_session": per, "stopped": why}


def tls_rate(srv, here, clients, secs):
    pid, port = srv["pid"], srv["port"]
    start = time.time() + 1.0
    end = start + secs
    outs = [os.path.join(here, "tls-worker-%d.json" % i)
            for i in range(clients)]
    procs = []
    try:
        for o in outs:
            procs.append(subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "worker",
                 str(port), repr(start), repr(end), o]))
        time.sleep(max(start - time.time(), 0))
        c0 = H.proc_cpu_ticks(pid)
        time.sleep(max(end - time.time(), 0))
        cpu = H.proc_cpu_ticks(pid) - c0
        for p in procs:
            p.wait(timeout=30)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    done = errors = 0
    first = None
    for o in outs:
        try:
            with open(o) as f:
                r = json.load(f)
        except (OSError, ValueError):
            errors += 1
            first = first or "worker wrote no result"
            continue
        done += r["done"]
        errors += r["errors"]
        first = first or r["first"]
    rate = done / secs
    return {"clients": clients, "secs": secs, "done": done,
            "errors": errors, "first_error": first, "tx_per_s": rate,
            "server_ticks": cpu,
            "server_cpu_ms_per_tx": (cpu * 1e3 / H.CLK_TCK / done
                                     if done else float("nan")),
            "server_cpu_share": cpu / H.CLK_TCK / secs}


def cmd_tls(args):
    srv = H.parse_server(args.server)
    H.raise_nofile(args.idle + 256)
    if not H.alive(srv["pid"]):
        H.die("%s (pid %d) is not running" % (srv["name"], srv["pid"]))
    try:
        idle = tls_idle(srv, args.idle, 120)
    except (OSError, ConnectionError, ssl.SSLError) as e:
        H.die("tls: warm-up transaction failed: %s" % e)
    print("  idle: %d/%d STARTTLS sessions held (opened one after another "
          "in %.1fs); VmRSS %d -> %d kB: %.2f KB per idle TLS session" %
          (idle["held"], idle["wanted"], idle["open_secs"],
           idle["rss_before_kb"], idle["rss_held_kb"],
           idle["kb_per_session"]))
    if idle["stopped"]:
        print("  idle: stopped early: %s" % idle["stopped"])
    time.sleep(1.0)         # let the server close the idle sessions
    rate = tls_rate(srv, os.path.dirname(os.path.abspath(args.json)),
                    args.clients, args.secs)
    print("  rate: %d clients (processes), %gs: %d STARTTLS transactions, "
          "%.0f/s, %d errors%s; server CPU %.2f ms per transaction "
          "(%.0f%% of a CPU; a whole CPU would do ~%.0f/s)" %
          (rate["clients"], rate["secs"], rate["done"], rate["tx_per_s"],
           rate["errors"],
           " (%s)" % rate["first_error"] if rate["first_error"] else "",
           rate["server_cpu_ms_per_tx"], 100 * rate["server_cpu_share"],
           1e3 / rate["server_cpu_ms_per_tx"]
           if rate["server_cpu_ms_per_tx"] > 0 else float("nan")))
    if not H.alive(srv["pid"]):
        H.die("%s (pid %d) died during the TLS part" %
              (srv["name"], srv["pid"]))
    per = idle["kb_per_session"]
    rows = [
        ("tls held", "idle STARTTLS sessions held", "",
         "%d/%d" % (idle["held"], idle["wanted"]), "%d" % idle["held"],
         ">= %d" % idle["wanted"],
         "PASS" if idle["held"] >= idle["wanted"] else "MISS"),
        ("tls RSS", "resident KB per idle TLS session (%d)" % idle["held"],
         "", "%.2f KB" % per, "%.2f KB" % per, "<= %g KB" % GOAL_TLS_RSS_KB,
         "PASS" if idle["held"] > 0 and per <= GOAL_TLS_RSS_KB else "MISS"),
        ("tls tx/s", "STARTTLS transactions/s, %d clients" % args.clients,
         "", "%.2f ms CPU/tx" % rate["server_cpu_ms_per_tx"],
         "%.0f/s" % rate["tx_per_s"], "(info)", ""),
    ]
    with open(args.json, "w") as f:
        json.dump({"idle": idle, "rate": rate, "rows": rows}, f, indent=1)


def on_term(signum, _frame):
    sys.exit(128 + signum)


def main():
    signal.signal(signal.SIGTERM, on_term)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("tls")
    p.add_argument("--json", required=True)
    p.add_argument("--idle", type=int, default=2000,
                   help="idle STARTTLS sessions to hold")
    p.add_argument("--clients", type=int, default=4,
                   help="parallel client processes for the rate")
    p.add_argument("--secs", type=float, default=8.0,
                   help="length of the rate run")
    p.add_argument("server", metavar="NAME:PID:PORT")
    p = sub.add_parser("worker")
    p.add_argument("port", type=int)
    p.add_argument("start", type=float)
    p.add_argument("end", type=float)
    p.add_argument("out")
    args = ap.parse_args()
    {"tls": cmd_tls, "worker": cmd_worker}[args.cmd](args)


if __name__ == "__main__":
    main()
