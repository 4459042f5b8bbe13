#!/usr/bin/env python3
"""Content filtering through a real milter: Debian's rspamd (its rspamd_proxy worker in milter
mode, self-scanning), started by the test on loopback with its own configuration in a temp
dir: no redis, no controller or normal worker, the modules that need redis or the network
disabled, and its resolver pointed at a closed loopback port, so it never asks external DNS.

A small counting TCP proxy sits in front of rspamd, so the test knows whether the node opened
a connection to the filter at all. Mail goes to example.com (routed by a send connector to a
loopback sink):
  - anonymous (Default node1), GTUBE in the body: 550 5.7.1 with rspamd's text, not delivered
  - anonymous, a clean message: delivered with rspamd's headers (X-Spamd-Result, the queue id)
  - CRM Application (Externally Secured, ms-Exch-Bypass-Anti-Spam): GTUBE passes and the
    filter sees no connection
  - relayMilterEnabled FALSE on Default node1 (relayctl connector set --milter-enabled):
    GTUBE passes, no connection
  - a filter that accepts the connection and never answers: 451 4.7.1 after
    milter_command_timeout, and another session is served meanwhile (the loop never waits)
  - the filter stopped: 451 4.7.1 (milter_default_action = tempfail, the default), logged
  - the filter stopped with milter_default_action = accept: delivered, logged; = reject: 550
  - a scripted filter on a unix socket (tests/lib-free, below) for the verdicts rspamd does
    not give here: quarantine (250, the file in the spool's quarantine/, never delivered),
    discard (250, not delivered, logged), and a reply the protocol does not know (the
    default action)
Every case also scrapes the node's metrics endpoint (metrics_listen, parsed with Prometheus'
own parser, python3-prometheus-client) and checks that the relaynode_milter_* series moved by
exactly what the case did and nothing else: the verdict by filter, stage and verdict, the
default verdicts and errors of a filter that could not be asked, the latency histogram's
count, the bypassed transactions (and no filter series), the header changes written.
"""
import os
import re
import select
import signal
import struct
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402
import smtpsink  # noqa: E402
from rnnode import Check, Client, eventually, queued_id  # noqa: E402

CRM = "127.0.2.55"
PID = os.getpid()
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
BUILD = os.environ.get("RELAYNODE_BUILD") or os.path.join(rntest.ROOT, "build")
RELAYCTL = os.environ.get("RELAYCTL") or os.path.join(BUILD, "relayctl")
_n = [0]

# Modules that would use redis, the network or DNS: off (rspamd 3.4 names).
OFF_MODULES = ("rbl", "fuzzy_check", "spf", "dkim", "dmarc", "asn", "surbl", "emails",
               "phishing", "dkim_signing", "arc", "mx_check", "neural", "ratelimit",
               "greylist", "replies", "history_redis", "url_redirector", "reputation",
               "clickhouse", "elastic", "metadata_exporter", "external_services",
               "antivirus", "multimap", "bayes_expiry", "url_reputation", "url_tags",
               "maillist", "dynamic_conf", "known_senders", "p0f", "rspamd_update",
               "spamassassin", "trie", "whitelist", "dcc", "once_received")


def tag(p):
    _n[0] += 1
    return "%s-%d-%d" % (p, PID, _n[0])


class Rspamd:
    """rspamd's milter proxy on a free loopback port, its whole state in `work`."""

    def __init__(self, work):
        self.work = work
        self.port = rntest.free_port()
        self.proc = None

    def start(self, timeout=600):
        w = self.work
        local = os.path.join(w, "local")
        for d in ("local/local.d", "local/override.d", "db", "run", "log"):
            os.makedirs(os.path.join(w, d), exist_ok=True)
        dead = rntest.free_port()   # nothing listens here: every DNS query fails locally
        files = {
            "override.d/worker-normal.inc": 'count = -1;\nbind_socket = "127.0.0.1:%d";\n'
                                            % rntest.free_port(),
            "override.d/worker-controller.inc": 'count = -1;\nbind_socket = "127.0.0.1:%d";\n'
                                                % rntest.free_port(),
            "override.d/worker-fuzzy.inc": 'count = -1;\nbind_socket = "127.0.0.1:%d";\n'
                                           % rntest.free_port(),
            "override.d/worker-proxy.inc":
                'bind_socket = "127.0.0.1:%d";\nmilter = yes;\ntimeout = 120s;\n'
                'upstream "local" { default = yes; self_scan = yes; }\ncount = 1;\n'
                'spam_header = "X-Spam";\nreject_message = "Spam message rejected";\n'
                % self.port,
            # A three-line TLD list: the full public suffix list takes minutes to compile on
            # a loaded machine and nothing here needs it.
            "local.d/options.inc":
                'dns { nameserver = ["127.0.0.1:%d"]; timeout = 0.2s; retransmits = 1; }\n'
                'local_addrs = "127.0.0.0/8";\nurl_tld = "%s/tld.dat";\n' % (dead, w),
            "local.d/milter_headers.conf":
                'use = ["x-spamd-result", "x-rspamd-queue-id"];\nskip_local = false;\n'
                'skip_authenticated = false;\n',
            "local.d/logging.inc": 'level = "info";\n',
        }
        for m in OFF_MODULES:
            files["local.d/%s.conf" % m] = "enabled = false;\n"
        for name, text in files.items():
            with open(os.path.join(local, name), "w") as f:
                f.write(text)
        with open(os.path.join(w, "tld.dat"), "w") as f:
            f.write("com\norg\ntest\n")
        self.out = open(os.path.join(w, "rspamd.out"), "w")
        self.proc = subprocess.Popen(
            ["rspamd", "-f", "-i", "-c", "/etc/rspamd/rspamd.conf",
             "--var=LOCAL_CONFDIR=" + local, "--var=DBDIR=" + os.path.join(w, "db"),
             "--var=RUNDIR=" + os.path.join(w, "run"), "--var=LOGDIR=" + os.path.join(w, "log")],
            stdout=self.out, stderr=subprocess.STDOUT, cwd=w, start_new_session=True)
        if not rnnode.wait_port("127.0.0.1", self.port, timeout=timeout):
            self.stop()
            raise rnnode.NodeError("rspamd did not listen on %d within %d s:\n%s"
                                   % (self.port, timeout, self.log_tail()))
        return self

    def log_tail(self):
        try:
            with open(os.path.join(self.work, "log", "rspamd.log")) as f:
                return "".join(f.readlines()[-20:])
        except OSError:
            return "(no log)"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)   # its own session: the master and workers
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None


class CountingProxy:
    """TCP on a free loopback port to `target`; counts the connections it accepts. With
    silent=True it accepts and reads but never answers (a filter that hangs)."""

    def __init__(self, target_port, silent=False):
        self.target = target_port
        self.silent = silent
        self.connections = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.peers = []

    def start(self):
        self.sock.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            self.peers.append(c)
            threading.Thread(target=self._pipe, args=(c,), daemon=True).start()

    def _pipe(self, c):
        up = None
        try:
            if not self.silent:
                up = socket.create_connection(("127.0.0.1", self.target), timeout=10)
            socks = [c] + ([up] if up else [])
            while not self.stopping:
                r, _, _ = select.select(socks, [], [], 0.5)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    if up:
                        (up if s is c else c).sendall(data)
        except OSError:
            pass
        finally:
            for s in (c, up):
                if s:
                    try:
                        s.close()
                    except OSError:
                        pass

    def stop(self):
        self.stopping = True
        try:   # wakes the accept() of the thread: without it the socket still listens
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class ScriptedFilter:
    """A milter peer on a unix socket that answers end of message with `self.eom` (a list of
    (command, data) packets), MAIL and RCPT by address (`self.refuse`: address -> packet),
    and asks for no reply to any other step."""

    def __init__(self, path):
        self.path = path
        self.eom = [(b"a", b"")]
        self.refuse = {}
        self.connections = 0
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(path)
        self.stopping = False

    def start(self):
        self.sock.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self):
        self.stopping = True
        self.sock.close()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _packet(cmd, data=b""):
        return struct.pack(">I", len(data) + 1) + cmd + data

    def _serve(self, c):
        buf = b""
        try:
            c.settimeout(30)
            while True:
                while len(buf) < 4 or len(buf) < 4 + struct.unpack(">I", buf[:4])[0]:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                n = struct.unpack(">I", buf[:4])[0]
                cmd, data, buf = buf[4:5], buf[5:4 + n], buf[4 + n:]
                if cmd == b"O":   # add and change headers, quarantine; replies to MAIL, RCPT, EOM
                    c.sendall(self._packet(b"O", struct.pack(">III", 6, 0x31, 0xF3080)))
                elif cmd in (b"M", b"R"):
                    addr = data.split(b"\0")[0].strip(b"<>").decode()
                    k, v = self.refuse.get(addr, (b"c", b""))
                    if k == b"CLOSE":   # the filter dies on this one
                        return
                    if k == b"CLOSE_LATER":   # passes this one, then dies v seconds later
                        c.sendall(self._packet(b"c"))
                        time.sleep(float(v))
                        return
                    if k == b"SLOW":   # v = (seconds, (command, data))
                        time.sleep(v[0])
                        k, v = v[1]
                    c.sendall(self._packet(k, v))
                elif cmd == b"E":
                    c.sendall(b"".join(self._packet(k, v) for k, v in self.eom))
                elif cmd == b"Q":
                    return
        except OSError:
            pass
        finally:
            c.close()


def send(E, subject, body, source=None, rcpt=None):
    rcpt = rcpt or "milter-%d@example.com" % PID
    with Client("127.0.0.1", E.smtp_port, source=source, timeout=90) as cl:
        r = cl.send_message("sender@outside.test", [rcpt],
                            "From: <sender@outside.test>\r\nTo: <%s>\r\nSubject: %s\r\n"
                            "Message-ID: <%s@outside.test>\r\nDate: Sun, 06 Dec 2026 03:00:00 "
                            "+0000\r\n\r\n%s\r\n" % (rcpt, subject, subject, body))
    return r[-1]


def scrape(E):
    """{(sample name, frozenset(labels)): value} of the relaynode_milter_* families from the
    node's GET /metrics, parsed by the real Prometheus parser (buckets and sums left out:
    counts are exact, times are not)."""
    from prometheus_client.parser import text_string_to_metric_families
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % E.metrics_port,
                                timeout=10) as r:
        body = r.read().decode()
    out = {}
    for f in text_string_to_metric_families(body):
        for sm in f.samples:
            if sm.name.startswith("relaynode_milter_") and \
                    not sm.name.endswith(("_bucket", "_sum")):
                out[(sm.name, frozenset(sm.labels.items()))] = sm.value
    return out


def moved(before, after):
    """The milter series that changed, as {"name{k=v,...}": delta}."""
    d = {}
    for k, v in after.items():
        if v != before.get(k, 0.0):
            d["%s{%s}" % (k[0], ",".join("%s=%s" % kv for kv in sorted(k[1])))] = \
                v - before.get(k, 0.0)
    return d


def series(name, **labels):
    return "%s{%s}" % (name, ",".join("%s=%s" % kv for kv in sorted(labels.items())))


def verdict(filt, stage, v, n=1):
    return {series("relaynode_milter_verdicts_total", filter=filt, stage=stage, verdict=v): n}


def defaulted(filt, stage, v, n=1):
    d = verdict(filt, stage, v, n)
    d[series("relaynode_milter_default_verdicts_total", filter=filt, stage=stage,
             verdict=v)] = n
    return d


def error(filt, reason, n=1):
    return {series("relaynode_milter_errors_total", filter=filt, reason=reason): n}


def latency(filt, n=1):
    return {series("relaynode_milter_latency_seconds_count", filter=filt): n}


def expect(c, before, after, what, *parts):
    want = {}
    for p in parts:
        for k, v in p.items():
            want[k] = want.get(k, 0) + v
    c.eq(moved(before, after), want, "metrics moved by exactly: %s" % what)


def logged(E, pattern, timeout=10):
    """The node's log holds pattern (the log is written by its own thread: wait for it)."""
    return E.node.wait_log(re.compile(pattern), timeout)


def delivered(sink, subject):
    return [m for m in sink.messages() if ("Subject: %s" % subject).encode() in m["data"]]


def case_gtube_rejected(E, sink, proxy):
    c = Check()
    s = tag("gtube")
    before = proxy.connections
    m0 = scrape(E)
    r = send(E, s, "spam follows\r\n" + GTUBE)
    F = "inet:127.0.0.1:%d" % proxy.port
    expect(c, m0, scrape(E), "one reject at eom, one latency", verdict(F, "eom", "reject"),
           latency(F))
    c.true(r.startswith("550 5.7.1 "), "GTUBE: 550 5.7.1", r)
    c.true("Gtube pattern" in r, "the filter's own text follows the code", r)
    c.true(proxy.connections > before, "the filter was asked")
    time.sleep(1)
    c.eq(delivered(sink, s), [], "nothing delivered")
    c.true(logged(E, r"smtp milter session=\S+ verdict=reject stage=eom filter=inet:127\.0\.0\.1"
                     r":%d default=no" % proxy.port), "logged: verdict=reject",
           E.node.log_tail(10))
    return c.result()


def case_clean_headers(E, sink, proxy):
    c = Check()
    s = tag("clean")
    m0 = scrape(E)
    r = send(E, s, "a perfectly ordinary message")
    qid = queued_id(r)
    m1 = scrape(E)
    F = "inet:127.0.0.1:%d" % proxy.port
    hc = series("relaynode_milter_header_changes_total")
    changes = m1.get(("relaynode_milter_header_changes_total", frozenset()), 0) - \
        m0.get(("relaynode_milter_header_changes_total", frozenset()), 0)
    c.true(changes >= 2, "header changes counted (X-Spamd-Result, X-Rspamd-Queue-Id): %d"
           % changes)
    expect(c, m0, m1, "one accept at eom, one latency, the header changes",
           verdict(F, "eom", "accept"), latency(F), {hc: changes})
    c.true(qid, "clean message accepted", r)
    got = eventually(lambda: delivered(sink, s), 30)
    if not c.true(got, "delivered to the sink"):
        return c.result()
    data = got[0]["data"]
    c.true(b"\r\nX-Spamd-Result: " in data or data.startswith(b"X-Spamd-Result: "),
           "rspamd's X-Spamd-Result header is in the delivered message", data[:1500])
    c.true(re.search(rb"X-Rspamd-Queue-Id: %s\r\n" % qid.split("@")[0].encode(), data),
           "X-Rspamd-Queue-Id names our queue id (the spooled file kept its id)", data[:1500])
    head = data.split(b"\r\n\r\n", 1)[0]
    c.true(b"\r\n\t" in head and b"\n\n" not in head and b"\r\r" not in head,
           "folded header lines end in CRLF", head[:1500])
    c.true(data.startswith(b"Received: from "), "our Received: still first")
    c.true(b"a perfectly ordinary message" in data.split(b"\r\n\r\n", 1)[1], "body intact")
    return c.result()


def case_bypass(E, sink, proxy):
    c = Check()
    s = tag("bypass")
    before = proxy.connections
    m0 = scrape(E)
    r = send(E, s, GTUBE, source=CRM)
    expect(c, m0, scrape(E), "bypassed{bypass_antispam} + 1, no filter series",
           {series("relaynode_milter_bypassed_total", reason="bypass_antispam"): 1})
    c.true(queued_id(r), "Externally Secured (Bypass-Anti-Spam): GTUBE accepted", r)
    c.true(eventually(lambda: delivered(sink, s), 30), "delivered")
    c.eq(proxy.connections, before, "no connection to the filter")
    return c.result()


def ctl(E, *args):
    argv = [RELAYCTL] + list(args) + ["--config", E.conf, "--bind-dn", E.slapd.admin_dn,
                                      "--password-file", E.slapd.admin_pw_file]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def case_connector_off(E, sink, proxy):
    c = Check()
    p = ctl(E, "connector", "set", "Default node1", "--milter-enabled=FALSE")
    c.eq(p.returncode, 0, "relayctl connector set --milter-enabled=FALSE: %s" % p.stderr)
    c.eq(E.connector_attr("Default node1", "relayMilterEnabled"), ["FALSE"], "stored")
    E.node.reload(settle=1.0)
    s = tag("off")
    before = proxy.connections
    m0 = scrape(E)
    r = send(E, s, GTUBE)
    c.true(queued_id(r), "relayMilterEnabled FALSE: GTUBE accepted", r)
    expect(c, m0, scrape(E), "bypassed{connector_off} + 1, no filter series",
           {series("relaynode_milter_bypassed_total", reason="connector_off"): 1})
    c.eq(proxy.connections, before, "no connection to the filter")
    c.true(eventually(lambda: delivered(sink, s), 30), "delivered")
    p = ctl(E, "connector", "set", "Default node1", "--milter-enabled=TRUE")
    c.eq(p.returncode, 0, "relayctl connector set --milter-enabled=TRUE: %s" % p.stderr)
    E.node.reload(settle=1.0)
    s = tag("on")
    r = send(E, s, GTUBE)
    c.true(r.startswith("550 5.7.1"), "switched back on: GTUBE refused again", r)
    return c.result()


def restart_with(E, **keys):
    E.node.stop()
    with open(E.conf) as f:
        conf = [l for l in f if l.split("=")[0].strip() not in keys]
    with open(E.conf, "w") as f:
        f.write("".join(conf))
        for k, v in keys.items():
            f.write("%s = %s\n" % (k, v))
    E.node.start()


def case_hanging_filter(E, sink):
    c = Check()
    hang = CountingProxy(0, silent=True).start()
    try:
        restart_with(E, milter="inet:127.0.0.1:%d" % hang.port, milter_command_timeout="3")
        result = {}
        m0 = scrape(E)

        def slow():
            result["r"] = send(E, tag("hang"), "hello")
        t = threading.Thread(target=slow)
        t0 = time.monotonic()
        t.start()
        eventually(lambda: hang.connections > 0, 10)
        # Meanwhile another session is served at once: the conversation runs on the loop
        # without blocking it.
        t1 = time.monotonic()
        with Client("127.0.0.1", E.smtp_port, timeout=10) as cl:
            e = cl.ehlo()[-1]
            n = cl.cmd("NOOP")
        busy = time.monotonic() - t1
        c.true(e.startswith("250") and n.startswith("250"), "another session served", n)
        c.true(busy < 2.0, "within 2 s while the filter hangs (%.2f s)" % busy)
        t.join(60)
        took = time.monotonic() - t0
        r = result.get("r", "")
        c.true(r.startswith("451 4.7.1"), "silent filter: 451 4.7.1 (default tempfail)", r)
        c.true(2.5 <= took < 30, "after the command timeout (%.1f s)" % took)
        H = "inet:127.0.0.1:%d" % hang.port
        expect(c, m0, scrape(E), "a timeout error, the default tempfail at mail",
               error(H, "timeout"), defaulted(H, "mail", "tempfail"))
        c.true(logged(E, r"smtp milter session=\S+ verdict=tempfail stage=negotiate \S+ "
                         r"default=yes .*text=\"?timeout"),
               "logged: default=yes, timeout", E.node.log_tail(10))
    finally:
        hang.stop()
    return c.result()


def case_filter_down(E, sink, proxy):
    c = Check()
    restart_with(E, milter="inet:127.0.0.1:%d" % proxy.port, milter_command_timeout="60",
                 milter_default_action="tempfail")
    proxy.stop()
    F = "inet:127.0.0.1:%d" % proxy.port
    s = tag("down")
    m0 = scrape(E)
    r = send(E, s, "hello")
    c.true(r.startswith("451 4.7.1"), "filter down: 451 4.7.1", r)
    expect(c, m0, scrape(E), "a connect error, the default tempfail at mail",
           error(F, "connect"), defaulted(F, "mail", "tempfail"))
    c.true(logged(E, r"smtp milter session=\S+ verdict=tempfail stage=\S+ filter=\S+ "
                     r"default=yes"), "logged default=yes", E.node.log_tail(10))
    restart_with(E, milter_default_action="accept")
    s = tag("down-accept")
    m0 = scrape(E)
    r = send(E, s, GTUBE)
    expect(c, m0, scrape(E), "a connect error, the default accept at mail (once)",
           error(F, "connect"), defaulted(F, "mail", "accept"))
    c.true(queued_id(r), "milter_default_action = accept: accepted", r)
    c.true(eventually(lambda: delivered(sink, s), 30), "delivered")
    c.true(logged(E, r"smtp milter session=\S+ verdict=accept stage=\S+ filter=\S+ "
                     r"default=yes"), "logged: verdict=accept default=yes", E.node.log_tail(10))
    restart_with(E, milter_default_action="reject")
    s = tag("down-reject")
    m0 = scrape(E)
    r = send(E, s, "hello")
    c.true(r.startswith("550 5.7.1"), "milter_default_action = reject: 550 5.7.1", r)
    expect(c, m0, scrape(E), "a connect error, the default reject at mail",
           error(F, "connect"), defaulted(F, "mail", "reject"))
    return c.result()


def case_scripted_verdicts(E, sink, work):
    c = Check()
    f = ScriptedFilter(os.path.join(work, "filter.sock")).start()
    try:
        restart_with(E, milter="unix:" + f.path, milter_default_action="tempfail")
        U = "unix:" + f.path
        f.eom = [(b"q", b"held by the test\0"), (b"a", b"")]
        s = tag("quarantine")
        m0 = scrape(E)
        r = send(E, s, "hold me")
        expect(c, m0, scrape(E), "one quarantine at eom", verdict(U, "eom", "quarantine"),
               latency(U))
        qid = queued_id(r)
        c.true(qid, "quarantine: 250", r)
        qdir = os.path.join(E.spool_dir, "quarantine")
        qid = (qid or "").split("@")[0]
        c.true(qid and os.path.exists(os.path.join(qdir, qid)),
               "the message is in the spool's quarantine/", os.listdir(qdir))
        c.true(not os.path.exists(os.path.join(E.spool_dir, "queue", qid or "-")),
               "and not in queue/")
        c.true(logged(E, r"%s smtp quarantined" % qid), "logged: quarantined")
        c.true(logged(E, r"smtp milter-quarantine session=\S+ reason=\"?held by the test"),
               "logged: the filter's reason")
        # insert after our Received: (index 1), change the first Subject, delete X-Drop
        f.eom = [(b"i", struct.pack(">I", 1) + b"X-Inserted\0by the filter\0"),
                 (b"m", struct.pack(">I", 1) + b"Subject\0changed-%d\0" % PID),
                 (b"m", struct.pack(">I", 1) + b"X-Drop\0\0"), (b"c", b"")]
        s3 = tag("change")
        m0 = scrape(E)
        with Client("127.0.0.1", E.smtp_port, timeout=60) as cl:
            r = cl.send_message("sender@outside.test", ["milter-%d@example.com" % PID],
                                "Subject: %s\r\nX-Drop: me\r\nX-Keep: me\r\n\r\nbody\r\n" % s3)[-1]
        qid = (queued_id(r) or "").split("@")[0]
        c.true(qid, "header changes: 250", r)
        expect(c, m0, scrape(E), "one accept, three header changes", verdict(U, "eom", "accept"),
               latency(U), {series("relaynode_milter_header_changes_total"): 3})
        got = eventually(lambda: [m for m in sink.messages()
                                  if b"X-Keep: me" in m["data"] and qid.encode() in m["data"]], 30)
        if c.true(got, "delivered"):
            head = got[0]["data"].split(b"\r\n\r\n", 1)[0]
            lines = head.split(b"\r\n")
            c.true(lines[0].startswith(b"Received: from ") and
                   any(l == b"X-Inserted: by the filter" for l in lines[1:]),
                   "inserted after our Received:", head)
            c.true(b"Subject: changed-%d" % PID in head and s3.encode() not in head,
                   "Subject changed", head)
            c.true(b"X-Drop" not in head and b"X-Keep: me" in head, "X-Drop deleted", head)
        f.eom = [(b"d", b"")]
        s2 = tag("discard")
        m0 = scrape(E)
        r = send(E, s2, "drop me")
        expect(c, m0, scrape(E), "one discard at eom", verdict(U, "eom", "discard"), latency(U))
        c.true(queued_id(r), "discard: 250", r)
        c.true(logged(E, r"smtp discarded session=\S+ from=<sender@outside.test>"),
               "logged: discarded")
        f.eom = [(b"Z", b"")]
        m0 = scrape(E)
        r = send(E, tag("unknown"), "what?")
        expect(c, m0, scrape(E), "a protocol error, the default tempfail at eom",
               error(U, "protocol"), defaulted(U, "eom", "tempfail"))
        c.true(r.startswith("451 4.7.1"), "a reply the protocol does not know: 451 4.7.1", r)
        c.true(logged(E, r"default=yes .*unknown or unsupported reply 0x5a"),
               "logged: the reason", E.node.log_tail(5))
        f.eom = [(b"y", b"451 4.7.1 Greylisted, come back later\0")]
        m0 = scrape(E)
        r = send(E, tag("grey"), "later")
        expect(c, m0, scrape(E), "the filter's own tempfail at eom (not a default)",
               verdict(U, "eom", "tempfail"), latency(U))
        c.eq(r, "451 4.7.1 Greylisted, come back later", "a 4xx reply code with its text")
        time.sleep(2)
        c.eq(delivered(sink, s) + delivered(sink, s2), [],
             "neither the quarantined nor the discarded message was delivered")
        c.true(f.connections >= 4, "over the unix socket (%d connections)" % f.connections)
    finally:
        f.stop()
    return c.result()


def case_earlier_filter_dies(E, sink, work):
    """Two filters, milter_default_action = accept: the first passes a RCPT and then dies
    while the second is still being asked. The first's failure must not settle the stage the
    second is deciding (before the fix it did: the RCPT passed with the second filter never
    heard, and the second's reject came to nobody)."""
    c = Check()
    a = ScriptedFilter(os.path.join(work, "first.sock")).start()
    b = ScriptedFilter(os.path.join(work, "second.sock")).start()
    try:
        restart_with(E, milter="unix:%s unix:%s" % (a.path, b.path),
                     milter_default_action="accept")
        rcpt = "victim-%d@example.com" % PID
        a.refuse = {rcpt: (b"CLOSE_LATER", b"0.3")}
        b.refuse = {rcpt: (b"SLOW", (1.5, (b"y", b"550 5.7.1 Refused by the second\0")))}
        with Client("127.0.0.1", E.smtp_port, timeout=60) as cl:
            cl.ehlo()
            c.eq(cl.cmd("MAIL FROM:<sender@outside.test>"), "250 2.1.0 Sender OK", "MAIL ok")
            r = cl.cmd("RCPT TO:<%s>" % rcpt)
            c.eq(r, "550 5.7.1 Refused by the second",
                 "the second filter's verdict answers the RCPT")
            # The first filter is gone; with accept as the default it is not asked again,
            # and the second still is.
            r = cl.cmd("RCPT TO:<milter-%d@example.com>" % PID)
            c.eq(r, "250 2.1.5 Recipient OK", "the next RCPT: the second filter passes it")
        c.true(logged(E, r"smtp milter session=\S+ verdict=reject stage=rcpt filter=unix:%s"
                      % re.escape(b.path)), "logged: the second filter's reject",
               E.node.log_tail(10))
    finally:
        a.stop()
        b.stop()
    return c.result()


def case_stage_verdicts(E, sink, work):
    """Verdicts answer the stage they were given at: MAIL, one RCPT (the others go on)."""
    c = Check()
    f = ScriptedFilter(os.path.join(work, "stages.sock")).start()
    try:
        restart_with(E, milter="unix:" + f.path, milter_default_action="tempfail")
        f.refuse = {"spammer@outside.test": (b"r", b""),
                    "slow@outside.test": (b"t", b""),
                    "nobody-%d@example.com" % PID: (b"y", b"550 5.1.1 No such user here\0"),
                    "later-%d@example.com" % PID: (b"y", b"451 4.2.1 Mailbox busy\0"),
                    "crash-%d@example.com" % PID: (b"CLOSE", b"")}
        U = "unix:" + f.path
        m0 = scrape(E)
        with Client("127.0.0.1", E.smtp_port, timeout=60) as cl:
            cl.ehlo()
            r = cl.cmd("MAIL FROM:<spammer@outside.test>")
            c.eq(r, "550 5.7.1 Rejected by the content filter", "a reject at MAIL answers MAIL")
            r = cl.cmd("MAIL FROM:<slow@outside.test>")
            c.true(r.startswith("451 4.7.1 "), "a tempfail at MAIL answers MAIL", r)
            c.eq(cl.cmd("MAIL FROM:<sender@outside.test>"), "250 2.1.0 Sender OK", "MAIL ok")
            r = cl.cmd("RCPT TO:<nobody-%d@example.com>" % PID)
            c.eq(r, "550 5.7.1 No such user here", "a 5xx reply code at RCPT answers that RCPT")
            r = cl.cmd("RCPT TO:<later-%d@example.com>" % PID)
            c.eq(r, "451 4.7.1 Mailbox busy", "a 4xx reply code at RCPT answers that RCPT")
            r = cl.cmd("RCPT TO:<milter-%d@example.com>" % PID)
            c.eq(r, "250 2.1.5 Recipient OK", "the next recipient goes on")
            s = tag("stages")
            d, final = cl.data("Subject: %s\r\n\r\nhello\r\n" % s)
            c.true(queued_id(final), "the message with the one accepted recipient", final)
        got = eventually(lambda: delivered(sink, s), 30)
        if c.true(got, "delivered"):
            c.eq(got[0]["to"], ["milter-%d@example.com" % PID], "to the accepted recipient only")
        # The filter dies at one recipient: that one gets the default action, and so does
        # every later step of the transaction (nothing passes unfiltered).
        with Client("127.0.0.1", E.smtp_port, timeout=60) as cl:
            cl.ehlo()
            c.eq(cl.cmd("MAIL FROM:<sender@outside.test>"), "250 2.1.0 Sender OK", "MAIL ok")
            r = cl.cmd("RCPT TO:<crash-%d@example.com>" % PID)
            c.true(r.startswith("451 4.7.1 "), "filter died at this RCPT: 451 4.7.1", r)
            r = cl.cmd("RCPT TO:<milter-%d@example.com>" % PID)
            c.true(r.startswith("451 4.7.1 "), "and the next RCPT too (fail closed)", r)
        expect(c, m0, scrape(E), "refusals by stage; the dead filter's defaults at each RCPT",
               verdict(U, "mail", "reject"), verdict(U, "mail", "tempfail"),
               verdict(U, "rcpt", "reject"), verdict(U, "rcpt", "tempfail"),
               verdict(U, "eom", "accept"), latency(U, 5), error(U, "closed"),
               defaulted(U, "rcpt", "tempfail", 2))
        c.true(logged(E, r"smtp milter session=\S+ verdict=reject stage=mail"),
               "logged: stage=mail", E.node.log_tail(10))
        c.true(logged(E, r"smtp milter session=\S+ verdict=reject stage=rcpt"),
               "logged: stage=rcpt", E.node.log_tail(10))
    finally:
        f.stop()
    return c.result()


def case_bad_endpoint(E):
    c = Check()
    with open(E.conf) as f:
        lines = [l for l in f if not l.startswith("milter")]
    bad = os.path.join(os.path.dirname(E.conf), "bad-milter.conf")
    with open(bad, "w") as f:
        f.write("".join(lines) + "milter = inet:filter.example:11332\n")
    p = subprocess.run([rnnode.relaynode_binary(), "-c", bad, "--foreground", "--allow-root"],
                       capture_output=True, text=True, timeout=30)
    line = len(lines) + 1
    c.true(p.returncode != 0, "a host name (not an IP) refuses the start", p.stderr)
    c.true("%s:%d: milter:" % (bad, line) in p.stderr, "file:line names the key", p.stderr)
    p = subprocess.run([rnnode.relaynode_binary(), "-c", bad, "--check"],
                       capture_output=True, text=True, timeout=30)
    c.true(p.returncode != 0 and "%s:%d: milter:" % (bad, line) in p.stderr,
           "--check refuses it the same way", p.stderr)
    return c.result()


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    work = tempfile.mkdtemp(prefix="milter.")
    sink = smtpsink.Sink(os.path.join(work, "sink")).start()
    rs = Rspamd(os.path.join(work, "rspamd"))
    try:
        rs.start()
    except Exception as e:   # a missing part is a failure, never a skip
        sink.stop()
        t.ok(False, "rspamd started", str(e))
        return t.done()
    proxy = CountingProxy(rs.port).start()
    try:
        with rnnode.Env("milter") as E:
            E.ldapmodify("dn: cn=To sink,cn=Send Connectors,ou=Relay,dc=example,dc=com\n"
                         "changetype: add\nobjectClass: relaySendConnector\ncn: To sink\n"
                         "relayEnabled: TRUE\nrelayAddressSpace: example.com\n"
                         "relaySmartHost: 127.0.0.1:%d\nrelayCost: 1\n" % sink.port)
            # The cases are about the filters, not recipient lookup
            # (test_recipient_validation.py): example.com's lookup is off, so the test's
            # made-up recipients reach the filters.
            E.ldapmodify("dn: cn=example.com,cn=Accepted Domains,ou=Relay,dc=example,dc=com\n"
                         "changetype: modify\nreplace: relayAddressBookEnabled\n"
                         "relayAddressBookEnabled: FALSE\n-\n")
            E.metrics_port = rntest.free_port()
            restart_with(E, milter="inet:127.0.0.1:%d" % proxy.port,
                         milter_command_timeout="60", metrics_listen=str(E.metrics_port))
            t.run("GTUBE from an anonymous session: 550 5.7.1 with the filter's text",
                  case_gtube_rejected, E, sink, proxy)
            t.run("a clean message is delivered with rspamd's headers", case_clean_headers, E,
                  sink, proxy)
            t.run("Bypass-Anti-Spam (Externally Secured): GTUBE passes, filter never asked",
                  case_bypass, E, sink, proxy)
            t.run("relayMilterEnabled FALSE (relayctl): GTUBE passes, filter never asked",
                  case_connector_off, E, sink, proxy)
            t.run("a filter that never answers: 451 4.7.1 after the timeout, loop not blocked",
                  case_hanging_filter, E, sink)
            t.run("filter down: 451 4.7.1; milter_default_action = accept: delivered",
                  case_filter_down, E, sink, proxy)
            t.run("scripted filter (unix socket): quarantine, discard, unknown reply, 4xx text",
                  case_scripted_verdicts, E, sink, work)
            t.run("scripted filter: refusals at MAIL and at one RCPT answer those stages",
                  case_stage_verdicts, E, sink, work)
            t.run("two filters: the first dies while the second decides; the second's "
                  "verdict stands", case_earlier_filter_dies, E, sink, work)
            t.run("a milter endpoint that is not an IP address: file:line, no start",
                  case_bad_endpoint, E)
    finally:
        proxy.stop()
        rs.stop()
        sink.stop()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
