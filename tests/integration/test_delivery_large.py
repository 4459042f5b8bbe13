#!/usr/bin/env python3
"""A 300 MiB message relayed end to end, and a spool file that turns corrupt while it streams
(issue 13, "Delivery streams from the spool").

Client -> node (CRM connector, 127.0.2.55, MaxMessageSize raised to 2 GiB - 1) -> a test sink
in hashing mode (tests/lib/smtpsink.py, a send connector's smart host). The sink hashes what
it receives as it goes and keeps none of it; the client hashes what it sends. Checked:
  - the message is accepted and delivered, byte-identical from the client's first header on
    (the node only prepends its Received: and stamp);
  - the node's memory stays bounded: VmRSS sampled every 20 ms, and VmHWM after the peak was
    reset (/proc/PID/clear_refs "5") at the baseline, grow by less than 16 MiB over the
    baseline taken after a small warm-up message went the same way.
The same through STARTTLS to a second sink (32 MiB, OpenSSL's bufferevent in the path), and a
spool file corrupted while it streams (the final dot is never sent).
The node is the ASan build: its quarantine of freed memory (256 MiB by default) would hide
any bound, so this node runs with quarantine_size_mb=1 (ASan still checks every access).
"""
import hashlib
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402
import smtpsink  # noqa: E402
from rnnode import Check, Client, eventually, queued_id  # noqa: E402

CRM = "127.0.2.55"
MIB = 1024 * 1024
BIG = 300 * MIB
RSS_BOUND_KIB = 16 * 1024
LINE = 998                       # the longest text line allowed (plus CRLF)
MARK = b"X-Big-Begin:"           # the sinks hash from the client's first header on


def hash_sink(E, name, tls=False):
    """A sink in hashing mode under E's directory (STARTTLS with the node's certificate);
    it advertises a SIZE above anything sent here."""
    pem, key = (os.path.join(E.dir, "tls", "node." + x) for x in ("pem", "key"))
    return smtpsink.Sink(os.path.join(E.dir, name), tls_cert=pem if tls else None,
                         tls_key=key if tls else None, size_max=4 << 30, hash_from=MARK).start()


def big_message(tag, total=BIG):
    """(header bytes, a generator of body blocks, the sha256 and size of the unstuffed
    message). Lines of up to 998 octets; some start with a dot (stuffed when sent)."""
    head = ("X-Big-Begin: %s\r\nFrom: <app@crm.example>\r\nTo: <big@sink.test>\r\n"
            "Subject: big %s\r\nMessage-ID: <%s@test>\r\n\r\n" % (tag, tag, tag)).encode()
    lines = []
    for i in range(1000):
        body = ("%06d " % i + "abcdefghijklmnopqrstuvwxyz0123456789" * 30)[:LINE - 10]
        if i % 97 == 0:
            body = "." + body      # a dot line: stuffed on the wire, intact at the sink
        lines.append(body.encode() + b"\r\n")
    block = b"".join(lines)
    nblocks = (total - len(head)) // len(block) + 1
    h = hashlib.sha256(head)

    def blocks(stuff):
        for k in range(nblocks):
            first = ("block %08d\r\n" % k).encode()
            b = first + block
            yield b.replace(b"\r\n.", b"\r\n..") if stuff else b

    size = len(head)
    for b in blocks(False):
        h.update(b)
        size += len(b)
    return head, blocks, h.hexdigest(), size


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise rnnode.NodeError("no %s for pid %d" % (key, pid))


def spool_empty(E):
    return E.node.list_spool().strip().splitlines()[-1].startswith("0 messages ")


def send_big(E, head, blocks, rcpt="big@sink.test"):
    with Client("127.0.0.1", E.smtp_port, source=CRM, timeout=60) as cl:
        cl.ehlo()
        for cmd in ("MAIL FROM:<app@crm.example>", "RCPT TO:<%s>" % rcpt, "DATA"):
            r = cl.cmd(cmd)
            if not r.startswith(("250", "354")):
                return r
        cl.send_raw(head)
        for b in blocks(True):
            cl.send_raw(b)
        cl.send_raw(b".\r\n")
        return cl.reply(timeout=120)


def case_large(E, sink):
    c = Check()
    pid = E.node.pid
    # Warm-up: the same path once with a small message, so the baseline includes the TLS
    # context, the connection pool, the worker threads and the first allocations.
    with Client("127.0.0.1", E.smtp_port, source=CRM) as cl:
        r = cl.send_message("app@crm.example", ["warm@sink.test"],
                            "X-Big-Begin: warm\r\nSubject: warm\r\n\r\nwarm\r\n")
    c.true(queued_id(r[-1]), "warm-up message accepted", r[-1])
    c.true(eventually(lambda: len(sink.messages()) == 1, 20), "warm-up message delivered")
    c.true(eventually(lambda: spool_empty(E), 10),
           "warm-up message left the spool")
    time.sleep(0.5)
    base = status_kib(pid, "VmRSS")
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")               # reset VmHWM to the current RSS
    except OSError as e:
        c.true(False, "cannot reset VmHWM of the node: %s" % e)
        return c.result()
    tag = "big-%d" % os.getpid()
    head, blocks, want, size = big_message(tag)
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            try:
                peak[0] = max(peak[0], status_kib(pid, "VmRSS"))
            except (OSError, rnnode.NodeError):
                return
            time.sleep(0.02)
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t0 = time.monotonic()
    r = send_big(E, head, blocks)
    t_in = time.monotonic() - t0
    ok = c.true(queued_id(r), "300 MiB message accepted", r)
    got = eventually(lambda: len(sink.messages()) >= 2, 120, 0.2) if ok else False
    t_all = time.monotonic() - t0
    done.set()
    th.join()
    hwm = status_kib(pid, "VmHWM")
    print("# %d octets: accepted in %.1f s, delivered after %.1f s; VmRSS baseline %d KiB, "
          "sampled peak %d KiB (+%d), VmHWM %d KiB (+%d)"
          % (size, t_in, t_all, base, peak[0], peak[0] - base, hwm, hwm - base))
    if c.true(got, "delivered to the sink", E.node.log_tail(20)):
        m = sink.messages()[1]
        c.eq(m["hashed"], size, "octets from the client's first header on")
        c.eq(m["sha256"], want, "sha256 of the delivered message = the sent one")
        c.true(m["size"] > m["hashed"], "the node prepended its Received: (%d > %d)"
               % (m["size"], m["hashed"]))
    c.true(peak[0] - base < RSS_BOUND_KIB, "sampled VmRSS grew by under 16 MiB",
           "+%d KiB" % (peak[0] - base))
    c.true(hwm - base < RSS_BOUND_KIB, "VmHWM grew by under 16 MiB", "+%d KiB" % (hwm - base))
    c.true(eventually(lambda: spool_empty(E), 30),
           "removed from the spool after delivery")
    return c.result()


def case_corrupt_while_streaming(E, sink):
    """The spool file changes between the pre-scan and the stream (a byte of the body
    flipped while the next hop holds its 354): the CRC-32 checked at the END record fails
    after the body went out, so the final dot is never sent; the next hop sees the
    connection close inside DATA (no message), and the node defers as for any unreadable
    file."""
    c = Check()
    tag = "corrupt-%d" % os.getpid()
    at_data, go = threading.Event(), threading.Event()
    sink.hold = (at_data, go)
    before = len(sink.messages())
    body = "".join("line %05d of %s\r\n" % (i, tag) for i in range(20000))   # ~600 KiB
    with Client("127.0.0.1", E.smtp_port, source=CRM) as cl:
        r = cl.send_message("app@crm.example", ["corrupt@sink.test"],
                            "X-Big-Begin: %s\r\nSubject: %s\r\n\r\n%s" % (tag, tag, body))
    qid = queued_id(r[-1])
    if not c.true(qid, "accepted", r[-1]):
        return c.result()
    qid = qid.split("@")[0]
    if not c.true(at_data.wait(20), "the node reached DATA at the sink"):
        go.set()
        return c.result()
    path = os.path.join(E.spool_dir, "queue", qid)
    with open(path, "r+b") as f:
        raw = f.read()
        pos = raw.index(b"line 10000 of")
        f.seek(pos)
        f.write(b"X")                  # same length: only the checksum can tell
    go.set()
    c.true(eventually(lambda: sink.aborted >= 1, 20), "the sink saw DATA end without the dot")
    c.eq(len(sink.messages()), before, "no message completed at the sink")
    # attempt 1 is the one whose pre-scan passed: its failure comes from the stream
    c.true(eventually(lambda: re.search(
        r"%s queue defer .*reply=\"4\.3\.0 cannot read the queued message: [^\"]*checksum "
        r"mismatch[^\"]*\" attempt=1" % qid, E.node.log()), 10),
        "attempt 1 deferred as an unreadable message (checksum mismatch)", E.node.log_tail(10))
    return c.result()


def case_tls(E, tls_sink):
    """The same streaming through an OpenSSL bufferevent (opportunistic STARTTLS to the next
    hop): 32 MiB byte-identical, memory bounded."""
    c = Check()
    pid = E.node.pid
    head, blocks, want, size = big_message("tls-%d" % os.getpid(), 32 * MIB)
    base = status_kib(pid, "VmRSS")
    with open("/proc/%d/clear_refs" % pid, "w") as f:
        f.write("5")
    r = send_big(E, head, blocks, "big@tls.test")
    c.true(queued_id(r), "32 MiB message accepted", r)
    if c.true(eventually(lambda: tls_sink.messages(), 60, 0.2), "delivered over TLS",
              E.node.log_tail(10)):
        m = tls_sink.messages()[0]
        c.true(m["tls"], "the sink received it after STARTTLS")
        c.eq((m["sha256"], m["hashed"]), (want, size), "sha256 and size = the sent message")
    hwm = status_kib(pid, "VmHWM")
    print("# TLS: %d octets; VmRSS baseline %d KiB, VmHWM %d KiB (+%d)"
          % (size, base, hwm, hwm - base))
    c.true(hwm - base < RSS_BOUND_KIB, "VmHWM grew by under 16 MiB", "+%d KiB" % (hwm - base))
    return c.result()


def main():
    t = rntest.Tap()          # no relaynode binary: Env raises, a failure (never a skip)
    sinks = []
    try:
        with rnnode.Env("delivery_large") as E:
            sink, tls_sink = hash_sink(E, "sink"), hash_sink(E, "tls-sink", tls=True)
            sinks += [sink, tls_sink]
            E.ldapmodify("dn: cn=TLS hop,cn=Send Connectors,ou=Relay,dc=example,dc=com\n"
                         "changetype: add\nobjectClass: relaySendConnector\ncn: TLS hop\n"
                         "relayEnabled: TRUE\nrelayAddressSpace: tls.test\n"
                         "relaySmartHost: 127.0.0.1:%d\nrelayCost: 1\n" % tls_sink.port)
            with open(E.conf) as f:
                conf = [l for l in f if not l.startswith(("retry_min", "retry_max"))]
            with open(E.conf, "w") as f:
                f.write("".join(conf) + "retry_min = 1\nretry_max = 2\n")
            E.ldapmodify("dn: cn=To sink,cn=Send Connectors,ou=Relay,dc=example,dc=com\n"
                         "changetype: add\nobjectClass: relaySendConnector\ncn: To sink\n"
                         "relayEnabled: TRUE\nrelayAddressSpace: sink.test\n"
                         "relaySmartHost: 127.0.0.1:%d\nrelayCost: 1\n" % sink.port)
            E.modify_connector("CRM Application", {"relayMaxMessageSize": ["2147483647"]})
            E.node.stop()
            asan = os.environ.get("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
            E.node.env = {"ASAN_OPTIONS": asan + ":quarantine_size_mb=1"}
            E.node.start()
            t.run("300 MiB relayed byte-identical with node memory bounded (16 MiB)",
                  case_large, E, sink)
            t.run("checksum mismatch while streaming: DATA never completed, deferred",
                  case_corrupt_while_streaming, E, sink)
            t.run("32 MiB over STARTTLS to the next hop: byte-identical, memory bounded",
                  case_tls, E, tls_sink)
    finally:
        for s in sinks:
            s.stop()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
