#!/usr/bin/env python3
"""relayctl domain set --default (Set-AcceptedDomain -MakeDefault) against a real slapd and a
real node: the default accepted domain (relayDefaultDomain) moves where relayctl says, the
other mark is cleared, and a bare RCPT TO:<postmaster> (RFC 5321 §4.5.1) is then spooled for
the new default over real SMTP; --default=false leaves no default (550 5.1.1). Each refusal
has its exit code (2 usage, 1 refused) and its message, and writes nothing.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402
from rnnode import NO_DEFAULT, Check, eventually, send_tagged  # noqa: E402

DOMAINS = ("example.com", "internal.example.com", "partner.example.net")


def relayctl(E, *args, admin=True):
    """(rc, stdout, stderr) of the real relayctl with the fixture's bootstrap file."""
    argv = [os.path.join(os.path.dirname(rnnode.relaynode_binary()), "relayctl")]
    argv += list(args) + ["--config", E.conf]
    if admin:
        argv += ["--bind-dn", E.slapd.admin_dn, "--password-file", E.slapd.admin_pw_file]
    return rntest.run(argv)


def marks(E):
    """{domain cn: relayDefaultDomain value or None} as the directory holds it."""
    out = {}
    for name in DOMAINS:
        dn = "cn=%s,cn=Accepted Domains,%s" % (name, E.slapd.relay_base)
        e = E.slapd.search(dn, scope="base", bind="admin")
        out[name] = e[0].first("relayDefaultDomain") if e else "missing"
    return out


def bare_postmaster(E):
    """One message to the bare <postmaster>: (RCPT reply, recipients spooled or None)."""
    m = send_tagged(E, "127.0.0.1", ["postmaster"], "dflt")
    return m["rcpt"][0], m["spooled"]


def routes_to(E, domain, timeout=15):
    """True once a bare postmaster is spooled as postmaster@domain (the node reloads)."""
    E.node.reload()
    return eventually(lambda: bare_postmaster(E)[1] == ["postmaster@" + domain], timeout)


def case_refusals(E):
    c = Check()
    before = marks(E)
    c.eq(before["example.com"], "TRUE", "the example marks example.com as the default")
    for args, code, text in [
            (["domain", "set", "internal.example.com"], 2, "nothing to set"),
            (["domain", "set", "internal.example.com", "--default=maybe"], 2,
             "--default 'maybe' is not true or false"),
            (["domain", "set", "--default"], 2, "give exactly one NAME"),
            (["domain", "new", "x", "--domain-name", "x.example", "--type", "Authoritative",
              "--default"], 2, "unexpected option"),
            (["domain", "set", "nowhere.example", "--default"], 1,
             "accepted domain 'nowhere.example' not found"),
            (["domain", "set", "wild", "--default"], 1,
             "is a wildcard and cannot be the default accepted domain")]:
        if args[2:3] == ["wild"] and not c.eq(relayctl(E, "domain", "new", "wild",
                                                       "--domain-name", "*.sub.example.com",
                                                       "--type", "Authoritative")[0], 0,
                                              "domain new wild (*.sub.example.com)"):
            continue
        rc, o, e = relayctl(E, *args)
        c.true(rc == code and text in e, "%s: exit %d, %r" % (" ".join(args), code, text),
               "rc %r\nstdout %s\nstderr %s" % (rc, o, e))
    c.eq(marks(E), before, "the refusals wrote nothing")
    c.eq(relayctl(E, "domain", "remove", "wild")[0], 0, "domain remove wild")
    return c.result()


def case_ldif(E):
    c = Check()
    before = marks(E)
    rc, o, e = relayctl(E, "domain", "set", "internal.example.com", "--default", "--ldif",
                        admin=False)
    want = ["dn: cn=internal.example.com,cn=Accepted Domains,%s" % E.slapd.relay_base,
            "relayDefaultDomain: TRUE",
            "dn: cn=example.com,cn=Accepted Domains,%s" % E.slapd.relay_base,
            "delete: relayDefaultDomain"]
    pos = [o.find(w) for w in want]
    c.true(rc == 0 and -1 not in pos and pos == sorted(pos),
           "--ldif: the new mark first, then the old one deleted", o + e)
    c.eq(marks(E), before, "--ldif writes nothing itself")
    return c.result()


def case_move_default(E):
    c = Check()
    rc, o, e = relayctl(E, "domain", "set", "internal.example.com", "--default")
    c.true(rc == 0 and "changed cn=internal.example.com" in o, "domain set --default", o + e)
    c.eq(marks(E), {"example.com": None, "internal.example.com": "TRUE",
                    "partner.example.net": None}, "one mark, on internal.example.com")
    rc, o, e = relayctl(E, "domain", "list", "--json")
    d = {x["Name"]: x["Default"] for x in json.loads(o)} if rc == 0 else {}
    c.eq(d, {"example.com": False, "internal.example.com": True, "partner.example.net": False},
         "domain list --json: Default")
    c.true(routes_to(E, "internal.example.com"),
           "bare <postmaster> spooled as postmaster@internal.example.com", bare_postmaster(E))
    rc, o, e = relayctl(E, "domain", "set", "internal.example.com", "--default")
    c.true(rc == 0 and "no change" in e, "setting it again: no change", o + e)
    return c.result()


def case_clear_default(E):
    c = Check()
    rc, o, e = relayctl(E, "domain", "set", "internal.example.com", "--default=false")
    c.eq(rc, 0, "domain set --default=false")
    c.eq(set(marks(E).values()), {None}, "no domain is marked")
    E.node.reload()
    c.true(eventually(lambda: bare_postmaster(E)[0] == NO_DEFAULT, 15),
           "no default: bare <postmaster> -> %r" % NO_DEFAULT, bare_postmaster(E))
    rc, o, e = relayctl(E, "domain", "set", "EXAMPLE.COM", "--default=yes")
    c.eq(rc, 0, "domain set EXAMPLE.COM --default=yes (the domain name, any case)")
    c.true(routes_to(E, "example.com"), "bare <postmaster> spooled as postmaster@example.com",
           bare_postmaster(E))
    return c.result()


def main():
    t = rntest.Tap()
    if rnnode.missing_node(t):
        return t.done()
    with rnnode.Env("relayctl-domain") as E:
        t.run("domain set refusals: exit codes and messages, nothing written", case_refusals, E)
        t.run("domain set --default --ldif", case_ldif, E)
        t.run("domain set --default moves the default; bare postmaster follows",
              case_move_default, E)
        t.run("domain set --default=false: no default, 550 5.1.1", case_clear_default, E)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
