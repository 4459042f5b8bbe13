#!/usr/bin/env python3
"""The order of the durability system calls, read from strace (docs/reliability.md §2).

kill -9 cannot show a missing fsync (the page cache survives a process crash), so this test
records the node's system calls (strace -f -tt -y) while concurrent clients pipeline
messages, and checks for every message acknowledged with "250 2.6.0 <id@...>":
  - its file's data was made durable (an fsync of tmp/<id>, or a syncfs that started after
    the last write to tmp/<id>) and
  - it was renamed into queue/, and an fsync of the queue/ directory started after that
    rename,
  all completed before the write of its 250 on the socket began.
Run twice: on this machine's kernel (a batch of several messages uses one syncfs on Linux
>= 5.8), and with RELAYNODE_FAULT_KERNEL=5.4.0 (test builds only) where syncfs cannot be
trusted: the node must log mode=fsync-per-file, never call syncfs, and fsync every file.
Prints TAP lines."""
import os
import re
import signal
import stat
import sys
import tempfile
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402

CLIENTS = 8
PER_CLIENT = 3
TRACED = "openat,close,write,writev,sendmsg,sendto,fsync,fdatasync,syncfs,renameat2,linkat"

LINE = re.compile(r"^(\d+)\s+\d\d:\d\d:\d\d\.\d+\s+(.*)$")
CALL = re.compile(r"^(\w+)\((.*)$")
RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
RESULT = re.compile(r"\)\s+=\s+(-?\d+|\?)(?:\s.*)?$")
FDPATH = re.compile(r"^\d+<([^>]*)>")
QUEUED = re.compile(r"250 2\.6\.0 <([0-9A-F]{24})@")


def parse_strace(path):
    """[{pid, name, args, start, end, ret}] in the order the calls began; a call split by
    another thread (<unfinished ...> / <... resumed>) is joined, start and end are the line
    numbers of its beginning and its completion."""
    calls, pending = [], {}
    with open(path, errors="replace") as f:
        for i, raw in enumerate(f):
            m = LINE.match(raw.rstrip("\n"))
            if not m:
                continue
            pid, rest = int(m.group(1)), m.group(2)
            r = RESUMED.match(rest)
            if r:
                c = pending.pop(pid, None)
                if c is None or c["name"] != r.group(1):
                    continue
                c["args"] += r.group(2)
                c["end"] = i
            else:
                m2 = CALL.match(rest)
                if not m2:
                    continue           # signals, exits
                c = {"pid": pid, "name": m2.group(1), "args": m2.group(2), "start": i, "end": i}
                calls.append(c)
                if rest.endswith("<unfinished ...>"):
                    c["args"] = c["args"][:-len("<unfinished ...>")]
                    pending[pid] = c
                    continue
            res = RESULT.search(c["args"])
            c["ret"] = int(res.group(1)) if res and res.group(1) != "?" else None
    return calls


def fd_path(c):
    m = FDPATH.match(c["args"])
    return m.group(1) if m else None


def check_order(calls, spool, ids, per_file_only):
    """Problems (strings) with the order of the durability calls of each acknowledged id."""
    tmp, queue = os.path.join(spool, "tmp"), os.path.join(spool, "queue")
    ok = [c for c in calls if c.get("ret") is not None and c["ret"] >= 0]
    syncs = [c for c in ok if c["name"] == "syncfs"]
    dirsyncs = [c for c in ok if c["name"] in ("fsync", "fdatasync") and fd_path(c) == queue]
    problems = []
    if per_file_only and syncs:
        problems.append("%d syncfs calls although syncfs is not trusted" % len(syncs))
    for qid in ids:
        f = os.path.join(tmp, qid)
        acks = [c for c in ok if c["name"] in ("write", "writev", "sendmsg", "sendto") and
                ("250 2.6.0 <%s@" % qid) in c["args"]]
        if not acks:
            problems.append("%s: no write of its 250 in the trace" % qid)
            continue
        w = acks[0]["start"]
        writes = [c for c in ok if c["name"] in ("write", "writev") and fd_path(c) == f]
        renames = [c for c in ok if c["name"] in ("renameat2", "linkat") and
                   ('"%s"' % qid) in c["args"]]
        if not writes or not renames:
            problems.append("%s: writes=%d renames=%d in the trace" % (qid, len(writes),
                                                                      len(renames)))
            continue
        last_write, ren = writes[-1]["end"], renames[0]
        fsyncs = [c for c in ok if c["name"] in ("fsync", "fdatasync") and fd_path(c) == f and
                  c["start"] > last_write and c["end"] < ren["start"]]
        covering = [c for c in syncs if c["start"] > last_write and c["end"] < ren["start"]]
        if per_file_only and not fsyncs:
            problems.append("%s: no fsync of its own file before the rename" % qid)
        elif not fsyncs and not covering:
            problems.append("%s: neither an fsync of its file nor a syncfs after its last "
                            "write and before its rename" % qid)
        if not (ren["end"] < w):
            problems.append("%s: rename completes after its 250 is written" % qid)
        if not any(c["start"] > ren["end"] and c["end"] < w for c in dirsyncs):
            problems.append("%s: no fsync of queue/ between its rename and its 250" % qid)
    return problems


def client(port, marker, barrier, out, errors):
    try:
        with rnnode.Client("127.0.0.1", port, source="127.0.0.1", timeout=60) as cl:
            cl.ehlo()
            for k in range(PER_CLIENT):
                # PIPELINING: MAIL, RCPT and DATA in one write.
                cl.send_raw("MAIL FROM:<app@outside.example>\r\nRCPT TO:<alice@example.com>"
                            "\r\nDATA\r\n")
                replies = [cl.reply(60) for _ in range(3)]
                if not replies[2].startswith("354"):
                    errors.append("pipelined MAIL/RCPT/DATA: %r" % replies)
                    return
                try:
                    barrier.wait(30)        # the final dots arrive together: batches
                except threading.BrokenBarrierError:
                    pass
                cl.send_raw("Subject: %s-%d\r\n\r\nbody %d\r\n.\r\n" % (marker, k, k))
                r = cl.reply(60)
                m = QUEUED.search(r)
                if not m:
                    errors.append("final reply %r" % r)
                    return
                out.append(m.group(1))
            cl.cmd("QUIT")
    except Exception as e:  # noqa: BLE001 - reported as a failure
        errors.append("client: %r" % e)


def run_traced(t, S, label, env):
    """One node under strace; returns (trace file, acknowledged ids, node log)."""
    work = tempfile.mkdtemp(prefix="rn-strace-")
    trace = os.path.join(work, "trace")
    wrapper = os.path.join(work, "relaynode")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec strace -f -tt -y -qq -s 512 -e trace=%s -o %s %s \"$@\"\n"
                % (TRACED, trace, rnnode.relaynode_binary()))
    os.chmod(wrapper, stat.S_IRWXU)
    # LeakSanitizer cannot run under ptrace (it stops with a fatal error at exit): leaks are
    # checked by every other test's nodes; ASan's and UBSan's other checks stay on here.
    env = dict(env or {})
    env["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    node = rnnode.Node(S.conf, ports=[S.smtp_port], binary=wrapper, env=env,
                       log_path=os.path.join(work, "relaynode.out"))
    ids, errors = [], []
    node.start(timeout=60)
    try:
        barrier = threading.Barrier(CLIENTS)
        threads = [threading.Thread(target=client, args=(S.smtp_port, "%s-%d" % (label, i),
                                                           barrier, ids, errors))
                   for i in range(CLIENTS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
    finally:
        # strace's pid is the one Node knows; the node itself owns the spool lock.
        pid = int(open(os.path.join(S.spool_dir, "lock")).read().split()[0])
        os.kill(pid, signal.SIGTERM)
        try:
            node.proc.wait(60)
        except Exception:  # noqa: BLE001
            os.kill(pid, signal.SIGKILL)
            node.proc.wait(10)
    t.ok(not errors, "%s: every client got 250 for its %d pipelined messages" % (label,
                                                                                  PER_CLIENT),
         "\n".join(errors))
    return trace, ids, node.log()


def stats(log):
    m = re.findall(r"spool commit-stats batches=(\d+) messages=(\d+)", log)
    return (int(m[-1][0]), int(m[-1][1])) if m else (0, 0)


def main():
    t = rntest.Tap()
    with rntest.Slapd() as S:
        spool = os.path.realpath(S.spool_dir)
        for label, env, per_file in (("native", None, False),
                                     ("kernel-5.4", {"RELAYNODE_FAULT_KERNEL": "5.4.0-fake"},
                                      True)):
            trace, ids, log = run_traced(t, S, label, env)
            want_mode = "fsync-per-file" if per_file else "syncfs"
            if not per_file:
                u = os.uname().release.split(".")
                if (int(u[0]), int(re.match(r"\d+", u[1]).group())) < (5, 8):
                    want_mode = "fsync-per-file"
            t.ok("spool sync-mode mode=%s" % want_mode in log,
                 "%s: the node logs spool sync-mode mode=%s" % (label, want_mode),
                 "\n".join(l for l in log.splitlines() if "sync-mode" in l))
            t.eq(len(ids), CLIENTS * PER_CLIENT, "%s: acknowledged messages" % label)
            batches, msgs = stats(log)
            t.ok(msgs > batches > 0, "%s: commits were batched (batches=%d messages=%d)"
                 % (label, batches, msgs))
            calls = parse_strace(trace)
            problems = check_order(calls, spool, ids, per_file or want_mode != "syncfs")
            t.ok(not problems, "%s: for each 250, the file sync, the rename and the queue/ "
                 "fsync come first (%d calls traced)" % (label, len(calls)),
                 "\n".join(problems[:20]))
            if per_file:
                n = sum(1 for c in calls if c["name"] == "fsync")
                t.ok(n >= len(ids), "%s: one fsync per file at least (%d fsyncs, %d messages)"
                     % (label, n, len(ids)))
            else:
                t.diag("%s: %d syncfs calls" % (label, sum(1 for c in calls
                                                            if c["name"] == "syncfs")))
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
