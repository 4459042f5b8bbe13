#!/usr/bin/python3
"""Many idle sessions (issue #17), a benchmark, never a test: it prints figures and asserts
nothing on them.

  tests/bench/sessions_bench.py [BUILD_DIR] [--sessions 10000] [--steps 0,1000,5000,10000]
                                [--sources 1000] [--probes 100] [--no-tls]

One slapd (deploy/slapd/fixture.sh) and one release node (BUILD_DIR/relaynode, default
build/, as smtp_bench.sh). The client opens idle sessions in steps; each session is
connect -> 220 banner -> EHLO -> 250 and is then left idle (in the TLS pass:
... EHLO -> STARTTLS -> 220 -> TLS handshake -> EHLO -> 250, then idle). At every step the
node's memory is read from /proc: VmRSS (status) and Pss (smaps_rollup); the memory per
session is the slope against step 0 (KiB per session). At every step, with the idle
sessions held, PROBES fresh sessions (connect -> banner -> EHLO -> QUIT -> 221, one after
another, from 127.0.0.1) are timed: p50, p99 and max in ms.

Limits the bench sets (printed with the figures):
  - the node's RLIMIT_NOFILE: raised (soft and, when allowed, hard) to what max_sessions
    needs for SESSIONS + the probes (2 descriptors a session, directory/bootstrap.c); when the
    hard limit does not allow it, the largest count that fits is used and said;
  - in the node's bootstrap, max_sessions = SESSIONS + 8 (room for the probes; a start that
    cannot hold it fails) and delivery_concurrency = 1 (its descriptors are reserved from
    RLIMIT_NOFILE; nothing is delivered here);
  - the node1 "Default" connector: MaxInboundConnection unlimited (max_sessions bounds the
    node; with a number, MaxInboundConnectionPercentagePerSource, 2 % of what is left of it,
    would refuse every source near the cap: docs/permission-model.md), ConnectionTimeout and
    ConnectionInactivityTimeout 86400 s (so no idle session is cut during the run);
    MaxInboundConnectionPerSource keeps its default 20: the idle
    sessions come from SOURCES addresses 127.1.x.y (10 each at 10,000 and 1000 sources).
The client is one process with non-blocking sockets (selectors, epoll), 256 sessions being
opened at a time; its own RLIMIT_NOFILE is raised to its hard limit.
"""
import argparse
import math
import os
import resource
import selectors
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import rnnode  # noqa: E402
from rntest import read_env  # noqa: E402

FIXTURE = os.path.join(ROOT, "deploy", "slapd", "fixture.sh")
IP_BIND_ADDRESS_NO_PORT = 24          # linux/in.h: the port is chosen at connect, per 4-tuple
FD_RESERVE = 64                       # directory/bootstrap.c: BOOT_FD_RESERVE
DELIVERY_CONCURRENCY = 1              # bootstrap key; nothing is delivered here
PROBE_ROOM = 8                        # max_sessions above the idle sessions, for the probes
IN_FLIGHT = 256


def pct(v, p):
    """Nearest-rank percentile."""
    s = sorted(v)
    return s[min(len(s) - 1, max(0, math.ceil(p / 100.0 * len(s)) - 1))]


def node_mem(pid):
    """(VmRSS KiB, Pss KiB) of pid."""
    rss = pss = None
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
    return rss, pss


class Sess:
    __slots__ = ("sock", "state", "buf", "tls")

    def __init__(self, sock):
        self.sock, self.state, self.buf, self.tls = sock, "banner", b"", None


class Opener:
    """Opens idle sessions without blocking: up to IN_FLIGHT at a time."""

    def __init__(self, port, sources, tls_ctx):
        self.port, self.sources, self.ctx = port, sources, tls_ctx
        self.sel = selectors.DefaultSelector()
        self.idle = []
        self.failed = []
        self.next_src = 0

    def _start(self):
        src = self.sources[self.next_src % len(self.sources)]
        self.next_src += 1
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        s.bind((src, 0))
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", self.port))
        st = Sess(s)
        self.sel.register(s, selectors.EVENT_READ, st)

    def _fail(self, st, why):
        self.sel.unregister(st.sock)
        st.sock.close()
        self.failed.append(why)

    def _send(self, st, data, state):
        st.sock.sendall(data)     # a few bytes into an empty socket buffer: never blocks
        st.state, st.buf = state, b""

    def _reply(self, st):
        """The complete reply read so far, or None."""
        try:
            chunk = st.sock.recv(4096)
        except (ssl.SSLWantReadError, BlockingIOError):
            return None
        if not chunk:
            raise ConnectionError("closed by the node in state %s" % st.state)
        st.buf += chunk
        lines = st.buf.split(b"\r\n")
        if len(lines) < 2:
            return None
        last = lines[-2]
        if len(last) >= 4 and last[3:4] == b" ":
            return last.decode(errors="replace")
        return None

    def _step(self, st):
        if st.state == "handshake":
            try:
                st.sock.do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            self._send(st, b"EHLO idle.bench\r\n", "ehlo2")
            return
        r = self._reply(st)
        if r is None:
            return
        want = {"banner": "220", "ehlo": "250", "starttls": "220", "ehlo2": "250"}[st.state]
        if not r.startswith(want):
            raise ConnectionError("%s: %s" % (st.state, r))
        if st.state == "banner":
            self._send(st, b"EHLO idle.bench\r\n", "ehlo")
        elif st.state == "ehlo" and self.ctx is not None:
            self._send(st, b"STARTTLS\r\n", "starttls")
        elif st.state == "starttls":
            self.sel.unregister(st.sock)
            st.sock = self.ctx.wrap_socket(st.sock, server_hostname="node1.example.com",
                                           do_handshake_on_connect=False)
            self.sel.register(st.sock, selectors.EVENT_READ, st)
            st.state = "handshake"
            self._step(st)
        else:
            self.sel.unregister(st.sock)
            st.state = "idle"
            self.idle.append(st)

    def open_to(self, total, timeout=600):
        started = len(self.idle) + len(self.failed)
        t0 = time.monotonic()
        while len(self.idle) + len(self.failed) < total:
            pending = len(self.sel.get_map())
            while pending < IN_FLIGHT and started < total:
                self._start()
                started += 1
                pending += 1
            for key, _ in self.sel.select(timeout=1.0):
                st = key.data
                try:
                    self._step(st)
                except (OSError, ConnectionError, ssl.SSLError) as e:
                    self._fail(st, str(e))
            if time.monotonic() - t0 > timeout:
                raise SystemExit("sessions_bench: %d sessions not open after %d s"
                                 % (total - len(self.idle), timeout))
        return time.monotonic() - t0

    def dropped(self):
        """Idle sessions the node has written to or closed since (none should be)."""
        sel = selectors.DefaultSelector()
        for st in self.idle:
            sel.register(st.sock, selectors.EVENT_READ)
        n = len(sel.select(timeout=0))
        sel.close()
        return n

    def close(self):
        for st in self.idle:
            st.sock.close()
        self.idle = []
        self.sel.close()


def probe(port, n):
    """n fresh sessions, one after another: ms from connect to QUIT's 221."""
    out = []
    for _ in range(n):
        t0 = time.monotonic()
        cl = rnnode.Client("127.0.0.1", port, source="127.0.0.1", timeout=30)
        cl.ehlo("probe.bench")
        r = cl.cmd("QUIT")
        out.append((time.monotonic() - t0) * 1000)
        cl.close()
        if not r.startswith("221"):
            raise SystemExit("sessions_bench: fresh session got %r" % r)
    return out


def node_limits(want_sessions):
    """(sessions, nofile): the node's descriptor limit for want_sessions, or what fits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * (want_sessions + PROBE_ROOM) + FD_RESERVE + DELIVERY_CONCURRENCY
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, max(need, hard)))
        return want_sessions, need
    except (ValueError, OSError):
        fit = (hard - FD_RESERVE - DELIVERY_CONCURRENCY) // 2 - PROBE_ROOM
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return min(want_sessions, fit), hard


def run_pass(build, work, env, steps, sources, probes, tls):
    ctx = None
    if tls:
        ctx = ssl.create_default_context(cafile=os.path.join(work, "tls", "ca.pem"))
        ctx.check_hostname = False   # the certificate names node1.example.com, checked by CA
    node = rnnode.Node(os.path.join(work, "relaynode.conf"), ports=[int(env["SMTP_PORT"])],
                       binary=os.path.join(build, "relaynode"))
    node.start(timeout=60)
    rows = []
    op = Opener(int(env["SMTP_PORT"]), sources, ctx)
    try:
        probe(int(env["SMTP_PORT"]), 5)   # warm up
        time.sleep(1)
        for n in steps:
            secs = op.open_to(n)
            time.sleep(2)             # let the node settle (deferred frees, log writes)
            rss, pss = node_mem(node.pid)
            lat = probe(int(env["SMTP_PORT"]), probes)
            rows.append(dict(n=len(op.idle), failed=len(op.failed), secs=secs, rss=rss,
                             pss=pss, p50=pct(lat, 50), p99=pct(lat, 99), max=max(lat),
                             dropped=op.dropped()))
        why = {}
        if op.failed:
            with open(os.path.join(work, "relaynode.log"), errors="replace") as f:
                for line in f:
                    if "connect-refused" in line:
                        w = line.split("why=")[1].split()[0] if "why=" in line else \
                            line.split("reply=")[-1].split(" total=")[0].strip()
                        last = line.strip()
                        why[w] = why.get(w, 0) + 1
        if why:
            op.failed[3:] = ["refused by the node (log): %s; last: %s" % (why, last)]
        return rows, op.failed[:4]
    finally:
        op.close()
        node.stop(timeout=120)


def print_rows(title, rows):
    base = rows[0]
    print("# %s" % title)
    print("%8s %7s %10s %10s %13s %13s %8s %8s %8s %7s" % (
        "sessions", "failed", "VmRSS KiB", "Pss KiB", "RSS KiB/sess", "Pss KiB/sess",
        "p50 ms", "p99 ms", "max ms", "open s"))
    for r in rows:
        dn = r["n"] - base["n"]
        per = lambda k: "%.2f" % ((r[k] - base[k]) / dn) if dn > 0 else "-"  # noqa: E731
        print("%8d %7d %10d %10d %13s %13s %8.2f %8.2f %8.2f %7.1f" % (
            r["n"], r["failed"], r["rss"], r["pss"], per("rss"), per("pss"), r["p50"],
            r["p99"], r["max"], r["secs"]))
        if r["dropped"]:
            print("# note: %d idle sessions were written to or closed by the node" % r["dropped"])
    if len(rows) > 2:
        xs = [r["n"] for r in rows]
        mx = sum(xs) / len(xs)
        sxx = sum((x - mx) ** 2 for x in xs)
        for k in ("rss", "pss"):
            ys = [r[k] for r in rows]
            my = sum(ys) / len(ys)
            rows[0]["fit_" + k] = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
        print("# per session, least-squares slope over the steps: VmRSS %.2f KiB, Pss %.2f KiB"
              % (rows[0]["fit_rss"], rows[0]["fit_pss"]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default=os.path.join(ROOT, "build"))
    ap.add_argument("--sessions", type=int, default=10000)
    ap.add_argument("--steps", default="0,1000,5000,10000")
    ap.add_argument("--sources", type=int, default=1000)
    ap.add_argument("--probes", type=int, default=100)
    ap.add_argument("--no-tls", action="store_true")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    if not os.access(os.path.join(build, "relaynode"), os.X_OK):
        raise SystemExit("sessions_bench: no %s/relaynode (run make first)" % build)
    want = max([a.sessions] + [int(s) for s in a.steps.split(",")])
    sessions, nofile = node_limits(want)
    steps = sorted({min(int(s), sessions) for s in a.steps.split(",")} | {0})
    sources = ["127.1.%d.%d" % (1 + i // 250, 1 + i % 250) for i in range(a.sources)]
    work = tempfile.mkdtemp(prefix="sessbench.")
    try:
        r = subprocess.run(["bash", FIXTURE, "start", work], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        if r.returncode != 0:
            raise SystemExit("fixture: " + r.stdout.decode(errors="replace")[-2000:])
        env = read_env(os.path.join(work, "env"))
        cap = sessions + PROBE_ROOM
        with open(os.path.join(work, "relaynode.conf"), "a") as f:
            f.write("max_sessions = %d\ndelivery_concurrency = %d\n"
                    % (cap, DELIVERY_CONCURRENCY))
        ldif = ("dn: cn=Default node1,cn=node1,cn=Default-Site,cn=Sites,%s\nchangetype: modify\n"
                "replace: relayMaxInboundConnection\nrelayMaxInboundConnection: unlimited\n-\n"
                "replace: relayConnectionTimeout\nrelayConnectionTimeout: 86400\n-\n"
                "replace: relayConnectionInactivityTimeout\n"
                "relayConnectionInactivityTimeout: 86400\n" % env["RELAY_BASE"])
        subprocess.run(["ldapmodify", "-x", "-H", env["SLAPD_URI"], "-D", env["ADMIN_DN"],
                        "-y", env["ADMIN_PW_FILE"]], input=ldif.encode(), check=True,
                       stdout=subprocess.DEVNULL)
        cpu = ""
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        print("# sessions_bench %s, %d cpu(s) (%s), kernel %s, build %s" % (
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), os.cpu_count(), cpu,
            os.uname().release, build))
        print("# node: RLIMIT_NOFILE %d, max_sessions %d; connector MaxInboundConnection "
              "unlimited (max_sessions bounds the node), per source 20 (default); idle sessions from %d sources 127.1.x.y; "
              "%d fresh sessions timed per step" % (nofile, cap, a.sources, a.probes))
        if sessions < want:
            print("# note: the hard RLIMIT_NOFILE (%d) holds %d sessions, not %d"
                  % (nofile, sessions, want))
        passes = [(False, "plain: connect, banner, EHLO, then idle")]
        if not a.no_tls:
            passes.append((True, "STARTTLS: connect, banner, EHLO, STARTTLS, handshake, "
                                 "EHLO, then idle"))
        for tls, title in passes:
            rows, errs = run_pass(build, work, env, steps, sources, a.probes, tls)
            print_rows(title, rows)
            for e in errs:
                print("# failed session: %s" % e)
            sys.stdout.flush()
    finally:
        subprocess.run(["bash", FIXTURE, "stop", work], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
