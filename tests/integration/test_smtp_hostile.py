#!/usr/bin/env python3
"""Hostile SMTP input against a real node (docs/reliability.md §1, §7 T01 T02 T05 T06 T07 T09).

One throwaway slapd with the example organisation, one relaynode; every client connects
from 127.0.0.1 to the Default connector (anonymous). Raw sockets, so the bytes on the wire
are exactly the ones written here. The expected replies are the issue's:
  bare CR / LF anywhere        -> 550 5.5.2 Error: bare CR or LF received, then close
  command line > 512 octets    -> 500 5.5.2 Line too long (once), session goes on
  2 MiB without LF             -> an error and close, RSS stays flat
"""
import os
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402
from rnnode import Check, Client, queued_id  # noqa: E402

BARE = "550 5.5.2 Error: bare CR or LF received"
TOO_LONG = "500 5.5.2 Line too long"
SRC = "127.0.0.1"


def connect(E, **kw):
    return Client("127.0.0.1", E.smtp_port, source=kw.pop("source", SRC), **kw)


def in_spool(E, marker):
    """Spool files (name -> bytes) containing marker, plus --list-spool lines naming it."""
    files = rnnode.spool_find(E.spool_dir, marker)
    listed = [l for l in E.node.list_spool().splitlines() if marker in l]
    return files, listed


# -- T01: end-of-data smuggling ----------------------------------------------------------
SMUGGLE = [("LF.LF", b"\n.\n"), ("LF.CRLF", b"\n.\r\n"), ("CRLF.LF", b"\r\n.\n"),
           ("CR.CR", b"\r.\r"), ("CRLF.CR", b"\r\n.\r")]


def case_smuggle(E, tag, marker):
    c = Check()
    first = "first-%s@outside.example" % tag
    smuggled = "smuggled-%s@outside.example" % tag
    with connect(E) as cl:
        cl.ehlo()
        c.eq(cl.cmd("MAIL FROM:<%s>" % first), "250 2.1.0 Sender OK", "MAIL")
        c.eq(cl.cmd("RCPT TO:<alice@example.com>"), "250 2.1.5 Recipient OK", "RCPT")
        c.true(cl.cmd("DATA").startswith("354"), "DATA -> 354")
        payload = (b"Subject: smuggle " + tag.encode() + b"\r\n\r\nX" + marker +
                   b"MAIL FROM:<" + smuggled.encode() + b">\r\nRCPT TO:<alice@example.com>\r\n"
                   b"DATA\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n.\r\nQUIT\r\n")
        try:
            cl.send_raw(payload)
            cl.send_raw(b"\r\n.\r\n")
        except OSError:
            pass                      # the server may already have closed
        rest = cl.replies_until_close(8)
    c.true(BARE in rest, "reply %r after the bad end-of-data" % BARE, rest)
    c.true(not any(l.startswith("250") for l in rest),
           "no 250 for the smuggled commands or either message", rest)
    c.true(rest[-1:] != ["TIMEOUT"], "server closed the session", rest)
    c.true(rest[-1:] == [BARE], "the bare CR/LF refusal is the last line before close", rest)
    files, listed = in_spool(E, smuggled)
    c.eq(len(files), 0, "smuggled messages in spool/queue")
    c.eq(listed, [], "smuggled messages in --list-spool")
    files, listed = in_spool(E, first)
    c.eq((len(files), listed), (0, []), "the refused carrier message is not spooled either")
    return c.result()


# -- T02: bare CR / LF in commands --------------------------------------------------------
BARE_CMDS = [
    ("EHLO a<LF>", b"EHLO a\nNOOP\r\n", False),
    ("MAIL<CR>RCPT on one line", b"MAIL FROM:<a@b.example>\rRCPT TO:<c@d.example>\r\n", True),
    ("NOOP<CR><CR><LF>", b"NOOP\r\r\n", True),
    ("NOOP<LF>NOOP<CR><LF>", b"NOOP\nNOOP\r\n", True),
]


def case_bare_cmd(E, raw, ehlo_first):
    c = Check()
    with connect(E) as cl:
        if ehlo_first:
            c.true(cl.ehlo()[-1].startswith("250"), "EHLO")
        cl.send_raw(raw)
        rest = cl.replies_until_close(5)
    c.true(not any(l.startswith("250") for l in rest), "no command of the line ran", rest)
    c.eq(rest, [BARE], "exactly one refusal, then close")
    return c.result()


# -- T05 (c): legal RFC 2920 pipelining ---------------------------------------------------
def case_pipelining(E):
    c = Check()
    sender = "pipe-%d@outside.example" % os.getpid()
    with connect(E) as cl:
        lines = cl.ehlo()
        c.true(any(l[4:] == "PIPELINING" for l in lines), "PIPELINING advertised", lines)
        cl.send_raw("MAIL FROM:<%s>\r\nRCPT TO:<alice@example.com>\r\n"
                    "RCPT TO:<bob@example.com>\r\nDATA\r\n" % sender)
        got = [cl.reply() for _ in range(4)]
        c.eq(got[:3], ["250 2.1.0 Sender OK", "250 2.1.5 Recipient OK",
                       "250 2.1.5 Recipient OK"], "MAIL/RCPT/RCPT replies in order")
        c.true(got[3].startswith("354 "), "DATA -> 354", got[3])
        cl.send_raw(b"Subject: pipelined\r\n\r\nbody\r\n.\r\n")
        final = cl.reply()
        c.true(queued_id(final), "queued", final)
        c.eq(cl.cmd("QUIT"), "221 2.0.0 Service closing transmission channel", "QUIT")
    files, listed = in_spool(E, sender)
    c.eq(len(files), 1, "exactly one message spooled")
    c.eq(len(listed), 1, "exactly one message listed by --list-spool")
    return c.result()


# -- T06: line limits and resynchronisation -----------------------------------------------
def case_line_512(E):
    c = Check()
    with connect(E) as cl:
        cl.ehlo()
        line = b"NOOP " + b"x" * (512 - 5 - 2)
        assert len(line) + 2 == 512
        r = cl.cmd(line)
        c.true(r.startswith("250 "), "512-octet NOOP accepted", r)
        r = cl.cmd(b"NOOP " + b"x" * (513 - 5 - 2))
        c.eq(r, TOO_LONG, "513-octet NOOP")
        r = cl.cmd("NOOP")
        c.true(r.startswith("250 "), "session usable after the long line", r)
    return c.result()


def long_line(quit_at, total=4096):
    """A NOOP line of `total` octets incl. CRLF with QUIT at offset quit_at; after QUIT,
    spaces (a resync bug that chops at the limit would then see a bare 'QUIT   ...')."""
    head = b"NOOP " + b"A" * (quit_at - 5) + b"QUIT"
    return head + b" " * (total - 2 - len(head)) + b"\r\n"


def case_line_4096(E):
    c = Check()
    with connect(E) as cl:
        cl.ehlo()
        for off in (512, 1024, 2048, 4090):
            line = long_line(off)
            assert len(line) == 4096 and line[off:off + 4] == b"QUIT"
            cl.send_raw(line + b"NOOP\r\n")
            try:
                got = [cl.reply(5), cl.reply(5)]
            except (rnnode.Closed, socket.timeout) as e:
                c.true(False, "QUIT at %d: session ended or stalled (%r)" % (off, e))
                return c.result()
            c.eq(got[0], TOO_LONG, "QUIT at %d: reply to the long line" % off)
            c.true(got[1].startswith("250 "), "QUIT at %d: following NOOP -> 250" % off, got)
        r = cl.cmd("NOOP")
        c.true(r.startswith("250 "), "no extra replies pending (exactly one 500 per line)", r)
    return c.result()


def case_2mib_no_lf(E):
    c = Check()
    with connect(E) as cl:
        cl.ehlo()
        rss0 = E.node.rss_kib()
        chunk = b"A" * 65536
        sent = 0
        try:
            for _ in range(32):
                cl.send_raw(chunk)
                sent += len(chunk)
        except OSError:
            pass
        rest = cl.replies_until_close(10)
        rss1 = E.node.rss_kib()
    c.true(rest and rest[0][:1] in ("4", "5"), "an error reply", rest[:3])
    c.true(rest[-1:] != ["TIMEOUT"], "server closed the session", rest[-3:])
    c.true(rss1 - rss0 < 8192, "RSS growth %d KiB < 8 MiB (sent %d bytes)"
           % (rss1 - rss0, sent))
    c.true(E.node.alive(), "node alive")
    return c.result()


def case_local_part(E):
    c = Check()
    with connect(E) as cl:
        cl.ehlo()
        r = cl.cmd("MAIL FROM:<%s@outside.example>" % ("s" * 65))
        c.true(r[:1] == "5", "65-octet local part in MAIL refused", r)
        c.eq(cl.cmd("MAIL FROM:<%s@outside.example>" % ("s" * 64)), "250 2.1.0 Sender OK",
             "64-octet local part in MAIL")
        # internal.example.com (InternalRelay): any local part is a recipient there, so the
        # reply is about the length alone (recipient lookup: test_recipient_validation.py).
        r = cl.cmd("RCPT TO:<%s@internal.example.com>" % ("r" * 65))
        c.true(r[:1] == "5", "65-octet local part in RCPT refused", r)
        c.eq(cl.cmd("RCPT TO:<%s@internal.example.com>" % ("r" * 64)), "250 2.1.5 Recipient OK",
             "64-octet local part in RCPT")
        dom = ".".join(["d" * 60] * 4) + ".example.com"          # path > 256 octets
        r = cl.cmd("RCPT TO:<r@%s>" % dom)
        c.true(r[:1] == "5" and not r.startswith("550 5.7.1"),
               "300-octet path refused as a syntax error", r)
    return c.result()


# -- T09: NUL / CR in addresses, parameter injection --------------------------------------
def case_nul_cr(E):
    c = Check()
    with connect(E) as cl:
        cl.ehlo()
        r = cl.cmd(b"MAIL FROM:<a\x00b@outside.example>")
        c.true(r.startswith("501 "), "NUL inside <> in MAIL -> 501", r)
        c.eq(cl.cmd("MAIL FROM:<ok@outside.example>"), "250 2.1.0 Sender OK", "MAIL after")
        r = cl.cmd(b"RCPT TO:<a\x00b@example.com>")
        c.true(r.startswith("501 "), "NUL inside <> in RCPT -> 501", r)
    with connect(E) as cl:
        cl.ehlo()
        cl.send_raw(b"MAIL FROM:<a\rb@outside.example>\r\n")
        rest = cl.replies_until_close(3)
        # 501 (the brief) or the bare-CR refusal (the same byte is a bare CR): never 250.
        c.true(rest and (rest[0].startswith("501 ") or rest[0] == BARE),
               "CR inside <> -> 501 or %r" % BARE, rest)
    return c.result()


def case_param_injection(E):
    c = Check()
    tag = "inj-%d" % os.getpid()
    with connect(E) as cl:
        cl.ehlo()
        r = cl.cmd("MAIL FROM:<%s@outside.example> AUTH=x+0D+0AX-Injected:1" % tag)
        c.true(r[:3] in ("250", "501", "555"), "MAIL with CRLF in AUTH xtext", r)
        if not r.startswith("250"):
            r = cl.cmd("MAIL FROM:<%s@outside.example>" % tag)
        r2 = cl.cmd("RCPT TO:<alice@example.com> ORCPT=rfc822;c+0Ad")
        c.true(r2[:3] in ("250", "501", "555"), "RCPT with LF in ORCPT xtext", r2)
        if not r2.startswith("250"):
            cl.cmd("RCPT TO:<alice@example.com>")
        _, final = cl.data("Subject: %s\r\n\r\nbody\r\n" % tag)
        c.true(queued_id(final), "message still accepted", final)
    msgs = rnnode.spool_messages(E.spool_dir, tag)
    c.eq(len(msgs), 1, "one message spooled")
    for name, m in msgs.items():
        if not c.true(m is not None, "%s: a spool file in the documented format" % name):
            continue
        env = [m.get("sender") or ""] + m["rcpts"] + [m.get(k) or "" for k in (
            "client_ip", "helo", "connector", "auth_user", "auth_as")]
        c.true(not any(ch in f for f in env for ch in "\r\n\x00"),
               "%s: no CR/LF/NUL in envelope records" % name, env)
        hdr = m["data"].split(b"\r\n\r\n", 1)[0]
        c.true(b"\nX-Injected" not in hdr, "%s: xtext decoded into a header line" % name)
    return c.result()


# -- T07: recipient limit at the default (200) --------------------------------------------
def case_recipient_limit(E):
    c = Check()
    sender = "many-%d@outside.example" % os.getpid()
    with connect(E) as cl:
        cl.ehlo()
        c.eq(cl.cmd("MAIL FROM:<%s>" % sender), "250 2.1.0 Sender OK", "MAIL")
        # InternalRelay: u1..u205 need not exist (recipient lookup is not what this tests).
        cl.send_raw("".join("RCPT TO:<u%d@internal.example.com>\r\n" % i
                            for i in range(1, 206)))
        got = [cl.reply() for _ in range(205)]
        c.eq(got[:200], ["250 2.1.5 Recipient OK"] * 200, "RCPT 1-200")
        c.eq(got[200:], ["452 4.5.3 Too many recipients"] * 5, "RCPT 201-205")
        _, final = cl.data("Subject: many\r\n\r\nbody\r\n")
        c.true(queued_id(final), "DATA still works for the 200", final)
    msgs = rnnode.spool_messages(E.spool_dir, sender)
    c.eq(len(msgs), 1, "one message")
    for m in msgs.values():
        c.eq(len(m["rcpts"]) if m else None, 200, "envelope recipients")
        c.true(m and "u201@internal.example.com" not in m["rcpts"],
               "no recipient past the limit")
    return c.result()


def case_node_healthy(E):
    c = Check()
    c.true(E.node.alive(), "node still running")
    with connect(E) as cl:
        r = cl.send_message("after@outside.example", ["alice@example.com"],
                            "Subject: after\r\n\r\nok\r\n")
        c.true(queued_id(r[-1]), "ordinary message accepted after the attacks", r)
    log = E.node.log()
    for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
        c.true(bad not in log, "no %s report in the node log" % bad)
    return c.result()


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    with rnnode.Env("hostile") as E:
        for tag, marker in SMUGGLE:
            t.run("T01 smuggling X%s: refused, closed, nothing spooled" % tag.replace(
                ".", "<.>"), case_smuggle, E, tag, marker)
        for name, raw, ehlo_first in BARE_CMDS:
            t.run("T02 bare CR/LF in command: %s" % name, case_bare_cmd, E, raw, ehlo_first)
        t.run("T05 legal pipelined MAIL/RCPT/RCPT/DATA: four replies, one message",
              case_pipelining, E)
        t.run("T06 512-octet command accepted, 513 refused", case_line_512, E)
        t.run("T06 4096-octet line with QUIT at 512/1024/2048/4090: one 500, QUIT never runs",
              case_line_4096, E)
        t.run("T06 2 MiB without LF: error, close, RSS flat", case_2mib_no_lf, E)
        t.run("T06 65-octet local part / 300-octet path refused", case_local_part, E)
        t.run("T09 NUL or CR inside <> -> 501", case_nul_cr, E)
        t.run("T09 xtext parameters never put CR/LF into the spool", case_param_injection, E)
        t.run("T07 201st recipient -> 452 4.5.3, DATA for the 200", case_recipient_limit, E)
        t.run("node healthy after the hostile input", case_node_healthy, E)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
