#!/usr/bin/env python3
"""The Samba AD DC fixture (tests/lib/samba_ad.py) against a real samba in a private netns.

Checks the Exchange schema subset (a connector with a value of the wrong syntax, a second
value of a single-valued attribute or no bindings is refused), the seed organisation (the
three connectors on EX1 with their attributes, the accepted domains, the send connector, the
controlAccessRights), what the node's service account can read (a connector's DACL through
the SD flags control, with Exchange's explicit object ACEs; users' tokenGroups with nested
groups), secure-by-default binds, dsacl_set then read_sd, and that stop leaves no samba.
Prints the template build time and the test's own time (the target: < 15 s when cached).
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import samba_ad  # noqa: E402

samba_ad.enter_netns()

from rntest import ROOT, Tap, pid_alive, run  # noqa: E402

EXSID = "S-1-9-1419165041-1139599005-3936102811-1022490595-"
ANON, AUTH = "S-1-5-7", "S-1-5-11"
CLASS_GUID = "44601346-776a-46e7-b4a4-2472e1c66806"    # msExchSmtpReceiveConnector


def rights():
    """{cn: rightsGuid} and {cn: bit} from directory/rights.c and rights.h."""
    with open(os.path.join(ROOT, "directory", "rights.c")) as f:
        rows = re.findall(r'\{(R_\w+),\s*"([^"]+)",\s*"([0-9a-f-]{36})"', f.read())
    with open(os.path.join(ROOT, "directory", "rights.h")) as f:
        bits = dict(re.findall(r'(R_\w+)\s*=\s*(0x[0-9A-Fa-f]+)', f.read()))
    return {cn: g for _, cn, g in rows}, {cn: int(bits[s], 16) for s, cn, _ in rows}


GUIDS, BITS = rights()
BY_GUID = {g: cn for cn, g in GUIDS.items()}


def explicit_rights(aces, sid, atype=0x05):
    """Mask of the rights granted (0x05) or denied (0x06) to sid by explicit object ACEs."""
    mask = 0
    for t, flags, m, obj, trustee in aces:
        if t == atype and not flags & 0x10 and trustee == sid and obj in BY_GUID:
            if m != 0x100 or flags != 0x02:
                raise AssertionError("ACE for %s: mask %#x flags %#x" % (obj, m, flags))
            mask |= BITS[BY_GUID[obj]]
    return mask


def check_schema(dc, t):
    base = dc.connector_dn("EX1", "Bad %d" % os.getpid())

    def add(lines):
        return dc.ldapmodify("dn: %s\nchangetype: add\nobjectClass: msExchSmtpReceiveConnector\n"
                             "%s\n" % (base, "\n".join(lines)))
    good = ["msExchSmtpReceiveBindings: 0.0.0.0:2525",
            "msExchSmtpReceiveRemoteIPRanges: 10.0.0.1"]
    rc, out, err = add(good + ["msExchSMTPReceiveInboundSecurityFlag: Tls"])
    t.ok(rc != 0 and "nvalid" in err + out, "schema: an integer attribute refuses 'Tls'",
         "rc %d: %s%s" % (rc, out, err))
    rc, out, err = add(good + ["msExchSmtpReceiveEnabled: TRUE", "msExchSmtpReceiveEnabled: FALSE"])
    t.ok(rc != 0, "schema: a second value of single-valued msExchSmtpReceiveEnabled is refused",
         "rc %d: %s%s" % (rc, out, err))
    rc, out, err = add(["msExchSmtpReceiveRemoteIPRanges: 10.0.0.1"])
    t.ok(rc != 0, "schema: a connector without msExchSmtpReceiveBindings (must) is refused",
         "rc %d: %s%s" % (rc, out, err))
    rc, out, err = add(good + ["msExchSMTPReceiveInboundSecurityFlag: 1"])
    t.ok(rc == 0, "schema: the same connector with valid values is accepted", out + err)
    rc2, _, err2 = dc.ldapmodify("dn: %s\nchangetype: delete\n" % base)
    t.ok(rc == 0 and rc2 == 0, "schema: and deleted again", err2)
    e = dc.search(dc.schema_dn, "(lDAPDisplayName=msExchSmtpReceiveConnector)",
                  ["schemaIDGUID"], scope="one")
    t.eq(samba_ad.guid_str(e[0].get("schemaIDGUID")[0]), CLASS_GUID,
         "schema: msExchSmtpReceiveConnector has Exchange's schemaIDGUID")


CONNECTORS = {
    "Default EX1": ({"0.0.0.0:25", "[::]:25"}, {"0.0.0.0-255.255.255.255",
                    "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}, "29"),
    "Client EX1": ({"0.0.0.0:587"}, {"0.0.0.0-255.255.255.255",
                   "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}, "13"),
    "CRM Application": ({"0.0.0.0:25"}, {"192.168.2.55", "192.168.2.56", "127.0.2.55",
                        "127.0.2.56"}, "33"),
}


def check_org(dc, t):
    attrs = ["cn", "msExchSmtpReceiveEnabled", "msExchSmtpReceiveBindings",
             "msExchSmtpReceiveRemoteIPRanges", "msExchSMTPReceiveInboundSecurityFlag"]
    got = {e.first("cn"): e for e in dc.search(dc.server_dn("EX1"),
                                                "(objectClass=msExchSmtpReceiveConnector)",
                                                attrs)}
    t.eq(sorted(got), sorted(CONNECTORS), "org: the service account finds the 3 connectors on EX1")
    for name, (binds, ranges, auth) in CONNECTORS.items():
        e = got.get(name)
        ok = e is not None and set(e.get("msExchSmtpReceiveBindings")) == binds and \
            set(e.get("msExchSmtpReceiveRemoteIPRanges")) == ranges and \
            e.get("msExchSMTPReceiveInboundSecurityFlag") == [auth] and \
            e.get("msExchSmtpReceiveEnabled") == ["TRUE"] and \
            e.dn == dc.connector_dn("EX1", name)
        t.ok(ok, "org: %s has its DN, bindings, ranges and auth %s" % (name, auth),
             repr(e and (e.dn, e.attrs)))
    doms = {e.first("msExchAcceptedDomainName"): e.first("msExchAcceptedDomainFlags")
            for e in dc.search(dc.org_dn, "(objectClass=msExchAcceptedDomain)",
                               ["msExchAcceptedDomainName", "msExchAcceptedDomainFlags"])}
    t.eq(doms, {"example.com": "0", "internal.example.com": "2", "partner.example.net": "1"},
         "org: accepted domains (Authoritative 0, ExternalRelay 1, InternalRelay 2)")
    dc.set_smart_host("127.0.0.1", 2526)
    e = dc.search(dc.send_connector_dn("Internet"), attrs=["routingList", "msExchSmtpSmartHost",
                                                           "msExchSmtpSendPort"], scope="base")
    t.ok(e and e[0].get("routingList") == ["SMTP:*;1"] and
         e[0].get("msExchSmtpSmartHost") == ["127.0.0.1"] and
         e[0].get("msExchSmtpSendPort") == ["2526"],
         "org: the send connector routes SMTP:*;1 to the smart host set_smart_host set",
         repr(e and e[0].attrs))
    cars = {e.first("cn"): e for e in dc.search(
        "CN=Extended-Rights," + dc.config_dn, "(objectClass=controlAccessRight)",
        ["cn", "rightsGuid", "appliesTo", "validAccesses"], scope="one")}
    bad = [cn for cn, g in GUIDS.items() if cn not in cars or cars[cn].first("rightsGuid") != g
           or (cn != "Send-As" and (cars[cn].get("appliesTo") != [CLASS_GUID]
                                    or cars[cn].get("validAccesses") != ["256"]))]
    t.ok(not bad, "org: the 26 rights of directory/rights.c are controlAccessRights with their "
         "rightsGuid (the 25 Exchange ones apply to the connector class)", repr(bad))


def check_acl(dc, t):
    groups = {g: dc.sid(dc.group_dn(g) if g.startswith("Relay") else
                        "CN=%s,OU=Microsoft Exchange Security Groups,%s" % (g, dc.domain_dn))
              for g in ("Exchange Servers", "ExchangeLegacyInterop", "Relay Deny Outer",
                        "Relay Deny Inner")}
    sd = dc.read_sd(dc.connector_dn("EX1", "Default EX1"))
    t.ok(int.from_bytes(sd[4:8], "little") == 0 and int.from_bytes(sd[16:20], "little") != 0,
         "acl: the service account reads a connector's descriptor with the SD flags control "
         "(DACL only: no owner)", sd[:20].hex())
    aces = samba_ad.dacl_aces(sd)
    want = {(ANON, 0x05): 0x431, (EXSID + "23", 0x05): 0x6FD, (EXSID + "21", 0x05): 0x3FC1EFD,
            (EXSID + "22", 0x05): 0x3FC1EFD, (groups["Exchange Servers"], 0x05): 0x3FC1EFD,
            (groups["ExchangeLegacyInterop"], 0x05): 0x6FD,
            (groups["ExchangeLegacyInterop"], 0x06): 0x1800}
    got = {k: explicit_rights(aces, *k) for k in want}
    t.eq(got, want, "acl: Default EX1 holds Exchange's explicit object ACEs "
         "(OA;CI;CR;<rightsGuid>;;SID) of AnonymousUsers, ExchangeServers, ExchangeLegacyServers")
    first_allow = min(i for i, a in enumerate(aces) if a[0] in (0x00, 0x05))
    denies = [i for i, a in enumerate(aces) if a[0] == 0x06]
    t.ok(denies and all(i < first_allow for i in denies),
         "acl: the explicit deny ACEs (ExchangeLegacyInterop) come first (canonical order)",
         repr(aces[:4]))
    crm = samba_ad.dacl_aces(dc.read_sd(dc.connector_dn("EX1", "CRM Application")))
    t.eq((explicit_rights(crm, ANON), explicit_rights(crm, EXSID + "23")), (0, 0x6FD),
         "acl: CRM Application (Option 1): Externally Secured Servers 0x6FD, nothing for ANONYMOUS")
    aar = GUIDS["ms-Exch-SMTP-Accept-Any-Recipient"]
    dc.dsacl_set(dc.connector_dn("EX1", "CRM Application"), "(OA;CI;CR;%s;;AN)" % aar)
    crm2 = samba_ad.dacl_aces(dc.read_sd(dc.connector_dn("EX1", "CRM Application")))
    t.eq((explicit_rights(crm2, ANON), len(crm2)), (0x4, len(crm) + 1),
         "acl: dsacl_set adds Accept-Any-Recipient for ANONYMOUS LOGON (Option 2); "
         "read_sd shows it")
    bob = set(dc.token_groups(dc.user_dn("bob")))
    alice = set(dc.token_groups(dc.user_dn("alice")))
    deny = {groups["Relay Deny Outer"], groups["Relay Deny Inner"]}
    t.ok(deny <= bob and not deny & alice,
         "acl: the service account reads tokenGroups: bob's hold both nested deny groups, "
         "alice's neither", "bob %r\nalice %r\ndeny %r" % (bob, alice, deny))


def check_binds(dc, t):
    rc1, e1 = dc.bind_ok(dc.user_dn("alice"), dc.users["alice"])
    rc2, e2 = dc.bind_ok(dc.svc_dn, dc.svc_password, starttls=True)
    t.ok(rc1 == 0 and rc2 == 0, "binds: alice over ldaps, the service account over StartTLS "
         "(test CA, names checked)", e1 + e2)
    rc, _, err = run(["ldapsearch", "-x", "-H", dc.starttls_uri, "-D", dc.svc_dn, "-w",
                      dc.svc_password, "-s", "base", "-b", ""], env=dc._env())
    t.ok(rc == 8, "binds: a cleartext simple bind is refused (strongerAuthRequired, 8)",
         "rc %d: %s" % (rc, err))
    rc, err = dc.bind_ok(dc.user_dn("alice"), "wrong")
    t.ok(rc == 49, "binds: a wrong password is invalidCredentials (49)", "rc %d: %s" % (rc, err))


def samba_pids(directory):
    """Pids whose command line names directory (samba started by this test)."""
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open("/proc/%s/cmdline" % p, "rb") as f:
                    if directory.encode() in f.read():
                        out.append(int(p))
            except OSError:
                pass
    return out


def main():
    t = Tap()
    t0 = time.monotonic()
    dc = samba_ad.SambaAD(keep=True)
    try:
        dc.start()
    except Exception as e:
        t.ok(False, "samba DC starts from the template", str(e))
        dc.stop()
        return t.done()
    t.diag("template build %.1f s (0 = cached), start %.1f s"
           % (dc.template_seconds, time.monotonic() - t0 - dc.template_seconds))
    t.ok(dc.running(), "samba DC starts from the template in the test's network namespace")
    for name, fn in (("schema", check_schema), ("org", check_org), ("acl", check_acl),
                     ("binds", check_binds)):
        try:
            fn(dc, t)
        except Exception as e:
            t.ok(False, "%s checks ran" % name, "%s: %s" % (type(e).__name__, e))
    pid, directory = dc.pid, dc.dir
    dc.stop()
    t.ok(not pid_alive(pid) and not samba_pids(directory),
         "stop ends samba by pid and leaves no samba process", repr(samba_pids(directory)))
    run(["rm", "-rf", directory])
    t.diag("test time %.1f s (template build %.1f s)" % (time.monotonic() - t0,
                                                         dc.template_seconds))
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
