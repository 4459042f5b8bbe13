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
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import samba_ad as A  # noqa: E402

import ldb  # noqa: E402
from samba.auth import system_session  # noqa: E402
from samba.param import LoadParm  # noqa: E402
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
    """tests/data/ad/NAME with ${KEY} replaced from subst (an unknown ${KEY} is an error)."""
    with open(os.path.join(A.DATA_DIR, name)) as f:
        text = f.read()
    for k, v in subst.items():
        text = text.replace("${%s}" % k, v)
    if "${" in text:
        left = text[text.index("${"):].split("}", 1)[0] + "}"
        sys.exit("%s: no value for %s" % (name, left))
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


def add_users(samdb):
    samdb.newuser(A.SVC_NAME, A.SVC_PASSWORD, description="relaynode service account "
                  "(a normal user: reads the organisation, descriptors and tokenGroups)")
    for name, pw in A.USERS.items():
        samdb.newuser(name, pw, mailaddress="%s@example.com" % name)


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
        add_users(samdb)
    except ldb.LdbError as e:
        samdb.transaction_cancel()
        sys.exit("users: %s" % (e,))
    samdb.transaction_commit()
    t = step("users", t)
    step("total (server %s)" % server, t0)


if __name__ == "__main__":
    main()
