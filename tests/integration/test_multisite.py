#!/usr/bin/env python3
"""Two sites (deploy/multisite/multisite.sh): two slapd servers in OpenLDAP multi-provider
replication, node1 attached to site A's server, node2 to site B's.

  - a change written on A reaches B (and one written on B reaches A), measured;
  - granting Accept-Any-Recipient to ANONYMOUS LOGON on node2's connector, written on site A,
    makes node2 (site B) relay; removing it on site B makes node2 refuse again;
  - revoking Accept-Authoritative-Domain-Sender on node1's Default connector, written on
    site B, is enforced by node1 (site A);
  - both nodes end on the same snapshot version (the replicated contextCSN set).
No SIGHUP anywhere: each node watches its own server (refreshAndPersist) and the two nodes
share one cluster bus (CURVE keys and endpoints in their relayNode entries); a NOTICE from
the other site that arrives before replication waits until the local replica has it.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rnnode  # noqa: E402
import rntest  # noqa: E402
from rnnode import Check, Client, eventually, queued_id  # noqa: E402

ROOT = rnnode.ROOT
MULTISITE = os.path.join(ROOT, "deploy", "multisite", "multisite.sh")
ADMIN = "cn=admin,dc=example,dc=com"
NODE2_CONN = ("cn=Default node2,cn=node2,cn=Site-B,cn=Sites,ou=Relay,dc=example,dc=com")
NODE1_CONN = ("cn=Default node1,cn=node1,cn=Default-Site,cn=Sites,ou=Relay,dc=example,dc=com")
ANON = "NT AUTHORITY\\ANONYMOUS LOGON"
BASE_RIGHTS = ["ms-Exch-SMTP-Submit", "ms-Exch-SMTP-Accept-Any-Sender",
               "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender",
               "ms-Exch-Accept-Headers-Routing"]
NO_RELAY = "550 5.7.1 Unable to relay"
RCPT_OK = "250 2.1.5 Recipient OK"
ANON_SEND_AS = "550 5.7.1 Anonymous client does not have permissions to send as this sender"


class Site:
    def __init__(self, d):
        self.dir = d
        self.env = rntest.read_env(os.path.join(d, "env"))
        self.uri = self.env["SLAPD_URI"]
        self.pw = self.env["ADMIN_PW_FILE"]

    def modify(self, ldif):
        r = subprocess.run(["ldapmodify", "-x", "-H", self.uri, "-D", ADMIN, "-y", self.pw],
                           input=ldif.encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        if r.returncode != 0:
            raise RuntimeError("ldapmodify on %s: %s" % (self.uri, r.stderr.decode()))

    def config_read(self, dn, attr):
        r = subprocess.run(["ldapsearch", "-Q", "-LLL", "-o", "ldif-wrap=no", "-Y", "EXTERNAL",
                            "-H", self.env["SLAPD_LDAPI"], "-s", "base", "-b", dn, attr],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return [l.split(": ", 1)[1] for l in r.stdout.decode().splitlines()
                if l.lower().startswith(attr.lower() + ": ")]

    def config_replace(self, dn, attr, value):
        r = subprocess.run(["ldapmodify", "-Q", "-Y", "EXTERNAL", "-H", self.env["SLAPD_LDAPI"]],
                           input=("dn: %s\nchangetype: modify\nreplace: %s\n%s: %s\n"
                                  % (dn, attr, attr, value)).encode(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if r.returncode != 0:
            raise RuntimeError("cn=config modify: %s" % r.stderr.decode())

    def read(self, dn, attr):
        r = subprocess.run(["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", self.uri,
                            "-D", ADMIN, "-y", self.pw, "-s", "base", "-b", dn, attr],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return [l.split(": ", 1)[1] for l in r.stdout.decode().splitlines()
                if l.lower().startswith(attr.lower() + ": ")]


def set_anon_rights(site, dn, rights):
    site.modify("dn: %s\nchangetype: modify\nreplace: relayAce\nrelayAce: allow; %s; %s\n"
                % (dn, ANON, ", ".join(rights)))


def default_node1_aces(site):
    return site.read(NODE1_CONN, "relayAce")


def rcpt_reply(port, rcpt, sender="app@outside.example"):
    with Client("127.0.0.1", port, source="127.0.0.1") as cl:
        cl.ehlo()
        cl.cmd("MAIL FROM:<%s>" % sender)
        return cl.cmd("RCPT TO:<%s>" % rcpt)


def final_reply(port, sender, rcpt, subject):
    with Client("127.0.0.1", port, source="127.0.0.1") as cl:
        r = cl.send_message(sender, [rcpt], "From: <%s>\r\nSubject: %s\r\n\r\nx\r\n"
                            % (sender, subject))
        return r[-1]


def replication_ms(src, dst, dn, marker):
    src.modify("dn: %s\nchangetype: modify\nreplace: description\ndescription: %s\n"
               % (dn, marker))
    t0 = time.monotonic()
    while time.monotonic() - t0 < 10:
        if dst.read(dn, "description") == [marker]:
            return (time.monotonic() - t0) * 1000
        time.sleep(0.005)
    return None


def version_of(node):
    vs = re.findall(r"config (?:load|reload) version=(\S+)", node.log())
    return vs[-1] if vs else None


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    work = tempfile.mkdtemp(prefix="multisite.")
    nodes = []
    try:
        r = subprocess.run(["bash", MULTISITE, "start", work], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        if not t.ok(r.returncode == 0, "multisite.sh start: two replicating servers",
                    r.stdout.decode(errors="replace")):
            return t.done()
        top = rntest.read_env(os.path.join(work, "env"))
        a, b = Site(top["SITE_A_DIR"]), Site(top["SITE_B_DIR"])
        p2 = int(top["NODE2_SMTP_PORT"])
        p1 = int(a.env["SMTP_PORT"])

        ms = replication_ms(a, b, NODE2_CONN, "a-to-b-%d" % os.getpid())
        t.ok(ms is not None, "a change written on A is on B (%s ms)"
             % ("%.0f" % ms if ms is not None else "never"))
        ms = replication_ms(b, a, NODE2_CONN, "b-to-a-%d" % os.getpid())
        t.ok(ms is not None, "a change written on B is on A (%s ms)"
             % ("%.0f" % ms if ms is not None else "never"))

        n1 = rnnode.Node(top["NODE1_CONF"], ports=[p1])
        n2 = rnnode.Node(top["NODE2_CONF"], ports=[p2])
        for n in (n1, n2):
            n.start()
            nodes.append(n)

        t.ok(rcpt_reply(p2, "x@outside.example") == NO_RELAY,
             "node2 (site B): relay refused at first")
        set_anon_rights(a, NODE2_CONN, BASE_RIGHTS + ["ms-Exch-SMTP-Accept-Any-Recipient"])

        t.ok(eventually(lambda: all("cluster bus-start" in n.log() for n in nodes), 10),
             "both nodes started their cluster bus")

        def relays():
            return rcpt_reply(p2, "x@outside.example") == RCPT_OK
        t.ok(eventually(relays, 15), "grant written on site A: node2 (site B) relays")
        set_anon_rights(b, NODE2_CONN, BASE_RIGHTS)

        def refuses():
            return rcpt_reply(p2, "x@outside.example") == NO_RELAY
        t.ok(eventually(refuses, 15), "revoke written on site B: node2 refuses again")

        aces = default_node1_aces(b)
        kept = []
        for ace in aces:
            if ANON in ace and "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender" in ace:
                parts = [p.strip() for p in ace.split(";")]
                rights = [x.strip() for x in parts[2].split(",")
                          if x.strip() != "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender"]
                ace = "%s; %s; %s" % (parts[0], parts[1], ", ".join(rights))
            kept.append(ace)
        b.modify("dn: %s\nchangetype: modify\nreplace: relayAce\n%s\n"
                 % (NODE1_CONN, "\n".join("relayAce: " + x for x in kept)))

        def send_as_refused():
            return final_reply(p1, "alice@example.com", "bob@example.com",
                               "ms-%d" % os.getpid()) == ANON_SEND_AS
        ok = eventually(send_as_refused, 30)
        t.ok(ok, "revoke written on site B: node1 (site A) refuses anonymous alice@example.com",
             "" if ok else "A has: %s\nB has: %s\nnode1 log:\n%s" % (
                 default_node1_aces(a), default_node1_aces(b), n1.log_tail(15)))

        def same_version():
            v1, v2 = version_of(n1), version_of(n2)
            return v1 and v1 == v2 and v1 or None
        v = eventually(same_version, 15)
        t.ok(v, "both nodes run the same snapshot version",
             "node1 %s / node2 %s" % (version_of(n1), version_of(n2)))
        # Rule 3 of the spec: a node whose replica lags waits for it. Site B stops
        # replicating (its syncrepl points at a closed port); a grant written on A is applied
        # by node1, whose news reaches node2 over the bus: node2 waits and keeps refusing
        # (its own server does not have the change), and applies it once B has replicated.
        sr = b.config_read("olcDatabase={1}mdb,cn=config", "olcSyncrepl")
        t.ok(len(sr) == 1 and "provider=" in sr[0], "site B's syncrepl stanza read", repr(sr))
        orig = re.sub(r"^\{\d+\}", "", sr[0]) if sr else ""
        b.config_replace("olcDatabase={1}mdb,cn=config", "olcSyncrepl",
                         re.sub(r"provider=\S+", "provider=ldap://127.0.0.1:9/", orig))
        time.sleep(1)                 # the consumer's old session to A is gone for sure
        mark2 = len(n2.log())
        marks = [len(n.log()) for n in nodes]
        set_anon_rights(a, NODE2_CONN, BASE_RIGHTS + ["ms-Exch-SMTP-Accept-Any-Recipient"])
        waited = eventually(lambda: re.search(r"cluster wait from=node1 ", n2.log()[mark2:]), 10)
        t.ok(waited, "replication to B paused, grant written on A: node2 hears it from node1 "
             "and waits for its replica", n2.log_tail(20))
        time.sleep(1.5)               # heartbeats go on; node2 must still not apply it
        t.ok(rcpt_reply(p2, "x@outside.example") == NO_RELAY and
             "ms-Exch-SMTP-Accept-Any-Recipient" not in " ".join(b.read(NODE2_CONN, "relayAce")),
             "while B lags, node2 keeps B's config (refuses relay): it never loads from "
             "elsewhere")
        b.config_replace("olcDatabase={1}mdb,cn=config", "olcSyncrepl", orig)
        t.ok(eventually(relays, 30), "replication resumed: node2 relays once B has the grant")
        for n in nodes:
            log = n.log()
            t.ok("AddressSanitizer" not in log and "runtime error:" not in log,
                 "no sanitizer report in %s's log" % os.path.basename(os.path.dirname(n.conf)))
        # The log is written by its own thread: a SIGHUP's line would come before the
        # reload's, so wait for both nodes' reload of the grant first.
        t.ok(all(n.wait_log("config reload version=", since=m) for n, m in zip(nodes, marks)),
             "both nodes logged their reload of the grant")
        t.ok(not any("reload-requested" in n.log() for n in nodes),
             "no node was sent SIGHUP")
    finally:
        for n in nodes:
            n.stop()
        subprocess.run(["bash", MULTISITE, "stop", work], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
