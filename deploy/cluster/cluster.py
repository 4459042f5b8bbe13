#!/usr/bin/python3
"""A cluster on one host: one slapd with the example organisation and N relay nodes on the
cluster bus (schema/cluster-protocol.md), every one on its own loopback ports.

  cluster.py setup DIR [--nodes N] [--build B] [--port P] [--smtp-port P]
                       [--submission-port P]     slapd up, entries and confs written
  cluster.py stop DIR                            slapd stopped (nodes are the caller's)

setup starts the fixture slapd in DIR (deploy/slapd/fixture.sh; node1 is the example's), then
for every node k in 1..N:
  - a CURVE keypair made by `relayctl node keygen` (secret key in DIR/nodeK/cluster.key);
  - its relayNode entry cn=nodeK under cn=Default-Site with relayClusterEndpoint
    tcp://127.0.0.1:<bus port> and relayCurvePublicKey (node1's entry gets both added);
  - for k >= 2, "Default nodeK" and "CRM Application nodeK" receive connectors, copies of
    node1's two on the node's own SMTP port (a host runs each node on its own port; on
    separate hosts they would share one port);
  - DIR/nodeK/relaynode.conf (node1's conf with its name, spool, log and key).
plus relayctl's admin key: DIR/relayctl.key, published as the relayNode entry cn=relayctl
without an endpoint (allowed to publish, never subscribed to), and DIR/relayctl.conf, a
bootstrap file binding as the directory admin with that key.

DIR/cluster.env lists NODES, NODEk_CONF, NODEk_SMTP_PORT, NODEk_BUS, RELAYCTL_CONF (and
DIR/env is the fixture's). The caller starts the nodes (`relaynode -c NODEk_CONF`) and stops
them by pid; see deploy/run.sh and tests/integration/test_cluster_nodes.py.
"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
FIXTURE = os.path.join(ROOT, "deploy", "slapd", "fixture.sh")
FREEPORT = os.path.join(ROOT, "deploy", "slapd", "freeport.py")
SITE = "cn=Default-Site,cn=Sites,ou=Relay,dc=example,dc=com"


def die(msg):
    sys.stderr.write("cluster.py: %s\n" % msg)
    sys.exit(1)


def env_file(path):
    out = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            if k and not k.startswith("#"):
                out[k] = v.strip("'\"")
    return out


def run(argv, inp=None):
    r = subprocess.run(argv, input=inp.encode() if inp is not None else None,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        die("%s: %s" % (" ".join(argv[:3]), (r.stderr or r.stdout).decode().strip()))
    return r.stdout.decode()


class Dir:
    """The fixture's slapd, as its admin."""

    def __init__(self, env):
        self.uri, self.pw, self.admin = env["SLAPD_URI"], env["ADMIN_PW_FILE"], env["ADMIN_DN"]

    def modify(self, ldif, add=False):
        run(["ldapmodify", "-x", "-H", self.uri, "-D", self.admin, "-y", self.pw]
            + (["-a"] if add else []), ldif)

    def entry_ldif(self, dn):
        """The entry's user attributes as LDIF lines (no dn line), wrapped lines joined."""
        out = run(["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", self.uri, "-D",
                   self.admin, "-y", self.pw, "-s", "base", "-b", dn])
        return [l for l in out.splitlines() if l and not l.startswith("dn:")]


def keygen(relayctl, path):
    out = run([relayctl, "node", "keygen", "--secret-file", path]).strip()
    if len(out) != 40:
        die("relayctl node keygen printed %r, not a 40-character key" % out)
    return out


def free_ports(n):
    return [int(p) for p in run(["/usr/bin/python3", FREEPORT] + ["0"] * n).split()]


def copy_connector(d, src_dn, dst_dn, name, port, old_port):
    lines = ["dn: " + dst_dn]
    for l in d.entry_ldif(src_dn):
        attr = l.split(":", 1)[0].lower()
        if attr == "cn":
            l = "cn: " + name
        elif attr == "relaybinding":
            l = l.replace(":%s" % old_port, ":%d" % port)
        lines.append(l)
    d.modify("\n".join(lines) + "\n", add=True)


def setup(dirpath, nodes, build, fixture_args=()):
    relayctl = os.path.join(build, "relayctl")
    if not os.access(relayctl, os.X_OK):
        die("no relayctl at %s (build first)" % relayctl)
    os.makedirs(dirpath, exist_ok=True)
    dirpath = os.path.abspath(dirpath)
    run(["bash", FIXTURE, "start", dirpath] + list(fixture_args))
    env = env_file(os.path.join(dirpath, "env"))
    d = Dir(env)
    smtp1 = int(env["SMTP_PORT"])
    ports = free_ports(2 * nodes)
    taken = {smtp1, int(env["SUBMISSION_PORT"]), int(env["SLAPD_PORT"])}
    ports = [p for p in ports if p not in taken]
    while len(ports) < 2 * nodes:
        ports += [p for p in free_ports(2) if p not in taken and p not in ports]
    with open(os.path.join(dirpath, "relaynode.conf")) as f:
        base_conf = f.read()
    cenv = {"NODES": str(nodes)}
    for k in range(1, nodes + 1):
        name = "node%d" % k
        ndir = os.path.join(dirpath, name) if k > 1 else dirpath
        os.makedirs(ndir, exist_ok=True)
        key_path = os.path.join(dirpath, name + ".key") if k == 1 else \
            os.path.join(ndir, "cluster.key")
        if os.path.exists(key_path):
            os.unlink(key_path)
        pub = keygen(relayctl, key_path)
        bus = "tcp://127.0.0.1:%d" % ports[2 * (k - 1)]
        smtp = smtp1 if k == 1 else ports[2 * (k - 1) + 1]
        node_dn = "cn=%s,%s" % (name, SITE)
        if k == 1:
            d.modify("dn: %s\nchangetype: modify\nreplace: relayClusterEndpoint\n"
                     "relayClusterEndpoint: %s\n-\nreplace: relayCurvePublicKey\n"
                     "relayCurvePublicKey: %s\n-\n" % (node_dn, bus, pub))
            conf_path = os.path.join(dirpath, "relaynode.conf")
            conf = base_conf
        else:
            d.modify("dn: %s\nobjectClass: relayNode\ncn: %s\nrelayHostName: %s.example.com\n"
                     "relayClusterEndpoint: %s\nrelayCurvePublicKey: %s\n"
                     % (node_dn, name, name, bus, pub), add=True)
            for conn in ("Default", "CRM Application"):
                src = "cn=%s,cn=node1,%s" % (conn if conn != "Default" else "Default node1", SITE)
                cname = "%s %s" % (conn, name)
                copy_connector(d, src, "cn=%s,%s" % (cname, node_dn), cname, smtp, smtp1)
            conf_path = os.path.join(ndir, "relaynode.conf")
            conf = "\n".join(
                l for l in base_conf.splitlines()
                if l.split("=", 1)[0].strip() not in ("node", "hostname", "spool_dir", "log",
                                                      "protocol_log_dir")) + "\n"
            conf += ("node = %s\nhostname = %s.example.com\nspool_dir = %s/spool\n"
                     "log = %s/relaynode.log\nprotocol_log_dir = %s/protocol\n"
                     % (name, name, ndir, ndir, ndir))
            os.makedirs(os.path.join(ndir, "spool"), exist_ok=True)
            os.makedirs(os.path.join(ndir, "protocol"), exist_ok=True)
        conf = "\n".join(l for l in conf.splitlines()
                         if l.split("=", 1)[0].strip() != "cluster_secret_key_file") + "\n"
        conf += "cluster_secret_key_file = %s\n" % key_path
        with open(conf_path, "w") as f:
            f.write(conf)
        cenv.update({"NODE%d_CONF" % k: conf_path, "NODE%d_SMTP_PORT" % k: str(smtp),
                     "NODE%d_BUS" % k: bus, "NODE%d_DIR" % k: ndir})
    rkey = os.path.join(dirpath, "relayctl.key")
    if os.path.exists(rkey):
        os.unlink(rkey)
    rpub = keygen(relayctl, rkey)
    d.modify("dn: cn=relayctl,%s\nobjectClass: relayNode\ncn: relayctl\n"
             "description: relayctl's admin key: publishes notices, is never subscribed to\n"
             "relayCurvePublicKey: %s\n" % (SITE, rpub), add=True)
    rconf = os.path.join(dirpath, "relayctl.conf")
    with open(rconf, "w") as f:
        f.write("uri = %s\nbind_dn = %s\nbind_password_file = %s\nbase_dn = %s\nnode = node1\n"
                "cluster_secret_key_file = %s\n"
                % (env["SLAPD_URI"], env["ADMIN_DN"], env["ADMIN_PW_FILE"], env["RELAY_BASE"],
                   rkey))
    cenv["RELAYCTL_CONF"] = rconf
    with open(os.path.join(dirpath, "cluster.env"), "w") as f:
        for k, v in cenv.items():
            f.write("%s='%s'\n" % (k, v))
    sys.stdout.write(open(os.path.join(dirpath, "cluster.env")).read())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("verb", choices=["setup", "stop"])
    ap.add_argument("dir")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--build", default=os.environ.get("RELAYNODE_BUILD",
                                                      os.path.join(ROOT, "build")))
    for opt in ("--port", "--smtp-port", "--submission-port"):
        ap.add_argument(opt, help="passed to fixture.sh (slapd, node1's SMTP, submission)")
    a = ap.parse_args()
    if a.verb == "stop":
        subprocess.run(["bash", FIXTURE, "stop", a.dir])
        return 0
    if not 1 <= a.nodes <= 64:
        die("--nodes must be 1..64")
    fx = []
    for opt, v in (("--port", a.port), ("--smtp-port", a.smtp_port),
                   ("--submission-port", a.submission_port)):
        if v:
            fx += [opt, v]
    setup(a.dir, a.nodes, os.path.abspath(a.build), fx)
    return 0


if __name__ == "__main__":
    sys.exit(main())
