#!/usr/bin/python3
"""Cluster convergence benchmark (not a test): the time from `ldapmodify` returning to every
node enforcing the change, p50 and p99 over CHANGES changes, for 3 and 10 nodes on one slapd
(deploy/cluster/cluster.py), and, as the peer measured in the same run, OpenLDAP syncrepl
alone replicating one change between two servers (deploy/multisite/multisite.sh).

  tests/bench/cluster_bench.py [BUILD_DIR] [--nodes 3,10] [--changes 100]

A change alternates granting and removing ms-Exch-SMTP-Accept-Any-Recipient for ANONYMOUS
LOGON on every node's CRM connector (one ldapmodify). "Enforcing" is observed over SMTP: one
thread per node keeps a session open from 127.0.2.55 (the CRM server) and repeats
RSET/MAIL/RCPT until the RCPT reply is the new one (a live session applies a reload from
its next MAIL); the change's latency is the slowest node's. Nothing here asserts a time.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import rncluster  # noqa: E402
import rnnode  # noqa: E402
from rnprobe import OK, NO, Prober, pct  # noqa: E402
from rntest import read_env  # noqa: E402

CLUSTER = os.path.join(ROOT, "deploy", "cluster", "cluster.py")
MULTISITE = os.path.join(ROOT, "deploy", "multisite", "multisite.sh")


def run_cluster(build, n, changes):
    work = tempfile.mkdtemp(prefix="clbench.")
    nodes = []
    try:
        r = subprocess.run(["/usr/bin/python3", CLUSTER, "setup", work, "--nodes", str(n),
                            "--build", build], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            print("cluster setup failed:\n" + r.stdout.decode(errors="replace"))
            return None
        env, cenv = read_env(os.path.join(work, "env")), read_env(os.path.join(work, "cluster.env"))
        ports = [int(cenv["NODE%d_SMTP_PORT" % k]) for k in range(1, n + 1)]
        for k in range(1, n + 1):
            nd = rnnode.Node(cenv["NODE%d_CONF" % k], ports=[ports[k - 1]],
                             binary=os.path.join(build, "relaynode"))
            nd.start(timeout=60)
            nodes.append(nd)
        ldapmodify = ["ldapmodify", "-x", "-H", env["SLAPD_URI"], "-D", env["ADMIN_DN"], "-y",
                      env["ADMIN_PW_FILE"]]
        probers = [Prober(p) for p in ports]
        for p in probers:
            p.start()
        time.sleep(2)                 # buses connected, first heartbeats exchanged
        lat = []
        for i in range(changes + 1):
            grant = i % 2 == 0
            subprocess.run(ldapmodify, input=rncluster.crm_ldif(range(1, n + 1), grant).encode(),
                           check=True, stdout=subprocess.DEVNULL)
            t0 = time.monotonic()
            for p in probers:
                p.arm(OK if grant else NO, t0)
            worst = 0.0
            for p in probers:
                with p.cv:
                    ok = p.cv.wait_for(lambda: p.seen is not None, timeout=30)
                    if not ok:
                        print("node on port %d never enforced change %d" % (p.port, i))
                        return None
                    worst = max(worst, p.seen)
            if i > 0:                 # the first change warms caches and connections
                lat.append(worst)
        for p in probers:
            p.halt()
        return lat
    finally:
        for nd in nodes:
            nd.stop()
        subprocess.run(["/usr/bin/python3", CLUSTER, "stop", work], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)


def run_syncrepl(changes):
    """Two slapd servers in multi-provider replication: write on A, poll B (ldapsearch)."""
    work = tempfile.mkdtemp(prefix="srbench.")
    try:
        r = subprocess.run(["bash", MULTISITE, "start", work], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        if r.returncode != 0:
            print("multisite start failed:\n" + r.stdout.decode(errors="replace"))
            return None
        top = read_env(os.path.join(work, "env"))
        a, b = read_env(os.path.join(top["SITE_A_DIR"], "env")), \
            read_env(os.path.join(top["SITE_B_DIR"], "env"))
        dn = rncluster.crm_dn(1)
        lat = []
        for i in range(changes):
            marker = "bench-%d-%d" % (os.getpid(), i)
            subprocess.run(["ldapmodify", "-x", "-H", a["SLAPD_URI"], "-D", a["ADMIN_DN"], "-y",
                            a["ADMIN_PW_FILE"]], check=True, stdout=subprocess.DEVNULL,
                           input=("dn: %s\nchangetype: modify\nreplace: description\n"
                                  "description: %s\n" % (dn, marker)).encode())
            t0 = time.monotonic()
            while time.monotonic() - t0 < 10:
                out = subprocess.run(["ldapsearch", "-x", "-LLL", "-H", b["SLAPD_URI"], "-D",
                                      b["ADMIN_DN"], "-y", b["ADMIN_PW_FILE"], "-s", "base",
                                      "-b", dn, "description"], stdout=subprocess.PIPE).stdout
                if marker.encode() in out:
                    lat.append((time.monotonic() - t0) * 1000)
                    break
        return lat
    finally:
        subprocess.run(["bash", MULTISITE, "stop", work], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default=os.path.join(ROOT, "build"))
    ap.add_argument("--nodes", default="3,10")
    ap.add_argument("--changes", type=int, default=100)
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    print("# cluster convergence: ldapmodify returned -> every node enforcing (over SMTP), "
          "%d changes" % a.changes)
    sr = run_syncrepl(min(a.changes, 50))
    sr_p50 = statistics.median(sr) if sr else None
    if sr:
        print("%-28s p50 %6.1f ms  p99 %6.1f ms  (%d changes; the peer: ldapsearch on B "
              "polls every round trip)" % ("syncrepl A->B (peer)", sr_p50, pct(sr, 99), len(sr)))
    rc = 0
    for n in [int(x) for x in a.nodes.split(",") if x.strip()]:
        lat = run_cluster(build, n, a.changes)
        if not lat:
            rc = 1
            continue
        p50, p99 = statistics.median(lat), pct(lat, 99)
        ratio = " ratio p50 relaynode/syncrepl x%.2f" % (p50 / sr_p50) if sr_p50 else ""
        print("%-28s p50 %6.1f ms  p99 %6.1f ms  max %6.1f ms%s  (target p99 < 50 ms)"
              % ("relaynode, %d nodes" % n, p50, p99, max(lat), ratio))
    return rc


if __name__ == "__main__":
    sys.exit(main())
