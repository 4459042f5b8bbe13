#!/usr/bin/env python3
"""relayctl's admin verbs against a real slapd (the example organisation of the seed article).

Every verb (connector, permission, domain, sendconnector, node, audit) with table and --json
output; each error path with its message and exit code (0 ok, 1 refused or findings, 2 usage
or connection error); --ldif parity: the same commands run as direct writes on one fresh
fixture and as `--ldif | ldapmodify` on another leave identical directories; the article's
two options reproduced with relayctl alone and checked with `relayctl explain`; audit on a
deliberately bad directory and a clean exit once it is fixed.
"""
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from rntest import ROOT, Slapd, Tap, free_port, run  # noqa: E402

BUILD = os.environ.get("RELAYNODE_BUILD") or os.path.join(ROOT, "build", "asan")
RELAYCTL = os.environ.get("RELAYCTL") or os.path.join(BUILD, "relayctl")
ANON = "NT AUTHORITY\\ANONYMOUS LOGON"
AAR = "ms-Exch-SMTP-Accept-Any-Recipient"
CRM_RANGES = "192.168.2.55,192.168.2.56,127.0.2.55,127.0.2.56"

T = Tap()


def rc_(S, *args, admin=True, stdin=None):
    """Run relayctl with the fixture's bootstrap file (and the admin identity for writes)."""
    argv = [RELAYCTL] + list(args) + ["--config", S.conf]
    if admin:
        argv += ["--bind-dn", S.admin_dn, "--password-file", S.admin_pw_file]
    return run(argv, input=stdin)


def expect(name, res, code, out=None, err=None):
    rc, o, e = res
    ok = rc == code and (out is None or out in o) and (err is None or err in e)
    return T.ok(ok, name, "rc %r (want %r)\nstdout: %s\nstderr: %s" % (rc, code, o[-1500:], e[-1500:]))


def get_json(S, *args):
    rc, o, e = rc_(S, *(list(args) + ["--json"]))
    if rc != 0:
        raise AssertionError("relayctl %s: rc %d: %s" % (" ".join(args), rc, e))
    return json.loads(o)


def dump(S):
    """The relay subtree as {dn: {attr: sorted values}} (user attributes only), without
    node1's relayCertificateSha256: each fixture makes its own random node certificate."""
    out = {}
    for e in S.search(S.relay_base, bind="admin"):
        out[e.dn.lower()] = {k: sorted(v) for k, v in e.attrs.items()
                             if k.lower() != "relaycertificatesha256"}
    return out


# ---------------------------------------------------------------------------- help, usage
def test_help(S):
    expect("relayctl --help lists the admin verbs", run([RELAYCTL, "--help"]), 0, "permission")
    for verb in ("connector", "permission", "domain", "sendconnector", "node", "audit"):
        expect("%s --help exits 0" % verb, run([RELAYCTL, verb, "--help"]), 0, "usage:")
    expect("connector new --help documents every attribute flag",
           run([RELAYCTL, "connector", "new", "--help"]), 0, "--max-message-size")
    expect("permission --help says ACEs are not inherited",
           run([RELAYCTL, "permission", "--help"]), 0, "Inherited is always False")
    expect("unknown verb exits 2", run([RELAYCTL, "frobnicate"]), 2, err="unknown verb")
    expect("unknown connector sub-verb exits 2", run([RELAYCTL, "connector", "frob"]), 2)
    expect("unknown flag exits 2", rc_(S, "connector", "list", "--bogus"), 2)
    expect("--bind-dn without --password-file exits 2",
           run([RELAYCTL, "connector", "list", "--config", S.conf, "--bind-dn", S.admin_dn]),
           2, err="--password-file")
    expect("unreachable directory exits 2",
           run([RELAYCTL, "connector", "list", "--config", S.conf, "--uri",
                "ldap://127.0.0.1:1/"]), 2)


# ---------------------------------------------------------------------------- reads
def test_reads(S):
    rc, o, e = rc_(S, "node", "list", admin=False)
    T.ok(rc == 0 and "node1" in o and "Default-Site" in o and "node1.example.com" in o,
         "node list shows node1, its site and host name", o + e)
    nodes = get_json(S, "node", "list")
    T.eq([(n["Name"], n["Site"], n["HostName"], n["KeyFingerprint"]) for n in nodes],
         [("node1", "Default-Site", "node1.example.com", None)], "node list --json")
    key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"      # a Z85 CURVE public key
    S.ldapmodify("dn: %s\nchangetype: modify\nreplace: relayCurvePublicKey\n"
                 "relayCurvePublicKey: %s\n-\nreplace: relayClusterEndpoint\n"
                 "relayClusterEndpoint: tcp://127.0.0.1:5670\n-\n" % (S.node_dn, key))
    want = "SHA256:" + hashlib.sha256(key.encode()).hexdigest()[:32]
    rc, o, e = rc_(S, "node", "list", admin=False)
    T.ok(rc == 0 and want in o and "tcp://127.0.0.1:5670" in o,
         "node list shows the cluster endpoint and the key fingerprint", o + e)
    rc, o, e = rc_(S, "connector", "list", admin=False)
    T.ok(rc == 0 and all(n in o for n in ("Default node1", "Client node1", "CRM Application")),
         "connector list (service account)", o + e)
    lst = get_json(S, "connector", "list")
    by = {c["Name"]: c for c in lst}
    T.eq(by.get("Default node1", {}).get("PermissionGroups"),
         ["AnonymousUsers", "ExchangeServers", "ExchangeLegacyServers"],
         "connector list --json derives Default node1's groups")
    g = get_json(S, "connector", "get", "CRM Application")
    T.ok(g["PermissionGroups"] == ["ExchangeServers"] and
         g["AuthMechanism"] == ["Tls", "ExternalAuthoritative"] and
         g["MaxMessageSize"] == "36700160" and g["Error"] is None,
         "connector get --json: groups, auth, defaults for absent attributes", g)
    rc, o, e = rc_(S, "connector", "get", "crm application")
    T.ok(rc == 0 and "PermissionGroups" in o and "ExternalAuthoritative" in o,
         "connector get (table, name case-insensitive)", o + e)
    expect("connector get of a missing connector exits 1", rc_(S, "connector", "get", "Nope"),
           1, err="not found")
    rc, o, e = rc_(S, "permission", "get", "Client node1")
    T.ok(rc == 0 and "NT AUTHORITY\\Authenticated Users" in o and AAR in o and
         "Identity" in o and "Inherited" in o, "permission get (table)", o + e)


# ---------------------------------------------------------------------------- the article
def explain(S, remote, rcpt):
    return run([RELAYCTL, "explain", "--config", S.conf, "--local",
                "127.0.0.1:%d" % S.smtp_port, "--remote", remote, "--from",
                "app@example.com", "--to", rcpt])


def test_article(S):
    p = S.smtp_port
    expect("connector remove 'CRM Application'", rc_(S, "connector", "remove", "CRM Application"),
           0)
    expect("connector new 'CRM Application' --usage Custom",
           rc_(S, "connector", "new", "CRM Application", "--usage", "Custom", "--bindings",
               "0.0.0.0:%d" % p, "--remote-ip-ranges", CRM_RANGES), 0)
    g = get_json(S, "connector", "get", "CRM Application")
    T.ok(g["PermissionGroups"] == ["None"] and g["AuthMechanism"] == ["Tls"],
         "Custom usage: no groups, Tls", g)
    expect("the article's caveat: ExternalAuthoritative before ExchangeServers is refused",
           rc_(S, "connector", "set", "CRM Application", "--auth-mechanism",
               "Tls,ExternalAuthoritative"), 1, err="ExchangeServers")
    # Option 1
    expect("Option 1: --permission-groups ExchangeServers",
           rc_(S, "connector", "set", "CRM Application", "--permission-groups",
               "ExchangeServers"), 0)
    expect("Option 1: then --auth-mechanism Tls,ExternalAuthoritative succeeds",
           rc_(S, "connector", "set", "CRM Application", "--auth-mechanism",
               "Tls,ExternalAuthoritative"), 0)
    g = get_json(S, "connector", "get", "CRM Application")
    T.ok(g["PermissionGroups"] == ["ExchangeServers"] and
         g["AuthMechanism"] == ["Tls", "ExternalAuthoritative"], "Option 1 state", g)
    rc, o, e = explain(S, "127.0.2.55", "someone@external.example.org")
    T.ok(rc == 0 and "CRM Application" in o, "explain: Option 1 relays from 127.0.2.55",
         o + e)
    expect("taking ExchangeServers rights off an ExternalAuthoritative connector is refused",
           rc_(S, "permission", "remove", "CRM Application", "--user",
               "MS Exchange\\Externally Secured Servers", "--extended-rights",
               "ms-Exch-SMTP-Submit"), 1, err="ExchangeServers")
    # Option 2: groups first is refused while ExternalAuthoritative stays
    expect("AnonymousUsers alone with ExternalAuthoritative is refused",
           rc_(S, "connector", "set", "CRM Application", "--permission-groups",
               "AnonymousUsers"), 1, err="ExternalAuthoritative")
    expect("Option 2: --auth-mechanism Tls --permission-groups AnonymousUsers",
           rc_(S, "connector", "set", "CRM Application", "--auth-mechanism", "Tls",
               "--permission-groups", "AnonymousUsers"), 0)
    rc, o, e = explain(S, "127.0.2.55", "someone@external.example.org")
    T.ok(rc == 1, "explain: AnonymousUsers alone cannot relay", o + e)
    expect("Option 2: permission add ANONYMOUS LOGON Accept-Any-Recipient",
           rc_(S, "permission", "add", "CRM Application", "--user", ANON, "--extended-rights",
               AAR), 0)
    g = get_json(S, "connector", "get", "CRM Application")
    T.eq(g["PermissionGroups"], ["AnonymousUsers", "Custom"],
         "connector get shows AnonymousUsers, Custom")
    rc, o, e = rc_(S, "connector", "get", "CRM Application")
    T.ok("AnonymousUsers, Custom" in o, "connector get table shows 'AnonymousUsers, Custom'", o)
    rc, o, e = explain(S, "127.0.2.55", "someone@external.example.org")
    T.ok(rc == 0 and "CRM Application" in o, "explain: Option 2 relays from 127.0.2.55", o + e)
    rc, o, e = explain(S, "127.0.0.9", "someone@external.example.org")
    T.ok(rc == 1 and "Default node1" in o, "explain: another client still cannot relay", o + e)
    # the extra ACE survives a group rewrite (§1.5)
    expect("set --permission-groups AnonymousUsers again keeps the extra ACE",
           rc_(S, "connector", "set", "CRM Application", "--permission-groups",
               "AnonymousUsers"), 0)
    perms = get_json(S, "permission", "get", "CRM Application", "--user", ANON)
    rights = sorted(r for p_ in perms for r in p_["ExtendedRights"])
    T.ok(AAR in rights and "ms-Exch-SMTP-Submit" in rights and
         all(not p_["Deny"] and not p_["Inherited"] for p_ in perms),
         "permission get --user ANONYMOUS LOGON after the rewrite", perms)


# ---------------------------------------------------------------------------- permissions
def test_permissions(S):
    contractors = "cn=Contractors,ou=Groups," + S.base_dn
    expect("permission add --deny for a group DN",
           rc_(S, "permission", "add", "Client node1", "--user", contractors,
               "--extended-rights", "%s,ms-Exch-Bypass-Anti-Spam" % AAR, "--deny"), 0)
    perms = get_json(S, "permission", "get", "Client node1", "--user", contractors)
    T.ok(len(perms) == 1 and perms[0]["Deny"] is True and
         sorted(perms[0]["ExtendedRights"]) == sorted([AAR, "ms-Exch-Bypass-Anti-Spam"]),
         "permission get shows the deny ACE", perms)
    rc, o, e = rc_(S, "permission", "get", "Client node1")
    T.ok(rc == 0 and "True" in o and contractors in o, "permission get table: Deny True", o)
    expect("permission remove of one right splits the ACE",
           rc_(S, "permission", "remove", "Client node1", "--user", contractors,
               "--extended-rights", "ms-Exch-Bypass-Anti-Spam", "--deny"), 0)
    vals = S.search(S.connector_dn("Client node1"), scope="base", bind="admin")[0].get("relayAce")
    T.ok(("deny; %s; %s" % (contractors, AAR)) in vals, "the remaining deny ACE is canonical",
         vals)
    expect("permission remove of a right nobody has exits 1",
           rc_(S, "permission", "remove", "Client node1", "--user", contractors,
               "--extended-rights", "ms-Exch-Bypass-Anti-Spam", "--deny"), 1, err="no deny ACE")
    expect("permission add for a DN that does not exist exits 1",
           rc_(S, "permission", "add", "Client node1", "--user",
               "uid=ghost,ou=People," + S.base_dn, "--extended-rights", AAR), 1,
           err="no such entry")
    expect("permission add with an unknown right exits 2",
           rc_(S, "permission", "add", "Client node1", "--user", ANON, "--extended-rights",
               "ms-Exch-Bogus"), 2, err="unknown extended right")
    expect("permission add without --user exits 2",
           rc_(S, "permission", "add", "Client node1", "--extended-rights", AAR), 2)
    expect("permission add on a missing connector exits 1",
           rc_(S, "permission", "add", "Nope", "--user", ANON, "--extended-rights", AAR), 1,
           err="not found")
    expect("permission add already held is no change",
           rc_(S, "permission", "add", "Client node1", "--user",
               "NT AUTHORITY\\Authenticated Users", "--extended-rights", AAR), 0,
           err="no change")


# ---------------------------------------------------------------------------- connector errors
def test_connector_errors(S):
    p = S.smtp_port
    expect("connector new with an existing name exits 1",
           rc_(S, "connector", "new", "Client node1", "--usage", "Client",
               "--remote-ip-ranges", "10.0.0.0/8"), 1, err="already exists")
    expect("connector new without --bindings (Custom) exits 2",
           rc_(S, "connector", "new", "X", "--usage", "Custom", "--remote-ip-ranges",
               "10.1.1.1"), 2, err="--bindings is required")
    expect("connector new --permission-groups Custom exits 2",
           rc_(S, "connector", "new", "X", "--bindings", "0.0.0.0:2999", "--remote-ip-ranges",
               "10.1.1.1", "--permission-groups", "Custom"), 2, err="--permission-groups")
    expect("connector new --usage Bogus exits 2",
           rc_(S, "connector", "new", "X", "--usage", "Bogus"), 2, err="unknown --usage")
    expect("connector new 'Range A' on port 2995",
           rc_(S, "connector", "new", "Range A", "--usage", "Custom", "--bindings",
               "0.0.0.0:2995", "--remote-ip-ranges", "10.0.0.0-10.0.0.100"), 0)
    rc, o, e = rc_(S, "connector", "new", "Range B", "--usage", "Custom", "--bindings",
                   "0.0.0.0:2995", "--remote-ip-ranges", "10.0.0.50-10.0.0.150")
    T.ok(rc == 1 and "Range A" in e and "not found" not in e,
         "a partly overlapping range on the same binding conflicts (exit 1)", o + e)
    expect("an equal range on the same binding conflicts (exit 1)",
           rc_(S, "connector", "new", "Range C", "--usage", "Custom", "--bindings",
               "0.0.0.0:2995", "--remote-ip-ranges", "10.0.0.0-10.0.0.100"), 1, err="Range A")
    expect("a nested range on the same binding is fine",
           rc_(S, "connector", "new", "Range D", "--usage", "Custom", "--bindings",
               "0.0.0.0:2995", "--remote-ip-ranges", "10.0.0.7"), 0)
    expect("connector set into a conflict is refused too",
           rc_(S, "connector", "set", "Range D", "--remote-ip-ranges", "10.0.0.90-10.0.0.110"),
           1, err="Range A")
    expect("BasicAuthRequireTLS without BasicAuth is refused",
           rc_(S, "connector", "set", "Client node1", "--auth-mechanism",
               "Tls,BasicAuthRequireTLS"), 1, err="BasicAuth")
    expect("a malformed range is refused with the attribute named",
           rc_(S, "connector", "set", "Client node1", "--remote-ip-ranges", "10.0.0.0/33"), 1,
           err="relayRemoteIPRange")
    expect("a limit out of range is refused",
           rc_(S, "connector", "set", "Client node1", "--max-recipients-per-message", "0"), 1,
           err="relayMaxRecipientsPerMessage")
    expect("connector set with nothing to set exits 2",
           rc_(S, "connector", "set", "Client node1"), 2, err="nothing to set")
    expect("a write as the read-only service account is refused by slapd (exit 1)",
           rc_(S, "connector", "set", "Client node1", "--banner", "220 hi", admin=False), 1)
    expect("connector new --usage Internal on a free port",
           rc_(S, "connector", "new", "Internal 2999", "--usage", "Internal", "--bindings",
               "0.0.0.0:2999", "--remote-ip-ranges", "10.0.0.0/8", "--max-message-size",
               "10485760", "--require-tls", "--comment", "Caf\u00e9 servers"), 0)
    g = get_json(S, "connector", "get", "Internal 2999")
    T.ok(g["PermissionGroups"] == ["ExchangeServers", "ExchangeLegacyServers"] and
         g["AuthMechanism"] == ["Tls", "ExchangeServer"] and g["RequireTLS"] == "TRUE" and
         g["MaxInboundConnectionPercentagePerSource"] == "100" and
         g["Comment"] == "Caf\u00e9 servers" and g["MaxMessageSize"] == "10485760",
         "Internal usage defaults and attribute flags", g)
    expect("--banner '' returns the banner to its default",
           rc_(S, "connector", "set", "Internal 2999", "--banner", "220 relay ready"), 0)
    expect("connector set --banner ''", rc_(S, "connector", "set", "Internal 2999", "--banner",
                                            ""), 0)
    e = S.search(S.connector_dn("Internal 2999"), scope="base", bind="admin")[0]
    T.ok(not e.get("relayBanner"), "the banner attribute is gone", e)
    expect("connector new --site creates a site connector",
           rc_(S, "connector", "new", "Site relay", "--usage", "Custom", "--site", "--bindings",
               "0.0.0.0:2998", "--remote-ip-ranges", "10.9.9.9"), 0)
    lst = {c["Name"]: c for c in get_json(S, "connector", "list")}
    T.ok(lst.get("Site relay", {}).get("Scope") == "Site" and
         S.search("cn=Site relay,cn=Default-Site,cn=Sites," + S.relay_base, scope="base",
                  bind="admin"), "the site connector lives under the site", lst)
    expect("connector remove of a missing connector exits 1",
           rc_(S, "connector", "remove", "Nope"), 1, err="not found")


# ---------------------------------------------------------------------------- domains, send
def test_domains_sendconnectors(S):
    expect("domain new", rc_(S, "domain", "new", "contoso", "--domain-name", "Contoso.COM",
                             "--type", "internalrelay"), 0)
    d = {x["Name"]: x for x in get_json(S, "domain", "list")}
    T.ok(d.get("contoso", {}).get("DomainName") == "contoso.com" and
         d["contoso"]["DomainType"] == "InternalRelay" and "example.com" in d,
         "domain list --json (lowercased name, canonical type)", d)
    rc, o, e = rc_(S, "domain", "list", admin=False)
    T.ok(rc == 0 and "contoso.com" in o and "DomainType" in o, "domain list (table)", o + e)
    expect("domain new with a taken domain name exits 1",
           rc_(S, "domain", "new", "dup", "--domain-name", "example.com", "--type",
               "Authoritative"), 1, err="already exists")
    expect("domain new with a bad type exits 2",
           rc_(S, "domain", "new", "x", "--domain-name", "x.example", "--type", "Weird"), 2)
    expect("domain new with a bad name exits 2",
           rc_(S, "domain", "new", "x", "--domain-name", "bad_domain..", "--type",
               "Authoritative"), 2)
    expect("domain remove", rc_(S, "domain", "remove", "contoso"), 0)
    expect("domain remove again exits 1", rc_(S, "domain", "remove", "contoso"), 1,
           err="not found")
    expect("sendconnector new", rc_(S, "sendconnector", "new", "Partners", "--address-spaces",
                                    "partner.example.net,*.partner.example.net",
                                    "--smart-hosts", "relay.partner.example.net:2525",
                                    "--cost", "5", "--require-tls"), 0)
    expect("sendconnector set", rc_(S, "sendconnector", "set", "Partners", "--cost", "7",
                                    "--enabled=false"), 0)
    s = {x["Name"]: x for x in get_json(S, "sendconnector", "list")}
    T.ok(s.get("Partners", {}).get("Cost") == 7 and s["Partners"]["Enabled"] is False and
         s["Partners"]["RequireTLS"] is True and
         s["Partners"]["SmartHosts"] == ["relay.partner.example.net:2525"] and
         s.get("Internet", {}).get("AddressSpaces") == ["*"], "sendconnector list --json", s)
    expect("sendconnector new with a bad cost exits 2",
           rc_(S, "sendconnector", "new", "X", "--address-spaces", "*", "--cost", "0"), 2)
    expect("sendconnector new with a bad smart host exits 2",
           rc_(S, "sendconnector", "new", "X", "--address-spaces", "*", "--smart-hosts",
               "host:99999"), 2, err="--smart-hosts")
    expect("sendconnector new with a taken name exits 1",
           rc_(S, "sendconnector", "new", "Internet", "--address-spaces", "*"), 1,
           err="already exists")
    expect("sendconnector remove", rc_(S, "sendconnector", "remove", "Partners"), 0)
    expect("sendconnector set on a missing one exits 1",
           rc_(S, "sendconnector", "set", "Partners", "--cost", "3"), 1, err="not found")


# ---------------------------------------------------------------------------- --ldif parity
def parity_commands(S):
    p = S.smtp_port
    contractors = "cn=Contractors,ou=Groups," + S.base_dn
    return [
        ["connector", "remove", "CRM Application"],
        ["connector", "new", "CRM Application", "--usage", "Custom", "--bindings",
         "0.0.0.0:%d" % p, "--remote-ip-ranges", CRM_RANGES, "--comment",
         " leading space, caf\u00e9 and a long text " + "x" * 90],
        ["connector", "set", "CRM Application", "--permission-groups", "ExchangeServers"],
        ["connector", "set", "CRM Application", "--auth-mechanism", "Tls,ExternalAuthoritative",
         "--max-message-size", "unlimited", "--banner", "220 crm relay"],
        ["permission", "add", "Client node1", "--user", contractors, "--extended-rights",
         AAR, "--deny"],
        ["permission", "add", "Default node1", "--user", ANON, "--extended-rights", AAR],
        ["permission", "remove", "Default node1", "--user", ANON, "--extended-rights",
         "ms-Exch-SMTP-Accept-Any-Sender"],
        ["connector", "new", "Scanners", "--usage", "Internet", "--bindings", "0.0.0.0:2997",
         "--remote-ip-ranges", "10.20.0.0/16"],
        ["connector", "set", "Scanners", "--enabled=false", "--banner", ""],
        ["domain", "new", "contoso", "--domain-name", "contoso.com", "--type",
         "Authoritative"],
        ["domain", "set", "contoso", "--default"],
        ["sendconnector", "new", "Partners", "--address-spaces", "partner.example.net",
         "--smart-hosts", "[2001:db8::1]:25", "--cost", "3"],
        ["sendconnector", "set", "Partners", "--comment", "via the partner's relay"],
        ["domain", "remove", "partner.example.net"],
        ["connector", "remove", "Client node1"],
    ]


def test_parity():
    # The SMTP ports are data in the example's bindings: give both fixtures the same ones.
    smtp, sub = free_port(), None
    sub = free_port(exclude=(smtp,))
    with Slapd(smtp_port=smtp, submission_port=sub) as A, \
            Slapd(smtp_port=smtp, submission_port=sub) as B:
        T.eq(dump(A).keys(), dump(B).keys(), "parity: two fresh fixtures start alike")
        for cmd in parity_commands(A):
            ra = rc_(A, *cmd)
            rb = rc_(B, *(cmd + ["--ldif"]), admin=False)   # --ldif needs only read access
            ok = ra[0] == 0 and rb[0] == 0 and rb[1].startswith("dn")
            rm = B.ldapmodify(rb[1]) if ok else (1, "", "not run")
            T.ok(ok and rm[0] == 0, "parity: %s" % " ".join(cmd[:3]),
                 "direct %r\nldif %r\nldapmodify %r" % (ra, rb, rm))
        da, db = dump(A), dump(B)
        diff = {k: {a: (da.get(k, {}).get(a), db.get(k, {}).get(a)) for a in set(da.get(k, {})) | set(db.get(k, {})) if da.get(k, {}).get(a) != db.get(k, {}).get(a)} for k in set(da) | set(db) if da.get(k) != db.get(k)}
        T.ok(not diff, "parity: direct writes and --ldif | ldapmodify give the same directory",
             json.dumps(diff, indent=1, default=str)[:3000])
        rc, o, e = rc_(A, "connector", "new", "Y", "--usage", "Custom", "--bindings",
                       "0.0.0.0:2996", "--remote-ip-ranges", "10.1.1.1", "--ldif")
        T.ok(rc == 0 and "changetype: add" in o and not A.search(
            A.relay_base, "(cn=Y)", bind="admin"), "--ldif writes nothing itself", o + e)


# ---------------------------------------------------------------------------- audit
BAD = """dn: cn=Open relay,{node}
changetype: add
objectClass: relayReceiveConnector
cn: Open relay
relayBinding: 0.0.0.0:2901
relayRemoteIPRange: 0.0.0.0-255.255.255.255
relayAuthMechanism: Tls
relayAce: allow; NT AUTHORITY\\ANONYMOUS LOGON; ms-Exch-SMTP-Submit, ms-Exch-SMTP-Accept-Any-Recipient

dn: cn=Wide anon,{node}
changetype: add
objectClass: relayReceiveConnector
cn: Wide anon
relayBinding: 0.0.0.0:2902
relayRemoteIPRange: 10.0.0.0/16
relayAuthMechanism: Tls
relayAce: allow; NT AUTHORITY\\ANONYMOUS LOGON; ms-Exch-SMTP-Submit, ms-Exch-SMTP-Accept-Any-Recipient

dn: cn=EA everywhere,{node}
changetype: add
objectClass: relayReceiveConnector
cn: EA everywhere
relayBinding: 0.0.0.0:2903
relayRemoteIPRange: 0.0.0.0/0
relayAuthMechanism: Tls
relayAuthMechanism: ExternalAuthoritative
{es_aces}

dn: cn=Dangling,{node}
changetype: add
objectClass: relayReceiveConnector
cn: Dangling
relayBinding: 0.0.0.0:2904
relayRemoteIPRange: 10.1.1.1
relayAuthMechanism: Tls
relayAce: allow; uid=ghost,ou=People,{base}; ms-Exch-SMTP-Submit

dn: cn=Bad right,{node}
changetype: add
objectClass: relayReceiveConnector
cn: Bad right
relayBinding: 0.0.0.0:2905
relayRemoteIPRange: 10.1.1.2
relayAuthMechanism: Tls
relayAce: allow; Everyone; ms-Exch-SMTP-Frobnicate

dn: cn=Twin A,{node}
changetype: add
objectClass: relayReceiveConnector
cn: Twin A
relayBinding: 0.0.0.0:2906
relayRemoteIPRange: 10.2.2.2
relayAuthMechanism: Tls

dn: cn=Twin B,{node}
changetype: add
objectClass: relayReceiveConnector
cn: Twin B
relayBinding: 0.0.0.0:2906
relayRemoteIPRange: 10.2.2.2
relayAuthMechanism: Tls
"""
BAD_NAMES = ["Open relay", "Wide anon", "EA everywhere", "Dangling", "Bad right", "Twin A",
             "Twin B"]


def test_audit():
    with Slapd() as S:
        rc, o, e = rc_(S, "audit", admin=False)
        T.ok(rc == 0 and "No findings" in o, "audit of the example organisation is clean",
             o + e)
        a = get_json(S, "audit")
        crm = [c for c in a["Connectors"] if c["Name"] == "CRM Application"]
        T.ok(crm and "MS Exchange\\Externally Secured Servers" in crm[0]["Relay"] and
             "MS Exchange\\Externally Secured Servers" in crm[0]["SendAsAnyone"] and
             a["Findings"] == [], "audit --json: who relays on CRM Application", a)
        client = [c for c in a["Connectors"] if c["Name"] == "Client node1"]
        T.ok(client and client[0]["Relay"] == ["NT AUTHORITY\\Authenticated Users"] and
             client[0]["BypassSizeLimit"] == [], "audit: Client node1 relay/bypass lists",
             client)
        # a group ACE expands to its (nested) members
        staff = "cn=Staff,ou=Groups," + S.base_dn
        rc_(S, "permission", "add", "CRM Application", "--user", staff, "--extended-rights",
            "ms-Exch-Bypass-Message-Size-Limit")
        a = get_json(S, "audit")
        crm = [c for c in a["Connectors"] if c["Name"] == "CRM Application"][0]
        T.ok("uid=alice,ou=People," + S.base_dn in crm["BypassSizeLimit"] and
             "uid=bob,ou=People," + S.base_dn in crm["BypassSizeLimit"],
             "audit expands a nested group ACE to alice and bob", crm)
        es = "\n".join("relayAce: " + v for v in S.search(
            S.connector_dn("Default node1"), scope="base", bind="admin")[0].get("relayAce")
            if "Transport" in v or "Secured" in v or "Exchange Servers" in v)
        rc, _, err = S.ldapmodify(BAD.format(node=S.node_dn, base=S.base_dn, es_aces=es))
        T.ok(rc == 0, "the bad directory loads with ldapmodify", err)
        rc, o, e = rc_(S, "audit", admin=False)
        T.ok(rc == 1 and "critical" in o, "audit of the bad directory exits 1", o + e)
        f = get_json_rc(S, "audit")
        def has(sev, name, text):
            dn = S.connector_dn(name).lower()
            return any(x["Severity"] == sev and x["Connector"].lower() == dn and
                       text in x["Message"] for x in f["Findings"])
        checks = [
            ("critical", "Open relay", "open relay: anonymous clients from everywhere"),
            ("high", "Wide anon", "anonymous relay on a wide range (10.0.0.0/16)"),
            ("critical", "EA everywhere", "ExternalAuthoritative from everywhere"),
            ("medium", "Dangling", "ACE names uid=ghost,ou=People," + S.base_dn),
            ("high", "Bad right", "unknown right"),
            ("high", "Bad right", "refused by the loader"),
            ("high", "Twin B", "conflicts with"),
            ("medium", "Twin B", "shadowed by"),
        ]
        for sev, name, text in checks:
            T.ok(has(sev, name, text), "audit finding: %s %s: %s" % (sev, name, text),
                 json.dumps(f["Findings"], indent=1))
        T.ok(not any(x["Connector"].lower() == S.connector_dn("Default node1").lower()
                     for x in f["Findings"]), "audit: no finding on the sound Default node1",
             f["Findings"])
        for name in BAD_NAMES:
            rc_(S, "connector", "remove", name)
        rc, o, e = rc_(S, "audit", admin=False)
        T.ok(rc == 0 and "No findings" in o, "audit is clean again once fixed", o + e)


def boot_variant(S, name, drop=(), extra=""):
    """S's relaynode.conf without the keys in drop, plus extra lines, as name in S's dir."""
    keep = [l for l in open(S.conf) if l.split("=", 1)[0].strip() not in drop]
    path = os.path.join(S.dir, name)
    with open(path, "w") as f:
        f.write("".join(keep) + extra)
    return path


def test_audit_bootstrap():
    """allow_cleartext_directory = yes over a directory link in clear, from the bootstrap files
    audit is given (the directory holds none): a high finding on each BasicAuth connector."""
    with Slapd() as S:
        clear = boot_variant(S, "clear.conf", ("ldap_starttls",),
                             "ldap_starttls = no\nallow_cleartext_directory = yes\n")
        tls_allow = boot_variant(S, "tls-allow.conf", (), "allow_cleartext_directory = yes\n")
        clear_deny = boot_variant(S, "clear-deny.conf", ("ldap_starttls",), "ldap_starttls = no\n")
        ghost = boot_variant(S, "ghost.conf", ("ldap_starttls", "node"),
                             "node = ghost\nldap_starttls = no\nallow_cleartext_directory = yes\n")
        bad = boot_variant(S, "bad.conf", (), "allow_cleartext_directory = maybe\n")
        rc, o, e = rc_(S, "audit", admin=False)
        T.ok(rc == 0 and "Bootstrap files audited: " + S.conf in o,
             "audit names the --config file it read (StartTLS: clean)", o + e)
        for path in (tls_allow, clear_deny):
            rc, o, e = rc_(S, "audit", "--bootstrap", path, admin=False)
            T.ok(rc == 0 and "No findings" in o and path in o,
                 "audit --bootstrap %s: clean" % os.path.basename(path), o + e)
        f = get_json_rc(S, "audit", "--bootstrap", clear)
        hits = {x["Connector"].lower(): x for x in f["Findings"]}
        want = [S.connector_dn(n).lower() for n in ("Default node1", "Client node1")]
        T.ok(all(w in hits and hits[w]["Severity"] == "high" and clear in hits[w]["Message"]
                 and "unencrypted" in hits[w]["Message"] for w in want) and
             S.connector_dn("CRM Application").lower() not in hits and
             f["BootstrapFiles"] == [clear, S.conf],
             "audit --bootstrap clear.conf: high on each BasicAuth connector of node1",
             json.dumps(f, indent=1)[:3000])
        rc, o, e = rc_(S, "audit", "--bootstrap", clear, admin=False)
        T.ok(rc == 1 and "BasicAuth with the directory link in clear" in o,
             "audit --bootstrap clear.conf exits 1 (table)", o + e)
        for how, argv, env in (("--config", ["--config", clear], None),
                               ("$RELAYNODE_CONFIG", [], dict(os.environ, RELAYNODE_CONFIG=clear))):
            rc, o, e = run([RELAYCTL, "audit"] + argv, env=env)
            T.ok(rc == 1 and o.count("BasicAuth with the directory link in clear") == 2 and
                 "Bootstrap files audited: " + clear in o,
                 "audit reads the %s file as a node's bootstrap" % how, o + e)
        rc, o, e = rc_(S, "audit", "--bootstrap", ghost, admin=False)
        T.ok(rc == 1 and ghost in o and "'ghost', which is not in the directory" in o,
             "a file for a node that is not in the directory is a finding", o + e)
        rc, o, e = rc_(S, "audit", "--bootstrap", bad, admin=False)
        T.ok(rc == 2 and bad + ":" in e and "allow_cleartext_directory" in e,
             "an unreadable bootstrap file: exit 2, file:line", o + e)
        rc, o, e = rc_(S, "audit", "--bootstrap", bad + ".missing", admin=False)
        T.ok(rc == 2 and bad + ".missing" in e, "a missing bootstrap file: exit 2", o + e)
        for name in ("Default node1", "Client node1"):
            S.ldapmodify("dn: %s\nchangetype: modify\ndelete: relayAuthMechanism\n"
                         "relayAuthMechanism: BasicAuth\nrelayAuthMechanism: "
                         "BasicAuthRequireTLS\n" % S.connector_dn(name))
        f = get_json_rc(S, "audit", "--bootstrap", clear)
        T.ok([(x["Severity"], x["Connector"].lower()) for x in f["Findings"]] ==
             [("medium", S.node_dn.lower())] and "no BasicAuth connector" in
             f["Findings"][0]["Message"], "no BasicAuth connector: one medium finding on the "
             "node", json.dumps(f["Findings"], indent=1))


def get_json_rc(S, *args):
    rc, o, e = rc_(S, *(list(args) + ["--json"]))
    return json.loads(o)


def main():
    if not os.access(RELAYCTL, os.X_OK):
        T.ok(False, "relayctl binary at %s" % RELAYCTL)
        return T.done()
    with Slapd() as S:
        for fn in (test_help, test_reads, test_article, test_permissions, test_connector_errors,
                   test_domains_sendconnectors):
            T.run(fn.__name__ + " ran to the end", lambda: (fn(S), True)[1])
    T.run("test_parity ran to the end", lambda: (test_parity(), True)[1])
    T.run("test_audit ran to the end", lambda: (test_audit(), True)[1])
    T.run("test_audit_bootstrap ran to the end", lambda: (test_audit_bootstrap(), True)[1])
    return T.done()


if __name__ == "__main__":
    sys.exit(main())
