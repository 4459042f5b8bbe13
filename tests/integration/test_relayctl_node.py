#!/usr/bin/env python3
"""`relayctl node new|set|remove` against a real slapd (schema/cluster-protocol.md §4).

new with every option shows up in `node list --json` (and description in the entry); a
duplicate name or an unknown site exits 1; a bad key, endpoint or host name exits 2 with
nothing written; set replaces and "" deletes; --ldif prints LDIF and writes nothing; remove
of node1 (three receive connectors) exits 1 and names the count, of a fresh node works; a name
that needs RDN escaping ("a,b") round-trips; relayctl's own key is a node without endpoint.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from rntest import ROOT, Slapd, Tap, run  # noqa: E402

BUILD = os.environ.get("RELAYNODE_BUILD") or os.path.join(ROOT, "build", "asan")
RELAYCTL = os.environ.get("RELAYCTL") or os.path.join(BUILD, "relayctl")
KEY1 = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"   # zguide's example server public key
KEY2 = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"   # and client public key

T = Tap()


def ctl(S, *args, admin=True):
    argv = [RELAYCTL] + list(args) + ["--config", S.conf]
    if admin:
        argv += ["--bind-dn", S.admin_dn, "--password-file", S.admin_pw_file]
    return run(argv)


def expect(name, res, code, out=None, err=None):
    rc, o, e = res
    ok = rc == code and (out is None or out in o) and (err is None or err in e)
    return T.ok(ok, name, "rc %r (want %r)\nstdout: %s\nstderr: %s" % (rc, code, o[-1500:],
                                                                        e[-1500:]))


def nodes(S):
    rc, o, e = ctl(S, "node", "list", "--json", admin=False)
    if rc != 0:
        raise AssertionError("node list: rc %d: %s" % (rc, e))
    return {n["Name"]: n for n in json.loads(o)}


def dump(S):
    return {e.dn.lower(): {k: sorted(v) for k, v in e.attrs.items()}
            for e in S.search(S.relay_base, bind="admin")}


def entry(S, name):
    es = S.search(S.relay_base, "(&(objectClass=relayNode)(cn=%s))" % name, bind="admin")
    return es[0] if es else None


def test_help(S):
    rc, o, e = run([RELAYCTL, "node", "--help"])
    T.ok(rc == 0 and "node new NAME --site SITE" in o and "publish-only" in o and
         "node remove NAME" in o and "node set NAME" in o, "node --help documents new, set, "
         "remove and the publish-only member", o)
    expect("relayctl --help lists the node verbs", run([RELAYCTL, "--help"]), 0,
           "relay nodes: list, new, set, remove, keygen")


def test_new(S):
    site = "cn=Default-Site,cn=Sites," + S.relay_base
    res = ctl(S, "node", "new", "node7", "--site", "Default-Site", "--hostname",
              "Relay7.Example.COM", "--cluster-endpoint", "tcp://10.0.0.7:5670",
              "--public-key", KEY1, "--description", "the seventh relay")
    expect("node new with every option", res, 0, out="created cn=node7," + site)
    n = nodes(S).get("node7", {})
    T.eq((n.get("Site"), n.get("HostName"), n.get("ClusterEndpoint"), n.get("PublicKey")),
         ("Default-Site", "relay7.example.com", "tcp://10.0.0.7:5670", KEY1),
         "node list --json shows site, host name (lowercased), endpoint and key")
    T.ok(n.get("KeyFingerprint", "").startswith("SHA256:"), "and a key fingerprint", repr(n))
    e = entry(S, "node7")
    T.eq(e and e.first("description"), "the seventh relay", "description written")

    before = dump(S)
    expect("a duplicate name exits 1", ctl(S, "node", "new", "NODE1", "--site",
                                           "Default-Site"), 1, err="already exists")
    expect("an unknown site exits 1", ctl(S, "node", "new", "node8", "--site", "Nowhere"), 1,
           err="site 'Nowhere' not found")
    expect("--site is required", ctl(S, "node", "new", "node8"), 2, err="--site")
    for what, args, msg in (
            ("a bad key", ["--public-key", "short"], "--public-key"),
            ("a 40-char key outside Z85", ["--public-key", "~" * 40], "--public-key"),
            ("an endpoint without tcp://", ["--cluster-endpoint", "10.0.0.8:5670"],
             "--cluster-endpoint"),
            ("an endpoint without port", ["--cluster-endpoint", "tcp://10.0.0.8"],
             "--cluster-endpoint"),
            ("port 0", ["--cluster-endpoint", "tcp://10.0.0.8:0"], "--cluster-endpoint"),
            ("port 65536", ["--cluster-endpoint", "tcp://10.0.0.8:65536"],
             "--cluster-endpoint"),
            ("a bad IPv6 literal", ["--cluster-endpoint", "tcp://[fe80::zz]:5670"],
             "--cluster-endpoint"),
            ("a host name with a space", ["--hostname", "relay 8.example.com"], "--hostname"),
            ("a wildcard host name", ["--hostname", "*.example.com"], "--hostname")):
        expect("%s exits 2" % what, ctl(S, "node", "new", "node8", "--site", "Default-Site",
                                        *args), 2, err=msg)
    T.ok(dump(S) == before, "refused writes changed nothing")
    for ep in ("tcp://[::1]:5670", "tcp://*:1", "tcp://relay9.example.com:65535"):
        res = ctl(S, "node", "new", "ep-check", "--site", "Default-Site", "--cluster-endpoint",
                  ep, "--ldif")
        expect("endpoint %s is accepted" % ep, res, 0, out="relayClusterEndpoint: " + ep)

    res = ctl(S, "node", "new", "node8", "--site", "Default-Site", "--public-key", KEY2,
              "--ldif")
    expect("--ldif prints the add", res, 0, out="changetype: add")
    T.ok("objectClass: relayNode" in res[1] and "relayCurvePublicKey: " in res[1],
         "the LDIF has the entry's attributes", res[1])
    T.ok(dump(S) == before and "node8" not in nodes(S), "--ldif wrote nothing")

    # relayctl's own key: a node without endpoint.
    res = ctl(S, "node", "new", "relayctl", "--site", "Default-Site", "--public-key", KEY2,
              "--json")
    j = json.loads(res[1]) if res[0] == 0 else {}
    T.ok(res[0] == 0 and j.get("Name") == "relayctl" and j.get("ClusterEndpoint") is None
         and j.get("PublicKey") == KEY2, "node new --json without endpoint: a publish-only "
         "member", repr(res))
    n = nodes(S).get("relayctl", {})
    T.ok(n.get("PublicKey") == KEY2 and not n.get("ClusterEndpoint"),
         "relayctl's key is listed without endpoint", repr(n))


def test_set(S):
    expect("set of an unknown node exits 1",
           ctl(S, "node", "set", "nosuch", "--description", "x"), 1, err="not found")
    expect("set with nothing to set exits 2", ctl(S, "node", "set", "node7"), 2)
    before = dump(S)
    expect("set with a bad key exits 2",
           ctl(S, "node", "set", "node7", "--public-key", "nope"), 2, err="--public-key")
    expect("set with a bad endpoint exits 2",
           ctl(S, "node", "set", "node7", "--cluster-endpoint", "tcp://x:99999"), 2)
    T.ok(dump(S) == before, "refused sets changed nothing")
    res = ctl(S, "node", "set", "node7", "--cluster-endpoint", "tcp://10.0.0.77:5671",
              "--public-key", KEY2, "--hostname", "relay77.example.com", "--ldif")
    expect("set --ldif prints a modify", res, 0, out="changetype: modify")
    T.ok("replace: relayClusterEndpoint" in res[1] and dump(S) == before,
         "set --ldif replaces and writes nothing", res[1])
    expect("set replaces", ctl(S, "node", "set", "node7", "--cluster-endpoint",
                               "tcp://10.0.0.77:5671", "--public-key", KEY2, "--hostname",
                               "relay77.example.com"), 0, out="updated")
    n = nodes(S)["node7"]
    T.eq((n["HostName"], n["ClusterEndpoint"], n["PublicKey"]),
         ("relay77.example.com", "tcp://10.0.0.77:5671", KEY2), "set's values are listed")
    expect("set '' deletes", ctl(S, "node", "set", "node7", "--cluster-endpoint", "",
                                 "--public-key", "", "--description", ""), 0)
    e = entry(S, "node7")
    T.ok(e is not None and not e.get("relayClusterEndpoint") and
         not e.get("relayCurvePublicKey") and not e.get("description") and
         e.first("relayHostName") == "relay77.example.com",
         "endpoint, key and description deleted, host name kept", repr(e))
    expect("setting the same again is no change",
           ctl(S, "node", "set", "node7", "--description", ""), 0, err="no change")


def test_remove(S):
    before = dump(S)
    expect("remove of node1 (three connectors) exits 1 and names the count",
           ctl(S, "node", "remove", "node1"), 1, err="3 receive connectors")
    T.ok(dump(S) == before, "node1 and its connectors stay")
    expect("remove of an unknown node exits 1", ctl(S, "node", "remove", "nosuch"), 1)
    res = ctl(S, "node", "remove", "node7", "--ldif")
    expect("remove --ldif prints a delete", res, 0, out="changetype: delete")
    T.ok("node7" in nodes(S), "remove --ldif wrote nothing")
    expect("remove of a fresh node", ctl(S, "node", "remove", "node7"), 0, out="removed")
    T.ok("node7" not in nodes(S) and entry(S, "node7") is None, "node7 is gone")


def test_escaping(S):
    res = ctl(S, "node", "new", "a,b", "--site", "Default-Site", "--description", "comma")
    expect("a name needing RDN escaping is created", res, 0)
    n = nodes(S).get("a,b", {})
    T.eq(n.get("Site"), "Default-Site", "'a,b' is listed under its site")
    expect("set finds 'a,b'", ctl(S, "node", "set", "a,b", "--hostname", "ab.example.com"),
           0)
    T.eq(nodes(S).get("a,b", {}).get("HostName"), "ab.example.com", "'a,b' updated")
    expect("remove finds 'a,b'", ctl(S, "node", "remove", "a,b"), 0)
    T.ok("a,b" not in nodes(S), "'a,b' is gone")


def main():
    if not os.access(RELAYCTL, os.X_OK):
        T.ok(False, "relayctl binary at %s" % RELAYCTL)
        return T.done()
    with Slapd() as S:
        for fn in (test_help, test_new, test_set, test_remove, test_escaping):
            T.run(fn.__name__ + " ran to the end", lambda: (fn(S), True)[1])
    return T.done()


if __name__ == "__main__":
    sys.exit(main())
