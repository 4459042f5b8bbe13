#!/usr/bin/python3
"""Incremental reload benchmark (not a test; issue 17): what one directory change costs a node
when the watcher's entries are applied to its store, against a full reload, in a directory
of 10,000 receive connectors. Nothing here asserts a time.

  tests/bench/incremental_bench.py [BUILD_DIR] [--connectors 10000] [--per-node 100]
                                   [--changes 100] [--change range|ace]
                                   [--modes incremental,full]

A throwaway slapd (deploy/slapd/fixture.sh) gets the example organisation plus CONNECTORS
receive connectors spread over CONNECTORS / PER_NODE relayNode entries of the site (node1,
the node under test, holds PER_NODE of them, all on its SMTP port, each with a remote range
of its own up to 20,000 per node). One node runs with the incremental path (the default),
then one with RELAYNODE_INCREMENTAL=off; each gets CHANGES ldapmodify changes to node1's
connectors (a remote range replaced by one no connector has, or with --change ace the
relayAce replaced: bindings and ranges stay) and the same number to other
nodes' connectors (all to node1's when --per-node is --connectors: node1 then holds them
all, as in dirscale_bench.py). It prints, per mode, the node's own load time (the `ms=` of
its `config incremental-load` / `config full-load` lines) and the time from the
ldapmodify's return to that line in the log, p50 and p99.
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402

SITE = "cn=Default-Site,cn=Sites,ou=Relay,dc=example,dc=com"
ACES = ("allow; NT AUTHORITY\\Authenticated Users; ms-Exch-SMTP-Submit",
        "allow; NT AUTHORITY\\Authenticated Users; ms-Exch-SMTP-Submit, "
        "ms-Exch-SMTP-Accept-Any-Recipient")


def node_name(k):
    return "node1" if k == 0 else "bench%d" % k


def connector_dn(k, i):
    return "cn=bench-%d-%d,cn=%s,%s" % (k, i, node_name(k), SITE)


def directory_ldif(path, connectors, per_node):
    nodes = max(1, connectors // per_node)
    with open(path, "w") as f:
        for k in range(1, nodes):
            f.write("dn: cn=%s,%s\nobjectClass: relayNode\ncn: %s\n\n"
                    % (node_name(k), SITE, node_name(k)))
        for k in range(nodes):
            for i in range(per_node):
                f.write("dn: %s\nobjectClass: relayReceiveConnector\ncn: bench-%d-%d\n"
                        "relayBinding: 0.0.0.0:@SMTP_PORT@\nrelayRemoteIPRange: 10.%d.%d.0/24\n"
                        "relayAce: allow; NT AUTHORITY\\Authenticated Users; "
                        "ms-Exch-SMTP-Submit\n\n"
                        % (connector_dn(k, i), k, i, 100 + (k + i // 250) % 80, i % 250))
    return nodes


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))] if v else float("nan")


def last_load(log, start):
    """(kind, ms) of the first load line after offset start, or None."""
    for line in log[start:].splitlines():
        for kind in ("config incremental-load", "config full-load"):
            # an incremental load of no change is news of one already applied
            if kind in line and not (kind.endswith("incremental-load") and
                                     "changes=0 " in line):
                ms = float(line.split(" ms=")[1].split()[0])
                return kind.split()[1], ms
    return None


def run_mode(slapd, binary, incremental, changes, nodes, per_node, seq, what):
    env = {} if incremental else {"RELAYNODE_INCREMENTAL": "off"}
    node = rnnode.Node(slapd.conf, ports=[slapd.smtp_port], binary=binary, env=env)
    node.start(timeout=120)
    try:
        if not rnnode.eventually(lambda: "cluster watcher-up mode=persist" in node.log(), 60):
            sys.exit("the watcher did not start: %s" % node.log_tail(10))
        time.sleep(2)                      # the start's own loads settle
        own, e2e, kinds = [], [], {}
        for c in range(changes):
            k = 0 if c % 2 == 0 or nodes == 1 else 1 + c % (nodes - 1)
            dn = connector_dn(k, c % per_node)
            seq[0] += 1
            # a range no connector of the directory has: no change makes a conflict
            ldif = ("dn: %s\nchangetype: modify\nreplace: relayRemoteIPRange\n"
                    "relayRemoteIPRange: 10.%d.%d.0/24\n-\n"
                    % (dn, 180 + seq[0] // 250 % 70, seq[0] % 250))
            if what == "ace":
                ldif = ("dn: %s\nchangetype: modify\nreplace: relayAce\nrelayAce: %s\n-\n"
                        % (dn, ACES[seq[0] % 2]))
            start = len(node.log())
            rc, out, err = slapd.ldapmodify(ldif)
            t0 = time.monotonic()
            if rc != 0:
                sys.exit("ldapmodify: %s" % err)
            got = None
            while time.monotonic() - t0 < 30:
                got = last_load(node.log(), start)
                if got:
                    break
                time.sleep(0.0005)
            if not got:
                print("  change %d: no load seen" % c)
                continue
            e2e.append((time.monotonic() - t0) * 1e3)
            own.append(got[1])
            kinds[got[0]] = kinds.get(got[0], 0) + 1
        return own, e2e, kinds, node.rss_kib()
    finally:
        node.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default=os.path.join(ROOT, "build"))
    ap.add_argument("--connectors", type=int, default=10000)
    ap.add_argument("--per-node", type=int, default=100)
    ap.add_argument("--changes", type=int, default=100)
    ap.add_argument("--change", choices=("range", "ace"), default="range")
    ap.add_argument("--modes", default="incremental,full", help="incremental,full or one")
    a = ap.parse_args()
    binary = os.path.join(os.path.abspath(a.build), "relaynode")
    tmp = tempfile.mkdtemp(prefix="rn-incr-bench-")
    ldif = os.path.join(tmp, "connectors.ldif")
    nodes = directory_ldif(ldif, a.connectors, a.per_node)
    t0 = time.monotonic()
    slapd = rntest.Slapd(ldifs=[ldif])
    slapd.start()
    print("directory: %d receive connectors over %d nodes (%d on node1), slapd start %.1f s"
          % (a.connectors, nodes, a.per_node, time.monotonic() - t0))
    seq = [0]
    try:
        for incremental in [m == "incremental" for m in a.modes.split(",")]:
            own, e2e, kinds, rss = run_mode(slapd, binary, incremental, a.changes, nodes,
                                            a.per_node, seq, a.change)
            print("%-12s %3d changes (%s): node load p50 %7.2f ms p99 %7.2f ms | "
                  "ldapmodify -> applied p50 %7.2f ms p99 %7.2f ms | RSS %d KiB"
                  % ("incremental" if incremental else "full reload", len(own),
                     ", ".join("%s %d" % kv for kv in sorted(kinds.items())),
                     pct(own, 50), pct(own, 99), pct(e2e, 50), pct(e2e, 99), rss or 0))
            if own:
                print("             mean %.2f ms" % statistics.mean(own))
    finally:
        slapd.stop()
        shutil.rmtree(tmp, ignore_errors=True)   # its LDIF: megabytes, often in /dev/shm
    return 0


if __name__ == "__main__":
    sys.exit(main())
