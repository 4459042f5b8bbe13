#!/usr/bin/env python3
"""relaynode_cluster_peers (issue #15) on a real two-node cluster (deploy/cluster/cluster.py:
one slapd, two nodes on the CURVE bus), scraped from node1's metrics_listen and parsed with
Prometheus' own parser: node2 counts as current while its heartbeats agree with node1's
version, and as unreachable once it is stopped (no heartbeat for 3 periods)."""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402
from rnnode import eventually  # noqa: E402

ROOT = rnnode.ROOT
CLUSTER = os.path.join(ROOT, "deploy", "cluster", "cluster.py")
STATES = ("current", "ahead", "behind", "stale", "unreachable")


def peers(port):
    """{state: value} of relaynode_cluster_peers, or None when the scrape fails."""
    import urllib.request
    from prometheus_client.parser import text_string_to_metric_families
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    for f in text_string_to_metric_families(text):
        if f.name == "relaynode_cluster_peers":
            return {s.labels["state"]: s.value for s in f.samples}
    return None


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    work = tempfile.mkdtemp(prefix="metrics-cluster.")
    nodes = []
    ok = False
    try:
        build = os.path.dirname(rnnode.relaynode_binary())
        r = subprocess.run(["/usr/bin/python3", CLUSTER, "setup", work, "--nodes", "2",
                            "--build", build], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        ok = r.returncode == 0
        if not t.ok(ok, "cluster.py setup: slapd and two nodes", r.stdout.decode()[-2000:]):
            return t.done()
        cenv = rntest.read_env(os.path.join(work, "cluster.env"))
        port = rntest.free_port(exclude=(int(cenv["NODE1_SMTP_PORT"]),
                                         int(cenv["NODE2_SMTP_PORT"])))
        with open(cenv["NODE1_CONF"], "a") as f:
            f.write("metrics_listen = %d\n" % port)
        for k in (1, 2):
            n = rnnode.Node(cenv["NODE%d_CONF" % k], ports=[int(cenv["NODE%d_SMTP_PORT" % k])])
            n.start()
            nodes.append(n)
        want = {s: (1.0 if s == "current" else 0.0) for s in STATES}
        got = eventually(lambda: (lambda p: p if p == want else None)(peers(port)), 20, 0.3)
        t.ok(got, "node2 heard and current: peers{state=current} 1, every other state 0",
             peers(port))
        nodes[1].stop()
        want = {s: (1.0 if s == "unreachable" else 0.0) for s in STATES}
        got = eventually(lambda: (lambda p: p if p == want else None)(peers(port)), 20, 0.3)
        t.ok(got, "node2 stopped: peers{state=unreachable} 1", peers(port))
    finally:
        for n in nodes:
            n.stop()
        subprocess.run(["/usr/bin/python3", CLUSTER, "stop", work], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
