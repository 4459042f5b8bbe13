#!/usr/bin/env python3
"""Resource bounds over real SMTP against a real node and a real slapd (issue 13).

  defaults   a connector with no limit attributes: MaxInboundConnectionPerSource 20 (the 21st
             session from one address gets 421 4.3.2) and MaxProtocolErrors 5 (the sixth
             bad command gets 421 4.7.0)
  tarpit     TarpitInterval: a 5xx to an anonymous session waits (default 5 s, measured once),
             other sessions are served meanwhile, Externally Secured sessions never wait,
             0 turns it off
  slow       300 clients trickling a byte a second: cut by ConnectionInactivityTimeout (a
             partial line is not activity), clients trickling whole lines cut by
             ConnectionTimeout; a fresh session is served promptly meanwhile (printed)
  sessions   the node-wide max_sessions bootstrap key: the session past it gets Exchange's
             421 4.3.2; a value that does not fit RLIMIT_NOFILE stops the start (file:line)
Each case connects from its own 127.0.x.y addresses so per-source counters start at zero.
"""
import os
import resource
import selectors
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402
from rnnode import Check, Client, Node, eventually  # noqa: E402

PER_SOURCE = ("421 4.3.2 The maximum number of concurrent connections has exceeded a limit, "
              "closing transmission channel")
PROTO = "421 4.7.0 Too many errors on this connection, closing transmission channel"
UNKNOWN = "500 5.3.3 Unrecognized command"
INACTIVE = "451 4.7.0 Timeout waiting for client input"
CONN_TIMEOUT = "421 4.4.1 Connection timed out"
RELAY_DENIED_CODE = "550 5.7.1"   # "Unable to relay" (anonymous, outside domain)
CRM = "127.0.2.55"            # Externally Secured on "CRM Application" (example.ldif)


def conn(E, src, **kw):
    return Client("127.0.0.1", E.smtp_port, source=src, **kw)


# -- defaults ---------------------------------------------------------------------------
def case_default_per_source(E):
    """No relayMaxInboundConnectionPerSource on Default node1: 20 sessions, not 21."""
    c = Check()
    src = "127.0.5.1"
    held = []
    try:
        for _ in range(20):
            held.append(conn(E, src))
        c.true(all(h.banner[-1].startswith("220") for h in held), "20 sessions greeted",
               [h.banner for h in held if not h.banner[-1].startswith("220")][:3])
        with conn(E, src, read_banner=False) as extra:
            rest = extra.replies_until_close(5)
        c.eq(rest, [PER_SOURCE], "the 21st concurrent session from one address")
        with conn(E, "127.0.5.2") as other:
            c.true(other.banner[-1].startswith("220"), "another address is served",
                   other.banner)
    finally:
        for h in held:
            h.close()
    return c.result()


def case_default_protocol_errors(E):
    """No relayMaxProtocolErrors: five unknown commands answered, the sixth closes."""
    c = Check()
    with conn(E, "127.0.5.3") as cl:
        cl.ehlo()
        got = [cl.cmd("XYZZY%d" % i) for i in range(5)]
        c.eq(got, [UNKNOWN] * 5, "five protocol errors answered")
        cl.send_raw("XYZZY6\r\n")
        rest = cl.replies_until_close(5)
    c.eq(rest, [PROTO], "the sixth protocol error")
    return c.result()


# -- tarpit -----------------------------------------------------------------------------
def relay_denied_delay(E, src):
    """Seconds an anonymous RCPT to an outside domain waits for its 550 5.7.54."""
    with conn(E, src) as cl:
        cl.ehlo()
        cl.cmd("MAIL FROM:<t@outside.example>")
        t0 = time.monotonic()
        r = cl.cmd("RCPT TO:<someone@elsewhere.example>", timeout=15)
        dt = time.monotonic() - t0
        after = cl.cmd("NOOP", timeout=15)
    return r, dt, after


def case_tarpit_off(E):
    c = Check()
    r, dt, after = relay_denied_delay(E, "127.0.5.10")
    c.true(r.startswith(RELAY_DENIED_CODE), "relay refused", r)
    c.true(dt < 1.5, "relayTarpitInterval 0: no delay (took %.2f s)" % dt)
    c.true(after.startswith("250"), "session goes on", after)
    return c.result()


def case_tarpit_default(E):
    """relayTarpitInterval removed: Exchange's 5 s, measured once; the loop keeps serving."""
    c = Check()
    E.modify_connector("Default node1", {"relayTarpitInterval": []})
    E.modify_connector("CRM Application", {"relayTarpitInterval": []})
    E.node.reload()
    time.sleep(0.5)
    with conn(E, "127.0.5.11") as cl:
        cl.ehlo()
        cl.cmd("MAIL FROM:<t@outside.example>")
        t0 = time.monotonic()
        # pipelined: the refused RCPT, then a command that must wait behind its reply
        cl.send_raw("RCPT TO:<someone@elsewhere.example>\r\nNOOP\r\n")
        # meanwhile another client is served at once
        t1 = time.monotonic()
        with conn(E, "127.0.5.12") as other:
            o = other.ehlo()[-1]
            q = other.cmd("QUIT")
        fresh = time.monotonic() - t1
        r = cl.reply(15)
        dt = time.monotonic() - t0
        after = cl.reply(5)
    print("# tarpit: refusal after %.2f s; a fresh session (banner, EHLO, QUIT) meanwhile "
          "in %.3f s" % (dt, fresh))
    c.true(r.startswith(RELAY_DENIED_CODE), "relay refused", r)
    c.true(4.5 <= dt <= 8.0, "the 5xx came after about 5 s (took %.2f s)" % dt)
    c.true(after.startswith("250"), "the pipelined NOOP answered after it, in order", after)
    c.true(o.startswith("250") and q.startswith("221") and fresh < 2.0,
           "another session served during the tarpit (%.3f s)" % fresh, (o, q))
    # Externally Secured (CRM Application, ExternalAuthoritative): never tarpitted
    with conn(E, CRM) as cl:
        cl.ehlo()
        t0 = time.monotonic()
        r = cl.cmd("MAIL FROM:<bad address>")
        dt = time.monotonic() - t0
    c.true(r.startswith("5"), "a 5xx for a bad MAIL path", r)
    c.true(dt < 1.5, "Externally Secured session not delayed (took %.2f s)" % dt)
    E.modify_connector("Default node1", {"relayTarpitInterval": ["0"]})
    E.modify_connector("CRM Application", {"relayTarpitInterval": ["0"]})
    E.node.reload()
    return c.result()


def case_tarpit_validation(E):
    """relayTarpitInterval is checked by the loader: 601 leaves the connector unchanged."""
    c = Check()
    r = subprocess.run([E.node.binary, "-c", E.conf, "--check"], capture_output=True,
                       text=True, timeout=60)
    c.true(r.returncode == 0, "--check with relayTarpitInterval 0", r.stderr[-300:])
    E.modify_connector("Default node1", {"relayTarpitInterval": ["601"]})
    try:
        r = subprocess.run([E.node.binary, "-c", E.conf, "--check"], capture_output=True,
                           text=True, timeout=60)
        out = r.stdout + r.stderr
        c.true(r.returncode != 0 and "relayTarpitInterval: 601 is above the maximum 600" in out,
               "601 refused", out[-400:])
    finally:
        E.modify_connector("Default node1", {"relayTarpitInterval": ["0"]})
    return c.result()


# -- slow clients -----------------------------------------------------------------------
def trickle(E, groups, seconds, probe_at):
    """groups: [(source, count, chunks, period)]: count clients from source, each sending
    chunks[i % len] every period seconds, for at most `seconds`; at probe_at a fresh
    session runs a transaction. Returns ({source: [(reply lines, seconds to close)]},
    seconds the fresh session took)."""
    sel = selectors.DefaultSelector()
    clients = []
    for src, count, chunks, period in groups:
        for _ in range(count):
            s = socket.socket()
            s.bind((src, 0))
            s.connect(("127.0.0.1", E.smtp_port))
            s.setblocking(False)
            st = {"sock": s, "src": src, "buf": b"", "closed": None, "chunks": chunks,
                  "i": 0, "period": period, "next": 0.0}
            clients.append(st)
            sel.register(s, selectors.EVENT_READ, st)
    t0 = time.monotonic()
    for st in clients:
        st["next"] = t0 + st["period"]
    probe = None
    end = t0 + seconds
    while time.monotonic() < end and any(st["closed"] is None for st in clients):
        now = time.monotonic()
        if probe is None and now - t0 >= probe_at:
            p0 = time.monotonic()
            with conn(E, "127.0.7.1") as cl:
                cl.ehlo()
                cl.cmd("MAIL FROM:<probe@outside.example>")
                cl.cmd("RCPT TO:<alice@example.com>")
                cl.cmd("QUIT")
            probe = time.monotonic() - p0
        for st in clients:
            if st["closed"] is None and now >= st["next"]:
                ch = st["chunks"][st["i"] % len(st["chunks"])]
                st["i"] += 1
                st["next"] += st["period"]
                try:
                    st["sock"].send(ch)
                except OSError:
                    pass
        for key, _ in sel.select(timeout=0.05):
            st = key.data
            try:
                data = st["sock"].recv(4096)
            except OSError:
                data = b""
            if data:
                st["buf"] += data
            else:
                st["closed"] = time.monotonic() - t0
                sel.unregister(st["sock"])
    out = {}
    for st in clients:
        lines = st["buf"].decode("utf-8", "replace").split("\r\n")
        out.setdefault(st["src"], []).append(([ln for ln in lines if ln], st["closed"]))
        st["sock"].close()
    return out, probe


def case_slow_clients(E):
    c = Check()
    E.modify_connector("Default node1", {"relayConnectionInactivityTimeout": ["3"],
                                         "relayConnectionTimeout": ["8"]})
    E.node.reload()
    time.sleep(0.5)
    # 240 clients (12 addresses x 20, the default per-source cap) trickling one byte of
    # "EHLO x" a second, never a line end; 60 (3 x 20) trickling whole "NOOP\r\n" lines, a
    # byte every 0.25 s (a line each 1.5 s, inside the inactivity timeout).
    partial = [("127.0.6.%d" % i, 20, [b"E", b"H", b"L", b"O", b" ", b"x"], 1.0)
               for i in range(1, 13)]
    whole = [("127.0.6.%d" % i, 20, [b"N", b"O", b"O", b"P", b"\r", b"\n"], 0.25)
             for i in range(20, 23)]
    res, probe = trickle(E, partial + whole, 12, 1.5)
    n = sum(len(v) for v in res.values())
    print("# slow clients: %d sessions; a fresh session (banner, EHLO, MAIL, RCPT, QUIT) "
          "took %.3f s meanwhile" % (n, probe if probe is not None else -1))
    cut_idle, cut_life, bad = [], [], []
    for src, lst in res.items():
        is_partial = int(src.rsplit(".", 1)[1]) < 20
        for lines, closed in lst:
            if is_partial and lines[-1:] == [INACTIVE] and closed is not None:
                cut_idle.append(closed)
            elif (not is_partial and lines[-1:] == [CONN_TIMEOUT] and closed is not None
                  and all(ln.startswith("2") for ln in lines[:-1])):
                cut_life.append(closed)
            else:
                bad.append((src, lines[-2:], closed))
    c.eq(len(res), 15, "clients from 15 addresses")
    c.eq(n, 300, "300 slow clients")
    c.true(not bad, "%d clients not cut as expected" % len(bad), bad[:5])
    c.true(len(cut_idle) == 240 and max(cut_idle) < 6.5,
           "240 byte-tricklers cut by ConnectionInactivityTimeout 3 (a partial line is not "
           "activity) well before ConnectionTimeout 8 (latest %.1f s)"
           % (max(cut_idle) if cut_idle else -1))
    c.true(len(cut_life) == 60 and min(cut_life) >= 7.0 and max(cut_life) < 11.5,
           "60 line-tricklers cut by ConnectionTimeout 8 (%.1f..%.1f s)"
           % (min(cut_life) if cut_life else -1, max(cut_life) if cut_life else -1))
    c.true(probe is not None and probe < 3.0,
           "a fresh session served promptly among them (%s s)" % probe)
    E.modify_connector("Default node1", {"relayConnectionInactivityTimeout": [],
                                         "relayConnectionTimeout": []})
    E.node.reload()
    return c.result()


# -- max_sessions -----------------------------------------------------------------------
def restart_with(E, line):
    E.node.stop()
    with open(E.conf) as f:
        text = f.read()
    text = "".join(ln for ln in text.splitlines(True) if not ln.startswith("max_sessions"))
    with open(E.conf, "w") as f:
        f.write(text + line + "\n")
    E.node = Node(E.conf, ports=[E.smtp_port, E.sub_port])
    E.node.start()


def case_max_sessions(E):
    c = Check()
    restart_with(E, "max_sessions = 25")
    held = []

    # Node.start()'s readiness probes are sessions too, accepted by the node a moment after
    # the probe closed them: one may still hold a place. A 421 is retried until the probe
    # session is gone (the 25 places are then ours).
    def greet(src):
        h = conn(E, src)
        if h.banner and h.banner[-1].startswith("220"):
            held.append(h)
            return True
        h.close()
        return False
    try:
        for i in range(25):
            src = "127.0.8.%d" % (1 + i // 5)
            eventually(lambda: greet(src), 10, 0.05)
        c.true(len(held) == 25 and all(h.banner[-1].startswith("220") for h in held),
               "25 sessions greeted", len(held))
        t0 = time.monotonic()
        with conn(E, "127.0.8.99", read_banner=False) as extra:
            rest = extra.replies_until_close(5)
        dt = time.monotonic() - t0
        c.eq(rest, [PER_SOURCE], "the 26th session on the node (its address has none)")
        c.true(dt < 2.0, "refused at once (%.2f s)" % dt)
        c.true(eventually(lambda: "why=max_sessions" in E.node.log(), 10), "logged as max_sessions")
    finally:
        for h in held:
            h.close()

    def freed():
        with conn(E, "127.0.8.98") as again:
            return again.banner[-1].startswith("220")
    c.true(eventually(freed, 5), "closed sessions free their places")
    return c.result()


def case_max_sessions_fit(E):
    """A max_sessions RLIMIT_NOFILE cannot hold stops the start with file:line."""
    c = Check()
    with open(E.conf) as f:
        text = "".join(ln for ln in f.read().splitlines(True)
                       if not ln.startswith("max_sessions"))
    conf = os.path.join(E.dir, "caps-fit.conf")
    with open(conf, "w") as f:
        f.write(text + "max_sessions = 500\n")
    line = text.count("\n") + 1

    def low_nofile():
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, max(hard, 1024)))
    args = [E.node.binary, "-c", conf, "--foreground"]
    if os.geteuid() == 0:
        args.append("--allow-root")
    r = subprocess.run(args, capture_output=True, text=True, timeout=30, preexec_fn=low_nofile)
    want = "%s:%d: max_sessions: 500 does not fit RLIMIT_NOFILE 1024" % (conf, line)
    c.true(r.returncode != 0, "non-zero exit", r.returncode)
    c.true(want in r.stderr, "error names file:line", r.stderr[-400:])
    c.true("at most 455" in r.stderr, "and the most that fit", r.stderr[-400:])
    return c.result()


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    with rnnode.Env("caps") as E:
        t.run("default MaxInboundConnectionPerSource 20: the 21st -> 421 4.3.2",
              case_default_per_source, E)
        t.run("default MaxProtocolErrors 5: the sixth -> 421 4.7.0", case_default_protocol_errors,
              E)
        t.run("relayTarpitInterval 0: a 5xx is not delayed", case_tarpit_off, E)
        t.run("TarpitInterval default 5 s: anonymous 5xx delayed, loop free, ESS not delayed",
              case_tarpit_default, E)
        t.run("relayTarpitInterval 601 refused by the loader", case_tarpit_validation, E)
        t.run("300 slow clients: inactivity and connection timeouts hold, fresh session served",
              case_slow_clients, E)
        t.run("max_sessions 25: the 26th -> 421 4.3.2 at once", case_max_sessions, E)
        t.run("max_sessions that does not fit RLIMIT_NOFILE: start refused with file:line",
              case_max_sessions_fit, E)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
