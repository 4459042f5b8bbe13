#!/usr/bin/env python3
"""relayctl's cluster verbs against a real slapd, without any running node
(schema/cluster-protocol.md §3, §4).

`node keygen`: a 0600 secret file, a 40-character public key that differs on every run, an
existing file never overwritten (exit 1), --json. `cluster status`: no key configured, a
missing or malformed key file -> exit 2 with a message; with relayctl's admin key published
(a relayNode without endpoint) and node1 given a closed loopback endpoint and a key, node1 is
`unreachable` (exit 1), the admin entry `admin-key`, a node with an endpoint but no key
`no-key`; table and --json, the directory version = the suffix's contextCSN. `cluster notify`
and the notice after an admin write (a warning, never a failure, when the key is bad). The
bus itself (heartbeats heard from a real cluster_new bus) is tests/unit/test_clusterprobe.c (cluster_probe);
three real nodes are test_cluster_nodes.py.
"""
import json
import os
import re
import stat
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from rntest import ROOT, Slapd, Tap, free_port, run  # noqa: E402

BUILD = os.environ.get("RELAYNODE_BUILD") or os.path.join(ROOT, "build", "asan")
RELAYCTL = os.environ.get("RELAYCTL") or os.path.join(BUILD, "relayctl")
Z85 = re.compile(r"^[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$")

T = Tap()


def expect(name, res, code, out=None, err=None):
    rc, o, e = res
    ok = rc == code and (out is None or out in o) and (err is None or err in e)
    return T.ok(ok, name, "rc %r (want %r)\nstdout: %s\nstderr: %s" % (rc, code, o[-1500:],
                                                                        e[-1500:]))


def ctl(conf, *args, admin=False, S=None):
    argv = [RELAYCTL] + list(args) + ["--config", conf]
    if admin:
        argv += ["--bind-dn", S.admin_dn, "--password-file", S.admin_pw_file]
    return run(argv)


def keygen(path, *extra):
    return run([RELAYCTL, "node", "keygen", "--secret-file", path] + list(extra))


def conf_with(S, tmp, name, key_path):
    """A copy of the fixture's bootstrap file with cluster_secret_key_file = key_path."""
    path = os.path.join(tmp, name)
    with open(S.conf) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.rstrip("\n") + "\ncluster_secret_key_file = %s\n" % key_path)
    return path


def context_csn(S):
    e = S.search(S.base_dn, "(objectClass=*)", ["contextCSN"], scope="base", bind="admin")
    return ",".join(sorted(e[0].get("contextCSN")))


# ---------------------------------------------------------------------------- keygen
def test_keygen(tmp):
    k1, k2 = os.path.join(tmp, "k1.key"), os.path.join(tmp, "k2.key")
    rc, o1, e = keygen(k1)
    pub1 = o1.strip()
    T.ok(rc == 0 and Z85.match(pub1) and o1.count("\n") == 1, "keygen prints a 40-char Z85 "
         "public key", "rc %d out %r err %r" % (rc, o1, e))
    st = os.stat(k1)
    T.eq(stat.S_IMODE(st.st_mode), 0o600, "keygen's secret file is mode 0600")
    secret1 = open(k1).read()
    T.ok(secret1.endswith("\n") and Z85.match(secret1[:-1]) and secret1[:-1] != pub1,
         "the secret file holds one Z85 secret key line (not the public key)", repr(secret1))
    rc, o2, e = keygen(k2, "--json")
    j = json.loads(o2) if rc == 0 else {}
    T.ok(rc == 0 and Z85.match(j.get("PublicKey", "")) and j.get("SecretFile") == k2,
         "keygen --json: PublicKey and SecretFile", "rc %d out %r err %r" % (rc, o2, e))
    T.ok(j.get("PublicKey") != pub1 and open(k2).read() != secret1,
         "two keygens give different keys")
    expect("keygen refuses to overwrite an existing file", keygen(k1), 1, err="exists")
    T.eq(open(k1).read(), secret1, "the refused keygen left the file alone")
    expect("keygen without --secret-file exits 2",
           run([RELAYCTL, "node", "keygen"]), 2, err="--secret-file")
    expect("keygen into a missing directory exits 2",
           keygen(os.path.join(tmp, "no", "such", "dir.key")), 2)
    expect("node --help documents keygen", run([RELAYCTL, "node", "--help"]), 0, "keygen")
    expect("relayctl --help lists cluster", run([RELAYCTL, "--help"]), 0, "cluster")
    expect("cluster --help documents the exit codes", run([RELAYCTL, "cluster", "--help"]),
           0, "Exit 0 when every probed node is current")
    return pub1


# ---------------------------------------------------------------------------- errors
def test_key_errors(S, tmp):
    expect("cluster status without cluster_secret_key_file exits 2",
           ctl(S.conf, "cluster", "status"), 2, err="cluster_secret_key_file")
    expect("cluster notify without cluster_secret_key_file exits 2",
           ctl(S.conf, "cluster", "notify"), 2, err="cluster_secret_key_file")
    missing = conf_with(S, tmp, "missing.conf", os.path.join(tmp, "absent.key"))
    expect("a missing key file exits 2 and names it",
           ctl(missing, "cluster", "status"), 2, err="absent.key")
    bad = os.path.join(tmp, "bad.key")
    with open(bad, "w") as f:
        f.write("not a key\n")
    os.chmod(bad, 0o600)
    expect("a malformed key file exits 2", ctl(conf_with(S, tmp, "bad.conf", bad),
                                               "cluster", "status"), 2, err="not a Z85")
    expect("unknown cluster sub-verb exits 2", ctl(S.conf, "cluster", "frob"), 2)
    expect("--wait must be milliseconds",
           ctl(S.conf, "cluster", "status", "--wait", "soon"), 2, err="--wait")
    expect("unreachable directory exits 2",
           run([RELAYCTL, "cluster", "status", "--config", S.conf, "--uri",
                "ldap://127.0.0.1:1/"]), 2)


# ---------------------------------------------------------------------------- status
def test_status(S, tmp, admin_pub):
    key = os.path.join(tmp, "k1.key")
    conf = conf_with(S, tmp, "relayctl.conf", key)
    node_key = os.path.join(tmp, "node1.key")
    rc, node_pub, e = keygen(node_key)
    node_pub = node_pub.strip()
    port = free_port()
    site = "cn=Default-Site,cn=Sites," + S.relay_base
    ldif = ("dn: cn=relayctl,%s\nobjectClass: relayNode\ncn: relayctl\n"
            "relayCurvePublicKey: %s\n\n"
            "dn: %s\nchangetype: modify\nadd: relayClusterEndpoint\n"
            "relayClusterEndpoint: tcp://127.0.0.1:%d\n-\nadd: relayCurvePublicKey\n"
            "relayCurvePublicKey: %s\n\n"
            "dn: cn=node2,%s\nchangetype: add\nobjectClass: relayNode\ncn: node2\n"
            "relayClusterEndpoint: tcp://127.0.0.1:%d\n"
            % (site, admin_pub, S.node_dn, port, node_pub, site, free_port(exclude=(port,))))
    # The first entry has no changetype: ldapmodify -a adds it.
    rc, o, e = S.ldapmodify(ldif, add=True)
    if not T.ok(rc == 0, "relayctl's admin key and node1's endpoint added", e):
        return
    version = context_csn(S)
    t0 = time.monotonic()
    rc, o, e = ctl(conf, "cluster", "status", "--wait", "800")
    took = time.monotonic() - t0
    T.ok(rc == 1, "status exits 1 when a node is unreachable", "rc %d\n%s%s" % (rc, o, e))
    lines = o.splitlines()
    T.eq(lines[0] if lines else "", "Directory version: " + version,
         "the header names the directory's contextCSN")
    row = {ln.split()[0]: ln.split() for ln in lines[1:] if ln.strip()}
    T.ok(row.get("node1", [])[4:5] == ["unreachable"] and
         "tcp://127.0.0.1:%d" % port in row.get("node1", []),
         "node1 (closed port) is unreachable", o)
    T.ok(row.get("relayctl", [])[4:5] == ["admin-key"], "relayctl's entry is admin-key", o)
    T.ok(row.get("node2", [])[4:5] == ["no-key"], "a node without a key is no-key", o)
    T.ok("Node" in row and "State" in row["Node"] and "Lag" in row["Node"],
         "the table has its header row", o)
    T.diag(o)
    T.ok(took < 10, "status waits about --wait, not forever (%.1fs)" % took)

    rc, o, e = ctl(conf, "cluster", "status", "--wait", "300", "--json")
    try:
        j = json.loads(o)
    except ValueError as x:
        T.ok(False, "status --json parses", "%s\n%s%s" % (x, o, e))
        return
    T.ok(rc == 1, "status --json exits 1 too", "rc %d" % rc)
    T.eq(j.get("DirectoryVersion"), version, "DirectoryVersion = contextCSN")
    nodes = {n["Name"]: n for n in j.get("Nodes", [])}
    n1 = nodes.get("node1", {})
    T.ok(n1.get("State") == "unreachable" and n1.get("Applied") is None and
         n1.get("Endpoint") == "tcp://127.0.0.1:%d" % port and n1.get("Stale") is False and
         n1.get("LagSeconds") == 0 and n1.get("UptimeSeconds") is None and
         "HeardSecondsAgo" in n1 and n1.get("Site") == "Default-Site",
         "node1's JSON fields", json.dumps(n1))
    T.ok(nodes.get("relayctl", {}).get("State") == "admin-key" and
         nodes["relayctl"].get("Endpoint") is None, "relayctl's JSON entry", json.dumps(nodes))

    rc, o, e = ctl(conf, "cluster", "notify")
    T.ok(rc == 0 and o.strip() == "notice for version %s sent to 1 node(s)" % version,
         "cluster notify sends to the one node with endpoint and key",
         "rc %d\n%s%s" % (rc, o, e))

    # A write with the key configured sends a notice (to a closed port: queued, no error).
    res = ctl(conf, "domain", "new", "fabrikam", "--domain-name", "fabrikam.example",
              "--type", "Authoritative", admin=True, S=S)
    expect("an admin write with relayctl's key succeeds quietly", res, 0)
    T.ok("warning" not in res[2], "no warning when the notice could be queued", res[2])
    # A bad key never fails a write: a warning on stderr, exit 0.
    bad = conf_with(S, tmp, "badwrite.conf", os.path.join(tmp, "absent.key"))
    expect("a write whose notice cannot be sent still exits 0, with a warning",
           ctl(bad, "domain", "remove", "fabrikam", admin=True, S=S), 0,
           err="relayctl domain remove: warning: cluster notice not sent: ")
    T.ok(context_csn(S) != version, "the writes moved contextCSN")
    rc, o, e = ctl(conf, "domain", "new", "x", "--domain-name", "x.example", "--type",
                   "Authoritative", "--ldif", admin=True, S=S)
    T.ok(rc == 0 and "warning" not in e, "--ldif sends no notice", e)


def main():
    if not os.access(RELAYCTL, os.X_OK):
        T.ok(False, "relayctl binary at %s" % RELAYCTL)
        return T.done()
    with tempfile.TemporaryDirectory(prefix="rn-cluster-") as tmp:
        pub = [None]

        def kg():
            pub[0] = test_keygen(tmp)
            return True
        T.run("test_keygen ran to the end", kg)
        with Slapd() as S:
            T.run("test_key_errors ran to the end", lambda: (test_key_errors(S, tmp), True)[1])
            if pub[0]:
                T.run("test_status ran to the end",
                      lambda: (test_status(S, tmp, pub[0]), True)[1])
    return T.done()


if __name__ == "__main__":
    sys.exit(main())
