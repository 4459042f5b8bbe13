"""rntest: shared helpers for Relaynode's Python tests (stdlib only).

run(cmd)        -> (rc, stdout, stderr); cmd is an argv list (or a string run by bash).
free_port()     a TCP port nobody listens on right now.
Slapd           a throwaway slapd with the example organisation: a context manager around
                deploy/slapd/fixture.sh start/stop. slapd is stopped in __exit__ and at
                interpreter exit (atexit, and SIGTERM is turned into a normal exit), even
                when the test fails. Attributes after start():
                  dir, env (the DIR/env dict), uri, ldapi, pid, port, smtp_port, sub_port
                  (= submission_port), base_dn, relay_base, admin_dn, admin_pw_file,
                  admin_password, service_dn, service_pw_file, service_password, conf
                  (DIR/relaynode.conf), spool_dir, protocol_dir, node_dn
                Methods: ldapmodify(ldif) / ldapmodify_file(path) as the admin,
                ldapsearch(base, filter, attrs, ...) -> (rc, [Entry], stderr),
                search(...) -> [Entry] (raises on error), bind_ok(dn, password),
                user_dn(uid), connector_dn(name).
Tap             TAP output: `ok N - name` / `not ok N - name`, diagnostics as `# ...`
                lines, `1..N` at the end; done() is the exit status (non-zero on failure).
                Tap has no skip: a missing part is a failure (`not ok`).
harness_failure(name, diag)  a failure found by a shared path (rnnode.Node.stop: a node that
                exits non-zero on SIGTERM or whose output holds a sanitizer report). The next
                Tap.done() prints it as a `not ok` line before the plan; one found after the
                plan is printed as `not ok` at interpreter exit (tests/run.sh counts it, and
                a result beyond the plan is itself a failure there).
user_password(uid)  the test-only password of an example user (deploy/example/passwords.txt).

Every process is stopped through the pid the fixture recorded, never by name.
"""
import atexit
import base64
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback

ROOT = os.environ.get("RELAYNODE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FIXTURE = os.path.join(ROOT, "deploy", "slapd", "fixture.sh")
EXAMPLE_DIR = os.path.join(ROOT, "deploy", "example")


def run(cmd, input=None, timeout=120, env=None, cwd=None):
    """Run cmd (argv list, or a string for bash -c); returns (rc, stdout, stderr) as text.
    A timeout is rc -1 with the reason in stderr, never an exception."""
    if isinstance(cmd, str):
        cmd = ["bash", "-c", cmd]
    if isinstance(input, str):
        input = input.encode()
    try:
        p = subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, env=env, cwd=cwd)
    except subprocess.TimeoutExpired as e:
        return -1, (e.stdout or b"").decode("utf-8", "replace"), \
            "timeout after %ss: %s" % (timeout, " ".join(cmd))
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


sys.path.insert(0, os.path.join(ROOT, "deploy", "slapd"))
import freeport  # noqa: E402


def free_port(prefer=0, exclude=()):
    """A TCP port nobody listens on (on 0.0.0.0 and [::]), below the ephemeral range so
    no outgoing connection takes it before the listener does; prefer it if it is free."""
    return freeport.free_port(prefer, exclude)


def read_env(path):
    """Parse the fixture's shell-sourceable KEY='value' file into a dict."""
    out = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#") or "=" not in line:
                continue
            k, v = line.split("=", 1)
            if len(v) >= 2 and v[0] == v[-1] == "'":
                v = v[1:-1].replace("'\\''", "'")
            out[k] = v
    return out


def user_password(uid):
    """The test-only password of an example user, from deploy/example/passwords.txt."""
    with open(os.path.join(EXAMPLE_DIR, "passwords.txt")) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2 and not parts[0].startswith("#") and parts[0] == uid:
                return parts[1]
    raise KeyError("no password for %r in passwords.txt" % uid)


def pid_alive(pid):
    """True if pid is a live process (a zombie waiting to be reaped counts as gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("State:"):
                    return line.split()[1] != "Z"
    except (OSError, ValueError):
        return False
    return False


class Entry:
    """One LDAP entry: dn and attribute values; attribute names are case-insensitive."""

    def __init__(self, dn):
        self.dn = dn
        self.attrs = {}

    def add(self, name, value):
        self.attrs.setdefault(name.lower(), []).append(value)

    def get(self, name):
        """All values of name (empty list when absent)."""
        return self.attrs.get(name.lower(), [])

    def first(self, name, default=None):
        v = self.get(name)
        return v[0] if v else default

    def __repr__(self):
        return "Entry(%r, %r)" % (self.dn, self.attrs)


def parse_ldif(text):
    """Entries of unwrapped `ldapsearch -LLL -o ldif-wrap=no` output (base64 values decoded)."""
    entries, cur = [], None
    for line in text.splitlines():
        if not line.strip():
            cur = None
            continue
        if line.startswith("#"):
            continue
        if line.startswith(" ") and cur is not None:    # a wrapped line, if any slipped in
            k = list(cur.attrs)[-1] if cur.attrs else None
            if k:
                cur.attrs[k][-1] += line[1:]
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        if value.startswith(":"):
            value = base64.b64decode(value[1:].strip()).decode("utf-8", "replace")
        else:
            value = value[1:] if value.startswith(" ") else value
        if name.lower() == "dn":
            cur = Entry(value)
            entries.append(cur)
        elif cur is not None:
            cur.add(name, value)
    return entries


_live = []          # Slapd instances to stop at exit


def _stop_all():
    for s in list(_live):
        s.stop()


atexit.register(_stop_all)
if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
    # `timeout` in tests/run.sh sends SIGTERM: exit normally so atexit stops slapd.
    signal.signal(signal.SIGTERM, lambda sig, frm: sys.exit(128 + sig))


class FixtureError(Exception):
    pass


class Slapd:
    """A throwaway slapd in its own directory (see the module docstring)."""

    def __init__(self, directory=None, port=None, smtp_port=None, submission_port=None,
                 ldifs=(), keep=None, fixture_args=()):
        self._own_dir = directory is None
        self.dir = directory          # a temp dir is made by start() when None
        self.req_port, self.req_smtp, self.req_sub = port, smtp_port, submission_port
        self.ldifs = list(ldifs)
        self.fixture_args = list(fixture_args)   # e.g. ["--no-syncprov"]
        self.keep = keep if keep is not None else bool(os.environ.get("RN_KEEP"))
        self.env = {}
        self.pid = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self):
        if self.dir is None:
            self.dir = tempfile.mkdtemp(prefix="rn-slapd-")
        args = [FIXTURE, "start", self.dir]
        for flag, v in (("--port", self.req_port), ("--smtp-port", self.req_smtp),
                        ("--submission-port", self.req_sub)):
            if v:
                args += [flag, str(v)]
        for f in self.ldifs:
            args += ["--ldif", f]
        args += self.fixture_args
        if self not in _live:          # from now on stop() must run fixture.sh stop
            _live.append(self)
        rc, out, err = run(args)
        if rc != 0:
            raise FixtureError("fixture.sh start failed (rc %d): %s%s" % (rc, out, err))
        e = self.env = read_env(os.path.join(self.dir, "env"))
        self.uri, self.ldapi = e["SLAPD_URI"], e["SLAPD_LDAPI"]
        self.ldaps_uri, self.ldaps_port = e["SLAPD_LDAPS_URI"], int(e["SLAPD_LDAPS_PORT"])
        self.ca_file = e["SLAPD_CA"]
        self.pid, self.port = int(e["SLAPD_PID"]), int(e["SLAPD_PORT"])
        self.smtp_port, self.submission_port = int(e["SMTP_PORT"]), int(e["SUBMISSION_PORT"])
        self.sub_port = self.submission_port
        self.base_dn, self.relay_base = e["BASE_DN"], e["RELAY_BASE"]
        self.admin_dn, self.admin_pw_file = e["ADMIN_DN"], e["ADMIN_PW_FILE"]
        self.service_dn, self.service_pw_file = e["SERVICE_DN"], e["SERVICE_PW_FILE"]
        self.admin_password = open(self.admin_pw_file).read()
        self.service_password = open(self.service_pw_file).read()
        self.conf = os.path.join(self.dir, "relaynode.conf")
        self.spool_dir = os.path.join(self.dir, "spool")
        self.protocol_dir = os.path.join(self.dir, "protocol")
        self.node_dn = "cn=node1,cn=Default-Site,cn=Sites," + self.relay_base
        return self

    def stop(self):
        """Stop slapd (by the recorded pid) and, if we made the directory, remove it."""
        if self in _live:
            _live.remove(self)
            run([FIXTURE, "stop", self.dir])
        if self._own_dir and not self.keep and self.dir and os.path.isdir(self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)

    def running(self):
        return self.pid is not None and pid_alive(self.pid)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- names -------------------------------------------------------------------------
    def user_dn(self, uid):
        return "uid=%s,ou=People,%s" % (uid, self.base_dn)

    def group_dn(self, cn):
        return "cn=%s,ou=Groups,%s" % (cn, self.base_dn)

    def connector_dn(self, name):
        return "cn=%s,%s" % (name, self.node_dn)

    # -- LDAP through the real ldap-utils ----------------------------------------------
    def _bind_args(self, bind):
        """bind: "admin", "service", "anonymous", or (dn, password)."""
        if bind == "admin":
            return ["-D", self.admin_dn, "-y", self.admin_pw_file]
        if bind == "service":
            return ["-D", self.service_dn, "-y", self.service_pw_file]
        if bind in (None, "anonymous"):
            return []
        dn, pw = bind
        return ["-D", dn, "-w", pw]

    def ldapmodify(self, ldif_text, bind="admin", add=False):
        """ldapmodify (-a with add=True) the given LDIF; returns (rc, stdout, stderr)."""
        args = ["ldapmodify", "-x", "-H", self.uri] + self._bind_args(bind)
        if add:
            args.append("-a")
        return run(args, input=ldif_text)

    def ldapmodify_file(self, path, bind="admin"):
        with open(path) as f:
            text = f.read()
        rc, out, err = self.ldapmodify(text, bind=bind)
        if rc != 0:
            raise FixtureError("ldapmodify %s failed (rc %d): %s" % (path, rc, err))
        return rc, out, err

    def ldapsearch(self, base=None, filt="(objectClass=*)", attrs=(), scope="sub",
                   bind="service"):
        """ldapsearch -LLL; returns (rc, [Entry], stderr). rc 32 = no such object."""
        args = ["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", self.uri,
                "-s", scope, "-b", self.base_dn if base is None else base] + self._bind_args(bind)
        args += [filt] + list(attrs)
        rc, out, err = run(args)
        return rc, parse_ldif(out), err

    def search(self, base=None, filt="(objectClass=*)", attrs=(), scope="sub",
               bind="service"):
        """Like ldapsearch but raises FixtureError on any non-zero rc."""
        rc, entries, err = self.ldapsearch(base, filt, attrs, scope, bind)
        if rc != 0:
            raise FixtureError("ldapsearch -b %r %s failed (rc %d): %s" % (base, filt, rc, err))
        return entries

    def bind_ok(self, dn, password):
        """True if a simple bind as dn with password succeeds (ldapwhoami)."""
        rc, _, _ = run(["ldapwhoami", "-x", "-H", self.uri, "-D", dn, "-w", password])
        return rc == 0


_pending = []       # (name, diag) from harness_failure(), not yet printed
_last_tap = None


def harness_failure(name, diag=""):
    """Record a failure found by a shared stop path; see the module docstring."""
    _pending.append((name, diag))


def _report_late():
    """At exit: failures recorded after the last plan still become `not ok` lines."""
    if not _pending:
        return
    t = _last_tap or Tap()
    while _pending:
        name, diag = _pending.pop(0)
        t.ok(False, name + " (after the plan)", diag)


atexit.register(_report_late)


class Tap:
    """TAP lines `ok N - name` / `not ok N - name`, `# ` diagnostics, `1..N` at the end."""

    def __init__(self):
        global _last_tap
        self.n = 0
        self.failed = 0
        _last_tap = self

    def ok(self, cond, name, diag=""):
        self.n += 1
        if not cond:
            self.failed += 1
        print("%sok %d - %s" % ("" if cond else "not ", self.n, name), flush=True)
        if not cond and diag:
            for line in str(diag).splitlines():
                print("#   " + line, flush=True)
        return bool(cond)

    def eq(self, got, want, name):
        return self.ok(got == want, name, "got:      %r\nexpected: %r" % (got, want))

    def diag(self, text):
        for line in str(text).splitlines():
            print("# " + line, flush=True)

    def run(self, name, fn, *args):
        """One case: fn(*args) returns a bool or (bool, diag); an exception is a failure."""
        try:
            r = fn(*args)
            cond, d = r if isinstance(r, tuple) else (r, "")
        except Exception:
            cond, d = False, traceback.format_exc()
        return self.ok(cond, name, d)

    def done(self):
        """Print the plan; the exit status: 0 when everything passed (and something ran).
        Failures the shared stop paths recorded (harness_failure) come first, as `not ok`."""
        while _pending:
            name, diag = _pending.pop(0)
            self.ok(False, name, diag)
        print("1..%d" % self.n, flush=True)
        return 1 if self.failed or self.n == 0 else 0
