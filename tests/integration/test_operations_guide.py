#!/usr/bin/env python3
"""docs/operations.md's "Deploy a site", run literally (issue 12).

The test installs $RELAYNODE_BUILD's binaries into a DESTDIR (PREFIX=/usr SYSCONFDIR=/etc,
the package's layout), starts a slapd with a bare cn=config like Debian's default (core,
cosine, nis and inetorgperson schemas; one mdb database holding dc=example,dc=com and its
base entry; no relay schema, ACLs, indexes or syncprov: the guide adds them), and runs in one
bash, in order, the ```sh blocks of the guide's "Variables" and "Deploy a site" sections, with
the guide's variables set in the environment to the throwaway slapd, the DESTDIR paths and
free ports. Commands run as they are written; only `systemctl` is a shim (no booted systemd
here) that starts the ExecStart line of the installed unit, its /usr and /etc paths mapped
into the DESTDIR. The node the guide starts must relay a message from an application server
(127.0.2.55, the guide's APP_RANGE) to the test sink (the guide's SMART_HOST), accept mail for
the accepted domain from anyone, refuse relaying for others, and show as current in
`relayctl cluster status`. Everything is stopped by pid.
"""
import atexit
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import smtpsink  # noqa: E402
from rntest import ROOT, Tap, free_port, pid_alive, run  # noqa: E402

BUILD = os.environ.get("RELAYNODE_BUILD") or os.path.join(ROOT, "build")
GUIDE = os.path.join(ROOT, "docs", "operations.md")
SECTIONS = ("Variables", "Deploy a site")
SUFFIX = "dc=example,dc=com"
ADMIN_DN = "cn=admin," + SUFFIX
T = Tap()
PIDS = []          # (pid, comm) we started, stopped at exit


def stop_pid(pid, comm, timeout=10.0):
    """SIGTERM the process if it is still ours (same command name), then SIGKILL."""
    try:
        with open("/proc/%d/comm" % pid) as f:
            if f.read().strip() != comm:
                return
    except OSError:
        return
    os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < end:
        time.sleep(0.05)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


def stop_all():
    while PIDS:
        stop_pid(*PIDS.pop())


atexit.register(stop_all)


def guide_blocks():
    """[(section, text)] of the ```sh blocks under the SECTIONS (## headings), in order."""
    out, section, block = [], None, None
    with open(GUIDE) as f:
        for line in f:
            if block is not None:
                if line.strip() == "```":
                    out.append((section, "".join(block)))
                    block = None
                else:
                    block.append(line)
                continue
            m = re.match(r"^## (.*?)\s*$", line)
            if m:
                section = m.group(1)
            elif line.strip() == "```sh" and section in SECTIONS:
                block = []
    return out


CONFIG = """dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {dir}/slapd.pid
olcArgsFile: {dir}/slapd.args
olcLogLevel: none

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif

include: file:///etc/ldap/schema/cosine.ldif

include: file:///etc/ldap/schema/nis.ldif

include: file:///etc/ldap/schema/inetorgperson.ldif

dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend
olcSizeLimit: 500
olcAccess: {{0}}to * by dn.exact=gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth manage by dn.exact={me} manage by * break
olcAccess: {{1}}to dn.exact="" by * read
olcAccess: {{2}}to dn.base="cn=Subschema" by * read

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by dn.exact=gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth manage by dn.exact={me} manage by * break

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcDbDirectory: {dir}/db
olcSuffix: {suffix}
olcRootDN: {admin}
olcRootPW: {hash}
olcDbIndex: objectClass eq
olcDbIndex: cn,uid eq
olcDbIndex: uidNumber,gidNumber eq
olcDbIndex: member,memberUid eq
olcDbMaxSize: 1073741824
olcAccess: {{0}}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {{1}}to attrs=shadowLastChange by self write by * read
olcAccess: {{2}}to * by * read
olcLastMod: TRUE
"""

BASE = """dn: {suffix}
objectClass: dcObject
objectClass: organization
dc: example
o: Example
"""


def start_slapd(d):
    """A Debian-like bare slapd in d; returns (ldap uri, ldapi uri, admin password file)."""
    os.makedirs(os.path.join(d, "slapd.d"))
    os.makedirs(os.path.join(d, "db"))
    pw = os.path.join(d, "admin.pw")
    with open(pw, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write("guide-admin-%d" % os.getpid())
    rc, h, err = run(["slappasswd", "-T", pw])
    if rc != 0:
        raise RuntimeError("slappasswd: " + err)
    me = "gidNumber=%d+uidNumber=%d,cn=peercred,cn=external,cn=auth" % (os.getgid(), os.getuid())
    cfg = os.path.join(d, "config.ldif")
    with open(cfg, "w") as f:
        f.write(CONFIG.format(dir=d, suffix=SUFFIX, admin=ADMIN_DN, hash=h.strip(), me=me))
    for argv, inp in ((["slapadd", "-n0", "-F", os.path.join(d, "slapd.d"), "-l", cfg], None),
                      (["slapadd", "-F", os.path.join(d, "slapd.d"), "-b", SUFFIX],
                       BASE.format(suffix=SUFFIX))):
        rc, out, err = run(argv, input=inp)
        if rc != 0:
            raise RuntimeError("%s: %s%s" % (argv[0], out, err))
    ldapi = "ldapi://%s/" % urllib.parse.quote(os.path.join(d, "ldapi"), safe="")
    for _ in range(5):
        port = free_port()
        uri = "ldap://127.0.0.1:%d/" % port
        rc, out, err = run(["slapd", "-F", os.path.join(d, "slapd.d"), "-h",
                            "%s %s" % (uri, ldapi)])
        if rc == 0:
            break
    else:
        raise RuntimeError("slapd did not start: " + err)
    with open(os.path.join(d, "slapd.pid")) as f:
        PIDS.append((int(f.read().strip()), "slapd"))
    for _ in range(100):
        if run(["ldapsearch", "-x", "-LLL", "-H", uri, "-b", "", "-s", "base", "1.1"])[0] == 0:
            return uri, ldapi, pw
        time.sleep(0.1)
    raise RuntimeError("slapd does not answer on " + uri)


SHIM = r'''#!/usr/bin/python3
"""systemctl for test_operations_guide.py: `enable --now UNIT` starts the installed unit's
ExecStart (its /usr and /etc paths moved into the DESTDIR) in the background and records its
pid; anything else is refused, so the guide's tested blocks use nothing else."""
import os, shlex, subprocess, sys
root, state = os.environ["RN_SHIM_ROOT"], os.environ["RN_SHIM_STATE"]
a = sys.argv[1:]
if len(a) != 3 or a[:2] != ["enable", "--now"]:
    sys.exit("systemctl shim: unsupported: %s" % " ".join(a))
unit = None
for d in ("usr/lib/systemd/system", "lib/systemd/system"):
    p = os.path.join(root, d, a[2])
    if os.path.exists(p):
        unit = p
if not unit:
    sys.exit("systemctl shim: no unit %s" % a[2])
line = [l for l in open(unit) if l.startswith("ExecStart=")][0][len("ExecStart="):]
argv = [root + x if x.startswith(("/usr/", "/etc/")) else x for x in shlex.split(line)]
argv += os.environ.get("RN_SHIM_EXTRA", "").split()
out = open(os.path.join(state, "relaynode.out"), "ab")
p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                     start_new_session=True)
open(os.path.join(state, "relaynode.pid"), "w").write("%d\n" % p.pid)
'''

RUNUSER = r'''#!/bin/sh
# runuser for a non-root test run: the guide runs --check as RUN_USER, which is us.
[ "$1" = -u ] && [ "$2" = "$(id -un)" ] && [ "$3" = -- ] || { echo "runuser shim: $*" >&2; exit 1; }
shift 3; exec "$@"
'''


def node_extra(binary):
    if os.geteuid() != 0:
        return ""
    rc, out, err = run([binary, "--help"])
    return "--allow-root" if "--allow-root" in out + err else ""


def main():
    if not all(os.access(os.path.join(BUILD, b), os.X_OK) for b in ("relaynode", "relayctl")):
        T.ok(False, "relaynode and relayctl built in %s" % BUILD)
        return T.done()
    t0 = time.monotonic()
    blocks = guide_blocks()
    T.ok(len(blocks) >= 8 and blocks[0][0] == "Variables" and
         all(s == "Deploy a site" for s, _ in blocks[1:]),
         "the guide has a Variables block and the Deploy a site blocks (%d)" % len(blocks),
         repr([s for s, _ in blocks]))
    work = tempfile.mkdtemp(prefix="rn-guide.")
    root, state, shim = (os.path.join(work, n) for n in ("root", "state", "bin"))
    for d in (state, shim):
        os.makedirs(d)
    sink = smtpsink.Sink(os.path.join(work, "sink")).start()
    try:
        rc, out, err = run(["make", "--no-print-directory", "-C", ROOT, "B=" + BUILD,
                            "DESTDIR=" + root, "PREFIX=/usr", "SYSCONFDIR=/etc", "install"])
        T.ok(rc == 0, "make install DESTDIR PREFIX=/usr SYSCONFDIR=/etc", out + err)
        uri, ldapi, admin_pw = start_slapd(os.path.join(work, "slapd"))
        rc, out, err = run(["ldapsearch", "-Q", "-Y", "EXTERNAL", "-H", ldapi, "-LLL", "-b",
                            "cn=schema,cn=config", "-s", "one", "cn"])
        T.ok(rc == 0 and "relaynode" not in out and "inetorgperson" in out,
             "the slapd starts bare: no relay schema", out + err)
        with open(os.path.join(shim, "systemctl"), "w") as f:
            f.write(SHIM)
        files = ["systemctl"]
        if os.geteuid() != 0:
            with open(os.path.join(shim, "runuser"), "w") as f:
                f.write(RUNUSER)
            files.append("runuser")
        for n in files:
            os.chmod(os.path.join(shim, n), 0o755)
        smtp_port = free_port()
        bus_port = free_port(exclude=(smtp_port,))
        env = dict(os.environ,
                   PATH="%s:%s:%s" % (shim, os.path.join(root, "usr/sbin"), os.environ["PATH"]),
                   RN_SHIM_ROOT=root, RN_SHIM_STATE=state,
                   RN_SHIM_EXTRA=node_extra(os.path.join(root, "usr/sbin/relaynode")),
                   LDAP_URI=uri, LDAPI_URI=ldapi, SUFFIX=SUFFIX, ADMIN_DN=ADMIN_DN,
                   ADMIN_PW_FILE=admin_pw, SHARE=os.path.join(root, "usr/share/relaynode"),
                   ETC=os.path.join(root, "etc/relaynode"), SPOOL=os.path.join(work, "spool"),
                   LOG_DIR=os.path.join(work, "log"),
                   RUN_USER=pwd.getpwuid(os.geteuid()).pw_name, NODE_IP="127.0.0.1",
                   BUS_PORT=str(bus_port), SMTP_PORT=str(smtp_port), APP_RANGE="127.0.2.55",
                   SMART_HOST="127.0.0.1:%d" % sink.port)
        for k in ("RELAYNODE_CONFIG", "DB_DN", "MODULE_DN", "SITE", "NODE", "NODE_HOST",
                  "MAIL_DOMAIN"):
            env.pop(k, None)          # the guide's defaults
        script = ["set -e -o pipefail"]
        for i, (section, text) in enumerate(blocks):
            script.append("echo '>>> guide block %d (%s)' >&2" % (i + 1, section))
            script.append(text)
        script.append("echo '>>> guide done' >&2")
        p = subprocess.run(["bash", "-c", "\n".join(script)], env=env, cwd=work,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        log = p.stdout.decode("utf-8", "replace")
        T.ok(p.returncode == 0 and ">>> guide done" in log,
             "every Deploy a site block runs as written (exit %d)" % p.returncode, log[-4000:])
        pid_file = os.path.join(state, "relaynode.pid")
        if os.path.exists(pid_file):
            PIDS.append((int(open(pid_file).read()), "relaynode"))
        up = rnnode.wait_port("127.0.0.1", smtp_port, timeout=20)
        nlog = os.path.join(work, "log", "relaynode.log")

        def node_log():
            out = ""
            for f in (nlog, os.path.join(state, "relaynode.out")):
                if os.path.exists(f):
                    out += open(f, errors="replace").read()[-3000:]
            return out
        T.ok(up, "the node the guide started listens on SMTP_PORT", node_log())
        if up:
            with rnnode.Client("127.0.0.1", smtp_port, source="127.0.2.55") as cl:
                r = cl.send_message("app@example.com", ["someone@outside.test"],
                                    rnnode.message("app@example.com", "someone@outside.test",
                                                   "guide-relay"))
            T.ok(rnnode.queued_id(r[-1]), "an application server in APP_RANGE relays", repr(r))
            got = sink.wait(1, 20, lambda m: b"guide-relay" in m["data"])
            T.ok(got and got[0]["to"] == ["someone@outside.test"],
                 "the message reaches the smart host", node_log())
            with rnnode.Client("127.0.0.1", smtp_port) as cl:
                cl.ehlo()
                mail = cl.cmd("MAIL FROM:<someone@outside.test>")
                inside = cl.cmd("RCPT TO:<postmaster@example.com>")
                outside = cl.cmd("RCPT TO:<someone@elsewhere.test>")
            T.ok(mail.startswith("250") and inside.startswith("250") and
                 outside.startswith("550"), "anyone may send to the accepted domain, nobody "
                 "else may relay", "%s | %s | %s" % (mail, inside, outside))
            rc, out, err = run(["relayctl", "cluster", "status"], env=dict(
                env, RELAYNODE_CONFIG=os.path.join(root, "etc/relaynode/relayctl.conf")))
            T.ok(rc == 0 and re.search(r"^relay1\s.*\scurrent\s", out, re.M),
                 "relayctl cluster status: the node is current", out + err)
        T.ok(time.monotonic() - t0 < 60, "under 60 s (%.1f s)" % (time.monotonic() - t0))
    finally:
        stop_all()
        sink.stop()
        if not os.environ.get("RN_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
    return T.done()


if __name__ == "__main__":
    sys.exit(main())
