#!/usr/bin/env python3
"""`relayctl explain` against a real slapd: the seed article, end to end.

Starts the example organisation (deploy/slapd/fixture.sh, free ports) and asks relayctl
explain, the same loader and policy code the node runs, what each client of the article
would get: the Default connector refuses to relay for the world, the CRM connector as
Option 1 (Externally Secured) and, after the real ldapmodify of option2.ldif, as Option 2
(least privilege); a connector the loader must refuse (ExternalAuthoritative without the
ExchangeServers group) falls back to Default; directory users, nested groups and a deny ACE;
the anonymous send-as check; IPv6; an unknown user; and the directory going away.
Exact replies and exit codes only, through the tool.
"""
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from rntest import ROOT, Slapd, Tap, run  # noqa: E402

BUILD = os.environ.get("RELAYNODE_BUILD") or os.path.join(ROOT, "build")
RELAYCTL = os.path.join(BUILD, "relayctl")
ES = "MS Exchange\\Externally Secured Servers"
BYPASS = ("ms-Exch-Bypass-Anti-Spam", "ms-Exch-Bypass-Message-Size-Limit")
RELAY_DENIED = "550 5.7.1 Unable to relay"
ANON_SEND_AS = "550 5.7.1 Anonymous client does not have permissions to send as this sender"

t = Tap()


def explain(slapd, *args, conf=None, json_out=True):
    """relayctl explain with the fixture's bootstrap file; (rc, parsed JSON or text, stderr)."""
    argv = [RELAYCTL, "explain", "--config", conf or slapd.conf] + list(args)
    if json_out:
        argv.append("--json")
    rc, out, err = run(argv)
    if json_out:
        try:
            return rc, json.loads(out), err
        except ValueError:
            return rc, {"_unparsed": out}, err
    return rc, out, err


def smtp(slapd):
    return "127.0.0.1:%d" % slapd.smtp_port


def sub(slapd):
    return "127.0.0.1:%d" % slapd.sub_port


def rcpt_replies(j):
    return [s.get("reply") for s in j.get("stages", []) if s["stage"] == "RCPT TO"]


def stage(j, name):
    for s in j.get("stages", []):
        if s["stage"] == name:
            return s
    return {}


def conn(j):
    return (j.get("connector") or {}).get("name")


def right(j, name):
    return j.get("rights", {}).get(name, {}).get("state")


def main():
    if not os.access(RELAYCTL, os.X_OK):
        t.ok(False, "relayctl built", "missing %s" % RELAYCTL)
        return t.done()
    tmp = tempfile.mkdtemp(prefix="rn-explain-")
    try:
        return cases(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cases(tmp):
    # Our own directory, so the bootstrap file and password outlive slapd for the last case.
    with Slapd(directory=tmp) as s:
        crm_dn = s.connector_dn("CRM Application")
        client_dn = s.connector_dn("Client node1")
        site_dn = "cn=Default-Site,cn=Sites," + s.relay_base

        # -- the Default connector: anonymous, not an open relay --------------------------
        rc, j, err = explain(s, "--local", smtp(s), "--remote", "192.168.2.60",
                             "--from", "app@outside.example", "--to", "bob@outside.example")
        t.eq(conn(j), "Default node1", "192.168.2.60 gets the Default connector")
        t.eq(j.get("token"), "NT AUTHORITY\\ANONYMOUS LOGON", "its token is ANONYMOUS LOGON alone")
        t.eq(rcpt_replies(j), [RELAY_DENIED], "anonymous to an outside recipient: " + RELAY_DENIED)
        t.eq(rc, 1, "a refused relay exits 1")
        t.eq(j.get("warnings"), [], "the example organisation loads without warnings")
        t.ok(j.get("version", "").count("#") == 3,
             "the snapshot version is the suffix's contextCSN", j.get("version"))

        rc, j, err = explain(s, "--local", smtp(s), "--remote", "192.168.2.60",
                             "--from", "app@outside.example", "--to", "alice@example.com")
        t.eq(rcpt_replies(j), ["250 2.1.5 Recipient OK"], "anonymous to alice@example.com: 250 2.1.5")
        t.eq(stage(j, "MAIL FROM").get("reply"), "250 2.1.0 Sender OK", "MAIL FROM 250 2.1.0")
        t.eq(rc, 0, "everything accepted exits 0")

        rc, out, err = explain(s, "--local", smtp(s), "--remote", "192.168.2.60",
                               "--from", "app@outside.example", "--to", "bob@outside.example",
                               json_out=False)
        t.ok(rc == 1 and RELAY_DENIED in out and "Default node1" in out and
             "ms-Exch-SMTP-Accept-Any-Recipient" in out,
             "text output names the connector, the right and the reply", out + err)

        # -- Option 1: the CRM connector, Externally Secured ------------------------------
        rc, j, err = explain(s, "--local", smtp(s), "--remote", "192.168.2.55",
                             "--from", "crm@example.com", "--to", "customer@outside.example",
                             "--to", "alice@example.com")
        t.eq(conn(j), "CRM Application", "Option 1: 192.168.2.55 gets the CRM connector")
        t.eq((j.get("connector") or {}).get("range"), "192.168.2.55",
             "chosen by its single-address range")
        t.ok(any(c["name"] == "Default node1" for c in (j.get("connector") or {}).get("candidates", [])),
             "Default was considered too", j.get("connector"))
        t.eq(j.get("token"), ES, "Option 1 token: Externally Secured Servers")
        t.eq([right(j, r) for r in BYPASS], ["allowed", "allowed"],
             "Option 1 holds Bypass-Anti-Spam and Bypass-Message-Size-Limit")
        t.eq(j.get("permission_groups"), "ExchangeServers", "Option 1 groups: ExchangeServers")
        t.eq(rcpt_replies(j), ["250 2.1.5 Recipient OK"] * 2, "Option 1 relays outside")
        t.eq((j.get("auth_as"), j.get("bypass_anti_spam"), j.get("bypass_size_limits"), rc),
             ("Internal", True, True, 0), "Option 1: Internal, bypasses both, exit 0")

        # -- Option 2, applied with the real ldapmodify -----------------------------------
        rc, out, err = s.ldapmodify_file(os.path.join(ROOT, "deploy", "example", "option2.ldif"))
        rc, j, err = explain(s, "--local", smtp(s), "--remote", "192.168.2.55",
                             "--from", "crm@example.com", "--to", "customer@outside.example")
        t.eq(conn(j), "CRM Application", "Option 2: .55 still gets the CRM connector")
        t.eq(j.get("token"), "NT AUTHORITY\\ANONYMOUS LOGON", "Option 2 token: anonymous")
        t.eq(rcpt_replies(j), ["250 2.1.5 Recipient OK"], "Option 2 relays outside")
        t.eq([right(j, r) for r in BYPASS], ["absent", "absent"],
             "Option 2 lacks both bypass rights")
        t.eq(j.get("permission_groups"), "AnonymousUsers, Custom",
             "Option 2 groups: AnonymousUsers, Custom")
        t.eq((j.get("auth_as"), j.get("bypass_anti_spam"), rc), ("Anonymous", False, 0),
             "Option 2 is stamped Anonymous, anti-spam applies, exit 0")
        rc, j, err = explain(s, "--local", smtp(s), "--remote", "192.168.2.60",
                             "--from", "x@outside.example", "--to", "bob@outside.example")
        t.eq((conn(j), rcpt_replies(j), rc), ("Default node1", [RELAY_DENIED], 1),
             "192.168.2.60 still gets Default and cannot relay")

        # -- a connector the loader must refuse -------------------------------------------
        rc, out, err = s.ldapmodify(
            "dn: %s\nchangetype: modify\nadd: relayAuthMechanism\n"
            "relayAuthMechanism: ExternalAuthoritative\n-\n" % crm_dn)
        t.ok(rc == 0, "ldapmodify adds ExternalAuthoritative without the ExchangeServers group", err)
        rc, j, err = explain(s, "--local", smtp(s), "--remote", "192.168.2.55",
                             "--from", "crm@example.com", "--to", "customer@outside.example")
        warn = [w for w in j.get("warnings", []) if w.startswith(crm_dn + ": relayAuthMechanism")]
        t.ok(len(warn) == 1 and "ExchangeServers" in warn[0],
             "the loader refuses it: a warning naming the DN and relayAuthMechanism",
             j.get("warnings"))
        t.eq((conn(j), rcpt_replies(j), rc), ("Default node1", [RELAY_DENIED], 1),
             "clients of the refused connector fall back to Default (and cannot relay)")
        rc, out, err = explain(s, "--local", smtp(s), "--remote", "192.168.2.55",
                               "--from", "crm@example.com", "--to", "customer@outside.example",
                               json_out=False)
        t.ok(any(l.startswith("warning") and crm_dn in l and "relayAuthMechanism" in l
                 for l in out.splitlines()), "text output prints it as a warning", out)
        s.ldapmodify("dn: %s\nchangetype: modify\nreplace: relayAuthMechanism\n"
                     "relayAuthMechanism: Tls\n-\n" % crm_dn)

        # -- directory users on the Client connector --------------------------------------
        rc, j, err = explain(s, "--local", sub(s), "--remote", "192.168.2.60", "--user", "alice",
                             "--from", "alice@example.com", "--to", "bob@outside.example")
        t.eq(conn(j), "Client node1", "the submission port gets the Client connector")
        t.eq((stage(j, "AUTH").get("reply"), rcpt_replies(j), rc),
             ("235 2.7.0 Authentication successful", ["250 2.1.5 Recipient OK"], 0),
             "alice authenticates and relays outside")
        tok = j.get("token", "")
        t.ok("uid=alice,ou=people,dc=example,dc=com" in tok.lower() and
             "cn=staff,ou=groups,dc=example,dc=com" in tok.lower() and "Authenticated Users" in tok,
             "alice's token holds her DN, Staff through nested Sales, Authenticated Users", tok)
        t.eq(sorted(j.get("addresses", [])), ["a.smith@example.com", "alice@example.com"],
             "alice's own addresses: mail and relayMailAlias")
        rc, j, err = explain(s, "--local", sub(s), "--remote", "192.168.2.60",
                             "--user", s.user_dn("alice"), "--from", "a.smith@example.com",
                             "--to", "bob@outside.example")
        t.eq((conn(j), stage(j, "sender (P1)").get("ok"), rc), ("Client node1", True, 0),
             "--user by DN: alice may send as her alias a.smith@example.com")
        rc, j, err = explain(s, "--local", sub(s), "--remote", "192.168.2.60", "--user", "alice",
                             "--from", "alice@example.com", "--to", "bob@outside.example",
                             "--header-from", "bob@example.com")
        t.eq((stage(j, "sender (P2)").get("reply"), rc),
             ("550 5.7.1 Client does not have permissions to send as this sender", 1),
             "alice may not claim bob@example.com in From:")

        rc, out, err = s.ldapmodify(
            "dn: %s\nchangetype: modify\nadd: relayAce\nrelayAce: deny; %s; "
            "ms-Exch-SMTP-Accept-Any-Recipient\n-\n" % (client_dn, s.group_dn("Contractors")))
        t.ok(rc == 0, "ldapmodify adds a deny ACE for Contractors", err)
        rc, j, err = explain(s, "--local", sub(s), "--remote", "192.168.2.60", "--user", "carol",
                             "--from", "carol@example.com", "--to", "bob@outside.example")
        t.eq((rcpt_replies(j), rc), ([RELAY_DENIED], 1), "carol (Contractors) cannot relay")
        t.eq(right(j, "ms-Exch-SMTP-Accept-Any-Recipient"), "denied",
             "her Accept-Any-Recipient shows as denied")
        t.ok("deny; cn=Contractors" in j.get("rights", {}).get(
            "ms-Exch-SMTP-Accept-Any-Recipient", {}).get("ace") or "",
             "by the deny ACE, printed", j.get("rights", {}).get("ms-Exch-SMTP-Accept-Any-Recipient"))
        # §1.4: a trustee whose effective rights are empty (deny only) does not make Custom.
        t.eq(j.get("permission_groups"), "ExchangeUsers",
             "a deny-only trustee leaves the groups ExchangeUsers (no Custom)")
        rc, j, err = explain(s, "--local", sub(s), "--remote", "192.168.2.60", "--user", "alice",
                             "--from", "alice@example.com", "--to", "bob@outside.example")
        t.eq((rcpt_replies(j), rc), (["250 2.1.5 Recipient OK"], 0), "alice still relays")

        # -- group nesting: a cycle is cut, a chain deeper than the cap is refused -----------
        rc, out, err = s.ldapmodify("dn: %s\nchangetype: modify\nadd: member\nmember: %s\n-\n"
                                    % (s.group_dn("Sales"), s.group_dn("Staff")))
        rc2, j, err2 = explain(s, "--local", sub(s), "--remote", "192.168.2.60", "--user", "alice",
                               "--from", "alice@example.com", "--to", "bob@outside.example")
        tok = j.get("token", "").lower()
        t.ok(rc == 0 and rc2 == 0 and tok.count("cn=sales,") == 1 and tok.count("cn=staff,") == 1,
             "a Sales <-> Staff membership cycle is walked once", (err, err2, tok))
        chain = []
        for i in range(1, 18):
            member = s.user_dn("bob") if i == 1 else s.group_dn("Deep%d" % (i - 1))
            chain.append("dn: %s\nchangetype: add\nobjectClass: groupOfNames\ncn: Deep%d\n"
                         "member: %s\n" % (s.group_dn("Deep%d" % i), i, member))
        rc, out, err = s.ldapmodify("\n".join(chain))
        rc2, out2, err2 = explain(s, "--local", sub(s), "--remote", "192.168.2.60", "--user", "bob",
                                  "--from", "bob@example.com", "--to", "x@outside.example",
                                  json_out=False)
        t.ok(rc == 0 and rc2 == 2 and "nested deeper than 16" in err2,
             "groups nested 17 deep: the lookup is refused (exit 2), never truncated",
             (rc, err, rc2, out2, err2))

        # -- the anonymous send-as check --------------------------------------------------
        rc, out, err = s.ldapmodify(
            "dn: %s\nchangetype: modify\nreplace: relayAce\nrelayAce: allow; "
            "NT AUTHORITY\\ANONYMOUS LOGON; ms-Exch-SMTP-Submit, ms-Exch-SMTP-Accept-Any-Sender, "
            "ms-Exch-SMTP-Accept-Any-Recipient\n-\n" % crm_dn)
        t.ok(rc == 0, "ldapmodify drops Accept-Authoritative-Domain-Sender from the CRM connector", err)
        rc, j, err = explain(s, "--local", smtp(s), "--remote", "192.168.2.56",
                             "--from", "alice@example.com", "--to", "customer@outside.example")
        t.eq((conn(j), stage(j, "sender (P1)").get("reply"), rc),
             ("CRM Application", ANON_SEND_AS, 1),
             "anonymous claiming alice@example.com: " + ANON_SEND_AS)
        rc, j, err = explain(s, "--local", smtp(s), "--remote", "192.168.2.56",
                             "--from", "crm@outside.example", "--to", "customer@outside.example")
        t.eq((stage(j, "sender (P1)").get("ok"), rc), (True, 0),
             "an outside sender is covered by Accept-Any-Sender")

        # Control characters in an argument: the JSON is still valid and gives it back exactly
        # (escaped by tools/output's writer, relayctl's only one: "\n", "\u0001").
        rc, j, err = explain(s, "--local", smtp(s), "--remote", "192.168.2.60",
                             "--from", "a\nb\x01@outside.example", "--to", "alice@example.com")
        t.eq(stage(j, "MAIL FROM").get("arg"), "<a\nb\x01@outside.example>",
             "control characters in an argument round-trip through the JSON")

        # -- IPv6, unknown users, no connector --------------------------------------------
        rc, j, err = explain(s, "--local", "[::1]:%d" % s.smtp_port, "--remote", "::1",
                             "--from", "x@outside.example", "--to", "alice@example.com")
        t.eq((conn(j), rc), ("Default node1", 0), "IPv6 client ::1 gets Default")
        rc, j, err = explain(s, "--local", sub(s), "--remote", "192.168.2.60", "--user", "nosuch",
                             "--from", "x@example.com", "--to", "bob@outside.example")
        t.eq((j.get("auth"), rc), ("535 5.7.3 Authentication unsuccessful", 1),
             "an unknown user: 535 5.7.3, exit 1")
        rc, j, err = explain(s, "--local", sub(s), "--remote", "192.168.2.60", "--user", "*",
                             "--from", "x@example.com", "--to", "bob@outside.example")
        t.eq((j.get("auth"), rc), ("535 5.7.3 Authentication unsuccessful", 1),
             "a wildcard login matches nobody (RFC 4515 escaping)")
        rc, j, err = explain(s, "--local", "[::1]:%d" % s.sub_port, "--remote", "::1",
                             "--from", "x@example.com", "--to", "bob@outside.example")
        t.eq((j.get("connect"), rc), ("421 4.3.2 Service not available", 1),
             "no connector binds [::]:submission: 421 4.3.2, exit 1")
        # -- site-scoped connectors, and a conflict the loader refuses on both sides ------
        rc, out, err = s.ldapmodify(
            "dn: cn=Scanners,%s\nchangetype: add\nobjectClass: relayReceiveConnector\n"
            "cn: Scanners\nrelayBinding: 0.0.0.0:%d\nrelayRemoteIPRange: 192.168.3.0/24\n"
            "relayAuthMechanism: Tls\nrelayAce: allow; NT AUTHORITY\\ANONYMOUS LOGON; "
            "ms-Exch-SMTP-Submit\n" % (site_dn, s.smtp_port))
        rc2, j, err2 = explain(s, "--local", smtp(s), "--remote", "192.168.3.7",
                               "--from", "scan@example.com", "--to", "alice@example.com")
        t.ok(rc == 0 and conn(j) == "Scanners" and j.get("warnings") == [],
             "a site-scoped connector serves its range", (err, j))
        rc, out, err = s.ldapmodify(
            "dn: cn=Site Apps,%s\nchangetype: add\nobjectClass: relayReceiveConnector\n"
            "cn: Site Apps\nrelayBinding: 0.0.0.0:%d\nrelayRemoteIPRange: 192.168.2.55\n"
            "relayAuthMechanism: Tls\nrelayAce: allow; NT AUTHORITY\\ANONYMOUS LOGON; "
            "ms-Exch-SMTP-Submit, ms-Exch-SMTP-Accept-Any-Recipient\n" % (site_dn, s.smtp_port))
        rc2, j, err2 = explain(s, "--local", smtp(s), "--remote", "192.168.2.55",
                               "--from", "crm@outside.example", "--to", "customer@outside.example")
        warned = {w.split(": ")[0] for w in j.get("warnings", [])}
        t.ok(rc == 0 and {crm_dn, "cn=Site Apps," + site_dn} <= warned,
             "a site connector claiming CRM's range: both sides are refused", (err, j.get("warnings")))
        t.eq((conn(j), rcpt_replies(j), rc2), ("Default node1", [RELAY_DENIED], 1),
             "ambiguity fails closed: .55 falls back to Default")

        rc, out, err = run([RELAYCTL, "explain", "--config", s.conf, "--remote", "1.2.3.4"])
        t.eq(rc, 2, "missing options: usage, exit 2")
        rc, out, err = run([RELAYCTL, "explain", "--config", s.conf, "--node", "node9",
                            "--local", smtp(s), "--remote", "1.2.3.4", "--from", "a@b.c",
                            "--to", "d@e.f"])
        t.ok(rc == 2 and "node9" in err, "--node overrides the file; an unknown node exits 2", err)

        env = dict(os.environ, RELAYNODE_CONFIG=s.conf)
        rc, out, err = run([RELAYCTL, "explain", "--local", smtp(s), "--remote", "192.168.2.60",
                            "--from", "a@outside.example", "--to", "alice@example.com"], env=env)
        t.ok(rc == 0 and "Default node1" in out, "RELAYNODE_CONFIG is read without --config", err)
        rc, out, err = run([RELAYCTL, "explain", "--uri", "ldap://127.0.0.1:1/", "--local", smtp(s),
                            "--remote", "192.168.2.60", "--from", "a@b.c", "--to", "d@e.f"], env=env)
        t.ok(rc == 2 and "cannot reach ldap://127.0.0.1:1/" in err,
             "--uri overrides the bootstrap file", err)

        # -- the directory goes away --------------------------------------------------------
        uri = s.uri
        s.stop()
        rc, out, err = explain(s, "--local", smtp(s), "--remote", "192.168.2.60",
                               "--from", "x@outside.example", "--to", "bob@outside.example",
                               json_out=False)
        t.ok(rc == 2 and "cannot reach %s" % uri in err and "Can't contact LDAP server" in err,
             "slapd stopped: exit 2 with a clear message", "rc %d: %s" % (rc, err))
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
