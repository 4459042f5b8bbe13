#!/usr/bin/python3
"""test_privdrop: a node started as root with `user = nobody` (group nogroup) against a
throwaway slapd (deploy/slapd/fixture.sh) runs as nobody with only CAP_NET_BIND_SERVICE
(every thread, per /proc/PID/task/*/status), still binds a port below 1024 that a
directory change adds after the drop (ldapmodify + SIGHUP) and answers 220 there; a start
as root without `user` and without --allow-root is refused with the reason; a bind password
file or cluster key that group or others can read stops the start, naming the file.
Needs root (skipped otherwise).
"""
import os
import pwd
import grp
import shutil
import socket
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402

NODE1 = "cn=node1,cn=Default-Site,cn=Sites,ou=Relay,dc=example,dc=com"
CAP_NET_BIND_SERVICE = "0000000000000400"


def relaynode(*args, timeout=30):
    r = subprocess.run([rnnode.relaynode_binary()] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def low_port():
    """A TCP port in 600..999 nobody listens on (0.0.0.0 and 127.0.0.1)."""
    for p in range(600, 1000):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("0.0.0.0", p))
            return p
        except OSError:
            continue
        finally:
            s.close()
    return None


def status(pid):
    """Every thread's /proc status as {tid: {field: value}}."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        fields = {}
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            for line in f:
                k, _, v = line.partition(":")
                fields[k] = v.split()
        out[tid] = fields
    return out


def conf_with(fx, name, extra, drop=()):
    """A copy of the fixture's conf without the keys in drop, plus the lines in extra."""
    path = os.path.join(fx.dir, name)
    with open(fx.conf) as f, open(path, "w") as g:
        for line in f:
            if line.split("=", 1)[0].strip() not in drop:
                g.write(line)
        g.write(extra)
    return path


def connector_ldif(cn, binding):
    return "\n".join([
        "dn: cn=%s,%s" % (cn, NODE1), "changetype: add",
        "objectClass: relayReceiveConnector", "cn: %s" % cn, "relayEnabled: TRUE",
        "relayBinding: %s" % binding, "relayRemoteIPRange: 0.0.0.0-255.255.255.255",
        "relayAuthMechanism: Tls",
        "relayAce: allow; NT AUTHORITY\\ANONYMOUS LOGON; ms-Exch-SMTP-Submit"]) + "\n\n"


def case_refusals(t, fx):
    rc, out, err = relaynode("-c", fx.conf, "--foreground")
    want = "relaynode: refusing to run as root; set `user` in %s or pass --allow-root" % fx.conf
    t.ok(rc != 0 and want in err, "root without `user` or --allow-root: refused, exit %d" % rc,
         err)
    rc, out, err = relaynode("--help")
    t.ok(rc == 0 and "--allow-root" in out, "--help lists --allow-root", out + err)
    rc, out, err = relaynode("-c", fx.conf, "--check")
    t.ok(rc == 0, "--check as root needs no --allow-root", out + err)

    loose_pw = os.path.join(fx.dir, "loose.pw")
    shutil.copy(fx.service_pw_file, loose_pw)
    os.chmod(loose_pw, 0o644)
    conf = conf_with(fx, "loose-pw.conf", "bind_password_file = %s\n" % loose_pw,
                     drop=("bind_password_file",))
    rc, out, err = relaynode("-c", conf, "--foreground", "--allow-root")
    want = ("relaynode: %s: permissions 0644 are too open (group or others can read it); "
            "chmod 600" % loose_pw)
    t.ok(rc != 0 and want in err, "a 0644 bind password file stops the start, named", err)

    loose_key = os.path.join(fx.dir, "loose.key")
    with open(loose_key, "w") as f:
        f.write("x" * 40 + "\n")
    os.chmod(loose_key, 0o640)
    conf = conf_with(fx, "loose-key.conf", "cluster_secret_key_file = %s\n" % loose_key)
    rc, out, err = relaynode("-c", conf, "--foreground", "--allow-root")
    t.ok(rc != 0 and ("%s: permissions 0640 are too open" % loose_key) in err,
         "a 0640 cluster key stops the start, named", err)


def case_drop(t, fx):
    nobody = pwd.getpwnam("nobody")
    nogroup = grp.getgrnam("nogroup")
    # nobody must reach what the node reads after the drop: the fixture's directory (0700
    # from mkdtemp), the bind password (read at every directory connect), the certificates
    # (read again on SIGHUP). The spool and log files the node hands over itself.
    os.chmod(fx.dir, 0o711)
    for p in [fx.service_pw_file] + [os.path.join(fx.dir, "tls", f)
                                     for f in os.listdir(os.path.join(fx.dir, "tls"))]:
        os.chown(p, nobody.pw_uid, nogroup.gr_gid)
    os.chown(os.path.join(fx.dir, "tls"), nobody.pw_uid, nogroup.gr_gid)
    conf = conf_with(fx, "privdrop.conf", "user = nobody\ngroup = nogroup\n")
    node = rnnode.Node(conf, ports=(fx.smtp_port,), allow_root=False,
                       log_path=os.path.join(fx.dir, "privdrop.out"))
    try:
        node.start(timeout=30)
    except rnnode.NodeError as e:
        t.ok(False, "the node started as root with user = nobody listens", str(e) + node.log())
        return
    t.ok(True, "the node started as root with user = nobody listens")
    st = status(node.pid)
    ids = {tid: (s["Uid"], s["Gid"], s["Groups"]) for tid, s in st.items()}
    want_ids = ([str(nobody.pw_uid)] * 4, [str(nogroup.gr_gid)] * 4, [str(nogroup.gr_gid)])
    t.ok(all(v == want_ids for v in ids.values()),
         "every thread runs as nobody:nogroup (%d threads)" % len(ids), repr(ids))
    caps = {tid: (s["CapEff"][0], s["CapPrm"][0], s["CapInh"][0]) for tid, s in st.items()}
    t.ok(all(v == (CAP_NET_BIND_SERVICE, CAP_NET_BIND_SERVICE, "0000000000000000")
             for v in caps.values()),
         "CapEff = CapPrm = CAP_NET_BIND_SERVICE only, CapInh empty", repr(caps))
    t.ok(rnnode.eventually(lambda: "privileges-dropped" in node.log(), 10), "the drop is logged",
         node.log()[-2000:])
    try:
        with rnnode.Client("127.0.0.1", fx.smtp_port) as c:
            b = c.banner[-1]
    except (OSError, rnnode.Closed) as e:
        b = repr(e)
    t.ok(b.startswith("220 "), "220 on the fixture's SMTP port after the drop", b)

    port = low_port()
    if port is None:
        t.ok(False, "a free port in 600..999")
    else:
        rcm, mout, merr = fx.ldapmodify(connector_ldif("Low Port", "127.0.0.1:%d" % port))
        t.ok(rcm == 0, "ldapmodify adds a connector on port %d" % port, mout + merr)
        node.reload()
        up = rnnode.wait_port("127.0.0.1", port, timeout=15)
        t.ok(up, "after SIGHUP the node (as nobody) listens on port %d" % port,
             node.log()[-3000:])
        try:
            with rnnode.Client("127.0.0.1", port) as c:
                b = c.banner[-1]
        except (OSError, rnnode.Closed) as e:
            b = repr(e)
        t.ok(b.startswith("220 "), "220 on port %d" % port, b)
    rc = node.stop(timeout=15)
    t.ok(rc == 0, "SIGTERM: the dropped node drains and exits 0", "rc=%s %s" % (rc, node.log()))


def main():
    t = rntest.Tap()
    if os.geteuid() != 0:
        # A missing part is a failure, not a skip: this test must run as root (CI does).
        t.ok(False, "running as root (the test starts a node as root and drops to nobody)")
        return t.done()
    if rnnode.missing_node(t):
        return t.done()
    fx = rntest.Slapd().start()
    try:
        case_refusals(t, fx)
        case_drop(t, fx)
    finally:
        fx.stop()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
