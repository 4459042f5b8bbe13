#!/usr/bin/env python3
"""The ESMTP surface of a real node, byte by byte (issue #3 "SMTP", "Header firewall",
"Logging"): what test_smtp_{policy,limits,hostile,reload} leave out.

  - EHLO (exact extension list and order), HELO, NOOP, RSET in a transaction, VRFY, HELP,
    an unknown verb, the 503 sequence errors, QUIT;
  - BDAT/CHUNKING with raw bytes: chunks split inside a CRLF, BDAT 0 LAST, no dot-unstuffing,
    spooled byte-exact; a bare LF inside a chunk refused; BDAT out of sequence; DATA's line
    limit across chunk boundaries;
  - 8BITMIME (8-bit body spooled intact), SMTPUTF8 (UTF-8 local parts), UTF-8 without it;
  - DATA: 1000-octet text line accepted, 1001 refused and nothing spooled; dot-unstuffing;
  - the header firewall on Default (anonymous: Accept-Headers-Routing only) and after the
    right is removed (ldapmodify + SIGHUP), our Received: and AuthAs/AuthSource stamp;
  - the node's key=value log, the per-connector protocol log at Verbose with its
    "Set Session Permissions" lines, and no AUTH payload in any log;
  - the null reverse-path; IPv6 (::1) and an IPv4-mapped client.

One throwaway slapd with the example organisation and one relaynode. Clients connect from
addresses in 127.0.3.0/24, which land on "Default node1" (anonymous) and let each case find
its own log lines by client address.
"""
import glob
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402
from rnnode import Check, Client, eventually, queued_id  # noqa: E402

DEFAULT = "Default node1"
FQDN = "node1.example.com"          # fixture hostname; Default has no relayFqdn
MAX_SIZE = 36700160                 # relayMaxMessageSize default (directory/connattr.c)
SENDER_OK = "250 2.1.0 Sender OK"
RCPT_OK = "250 2.1.5 Recipient OK"
NO_RELAY = "550 5.7.1 Unable to relay"
BARE = "550 5.5.2 Error: bare CR or LF received"
TOO_LONG = "500 5.5.2 Line too long"
UNKNOWN = "500 5.3.3 Unrecognized command"
QUIT_OK = "221 2.0.0 Service closing transmission channel"
ROUTING = "ms-Exch-Accept-Headers-Routing"
ADS = "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender"
ANON_SEND_AS = "550 5.7.1 Anonymous client does not have permissions to send as this sender"
ANON_RIGHTS = ("ms-Exch-SMTP-Submit ms-Exch-SMTP-Accept-Any-Sender "
               "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender ms-Exch-Accept-Headers-Routing")
AUTH_B64 = "dGVzdAB0ZXN0AHRlc3Q="
# AUTH as clients may spell it: the payload must be masked whatever the case or the blanks.
AUTH_FORMS = ["AUTH PLAIN ", "auth plain ", "AUTH\tPLAIN ", " AUTH PLAIN ", "AUTH  PLAIN\t"]
AUTH_REPLIES = ["504 5.7.4 Unrecognized authentication type"] * 2 + [
    "500 5.3.3 Unrecognized command"] * 2 + ["504 5.7.4 Unrecognized authentication type"]
PID = os.getpid()
_seq = [0]


def tag(prefix):
    _seq[0] += 1
    return "%s-%d-%d" % (prefix, PID, _seq[0])


def src():
    """A fresh client address in 127.0.3.0/24 (Default node1), one per call."""
    _seq[0] += 1
    return "127.0.3.%d" % (10 + _seq[0] % 240)


def connect(E, source=None, host="127.0.0.1", **kw):
    return Client(host, E.smtp_port, source=source or src(), **kw)


def one_message(E, marker):
    """The single spooled message (spool_parse dict) containing marker, or None."""
    msgs = rnnode.spool_messages(E.spool_dir, marker)
    return list(msgs.values())[0] if len(msgs) == 1 else None


def split_stamp(data):
    """(our stamp lines, the rest) of a spooled message: the stamp is our Received: and the
    X-Relaynode-Organization-* lines written before the client's header block."""
    lines = data.split(b"\r\n")
    n = 0
    if lines and lines[0].startswith(b"Received: from "):
        n = 1
        while n < len(lines) and lines[n].startswith(b"X-Relaynode-Organization-"):
            n += 1
    head = lines[:n]
    return [l.decode("utf-8", "replace") for l in head], b"\r\n".join(lines[n:])


def ehlo_lines(source):
    return ["250-%s Hello [%s]" % (FQDN, source), "250-SIZE %d" % MAX_SIZE, "250-PIPELINING",
            "250-8BITMIME", "250-ENHANCEDSTATUSCODES", "250-SMTPUTF8", "250-CHUNKING",
            "250 STARTTLS"]   # Default has Tls and the fixture a certificate; AUTH after TLS


def stamp_lines(helo, client, qid, with_="ESMTP"):
    """The stamp we expect for an anonymous message on Default (date matched by regex)."""
    return [re.compile(r"^Received: from %s \(\[%s\]\) by %s \(\[[0-9a-f.:]+\]\) with %s id %s; "
                       r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} [A-Z][a-z]{2} \d{4} "
                       r"\d\d:\d\d:\d\d \+0000$" % (re.escape(helo), re.escape(client),
                                                    re.escape(FQDN), with_, re.escape(qid))),
            "X-Relaynode-Organization-AuthAs: Anonymous",
            "X-Relaynode-Organization-AuthSource: %s" % FQDN,
            "X-Relaynode-Organization-AntispamBypass: false"]


def check_stamp(c, stamp, helo, client, qid, with_="ESMTP"):
    want = stamp_lines(helo, client, qid, with_)
    if not c.eq(len(stamp), len(want), "stamp lines %r" % stamp):
        return
    c.true(want[0].match(stamp[0]), "our Received: line", stamp[0])
    c.eq(stamp[1:], want[1:], "AuthAs/AuthSource/AntispamBypass stamp")


# -- ESMTP surface ------------------------------------------------------------------------
def case_banner_ehlo(E):
    c = Check()
    s = src()
    with connect(E, s) as cl:
        c.eq(cl.banner, ["220 %s Relaynode ESMTP service ready" % FQDN], "banner")
        c.eq(cl.ehlo("client.test"), ehlo_lines(s), "EHLO reply (lines and order)")
        c.eq(cl.cmd_lines("EHLO again.test"), ehlo_lines(s), "second EHLO: same reply")
        c.eq(cl.cmd_lines("EHLO"), ["501 5.5.4 Invalid domain name"], "EHLO without a domain")
        c.eq(cl.cmd_lines("QUIT"), [QUIT_OK], "QUIT")
        c.true(cl.closed_by_server(5), "server closes after 221")
    return c.result()


def case_helo(E):
    c = Check()
    s = src()
    m = tag("helo")
    with connect(E, s) as cl:
        c.eq(cl.cmd_lines("HELO old.client.test"), ["250 %s Hello [%s]" % (FQDN, s)], "HELO")
        c.eq(cl.cmd("MAIL FROM:<%s@outside.example>" % m), SENDER_OK, "MAIL after HELO")
        c.eq(cl.cmd("RCPT TO:<alice@example.com>"), RCPT_OK, "RCPT")
        d, fin = cl.data("Subject: %s\r\n\r\nbody\r\n" % m)
        c.eq(d, "354 Start mail input; end with <CRLF>.<CRLF>", "DATA")
        qid = queued_id(fin)
        c.true(qid, "queued", fin)
    msg = one_message(E, m)
    if c.true(msg, "one spooled message") and qid:
        stamp, rest = split_stamp(msg["data"])
        check_stamp(c, stamp, "old.client.test", s, qid.split("@")[0], "SMTP")
        c.eq(msg["helo"], "old.client.test", "HELO name recorded")
    return c.result()


def case_noop_vrfy_help_unknown(E):
    c = Check()
    with connect(E) as cl:
        c.eq(cl.cmd_lines("NOOP"), ["250 2.0.0 OK"], "NOOP before EHLO")
        cl.ehlo()
        c.eq(cl.cmd_lines("NOOP"), ["250 2.0.0 OK"], "NOOP")
        c.eq(cl.cmd_lines("noop ignored args"), ["250 2.0.0 OK"], "noop (lower case, args)")
        c.eq(cl.cmd_lines("VRFY alice"),
             ["252 2.1.5 Cannot VRFY user, but will accept message for delivery"], "VRFY")
        c.eq(cl.cmd_lines("HELP"),
             ["214-2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY",
              "214 2.0.0 HELP"], "HELP")
        c.eq(cl.cmd_lines("XYZZY plugh"), [UNKNOWN], "unknown verb")
        c.eq(cl.cmd_lines("MAILFROM:<a@b.example>"), [UNKNOWN], "verb glued to its argument")
        c.eq(cl.cmd_lines("STARTTLS now"), ["501 5.5.4 Invalid arguments"],
             "STARTTLS with an argument")
        c.eq(cl.cmd_lines("NOOP"), ["250 2.0.0 OK"], "session usable after the errors")
    return c.result()


def case_sequence(E):
    c = Check()
    with connect(E) as cl:
        c.eq(cl.cmd_lines("MAIL FROM:<a@outside.example>"), ["503 5.5.2 Send hello first"],
             "MAIL before EHLO")
        c.eq(cl.cmd_lines("RCPT TO:<alice@example.com>"), ["503 5.5.2 Send hello first"],
             "RCPT before EHLO")
        c.eq(cl.cmd_lines("DATA"), ["503 5.5.2 Send hello first"], "DATA before EHLO")
        cl.ehlo()
        c.eq(cl.cmd_lines("RCPT TO:<alice@example.com>"), ["503 5.5.2 Need mail command"],
             "RCPT without MAIL")
        c.eq(cl.cmd_lines("DATA"), ["503 5.5.2 Need mail command"], "DATA without MAIL")
    # Five protocol errors so far: the default MaxProtocolErrors (5) would close the session
    # at the next one, so the rest of the sequence runs in a second session.
    with connect(E) as cl:
        cl.ehlo()
        c.eq(cl.cmd("MAIL FROM:<a@outside.example>"), SENDER_OK, "MAIL")
        c.eq(cl.cmd_lines("MAIL FROM:<b@outside.example>"),
             ["503 5.5.2 Sender already specified"], "second MAIL")
        c.eq(cl.cmd_lines("DATA"), ["503 5.5.2 Need rcpt command"], "DATA without RCPT")
        c.eq(cl.cmd("RCPT TO:<x@outside.example>"), NO_RELAY, "refused RCPT")
        c.eq(cl.cmd_lines("DATA"), ["503 5.5.2 Need rcpt command"],
             "DATA after only a refused RCPT")
        c.eq(cl.cmd("RCPT TO:<alice@example.com>"), RCPT_OK, "RCPT")
        c.eq(cl.cmd_lines("MAIL FROM:<b@outside.example>"),
             ["503 5.5.2 Sender already specified"], "MAIL after RCPT")
        c.eq(cl.cmd_lines("DATA now"), ["501 5.5.4 Invalid arguments"], "DATA with an argument")
        c.eq(cl.cmd_lines("QUIT"), [QUIT_OK], "QUIT mid-transaction")
        c.true(cl.closed_by_server(5), "closed after 221")
    return c.result()


def case_rset(E):
    c = Check()
    m1, m2 = tag("rset-old"), tag("rset-new")
    with connect(E) as cl:
        cl.ehlo()
        c.eq(cl.cmd("MAIL FROM:<%s@outside.example>" % m1), SENDER_OK, "MAIL 1")
        c.eq(cl.cmd("RCPT TO:<alice@example.com>"), RCPT_OK, "RCPT 1")
        c.eq(cl.cmd_lines("RSET"), ["250 2.0.0 Resetting"], "RSET mid-transaction")
        c.eq(cl.cmd_lines("DATA"), ["503 5.5.2 Need mail command"], "DATA after RSET")
        c.eq(cl.cmd_lines("RCPT TO:<bob@example.com>"), ["503 5.5.2 Need mail command"],
             "RCPT after RSET")
        c.eq(cl.cmd("MAIL FROM:<%s@outside.example>" % m2), SENDER_OK, "MAIL 2")
        c.eq(cl.cmd("RCPT TO:<bob@example.com>"), RCPT_OK, "RCPT 2")
        _, fin = cl.data("Subject: %s\r\n\r\nbody\r\n" % m2)
        c.true(queued_id(fin), "queued", fin)
        c.eq(cl.cmd_lines("RSET"), ["250 2.0.0 Resetting"], "RSET outside a transaction")
    c.eq(rnnode.spool_find(E.spool_dir, m1), {}, "the reset transaction left nothing")
    msg = one_message(E, m2)
    if c.true(msg, "the new transaction is spooled once"):
        c.eq((msg["sender"], msg["rcpts"]), ("%s@outside.example" % m2, ["bob@example.com"]),
             "envelope of the new transaction only")
    return c.result()


# -- BDAT / CHUNKING ----------------------------------------------------------------------
def bdat_tx(c, cl, marker):
    cl.ehlo()
    c.eq(cl.cmd("MAIL FROM:<%s@outside.example>" % marker), SENDER_OK, "MAIL")
    c.eq(cl.cmd("RCPT TO:<alice@example.com>"), RCPT_OK, "RCPT")


def case_bdat(E):
    c = Check()
    m = tag("bdat")
    content = (b"Subject: " + m.encode() + b"\r\nX-Chunked: yes\r\n\r\n"
               b"line one\r\n..not unstuffed\r\n.\r\nlast line\r\n")
    cut1 = content.index(b"one\r\n") + 4            # chunk 1 ends inside a CRLF
    cut2 = content.index(b"last")
    chunks = [content[:cut1], content[cut1:cut2], content[cut2:]]
    with connect(E) as cl:
        bdat_tx(c, cl, m)
        cl.send_raw(b"BDAT %d\r\n" % len(chunks[0]) + chunks[0])
        c.eq(cl.read_reply(), ["250 2.0.0 %d octets received" % cut1], "BDAT 1")
        cl.send_raw(b"BDAT %d\r\n" % len(chunks[1]) + chunks[1])
        c.eq(cl.read_reply(), ["250 2.0.0 %d octets received" % cut2], "BDAT 2")
        cl.send_raw(b"BDAT %d LAST\r\n" % len(chunks[2]) + chunks[2])
        fin = cl.reply()
        qid = queued_id(fin)
        c.true(qid, "BDAT LAST -> 250 2.6.0 queued", fin)
        c.eq(cl.cmd("NOOP"), "250 2.0.0 OK", "session goes on after BDAT LAST")
    msg = one_message(E, m)
    if c.true(msg, "one spooled message"):
        stamp, rest = split_stamp(msg["data"])
        c.eq(rest, content, "content spooled byte-exact (no unstuffing)")
        if qid:
            check_stamp(c, stamp, "client.test", msg["client_ip"], qid.split("@")[0])
        c.true(msg["complete"], "END record")
    return c.result()


def case_bdat_pipelined_zero_last(E):
    c = Check()
    m = tag("bdat0")
    content = b"Subject: " + m.encode() + b"\r\n\r\nbody\r\n"
    with connect(E) as cl:
        cl.ehlo()
        cl.send_raw(b"MAIL FROM:<%s@outside.example>\r\nRCPT TO:<bob@example.com>\r\n"
                    b"BDAT %d\r\n%sBDAT 0 LAST\r\nNOOP\r\n" % (m.encode(), len(content), content))
        got = [cl.reply() for _ in range(5)]
        c.eq(got[:3], [SENDER_OK, RCPT_OK, "250 2.0.0 %d octets received" % len(content)],
             "pipelined MAIL/RCPT/BDAT replies in order")
        c.true(queued_id(got[3]), "BDAT 0 LAST -> queued", got[3])
        c.eq(got[4], "250 2.0.0 OK", "NOOP after the pipelined BDAT")
    msg = one_message(E, m)
    if c.true(msg, "one spooled message"):
        c.eq(split_stamp(msg["data"])[1], content, "content byte-exact")
    return c.result()


def case_bdat_bare_lf(E):
    c = Check()
    m = tag("bdatlf")
    content = b"Subject: " + m.encode() + b"\r\n\r\nsmuggle\n.\nMAIL FROM:<x@y.example>\r\n"
    with connect(E) as cl:
        bdat_tx(c, cl, m)
        cl.send_raw(b"BDAT %d LAST\r\n" % len(content) + content)
        rest = cl.replies_until_close(5)
    c.eq(rest, [BARE], "bare LF in a chunk: refusal, then close")
    c.eq(rnnode.spool_find(E.spool_dir, m), {}, "nothing spooled")
    return c.result()


def case_bdat_line_limit(E):
    """DATA's text line rule in BDAT, across chunk boundaries (issue 13): a 1000-octet line
    split over two chunks is accepted; a 1001-octet one, split so that neither chunk alone
    is over, gets DATA's reply after LAST, nothing is spooled, the session goes on."""
    c = Check()
    ok_m, bad_m = tag("bdat1000"), tag("bdat1001")
    for m, n in ((ok_m, 998), (bad_m, 999)):
        content = (b"Subject: " + m.encode() + b"\r\n\r\nstart\r\n" + b"L" * n +
                   b"\r\nend\r\n")
        cut = content.index(b"L" * n) + 600       # inside the long line
        with connect(E) as cl:
            bdat_tx(c, cl, m)
            cl.send_raw(b"BDAT %d\r\n" % cut + content[:cut])
            c.eq(cl.reply(), "250 2.0.0 %d octets received" % cut, "BDAT 1 (%d)" % n)
            cl.send_raw(b"BDAT %d LAST\r\n" % (len(content) - cut) + content[cut:])
            fin = cl.reply()
            if n == 998:
                c.true(queued_id(fin), "a 1000-octet line (998 + CRLF) over two chunks", fin)
            else:
                c.eq(fin, TOO_LONG, "a 1001-octet line (999 + CRLF) over two chunks")
                c.eq(cl.cmd("NOOP"), "250 2.0.0 OK", "session usable after the refusal")
                cl.send_raw(b"BDAT 1 LAST\r\nx")
                c.eq(cl.reply(), "503 5.5.2 Need mail command", "transaction was reset")
    msg = one_message(E, ok_m)
    if c.true(msg, "the 1000-octet message is spooled"):
        c.true(b"\r\n" + b"L" * 998 + b"\r\nend\r\n" in msg["data"], "line intact")
    c.eq(rnnode.spool_find(E.spool_dir, bad_m), {}, "the 1001-octet message is not spooled")
    return c.result()


def case_bdat_sequence(E):
    c = Check()
    with connect(E) as cl:
        cl.ehlo()
        cl.send_raw(b"BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n")
        c.eq([cl.reply(), cl.reply()], ["503 5.5.2 Need mail command", "250 2.0.0 OK"],
             "BDAT without MAIL: its 6 bytes are read (QUIT not run), then 503; NOOP runs")
        c.eq(cl.cmd("MAIL FROM:<q@outside.example>"), SENDER_OK, "MAIL")
        cl.send_raw(b"BDAT 4\r\nQUIT")
        c.eq(cl.reply(), "503 5.5.2 Need rcpt command", "BDAT without RCPT")
        c.eq(cl.cmd("RCPT TO:<alice@example.com>"), RCPT_OK,
             "transaction kept after the refused BDAT")
        c.eq(cl.cmd_lines("BDAT x"), ["501 5.5.4 Invalid arguments"], "BDAT x")
    return c.result()


# -- 8BITMIME and SMTPUTF8 ----------------------------------------------------------------
def case_8bitmime(E):
    c = Check()
    m = tag("8bit")
    body = ("Subject: %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n" % m).encode()
    body += "Grüße, café, 日本語\r\n".encode() + b"raw \x80\xfe\xff bytes\r\n"
    with connect(E) as cl:
        cl.ehlo()
        c.eq(cl.cmd("MAIL FROM:<%s@outside.example> BODY=8BITMIME" % m), SENDER_OK,
             "MAIL BODY=8BITMIME")
        c.eq(cl.cmd("RCPT TO:<alice@example.com>"), RCPT_OK, "RCPT")
        _, fin = cl.data(body)
        c.true(queued_id(fin), "queued", fin)
        c.eq(cl.cmd("MAIL FROM:<a@outside.example> BODY=7BIT"), SENDER_OK, "BODY=7BIT")
        c.eq(cl.cmd("RSET"), "250 2.0.0 Resetting", "RSET")
        c.eq(cl.cmd("MAIL FROM:<a@outside.example> BODY=9BIT"),
             "501 5.5.4 Invalid arguments", "BODY=9BIT")
    msg = one_message(E, m)
    if c.true(msg, "one spooled message"):
        c.eq(split_stamp(msg["data"])[1], body, "8-bit body spooled intact")
    return c.result()


def case_smtputf8(E):
    # The recipient is in the InternalRelay domain: this case is about SMTPUTF8, not about
    # recipient lookup in Authoritative ones (test_recipient_validation.py).
    c = Check()
    m = tag("utf8")
    sender = "jürgen.%s@outside.example" % m
    with connect(E) as cl:
        lines = cl.ehlo()
        c.true("250-SMTPUTF8" in lines, "SMTPUTF8 advertised", lines)
        c.eq(cl.cmd(("MAIL FROM:<%s> SMTPUTF8" % sender).encode()), SENDER_OK,
             "MAIL with a UTF-8 local part and SMTPUTF8")
        c.eq(cl.cmd("RCPT TO:<ålice@internal.example.com>".encode()), RCPT_OK,
             "RCPT with a UTF-8 local part")
        _, fin = cl.data(("From: <%s>\r\nSubject: %s\r\n\r\nhej\r\n" % (sender, m)).encode())
        c.true(queued_id(fin), "queued", fin)
        c.eq(cl.cmd("MAIL FROM:<%s>" % sender.replace("ü", "ue")), SENDER_OK,
             "control: ASCII sender")
        c.eq(cl.cmd("RCPT TO:<ålice@internal.example.com>".encode()), "501 5.1.3 Invalid address",
             "UTF-8 RCPT without SMTPUTF8 on MAIL")
        c.eq(cl.cmd("RSET"), "250 2.0.0 Resetting", "RSET")
        c.eq(cl.cmd(("MAIL FROM:<%s>" % sender).encode()), "501 5.1.3 Invalid address",
             "UTF-8 MAIL without SMTPUTF8")
        c.eq(cl.cmd("NOOP"), "250 2.0.0 OK", "session goes on")
    msg = one_message(E, m)
    if c.true(msg, "one spooled message"):
        c.eq((msg["sender"], msg["rcpts"]), (sender, ["ålice@internal.example.com"]),
             "UTF-8 envelope recorded as sent")
    return c.result()


# -- DATA ---------------------------------------------------------------------------------
def case_data_line_limit(E):
    c = Check()
    ok_m, bad_m = tag("line1000"), tag("line1001")
    with connect(E) as cl:
        cl.ehlo()
        for m, n in ((ok_m, 998), (bad_m, 999)):
            c.eq(cl.cmd("MAIL FROM:<%s@outside.example>" % m), SENDER_OK, "MAIL %d" % n)
            c.eq(cl.cmd("RCPT TO:<alice@example.com>"), RCPT_OK, "RCPT %d" % n)
            line = ("L" * n).encode()
            _, fin = cl.data(b"Subject: " + m.encode() + b"\r\n\r\n" + line + b"\r\nend\r\n")
            if n == 998:
                c.true(queued_id(fin), "a 1000-octet line (998 + CRLF) is accepted", fin)
            else:
                c.eq(fin, TOO_LONG, "a 1001-octet line (999 + CRLF)")
        c.eq(cl.cmd("NOOP"), "250 2.0.0 OK", "session usable after the refusal")
        c.eq(cl.cmd_lines("DATA"), ["503 5.5.2 Need mail command"], "transaction was reset")
    msg = one_message(E, ok_m)
    if c.true(msg, "the 1000-octet message is spooled"):
        c.true(b"\r\n" + b"L" * 998 + b"\r\nend\r\n" in msg["data"], "line intact")
    c.eq(rnnode.spool_find(E.spool_dir, bad_m), {}, "the 1001-octet message is not spooled")
    return c.result()


def case_dot_unstuffing(E):
    c = Check()
    m = tag("dots")
    with connect(E) as cl:
        cl.ehlo()
        cl.cmd("MAIL FROM:<%s@outside.example>" % m)
        cl.cmd("RCPT TO:<alice@example.com>")
        c.true(cl.cmd("DATA").startswith("354 "), "DATA")
        cl.send_raw(b"Subject: " + m.encode() + b"\r\n\r\n..x\r\n...y\r\n.. \r\nz.\r\n.\r\n")
        c.true(queued_id(cl.reply()), "queued")
    msg = one_message(E, m)
    if c.true(msg, "one spooled message"):
        c.eq(split_stamp(msg["data"])[1].split(b"\r\n\r\n", 1)[1], b".x\r\n..y\r\n. \r\nz.\r\n",
             "leading dot removed once per line, nothing else")
    return c.result()


def case_null_sender(E):
    c = Check()
    m = tag("null")
    with connect(E) as cl:
        cl.ehlo()
        c.eq(cl.cmd("MAIL FROM:<>"), SENDER_OK, "MAIL FROM:<>")
        c.eq(cl.cmd("RCPT TO:<alice@example.com>"), RCPT_OK, "RCPT")
        _, fin = cl.data("From: Mail Delivery System <mailer-daemon@outside.example>\r\n"
                         "Subject: %s\r\n\r\nbounce\r\n" % m)
        c.true(queued_id(fin), "queued", fin)
        c.eq(cl.cmd_lines("RCPT TO:<<>>"), ["503 5.5.2 Need mail command"], "after the message")
        c.eq(cl.cmd("MAIL FROM:<>"), SENDER_OK, "MAIL FROM:<> again")
        c.eq(cl.cmd("RCPT TO:<>"), "501 5.1.3 Invalid address", "RCPT TO:<> refused")
    msg = one_message(E, m)
    if c.true(msg, "one spooled message"):
        c.eq(msg.get("sender"), "", "sender recorded as the empty string")
        c.eq(msg["rcpts"], ["alice@example.com"], "recipients")
    return c.result()


# -- header firewall ------------------------------------------------------------------------
def firewall_message(m):
    return ("Received: from upstream.test ([192.0.2.7]) by mx.outside.example; rcv-%s\r\n"
            "Received : from obs.test ([192.0.2.8]) by mx.outside.example; obs-%s\r\n"
            "Resent-From: <resent-%s@outside.example>\r\n"
            "X-Relaynode-Forest-Foo: rnforest-%s\r\n"
            "X-MS-Exchange-Forest-Bar: msforest-%s\r\n"
            "  folded-msforest-%s\r\n"
            "X-Relaynode-Organization-AuthAs: Internal\r\n"
            "X-Relaynode-Organization-Baz: rnorg-%s\r\n"
            "X-MS-Exchange-Organization-SCL: -1\r\n"
            "x-ms-exchange-forest-lower: lower-%s\r\n"
            "x-relaynode-organization-authas: Internal\r\n"
            "X-Kept: kept-%s\r\n"
            "From: <fw@outside.example>\r\n"
            "Subject: %s\r\n\r\nbody rcv-%s\r\n") % ((m,) * 11)


def firewall_send(E, m):
    s = src()
    with connect(E, s) as cl:
        r = cl.send_message("fw-%s@outside.example" % m, ["alice@example.com"],
                            firewall_message(m), ehlo="fw.client.test")
    return s, r


def case_firewall_default(E):
    c = Check()
    m = tag("fw")
    s, r = firewall_send(E, m)
    qid = queued_id(r[-1])
    if not c.true(qid, "queued", r):
        return c.result()
    msg = one_message(E, m)
    if not c.true(msg, "one spooled message"):
        return c.result()
    stamp, rest = split_stamp(msg["data"])
    check_stamp(c, stamp, "fw.client.test", s, qid.split("@")[0])
    want = ("Received: from upstream.test ([192.0.2.7]) by mx.outside.example; rcv-%s\r\n"
            "Received : from obs.test ([192.0.2.8]) by mx.outside.example; obs-%s\r\n"
            "Resent-From: <resent-%s@outside.example>\r\n"
            "X-Kept: kept-%s\r\nFrom: <fw@outside.example>\r\nSubject: %s\r\n\r\n"
            "body rcv-%s\r\n") % ((m,) * 6)
    c.eq(rest, want.encode(),
         "client Received:/Resent-From kept; Forest and Organization (ours and MS, any case) "
         "stripped, a folded line with its field")
    return c.result()


def routing_stripped(E):
    m = tag("fw-noroute")
    s, r = firewall_send(E, m)
    msg = one_message(E, m)
    if not msg or not queued_id(r[-1]):
        return None
    return (m, s, queued_id(r[-1]), msg) if (b"Resent-From" not in msg["data"]) else None


def case_firewall_no_routing(E, held, held_src):
    """held: a session opened (Verbose protocol log on) before the right is removed."""
    c = Check()
    E.set_anonymous_rights(DEFAULT, remove=[ROUTING])
    E.node.reload()
    got = eventually(lambda: routing_stripped(E), 15)
    if not c.true(got, "reload applied within 15 s (Resent-From stripped)"):
        return c.result()
    m, s, qid, msg = got
    stamp, rest = split_stamp(msg["data"])
    check_stamp(c, stamp, "fw.client.test", s, qid.split("@")[0])
    want = ("X-Kept: kept-%s\r\nFrom: <fw@outside.example>\r\nSubject: %s\r\n\r\n"
            "body rcv-%s\r\n") % ((m,) * 3)
    c.eq(rest, want.encode(), "client Received: (also 'Received :') and Resent-* stripped")
    c.eq(msg["data"].count(b"Received:"), 1, "only our Received: left")
    # the session opened before the change takes the new rights at its next MAIL
    hm = tag("fw-held")
    r = held.send_message("fw-%s@outside.example" % hm, ["alice@example.com"],
                          firewall_message(hm), ehlo="fw.client.test")
    hq = queued_id(r[-1])
    hmsg = one_message(E, hm)
    if c.true(hq and hmsg, "held session: queued", r):
        want = ("X-Kept: kept-%s\r\nFrom: <fw@outside.example>\r\nSubject: %s\r\n\r\n"
                "body rcv-%s\r\n") % ((hm,) * 3)
        c.eq(split_stamp(hmsg["data"])[1], want.encode(), "held session: routing stripped too")
    held.cmd("QUIT")
    want = ("* Set Session Permissions (reload): token=NT AUTHORITY\\ANONYMOUS LOGON rights="
            + ANON_RIGHTS.replace(" " + ROUTING, ""))
    lines = eventually(lambda: protolog_session(E, held_src), 5) or []
    c.true(want in lines, "protocol log: held session's rights after the reload", "\n".join(lines))
    return c.result()


def case_firewall_restore(E):
    c = Check()
    E.set_anonymous_rights(DEFAULT, add=[ROUTING])
    E.node.reload()

    def kept():
        m = tag("fw-route")
        _, r = firewall_send(E, m)
        msg = one_message(E, m)
        return msg and b"Resent-From: <resent-" in msg["data"]
    c.true(eventually(kept, 15), "Accept-Headers-Routing restored: Resent-From kept again")
    return c.result()


def p2_reply(E, header, m):
    with connect(E) as cl:
        return cl.send_message("p2-%s@outside.example" % m, ["bob@example.com"],
                               "%s\r\nSubject: %s\r\n\r\nx\r\n" % (header, m))[-1]


def case_p2_obsolete_syntax(E):
    """RFC 5322 obs syntax 'From :' is still the From field for the header (P2) sender check."""
    c = Check()
    E.set_anonymous_rights(DEFAULT, remove=[ADS])
    E.node.reload()
    c.true(eventually(lambda: p2_reply(E, "From: <alice@example.com>", tag("p2")) == ANON_SEND_AS,
                      15), "reload applied within 15 s (From: alice@example.com refused)")
    for h in ("From : <alice@example.com>", "From\t:alice@example.com",
              "Sender : Alice <alice@example.com>\r\nFrom: <x@outside.example>"):
        m = tag("p2obs")
        c.eq(p2_reply(E, h, m), ANON_SEND_AS, "header %r" % h)
        c.eq(rnnode.spool_find(E.spool_dir, m), {}, "%r: nothing spooled" % h)
    E.set_anonymous_rights(DEFAULT, add=[ADS])
    E.node.reload()
    c.true(eventually(lambda: queued_id(p2_reply(E, "From : <alice@example.com>", tag("p2"))), 15),
           "Accept-Authoritative-Domain-Sender restored: accepted again")
    return c.result()


# -- logs -----------------------------------------------------------------------------------
def log_lines(E, pattern):
    rx = re.compile(pattern)
    return [l for l in E.node.log().splitlines() if rx.search(l)]


def case_node_log(E):
    c = Check()
    s = src()
    m = tag("log")
    with connect(E, s) as cl:
        cl.ehlo()
        c.eq(cl.cmd("MAIL FROM:<%s@outside.example>" % m), SENDER_OK, "MAIL")
        c.eq(cl.cmd("RCPT TO:<x@outside.example>"), NO_RELAY, "relay refused")
        c.eq(cl.cmd("RCPT TO:<alice@example.com>"), RCPT_OK, "RCPT")
        c.eq(cl.cmd("RCPT TO:<bob@example.com>"), RCPT_OK, "RCPT 2")
        _, fin = cl.data("Subject: %s\r\n\r\nx\r\n" % m)
        qid = queued_id(fin)
        c.true(qid, "queued", fin)
        c.eq(cl.cmd("QUIT"), QUIT_OK, "QUIT")
    conn = eventually(lambda: log_lines(E, r" smtp connect client=%s:\d+ " % re.escape(s)), 5)
    if not c.eq(len(conn), 1, "one connect line for %s" % s):
        return c.result()
    sid = conn[0].split()[1]
    c.true(re.search(r" smtp connect client=%s:\d+ local=127\.0\.0\.1:%d connector=\"%s\" "
                     r"sessions=\d+$" % (re.escape(s), E.smtp_port, DEFAULT), conn[0]),
           "connect line", conn[0])
    # The close line is the session's last: once it is in the file (the log writer keeps
    # the order), so are the refused and queued lines before it.
    close = eventually(lambda: log_lines(E, r"^\S+ %s smtp close " % sid), 5)
    ref = log_lines(E, r"^\S+ %s smtp refused " % sid)
    c.eq(len(ref), 1, "one refused line")
    c.true(ref and re.search(r' smtp refused stage=rcpt reply="550 5\.7\.1" '
                             r'right=ms-Exch-SMTP-Accept-Any-Recipient ace=-?\d+ why=', ref[0]),
           "refused line", ref)
    if qid:
        q = qid.split("@")[0]
        ql = log_lines(E, r"^\S+ %s smtp queued " % re.escape(q))
        c.true(len(ql) == 1 and re.search(
            r" smtp queued session=%s from=<%s@outside\.example> rcpts=2 size=\d+ "
            r"connector=\"%s\" client=%s auth_as=Anonymous$"
            % (sid, re.escape(m), DEFAULT, re.escape(s)), ql[0]), "queued line", ql)
    c.true(len(close) == 1 and re.search(r" smtp close reason=quit messages=1 errors=0 "
                                         r"seconds=\d+$", close[0]), "close line", close)
    return c.result()


def protolog_files(E):
    return sorted(glob.glob(os.path.join(E.slapd.protocol_dir, "*")))


def protolog_session(E, client):
    """'<dir> <text>' lines of the last finished session from client in Default's protocol
    log (connect .. disconnect), or None."""
    path = os.path.join(E.slapd.protocol_dir, "Default_node1.log")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read().splitlines()
    except OSError:
        return None
    rx = re.compile(r" \+ connect %s:\d+ -> " % re.escape(client))
    sids = [l.split()[1] for l in text if rx.search(l)]
    if not sids:
        return None
    mine = [l.split(" ", 2)[2] for l in text if l.split()[1] == sids[-1]]
    return mine if "- disconnect" in mine else None


def case_protocol_log(E):
    c = Check()
    E.modify_connector(DEFAULT, {"relayProtocolLoggingLevel": ["Verbose"]})
    E.node.reload()
    path = os.path.join(E.slapd.protocol_dir, "Default_node1.log")

    def session():
        s, m = src(), tag("proto")
        with connect(E, s) as cl:
            cl.ehlo("proto.client.test")
            r = [cl.cmd(v + AUTH_B64) for v in AUTH_FORMS]
            out = cl.send_message("%s@outside.example" % m, ["alice@example.com"],
                                  "Subject: %s\r\n\r\nbody-%s\r\n" % (m, m),
                                  ehlo="proto.client.test")
            cl.cmd("QUIT")
        return s, m, r + out
    ok = eventually(lambda: session() and os.path.exists(path), 15)
    s, m, replies = session()      # a whole session logged at Verbose
    c.eq(replies[:len(AUTH_FORMS)], AUTH_REPLIES, "AUTH (not offered) in its spellings")
    c.true(queued_id(replies[-1]), "queued", replies)
    if not c.true(ok, "protocol log %s appears after the reload" % path, protolog_files(E)):
        return c.result()

    text = eventually(lambda: protolog_session(E, s), 5)
    if not c.true(text, "the session's lines (connect .. disconnect)"):
        return c.result()
    dirs = {t[:1] for t in text}
    c.true({"<", ">", "*", "+", "-"} <= dirs, "directions < > * + -", dirs)
    for want in ["< EHLO proto.client.test", "> 250-%s Hello [%s]" % (FQDN, s),
                 "> 250 STARTTLS", "< AUTH ****", "> 504 5.7.4 Unrecognized authentication type",
                 "< MAIL FROM:<%s@outside.example>" % m, "> " + SENDER_OK,
                 "< RCPT TO:<alice@example.com>", "> " + RCPT_OK, "< DATA",
                 "> 354 Start mail input; end with <CRLF>.<CRLF>", "< QUIT", "> " + QUIT_OK,
                 "* Set Session Permissions (connect): token=NT AUTHORITY\\ANONYMOUS LOGON "
                 "rights=" + ANON_RIGHTS]:
        c.true(want in text, "protocol log has %r" % want, "\n".join(text))
    c.eq(sum(1 for t in text if t == "< AUTH ****"), len(AUTH_FORMS), "every AUTH line masked")
    c.true(text[0].startswith("+ connect %s:" % s), "first line is the connect", text[:1])
    c.true(not any(("body-" + m) in l or ("Subject: " + m) in l for l in text),
           "message content is not in the protocol log")
    # AUTH payloads never reach any log
    leaks = []
    files = protolog_files(E) + E.node.log_files()
    for p in files:
        with open(p, "rb") as f:
            if AUTH_B64.encode() in f.read():
                leaks.append(p)
    c.eq(leaks, [], "AUTH payload %s absent from every log file (%d checked)" % (AUTH_B64, len(files)))
    return c.result()


# -- addresses ------------------------------------------------------------------------------
def v6_available():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            s.bind(("::1", 0))
        finally:
            s.close()
        return True
    except OSError:
        return False


def case_ipv6(E):
    c = Check()
    m = tag("v6")
    with Client("::1", E.smtp_port) as cl:
        c.eq(cl.banner, ["220 %s Relaynode ESMTP service ready" % FQDN], "banner over ::1")
        c.eq(cl.ehlo("v6.client.test"), ehlo_lines("::1"), "EHLO over ::1")
        r = cl.send_message("%s@outside.example" % m, ["alice@example.com"],
                            "Subject: %s\r\n\r\nx\r\n" % m, ehlo="v6.client.test")
        qid = queued_id(r[-1])
        c.true(qid, "queued", r)
    msg = one_message(E, m)
    if c.true(msg, "spooled") and qid:
        c.eq((msg["client_ip"], msg["connector"]), ("::1", DEFAULT), "client ::1 on Default")
        check_stamp(c, split_stamp(msg["data"])[0], "v6.client.test", "::1", qid.split("@")[0])
    return c.result()


def case_v4mapped(E):
    c = Check()
    m = tag("mapped")
    with Client("::ffff:127.0.0.1", E.smtp_port) as cl:
        c.eq(cl.ehlo("mapped.client.test")[0], "250-%s Hello [127.0.0.1]" % FQDN,
             "an IPv4-mapped client is seen as 127.0.0.1")
        r = cl.send_message("%s@outside.example" % m, ["alice@example.com"],
                            "Subject: %s\r\n\r\nx\r\n" % m, ehlo="mapped.client.test")
        c.true(queued_id(r[-1]), "queued", r)
    msg = one_message(E, m)
    if c.true(msg, "spooled"):
        c.eq((msg["client_ip"], msg["connector"]), ("127.0.0.1", DEFAULT), "client and connector")
    return c.result()


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    t0 = time.monotonic()
    with rnnode.Env("protocol") as E:
        t.run("banner, EHLO (exact extensions in order), EHLO without domain, QUIT 221 + close",
              case_banner_ehlo, E)
        t.run("HELO reply; message stamped 'with SMTP'", case_helo, E)
        t.run("NOOP, VRFY 252, HELP 214, unknown verb 500 5.3.3", case_noop_vrfy_help_unknown, E)
        t.run("sequence errors: the 503 texts at each state", case_sequence, E)
        t.run("RSET mid-transaction, then a new MAIL: only the new envelope spooled", case_rset, E)
        t.run("BDAT: chunks split inside CRLF + LAST, byte-exact, no unstuffing", case_bdat, E)
        t.run("BDAT pipelined with BDAT 0 LAST", case_bdat_pipelined_zero_last, E)
        t.run("BDAT with a bare LF: 550 5.5.2 and close, nothing spooled", case_bdat_bare_lf, E)
        t.run("BDAT out of sequence: bytes consumed, 503 after them", case_bdat_sequence, E)
        t.run("BDAT: DATA's 1000-octet line limit across chunks, same 500 5.5.2",
              case_bdat_line_limit, E)
        t.run("8BITMIME: BODY=8BITMIME with an 8-bit body spooled intact", case_8bitmime, E)
        t.run("SMTPUTF8: UTF-8 local parts; without SMTPUTF8 501 5.1.3", case_smtputf8, E)
        t.run("DATA: 1000-octet line accepted, 1001 -> 500 5.5.2 and not spooled",
              case_data_line_limit, E)
        t.run("DATA: dot-unstuffing ('..x' spooled as '.x')", case_dot_unstuffing, E)
        t.run("null sender MAIL FROM:<> spooled with sender ''", case_null_sender, E)
        t.run("header firewall on Default (anonymous, Routing only) + our stamp",
              case_firewall_default, E)
        t.run("node log: connect, refused (right), queued, close", case_node_log, E)
        # IPv6 on loopback is part of the test machine: no ::1 is a failure, not a skip.
        if not t.ok(v6_available(), "::1 is bindable on this machine"):
            t.ok(False, "IPv6 ::1 on Default (no ::1)")
        else:
            t.run("IPv6 ::1 on Default", case_ipv6, E)
        t.run("IPv4-mapped client (::ffff:127.0.0.1)", case_v4mapped, E)
        t.run("protocol log at Verbose: directions, Set Session Permissions, AUTH masked",
              case_protocol_log, E)
        held_src = src()
        with connect(E, held_src) as held:
            held.ehlo("fw.client.test")
            t.run("without Accept-Headers-Routing (ldapmodify + SIGHUP): Received:/Resent-* "
                  "stripped, also in a session opened before", case_firewall_no_routing, E,
                  held, held_src)
        t.run("Accept-Headers-Routing restored", case_firewall_restore, E)
        E.modify_connector(DEFAULT, {"relayProtocolLoggingLevel": ["None"]})
        t.run("header sender check sees obsolete 'From :' / 'Sender :' (ADS revoked, then "
              "restored)", case_p2_obsolete_syntax, E)
    t.diag("%.1f s" % (time.monotonic() - t0))
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
