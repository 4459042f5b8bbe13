#!/usr/bin/env python3
"""Recipient addresses over real SMTP (issue 13, "Addresses").

1. RCPT TO:<postmaster> without a domain (RFC 5321 §4.5.1, any case) is accepted and
   spooled as postmaster@ the default accepted domain (relayDefaultDomain, Exchange's
   Default accepted domain); with no default, or with two (ambiguous), it gets 550 5.1.1
   and a log line.
2. Sender-specified routing in an accepted domain (user%host@, host!user@, "user@host"@,
   "user%host"@) is refused with 550 5.7.1 Unable to relay for a session without
   ms-Exch-SMTP-Accept-Any-Recipient (127.0.0.1 -> Default node1, anonymous) and accepted
   for one that has it (127.0.2.55 -> CRM Application, Externally Secured Servers).
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402
from rnnode import Check, Client, eventually, queued_id  # noqa: E402

RCPT_OK = "250 2.1.5 Recipient OK"
NO_RELAY = "550 5.7.1 Unable to relay"
NO_DEFAULT = ("550 5.1.1 Recipient <postmaster> has no domain and no default accepted domain "
              "is configured")
ROUTED = ['user%outside.example@example.com', 'outside.example!user@example.com',
          '"user@outside.example"@example.com', '"user%outside.example"@example.com',
          'USER%outside.example@internal.example.com']
PID = os.getpid()
_seq = [0]


def tag(prefix):
    _seq[0] += 1
    return "%s-%d-%d" % (prefix, PID, _seq[0])


def domain_dn(E, name):
    return "cn=%s,cn=Accepted Domains,%s" % (name, E.slapd.relay_base)


def set_default(E, name, value):
    """value True/False, or None to delete relayDefaultDomain from the domain's entry."""
    if value is None:
        ldif = "dn: %s\nchangetype: modify\ndelete: relayDefaultDomain\n" % domain_dn(E, name)
    else:
        ldif = ("dn: %s\nchangetype: modify\nreplace: relayDefaultDomain\n"
                "relayDefaultDomain: %s\n" % (domain_dn(E, name), "TRUE" if value else "FALSE"))
    E.ldapmodify(ldif)
    E.node.reload()


def rcpt_reply(E, rcpt, source="127.0.0.1"):
    with Client("127.0.0.1", E.smtp_port, source=source) as cl:
        cl.ehlo()
        cl.cmd("MAIL FROM:<app@outside.example>")
        return cl.cmd("RCPT TO:<%s>" % rcpt)


def case_bare_postmaster(E):
    c = Check()
    s = tag("pm")
    with Client("127.0.0.1", E.smtp_port, source="127.0.0.1") as cl:
        cl.ehlo()
        c.eq(cl.cmd("MAIL FROM:<app@outside.example>"), "250 2.1.0 Sender OK", "MAIL")
        c.eq(cl.cmd("RCPT TO:<postmaster>"), RCPT_OK, "RCPT TO:<postmaster>")
        c.eq(cl.cmd("RCPT TO:<PostMaster>"), RCPT_OK, "RCPT TO:<PostMaster> (any case)")
        _, fin = cl.data("From: <app@outside.example>\r\nSubject: %s\r\n\r\nx\r\n" % s)
        c.true(queued_id(fin), "DATA queued", fin)
    msgs = list(rnnode.spool_messages(E.spool_dir, s).values())
    if c.eq(len(msgs), 1, "one spooled message"):
        c.eq(msgs[0]["rcpts"], ["postmaster@example.com"] * 2,
             "spooled for the default domain's postmaster")
    # a bare local part other than postmaster stays a syntax error
    r = rcpt_reply(E, "alice")
    c.true(r.startswith("501 5.1.3"), "RCPT TO:<alice> -> 501 5.1.3", r)
    return c.result()


def case_no_default(E):
    c = Check()
    set_default(E, "example.com", None)
    c.true(eventually(lambda: rcpt_reply(E, "postmaster") == NO_DEFAULT, 15),
           "no default accepted domain: %r" % NO_DEFAULT, rcpt_reply(E, "postmaster"))
    c.true("rcpt-refused rcpt=<postmaster> reason=no-default-accepted-domain" in E.node.log(),
           "the refusal is logged")
    c.eq(rcpt_reply(E, "postmaster@example.com"), RCPT_OK, "postmaster@example.com still 250")
    return c.result()


def case_two_defaults(E):
    c = Check()
    set_default(E, "example.com", True)
    c.true(eventually(lambda: rcpt_reply(E, "postmaster") == RCPT_OK, 15), "one default: 250")
    set_default(E, "internal.example.com", True)
    c.true(eventually(lambda: "2 accepted domains are marked default" in E.node.log(), 15),
           "two defaults reported as a config error")
    c.eq(rcpt_reply(E, "postmaster"), NO_DEFAULT, "two defaults (ambiguous): refused")
    set_default(E, "internal.example.com", False)
    c.true(eventually(lambda: rcpt_reply(E, "postmaster") == RCPT_OK, 15),
           "back to one default: 250")
    return c.result()


def case_routing_refused(E):
    c = Check()
    s = tag("route")
    with Client("127.0.0.1", E.smtp_port, source="127.0.0.1") as cl:
        cl.ehlo()
        cl.cmd("MAIL FROM:<app@outside.example>")
        for r in ROUTED:
            c.eq(cl.cmd("RCPT TO:<%s>" % r), NO_RELAY, "anonymous RCPT TO:<%s>" % r)
        c.eq(cl.cmd('RCPT TO:<"alice smith"@example.com>'), RCPT_OK,
             "quoted local part without routing characters: 250")
        _, fin = cl.data("From: <app@outside.example>\r\nSubject: %s\r\n\r\nx\r\n" % s)
        c.true(queued_id(fin), "DATA queued", fin)
    msgs = list(rnnode.spool_messages(E.spool_dir, s).values())
    if c.eq(len(msgs), 1, "one spooled message"):
        c.eq(msgs[0]["rcpts"], ['"alice smith"@example.com'], "only the plain recipient")
    return c.result()


def case_routing_with_right(E):
    c = Check()
    s = tag("route-any")
    with Client("127.0.0.1", E.smtp_port, source="127.0.2.55") as cl:
        cl.ehlo()
        cl.cmd("MAIL FROM:<app@outside.example>")
        for r in ROUTED:
            c.eq(cl.cmd("RCPT TO:<%s>" % r), RCPT_OK, "Accept-Any-Recipient RCPT TO:<%s>" % r)
        _, fin = cl.data("From: <app@outside.example>\r\nSubject: %s\r\n\r\nx\r\n" % s)
        c.true(queued_id(fin), "DATA queued", fin)
    msgs = list(rnnode.spool_messages(E.spool_dir, s).values())
    if c.eq(len(msgs), 1, "one spooled message"):
        c.eq(msgs[0]["rcpts"], ROUTED, "every routed recipient kept as written")
    return c.result()


def main():
    t = rntest.Tap()
    with rnnode.Env("addresses") as E:
        # These cases are about address forms and routing, not recipient lookup
        # (test_recipient_validation.py): example.com's lookup is off here, so a quoted or
        # routed local part reaches the checks under test.
        E.ldapmodify("dn: cn=example.com,cn=Accepted Domains,ou=Relay,dc=example,dc=com\n"
                     "changetype: modify\nreplace: relayAddressBookEnabled\n"
                     "relayAddressBookEnabled: FALSE\n-\n")
        t.ok(eventually(lambda: rcpt_reply(E, "nobody.%d@example.com" % PID) == RCPT_OK, 15),
             "example.com's recipient lookup off (relayAddressBookEnabled FALSE)")
        t.run("RCPT TO:<postmaster> -> postmaster@ the default accepted domain",
              case_bare_postmaster, E)
        t.run("sender-specified routing refused without Accept-Any-Recipient",
              case_routing_refused, E)
        t.run("sender-specified routing accepted with Accept-Any-Recipient",
              case_routing_with_right, E)
        t.run("no default accepted domain: 550 5.1.1, logged", case_no_default, E)
        t.run("two default accepted domains: ambiguous, refused", case_two_defaults, E)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
