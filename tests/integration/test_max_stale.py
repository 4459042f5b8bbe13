#!/usr/bin/env python3
"""max_stale: how long the last good configuration serves while the directory is down.

With max_stale = 0 (the default) a node keeps its last good snapshot for as long as the
directory is unreachable (test_cluster_nodes shows that). With max_stale = 8 here: slapd
stopped, the node keeps relaying for the CRM server for a while; once 8 s have passed since
the first failed load, a new connection gets "421 4.3.2 Service not available" and MAIL in a
session opened before gets "451 4.3.2 System not accepting network messages" (what may have
been revoked meanwhile is not served); slapd back, the node serves again on its own.
"""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402
from rnnode import Client, eventually  # noqa: E402

CRM_SRC = "127.0.2.55"
RCPT_OK = "250 2.1.5 Recipient OK"


def relay(E):
    """A fresh session from the CRM server: (banner, RCPT reply) or (banner, None)."""
    try:
        with Client("127.0.0.1", E.smtp_port, source=CRM_SRC, timeout=10) as cl:
            banner = cl.banner[-1] if cl.banner else ""
            if not banner.startswith("220"):
                return banner, None
            cl.ehlo()
            cl.cmd("MAIL FROM:<app@example.com>")
            return banner, cl.cmd("RCPT TO:<someone@outside.example>")
    except (OSError, rnnode.Closed) as e:
        return "error: %s" % e, None


def fact_ts(line):
    """Seconds since midnight of a log line's timestamp (2026-12-06T02:46:50.983Z ...)."""
    hms = line.split(" ", 1)[0].split("T", 1)[1].rstrip("Z")
    h, m, sec = hms.split(":")
    return int(h) * 3600 + int(m) * 60 + float(sec)


def fact_gap(log, first, then):
    """Seconds from the first line holding `first` to the first later line holding `then`."""
    t0 = None
    for line in log.splitlines():
        if t0 is None and first in line:
            t0 = fact_ts(line)
        elif t0 is not None and then in line:
            gap = fact_ts(line) - t0
            return gap + 86400 if gap < 0 else gap
    return None


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    with rnnode.Env("maxstale") as E:
        with open(E.conf, "a") as f:
            f.write("max_stale = 8\n")
        E.node.stop()
        E.node.start()
        env = rntest.read_env(os.path.join(E.dir, "env"))
        banner, r = relay(E)
        t.ok(banner.startswith("220 ") and r == RCPT_OK, "directory up: the CRM server relays",
             "%s / %s" % (banner, r))
        live = Client("127.0.0.1", E.smtp_port, source=CRM_SRC, timeout=10)
        live.ehlo()
        pid = int(open(os.path.join(E.dir, "slapd.pid")).read().strip())
        t_kill = time.monotonic()     # no load can fail before this
        os.kill(pid, signal.SIGTERM)
        t.ok(eventually(lambda: not rntest.pid_alive(pid), 10), "slapd stopped")
        E.node.reload(0)              # the first failed load starts the max_stale clock
        t.ok(eventually(lambda: "keeping=last-good" in E.node.log(), 10),
             "load failed: the last good snapshot serves", E.node.log_tail(5))
        banner, r = relay(E)
        t.ok(r == RCPT_OK and "config expired" not in E.node.log(),
             "within max_stale the CRM server still relays", "%s / %s" % (banner, r))
        expired = eventually(lambda: "config expired" in E.node.log(), 20)
        t.ok(expired and time.monotonic() - t_kill >= 8,
             "after max_stale the node logs 'config expired'", E.node.log_tail(8))
        # The clock starts at the first failed load (the watcher may notice the dead slapd
        # before the test does): measure on the node's own timestamps. The timer counts from
        # the loop's cached time, a few ms before the failure's line is stamped: 50 ms slack.
        gap = fact_gap(E.node.log(), "config load-failed", "config expired")
        t.ok(gap is not None and gap >= 8 - 0.05,
             "'config expired' comes max_stale after the first failed load", "gap=%s" % gap)
        banner, r = relay(E)
        t.eq(banner, "421 4.3.2 Service not available", "a new connection: 421 4.3.2")
        r = live.cmd("MAIL FROM:<app@example.com>")
        t.eq(r, "451 4.3.2 System not accepting network messages",
             "MAIL in a session opened before: 451 4.3.2")
        live.close()
        p = subprocess.run(["/usr/sbin/slapd", "-F", os.path.join(E.dir, "slapd.d"), "-h",
                            "ldap://127.0.0.1:%s/ %s" % (env["SLAPD_PORT"], env["SLAPD_LDAPI"])],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        t.ok(p.returncode == 0, "slapd started again", p.stdout.decode(errors="replace"))
        back = eventually(lambda: "config serving-again" in E.node.log(), 45, 0.5)
        t.ok(back, "the node finds the directory again by itself (watcher or retry)",
             E.node.log_tail(8))
        banner, r = relay(E)
        t.ok(banner.startswith("220 ") and r == RCPT_OK, "and serves again",
             "%s / %s" % (banner, r))
        rc = E.node.stop()
        t.ok(rc == 0, "node exits 0", E.node.log_tail(5))
        # rnnode.Env stops slapd by the pid it started; this one is a new process.
        try:
            os.kill(int(open(os.path.join(E.dir, "slapd.pid")).read().strip()), signal.SIGTERM)
        except (OSError, ValueError):
            pass
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
