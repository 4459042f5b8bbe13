"""rnnode: run a relaynode for a test and talk SMTP to it.

Node   starts build/relaynode -c DIR/relaynode.conf --foreground (the conf a Slapd fixture
       wrote), waits until its SMTP ports accept, signals it by pid (SIGHUP reload, SIGTERM
       drain, SIGKILL crash), reads its log, its VmRSS and `relaynode --list-spool`.
       wait_log() waits (bounded) for a log line: the log writer is its own thread and
       batches lines, so a line lands a few ms after the reply that caused it.
Client a raw SMTP client on a socket that can bind a chosen source address (127.0.2.55 plays
       a CRM application server) and returns exact reply lines; send_raw() writes any bytes,
       so hostile input (bare CR/LF, NUL, over-long lines) goes out exactly as written.
TLSClient  a Client that upgrades its socket in place after STARTTLS; tls_auth() logs in on
       the submission port (EHLO, STARTTLS, EHLO, AUTH PLAIN).
smtp() an smtplib.SMTP bound to a source address, for ordinary flows.
swaks() runs swaks and returns (rc, transcript).
The exact replies the SMTP tests compare against (RCPT_OK, NO_RELAY, OK_AUTH, ...), Sources
(one loopback source address per client), tag() (unique Subject markers), plain() (AUTH
PLAIN), example_passwords() and send_tagged() (one message, its spooled recipients) are
shared here so the tests do not each keep a copy.

Nothing here kills by name: every process is stopped through the pid this module started.
"""
import base64
import contextlib
import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import time

ROOT = os.environ.get("RELAYNODE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))


def relaynode_binary():
    """The relaynode under test: $RELAYNODE_BUILD (set by tests/run.sh), else build/."""
    build = os.environ.get("RELAYNODE_BUILD") or os.path.join(ROOT, "build")
    return os.path.join(build, "relaynode")


def missing_node(tap=None):
    """True (after a `not ok` line) when there is no relaynode binary to test: a missing part
    is a failure, never a skip. With a Tap, the failure is one of its results; without, a
    whole TAP stream (`not ok 1`, `1..1`) is printed and the caller exits non-zero."""
    path = relaynode_binary()
    if os.path.exists(path):
        return False
    if tap is not None:
        tap.ok(False, "relaynode binary exists at %s" % path)
    else:
        print("not ok 1 - relaynode binary exists at %s\n1..1" % path, flush=True)
    return True


SANITIZER_REPORTS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer",
                     "ERROR: ThreadSanitizer", "WARNING: MemorySanitizer")


def sanitizer_report(text):
    """The first lines of the first sanitizer report in text, or None."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if any(m in line for m in SANITIZER_REPORTS):
            return "\n".join(lines[max(0, i - 2):i + 30])
    return None


def wait_port(host, port, timeout=15.0, source=None):
    """Wait until host:port accepts a TCP connection; True when it does."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            fam = socket.AF_INET6 if ":" in host else socket.AF_INET
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.settimeout(1.0)
            if source:
                s.bind((source, 0))
            s.connect((host, port))
            s.close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def port_closed(host, port, timeout=10.0):
    """Wait until host:port refuses connections; True when it does."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(1.0)
        try:
            s.connect((host, port))
        except ConnectionRefusedError:
            return True
        except OSError:
            pass
        finally:
            s.close()
        time.sleep(0.1)
    return False


class NodeError(Exception):
    pass


class Node:
    """One relaynode in the foreground. Use as a context manager, or start()/stop()."""

    def __init__(self, conf, ports=(), host="127.0.0.1", log_path=None, binary=None,
                 extra_args=(), env=None, allow_root=True):
        self.conf = conf
        self.env = env                  # extra environment variables (e.g. RELAYNODE_FAULT)
        self.ports = list(ports)
        self.host = host
        self.binary = binary or relaynode_binary()
        self.log_path = log_path or os.path.join(os.path.dirname(conf), "relaynode.out")
        self.extra_args = list(extra_args)
        # The harness runs as root: a node refuses that without `user` unless told
        # (allow_root=False tests the refusal or the privilege drop).
        if allow_root and os.geteuid() == 0 and "--allow-root" not in self.extra_args:
            self.extra_args.append("--allow-root")
        self.proc = None
        self._logf = None

    # -- lifecycle ----------------------------------------------------------------------
    def start(self, timeout=20.0):
        if not os.path.exists(self.binary):
            raise NodeError("no relaynode binary at %s" % self.binary)
        self._logf = open(self.log_path, "ab")
        self._log_from = self._logf.seek(0, os.SEEK_END)   # this run's output starts here
        self._killed = self._checked = False
        self.proc = subprocess.Popen(
            [self.binary, "-c", self.conf, "--foreground"] + self.extra_args,
            env=dict(os.environ, **self.env) if self.env else None, stdin=subprocess.DEVNULL,
            stdout=self._logf, stderr=subprocess.STDOUT,
            start_new_session=True)
        for p in self.ports:
            left = max(0.1, timeout)
            t0 = time.monotonic()
            while not wait_port(self.host, p, timeout=0.5):
                if self.proc.poll() is not None:
                    raise NodeError("relaynode exited %s before port %d accepted; log:\n%s"
                                    % (self.proc.returncode, p, self.log_tail()))
                if time.monotonic() - t0 > left:
                    raise NodeError("port %d never accepted; log:\n%s" % (p, self.log_tail()))
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)

    def reload(self, settle=0.3):
        """SIGHUP: the node reloads from the directory. Callers that depend on the new
        snapshot should poll for the behaviour (eventually()), not trust the sleep."""
        self.signal(signal.SIGHUP)
        time.sleep(settle)

    def stop(self, timeout=10.0, expect_rc=0):
        """SIGTERM (drain), then SIGKILL after timeout. Returns the exit status.
        Every test gets the exit check here: a node that does not exit expect_rc (None: any
        status, for a node the test expects to fail), that needs the SIGKILL, or whose
        output holds a sanitizer report is a harness failure (rntest.harness_failure: a
        `not ok` line). After kill9() only the sanitizer scan applies."""
        if self.proc is None:
            return None
        hung = False
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                hung = True
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        rc = self.proc.returncode
        if self._logf:
            self._logf.close()
            self._logf = None
        self._check_exit(rc, expect_rc, hung, timeout)
        return rc

    def kill9(self):
        """SIGKILL by pid and reap: a crash, no drain. Exempt from the exit check (not from
        the sanitizer scan of what it wrote before the kill)."""
        if self.alive():
            self._killed = True
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        if self._logf:
            self._logf.close()
            self._logf = None
        if self.proc is not None and self.proc.poll() is not None:
            self._check_exit(self.proc.returncode, None, False, 0)

    def _check_exit(self, rc, expect_rc, hung, timeout):
        """Record (once per started process) a bad exit or a sanitizer report."""
        if self._checked:
            return
        self._checked = True
        import rntest
        who = "relaynode pid %d (%s)" % (self.proc.pid, self.log_path)
        out = self.run_output()
        if hung:
            rntest.harness_failure("%s exits within %ss of SIGTERM" % (who, timeout),
                                   out[-3000:])
        elif not self._killed and expect_rc is not None and rc != expect_rc:
            rntest.harness_failure("%s exits %s on stop (got %s)" % (who, expect_rc, rc),
                                   out[-3000:])
        rep = sanitizer_report(out) or self._sanitizer_file()
        if rep:
            rntest.harness_failure("%s output holds no sanitizer report" % who, rep)

    def _sanitizer_file(self):
        """Under tests/run.sh, sanitizer reports go to RN_SANITIZER_DIR/{asan,ubsan}.PID (a
        detached daemon's stderr is /dev/null): this process's report, if any. The file is
        renamed *.seen so run.sh does not count it a second time."""
        d = os.environ.get("RN_SANITIZER_DIR")
        if not d:
            return None
        rep = []
        for kind in ("asan", "ubsan"):
            p = os.path.join(d, "%s.%d" % (kind, self.proc.pid))
            try:
                with open(p, errors="replace") as f:
                    rep.append(f.read()[:4000])
                os.rename(p, p + ".seen")
            except OSError:
                pass
        return "\n".join(rep) or None

    def run_output(self):
        """What this process (since the last start()) wrote to its stdout/stderr file."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_from)
                return f.read().decode("utf-8", "replace")
        except (OSError, AttributeError):
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- observation --------------------------------------------------------------------
    def log_files(self):
        """The node's stdout/stderr file and the `log` file its bootstrap names, if any."""
        files = [self.log_path]
        try:
            with open(self.conf) as f:
                for line in f:
                    k, sep, v = line.partition("=")
                    if sep and k.strip() == "log" and v.strip().startswith("/"):
                        files.append(v.strip())
        except OSError:
            pass
        return files

    def log(self):
        out = []
        for p in self.log_files():
            try:
                with open(p, "rb") as f:
                    out.append(f.read().decode("utf-8", "replace"))
            except OSError:
                pass
        return "\n".join(out)

    def log_tail(self, n=40):
        return "\n".join(self.log().splitlines()[-n:])

    def wait_log(self, pattern, timeout=10.0, since=0):
        """Wait (bounded) until the log has pattern: a plain string (substring) or a compiled
        regular expression, looked for in log()[since:]. The log is written by its own thread
        that batches lines, so a line may land a few ms after the reply that caused it.
        Returns the match (True for a string, the re.Match) as soon as it is there, else a
        false value after timeout. Absent-checks must not use this: wait for a later line
        that is present first, then read log() once."""
        def found():
            text = self.log()[since:]
            if isinstance(pattern, str):
                return pattern in text
            return pattern.search(text)
        return eventually(found, timeout, 0.05)

    def rss_kib(self):
        """VmRSS of the node in KiB (from /proc/<pid>/status)."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise NodeError("no VmRSS for pid %d" % self.proc.pid)

    def list_spool(self):
        """Output of `relaynode -c CONF --list-spool` (raises on a non-zero exit)."""
        r = subprocess.run([self.binary, "-c", self.conf, "--list-spool"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        if r.returncode != 0:
            raise NodeError("--list-spool exited %d: %s" % (r.returncode,
                                                           r.stderr.decode(errors="replace")))
        return r.stdout.decode("utf-8", "replace")


SPOOL_TEXT = {1: "sender", 2: "rcpt", 3: "client_ip", 4: "helo", 5: "connector",
              6: "auth_user", 7: "auth_as"}


def spool_parse(raw):
    """Decode a spool file (node/spool/spool_record.h: "RNQ1" 1, then {type, u32 BE length,
    payload} records, DATA pieces, END). Returns a dict with sender, rcpts, client_ip, helo,
    connector, auth_user, auth_as, flags, antispam_bypass, data (message bytes) and
    complete (an END record was seen), or None when raw is not in that format."""
    if raw[:5] != b"RNQ1\x01":
        return None
    out = {"rcpts": [], "data": b"", "complete": False, "auth_user": None, "flags": 0}
    i, data = 5, []
    while i + 5 <= len(raw):
        t, n = raw[i], int.from_bytes(raw[i + 1:i + 5], "big")
        payload = raw[i + 5:i + 5 + n]
        i += 5 + n
        if t == 2:
            out["rcpts"].append(payload.decode("utf-8", "replace"))
        elif t in SPOOL_TEXT:
            out[SPOOL_TEXT[t]] = payload.decode("utf-8", "replace")
        elif t == 8:
            out["flags"] = int.from_bytes(payload, "big")
        elif t == 10:
            data.append(payload)
        elif t == 11:
            out["complete"] = True
            break
    out["data"] = b"".join(data)
    out["antispam_bypass"] = bool(out["flags"] & 1)
    return out


def spool_text(raw):
    """The searchable text of a spool file: envelope lines then the message bytes (record
    headers removed, so a marker is never split by a DATA record boundary)."""
    m = spool_parse(raw)
    if m is None:
        return raw
    env = [m.get("sender", "")] + m["rcpts"] + [m.get(k) or "" for k in
                                                ("client_ip", "helo", "connector", "auth_as")]
    return ("\n".join(env) + "\n").encode() + m["data"]


def spool_files(spool_dir):
    """{name: bytes} of the committed messages in spool_dir/queue (envelope lines, then the
    message: see spool_text)."""
    out = {}
    q = os.path.join(spool_dir, "queue")
    if not os.path.isdir(q):
        return out
    for name in sorted(os.listdir(q)):
        p = os.path.join(q, name)
        if os.path.isfile(p):
            with open(p, "rb") as f:
                out[name] = spool_text(f.read())
    return out


def spool_messages(spool_dir, needle):
    """{name: spool_parse dict} of the committed messages whose text contains needle."""
    if isinstance(needle, str):
        needle = needle.encode()
    out = {}
    q = os.path.join(spool_dir, "queue")
    for name in spool_files(spool_dir):
        with open(os.path.join(q, name), "rb") as f:
            raw = f.read()
        if needle in spool_text(raw):
            out[name] = spool_parse(raw)
    return out


def spool_find(spool_dir, needle):
    """The committed spool files (name -> text, see spool_text) containing needle."""
    if isinstance(needle, str):
        needle = needle.encode()
    return {k: v for k, v in spool_files(spool_dir).items() if needle in v}


def eventually(fn, timeout=10.0, interval=0.2):
    """Call fn until it returns a truthy value or timeout; return the last value."""
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= end:
            return v
        time.sleep(interval)


# -- SMTP -------------------------------------------------------------------------------
class Closed(Exception):
    """The server closed the connection."""


class Client:
    """A raw SMTP client. Replies are lists of lines without CRLF; reply() returns the last
    line of a (possibly multi-line) reply, which carries the final code."""

    def __init__(self, host, port, source=None, timeout=10.0, read_banner=True):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if source:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        self.buf = b""
        self.eof = False
        self.banner = self.read_reply() if read_banner else None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _fill(self, timeout=None):
        if self.eof:
            return False
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_line(self, timeout=None):
        """One reply line (str, no CRLF); raises Closed at EOF, socket.timeout on timeout."""
        while b"\n" not in self.buf:
            if not self._fill(timeout):
                if self.buf:
                    line, self.buf = self.buf, b""
                    return line.decode("utf-8", "replace")
                raise Closed()
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def read_reply(self, timeout=None):
        """All lines of one reply (until 'NNN ' form)."""
        lines = []
        while True:
            line = self.read_line(timeout)
            lines.append(line)
            if not (len(line) >= 4 and line[3] == "-"):
                return lines

    def reply(self, timeout=None):
        return self.read_reply(timeout)[-1]

    def send_raw(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def cmd(self, line, timeout=None):
        """Send one command (CRLF added) and return the last line of its reply."""
        self.send_raw(line.encode() + b"\r\n" if isinstance(line, str) else line + b"\r\n")
        return self.reply(timeout)

    def cmd_lines(self, line, timeout=None):
        self.send_raw(line.encode() + b"\r\n" if isinstance(line, str) else line + b"\r\n")
        return self.read_reply(timeout)

    def ehlo(self, name="client.test"):
        return self.cmd_lines("EHLO " + name)

    def data(self, message, timeout=None):
        """DATA, then the message (dot-stuffed here, CRLF line ends), then the final dot.
        Returns (reply to DATA, final reply or None when DATA was refused)."""
        r = self.cmd("DATA", timeout)
        if not r.startswith("354"):
            return r, None
        if isinstance(message, str):
            message = message.encode()
        lines = message.replace(b"\r\n", b"\n").split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        body = b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n" for l in lines)
        self.send_raw(body + b".\r\n")
        return r, self.reply(timeout)

    def replies_until_close(self, timeout=5.0, limit=1000):
        """Every line the server sends until it closes (or timeout: then 'TIMEOUT' is last)."""
        out = []
        end = time.monotonic() + timeout
        while len(out) < limit:
            left = end - time.monotonic()
            if left <= 0:
                out.append("TIMEOUT")
                return out
            try:
                out.append(self.read_line(left))
            except Closed:
                return out
            except socket.timeout:
                out.append("TIMEOUT")
                return out
        return out

    def closed_by_server(self, timeout=5.0):
        """True when the server closes within timeout with no further bytes."""
        rest = self.replies_until_close(timeout)
        return rest == []

    def send_message(self, sender, rcpts, message, ehlo="client.test"):
        """A whole transaction; returns the list of last reply lines
        [ehlo, mail, rcpt..., data, final]. Stops at the first refused step."""
        out = [self.ehlo(ehlo)[-1]]
        out.append(self.cmd("MAIL FROM:<%s>" % sender))
        if not out[-1].startswith("250"):
            return out
        ok = 0
        for r in rcpts:
            out.append(self.cmd("RCPT TO:<%s>" % r))
            ok += out[-1].startswith("250")
        if not ok:
            return out
        d, final = self.data(message)
        out.append(d)
        if final is not None:
            out.append(final)
        return out


class TLSClient(Client):
    """A Client whose socket is upgraded in place after a 220 to STARTTLS (the node's
    certificate checked against ca, its name not: the tests reach it as 127.0.0.1)."""

    def starttls(self, ca, pipelined=b""):
        self.send_raw(b"STARTTLS\r\n" + pipelined)
        r = self.reply()
        if not r.startswith("220 "):
            return r
        ctx = ssl.create_default_context(cafile=ca)
        ctx.check_hostname = False
        self.sock = ctx.wrap_socket(self.sock, server_hostname="node1.example.com")
        self.buf = b""
        return r


# -- what the SMTP tests share: exact replies, sources, markers, AUTH ---------------------
SENDER_OK = "250 2.1.0 Sender OK"
RCPT_OK = "250 2.1.5 Recipient OK"
NO_RELAY = "550 5.7.1 Unable to relay"
NO_DEFAULT = ("550 5.1.1 Recipient <postmaster> has no domain and no default accepted domain "
              "is configured")
OK_AUTH = "235 2.7.0 Authentication successful"
AUTH_BAD = "535 5.7.3 Authentication unsuccessful"
AUTH_TEMP = "454 4.7.0 Temporary authentication failure"
NOMECH = "504 5.7.4 Unrecognized authentication type"


class Sources:
    """Source addresses net.11, net.12, ... on lo, one per client: the per-source AUTH
    failure limit of one case never touches another. src = Sources("127.0.5"); src()."""

    def __init__(self, net):
        self.net, self.n = net, 10

    def __call__(self):
        self.n += 1
        return "%s.%d" % (self.net, self.n)


_tags = [0]


def tag(prefix):
    """A marker unique to this process and call (Subject lines, local parts)."""
    _tags[0] += 1
    return "%s-%d-%d" % (prefix, os.getpid(), _tags[0])


def b64(s):
    return base64.b64encode(s if isinstance(s, bytes) else s.encode()).decode()


def plain(user, pw, authzid=""):
    """The AUTH PLAIN initial response (RFC 4616): authzid NUL user NUL password."""
    def raw(x):
        return x if isinstance(x, bytes) else x.encode()
    return b64(raw(authzid) + b"\0" + raw(user) + b"\0" + raw(pw))


def example_passwords():
    """{uid: password} of the example organisation's users (deploy/example/passwords.txt)."""
    import rntest
    return {u: rntest.user_password(u) for u in ("alice", "bob", "carol")}


def tls_auth(E, user, pw, source, authzid="", timeout=20.0):
    """On E's submission port (Client node1): EHLO, STARTTLS (E's CA), EHLO, AUTH PLAIN.
    Returns (client, EHLO lines after STARTTLS, AUTH reply); the caller closes the client."""
    cl = TLSClient("127.0.0.1", E.sub_port, source=source, timeout=timeout)
    cl.ehlo()
    cl.starttls(os.path.join(E.dir, "tls", "ca.pem"))
    lines = cl.ehlo()
    return cl, lines, cl.cmd("AUTH PLAIN " + plain(user, pw, authzid), timeout=timeout)


def tls_auth_reply(E, user, pw, source, authzid=""):
    """tls_auth's AUTH reply alone (the client closed)."""
    cl, _, r = tls_auth(E, user, pw, source, authzid)
    cl.close()
    return r


def send_tagged(E, source, rcpts, prefix, sender="app@outside.example"):
    """One message from source to E's SMTP port, a RCPT for each of rcpts and a Subject
    tagged with prefix. Returns {"mail": MAIL reply, "rcpt": [RCPT replies], "final": reply
    to the final dot (None when no RCPT got 250), "spooled": the recipients of the one spool
    file holding the tag (None unless there is exactly one)}."""
    s = tag(prefix)
    out = {"final": None, "spooled": None}
    with Client("127.0.0.1", E.smtp_port, source=source) as cl:
        cl.ehlo()
        out["mail"] = cl.cmd("MAIL FROM:<%s>" % sender)
        out["rcpt"] = [cl.cmd("RCPT TO:<%s>" % r) for r in rcpts]
        if not any(r.startswith("250 ") for r in out["rcpt"]):
            return out
        _, out["final"] = cl.data("From: <%s>\r\nSubject: %s\r\n\r\nx\r\n" % (sender, s))
    msgs = list(spool_messages(E.spool_dir, s).values()) if queued_id(out["final"]) else []
    out["spooled"] = msgs[0]["rcpts"] if len(msgs) == 1 else None
    return out


def smtp(host, port, source=None, timeout=10.0):
    """An smtplib.SMTP connected from source (an address on lo)."""
    return smtplib.SMTP(host, port, timeout=timeout,
                        source_address=(source, 0) if source else None)


def reply_str(code_msg):
    """(code, msg) from smtplib -> 'NNN text' (last line of a multi-line reply)."""
    code, msg = code_msg
    if isinstance(msg, bytes):
        msg = msg.decode("utf-8", "replace")
    return "%d %s" % (code, msg.splitlines()[-1] if msg else "")


QUEUED_RE = re.compile(r"^250 2\.6\.0 <([^>]+)>( \[[^\]]*\])? Queued mail for delivery$")


def queued_id(line):
    """The id in '250 2.6.0 <id> [..] Queued mail for delivery', or None."""
    m = QUEUED_RE.match(line or "")
    return m.group(1) if m else None


def message(sender, rcpt, subject="test", body="hello\r\n", headers=()):
    """A small RFC 5322 message with CRLF line ends."""
    h = ["From: <%s>" % sender, "To: <%s>" % rcpt, "Subject: %s" % subject,
         "Message-ID: <%s.%d@test.example>" % (subject.replace(" ", "-"), os.getpid())]
    h += list(headers)
    return "\r\n".join(h) + "\r\n\r\n" + body


def swaks(server, port, sender, to, local_interface=None, extra=(), timeout=30):
    """Run swaks; returns (rc, transcript text)."""
    srv = "[%s]:%d" % (server, port) if ":" in server else "%s:%d" % (server, port)
    args = ["swaks", "--server", srv, "--from", sender, "--to", to, "--timeout", "10"]
    if local_interface:
        args += ["--local-interface", local_interface]
    args += list(extra)
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    return r.returncode, r.stdout.decode("utf-8", "replace")


def swaks_replies(transcript):
    """The server lines of a swaks transcript ('<-  250 ...' / '<** 550 ...'), prefix cut."""
    out = []
    for line in transcript.splitlines():
        m = re.match(r"^\s*<(?:-|\*\*|~)\s+(.*)$", line)
        if m:
            out.append(m.group(1))
    return out


class Check:
    """Collects the mismatches of one case; result() is (passed, diagnostics)."""

    def __init__(self):
        self.bad = []

    def eq(self, got, want, what):
        if got != want:
            self.bad.append("%s:\n  got:      %r\n  expected: %r" % (what, got, want))
        return got == want

    def true(self, cond, what, detail=""):
        if not cond:
            self.bad.append("%s%s" % (what, (": " + str(detail)) if detail else ""))
        return bool(cond)

    def result(self):
        return (not self.bad, "\n".join(self.bad))


# -- one fixture + one node ------------------------------------------------------------------
def ldif_value(attr, value):
    """One LDIF line; base64 when the value is not a SAFE-STRING (RFC 2849)."""
    import base64
    if (value[:1] in (" ", ":", "<") or value.endswith(" ") or
            any(ord(ch) < 32 or ord(ch) > 126 for ch in value)):
        return "%s:: %s" % (attr, base64.b64encode(value.encode()).decode())
    return "%s: %s" % (attr, value)


def ace_split(ace):
    """'allow; principal; r1, r2' -> (action, principal, [rights]) (ace.h grammar)."""
    first, last = ace.index(";"), ace.rindex(";")
    return (ace[:first].strip().lower(), ace[first + 1:last].strip(),
            [r.strip() for r in ace[last + 1:].split(",") if r.strip()])


class Env:
    """A throwaway slapd with the example org (rntest.Slapd) and a relaynode started from
    its relaynode.conf. Everything is stopped by pid in __exit__, even after a failure.
    Copies the node's log to $RELAYNODE_BUILD/test-logs/relaynode-<name>.log."""

    ANON = "NT AUTHORITY\\ANONYMOUS LOGON"

    # The example's receive connectors; Env sets their relayTarpitInterval (default 5 s,
    # which would make every 5xx a test provokes wait 5 s) to `tarpit` before the node starts.
    # tarpit=None keeps the directory's own value (the one test that measures the default).
    EXAMPLE_CONNECTORS = ("Default node1", "Client node1", "CRM Application")

    def __init__(self, name, ldifs=(), tarpit="0"):
        self.name = name
        self.ldifs = list(ldifs)
        self.tarpit = tarpit
        self.root = ROOT
        self.slapd = None
        self.node = None

    def __enter__(self):
        import rntest
        self.slapd = rntest.Slapd(ldifs=self.ldifs)
        self.slapd.start()
        try:
            s = self.slapd
            self.smtp_port, self.sub_port = s.smtp_port, s.sub_port
            self.conf, self.spool_dir, self.dir = s.conf, s.spool_dir, s.dir
            if self.tarpit is not None:
                for name in self.EXAMPLE_CONNECTORS:
                    self.modify_connector(name, {"relayTarpitInterval": [self.tarpit]})
            self.node = Node(self.conf, ports=[self.smtp_port, self.sub_port])
            self.node.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        try:
            if self.node is not None:
                self.node.stop()
                self.save_log()
        finally:
            if self.slapd is not None:
                self.slapd.stop()
        return False

    def save_log(self):
        build = os.environ.get("RELAYNODE_BUILD")
        if not build or self.node is None:
            return
        d = os.path.join(build, "test-logs")
        try:
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "relaynode-%s.log" % self.name), "w") as f:
                f.write(self.node.log())
        except OSError:
            pass

    # -- directory changes (as the admin, through ldapmodify) ----------------------------
    def ldapmodify(self, text, add=False):
        rc, out, err = self.slapd.ldapmodify(text, add=add)
        if rc != 0:
            raise NodeError("ldapmodify failed (rc %d): %s\n%s" % (rc, err, text))

    def ldapmodify_file(self, path):
        self.slapd.ldapmodify_file(path)

    def connector_dn(self, name):
        return self.slapd.connector_dn(name)

    def connector_attr(self, name, attr):
        e = self.slapd.search(self.connector_dn(name), "(objectClass=*)", [attr], scope="base",
                              bind="admin")
        return e[0].get(attr) if e else []

    def modify_connector(self, name, replace):
        """replace: {attr: [values]}; an empty list deletes the attribute."""
        lines = ["dn: " + self.connector_dn(name), "changetype: modify"]
        for attr, values in replace.items():
            lines.append("replace: " + attr)
            lines += [ldif_value(attr, v) for v in values]
            lines.append("-")
        self.ldapmodify("\n".join(lines) + "\n")

    @contextlib.contextmanager
    def connector_changed(self, name, replace):
        """modify_connector(name, replace) and a reload for the with-block; the attributes'
        old values come back (and the node reloads) when it ends, even after a failure."""
        old = {a: self.connector_attr(name, a) for a in replace}
        self.modify_connector(name, replace)
        self.node.reload()
        try:
            yield
        finally:
            self.modify_connector(name, old)
            self.node.reload()

    def add_connector(self, name, attrs):
        """attrs: {attr: [values]}; relayTarpitInterval is the Env's `tarpit` unless given."""
        attrs = dict(attrs)
        if self.tarpit is not None and not any(a.lower() == "relaytarpitinterval" for a in attrs):
            attrs["relayTarpitInterval"] = [self.tarpit]
        lines = ["dn: " + self.connector_dn(name), "objectClass: relayReceiveConnector",
                 "cn: " + name]
        for attr, values in attrs.items():
            lines += [ldif_value(attr, v) for v in values]
        self.ldapmodify("\n".join(lines) + "\n", add=True)

    def delete_connector(self, name):
        self.ldapmodify("dn: %s\nchangetype: delete\n" % self.connector_dn(name))

    def set_anonymous_rights(self, name, remove=(), add=()):
        """Edit the connector's first allow ACE for ANONYMOUS LOGON: drop the rights in
        remove, append those in add (a value left without rights is deleted)."""
        aces = self.connector_attr(name, "relayAce")
        out, done = [], False
        for a in aces:
            act, who, rights = ace_split(a)
            if not done and act == "allow" and who.upper() == self.ANON.upper():
                done = True
                low = [r.lower() for r in remove]
                rights = [r for r in rights if r.lower() not in low]
                rights += [r for r in add if r.lower() not in [x.lower() for x in rights]]
                if not rights:
                    continue
                a = "allow; %s; %s" % (who, ", ".join(rights))
            out.append(a)
        if not done:
            raise NodeError("%s has no allow ACE for ANONYMOUS LOGON: %r" % (name, aces))
        self.modify_connector(name, {"relayAce": out})

    # -- what the node recorded for a message --------------------------------------------
    def auth_facts(self, marker, data=None):
        """(AuthAs, anti-spam bypass) the node recorded with the spooled message containing
        marker: the AUTH_AS record and the FLAGS bypass bit of its spool file; (None, None)
        when there is no such message."""
        for m in spool_messages(self.spool_dir, marker).values():
            if m is not None:
                return m.get("auth_as"), m.get("antispam_bypass")
        return None, None
