#!/usr/bin/env python3
"""`make run` (deploy/run.sh) brings up a working cluster and takes it down on Ctrl-C.

Runs deploy/run.sh with the build under test, NODES=2 and RUN_DIR in a temporary directory,
waits for its banner, then: both nodes answer SMTP with the seed article's behaviour (the
CRM server at 127.0.2.55 relays, an anonymous client does not), `relayctl cluster status`
with the printed config shows both nodes current, the printed option2.ldif command applies
and both nodes still relay for the CRM server; SIGINT stops every node and slapd.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402
from rnnode import Client, eventually  # noqa: E402

ROOT = rnnode.ROOT


def rcpt(port, source):
    with Client("127.0.0.1", port, source=source, timeout=10) as cl:
        cl.ehlo()
        cl.cmd("MAIL FROM:<app@example.com>")
        return cl.cmd("RCPT TO:<someone@outside.example>")


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    build = os.path.dirname(rnnode.relaynode_binary())
    work = tempfile.mkdtemp(prefix="makerun.")
    run_dir = os.path.join(work, "run")
    out_path = os.path.join(work, "run.out")
    out = open(out_path, "wb")
    p = subprocess.Popen(["bash", os.path.join(ROOT, "deploy", "run.sh"), build],
                         env=dict(os.environ, NODES="2", RUN_DIR=run_dir), stdout=out,
                         stderr=subprocess.STDOUT, start_new_session=True)

    def text():
        with open(out_path, errors="replace") as f:
            return f.read()
    pids = []
    try:
        up = eventually(lambda: "Ctrl-C to stop." in text() or p.poll() is not None, 90, 0.5)
        banner = text()
        if not t.ok(up and p.poll() is None, "run.sh printed its banner and keeps running",
                    banner[-3000:]):
            return t.done()
        nodes = re.findall(r"node(\d+)\s+SMTP (\d+)\s+bus (\S+)\s+pid (\d+)", banner)
        t.ok(len(nodes) == 2, "two nodes listed with SMTP port, bus endpoint and pid", banner)
        ports = [int(n[1]) for n in nodes]
        pids = [int(n[3]) for n in nodes]
        m = re.search(r"relayctl cluster status --config (\S+)", banner)
        conf = m.group(1) if m else ""
        conf = conf if os.path.isabs(conf) else os.path.join(ROOT, conf)
        t.ok(all(rcpt(pt, "127.0.2.55") == "250 2.1.5 Recipient OK" for pt in ports),
             "both nodes: the CRM server (127.0.2.55) relays (Option 1)")
        t.ok(all(rcpt(pt, "127.0.0.1") == "550 5.7.1 Unable to relay" for pt in ports),
             "both nodes: an anonymous client may not relay")

        def status_ok():
            r = subprocess.run([os.path.join(build, "relayctl"), "cluster", "status",
                                "--config", conf], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
            return r.returncode == 0 and r.stdout.decode().count(" current ") == 2
        t.ok(eventually(status_ok, 15, 0.5), "relayctl cluster status: both nodes current")
        m = re.search(r"^\s*(ldapmodify .* -f deploy/example/option2.ldif)$", banner, re.M)
        r = subprocess.run(m.group(1), shell=True, cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT) if m else None
        t.ok(r is not None and r.returncode == 0, "the printed option2.ldif command applies",
             r.stdout.decode(errors="replace") if r else "not printed")
        time.sleep(0.5)
        t.ok(all(rcpt(pt, "127.0.2.55") == "250 2.1.5 Recipient OK" for pt in ports),
             "Option 2 on both nodes: the CRM server still relays (anonymous + the right)")
        t.ok(all(rcpt(pt, "127.0.0.1") == "550 5.7.1 Unable to relay" for pt in ports),
             "Option 2: other anonymous clients still may not relay")
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGINT)
        try:
            p.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        out.close()
    t.ok(p.returncode == 130, "Ctrl-C: run.sh exits 130 (got %s)" % p.returncode, text()[-800:])
    t.ok(pids and all(not rntest.pid_alive(x) for x in pids), "every node stopped")
    slapd_pid = None
    try:
        slapd_pid = int(open(os.path.join(run_dir, "slapd.pid")).read().strip())
    except (OSError, ValueError):
        pass
    t.ok(slapd_pid is None or not rntest.pid_alive(slapd_pid), "slapd stopped")
    shutil.rmtree(work, ignore_errors=True)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
