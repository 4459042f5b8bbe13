#!/usr/bin/env python3
"""`make install` / `make uninstall` (issue 12) into a DESTDIR with PREFIX=/usr.

Installs the binaries of $RELAYNODE_BUILD (B=, nothing rebuilt), checks the exact file list,
modes and the paths rewritten for PREFIX, that the installed sample bootstrap parses and
names every key, that a second install keeps an edited relaynode.conf (and restores a removed
file), `--version` of both installed binaries, then runs the INSTALLED relaynode against the
fixture slapd and relays a message to a test sink through a send connector. `make uninstall`
removes everything but the edited relaynode.conf (an unedited one goes too), and install
without built binaries exits 2.
"""
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import smtpsink  # noqa: E402
from rntest import ROOT, Slapd, Tap, run  # noqa: E402

BUILD = os.environ.get("RELAYNODE_BUILD") or os.path.join(ROOT, "build")
T = Tap()

EXAMPLE = sorted(os.listdir(os.path.join(ROOT, "deploy", "example")))
EXPECTED = sorted([
    "usr/sbin/relaynode", "usr/sbin/relayctl",
    "usr/etc/relaynode/relaynode.conf", "usr/etc/logrotate.d/relaynode",
    "usr/lib/systemd/system/relaynode.service", "usr/lib/systemd/system/relaynode@.service",
    "usr/share/man/man5/relaynode.conf.5", "usr/share/man/man5/relaynode-schema.5",
    "usr/share/man/man8/relaynode.8", "usr/share/man/man8/relayctl.8",
    "usr/share/relaynode/relaynode.schema", "usr/share/relaynode/relaynode.ldif",
    "usr/share/relaynode/acl.ldif", "usr/share/relaynode/relaynode.conf.sample",
    "usr/share/doc/relaynode/operations.md", "usr/share/doc/relaynode/ad-profile.md",
] + ["usr/share/relaynode/example/" + f for f in EXAMPLE])
CONF = "usr/etc/relaynode/relaynode.conf"


def make(dest, *targets, build=BUILD, prefix="/usr"):
    return run(["make", "--no-print-directory", "-C", ROOT, "B=" + build, "DESTDIR=" + dest,
                "PREFIX=" + prefix] + list(targets), timeout=120)


def files(dest):
    out = []
    for d, _, names in os.walk(dest):
        out += [os.path.relpath(os.path.join(d, n), dest) for n in names]
    return sorted(out)


def node_args(binary):
    """--allow-root when running as root and the binary knows the option (the privilege
    drop comes with the daemon-side change; until then root runs without it)."""
    if os.geteuid() != 0:
        return []
    rc, out, err = run([binary, "--help"])
    return ["--allow-root"] if "--allow-root" in out + err else []


def test_install(dest):
    bins = [os.path.join(BUILD, b) for b in ("relaynode", "relayctl")]
    before = [os.stat(b).st_mtime_ns for b in bins]
    rc, out, err = make(dest, "install")
    T.ok(rc == 0, "make install DESTDIR PREFIX=/usr B=$RELAYNODE_BUILD exits 0", out + err)
    T.ok([os.stat(b).st_mtime_ns for b in bins] == before and
         not re.search(r"(^|\s)(cc|gcc|clang)\s", out), "nothing was rebuilt", out)
    got = files(dest)
    T.eq(got, EXPECTED, "installed file list")
    modes = {f: os.stat(os.path.join(dest, f)).st_mode & 0o777 for f in got}
    want = {f: 0o755 if f.startswith("usr/sbin/") else 0o644 for f in got}
    T.eq(modes, want, "modes: binaries 0755, everything else 0644")
    unit = open(os.path.join(dest, "usr/lib/systemd/system/relaynode.service")).read()
    tmpl = open(os.path.join(dest, "usr/lib/systemd/system/relaynode@.service")).read()
    T.ok("ExecStart=/usr/sbin/relaynode -c /usr/etc/relaynode/relaynode.conf --foreground"
         in unit and "ExecStart=/usr/sbin/relaynode -c /usr/etc/relaynode/%i.conf --foreground"
         in tmpl, "units name the installed binary and SYSCONFDIR ($PREFIX/etc)",
         unit + tmpl)
    conf = open(os.path.join(dest, CONF)).read()
    man = open(os.path.join(dest, "usr/share/man/man5/relaynode.conf.5")).read()
    stale = re.compile(r"(?<!/usr)/etc/relaynode")
    T.ok("bind_password_file = /usr/etc/relaynode/service.pw" in conf and
         "/usr/etc/relaynode/relaynode.conf" in man and not stale.search(conf + man),
         "sample bootstrap and man pages rewritten for SYSCONFDIR",
         "\n".join(l for l in (conf + man).splitlines() if stale.search(l)))


def test_sample(dest):
    node = os.path.join(dest, "usr/sbin/relaynode")
    rc, out, err = run([node, "-c", os.path.join(dest, CONF), "--help-config"])
    T.ok(rc == 0, "the installed sample bootstrap parses (--help-config)", out + err)
    rc, out, err = run([node, "--help-config"])
    keys = [l.split()[0] for l in out.splitlines() if l.strip()]
    conf = open(os.path.join(dest, CONF)).read()
    missing = [k for k in keys if not re.search(r"^#?%s =" % re.escape(k), conf, re.M)]
    T.ok(keys and not missing, "the sample lists every bootstrap key", "missing: %r" % missing)


def test_versions(dest):
    outs = []
    for b in ("relaynode", "relayctl"):
        rc, out, err = run([os.path.join(dest, "usr/sbin", b), "--version"])
        m = re.match(r"^%s (\d+\.\d+\.\d+\S*)\n$" % b, out)
        T.ok(rc == 0 and m, "installed %s --version" % b, out + err)
        outs.append(m.group(1) if m else None)
    T.ok(outs[0] and outs[0] == outs[1], "relaynode and relayctl print the same version",
         repr(outs))


def test_reinstall(dest):
    path = os.path.join(dest, CONF)
    with open(path, "a") as f:
        f.write("# edited by the administrator\nnode = edited\n")
    edited = open(path).read()
    os.unlink(os.path.join(dest, "usr/share/man/man8/relayctl.8"))
    rc, out, err = make(dest, "install")
    T.ok(rc == 0 and open(path).read() == edited and "keeping" in out,
         "a second install keeps the edited relaynode.conf (and says so)", out + err)
    T.eq(files(dest), EXPECTED, "a second install restores the other files")


def test_relay(dest):
    binary = os.path.join(dest, "usr/sbin/relaynode")
    work = tempfile.mkdtemp(prefix="rn-install-sink.")
    sink = smtpsink.Sink(os.path.join(work, "sink")).start()
    try:
        with Slapd() as S:
            rc, out, err = S.ldapmodify(
                "dn: cn=To sink,cn=Send Connectors,%s\nchangetype: add\n"
                "objectClass: relaySendConnector\ncn: To sink\nrelayEnabled: TRUE\n"
                "relayAddressSpace: sink.test\nrelaySmartHost: 127.0.0.1:%d\nrelayCost: 1\n"
                % (S.relay_base, sink.port))
            T.ok(rc == 0, "send connector to the test sink added", err)
            rc, out, err = run([binary, "-c", S.conf, "--check"])
            T.ok(rc == 0 and "sendconnector To sink" in out,
                 "installed relaynode --check loads the directory", out + err)
            node = rnnode.Node(S.conf, ports=[S.smtp_port], binary=binary,
                               extra_args=node_args(binary))
            with node:
                with rnnode.Client("127.0.0.1", S.smtp_port, source="127.0.2.55") as cl:
                    r = cl.send_message("app@crm.example", ["someone@sink.test"],
                                        rnnode.message("app@crm.example", "someone@sink.test",
                                                       "installed-relay"))
                T.ok(rnnode.queued_id(r[-1]), "the installed node accepts a message to relay",
                     repr(r) + "\n" + node.log_tail())
                got = sink.wait(1, 20, lambda m: b"installed-relay" in m["data"])
                T.ok(got and got[0]["to"] == ["someone@sink.test"] and
                     got[0]["from"] == "app@crm.example",
                     "the installed node delivered it to the sink", node.log_tail())
    finally:
        sink.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_uninstall(dest, work):
    rc, out, err = make(dest, "uninstall")
    T.ok(rc == 0 and "keeping the edited" in out, "make uninstall exits 0 and keeps the "
         "edited relaynode.conf", out + err)
    T.eq(files(dest), [CONF], "nothing else is left")
    clean = os.path.join(work, "clean")
    rc1, o1, e1 = make(clean, "install")
    rc2, o2, e2 = make(clean, "uninstall")
    T.ok(rc1 == 0 and rc2 == 0 and files(clean) == [] and
         not os.path.exists(os.path.join(clean, "usr/share/relaynode")),
         "install then uninstall leaves no file (an unedited relaynode.conf goes too)",
         o1 + e1 + o2 + e2 + repr(files(clean)))
    empty = os.path.join(work, "nobuild")
    os.makedirs(empty)
    rc, out, err = make(os.path.join(work, "x"), "install", build=empty)
    T.ok(rc == 2 and "run make" in err and not os.path.exists(os.path.join(work, "x")),
         "install without built binaries exits 2 and installs nothing", out + err)


def main():
    if not all(os.access(os.path.join(BUILD, b), os.X_OK) for b in ("relaynode", "relayctl")):
        T.ok(False, "relaynode and relayctl built in %s" % BUILD)
        return T.done()
    work = tempfile.mkdtemp(prefix="rn-install.")
    dest = os.path.join(work, "dest")
    try:
        for name, fn, args in (("install", test_install, (dest,)),
                               ("sample", test_sample, (dest,)),
                               ("versions", test_versions, (dest,)),
                               ("reinstall", test_reinstall, (dest,)),
                               ("relay", test_relay, (dest,)),
                               ("uninstall", test_uninstall, (dest, work))):
            T.run("%s checks ran to the end" % name, lambda: (fn(*args), True)[1])
    finally:
        if not os.environ.get("RN_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
    return T.done()


if __name__ == "__main__":
    sys.exit(main())
