#!/usr/bin/env python3
"""Three relay nodes and one slapd on loopback, on the cluster bus (deploy/cluster/cluster.py).

  - an ldapmodify granting ms-Exch-SMTP-Accept-Any-Recipient to ANONYMOUS LOGON on the CRM
    connectors makes all three relay (over SMTP, from 127.0.2.55); removing it makes all
    three refuse; no SIGHUP anywhere: the nodes find out by themselves;
  - a node killed (kill -9) during a change converges when it starts again;
  - a node that loses every NOTICE (fault injection, test build) and has no change watcher
    of its own converges from its peers' heartbeats;
  - a rogue CURVE key is refused (every node's ZAP logs it, it hears no heartbeat);
  - relayctl's write sends a NOTICE: a node without a watcher reloads on it;
  - slapd stopped: every node keeps its last snapshot (allows what it allowed, nothing
    new); slapd back: a change made then is enforced everywhere;
  - `relayctl cluster status` shows every node current.
Each convergence prints the time from ldapmodify's return to the last node enforcing.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rncluster  # noqa: E402
import rnnode  # noqa: E402
import rntest  # noqa: E402
from rnnode import eventually  # noqa: E402
from rncluster import ANON  # noqa: E402

ROOT = rnnode.ROOT
CLUSTER = os.path.join(ROOT, "deploy", "cluster", "cluster.py")
NO_RELAY = "550 5.7.1 Unable to relay"
RCPT_OK = "250 2.1.5 Recipient OK"
N = 3


def build():
    return os.path.dirname(rnnode.relaynode_binary())


def relayctl(*args):
    r = subprocess.run([os.path.join(build(), "relayctl")] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


class Cluster:
    def __init__(self, work):
        self.work = work
        r = subprocess.run(["/usr/bin/python3", CLUSTER, "setup", work, "--nodes", str(N),
                            "--build", build()], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        self.setup_out = r.stdout.decode(errors="replace")
        self.ok = r.returncode == 0
        if not self.ok:
            return
        self.env = rntest.read_env(os.path.join(work, "env"))
        self.cenv = rntest.read_env(os.path.join(work, "cluster.env"))
        self.ports = [int(self.cenv["NODE%d_SMTP_PORT" % k]) for k in range(1, N + 1)]
        self.confs = [self.cenv["NODE%d_CONF" % k] for k in range(1, N + 1)]
        self.nodes = [None] * N

    def start(self, i, env=None):
        n = rnnode.Node(self.confs[i], ports=[self.ports[i]], env=env)
        n.start()
        self.nodes[i] = n
        return n

    def modify(self, ldif):
        """ldapmodify as the admin; returns the monotonic time it returned at."""
        r = subprocess.run(["ldapmodify", "-x", "-H", self.env["SLAPD_URI"], "-D",
                            self.env["ADMIN_DN"], "-y", self.env["ADMIN_PW_FILE"]],
                           input=ldif.encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        t = time.monotonic()
        if r.returncode != 0:
            raise RuntimeError("ldapmodify: %s" % r.stderr.decode())
        return t

    def set_crm(self, grant):
        return self.modify(rncluster.crm_ldif(range(1, N + 1), grant))

    def slapd_pid(self):
        with open(os.path.join(self.work, "slapd.pid")) as f:
            return int(f.read().strip())

    def stop_all(self):
        for n in self.nodes:
            if n is not None:
                n.stop()


rcpt = rncluster.crm_rcpt


def outsider_rcpt(port):
    return rcpt(port, source="127.0.0.1", sender="x@outside.example")


def converge(c, want, t0, idx=None, timeout=15.0):
    """Poll every node (or those in idx) until each answers `want`; per-node ms after t0,
    or None for a node that never did."""
    idx = list(range(N)) if idx is None else idx
    done = {}
    end = time.monotonic() + timeout
    while len(done) < len(idx) and time.monotonic() < end:
        for i in idx:
            if i not in done and rcpt(c.ports[i]) == want:
                done[i] = (time.monotonic() - t0) * 1000
        time.sleep(0.002)
    return [done.get(i) for i in idx]


def fmt(ms):
    return "/".join("never" if m is None else "%.0f" % m for m in ms)


def version_of(node):
    vs = re.findall(r"config (?:load|reload) version=(\S+)", node.log())
    return vs[-1] if vs else None


def status(conf, wait="2500"):
    rc, out, err = relayctl("cluster", "status", "--config", conf, "--json", "--wait", wait)
    try:
        return rc, json.loads(out), err
    except ValueError:
        return rc, None, out + err


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    work = tempfile.mkdtemp(prefix="cluster.")
    c = None
    try:
        c = Cluster(work)
        if not t.ok(c.ok, "cluster.py setup: slapd, %d node entries with keys, confs" % N,
                    c.setup_out):
            return t.done()
        for i in range(N):
            c.start(i)
        started = eventually(lambda: all("cluster bus-start" in n.log() for n in c.nodes), 10)
        t.ok(started, "every node started its bus (CURVE, endpoint from its relayNode entry)",
             "\n".join(n.log_tail(10) for n in c.nodes))

        def all_current():
            rc, js, _ = status(c.cenv["RELAYCTL_CONF"])
            return js if rc == 0 and js else None
        js = eventually(all_current, 15, 0.5)
        t.ok(js and len([x for x in js["Nodes"] if x["State"] == "current"]) == N,
             "relayctl cluster status: %d nodes current" % N, json.dumps(js))

        # Option 2 without the relay right: every node refuses.
        t0 = c.set_crm(grant=False)
        ms = converge(c, NO_RELAY, t0)
        t.ok(None not in ms, "CRM connectors without Accept-Any-Recipient: all refuse "
             "(ms after ldapmodify: %s)" % fmt(ms))

        t0 = c.set_crm(grant=True)
        ms = converge(c, RCPT_OK, t0)
        t.ok(None not in ms, "ldapmodify grants Accept-Any-Recipient to ANONYMOUS LOGON: "
             "all three relay (ms: %s)" % fmt(ms))
        marks = [len(n.log()) for n in c.nodes]
        t0 = c.set_crm(grant=False)
        ms = converge(c, NO_RELAY, t0)
        t.ok(None not in ms, "removing it: all three refuse (ms: %s)" % fmt(ms))
        # The log is written by its own thread: a SIGHUP's line would come before the
        # reload's, so wait for every node's reload line first.
        t.ok(all(n.wait_log("config reload version=", since=m)
                 for n, m in zip(c.nodes, marks)), "every node logged its reload")
        t.ok(not any("reload-requested" in n.log() for n in c.nodes),
             "no node was sent SIGHUP: they learned of the changes themselves")

        # A node killed during a change converges on restart.
        n2 = c.nodes[1]
        t0 = c.set_crm(grant=True)
        n2.kill9()
        ms = converge(c, RCPT_OK, t0, idx=[0, 2])
        t.ok(None not in ms, "node2 killed during a grant: node1 and node3 relay (ms: %s)"
             % fmt(ms))
        c.start(1)
        t.ok(rcpt(c.ports[1]) == RCPT_OK, "node2 restarted: relays like the others")
        v = eventually(lambda: len({version_of(n) for n in c.nodes}) == 1 and
                       version_of(c.nodes[0]), 10)
        t.ok(v, "all three run one version (%s)" % v,
             " / ".join(str(version_of(n)) for n in c.nodes))

        # node3 without a watcher of its own, losing every NOTICE: heartbeats only.
        n3 = c.nodes[2]
        n3.stop()
        with open(c.confs[2], "a") as f:
            f.write("directory_watch = off\n")
        c.start(2, env={"RELAYNODE_FAULT": "drop-notices"})
        eventually(lambda: "cluster bus-start" in c.nodes[2].log(), 10)
        time.sleep(1.5)               # its SUBs connect; heartbeats flow both ways
        mark = len(c.nodes[2].log())
        t0 = c.set_crm(grant=False)
        ms = converge(c, NO_RELAY, t0)
        # The log is written by its own thread: wait (bounded) for the lines asserted
        # present below, then read the log once (the absent check runs after them).
        c.nodes[2].wait_log("fault-dropped-notice", since=mark)
        c.nodes[2].wait_log(re.compile(r"cluster news from=\S+ via=heartbeat"), since=mark)
        log3 = c.nodes[2].log()[mark:]
        t.ok(None not in ms, "node3 deaf to notices, no watcher: still converges "
             "(ms: %s)" % fmt(ms), log3[-3000:])
        t.ok("fault-dropped-notice" in log3 and re.search(r"cluster news from=\S+ "
                                                          r"via=heartbeat", log3),
             "node3 dropped the notices and reloaded on a peer's heartbeat", log3[-3000:])
        t.ok("reload-requested" not in log3, "node3: no SIGHUP involved")

        # A rogue CURVE key: not in the directory, refused by ZAP.
        rogue_key = os.path.join(work, "rogue.key")
        rc, pub, _ = relayctl("node", "keygen", "--secret-file", rogue_key)
        pub = pub.strip()
        rogue_conf = os.path.join(work, "rogue.conf")
        with open(c.cenv["RELAYCTL_CONF"]) as f:
            conf = f.read()
        with open(rogue_conf, "w") as f:
            f.write(re.sub(r"cluster_secret_key_file = .*", "cluster_secret_key_file = "
                           + rogue_key, conf))
        marks = [len(n.log()) for n in c.nodes]
        relayctl("cluster", "notify", "--config", rogue_conf)
        rc, js, _ = status(rogue_conf, wait="1500")
        refused = eventually(lambda: all(("zap-refused key=%s" % pub) in n.log()[m:]
                                         for n, m in zip(c.nodes, marks)), 5)
        t.ok(rc == 1 and js and all(x["State"] == "unreachable" for x in js["Nodes"]
                                    if x.get("Endpoint")),
             "rogue key: cluster status hears no node (exit %d)" % rc, json.dumps(js))
        t.ok(refused, "rogue key: every node's ZAP refused it and logged the key")

        # relayctl's NOTICE: node1 alone, without a watcher, learns of relayctl's write only
        # from the notice relayctl sends after it.
        for n in c.nodes:
            n.stop()
        with open(c.confs[0]) as f:
            conf1 = f.read()
        with open(c.confs[0], "a") as f:
            f.write("directory_watch = off\n")
        n1 = c.start(0)
        eventually(lambda: "cluster bus-start" in n1.log(), 10)
        mark = len(n1.log())
        t.ok(rcpt(c.ports[0]) == NO_RELAY, "node1 alone, no watcher: refuses relay")
        rc, out, err = relayctl("permission", "add", "CRM Application", "--user", ANON,
                                "--extended-rights", "ms-Exch-SMTP-Accept-Any-Recipient",
                                "--config", c.cenv["RELAYCTL_CONF"])
        t0 = time.monotonic()
        ms = converge(c, RCPT_OK, t0, idx=[0])
        t.ok(rc == 0 and None not in ms, "relayctl permission add: node1 relays (ms: %s)"
             % fmt(ms), out + err + n1.log_tail(10))
        t.ok(n1.wait_log(re.compile(r"cluster news from=relayctl@\S+ via=notice/relayctl"),
                         since=mark), "node1 reloaded on relayctl's notice",
             n1.log()[mark:][-2000:])
        n1.stop()
        with open(c.confs[0], "w") as f:
            f.write(conf1)
        c.start(0)
        c.start(1)
        c.start(2, env={"RELAYNODE_FAULT": "drop-notices"})

        # slapd stopped: last snapshot kept, nothing new allowed.
        c.set_crm(grant=True)
        converge(c, RCPT_OK, time.monotonic())
        pid = c.slapd_pid()
        marks = [len(n.log()) for n in c.nodes]
        os.kill(pid, signal.SIGTERM)
        gone = eventually(lambda: not rntest.pid_alive(pid), 10)
        t.ok(gone, "slapd stopped")
        for n in c.nodes:
            n.reload(0)               # a reload now fails: the node must keep what it has
        failed = eventually(lambda: all("keeping=last-good" in n.log()[m:]
                                        for n, m in zip(c.nodes, marks)), 15)
        t.ok(failed, "every node: load failed, keeping the last good snapshot")
        t.ok(all(rcpt(p) == RCPT_OK for p in c.ports),
             "directory down: the CRM servers still relay (nothing allowed before is refused)")
        t.ok(all(outsider_rcpt(p) == NO_RELAY for p in c.ports),
             "directory down: an anonymous outsider still cannot relay (nothing new)")
        r = subprocess.run(["/usr/sbin/slapd", "-F", os.path.join(work, "slapd.d"), "-h",
                            "ldap://127.0.0.1:%s/ %s" % (c.env["SLAPD_PORT"],
                                                         c.env["SLAPD_LDAPI"])],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        up = r.returncode == 0 and eventually(lambda: subprocess.run(
            ["ldapsearch", "-x", "-H", c.env["SLAPD_URI"], "-b", "", "-s", "base"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0, 10)
        t.ok(up, "slapd started again on its port", r.stdout.decode(errors="replace"))
        t0 = c.set_crm(grant=False)
        ms = converge(c, NO_RELAY, t0, timeout=45)
        t.ok(None not in ms, "a change after the outage is enforced everywhere (ms: %s)"
             % fmt(ms))
        js = eventually(all_current, 15, 0.5)
        t.ok(js, "relayctl cluster status: all current again", json.dumps(js))
        for k, n in enumerate(c.nodes, 1):
            log = n.log()
            t.ok("AddressSanitizer" not in log and "runtime error:" not in log,
                 "no sanitizer report in node%d's log" % k)
    finally:
        if c is not None and c.ok:
            c.stop_all()
            build_dir = os.environ.get("RELAYNODE_BUILD")
            if build_dir:
                d = os.path.join(build_dir, "test-logs")
                os.makedirs(d, exist_ok=True)
                for k, n in enumerate(c.nodes, 1):
                    if n is not None:
                        with open(os.path.join(d, "cluster-node%d.log" % k), "w") as f:
                            f.write(n.log())
        subprocess.run(["/usr/bin/python3", CLUSTER, "stop", work], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
