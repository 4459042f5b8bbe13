#!/usr/bin/env python3
"""TLS principals (issue #14): who a client is because of the certificate it presents on
STARTTLS (docs/permission-model.md §3.3), against a real slapd and real nodes.

Partners (Domain Secure): deploy/pki/mkpartner.sh makes a throwaway partner CA (node1's
tls_ca_file) with a certificate for mail.partner.example, a wrong-name one, an expired one
and one from another CA. partner.example is the organisation's domain-secure list
(relayDomainSecureDomain on cn=Sites); "Partner node1" (--usage Partner,
DomainSecureEnabled) gives the partner certificate {Partner Servers} (AuthAs Partner) and
every other certificate nothing, with the reason logged. Outbound, a route to partner.example
and a RequireTLS smart host defer with 4.7.5 when the next hop's certificate does not verify
(test sinks presenting the other CA's certificate), and deliver when it does.

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
import re
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
    c.true(n2.node.wait_log("smtp tls-principal")
           and n2.node.wait_log("principal=exchange-server node=node1"),
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
    c.true(n2.node.wait_log("principal=exchange-server node=node1"),
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


# -- Partners (Domain Secure) -------------------------------------------------------------
PARTNER_CONN = "Partner node1"


def partner_setup(E, t, work):
    """tls_ca_file = the partner CA (node1 restarted), partner.example domain-secure, the
    Partner connector. Returns (port, pki dir)."""
    pki = os.path.join(work, "pki-partner")
    rc, _, err = rntest.run(["bash", os.path.join(E.root, "deploy", "pki", "mkpartner.sh"), pki])
    t.ok(rc == 0, "mkpartner.sh makes the partner CA and certificates", err)
    with open(E.conf, "a") as f:
        f.write("tls_ca_file = %s\n" % os.path.join(pki, "ca.pem"))
    E.node.stop()
    E.node.start()
    port = rntest.free_port(exclude=(E.smtp_port, E.sub_port))
    rc, out, err = relayctl(E, "connector", "new", PARTNER_CONN, "--usage", "Partner",
                            "--bindings", "127.0.0.1:%d" % port, "--remote-ip-ranges",
                            "127.0.0.0/8", "--tarpit-interval", "0",
                            "--domain-secure-enabled=false")
    t.ok(rc == 0, "relayctl connector new 'Partner node1' --usage Partner "
         "--domain-secure-enabled=false", out + err)
    t.ok(audit_has(E, PARTNER_CONN, "DomainSecureEnabled is off"),
         "audit: Partners granted with DomainSecureEnabled off", audit_text(E))
    rc, out, err = relayctl(E, "connector", "set", PARTNER_CONN, "--domain-secure-enabled")
    t.ok(rc == 0, "relayctl connector set --domain-secure-enabled", out + err)
    rc, out, err = relayctl(E, "connector", "new", "Partner default", "--usage", "Partner",
                            "--bindings", "127.0.0.1:%d" % port, "--remote-ip-ranges",
                            "127.0.0.99", "--ldif")
    t.ok(rc == 0 and "relayDomainSecureEnabled: TRUE" in out,
         "--usage Partner writes relayDomainSecureEnabled: TRUE (as New-ReceiveConnector)",
         out + err)
    t.ok(audit_has(E, PARTNER_CONN, "without a domain-secure list"),
         "audit: Partners granted without a domain-secure list", audit_text(E))
    E.ldapmodify("dn: cn=Sites,ou=Relay,dc=example,dc=com\nchangetype: modify\n"
                 "add: relayDomainSecureDomain\nrelayDomainSecureDomain: partner.example\n")
    t.ok(not audit_has(E, PARTNER_CONN, "Partners"),
         "audit: no Partners finding once partner.example is listed", audit_text(E))
    t.ok(rnnode.eventually(lambda: rnnode.wait_port("127.0.0.1", port, timeout=0.5), 10.0),
         "node1 listens for the Partner connector")
    return port, pki


def audit_text(E):
    rc, out, err = relayctl(E, "audit", "--json")
    return out + err


def audit_has(E, conn, text):
    import json
    try:
        f = json.loads(relayctl(E, "audit", "--json")[1])["Findings"]
    except (ValueError, KeyError):
        return False
    return any(conn in x["Connector"] and text in x["Message"] for x in f)


def case_audit_node_certs(E):
    """With no relayCertificateSha256 anywhere, connectors with ExchangeServer are findings."""
    c = Check()
    c.true(not audit_has(E, "Internal node2", "ExchangeServer without"),
           "no finding while nodes have certificates", audit_text(E))
    for node in ("node1", "node2"):
        rc, out, err = relayctl(E, "node", "set", node, "--certificate", "")
        c.eq(rc, 0, "relayctl node set %s --certificate '' deletes it" % node)
    c.true(audit_has(E, "Internal node2", "ExchangeServer without any node certificate"),
           "audit: ExchangeServer without any node certificate (Internal node2)",
           audit_text(E))
    return c.result()


def case_partner(E, port, pki):
    c = Check()
    marker = "partner-%d" % time.time_ns()
    cl = tls_session(port, os.path.join(pki, "partner.pem"), os.path.join(pki, "partner.key"))
    try:
        c.eq(cl.cmd("MAIL FROM:<someone@partner.example>")[:3], "250", "MAIL accepted")
        c.eq(cl.cmd("RCPT TO:<alice@example.com>")[:3], "250", "RCPT to an accepted domain")
        c.eq(cl.cmd("RCPT TO:<x@outside.example>"), "550 5.7.1 Unable to relay",
             "no relay: Partners hold Submit and Accept-Headers-Routing only")
        _, r = cl.data(rnnode.message("someone@partner.example", "alice@example.com",
                                      subject=marker))
        c.true((r or "").startswith("250 "), "message queued", r)
    finally:
        cl.close()
    c.true(eventually(lambda: "principal=partner domain=partner.example" in E.node.log(), 10),
           "log: smtp tls-principal principal=partner domain=partner.example",
           E.node.log_tail(6))
    text = eventually(lambda: spool_data(E.spool_dir, marker), 5.0)
    c.true("X-Relaynode-Organization-AuthAs: Partner" in text, "stamped AuthAs: Partner",
           text[:500])
    c.eq(E.auth_facts(marker)[0], "Partner", "the spool envelope records AuthAs Partner")
    return c.result()


def case_partner_explain(E, port, pki):
    """relayctl explain --client-cert on the Partner connector: the node's own checks."""
    import json
    c = Check()

    def ex(name):
        rc, out, err = rntest.run([RELAYCTL, "explain", "--config", E.conf, "--local",
                                   "127.0.0.1:%d" % port, "--remote", "127.0.0.1", "--from",
                                   "sales@partner.example", "--to", "alice@example.com",
                                   "--client-cert", os.path.join(pki, name + ".pem"), "--json"])
        try:
            return rc, json.loads(out)
        except ValueError:
            return rc, {"_out": out + err}
    rc, j = ex("partner")
    c.eq(rc, 0, "partner.pem: accepted (exit 0)")
    c.eq(j.get("client_certificate"), "partner partner.example (certificate)",
         "client certificate: partner partner.example")
    c.eq(j.get("auth_as"), "Partner", "auth as Partner")
    c.true("Partner Servers" in j.get("token", ""), "token: Partner Servers", j.get("token"))
    rc, j = ex("expired")
    c.eq(rc, 1, "expired.pem: refused (exit 1)")
    c.true("certificate has expired" in j.get("client_certificate", ""),
           "client certificate: anonymous (untrusted: certificate has expired ...)", j)
    rc, j = ex("wrongname")
    c.true("name-mismatch" in j.get("client_certificate", ""),
           "wrongname.pem: anonymous (name-mismatch ...)", j)
    return c.result()


def cert_requested(port, cert, key):
    """Whether the server sends a TLS CertificateRequest after STARTTLS (openssl s_client
    -msg prints every handshake message)."""
    rc, out, err = rntest.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                               "-starttls", "smtp", "-msg", "-cert", cert, "-key", key],
                              input="QUIT\r\n", timeout=30)
    done = "SSL handshake has read" in out
    return "CertificateRequest" in out, done, out[-400:] + err[-400:]


def case_cert_request(E, port, pki):
    """Only connectors with ExchangeServer or DomainSecureEnabled ask for a certificate."""
    c = Check()
    cert, key = os.path.join(pki, "partner.pem"), os.path.join(pki, "partner.key")
    asked, done, diag = cert_requested(port, cert, key)
    c.true(done and asked, "Partner node1 (DomainSecureEnabled) sends a CertificateRequest",
           diag)
    asked, done, diag = cert_requested(E.sub_port, cert, key)
    c.true(done, "the TLS handshake with Client node1 completed", diag)
    c.true(not asked, "Client node1 (neither ExchangeServer nor DomainSecureEnabled) does not",
           diag)
    return c.result()


def case_partner_refused(E, port, pki, name, want):
    c = Check()
    before = len(E.node.log())
    cert = (os.path.join(pki, name + ".pem"), os.path.join(pki, name + ".key")) if name \
        else (None, None)
    cl = tls_session(port, *cert)
    try:
        c.eq(cl.cmd("MAIL FROM:<someone@partner.example>"), NOT_AUTH,
             "MAIL refused: anonymous on the Partner connector")
    finally:
        cl.close()
    line = eventually(lambda: [l for l in E.node.log()[before:].splitlines()
                               if "smtp tls-anonymous" in l], 5.0)
    c.true(line and want in line[0], "log: smtp tls-anonymous reason=%s..." % want, line)
    return c.result()


def send_via_node1(E, rcpt, marker):
    with Client("127.0.0.1", E.smtp_port, source=CRM_SRC) as cl:
        r = cl.send_message("app@example.com", [rcpt],
                            rnnode.message("app@example.com", rcpt, subject=marker))[-1]
    return rnnode.queued_id(r)


def sink_has(sink, marker):
    return [m for m in sink.messages() if marker in str(m)]


def case_outbound(E, rcpt_domain, connector, good, bad, extra):
    """Through `connector` (smart host = bad sink, then good sink): the bad certificate
    defers with 4.7.5, the good one delivers."""
    c = Check()
    rc, out, err = relayctl(E, "sendconnector", "new", connector, "--address-spaces",
                            rcpt_domain, "--smart-hosts", "127.0.0.1:%d" % bad.port, *extra)
    c.eq(rc, 0, "relayctl sendconnector new " + connector)
    time.sleep(0.5)
    marker = "out-bad-%d" % time.time_ns()
    rcpt = "user@" + rcpt_domain
    qid = send_via_node1(E, rcpt, marker)
    c.true(qid, "node1 queued the message")
    pat = re.compile(r"queue defer from=<app@example.com> to=<%s>.*4\.7\.5" % re.escape(rcpt))
    c.true(eventually(lambda: pat.search(E.node.log()), 20.0),
           "deferred with 4.7.5 (the next hop's certificate does not verify)",
           E.node.log_tail(6))
    c.eq(sink_has(bad, marker), [], "nothing delivered to the unverified next hop")
    rc, out, err = relayctl(E, "sendconnector", "set", connector, "--smart-hosts",
                            "127.0.0.1:%d" % good.port)
    c.eq(rc, 0, "smart host switched to the verified sink")
    time.sleep(0.5)
    marker = "out-good-%d" % time.time_ns()
    send_via_node1(E, rcpt, marker)
    c.true(eventually(lambda: sink_has(good, marker), 20.0),
           "delivered to the next hop whose certificate verifies", E.node.log_tail(6))
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
        import smtpsink
        port, pki = partner_setup(E, t, E.dir)
        t.run("partner certificate (verified, names partner.example): Partner Servers, AuthAs "
              "Partner", case_partner, E, port, pki)
        t.run("relayctl explain --client-cert on the Partner connector", case_partner_explain,
              E, port, pki)
        t.run("a client certificate is asked for only on ExchangeServer / DomainSecureEnabled "
              "connectors", case_cert_request, E, port, pki)
        for name, want in (("wrongname", "reason=\"name-mismatch"),
                           ("expired", "reason=\"untrusted: certificate has expired"),
                           ("otherca", "reason=\"untrusted: "),
                           (None, "reason=no-certificate")):
            t.run("%s: anonymous, %s logged" % (name or "no certificate", want),
                  case_partner_refused, E, port, pki, name, want)
        good = smtpsink.Sink(os.path.join(E.dir, "sink-good"),
                             tls_cert=os.path.join(pki, "partner.pem"),
                             tls_key=os.path.join(pki, "partner.key")).start()
        bad = smtpsink.Sink(os.path.join(E.dir, "sink-bad"),
                            tls_cert=os.path.join(pki, "otherca.pem"),
                            tls_key=os.path.join(pki, "otherca.key")).start()
        try:
            t.run("outbound to a domain-secure domain: unverified next hop defers 4.7.5, "
                  "verified delivers", case_outbound, E, "partner.example", "To partner",
                  good, bad, ())
            t.run("RequireTLS smart host: unverified certificate defers 4.7.5, verified "
                  "delivers", case_outbound, E, "securehost.test", "Secure smarthost", good,
                  bad, ("--require-tls",))
        finally:
            good.stop()
            bad.stop()
        t.run("audit: ExchangeServer without any node certificate", case_audit_node_certs, E)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
