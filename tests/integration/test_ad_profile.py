#!/usr/bin/env python3
"""The Active Directory profile (docs/ad-profile.md) end to end: a real Samba AD DC with the
Exchange schema subset and the seed organisation (tests/lib/samba_ad.py), a real relaynode
with directory_profile = ad, real SMTP clients and a real sink.

One DC and one node serve every check (in a private network namespace, so the connectors
bind the real ports 25 and 587). Clients are told apart by source address on lo:
127.0.0.1 lands on "Default EX1" (anonymous), 127.0.2.55 on "CRM Application" (the seed
article's Option 1, ExternalAuthoritative), 127.0.2.57 on "CRM Option2", which the test adds
with the AnonymousUsers permission group (the article's Option 2). Permissions are changed
the two ways an AD administrator can: `samba-tool dsacl set` (SambaAD.dsacl_set) and
ldapmodify writing the descriptor (read, edited as SDDL with Samba's own NDR code, written
back under the SD flags control); the running node is then polled until its reply changes,
with a generous upper bound. Before the DC starts, an unreachable DC fails closed.
"""
import base64
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import samba_ad  # noqa: E402

samba_ad.enter_netns()

import rnnode  # noqa: E402
import smtpsink  # noqa: E402
from rnnode import (NO_RELAY, OK_AUTH, RCPT_OK, SENDER_OK, Client, TLSClient,  # noqa: E402
                    eventually, plain, queued_id, tag)
from rntest import ROOT, Tap, run  # noqa: E402

BUILD = os.environ.get("RELAYNODE_BUILD", os.path.join(ROOT, "build", "asan"))
RELAYCTL = os.path.join(BUILD, "relayctl")
ANY_RCPT = "ms-Exch-SMTP-Accept-Any-Recipient"
APPLY_S = 30          # upper bound for a directory change to reach the running node


def right_guids():
    """{right cn: rightsGuid} from directory/rights.c (what org.ldif's builder uses too)."""
    with open(os.path.join(ROOT, "directory", "rights.c")) as f:
        return {cn: g for cn, g in re.findall(r'\{R_\w+,\s*"([^"]+)",\s*"([0-9a-f-]{36})"',
                                               f.read())}


GUIDS = right_guids()
ANON_GROUP = ("ms-Exch-SMTP-Submit", "ms-Exch-SMTP-Accept-Any-Sender",
              "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender",
              "ms-Exch-Accept-Headers-Routing")          # AnonymousUsers: 0x431


def ace(sid, right, deny=False):
    return "(%s;CI;CR;%s;;%s)" % ("OD" if deny else "OA", GUIDS[right], sid)


class AD:
    """The DC and what the checks share."""

    def __init__(self, dc):
        self.dc = dc
        self.domain_sid = samba_ad.sid_str(
            dc.search(dc.domain_dn, attrs=["objectSid"], scope="base")[0].get("objectSid")[0])

    def sd_sddl(self, dn):
        from samba.dcerpc import security
        from samba.ndr import ndr_unpack
        sd = ndr_unpack(security.descriptor, self.dc.read_sd(dn, bind="admin"))
        return sd.as_sddl(security.dom_sid(self.domain_sid))

    def sd_write(self, dn, sddl):
        """Replace dn's DACL with sddl's, by ldapmodify under the SD flags control."""
        from samba.dcerpc import security
        from samba.ndr import ndr_pack
        sd = security.descriptor.from_sddl(sddl, security.dom_sid(self.domain_sid))
        b64 = base64.b64encode(ndr_pack(sd)).decode()
        rc, out, err = self.dc.ldapmodify(sd_ldif(dn, ndr_pack(sd)))
        return rc, out + err

    def sd_edit(self, dn, add=None, remove=None):
        """Add or remove one explicit ACE (SDDL text) with ldapmodify; (rc, detail)."""
        sddl = self.sd_sddl(dn)
        dacl = sddl[sddl.index("D:"):]
        if "S:" in dacl:
            dacl = dacl[:dacl.index("S:")]
        # Only explicit ACEs are written: the inherited ones (ID) are the DC's to compute.
        flags = re.match(r"D:([A-Z]*)", dacl).group(1)
        aces = [a for a in re.findall(r"\([^)]*\)", dacl) if ";" in a and
                "ID;" not in a.split(";")[1] + ";"]
        if remove:
            aces = [a for a in aces if a.upper() != remove.upper()]
        if add:
            aces.append(add)
        return self.sd_write(dn, "D:%s%s" % (flags, "".join(aces)))


def sd_ldif(dn, raw):
    """A modify replacing dn's DACL under the SD flags control (RFC 2849 `control:` line:
    ldapmodify has no option for an arbitrary control)."""
    return ("dn: %s\ncontrol: 1.2.840.113556.1.4.801 true:: MAMCAQQ=\nchangetype: modify\n"
            "replace: nTSecurityDescriptor\nnTSecurityDescriptor:: %s\n-\n"
            % (dn, base64.b64encode(raw).decode()))


def rcpt_reply(source, rcpt, sender="app@outside.example"):
    try:
        with Client("127.0.0.1", 25, source=source) as cl:
            cl.ehlo()
            m = cl.cmd("MAIL FROM:<%s>" % sender)
            if m != SENDER_OK:
                return "MAIL: " + m
            return cl.cmd("RCPT TO:<%s>" % rcpt)
    except (OSError, rnnode.Closed) as e:
        return "error: %s" % e


def auth_rcpt(E, user, pw, rcpt, source="127.0.0.1"):
    """STARTTLS + AUTH PLAIN on 587, then MAIL and RCPT; (auth reply, RCPT reply)."""
    cl = TLSClient("127.0.0.1", 587, source=source, timeout=20)
    try:
        cl.ehlo()
        cl.starttls(E.dc.ca_file)
        cl.ehlo()
        a = cl.cmd("AUTH PLAIN " + plain(user, pw), timeout=20)
        if a != OK_AUTH:
            return a, None
        cl.cmd("MAIL FROM:<%s@example.com>" % user.split("\\")[-1].split("@")[0])
        return a, cl.cmd("RCPT TO:<%s>" % rcpt)
    finally:
        cl.close()


def write_conf(path, dc, spool, uri=None, tls=True):
    pw = os.path.join(os.path.dirname(path), "svc.pw")
    with open(os.open(pw, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(dc.svc_password + "\n")
    os.chmod(pw, 0o600)
    pki = os.path.join(dc.dir, "pki") if dc.dir else ""
    with open(path, "w") as f:
        f.write("uri = %s\nldap_ca_file = %s\nbind_dn = %s\nbind_password_file = %s\n"
                "directory_profile = ad\nnode = EX1\nhostname = ex1.rn.test\n"
                "directory_ad_poll_ms = 200\nspool_dir = %s\ndns_server = 127.0.0.1:1\n"
                "log = %s\nretry_min = 1\n"
                % (uri or dc.uri, dc.ca_file or "", dc.svc_dn,
                   os.path.join(os.path.dirname(path), "svc.pw"), spool,
                   path[:-len(".conf")] + ".log"))
        if tls:
            f.write("tls_cert = %s\ntls_key = %s\n" % (os.path.join(pki, "node.pem"),
                                                     os.path.join(pki, "node.key")))


def check_unreachable(t, tmp, dc):
    """Before the DC runs: --check exits 2, and a node runs without listening."""
    conf = os.path.join(tmp, "down.conf")
    write_conf(conf, dc, os.path.join(tmp, "down-spool"), uri="ldaps://127.0.0.1:636",
               tls=False)
    os.makedirs(os.path.join(tmp, "down-spool"), exist_ok=True)
    rc, out, err = run([os.path.join(BUILD, "relaynode"), "-c", conf, "--check"])
    t.ok(rc == 2 and "cannot load the directory" in err,
         "unreachable DC: relaynode --check exits 2", "rc=%s %s%s" % (rc, out, err))
    node = rnnode.Node(conf, log_path=os.path.join(tmp, "down.out"))
    node.start()
    try:
        logf = os.path.join(tmp, "down.log")

        def failed_loads():
            with open(logf, errors="replace") as f:
                return f.read().count("config load-failed")
        t.ok(eventually(lambda: os.path.exists(logf) and failed_loads() >= 1, 30) and
             node.alive() and rnnode.port_closed("127.0.0.1", 25, timeout=1),
             "unreachable DC at start: the node runs, logs load-failed and does not listen "
             "(fail closed)", node.log_tail())
    finally:
        node.stop(timeout=10)


def main():
    if rnnode.missing_node():
        return 1
    t = Tap()
    t0 = time.monotonic()
    dc = samba_ad.SambaAD()
    import tempfile
    tmp = tempfile.mkdtemp(prefix="rn-adprof-")
    node = sink = None
    try:
        check_unreachable(t, tmp, dc)
        dc.start()
        E = AD(dc)
        sink = smtpsink.Sink(os.path.join(tmp, "sink")).start()
        dc.set_smart_host("127.0.0.1", sink.port)
        crm = dc.connector_dn("EX1", "CRM Application")
        client = dc.connector_dn("EX1", "Client EX1")
        opt2 = dc.connector_dn("EX1", "CRM Option2")
        # Every 5xx to an anonymous client would wait 5 s (TarpitInterval's default).
        for name in ("Default EX1", "Client EX1", "CRM Application"):
            rc, out, err = dc.ldapmodify("dn: %s\nchangetype: modify\nreplace: "
                                         "msExchSmtpReceiveTarpitInterval\n"
                                         "msExchSmtpReceiveTarpitInterval: 0\n-\n"
                                         % dc.connector_dn("EX1", name))
            if rc != 0:
                raise RuntimeError("tarpit on %s: %s%s" % (name, out, err))
        # The article's Option 2: a connector with the AnonymousUsers group, its ACEs
        # written as Exchange writes them (one explicit object ACE per right).
        from samba.dcerpc import security
        from samba.ndr import ndr_pack
        sd = security.descriptor.from_sddl(
            "D:" + "".join(ace("AN", r) for r in ANON_GROUP) + "(A;;RPWPCRCCDCLCLORCWOWDSDDTSW;;;DA)"
            "(A;;RPLCLORC;;;AU)", security.dom_sid(E.domain_sid))
        rc, out, err = dc.ldapmodify(
            "dn: %s\nchangetype: add\nobjectClass: msExchSmtpReceiveConnector\ncn: CRM Option2\n"
            "msExchSmtpReceiveEnabled: TRUE\nmsExchSmtpReceiveBindings: 0.0.0.0:25\n"
            "msExchSmtpReceiveRemoteIPRanges: 127.0.2.57\nmsExchSMTPReceiveInboundSecurityFlag: 1\n"
            "msExchSmtpReceiveTarpitInterval: 0\nnTSecurityDescriptor:: %s\n"
            % (opt2, base64.b64encode(ndr_pack(sd)).decode()))
        t.ok(rc == 0, "ldapmodify adds the Option 2 connector (AnonymousUsers)", out + err)

        conf = os.path.join(tmp, "relaynode.conf")
        spool = os.path.join(tmp, "spool")
        os.makedirs(spool, exist_ok=True)
        write_conf(conf, dc, spool)
        node = rnnode.Node(conf, ports=(25, 587), log_path=os.path.join(tmp, "node.out"))
        node.start(timeout=30)
        log = os.path.join(tmp, "relaynode.log")    # from relaynode.conf

        def node_log():
            with open(log, errors="replace") as f:
                return f.read()

        # The log is written by its own thread: wait (bounded) for the line.
        t.ok(rnnode.eventually(lambda: re.search(r"config applied .*version=\"?usn:\d+",
                                                 node_log()) or "usn:" in node_log(), 10),
             "the snapshot is versioned by highestCommittedUSN",
             node_log()[-1500:])

        # -- the seed article, over real SMTP -------------------------------------------
        t.eq(rcpt_reply("127.0.0.1", "x@outside.example"), NO_RELAY,
             "anonymous client on 25 relaying outside: 550 5.7.1 Unable to relay")
        t.eq(rcpt_reply("127.0.0.1", "alice@example.com"), RCPT_OK,
             "anonymous client to alice@example.com (Authoritative, in AD): 250")
        r = rcpt_reply("127.0.0.1", "nobody@example.com")
        t.ok(r.startswith("550 5.1.10"), "recipient lookup on AD (mail, proxyAddresses): an "
             "unknown recipient of example.com is refused", r)
        s = tag("opt1")
        with Client("127.0.0.1", 25, source="127.0.2.55") as cl:
            rr = cl.send_message("crm@example.com", ["customer@outside.example"],
                                 "From: <crm@example.com>\r\nSubject: %s\r\n\r\nx\r\n" % s)
        t.ok(queued_id(rr[-1]), "Option 1 (127.0.2.55, CRM Application, ExternalAuthoritative) "
             "relays outside", rr)
        got = sink.wait(1, timeout=30, pred=lambda m: s.encode() in m["data"])
        t.ok(got, "the Option 1 message reaches the sink through the AD send connector",
             node.log_tail())

        # -- Add-ADPermission ANONYMOUS LOGON ms-Exch-SMTP-Accept-Any-Recipient -----------
        t.eq(rcpt_reply("127.0.2.57", "x@outside.example"), NO_RELAY,
             "Option 2 connector before the ACE: 550 5.7.1 Unable to relay")

        def becomes(want, source="127.0.2.57"):
            return eventually(lambda: rcpt_reply(source, "x@outside.example") == want, APPLY_S,
                              0.1)

        t1 = time.monotonic()
        dc.dsacl_set(opt2, ace("AN", ANY_RCPT))
        t.ok(becomes(RCPT_OK), "samba-tool dsacl set adds the ANONYMOUS Accept-Any-Recipient "
             "ACE: the running node relays (no restart)", node.log_tail())
        print("# dsacl set -> node relays in %.2f s (incl. samba-tool)" % (time.monotonic() - t1))
        rc, detail = E.sd_edit(opt2, remove=ace("AN", ANY_RCPT))
        t.ok(rc == 0 and becomes(NO_RELAY), "ldapmodify writes the descriptor without it: "
             "550 5.7.1 again", detail)
        t1 = time.monotonic()
        rc, detail = E.sd_edit(opt2, add=ace("AN", ANY_RCPT))
        t.ok(rc == 0 and becomes(RCPT_OK), "ldapmodify writes a descriptor with it: relays",
             detail)
        print("# ldapmodify -> node relays in %.2f s" % (time.monotonic() - t1))
        rc, detail = E.sd_edit(opt2, remove=ace("AN", ANY_RCPT))
        t.ok(rc == 0 and becomes(NO_RELAY), "and removed again: 550 5.7.1", detail)
        t.eq(rcpt_reply("127.0.2.60", "x@outside.example"), NO_RELAY,
             "127.0.2.60 (no CRM range) stays on Default: refused")

        # -- AUTH with AD tokens: a deny for a nested group wins --------------------------
        a, r = auth_rcpt(E, "alice", dc.users["alice"], "x@outside.example")
        t.eq((a, r), (OK_AUTH, RCPT_OK), "AUTH as alice (sAMAccountName) on Client EX1 relays")
        a, r = auth_rcpt(E, "bob@rn.test", dc.users["bob"], "x@outside.example")
        t.eq((a, r), (OK_AUTH, RCPT_OK), "AUTH as bob (userPrincipalName) relays before the deny")
        a, r = auth_rcpt(E, "RN\\alice", dc.users["alice"], "x@outside.example")
        t.eq((a, r), (OK_AUTH, RCPT_OK), "AUTH as RN\\alice (DOMAIN\\sAMAccountName) relays")
        a, r = auth_rcpt(E, "OTHER\\alice", dc.users["alice"], "x@outside.example")
        t.eq(a, rnnode.AUTH_BAD, "AUTH as OTHER\\alice (another domain): 535 5.7.3")
        a, r = auth_rcpt(E, "alice", "wrong-password", "x@outside.example")
        t.eq(a, rnnode.AUTH_BAD, "a wrong password: 535 5.7.3")
        outer = dc.sid(dc.group_dn("Relay Deny Outer"))
        dc.dsacl_set(client, ace(outer, ANY_RCPT, deny=True))
        ok = eventually(lambda: auth_rcpt(E, "bob", dc.users["bob"], "x@outside.example")[1]
                        == NO_RELAY, APPLY_S, 0.2)
        t.ok(ok, "deny Accept-Any-Recipient for Relay Deny Outer (bob via Relay Deny Inner, "
             "tokenGroups) wins over the Authenticated Users allow", node.log_tail())
        t.eq(auth_rcpt(E, "alice", dc.users["alice"], "x@outside.example"), (OK_AUTH, RCPT_OK),
             "alice (not in the groups) still relays")

        # -- relayctl explain against AD ----------------------------------------------------
        rc, out, err = run([RELAYCTL, "explain", "--config", conf, "--local", "127.0.0.1:587",
                            "--remote", "127.0.0.1", "--user", "bob", "--from",
                            "bob@example.com", "--to", "x@outside.example", "--json"])
        import json
        try:
            j = json.loads(out)
        except ValueError:
            j = {}
        rr = (j.get("rights") or {}).get(ANY_RCPT) or {}
        t.ok(j.get("connector", {}).get("name") == "Client EX1" and rr.get("state") == "denied"
             and "deny" in (rr.get("ace") or "") and outer in (rr.get("ace") or ""),
             "relayctl explain (ad profile) names the deciding deny ACE and its SID",
             "rc=%s %s %s" % (rc, json.dumps(rr), (out + err)[-1500:]))

        # -- a member of a per-forest Exchange group holds that group's principal ----------
        # The loader turns an ACE naming the Exchange Servers group's SID into the
        # ExchangeServers principal; aduser.c must map alice's tokenGroups the same way, or
        # a deny for that group would miss her.
        exs = "CN=Exchange Servers,OU=Microsoft Exchange Security Groups," + dc.domain_dn
        rc, out, err = dc.ldapmodify("dn: %s\nchangetype: modify\nadd: member\nmember: %s\n-\n"
                                     % (exs, dc.user_dn("alice")))
        t.ok(rc == 0, "ldapmodify puts alice into Exchange Servers", out + err)
        dc.dsacl_set(client, ace(dc.sid(exs), ANY_RCPT, deny=True))
        ok = eventually(lambda: auth_rcpt(E, "alice", dc.users["alice"], "x@outside.example")[1]
                        == NO_RELAY, APPLY_S, 0.2)
        t.ok(ok, "a deny Accept-Any-Recipient for the Exchange Servers group's SID refuses its "
             "member alice (tokenGroups mapped to the ExchangeServers principal)",
             node.log_tail())
        rc, out, err = dc.ldapmodify("dn: %s\nchangetype: modify\ndelete: member\nmember: %s\n"
                                     "-\n" % (exs, dc.user_dn("alice")))
        t.eq(auth_rcpt(E, "alice", dc.users["alice"], "x@outside.example"), (OK_AUTH, RCPT_OK),
             "out of the group again, alice relays (the token is read at each AUTH)")

        # -- hostile values: the entry is refused, named with its attribute ---------------
        bad = dc.connector_dn("EX1", "Bad Size")
        rc, out, err = dc.ldapmodify(
            "dn: %s\nchangetype: add\nobjectClass: msExchSmtpReceiveConnector\ncn: Bad Size\n"
            "msExchSmtpReceiveBindings: 0.0.0.0:25\nmsExchSmtpReceiveRemoteIPRanges: 127.0.2.58\n"
            "msExchSMTPReceiveInboundSecurityFlag: 33\nmsExchSmtpReceiveMaxMessageSize: 10\n"
            "nTSecurityDescriptor:: %s\n" % (bad, base64.b64encode(ndr_pack(
                security.descriptor.from_sddl("D:" + "".join(ace("AN", r) for r in GUIDS) +
                                              "(A;;RPLCLORC;;;AU)",
                                              security.dom_sid(E.domain_sid)))).decode()))
        t.ok(rc == 0, "ldapmodify adds a connector granting ANONYMOUS every right, with "
             "msExchSmtpReceiveMaxMessageSize 10", out + err)
        want = "msExchSmtpReceiveMaxMessageSize: 10 is below the minimum 65536"

        def refused():
            return [l for l in node_log().splitlines()
                    if "config refused" in l and "CN=Bad Size," in l and want in l]
        t.ok(eventually(refused, APPLY_S), "the node refuses it, naming the DN and the "
             "attribute", node_log()[-1500:])
        t.eq(rcpt_reply("127.0.2.58", "x@outside.example"), NO_RELAY,
             "its clients fall to Default, never to its grant: 550 5.7.1")
        rc, out, err = run([RELAYCTL, "audit", "--config", conf])
        t.ok(rc == 1 and "msExchSmtpReceiveMaxMessageSize" in out + err and "Bad Size" in out + err,
             "relayctl audit (ad profile) reports the refused connector", "rc=%s %s%s"
             % (rc, out, err))

        # -- a descriptor the node cannot parse fails closed ------------------------------
        rc, out, err = dc.ldapmodify(sd_ldif(opt2, b"\x01\x00\x04\x80garbage"))
        t.ok(rc != 0, "Samba refuses to store a malformed descriptor (the parser's refusals are "
             "unit-tested: tests/unit/test_secdesc.c)", "rc=%s %s%s" % (rc, out, err))
        t.ok(node.alive(), "the node is still running", node.log_tail())

        # -- the DC goes away: AUTH is a temporary failure, never a grant -----------------
        dc.proc.terminate()          # its files stay (the CA, the node's certificate)
        dc.proc.wait(15)
        a, _ = auth_rcpt(E, "alice", dc.users["alice"], "x@outside.example")
        t.eq(a, rnnode.AUTH_TEMP, "DC down: AUTH as alice answers 454 4.7.0 (tempfail)")
        t.eq(rcpt_reply("127.0.0.1", "x@outside.example"), NO_RELAY,
             "DC down: the last good snapshot still refuses the anonymous relay")
    finally:
        if node:
            node.stop(timeout=15)
        if sink:
            sink.stop()
        dc.stop()
        if not os.environ.get("RN_KEEP"):
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
    print("# test_ad_profile: %.1f s (template %.1f s)" % (time.monotonic() - t0,
                                                             dc.template_seconds))
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
