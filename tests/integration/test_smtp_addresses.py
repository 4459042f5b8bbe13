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
from rnnode import (NO_DEFAULT, NO_RELAY, RCPT_OK, Check, Client, eventually,  # noqa: E402
                    queued_id, send_tagged)

ROUTED = ['user%outside.example@example.com', 'outside.example!user@example.com',
          '"user@outside.example"@example.com', '"user%outside.example"@example.com',
          'USER%outside.example@internal.example.com']


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


def check_sent(c, m, rcpt_want, spooled_want):
    """One send_tagged result: each RCPT reply as wanted (a list of (rcpt, reply) pairs),
    DATA queued, and the one spool file's recipients."""
    c.eq(m["mail"], "250 2.1.0 Sender OK", "MAIL")
    for (r, want), got in zip(rcpt_want, m["rcpt"]):
        c.eq(got, want, "RCPT TO:<%s>" % r)
    c.true(queued_id(m["final"]), "DATA queued", m["final"])
    c.eq(m["spooled"], spooled_want, "the one spooled message's recipients")


def case_bare_postmaster(E):
    c = Check()
    m = send_tagged(E, "127.0.0.1", ["postmaster", "PostMaster"], "pm")
    check_sent(c, m, [("postmaster", RCPT_OK), ("PostMaster (any case)", RCPT_OK)],
               ["postmaster@example.com"] * 2)
    # a bare local part other than postmaster stays a syntax error
    r = rcpt_reply(E, "alice")
    c.true(r.startswith("501 5.1.3"), "RCPT TO:<alice> -> 501 5.1.3", r)
    return c.result()


def case_no_default(E):
    c = Check()
    set_default(E, "example.com", None)
    c.true(eventually(lambda: rcpt_reply(E, "postmaster") == NO_DEFAULT, 15),
           "no default accepted domain: %r" % NO_DEFAULT, rcpt_reply(E, "postmaster"))
    c.true(eventually(lambda: "rcpt-refused rcpt=<postmaster> reason=no-default-accepted-domain" in E.node.log(), 10),
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


def case_routing(E, source, reply, spooled):
    """Every ROUTED recipient answered `reply` for a session from source, then a plain
    quoted local part (250); `spooled` is what the one message must hold."""
    c = Check()
    plain = '"alice smith"@example.com'
    m = send_tagged(E, source, ROUTED + [plain], "route")
    check_sent(c, m, [(r, reply) for r in ROUTED] + [(plain, RCPT_OK)], spooled)
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
        t.ok(eventually(lambda: rcpt_reply(E, "nobody.%d@example.com" % os.getpid()) == RCPT_OK, 15),
             "example.com's recipient lookup off (relayAddressBookEnabled FALSE)")
        t.run("RCPT TO:<postmaster> -> postmaster@ the default accepted domain",
              case_bare_postmaster, E)
        t.run("sender-specified routing refused without Accept-Any-Recipient",
              case_routing, E, "127.0.0.1", NO_RELAY, ['"alice smith"@example.com'])
        t.run("sender-specified routing accepted with Accept-Any-Recipient",
              case_routing, E, "127.0.2.55", RCPT_OK, ROUTED + ['"alice smith"@example.com'])
        t.run("no default accepted domain: 550 5.1.1, logged", case_no_default, E)
        t.run("two default accepted domains: ambiguous, refused", case_two_defaults, E)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
