#!/usr/bin/env python3
"""The permission model at every SMTP stage, against a real node and the example org.

Clients are emulated by source address on lo: 127.0.0.1 and 127.0.2.60 land on
"Default node1" (anonymous), 127.0.2.55/.56 on "CRM Application" (Option 1: Externally
Secured; Option 2 after deploy/example/option2.ldif), ::1 on Default over IPv6. Rights are
changed with ldapmodify + SIGHUP and the tests poll until the node applies them.
Exact replies from docs/permission-model.md §6.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402
from rnnode import (NO_RELAY, RCPT_OK, SENDER_OK, Check, Client, eventually,  # noqa: E402
                    queued_id, reply_str, tag)

ANON_SEND_AS = "550 5.7.1 Anonymous client does not have permissions to send as this sender"
NOT_AUTH = "530 5.7.1 Client was not authenticated"
ADS = "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender"
SUBMIT = "ms-Exch-SMTP-Submit"


def spooled(E, marker):
    return len(rnnode.spool_find(E.spool_dir, marker))


def listed(E, marker):
    return [l for l in E.node.list_spool().splitlines() if marker in l]


def transaction(E, source, sender, rcpts, headers=(), subject=None, host="127.0.0.1"):
    """One raw transaction; returns (replies, subject marker)."""
    subject = subject or tag("msg")
    msg = "\r\n".join(list(headers) + ["From: <%s>" % sender, "To: <%s>" % rcpts[0],
                                       "Subject: %s" % subject]) + "\r\n\r\nbody\r\n"
    with Client(host, E.smtp_port, source=source) as cl:
        return cl.send_message(sender, rcpts, msg), subject


# -- base configuration ---------------------------------------------------------------
def case_default_basic(E):
    c = Check()
    s = tag("basic")
    with rnnode.smtp("127.0.0.1", E.smtp_port, source="127.0.0.1") as m:
        m.ehlo("client.test")
        c.eq(reply_str(m.mail("%s@outside.example" % s)), SENDER_OK, "MAIL")
        c.eq(reply_str(m.rcpt("alice@example.com")), RCPT_OK, "RCPT alice@example.com")
        c.eq(reply_str(m.rcpt("x@outside.example")), NO_RELAY, "RCPT x@outside.example")
        r = reply_str(m.data(rnnode.message("%s@outside.example" % s, "alice@example.com", s)))
        c.true(queued_id(r), "DATA -> 250 2.6.0 <id> Queued mail for delivery", r)
    c.eq(len(listed(E, s)), 1, "--list-spool lists the message once")
    c.eq(spooled(E, s), 1, "one spool file")
    return c.result()


def case_accepted_domains(E):
    c = Check()
    with Client("127.0.0.1", E.smtp_port, source="127.0.0.1") as cl:
        cl.ehlo()
        c.eq(cl.cmd("MAIL FROM:<d@outside.example>"), SENDER_OK, "MAIL")
        for r in ("bob@internal.example.com", "carol@partner.example.net", "ALICE@EXAMPLE.COM"):
            c.eq(cl.cmd("RCPT TO:<%s>" % r), RCPT_OK, "RCPT %s (accepted domain)" % r)
        for r in ("x@sub.example.com", "x@example.com.evil.example", "x@example.net"):
            c.eq(cl.cmd("RCPT TO:<%s>" % r), NO_RELAY, "RCPT %s (not accepted)" % r)
    return c.result()


def case_internal_sender_allowed(E):
    c = Check()
    r, s = transaction(E, "127.0.0.1", "alice@example.com", ["bob@example.com"])
    c.eq(r[1:3], [SENDER_OK, RCPT_OK], "MAIL/RCPT")
    c.true(queued_id(r[-1]), "anonymous MAIL FROM:<alice@example.com> accepted (ADS right)", r)
    c.eq(spooled(E, s), 1, "spooled")
    return c.result()


def case_swaks_default_refused(E):
    c = Check()
    rc, out = rnnode.swaks("127.0.0.1", E.smtp_port, "app@outside.example", "x@outside.example",
                           local_interface="127.0.0.1")
    lines = rnnode.swaks_replies(out)
    c.true(NO_RELAY in lines, "swaks sees %r" % NO_RELAY, out)
    c.true(rc != 0, "swaks exit status non-zero", rc)
    return c.result()


def crm_headers(s):
    return ["Received: from app.crm.example ([192.0.2.1]) by gw.crm.example; %s" % s,
            "X-MS-Exchange-Organization-Foo: org-%s" % s,
            "X-Relaynode-Organization-Foo: rn-%s" % s,
            "X-Kept: kept-%s" % s]


def crm_relay(E, source, want_auth, want_bypass):
    """Relay from a CRM address with swaks and inspect the spooled message."""
    c = Check()
    s = tag("crm")
    extra = ["--header", "Subject: %s" % s]
    for h in crm_headers(s):
        extra += ["--add-header", h]
    rc, out = rnnode.swaks("127.0.0.1", E.smtp_port, "app@outside.example", "x@outside.example",
                           local_interface=source, extra=extra)
    lines = rnnode.swaks_replies(out)
    c.true(RCPT_OK in lines, "RCPT x@outside.example accepted (relay)", lines)
    c.true(any(queued_id(l) for l in lines), "queued", lines)
    c.eq(rc, 0, "swaks exit status")
    files = rnnode.spool_find(E.spool_dir, s)
    if not c.eq(len(files), 1, "one spool file"):
        return c.result()
    data = list(files.values())[0]
    c.true(("gw.crm.example; %s" % s).encode() in data, "client Received: kept")
    c.true(("X-Kept: kept-%s" % s).encode() in data, "ordinary header kept")
    c.true(("org-%s" % s).encode() not in data, "X-MS-Exchange-Organization-Foo stripped")
    c.true(("rn-%s" % s).encode() not in data, "X-Relaynode-Organization-Foo stripped")
    auth, bypass = E.auth_facts(s, data)
    c.eq(auth, want_auth, "AuthAs")
    c.eq(bypass, want_bypass, "anti-spam bypass")
    for m in rnnode.spool_messages(E.spool_dir, s).values():
        c.true("CRM Application" in ((m or {}).get("connector") or ""), "connector recorded",
               (m or {}).get("connector"))
        c.eq((m or {}).get("client_ip"), source, "client IP recorded")
    return c.result()


def case_crm_56_smtplib(E, want_auth):
    c = Check()
    s = tag("crm56")
    with rnnode.smtp("127.0.0.1", E.smtp_port, source="127.0.2.56") as m:
        m.ehlo("crm2.test")
        c.eq(reply_str(m.mail("app@outside.example")), SENDER_OK, "MAIL")
        c.eq(reply_str(m.rcpt("x@outside.example")), RCPT_OK, "RCPT x@outside.example")
        r = reply_str(m.data(rnnode.message("app@outside.example", "x@outside.example", s)))
        c.true(queued_id(r), "queued", r)
    files = rnnode.spool_find(E.spool_dir, s)
    if c.eq(len(files), 1, "one spool file"):
        c.eq(E.auth_facts(s, list(files.values())[0])[0], want_auth, "AuthAs")
    return c.result()


def case_outside_crm_range(E):
    c = Check()
    r, s = transaction(E, "127.0.2.60", "app@outside.example",
                       ["x@outside.example"])
    c.eq(r[1:3], [SENDER_OK, NO_RELAY], "127.0.2.60 is on Default: relay refused")
    c.eq(spooled(E, s), 0, "nothing spooled")
    return c.result()


def case_ipv6(E):
    c = Check()
    with Client("::1", E.smtp_port) as cl:
        c.true(cl.banner[-1].startswith("220 "), "banner on [::1]", cl.banner)
        c.true(cl.ehlo()[-1].startswith("250 "), "EHLO over IPv6")
        c.eq(cl.cmd("MAIL FROM:<v6@outside.example>"), SENDER_OK, "MAIL")
        c.eq(cl.cmd("RCPT TO:<x@outside.example>"), NO_RELAY, "relay refused from ::1")
        c.eq(cl.cmd("RCPT TO:<alice@example.com>"), RCPT_OK, "local recipient from ::1")
    return c.result()


def case_submission_anonymous(E):
    c = Check()
    with Client("127.0.0.1", E.sub_port, source="127.0.0.1") as cl:
        cl.ehlo()
        cl.send_raw("MAIL FROM:<a@outside.example>\r\n")
        rest = cl.replies_until_close(5)
    c.eq(rest, [NOT_AUTH], "anonymous MAIL on Client node1 (ExchangeUsers only), then close")
    return c.result()


# -- changed rights ---------------------------------------------------------------------
def anon_send_as_denied(E):
    r, _ = transaction(E, "127.0.0.1", "alice@example.com", ["bob@example.com"])
    return r[-1] == ANON_SEND_AS


def case_revoke_ads(E, held):
    """held: a Client opened (and used once) before the change."""
    c = Check()
    E.set_anonymous_rights("Default node1", remove=[ADS])
    E.node.reload()
    c.true(eventually(lambda: anon_send_as_denied(E), 15), "reload applied within 15 s")
    r, s = transaction(E, "127.0.0.1", "alice@example.com", ["bob@example.com"])
    c.eq(r[1:3], [SENDER_OK, RCPT_OK], "MAIL/RCPT still 250 (the check is at end of DATA)")
    c.eq(r[-1], ANON_SEND_AS, "P1 alice@example.com: final DATA reply")
    c.eq(spooled(E, s), 0, "refused message not spooled")
    c.eq(listed(E, s), [], "refused message not listed")
    # P2: envelope sender outside, From: header internal.
    s2 = tag("p2")
    with Client("127.0.0.1", E.smtp_port, source="127.0.0.1") as cl:
        cl.ehlo()
        cl.cmd("MAIL FROM:<app@outside.example>")
        cl.cmd("RCPT TO:<bob@example.com>")
        _, fin = cl.data("From: Alice <alice@example.com>\r\nSubject: %s\r\n\r\nx\r\n" % s2)
    c.eq(fin, ANON_SEND_AS, "P2 From: alice@example.com")
    c.eq(spooled(E, s2), 0, "P2-refused message not spooled")
    # control: nothing internal anywhere -> accepted
    r, s3 = transaction(E, "127.0.0.1", "app@outside.example", ["bob@example.com"])
    c.true(queued_id(r[-1]), "outside sender and From: still accepted", r)
    # the session opened before the change: its next MAIL uses the new snapshot
    s4 = tag("held")
    c.eq(held.cmd("MAIL FROM:<alice@example.com>"), SENDER_OK, "held session MAIL")
    c.eq(held.cmd("RCPT TO:<bob@example.com>"), RCPT_OK, "held session RCPT")
    _, fin = held.data("From: <alice@example.com>\r\nSubject: %s\r\n\r\nx\r\n" % s4)
    c.eq(fin, ANON_SEND_AS, "session open across the reload: next MAIL is refused")
    c.eq(spooled(E, s4), 0, "not spooled")
    return c.result()


def case_restore_ads(E):
    c = Check()
    E.set_anonymous_rights("Default node1", add=[ADS])
    E.node.reload()
    ok = eventually(lambda: queued_id(transaction(E, "127.0.0.1", "alice@example.com",
                                                  ["bob@example.com"])[0][-1]), 15)
    c.true(ok, "right restored: alice@example.com accepted again")
    return c.result()


def case_submit_missing(E):
    c = Check()
    E.set_anonymous_rights("Default node1", remove=[SUBMIT])
    E.node.reload()

    def refused():
        with Client("127.0.0.1", E.smtp_port, source="127.0.0.1") as cl:
            cl.ehlo()
            cl.send_raw("MAIL FROM:<a@outside.example>\r\n")
            return cl.replies_until_close(5)
    rest = eventually(lambda: (lambda r: r if r == [NOT_AUTH] else None)(refused()), 15)
    c.eq(rest, [NOT_AUTH], "MAIL without Submit: 530, then close")
    rc, out = rnnode.swaks("127.0.0.1", E.smtp_port, "a@outside.example", "alice@example.com",
                           local_interface="127.0.0.1")
    c.true(NOT_AUTH in rnnode.swaks_replies(out), "swaks sees %r" % NOT_AUTH, out)
    # the CRM connector is unaffected (its own ACEs)
    r, s = transaction(E, "127.0.2.55", "app@outside.example", ["x@outside.example"])
    c.true(queued_id(r[-1]), "CRM still relays", r)
    E.set_anonymous_rights("Default node1", add=[SUBMIT])
    E.node.reload()
    ok = eventually(lambda: queued_id(transaction(E, "127.0.0.1", "a@outside.example",
                                                  ["alice@example.com"])[0][-1]), 15)
    c.true(ok, "Submit restored")
    return c.result()


def case_option2(E):
    c = Check()
    E.ldapmodify_file(os.path.join(E.root, "deploy", "example", "option2.ldif"))
    E.node.reload()

    def anon():
        r, s = transaction(E, "127.0.2.55", "app@outside.example", ["x@outside.example"])
        f = rnnode.spool_find(E.spool_dir, s)
        return f and E.auth_facts(s, list(f.values())[0])[0] == "Anonymous"
    c.true(eventually(anon, 15), "Option 2 applied within 15 s")
    return c.result()


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    with rnnode.Env("policy") as E:
        t.run("Default/anonymous: MAIL, local RCPT, relay refused, DATA queued and listed",
              case_default_basic, E)
        t.run("accepted domains (Authoritative, InternalRelay, ExternalRelay) need no relay",
              case_accepted_domains, E)
        t.run("anonymous MAIL FROM:<alice@example.com> allowed (Accept-Authoritative-Domain-"
              "Sender)", case_internal_sender_allowed, E)
        t.run("swaks from 127.0.0.1: 550 5.7.1 Unable to relay", case_swaks_default_refused, E)
        t.run("CRM Option 1 (127.0.2.55, swaks): relays, AuthAs Internal, bypass, header "
              "firewall", crm_relay, E, "127.0.2.55", "Internal", True)
        t.run("CRM Option 1 (127.0.2.56, smtplib): relays", case_crm_56_smtplib, E, "Internal")
        t.run("127.0.2.60 (outside CRM ranges) -> Default, relay refused",
              case_outside_crm_range, E)
        t.run("IPv6 ::1 -> Default, relay refused", case_ipv6, E)
        t.run("submission port: anonymous MAIL -> 530 5.7.1 and close",
              case_submission_anonymous, E)
        held = Client("127.0.0.1", E.smtp_port, source="127.0.0.1")
        try:
            held.ehlo()
            r = held.send_message("alice@example.com", ["bob@example.com"],
                                  "Subject: %s\r\n\r\nx\r\n" % tag("held0"))
            t.ok(queued_id(r[-1]), "held session: first transaction before the change", r)
            t.run("revoke Accept-Authoritative-Domain-Sender from ANONYMOUS (ldapmodify + "
                  "SIGHUP): P1, P2, held session", case_revoke_ads, E, held)
        finally:
            held.close()
        t.run("restore Accept-Authoritative-Domain-Sender", case_restore_ads, E)
        t.run("ANONYMOUS without Submit: MAIL -> 530 5.7.1 and close", case_submit_missing, E)
        t.run("option2.ldif + SIGHUP applied", case_option2, E)
        t.run("CRM Option 2: relays, AuthAs Anonymous, no bypass, Received kept",
              crm_relay, E, "127.0.2.55", "Anonymous", False)
        t.run("127.0.2.60 still refused after Option 2", case_outside_crm_range, E)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
