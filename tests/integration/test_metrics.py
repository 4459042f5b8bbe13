#!/usr/bin/env python3
"""The Prometheus endpoint (issue #15, bootstrap metrics_listen) against a real node, a real
slapd, a test sink and Debian's Prometheus text parser
(prometheus_client.parser.text_string_to_metric_families, python3-prometheus-client).

The node listens on metrics_listen = PORT (loopback). Cases:
  - the scrape parses with the real parser, and its families are exactly those README.md's
    "Metrics" section lists (so the documentation cannot drift);
  - a message relayed by the CRM connector (127.0.2.55, Externally Secured) to a smart
    host moves the counters by exactly what that session did, and is delivered;
  - a refused relay (anonymous, Default node1, outside recipient: 550 5.7.1) moves the deny
    counter of ms-Exch-SMTP-Accept-Any-Recipient and the 5xx replies by exactly one, and
    nothing that belongs to accepted mail;
  - one good and one bad AUTH PLAIN move success and failure of PLAIN by exactly one;
  - a directory change is applied once and the version label follows it; with slapd down
    the failed load is counted, stale is 1 and its age grows, and 0 once slapd is back;
  - the HTTP side is bounded: 404, 405 (Allow: GET), 400, 431, at most 16 connections, and
    a trickling client is cut off;
  - metrics_listen refuses garbage with file:line and a non-zero exit; unset, nothing
    listens.
"""
import base64
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402
import smtpsink  # noqa: E402
from rnnode import Check, Client, eventually, queued_id  # noqa: E402

CRM = "127.0.2.55"
PID = os.getpid()
RELAY = "ms-Exch-SMTP-Accept-Any-Recipient"
HEAD_MAX = 8192        # node/metrics/metrics_http.h METRICS_HTTP_HEAD_MAX
CONNS_MAX = 16         # METRICS_HTTP_CONNS_MAX
TIMEOUT_S = 10         # METRICS_HTTP_TIMEOUT_S


def http(port, request, timeout=10.0):
    """Send raw request bytes; return (status line, headers dict, body) of the response."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return lines[0], headers, body


def scrape(port):
    """{(sample name, frozenset(labels)): value} from GET /metrics, parsed by the real
    Prometheus parser; also the families."""
    from prometheus_client.parser import text_string_to_metric_families
    status, headers, body = http(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    if not status.startswith("HTTP/1.1 200"):
        raise AssertionError("scrape: %s" % status)
    fams = list(text_string_to_metric_families(body.decode()))
    samples = {}
    for f in fams:
        for s in f.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, fams, headers


def val(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before, after, name, **labels):
    return val(after, name, **labels) - val(before, name, **labels)


def readme_metrics():
    """The metric names README.md's "Metrics" section lists (first column, in backticks)."""
    with open(os.path.join(rnnode.ROOT, "README.md")) as f:
        text = f.read()
    m = re.search(r"^## Metrics\n(.*?)(?=^## )", text, re.S | re.M)
    if not m:
        return set()
    return set(re.findall(r"^\| `(relaynode_[a-z_]+)`", m.group(1), re.M))


def case_parse(port):
    c = Check()
    samples, fams, headers = scrape(port)
    c.true(headers.get("content-type", "").startswith("text/plain; version=0.0.4"),
           "Content-Type of the text format", headers)
    names = set()
    for f in fams:
        # the parser strips _total from counter families; the exposed name has it
        names.add(f.name + "_total" if f.type == "counter" else f.name)
    c.true(len(fams) >= 15, "families parsed (%d)" % len(fams))
    doc = readme_metrics()
    c.eq(sorted(names), sorted(doc), "families exposed == families README.md documents")
    for f in fams:
        c.true(f.documentation, "%s has HELP" % f.name)
        if f.type == "counter":
            c.true(f.name.startswith("relaynode_"), "%s prefixed" % f.name)
    hist = [f for f in fams if f.type == "histogram"]
    c.eq(sorted(f.name for f in hist), ["relaynode_milter_latency_seconds",
                                        "relaynode_spool_commit_batch_messages",
                                        "relaynode_spool_commit_duration_seconds"],
         "the three histograms")
    # no milter here: its histogram has no series (HELP and TYPE only; test_milter.py)
    c.eq([s for f in hist if f.name == "relaynode_milter_latency_seconds" for s in f.samples],
         [], "no filter configured: no milter latency series")
    for f in hist:
        if f.name == "relaynode_milter_latency_seconds":
            continue
        buckets = [s for s in f.samples if s.name.endswith("_bucket")]
        c.true(buckets and buckets[-1].labels["le"] == "+Inf", "%s ends at +Inf" % f.name)
        cum = [s.value for s in buckets]
        c.eq(cum, sorted(cum), "%s buckets cumulative" % f.name)
    c.eq(val(samples, "relaynode_cluster_peers", state="unreachable"), 0.0,
         "standalone node: no peer")
    v = [s for f in fams if f.name == "relaynode_directory_applied_version_info"
         for s in f.samples]
    c.true(len(v) == 1 and v[0].value == 1 and v[0].labels.get("version"),
           "the applied version as an info gauge", v)
    return c.result()


def relay_session(E, rcpt, subject):
    """One raw session from the CRM address; returns every reply line the client received
    (the last line of each reply) so the test counts exactly what the node said."""
    with Client("127.0.0.1", E.smtp_port, source=CRM, read_banner=False) as cl:
        replies = [cl.reply()]
        replies.append(cl.ehlo()[-1])
        replies.append(cl.cmd("MAIL FROM:<app@crm.example>"))
        replies.append(cl.cmd("RCPT TO:<%s>" % rcpt))
        d, final = cl.data("From: <app@crm.example>\r\nTo: <%s>\r\nSubject: %s\r\n\r\nhi\r\n"
                           % (rcpt, subject))
        replies += [d, final]
        replies.append(cl.cmd("QUIT"))
    return replies


def classes(replies):
    out = {"2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0}
    for r in replies:
        out[r[0] + "xx"] += 1
    return out


def case_relayed(E, port, sink):
    c = Check()
    before, _, _ = scrape(port)
    subject = "metrics-%d" % PID
    replies = relay_session(E, "m@sink.test", subject)
    c.true(queued_id(replies[-2]), "accepted", replies)
    got = eventually(lambda: [m for m in sink.messages()
                              if ("Subject: %s" % subject).encode() in m["data"]], 15)
    c.true(got, "delivered to the sink")

    def settled():
        s, _, _ = scrape(port)
        return s if delta(before, s, "relaynode_deliveries_total", outcome="delivered") >= 1 \
            and val(s, "relaynode_queue_messages") == 0 else None
    after = eventually(settled, 15)
    if not c.true(after, "the delivery is counted and the queue empties"):
        return c.result()
    crm = {"connector": "CRM Application"}
    c.eq(delta(before, after, "relaynode_smtp_sessions_total", **crm), 1, "one CRM session")
    c.eq(delta(before, after, "relaynode_smtp_messages_total", **crm), 1, "one CRM message")
    for k, n in classes(replies).items():
        c.eq(delta(before, after, "relaynode_smtp_replies_total", **{"class": k}), n,
             "replies %s = what the client read" % k)
    c.eq(delta(before, after, "relaynode_rights_decisions_total", right=RELAY,
               outcome="allow"), 1, "relay allowed once (RCPT outside the accepted domains)")
    c.eq(delta(before, after, "relaynode_rights_decisions_total", right=RELAY,
               outcome="deny"), 0, "no relay refused")
    for o, n in [("delivered", 1), ("deferred", 0), ("failed", 0), ("expired", 0)]:
        c.eq(delta(before, after, "relaynode_deliveries_total", outcome=o), n,
             "deliveries %s +%d" % (o, n))
    c.eq(delta(before, after, "relaynode_spool_commit_batch_messages_count"), 1, "one commit")
    c.eq(delta(before, after, "relaynode_spool_commit_batch_messages_sum"), 1,
         "of one message")
    c.eq(delta(before, after, "relaynode_spool_commit_duration_seconds_count"), 1,
         "its latency observed")
    c.true(delta(before, after, "relaynode_spool_commit_duration_seconds_sum") > 0,
           "latency > 0")
    c.eq(val(after, "relaynode_queue_oldest_message_age_seconds"), 0, "empty queue: age 0")
    return c.result()


def case_refused(E, port):
    c = Check()
    before, _, _ = scrape(port)
    with Client("127.0.0.1", E.smtp_port, read_banner=False) as cl:
        replies = [cl.reply(), cl.ehlo()[-1], cl.cmd("MAIL FROM:<someone@example.com>")]
        replies.append(cl.cmd("RCPT TO:<victim@outside.test>"))
        replies.append(cl.cmd("QUIT"))
    c.true(replies[3].startswith("550 5.7.1"), "relay refused", replies)
    after, _, _ = scrape(port)
    c.eq(delta(before, after, "relaynode_rights_decisions_total", right=RELAY,
               outcome="deny"), 1, "relay denied once")
    c.eq(delta(before, after, "relaynode_rights_decisions_total", right=RELAY,
               outcome="allow"), 0, "relay allowed never")
    for k, n in classes(replies).items():
        c.eq(delta(before, after, "relaynode_smtp_replies_total", **{"class": k}), n,
             "replies %s = what the client read" % k)
    c.eq(delta(before, after, "relaynode_smtp_sessions_total", connector="Default node1"), 1,
         "one session on Default node1")
    c.eq(delta(before, after, "relaynode_smtp_messages_total", connector="Default node1"), 0,
         "no message")
    c.eq(delta(before, after, "relaynode_spool_commit_batch_messages_count"), 0, "no commit")
    names = {dict(k[1]).get("connector") for k in after if k[0].startswith("relaynode_smtp")}
    c.true(names <= {None, "Default node1", "CRM Application", "Client node1"},
           "connector labels come from the directory only", names)
    return c.result()


def case_http_bounds(port):
    c = Check()
    st, _, _ = http(port, b"GET /other HTTP/1.1\r\n\r\n")
    c.true(st.startswith("HTTP/1.1 404"), "other path: 404", st)
    st, h, _ = http(port, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    c.true(st.startswith("HTTP/1.1 405") and h.get("allow") == "GET", "POST: 405, Allow: GET",
           (st, h))
    st, _, _ = http(port, b"\x16\x03\x01\x00\xa5 garbage\r\n\r\n")
    c.true(st.startswith("HTTP/1.1 400"), "garbage: 400", st)
    big = b"GET /metrics HTTP/1.1\r\nX: " + b"a" * HEAD_MAX + b"\r\n\r\n"
    try:
        st, _, _ = http(port, big)
    except OSError as e:                      # reset while we were still writing
        st = "reset: %s" % e
    c.true(st.startswith("HTTP/1.1 431"), "a head over %d octets: 431" % HEAD_MAX, st)
    # a client that shuts its side right after the request still reads the answer
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
    s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    c.true(data.startswith(b"HTTP/1.1 200") and b"relaynode_smtp_replies_total" in data,
           "request then shutdown(SHUT_WR): the whole answer", data[:200])
    # connections: of CONNS_MAX + 4 idle ones the node holds exactly CONNS_MAX and closes
    # the rest at accept (earlier connections get a moment to be closed and uncounted)
    time.sleep(1.0)
    held = [socket.create_connection(("127.0.0.1", port), timeout=5)
            for _ in range(CONNS_MAX + 4)]
    time.sleep(1.0)                        # the node accepts them (a loaded machine is slow)
    open_now = 0
    for s in held:
        s.settimeout(0.2)
        try:
            open_now += s.recv(1) != b""   # b"": closed by the node
        except socket.timeout:
            open_now += 1                  # still open, waiting for a request
        except OSError:
            pass                           # reset: closed by the node
    c.eq(open_now, CONNS_MAX, "connections held at once")
    for s in held:
        s.close()
    ok = eventually(lambda: (lambda r: r[0].startswith("HTTP/1.1 200"))(
        http(port, b"GET /metrics HTTP/1.1\r\n\r\n")), 5)
    c.true(ok, "scrapes again once they close")
    # a trickling client is cut off at the connection's deadline
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S + 5)
    t0 = time.monotonic()
    closed = False
    for ch in b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 200:
        try:
            s.sendall(bytes([ch]))
        except OSError:
            closed = True
            break
        time.sleep(0.25)
        if time.monotonic() - t0 > TIMEOUT_S + 4:
            break
    if not closed:
        s.settimeout(5)
        try:
            closed = s.recv(100) == b""
        except OSError:
            closed = True
    took = time.monotonic() - t0
    s.close()
    c.true(closed and took <= TIMEOUT_S + 4, "trickler closed within its deadline (%.1f s)"
           % took)
    return c.result()


def auth_once(E, user, pw):
    """STARTTLS then AUTH PLAIN on the submission connector; the AUTH reply."""
    with Client("127.0.0.1", E.sub_port, timeout=20) as cl:
        cl.ehlo()
        cl.send_raw(b"STARTTLS\r\n")
        if not cl.reply().startswith("220 "):
            return "no STARTTLS"
        ctx = ssl.create_default_context(cafile=os.path.join(E.dir, "tls", "ca.pem"))
        ctx.check_hostname = False
        cl.sock = ctx.wrap_socket(cl.sock, server_hostname="node1.example.com")
        cl.buf = b""
        cl.ehlo()
        payload = base64.b64encode(b"\0" + user.encode() + b"\0" + pw.encode()).decode()
        return cl.cmd("AUTH PLAIN " + payload, timeout=20)


def case_auth(E, port):
    """One good and one bad AUTH PLAIN: success and failure of PLAIN move by exactly one."""
    c = Check()
    before, _, _ = scrape(port)
    good = auth_once(E, "alice", rntest.user_password("alice"))
    bad = auth_once(E, "alice", "wrong-%d" % PID)
    c.true(good.startswith("235 "), "alice authenticates", good)
    c.true(bad.startswith("535 "), "a wrong password is refused", bad)
    after, _, _ = scrape(port)
    for o, n in [("success", 1), ("failure", 1), ("tempfail", 0)]:
        c.eq(delta(before, after, "relaynode_smtp_auth_total", mechanism="PLAIN", outcome=o),
             n, "AUTH PLAIN %s +%d" % (o, n))
    for m in ("LOGIN", "GSSAPI", "other"):
        c.eq(sum(delta(before, after, "relaynode_smtp_auth_total", mechanism=m, outcome=o)
                 for o in ("success", "failure", "tempfail")), 0, "%s unchanged" % m)
    return c.result()


def version_of(samples):
    for (name, labels), v in samples.items():
        if name == "relaynode_directory_applied_version_info" and v == 1:
            return dict(labels).get("version")
    return None


def case_directory_change(E, port):
    """A change in the directory is applied once and the version label follows it."""
    c = Check()
    before, _, _ = scrape(port)
    v0 = version_of(before)
    E.modify_connector("Client node1", {"relayTarpitInterval": ["1"]})
    after = eventually(lambda: (lambda s: s if version_of(s) not in (None, v0) else None)(
        scrape(port)[0]), 15)
    if not c.true(after, "a new applied version is exported", v0):
        return c.result()
    c.eq(delta(before, after, "relaynode_directory_reloads_total", result="applied"), 1,
         "applied once")
    c.eq(delta(before, after, "relaynode_directory_reloads_total", result="failed"), 0,
         "no failed load")
    c.eq(val(after, "relaynode_directory_stale"), 0, "fresh")
    c.true(E.node.wait_log(re.compile(r"config reload version=\S*%s"
                                      % re.escape(version_of(after)[:14]))),
           "the same version as the node's log", E.node.log_tail(10))
    return c.result()


def slapd_pid(E):
    with open(os.path.join(E.dir, "slapd.pid")) as f:
        return int(f.read().strip())


def case_stale(E, port):
    """slapd stopped: the failed load is counted, stale 1 and its age grows; slapd back: 0."""
    c = Check()
    before, _, _ = scrape(port)
    pid = slapd_pid(E)
    os.kill(pid, signal.SIGTERM)
    c.true(eventually(lambda: not rntest.pid_alive(pid), 10), "slapd stopped")
    E.node.reload(0)
    stale = eventually(lambda: (lambda s: s if val(s, "relaynode_directory_stale") == 1 and
                                val(s, "relaynode_directory_stale_seconds") > 0 else None)(
        scrape(port)[0]), 15)
    if not c.true(stale, "stale 1 with a positive age while slapd is down"):
        return c.result()
    c.true(delta(before, stale, "relaynode_directory_reloads_total", result="failed") >= 1,
           "the failed load counted")
    c.eq(version_of(stale), version_of(before), "the last good version still exported")
    time.sleep(1.2)
    later, _, _ = scrape(port)
    c.true(val(later, "relaynode_directory_stale_seconds") >=
           val(stale, "relaynode_directory_stale_seconds") + 1, "the age grows")
    env = rntest.read_env(os.path.join(E.dir, "env"))
    p = subprocess.run(["/usr/sbin/slapd", "-F", os.path.join(E.dir, "slapd.d"), "-h",
                        "ldap://127.0.0.1:%s/ %s" % (env["SLAPD_PORT"], env["SLAPD_LDAPI"])],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    c.true(p.returncode == 0, "slapd started again", p.stdout.decode(errors="replace"))
    back = eventually(lambda: (lambda s: s if val(s, "relaynode_directory_stale") == 0 else
                               None)(scrape(port)[0]), 45, 0.5)
    c.true(back and val(back, "relaynode_directory_stale_seconds") == 0,
           "fresh again once the directory answers")
    return c.result()


def case_bootstrap(E, work):
    c = Check()
    with open(E.conf) as f:
        base = [l for l in f if not l.startswith("metrics_listen")]
    for value in ["localhost:9425", "127.0.0.1:99999", "[::1]", "0.0.0.0"]:
        bad = os.path.join(work, "bad.conf")
        with open(bad, "w") as f:
            f.write("".join(base) + "metrics_listen = %s\n" % value)
        line = len(base) + 1
        r = subprocess.run([rnnode.relaynode_binary(), "-c", bad, "--foreground"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        err = r.stderr.decode(errors="replace")
        c.true(r.returncode != 0 and ("%s:%d: metrics_listen:" % (bad, line)) in err,
               "metrics_listen = %s refused with file:line" % value, err[-500:])
    c.true(eventually(lambda: re.search(r"metrics listen address=127\.0\.0\.1 port=\d+",
                                        E.node.log()), 10),
           "the endpoint is logged where it listens")
    return c.result()


def case_off_by_default(E, port):
    """Without the key nothing listens: the node restarted without metrics_listen logs no
    endpoint and the former port refuses."""
    c = Check()
    with open(E.conf) as f:
        conf = f.read()
    with open(E.conf, "w") as f:
        f.write("".join(l for l in conf.splitlines(True) if not l.startswith("metrics_listen")))
    E.node.stop()
    E.node.start()
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        listening = True
    except OSError:
        listening = False
    c.true(not listening, "no endpoint when metrics_listen is unset")
    with open(E.conf, "w") as f:
        f.write(conf)
    return c.result()


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    try:
        import prometheus_client.parser  # noqa: F401
        have_parser = True
    except ImportError as e:
        have_parser = False
        t.ok(False, "Debian's python3-prometheus-client is installed", str(e))
    work = tempfile.mkdtemp(prefix="metrics.")
    first_slapd = None
    sink = smtpsink.Sink(os.path.join(work, "sink")).start()
    try:
        with rnnode.Env("metrics") as E:
            port = rntest.free_port(exclude=(E.smtp_port, E.sub_port))
            with open(E.conf, "a") as f:
                f.write("metrics_listen = %d\n" % port)
            E.ldapmodify("dn: cn=To sink,cn=Send Connectors,ou=Relay,dc=example,dc=com\n"
                         "changetype: add\nobjectClass: relaySendConnector\ncn: To sink\n"
                         "relayEnabled: TRUE\nrelayAddressSpace: sink.test\n"
                         "relaySmartHost: 127.0.0.1:%d\nrelayCost: 1\n" % sink.port)
            E.node.stop()
            E.node.start()
            up = rnnode.wait_port("127.0.0.1", port, 10)
            t.ok(up, "the endpoint listens on 127.0.0.1:%d" % port)
            if have_parser and up:
                t.run("a scrape parses with Prometheus' parser; families == README's list",
                      case_parse, port)
                t.run("a relayed message moves exactly its counters and is delivered",
                      case_relayed, E, port, sink)
                t.run("a refused relay moves the deny counter and 5xx by one, nothing else",
                      case_refused, E, port)
                t.run("HTTP bounds: 404, 405, 400, 431, 16 connections, trickler cut off",
                      case_http_bounds, port)
                t.run("AUTH PLAIN: one success and one failure counted by mechanism",
                      case_auth, E, port)
                t.run("a directory change: applied once, the version label follows",
                      case_directory_change, E, port)
                first_slapd = slapd_pid(E)
                t.run("directory down: the failed load, stale 1 and its age; then fresh",
                      case_stale, E, port)
            t.run("metrics_listen: garbage refused with file:line", case_bootstrap, E, work)
            t.run("metrics_listen unset: nothing listens", case_off_by_default, E, port)
            # rnnode.Env stops slapd by the pid it started; a restarted one is ours to stop.
            if first_slapd is not None and slapd_pid(E) != first_slapd:
                os.kill(slapd_pid(E), signal.SIGTERM)
    finally:
        sink.stop()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
