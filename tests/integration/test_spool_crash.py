#!/usr/bin/env python3
"""Crash test for the spool (docs/reliability.md G1/G2): a writer process commits messages as fast
as it can and is killed with SIGKILL at random moments. After each kill a checker reopens the
spool (which empties tmp/ and quarantines undecodable files) and we require:
  - every message whose commit returned 0 (reported by the writer only after the return) is
    listed by spool_foreach, with the same size and data checksum as written;
  - nothing is quarantined and every file in queue/ decodes (no torn file is ever in queue/),
    checked both by the C reader and by an independent Python decoder of the format;
  - tmp/ is empty after reopening.
The driver is a small C program compiled here from the spool's sources (node/spool/spool*.c) and
directory/base/util.c. Prints TAP lines."""
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib

ROOT = os.environ.get("RELAYNODE_ROOT",
                      os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ROUNDS = 12

DRIVER = r'''
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "directory/base/util.h"
#include "node/spool/spool.h"
#include "node/spool/spool_record.h"

static int crc_fn(void *a, const void *p, size_t n)
{
    uint32_t *crc = a;
    *crc = spool_rec_crc32(*crc, p, n);
    return 0;
}

/* Checksum each listed message's data as delivery would read it. */
static int list_fn(const struct spool_entry *e, void *arg)
{
    struct spool *s = arg;
    char err[RN_ERRLEN];
    uint32_t crc = 0;
    if (spool_read_data(s, e->id, crc_fn, &crc, err, sizeof err) < 0) {
        printf("BADDATA %s %s\n", e->id, err);
        return 0;
    }
    printf("LISTED %s %llu %08x %zu %s\n", e->id, (unsigned long long)e->size, crc, e->nrcpts,
           e->sender);
    return 0;
}

int main(int argc, char **argv)
{
    char err[RN_ERRLEN];
    struct spool *s;
    if (argc < 3)
        return 2;
    if (spool_open(argv[2], &s, err, sizeof err) < 0) {
        fprintf(stderr, "open: %s\n", err);
        return 1;
    }
    if (strcmp(argv[1], "check") == 0) {
        const struct spool_quarantined *q;
        size_t nq = spool_quarantine_list(s, &q);
        for (size_t i = 0; i < nq; i++)
            printf("QUARANTINED %s %s\n", q[i].name, q[i].reason);
        if (spool_foreach(s, list_fn, s, err, sizeof err) != 0) {
            fprintf(stderr, "foreach: %s\n", err);
            return 1;
        }
        spool_free(&s);
        return 0;
    }
    printf("READY\n");              /* recovery done: the kill timer starts now */
    fflush(stdout);
    srand((unsigned)getpid());
    static char data[200000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)rand();
    for (unsigned long n = 0;; n++) {
        char sender[64], r1[64], r2[64];
        snprintf(sender, sizeof sender, "s%lu@example.com", n);
        snprintf(r1, sizeof r1, "a%lu@example.org", n);
        snprintf(r2, sizeof r2, "b%lu@example.org", n);
        const char *rcpts[] = {r1, r2};
        struct spool_envelope env = {sender, rcpts, 1 + n % 2, "127.0.0.1", "h", "c", NULL,
                                     "Anonymous", n % 3 == 0, (time_t)n};
        struct spool_msg *m = spool_msg_new(s, &env, err, sizeof err);
        if (!m) {
            fprintf(stderr, "new: %s\n", err);
            return 1;
        }
        size_t size = (size_t)rand() % sizeof data, off = 0;
        size_t start = (size_t)rand() % 1000;
        if (start + size > sizeof data)
            size = sizeof data - start;
        while (off < size) {
            size_t k = 1 + (size_t)rand() % 20000;
            if (k > size - off)
                k = size - off;
            if (spool_msg_write(m, data + start + off, k, err, sizeof err) < 0) {
                fprintf(stderr, "write: %s\n", err);
                return 1;
            }
            off += k;
        }
        char id[64];
        snprintf(id, sizeof id, "%s", spool_msg_id(m));
        if (spool_msg_commit(&m, err, sizeof err) < 0) {
            fprintf(stderr, "commit: %s\n", err);
            return 1;
        }
        /* Reported only after commit returned: the "250" of this test. */
        printf("COMMITTED %s %zu %08x\n", id, size, spool_rec_crc32(0, data + start, size));
        fflush(stdout);
    }
}
'''


def py_decode(b):
    """Independent decoder of the spool format: (data_size, data_crc) or raise ValueError."""
    if b[:5] != b"RNQ1\x01":
        raise ValueError("bad header")
    off, total, dcrc = 5, 0, 0
    while True:
        if off + 5 > len(b):
            raise ValueError("truncated at %d" % off)
        t, ln = b[off], struct.unpack(">I", b[off + 1:off + 5])[0]
        if off + 5 + ln > len(b):
            raise ValueError("record past end at %d" % off)
        p = b[off + 5:off + 5 + ln]
        if t == 11:
            size, crc = struct.unpack(">QI", p)
            if crc != zlib.crc32(b[:off]) or size != total or off + 5 + ln != len(b):
                raise ValueError("bad END")
            return total, dcrc
        if t == 10:
            total += ln
            dcrc = zlib.crc32(p, dcrc)
        elif not 1 <= t <= 9:
            raise ValueError("unknown type %d" % t)
        off += 5 + ln


def main():
    n = 0
    failures = 0

    def ok(cond, name, detail=""):
        nonlocal n, failures
        n += 1
        print("%s %d - %s" % ("ok" if cond else "not ok", n, name))
        if not cond:
            failures += 1
            if detail:
                print("# " + str(detail).replace("\n", "\n# "))
        sys.stdout.flush()

    work = tempfile.mkdtemp(prefix="spool_crash.")
    try:
        exe = os.path.join(work, "spool_driver")
        src = os.path.join(work, "spool_driver.c")
        with open(src, "w") as f:
            f.write(DRIVER)
        cc = subprocess.run(["cc", "-std=gnu11", "-O1", "-g", "-D_GNU_SOURCE", "-I", ROOT, "-o",
                             exe, src, os.path.join(ROOT, "node/spool/spool.c"),
                             os.path.join(ROOT, "node/spool/spool_read.c"),
                             os.path.join(ROOT, "node/spool/spool_envelope.c"),
                             os.path.join(ROOT, "node/spool/spool_record.c"),
                             os.path.join(ROOT, "node/spool/spool_state.c"),
                             os.path.join(ROOT, "directory/base/util.c"), "-lpthread"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        ok(cc.returncode == 0, "driver compiles", cc.stdout.decode(errors="replace"))
        if cc.returncode != 0:
            return 1
        spool = os.path.join(work, "spool")
        committed = {}
        rng = random.Random(os.getpid())
        kills_mid_write = 0
        for r in range(ROUNDS):
            out = os.path.join(work, "out.%d" % r)
            with open(out, "wb") as fo:
                p = subprocess.Popen([exe, "write", spool], stdout=fo, stderr=subprocess.PIPE)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and p.poll() is None:
                    with open(out, "rb") as f:
                        if f.read(6) == b"READY\n":
                            break
                    time.sleep(0.01)
                time.sleep(rng.uniform(0.02, 0.5))
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
                err = p.stderr.read().decode(errors="replace")
                p.stderr.close()
            with open(out, "rb") as f:
                for line in f.read().decode().splitlines():
                    parts = line.split()
                    if len(parts) == 4 and parts[0] == "COMMITTED":   # a partial last line is
                        committed[parts[1]] = (int(parts[2]), parts[3])  # not a report
            if err.strip():
                ok(False, "round %d: writer ran without errors" % r, err)
            tmpdir = os.path.join(spool, "tmp")
            kills_mid_write += bool(os.listdir(tmpdir)) if os.path.isdir(tmpdir) else 0
            chk = subprocess.run([exe, "check", spool], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, timeout=120)
            lines = chk.stdout.decode(errors="replace").splitlines()
            listed = {}
            bad = [l for l in lines if not l.startswith("LISTED ")]
            for l in lines:
                if l.startswith("LISTED "):
                    f_ = l.split()
                    listed[f_[1]] = (int(f_[2]), f_[3])
            missing = [i for i, v in committed.items() if listed.get(i) != v]
            ok(chk.returncode == 0 and not bad and not missing,
               "round %d: all %d committed messages listed intact, nothing quarantined or torn"
               % (r, len(committed)),
               "rc=%d bad=%s missing=%s" % (chk.returncode, bad[:5], missing[:5]))
            ok(os.listdir(tmpdir) == [], "round %d: tmp/ empty after reopen" % r)
            qdir = os.path.join(spool, "queue")
            pyerr = []
            for name in sorted(os.listdir(qdir)):
                with open(os.path.join(qdir, name), "rb") as f:
                    try:
                        size, crc = py_decode(f.read())
                    except ValueError as e:
                        pyerr.append("%s: %s" % (name, e))
                        continue
                if name in committed and committed[name] != (size, "%08x" % crc):
                    pyerr.append("%s: size/crc differ" % name)
            ok(not pyerr and len(os.listdir(qdir)) == len(listed),
               "round %d: independent decoder accepts all %d queue files" % (r, len(listed)),
               pyerr[:5])
        ok(len(committed) > 0, "writers committed %d messages over %d kills (%d killed with a "
           "message in tmp/)" % (len(committed), ROUNDS, kills_mid_write))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        print("1..%d" % n, flush=True)      # the plan: tests/run.sh fails a stream without one
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
