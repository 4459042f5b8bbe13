#!/usr/bin/env python3
"""Receive connector limits, enforced by a real node with Exchange's exact replies.

The limits are written on "Default node1" with ldapmodify and applied with SIGHUP, in
three phases whose settings don't disturb each other; each case connects from its own
127.0.4.x address so per-source counters (message rate, connections) start at zero.
  A  MaxRecipientsPerMessage 2, MaxMessageSize 65536, MaxHeaderSize 32768, MaxHopCount 3,
     MaxProtocolErrors 2, MessageRateLimit 2, MaxInboundConnectionPerSource 2, Banner, Fqdn
  B  ConnectionInactivityTimeout 2, ConnectionTimeout 3
  C  MaxInboundConnection 3; then RequireTLS
  D  Default's ranges no longer cover 127.0.3.1 -> no connector
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402
from rnnode import Check, Client, eventually, queued_id  # noqa: E402

SENDER_OK = "250 2.1.0 Sender OK"
RCPT_OK = "250 2.1.5 Recipient OK"
TOO_MANY_RCPT = "452 4.5.3 Too many recipients"
MSG_SIZE = "552 5.3.4 Message size exceeds fixed maximum message size"
HDR_SIZE = "552 5.3.4 Header size exceeds fixed maximum size"
HOPS = "554 5.4.6 Hop count exceeded - possible mail loop"
PROTO = "421 4.7.0 Too many errors on this connection, closing transmission channel"
PER_SOURCE = ("421 4.3.2 The maximum number of concurrent connections has exceeded a limit, "
              "closing transmission channel")
TOTAL = ("421 4.3.2 The maximum number of concurrent server connections has exceeded a limit, "
         "closing transmission channel")
INACTIVE = "451 4.7.0 Timeout waiting for client input"
CONN_TIMEOUT = "421 4.4.1 Connection timed out"
RATE = "421 4.4.2 Message submission rate for this client has exceeded the configured limit"
REQUIRE_TLS = "451 5.7.3 STARTTLS is required to send mail"
NO_CONNECTOR = "421 4.3.2 Service not available"
BANNER = "220 relay.test ready for the limit tests"
FQDN = "mx1.limits.test"
PID = os.getpid()


def conn(E, src, **kw):
    return Client("127.0.0.1", E.smtp_port, source=src, **kw)


def spooled(E, marker):
    return len(rnnode.spool_find(E.spool_dir, marker))


def msg(subject, extra_headers=(), body="body\r\n"):
    h = list(extra_headers) + ["From: <a@outside.example>", "To: <alice@example.com>",
                               "Subject: %s" % subject]
    return "\r\n".join(h) + "\r\n\r\n" + body


def start_tx(c, cl, sender="a@outside.example"):
    cl.ehlo()
    c.eq(cl.cmd("MAIL FROM:<%s>" % sender), SENDER_OK, "MAIL")
    c.eq(cl.cmd("RCPT TO:<alice@example.com>"), RCPT_OK, "RCPT")


# -- phase A ----------------------------------------------------------------------------
PHASE_A = {"relayMaxRecipientsPerMessage": ["2"], "relayMaxMessageSize": ["65536"],
           "relayMaxHeaderSize": ["32768"], "relayMaxHopCount": ["3"],
           "relayMaxProtocolErrors": ["2"], "relayMessageRateLimit": ["2"],
           "relayMaxInboundConnectionPerSource": ["2"], "relayBanner": [BANNER],
           "relayFqdn": [FQDN]}


def case_phase_a(E):
    E.modify_connector("Default node1", replace=PHASE_A)
    E.node.reload()

    def applied():
        with conn(E, "127.0.4.1") as cl:
            return cl.banner == [BANNER]
    return eventually(applied, 15), "banner never changed to %r" % BANNER


def case_banner_fqdn(E):
    c = Check()
    with conn(E, "127.0.4.2") as cl:
        c.eq(cl.banner, [BANNER], "banner")
        lines = cl.ehlo()
        c.eq(lines[0], "250-%s Hello [127.0.4.2]" % FQDN, "first EHLO line")
        c.true("250-SIZE 65536" in lines or "250 SIZE 65536" in lines,
               "EHLO advertises SIZE 65536", lines)
    return c.result()


def case_recipients(E):
    c = Check()
    s = "rcpt-%d" % PID
    with conn(E, "127.0.4.3") as cl:
        start_tx(c, cl)
        c.eq(cl.cmd("RCPT TO:<bob@example.com>"), RCPT_OK, "second RCPT")
        c.eq(cl.cmd("RCPT TO:<carol@example.com>"), TOO_MANY_RCPT, "third RCPT")
        _, fin = cl.data(msg(s))
        c.true(queued_id(fin), "DATA for the two accepted recipients", fin)
    for data in rnnode.spool_find(E.spool_dir, s).values():
        c.true(b"carol@example.com" not in data, "third recipient not in the envelope")
    return c.result()


def case_size_param(E):
    c = Check()
    with conn(E, "127.0.4.4") as cl:
        cl.ehlo()
        c.eq(cl.cmd("MAIL FROM:<a@outside.example> SIZE=100000"), MSG_SIZE, "SIZE=100000")
        c.eq(cl.cmd("MAIL FROM:<a@outside.example> SIZE=60000"), SENDER_OK, "SIZE=60000")
    return c.result()


def case_size_data(E):
    c = Check()
    s = "big-%d" % PID
    with conn(E, "127.0.4.5") as cl:
        start_tx(c, cl)
        line = "x" * 76 + "\r\n"
        _, fin = cl.data(msg(s, body=line * (70 * 1024 // len(line) + 1)), timeout=20)
        c.eq(fin, MSG_SIZE, "70 KB DATA")
        c.eq(spooled(E, s), 0, "oversized message not spooled")
    s2 = "fits-%d" % PID
    with conn(E, "127.0.4.6") as cl:
        start_tx(c, cl)
        _, fin = cl.data(msg(s2, body=("y" * 76 + "\r\n") * 380))     # ~30 KB
        c.true(queued_id(fin), "30 KB message accepted", fin)
    return c.result()


def case_header_size(E):
    c = Check()
    s = "hdr-%d" % PID
    pad = ["X-Pad-%03d: %s" % (i, "h" * 66) for i in range(520)]     # ~40 KB of header
    assert sum(len(p) + 2 for p in pad) > 40 * 1000
    with conn(E, "127.0.4.7") as cl:
        start_tx(c, cl)
        _, fin = cl.data(msg(s, extra_headers=pad), timeout=20)
        c.eq(fin, HDR_SIZE, "40 KB header")
    c.eq(spooled(E, s), 0, "not spooled")
    return c.result()


def received(n):
    return ["Received: from h%d.example by h%d.example; Sat, 28 Nov 2026 10:00:0%d +0000"
            % (i, i + 1, i) for i in range(n)]


def case_hops(E):
    c = Check()
    s = "hops-%d" % PID
    with conn(E, "127.0.4.8") as cl:
        start_tx(c, cl)
        _, fin = cl.data(msg(s, extra_headers=received(4)))
        c.eq(fin, HOPS, "4 Received: headers with MaxHopCount 3")
    c.eq(spooled(E, s), 0, "not spooled")
    s2 = "hops2-%d" % PID
    with conn(E, "127.0.4.9") as cl:
        start_tx(c, cl)
        _, fin = cl.data(msg(s2, extra_headers=received(2)))
        c.true(queued_id(fin), "2 Received: headers accepted", fin)
    return c.result()


def case_protocol_errors(E):
    c = Check()
    with conn(E, "127.0.4.10") as cl:
        cl.ehlo()
        r1, r2 = cl.cmd("XYZZY"), cl.cmd("RCPT TO:<alice@example.com>")
        c.true(r1[:1] == "5" and r2[:1] == "5", "first two bad commands: 5xx", (r1, r2))
        cl.send_raw("XYZZY\r\n")
        rest = cl.replies_until_close(5)
    c.true(rest[-1:] == [PROTO], "third bad command: %r, then close" % PROTO, rest)
    return c.result()


def case_per_source(E):
    c = Check()
    src = "127.0.4.11"
    a, b = conn(E, src), conn(E, src)
    try:
        c.true(a.banner[-1].startswith("220") and b.banner[-1].startswith("220"),
               "first two connections greeted", (a.banner, b.banner))
        with conn(E, src, read_banner=False) as third:
            rest = third.replies_until_close(5)
        c.eq(rest, [PER_SOURCE], "third concurrent connection from one source")
        with conn(E, "127.0.4.12") as other:
            c.true(other.banner[-1].startswith("220"), "another source still served",
                   other.banner)
    finally:
        a.close()

    def slot_freed():
        with conn(E, src) as again:
            return again.banner[-1].startswith("220")
    try:
        c.true(eventually(slot_freed, 5), "a closed connection frees its slot")
    finally:
        b.close()
    return c.result()


def case_rate(E):
    c = Check()
    with conn(E, "127.0.4.13") as cl:
        cl.ehlo()
        for i in range(2):
            c.eq(cl.cmd("MAIL FROM:<rate@outside.example>"), SENDER_OK, "MAIL %d" % (i + 1))
            cl.cmd("RCPT TO:<alice@example.com>")
            _, fin = cl.data(msg("rate-%d-%d" % (PID, i)))
            c.true(queued_id(fin), "message %d queued" % (i + 1), fin)
        cl.send_raw("MAIL FROM:<rate@outside.example>\r\n")
        rest = cl.replies_until_close(5)
    c.eq(rest, [RATE], "third MAIL within a minute, then close")
    with conn(E, "127.0.4.14") as cl:
        cl.ehlo()
        c.eq(cl.cmd("MAIL FROM:<rate@outside.example>"), SENDER_OK, "another client unaffected")
    return c.result()


def case_swaks_limits(E):
    c = Check()
    rc, out = rnnode.swaks("127.0.0.1", E.smtp_port, "a@outside.example",
                           "alice@example.com,bob@example.com,carol@example.com",
                           local_interface="127.0.4.15")
    lines = rnnode.swaks_replies(out)
    c.true(BANNER in lines, "swaks sees the custom banner", lines)
    c.true(TOO_MANY_RCPT in lines, "swaks sees %r" % TOO_MANY_RCPT, lines)
    return c.result()


# -- phase B: timeouts ------------------------------------------------------------------
def idle_probe(E, src):
    with conn(E, src) as cl:
        t0 = time.monotonic()
        rest = cl.replies_until_close(6)
        return rest, time.monotonic() - t0


def case_phase_b(E):
    E.modify_connector("Default node1", replace={"relayConnectionInactivityTimeout": ["2"],
                                           "relayConnectionTimeout": ["3"]})
    E.node.reload()
    return eventually(lambda: idle_probe(E, "127.0.4.20")[0] == [INACTIVE], 20), "not applied"


def case_inactivity(E):
    c = Check()
    rest, dt = idle_probe(E, "127.0.4.21")
    c.eq(rest, [INACTIVE], "idle client")
    c.true(1.5 <= dt <= 4.5, "after about 2 s (took %.1f s)" % dt)
    return c.result()


def case_connection_timeout(E):
    c = Check()
    with conn(E, "127.0.4.22") as cl:
        t0 = time.monotonic()
        got = []
        while time.monotonic() - t0 < 8:
            time.sleep(1.0)
            try:
                cl.send_raw("NOOP\r\n")
            except OSError:
                break
            try:
                r = cl.reply(3)
            except (rnnode.Closed, OSError):
                break
            got.append(r)
            if not r.startswith("250"):
                break
        dt = time.monotonic() - t0
        rest = cl.replies_until_close(3)
    c.true(all(g.startswith("250") for g in got[:-1]) and len(got) >= 2,
           "NOOPs answered while the session is young", got)
    c.eq(got[-1:], [CONN_TIMEOUT], "slow but active client")
    c.true(2.5 <= dt <= 6.0, "after about 3 s (took %.1f s)" % dt)
    c.true("TIMEOUT" not in rest, "closed", rest)
    return c.result()


# -- phase C ----------------------------------------------------------------------------
def total_probe(E):
    """Three connections from three sources, then a fourth: its whole output."""
    time.sleep(0.3)                         # let earlier sessions finish on the server
    held = []
    try:
        for i in range(3):
            held.append(conn(E, "127.0.4.4%d" % i))
        banners = [h.banner for h in held]
        with conn(E, "127.0.4.49", read_banner=False) as fourth:
            return banners, fourth.replies_until_close(5)
    finally:
        for h in held:
            h.close()


def case_total(E):
    c = Check()
    E.modify_connector("Default node1", replace={"relayConnectionInactivityTimeout": [],
                                           "relayConnectionTimeout": [],
                                           "relayMaxInboundConnection": ["3"]})
    E.node.reload()
    got = eventually(lambda: (lambda r: r if r[1] == [TOTAL] else None)(total_probe(E)), 15)
    banners, fourth = got or total_probe(E)
    c.true(all(b[-1].startswith("220") for b in banners), "three connections greeted", banners)
    c.eq(fourth, [TOTAL], "fourth concurrent connection on the connector")
    return c.result()


def case_require_tls(E):
    c = Check()
    E.modify_connector("Default node1", replace={"relayMaxInboundConnection": [],
                                           "relayRequireTLS": ["TRUE"]})
    E.node.reload()

    def probe():
        with conn(E, "127.0.4.31") as cl:
            lines = cl.ehlo()
            cl.send_raw("MAIL FROM:<a@outside.example>\r\n")
            return lines, cl.replies_until_close(3)
    got = eventually(lambda: (lambda r: r if r[1] == [REQUIRE_TLS] else None)(probe()), 15)
    lines, rest = got or probe()
    c.eq(rest, [REQUIRE_TLS], "MAIL without STARTTLS, then close")
    return c.result()


# -- phase D ----------------------------------------------------------------------------
def case_no_connector(E):
    c = Check()
    v6 = [r for r in E.connector_attr("Default node1", "relayRemoteIPRange") if ":" in r]
    E.modify_connector("Default node1", replace={"relayRemoteIPRange":
                                           ["127.0.0.0-127.0.2.255"] + v6,
                                           "relayMaxInboundConnection": [],
                                           "relayRequireTLS": []})
    E.node.reload()

    def refused():
        with conn(E, "127.0.3.1", read_banner=False) as cl:
            return cl.replies_until_close(5) == [NO_CONNECTOR]
    c.true(eventually(refused, 15), "127.0.3.1: %r then close" % NO_CONNECTOR)
    with conn(E, "127.0.0.1") as cl:
        c.eq(cl.banner, [BANNER], "127.0.0.1 still served by Default")
    return c.result()


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    with rnnode.Env("limits") as E:
        # A case whose phase did not apply still runs: its replies say what the node did.
        t.run("phase A limits applied (ldapmodify + SIGHUP)", case_phase_a, E)
        t.run("relayBanner and relayFqdn in banner and EHLO", case_banner_fqdn, E)
        t.run("MaxRecipientsPerMessage 2: third RCPT 452 4.5.3", case_recipients, E)
        t.run("MaxMessageSize 65536: MAIL SIZE=100000 -> 552 5.3.4", case_size_param, E)
        t.run("MaxMessageSize 65536: 70 KB DATA -> 552 5.3.4, not spooled", case_size_data, E)
        t.run("MaxHeaderSize 32768: 40 KB header -> 552 5.3.4", case_header_size, E)
        t.run("MaxHopCount 3: 4 Received: -> 554 5.4.6", case_hops, E)
        t.run("MaxProtocolErrors 2: third bad command -> 421 4.7.0 and close",
              case_protocol_errors, E)
        t.run("MaxInboundConnectionPerSource 2: third -> 421 4.3.2", case_per_source, E)
        t.run("MessageRateLimit 2: third MAIL -> 421 4.4.2 and close", case_rate, E)
        t.run("swaks: banner and recipient limit", case_swaks_limits, E)
        t.run("phase B timeouts applied", case_phase_b, E)
        t.run("ConnectionInactivityTimeout 2 -> 451 4.7.0 and close", case_inactivity, E)
        t.run("ConnectionTimeout 3, active client -> 421 4.4.1 and close",
              case_connection_timeout, E)
        t.run("MaxInboundConnection 3: fourth -> 421 4.3.2", case_total, E)
        t.run("RequireTLS: MAIL without STARTTLS -> 451 5.7.3 and close", case_require_tls, E)
        t.run("no connector for 127.0.3.1 -> 421 4.3.2 Service not available",
              case_no_connector, E)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
