#!/usr/bin/env python3
"""SMTP AUTH logins are only ever values for user_filter (issue #4: "the user's entry is found
by a configurable filter ... exactly one match or failure").

A login that happens to parse as a DN must not name an entry directly: that would skip
user_filter and user_base, and with them whatever restriction an administrator wrote into
the filter (a disabled flag, a group). Conversely a login holding '=' (legal in a mail
address) is a filter value like any other. Real node, real slapd, the example organisation.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402
from rnnode import AUTH_BAD, OK_AUTH, Check, eventually, tls_auth_reply  # noqa: E402

PW = rnnode.example_passwords()
src = rnnode.Sources("127.0.6")


def auth(E, user, pw, authzid=""):
    """The reply to AUTH PLAIN after STARTTLS on the submission connector."""
    return tls_auth_reply(E, user, pw, src(), authzid)


def case_dn_login(E):
    c = Check()
    c.eq(auth(E, "alice", PW["alice"]), OK_AUTH, "alice by uid")
    c.eq(auth(E, E.slapd.user_dn("alice"), PW["alice"]), AUTH_BAD,
         "alice by her DN (right password): not a filter value, 535")
    c.true(eventually(lambda: "no such user" in E.node.log(), 10), "logged as no such user",
           E.node.log_tail(5))
    return c.result()


def case_equals_in_mail(E):
    c = Check()
    E.ldapmodify("dn: %s\nchangetype: modify\nadd: mail\nmail: bob=sales@example.com\n"
                 % E.slapd.user_dn("bob"))
    c.eq(auth(E, "bob=sales@example.com", PW["bob"]), OK_AUTH,
         "bob by a mail address holding '=' (user_filter mail=%s)")
    return c.result()


def case_authzid(E):
    """PLAIN's authorization identity: only the user's own (or none) is accepted."""
    c = Check()
    c.eq(auth(E, "alice", PW["alice"], authzid="alice"), OK_AUTH, "authzid = authcid")
    c.eq(auth(E, "alice", PW["alice"], authzid="bob"), AUTH_BAD,
         "alice's credentials asking to act as bob: 535")
    return c.result()


def case_filter_restriction(E):
    """An administrator excludes carol in user_filter: neither her uid nor her DN logs in."""
    c = Check()
    with open(E.conf, "a") as f:
        f.write("user_filter = (&(uid=%s)(!(uid=carol)))\n")
    E.node.stop()
    E.node.start()
    c.eq(auth(E, "alice", PW["alice"]), OK_AUTH, "alice still logs in")
    c.eq(auth(E, "carol", PW["carol"]), AUTH_BAD, "carol by uid: excluded by the filter")
    c.eq(auth(E, E.slapd.user_dn("carol"), PW["carol"]), AUTH_BAD,
         "carol by her DN: the filter cannot be bypassed")
    return c.result()


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    with rnnode.Env("auth_login") as E:
        t.run("a login that parses as a DN is a filter value, not an entry", case_dn_login, E)
        t.run("a login holding '=' (mail address) is found by user_filter",
              case_equals_in_mail, E)
        t.run("AUTH PLAIN with another user's authzid is refused", case_authzid, E)
        t.run("user_filter restrictions hold for DN-shaped logins", case_filter_restriction, E)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
