#!/usr/bin/env python3
"""relayctl queue list|show|retry|remove against a spool a real relaynode wrote.

Three messages go through a node of the example org (rnnode.Env); the node is then stopped
so the state of the spool is ours alone. The delivery state files are written by hand in
the text format of node/spool/spool_state.c. retry's signal is checked with a small Python
process that holds the spool's lock (and wrote its pid into it, as spool_open does) and
records SIGUSR1, since the node's own handler belongs to the queue manager.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402
from rnnode import Check, Client, queued_id  # noqa: E402

ROOT = rntest.ROOT
BUILD = os.environ.get("RELAYNODE_BUILD") or os.path.join(ROOT, "build", "asan")
RELAYCTL = os.environ.get("RELAYCTL") or os.path.join(BUILD, "relayctl")
PID = os.getpid()
NO_ID = "0" * 24                       # a well-formed id no message has

# SIGUSR1 sent to this test process would kill it without a handler: record it instead, so
# a relayctl that signals the wrong process fails a check rather than the whole run.
_usr1 = []
signal.signal(signal.SIGUSR1, lambda s, f: _usr1.append(time.time()))


def relayctl(*args):
    return rntest.run([RELAYCTL, "queue"] + list(args), timeout=60)


def rows(out):
    """Data rows of a list table (header and the count line dropped), split on blanks."""
    lines = out.splitlines()
    return [l.split() for l in lines[1:-1]] if len(lines) > 2 else []


def state_path(spool, mid):
    return os.path.join(spool, "state", mid)


def write_state(spool, mid, attempts, nxt, lines):
    """A state file as spool_state_write writes it (node/spool/spool_state.c)."""
    with open(state_path(spool, mid), "w") as f:
        f.write("RNST 1\nattempts %d\nnext %d\n" % (attempts, nxt))
        for l in lines:
            f.write(l + "\n")


def read_state(spool, mid):
    with open(state_path(spool, mid)) as f:
        return f.read()


# -- cases ---------------------------------------------------------------------------
def case_empty(work):
    c = Check()
    d = os.path.join(work, "empty")
    os.mkdir(d)
    rc, out, err = relayctl("list", "--spool", d)
    c.eq((rc, out), (0, "0 messages\n"), "list on an empty spool")
    rc, out, err = relayctl("list", "--spool", d, "--json")
    c.eq(rc, 0, "list --json exit status")
    c.eq(json.loads(out) if rc == 0 else None, [], "list --json is []")
    rc, out, err = relayctl("list", "--spool", os.path.join(d, "missing"))
    c.eq(rc, 2, "a spool directory that does not exist: exit 2 (never created)")
    c.true(not os.path.exists(os.path.join(d, "missing")), "missing directory not created")
    rc, out, err = relayctl("list", "--spool", d, "-c", "/nonexistent.conf")
    c.eq(rc, 2, "-c and --spool together: exit 2")
    return c.result()


def send(E, sender, rcpts, subject, extra_headers=()):
    msg = "\r\n".join(["From: <%s>" % (sender or "mailer-daemon@outside.example"),
                       "To: <%s>" % rcpts[0], "Subject: %s" % subject] +
                      list(extra_headers)) + "\r\n\r\nbody-%s\r\n" % subject
    with Client("127.0.0.1", E.smtp_port, source="127.0.0.1") as cl:
        r = cl.send_message(sender, rcpts, msg)
    return queued_id(r[-1]), r


def case_send(E, msgs):
    c = Check()
    plan = [("q1-%d@outside.example" % PID, ["alice@example.com", "bob@example.com"], []),
            ("", ["alice@example.com"], []),
            ("alice@example.com", ["bob@internal.example.com", "alice@example.com",
                                   "carol@partner.example.net"],
             ["X-Ctl: a\x1b[31mred\x07"])]
    for i, (sender, rcpts, hdrs) in enumerate(plan):
        subject = "queue-%d-%d" % (PID, i)
        mid, r = send(E, sender, rcpts, subject, hdrs)
        if c.true(mid, "message %d queued" % i, r):
            msgs.append({"id": mid.split("@")[0], "qid": mid, "sender": sender,
                         "rcpts": rcpts, "subject": subject})
    return c.result()


def case_list(E, msgs):
    c = Check()
    rc, out, err = relayctl("list", "-c", E.conf)
    c.eq(rc, 0, "exit status")
    c.true(out.endswith("3 messages\n"), "count line", out)
    r = rows(out)
    c.eq([x[0] for x in r], sorted(m["id"] for m in msgs), "one row per message, by id")
    byid = {x[0]: x for x in r}
    for m in msgs:
        x = byid.get(m["id"])
        if not c.true(x, "row for %s" % m["id"], out):
            continue
        # Id Received Age Sender Rcpts Pending Done Failed Attempts Next Size Connector...
        c.eq(x[3], "<%s>" % m["sender"], "sender of %s" % m["id"])
        c.eq(x[4], str(len(m["rcpts"])), "recipients of %s" % m["id"])
        c.eq(int(x[5]) + int(x[6]) + int(x[7]), len(m["rcpts"]), "pending+done+failed")
        c.true(x[1].endswith("Z") and "T" in x[1], "received in UTC ISO form", x[1])
        c.eq(" ".join(x[11:]), "Default node1", "connector of %s" % m["id"])
    c.true(out.splitlines()[0].split()[:4] == ["Id", "Received", "Age", "Sender"], "header",
           out)
    with open(os.path.join(E.spool_dir, "lock")) as f:
        c.eq(f.read(), "%d\n" % E.node.pid, "the running node's pid is in the lock file")
    rc, out, err = relayctl("list", "--spool", E.spool_dir, "--json")
    c.eq(rc, 0, "--json exit status")
    try:
        j = json.loads(out)
    except ValueError as e:
        return False, "list --json does not parse: %s\n%s" % (e, out)
    c.eq([x["Id"] for x in j], sorted(m["id"] for m in msgs), "--json: ids in order")
    for x in j:
        m = [m for m in msgs if m["id"] == x["Id"]][0]
        c.eq(x["Sender"], m["sender"], "--json Sender")
        c.eq(x["Recipients"], len(m["rcpts"]), "--json Recipients")
        c.eq(x["Pending"] + x["Done"] + x["Failed"], x["Recipients"], "--json counts add up")
        c.true(x["Size"] > 0 and x["Connector"] == "Default node1", "--json Size, Connector", x)
    return c.result()


def case_show(E, msgs):
    c = Check()
    m = msgs[2]
    rc, out, err = relayctl("show", m["id"], "--spool", E.spool_dir)
    c.eq(rc, 0, "exit status")
    c.true("Sender          <alice@example.com>\n" in out, "sender line", out)
    for r in m["rcpts"]:
        c.true("<%s>" % r in out, "recipient %s listed" % r, out)
    c.true(out.count("  pending  <") == 3, "three pending recipients (no state yet)", out)
    c.true("ClientIp        127.0.0.1\n" in out, "client ip", out)
    c.true("Helo            client.test\n" in out, "helo", out)
    c.true("Connector       Default node1\n" in out, "connector", out)
    c.true("AuthAs          Anonymous\n" in out, "AuthAs", out)
    c.true("AuthUser        -\n" in out, "no AUTH user", out)
    c.true("AntispamBypass  false\n" in out, "anti-spam bypass", out)
    c.true("NextAttempt     now\n" in out and "Attempts        0\n" in out, "attempts", out)
    hdr = out.split("Headers\n", 1)[1] if "Headers\n" in out else ""
    c.true("  Received: from client.test" in hdr, "the node's own Received: header", out)
    c.true("  X-Relaynode-Organization-AuthAs: Anonymous" in hdr, "AuthAs stamp header", out)
    c.true("  Subject: %s" % m["subject"] in hdr, "Subject header", out)
    c.true("  X-Ctl: a\\x1B[31mred\\x07" in hdr, "control bytes escaped", repr(hdr))
    c.true("\x1b" not in out and "\x07" not in out, "no raw control byte printed", repr(out))
    c.true("body-%s" % m["subject"] not in out, "the body is not shown", out)
    # The second as the node's 250 reply names it: <id@fqdn>.
    rc, out, err = relayctl("show", m["id"], "<%s>" % msgs[0]["qid"], "--spool", E.spool_dir,
                            "--json")
    try:
        j = json.loads(out)
    except ValueError as e:
        return False, "show --json does not parse: %s\n%s" % (e, out)
    c.eq(rc, 0, "--json exit status")
    c.eq([x["Id"] for x in j], [m["id"], msgs[0]["id"]], "--json: both messages, as asked")
    x = j[0]
    c.eq([r["Address"] for r in x["Recipients"]], m["rcpts"], "--json recipients in order")
    c.eq({r["Status"] for r in x["Recipients"]}, {"pending"}, "--json statuses")
    c.eq((x["ClientIp"], x["Helo"], x["AuthAs"], x["AuthUser"], x["AntispamBypass"]),
         ("127.0.0.1", "client.test", "Anonymous", None, False), "--json session facts")
    c.true(any(h.startswith("Received: from client.test") for h in x["Headers"]),
           "--json Received:", x["Headers"])
    c.true("X-Relaynode-Organization-AuthAs: Anonymous" in x["Headers"], "--json AuthAs",
           x["Headers"])
    c.eq(j[1]["Sender"], msgs[0]["sender"], "--json second message's sender")
    return c.result()


def case_show_unknown(E, msgs):
    c = Check()
    rc, out, err = relayctl("show", NO_ID, "--spool", E.spool_dir)
    c.eq(rc, 1, "unknown id: exit 1")
    c.true(NO_ID in err and out == "", "message on stderr only", (out, err))
    rc, out, err = relayctl("show", "not-an-id", msgs[1]["id"], "--spool", E.spool_dir)
    c.eq(rc, 1, "a bad id among good ones: exit 1")
    c.true("Id              %s" % msgs[1]["id"] in out, "the good one is still shown", out)
    c.true("Sender          <>\n" in out, "null sender shown as <>", out)
    rc, out, err = relayctl("show", "--spool", E.spool_dir)
    c.eq(rc, 2, "show without an id: usage, exit 2")
    return c.result()


def case_big_headers(E):
    """Headers over 64 KiB: show stops there and says so; then remove it beside the running
    node (a second opener)."""
    c = Check()
    pad = ["X-Pad-%03d: %s" % (i, "p" * 900) for i in range(80)]      # about 73 KB
    mid, r = send(E, "big-%d@outside.example" % PID, ["alice@example.com"],
                  "big-%d" % PID, pad + ["X-Last: last-%d" % PID])
    if not c.true(mid, "big-header message queued", r[-3:]):
        return c.result()
    mid = mid.split("@")[0]
    rc, out, err = relayctl("show", mid, "--spool", E.spool_dir)
    c.eq(rc, 0, "exit status")
    c.true("\nHeaders (first 64 KiB)\n" in out, "truncation is said", out[-300:])
    hdr = out.split("Headers (first 64 KiB)\n", 1)[-1]
    c.true(60000 < len(hdr) < 66000 + 200, "about 64 KiB of headers printed", len(hdr))
    c.true("X-Last" not in out and "body-big" not in out, "nothing past 64 KiB", out[-300:])
    rc, out, err = relayctl("show", mid, "--json", "--spool", E.spool_dir)
    x = json.loads(out)[0] if rc == 0 else {}
    c.eq(x.get("HeadersTruncated"), True, "--json HeadersTruncated")
    rc, out, err = relayctl("remove", mid, "--spool", E.spool_dir)
    c.eq((rc, out), (0, "removed %s\n" % mid), "removed beside the running node")
    c.true(not os.path.exists(os.path.join(E.spool_dir, "queue", mid)), "queue file gone")
    c.true(E.node.alive(), "the node still runs")
    return c.result()


def case_state(E, msgs):
    c = Check()
    m = msgs[0]
    later = int(time.time()) + 3600
    write_state(E.spool_dir, m["id"], 3, later, ["D 250 2.0.0 Ok: queued as 4F1A",
                                                 "P 451 4.3.0 try again later"])
    rc, out, err = relayctl("list", "--spool", E.spool_dir)
    x = [r for r in rows(out) if r and r[0] == m["id"]]
    c.true(x, "listed", out)
    if x:
        c.eq(x[0][5:9], ["1", "1", "0", "3"], "pending, done, failed, attempts")
        c.eq(x[0][9], time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(later)), "next attempt")
    rc, out, err = relayctl("show", m["id"], "--spool", E.spool_dir)
    c.true("  done     <alice@example.com>  250 2.0.0 Ok: queued as 4F1A\n" in out,
           "done recipient with its reply", out)
    c.true("  pending  <bob@example.com>  451 4.3.0 try again later\n" in out,
           "pending recipient with its reply", out)
    c.true("Attempts        3\n" in out, "attempts", out)
    # A state the node cannot read is shown as the node treats it: all pending.
    with open(state_path(E.spool_dir, msgs[1]["id"]), "w") as f:
        f.write("garbage\n")
    rc, out, err = relayctl("list", "--spool", E.spool_dir, "--json")
    j = {x["Id"]: x for x in json.loads(out)} if rc == 0 else {}
    c.eq(j.get(msgs[1]["id"], {}).get("Pending"), 1, "unreadable state: all pending")
    c.true(msgs[1]["id"] in err and "unreadable" in err, "and said so on stderr", err)
    os.unlink(state_path(E.spool_dir, msgs[1]["id"]))
    return c.result()


def case_retry_no_node(E, msgs):
    c = Check()
    m = msgs[0]
    before = read_state(E.spool_dir, m["id"])
    rc, out, err = relayctl("retry", "--spool", E.spool_dir)
    c.eq(rc, 0, "exit status")
    c.true("retry %s\n" % m["id"] in out, "the deferred message is retried", out)
    c.true(msgs[1]["id"] not in out and msgs[2]["id"] not in out,
           "messages without state are left alone", out)
    c.true(out.endswith("no running node holds %s; the messages are due at its next start\n"
                        % E.spool_dir), "no running node", out)
    after = read_state(E.spool_dir, m["id"])
    c.eq(after, before.replace("next %s" % before.split("\n")[2].split()[1], "next 0"),
         "state rewritten with next 0, statuses and attempts kept")
    c.true("next 0\n" in after and "attempts 3\n" in after, "next 0", after)
    rc, out, err = relayctl("retry", m["id"], msgs[1]["id"], "--spool", E.spool_dir)
    c.eq(rc, 0, "retry of due messages: exit 0")
    c.true("%s: already due\n" % m["id"] in out and "%s: already due\n" % msgs[1]["id"] in out,
           "already due", out)
    c.true(not os.path.exists(state_path(E.spool_dir, msgs[1]["id"])),
           "no state file is created for a never-attempted message")
    rc, out, err = relayctl("retry", NO_ID, "--spool", E.spool_dir)
    c.eq(rc, 1, "retry of an unknown id: exit 1")
    c.true(NO_ID in err, "named on stderr", err)
    # relayctl itself took the free lock (and wrote its pid): it must not signal itself or
    # the process whose pid was in the file before (this test).
    with open(os.path.join(E.spool_dir, "lock"), "w") as f:
        f.write("%d\n" % PID)
    n = len(_usr1)
    rc, out, err = relayctl("retry", "--spool", E.spool_dir)
    time.sleep(0.2)
    c.eq((rc, len(_usr1)), (0, n), "a pid that does not hold the lock is never signalled")
    c.true("no running node holds" in out, "reported as no node", out)
    return c.result()


DRIVER = r"""
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "node/spool/spool.h"
int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "owner")) {
        printf("%ld\n", (long)spool_owner_pid(argv[2]));
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "open")) {   /* own the spool, then ask */
        struct spool *s;
        char err[256];
        if (spool_open(argv[2], &s, err, sizeof err) < 0) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        printf("%ld %ld\n", (long)getpid(), (long)spool_owner_pid(argv[2]));
        spool_free(&s);
        return 0;
    }
    return 2;
}
"""


def build_driver(work):
    exe, src = os.path.join(work, "owner_driver"), os.path.join(work, "owner_driver.c")
    with open(src, "w") as f:
        f.write(DRIVER)
    rc, out, err = rntest.run(["cc", "-std=gnu11", "-O1", "-g", "-D_GNU_SOURCE", "-I", ROOT,
                               "-o", exe, src] +
                              [os.path.join(ROOT, f) for f in
                               ("node/spool/spool.c", "node/spool/spool_read.c",
                                "node/spool/spool_envelope.c", "node/spool/spool_record.c",
                                "node/spool/spool_state.c", "directory/base/util.c")] + ["-lpthread"])
    return exe if rc == 0 else None, out + err


def owner(exe, d):
    rc, out, err = rntest.run([exe, "owner", d])
    return int(out) if rc == 0 else ("rc %d: %s" % (rc, err))


def case_owner_pid(exe, work):
    """spool_owner_pid: the pid only while a live process holds the lock."""
    c = Check()
    d = os.path.join(work, "owner")
    os.mkdir(d)
    lock = os.path.join(d, "lock")
    c.eq(owner(exe, d), 0, "no lock file: 0")
    rc, out, err = rntest.run([exe, "open", d])
    pids = out.split()
    c.true(rc == 0 and len(pids) == 2 and pids[0] == pids[1],
           "spool_open's owner finds its own pid", (rc, out, err))
    with open(lock) as f:
        c.eq(f.read(), "%s\n" % (pids[0] if pids else "?"), "spool_open wrote its pid + LF")
    c.eq(owner(exe, d), 0, "the owner exited (its pid is still in the file): 0")
    with open(lock, "w") as f:
        f.write("%d\n" % PID)
    c.eq(owner(exe, d), 0, "a live pid that does not hold the lock: 0")
    p = subprocess.Popen(["/usr/bin/python3", "-c", HOLDER, lock], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        c.eq(p.stdout.readline().strip(), "ready", "lock holder ready")
        c.eq(owner(exe, d), p.pid, "a live holder: its pid")
        with open(lock, "w") as f:
            f.write("garbage\n")
        c.eq(owner(exe, d), 0, "held, but no pid in the file: 0")
        rc, out, err = rntest.run([exe, "open", d])
        c.true(rc == 0 and out.split()[1:] == ["0"],
               "a second opener does not take over the lock file", (rc, out, err))
        with open(lock) as f:
            c.eq(f.read(), "garbage\n", "a second opener leaves the pid alone")
    finally:
        p.stdin.close()
        p.wait(10)
    return c.result()


HOLDER = r"""
import fcntl, os, signal, sys
got = []
signal.signal(signal.SIGUSR1, lambda s, f: got.append(1))
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
os.ftruncate(fd, 0)
os.pwrite(fd, b"%d\n" % (int(sys.argv[2]) if len(sys.argv) > 2 else os.getpid()), 0)
print("ready", flush=True)
for line in sys.stdin:              # until "report" or EOF
    if line.strip() == "report":
        break
print("usr1=%d" % len(got), flush=True)
"""


def holder(E, argv0="relaynode", pid=None):
    """The lock holder, its argv[0] "relaynode" (relayctl signals only a relaynode holding
    the lock, judged by /proc/PID/exe or argv[0]); pid: the pid it writes instead of its own."""
    return subprocess.Popen([argv0, "-c", HOLDER, os.path.join(E.spool_dir, "lock")] +
                            ([str(pid)] if pid else []), executable="/usr/bin/python3",
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def case_retry_not_node(E, msgs):
    """The lock file names a live process that is not this spool's relaynode: no signal."""
    c = Check()
    sleeper = subprocess.Popen(["sleep", "60"])
    procs = [sleeper]
    try:
        # A `sleep`'s pid in the file, the lock held by someone (else relayctl takes it).
        p = holder(E, pid=sleeper.pid)
        procs.append(p)
        c.eq(p.stdout.readline().strip(), "ready", "lock holder ready")
        rc, out, err = relayctl("retry", "--spool", E.spool_dir)
        time.sleep(0.3)
        c.true(rc != 0, "exit non-zero", (rc, out, err))
        c.true(sleeper.poll() is None, "the sleep is not signalled (still alive)")
        c.true("no running node holds" in out and "not relaynode" in err,
               "reported as no node, with the reason", (out, err))
        p.stdin.write("report\n")
        p.stdin.flush()
        c.eq(p.stdout.readline().strip(), "usr1=0", "the holder is not signalled either")
        p.wait(10)
        # A lock holder with its own pid, but not relaynode: no signal either.
        p = holder(E, argv0="python3")
        procs.append(p)
        c.eq(p.stdout.readline().strip(), "ready", "second lock holder ready")
        rc, out, err = relayctl("retry", "--spool", E.spool_dir)
        time.sleep(0.3)
        c.true(rc != 0 and "no running node holds" in out, "a non-relaynode holder: no node",
               (rc, out, err))
        p.stdin.write("report\n")
        p.stdin.flush()
        c.eq(p.stdout.readline().strip(), "usr1=0", "and it got no SIGUSR1")
        p.wait(10)
    finally:
        for q in procs:
            if q.poll() is None:
                os.kill(q.pid, signal.SIGKILL)
                q.wait(5)
    return c.result()


def case_retry_signal(E, msgs):
    c = Check()
    m = msgs[0]
    write_state(E.spool_dir, m["id"], 4, int(time.time()) + 600,
                ["D 250 ok", "P 451 4.4.1 connection timed out"])
    p = holder(E)
    try:
        c.eq(p.stdout.readline().strip(), "ready", "lock holder ready")
        rc, out, err = relayctl("retry", m["id"], "--spool", E.spool_dir)
        c.eq(rc, 0, "exit status")
        c.true("retry %s\n" % m["id"] in out, "retried", out)
        c.true(out.endswith("signalled relaynode pid %d to look again\n" % p.pid),
               "the lock holder's pid is signalled", (out, err))
        time.sleep(0.3)
        p.stdin.write("report\n")
        p.stdin.flush()
        c.eq(p.stdout.readline().strip(), "usr1=1", "the holder got one SIGUSR1")
        st = read_state(E.spool_dir, m["id"])
        c.true("attempts 4\nnext 0\nD 250 ok\nP 451 4.4.1 connection timed out\n" in st,
               "state rewritten", st)
        p.wait(10)
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(5)
    # The holder is gone; its pid is still in the lock file: not a running node.
    rc, out, err = relayctl("retry", "--spool", E.spool_dir)
    c.true("no running node holds" in out, "a dead owner's pid is not a running node", out)
    return c.result()


def case_remove(E, msgs):
    c = Check()
    a, b = msgs[0]["id"], msgs[1]["id"]
    rc, out, err = relayctl("remove", a, "--spool", E.spool_dir)
    c.eq((rc, out), (0, "removed %s\n" % a), "remove")
    c.true(not os.path.exists(os.path.join(E.spool_dir, "queue", a)), "queue file gone")
    c.true(not os.path.exists(state_path(E.spool_dir, a)), "state file gone")
    rc, out, err = relayctl("list", "--spool", E.spool_dir)
    c.eq([x[0] for x in rows(out)], sorted([b, msgs[2]["id"]]), "two left")
    rc, out, err = relayctl("remove", a, "--spool", E.spool_dir)
    c.eq(rc, 1, "second remove of the same id: exit 1")
    c.true(a in err and out == "", "named on stderr", (out, err))
    rc, out, err = relayctl("remove", NO_ID, b, "--spool", E.spool_dir)
    c.eq(rc, 1, "remove with one unknown id: exit 1")
    c.eq(out, "removed %s\n" % b, "the known one is still removed")
    rc, out, err = relayctl("show", b, "--spool", E.spool_dir)
    c.eq(rc, 1, "show of a removed message: exit 1")
    rc, out, err = relayctl("list", "--spool", E.spool_dir)
    c.true(out.endswith("1 message\n"), "one message left", out)
    return c.result()


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    work = tempfile.mkdtemp(prefix="rn-queue-")
    try:
        run_cases(t, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return t.done()


def run_cases(t, work):
    t.run("list on an empty spool: '0 messages', [] with --json; bad directories refused",
          case_empty, work)
    exe, why = build_driver(work)
    if t.ok(exe, "spool_owner_pid driver compiles", why):
        t.run("spool_owner_pid: spool_open writes its pid; a pid counts only while its "
              "process holds the lock", case_owner_pid, exe, work)
    msgs = []
    with rnnode.Env("queue") as E:
        # Hold the queue: the node accepts and keeps everything, so what relayctl shows is
        # exactly what the test made (no delivery attempt writes state meanwhile).
        with open(E.conf, "a") as f:
            f.write("queue_hold = yes\n")
        E.node.stop()
        E.node.start()
        t.run("three messages through a real node", case_send, E, msgs)
        if len(msgs) != 3:
            t.ok(False, "cannot go on without the three messages")
            return
        t.run("list (node running): one row each, senders, recipient counts; --json parses",
              case_list, E, msgs)
        t.run("show: envelope, recipients, session facts, headers (node's Received:, AuthAs, "
              "control bytes escaped); --json", case_show, E, msgs)
        t.run("show refuses an unknown id with exit 1, still shows the others",
              case_show_unknown, E, msgs)
        t.run("show stops after 64 KiB of headers; remove beside a running node",
              case_big_headers, E)
        E.node.stop()
        t.run("delivery state: done/pending counts, attempts, next attempt, replies; an "
              "unreadable state is shown all pending", case_state, E, msgs)
        t.run("retry without a node: state rewritten with next 0, already-due messages "
              "untouched, unknown id exit 1, a pid not holding the lock not signalled",
              case_retry_no_node, E, msgs)
        t.run("retry with a process holding the spool lock: SIGUSR1 to its pid",
              case_retry_signal, E, msgs)
        t.run("retry when the lock file names a process that is not the spool's relaynode "
              "(a sleep, a non-relaynode holder): nothing signalled, exit non-zero",
              case_retry_not_node, E, msgs)
        t.run("remove: deletes message and state, a second remove exits 1, the others are "
              "still removed", case_remove, E, msgs)


if __name__ == "__main__":
    sys.exit(main())
