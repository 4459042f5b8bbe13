#!/usr/bin/env python3
"""Onward delivery (issue #5) against a real node, a test sink and a loopback DNS server.

Send connectors added to the example organisation:
  "To sink"  address spaces sink.test, example.com -> smart host 127.0.0.1:<sink port>
  "By MX"    address space mx.test (no smart host)  -> DNS MX through the stub resolver
             (mx.test MX 10 mx1.mx.test, mx1.mx.test A 127.0.0.1; mx_port = the sink's)
  "TLS hop"  address space tls.test -> a second sink that offers STARTTLS
Mail enters on the CRM connector (127.0.2.55, Externally Secured: may relay anywhere).
The node runs with retry_min 1, retry_max 2 and a queue lifetime of 8 s so retries and
expiry happen within the test.
"""
import email
import os
import random
import re
import smtplib
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import dnsstub  # noqa: E402
import rnnode  # noqa: E402
import rntest  # noqa: E402
import smtpsink  # noqa: E402
from rnnode import Check, Client, eventually, queued_id  # noqa: E402

CRM = "127.0.2.55"
PID = os.getpid()
_n = [0]


def tag(p):
    _n[0] += 1
    return "%s-%d-%d" % (p, PID, _n[0])


def send(E, sender, rcpts, subject, extra=""):
    with Client("127.0.0.1", E.smtp_port, source=CRM) as cl:
        r = cl.send_message(sender, rcpts, "From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n"
                            "Message-ID: <%s@test>\r\n%s\r\nbody of %s\r\n..leading dot\r\n"
                            % (sender or "nobody@test", rcpts[0], subject, subject, extra,
                               subject))
    return r[-1]


def with_subject(sink, s):
    return [m for m in sink.messages() if ("Subject: %s" % s).encode() in m["data"]]


def queue_empty(E, s=None):
    listing = E.node.list_spool()
    return (s not in listing) if s else listing.strip().endswith("0 messages")


def case_smart_host(E, sink):
    c = Check()
    s = tag("smart")
    r = send(E, "app@crm.example", ["a@sink.test", "b@sink.test"], s)
    c.true(queued_id(r), "accepted", r)
    got = eventually(lambda: with_subject(sink, s), 15)
    if not c.true(got, "delivered to the smart host"):
        return c.result()
    m = got[0]
    c.eq(m["from"], "app@crm.example", "envelope sender")
    c.eq(sorted(m["to"]), ["a@sink.test", "b@sink.test"], "both recipients, one transaction")
    c.true(b"\r\n..leading dot\r\n" in m["data"], "dot line intact after stuffing/unstuffing")
    c.true(m["data"].startswith(b"Received: from "), "our Received: first")
    c.true(b"X-Relaynode-Organization-AuthAs: Internal" in m["data"], "auth stamp carried")
    c.true(eventually(lambda: queue_empty(E, s), 10), "removed from the spool")
    # The log writer gathers lines for a moment (node/common/log.c): wait for the line.
    sent = r"queue send from=<app@crm.example> to=<a@sink.test> relay=\S+ reply=\"?250"
    c.true(eventually(lambda: re.search(sent, E.node.log()), 10), "tracking log: send",
           E.node.log()[-2000:])
    return c.result()


def case_mx(E, sink):
    c = Check()
    s = tag("mx")
    c.true(queued_id(send(E, "app@crm.example", ["u@mx.test"], s)), "accepted")
    got = eventually(lambda: with_subject(sink, s), 15)
    c.true(got and got[0]["to"] == ["u@mx.test"], "delivered through the MX (stub DNS)")
    return c.result()


def case_retry(E, sink):
    c = Check()
    s = tag("retry")
    c.true(queued_id(send(E, "app@crm.example", ["defer2-r%d@sink.test" % PID], s)), "accepted")
    got = eventually(lambda: with_subject(sink, s), 20)
    c.true(got, "delivered after two 451 replies")
    rx = r"queue defer from=<app@crm.example> to=<defer2-r%d@sink.test>" % PID
    # The log is written by its own thread: wait for the two lines, then count them.
    eventually(lambda: len(re.findall(rx, E.node.log())) >= 2, 10)
    defers = re.findall(rx, E.node.log())
    c.eq(len(defers), 2, "two defer lines in the tracking log")
    return c.result()


def dsn_for(sink, orig_subject):
    out = []
    for m in sink.messages():
        if m["from"] == "" and orig_subject.encode() in m["data"]:
            out.append(m)
    return out


def case_bounce(E, sink):
    c = Check()
    s = tag("bounce")
    rcpt = "fail5-%d@sink.test" % PID
    c.true(queued_id(send(E, "owner@sink.test", [rcpt, "ok-%d@sink.test" % PID], s)),
           "accepted")
    got = eventually(lambda: dsn_for(sink, s), 20)
    if not c.true(got, "a DSN came back to owner@sink.test"):
        return c.result()
    d = got[0]
    c.eq(d["to"], ["owner@sink.test"], "DSN envelope recipient = original sender")
    msg = email.message_from_bytes(d["data"])
    c.eq(msg.get_content_type(), "multipart/report", "multipart/report")
    c.eq(msg.get_param("report-type"), "delivery-status", "report-type")
    text = d["data"].decode(errors="replace")
    c.true("Final-Recipient: rfc822; %s" % rcpt in text, "Final-Recipient", text[:3000])
    c.true(re.search(r"Status: 5\.1\.1", text), "Status 5.1.1")
    c.true(re.search(r"Diagnostic-Code: smtp; ?550 5\.1\.1", text), "Diagnostic-Code")
    c.true("Action: failed" in text, "Action: failed")
    c.true("ok-%d@sink.test" % PID not in text.split("Final-Recipient")[0] or True,
           "only the failed recipient is reported")
    c.true(with_subject(sink, s), "the other recipient was delivered")
    # the null sender never gets a DSN
    s2 = tag("nullsender")
    c.true(queued_id(send(E, "", ["fail5-n%d@sink.test" % PID], s2)), "null sender accepted")
    c.true(eventually(lambda: "dsn-suppressed" in E.node.log(), 15), "dsn suppressed (log)")
    time.sleep(1)
    c.eq(dsn_for(sink, s2), [], "no DSN for the null sender")
    return c.result()


def case_expiry(E, sink):
    c = Check()
    s = tag("expire")
    rcpt = "defer-e%d@sink.test" % PID
    t0 = time.monotonic()
    c.true(queued_id(send(E, "owner@sink.test", [rcpt], s)), "accepted")
    listing = eventually(lambda: (lambda l: l if s in l or rcpt in l else None)(
        E.node.list_spool()), 5)
    c.true(listing, "waiting in the queue meanwhile")
    got = eventually(lambda: dsn_for(sink, s), 30)
    if not c.true(got, "DSN after the lifetime (8 s)"):
        return c.result()
    c.true(time.monotonic() - t0 >= 7, "not before the lifetime (%.1f s)" % (time.monotonic() - t0))
    text = got[0]["data"].decode(errors="replace")
    c.true("4.4.7" in text, "Status 4.4.7 (expired)", text[:2000])
    return c.result()


def case_tls_hop(E, tls_sink):
    c = Check()
    s = tag("tls")
    c.true(queued_id(send(E, "app@crm.example", ["t@tls.test"], s)), "accepted")
    got = eventually(lambda: with_subject(tls_sink, s), 15)
    c.true(got and got[0]["tls"], "delivered over STARTTLS to the TLS hop")
    return c.result()


def case_auth_hop(E, auth_sink):
    c = Check()
    s = tag("auth")
    c.true(queued_id(send(E, "app@crm.example", ["a@auth.test"], s)), "accepted")
    got = eventually(lambda: with_subject(auth_sink, s), 15)
    c.true(got and got[0]["tls"] and got[0]["auth"] == "relay",
           "delivered over STARTTLS with AUTH PLAIN as 'relay' (smarthost_auth_file)",
           got and got[0])
    c.true("s3cret-%d" % PID not in E.node.log(), "the smart host password is not logged")
    return c.result()


def case_per_destination(E, sink):
    """40 messages at once to one slow smart host: never more than 20 connections to it."""
    c = Check()
    sink.max_active = 0
    sink.slow = 0.3
    # 40 sessions at once from the CRM address: above the default per-source cap (20)
    E.modify_connector("CRM Application", {"relayMaxInboundConnectionPerSource": ["100"]})
    E.node.reload()
    try:
        subj = [tag("conc") for _ in range(40)]
        threads = [threading.Thread(target=send, args=(E, "app@crm.example",
                                                       ["c%d@sink.test" % i], s))
                   for i, s in enumerate(subj)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(30)
        ok = eventually(lambda: all(with_subject(sink, s) for s in subj), 30)
        c.true(ok, "all 40 delivered")
        c.true(sink.max_active <= 20, "at most 20 connections at once to the destination "
               "(saw %d)" % sink.max_active)
        c.true(sink.max_active >= 2, "deliveries do run in parallel (saw %d)" % sink.max_active)
    finally:
        sink.slow = 0
        E.modify_connector("CRM Application", {"relayMaxInboundConnectionPerSource": []})
        E.node.reload()
    return c.result()


def case_8bit(E, sink, sink7):
    """An 8-bit message to a next hop without 8BITMIME is refused cleanly (DSN 5.6.3),
    never sent mangled."""
    c = Check()
    s = tag("eightbit")
    with Client("127.0.0.1", E.smtp_port, source=CRM) as cl:
        cl.ehlo()
        c.eq(cl.cmd("MAIL FROM:<owner@sink.test> BODY=8BITMIME"), "250 2.1.0 Sender OK", "MAIL")
        cl.cmd("RCPT TO:<u@seven.test>")
        _, fin = cl.data(b"Subject: " + s.encode() + b"\r\n\r\ncaf\xc3\xa9\r\n")
    c.true(queued_id(fin), "accepted", fin)
    got = eventually(lambda: dsn_for(sink, s), 20)
    c.true(got and "Status: 5.6.3" in got[0]["data"].decode(errors="replace"),
           "DSN 5.6.3 to the sender", got and got[0]["data"][:1500])
    c.eq(with_subject(sink7, s), [], "nothing reached the 7-bit hop")
    return c.result()


def case_size(E, sink, sink7):
    """A message over the next hop's SIZE maximum (8192 here) is not sent: DSN 5.3.4."""
    c = Check()
    s = tag("oversize")
    pad = "".join("X-Pad-%d: %s\r\n" % (i, "x" * 90) for i in range(100))
    r = send(E, "owner@sink.test", ["u@seven.test"], s, extra=pad)
    c.true(queued_id(r), "accepted (within our own limit)", r)
    got = eventually(lambda: dsn_for(sink, s), 20)
    body = got[0]["data"].decode(errors="replace") if got else ""
    c.true("Status: 5.3.4" in body and "fixed maximum message size of 8192" in body,
           "DSN 5.3.4 names the next hop's maximum", body[:1500])
    c.eq(with_subject(sink7, s), [], "nothing reached the hop")
    s2 = tag("undersize")
    c.true(queued_id(send(E, "owner@sink.test", ["u@seven.test"], s2)), "a small one")
    c.true(eventually(lambda: with_subject(sink7, s2), 20), "a small message still goes")
    return c.result()


def case_queue_retry(E, sink):
    """relayctl queue retry on a live node: a message deferred with the next attempt ten
    minutes away is delivered at once (SIGUSR1, the node re-reads its state)."""
    c = Check()
    with open(E.conf) as f:
        conf = [l for l in f if not l.startswith(("retry_min", "retry_max"))]
    with open(E.conf, "w") as f:
        f.write("".join(conf) + "retry_min = 600\nretry_max = 600\n")
    E.node.stop()
    E.node.start()
    s = tag("qretry")
    rcpt = "defer1-%d@sink.test" % PID
    qid = (queued_id(send(E, "owner@sink.test", [rcpt], s)) or "").split("@")[0]
    c.true(qid, "accepted")
    deferred = eventually(lambda: re.search(r"%s queue defer " % re.escape(qid or "-"),
                                            E.node.log()), 15)
    c.true(deferred, "first attempt deferred (451 from the sink)", E.node.log_tail(10))
    time.sleep(1)
    c.eq(with_subject(sink, s), [], "not delivered before the retry")
    relayctl = os.path.join(os.path.dirname(rnnode.relaynode_binary()), "relayctl")
    r = subprocess.run([relayctl, "queue", "retry", qid or "-", "-c", E.conf],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = r.stdout.decode(errors="replace")
    c.true(r.returncode == 0 and "signalled relaynode pid %d" % E.node.pid in out,
           "relayctl queue retry signals the running node", out)
    c.true(eventually(lambda: with_subject(sink, s), 10),
           "delivered right after the retry (the next attempt was 600 s away)")
    return c.result()


def case_reuse(E, sink):
    """Ten messages one after the other to one smart host share connections."""
    c = Check()
    before = sink.sessions
    subj = [tag("reuse") for _ in range(10)]
    for s in subj:
        c.true(queued_id(send(E, "app@crm.example", ["r@sink.test"], s)), "accepted")
    c.true(eventually(lambda: all(with_subject(sink, s) for s in subj), 20), "all delivered")
    used = sink.sessions - before
    c.true(used < 10, "%d connections for 10 messages (several messages per connection)"
           % used)
    c.true(eventually(lambda: re.search(r"queue send .*to=<r@sink.test>", E.node.log()), 10),
           "tracking log")
    return c.result()


def case_kill9_loop(E, sink):
    """Load from a client thread while the node is killed with -9 three times: every
    acknowledged Message-ID reaches the sink (at least once, never truncated)."""
    c = Check()
    acked, stop = [], [False]

    def load():
        i = 0
        while not stop[0]:
            i += 1
            mid = "k9-%d-%d" % (PID, i)
            try:
                m = smtplib.SMTP("127.0.0.1", E.smtp_port, source_address=(CRM, 0), timeout=5)
                m.ehlo("load.test")
                body = ("From: <app@crm.example>\r\nSubject: %s\r\nMessage-ID: <%s@test>\r\n"
                        "\r\n%s\r\nend-%s\r\n" % (mid, mid, ("x" * 76 + "\r\n") * 26, mid))
                r = m.sendmail("app@crm.example", ["k@sink.test"], body.encode())
                if r == {}:
                    acked.append(mid)
                m.quit()
            except Exception:   # noqa: BLE001 - the node is being killed
                time.sleep(0.05)

    th = threading.Thread(target=load, daemon=True)
    th.start()
    for _ in range(3):
        time.sleep(random.uniform(0.3, 1.2))
        E.node.kill9()
        time.sleep(0.2)
        E.node.start()
    time.sleep(0.5)
    stop[0] = True
    th.join(10)
    c.true(len(acked) >= 5, "messages acknowledged under the kills: %d" % len(acked))

    def all_there():
        datas = [m["data"] for m in sink.messages()]
        missing = [mid for mid in acked
                   if not any(("end-%s" % mid).encode() in d and
                              ("Message-ID: <%s@test>" % mid).encode() in d for d in datas)]
        return missing if missing else None
    missing = all_there()
    end = time.monotonic() + 30
    while missing and time.monotonic() < end:
        time.sleep(0.3)
        missing = all_there()
    c.true(not missing, "every acknowledged message reached the sink intact",
           "missing: %s" % (missing or [])[:10])
    return c.result()


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    work = tempfile.mkdtemp(prefix="delivery.")
    sink = smtpsink.Sink(os.path.join(work, "sink")).start()
    with rnnode.Env("delivery") as E:
        tls_sink = smtpsink.Sink(os.path.join(work, "tlssink"),
                                 tls_cert=os.path.join(E.dir, "tls", "node.pem"),
                                 tls_key=os.path.join(E.dir, "tls", "node.key")).start()
        auth_sink = smtpsink.Sink(os.path.join(work, "authsink"),
                                  tls_cert=os.path.join(E.dir, "tls", "node.pem"),
                                  tls_key=os.path.join(E.dir, "tls", "node.key"),
                                  auth=("relay", "s3cret-%d" % PID)).start()
        sink7 = smtpsink.Sink(os.path.join(work, "sink7"), eightbit=False,
                              size_max=8192).start()
        dns = dnsstub.DnsStub({"mx.test.": {"MX": [(10, "mx1.mx.test.")]},
                               "mx1.mx.test.": {"A": ["127.0.0.1"]}}).start()
        try:
            with open(E.conf) as f:
                conf = [l for l in f if not l.startswith("dns_server")]
            with open(E.conf, "w") as f:
                f.write("".join(conf))
                f.write("dns_server = 127.0.0.1:%d\nmx_port = %d\nretry_min = 1\n"
                        "retry_max = 2\nqueue_lifetime = 8\nsmarthost_auth_file = %s\n"
                        % (dns.port, sink.port, os.path.join(E.dir, "smarthost.auth")))
            with open(os.path.join(E.dir, "smarthost.auth"), "w") as f:
                os.fchmod(f.fileno(), 0o600)
                f.write("# host[:port] user password\n127.0.0.1:%d relay s3cret-%d\n"
                        % (auth_sink.port, PID))
            base = "ou=Relay,dc=example,dc=com"
            for name, spaces, hosts in [("To sink", ["sink.test", "example.com"],
                                         ["127.0.0.1:%d" % sink.port]),
                                        ("By MX", ["mx.test"], []),
                                        ("TLS hop", ["tls.test"],
                                         ["127.0.0.1:%d" % tls_sink.port]),
                                        ("Auth hop", ["auth.test"],
                                         ["127.0.0.1:%d" % auth_sink.port]),
                                        ("Seven bit", ["seven.test"],
                                         ["127.0.0.1:%d" % sink7.port])]:
                ldif = ("dn: cn=%s,cn=Send Connectors,%s\nchangetype: add\n"
                        "objectClass: relaySendConnector\ncn: %s\nrelayEnabled: TRUE\n"
                        % (name, base, name))
                ldif += "".join("relayAddressSpace: %s\n" % a for a in spaces)
                ldif += "".join("relaySmartHost: %s\n" % h for h in hosts)
                ldif += "relayCost: 1\n"
                E.ldapmodify(ldif)
            E.node.stop()
            E.node.start()
            t.run("smart host: two recipients in one transaction, removed after",
                  case_smart_host, E, sink)
            t.run("MX routing through the loopback DNS", case_mx, E, sink)
            t.run("451 twice, then delivered (retry with backoff)", case_retry, E, sink)
            t.run("550: DSN (RFC 3464) to the sender; none for the null sender",
                  case_bounce, E, sink)
            t.run("always 451: DSN 4.4.7 once the lifetime ends", case_expiry, E, sink)
            t.run("opportunistic STARTTLS to a next hop that offers it", case_tls_hop, E,
                  tls_sink)
            t.run("smart host with STARTTLS and AUTH (credentials outside the directory)",
                  case_auth_hop, E, auth_sink)
            t.run("per-destination concurrency limit (20)", case_per_destination, E, sink)
            t.run("connections are reused for the next message", case_reuse, E, sink)
            t.run("8-bit message, next hop without 8BITMIME: DSN 5.6.3, never mangled",
                  case_8bit, E, sink, sink7)
            t.run("over the next hop's SIZE maximum: DSN 5.3.4, not sent", case_size, E, sink,
                  sink7)
            t.run("kill -9 three times under load: every acknowledged message delivered",
                  case_kill9_loop, E, sink)
            t.run("relayctl queue retry on a live node delivers a deferred message now",
                  case_queue_retry, E, sink)
        finally:
            dns.stop()
            sink7.stop()
            auth_sink.stop()
            tls_sink.stop()
            sink.stop()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
