"""samba_ad: a real Samba Active Directory DC for the AD-profile tests (issue #16).

enter_netns()   re-exec the calling test once under `unshare --net` and bring `lo` up; a
                no-op when already inside. Samba has no option for its LDAP port (389/636
                always), so every AD test runs in its own network namespace: samba, slapd,
                relaynode and the SMTP clients all live on that namespace's 127.0.0.1.
SambaAD         the DC. start() copies a TEMPLATE (built once per build tree and fixture
                version, see template()) into the test's temp dir, gives it a TLS
                certificate from a throwaway CA (deploy/pki/mkcerts.sh: dc1.rn.test,
                localhost, IP 127.0.0.1), starts `samba -i -M single` in the foreground
                (server services: only `ldap` by default, `services=` adds e.g. kdc) and
                waits until LDAP answers; stop() ends it by pid (SIGTERM, then SIGKILL) and
                removes only the directory it made. Attributes:
                  uri (ldaps://127.0.0.1), starttls_uri (ldap://127.0.0.1: StartTLS only,
                  there is no cleartext bind), ca_file, realm, domain_dn, config_dn,
                  schema_dn, org_dn, ag_dn, server (default "EX1"), admin_dn/admin_password,
                  svc_dn/svc_password (relaynode-svc: a normal user, see tests/data/ad/README.md)
                Methods: server_dn(name), connector_dn(server, name), user_dn(sam),
                bind_ok(dn, password, starttls=False),
                group_dn(cn), send_connector_dn(name), accepted_domain_dn(name),
                set_smart_host(host, port),
                ldapsearch(...), search(...), ldapmodify(ldif), dsacl_set(dn, sddl),
                read_sd(dn) -> bytes (SD flags control: DACL only), sid(dn), samba_tool(...).
dacl_aces(sd)   the DACL of a binary descriptor as tuples, for assertions; sid_str(),
                guid_str() for binary SIDs and GUIDs.
template()      the cached template directory: provisioned once (samba-tool domain
                provision, ~15 s) under build/<tree>/ad-template-<hash of the fixture files>
                by tests/lib/samba_ad_build.py, under a lock so two tests never build at once.

Everything is stopped through the pid this module started, never by name.
"""
import atexit
import base64
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rntest import ROOT, Entry, FixtureError, run  # noqa: E402

DATA_DIR = os.path.join(ROOT, "tests", "data", "ad")
BUILDER = os.path.join(ROOT, "tests", "lib", "samba_ad_build.py")
MKCERTS = os.path.join(ROOT, "deploy", "pki", "mkcerts.sh")
PY = "/usr/bin/python3"          # the Debian python with the samba modules

REALM, NETBIOS, DOMAIN_DN = "RN.TEST", "RN", "DC=rn,DC=test"
CONFIG_DN = "CN=Configuration," + DOMAIN_DN
SCHEMA_DN = "CN=Schema," + CONFIG_DN
ORG_NAME = "RN Org"
ORG_DN = "CN=%s,CN=Microsoft Exchange,CN=Services,%s" % (ORG_NAME, CONFIG_DN)
AG_DN = "CN=Exchange Administrative Group (FYDIBOHF23SPDLT),CN=Administrative Groups," + ORG_DN
ADMIN_PASSWORD = "Adm1n-Pass!"
ADMIN_DN = "CN=Administrator,CN=Users," + DOMAIN_DN
SVC_NAME, SVC_PASSWORD = "relaynode-svc", "Svc-Pass-7531!"
# Users of the seed organisation and their test-only passwords.
USERS = {"alice": "Alice-Pass-1!", "bob": "Bob-Pass-2!"}
SD_FLAGS_DACL = "1.2.840.113556.1.4.801=::MAMCAQQ="   # BER SEQUENCE { INTEGER 4 }
NETNS_ENV = "RN_NETNS"

_live = []


def _stop_all():
    for s in list(_live):
        s.stop()


atexit.register(_stop_all)
if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
    signal.signal(signal.SIGTERM, lambda sig, frm: sys.exit(128 + sig))


# -- the network namespace --------------------------------------------------------------
def _netns_id():
    return os.readlink("/proc/self/ns/net")


def enter_netns():
    """Re-exec this script under `unshare --net` (once), then bring lo up in the new
    namespace. The marker holds the namespace the re-exec came from, so a test started
    inside another test's namespace, or with a stale marker, still gets its own."""
    here = _netns_id()
    mark = os.environ.get(NETNS_ENV, "")
    if mark == "inside:" + here:
        return
    if mark != "from:" + here:            # not yet re-executed from this namespace
        sys.stdout.flush()
        sys.stderr.flush()
        os.environ[NETNS_ENV] = "from:" + here
        argv = ["unshare", "--net"] + (["--map-root-user"] if os.geteuid() != 0 else [])
        argv += ["--", sys.executable] + sys.argv
        os.execvp("unshare", argv)
    # Re-executed, but unshare did not give us a new namespace: fail, never run outside.
    raise FixtureError("enter_netns: still in the parent network namespace %s" % here)


def _netns_finish():
    """Called at import in the re-executed child: mark it and bring lo up."""
    here = _netns_id()
    mark = os.environ.get(NETNS_ENV, "")
    if mark.startswith("from:") and mark != "from:" + here:
        rc, out, err = run(["ip", "link", "set", "lo", "up"])
        if rc != 0:
            raise FixtureError("ip link set lo up: %s%s" % (out, err))
        os.environ[NETNS_ENV] = "inside:" + here


_netns_finish()


# -- the template ---------------------------------------------------------------------
def build_dir():
    return os.environ.get("RELAYNODE_BUILD") or os.path.join(ROOT, "build")


def fixture_hash():
    """Hash of everything the template is made from (builder, this module, data files)."""
    h = hashlib.sha256()
    files = [BUILDER, os.path.abspath(__file__)]
    if os.path.isdir(DATA_DIR):
        files += sorted(os.path.join(DATA_DIR, f) for f in os.listdir(DATA_DIR)
                        if f.endswith(".ldif"))
    for f in files:
        h.update(os.path.basename(f).encode() + b"\0")
        with open(f, "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()[:16]


def template(server="EX1", log=None):
    """The template directory for server (built if missing); returns (path, seconds spent
    building, 0.0 when it was cached)."""
    base = build_dir()
    os.makedirs(base, exist_ok=True)
    path = os.path.join(base, "ad-template-%s-%s" % (fixture_hash(), server))
    if os.path.isfile(os.path.join(path, "READY")):
        return path, 0.0
    with open(os.path.join(base, "ad-template.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.isfile(os.path.join(path, "READY")):
            return path, 0.0
        t0 = time.monotonic()
        work = tempfile.mkdtemp(prefix="ad-template-build-", dir=base)
        try:
            rc, out, err = run([PY, BUILDER, work, server], timeout=300)
            if rc != 0:
                raise FixtureError("building the AD template failed (rc %d):\n%s%s"
                                   % (rc, out[-3000:], err[-3000:]))
            with open(os.path.join(work, "PROVISION_DIR"), "w") as f:
                f.write(work)
            open(os.path.join(work, "READY"), "w").close()
            os.rename(work, path)
            _prune_templates(base, keep=path)
        finally:
            if os.path.isdir(work):
                shutil.rmtree(work, ignore_errors=True)
        return path, time.monotonic() - t0


def _prune_templates(base, keep):
    """Remove the templates of older fixture versions (other hashes; under the lock, so
    none is being built, and a running test works on its own copy)."""
    current = "ad-template-%s-" % os.path.basename(keep)[len("ad-template-"):].split("-")[0]
    for name in os.listdir(base):
        p = os.path.join(base, name)
        if name.startswith("ad-template-") and not name.startswith(current) and \
                os.path.isfile(os.path.join(p, "READY")):
            shutil.rmtree(p, ignore_errors=True)


# -- the DC -----------------------------------------------------------------------------
class SambaAD:
    """A Samba AD DC started from the template (see the module docstring)."""

    def __init__(self, server="EX1", directory=None, keep=None, services="ldap"):
        self.server = server
        self._own_dir = directory is None
        self.dir = directory
        self.keep = keep if keep is not None else bool(os.environ.get("RN_KEEP"))
        self.services = services
        self.proc = None
        self.pid = None
        self.template_seconds = 0.0
        self.realm, self.netbios = REALM, NETBIOS
        self.domain_dn, self.config_dn, self.schema_dn = DOMAIN_DN, CONFIG_DN, SCHEMA_DN
        self.org_dn, self.ag_dn = ORG_DN, AG_DN
        self.admin_dn, self.admin_password = ADMIN_DN, ADMIN_PASSWORD
        self.svc_name, self.svc_password = SVC_NAME, SVC_PASSWORD
        self.svc_dn = self.user_dn(SVC_NAME)
        self.users = dict(USERS)
        self.uri = "ldaps://127.0.0.1"
        self.starttls_uri = "ldap://127.0.0.1"
        self.ca_file = None

    # -- names -------------------------------------------------------------------------
    def server_dn(self, name=None):
        return "CN=%s,CN=Servers,%s" % (name or self.server, self.ag_dn)

    def connector_dn(self, server, name):
        return "CN=%s,CN=SMTP Receive Connectors,CN=Protocols,%s" % (name, self.server_dn(server))

    def send_connector_dn(self, name):
        return ("CN=%s,CN=Connections,CN=Exchange Routing Group (DWBGZMFD01QNBJR),"
                "CN=Routing Groups,%s" % (name, self.ag_dn))

    def accepted_domain_dn(self, name):
        return "CN=%s,CN=Accepted Domains,CN=Transport Settings,%s" % (name, self.org_dn)

    def user_dn(self, sam):
        return "CN=%s,CN=Users,%s" % (sam, DOMAIN_DN)

    def group_dn(self, cn):
        return "CN=%s,CN=Users,%s" % (cn, DOMAIN_DN)

    # -- lifecycle ---------------------------------------------------------------------
    def start(self, timeout=30.0):
        if _netns_id() == _init_netns():
            raise FixtureError("SambaAD.start: call enter_netns() first (samba binds "
                               "127.0.0.1:389 and :636, which only a private namespace may)")
        tpl, self.template_seconds = template(self.server)
        if self.dir is None:
            self.dir = tempfile.mkdtemp(prefix="rn-samba-")
        dc = os.path.join(self.dir, "dc")
        shutil.copytree(tpl, dc, symlinks=True)
        with open(os.path.join(tpl, "PROVISION_DIR")) as f:
            old = f.read().strip()
        conf = os.path.join(dc, "etc", "smb.conf")
        with open(conf) as f:
            text = f.read().replace(old, dc)
        with open(conf, "w") as f:
            f.write(text)
        self.smb_conf = conf
        pki = os.path.join(self.dir, "pki")
        rc, out, err = run(["bash", MKCERTS, pki, "dc1.rn.test", "localhost"])
        if rc != 0:
            raise FixtureError("mkcerts.sh: %s%s" % (out, err))
        self.ca_file = os.path.join(pki, "ca.pem")
        self.log_file = os.path.join(self.dir, "log.samba")
        for d in ("run", "cache"):
            os.makedirs(os.path.join(dc, d), exist_ok=True)
        opts = {
            "interfaces": "lo", "bind interfaces only": "yes",
            "server services": self.services, "log file": self.log_file, "log level": "1",
            "pid directory": os.path.join(dc, "run"), "tls enabled": "yes",
            "tls keyfile": os.path.join(pki, "node.key"),
            "tls certfile": os.path.join(pki, "node.pem"), "tls cafile": self.ca_file,
        }
        argv = ["samba", "-i", "-M", "single", "-s", conf]
        for k, v in opts.items():
            argv.append("--option=%s=%s" % (k, v))
        self.stdout_file = os.path.join(self.dir, "samba.out")
        if self not in _live:
            _live.append(self)
        with open(self.stdout_file, "wb") as out:
            # stdin stays an open pipe: `samba -i` exits when it closes (so samba never
            # outlives this process, even after a SIGKILL of the test).
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out,
                                         stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        self._wait_ldap(timeout)
        return self

    def _wait_ldap(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise FixtureError("samba exited (rc %s) before LDAP answered:\n%s"
                                   % (self.proc.returncode, self.output_tail()))
            rc, out, _ = run(["ldapsearch", "-x", "-LLL", "-H", self.uri, "-b", "", "-s",
                              "base", "dsServiceName"], env=self._env(), timeout=10)
            if rc == 0 and "dsServiceName" in out:
                return
            if time.monotonic() > deadline:
                raise FixtureError("samba LDAP did not answer within %ss:\n%s"
                                   % (timeout, self.output_tail()))
            time.sleep(0.1)

    def output_tail(self, n=30):
        text = ""
        for f in (getattr(self, "stdout_file", None), getattr(self, "log_file", None)):
            if f and os.path.exists(f):
                with open(f, errors="replace") as fh:
                    text += "".join(fh.readlines()[-n:])
        return text

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10.0):
        """SIGTERM, then SIGKILL after timeout; removes only the directory start() made."""
        if self in _live:
            _live.remove(self)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc is not None and self.proc.stdin:
            self.proc.stdin.close()
        if self._own_dir and not self.keep and self.dir and os.path.isdir(self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- LDAP through the real ldap-utils and samba-tool --------------------------------
    def _env(self):
        env = dict(os.environ)
        if self.ca_file:
            env["LDAPTLS_CACERT"] = self.ca_file
        env["LDAPTLS_REQCERT"] = "demand"
        return env

    def bind_args(self, bind):
        """bind: "admin", "svc", "anonymous", or (dn, password)."""
        if bind == "admin":
            return ["-D", self.admin_dn, "-w", self.admin_password]
        if bind == "svc":
            return ["-D", self.svc_dn, "-w", self.svc_password]
        if bind in (None, "anonymous"):
            return []
        return ["-D", bind[0], "-w", bind[1]]

    def ldapsearch(self, base=None, filt="(objectClass=*)", attrs=(), scope="sub",
                   bind="svc", controls=(), starttls=False):
        """ldapsearch -LLL; returns (rc, [Entry], stderr). controls: -E values."""
        uri = self.starttls_uri if starttls else self.uri
        args = ["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", uri]
        if starttls:
            args.append("-ZZ")
        args += ["-s", scope, "-b", self.domain_dn if base is None else base]
        args += self.bind_args(bind)
        for c in controls:
            args += ["-E", c]
        args += [filt] + list(attrs)
        rc, out, err = run(args, env=self._env())
        return rc, parse_ldif(out), err

    def search(self, base=None, filt="(objectClass=*)", attrs=(), scope="sub", bind="svc",
               controls=()):
        rc, entries, err = self.ldapsearch(base, filt, attrs, scope, bind, controls)
        if rc != 0:
            raise FixtureError("ldapsearch -b %r %s failed (rc %d): %s" % (base, filt, rc, err))
        return entries

    def bind_ok(self, dn, password, starttls=False):
        """(rc, stderr) of a simple bind as dn (a base search of the root DSE; samba has no
        WhoAmI extended operation): over ldaps, or StartTLS with starttls=True."""
        rc, _, err = self.ldapsearch("", scope="base", attrs=["dsServiceName"],
                                     bind=(dn, password), starttls=starttls)
        return rc, err

    def ldapmodify(self, ldif_text, bind="admin", add=False, controls=()):
        """ldapmodify (-a with add=True); returns (rc, stdout, stderr)."""
        args = ["ldapmodify", "-x", "-H", self.uri] + self.bind_args(bind)
        for c in controls:
            args += ["-E", c]
        if add:
            args.append("-a")
        return run(args, input=ldif_text, env=self._env())

    def samba_tool(self, *args, timeout=60):
        """samba-tool ARGS against the running DC over LDAP (StartTLS) as the admin."""
        argv = ["samba-tool"] + list(args) + [
            "-H", "ldap://127.0.0.1", "-s", self.smb_conf, "-U",
            "Administrator%" + self.admin_password,
            "--option=tls cafile=" + self.ca_file]
        return run(argv, timeout=timeout, env=self._env())

    def dsacl_set(self, dn, sddl):
        """Add the ACEs in sddl (e.g. "(OA;CI;CR;<guid>;;AN)") to dn's DACL with
        `samba-tool dsacl set`; raises on failure."""
        rc, out, err = self.samba_tool("dsacl", "set", "--objectdn=" + dn, "--sddl=" + sddl)
        if rc != 0:
            raise FixtureError("samba-tool dsacl set %s %s failed (rc %d): %s%s"
                               % (dn, sddl, rc, out, err))
        return out

    def read_sd(self, dn, bind="svc"):
        """dn's nTSecurityDescriptor (self-relative, DACL only: SD flags control = 4)."""
        entries = self.search(dn, attrs=["nTSecurityDescriptor"], scope="base", bind=bind,
                              controls=["!" + SD_FLAGS_DACL])
        if len(entries) != 1 or not entries[0].get("nTSecurityDescriptor"):
            raise FixtureError("no nTSecurityDescriptor readable on %s" % dn)
        return entries[0].get("nTSecurityDescriptor")[0]

    def set_smart_host(self, host, port, bind="admin"):
        """Point the "Internet" send connector at host:port (a test's sink)."""
        dn = self.send_connector_dn("Internet")
        rc, out, err = self.ldapmodify(
            "dn: %s\nchangetype: modify\nreplace: msExchSmtpSmartHost\nmsExchSmtpSmartHost: %s"
            "\n-\nreplace: msExchSmtpSendPort\nmsExchSmtpSendPort: %d\n-\n" % (dn, host, port),
            bind=bind)
        if rc != 0:
            raise FixtureError("set_smart_host: %s%s" % (out, err))

    def sid(self, dn, bind="svc"):
        """objectSid of dn as a string S-1-5-21-..."""
        e = self.search(dn, attrs=["objectSid"], scope="base", bind=bind)
        return sid_str(e[0].get("objectSid")[0])

    def token_groups(self, dn, bind="svc"):
        """The SID strings of dn's tokenGroups (a BASE search, as AD requires)."""
        e = self.search(dn, attrs=["tokenGroups"], scope="base", bind=bind)
        return [sid_str(v) for v in e[0].get("tokenGroups")]


BINARY_ATTRS = {"ntsecuritydescriptor", "objectsid", "tokengroups", "objectguid",
                "schemaidguid", "attributesecurityguid", "sidhistory"}


def parse_ldif(text):
    """Entries of `ldapsearch -LLL -o ldif-wrap=no` output. Values of BINARY_ATTRS are bytes
    (descriptors, SIDs, GUIDs); every other value is text (base64 ones decoded as UTF-8)."""
    entries, cur = [], None
    for line in text.splitlines():
        if not line.strip():
            cur = None
            continue
        if line.startswith("#"):
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        if value.startswith(":"):
            value = base64.b64decode(value[1:].strip())
            if name.lower() not in BINARY_ATTRS:
                value = value.decode("utf-8")
        else:
            value = value[1:] if value.startswith(" ") else value
        if name.lower() == "dn":
            cur = Entry(value)
            entries.append(cur)
        elif cur is not None:
            cur.add(name, value)
    return entries


def sid_str(raw):
    """A binary SID (bytes, or the str that parse_ldif decodes) -> "S-1-5-21-...". """
    if isinstance(raw, str):
        raise FixtureError("sid_str: %r is text, not a binary SID" % raw)
    rev, n = raw[0], raw[1]
    auth = int.from_bytes(raw[2:8], "big")
    subs = [int.from_bytes(raw[8 + 4 * i:12 + 4 * i], "little") for i in range(n)]
    return "S-%d-%d" % (rev, auth) + "".join("-%d" % s for s in subs)


def guid_str(b):
    """16 bytes as AD stores a GUID (first three fields little-endian) -> lowercase string."""
    le = [int.from_bytes(b[i:j], "little") for i, j in ((0, 4), (4, 6), (6, 8))]
    return "%08x-%04x-%04x-%s-%s" % (le[0], le[1], le[2], b[8:10].hex(), b[10:16].hex())


def dacl_aces(sd):
    """The ACEs of a self-relative descriptor's DACL (MS-DTYP 2.4.6), for test assertions:
    [(type, flags, mask, object type GUID or None, trustee SID string)]. Raises on a
    malformed descriptor; an ACE of another type is (type, flags, None, None, None)."""
    if len(sd) < 20 or sd[0] != 1:
        raise FixtureError("not a self-relative descriptor (%d bytes)" % len(sd))
    off = int.from_bytes(sd[16:20], "little")
    if off == 0:
        return []
    count, pos, out = int.from_bytes(sd[off + 4:off + 6], "little"), off + 8, []
    for _ in range(count):
        atype, aflags, size = sd[pos], sd[pos + 1], int.from_bytes(sd[pos + 2:pos + 4], "little")
        if size < 8 or pos + size > len(sd):
            raise FixtureError("ACE at %d: size %d runs past the descriptor" % (pos, size))
        body = sd[pos + 4:pos + size]
        if atype in (0x00, 0x01):
            out.append((atype, aflags, int.from_bytes(body[0:4], "little"), None,
                        sid_str(body[4:])))
        elif atype in (0x05, 0x06):
            oflags, q, obj = int.from_bytes(body[4:8], "little"), 8, None
            if oflags & 1:
                obj, q = guid_str(body[q:q + 16]), q + 16
            if oflags & 2:
                q += 16
            out.append((atype, aflags, int.from_bytes(body[0:4], "little"), obj,
                        sid_str(body[q:])))
        else:
            out.append((atype, aflags, None, None, None))
        pos += size
    return out


def _init_netns():
    try:
        return os.readlink("/proc/1/ns/net")
    except OSError:
        return None
