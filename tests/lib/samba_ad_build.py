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
    samdb = open_samdb(work)
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
