#!/usr/bin/env python3
"""Capture the test descriptors of tests/data/sd/ from the Samba AD fixture.

Starts the fixture DC (tests/lib/samba_ad.py) in a private network namespace, as the
integration tests do, reads the nTSecurityDescriptor of the seed organisation's three
connectors with the SD flags control (DACL only) as the service account, then adds one
allow and one deny object ACE to "CRM Application" with `samba-tool dsacl set` and reads
it again. Writes the .bin files and sids.txt (the per-provision SIDs the unit test maps:
the Exchange groups, the nested deny groups, and bob's objectSid and tokenGroups).
    /usr/bin/python3 tests/data/sd/capture.py [OUTDIR]   (default: this directory)
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "lib"))
import samba_ad  # noqa: E402

samba_ad.enter_netns()


def right_guid(cn):
    """cn's rightsGuid, from directory/rights.c (the fixture loads the same table)."""
    with open(os.path.join(HERE, "..", "..", "..", "directory", "rights.c")) as f:
        for name, guid in re.findall(r'\{R_\w+,\s*"([^"]+)",\s*"([0-9a-f-]{36})"', f.read()):
            if name == cn:
                return guid
    raise SystemExit("right %s not in directory/rights.c" % cn)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else HERE
    dc = samba_ad.SambaAD()
    dc.start()
    try:
        files = {"default-ex1.bin": "Default EX1", "client-ex1.bin": "Client EX1",
                 "crm-application.bin": "CRM Application"}
        for fn, cn in files.items():
            with open(os.path.join(out, fn), "wb") as f:
                f.write(dc.read_sd(dc.connector_dn("EX1", cn)))
        sids = {g: dc.sid("CN=%s,OU=Microsoft Exchange Security Groups,%s" % (g, dc.domain_dn))
                for g in ("Exchange Servers", "ExchangeLegacyInterop")}
        for g in ("Relay Deny Outer", "Relay Deny Inner"):
            sids[g] = dc.sid(dc.group_dn(g))
        sids["bob"] = dc.sid(dc.user_dn("bob"))
        crm = dc.connector_dn("EX1", "CRM Application")
        dc.dsacl_set(crm, "(OA;CI;CR;%s;;AN)" % right_guid("ms-Exch-SMTP-Accept-Any-Recipient"))
        dc.dsacl_set(crm, "(OD;CI;CR;%s;;%s)" % (right_guid("ms-Exch-SMTP-Submit"),
                                                sids["Relay Deny Outer"]))
        with open(os.path.join(out, "crm-application-edited.bin"), "wb") as f:
            f.write(dc.read_sd(crm))
        with open(os.path.join(out, "sids.txt"), "w") as f:
            for k, v in sids.items():
                f.write("%s\t%s\n" % (k, v))
            for g in dc.token_groups(dc.user_dn("bob")):
                f.write("bob-tokenGroups\t%s\n" % g)
    finally:
        dc.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
