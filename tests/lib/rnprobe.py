"""rnprobe: what the cluster benchmarks share to time a change from `ldapmodify` returning to
a node enforcing it over SMTP (tests/bench/cluster_bench.py, tests/bench/dirscale_bench.py).

One Prober thread per node keeps an SMTP session open from 127.0.2.55 (the CRM application
server of deploy/cluster/cluster.py's clusters) and repeats RSET/MAIL/RCPT until the RCPT
reply code is the one armed (a live session applies a reload from its next MAIL). The change
itself is rncluster.crm_ldif (grant or remove Accept-Any-Recipient: 250 or 550)."""
import math
import os
import subprocess
import threading
import time

import rncluster
import rnnode

OK, NO = "250", "550"
# between probes of one node: the resolution of the measurement (RN_PROBE_GAP_MS overrides)
PROBE_GAP_S = float(os.environ.get("RN_PROBE_GAP_MS", "1")) / 1000


class Prober(threading.Thread):
    """Keeps an SMTP session to one node and reports when its RCPT reply code is `want`."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.want = None
        self.t0 = 0.0
        self.seen = None            # ms after t0 when `want` was first seen
        self.cv = threading.Condition()
        self.stop = False
        self.cl = None

    def session(self):
        if self.cl is None:
            self.cl = rnnode.Client("127.0.0.1", self.port, source="127.0.2.55", timeout=10)
            self.cl.ehlo()

    def probe(self):
        try:
            self.session()
            self.cl.cmd("RSET")
            self.cl.cmd("MAIL FROM:<app@example.com>")
            return self.cl.cmd("RCPT TO:<someone@outside.example>")[:3]
        except (OSError, rnnode.Closed):
            if self.cl:
                self.cl.close()
            self.cl = None
            return None

    def arm(self, want, t0):
        with self.cv:
            self.want, self.t0, self.seen = want, t0, None
            self.cv.notify()

    def halt(self):
        with self.cv:
            self.stop = True
            self.cv.notify()
        self.join(15)

    def run(self):
        while True:
            with self.cv:
                while self.want is None and not self.stop:
                    self.cv.wait()
                if self.stop:
                    if self.cl:       # a draining node would wait for this session
                        self.cl.close()
                    return
                want, t0 = self.want, self.t0
            got = self.probe()
            if got != want:
                time.sleep(PROBE_GAP_S)   # leave the CPUs to the nodes (2 cores here)
                continue
            with self.cv:
                if self.want == want and self.t0 == t0:
                    self.seen = (time.monotonic() - t0) * 1000
                    self.want = None
                    self.cv.notify_all()


def flip_and_wait(ldapmodify, probers, nodes, grant, timeout, settle=0, walls=None):
    """One change (grant or remove on the CRM connector of every node in `nodes`), then the
    slowest node's latency in ms, or None (with the ports that had not enforced it) when some
    node did not within `timeout` seconds. Those are then given up to `settle` more seconds,
    so that the next change starts from every node enforcing this one. With a list `walls`,
    appends the wall-clock time ldapmodify returned and each prober's wall-clock time of
    success (None when it did not see it): node logs can then be compared with both."""
    subprocess.run(ldapmodify, input=rncluster.crm_ldif(nodes, grant).encode(), check=True,
                   stdout=subprocess.DEVNULL)
    t0 = time.monotonic()
    w0 = time.time()
    for p in probers:
        p.arm(OK if grant else NO, t0)
    worst, late = 0.0, []
    for p in probers:
        with p.cv:
            left = max(0.0, timeout - (time.monotonic() - t0))
            if not p.cv.wait_for(lambda: p.seen is not None, timeout=left):
                late.append(p)
                continue
            worst = max(worst, p.seen)
    t1 = time.monotonic()
    for p in late:
        with p.cv:
            p.cv.wait_for(lambda: p.seen is not None,
                          timeout=max(0.0, settle - (time.monotonic() - t1)))
            p.want = None
    if walls is not None:
        walls.append((w0, [w0 + p.seen / 1000 if p.seen is not None else None
                           for p in probers]))
    return (None, [p.port for p in late]) if late else (worst, [])


def pct(v, p):
    """Nearest-rank percentile."""
    s = sorted(v)
    return s[min(len(s) - 1, max(0, math.ceil(p / 100.0 * len(s)) - 1))]
