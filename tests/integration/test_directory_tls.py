#!/usr/bin/env python3
"""Secrets and the directory (issue 13): the node's and relayctl's LDAP connections over TLS,
BasicAuth only over a protected directory link, a fail-closed nested-group walk, and STARTTLS
forgetting the AUTH identity (RFC 3207 §4.2).

The fixture's slapd serves StartTLS on ldap:// and ldaps:// with a certificate from
deploy/pki/mkcerts.sh (localhost, 127.0.0.1); its relaynode.conf uses StartTLS verified
against that CA. A second throwaway CA (made here) stands for "the wrong CA". A TCP forwarder
on 127.0.0.2 reaches slapd's ldaps port under an address the certificate does not name.
"""
import os
import shutil
import socket
import sys
import tempfile
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402
from rnnode import (AUTH_BAD, AUTH_TEMP, NOMECH, OK_AUTH, Check, Client,  # noqa: E402
                    TLSClient, eventually, plain, tls_auth, tls_auth_reply)

PW = rnnode.example_passwords()
src = rnnode.Sources("127.0.7")


def relayctl():
    return os.path.join(os.path.dirname(rnnode.relaynode_binary()), "relayctl")


def write_conf(E, path, drop=(), extra=""):
    """E's relaynode.conf without the keys in drop, plus extra lines."""
    keep = [l for l in open(E.conf) if l.split("=", 1)[0].strip() not in drop]
    with open(path, "w") as f:
        f.write("".join(keep) + extra)
    return path


def check(conf):
    """relaynode --check: (rc, output)."""
    rc, out, err = rntest.run([rnnode.relaynode_binary(), "-c", conf, "--check"], timeout=60)
    return rc, out + err


def ctl_conf(E, path, uri, starttls, ca):
    with open(path, "w") as f:
        f.write("uri = %s\nldap_starttls = %s\nldap_ca_file = %s\nbind_dn = %s\n"
                "bind_password_file = %s\nbase_dn = %s\nnode = node1\n"
                % (uri, "yes" if starttls else "no", ca, E.slapd.admin_dn,
                   E.slapd.admin_pw_file, E.slapd.relay_base))
    return path


def ctl(conf, *args):
    rc, out, err = rntest.run([relayctl()] + list(args) + ["--config", conf], timeout=60)
    return rc, out + err


class Forwarder:
    """127.0.0.2:port -> 127.0.0.1:target, bytes both ways (a name the certificate lacks)."""

    def __init__(self, target):
        self.target = target
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.2", 0))
        self.ls.listen(8)
        self.port = self.ls.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _pipe(self, a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(c, u), daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c), daemon=True).start()

    def close(self):
        self.ls.close()


def case_tls_connections(E, work, wrong_ca):
    """Node (--check) and relayctl over StartTLS and ldaps://; the wrong CA, a name the
    certificate lacks and StartTLS mixed with ldaps:// are refused."""
    c = Check()
    S = E.slapd
    rc, out = check(E.conf)
    c.true(rc == 0, "fixture conf (StartTLS, fixture CA): --check loads", out[-300:])
    ldaps = write_conf(E, os.path.join(work, "ldaps.conf"), drop=("uri", "ldap_starttls"),
                       extra="uri = %s\n" % S.ldaps_uri)
    rc, out = check(ldaps)
    c.true(rc == 0, "ldaps:// with the fixture CA: --check loads", out[-300:])
    for name, conf in (("StartTLS", E.conf), ("ldaps", ldaps)):
        bad = write_conf(E, conf + ".wrongca", drop=("ldap_ca_file",) if conf == E.conf else
                         ("uri", "ldap_starttls", "ldap_ca_file"),
                         extra=("ldap_ca_file = %s\n" % wrong_ca) +
                         ("" if conf == E.conf else "uri = %s\n" % S.ldaps_uri))
        rc, out = check(bad)
        c.true(rc != 0 and "cannot" in out.lower(), "%s with the wrong CA: --check fails" % name,
               "rc %d: %s" % (rc, out[-300:]))
    fw = Forwarder(S.ldaps_port)
    try:
        other = write_conf(E, os.path.join(work, "name.conf"), drop=("uri", "ldap_starttls"),
                           extra="uri = ldaps://127.0.0.2:%d/\n" % fw.port)
        rc, out = check(other)
        c.true(rc != 0, "ldaps:// to 127.0.0.2 (not in the certificate, right CA): refused",
               "rc %d: %s" % (rc, out[-300:]))
    finally:
        fw.close()
    mixed = write_conf(E, os.path.join(work, "mixed.conf"), drop=("uri",),
                       extra="uri = %s %s\n" % (S.uri, S.ldaps_uri))
    rc, out = check(mixed)
    c.true(rc != 0 and "ldap_starttls = yes needs every URI to be ldap://" in out,
           "ldap_starttls = yes with an ldaps:// URI: refused, named", out[-300:])
    good = ctl_conf(E, os.path.join(work, "ctl-starttls.conf"), S.uri, True, S.ca_file)
    rc, out = ctl(good, "connector", "list")
    c.true(rc == 0 and "Client node1" in out, "relayctl over StartTLS lists connectors", out)
    good = ctl_conf(E, os.path.join(work, "ctl-ldaps.conf"), S.ldaps_uri, False, S.ca_file)
    rc, out = ctl(good, "connector", "list")
    c.true(rc == 0 and "Client node1" in out, "relayctl over ldaps:// lists connectors", out)
    for name, uri, st in (("StartTLS", S.uri, True), ("ldaps", S.ldaps_uri, False)):
        bad = ctl_conf(E, os.path.join(work, "ctl-bad.conf"), uri, st, wrong_ca)
        rc, out = ctl(bad, "connector", "list")
        c.true(rc != 0 and "Client node1" not in out, "relayctl %s with the wrong CA fails" % name,
               out)
    return c.result()


def auth_offer(E):
    """EHLO after STARTTLS on Client node1: (AUTH line present, AUTH PLAIN alice reply)."""
    cl, lines, r = tls_auth(E, "alice", PW["alice"], src())
    cl.close()
    return any("AUTH PLAIN LOGIN" in l for l in lines), r


def logged_more(E, mark, what, timeout=10):
    """what was logged since mark (more often than in mark). The log is written by its own
    thread: wait (bounded) for it."""
    return eventually(lambda: E.node.log().count(what) > mark.count(what), timeout)


def restart_with(E, drop, extra):
    """Restart the node from its original conf minus drop plus extra; returns its log as it
    was before the restart, so a check counts only what this start logged."""
    base = E.conf + ".orig"
    if not os.path.exists(base):
        shutil.copy(E.conf, base)
    E.node.stop()
    mark = E.node.log()
    keep = [l for l in open(base) if l.split("=", 1)[0].strip() not in drop]
    with open(E.conf, "w") as f:
        f.write("".join(keep) + extra)
    E.node.start()
    return mark


def case_basic_auth_gate(E):
    """Directory in clear: no AUTH PLAIN/LOGIN anywhere (warning logged); with
    allow_cleartext_directory = yes it is offered again (warning logged); over StartTLS and
    ldaps:// it is offered without a warning."""
    c = Check()
    try:
        mark = restart_with(E, ("ldap_starttls",), "")
        offered, r = auth_offer(E)
        c.true(not offered, "cleartext directory: AUTH not in EHLO")
        c.eq(r, NOMECH, "cleartext directory: AUTH PLAIN refused")
        c.true(logged_more(E, mark, "basic_auth=off"), "warning basic_auth=off logged",
               E.node.log_tail(5))
        mark = restart_with(E, ("ldap_starttls",), "allow_cleartext_directory = yes\n")
        offered, r = auth_offer(E)
        c.true(offered, "allow_cleartext_directory = yes: AUTH offered")
        c.eq(r, OK_AUTH, "allow_cleartext_directory = yes: alice 235")
        c.true(logged_more(E, mark, "basic_auth=offered"), "warning basic_auth=offered logged",
               E.node.log_tail(5))
        mark = restart_with(E, ("uri", "ldap_starttls"), "uri = %s\n" % E.slapd.ldaps_uri)
        offered, r = auth_offer(E)
        c.true(offered, "ldaps:// directory: AUTH offered")
        c.eq(r, OK_AUTH, "ldaps:// directory: alice 235 (password bind over ldaps)")
        # The warning would come before the first config load line: wait for that one.
        c.true(logged_more(E, mark, "config load version="), "config load logged",
               E.node.log_tail(5))
        c.true(not logged_more(E, mark, "directory=cleartext", 0), "no warning over ldaps://",
               E.node.log_tail(5))
    finally:
        restart_with(E, (), "")
    offered, r = auth_offer(E)
    c.eq(r, OK_AUTH, "StartTLS directory (fixture): alice 235")
    return c.result()


def case_overlong_group(E):
    """bob is in a group whose DN is ~5 KiB (25 nested ou of 200 octets), itself a member
    of a group denied Submit: the deny applies (535, never a token without the group); when
    the directory refuses the search for that group's parents, AUTH gets 454 4.7.0."""
    c = Check()
    S = E.slapd
    base = "ou=Groups," + S.base_dn
    ldif, parent = [], base
    for i in range(25):       # back-mdb takes RDNs of a few hundred octets, DNs of 8 KiB
        ou = ("deep%02d" % i) + "x" * 194
        parent = "ou=%s,%s" % (ou, parent)
        ldif.append("dn: %s\nobjectClass: organizationalUnit\nou: %s\n" % (parent, ou))
    long_dn = "cn=Long,%s" % parent
    denied_dn = "cn=Denied,%s" % base
    ldif.append("dn: %s\nobjectClass: groupOfNames\ncn: Long\nmember: %s\n"
                % (long_dn, S.user_dn("bob")))
    ldif.append("dn: %s\nobjectClass: groupOfNames\ncn: Denied\nmember: %s\n"
                % (denied_dn, long_dn))
    E.ldapmodify("\n".join(ldif), add=True)
    c.true(len(long_dn) > 4800, "the group DN is %d octets" % len(long_dn))
    aces = E.connector_attr("Client node1", "relayAce")
    E.modify_connector("Client node1", {"relayAce": aces + [
        "deny; %s; ms-Exch-SMTP-Submit" % denied_dn]})
    E.node.reload()

    def bob():
        return tls_auth_reply(E, "bob", PW["bob"], src())
    try:
        c.true(eventually(lambda: bob() == AUTH_BAD, 15),
               "bob (via the overlong group, in Denied): 535 5.7.3", bob())
        # slapd drops a request larger than 4095 octets from a bound client: the search
        # (member=<the long DN>) is one, so the walk cannot finish.
        rc, out, err = rntest.run(["ldapmodify", "-Q", "-Y", "EXTERNAL", "-H", S.ldapi],
                                  input="dn: cn=config\nchangetype: modify\nreplace: "
                                        "olcSockbufMaxIncomingAuth\nolcSockbufMaxIncomingAuth: "
                                        "4095\n")
        c.true(rc == 0, "slapd: olcSockbufMaxIncomingAuth 4095", err)
        c.eq(bob(), AUTH_TEMP, "the group walk fails: 454 4.7.0")
        # the log is written by the node's writer thread: the line may follow the reply
        c.true(eventually(lambda: "search groups of" in E.node.log(), 5), "the failure is logged",
               E.node.log_tail(5))
    finally:
        rntest.run(["ldapmodify", "-Q", "-Y", "EXTERNAL", "-H", S.ldapi],
                   input="dn: cn=config\nchangetype: modify\nreplace: "
                         "olcSockbufMaxIncomingAuth\nolcSockbufMaxIncomingAuth: 4194303\n")
        E.modify_connector("Client node1", {"relayAce": aces})
        E.node.reload()
    return c.result()


def case_starttls_forgets_auth(E):
    """AUTH in clear (BasicAuth without BasicAuthRequireTLS), then STARTTLS: EHLO is needed
    again and the session is anonymous (may submit, may not relay: 550 5.7.1)."""
    c = Check()
    aces = E.connector_attr("Client node1", "relayAce")
    ca = os.path.join(E.dir, "tls", "ca.pem")
    with E.connector_changed("Client node1", {
            "relayAuthMechanism": ["Tls", "BasicAuth"],
            "relayAce": aces + ["allow; %s; ms-Exch-SMTP-Submit" % E.ANON]}):
        def relayed_in_clear():
            with Client("127.0.0.1", E.sub_port, source=src(), timeout=20) as cl:
                cl.ehlo()
                if cl.cmd("AUTH PLAIN " + plain("alice", PW["alice"]), timeout=20) != OK_AUTH:
                    return False
                cl.cmd("MAIL FROM:<alice@example.com>")
                return cl.cmd("RCPT TO:<x@outside.example>").startswith("250 ")
        c.true(eventually(relayed_in_clear, 15), "control: AUTH in clear, then relay: 250")
        with TLSClient("127.0.0.1", E.sub_port, source=src(), timeout=20) as cl:
            cl.ehlo()
            c.eq(cl.cmd("AUTH PLAIN " + plain("alice", PW["alice"]), timeout=20), OK_AUTH,
                 "AUTH in clear")
            c.eq(cl.starttls(ca), "220 2.0.0 SMTP server ready", "STARTTLS")
            c.eq(cl.cmd("MAIL FROM:<alice@example.com>"), "503 5.5.2 Send hello first",
                 "after STARTTLS: EHLO required again")
            lines = cl.ehlo()
            c.true(any("AUTH PLAIN LOGIN" in l for l in lines),
                   "AUTH offered again (the session is not authenticated)", lines)
            c.eq(cl.cmd("MAIL FROM:<alice@example.com>"), "250 2.1.0 Sender OK",
                 "anonymous MAIL (anonymous Submit)")
            c.eq(cl.cmd("RCPT TO:<x@outside.example>"), "550 5.7.1 Unable to relay",
                 "relay refused as anonymous")
        c.true(eventually(lambda: "auth_forgotten=yes" in E.node.log(), 5),
               "logged: starttls auth_forgotten=yes", E.node.log_tail(5))
    return c.result()


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    work = tempfile.mkdtemp(prefix="rn-dirtls-")
    try:
        rc, out, err = rntest.run(["bash", os.path.join(rnnode.ROOT, "deploy", "pki",
                                                        "mkcerts.sh"), os.path.join(work, "other")])
        if rc != 0:
            raise RuntimeError("mkcerts.sh: " + err)
        wrong_ca = os.path.join(work, "other", "ca.pem")
        with rnnode.Env("dirtls") as E:
            t.run("node and relayctl over StartTLS and ldaps://; wrong CA, wrong name, "
                  "StartTLS + ldaps refused", case_tls_connections, E, work, wrong_ca)
            t.run("BasicAuth only over a protected directory link, unless "
                  "allow_cleartext_directory", case_basic_auth_gate, E)
            t.run("overlong group DN: its deny applies (535); a walk that cannot finish: 454",
                  case_overlong_group, E)
            t.run("STARTTLS forgets the AUTH identity (RFC 3207 4.2)",
                  case_starttls_forgets_auth, E)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
