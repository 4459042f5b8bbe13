#!/usr/bin/env python3
"""Signals while the node is already stopping never kill it.

The first SIGTERM starts the drain; with no session the node leaves its loop at once and tears
down. A supervisor (systemd's stop, a test harness, an impatient operator) may send SIGTERM
again at any moment of that teardown. Freeing the signal events gives SIGTERM its default action
back, so a node that did not block the stop signals first died of the second one (exit -15,
seen in test_sdnotify on a loaded machine), and a SIGHUP or SIGUSR1 caught just before the
teardown ran a reload or a rescan against freed workers. Here SIGTERM (with SIGINT, SIGHUP and
SIGUSR1 in half the rounds) keeps coming every few milliseconds from the first SIGTERM until
the process is gone: every stop must exit 0 with no sanitizer report.
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402

ROUNDS = 8


def hammer(proc, sigs, every=0.002, limit=30.0):
    """Send sigs in turn until proc exits; return (exit status, signals sent)."""
    sent = 0
    end = time.monotonic() + limit
    while proc.poll() is None and time.monotonic() < end:
        try:
            os.kill(proc.pid, sigs[sent % len(sigs)])
            sent += 1
        except ProcessLookupError:
            break
        time.sleep(every)
    try:
        proc.wait(5)
    except Exception:
        pass
    return proc.returncode, sent


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    with rnnode.Env("stopsig") as E:
        for i in range(ROUNDS):
            if i:
                E.node.start()
            t.ok(rnnode.wait_port("127.0.0.1", E.smtp_port, timeout=20),
                 "round %d: the node serves" % i, E.node.log_tail(5))
            sigs = [signal.SIGTERM] if i % 2 == 0 else [signal.SIGTERM, signal.SIGINT,
                                                          signal.SIGHUP, signal.SIGUSR1]
            rc, sent = hammer(E.node.proc, sigs)
            t.ok(rc == 0, "round %d: %d signals during the stop, exit 0" % (i, sent),
                 "rc=%s\n%s" % (rc, E.node.log_tail(8)))
            E.node.stop()             # reaps, checks the output for sanitizer reports
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
