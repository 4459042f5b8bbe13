#!/usr/bin/env python3
"""Cluster convergence under churn (docs/reliability.md T21, scaled to this box): three nodes on
one slapd (deploy/cluster/cluster.py) while 400 changes go to slapd as fast as ldapmodify
sends them, node2 is SIGKILLed and restarted twice and node3 is SIGSTOPped for 3 s.

  - within 15 s of the last change every node runs the directory's version (relayctl
    cluster status: all current) and enforces the final state over SMTP;
  - every node applied versions in increasing order, across its restarts too (never
    backwards);
  - no sanitizer report.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rncluster  # noqa: E402
import rnnode  # noqa: E402
import rntest  # noqa: E402
from rnnode import eventually  # noqa: E402

ROOT = rnnode.ROOT
CLUSTER = os.path.join(ROOT, "deploy", "cluster", "cluster.py")
N = 3
CHANGES = 400
RCPT_OK = "250 2.1.5 Recipient OK"


def applied_versions(log):
    return re.findall(r"config (?:load|reload) version=(\S+)", log)


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    build = os.path.dirname(rnnode.relaynode_binary())
    relayctl = os.path.join(build, "relayctl")
    work = tempfile.mkdtemp(prefix="clstress.")
    nodes = []
    try:
        r = subprocess.run(["/usr/bin/python3", CLUSTER, "setup", work, "--nodes", str(N),
                            "--build", build], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if not t.ok(r.returncode == 0, "cluster.py setup", r.stdout.decode(errors="replace")):
            return t.done()
        env = rntest.read_env(os.path.join(work, "env"))
        cenv = rntest.read_env(os.path.join(work, "cluster.env"))
        ports = [int(cenv["NODE%d_SMTP_PORT" % k]) for k in range(1, N + 1)]
        for k in range(1, N + 1):
            n = rnnode.Node(cenv["NODE%d_CONF" % k], ports=[ports[k - 1]])
            n.start()
            nodes.append(n)
        eventually(lambda: all("cluster bus-start" in n.log() for n in nodes), 10)

        # The changes: CRM connectors toggled, node1's description rewritten; the last
        # record grants the relay right on all three CRM connectors.
        recs = []
        for i in range(CHANGES - 1):
            if i % 4 == 0:
                recs.append(rncluster.crm_ldif(range(1, N + 1), grant=(i // 4) % 2 == 1))
            else:
                recs.append("dn: %s\nchangetype: modify\nreplace: description\n"
                            "description: churn %d\n" % (rncluster.crm_dn(1), i))
        recs.append(rncluster.crm_ldif(range(1, N + 1), grant=True))
        batches = [recs[i:i + 50] for i in range(0, len(recs), 50)]   # ~0.6 s apart

        def churn():
            n2, n3 = nodes[1], nodes[2]
            time.sleep(0.3)
            n2.kill9()
            time.sleep(0.5)
            n2.start()
            n3.signal(signal.SIGSTOP)
            time.sleep(3)
            n3.signal(signal.SIGCONT)
            time.sleep(0.2)
            n2.kill9()
            time.sleep(0.3)
            n2.start()
        th = threading.Thread(target=churn)
        th.start()
        t0 = time.monotonic()
        errs = []
        for b in batches:
            m = subprocess.run(["ldapmodify", "-x", "-H", env["SLAPD_URI"], "-D",
                                env["ADMIN_DN"], "-y", env["ADMIN_PW_FILE"]],
                               input="\n".join(b).encode(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
            if m.returncode != 0:
                errs.append(m.stderr.decode(errors="replace"))
            time.sleep(0.5)
        took = time.monotonic() - t0
        th.join()
        t.ok(not errs, "%d changes written over %.1f s while node2 was killed twice and "
             "node3 stopped for 3 s" % (CHANGES, took), "\n".join(errs))
        t_last = time.monotonic()

        def current():
            p = subprocess.run([relayctl, "cluster", "status", "--config", cenv["RELAYCTL_CONF"],
                                "--wait", "2500"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            return p.returncode == 0 and p.stdout.decode().count(" current ") == N
        ok = eventually(current, 15, 0.5)
        t.ok(ok, "all %d nodes current within 15 s of the last change (%.1f s)"
             % (N, time.monotonic() - t_last))
        t.ok(all(rncluster.crm_rcpt(p) == RCPT_OK for p in ports),
             "every node enforces the final change")
        for k, n in enumerate(nodes, 1):
            vs = applied_versions(n.log())
            back = [(a, b) for a, b in zip(vs, vs[1:]) if b < a]
            t.ok(vs and not back, "node%d: %d versions applied, never backwards%s"
                 % (k, len(vs), "" if not back else " (%r)" % back[:2]))
        for k, n in enumerate(nodes, 1):
            log = n.log()
            t.ok("AddressSanitizer" not in log and "runtime error:" not in log,
                 "no sanitizer report in node%d's log" % k)
    finally:
        for n in nodes:
            n.signal(signal.SIGCONT)
            n.stop()
        subprocess.run(["/usr/bin/python3", CLUSTER, "stop", work], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
