#!/usr/bin/env python3
"""The slapd fixture, the schema and the example organisation, against a real slapd.

Starts deploy/slapd/fixture.sh in a temp dir, checks the example loads as the seed article
describes (connectors, ACE rights per principal, domains, users, groups), asserts the ACLs
of deploy/slapd/acl.ldif with real binds and searches and with slapacl, checks the schema's
syntaxes (Boolean, "unlimited" limits, per-value relayAce delete), that schema/relaynode.ldif
matches schema/relaynode.schema and directory/connattr.c, and that stop leaves no slapd.
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rntest  # noqa: E402
from rntest import ROOT, Slapd, Tap, run, user_password  # noqa: E402

# docs/permission-model.md §2.1: canonical right names by bit.
RIGHTS = {
    "ms-Exch-SMTP-Submit": 0x1, "ms-Exch-SMTP-Submit-For-MLS": 0x2,
    "ms-Exch-SMTP-Accept-Any-Recipient": 0x4, "ms-Exch-SMTP-Accept-Authentication-Flag": 0x8,
    "ms-Exch-SMTP-Accept-Any-Sender": 0x10,
    "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender": 0x20,
    "ms-Exch-Bypass-Anti-Spam": 0x40, "ms-Exch-Bypass-Message-Size-Limit": 0x80,
    "ms-Exch-SMTP-Send-Exch50": 0x100, "ms-Exch-SMTP-Accept-Exch50": 0x200,
    "ms-Exch-Accept-Headers-Routing": 0x400, "ms-Exch-Accept-Headers-Forest": 0x800,
    "ms-Exch-Accept-Headers-Organization": 0x1000, "ms-Exch-Send-Headers-Routing": 0x2000,
    "ms-Exch-Send-Headers-Forest": 0x4000, "ms-Exch-Send-Headers-Organization": 0x8000,
    "Send-As": 0x10000, "ms-Exch-SMTP-Send-XShadow": 0x20000,
    "ms-Exch-SMTP-Accept-XShadow": 0x40000, "ms-Exch-SMTP-Accept-XProxyFrom": 0x80000,
    "ms-Exch-SMTP-Accept-XSessionParams": 0x100000,
    "ms-Exch-SMTP-Accept-XMessageContext-ADRecipientCache": 0x200000,
    "ms-Exch-SMTP-Accept-XMessageContext-ExtendedProperties": 0x400000,
    "ms-Exch-SMTP-Accept-XMessageContext-FastIndex": 0x800000,
    "ms-Exch-SMTP-Accept-XAttr": 0x1000000, "ms-Exch-SMTP-Accept-XSysProbe": 0x2000000,
}
ANON = "NT AUTHORITY\\ANONYMOUS LOGON"
AUTH_USERS = "NT AUTHORITY\\Authenticated Users"
ES = "MS Exchange\\Externally Secured Servers"
FULL, ES_SET = 0x3FC1EFD, 0x6FD
EXCHANGE_SERVERS = {("allow", "MS Exchange\\Edge Transport Servers"): FULL, ("allow", ES): ES_SET,
                    ("allow", "MS Exchange\\Hub Transport Servers"): FULL,
                    ("allow", "MS Exchange\\Exchange Servers"): FULL}
LEGACY = {("allow", "MS Exchange\\ExchangeLegacyInterop"): ES_SET,
          ("deny", "MS Exchange\\ExchangeLegacyInterop"): 0x1800}
ANON_SET = {("allow", ANON): 0x431}


def ace_map(values):
    """{(action, principal): rights mask} for canonical ACE strings; raises on a bad one
    (unknown right, rights out of bit order, a (principal, action) pair written twice)."""
    out = {}
    for v in values:
        action, principal, rights = [p.strip() for p in v.split(";")]
        if action not in ("allow", "deny"):
            raise ValueError("action %r in %r" % (action, v))
        bits = [RIGHTS[r.strip()] for r in rights.split(",")]
        if bits != sorted(bits):
            raise ValueError("rights not in bit order: %r" % v)
        if (action, principal) in out:
            raise ValueError("two ACEs for %r" % ((action, principal),))
        out[(action, principal)] = sum(bits)
    return out


def connector(S, name, attrs=("*",), bind="service"):
    es = S.search(S.connector_dn(name), attrs=attrs, scope="base", bind=bind)
    return es[0]


def check_env(S):
    want = ["SLAPD_URI", "SLAPD_LDAPI", "SLAPD_PID", "SLAPD_PORT", "SMTP_PORT",
            "SUBMISSION_PORT", "BASE_DN", "RELAY_BASE", "ADMIN_DN", "ADMIN_PW_FILE",
            "SERVICE_DN", "SERVICE_PW_FILE"]
    missing = [k for k in want if not S.env.get(k)]
    rc, out, err = run(". %s/env && echo \"$SLAPD_URI $SMTP_PORT $SERVICE_DN\"" % S.dir)
    sourced = out.strip() == "%s %d %s" % (S.uri, S.smtp_port, S.service_dn)
    modes = [oct(os.stat(p).st_mode & 0o777) for p in (S.admin_pw_file, S.service_pw_file)]
    return (not missing and sourced and modes == ["0o600", "0o600"],
            "missing %r; sourced %r; pw file modes %r" % (missing, out, modes))


def check_conf(S):
    """relaynode.conf uses only keys of the bootstrap table (directory/bootstrap.c), names
    this fixture, and reaches it over StartTLS verified against the fixture's CA."""
    table = open(os.path.join(ROOT, "directory", "bootstrap.c")).read()
    keys = set(re.findall(r"^\s*(?:STR|PATH|NUM|BOOL|ENUM)\((\w+),", table, re.M))
    conf = {}
    for line in open(S.conf):
        k, _, v = line.partition("=")
        conf[k.strip()] = v.strip()
    unknown = set(conf) - keys
    want = {"uri": S.uri, "ldap_starttls": "yes", "ldap_ca_file": S.ca_file,
            "bind_dn": S.service_dn, "bind_password_file": S.service_pw_file,
            "base_dn": S.relay_base, "node": "node1", "spool_dir": S.spool_dir,
            "protocol_log_dir": S.protocol_dir}
    wrong = {k: conf.get(k) for k, v in want.items() if conf.get(k) != v}
    dirs = os.path.isdir(S.spool_dir) and os.path.isdir(S.protocol_dir)
    return not unknown and not wrong and dirs, "unknown keys %r, wrong %r, dirs %r" % (
        unknown, wrong, dirs)


def check_counts(S):
    def count(base, oc):
        return len(S.search(base, "(objectClass=%s)" % oc, ["1.1"], bind="admin"))
    got = {"receive connectors": count(S.node_dn, "relayReceiveConnector"),
           "accepted domains": count(S.relay_base, "relayAcceptedDomain"),
           "send connectors": count(S.relay_base, "relaySendConnector"),
           "users": count("ou=People," + S.base_dn, "inetOrgPerson"),
           "groups": count("ou=Groups," + S.base_dn, "groupOfNames"),
           "nodes": count(S.relay_base, "relayNode"), "sites": count(S.relay_base, "relaySite")}
    want = {"receive connectors": 3, "accepted domains": 3, "send connectors": 1, "users": 3,
            "groups": 3, "nodes": 1, "sites": 1}
    return got == want, "got %r\nwant %r" % (got, want)


def check_domains(S):
    es = S.search(S.relay_base, "(objectClass=relayAcceptedDomain)",
                  ["relayDomainName", "relayDomainType"])
    got = sorted((e.first("relayDomainName"), e.first("relayDomainType")) for e in es)
    want = [("example.com", "Authoritative"), ("internal.example.com", "InternalRelay"),
            ("partner.example.net", "ExternalRelay")]
    sc = S.search(S.relay_base, "(objectClass=relaySendConnector)")
    ok_sc = len(sc) == 1 and sc[0].get("relayAddressSpace") == ["*"] and not sc[0].get(
        "relaySmartHost") and sc[0].first("cn") == "Internet"
    return got == want and ok_sc, "domains %r; send connectors %r" % (got, sc)


def check_default(S):
    c = connector(S, "Default node1")
    p = S.smtp_port
    aces = ace_map(c.get("relayAce"))
    want = {**ANON_SET, **EXCHANGE_SERVERS, **LEGACY}
    ok = (sorted(c.get("relayBinding")) == sorted(["0.0.0.0:%d" % p, "[::]:%d" % p])
          and c.get("relayRemoteIPRange") == ["0.0.0.0-255.255.255.255",
                                              "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"]
          and c.get("relayAuthMechanism") == ["Tls", "BasicAuth", "BasicAuthRequireTLS",
                                              "ExchangeServer"]
          and aces == want and c.first("relayEnabled") == "TRUE")
    return ok, "entry %r\naces %r" % (c, {k: hex(v) for k, v in aces.items()})


def check_client(S):
    c = connector(S, "Client node1")
    aces = ace_map(c.get("relayAce"))
    ok = (c.get("relayBinding") == ["0.0.0.0:%d" % S.submission_port]
          and c.get("relayAuthMechanism") == ["Tls", "BasicAuth", "BasicAuthRequireTLS"]
          and aces == {("allow", AUTH_USERS): 0x445})
    return ok, "entry %r" % c


def check_crm(S):
    c = connector(S, "CRM Application")
    aces = ace_map(c.get("relayAce"))
    ok = (c.get("relayBinding") == ["0.0.0.0:%d" % S.smtp_port]
          and c.get("relayRemoteIPRange") == ["192.168.2.55", "192.168.2.56", "127.0.2.55",
                                              "127.0.2.56"]
          and c.get("relayAuthMechanism") == ["Tls", "ExternalAuthoritative"]
          and aces == EXCHANGE_SERVERS)
    return ok, "entry %r" % c


def check_no_placeholders(S):
    es = S.search(S.base_dn, "(|(relayBinding=*@*)(userPassword=*@*))", ["1.1"], bind="admin")
    hashed = S.search(S.base_dn, "(userPassword=*)", ["userPassword"], bind="admin")
    plain = [e.dn for e in hashed if not e.first("userPassword").startswith("{SSHA}")]
    return not es and len(hashed) == 4 and not plain, "placeholders %r; plain %r; %d pw" % (
        [e.dn for e in es], plain, len(hashed))


def check_service_reads(S):
    c = connector(S, "CRM Application", ["relayAce", "relayRemoteIPRange"])
    alice = S.search(S.base_dn, "(|(uid=alice)(mail=alice@example.com))",
                     ["mail", "relayMailAlias", "userPassword", "uid", "cn", "displayName"])
    a = alice[0] if len(alice) == 1 else rntest.Entry("")
    groups = S.search(S.base_dn, "(member=%s)" % S.group_dn("Sales"), ["cn"])
    csn = S.search(S.base_dn, attrs=["contextCSN"], scope="base")
    ok = (len(c.get("relayAce")) == 4 and a.get("mail") == ["alice@example.com"]
          and a.get("relayMailAlias") == ["a.smith@example.com"] and not a.get("userPassword")
          and a.first("uid") == "alice"
          and [g.first("cn") for g in groups] == ["Staff"]
          and csn and re.match(r"^\d{14}\.\d{6}Z#", csn[0].first("contextCSN", "")))
    return ok, "crm %r\nalice %r\ngroups of Sales %r\ncsn %r" % (c, alice, groups, csn)


def check_service_limits(S):
    """The service account sees nothing outside what it needs: no passwords, no other OUs."""
    svc = S.search(S.base_dn, "(objectClass=*)", ["userPassword"])
    leaked = [e.dn for e in svc if e.get("userPassword")]
    services = [e.dn for e in svc if "ou=services" in e.dn.lower()]
    return not leaked and not services, "passwords %r; ou=Services visible %r" % (
        leaked, services)


def check_anonymous(S):
    bad = {}
    for base in (S.base_dn, S.relay_base, S.user_dn("alice"), "ou=Groups," + S.base_dn):
        rc, es, err = S.ldapsearch(base, bind="anonymous")
        if es or rc not in (0, 32):
            bad[base] = (rc, es, err)
    rc, es, _ = S.ldapsearch("", attrs=["namingContexts"], scope="base", bind="anonymous")
    return not bad and rc == 0, "anonymous read %r; root DSE rc %d" % (bad, rc)


def check_binds(S):
    a, b = S.user_dn("alice"), S.user_dn("bob")
    ok = (S.bind_ok(a, user_password("alice")) and S.bind_ok(b, user_password("bob"))
          and not S.bind_ok(a, user_password("bob")) and not S.bind_ok(a, "")
          and S.bind_ok(S.service_dn, S.service_password)
          and S.bind_ok(S.admin_dn, S.admin_password))
    return ok, "a bind result was wrong"


def check_alice_reads(S):
    alice = ("uid=alice,ou=People," + S.base_dn, user_password("alice"))
    own = S.search(S.user_dn("alice"), attrs=["mail", "userPassword"], scope="base",
                   bind=alice)
    rc_bob, bob, _ = S.ldapsearch(S.user_dn("bob"), bind=alice)
    rc_rel, rel, _ = S.ldapsearch(S.relay_base, bind=alice)
    ok = (len(own) == 1 and own[0].get("mail") == ["alice@example.com"]
          and not own[0].get("userPassword") and not bob and not rel)
    return ok, "own %r; bob (rc %d) %r; relay (rc %d) %r" % (own, rc_bob, bob, rc_rel, rel)


def modify_description(dn, text):
    return "dn: %s\nchangetype: modify\nreplace: description\ndescription: %s\n" % (dn, text)


def check_writes(S):
    crm = S.connector_dn("CRM Application")
    alice = (S.user_dn("alice"), user_password("alice"))
    rc_alice, _, _ = S.ldapmodify(modify_description(S.user_dn("alice"), "x"), bind=alice)
    rc_alice2, _, _ = S.ldapmodify(modify_description(crm, "x"), bind=alice)
    rc_svc, _, _ = S.ldapmodify(modify_description(crm, "x"), bind="service")
    rc_anon, _, _ = S.ldapmodify(modify_description(crm, "x"), bind="anonymous")
    csn0 = S.search(S.base_dn, attrs=["contextCSN"], scope="base")[0].first("contextCSN")
    rc_admin, _, err = S.ldapmodify(modify_description(crm, "changed by admin"))
    after = connector(S, "CRM Application", ["description"]).first("description")
    csn1 = S.search(S.base_dn, attrs=["contextCSN"], scope="base")[0].first("contextCSN")
    ok = ((rc_alice, rc_alice2, rc_svc) == (50, 50, 50) and rc_anon in (8, 50)
          and rc_admin == 0 and after == "changed by admin" and csn1 > csn0)
    return ok, "rc alice %d/%d service %d anonymous %d admin %d (%s); description %r; " \
               "contextCSN %s -> %s" % (rc_alice, rc_alice2, rc_svc, rc_anon, rc_admin, err,
                                        after, csn0, csn1)


def slapacl(S, dn, target, *checks):
    args = ["slapacl", "-F", os.path.join(S.dir, "slapd.d"), "-b", target]
    if dn:
        args += ["-D", dn]
    rc, out, err = run(args + list(checks))
    return dict(re.findall(r"^(\w+ access to \w+): (ALLOWED|DENIED)$", out + err, re.M))


def check_slapacl(S):
    a = S.user_dn("alice")
    got = {}
    got.update({"svc " + k: v for k, v in slapacl(
        S, S.service_dn, a, "userPassword/read", "mail/read", "relayMailAlias/read",
        "mail/write").items()})
    got.update({"anon " + k: v for k, v in slapacl(
        S, None, a, "userPassword/auth", "userPassword/read", "mail/read").items()})
    got.update({"alice " + k: v for k, v in slapacl(
        S, a, S.user_dn("bob"), "mail/read", "userPassword/read").items()})
    got.update({"svc-relay " + k: v for k, v in slapacl(
        S, S.service_dn, S.connector_dn("CRM Application"), "relayAce/read",
        "relayAce/write").items()})
    want = {"svc read access to userPassword": "DENIED",
            "svc read access to mail": "ALLOWED",
            "svc read access to relayMailAlias": "ALLOWED",
            "svc write access to mail": "DENIED",
            "anon auth access to userPassword": "ALLOWED",
            "anon read access to userPassword": "DENIED",
            "anon read access to mail": "DENIED",
            "alice read access to mail": "DENIED",
            "alice read access to userPassword": "DENIED",
            "svc-relay read access to relayAce": "ALLOWED",
            "svc-relay write access to relayAce": "DENIED"}
    return got == want, "got  %r\nwant %r" % (got, want)


def check_syntaxes(S):
    crm = S.connector_dn("CRM Application")
    ok_unl = S.ldapmodify("dn: %s\nchangetype: modify\nreplace: relayMaxInboundConnection\n"
                          "relayMaxInboundConnection: unlimited\n-\nreplace: "
                          "relayMaxMessageSize\nrelayMaxMessageSize: 10485760\n" % crm)[0]
    bad_bool = S.ldapmodify("dn: %s\nchangetype: modify\nreplace: relayEnabled\n"
                            "relayEnabled: yes\n" % crm)[0]
    two_single = S.ldapmodify("dn: %s\nchangetype: modify\nreplace: relayFqdn\n"
                              "relayFqdn: a.example.com\nrelayFqdn: b.example.com\n" % crm)[0]
    c = connector(S, "CRM Application", ["relayMaxInboundConnection", "relayEnabled"])
    ok = (ok_unl == 0 and bad_bool == 21 and two_single == 19
          and c.first("relayMaxInboundConnection") == "unlimited"
          and c.first("relayEnabled") == "TRUE")
    return ok, "unlimited rc %d, relayEnabled: yes rc %d (want 21), two relayFqdn rc %d " \
               "(want 19); %r" % (ok_unl, bad_bool, two_single, c)


def check_option2(S):
    S.ldapmodify_file(os.path.join(ROOT, "deploy", "example", "option2.ldif"))
    c = connector(S, "CRM Application")
    aces = c.get("relayAce")
    want_aces = ["allow; NT AUTHORITY\\ANONYMOUS LOGON; ms-Exch-SMTP-Submit, "
                 "ms-Exch-SMTP-Accept-Any-Sender, ms-Exch-SMTP-Accept-Authoritative-Domain-"
                 "Sender, ms-Exch-Accept-Headers-Routing",
                 "allow; NT AUTHORITY\\ANONYMOUS LOGON; ms-Exch-SMTP-Accept-Any-Recipient"]
    ok = c.get("relayAuthMechanism") == ["Tls"] and aces == want_aces
    # The extra ACE can be deleted by value, whatever the case (caseIgnoreMatch).
    rc, _, err = S.ldapmodify("dn: %s\nchangetype: modify\ndelete: relayAce\nrelayAce: "
                              "ALLOW; nt authority\\anonymous logon; "
                              "MS-EXCH-SMTP-ACCEPT-ANY-RECIPIENT\n" % S.connector_dn(
                                  "CRM Application"))
    left = connector(S, "CRM Application", ["relayAce"]).get("relayAce")
    return ok and rc == 0 and left == want_aces[:1], "after option2 %r; delete rc %d %s; " \
        "left %r" % (c, rc, err, left)


def check_schema_files(S):
    tmp = os.path.join(S.dir, "regen.ldif")
    rc, out, err = run([os.path.join(ROOT, "deploy", "slapd", "schema2ldif.sh"), tmp])
    same = rc == 0 and open(tmp).read() == open(
        os.path.join(ROOT, "schema", "relaynode.ldif")).read()
    return same, "schema2ldif.sh rc %d %s: schema/relaynode.ldif is %s" % (
        rc, err, "current" if same else "stale (run deploy/slapd/schema2ldif.sh)")


def connattr_names():
    src = open(os.path.join(ROOT, "directory", "connattr.c")).read()
    return re.findall(r'^\s*\{"(\w+)",\s*"', src, re.M)


def check_schema_connattr(S):
    """Every attribute of the connattr table is in the served schema and allowed on
    relayReceiveConnector; its single/multi-valuedness matches the table."""
    names = connattr_names()
    rc, es, err = S.ldapsearch("cn=Subschema", "(objectClass=subschema)",
                               ["attributeTypes", "objectClasses"], scope="base",
                               bind="anonymous")
    if rc != 0 or not es:
        return False, "subschema rc %d %s" % (rc, err)
    ats = {re.search(r"NAME '(\w+)'", a).group(1).lower(): a for a in es[0].get(
        "attributeTypes") if re.search(r"NAME '(\w+)'", a)}
    oc = [o for o in es[0].get("objectClasses") if "NAME 'relayReceiveConnector'" in o]
    may = set(x.lower() for x in re.findall(r"\w+", oc[0].split("MAY", 1)[1])) if oc else set()
    src = open(os.path.join(ROOT, "directory", "connattr.c")).read()
    bad = []
    for n in names:
        a = ats.get(n.lower())
        if not a:
            bad.append("%s missing" % n)
            continue
        if n.lower() not in may and n != "description":
            bad.append("%s not in relayReceiveConnector MAY" % n)
        if n == "description":    # the standard (multi-valued) attribute; one value is used
            continue
        m = re.search(r'\{"%s",\s*"[^"]*",\s*CA_\w+,\s*(true|false)' % n, src)
        if m and (m.group(1) == "true") == ("SINGLE-VALUE" in a):
            bad.append("%s single/multi differs from connattr.c" % n)
    return len(names) >= 20 and not bad, "%d table attrs; %r" % (len(names), bad)


def check_readme(S):
    path = os.path.join(ROOT, "schema", "README.md")
    if not os.path.exists(path):
        return False, "schema/README.md missing"
    text = open(path).read()
    missing = [n for n in connattr_names() + ["relayDomainName", "relayDomainType",
                                             "relayAddressSpace", "relaySmartHost",
                                             "relayCost", "relayClusterEndpoint",
                                             "relayCurvePublicKey", "relayHostName",
                                             "relayMailAlias"] if "`%s`" % n not in text]
    return not missing, "not documented: %r" % missing


SITE_CONNECTOR = """dn: cn=Site Relay,cn=Default-Site,cn=Sites,ou=Relay,@SUFFIX@
objectClass: relayReceiveConnector
cn: Site Relay
relayBinding: 127.0.0.1:@SMTP_PORT@
relayRemoteIPRange: 127.0.3.0/24
relayAce: allow; NT AUTHORITY\\ANONYMOUS LOGON; ms-Exch-SMTP-Submit
"""


def check_second_fixture(S):
    """A second fixture (with an extra --ldif: a site-scoped connector) runs beside the
    first on its own ports and stops cleanly."""
    extra = os.path.join(S.dir, "site-connector.ldif")
    with open(extra, "w") as f:
        f.write(SITE_CONNECTOR)
    with Slapd(ldifs=[extra]) as T:
        site = T.search("cn=Default-Site,cn=Sites," + T.relay_base,
                        "(objectClass=relayReceiveConnector)", ["relayBinding"], scope="one")
        ok = (T.port != S.port and T.smtp_port != S.smtp_port and T.dir != S.dir
              and T.running() and S.running()
              and [e.get("relayBinding") for e in site] == [["127.0.0.1:%d" % T.smtp_port]]
              and len(T.search(T.node_dn, "(objectClass=relayReceiveConnector)", ["1.1"])) == 3
              and len(S.search(S.node_dn, "(objectClass=relayReceiveConnector)", ["1.1"])) == 3)
        pid = T.pid
    gone = not rntest.pid_alive(pid)
    return ok and gone and S.running(), "second fixture ok %r (site %r), its slapd gone %r" % (
        ok, site, gone)


def check_restart_idempotent(S):
    """start on a running DIR stops the old slapd and rebuilds the data (option2 undone)."""
    old = S.pid
    S.start()
    crm = connector(S, "CRM Application", ["relayAuthMechanism"])
    ok = (not rntest.pid_alive(old) and S.running() and S.pid != old
          and crm.get("relayAuthMechanism") == ["Tls", "ExternalAuthoritative"])
    return ok, "old pid %d alive %r, new %d running %r, crm %r" % (
        old, rntest.pid_alive(old), S.pid, S.running(), crm)


def main():
    t = Tap()
    S = Slapd()
    try:
        t.run("fixture.sh start: slapd answers", lambda: (S.start() and S.running(), ""))
        if not S.running():
            return t.done()
        t.run("DIR/env: every key, shell-sourceable, password files 0600", check_env, S)
        t.run("DIR/relaynode.conf: bootstrap.h keys only, pointing at this fixture",
              check_conf, S)
        t.run("example loads: 3 connectors, 3 domains, 1 send connector, 3 users, 3 groups",
              check_counts, S)
        t.run("accepted domains and send connector as the article's org", check_domains, S)
        t.run("Default node1: bindings, ranges, auth, ACEs = Anonymous+ExchangeServers+Legacy",
              check_default, S)
        t.run("Client node1: submission binding, ExchangeUsers ACE (0x445)", check_client, S)
        t.run("CRM Application: article ranges + loopback stand-ins, Option 1 ACEs",
              check_crm, S)
        t.run("ports substituted, passwords stored hashed", check_no_placeholders, S)
        t.run("service reads a connector, alice's mail/alias (not userPassword), groups, "
              "contextCSN", check_service_reads, S)
        t.run("service sees no password and nothing of ou=Services", check_service_limits, S)
        t.run("anonymous reads nothing (root DSE only)", check_anonymous, S)
        t.run("binds: users with their passwords, wrong/empty password refused",
              check_binds, S)
        t.run("alice reads her own entry (no password), not bob's, not the relay subtree",
              check_alice_reads, S)
        t.run("only the rootdn writes (alice, service, anonymous refused; contextCSN moves)",
              check_writes, S)
        t.run("slapacl agrees with the ACL policy", check_slapacl, S)
        t.run("syntaxes: 'unlimited' limit ok, relayEnabled Boolean, relayFqdn single",
              check_syntaxes, S)
        t.run("option2.ldif makes CRM Option 2; one relayAce deletable by value",
              check_option2, S)
        t.run("schema/relaynode.ldif is generated from relaynode.schema", check_schema_files,
              S)
        t.run("schema carries every directory/connattr.c attribute", check_schema_connattr, S)
        t.run("schema/README.md documents every attribute", check_readme, S)
        t.run("a second fixture (with --ldif) runs beside the first and stops cleanly",
              check_second_fixture, S)
        t.run("start again on the same DIR: old slapd gone, data rebuilt",
              check_restart_idempotent, S)
        pid = S.pid
        S.stop()
        t.ok(not rntest.pid_alive(pid), "fixture.sh stop: slapd pid %d gone" % pid)
        rc, _, err = run([rntest.FIXTURE, "stop", S.dir])
        t.eq(rc, 0, "stop again (nothing running) succeeds")
    finally:
        S.stop()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
