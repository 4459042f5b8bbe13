#!/usr/bin/env python3
"""Slow disk work never stalls the event loop (issue 13; docs/reliability.md §2.6).

A test build (-DRN_FAULTS) sleeps where a named blocking step runs when told to by
RELAYNODE_FAULT_SLEEP (node/common/fault.h). For each step the node is restarted with that
step slowed to SLOW_MS, one session makes the node run it while another session sends NOOPs
one at a time (2 ms apart), and the worst NOOP reply must stay under LIMIT_MS: had the step
run on the loop, every NOOP that arrived meanwhile would have waited for it. Each case
also checks that the slow step did run (the session that caused it waited >= SLOW_MS), so a
hook that is not reached cannot pass for a fast loop.

Cases:
  DATA         the spool file's creation and every body write slowed (spool-create,
               spool-write): a 1 MiB message by DATA, and one in BDAT chunks, still 250,
               stored whole; pipelined commands after the final dot answered in order;
               then a client that leaves, and a stop (two SIGTERMs), while a slowed job
               runs: the tmp file removed, exit 0, no sanitizer report;
  MAIL         the free-space check (fstatvfs, spool-statvfs);
  DSN          building a DSN (the original read, the DSN written: dsn);
  SIGHUP       certificate PEM files read again (cert-read).
The figures are printed.
"""
import os
import re
import signal
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402
import smtpsink  # noqa: E402
from rnnode import Check, Client, eventually, queued_id  # noqa: E402

SLOW_MS = 300
LIMIT_MS = 50.0
MIN_NOOPS = 20
NOOP_TIMEOUT_S = 10
NOOP_GAP_S = 0.002
CRM = "127.0.2.55"
PID = os.getpid()


def restart(E, points):
    """The node again, with RELAYNODE_FAULT_SLEEP set to points (name -> ms)."""
    E.node.stop()
    E.node.env = {"RELAYNODE_FAULT_SLEEP": ",".join("%s=%d" % kv for kv in points.items())}
    E.node.start()


def noops_while(port, work):
    """Run work() in a thread while one session sends NOOPs one at a time (at least
    MIN_NOOPS, and until work() returned). Returns (work's result or exception, latencies
    in ms, the worst one)."""
    box = {}

    def run():
        try:
            box["r"] = work()
        except Exception as e:   # reported by the caller
            box["e"] = e
    lat = []
    with Client("127.0.0.1", port, timeout=NOOP_TIMEOUT_S) as cl:
        cl.ehlo()
        th = threading.Thread(target=run, daemon=True)
        th.start()
        t_end = time.monotonic() + 120
        while (th.is_alive() or len(lat) < MIN_NOOPS) and time.monotonic() < t_end:
            t0 = time.monotonic()
            try:
                reply = cl.cmd("NOOP")
            except socket.timeout:
                # A loop held this long fails the case; do not wait for the rest.
                lat.append(NOOP_TIMEOUT_S * 1000.0)
                return "a NOOP got no reply within %d s" % NOOP_TIMEOUT_S, lat, max(lat)
            lat.append((time.monotonic() - t0) * 1000.0)
            if not reply.startswith("250 "):
                raise rnnode.NodeError("NOOP answered %r" % reply)
            # A short gap: hundreds of NOOPs a second still land inside any stall of the
            # loop, without this client itself loading the shared 2-core machine.
            time.sleep(NOOP_GAP_S)
        th.join(60)
        cl.cmd("QUIT")
    return box.get("r", box.get("e")), lat, max(lat)


def describe(lat):
    ms = sorted(lat)
    return "%d NOOPs, max %.1f ms, median %.2f ms" % (len(ms), ms[-1], ms[len(ms) // 2])


def body_text(tag, size):
    line = ("%s " % tag + "0123456789abcdef" * 4)[:70] + "\r\n"
    return line * (size // len(line) + 1)


def stored(E, qid):
    """The message bytes stored for queue id qid (b"" when missing)."""
    path = os.path.join(E.spool_dir, "queue", qid.split("@")[0])
    try:
        with open(path, "rb") as f:
            return rnnode.spool_parse(f.read()).get("data", b"")
    except (OSError, ValueError):
        return b""


def case_data(E, t):
    c = Check()
    tag = "offload-data-%d" % PID
    body = body_text(tag, 1 << 20)
    msg = "From: <app@outside.example>\r\nTo: <alice@example.com>\r\nSubject: %s\r\n\r\n%s" \
          % (tag, body)

    def send():
        with Client("127.0.0.1", E.smtp_port, timeout=60) as cl:
            cl.ehlo()
            t0 = time.monotonic()
            cl.send_raw("MAIL FROM:<app@outside.example>\r\nRCPT TO:<alice@example.com>\r\n"
                        "DATA\r\n")
            r = [cl.reply(), cl.reply(), cl.reply()]
            cl.send_raw(msg.replace("\r\n.", "\r\n..") + ".\r\nRSET\r\nNOOP\r\n")
            r += [cl.reply(60), cl.reply(), cl.reply()]
            took = (time.monotonic() - t0) * 1000.0
            cl.cmd("QUIT")
            return r, took
    res, lat, worst = noops_while(E.smtp_port, send)
    if not c.true(isinstance(res, tuple), "the DATA session completed", repr(res)):
        return c.result()
    replies, took = res
    t.diag("DATA of %d KiB with every spool step slowed %d ms took %.0f ms; meanwhile %s"
           % (len(msg) >> 10, SLOW_MS, took, describe(lat)))
    c.eq([r[:3] for r in replies], ["250", "250", "354", "250", "250", "250"],
         "MAIL, RCPT, DATA, the final dot, then pipelined RSET and NOOP, in order")
    c.true(replies[3].startswith("250 2.6.0"), "the message was queued", replies[3])
    c.true(took >= SLOW_MS, "the slowed spool steps did run (the transaction took %.0f ms)"
           % took)
    c.true(worst < LIMIT_MS, "no NOOP waited %.0f ms or more during DATA (max %.1f ms)"
           % (LIMIT_MS, worst))
    qid = queued_id(replies[3])
    data = stored(E, qid) if qid else b""
    c.true(data.endswith(msg.encode()), "the stored message holds the whole content, in order",
           "stored %d bytes" % len(data))
    return c.result()


def case_bdat(E, t):
    c = Check()
    tag = "offload-bdat-%d" % PID
    msg = ("From: <app@outside.example>\r\nTo: <alice@example.com>\r\nSubject: %s\r\n\r\n%s"
           % (tag, body_text(tag, 600 * 1024))).encode()
    chunks = [msg[i:i + 200 * 1024] for i in range(0, len(msg), 200 * 1024)]

    def send():
        with Client("127.0.0.1", E.smtp_port, timeout=60) as cl:
            cl.ehlo()
            t0 = time.monotonic()
            out = [cl.cmd("MAIL FROM:<app@outside.example>"), cl.cmd("RCPT TO:<alice@example.com>")]
            for i, ch in enumerate(chunks):
                last = " LAST" if i + 1 == len(chunks) else ""
                cl.sock.sendall(b"BDAT %d%s\r\n" % (len(ch), last.encode()) + ch)
            out += [cl.reply(60) for _ in chunks]
            took = (time.monotonic() - t0) * 1000.0
            cl.cmd("QUIT")
            return out, took
    res, lat, worst = noops_while(E.smtp_port, send)
    if not c.true(isinstance(res, tuple), "the BDAT session completed", repr(res)):
        return c.result()
    replies, took = res
    t.diag("BDAT of %d KiB in %d chunks took %.0f ms; meanwhile %s"
           % (len(msg) >> 10, len(chunks), took, describe(lat)))
    c.eq([r[:3] for r in replies], ["250"] * (2 + len(chunks)), "every chunk answered 250")
    c.true(replies[-1].startswith("250 2.6.0"), "the last chunk queued the message",
           replies[-1])
    c.true(took >= SLOW_MS, "the slowed spool steps did run (%.0f ms)" % took)
    c.true(worst < LIMIT_MS, "no NOOP waited %.0f ms or more during BDAT (max %.1f ms)"
           % (LIMIT_MS, worst))
    qid = queued_id(replies[-1])
    data = stored(E, qid) if qid else b""
    c.true(data.endswith(msg), "the stored message holds the whole content, in order",
           "stored %d bytes" % len(data))
    return c.result()


def open_data(E, tag, size):
    """A session inside DATA with size bytes of content sent and no end, once the spool file
    exists (its slowed creation done, a slowed write in flight)."""
    cl = Client("127.0.0.1", E.smtp_port, timeout=30)
    cl.ehlo()
    cl.send_raw("MAIL FROM:<app@outside.example>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n")
    replies = [cl.reply(), cl.reply(), cl.reply()]
    cl.send_raw("Subject: %s\r\n\r\n%s" % (tag, body_text(tag, size)))
    tmp = os.path.join(E.spool_dir, "tmp")
    made = eventually(lambda: os.listdir(tmp), 10, 0.02)
    return cl, replies, made


def case_teardown(E, t):
    c = Check()
    tmp = os.path.join(E.spool_dir, "tmp")
    cl, replies, made = open_data(E, "offload-gone-%d" % PID, 600 * 1024)
    c.eq([r[:3] for r in replies], ["250", "250", "354"], "MAIL, RCPT, DATA")
    c.true(made, "the spool file was created while content arrived")
    cl.close()                                 # gone with a spool job in flight
    c.true(eventually(lambda: not os.listdir(tmp), 10, 0.05),
           "the abandoned message's tmp file is removed", repr(os.listdir(tmp)))
    cl, replies, made = open_data(E, "offload-stop-%d" % PID, 600 * 1024)
    c.true(made, "second session: the spool file exists")
    E.node.signal(signal.SIGTERM)              # drain, then "out now" with the job in flight
    time.sleep(0.05)
    E.node.signal(signal.SIGTERM)
    rc = E.node.stop(timeout=30)
    cl.close()
    out = E.node.run_output()
    c.eq(rc, 0, "the node stopped with a spool job in flight exits 0")
    c.true(not rnnode.sanitizer_report(out), "no sanitizer report", out[-3000:])
    E.node.start()
    c.true(not os.listdir(tmp), "tmp/ is empty after the restart")
    return c.result()


def case_mail(E, t):
    c = Check()

    def mails():
        out = []
        with Client("127.0.0.1", E.smtp_port, timeout=30) as cl:
            cl.ehlo()
            for _ in range(3):
                t0 = time.monotonic()
                r = cl.cmd("MAIL FROM:<app@outside.example>")
                out.append((r, (time.monotonic() - t0) * 1000.0))
                cl.cmd("RSET")
            cl.cmd("QUIT")
        return out
    res, lat, worst = noops_while(E.smtp_port, mails)
    if not c.true(isinstance(res, list), "the MAIL session completed", repr(res)):
        return c.result()
    t.diag("MAIL with fstatvfs slowed: %s; meanwhile %s"
           % (", ".join("%.0f ms" % x[1] for x in res), describe(lat)))
    c.true(all(r.startswith("250 2.1.0") for r, _ in res), "every MAIL accepted", repr(res))
    c.true(min(x[1] for x in res) >= SLOW_MS, "the slowed free-space check did run")
    c.true(worst < LIMIT_MS, "no NOOP waited %.0f ms or more during MAIL (max %.1f ms)"
           % (LIMIT_MS, worst))
    return c.result()


def case_dsn(E, t, sink):
    c = Check()
    tag = "offload-dsn-%d" % PID
    before = len(re.findall(r"queue dsn ", E.node.log()))

    def bounce():
        with Client("127.0.0.1", E.smtp_port, source=CRM) as cl:
            r = cl.send_message("owner@sink.test", ["fail5-%d@sink.test" % PID],
                                "From: <owner@sink.test>\r\nSubject: %s\r\n\r\nbody\r\n" % tag)
        t0 = time.monotonic()
        ok = eventually(lambda: len(re.findall(r"queue dsn ", E.node.log())) > before, 30,
                        0.05)
        return r[-1], ok, (time.monotonic() - t0) * 1000.0
    res, lat, worst = noops_while(E.smtp_port, bounce)
    if not c.true(isinstance(res, tuple), "the bounce completed", repr(res)):
        return c.result()
    reply, ok, waited = res
    t.diag("DSN built with its step slowed, %.0f ms after the 250; meanwhile %s"
           % (waited, describe(lat)))
    c.true(queued_id(reply), "the message was accepted", reply)
    c.true(ok, "the DSN was built (queue dsn)", E.node.log_tail(20))
    c.true(ok and waited >= SLOW_MS, "the slowed DSN step did run (%.0f ms)" % waited)
    c.true(worst < LIMIT_MS, "no NOOP waited %.0f ms or more while the DSN was built "
           "(max %.1f ms)" % (LIMIT_MS, worst))
    c.true(eventually(lambda: [m for m in sink.messages()
                               if m["from"] == "" and tag.encode() in m["data"]], 20),
           "the DSN reached the sender")
    return c.result()


def case_sighup(E, t):
    c = Check()
    before = len(re.findall(r"tls certificate-reloaded name=node", E.node.log()))

    def hup():
        t0 = time.monotonic()
        E.node.signal(signal.SIGHUP)
        ok = eventually(lambda: len(re.findall(r"tls certificate-reloaded name=node",
                                               E.node.log())) > before, 30, 0.05)
        return ok, (time.monotonic() - t0) * 1000.0
    res, lat, worst = noops_while(E.smtp_port, hup)
    if not c.true(isinstance(res, tuple), "the reload completed", repr(res)):
        return c.result()
    ok, waited = res
    t.diag("SIGHUP with the PEM reads slowed: reloaded after %.0f ms; meanwhile %s"
           % (waited, describe(lat)))
    c.true(ok, "the node certificate was read again", E.node.log_tail(20))
    c.true(ok and waited >= SLOW_MS, "the slowed PEM read did run (%.0f ms)" % waited)
    c.true(worst < LIMIT_MS, "no NOOP waited %.0f ms or more while the certificates were read "
           "(max %.1f ms)" % (LIMIT_MS, worst))
    return c.result()


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    work = tempfile.mkdtemp(prefix="offload.")
    sink = smtpsink.Sink(os.path.join(work, "sink")).start()
    try:
        with rnnode.Env("loop-offload") as E:
            E.ldapmodify("dn: cn=To sink,cn=Send Connectors,ou=Relay,dc=example,dc=com\n"
                         "changetype: add\nobjectClass: relaySendConnector\ncn: To sink\n"
                         "relayEnabled: TRUE\nrelayAddressSpace: sink.test\n"
                         "relaySmartHost: 127.0.0.1:%d\nrelayCost: 1\n" % sink.port)
            restart(E, {"spool-create": SLOW_MS, "spool-write": SLOW_MS})
            t.run("DATA: slow spool create and writes, NOOPs of another session stay fast",
                  case_data, E, t)
            t.run("BDAT: slow spool create and writes, NOOPs of another session stay fast",
                  case_bdat, E, t)
            t.run("a session gone, and a stop, with a slowed spool job in flight",
                  case_teardown, E, t)
            restart(E, {"spool-statvfs": SLOW_MS})
            t.run("MAIL: slow free-space check, NOOPs stay fast", case_mail, E, t)
            restart(E, {"dsn": SLOW_MS})
            t.run("DSN: slow DSN building, NOOPs stay fast", case_dsn, E, t, sink)
            restart(E, {"cert-read": SLOW_MS})
            t.run("SIGHUP: slow certificate reads, NOOPs stay fast", case_sighup, E, t)
    finally:
        sink.stop()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
