#!/usr/bin/python3
"""Build the Samba AD template for tests/lib/samba_ad.py (run with the Debian python3).

    samba_ad_build.py WORKDIR SERVER

1. `samba-tool domain provision` into WORKDIR (realm RN.TEST, no DNS backend, schema updates
   allowed);
2. offline, through Samba's own ldb modules (SamDB with the system session): the Exchange
   schema subset (tests/data/ad/exchange-schema.ldif) and a schemaUpdateNow;
3. the users: the node's service account relaynode-svc, alice, bob, and the groups;
4. the organisation (tests/data/ad/org.ldif, templated with SERVER and the SIDs).
Prints one line per step with its time. Any error exits non-zero.
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import samba_ad as A  # noqa: E402

import ldb  # noqa: E402
from samba import dsdb  # noqa: E402
from samba.auth import system_session  # noqa: E402
from samba.param import LoadParm  # noqa: E402
from samba.dcerpc import misc, security  # noqa: E402
from samba.ndr import ndr_unpack  # noqa: E402
from samba.samdb import SamDB  # noqa: E402


def step(name, t0):
    print("%-28s %.1fs" % (name, time.monotonic() - t0), flush=True)
    return time.monotonic()


def provision(work):
    rc, out, err = A.run([
        "samba-tool", "domain", "provision", "--targetdir=" + work, "--realm=" + A.REALM,
        "--domain=" + A.NETBIOS, "--server-role=dc", "--dns-backend=NONE",
        "--adminpass=" + A.ADMIN_PASSWORD, "--host-name=dc1",
        "--option=dsdb:schema update allowed=true"], timeout=240)
    if rc != 0:
        sys.exit("provision failed (rc %d):\n%s%s" % (rc, out[-3000:], err[-3000:]))


def open_samdb(work):
    lp = LoadParm()
    lp.load(os.path.join(work, "etc", "smb.conf"))
    return SamDB(url=os.path.join(work, "private", "sam.ldb"), session_info=system_session(),
                 lp=lp)


def read_data(name, **subst):
    """tests/data/ad/NAME without its comment lines, ${KEY} replaced from subst; a ${KEY}
    left (other than the ${SD ...} ones load_org expands) is an error."""
    with open(os.path.join(A.DATA_DIR, name)) as f:
        text = "".join(line for line in f if not line.startswith("#"))
    for k, v in subst.items():
        text = text.replace("${%s}" % k, v)
    left = re.search(r"\$\{(?!SD )[^}]*\}", text)
    if left:
        sys.exit("%s: no value for %s" % (name, left.group(0)))
    return text


def load_schema(work):
    """The Exchange subset: the attributes in one transaction, then (the schema reloaded
    by schemaUpdateNow and a fresh connection) the classes, which name the attributes, in a
    second. Every class's superclass and possible superiors are base classes, so the
    classes never name each other. Returns the SamDB opened after the last reload."""
    text = read_data("exchange-schema.ldif", SCHEMA_DN=A.SCHEMA_DN)
    entries = [e for e in text.split("\n\n") if "\ndn:" in "\n" + e]
    batches = [[e for e in entries if "objectClass: %s" % kind in e]
               for kind in ("attributeSchema", "classSchema")]
    update = "dn:\nchangetype: modify\nadd: schemaUpdateNow\nschemaUpdateNow: 1\n"
    for batch in batches:
        samdb = open_samdb(work)
        samdb.transaction_start()
        try:
            samdb.add_ldif("\n\n".join(batch))
        except BaseException:
            samdb.transaction_cancel()
            raise
        samdb.transaction_commit()
        samdb.modify_ldif(update)
    return open_samdb(work)


EXSID = "S-1-9-1419165041-1139599005-3936102811-1022490595-"   # directory/rights.c
SD_OWNER = "O:DAG:DA"
SD_DEFAULT = ("(A;;RPWPCRCCDCLCLORCWOWDSDDTSW;;;DA)(A;;RPWPCRCCDCLCLORCWOWDSDDTSW;;;SY)"
              "(A;;RPLCLORC;;;AU)")
FULL_SERVER = 0x3FC1EFD                                           # docs/permission-model.md §1.2
# Permission group -> [(allow|deny, trustee SID or per-forest group key, rights mask)].
GROUPS = {
    "AnonymousUsers": [("allow", "S-1-5-7", 0x431)],
    "ExchangeUsers": [("allow", "S-1-5-11", 0x445)],
    "ExchangeServers": [("allow", EXSID + "23", 0x6FD), ("allow", EXSID + "21", FULL_SERVER),
                        ("allow", EXSID + "22", FULL_SERVER),
                        ("allow", "Exchange Servers", FULL_SERVER)],
    "ExchangeLegacyServers": [("deny", "ExchangeLegacyInterop", 0x1800),
                              ("allow", "ExchangeLegacyInterop", 0x6FD)],
    "Partners": [("allow", EXSID + "10", 0x401)],
}
SECURITY_OU = "OU=Microsoft Exchange Security Groups," + A.DOMAIN_DN
EXCHANGE_GROUPS = ("Exchange Servers", "ExchangeLegacyInterop")
NESTED = (("Relay Deny Outer", "Relay Deny Inner"), ("Relay Deny Inner", "bob"))


def rights_table():
    """[(cn, rightsGuid, bit)] for the 26 rights, read from directory/rights.c and .h."""
    with open(os.path.join(A.ROOT, "directory", "rights.c")) as f:
        rows = re.findall(r'\{(R_\w+),\s*"([^"]+)",\s*"([0-9a-f-]{36})"', f.read())
    with open(os.path.join(A.ROOT, "directory", "rights.h")) as f:
        bits = dict(re.findall(r'(R_\w+)\s*=\s*(0x[0-9A-Fa-f]+)', f.read()))
    table = [(cn, guid, int(bits[sym], 16)) for sym, cn, guid in rows]
    if len(table) != 26:
        sys.exit("rights.c: %d rights parsed, 26 expected" % len(table))
    return table


def add_users(samdb):
    """The service account, alice and bob, the Exchange security groups and the nested
    deny groups. Returns {group name: SID string}."""
    samdb.newuser(A.SVC_NAME, A.SVC_PASSWORD, description="relaynode service account "
                  "(a normal user: reads the organisation, descriptors and tokenGroups)")
    for name, pw in A.USERS.items():
        samdb.newuser(name, pw, mailaddress="%s@example.com" % name)
    samdb.create_ou(SECURITY_OU)
    for g in EXCHANGE_GROUPS:
        samdb.newgroup(g, groupou="OU=Microsoft Exchange Security Groups",
                       grouptype=dsdb.GTYPE_SECURITY_UNIVERSAL_GROUP)
    samdb.newgroup("Relay Deny Outer")
    samdb.newgroup("Relay Deny Inner")
    for group, member in NESTED:
        samdb.add_remove_group_members(group, [member], add_members_operation=True)
    sids = {}
    for g in EXCHANGE_GROUPS + ("Relay Deny Outer", "Relay Deny Inner"):
        res = samdb.search(A.DOMAIN_DN, expression="(&(objectClass=group)(cn=%s))" % g,
                           attrs=["objectSid"])
        sids[g] = str(ndr_unpack(security.dom_sid, res[0]["objectSid"][0]))
    return sids


def connector_sddl(groups, rights, sids):
    """The SDDL of a connector with these permission groups: the class default DACL plus
    one explicit object ACE per (trustee, right), deny ACEs first (canonical order)."""
    deny, allow = [], []
    for g in groups:
        for kind, trustee, mask in GROUPS[g]:
            sid = sids.get(trustee, trustee)
            for cn, guid, bit in rights:
                if mask & bit:
                    (deny if kind == "deny" else allow).append(
                        "(%s;CI;CR;%s;;%s)" % ("OD" if kind == "deny" else "OA", guid, sid))
    return SD_OWNER + "D:" + "".join(deny) + SD_DEFAULT + "".join(allow)


def rights_ldif(rights, class_guid):
    """One controlAccessRight per Exchange right; Send-As is AD's own and already there."""
    out = []
    for cn, guid, _ in rights:
        if cn == "Send-As":
            continue
        out.append("dn: CN=%s,CN=Extended-Rights,%s\nobjectClass: controlAccessRight\n"
                   "cn: %s\ndisplayName: %s\nrightsGuid: %s\nvalidAccesses: 256\n"
                   "appliesTo: %s\n" % (cn, A.CONFIG_DN, cn, cn, guid, class_guid))
    return "\n".join(out)


def load_org(samdb, server, sids):
    rights = rights_table()
    res = samdb.search(A.SCHEMA_DN, expression="(lDAPDisplayName=msExchSmtpReceiveConnector)",
                       attrs=["schemaIDGUID"])
    class_guid = str(ndr_unpack(misc.GUID, res[0]["schemaIDGUID"][0]))
    text = read_data("org.ldif", CONFIG_DN=A.CONFIG_DN, DOMAIN_DN=A.DOMAIN_DN, SERVER=server,
                     RIGHTS=rights_ldif(rights, class_guid))
    text = re.sub(r"\$\{SD ([^}]*)\}", lambda m: connector_sddl(m.group(1).split(), rights,
                                                               sids), text)
    if "${" in text:
        sys.exit("org.ldif: unknown placeholder %s" % text[text.index("${"):][:40])
    samdb.add_ldif(text)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: samba_ad_build.py WORKDIR SERVER")
    work, server = sys.argv[1], sys.argv[2]
    t = t0 = time.monotonic()
    provision(work)
    t = step("provision", t)
    try:
        samdb = load_schema(work)
    except ldb.LdbError as e:
        sys.exit("schema: %s" % (e,))
    t = step("schema", t)
    samdb.transaction_start()
    try:
        sids = add_users(samdb)
        t = step("users and groups", t)
        load_org(samdb, server, sids)
    except ldb.LdbError as e:
        samdb.transaction_cancel()
        sys.exit("users/organisation: %s" % (e,))
    samdb.transaction_commit()
    t = step("organisation", t)
    step("total (server %s)" % server, t0)


if __name__ == "__main__":
    main()
