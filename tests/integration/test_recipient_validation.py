#!/usr/bin/env python3
"""Recipient lookup for Authoritative accepted domains (issue 14), over real SMTP against a
real node and a throwaway slapd with the example organisation.

Exchange's recipient lookup: a recipient in an Authoritative domain with AddressBookEnabled
must be the `mail` or a proxy address (here `relayMailAlias`) of a mail-enabled user or
group, else `550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address
lookup`; InternalRelay and ExternalRelay domains are not looked up; relayAddressBookEnabled
FALSE turns it off. The set comes with the snapshot: a change made with ldapmodify is
enforced without a restart or SIGHUP, and a directory outage keeps the last set (schema/README.md,
docs/permission-model.md §6).
"""
import json
import os
import re
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402
from rnnode import Check, Client, eventually, queued_id  # noqa: E402

RCPT_OK = "250 2.1.5 Recipient OK"
NOT_FOUND = ("550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address "
             "lookup")
NO_RELAY = "550 5.7.1 Unable to relay"
SUFFIX = "dc=example,dc=com"
DOMAIN_DN = "cn=example.com,cn=Accepted Domains,ou=Relay," + SUFFIX
BUILD = os.environ.get("RELAYNODE_BUILD") or os.path.join(rntest.ROOT, "build")
RELAYCTL = os.path.join(BUILD, "relayctl")

# A mail-enabled group (groupOfNames + relayMailUser) with a proxy address, nesting Sales:
# its own addresses are recipients; its members are not expanded.
GROUP_LDIF = """dn: cn=Support,ou=Groups,dc=example,dc=com
objectClass: groupOfNames
objectClass: relayMailUser
cn: Support
mail: support@example.com
relayMailAlias: helpdesk@example.com
member: cn=Sales,ou=Groups,dc=example,dc=com
"""


def rcpts(E, addrs, source="127.0.0.1"):
    """RCPT replies for addrs in one anonymous transaction on Default node1."""
    with Client("127.0.0.1", E.smtp_port, source=source) as cl:
        cl.ehlo()
        r = cl.cmd("MAIL FROM:<sender@outside.example>")
        if not r.startswith("250"):
            return ["MAIL: " + r]
        return [cl.cmd("RCPT TO:<%s>" % a) for a in addrs]


def rcpt(E, addr):
    return rcpts(E, [addr])[0]


def case_unknown_refused(E):
    c = Check()
    for a in ("nobody@example.com", "alice2@example.com", "NOBODY@EXAMPLE.COM",
              "bob.smith@example.com"):
        c.eq(rcpt(E, a), NOT_FOUND, "RCPT %s (unknown, Authoritative)" % a)
    # The refusal is per recipient: the session goes on, a known one is then accepted.
    got = rcpts(E, ["nobody@example.com", "alice@example.com"])
    c.eq(got, [NOT_FOUND, RCPT_OK], "unknown then known in one transaction")
    c.true(E.node.wait_log("rcpt-refused rcpt=nobody@example.com reason=recipient-not-found"),
           "the refusal is logged with the recipient", E.node.log_tail(20))
    return c.result()


def case_known_accepted(E):
    c = Check()
    for a in ("alice@example.com", "ALICE@Example.COM", "a.smith@example.com",
              "bob@example.com", "carol@example.com", "support@example.com",
              "helpdesk@example.com", "postmaster@example.com", "PostMaster@EXAMPLE.com"):
        c.eq(rcpt(E, a), RCPT_OK, "RCPT %s (known: mail, alias, group, proxy, postmaster)" % a)
    # A member of the nested group is a recipient only through its own entry; the group's
    # name is no address.
    c.eq(rcpt(E, "sales@example.com"), NOT_FOUND, "a group without mail is no recipient")
    # And a message to known ones is queued, to the addresses as given.
    with Client("127.0.0.1", E.smtp_port, source="127.0.0.1") as cl:
        cl.ehlo()
        r = cl.send_message("s@outside.example", ["a.smith@example.com", "helpdesk@example.com"],
                            "Subject: rv-known\r\n\r\nx\r\n")
    c.true(queued_id(r[-1]), "DATA to an alias and a group proxy address queued", r)
    return c.result()


def case_relay_domains_not_checked(E):
    c = Check()
    for a in ("anyone@internal.example.com", "x.y.z@internal.example.com",
              "anyone@partner.example.net"):
        c.eq(rcpt(E, a), RCPT_OK, "RCPT %s (InternalRelay / ExternalRelay: any local part)" % a)
    c.eq(rcpt(E, "nobody@outside.example"), NO_RELAY, "outside domains still need the right")
    return c.result()


def set_address_book(E, value):
    E.ldapmodify("dn: %s\nchangetype: modify\nreplace: relayAddressBookEnabled\n"
                 "relayAddressBookEnabled: %s\n-\n" % (DOMAIN_DN, value))


def case_address_book_off(E):
    c = Check()
    set_address_book(E, "FALSE")
    got = eventually(lambda: rcpt(E, "whoever@example.com") == RCPT_OK, timeout=8)
    c.true(got, "relayAddressBookEnabled FALSE (ldapmodify, no SIGHUP): any local part",
           rcpt(E, "whoever@example.com"))
    c.eq(rcpt(E, "alice@example.com"), RCPT_OK, "known still accepted with lookup off")
    # relayctl writes the same attribute (Set-AcceptedDomain -AddressBookEnabled).
    rc, out, err = rntest.run([RELAYCTL, "domain", "set", "example.com", "--config", E.conf,
                               "--bind-dn", "cn=admin," + SUFFIX, "--password-file",
                               os.path.join(E.dir, "admin.pw"), "--address-book-enabled",
                               "true"])
    c.true(rc == 0, "relayctl domain set example.com --address-book-enabled true", out + err)
    got = eventually(lambda: rcpt(E, "whoever@example.com") == NOT_FOUND, timeout=8)
    c.true(got, "lookup back on: unknown refused again", rcpt(E, "whoever@example.com"))
    rc, out, err = rntest.run([RELAYCTL, "domain", "list", "--config", E.conf, "--json"])
    try:
        book = {d["DomainName"]: d["AddressBookEnabled"] for d in json.loads(out)}
    except (ValueError, KeyError, TypeError):
        book = None
    c.eq(book, {"example.com": True, "internal.example.com": False,
                "partner.example.net": False},
         "relayctl domain list --json: AddressBookEnabled (effective) per domain")
    set_address_book(E, "FALSE")
    rc, out, err = rntest.run([RELAYCTL, "domain", "list", "--config", E.conf])
    c.true(rc == 0 and re.search(r"example\.com\s+example\.com\s+Authoritative\s+\S+\s+False", out),
           "relayctl domain list shows False after ldapmodify", out + err)
    set_address_book(E, "TRUE")
    # New-AcceptedDomain -AddressBookEnabled $false: a second Authoritative domain whose
    # mailboxes the directory does not hold; the lookup stays on for example.com.
    admin = ["--config", E.conf, "--bind-dn", "cn=admin," + SUFFIX, "--password-file",
             os.path.join(E.dir, "admin.pw")]
    rc, out, err = rntest.run([RELAYCTL, "domain", "new", "lab.example.org", "--domain-name",
                               "lab.example.org", "--type", "Authoritative",
                               "--address-book-enabled", "false"] + admin)
    c.true(rc == 0, "relayctl domain new ... --address-book-enabled false", out + err)
    got = eventually(lambda: rcpts(E, ["anyone@lab.example.org", "whoever@example.com"]) ==
                     [RCPT_OK, NOT_FOUND], timeout=8)
    c.true(got, "the new domain takes any local part; example.com still looks up",
           rcpts(E, ["anyone@lab.example.org", "whoever@example.com"]))
    rc, out, err = rntest.run([RELAYCTL, "domain", "set", "lab.example.org",
                               "--address-book-enabled", "maybe"] + admin)
    c.true(rc == 2 and "true or false" in err, "a value other than true/false: usage error",
           out + err)
    return c.result()


def case_ldapmodify_enforced(E):
    c = Check()
    c.eq(rcpt(E, "dave@example.com"), NOT_FOUND, "dave is unknown before the change")
    E.ldapmodify("dn: uid=dave,ou=People,%s\nobjectClass: inetOrgPerson\n"
                 "objectClass: relayMailUser\nuid: dave\ncn: Dave\nsn: Jones\n"
                 "mail: dave@example.com\nrelayMailAlias: d.jones@example.com\n" % SUFFIX,
                 add=True)
    # Within the watcher's reaction time, well under its 10 s poll safety net.
    got = eventually(lambda: rcpts(E, ["dave@example.com", "d.jones@example.com"]) ==
                     [RCPT_OK, RCPT_OK], timeout=5)
    c.true(got, "a new user (ldapadd, no SIGHUP) is accepted by mail and alias",
           rcpts(E, ["dave@example.com", "d.jones@example.com"]))
    # A removed address is refused again: carol's mail goes.
    E.ldapmodify("dn: uid=carol,ou=People,%s\nchangetype: modify\ndelete: mail\n-\n" % SUFFIX)
    got = eventually(lambda: rcpt(E, "carol@example.com") == NOT_FOUND, timeout=5)
    c.true(got, "a deleted mail value is refused (ldapmodify, no SIGHUP)",
           rcpt(E, "carol@example.com"))
    c.true(E.node.alive(), "the node was never restarted")
    return c.result()


def case_explain(E):
    c = Check()
    rc, out, err = rntest.run([RELAYCTL, "explain", "--config", E.conf, "--local",
                               "127.0.0.1:%d" % E.smtp_port, "--remote", "127.0.0.1",
                               "--from", "s@outside.example", "--to", "nobody@example.com",
                               "--to", "helpdesk@example.com"])
    c.true(rc == 1, "explain exits 1 (a recipient is refused)", out + err)
    c.true(NOT_FOUND in out, "explain prints the 5.1.10 reply for the unknown recipient", out)
    c.true("no mail-enabled object" in out, "explain says why", out)
    c.true("mail-enabled object in the directory" in out and RCPT_OK in out,
           "explain accepts the group's proxy address", out)
    return c.result()


def case_outage_keeps_set(E):
    c = Check()
    pid = int(open(os.path.join(E.dir, "slapd.pid")).read().strip())
    os.kill(pid, signal.SIGTERM)
    c.true(eventually(lambda: not rntest.pid_alive(pid), 10), "slapd stopped")
    E.node.reload(0)
    c.true(eventually(lambda: "keeping=last-good" in E.node.log(), 10),
           "the load failed: the last good snapshot serves", E.node.log_tail(5))
    # No directory round trip per RCPT: answers come from the last snapshot, both ways.
    c.eq(rcpts(E, ["alice@example.com", "dave@example.com", "nobody@example.com",
                   "carol@example.com"]),
         [RCPT_OK, RCPT_OK, NOT_FOUND, NOT_FOUND],
         "directory down: the last known set answers, unknown still refused (fail closed)")
    return c.result()


def main():
    if rnnode.missing_node():
        return 1
    import tempfile
    t = rntest.Tap()
    d = tempfile.mkdtemp(prefix="rn-rv-")
    group = os.path.join(d, "group.ldif")
    with open(group, "w") as f:
        f.write(GROUP_LDIF)
    with rnnode.Env("recipient-validation", ldifs=[group]) as E:
        t.run("unknown recipient in an Authoritative domain: exact 550 5.1.10",
              case_unknown_refused, E)
        t.run("known recipients: mail, alias, group mail and proxy address, postmaster",
              case_known_accepted, E)
        t.run("InternalRelay and ExternalRelay domains are not looked up",
              case_relay_domains_not_checked, E)
        t.run("relayAddressBookEnabled FALSE passes any local part; relayctl turns it back on",
              case_address_book_off, E)
        t.run("ldapadd of a user and ldapmodify of a mail are enforced without restart",
              case_ldapmodify_enforced, E)
        t.run("relayctl explain shows the recipient lookup", case_explain, E)
        t.run("directory outage: the last known set answers", case_outage_keeps_set, E)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
