#!/usr/bin/python3
"""Directory-scale benchmark (not a test; issue 17): a directory of 10,000 receive
connectors, 1,000 accepted domains and 100,000 users. Nothing here asserts a time or a size.

  tests/bench/dirscale_bench.py [BUILD_DIR] [--nodes 1,10,20] [--changes 20]
                                [--connectors 10000] [--domains 1000] [--users 100000]

One throwaway slapd (deploy/cluster/cluster.py setup, the data bulk-loaded by slapadd with the
fixture) holds the example organisation, the cluster's MAX(--nodes) relayNode entries and:
  - CONNECTORS receive connectors "Scale NNNNN" under node1, on node1's SMTP port, each for its
    own /24 of 10.0.0.0/8 (anonymous, Tls, allowed to relay): node1's snapshot holds them all;
  - DOMAINS accepted domains: nine in ten exact (sNNNN.example.org), one in ten a wildcard
    (*.wNNNN.example.net), types mixed;
  - USERS inetOrgPerson + relayMailUser entries (mail userN@example.com: example.com is
    Authoritative, so every node loads the 100,000-address recipient set).
It prints:
  - slapadd time of the whole directory;
  - load: `load_ms` of node1's first load (its log line `config load ... load_ms=`), and the
    median `load_ms` of the reloads during each enforcement run;
  - snapshot memory and decision time: build/tests/bench_dirscale -c <node1's conf> loads the
    snapshot the node loads (heap bytes it holds, by mallinfo2), then times connector
    selection + rights + MAIL + RCPT decisions over it (with and without the domain index);
    and node1's VmRSS once serving;
  - ldapmodify -> enforcement: with 1, 10 and 20 nodes running on that one slapd, CHANGES
    changes each granting or removing Accept-Any-Recipient on every running node's CRM
    connector (rncluster.crm_ldif), timed until every node's SMTP reply shows it
    (tests/lib/rnprobe.py), p50/p99/max of the slowest node. A change some node did not
    enforce within --timeout seconds is counted and reported, not timed; the next change
    starts once every node enforces it (or 3 x --timeout more have passed).
"""
import argparse
import datetime
import importlib.util
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import rnnode  # noqa: E402
from rnprobe import Prober, flip_and_wait, pct  # noqa: E402
from rntest import read_env  # noqa: E402

SITE = "cn=Default-Site,cn=Sites,ou=Relay,dc=example,dc=com"
ANON_RELAY = ("allow; NT AUTHORITY\\ANONYMOUS LOGON; ms-Exch-SMTP-Submit, "
              "ms-Exch-SMTP-Accept-Any-Recipient")


def cluster_module():
    spec = importlib.util.spec_from_file_location(
        "cluster", os.path.join(ROOT, "deploy", "cluster", "cluster.py"))
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def data_ldif(path, connectors, domains, users):
    """The scale data as one LDIF (fixture placeholders: @SMTP_PORT@ is node1's port)."""
    with open(path, "w") as f:
        for i in range(connectors):
            f.write("dn: cn=Scale %05d,cn=node1,%s\nobjectClass: relayReceiveConnector\n"
                    "cn: Scale %05d\nrelayEnabled: TRUE\nrelayBinding: 0.0.0.0:@SMTP_PORT@\n"
                    "relayRemoteIPRange: 10.%d.%d.0/24\nrelayAuthMechanism: Tls\n"
                    "relayAce: %s\n\n"
                    % (i, SITE, i, i // 256 + 1, i % 256, ANON_RELAY))
        types = ("Authoritative", "InternalRelay", "ExternalRelay")
        for i in range(domains):
            name = "*.w%04d.example.net" % i if i % 10 == 9 else "s%04d.example.org" % i
            f.write("dn: cn=%s,cn=Accepted Domains,ou=Relay,dc=example,dc=com\n"
                    "objectClass: relayAcceptedDomain\ncn: %s\nrelayDomainName: %s\n"
                    "relayDomainType: %s\nrelayAddressBookEnabled: FALSE\n\n"
                    % (name, name, name, types[i % 3]))
        for i in range(users):
            f.write("dn: uid=user%d,ou=People,dc=example,dc=com\nobjectClass: inetOrgPerson\n"
                    "objectClass: relayMailUser\nuid: user%d\ncn: User %d\nsn: %d\n"
                    "mail: user%d@example.com\n\n" % (i, i, i, i, i))


def conf_log(conf):
    with open(conf) as f:
        for line in f:
            k, _, v = line.partition("=")
            if k.strip() == "log":
                return v.strip()
    return None


def log_tail(log, since=0):
    """The node's log after byte `since` ("" when unreadable)."""
    try:
        with open(log, "rb") as f:
            f.seek(since)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def load_ms(log, since=0):
    """load_ms of every `config load`/`config reload` line after byte `since` of the log."""
    return [float(m.group(1)) for m in re.finditer(r"config (?:re)?load .*?load_ms=([\d.]+)",
                                                    log_tail(log, since))]


def swap_times(log, since=0):
    """Wall-clock times (s) of every snapshot swap (`config load`/`config reload`: the line is
    written as the new snapshot is installed, stamped to the millisecond) after byte `since`."""
    out = []
    for m in re.finditer(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z - config (?:re)?load ",
                         log_tail(log, since), re.M):
        dt = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")
        out.append(dt.replace(tzinfo=datetime.timezone.utc).timestamp())
    return out


def swap_latencies(logs, since, walls):
    """Per change, the slowest node's time from ldapmodify returning to the snapshot swap that
    made its prober succeed: the last swap after the node's previous success and at or before
    this one (the log is stamped to the millisecond: 1 ms of slack). A node often swaps before
    ldapmodify's process has exited and been reaped: 0 then. None for a change some node
    missed."""
    swaps = [swap_times(x, s) for x, s in zip(logs, since)]
    out, prev = [], [None] * len(swaps)
    for w0, seen in walls:
        worst = 0.0
        for k, (t, sw) in enumerate(zip(seen, swaps)):
            lo = prev[k] if prev[k] is not None else w0 - 1.0
            cand = [x for x in sw if lo - 0.001 <= x <= t + 0.001] if t is not None else []
            prev[k] = t
            if worst is None or not cand:
                worst = None
                continue
            worst = max(worst, (max(cand) - w0) * 1000)
        out.append(worst)
    return out


def log_size(log):
    try:
        return os.path.getsize(log)
    except OSError:
        return 0


def enforcement(build, cenv, env, n, changes, timeout):
    """Start nodes 1..n, run the changes, stop them. (latencies ms, changes that timed out,
    median reload load_ms of the nodes during the run)."""
    nodes, probers = [], []
    logs = [conf_log(cenv["NODE%d_CONF" % k]) for k in range(1, n + 1)]
    try:
        for k in range(1, n + 1):
            nd = rnnode.Node(cenv["NODE%d_CONF" % k], ports=[int(cenv["NODE%d_SMTP_PORT" % k])],
                             binary=os.path.join(build, "relaynode"))
            nd.start(timeout=300)   # the first load reads 100,000 users
            nodes.append(nd)
        ldapmodify = ["ldapmodify", "-x", "-H", env["SLAPD_URI"], "-D", env["ADMIN_DN"], "-y",
                      env["ADMIN_PW_FILE"]]
        probers = [Prober(int(cenv["NODE%d_SMTP_PORT" % k])) for k in range(1, n + 1)]
        for p in probers:
            p.start()
        time.sleep(3)                 # buses connected, first heartbeats exchanged
        since = [log_size(x) for x in logs]
        lat, lost, walls = [], 0, []
        for i in range(changes + 1):
            ms, late = flip_and_wait(ldapmodify, probers, range(1, n + 1), i % 2 == 0, timeout,
                                     settle=3 * timeout, walls=walls)
            if ms is None:
                lost += 1
                print("  change %d: %d node(s) not enforcing after %d s" % (i, len(late),
                                                                             timeout))
            elif i > 0:               # the first change warms caches and connections
                lat.append(ms)
        time.sleep(0.1)               # the log writer gathers lines up to 2 ms
        reloads = [v for x, s in zip(logs, since) for v in load_ms(x, s)]
        swaps = [v for v in swap_latencies(logs, since, walls[1:]) if v is not None]
        return lat, lost, statistics.median(reloads) if reloads else None, swaps
    finally:
        for p in probers:
            p.halt()
        for nd in nodes:              # all at once: a node exits after its load in flight
            if nd.alive():
                nd.signal(signal.SIGTERM)
        for nd in nodes:
            nd.stop(timeout=300)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default=os.path.join(ROOT, "build"))
    ap.add_argument("--nodes", default="1,10,20")
    ap.add_argument("--changes", type=int, default=20)
    ap.add_argument("--timeout", type=int, default=120)
    ap.add_argument("--connectors", type=int, default=10000)
    ap.add_argument("--domains", type=int, default=1000)
    ap.add_argument("--users", type=int, default=100000)
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    counts = [int(x) for x in a.nodes.split(",") if x.strip()]
    if not counts or not os.access(os.path.join(build, "relaynode"), os.X_OK):
        sys.exit("dirscale_bench: no relaynode under %s, or no --nodes" % build)
    cluster = cluster_module()
    work = tempfile.mkdtemp(prefix="rn-dirscale-")
    rc = 0
    try:
        data = os.path.join(work, "scale.ldif")
        data_ldif(data, a.connectors, a.domains, a.users)
        print("# directory: %d receive connectors (under node1), %d accepted domains, %d users; "
              "%d changes per run; build %s" % (a.connectors, a.domains, a.users, a.changes,
                                                build))
        t0 = time.monotonic()
        with open(os.path.join(work, "setup.log"), "w") as out:
            old = sys.stdout
            sys.stdout = out          # cluster.setup prints its env file
            try:
                cluster.setup(os.path.join(work, "c"), max(counts), build,
                              ["--ldif", data])
            finally:
                sys.stdout = old
        print("slapd with the directory (slapadd) and %d nodes' entries: %.1f s"
              % (max(counts), time.monotonic() - t0))
        cdir = os.path.join(work, "c")
        env, cenv = read_env(os.path.join(cdir, "env")), read_env(os.path.join(cdir,
                                                                              "cluster.env"))
        bench = os.path.join(build, "tests", "bench_dirscale")
        if os.access(bench, os.X_OK):
            r = subprocess.run([bench, "-c", cenv["NODE1_CONF"]], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=900)
            sys.stdout.write(r.stdout.decode(errors="replace"))
            if r.returncode != 0:
                print("bench_dirscale exited %d" % r.returncode)
                rc = 1
        else:
            print("(no %s: build it with make bench)" % bench)
        # node1 alone: its first load and its memory serving
        log1 = conf_log(cenv["NODE1_CONF"])
        since = log_size(log1)
        nd = rnnode.Node(cenv["NODE1_CONF"], ports=[int(cenv["NODE1_SMTP_PORT"])],
                         binary=os.path.join(build, "relaynode"))
        nd.start(timeout=300)
        try:
            time.sleep(2)
            first = load_ms(log1, since)
            print("node1 first load: load_ms %s; VmRSS serving %.1f MiB" % (
                first[0] if first else "?", nd.rss_kib() / 1024))
        finally:
            nd.stop(timeout=300)
        print("# ldapmodify -> every node enforcing (over SMTP; p50/p99/max of the slowest "
              "node; goals: p99 < 10 ms at 10 nodes, < 50 ms at 20)")
        for n in counts:
            lat, lost, rl, swaps = enforcement(build, cenv, env, n, a.changes, a.timeout)
            if lat:
                label = "%d node%s" % (n, "s" if n > 1 else "")
                print("%-10s p50 %9.1f ms  p99 %9.1f ms  max %9.1f ms  (%d changes, %d not "
                      "enforced within %d s; median reload load_ms %s)"
                      % (label, statistics.median(lat), pct(lat, 99), max(lat), len(lat), lost,
                         a.timeout, "%.0f" % rl if rl is not None else "-"))
                if swaps:
                    print("%-10s p50 %9.1f ms  p99 %9.1f ms  max %9.1f ms  (the same changes, to "
                          "the slowest node's snapshot swap in the nodes' logs, without the "
                          "probers' delay; %d of %d matched)"
                          % ("  swapped", statistics.median(swaps), pct(swaps, 99), max(swaps),
                             len(swaps), len(lat)))
            else:
                print("%d nodes: no change enforced by every node within %d s (%d lost)"
                      % (n, a.timeout, lost))
    finally:
        subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "deploy", "cluster", "cluster.py"),
                        "stop", os.path.join(work, "c")], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
