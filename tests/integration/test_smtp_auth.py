#!/usr/bin/env python3
"""STARTTLS and SMTP AUTH (issue #4) against a real node and the example organisation.

"Client node1" (the submission port) has Tls, BasicAuth, BasicAuthRequireTLS and grants
Authenticated Users Submit, Accept-Any-Recipient, Bypass-Anti-Spam and Accept-Headers-
Routing. Users: alice (Sales, Staff; alias a.smith@example.com), bob (Staff), carol
(Contractors). Each client uses its own 127.0.5.x source so the per-source failure limit of
one case never touches another. The certificates come from deploy/pki/mkcerts.sh (fixture).
"""
import os
import re
import signal
import smtplib
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402
from rnnode import (AUTH_BAD, AUTH_TEMP, NOMECH, OK_AUTH, Check, Client,  # noqa: E402
                    TLSClient, b64, eventually, plain, queued_id, tls_auth)

PW = rnnode.example_passwords()
TOO_MANY = "421 4.7.0 Too many errors on this connection, closing transmission channel"
SEND_AS = "550 5.7.1 Client does not have permissions to send as this sender"
src = rnnode.Sources("127.0.5")


def tls_client(E, source=None, timeout=15.0):
    cl = TLSClient("127.0.0.1", E.sub_port, source=source or src(), timeout=timeout)
    return cl


def ca(E):
    return os.path.join(E.dir, "tls", "ca.pem")


def auth_session(E, user, pw, source=None):
    """An authenticated TLS session, or (None, reply) when AUTH fails."""
    cl, _, r = tls_auth(E, user, pw, source or src())
    if r != OK_AUTH:
        cl.close()
        return None, r
    return cl, r


def case_offer(E):
    c = Check()
    with tls_client(E) as cl:
        lines = cl.ehlo()
        c.true("250-STARTTLS" in lines or "250 STARTTLS" in lines, "STARTTLS offered", lines)
        c.true(not any("AUTH" in l for l in lines), "no AUTH before TLS (BasicAuthRequireTLS)",
               lines)
        c.eq(cl.cmd("AUTH PLAIN " + plain("alice", PW["alice"])), NOMECH, "AUTH before TLS")
        c.eq(cl.starttls(ca(E)), "220 2.0.0 SMTP server ready", "STARTTLS")
        c.eq(cl.cmd("MAIL FROM:<alice@example.com>"), "503 5.5.2 Send hello first",
             "state reset after TLS: EHLO required again")
        lines = cl.ehlo()
        c.true("250 AUTH PLAIN LOGIN" in lines or "250-AUTH PLAIN LOGIN" in lines,
               "AUTH PLAIN LOGIN offered after TLS", lines)
        c.true(not any("STARTTLS" in l for l in lines), "STARTTLS not offered twice", lines)
    with Client("127.0.0.1", E.smtp_port, source="127.0.2.55") as cl:
        lines = cl.ehlo()
        c.true(not any("AUTH" in l for l in lines),
               "CRM Application (Tls, ExternalAuthoritative) offers no AUTH", lines)
        c.eq(cl.cmd("AUTH PLAIN " + plain("alice", PW["alice"])), NOMECH,
             "AUTH on a connector without BasicAuth")
    return c.result()


def case_good_plain(E):
    c = Check()
    s = "authok-%d" % os.getpid()
    cl, r = auth_session(E, "alice", PW["alice"])
    c.eq(r, OK_AUTH, "alice AUTH PLAIN")
    if cl:
        with cl:
            c.eq(cl.cmd("AUTH PLAIN " + plain("alice", PW["alice"])),
                 "503 5.5.2 Auth command already specified", "second AUTH")
            reps = cl.send_message("alice@example.com", ["x@outside.example"],
                                   "From: <alice@example.com>\r\nSubject: %s\r\n\r\nx\r\n" % s)
            c.true(queued_id(reps[-1]), "relays to outside (Accept-Any-Recipient)", reps)
    msgs = rnnode.spool_messages(E.spool_dir, s)
    for m in msgs.values():
        c.eq(m.get("auth_user"), "alice", "spool: auth user")
        c.eq(m.get("auth_as"), "Internal", "spool: AuthAs Internal")
        c.true(b"X-Relaynode-Organization-AuthMechanism: 06" in m["data"],
               "stamp: AuthMechanism 06 (TLS auth login)")
        c.true(b"with ESMTPSA" in m["data"], "Received: with ESMTPSA")
    c.eq(len(msgs), 1, "spooled once")
    return c.result()


def case_smtplib_login(E):
    """smtplib with STARTTLS and AUTH LOGIN (the 334 exchange)."""
    c = Check()
    m = smtplib.SMTP("127.0.0.1", E.sub_port, source_address=(src(), 0), timeout=20)
    try:
        m.ehlo("client.test")
        m.starttls(context=_ctx(E))
        m.ehlo("client.test")
        m.user, m.password = "bob", PW["bob"]
        code, msg = m.auth("LOGIN", m.auth_login, initial_response_ok=False)
        c.eq((code, msg.decode()), (235, "2.7.0 Authentication successful"), "bob AUTH LOGIN")
        code, _ = m.mail("bob@example.com")
        c.eq(code, 250, "MAIL as bob@example.com")
    finally:
        try:
            m.quit()
        except Exception:
            pass
    return c.result()


def _ctx(E):
    ctx = ssl.create_default_context(cafile=ca(E))
    ctx.check_hostname = False
    return ctx


def case_bad(E):
    c = Check()
    for name, user, pw in [("bad password", "alice", "wrong"),
                           ("unknown user", "nobody", "x"),
                           ("login '*'", "*", "x"),
                           ("login 'x)(uid=*'", "x)(uid=*", PW["alice"]),
                           ("login 'alice)(|(uid=*'", "alice)(|(uid=*", PW["alice"]),
                           ("login with an embedded NUL", b"alice\0x", PW["alice"]),
                           ("1 KiB login", "a" * 1024, "x")]:
        t0 = time.monotonic()
        cl, r = auth_session(E, user, pw)
        if cl:
            cl.close()
        c.eq(r, AUTH_BAD, name)
        c.true(time.monotonic() - t0 >= 0.9, "%s: answered after the failure delay" % name)
    return c.result()


def case_max_failures(E):
    c = Check()
    source = src()
    with tls_client(E, source) as cl:
        cl.ehlo()
        cl.starttls(ca(E))
        cl.ehlo()
        got = [cl.cmd("AUTH PLAIN " + plain("alice", "wrong-%d" % i), timeout=20)
               for i in range(3)]
        c.eq(got, [AUTH_BAD] * 3, "three failures (MaxLogonFailures 3): 535 each")
        cl.send_raw("AUTH PLAIN %s\r\n" % plain("alice", "wrong-4"))
        rest = cl.replies_until_close(20)
    c.eq(rest, [TOO_MANY], "fourth failure: 421 4.7.0 and close")
    return c.result()


def case_group_right(E):
    """An ACE for the Sales group (alice) grants Accept-Any-Sender; bob is not in it."""
    c = Check()
    sales = E.slapd.group_dn("Sales")
    aces = E.connector_attr("Client node1", "relayAce")

    def any_sender(user):
        cl, r = auth_session(E, user, PW[user])
        if not cl:
            return r
        with cl:
            return cl.send_message("crm@outside.example", ["x@outside.example"],
                                   "From: <crm@outside.example>\r\nSubject: g\r\n\r\nx\r\n")[-1]
    with E.connector_changed("Client node1", {"relayAce": aces + [
            "allow; %s; ms-Exch-SMTP-Accept-Any-Sender" % sales]}):
        c.true(eventually(lambda: queued_id(any_sender("alice")), 15),
               "alice (Sales) may send as crm@outside.example (group ACE)")
        c.eq(any_sender("bob"), SEND_AS, "bob (not in Sales) may not")
    return c.result()


def case_group_deny(E):
    """A deny ACE on Contractors (carol) removes Submit: AUTH fails with 535."""
    c = Check()
    aces = E.connector_attr("Client node1", "relayAce")
    with E.connector_changed("Client node1", {"relayAce": aces + [
            "deny; %s; ms-Exch-SMTP-Submit" % E.slapd.group_dn("Contractors")]}):
        c.true(eventually(lambda: auth_session(E, "carol", PW["carol"])[1] == AUTH_BAD, 15),
               "carol (Contractors, denied Submit): 535 5.7.3")
        cl, r = auth_session(E, "alice", PW["alice"])
        if cl:
            cl.close()
        c.eq(r, OK_AUTH, "alice unaffected")
    return c.result()


def case_send_as(E):
    c = Check()
    cl, r = auth_session(E, "bob", PW["bob"])
    c.eq(r, OK_AUTH, "bob AUTH")
    if cl:
        with cl:
            reps = cl.send_message("alice@example.com", ["x@outside.example"],
                                   "From: <alice@example.com>\r\nSubject: s\r\n\r\nx\r\n")
            c.eq(reps[-1], SEND_AS, "bob as alice@example.com (envelope)")
            reps = cl.send_message("bob@example.com", ["x@outside.example"],
                                   "From: <alice@example.com>\r\nSubject: s\r\n\r\nx\r\n")
            c.eq(reps[-1], SEND_AS, "bob with From: alice@example.com (header)")
    cl, r = auth_session(E, "alice", PW["alice"])
    if cl:
        with cl:
            reps = cl.send_message("a.smith@example.com", ["x@outside.example"],
                                   "From: <a.smith@example.com>\r\nSubject: s\r\n\r\nx\r\n")
            c.true(queued_id(reps[-1]), "alice as her alias a.smith@example.com", reps)
    c.true(E.node.wait_log(re.compile(r"smtp send-as-refused sender=alice@example.com login=bob "
                                      r"owned=bob@example.com")),
           "the exact mismatch is logged", E.node.log()[-1500:])
    return c.result()


def case_pipelined_starttls(E):
    """Plaintext pipelined behind STARTTLS is discarded (CVE-2011-0411)."""
    c = Check()
    with tls_client(E) as cl:
        cl.ehlo()
        r = cl.starttls(ca(E), pipelined=b"EHLO evil\r\nMAIL FROM:<evil@outside.example>\r\n")
        c.eq(r, "220 2.0.0 SMTP server ready", "STARTTLS with plaintext behind it")
        c.eq(cl.cmd("MAIL FROM:<alice@example.com>"), "503 5.5.2 Send hello first",
             "nothing of the pipelined plaintext ran")
    return c.result()


def case_slapd_paused(E):
    """One AUTH waits on a stopped (SIGSTOP) slapd; another session stays prompt."""
    c = Check()
    result = {}

    def waiting_auth():
        try:
            cl = tls_client(E, timeout=30)
            cl.ehlo()
            cl.starttls(ca(E))
            cl.ehlo()
            t0 = time.monotonic()
            result["reply"] = cl.cmd("AUTH PLAIN " + plain("alice", PW["alice"]), timeout=30)
            result["took"] = time.monotonic() - t0
            cl.close()
        except Exception as e:   # noqa: BLE001
            result["reply"] = repr(e)

    os.kill(E.slapd.pid, signal.SIGSTOP)
    try:
        th = threading.Thread(target=waiting_auth)
        th.start()
        time.sleep(0.5)
        lat = []
        with Client("127.0.0.1", E.smtp_port, source=src()) as other:
            other.ehlo()
            for _ in range(10):
                t0 = time.monotonic()
                r = other.cmd("NOOP")
                lat.append(time.monotonic() - t0)
                c.true(r.startswith("250"), "NOOP answered", r)
        worst = max(lat)
        c.true(worst < 0.5, "other session's worst NOOP latency %.1f ms < 500 ms while AUTH "
               "waits on the paused directory" % (worst * 1000))
        th.join(40)
    finally:
        os.kill(E.slapd.pid, signal.SIGCONT)
    c.eq(result.get("reply"), AUTH_TEMP, "the waiting AUTH: 454 4.7.0 after ldap_timeout")
    c.true(result.get("took", 99) < 12, "within the timeout (took %.1f s)"
           % result.get("took", -1))
    return c.result()


def case_slapd_stopped(E):
    c = Check()
    slapd = "/usr/sbin/slapd"
    argv = [slapd, "-F", os.path.join(E.dir, "slapd.d"), "-h",
            "%s %s" % (E.slapd.uri, E.slapd.ldapi)]
    pidfile = os.path.join(E.dir, "slapd.pid")
    os.kill(E.slapd.pid, signal.SIGTERM)
    try:
        eventually(lambda: not os.path.exists(pidfile), 10)
        cl, r = auth_session(E, "alice", PW["alice"])
        if cl:
            cl.close()
        c.eq(r, AUTH_TEMP, "slapd down: 454 4.7.0")
        with Client("127.0.0.1", E.smtp_port, source=src()) as other:
            c.true(other.ehlo()[-1].startswith("250"), "the node keeps serving")
    finally:
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        eventually(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), 10)
        E.slapd.pid = int(open(pidfile).read().strip())
    c.true(eventually(lambda: auth_session(E, "alice", PW["alice"])[1] == OK_AUTH, 15),
           "AUTH works again once slapd is back")
    return c.result()


def case_no_secrets_logged(E):
    c = Check()
    logs = E.node.log()
    pdir = os.path.join(E.dir, "protocol")
    for f in os.listdir(pdir) if os.path.isdir(pdir) else []:
        with open(os.path.join(pdir, f), errors="replace") as fh:
            logs += fh.read()
    for user, pw in PW.items():
        c.true(pw not in logs, "%s's password in no log" % user)
        c.true(plain(user, pw) not in logs, "%s's AUTH PLAIN payload in no log" % user)
        c.true(b64(pw) not in logs, "%s's base64 password in no log" % user)
    return c.result()


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    with rnnode.Env("auth") as E:
        # A short directory timeout so the paused-slapd case ends quickly; Verbose protocol
        # logging on the submission connector so the no-secrets check reads that log too.
        with open(E.conf, "a") as f:
            f.write("ldap_timeout = 3\n")
        E.node.stop()
        E.node.start()
        E.modify_connector("Client node1", {"relayProtocolLoggingLevel": ["Verbose"]})
        E.node.reload()
        t.run("EHLO offers STARTTLS, AUTH only after TLS; AUTH before TLS 504 5.7.4",
              case_offer, E)
        t.run("STARTTLS + AUTH PLAIN alice: 235, relays, spool and stamp", case_good_plain, E)
        t.run("smtplib STARTTLS + AUTH LOGIN bob", case_smtplib_login, E)
        t.run("bad password, unknown user, filter-injection logins, NUL, 1 KiB: 535 after a "
              "delay", case_bad, E)
        t.run("MaxLogonFailures 3: fourth failure 421 4.7.0 and close", case_max_failures, E)
        t.run("a group granted Accept-Any-Sender by ACE (alice in Sales)", case_group_right, E)
        t.run("a deny ACE on a group removes Submit: 535 5.7.3", case_group_deny, E)
        t.run("send-as: bob as alice refused (P1, P2), alice as her alias accepted",
              case_send_as, E)
        t.run("STARTTLS with pipelined plaintext behind it", case_pipelined_starttls, E)
        t.run("slapd paused: AUTH 454 after the timeout, other sessions prompt",
              case_slapd_paused, E)
        t.run("slapd stopped: AUTH 454 4.7.0; back: AUTH works", case_slapd_stopped, E)
        t.run("passwords and AUTH payloads never logged", case_no_secrets_logged, E)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
