#!/usr/bin/env python3
"""Man pages, systemd units, logrotate snippet and `make deb` (issue 12).

- `mandoc -T lint` is clean on every page of docs/man (run there, so the pages' references
  to each other resolve; mandoc's notes about the host's missing mandoc.db are not findings);
- the pages cannot drift: relaynode.conf(5)'s KEYS section is what docs/man/genkeys.py
  makes from `relaynode --help-config`, relaynode(8) names every option of `relaynode
  --help`, relayctl(8) every verb, subcommand and option of `relayctl --help` and each
  verb's (and subcommand's) --help;
- both units, installed with PREFIX=<tmp> (so ExecStart exists) and their man pages on
  MANPATH, pass `systemd-analyze verify` silently and carry the directives the service needs;
- the logrotate snippet passes `logrotate -d` and a forced rotation (paths moved to a tmp dir);
- `make deb` builds a package from $RELAYNODE_BUILD: `dpkg-deb -c` lists the binaries, the
  compressed man pages, both units, the schema, ACLs and conffiles; `dpkg-deb -I` shows its
  version, Depends on installed runtime library packages only (no -dev, no compiler), the
  conffiles and maintainer scripts that pass `sh -n`.
"""
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from rntest import ROOT, Tap, run  # noqa: E402

BUILD = os.environ.get("RELAYNODE_BUILD") or os.path.join(ROOT, "build")
MAN = os.path.join(ROOT, "docs", "man")
PAGES = ["relaynode.8", "relayctl.8", "relaynode.conf.5", "relaynode-schema.5"]
T = Tap()


def page(name):
    with open(os.path.join(MAN, name)) as f:
        return f.read()


def test_lint():
    have = sorted(f for f in os.listdir(MAN) if re.match(r".*\.[1-9]$", f))
    T.eq(have, sorted(PAGES), "docs/man holds the four pages")
    for p in PAGES:
        rc, out, err = run(["mandoc", "-T", "lint", p], cwd=MAN)
        findings = [l for l in (out + err).splitlines() if "outdated mandoc.db" not in l]
        T.ok(rc == 0 and not findings, "mandoc -T lint %s is clean" % p, out + err)


def test_drift():
    node = os.path.join(BUILD, "relaynode")
    ctl = os.path.join(BUILD, "relayctl")
    rc, out, err = run(["/usr/bin/python3", os.path.join(MAN, "genkeys.py"), node, "--check"])
    T.ok(rc == 0, "relaynode.conf(5) KEYS is what genkeys.py makes from --help-config",
         out + err)
    rc, out, err = run([node, "--help"])
    opts = sorted(set(re.findall(r"(?<![\w-])-(-?[a-z][a-z-]*)", out)))
    man8 = page("relaynode.8")
    missing = [o for o in opts + ["-allow-root"] if "Fl %s" % o not in man8]
    T.ok(opts and not missing, "relaynode(8) documents every option of relaynode --help",
         "missing: %r" % missing)
    rc, out, err = run([ctl, "--help"])
    verbs = re.findall(r"^  (\w+)\s+(.*)$", out, re.M)
    man = page("relayctl.8")
    missing = []
    for verb, summary in verbs:
        if ".Ss %s\n" % verb not in man:
            missing.append("section " + verb)
        subs = re.findall(r"\b(new|set|get|list|remove|add|keygen|show|retry|status|notify)\b",
                          summary.split(":", 1)[-1]) if ":" in summary else []
        helps = [[verb, "--help"]] + [[verb, s, "--help"] for s in subs]
        for argv in helps:
            rc, hout, herr = run([ctl] + argv)
            for o in set(re.findall(r"(?<![\w-])--([a-z][a-z-]*)", hout)):
                if "Fl -%s" % o not in man:
                    missing.append("%s: --%s" % (" ".join(argv[:-1]), o))
        for s in subs:
            if not re.search(r"\b%s\b" % s, man.split(".Ss %s\n" % verb, 1)[-1]):
                missing.append("%s %s" % (verb, s))
    T.ok(len(verbs) >= 9 and not missing, "relayctl(8) documents every verb, subcommand and "
         "option (%d verbs)" % len(verbs), "missing: %r" % sorted(set(missing)))


def test_units(work):
    prefix = os.path.join(work, "prefix")
    rc, out, err = run(["make", "--no-print-directory", "-C", ROOT, "B=" + BUILD,
                        "PREFIX=" + prefix, "install"], timeout=120)
    T.ok(rc == 0, "make install PREFIX=<tmp> for the units", out + err)
    units = [os.path.join(prefix, "lib/systemd/system", u)
             for u in ("relaynode.service", "relaynode@.service")]
    env = dict(os.environ, MANPATH=os.path.join(prefix, "share/man") + ":")
    for u in units:
        rc, out, err = run(["systemd-analyze", "verify", u], env=env)
        T.ok(rc == 0 and not (out + err).strip(), "systemd-analyze verify %s is clean"
             % os.path.basename(u), out + err)
    want = ["Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure",
            "User=relaynode", "Group=relaynode", "ProtectSystem=strict",
            "ReadWritePaths=/var/spool/relaynode /var/log/relaynode", "PrivateTmp=yes",
            "NoNewPrivileges=yes", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
            "AmbientCapabilities=CAP_NET_BIND_SERVICE",
            "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
            "SystemCallFilter=@system-service", "WantedBy=multi-user.target"]
    for u, conf in zip(units, ("relaynode.conf", "%i.conf")):
        text = open(u).read()
        lines = text.splitlines()
        missing = [w for w in want if w not in lines]
        exec_ok = "ExecStart=%s/sbin/relaynode -c %s/etc/relaynode/%s --foreground" % (
            prefix, prefix, conf) in lines
        T.ok(not missing and exec_ok, "%s: ExecStart and the service directives"
             % os.path.basename(u), "missing: %r\n%s" % (missing, text))


def test_logrotate(work):
    d = os.path.join(work, "lr")
    os.makedirs(os.path.join(d, "log", "protocol"))
    for f in ("log/relaynode.log", "log/protocol/Default node1.log"):
        with open(os.path.join(d, f), "w") as fh:
            fh.write("x\n")
    me = "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
    text = open(os.path.join(ROOT, "deploy", "logrotate", "relaynode")).read()
    text = text.replace("/var/log/relaynode", os.path.join(d, "log")).replace(
        "relaynode relaynode", "%s %s" % (me, me))
    conf = os.path.join(d, "relaynode")
    with open(conf, "w") as f:
        f.write(text)
    state = os.path.join(d, "state")
    rc, out, err = run(["logrotate", "-d", "-s", state, conf])
    T.ok(rc == 0 and "error" not in (out + err).lower(), "logrotate -d accepts the snippet",
         out + err)
    rc, out, err = run(["logrotate", "-f", "-s", state, conf])
    rotated = sorted(os.listdir(os.path.join(d, "log")))
    T.ok(rc == 0 and "relaynode.log.1" in rotated and "relaynode.log" in rotated and
         os.path.exists(os.path.join(d, "log", "protocol", "Default node1.log.1")),
         "a forced rotation rotates the fact and protocol logs and recreates them",
         out + err + repr(rotated))


def test_deb(work):
    out_dir = os.path.join(work, "deb")
    rc, out, err = run(["make", "--no-print-directory", "-C", ROOT, "B=" + BUILD,
                        "DEB_OUT=" + out_dir, "deb"], timeout=300)
    debs = [f for f in os.listdir(out_dir)] if os.path.isdir(out_dir) else []
    rc2, vout, _ = run([os.path.join(BUILD, "relaynode"), "--version"])
    version = vout.split()[-1] if vout.split() else "?"
    T.ok(rc == 0 and len(debs) == 1 and re.match(r"relaynode_%s_\w+\.deb$" % re.escape(version),
                                                  debs[0]),
         "make deb builds relaynode_%s_<arch>.deb" % version, out + err + repr(debs))
    if not debs:
        return
    deb = os.path.join(out_dir, debs[0])
    rc, listing, err = run(["dpkg-deb", "-c", deb])
    paths = {l.split()[-1] for l in listing.splitlines() if l.strip()}
    want = ["./usr/sbin/relaynode", "./usr/sbin/relayctl",
            "./usr/share/man/man8/relaynode.8.gz", "./usr/share/man/man8/relayctl.8.gz",
            "./usr/share/man/man5/relaynode.conf.5.gz",
            "./usr/share/man/man5/relaynode-schema.5.gz",
            "./lib/systemd/system/relaynode.service", "./lib/systemd/system/relaynode@.service",
            "./usr/share/relaynode/relaynode.schema", "./usr/share/relaynode/relaynode.ldif",
            "./usr/share/relaynode/acl.ldif", "./usr/share/relaynode/example/example.ldif",
            "./etc/relaynode/relaynode.conf", "./etc/logrotate.d/relaynode",
            "./usr/share/doc/relaynode/operations.md",
            "./usr/share/doc/relaynode/ad-profile.md"]
    missing = [w for w in want if w not in paths]
    T.ok(rc == 0 and not missing and not any(p.startswith("./var/") for p in paths),
         "dpkg-deb -c lists binaries, man pages, units, schema and conffiles (no /var)",
         "missing: %r\n%s" % (missing, listing))
    rc, info, err = run(["dpkg-deb", "-I", deb])
    T.ok(rc == 0 and re.search(r"^ Package: relaynode$", info, re.M) and
         re.search(r"^ Version: %s$" % re.escape(version), info, re.M),
         "dpkg-deb -I: package relaynode, version %s" % version, info + err)
    m = re.search(r"^ Depends: (.*)$", info, re.M)
    deps = [d.split()[0] for d in m.group(1).split(",")] if m else []
    need = ["libc6", "libldap-2.5-0", "libevent-2.1-7", "libevent-openssl-2.1-7",
            "libevent-pthreads-2.1-7", "libssl3", "libsasl2-2", "libsasl2-modules",
            "libkrb5-3", "libzmq5", "libc-ares2"]
    bad = [d for d in deps if d.endswith("-dev") or d in ("gcc", "cc", "make", "build-essential",
                                                            "clang", "dpkg-dev")]
    not_lib = [d for d in deps if not d.startswith("lib") and d != "adduser"]
    uninstalled = []
    for d in deps:
        rc, st, _ = run(["dpkg-query", "-W", "-f", "${Status}", d])
        if "install ok installed" not in st:
            uninstalled.append(d)
    T.ok(m and not [n for n in need if n not in deps] and not bad and not not_lib and
         not uninstalled, "Depends: runtime libraries only (and adduser for postinst)",
         "Depends: %r\nmissing %r, build-time %r, not a library %r, not installed here %r"
         % (deps, [n for n in need if n not in deps], bad, not_lib, uninstalled))
    ctl = os.path.join(work, "control")
    rc, out, err = run(["dpkg-deb", "-e", deb, ctl])
    conffiles = open(os.path.join(ctl, "conffiles")).read().split() if rc == 0 else []
    T.eq(sorted(conffiles), ["/etc/logrotate.d/relaynode", "/etc/relaynode/relaynode.conf"],
         "conffiles: the bootstrap and the logrotate snippet")
    scripts_ok = []
    for s in ("postinst", "prerm", "postrm"):
        p = os.path.join(ctl, s)
        rc, out, err = run(["sh", "-n", p]) if os.path.exists(p) else (1, "", "absent")
        scripts_ok.append(rc == 0 and os.access(p, os.X_OK))
    post = open(os.path.join(ctl, "postinst")).read() if os.path.exists(
        os.path.join(ctl, "postinst")) else ""
    enables = re.search(r"systemctl\s+(enable|start)|deb-systemd-helper\s+enable", post)
    T.ok(all(scripts_ok) and "adduser --system --group" in post and "/var/spool/relaynode"
         in post and not enables, "maintainer scripts parse; postinst creates the user and "
         "the spool and enables nothing", post)
    x = os.path.join(work, "x")
    rc, out, err = run(["dpkg-deb", "-x", deb, x])
    conf = open(os.path.join(x, "etc/relaynode/relaynode.conf")).read() if rc == 0 else ""
    unit = open(os.path.join(x, "lib/systemd/system/relaynode.service")).read() if rc == 0 \
        else ""
    T.ok("bind_password_file = /etc/relaynode/service.pw" in conf and
         "ExecStart=/usr/sbin/relaynode -c /etc/relaynode/relaynode.conf --foreground" in unit,
         "the package uses /usr/sbin and /etc/relaynode", conf[:400] + unit[:400])


def main():
    if not all(os.access(os.path.join(BUILD, b), os.X_OK) for b in ("relaynode", "relayctl")):
        T.ok(False, "relaynode and relayctl built in %s" % BUILD)
        return T.done()
    missing = [t for t in ("mandoc", "systemd-analyze", "dpkg-deb", "dpkg-shlibdeps",
                           "logrotate") if not shutil.which(t)]
    if missing:
        T.ok(False, "tools present (bash deploy/deps.sh)", "missing: %r" % missing)
        return T.done()
    work = tempfile.mkdtemp(prefix="rn-packaging.")
    try:
        T.run("lint checks ran to the end", lambda: (test_lint(), True)[1])
        T.run("drift checks ran to the end", lambda: (test_drift(), True)[1])
        T.run("unit checks ran to the end", lambda: (test_units(work), True)[1])
        T.run("logrotate checks ran to the end", lambda: (test_logrotate(work), True)[1])
        T.run("deb checks ran to the end", lambda: (test_deb(work), True)[1])
    finally:
        if not os.environ.get("RN_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
    return T.done()


if __name__ == "__main__":
    sys.exit(main())
