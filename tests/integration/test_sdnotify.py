#!/usr/bin/python3
"""test_sdnotify: relaynode under a service manager, against a throwaway slapd holding the
example organisation.

  NOTIFY_SOCKET (an AF_UNIX datagram socket this test binds): READY=1 arrives once, and only
  when the SMTP port already accepts; a STATUS= line names the applied version; STOPPING=1
  at SIGTERM. SIGHUP reopens the log file: after a rename (logrotate) a new file appears at
  the configured path and gets the new lines. Detached with --pidfile: the pid in the file
  and in the spool's lock file is the live daemon's (/proc/PID/exe is relaynode), and
  `relayctl queue retry` signals exactly that process.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402

BUILD = os.environ.get("RELAYNODE_BUILD") or os.path.join(rnnode.ROOT, "build", "asan")
RELAYCTL = os.environ.get("RELAYCTL") or os.path.join(BUILD, "relayctl")


def node_args(binary):
    """--allow-root when running as root and the binary knows the option (it comes with the
    privilege drop; before it, root runs without it)."""
    if os.geteuid() != 0:
        return []
    rc, out, err = rntest.run([binary, "--help"])
    return ["--allow-root"] if "--allow-root" in out + err else []


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def recv_until(sock, want, timeout):
    """Datagrams received until one equals or starts with want (or the timeout): a list."""
    got = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        sock.settimeout(max(0.05, end - time.monotonic()))
        try:
            msg = sock.recv(4096).decode(errors="replace")
        except socket.timeout:
            break
        got.append((msg, rnnode.wait_port("127.0.0.1", PORT[0], timeout=0.01)
                    if msg == "READY=1" else None))
        if msg.startswith(want):
            break
    return got


PORT = [0]


def foreground(t, fx, binary):
    sock_path = os.path.join(fx.dir, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    PORT[0] = fx.smtp_port
    logfile = os.path.join(fx.dir, "relaynode.log")
    node = rnnode.Node(fx.conf, log_path=os.path.join(fx.dir, "node.out"),
                       extra_args=node_args(binary), env={"NOTIFY_SOCKET": sock_path})
    try:
        node.start()
        got = recv_until(sock, "READY=1", 30)
        ready = [accepting for msg, accepting in got if msg == "READY=1"]
        t.ok(ready == [True], "READY=1 arrives, and the SMTP port accepts by then",
             "%r\n%s" % (got, node.log_tail()))
        status = [m for m, _ in got if m.startswith("STATUS=")]
        m = re.match(r"STATUS=serving version (\S+), (\d+) connectors$",
                     status[-1] if status else "")
        t.ok(m and rnnode.eventually(lambda: ("version=%s " % m.group(1)) in read(logfile), 10),
             "a STATUS= line names the applied version (the one the log says was loaded)",
             "%r\n%s" % (got, read(logfile)[-2000:]))

        os.rename(logfile, logfile + ".1")
        node.signal(signal.SIGHUP)
        t.ok(rnnode.eventually(lambda: os.path.exists(logfile), 10),
             "SIGHUP after a rename: a new log file appears", read(logfile + ".1")[-1500:])
        t.ok(rnnode.eventually(lambda: " config " in read(logfile), 15),
             "the new log file gets the new lines (the reload's)", read(logfile))
        t.ok("reload-requested" in read(logfile + ".1"),
             "the renamed file kept the lines before the reopen", read(logfile + ".1")[-1500:])

        node.signal(signal.SIGTERM)
        got = recv_until(sock, "STOPPING=1", 15)
        t.ok(any(msg == "STOPPING=1" for msg, _ in got), "STOPPING=1 at SIGTERM", repr(got))
        rc = node.stop()
        t.ok(rc == 0, "the node drains and exits 0", "rc=%s\n%s" % (rc, node.log_tail()))
    finally:
        node.stop()
        sock.close()


def lock_pid(fx):
    try:
        with open(os.path.join(fx.spool_dir, "lock")) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return None


def detached(t, fx, binary):
    pidfile = os.path.join(fx.dir, "relaynode.pid")
    rc, out, err = rntest.run([binary, "-c", fx.conf, "--pidfile", pidfile] + node_args(binary),
                              timeout=30)
    pid = None
    if rnnode.eventually(lambda: read(pidfile).strip(), 10):
        pid = int(read(pidfile).strip())
    try:
        exe = os.readlink("/proc/%d/exe" % pid) if pid else ""
    except OSError:
        exe = ""
    t.ok(rc == 0 and pid and os.path.basename(exe) == "relaynode",
         "detached: the pid file names the live relaynode (/proc/PID/exe)",
         "rc=%s pid=%s exe=%s %s" % (rc, pid, exe, err))
    if not pid:
        return
    try:
        t.ok(rnnode.wait_port("127.0.0.1", fx.smtp_port, timeout=20),
             "the detached daemon listens", read(os.path.join(fx.dir, "relaynode.log"))[-1500:])
        t.eq(lock_pid(fx), pid, "the spool's lock file holds the daemon's pid (after the fork)")
        rc, out, err = rntest.run([RELAYCTL, "queue", "retry", "--spool", fx.spool_dir],
                                  timeout=30)
        t.ok(rc == 0 and out.endswith("signalled relaynode pid %d to look again\n" % pid),
             "relayctl queue retry signals the running daemon", (rc, out, err))
        t.ok(rnnode.eventually(lambda: "rescan-requested" in
                               read(os.path.join(fx.dir, "relaynode.log")), 10),
             "and the daemon got SIGUSR1", read(os.path.join(fx.dir, "relaynode.log"))[-1500:])
    finally:
        os.kill(pid, signal.SIGTERM)
        if not rnnode.eventually(lambda: not rntest.pid_alive(pid), 20):
            os.kill(pid, signal.SIGKILL)
    t.ok(not os.path.exists(pidfile), "SIGTERM stops it and removes the pid file")


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    binary = rnnode.relaynode_binary()
    fx = rntest.Slapd().start()
    try:
        foreground(t, fx, binary)
        detached(t, fx, binary)
    finally:
        fx.stop()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
