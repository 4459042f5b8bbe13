#!/usr/bin/python3
"""Recipient lookup benchmark (not a test): what the recipient set costs a node with 100,000
mail users (issue 14; docs/permission-model.md §6). Nothing here asserts a time or a size.

  tests/bench/recipients_bench.py [BUILD_DIR] [--users 100000] [--aliases 10000] [--runs 3]

A throwaway slapd (deploy/slapd/fixture.sh) gets the example organisation plus USERS
inetOrgPerson + relayMailUser entries under ou=People (mail userN@example.com; the first
ALIASES also a relayMailAlias). It prints:
  - load: `relaynode --check` wall time with example.com's lookup on (the loader reads the
    recipient set) and off (relayAddressBookEnabled FALSE: the set is not read), median of
    RUNS each; the difference is the set's load time;
  - state memory: the set's heap bytes as the node counts them (rcptset_bytes, printed by
    --check), and the running node's VmRSS with the lookup on and off;
  - RCPT: one session's RCPT round trips to known and unknown users (median), to show the
    answer needs no directory round trip.
"""
import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402

DOMAIN_DN = "cn=example.com,cn=Accepted Domains,ou=Relay,dc=example,dc=com"


def users_ldif(path, n, aliases):
    with open(path, "w") as f:
        for i in range(n):
            f.write("dn: uid=user%d,ou=People,dc=example,dc=com\nobjectClass: inetOrgPerson\n"
                    "objectClass: relayMailUser\nuid: user%d\ncn: User %d\nsn: %d\n"
                    "mail: user%d@example.com\n" % (i, i, i, i, i))
            if i < aliases:
                f.write("relayMailAlias: alias.user%d@example.com\n" % i)
            f.write("\n")


def check_run(binary, conf):
    """(wall seconds, stdout, CPU seconds of relaynode itself) of one relaynode --check."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run([binary, "-c", conf, "--check"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=600)
    dt = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    if p.returncode not in (0, 1):
        sys.exit("relaynode --check failed: %s" % p.stderr.decode(errors="replace"))
    return dt, p.stdout.decode(errors="replace"), cpu


def set_lookup(slapd, on):
    rc, out, err = slapd.ldapmodify("dn: %s\nchangetype: modify\nreplace: "
                                    "relayAddressBookEnabled\nrelayAddressBookEnabled: %s\n-\n"
                                    % (DOMAIN_DN, "TRUE" if on else "FALSE"))
    if rc != 0:
        sys.exit("ldapmodify failed: %s" % err)


def rcpt_times(port, addrs):
    out = []
    with rnnode.Client("127.0.0.1", port, source="127.0.0.1") as cl:
        cl.ehlo()
        cl.cmd("MAIL FROM:<bench@outside.example>")
        for a in addrs:
            t0 = time.perf_counter()
            r = cl.cmd("RCPT TO:<%s>" % a)
            out.append((time.perf_counter() - t0, r[:3]))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default=os.path.join(ROOT, "build"))
    ap.add_argument("--users", type=int, default=100000)
    ap.add_argument("--aliases", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    binary = os.path.join(os.path.abspath(a.build), "relaynode")
    if not os.access(binary, os.X_OK):
        sys.exit("no relaynode under %s" % a.build)
    tmp = tempfile.mkdtemp(prefix="rn-rcptbench-")
    ldif = os.path.join(tmp, "users.ldif")
    users_ldif(ldif, a.users, a.aliases)
    print("# %d users (%d with an alias), build %s" % (a.users, a.aliases, a.build))
    # slapadd of 100,000 entries takes minutes on a small machine: more than the fixture
    # helper's default 120 s for a test's throwaway directory.
    plain_run = rntest.run
    rntest.run = lambda cmd, **kw: plain_run(cmd, **dict(kw, timeout=kw.get("timeout", 1800)))
    t0 = time.monotonic()
    slapd = rntest.Slapd(ldifs=[ldif])
    slapd.start()
    print("slapd with the users: %.1f s (slapadd)" % (time.monotonic() - t0))
    try:
        # No tarpit on the client's connector: the unknown recipients' 550s would each
        # wait relayTarpitInterval (5 s), and this measures the lookup, not the tarpit.
        rc, out, err = slapd.ldapmodify("dn: %s\nchangetype: modify\nreplace: "
                                        "relayTarpitInterval\nrelayTarpitInterval: 0\n-\n"
                                        % slapd.connector_dn("Default node1"))
        if rc != 0:
            sys.exit("ldapmodify failed: %s" % err)
        res = {}
        for on in (True, False):
            set_lookup(slapd, on)
            runs = [check_run(binary, slapd.conf) for _ in range(a.runs)]
            res[on] = runs
            m = re.search(r"recipients: (\d+) addresses, (\d+) bytes", runs[-1][1])
            print("--check lookup %-3s: median %.3f s (runs %s; relaynode CPU %.3f s)%s" % (
                "on" if on else "off", statistics.median(r[0] for r in runs),
                ", ".join("%.3f" % r[0] for r in runs), statistics.median(r[2] for r in runs),
                "; set %s addresses, %.1f MiB" % (m.group(1), int(m.group(2)) / 1048576)
                if m else ""))
        load = statistics.median(r[0] for r in res[True]) - \
            statistics.median(r[0] for r in res[False])
        print("recipient set load time (on - off): %.3f s" % load)
        rss = {}
        for on in (False, True):
            set_lookup(slapd, on)
            node = rnnode.Node(slapd.conf, ports=[slapd.smtp_port])
            node.start()
            try:
                probe = "user%d@example.com" % (a.users - 1)
                rnnode.eventually(lambda: rcpt_times(slapd.smtp_port, [probe])[0][1] == "250",
                                  timeout=60)
                time.sleep(1)
                rss[on] = node.rss_kib()
                if on:
                    # Two sessions: MaxRecipientsPerMessage (200) counts accepted ones.
                    t = rcpt_times(slapd.smtp_port, ["user%d@example.com" % (i * 7919 % a.users)
                                                     for i in range(200)])
                    known = [x[0] for x in t if x[1] == "250"]
                    t = rcpt_times(slapd.smtp_port, ["nobody%d@example.com" % i
                                                     for i in range(200)])
                    unknown = [x[0] for x in t if x[1] == "550"]
                    print("RCPT round trip, one session: known %d x 250 median %.0f us, "
                          "unknown %d x 550 median %.0f us" % (
                              len(known), 1e6 * statistics.median(known or [0]),
                              len(unknown), 1e6 * statistics.median(unknown or [0])))
            finally:
                node.stop()
        print("node VmRSS: lookup off %.1f MiB, on %.1f MiB (+%.1f MiB)" % (
            rss[False] / 1024, rss[True] / 1024, (rss[True] - rss[False]) / 1024))
    finally:
        slapd.stop()
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
