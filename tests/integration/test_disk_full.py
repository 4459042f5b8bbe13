#!/usr/bin/env python3
"""Disk full (issue #5): the spool on a small tmpfs made by the test (needs root: a refused mount
is a failure, not a skip). Below spool_reserve free bytes MAIL gets 452 4.3.1; a message that runs out of
space mid-DATA gets 451 4.3.0 and leaves nothing behind; once space is back the same running
node accepts again, and what it accepted before is intact.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402
from rnnode import Check, Client, queued_id  # noqa: E402

FULL = "452 4.3.1 Insufficient system resources"
MIB = 1024 * 1024


def free_bytes(path):
    v = os.statvfs(path)
    return v.f_bavail * v.f_frsize


def fill_to(path, fill, leave):
    """Grow or shrink the fill file so that about `leave` bytes stay free."""
    cur = os.path.getsize(fill) if os.path.exists(fill) else 0
    target = max(0, cur + free_bytes(path) - leave)
    with open(fill, "ab") as f:
        f.truncate(target)
    if target > cur:
        with open(fill, "r+b") as f:          # really allocate (truncate makes holes)
            f.seek(cur)
            left = target - cur
            while left > 0:
                n = min(left, MIB)
                f.write(b"\0" * n)
                left -= n


def mail_reply(E):
    with Client("127.0.0.1", E.smtp_port, source="127.0.0.1") as cl:
        cl.ehlo()
        return cl.cmd("MAIL FROM:<d@outside.example>")


def send(E, subject, body_bytes):
    with Client("127.0.0.1", E.smtp_port, source="127.0.0.1", timeout=30) as cl:
        line = "y" * 76 + "\r\n"
        body = line * (body_bytes // len(line) + 1)
        r = cl.send_message("d@outside.example", ["alice@example.com"],
                            "Subject: %s\r\n\r\n%s" % (subject, body))
        return r[-1]


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    with rnnode.Env("diskfull") as E:
        small = os.path.join(E.dir, "small")
        os.makedirs(small, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", small],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            t.ok(False, "mount a 12 MiB tmpfs for the spool (the test runs as root)",
                 r.stdout.decode(errors="replace").strip())
            return t.done()
        try:
            E.node.stop()
            spool = os.path.join(small, "spool")
            with open(E.conf) as f:
                conf = [l for l in f if not l.startswith("spool_dir")]
            with open(E.conf, "w") as f:
                f.write("".join(conf) + "spool_dir = %s\nspool_reserve = %d\nqueue_hold = yes\n"
                        % (spool, 2 * MIB))
            E.spool_dir = spool
            E.node.start()
            fill = os.path.join(small, "fill")
            t.run("a message before the disk fills", lambda: bool(queued_id(
                send(E, "before", 1000))))

            def below_reserve():
                c = Check()
                fill_to(small, fill, 1 * MIB)
                c.eq(mail_reply(E), FULL, "1 MiB free, reserve 2 MiB: MAIL")
                return c.result()
            t.run("below spool_reserve: MAIL 452 4.3.1", below_reserve)

            def mid_data():
                c = Check()
                fill_to(small, fill, 3 * MIB)
                c.eq(send(E, "toobig", 5 * MIB),
                     "451 4.3.0 Error writing the message to the queue, try again later",
                     "a 5 MiB message with 3 MiB free")
                c.eq(os.listdir(os.path.join(spool, "tmp")), [], "nothing left in tmp/")
                c.eq(rnnode.spool_find(spool, "Subject: toobig"), {}, "not queued")
                return c.result()
            t.run("out of space mid-DATA: 451 4.3.0, nothing left behind", mid_data)

            def recovers():
                c = Check()
                os.unlink(fill)
                c.true(queued_id(send(E, "after", 1000)), "the same node accepts again")
                c.eq(len(rnnode.spool_find(spool, "Subject: before")), 1,
                     "the message from before is intact")
                c.true(E.node.alive(), "node alive")
                return c.result()
            t.run("space back: accepted again without a restart", recovers)
        finally:
            E.node.stop()
            subprocess.run(["umount", small], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
