#!/usr/bin/env python3
"""Listeners follow the directory, sessions survive reloads, acknowledged mail survives kill -9.

  - a connector with a new binding added by ldapmodify + SIGHUP: its port answers while a
    session opened earlier on the old port keeps working; deleted + SIGHUP: the port closes;
  - durability smoke: a message acknowledged with 250 is still listed by --list-spool after
    SIGKILL and after a restart;
  - SIGTERM drains: no new connections, the open session finishes its transaction.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402
from rnnode import Check, Client, queued_id, reply_str  # noqa: E402

SENDER_OK = "250 2.1.0 Sender OK"
RCPT_OK = "250 2.1.5 Recipient OK"
NO_RELAY = "550 5.7.1 Unable to relay"
PID = os.getpid()
NEW_NAME = "Reload test node1"
NEW_BANNER = "220 reload-test listener ready"


def transact(c, cl, subject, what):
    c.eq(cl.cmd("MAIL FROM:<r@outside.example>"), SENDER_OK, what + ": MAIL")
    c.eq(cl.cmd("RCPT TO:<alice@example.com>"), RCPT_OK, what + ": RCPT")
    _, fin = cl.data("Subject: %s\r\n\r\nbody\r\n" % subject)
    c.true(queued_id(fin), what + ": queued", fin)


def case_add_binding(E, held, port):
    c = Check()
    E.add_connector(NEW_NAME, {
        "relayEnabled": ["TRUE"],
        "relayBinding": ["127.0.0.1:%d" % port],
        "relayRemoteIPRange": ["0.0.0.0-255.255.255.255"],
        "relayAuthMechanism": ["Tls"],
        "relayBanner": [NEW_BANNER],
        "relayAce": ["allow; NT AUTHORITY\\ANONYMOUS LOGON; ms-Exch-SMTP-Submit, "
                     "ms-Exch-SMTP-Accept-Any-Sender, "
                     "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender, "
                     "ms-Exch-Accept-Headers-Routing"]})
    E.node.reload()
    if not c.true(rnnode.wait_port("127.0.0.1", port, 15), "new port %d accepts" % port):
        return c.result()
    with Client("127.0.0.1", port, source="127.0.0.1") as cl:
        c.eq(cl.banner, [NEW_BANNER], "the new connector answers on its port")
        cl.ehlo()
        c.eq(cl.cmd("MAIL FROM:<n@outside.example>"), SENDER_OK, "new port: MAIL")
        c.eq(cl.cmd("RCPT TO:<x@outside.example>"), NO_RELAY, "new port: relay refused")
    transact(c, held, "held-after-add-%d" % PID, "session opened before the reload")
    return c.result()


def case_delete_binding(E, held, port):
    c = Check()
    E.delete_connector(NEW_NAME)
    E.node.reload()
    c.true(rnnode.port_closed("127.0.0.1", port, 15), "port %d closed after delete" % port)
    transact(c, held, "held-after-delete-%d" % PID, "old-port session after the delete")
    with Client("127.0.0.1", E.smtp_port, source="127.0.0.1") as cl:
        c.true(cl.banner[-1].startswith("220"), "old port still greets new clients", cl.banner)
    return c.result()


def case_kill9(E):
    c = Check()
    s = "durable-%d" % PID
    with rnnode.smtp("127.0.0.1", E.smtp_port, source="127.0.0.1") as m:
        m.ehlo("durable.test")
        m.mail("d@outside.example")
        m.rcpt("alice@example.com")
        r = reply_str(m.data(rnnode.message("d@outside.example", "alice@example.com", s)))
    if not c.true(queued_id(r), "acknowledged with 250 2.6.0", r):
        return c.result()
    qid = queued_id(r).split("@")[0]   # <queue id@fqdn>
    E.node.kill9()
    c.true(not E.node.alive(), "node killed")
    listed = E.node.list_spool()
    c.true(s in listed or qid in listed, "listed by --list-spool after kill -9", listed)
    torn = os.path.join(E.spool_dir, "queue", "0" * 24)     # a valid id, not a message
    with open(torn, "wb") as f:
        f.write(b"RNSP torn")
    E.node.start()
    c.true(not os.path.exists(torn), "a torn file in queue/ is moved away on start")
    c.true(rnnode.eventually(lambda: "spool quarantined file=" + "0" * 24 in E.node.log(), 5),
           "and the quarantine is logged", E.node.log_tail())
    listed = E.node.list_spool()
    c.true(s in listed or qid in listed, "listed after restart", listed)
    c.eq(len(rnnode.spool_find(E.spool_dir, s)), 1, "exactly one spool file for it")
    with Client("127.0.0.1", E.smtp_port, source="127.0.0.1") as cl:
        cl.ehlo()
        transact(c, cl, "after-restart-%d" % PID, "restarted node")
    return c.result()


def case_second_node_refused(E):
    """Two nodes must never share a spool: the second exits 1 naming the owner."""
    c = Check()
    r = subprocess.run([E.node.binary, "-c", E.conf, "--foreground", "--allow-root"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    out = r.stdout.decode(errors="replace")
    c.eq(r.returncode, 1, "second relaynode on the same spool: exit status")
    c.true("in use by pid %d" % E.node.pid in out, "it names the owner's pid", out)
    c.true(E.node.alive(), "the first node keeps running")
    return c.result()


def case_sigterm_drain(E):
    c = Check()
    with Client("127.0.0.1", E.smtp_port, source="127.0.0.1") as cl:
        cl.ehlo()
        c.eq(cl.cmd("MAIL FROM:<drain@outside.example>"), SENDER_OK, "MAIL before SIGTERM")
        E.node.signal(15)
        c.true(rnnode.port_closed("127.0.0.1", E.smtp_port, 10), "listener closed on SIGTERM")
        c.eq(cl.cmd("RCPT TO:<alice@example.com>"), RCPT_OK, "open session: RCPT")
        _, fin = cl.data("Subject: drain-%d\r\n\r\nbody\r\n" % PID)
        c.true(queued_id(fin), "open session finishes its transaction", fin)
        cl.cmd("QUIT")
    try:
        E.node.proc.wait(15)
    except Exception:
        pass
    c.true(not E.node.alive(), "node exits once the session is done")
    c.eq(E.node.proc.returncode, 0, "exit status")
    c.true(("drain-%d" % PID) in E.node.list_spool() or
           rnnode.spool_find(E.spool_dir, "drain-%d" % PID), "drained message spooled")
    return c.result()


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    with rnnode.Env("reload") as E:
        port = rntest.free_port(exclude=(E.smtp_port, E.sub_port))
        held = Client("127.0.0.1", E.smtp_port, source="127.0.0.1")
        try:
            held.ehlo()
            t.run("add a connector with a new binding + SIGHUP: new port answers, old "
                  "session keeps working", case_add_binding, E, held, port)
            t.run("delete it + SIGHUP: the port closes, old session keeps working",
                  case_delete_binding, E, held, port)
        finally:
            held.close()
        t.run("durability: a 250-acknowledged message survives kill -9", case_kill9, E)
        t.run("a second node on the same spool is refused", case_second_node_refused, E)
        t.run("SIGTERM drains: listener closes, open session completes", case_sigterm_drain, E)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
