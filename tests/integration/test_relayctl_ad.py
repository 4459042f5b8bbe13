#!/usr/bin/env python3
"""relayctl permission add|remove|get on the AD profile against a real Samba AD DC.

One DC (tests/lib/samba_ad.py, in the test's own network namespace) serves every check:
the seed article's Add-ADPermission as one relayctl line (the ANONYMOUS LOGON object ACE
for ms-Exch-SMTP-Accept-Any-Recipient on "CRM Application": exactly that ACE added, the
rest of the DACL, the owner and the group unchanged), idempotent add and remove, a deny
for a nested group by account name and by DN (placed before the allows), get (table and
JSON), errors naming the unknown connector, principal or right, a write the server refuses
(the service account) with LDAP's words, --ldif applied by ldapmodify, an inherited ACE
(shown by get, never removed), and, through the
test build's RELAYNODE_FAULT hooks, a failure between read and write (nothing changes) and
a concurrent `samba-tool dsacl set` before and during the write (exit 3, reported). Last, a
running node (directory_profile = ad) enforces an ACE relayctl adds, and its removal,
without a restart.
The rightsGuids and SIDs the checks expect are read from the DC, never written here.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import samba_ad  # noqa: E402

samba_ad.enter_netns()

from rntest import ROOT, Tap, run  # noqa: E402

BUILD = os.environ.get("RELAYNODE_BUILD") or os.path.join(ROOT, "build", "asan")
RELAYCTL = os.environ.get("RELAYCTL") or os.path.join(BUILD, "relayctl")
ANON, ANON_NAME = "S-1-5-7", "NT AUTHORITY\\ANONYMOUS LOGON"
EXSEC = "S-1-9-1419165041-1139599005-3936102811-1022490595-23"
AAR, SUBMIT = "ms-Exch-SMTP-Accept-Any-Recipient", "ms-Exch-SMTP-Submit"
RACE = 3

T = Tap()


class Env:
    pass


def setup(dc):
    E = Env()
    E.dc = dc
    E.dir = tempfile.mkdtemp(prefix="rn-adperm-", dir=dc.dir)
    E.crm = dc.connector_dn("EX1", "CRM Application")
    E.client = dc.connector_dn("EX1", "Client EX1")
    cars = dc.search("CN=Extended-Rights," + dc.config_dn, "(objectClass=controlAccessRight)",
                     ["cn", "rightsGuid"], scope="one")
    E.guid = {e.first("cn"): e.first("rightsGuid") for e in cars}
    E.inner = dc.sid(dc.group_dn("Relay Deny Inner"))
    E.outer = dc.sid(dc.group_dn("Relay Deny Outer"))
    E.conf = {}
    for who, dn, pw in (("admin", dc.admin_dn, dc.admin_password),
                        ("svc", dc.svc_dn, dc.svc_password)):
        pwf = os.path.join(E.dir, who + ".pw")
        with open(pwf, "w") as f:
            f.write(pw + "\n")
        conf = os.path.join(E.dir, who + ".conf")
        with open(conf, "w") as f:
            f.write("uri = %s\nbind_dn = %s\nbind_password_file = %s\nldap_ca_file = %s\n"
                    "node = EX1\ndirectory_profile = ad\n" % (dc.uri, dn, pwf, dc.ca_file))
        E.conf[who] = conf
    return E


def ctl(E, *args, who="admin", env=None):
    e = dict(os.environ)
    e.pop("RELAYNODE_FAULT", None)
    e.update(env or {})
    return run([RELAYCTL] + list(args) + ["--config", E.conf[who]], env=e)


def aces(E, dn):
    return samba_ad.dacl_aces(E.dc.read_sd(dn))


def owner_group(E, dn):
    """The owner and group SIDs of dn's full descriptor (read as the admin, no SD flags)."""
    e = E.dc.search(dn, attrs=["nTSecurityDescriptor"], scope="base", bind="admin")
    sd = e[0].get("nTSecurityDescriptor")[0]
    out = []
    for at in (4, 8):
        off = int.from_bytes(sd[at:at + 4], "little")
        out.append(samba_ad.sid_str(sd[off:off + 8 + 4 * sd[off + 1]]) if off else None)
    return tuple(out)


def expect(name, res, code, out=None, err=None):
    rc, o, e = res
    ok = rc == code and (out is None or out in o) and (err is None or err in e)
    return T.ok(ok, name, "rc %r (want %r)\nstdout: %s\nstderr: %s" % (rc, code, o[-1500:],
                                                                      e[-1500:]))


def obj_ace(E, sid, right, deny=False):
    return (0x06 if deny else 0x05, 0x02, 0x100, E.guid[right], sid)


# ------------------------------------------------------------------------------ checks
def check_add(E):
    before, og = aces(E, E.crm), owner_group(E, E.crm)
    res = ctl(E, "permission", "add", "CRM Application", "--user", ANON_NAME,
              "--extended-rights", AAR)
    expect("add: the article's Add-ADPermission ANONYMOUS LOGON / %s on CRM Application "
           "is one relayctl line" % AAR, res, 0, out="added to " + E.crm)
    after = aces(E, E.crm)
    new = obj_ace(E, ANON, AAR)
    T.ok(Counter(after) - Counter(before) == Counter([new]) and
         not Counter(before) - Counter(after),
         "add: exactly that object ACE (0x05, CONTAINER_INHERIT, CONTROL_ACCESS, the "
         "directory's rightsGuid, S-1-5-7) is new; every other ACE is unchanged",
         "before %r\nafter %r" % (before, after))
    T.eq(owner_group(E, E.crm), og, "add: the owner and group are untouched (DACL-only write)")
    res = ctl(E, "permission", "add", "CRM Application", "--user", "Anonymous Logon",
              "--extended-rights", AAR)
    expect("add again: says the ACE is already present, exit 0", res, 0, err="already present")
    T.eq(aces(E, E.crm), after, "add again: the DACL is unchanged")
    E.crm_before = before


def check_get(E):
    rc, o, e = ctl(E, "permission", "get", "CRM Application", "--json")
    rows = json.loads(o) if rc == 0 else []
    anon = [r for r in rows if r["User"] == ANON_NAME]
    T.ok(rc == 0 and len(anon) == 1 and anon[0]["ExtendedRights"] == [AAR] and
         anon[0]["Deny"] is False and anon[0]["Inherited"] is False and
         anon[0]["Sid"] == ANON and anon[0]["Identity"] == "CRM Application",
         "get --json: the ANONYMOUS LOGON row (User, Sid, Deny, Inherited, ExtendedRights)",
         "rc %d %s %s" % (rc, o[-1500:], e))
    want = sum(1 for a in E.crm_before if a[0] == 0x05 and a[4] == EXSEC and a[3] in
               E.guid.values() and not a[1] & 0x08)
    exsec = [r for r in rows if r["Sid"] == EXSEC]
    T.ok(want > 0 and len(exsec) == want and
         all(r["User"] == "MS Exchange\\Externally Secured Servers" for r in exsec),
         "get --json: one row per Externally Secured Servers object ACE, by its well-known name",
         "want %d: %r" % (want, exsec))
    rc, o, e = ctl(E, "permission", "get", "CRM Application", "--user", "S-1-5-7")
    lines = [ln.split() for ln in o.splitlines()]
    T.ok(rc == 0 and lines and lines[0][:2] == ["Identity", "User"] and len(lines) == 2 and
         AAR in o and "ANONYMOUS LOGON" in o,
         "get --user (a SID): the table holds only that principal's row", o + e)


def check_remove(E):
    res = ctl(E, "permission", "remove", "CRM Application", "--user", ANON_NAME,
              "--extended-rights", AAR)
    expect("remove: the ACE is taken out", res, 0, out="removed from " + E.crm)
    T.eq(aces(E, E.crm), E.crm_before, "remove: the DACL is what it was before the add")
    res = ctl(E, "permission", "remove", "CRM Application", "--user", ANON_NAME,
              "--extended-rights", AAR)
    expect("remove again: says the ACE is not present, exit 0", res, 0, err="not present")
    T.eq(aces(E, E.crm), E.crm_before, "remove again: the DACL is unchanged")


def check_deny(E):
    before = aces(E, E.client)
    res = ctl(E, "permission", "add", "Client EX1", "--user", "RN\\Relay Deny Inner",
              "--extended-rights", "%s, %s" % (SUBMIT, AAR), "--deny")
    expect("deny: add --deny for the nested group RN\\Relay Deny Inner (two rights)", res, 0)
    res = ctl(E, "permission", "add", "Client EX1", "--user", E.dc.group_dn("Relay Deny Outer"),
              "--extended-rights", AAR, "--deny")
    expect("deny: add --deny for Relay Deny Outer by DN", res, 0)
    after = aces(E, E.client)
    new = [obj_ace(E, E.inner, SUBMIT, True), obj_ace(E, E.inner, AAR, True),
           obj_ace(E, E.outer, AAR, True)]
    T.ok(Counter(after) - Counter(before) == Counter(new) and
         not Counter(before) - Counter(after),
         "deny: exactly three deny object ACEs (type 0x06) for the groups' SIDs are new",
         "before %r\nafter %r" % (before, after))
    first_allow = min(i for i, a in enumerate(after) if a[0] in (0x00, 0x05))
    T.ok(all(after.index(a) < first_allow for a in new),
         "deny: the deny ACEs come before every allow ACE (canonical order)", repr(after))
    rc, o, e = ctl(E, "permission", "get", "Client EX1", "--user", "Relay Deny Inner", "--json")
    rows = json.loads(o) if rc == 0 else []
    T.ok(rc == 0 and sorted(r["ExtendedRights"][0] for r in rows) == sorted([SUBMIT, AAR]) and
         all(r["Deny"] is True and r["User"] == "RN\\Relay Deny Inner" for r in rows),
         "deny: get --user shows both deny rows as RN\\Relay Deny Inner", o + e)
    res = ctl(E, "permission", "remove", "Client EX1", "--user", "Relay Deny Inner",
              "--extended-rights", SUBMIT)
    expect("deny: remove without --deny does not touch the deny ACE", res, 0,
           err="not present")
    for user, rights in (("Relay Deny Inner", "%s,%s" % (SUBMIT, AAR)),
                         (E.dc.group_dn("Relay Deny Outer"), AAR)):
        ctl(E, "permission", "remove", "Client EX1", "--user", user, "--extended-rights",
            rights, "--deny")
    T.eq(aces(E, E.client), before, "deny: remove --deny restores the DACL")


def check_errors(E):
    before = aces(E, E.crm)
    res = ctl(E, "permission", "add", "No Such Connector", "--user", ANON_NAME,
              "--extended-rights", AAR)
    expect("errors: an unknown connector is named, exit 1", res, 1,
           err="connector 'No Such Connector' not found")
    res = ctl(E, "permission", "add", "CRM Application", "--user", "RN\\nobody-here",
              "--extended-rights", AAR)
    expect("errors: an unknown principal is named, exit 1", res, 1, err="RN\\nobody-here")
    res = ctl(E, "permission", "add", "CRM Application", "--user", "OTHER\\bob",
              "--extended-rights", AAR)
    expect("errors: an account of another domain is unknown, exit 1", res, 1,
           err="OTHER\\bob")
    res = ctl(E, "permission", "add", "CRM Application", "--user", ANON_NAME,
              "--extended-rights", "ms-Exch-SMTP-No-Such-Right")
    expect("errors: an unknown right is named, exit 2", res, 2,
           err="unknown extended right 'ms-Exch-SMTP-No-Such-Right'")
    res = ctl(E, "permission", "add", "CRM Application", "--user", ANON_NAME,
              "--extended-rights", AAR, who="svc")
    rc, o, e = res
    T.ok(rc == 1 and "Insufficient access" in e and E.crm in e,
         "errors: a write the server refuses (the read-only service account) gives LDAP's "
         "error, exit 1", "rc %d: %s%s" % (rc, o, e))
    T.eq(aces(E, E.crm), before, "errors: none of these changed the descriptor")


def check_ldif(E):
    before = aces(E, E.crm)
    rc, o, e = ctl(E, "permission", "add", "CRM Application", "--user", ANON_NAME,
                   "--extended-rights", AAR, "--ldif")
    T.ok(rc == 0 and "control: 1.2.840.113556.1.4.801 true:: MAMCAQQ=" in o and
         "replace: nTSecurityDescriptor" in o and aces(E, E.crm) == before,
         "--ldif: prints the modify with the SD flags control and writes nothing", o + e)
    rc2, o2, e2 = E.dc.ldapmodify(o)
    after = aces(E, E.crm)
    T.ok(rc == 0 and rc2 == 0 and Counter(after) - Counter(before) ==
         Counter([obj_ace(E, ANON, AAR)]) and not Counter(before) - Counter(after),
         "--ldif: ldapmodify applies it: the same single ACE", "%s%s\n%r" % (o2, e2, after))
    ctl(E, "permission", "remove", "CRM Application", "--user", ANON_NAME,
        "--extended-rights", AAR)
    T.eq(aces(E, E.crm), before, "--ldif: and relayctl removes it again")


def check_fault(E):
    before = E.dc.read_sd(E.crm)
    res = ctl(E, "permission", "add", "CRM Application", "--user", ANON_NAME,
              "--extended-rights", AAR, env={"RELAYNODE_FAULT": "adperm-fail-write"})
    expect("fault: a failure between read and write is reported, exit 2", res, 2,
           err="fault injected")
    T.ok(E.dc.read_sd(E.crm) == before, "fault: the descriptor is byte for byte unchanged")


def check_inherited(E):
    """An ACE on the connectors' container reaches CRM Application as an inherited ACE."""
    parent = E.crm.split(",", 1)[1]
    E.dc.dsacl_set(parent, "(OA;CI;CR;%s;;AU)" % E.guid[AAR])
    inh = (0x05, 0x02 | 0x10, 0x100, E.guid[AAR], "S-1-5-11")
    T.ok(inh in aces(E, E.crm), "inherited: the container's ACE is on the connector with "
         "INHERITED_ACE", repr(aces(E, E.crm)))
    rc, o, e = ctl(E, "permission", "get", "CRM Application", "--user",
                   "NT AUTHORITY\\Authenticated Users", "--json")
    rows = json.loads(o) if rc == 0 else []
    T.ok(rc == 0 and len(rows) == 1 and rows[0]["Inherited"] is True and
         rows[0]["ExtendedRights"] == [AAR], "inherited: get shows it with Inherited True",
         o + e)
    before = aces(E, E.crm)
    res = ctl(E, "permission", "remove", "CRM Application", "--user", "Authenticated Users",
              "--extended-rights", AAR)
    expect("inherited: remove does not take out an inherited ACE (not present, exit 0)", res,
           0, err="not present")
    T.eq(aces(E, E.crm), before, "inherited: the DACL is unchanged")


def race(E, point, concurrent_sddl):
    """relayctl add ANON/AAR paused at point while samba-tool writes concurrent_sddl."""
    d = tempfile.mkdtemp(prefix="race-", dir=E.dir)
    env = dict(os.environ, RELAYNODE_FAULT="adperm-pause-%s=%s" % (point, d))
    p = subprocess.Popen([RELAYCTL, "permission", "add", "CRM Application", "--user",
                          ANON_NAME, "--extended-rights", AAR, "--config", E.conf["admin"]],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(d, "paused")) and p.poll() is None and \
                time.monotonic() < deadline:
            time.sleep(0.02)
        paused = os.path.exists(os.path.join(d, "paused"))
        if paused:
            E.dc.dsacl_set(E.crm, concurrent_sddl)
        open(os.path.join(d, "resume"), "w").close()
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return paused, p.returncode, out, err


def check_race(E):
    before = aces(E, E.crm)
    auth = "(OA;CI;CR;%s;;AU)" % E.guid[SUBMIT]
    paused, rc, out, err = race(E, "after-read", auth)
    after = aces(E, E.crm)
    T.ok(paused and rc == RACE and "changed after it was read" in err,
         "race: a dsacl set between read and write is reported, exit 3",
         "paused %s rc %r\n%s%s" % (paused, rc, out, err))
    T.ok(Counter(after) - Counter(before) == Counter([obj_ace(E, "S-1-5-11", SUBMIT)]),
         "race: the concurrent writer's ACE stays and relayctl wrote nothing", repr(after))
    # During the write window (after the re-check): the write goes through, and the moved
    # version tells relayctl that another change landed meanwhile.
    everyone = "(OA;CI;CR;%s;;WD)" % E.guid[SUBMIT]
    paused, rc, out, err = race(E, "before-write", everyone)
    T.ok(paused and rc == RACE and "another writer" in err,
         "race: a dsacl set just before the modify is detected afterwards, exit 3",
         "paused %s rc %r\n%s%s" % (paused, rc, out, err))


def check_node(E):
    """A running node (directory_profile = ad, the service account) enforces what relayctl
    writes, without a restart: the seed article's Option 2 made with relayctl alone."""
    import rnnode
    import test_ad_profile as P           # write_conf, rcpt_reply (helper C's AD test)
    dc, dn = E.dc, E.dc.connector_dn("EX1", "CRM Option2")
    rc, out, err = dc.ldapmodify(
        "dn: %s\nchangetype: add\nobjectClass: msExchSmtpReceiveConnector\ncn: CRM Option2\n"
        "msExchSmtpReceiveEnabled: TRUE\nmsExchSmtpReceiveBindings: 0.0.0.0:25\n"
        "msExchSmtpReceiveRemoteIPRanges: 127.0.2.57\nmsExchSMTPReceiveInboundSecurityFlag: 1\n"
        "msExchSmtpReceiveTarpitInterval: 0\n" % dn)
    T.ok(rc == 0, "node: ldapmodify adds a connector 'CRM Option2' (Tls, no ACE of ours)",
         out + err)
    res = ctl(E, "permission", "add", "CRM Option2", "--user", ANON_NAME, "--extended-rights",
              "ms-Exch-SMTP-Submit, ms-Exch-SMTP-Accept-Any-Sender, "
              "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender, ms-Exch-Accept-Headers-Routing")
    expect("node: relayctl gives ANONYMOUS LOGON the AnonymousUsers rights on it", res, 0)
    spool = os.path.join(E.dir, "spool")
    os.makedirs(spool, exist_ok=True)
    conf = os.path.join(E.dir, "relaynode.conf")
    P.write_conf(conf, dc, spool)
    node = rnnode.Node(conf, ports=(25, 587), log_path=os.path.join(E.dir, "node.out"))
    node.start(timeout=30)
    try:
        def becomes(want):
            return rnnode.eventually(lambda: P.rcpt_reply("127.0.2.57", "x@outside.example")
                                     == want, 30, 0.1)
        T.ok(becomes(rnnode.NO_RELAY), "node: an anonymous client of CRM Option2 relaying "
             "outside: 550 5.7.1 Unable to relay", node.log_tail())
        t1 = time.monotonic()
        res = ctl(E, "permission", "add", "CRM Option2", "--user", ANON_NAME,
                  "--extended-rights", AAR)
        T.ok(res[0] == 0 and becomes(rnnode.RCPT_OK), "node: relayctl permission add %s: the "
             "running node relays (no restart)" % AAR, "%r\n%s" % (res, node.log_tail()))
        T.diag("relayctl add -> node relays in %.2f s" % (time.monotonic() - t1))
        res = ctl(E, "permission", "remove", "CRM Option2", "--user", ANON_NAME,
                  "--extended-rights", AAR)
        T.ok(res[0] == 0 and becomes(rnnode.NO_RELAY), "node: relayctl permission remove: "
             "550 5.7.1 again", "%r\n%s" % (res, node.log_tail()))
    finally:
        node.stop()


def main():
    t0 = time.monotonic()
    dc = samba_ad.SambaAD()
    try:
        dc.start()
    except Exception as e:
        T.ok(False, "samba DC starts", str(e))
        dc.stop()
        return T.done()
    T.diag("DC ready in %.1f s (template build %.1f s)" % (time.monotonic() - t0,
                                                           dc.template_seconds))
    try:
        E = setup(dc)
        for fn in (check_add, check_get, check_remove, check_deny, check_errors, check_ldif,
                   check_fault, check_inherited, check_race, check_node):
            t1 = time.monotonic()
            try:
                fn(E)
                T.diag("%s: %.1f s" % (fn.__name__, time.monotonic() - t1))
            except Exception:
                T.ok(False, "%s ran to the end" % fn.__name__, traceback.format_exc())
    finally:
        dc.stop()
    T.diag("test time %.1f s" % (time.monotonic() - t0))
    return T.done()


if __name__ == "__main__":
    sys.exit(main())
