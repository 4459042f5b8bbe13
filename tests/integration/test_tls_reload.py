#!/usr/bin/env python3
"""SIGHUP reloads tls_ca_file without a restart (node/daemon_certs.c), against a real slapd and
a real node over real STARTTLS. deploy/pki/mkpartner.sh makes two CAs: the partner CA
(ca.pem, which signed partner.pem) and another (otherca/ca.pem, which signed otherca.pem, a
certificate naming the same partner). node1's tls_ca_file starts as a copy of the partner CA:
partner.pem acts as Partner Servers, otherca.pem stays anonymous. The file is then replaced
by the other CA and the node gets SIGHUP: otherca.pem is now the partner and partner.pem is
refused, same process. A file that no longer loads keeps the CA in use (logged).
Outbound, a connection parked after a verified delivery to partner.example is not reused
once SIGHUP has replaced the CAs: the next message meets the new trust store (4.7.5).
"""
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rnnode  # noqa: E402
import rntest  # noqa: E402
from rnnode import Check, eventually  # noqa: E402
from test_tls_principals import (NOT_AUTH, RELAYCTL, relayctl, send_via_node1,  # noqa: E402
                                 sink_has, tls_session)

CONN = "Partner reload"


def mail_reply(port, pki, name):
    """MAIL's reply on the Partner connector after STARTTLS with certificate name."""
    cl = tls_session(port, os.path.join(pki, name + ".pem"), os.path.join(pki, name + ".key"))
    try:
        return cl.cmd("MAIL FROM:<someone@partner.example>")
    finally:
        cl.close()


def accepted(port, pki, name):
    return mail_reply(port, pki, name).startswith("250 ")


def replace(src, dst):
    """Replace dst by src's bytes the way an admin's tool does (a new file renamed over)."""
    shutil.copyfile(src, dst + ".new")
    os.rename(dst + ".new", dst)


def setup(E, t):
    pki = os.path.join(E.dir, "pki-partner")
    rc, _, err = rntest.run(["bash", os.path.join(E.root, "deploy", "pki", "mkpartner.sh"), pki])
    t.ok(rc == 0, "mkpartner.sh makes the partner CA, the other CA and their certificates", err)
    ca = os.path.join(E.dir, "partners-ca.pem")
    shutil.copyfile(os.path.join(pki, "ca.pem"), ca)
    with open(E.conf, "a") as f:
        f.write("tls_ca_file = %s\n" % ca)
    E.node.stop()
    E.node.start()
    port = rntest.free_port(exclude=(E.smtp_port, E.sub_port))
    rc, out, err = relayctl(E, "connector", "new", CONN, "--usage", "Partner", "--bindings",
                            "127.0.0.1:%d" % port, "--remote-ip-ranges", "127.0.0.0/8",
                            "--tarpit-interval", "0")
    t.ok(rc == 0, "relayctl connector new '%s' --usage Partner" % CONN, out + err)
    rc, out, err = relayctl(E, "org", "domain-secure", "add", "partner.example")
    t.ok(rc == 0, "relayctl org domain-secure add partner.example", out + err)
    t.ok(eventually(lambda: rnnode.wait_port("127.0.0.1", port, timeout=0.5), 10.0),
         "node1 listens for the Partner connector")
    t.ok(eventually(lambda: accepted(port, pki, "partner"), 15.0),
         "the node has loaded partner.example's listing")
    return port, pki, ca


def reloaded(E, before, what):
    return eventually(lambda: ("tls reloaded what=%s" % what) in E.node.log()[before:], 10.0)


def case_swap(E, port, pki, ca):
    c = Check()
    pid = E.node.proc.pid
    c.eq(mail_reply(port, pki, "otherca"), NOT_AUTH,
         "with the partner CA: otherca.pem is anonymous (MAIL refused)")
    c.true(accepted(port, pki, "partner"), "with the partner CA: partner.pem is Partner Servers")
    before = len(E.node.log())
    replace(os.path.join(pki, "otherca", "ca.pem"), ca)
    E.node.reload()
    c.true(reloaded(E, before, "tls_ca_file"), "log: tls reloaded what=tls_ca_file",
           E.node.log_tail(6))
    c.true(accepted(port, pki, "otherca"), "after SIGHUP: otherca.pem is Partner Servers")
    # The log is written by its own thread (in order): a session closed after the reload is
    # a later line; once it is there, a client-certificate reload would be too.
    c.true(E.node.wait_log("smtp close ", since=before), "log: the session's close",
           E.node.log_tail(6))
    c.true("what=client-certificate" not in E.node.log()[before:],
           "tls_cert and tls_key unchanged: the client context in use stays", E.node.log_tail(6))
    c.eq(mail_reply(port, pki, "partner"), NOT_AUTH, "after SIGHUP: partner.pem is anonymous")
    c.eq(E.node.proc.pid, pid, "the same process (no restart)")
    return c.result()


def case_bad_file(E, port, pki, ca):
    c = Check()
    before = len(E.node.log())
    with open(ca + ".new", "w") as f:
        f.write("not a certificate\n")
    os.rename(ca + ".new", ca)
    E.node.reload()
    line = eventually(lambda: [x for x in E.node.log()[before:].splitlines()
                               if "tls reload-failed what=tls_ca_file" in x], 10.0)
    c.true(line and "keeping=current" in line[0],
           "log: tls reload-failed what=tls_ca_file ... keeping=current", E.node.log_tail(6))
    c.true(accepted(port, pki, "otherca"), "the CA in use is kept: otherca.pem still a partner")
    c.eq(mail_reply(port, pki, "partner"), NOT_AUTH, "partner.pem still anonymous")
    return c.result()


def case_outbound_parked(E, port, pki, ca):
    """A sink presenting otherca.pem (trusted now) gets one message; the connection is parked
    (IDLE_S, 5 s). The CA file goes back to the partner CA, SIGHUP: the next message to
    partner.example must not ride the parked connection verified under the old CA."""
    import re
    import smtpsink
    c = Check()
    replace(os.path.join(pki, "otherca", "ca.pem"), ca)
    before = len(E.node.log())
    E.node.reload()
    c.true(reloaded(E, before, "tls_ca_file"), "the other CA is in use again")
    sink = smtpsink.Sink(os.path.join(E.dir, "sink-otherca"),
                         tls_cert=os.path.join(pki, "otherca.pem"),
                         tls_key=os.path.join(pki, "otherca.key")).start()
    try:
        rc, out, err = relayctl(E, "sendconnector", "new", "To partner", "--address-spaces",
                                "partner.example", "--smart-hosts", "127.0.0.1:%d" % sink.port)
        c.eq(rc, 0, "relayctl sendconnector new 'To partner' (smart host: the sink)")
        E.node.reload()
        m1 = "parked-1-%d" % os.getpid()
        send_via_node1(E, "user@partner.example", m1)
        c.true(eventually(lambda: sink_has(sink, m1), 20.0),
               "delivered to the sink whose certificate verifies now", E.node.log_tail(6))
        before = len(E.node.log())
        replace(os.path.join(pki, "ca.pem"), ca)
        E.node.reload(settle=0)
        c.true(reloaded(E, before, "tls_ca_file"), "SIGHUP: the partner CA is in use")
        m2 = "parked-2-%d" % os.getpid()
        send_via_node1(E, "user@partner.example", m2)
        pat = re.compile(r"queue defer from=<app@example.com> to=<user@partner.example>"
                         r".*4\.7\.5")
        c.true(eventually(lambda: pat.search(E.node.log()[before:]), 20.0),
               "the next message is deferred 4.7.5 (no parked connection reused)",
               E.node.log_tail(8))
        c.eq(sink_has(sink, m2), [], "nothing delivered over the connection verified before")
    finally:
        sink.stop()
    return c.result()


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    if not t.ok(os.path.exists(RELAYCTL), "relayctl built", RELAYCTL):
        return t.done()
    with rnnode.Env("tlsreload") as E:
        port, pki, ca = setup(E, t)
        t.run("tls_ca_file replaced by another CA + SIGHUP: the new CA's partner is accepted, "
              "the old one refused, no restart", case_swap, E, port, pki, ca)
        t.run("a CA file that no longer loads + SIGHUP: the CA in use is kept (logged)",
              case_bad_file, E, port, pki, ca)
        t.run("outbound: a connection parked before SIGHUP replaced the CAs is not reused",
              case_outbound_parked, E, port, pki, ca)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
