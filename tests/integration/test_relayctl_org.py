#!/usr/bin/env python3
"""relayctl org domain-secure list|add|remove (Set-TransportConfig -TLSReceiveDomainSecureList /
-TLSSendDomainSecureList) against a real slapd and a real node: the organisation's
domain-secure list (relayDomainSecureDomain on cn=Sites) is written and read by the real
relayctl, and the node then takes (or stops taking) a partner's certificate as Partner
Servers over real STARTTLS. deploy/pki/mkpartner.sh makes the partner CA (node1's
tls_ca_file) and mail.partner.example's certificate. Each refusal has its exit code (2 usage,
1 what the loader refuses, with the loader's message) and writes nothing; --ldif prints the
change and writes nothing.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rnnode  # noqa: E402
import rntest  # noqa: E402
from rnnode import Check, eventually  # noqa: E402
from test_tls_principals import NOT_AUTH, RELAYCTL, relayctl, tls_session  # noqa: E402

SITES = "cn=Sites,ou=Relay,dc=example,dc=com"
CONN = "Partner org"


def stored(E):
    """The relayDomainSecureDomain values on cn=Sites, as the directory holds them."""
    e = E.slapd.search(SITES, scope="base", bind="admin")
    return sorted(e[0].get("relayDomainSecureDomain") or []) if e else ["missing"]


def mail_reply(port, pki):
    """MAIL's reply on the Partner connector after STARTTLS with the partner's certificate."""
    cl = tls_session(port, os.path.join(pki, "partner.pem"), os.path.join(pki, "partner.key"))
    try:
        return cl.cmd("MAIL FROM:<someone@partner.example>")
    finally:
        cl.close()


def setup(E, t):
    pki = os.path.join(E.dir, "pki-partner")
    rc, _, err = rntest.run(["bash", os.path.join(E.root, "deploy", "pki", "mkpartner.sh"), pki])
    t.ok(rc == 0, "mkpartner.sh makes the partner CA and certificates", err)
    with open(E.conf, "a") as f:
        f.write("tls_ca_file = %s\n" % os.path.join(pki, "ca.pem"))
    E.node.stop()
    E.node.start()
    port = rntest.free_port(exclude=(E.smtp_port, E.sub_port))
    rc, out, err = relayctl(E, "connector", "new", CONN, "--usage", "Partner", "--bindings",
                            "127.0.0.1:%d" % port, "--remote-ip-ranges", "127.0.0.0/8",
                            "--tarpit-interval", "0")
    t.ok(rc == 0, "relayctl connector new '%s' --usage Partner" % CONN, out + err)
    t.ok(eventually(lambda: rnnode.wait_port("127.0.0.1", port, timeout=0.5), 10.0),
         "node1 listens for the Partner connector")
    return port, pki


def case_refusals(E):
    c = Check()
    before = stored(E)
    for args, code, text in [
            (["org", "domain-secure", "add"], 2, "give exactly one DOMAIN"),
            (["org", "domain-secure", "add", "a.example", "b.example"], 2,
             "give exactly one DOMAIN"),
            (["org", "domain-secure", "list", "a.example"], 2, "list takes no DOMAIN"),
            (["org", "domain-secure", "add", "a.example", "--type", "x"], 2, ""),
            (["org", "domain-secure", "rename", "a.example"], 2, "usage: relayctl org"),
            (["org", "transport", "list"], 2, "usage: relayctl org"),
            (["org", "domain-secure", "add", "*.partner.example"], 1,
             "cn=Sites,ou=Relay,dc=example,dc=com: relayDomainSecureDomain: "
             "'*.partner.example' is not a domain name"),
            (["org", "domain-secure", "add", "bad..example"], 1,
             "relayDomainSecureDomain: 'bad..example' is not a domain name"),
            (["org", "domain-secure", "add", "x" * 64 + ".example"], 1,
             "is not a domain name"),
            (["org", "domain-secure", "remove", "never.example"], 1,
             "never.example is not a domain-secure domain"),
    ]:
        rc, out, err = relayctl(E, *args)
        c.eq(rc, code, "relayctl %s: exit %d" % (" ".join(args), code))
        c.true(text in err, "message: %s" % (text or "(any)"), err)
    c.eq(stored(E), before, "the refusals wrote nothing")
    rc, out, err = relayctl(E, "org", "domain-secure", "add", "partner.example", "--ldif")
    c.eq(rc, 0, "add --ldif: exit 0")
    c.true("dn: %s\nchangetype: modify\nadd: relayDomainSecureDomain\n"
           "relayDomainSecureDomain: partner.example\n" % SITES in out,
           "add --ldif prints the modify of cn=Sites", out + err)
    c.eq(stored(E), before, "--ldif wrote nothing")
    return c.result()


def case_add(E, port, pki):
    c = Check()
    r = mail_reply(port, pki)
    c.eq(r, NOT_AUTH, "before add: the partner certificate is anonymous (MAIL refused)")
    rc, out, err = relayctl(E, "org", "domain-secure", "add", "Partner.Example.")
    c.true(rc == 0, "relayctl org domain-secure add Partner.Example.: exit 0", out + err)
    c.eq(stored(E), ["partner.example"], "stored on cn=Sites lowercase, no trailing dot")
    rc, out, err = relayctl(E, "org", "domain-secure", "add", "partner.example")
    c.true(rc == 0 and "no change" in err, "add of a listed domain: no change, exit 0",
           out + err)
    c.eq(stored(E), ["partner.example"], "still one value")
    rc, out, err = relayctl(E, "org", "domain-secure", "list")
    c.true(rc == 0 and "partner.example" in out and SITES in out, "list shows it", out + err)
    rc, out, err = relayctl(E, "org", "domain-secure", "list", "--json")
    try:
        j = json.loads(out)
    except ValueError:
        j = out + err
    c.eq(j, [{"Domain": "partner.example", "Container": SITES}], "list --json")
    E.node.reload()
    r = eventually(lambda: (lambda x: x if x.startswith("250") else None)(
        mail_reply(port, pki)), 15.0)
    c.true(r, "after add: the partner certificate is Partner Servers (MAIL 250), no restart",
           r)
    c.true(eventually(lambda: "principal=partner domain=partner.example" in E.node.log(), 5.0),
           "log: smtp tls-principal principal=partner domain=partner.example",
           E.node.log_tail(6))
    return c.result()


def case_remove(E, port, pki):
    c = Check()
    rc, out, err = relayctl(E, "org", "domain-secure", "remove", "PARTNER.example", "--ldif")
    c.true(rc == 0 and "delete: relayDomainSecureDomain\nrelayDomainSecureDomain: "
           "partner.example\n" in out, "remove --ldif prints the value's delete", out + err)
    c.eq(stored(E), ["partner.example"], "--ldif wrote nothing")
    rc, out, err = relayctl(E, "org", "domain-secure", "remove", "PARTNER.example")
    c.true(rc == 0, "relayctl org domain-secure remove PARTNER.example: exit 0", out + err)
    c.eq(stored(E), [], "cn=Sites holds no domain-secure domain")
    rc, out, err = relayctl(E, "org", "domain-secure", "list", "--json")
    c.true(out.strip() == "[]", "list --json: []", out + err)
    E.node.reload()
    r = eventually(lambda: (lambda x: x if x == NOT_AUTH else None)(mail_reply(port, pki)),
                   15.0)
    c.true(r, "after remove: the partner certificate is anonymous again", r)
    return c.result()


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    if not t.ok(os.path.exists(RELAYCTL), "relayctl built", RELAYCTL):
        return t.done()
    with rnnode.Env("relayctlorg") as E:
        port, pki = setup(E, t)
        t.run("usage errors exit 2, loader refusals exit 1 with its message, --ldif writes "
              "nothing", case_refusals, E)
        t.run("add: stored, listed, and the node takes the partner certificate",
              case_add, E, port, pki)
        t.run("remove: gone, and the partner certificate is anonymous again",
              case_remove, E, port, pki)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
