#!/usr/bin/env python3
"""TLS principals (issue #14): who a client is because of the certificate it presents on
STARTTLS (docs/permission-model.md §3.3), against a real slapd and real nodes.

ExchangeServer: node1 (the example's) and a second node, node2, started here with its own
bootstrap, spool and certificate, share the fixture's directory. `relayctl node set|new
--certificate` stores each node's certificate fingerprint (relayCertificateSha256). node2
has an "Internal" connector (ExchangeServers group, Tls + ExchangeServer). A message node1
routes to node2 through a send connector arrives under node1's certificate, so node2 holds
{Exchange Servers} and stamps AuthAs Internal; a certificate that is no node's, or none,
leaves the client anonymous with the reason logged. `relayctl explain --client-cert`
explains both.
"""
import hashlib
import os
import ssl
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402
from rnnode import Check, Client, eventually  # noqa: E402

BUILD = os.environ.get("RELAYNODE_BUILD") or os.path.join(rntest.ROOT, "build")
RELAYCTL = os.path.join(BUILD, "relayctl")
SITE = "cn=Default-Site,cn=Sites,ou=Relay,dc=example,dc=com"
NODE2_DN = "cn=node2," + SITE
CRM_SRC = "127.0.2.55"
NOT_AUTH = "530 5.7.1 Client was not authenticated"


def leaf_der(pem_path):
    with open(pem_path) as f:
        text = f.read()
    end = "-----END CERTIFICATE-----"
    return ssl.PEM_cert_to_DER_cert(text[:text.index(end) + len(end)] + "\n")


def sha256_hex(pem_path):
    return hashlib.sha256(leaf_der(pem_path)).hexdigest()


def relayctl(E, *args, admin=True):
    argv = [RELAYCTL] + list(args) + ["--config", E.conf]
    if admin:
        argv += ["--bind-dn", E.slapd.admin_dn, "--password-file", E.slapd.admin_pw_file]
    return rntest.run(argv)


def mkcert(E, name, cn):
    d = os.path.join(E.dir, "pki-" + name)
    rc, _, err = rntest.run(["bash", os.path.join(E.root, "deploy", "pki", "mkcerts.sh"),
                             d, cn])
    if rc != 0:
        raise rnnode.NodeError("mkcerts.sh %s: %s" % (name, err))
    return os.path.join(d, "node.pem"), os.path.join(d, "node.key")


def tls_session(port, cert=None, key=None, source="127.0.0.1"):
    """A client that does EHLO, STARTTLS (presenting cert when given) and EHLO again."""
    cl = Client("127.0.0.1", port, source=source, timeout=15.0)
    cl.ehlo()
    r = cl.cmd("STARTTLS")
    if not r.startswith("220 "):
        cl.close()
        raise rnnode.NodeError("STARTTLS: " + r)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert, key)
    cl.sock = ctx.wrap_socket(cl.sock, server_hostname="node2.example.com")
    cl.buf = b""
    cl.ehlo()
    return cl


def spool_data(spool_dir, marker):
    """The message bytes (as text) of the spooled messages containing marker, or ""."""
    m = rnnode.spool_messages(spool_dir, marker)
    return "".join(v["data"].decode("utf-8", "replace") for v in m.values() if v)


class Node2:
    """A second relaynode for node2 on the same directory: own bootstrap, spool, log and
    certificate; queue_hold so what it accepts stays in its spool for the test to read."""

    def __init__(self, E, port, cert, key):
        self.dir = os.path.join(E.dir, "node2")
        os.makedirs(os.path.join(self.dir, "spool"), exist_ok=True)
        self.spool = os.path.join(self.dir, "spool")
        self.conf = os.path.join(self.dir, "relaynode.conf")
        keep = []
        with open(E.conf) as f:
            for line in f:
                k = line.split("=", 1)[0].strip()
                if k not in ("node", "hostname", "spool_dir", "log", "protocol_log_dir",
                             "tls_cert", "tls_key"):
                    keep.append(line.rstrip("\n"))
        keep += ["node = node2", "hostname = node2.example.com",
                 "spool_dir = " + self.spool, "log = " + os.path.join(self.dir, "node.log"),
                 "tls_cert = " + cert, "tls_key = " + key, "queue_hold = yes"]
        with open(self.conf, "w") as f:
            f.write("\n".join(keep) + "\n")
        self.node = rnnode.Node(self.conf, ports=[port])


def setup(E, t):
    """node1's certificate on its entry, node2 with its own, node2's Internal connector and
    node1's send connector to it. Returns (node2, port2, certs) or None."""
    node1_pem = os.path.join(E.dir, "tls", "node.pem")
    node2_pem, node2_key = mkcert(E, "node2", "node2.example.com")
    stranger_pem, stranger_key = mkcert(E, "stranger", "node1.example.com")
    port2 = rntest.free_port(exclude=(E.smtp_port, E.sub_port))
    rc, out, err = relayctl(E, "node", "set", "node1", "--certificate", node1_pem)
    t.ok(rc == 0, "relayctl node set node1 --certificate", out + err)
    rc, out, err = relayctl(E, "node", "new", "node2", "--site", "Default-Site",
                            "--hostname", "node2.example.com", "--certificate", node2_pem)
    t.ok(rc == 0, "relayctl node new node2 --certificate", out + err)
    rc, out, err = relayctl(E, "connector", "new", "Internal node2", "--node", "node2",
                            "--usage", "Internal", "--bindings", "127.0.0.1:%d" % port2,
                            "--remote-ip-ranges", "127.0.0.0/8", "--tarpit-interval", "0")
    t.ok(rc == 0, "relayctl connector new 'Internal node2' --usage Internal", out + err)
    rc, out, err = relayctl(E, "sendconnector", "new", "To node2", "--address-spaces",
                            "internal.test", "--smart-hosts", "127.0.0.1:%d" % port2)
    t.ok(rc == 0, "relayctl sendconnector new 'To node2'", out + err)
    n2 = Node2(E, port2, node2_pem, node2_key)
    n2.node.start()
    E.node.reload()
    return n2, port2, {"node1": (node1_pem, os.path.join(E.dir, "tls", "node.key")),
                       "node2": (node2_pem, node2_key),
                       "stranger": (stranger_pem, stranger_key)}


def case_attr(E, certs):
    c = Check()
    rows = E.slapd.search(SITE, "(objectClass=relayNode)", ["cn", "relayCertificateSha256"],
                          bind="admin")
    got = {r.first("cn"): r.get("relayCertificateSha256") for r in rows}
    c.eq(got.get("node1"), [sha256_hex(certs["node1"][0])],
         "node1's entry holds the SHA-256 of its certificate's DER")
    c.eq(got.get("node2"), [sha256_hex(certs["node2"][0])], "node2's likewise")
    bad = os.path.join(E.dir, "not-a-cert.pem")
    with open(bad, "w") as f:
        f.write("nothing here\n")
    rc, out, err = relayctl(E, "node", "set", "node1", "--certificate", bad)
    c.eq(rc, 2, "a file that is not a PEM certificate: exit 2")
    c.true("--certificate" in err and bad in err, "and the message names the option and file",
           err)
    rows = E.slapd.search(SITE, "(cn=node1)", ["relayCertificateSha256"], bind="admin")
    c.eq(rows[0].get("relayCertificateSha256"), [sha256_hex(certs["node1"][0])],
         "nothing was written")
    return c.result()


def case_node_cert(E, n2, port2, certs):
    """A client presenting node1's certificate to node2's Internal connector is node1:
    relay to any domain, stamped Internal with mechanism 04."""
    c = Check()
    marker = "direct-%d" % time.time_ns()
    cl = tls_session(port2, *certs["node1"])
    try:
        c.eq(cl.cmd("MAIL FROM:<app@example.com>")[:3], "250", "MAIL accepted")
        c.eq(cl.cmd("RCPT TO:<someone@outside.example>")[:3], "250",
             "RCPT to an outside domain accepted (Accept-Any-Recipient of the server set)")
        _, r = cl.data(rnnode.message("app@example.com", "someone@outside.example",
                                      subject=marker))
        c.true((r or "").startswith("250 "), "message queued", r)
        cl.cmd("QUIT")
    finally:
        cl.close()
    log = n2.node.log()
    c.true("smtp tls-principal" in log and "principal=exchange-server node=node1" in log,
           "log: smtp tls-principal principal=exchange-server node=node1",
           n2.node.log_tail(10))
    text = eventually(lambda: spool_data(n2.spool, marker), 5.0)
    c.true("X-Relaynode-Organization-AuthAs: Internal" in text, "stamped AuthAs: Internal",
           text[:600])
    c.true("X-Relaynode-Organization-AuthMechanism: 04" in text,
           "stamped AuthMechanism: 04 (DirectTrustTLS)", text[:600])
    return c.result()


def case_anonymous(E, n2, port2, certs, which):
    """A certificate that is no node's, or none: anonymous, the reason logged, and the
    Internal connector (no ANONYMOUS LOGON ACE) refuses MAIL."""
    c = Check()
    before = n2.node.log()
    cert = certs[which] if which else (None, None)
    cl = tls_session(port2, *cert)
    try:
        r = cl.cmd("MAIL FROM:<app@example.com>")
        c.eq(r, NOT_AUTH, "MAIL refused: the session is anonymous")
    finally:
        cl.close()
    want = "reason=not-a-node-certificate" if which else "reason=no-certificate"

    def logged():
        return want in n2.node.log()[len(before):]
    c.true(eventually(logged, 5.0), "log: smtp tls-anonymous " + want, n2.node.log_tail(6))
    return c.result()


def case_cluster_relay(E, n2, certs):
    """node1 routes internal.test to node2 (send connector); its delivery presents node1's
    certificate, so node2 stamps the message Internal."""
    c = Check()
    marker = "relay-%d" % time.time_ns()
    with Client("127.0.0.1", E.smtp_port, source=CRM_SRC) as cl:
        r = cl.send_message("app@example.com", ["user@internal.test"],
                            rnnode.message("app@example.com", "user@internal.test",
                                           subject=marker))[-1]
        c.true(r.startswith("250 "), "node1 accepts from the CRM application", r)

    text = eventually(lambda: spool_data(n2.spool, marker), 30.0)
    c.true(text, "node2 received the message from node1", n2.node.log_tail(10))
    top = [l for l in text.splitlines() if l.startswith("X-Relaynode-Organization-AuthAs:")]
    c.true(top and top[0].endswith("Internal"), "node2's stamp (the top one): AuthAs Internal",
           top)
    c.true("principal=exchange-server node=node1" in n2.node.log(),
           "node2 logged node1 as the TLS principal", n2.node.log_tail(10))
    return c.result()


def explain(E, conf, port2, cert):
    return rntest.run([RELAYCTL, "explain", "--config", conf, "--local", "127.0.0.1:%d" % port2,
                       "--remote", "127.0.0.1", "--from", "app@example.com", "--to",
                       "someone@outside.example", "--client-cert", cert, "--json"])


def case_explain(E, n2, port2, certs):
    import json
    c = Check()
    rc, out, err = explain(E, n2.conf, port2, certs["node1"][0])
    c.eq(rc, 0, "explain --client-cert node1.pem: accepted (exit 0)")
    try:
        j = json.loads(out)
    except ValueError:
        return False, out + err
    c.true("node node1" in j.get("client_certificate", ""), "client certificate: node node1", j)
    c.true("Exchange Servers" in j.get("token", ""), "token holds Exchange Servers",
           j.get("token"))
    c.eq(j.get("auth_as"), "Internal", "auth as Internal")
    rc, out, err = explain(E, n2.conf, port2, certs["stranger"][0])
    c.eq(rc, 1, "explain --client-cert stranger.pem: refused (exit 1)")
    j = json.loads(out) if out.startswith("{") else {}
    c.true("not-a-node-certificate" in j.get("client_certificate", ""),
           "client certificate: anonymous (not-a-node-certificate)", j)
    rc, out, err = explain(E, n2.conf, port2, os.path.join(E.dir, "not-a-cert.pem"))
    c.eq(rc, 2, "explain --client-cert with a file that is not a certificate: exit 2")
    return c.result()


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    if not t.ok(os.path.exists(RELAYCTL), "relayctl built", RELAYCTL):
        return t.done()
    with rnnode.Env("tlsprincipals") as E:
        n2, port2, certs = setup(E, t)
        try:
            t.run("relayctl node set/new --certificate writes relayCertificateSha256; a bad "
                  "file exits 2", case_attr, E, certs)
            t.run("node1's certificate on node2's ExchangeServer connector: Exchange Servers, "
                  "relays, AuthAs Internal", case_node_cert, E, n2, port2, certs)
            t.run("a certificate that is no node's: anonymous, reason logged", case_anonymous,
                  E, n2, port2, certs, "stranger")
            t.run("no certificate: anonymous, reason logged", case_anonymous, E, n2, port2,
                  certs, None)
            t.run("node1 relays to node2 through a send connector: node2 stamps Internal",
                  case_cluster_relay, E, n2, certs)
            t.run("relayctl explain --client-cert", case_explain, E, n2, port2, certs)
        finally:
            rc = n2.node.stop()
            t.ok(rc == 0, "node2 exits 0", n2.node.log_tail(10))
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
