#!/usr/bin/env python3
"""bench-stall.py - stalled-session half of scripts/bench (python3 stdlib).

scripts/bench starts smtpfault with a scenario; this file holds many
sessions on it and measures them.  Subcommands:

  delay --json OUT --events FILE [opts] NAME:PID:PORT
        every client's RCPT is held back by a `delay` rule: lateness of each
        reply (client side, kernel receive timestamps), VmRSS per held
        session, banner latency of a new client meanwhile, how soon a
        client that hangs up mid-delay is freed (close/client_gone in the
        events file), server CPU while nothing but waiting happens
  hang --json OUT [opts] NAME:PID:PORT
        clients from --src (127.0.0.2) are held by a `hang` rule at connect
        (no banner): VmRSS per held session, banner latency of a client from
        127.0.0.1 (not matched by the rule), server CPU while holding

Each writes a JSON file with its figures and the summary rows
(bench-helper.py report --part).  Only 127.0.0.0/8 is contacted; every
loop is bounded in count and time; the sockets close when it exits.
"""

import argparse
import datetime
import importlib.util
import json
import os
import selectors
import signal
import socket
import statistics
import struct
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
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)     # Linux
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)

# Goals (the brief of these parts; DESIGN.md: tens of thousands of stalled
# connections, cheaply).
GOAL_LATE_P99_MS = 10.0        # delayed reply lateness, p99
GOAL_RSS_KB = 2.0              # per held session
GOAL_BANNER_MS = 5.0           # new client's banner while others are held
GOAL_GONE_MS = 100.0           # hang-up noticed during a delay
GOAL_HOLD_TICKS = 1.0          # CPU ticks/s while only holding (1% of a CPU)


def verdict(ok):
    return "PASS" if ok else "MISS"


def sched_ns(pid):
    """Time on CPU in ns (/proc/PID/schedstat), or None without it."""
    try:
        with open("/proc/%d/schedstat" % pid) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def sched_all(pid):
    """(ns on CPU, ns waiting on a run queue), or None."""
    try:
        with open("/proc/%d/schedstat" % pid) as f:
            v = f.read().split()
        return int(v[0]), int(v[1])
    except (OSError, ValueError, IndexError):
        return None


def cpu_sample(pid):
    return H.proc_cpu_ticks(pid), sched_ns(pid), time.monotonic()


def cpu_since(pid, s0):
    t1, n1, m1 = cpu_sample(pid)
    t0, n0, m0 = s0
    secs = m1 - m0
    res = {"secs": secs, "ticks": t1 - t0,
           "ticks_per_s": (t1 - t0) / secs if secs > 0 else float("nan")}
    if n0 is not None and n1 is not None:
        res["cpu_ms_per_s"] = (n1 - n0) / 1e6 / secs
    return res


def pct(vals, p):
    """Nearest-rank percentile of a non-empty list."""
    v = sorted(vals)
    k = max(0, min(len(v) - 1, int(-(-p * len(v) // 100)) - 1))
    return v[k]


def banner_probe(port, src=None, timeout=2.0):
    """ms from connect() to the 220 line of a new client, or None."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if src:
            s.bind((src, 0))
        s.settimeout(timeout)
        t0 = time.perf_counter()
        s.connect((HOST, port))
        line = H.read_banner(s, time.monotonic() + timeout)
        ms = (time.perf_counter() - t0) * 1e3
        s.sendall(b"QUIT\r\n")
        return ms if line.startswith("220") else None
    except OSError:
        return None
    finally:
        s.close()


def banner_probes(port, n, gap=0.05):
    got = []
    for _ in range(n):
        got.append(banner_probe(port))
        time.sleep(gap)
    ok = [x for x in got if x is not None]
    return {"samples": len(got), "answered": len(ok),
            "p50_ms": statistics.median(ok) if ok else None,
            "max_ms": max(ok) if ok else None,
            "all_ms": [round(x, 3) for x in ok]}


def converse(socks, payload, nreplies, deadline):
    """Send payload on each socket, read nreplies complete replies.

    Returns (ok sockets, {sock: last reply code}, reason of the first
    failure or None).
    """
    sel = selectors.DefaultSelector()
    state = {}
    why = None
    for s in socks:
        try:
            s.send(payload)
        except OSError as e:
            why = why or "send: %s" % e
            continue
        state[s] = [b"", 0, None]
        sel.register(s, selectors.EVENT_READ)
    done = []
    while state and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=max(deadline - time.monotonic(),
                                             0)):
            s = key.fileobj
            st = state[s]
            try:
                chunk = s.recv(4096)
            except OSError:
                chunk = b""
            if not chunk:
                why = why or "connection closed during the dialogue"
                sel.unregister(s)
                del state[s]
                continue
            st[0] += chunk
            while b"\n" in st[0]:
                line, st[0] = st[0].split(b"\n", 1)
                if len(line) >= 4 and line[3:4] == b" ":
                    st[1] += 1
                    st[2] = line[:3].decode("latin-1")
            if st[1] >= nreplies:
                sel.unregister(s)
                del state[s]
                done.append((s, st[2]))
    if state:
        why = why or "%d sessions did not answer in time" % len(state)
        for s in state:
            sel.unregister(s)
    sel.close()
    good = [s for s, code in done if code and code.startswith("2")]
    if len(good) < len(done):
        bad = [c for _, c in done if not (c and c.startswith("2"))]
        why = why or "unexpected reply %s" % bad[0]
    return good, why


def parse_time(stamp):
    """Event time (2026-11-30T00:00:00.123456Z) as a POSIX timestamp."""
    dt = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.replace(tzinfo=datetime.timezone.utc).timestamp()


def read_events(path):
    out = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    except OSError:
        pass
    return out


def fmt_ms(x):
    return "-" if x is None else "%.2f" % x


# --------------------------------------------------------------------- delay

def cmd_delay(args):
    srv = H.parse_server(args.server)
    pid, port = srv["pid"], srv["port"]
    H.raise_nofile(args.count + 256)
    if not H.alive(pid):
        H.die("%s (pid %d) is not running" % (srv["name"], pid))
    time.sleep(0.5)
    rss0 = H.proc_rss_kb(pid)

    t = time.monotonic()
    socks, why = H.open_idle(port, args.count, pid, 60)
    if why:
        print("  delay: opened %d/%d sessions: %s" % (len(socks), args.count,
                                                     why))
    socks, why2 = converse(socks, b"EHLO bench.test\r\n"
                           b"MAIL FROM:<sender@bench.test>\r\n", 2,
                           time.monotonic() + 30)
    if why2:
        print("  delay: EHLO/MAIL on %d sessions: %s" % (len(socks), why2))
    if not socks:
        H.die("delay: no session got as far as RCPT")
    opened = time.monotonic() - t
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    time.sleep(0.5)
    rss1 = H.proc_rss_kb(pid)

    # RCPT on every session, each stamped just before its send
    rcpt = b"RCPT TO:<rcpt@bench.test>\r\n"
    sent = {}
    port_sent = {}
    m_first = time.monotonic()
    for s in socks:
        ts = time.time()
        try:
            s.send(rcpt)
            sent[s] = ts
        except OSError:
            pass
    for s, ts in sent.items():
        port_sent[s.getsockname()[1]] = ts
    m_last = time.monotonic()
    spread = m_last - m_first
    due = m_first + args.delay          # the first reply is due then

    # while held: memory, a new client's banner, hang-ups, idle CPU
    time.sleep(max(m_last + 1.0 - time.monotonic(), 0))
    rss2 = H.proc_rss_kb(pid)
    held = H.still_open(list(sent))
    probes = banner_probes(port, args.probes)
    gone = {}
    step = max(len(socks) // max(args.gone, 1), 1)
    for s in list(sent)[::step][:args.gone]:
        lport = s.getsockname()[1]
        gone[lport] = time.time()
        del sent[s]
        s.close()
    time.sleep(0.5)
    window = min(args.cpu_window, due - 0.5 - time.monotonic())
    cpu = None
    if window >= 1.0:
        c0 = cpu_sample(pid)
        time.sleep(window)
        cpu = cpu_since(pid, c0)
    else:
        print("  delay: no time left for the CPU window (delay too short)")

    # The replies.  The client sleeps through them (a busy reader would
    # take a CPU from the server on a small machine) and reads them
    # afterwards: the kernel's receive timestamp of each, minus the send
    # time of its RCPT.  Meanwhile: the server's time on and waiting for a
    # CPU (other work on the machine makes replies late too).
    time.sleep(max(due - 0.3 - time.monotonic(), 0))
    s0 = sched_all(pid)
    time.sleep(max(m_last + args.delay + 1.0 - time.monotonic(), 0))
    s1 = sched_all(pid)
    burst = None
    if s0 and s1:
        burst = {"oncpu_ms": (s1[0] - s0[0]) / 1e6,
                 "runq_wait_ms": (s1[1] - s0[1]) / 1e6}
    sel = selectors.DefaultSelector()
    bufs = {}
    for s in sent:
        sel.register(s, selectors.EVENT_READ)
        bufs[s] = [b"", None]
    late, codes, lost = [], {}, 0
    deadline = m_last + args.delay + 5
    while bufs and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=max(deadline - time.monotonic(),
                                             0)):
            s = key.fileobj
            b = bufs[s]
            try:
                data, anc, _fl, _ad = s.recvmsg(4096, socket.CMSG_SPACE(16))
            except OSError:
                data, anc = b"", []
            if not data:
                lost += 1
                sel.unregister(s)
                del bufs[s]
                continue
            if b[1] is None:
                for lvl, typ, cd in anc:
                    if lvl == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS \
                            and len(cd) >= 16:
                        sec, nsec = struct.unpack("qq", cd[:16])
                        b[1] = sec + nsec / 1e9
                if b[1] is None:
                    b[1] = time.time()
            b[0] += data
            if b"\n" in b[0]:
                code = b[0][:3].decode("latin-1")
                codes[code] = codes.get(code, 0) + 1
                late.append((b[1] - sent[s] - args.delay) * 1e3)
                sel.unregister(s)
                del bufs[s]
    missing = len(bufs)
    sel.close()
    for s in sent:
        try:
            s.sendall(b"QUIT\r\n")
        except OSError:
            pass
        s.close()

    # the server's view, from its events: close of the hung-up sessions,
    # and fault -> reply time of each delayed RCPT
    time.sleep(0.3)
    evs = read_events(args.events)
    by_port, fault_t, srv_late, gone_ms = {}, {}, [], []
    sess_port, intake = {}, []
    nfault = 0
    gone_reason = {}
    for e in evs:
        ev = e.get("event")
        sid = e.get("session")
        if ev == "connect" and e.get("port") in gone:
            by_port[sid] = e["port"]
        if ev == "connect":
            sess_port[sid] = e.get("port")
        elif ev == "fault" and e.get("hook") == "rcpt":
            nfault += 1
            fault_t[sid] = (parse_time(e["time"]), e.get("delay", 0))
            ts = port_sent.get(sess_port.get(sid))
            if ts is not None:
                intake.append((fault_t[sid][0] - ts) * 1e3)
        elif ev == "reply" and sid in fault_t:
            ft, d = fault_t.pop(sid)
            srv_late.append((parse_time(e["time"]) - ft - d) * 1e3)
        elif ev == "close" and sid in by_port:
            p = by_port.pop(sid)
            gone_reason[p] = e.get("reason")
            if e.get("reason") == "client_gone":
                gone_ms.append((parse_time(e["time"]) - gone[p]) * 1e3)

    n = len(socks)
    res = {
        "clients": args.count, "sessions": n, "delay": args.delay,
        "open_secs": opened, "rcpt_send_spread_ms": spread * 1e3,
        "rss_before_kb": rss0, "rss_idle_kb": rss1, "rss_held_kb": rss2,
        "held_at_rss": held,
        "kb_per_held": (rss2 - rss0) / n,
        "kb_per_held_over_idle": (rss2 - rss1) / n,
        "replies": len(late), "reply_codes": codes,
        "closed_without_reply": lost, "no_reply": missing,
        "late_ms": {"min": min(late) if late else None,
                    "p50": pct(late, 50) if late else None,
                    "p99": pct(late, 99) if late else None,
                    "max": max(late) if late else None},
        "early": sum(1 for x in late if x < 0),
        "intake_ms": {"p50": pct(intake, 50) if intake else None,
                      "p99": pct(intake, 99) if intake else None,
                      "max": max(intake) if intake else None},
        "server_late_ms": {"min": min(srv_late) if srv_late else None,
                           "p50": pct(srv_late, 50) if srv_late else None,
                           "p99": pct(srv_late, 99) if srv_late else None,
                           "max": max(srv_late) if srv_late else None},
        "fault_events": nfault, "reply_burst_sched": burst,
        "banner": probes,
        "gone": {"closed": len(gone), "client_gone": len(gone_ms),
                 "other_reasons": sorted(set(str(r) for r in
                                             gone_reason.values()
                                             if r != "client_gone")),
                 "max_ms": max(gone_ms) if gone_ms else None,
                 "p50_ms": statistics.median(gone_ms) if gone_ms else None},
        "cpu_hold": cpu,
    }
    L = res["late_ms"]
    print("  %d sessions delayed %gs at RCPT (opened + EHLO/MAIL in %.1fs, "
          "RCPTs sent over %.0f ms)" % (n, args.delay, opened,
                                        spread * 1e3))
    print("  replies: %d (%s), closed without reply %d, none %d; "
          "fault events %d" %
          (len(late), ", ".join("%s x%d" % kv for kv in sorted(codes.items())),
           lost, missing, nfault))
    print("  lateness (kernel receive time - RCPT send - %gs): min %s, "
          "p50 %s, p99 %s, max %s ms; early: %d" %
          (args.delay, fmt_ms(L["min"]), fmt_ms(L["p50"]), fmt_ms(L["p99"]),
           fmt_ms(L["max"]), res["early"]))
    S, I = res["server_late_ms"], res["intake_ms"]
    print("  of which: RCPT sent -> server's fault event p50 %s, p99 %s, "
          "max %s ms;" % (fmt_ms(I["p50"]), fmt_ms(I["p99"]),
                          fmt_ms(I["max"])))
    print("            fault event -> reply event - %gs (timer) min %s, "
          "p50 %s, p99 %s, max %s ms" %
          (args.delay, fmt_ms(S["min"]), fmt_ms(S["p50"]), fmt_ms(S["p99"]),
           fmt_ms(S["max"])))
    if burst:
        print("  server during the replies (from 0.3s before the first was "
              "due to 1s after the last): %.1f ms on CPU, %.1f ms waiting "
              "for a CPU" % (burst["oncpu_ms"], burst["runq_wait_ms"]))
    print("  VmRSS %d kB before, %d kB idle after MAIL, %d kB held: "
          "%.2f KB per held session (%.2f KB over idle)" %
          (rss0, rss1, rss2, res["kb_per_held"],
           res["kb_per_held_over_idle"]))
    print("  banner of a new client while held: %d/%d answered, p50 %s ms, "
          "max %s ms" % (probes["answered"], probes["samples"],
                         fmt_ms(probes["p50_ms"]), fmt_ms(probes["max_ms"])))
    G = res["gone"]
    print("  hung up mid-delay: %d, close client_gone events %d, p50 %s ms, "
          "max %s ms after the client's close%s" %
          (G["closed"], G["client_gone"], fmt_ms(G["p50_ms"]),
           fmt_ms(G["max_ms"]),
           "; other reasons: " + ",".join(G["other_reasons"])
           if G["other_reasons"] else ""))
    if cpu:
        print("  server CPU while only holding: %d ticks in %.1fs = %.2f "
              "ticks/s (%s ms CPU per s)" %
              (cpu["ticks"], cpu["secs"], cpu["ticks_per_s"],
               "%.2f" % cpu["cpu_ms_per_s"] if "cpu_ms_per_s" in cpu
               else "?"))

    rows = []
    ok_replies = codes.get("250", 0)
    rows.append(("delay replies", "RCPT delayed %gs: 250 replies" %
                 args.delay, "", "%d/%d" % (ok_replies, len(sent)),
                 "%d" % ok_replies, "= %d" % len(sent),
                 verdict(ok_replies == len(sent) and len(sent) > 0)))
    if late:
        rows.append(("delay early", "lateness min (never early)", "",
                     "%s ms" % fmt_ms(L["min"]), "%d early" % res["early"],
                     "0 early", verdict(res["early"] == 0)))
        rows.append(("delay late", "lateness p50/p99/max", "",
                     "%s/%s/%s ms" % (fmt_ms(L["p50"]), fmt_ms(L["p99"]),
                                      fmt_ms(L["max"])),
                     "%s ms" % fmt_ms(L["p99"]),
                     "p99 <= %g ms" % GOAL_LATE_P99_MS,
                     verdict(L["p99"] <= GOAL_LATE_P99_MS)))
    rows.append(("delay RSS", "resident KB per delayed session (%d)" % n,
                 "", "%.2f KB" % res["kb_per_held"],
                 "%.2f KB" % res["kb_per_held"], "<= %g KB" % GOAL_RSS_KB,
                 verdict(res["kb_per_held"] <= GOAL_RSS_KB)))
    pm = probes["max_ms"]
    rows.append(("delay banner", "new client's banner p50/max", "",
                 "%s/%s ms" % (fmt_ms(probes["p50_ms"]), fmt_ms(pm)),
                 "%s ms" % fmt_ms(pm), "max <= %g ms" % GOAL_BANNER_MS,
                 verdict(pm is not None and
                         probes["answered"] == probes["samples"] and
                         pm <= GOAL_BANNER_MS)))
    gm = G["max_ms"]
    rows.append(("delay gone", "hang-up mid-delay -> client_gone, max", "",
                 "%d/%d" % (G["client_gone"], G["closed"]),
                 "%s ms" % fmt_ms(gm), "<= %g ms" % GOAL_GONE_MS,
                 verdict(gm is not None and G["client_gone"] == G["closed"]
                         and gm <= GOAL_GONE_MS)))
    if cpu:
        rows.append(("delay CPU", "server CPU while only holding", "",
                     "%d ticks/%.0fs" % (cpu["ticks"], cpu["secs"]),
                     "%.2f ticks/s" % cpu["ticks_per_s"],
                     "<= %g ticks/s" % GOAL_HOLD_TICKS,
                     verdict(cpu["ticks_per_s"] <= GOAL_HOLD_TICKS)))
    res["rows"] = rows
    with open(args.json, "w") as f:
        json.dump(res, f, indent=1)


# ---------------------------------------------------------------------- hang

def server_fds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return -1


def open_held(port, src, count, pid, budget):
    """Connect count sockets from src; a hang rule sends them nothing.

    Connects in windows and waits for each window's handshakes, so the
    listen backlog never overflows.  Returns (sockets, reason or None).
    """
    held, why = [], None
    end = time.monotonic() + budget
    sel = selectors.DefaultSelector()
    window = 500
    while len(held) < count and why is None:
        pend = []
        for _ in range(min(window, count - len(held))):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                s.bind((src, 0))
                s.setblocking(False)
                s.connect_ex((HOST, port))
            except OSError as e:
                s.close()
                why = "socket: %s" % e
                break
            pend.append(s)
            sel.register(s, selectors.EVENT_WRITE)
        wend = min(time.monotonic() + 5, end)
        left = set(pend)
        while left and time.monotonic() < wend:
            for key, _ in sel.select(timeout=max(wend - time.monotonic(), 0)):
                s = key.fileobj
                sel.unregister(s)
                left.discard(s)
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    why = why or "connect: %s" % os.strerror(err)
                    s.close()
                else:
                    held.append(s)
        for s in left:
            sel.unregister(s)
            s.close()
        if left:
            why = why or "%d connects did not complete in 5 s" % len(left)
        if not H.alive(pid):
            why = "server exited"
        if time.monotonic() >= end:
            why = why or "time budget of %gs used up" % budget
    sel.close()
    return held, why


def cmd_hang(args):
    srv = H.parse_server(args.server)
    pid, port = srv["pid"], srv["port"]
    limit = H.raise_nofile(args.count + 256)
    count = args.count
    if limit < count + 64:
        count = limit - 64
        print("  hang: RLIMIT_NOFILE %d: the client can hold only %d" %
              (limit, count))
    if not H.alive(pid):
        H.die("%s (pid %d) is not running" % (srv["name"], pid))
    time.sleep(0.5)
    fds0 = server_fds(pid)
    rss0 = H.proc_rss_kb(pid)
    t = time.monotonic()
    socks, why = open_held(port, args.src, count, pid, 90)
    # the handshakes are done by the kernel: wait for the server to accept
    wend = time.monotonic() + 15
    while time.monotonic() < wend and server_fds(pid) < fds0 + len(socks):
        time.sleep(0.1)
    accepted = server_fds(pid) - fds0
    opened = time.monotonic() - t
    time.sleep(1.0)
    rss1 = H.proc_rss_kb(pid)
    # a hung session gets nothing: a readable socket was answered or closed
    answered = 0
    for s in socks:
        try:
            if s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) is not None:
                answered += 1
        except BlockingIOError:
            pass
        except OSError:
            answered += 1
    held = len(socks) - answered
    sess = min(held, accepted)
    probes = banner_probes(port, args.probes)
    time.sleep(0.5)
    c0 = cpu_sample(pid)
    time.sleep(args.cpu_window)
    cpu = cpu_since(pid, c0)
    still = H.still_open(socks)
    alive = H.alive(pid)
    for s in socks:
        s.close()
    if not alive:
        H.die("%s (pid %d) died while holding sessions" % (srv["name"], pid))

    per = (rss1 - rss0) / sess if sess > 0 else float("nan")
    res = {"wanted": args.count, "opened": len(socks), "accepted": accepted,
           "held": sess, "answered": answered, "still_open_at_end": still,
           "stopped": why, "open_secs": opened, "rss_before_kb": rss0,
           "rss_held_kb": rss1, "kb_per_held": per, "banner": probes,
           "cpu_hold": cpu, "src": args.src}
    print("  %d/%d clients from %s held by hang at connect (server accepted "
          "%d, %d got bytes or a close; opened in %.1fs)" %
          (sess, args.count, args.src, accepted, answered, opened))
    if why:
        print("  hang: stopped early: %s" % why)
    print("  VmRSS %d -> %d kB: %.2f KB per held session" %
          (rss0, rss1, per))
    print("  banner of a client from %s meanwhile: %d/%d answered, p50 %s "
          "ms, max %s ms" % (HOST, probes["answered"], probes["samples"],
                             fmt_ms(probes["p50_ms"]),
                             fmt_ms(probes["max_ms"])))
    print("  server CPU while only holding: %d ticks in %.1fs = %.2f ticks/s"
          " (%s ms CPU per s); still held at the end: %d" %
          (cpu["ticks"], cpu["secs"], cpu["ticks_per_s"],
           "%.2f" % cpu["cpu_ms_per_s"] if "cpu_ms_per_s" in cpu else "?",
           still))
    rows = [
        ("hang held", "sessions held by hang at connect", "",
         "%d/%d" % (sess, args.count), "%d" % sess, ">= %d" % args.count,
         verdict(sess >= args.count and still >= sess)),
        ("hang RSS", "resident KB per hung session (%d)" % sess, "",
         "%.2f KB" % per, "%.2f KB" % per, "<= %g KB" % GOAL_RSS_KB,
         verdict(sess > 0 and per <= GOAL_RSS_KB)),
        ("hang banner", "unheld client's banner p50/max", "",
         "%s/%s ms" % (fmt_ms(probes["p50_ms"]), fmt_ms(probes["max_ms"])),
         "%s ms" % fmt_ms(probes["max_ms"]), "max <= %g ms" % GOAL_BANNER_MS,
         verdict(probes["max_ms"] is not None and
                 probes["answered"] == probes["samples"] and
                 probes["max_ms"] <= GOAL_BANNER_MS)),
        ("hang CPU", "server CPU while only holding", "",
         "%d ticks/%.0fs" % (cpu["ticks"], cpu["secs"]),
         "%.2f ticks/s" % cpu["ticks_per_s"],
         "<= %g ticks/s" % GOAL_HOLD_TICKS,
         verdict(cpu["ticks_per_s"] <= GOAL_HOLD_TICKS)),
    ]
    res["rows"] = rows
    with open(args.json, "w") as f:
        json.dump(res, f, indent=1)


def on_term(signum, _frame):
    sys.exit(128 + signum)


def main():
    signal.signal(signal.SIGTERM, on_term)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("delay")
    p.add_argument("--json", required=True)
    p.add_argument("--events", required=True,
                   help="the server's --events file")
    p.add_argument("--count", type=int, default=5000)
    p.add_argument("--delay", type=float, default=10.0,
                   help="the rule's delay, seconds")
    p.add_argument("--gone", type=int, default=50,
                   help="clients that hang up mid-delay")
    p.add_argument("--probes", type=int, default=10)
    p.add_argument("--cpu-window", type=float, default=5.0)
    p.add_argument("server", metavar="NAME:PID:PORT")
    p = sub.add_parser("hang")
    p.add_argument("--json", required=True)
    p.add_argument("--count", type=int, default=15000)
    p.add_argument("--src", default="127.0.0.2",
                   help="source address of the held clients")
    p.add_argument("--probes", type=int, default=10)
    p.add_argument("--cpu-window", type=float, default=5.0)
    p.add_argument("server", metavar="NAME:PID:PORT")
    args = ap.parse_args()
    {"delay": cmd_delay, "hang": cmd_hang}[args.cmd](args)


if __name__ == "__main__":
    main()
