#!/usr/bin/env python3
"""A peer's news does not make a node with a live change watcher load at once; it waits for
its own watcher, at most 2 s (schema/cluster-protocol.md §5, rule 3; issue 17: with 100,000
users each extra full load costs seconds per node).

Two nodes on one slapd (deploy/cluster/cluster.py). node2 runs with its watcher slowed
(test build: RELAYNODE_FAULT_SLEEP=watch-version=10000, every version the watcher reads
reaches node2's loop 10 s late), so just after its start node2 does not know its replica's
version: before this rule that made node1's NOTICE of a change trigger a full load at once,
and then a second one when node2's own watcher caught up. Checks, from node2's log and SMTP:
  - on node1's news node2 logs `cluster wait ... for=own-watcher`, and no `news from=node1
    ... action=reload`;
  - its watcher still held, the wait ends (`cluster wait-over ... action=reload`) and node2
    loads: it enforces the change (relays for the CRM server) well before its watcher
    would have told it;
  - node1, with a watcher of normal speed, enforces the change too.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rncluster  # noqa: E402
import rnnode  # noqa: E402
import rntest  # noqa: E402
from rnnode import eventually  # noqa: E402

CLUSTER = os.path.join(rnnode.ROOT, "deploy", "cluster", "cluster.py")
RCPT_OK = "250 2.1.5 Recipient OK"
NO_RELAY = "550 5.7.1 Unable to relay"
HOLD_MS = 10000


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    work = tempfile.mkdtemp(prefix="peerwait.")
    nodes = []
    try:
        build = os.path.dirname(rnnode.relaynode_binary())
        r = subprocess.run(["/usr/bin/python3", CLUSTER, "setup", work, "--nodes", "2",
                            "--build", build], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if not t.ok(r.returncode == 0, "cluster.py setup: slapd and two nodes",
                    r.stdout.decode(errors="replace")):
            return t.done()
        env = rntest.read_env(os.path.join(work, "env"))
        cenv = rntest.read_env(os.path.join(work, "cluster.env"))
        ports = [int(cenv["NODE1_SMTP_PORT"]), int(cenv["NODE2_SMTP_PORT"])]
        n1 = rnnode.Node(cenv["NODE1_CONF"], ports=[ports[0]])
        n1.start()
        nodes.append(n1)
        t.ok(eventually(lambda: "cluster directory-version" in n1.log(), 15),
             "node1: its watcher reported the directory's version", n1.log_tail(10))
        # The example's CRM connectors relay (ExternalAuthoritative): first make them
        # anonymous without the relay right, so that the change below is news.
        ldapmodify = ["ldapmodify", "-x", "-H", env["SLAPD_URI"], "-D", env["ADMIN_DN"], "-y",
                      env["ADMIN_PW_FILE"]]
        r = subprocess.run(ldapmodify, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           input=rncluster.crm_ldif([1, 2], False).encode())
        t.ok(r.returncode == 0 and eventually(
            lambda: rncluster.crm_rcpt(ports[0]).startswith(NO_RELAY), 15, 0.05),
            "before node2 starts: the CRM connectors refuse to relay (node1 enforces it)",
            r.stdout.decode(errors="replace") + n1.log_tail(10))
        n2 = rnnode.Node(cenv["NODE2_CONF"], ports=[ports[1]],
                         env={"RELAYNODE_FAULT_SLEEP": "watch-version=%d" % HOLD_MS})
        n2.start()
        nodes.append(n2)
        up = eventually(lambda: "cluster watcher-up mode=persist" in n2.log() and
                        "cluster bus-start" in n2.log(), 10)
        t.ok(up and "cluster directory-version" not in n2.log(),
             "node2: watcher up (persist), its version held back, bus started", n2.log_tail(10))
        # Let the two buses connect before the change (a NOTICE sent before is lost; the
        # heartbeat, every second, would bring the same news).
        time.sleep(1.5)
        t.ok(rncluster.crm_rcpt(ports[1]).startswith(NO_RELAY),
             "node2 refuses to relay for the CRM server (its first load)")
        r = subprocess.run(ldapmodify, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           input=rncluster.crm_ldif([1, 2], True).encode())
        t0 = time.monotonic()
        t.ok(r.returncode == 0, "ldapmodify: Accept-Any-Recipient on both CRM connectors",
             r.stdout.decode(errors="replace"))
        ok2 = eventually(lambda: rncluster.crm_rcpt(ports[1]).startswith(RCPT_OK), 20, 0.05)
        dt = time.monotonic() - t0
        # The log is written by its own thread: wait (bounded) for the lines asserted
        # present below, then read the log once (the absent check runs after them).
        n2.wait_log(re.compile(r"cluster wait from=node1 via=\S+ version=\S+ replica=\S* "
                               r"for=own-watcher"))
        n2.wait_log("cluster wait-over")
        log2 = n2.log()
        t.ok(re.search(r"cluster wait from=node1 via=\S+ version=\S+ replica=\S* "
                       r"for=own-watcher", log2) is not None,
             "node2: node1's news -> wait for its own watcher (not a load)", log2[-3000:])
        t.ok(re.search(r"cluster news from=node1 via=\S+ .*action=reload", log2) is None,
             "node2: no load started by node1's news", log2[-3000:])
        t.ok(ok2 and "cluster wait-over" in log2,
             "node2: the wait is bounded: with its watcher still held it loaded and relays "
             "(%.1f s after ldapmodify; its watcher holds each version %d s)"
             % (dt, HOLD_MS // 1000), log2[-3000:])
        t.ok(eventually(lambda: rncluster.crm_rcpt(ports[0]).startswith(RCPT_OK), 15, 0.05),
             "node1 relays too", n1.log_tail(10))
    finally:
        for n in nodes:
            n.stop(timeout=HOLD_MS / 1000 * 2 + 10)   # the held watcher thread ends too
        subprocess.run(["/usr/bin/python3", CLUSTER, "stop", work], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
