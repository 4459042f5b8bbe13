#!/usr/bin/env python3
"""Per-connector STARTTLS certificate (relayTlsCertificateName, Exchange's TlsCertificateName)
against a real node and the example organisation.

"CRM Application" (clients 127.0.2.55/.56, auth Tls + ExternalAuthoritative) and "Default
node1" (everyone else) share the SMTP port, so the certificate a client sees depends only on
the connector its address selects. The node certificate is the fixture's tls/node.pem; a
second one (CN crm.example.com, its own throwaway CA) goes into tls_cert_dir as crm.pem and
crm.key. Renewed files are read on SIGHUP. A name whose files are missing fails closed: no STARTTLS on that connector, never
the node certificate instead. A name that could leave tls_cert_dir refuses the connector.
"""
import os
import shutil
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402
from rnnode import Check, Client, eventually  # noqa: E402

CRM = "CRM Application"
CRM_SRC = "127.0.2.55"
DEFAULT_SRC = "127.0.0.1"
UNRECOGNIZED = "500 5.3.3 Unrecognized command"


def leaf_der(pem_path):
    """DER of the first certificate in a PEM chain file (the leaf)."""
    with open(pem_path) as f:
        text = f.read()
    end = "-----END CERTIFICATE-----"
    return ssl.PEM_cert_to_DER_cert(text[:text.index(end) + len(end)] + "\n")


def ehlo_offers_starttls(lines):
    return any(l[4:].upper() == "STARTTLS" for l in lines)


def peer_cert(E, source):
    """(DER of the certificate the node presents after STARTTLS to a client at source, or
    None, the EHLO lines, the STARTTLS reply)."""
    with Client("127.0.0.1", E.smtp_port, source=source, timeout=15.0) as cl:
        lines = cl.ehlo()
        cl.send_raw(b"STARTTLS\r\n")
        r = cl.reply()
        if not r.startswith("220 "):
            return None, lines, r
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        cl.sock = ctx.wrap_socket(cl.sock, server_hostname="node1.example.com")
        cl.buf = b""
        der = cl.sock.getpeercert(binary_form=True)
        after = cl.ehlo()
        return der, after, r


def set_name(E, values):
    """relayTlsCertificateName on CRM Application ([] removes it), then SIGHUP."""
    E.modify_connector(CRM, {"relayTlsCertificateName": values})
    E.node.reload()


def wait_cert(E, source, want, timeout=10.0):
    """Poll until a client at source is shown the certificate want (the reload has landed)."""
    got = [None]

    def probe():
        got[0] = peer_cert(E, source)
        return got[0][0] == want
    eventually(probe, timeout=timeout)
    return got[0]


def case_named(E, crm_der, node_der):
    c = Check()
    set_name(E, ["crm"])
    der, after, r = wait_cert(E, CRM_SRC, crm_der)
    c.eq(r, "220 2.0.0 SMTP server ready", "STARTTLS on CRM Application")
    c.true(der == crm_der, "CRM Application presents crm.pem's leaf",
           "got %d octets, node cert: %s" % (len(der or b""), der == node_der))
    c.true(not ehlo_offers_starttls(after), "no second STARTTLS after the upgrade", after)
    der, _, r = peer_cert(E, DEFAULT_SRC)
    c.eq(r, "220 2.0.0 SMTP server ready", "STARTTLS on Default node1 (same port)")
    c.true(der == node_der, "Default node1 still presents the node certificate",
           "crm cert: %s" % (der == crm_der))
    c.true(E.connector_attr(CRM, "relayTlsCertificateName") == ["crm"],
           "the directory holds the value", E.connector_attr(CRM, "relayTlsCertificateName"))
    return c.result()


def case_missing(E, crm_der, node_der):
    c = Check()
    set_name(E, ["missing"])

    def no_offer():
        with Client("127.0.0.1", E.smtp_port, source=CRM_SRC) as cl:
            lines = cl.ehlo()
            return None if ehlo_offers_starttls(lines) else (lines, cl.cmd("STARTTLS"))
    got = eventually(no_offer, timeout=10.0)
    c.true(got, "STARTTLS no longer offered on CRM Application (fail closed)")
    if got:
        lines, r = got
        c.eq(r, UNRECOGNIZED, "STARTTLS answered as an unknown command")
        c.true(any(l.startswith("250") for l in lines), "EHLO still answered", lines)
    c.true(eventually(lambda: "tls certificate-failed name=missing" in E.node.log(), 5.0),
           "log: tls certificate-failed name=missing", E.node.log_tail(10))
    der, _, r = peer_cert(E, DEFAULT_SRC)
    c.true(der == node_der, "Default node1 unaffected: node certificate", r)
    return c.result()


def case_invalid(E, crm_der, node_der):
    c = Check()
    set_name(E, ["../x"])
    refused = lambda: [l for l in E.node.log().splitlines()  # noqa: E731
                       if "config refused" in l and "relayTlsCertificateName" in l]
    lines = eventually(refused, timeout=10.0)
    c.true(lines, "log: config refused naming relayTlsCertificateName", E.node.log_tail(10))
    c.true(lines and "CRM Application" in lines[0], "the refused connector is named", lines)
    # The CRM connector is gone from the snapshot, so its clients fall to Default node1
    # (0.0.0.0-255.255.255.255), which keeps working with the node certificate.
    der, _, r = peer_cert(E, DEFAULT_SRC)
    c.true(der == node_der, "Default node1 keeps working (node certificate)", r)
    der, _, r = peer_cert(E, CRM_SRC)
    c.true(der == node_der, "127.0.2.55 now served by Default node1", r)
    # The log is written by its own thread: wait for the line.
    c.true(eventually(lambda: any("smtp connect" in l and "client=%s:" % CRM_SRC in l and
                                  "connector=\"Default node1\"" in l
                                  for l in E.node.log().splitlines()), 10),
           "the session from 127.0.2.55 ran on Default node1",
           [l for l in E.node.log().splitlines() if "smtp connect" in l][-3:])
    return c.result()


def case_removed(E, crm_der, node_der):
    c = Check()
    set_name(E, ["crm"])
    der, _, _ = wait_cert(E, CRM_SRC, crm_der)
    c.true(der == crm_der, "back to crm after the bad value")
    set_name(E, [])
    der, _, r = wait_cert(E, CRM_SRC, node_der)
    c.eq(r, "220 2.0.0 SMTP server ready", "STARTTLS on CRM Application")
    c.true(der == node_der, "attribute removed: CRM Application presents the node certificate",
           "crm cert: %s" % (der == crm_der))
    return c.result()


def case_renewal(E, crm_der, node_der, certdir):
    """Renewed files are read on SIGHUP, with no directory change: both the named certificate
    and the node's own (tls_cert/tls_key); a node certificate that no longer loads keeps the
    one in use."""
    c = Check()
    set_name(E, ["crm"])
    wait_cert(E, CRM_SRC, crm_der)
    fresh = {}
    for name, cn in (("crm2", "crm.example.com"), ("node2", "node1.example.com")):
        d = os.path.join(certdir, name + "-tmp")
        rc, _, err = rntest.run(["bash", os.path.join(E.root, "deploy", "pki", "mkcerts.sh"),
                                 d, cn])
        c.eq(rc, 0, "mkcerts.sh " + name)
        fresh[name] = d
    for src, dst in ((fresh["crm2"], os.path.join(certdir, "crm")),
                     (fresh["node2"], os.path.join(E.dir, "tls", "node"))):
        shutil.copy(os.path.join(src, "node.key"), dst + ".key.new")
        shutil.copy(os.path.join(src, "node.pem"), dst + ".pem.new")
        os.replace(dst + ".key.new", dst + ".key")
        os.replace(dst + ".pem.new", dst + ".pem")
    crm2 = leaf_der(os.path.join(certdir, "crm.pem"))
    node2 = leaf_der(os.path.join(E.dir, "tls", "node.pem"))
    c.true(crm2 != crm_der and node2 != node_der, "new certificates on disk")
    E.node.reload()
    der, _, r = wait_cert(E, CRM_SRC, crm2)
    c.true(der == crm2, "SIGHUP: CRM Application presents the renewed crm certificate", r)
    der, _, r = wait_cert(E, DEFAULT_SRC, node2)
    c.true(der == node2, "SIGHUP: Default node1 presents the renewed node certificate", r)
    with open(os.path.join(E.dir, "tls", "node.key"), "w") as f:
        f.write("not a key\n")
    E.node.reload()
    c.true(eventually(lambda: "tls certificate-failed name=node" in E.node.log(), 5.0),
           "a broken node key is logged", E.node.log_tail(5))
    der, _, r = peer_cert(E, DEFAULT_SRC)
    c.true(der == node2, "and the certificate in use is kept (STARTTLS still works)", r)
    return c.result()


def case_relayctl_flag(E, crm_der, node_der):
    """relayctl's connector flags come from the attribute table."""
    relayctl = os.path.join(os.environ.get("RELAYNODE_BUILD", "build/asan"), "relayctl")
    p = subprocess.run([relayctl, "connector", "set", "--help"], capture_output=True,
                       text=True, timeout=30)
    out = p.stdout + p.stderr
    return "--tls-certificate-name" in out, out


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    with rnnode.Env("tlscert") as E:
        certdir = os.path.join(E.dir, "named")
        tmp = os.path.join(certdir, "crm-tmp")
        rc, _, err = rntest.run(["bash", os.path.join(E.root, "deploy", "pki", "mkcerts.sh"),
                                 tmp, "crm.example.com"])
        if not t.ok(rc == 0, "mkcerts.sh makes the crm certificate", err):
            return t.done()
        shutil.copy(os.path.join(tmp, "node.pem"), os.path.join(certdir, "crm.pem"))
        shutil.copy(os.path.join(tmp, "node.key"), os.path.join(certdir, "crm.key"))
        crm_der = leaf_der(os.path.join(certdir, "crm.pem"))
        node_der = leaf_der(os.path.join(E.dir, "tls", "node.pem"))
        t.ok(crm_der != node_der, "two different certificates")
        with open(E.conf, "a") as f:
            f.write("tls_cert_dir = %s\n" % certdir)
        E.node.stop()
        E.node.start()
        t.run("relayTlsCertificateName crm: CRM Application presents it, Default node1 the "
              "node certificate", case_named, E, crm_der, node_der)
        t.run("a name without files: no STARTTLS offered, 500 5.3.3, tls certificate-failed",
              case_missing, E, crm_der, node_der)
        t.run("an invalid name (../x) refuses the connector; the others keep working",
              case_invalid, E, crm_der, node_der)
        t.run("attribute removed: back to the node certificate", case_removed, E, crm_der,
              node_der)
        t.run("renewed certificate files are read on SIGHUP; a broken one keeps the current",
              case_renewal, E, crm_der, node_der, certdir)
        t.run("relayctl connector set --tls-certificate-name", case_relayctl_flag, E,
              crm_der, node_der)
        rc = E.node.stop()
        t.ok(rc == 0, "node exits 0 (teardown frees the named certificates; ASan)",
             E.node.log_tail(10))
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
