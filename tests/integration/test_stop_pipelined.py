#!/usr/bin/env python3
"""Stopping a loaded node (docs/reliability.md §2; issue 13 "Durability" 5).

Twenty times: a node (ASan/UBSan build, queue_hold = yes so nothing leaves the spool,
drain_timeout = 1) takes mail from clients that pipeline whole transactions (anonymous on the
SMTP port; after STARTTLS, AUTH PLAIN pipelined with the transactions on the submission
port, reconnecting all the time so AUTH steps are in flight), and is stopped with SIGTERM
(even rounds: one signal, the drain; odd rounds: a second SIGTERM a few milliseconds later,
the operator's "out now"). At the stop, the directory is paused (SIGSTOP) under sessions
whose AUTH step is in flight with another AUTH and a transaction pipelined behind it: the
teardown finishes those steps (ldap_timeout = 1) after the loop is gone. Every stop must exit 0 with no sanitizer report in the node's
output, and every message acknowledged with "250 2.6.0 <id@...>" must be in the spool's
queue/ afterwards. Prints TAP lines."""
import base64
import os
import random
import re
import signal
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402

ROUNDS = int(os.environ.get("RN_STOP_ROUNDS", "12"))   # RN_STOP_ROUNDS=100 for a long run
ANON, AUTHED, STUCK = 4, 4, 3
PER_WRITE = 4
QUEUED = re.compile(r"250 2\.6\.0 <([0-9A-F]{24})@")
SANITIZER = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
             "runtime error:", "Aborted", "SUMMARY:")


def block(sender, rcpt, tag, n):
    out = []
    for k in range(n):
        out.append("MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\nSubject: %s-%d\r\n\r\nbody\r\n.\r\n"
                   % (sender, rcpt, tag, k))
    return "".join(out)


def read_replies(cl, want, acked):
    """Read until `want` final DATA replies or the end; record queue ids. False at the end."""
    got = 0
    try:
        while got < want:
            line = cl.read_line(10)
            m = QUEUED.search(line)
            if m:
                acked.append(m.group(1))
            if line[:3] in ("250", "451", "452", "550", "554") and "2.1." not in line:
                got += 1
            if line.startswith("421"):
                return False
    except (rnnode.Closed, socket.timeout, OSError, ssl.SSLError):
        return False
    return True


def anon_client(port, stop, acked, tag):
    n = 0
    while not stop.is_set():
        try:
            cl = rnnode.Client("127.0.0.1", port, source="127.0.0.1", timeout=10)
        except OSError:
            return                       # listeners closed: the node is stopping
        try:
            cl.ehlo()
            while not stop.is_set():
                n += 1
                cl.send_raw(block("app@outside.example", "alice@example.com",
                                  "%s-%d" % (tag, n), PER_WRITE))
                if not read_replies(cl, PER_WRITE, acked):
                    break
        except (rnnode.Closed, socket.timeout, OSError, ssl.SSLError):
            pass
        finally:
            cl.close()


def auth_client(port, ca, stop, acked, tag, pw):
    plain = base64.b64encode(b"\0alice\0" + pw.encode()).decode()
    n = 0
    while not stop.is_set():
        try:
            cl = rnnode.Client("127.0.0.1", port, source="127.0.0.1", timeout=10)
        except OSError:
            return
        try:
            cl.ehlo()
            if not cl.cmd("STARTTLS").startswith("220"):
                return
            ctx = ssl.create_default_context(cafile=ca)
            ctx.check_hostname = False
            cl.sock = ctx.wrap_socket(cl.sock, server_hostname="node1.example.com")
            cl.buf = b""
            cl.ehlo()
            n += 1
            cl.send_raw("AUTH PLAIN %s\r\n" % plain + block("alice@example.com",
                                                            "bob@example.com",
                                                            "%s-%d" % (tag, n), PER_WRITE))
            read_replies(cl, PER_WRITE + 1, acked)
        except (rnnode.Closed, socket.timeout, OSError, ssl.SSLError):
            pass
        finally:
            try:
                cl.close()
            except OSError:
                pass


def tls_session(port, ca):
    cl = rnnode.Client("127.0.0.1", port, source="127.0.0.1", timeout=30)
    cl.ehlo()
    if not cl.cmd("STARTTLS").startswith("220"):
        raise OSError("STARTTLS refused")
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    cl.sock = ctx.wrap_socket(cl.sock, server_hostname="node1.example.com")
    cl.buf = b""
    cl.ehlo()
    return cl


def one_round(t, S, conf, i):
    node = rnnode.Node(conf, ports=[S.smtp_port, S.sub_port])
    node.start(timeout=60)
    stop, acked = threading.Event(), []
    ca = os.path.join(S.dir, "tls", "ca.pem")
    pw = rntest.user_password("alice")
    threads = [threading.Thread(target=anon_client, args=(S.smtp_port, stop, acked,
                                                          "r%d-a%d" % (i, k)))
               for k in range(ANON)]
    threads += [threading.Thread(target=auth_client, args=(S.sub_port, ca, stop, acked,
                                                           "r%d-u%d" % (i, k), pw))
                for k in range(AUTHED)]
    for th in threads:
        th.start()
    time.sleep(random.uniform(0.5, 1.5))
    # AUTH steps in flight at the stop: the directory stops answering (SIGSTOP), so these
    # binds wait for ldap_timeout, and each session has a second AUTH pipelined behind.
    stuck = [tls_session(S.sub_port, ca) for _ in range(STUCK)]
    plain = base64.b64encode(b"\0alice\0" + pw.encode()).decode()
    os.kill(S.pid, signal.SIGSTOP)
    try:
        for cl in stuck:
            cl.send_raw(("AUTH PLAIN %s\r\n" % plain) * 2 +
                        block("alice@example.com", "bob@example.com", "r%d-stuck" % i, 1))
        time.sleep(0.3)
        node.signal(signal.SIGTERM)
        if i % 2:
            time.sleep(random.uniform(0.002, 0.03))
            node.signal(signal.SIGTERM)
        try:
            rc = node.proc.wait(60)
        except Exception:  # noqa: BLE001 - a hang is a failure
            rc = "hung"
    finally:
        os.kill(S.pid, signal.SIGCONT)
        for cl in stuck:
            try:
                cl.close()
            except OSError:
                pass
    stop.set()
    for th in threads:
        th.join(30)
    rc = node.stop() if rc == "hung" else rc
    out = open(node.log_path, errors="replace").read()
    bad = [l for l in out.splitlines() if any(s in l for s in SANITIZER)]
    queue = set(os.listdir(os.path.join(S.spool_dir, "queue")))
    lost = [q for q in acked if q not in queue]
    ok = rc == 0 and not bad and not lost and len(acked) > 0
    t.ok(ok, "stop %d (%s): exit %s, %d acknowledged, all in the spool, no sanitizer report"
         % (i + 1, "two signals" if i % 2 else "drain", rc, len(acked)),
         "rc=%s lost=%s\n%s\n%s" % (rc, lost[:5], "\n".join(bad[:10]),
                                    "\n".join(out.splitlines()[-30:]) if not ok else ""))
    if not ok and os.environ.get("RELAYNODE_BUILD"):
        d = os.path.join(os.environ["RELAYNODE_BUILD"], "test-logs")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "stop-pipelined-round-%d.log" % (i + 1)), "w") as f:
            f.write(out)
    # the next round starts from an empty log
    open(node.log_path, "w").close()
    return ok


def main():
    t = rntest.Tap()
    with rntest.Slapd() as S:
        conf = os.path.join(S.dir, "stop.conf")
        with open(S.conf) as f, open(conf, "w") as g:
            g.write(f.read() + "\ndrain_timeout = 1\nqueue_hold = yes\nldap_timeout = 1\n")
        for i in range(ROUNDS):
            one_round(t, S, conf, i)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
