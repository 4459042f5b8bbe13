#!/usr/bin/python3
"""test_daemon: relaynode as a process, against a throwaway slapd holding the example
organisation (deploy/slapd/fixture.sh).

  --version / unknown flags; --check on the example (exit 0, three connectors) and with a
  connector that validation refuses (exit 1, DN and attribute named) and with no directory
  (exit 2); --list-spool; then a node in the foreground: fail closed while the directory is
  down, listens on the example's SMTP (IPv4 and IPv6) and submission ports once it has a
  snapshot, follows ldapmodify + SIGHUP (a new binding opens, an open session on the old port
  is untouched, a removed binding closes), keeps serving its last snapshot when slapd is gone,
  and drains on SIGTERM with exit 0.
"""
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402

ROOT = rnnode.ROOT
free_port = rntest.free_port
NODE1 = "cn=node1,cn=Default-Site,cn=Sites,ou=Relay,dc=example,dc=com"


def have_ipv6():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def read_log(fx):
    try:
        with open(os.path.join(fx.dir, "relaynode.log"), errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def stop_slapd(fx):
    """Stop slapd but keep its directory (the node's conf and log live there)."""
    rntest.run(["bash", rntest.FIXTURE, "stop", fx.dir])


def relaynode(*args, timeout=60):
    r = subprocess.run([rnnode.relaynode_binary()] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def connector_ldif(cn, bindings, mechs=("Tls",), extra=""):
    lines = ["dn: cn=%s,%s" % (cn, NODE1), "changetype: add",
             "objectClass: relayReceiveConnector", "cn: %s" % cn, "relayEnabled: TRUE"]
    lines += ["relayBinding: %s" % b for b in bindings]
    lines += ["relayRemoteIPRange: 0.0.0.0-255.255.255.255"]
    lines += ["relayAuthMechanism: %s" % m for m in mechs]
    lines += ["relayAce: allow; NT AUTHORITY\\ANONYMOUS LOGON; ms-Exch-SMTP-Submit"]
    return "\n".join(lines) + "\n" + extra + "\n"


def delete_ldif(cn):
    return "dn: cn=%s,%s\nchangetype: delete\n\n" % (cn, NODE1)


def main():
    t = rntest.Tap()
    binary = rnnode.relaynode_binary()
    if not os.path.exists(binary):
        t.ok(False, "relaynode binary exists at %s" % binary)
        return t.done()

    rc, out, err = relaynode("--version")
    t.ok(rc == 0 and out.startswith("relaynode "), "--version prints the version", out + err)
    rc, out, err = relaynode("-c", "/dev/null", "--no-such-flag")
    t.ok(rc == 2 and "usage:" in err, "unknown flag: usage on stderr, exit 2", err)
    rc, out, err = relaynode("--foreground")
    t.ok(rc == 2 and "usage:" in err, "no -c: usage, exit 2", err)
    rc, out, err = relaynode("--help-config")
    t.ok(rc == 0 and all(re.search(r"^%s +=" % k, out, re.M) for k in (
         "uri", "spool_dir", "tls_cert", "dns_server", "queue_lifetime", "queue_hold")),
         "--help-config lists every bootstrap key with its default", out + err)

    fx = rntest.Slapd().start()
    node = None
    try:
        # -- --check -------------------------------------------------------------------
        rc, out, err = relaynode("-c", fx.conf, "--check")
        t.ok(rc == 0, "--check on the example exits 0", out + err)
        names = [l.split(" ", 1)[1] for l in out.splitlines() if l.startswith("connector ")]
        t.ok(sorted(names) == ["CRM Application", "Client node1", "Default node1"],
             "--check lists the three connectors", out)
        t.ok("errors: 0" in out and "accepted domains:" in out and "send connectors:" in out,
             "--check prints domains, send connectors and an error count", out)
        t.ok("permission groups:" in out and "auth mechanisms:" in out and "aces:" in out,
             "--check prints auth mechanisms, derived groups and ACE counts", out)

        bad_dn = "cn=Broken,%s" % NODE1
        rcm, mout, merr = fx.ldapmodify(connector_ldif(
            "Broken", ["127.0.0.1:%d" % free_port()], mechs=("Tls", "BasicAuthRequireTLS")))
        t.ok(rcm == 0, "ldapmodify adds a connector with BasicAuthRequireTLS but no BasicAuth",
             mout + merr)
        rc, out, err = relaynode("-c", fx.conf, "--check")
        errs = [l for l in out.splitlines() if l.startswith("error:")]
        t.ok(rc == 1, "--check with a refused connector exits 1", out + err)
        t.ok(any(bad_dn.lower() in l.lower() and "relayauthmechanism" in l.lower()
                 for l in errs), "--check names the refused DN and attribute", out)
        names = [l.split(" ", 1)[1] for l in out.splitlines() if l.startswith("connector ")]
        t.ok("Broken" not in names and len(names) == 3,
             "the refused connector is absent, the others still load", out)
        rcm, mout, merr = fx.ldapmodify(delete_ldif("Broken"))
        t.ok(rcm == 0, "ldapmodify deletes the broken connector", mout + merr)

        down_conf = os.path.join(fx.dir, "down.conf")
        with open(fx.conf) as f, open(down_conf, "w") as g:
            for line in f:
                g.write("uri = ldap://127.0.0.1:%d/\n" % free_port()
                        if line.startswith("uri") else line)
        rc, out, err = relaynode("-c", down_conf, "--check")
        t.ok(rc == 2, "--check with no reachable directory exits 2", out + err)

        # -- --list-spool --------------------------------------------------------------
        rc, out, err = relaynode("-c", fx.conf, "--list-spool")
        t.ok(rc == 0 and "0 messages" in out, "--list-spool on an empty spool exits 0",
             out + err)

        # -- fail closed while the directory is down -----------------------------------
        node = rnnode.Node(down_conf, log_path=os.path.join(fx.dir, "down.out"))
        node.start()
        time.sleep(1.5)
        t.ok(node.alive() and rnnode.port_closed("127.0.0.1", fx.smtp_port, timeout=1),
             "no snapshot: the node runs but does not listen (fail closed)", read_log(fx))
        t.ok(rnnode.eventually(lambda: read_log(fx).count("config load-failed") >= 2, 6),
             "failed loads are logged and retried with backoff", read_log(fx))
        rc = node.stop(timeout=10)
        t.ok(rc == 0, "SIGTERM before any snapshot exits 0", "rc=%s\n%s" % (rc, node.log()))
        node = None

        # -- detached: double fork, pid file, SIGTERM by that pid ----------------------
        pidfile = os.path.join(fx.dir, "relaynode.pid")
        rc, out, err = relaynode("-c", fx.conf, "--pidfile", pidfile, "--allow-root",
                                 timeout=30)
        pid = None
        if rnnode.eventually(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), 10):
            pid = int(open(pidfile).read().strip())
        t.ok(rc == 0 and pid and rntest.pid_alive(pid) and pid != os.getpid(),
             "without --foreground: the command returns 0, a detached daemon writes its pid",
             "rc=%s pid=%s %s" % (rc, pid, err))
        if pid:
            t.ok(rnnode.wait_port("127.0.0.1", fx.smtp_port, timeout=20),
                 "the detached daemon listens", read_log(fx))
            os.kill(pid, signal.SIGTERM)
            gone = rnnode.eventually(lambda: not rntest.pid_alive(pid), 20)
            t.ok(gone and not os.path.exists(pidfile),
                 "SIGTERM stops the daemon and removes its pid file", read_log(fx)[-2000:])
            if not gone:
                os.kill(pid, signal.SIGKILL)

        # -- a node in the foreground ---------------------------------------------------
        node = rnnode.Node(fx.conf, ports=(fx.smtp_port, fx.sub_port),
                           log_path=os.path.join(fx.dir, "node.out"))
        t0 = time.monotonic()
        try:
            node.start(timeout=30)
            started = True
        except rnnode.NodeError as e:
            started = False
            t.ok(False, "the node listens on the SMTP and submission ports", str(e) + read_log(fx))
        if started:
            t.ok(True, "the node listens on the SMTP and submission ports (%.1fs)"
                 % (time.monotonic() - t0))
            # The log is written by its own thread: wait (bounded) for the lines.
            t.ok(rnnode.eventually(lambda: "config load" in read_log(fx)
                                   and "connectors=3" in read_log(fx), 10),
                 "the first snapshot is logged with its connector count", read_log(fx))
            # IPv6 on loopback is part of the test machine: no ::1 is a failure, not a skip.
            t.ok(have_ipv6() and rnnode.wait_port("::1", fx.smtp_port, timeout=5),
                 "[::]:port and 0.0.0.0:port listen side by side (::1 bindable: %s)"
                 % have_ipv6(), read_log(fx))
            for port, what in ((fx.smtp_port, "SMTP"), (fx.sub_port, "submission")):
                try:
                    with rnnode.Client("127.0.0.1", port) as c:
                        t.ok(c.banner[-1].startswith("220 "), "220 banner on the %s port"
                             % what, c.banner)
                except (OSError, rnnode.Closed) as e:
                    t.ok(False, "220 banner on the %s port" % what, repr(e))

            # -- EMFILE: the listener pauses instead of spinning -------------------------
            pid = node.pid
            nfd = len(os.listdir("/proc/%d/fd" % pid))
            soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (nfd + 2, hard))
            conns = []
            for _ in range(8):
                try:
                    conns.append(socket.create_connection(("127.0.0.1", fx.smtp_port), 3))
                except OSError:
                    break

            def cpu():
                st = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
                return int(st[11]) + int(st[12])
            time.sleep(0.3)
            c0 = cpu()
            time.sleep(1.5)
            used = (cpu() - c0) / os.sysconf("SC_CLK_TCK")
            t.ok(used < 0.5 and rnnode.eventually(lambda: "accept-error" in read_log(fx), 10),
                 "EMFILE: accept errors are logged and do not busy-loop (cpu %.2fs/1.5s)"
                 % used, read_log(fx)[-1500:])
            for c in conns:
                c.close()
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
            try:
                with rnnode.Client("127.0.0.1", fx.smtp_port) as c:
                    b = c.banner[-1]
            except (OSError, rnnode.Closed) as e:
                b = repr(e)
            t.ok(b.startswith("220 "), "after EMFILE clears the listener accepts again", b)

            # -- reload: a new binding opens, the old session is untouched -------------
            old = socket.create_connection(("127.0.0.1", fx.smtp_port), timeout=5)
            old_client = None
            old_client = rnnode.Client.__new__(rnnode.Client)
            old_client.sock, old_client.buf, old_client.eof = old, b"", False
            old_client.banner = old_client.read_reply()
            new_port = free_port()
            rcm, mout, merr = fx.ldapmodify(connector_ldif("Reload Test", ["127.0.0.1:%d" % new_port]))
            t.ok(rcm == 0, "ldapmodify adds a connector on a new port", mout + merr)
            node.reload()
            t.ok(rnnode.wait_port("127.0.0.1", new_port, timeout=10),
                 "after SIGHUP the new port accepts", read_log(fx))
            t.ok(rnnode.eventually(lambda: "config reload" in read_log(fx)
                                   and "connectors=4" in read_log(fx), 10),
                 "the reload is logged with version and connector count", read_log(fx))
            try:
                r = old_client.cmd("NOOP")
            except (OSError, rnnode.Closed) as e:
                r = repr(e)
            t.ok(r.startswith("250"), "an open session on the old port still answers", r)
            t.ok(rnnode.wait_port("127.0.0.1", fx.smtp_port, timeout=3),
                 "the old port still accepts after the reload")
            rcm, mout, merr = fx.ldapmodify(delete_ldif("Reload Test"))
            t.ok(rcm == 0, "ldapmodify removes that connector", mout + merr)
            node.reload()
            t.ok(rnnode.port_closed("127.0.0.1", new_port, timeout=10),
                 "after SIGHUP the removed binding's port is closed", read_log(fx))
            old.close()

            # -- the directory goes away: keep the last good snapshot -------------------
            stop_slapd(fx)
            node.reload()
            t.ok(rnnode.eventually(lambda: "config load-failed" in read_log(fx).split(
                "config reload", 1)[-1], 10),
                 "slapd stopped + SIGHUP: the failure is logged", read_log(fx))
            t.ok(node.alive() and rnnode.wait_port("127.0.0.1", fx.smtp_port, timeout=3)
                 and rnnode.wait_port("127.0.0.1", fx.sub_port, timeout=3),
                 "the node keeps serving with the last snapshot")

            # -- drain -----------------------------------------------------------------
            t0 = time.monotonic()
            rc = node.stop(timeout=40)
            took = time.monotonic() - t0
            t.ok(rc == 0 and took < 30, "SIGTERM: exit 0 within the drain timeout (%.1fs)" % took,
                 "rc=%s\n%s\n%s" % (rc, node.log(), read_log(fx)[-3000:]))
            t.ok("node drain" in read_log(fx) and "node exit status=0" in read_log(fx),
                 "the drain and the exit are logged", read_log(fx)[-2000:])
            node = None
    finally:
        if node is not None:
            node.stop(timeout=10)
        fx.stop()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
