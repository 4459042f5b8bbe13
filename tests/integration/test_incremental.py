#!/usr/bin/env python3
"""Incremental reloads against a real slapd (issue 17): the node applies the RFC 4533
watcher's entries to its store instead of reloading the whole relay subtree, and in
RELAYNODE_VERIFY_INCREMENTAL=1 mode (fault-injection build) runs a full load after every
incremental one and compares the two snapshots' canonical dumps.

  - 150 random changes through the real ldapmodify, one at a time: receive connectors of
    the node and of its site added, modified (ranges that overlap, so some pairs refuse each
    other; ACEs; enabled), deleted; accepted domains and send connectors added, modified,
    renamed, deleted; the node's certificate fingerprints; a user's alias (outside the relay
    subtree: the recipient set); after each, the node logs one incremental load and the
    verification finds 0 mismatches;
  - behaviour follows: the CRM connector's Accept-Any-Recipient grant toggles the RCPT reply,
    a new alias is accepted as a recipient;
  - what the store cannot place falls back to a full load (a container renamed with entries
    beneath), and SIGHUP reloads in full;
  - a change made while a full load runs is enforced before that load ends and is still
    enforced after it: the node again with RELAYNODE_FAULT_SLEEP=full-load=6000 (the full
    load holds its result 6 s after reading, so the change is not in it), SIGHUP, then the
    grant: a side job applies it at once, and the full load's store gets it replayed.
"""
import os
import random
import re
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rncluster  # noqa: E402
import rnnode  # noqa: E402
import rntest  # noqa: E402
from rnnode import eventually  # noqa: E402

RCPT_OK = "250 2.1.5 Recipient OK"
NO_RELAY = "550 5.7.1 Unable to relay"
CHANGES = 150
DOMAINS = "cn=Accepted Domains,ou=Relay,dc=example,dc=com"
SENDS = "cn=Send Connectors,ou=Relay,dc=example,dc=com"
SITE = rncluster.SITE
NODE = "cn=node1," + SITE
RANGES = ["10.77.1.0/24", "10.77.2.0/24", "10.77.3.7", "10.77.0.0/16"]
ACES = ["allow; NT AUTHORITY\\ANONYMOUS LOGON; ms-Exch-SMTP-Submit",
        "allow; NT AUTHORITY\\Authenticated Users; ms-Exch-SMTP-Submit",
        "deny; Everyone; ms-Exch-SMTP-Submit"]


def loads(node):
    """(incremental loads of changes, mismatches, verified ok, full loads) so far."""
    log = node.log()
    # An incremental load of no change is news of one already applied (the watcher's own
    # version report): not the load a change waits for.
    return (log.count("config incremental-load") - log.count("incremental-load changes=0 "),
            log.count("verify=mismatch"), log.count("verify=ok"),
            log.count("config full-load"))


class World:
    """The random entries this test made, so changes can pick one that exists."""

    def __init__(self, slapd, rng):
        self.s, self.r = slapd, rng
        self.conns, self.domains, self.sends, self.n = {}, {}, {}, 0
        self.certs = []

    def connector(self):
        r = self.r
        if self.conns and r.random() < 0.6:
            dn = r.choice(list(self.conns))
            if r.random() < 0.25:
                del self.conns[dn]
                return "dn: %s\nchangetype: delete\n" % dn
            attr, val = r.choice([("relayRemoteIPRange", r.choice(RANGES)),
                                  ("relayEnabled", r.choice(["TRUE", "FALSE"])),
                                  ("relayAce", r.choice(ACES)),
                                  ("relayMaxMessageSize", str(r.choice([1048576, 12])))])
            return "dn: %s\nchangetype: modify\nreplace: %s\n%s: %s\n-\n" % (dn, attr, attr, val)
        self.n += 1
        dn = "cn=incr-c%d,%s" % (self.n, r.choice([NODE, SITE]))
        self.conns[dn] = True
        return ("dn: %s\nchangetype: add\nobjectClass: relayReceiveConnector\ncn: incr-c%d\n"
                "relayBinding: 0.0.0.0:%d\nrelayRemoteIPRange: %s\nrelayAce: %s\n"
                % (dn, self.n, self.s.smtp_port, r.choice(RANGES), r.choice(ACES)))

    def domain(self):
        r = self.r
        if self.domains and r.random() < 0.6:
            dn = r.choice(list(self.domains))
            what = r.random()
            if what < 0.25:
                del self.domains[dn]
                return "dn: %s\nchangetype: delete\n" % dn
            if what < 0.45:                 # a rename: same entryUUID, another DN
                del self.domains[dn]
                self.n += 1
                self.domains["cn=incr-d%d,%s" % (self.n, DOMAINS)] = True
                return ("dn: %s\nchangetype: modrdn\nnewrdn: cn=incr-d%d\ndeleteoldrdn: 1\n"
                        % (dn, self.n))
            return ("dn: %s\nchangetype: modify\nreplace: relayDomainType\n"
                    "relayDomainType: %s\n-\n" % (dn, r.choice(["Authoritative", "InternalRelay",
                                                              "ExternalRelay"])))
        self.n += 1
        dn = "cn=incr-d%d,%s" % (self.n, DOMAINS)
        self.domains[dn] = True
        return ("dn: %s\nchangetype: add\nobjectClass: relayAcceptedDomain\ncn: incr-d%d\n"
                "relayDomainName: %s\nrelayDomainType: %s\n"
                % (dn, self.n, r.choice(["a.incr.example", "b.incr.example", "*.c.incr.example"]),
                   r.choice(["Authoritative", "InternalRelay", "ExternalRelay"])))

    def send(self):
        r = self.r
        if self.sends and r.random() < 0.5:
            dn = r.choice(list(self.sends))
            if r.random() < 0.3:
                del self.sends[dn]
                return "dn: %s\nchangetype: delete\n" % dn
            return ("dn: %s\nchangetype: modify\nreplace: relayCost\nrelayCost: %d\n-\n"
                    % (dn, r.randint(1, 5)))
        self.n += 1
        dn = "cn=incr-s%d,%s" % (self.n, SENDS)
        self.sends[dn] = True
        return ("dn: %s\nchangetype: add\nobjectClass: relaySendConnector\ncn: incr-s%d\n"
                "relayAddressSpace: %s\nrelaySmartHost: 127.0.0.1:%d\n"
                % (dn, self.n, r.choice(["a.incr.example", "*"]), r.randint(2000, 3000)))

    def cert(self):
        if self.certs and self.r.random() < 0.4:
            v = self.certs.pop()
            return ("dn: %s\nchangetype: modify\ndelete: relayCertificateSha256\n"
                    "relayCertificateSha256: %s\n-\n" % (NODE, v))
        v = "%064x" % self.r.getrandbits(256)
        self.certs.append(v)
        return ("dn: %s\nchangetype: modify\nadd: relayCertificateSha256\n"
                "relayCertificateSha256: %s\n-\n" % (NODE, v))

    def alias(self):
        self.n += 1
        return ("dn: %s\nchangetype: modify\nreplace: relayMailAlias\n"
                "relayMailAlias: incr%d@example.com\n-\n" % (self.s.user_dn("alice"), self.n))

    def random_change(self):
        return self.r.choice([self.connector] * 4 + [self.domain] * 3 + [self.send] * 2 +
                             [self.cert, self.alias])()


def rcpt(port, address, source="127.0.0.1"):
    try:
        with rnnode.Client("127.0.0.1", port, source=source, timeout=15) as cl:
            cl.ehlo()
            cl.cmd("MAIL FROM:<app@example.com>")
            return cl.cmd("RCPT TO:<%s>" % address)
    except (OSError, rnnode.Closed) as e:
        return "error: %s" % e


def apply(t, slapd, node, ldif, what):
    """One ldapmodify, then wait for the node's next load (incremental or full)."""
    before = sum(loads(node)[i] for i in (0, 3))
    rc, out, err = slapd.ldapmodify(ldif)
    if rc != 0:
        t.ok(False, "ldapmodify: %s" % what, err)
        return False
    return eventually(lambda: sum(loads(node)[i] for i in (0, 3)) > before, 10, 0.05)


def beside_full_load(t, slapd, node):
    """A change during a (slowed) full load: enforced before it ends, kept after it."""
    node.stop()
    node.env = {"RELAYNODE_VERIFY_INCREMENTAL": "1", "RELAYNODE_FAULT_SLEEP": "full-load=6000"}
    mark = len(node.log())
    node.start(timeout=30)
    # The first load, then the watcher's first refresh ("started over"), each read in full:
    # once one of them took a change the node is idle, with a store, for the SIGHUP.
    t.ok(eventually(lambda: "cluster watcher-up mode=persist" in node.log()[mark:] and
                    re.search(r"config full-load changes=[1-9]", node.log()[mark:]), 30),
         "the slowed node serves", node.log_tail(10))
    t.eq(rncluster.crm_rcpt(slapd.smtp_port), NO_RELAY, "CRM server refused (no grant)")
    full0 = loads(node)[3]
    node.signal(signal.SIGHUP)
    time.sleep(1.5)                   # the full load has read: the grant is not in it
    rc, _, err = slapd.ldapmodify(rncluster.crm_ldif([1], grant=True))
    t.ok(rc == 0, "ldapmodify grant during the full load", err)
    t.ok(eventually(lambda: rncluster.crm_rcpt(slapd.smtp_port) == RCPT_OK, 10, 0.1),
         "the grant is enforced during the full load", node.log_tail(10))
    t.ok(loads(node)[3] == full0, "... before the full load ended", node.log_tail(10))
    t.ok("beside=full-load" in node.log()[mark:], "applied by a side job",
         "\n".join(x[:300] for x in node.log()[mark:].splitlines() if " config " in x))
    t.ok(eventually(lambda: loads(node)[3] > full0, 20, 0.1), "the full load ends",
         node.log_tail(10))
    last = node.log().split("config full-load")[-1].splitlines()[0]
    t.ok("replay-onto-full" in node.log() and "replayed=yes" in last,
         "the side job's change was replayed onto the full load's store", last)
    t.eq(rncluster.crm_rcpt(slapd.smtp_port), RCPT_OK, "the grant is still enforced after it")
    # The next change is incremental again, from the full load's store, and verified: an
    # unrelated one, after which the grant must still be there (the store has it too).
    m0 = loads(node)[1]
    t.ok(apply(t, slapd, node, "dn: %s\nchangetype: modify\nadd: relayMailAlias\n"
               "relayMailAlias: beside.alias@example.com\n-\n" % slapd.user_dn("bob"),
               "alias after"), "an unrelated change after the full load applied by a load")
    t.ok(eventually(lambda: rcpt(slapd.smtp_port, "beside.alias@example.com")
                    .startswith("250"), 5, 0.1), "that alias is a recipient")
    t.eq(rncluster.crm_rcpt(slapd.smtp_port), RCPT_OK, "the grant survives that load")
    t.ok(apply(t, slapd, node, rncluster.crm_ldif([1], grant=False), "revoke after"),
         "revoke after the full load applied by a load")
    t.ok(eventually(lambda: rncluster.crm_rcpt(slapd.smtp_port) == NO_RELAY, 5, 0.1),
         "CRM server refused after that revoke")
    t.ok(eventually(lambda: loads(node)[2] > 0, 5, 0.1) and loads(node)[1] == m0,
         "verified against a full load: no mismatch", node.log_tail(10))


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    seed = int(os.environ.get("RN_SEED") or time.time())
    t.diag("seed %d (RN_SEED to replay)" % seed)
    slapd = rntest.Slapd()
    node = None
    try:
        slapd.start()
        node = rnnode.Node(slapd.conf, ports=[slapd.smtp_port],
                           env={"RELAYNODE_VERIFY_INCREMENTAL": "1"})
        node.start()
        t.ok(eventually(lambda: "cluster watcher-up mode=persist" in node.log(), 10),
             "the watcher runs refreshAndPersist", node.log_tail(10))
        t.ok(node.wait_log("config incremental mode=on verify=on"), "incremental and verify on")
        t.eq(rncluster.crm_rcpt(slapd.smtp_port), RCPT_OK, "CRM server relays (the example)")
        t.ok(apply(t, slapd, node, rncluster.crm_ldif([1], grant=False), "revoke"),
             "revoke applied by a load")
        t.ok(eventually(lambda: rncluster.crm_rcpt(slapd.smtp_port) == NO_RELAY, 5, 0.1),
             "CRM server refused after the revoke")

        # Behaviour: the grant arrives incrementally and the reply follows.
        t.ok(apply(t, slapd, node, rncluster.crm_ldif([1], grant=True), "grant"),
             "grant applied by a load")
        t.ok(eventually(lambda: rncluster.crm_rcpt(slapd.smtp_port) == RCPT_OK, 5, 0.1),
             "CRM server relays after the grant")
        inc0 = loads(node)[0]
        t.ok(inc0 >= 1, "that load was incremental", node.log_tail(10))

        w = World(slapd, random.Random(seed))
        applied = missed = 0
        start = time.monotonic()
        for i in range(CHANGES):
            ldif = w.random_change()
            m0 = loads(node)[1]
            if apply(t, slapd, node, ldif, "change %d" % i):
                applied += 1
            else:
                missed += 1
            if os.environ.get("RN_DEBUG") and loads(node)[1] > m0:
                t.diag("mismatch after:\n" + ldif)
        took = time.monotonic() - start
        inc, mism, ok, full = loads(node)
        t.diag("%d changes in %.1f s: %d incremental loads (%d verified equal), %d full"
               % (CHANGES, took, inc - inc0, ok, full))
        t.eq(missed, 0, "every change was followed by a load")
        t.eq(mism, 0, "incremental and full snapshots never differ")
        for line in node.log().splitlines():
            if "verify=mismatch" in line:
                t.diag(line[:1500])
        t.ok(ok >= CHANGES // 2, "most loads were verified against a full load (%d)" % ok)
        t.ok(inc - inc0 >= CHANGES // 2, "most changes were applied incrementally (%d)"
             % (inc - inc0))

        # Behaviour again after the random changes: remove the grant, add an alias.
        apply(t, slapd, node, rncluster.crm_ldif([1], grant=False), "remove grant")
        t.ok(eventually(lambda: rncluster.crm_rcpt(slapd.smtp_port) == NO_RELAY, 5, 0.1),
             "CRM server refused after the grant is removed")
        apply(t, slapd, node, "dn: %s\nchangetype: modify\nadd: relayMailAlias\n"
              "relayMailAlias: fresh.alias@example.com\n-\n" % slapd.user_dn("bob"), "alias")
        t.ok(eventually(lambda: rcpt(slapd.smtp_port, "fresh.alias@example.com")
                        .startswith("250"), 5, 0.1), "a new alias is a recipient")

        # A container renamed with a send connector beneath: only a full load can say.
        full0 = loads(node)[3]
        apply(t, slapd, node, "dn: %s\nchangetype: modrdn\nnewrdn: cn=Send Connectors 2\n"
              "deleteoldrdn: 1\n" % SENDS, "rename container")
        t.ok(eventually(lambda: loads(node)[3] > full0, 5, 0.1) and
             "reason=\"" in node.log().split("config full-load")[-1],
             "a renamed container falls back to a full load", node.log_tail(5))
        full1 = loads(node)[3]
        node.signal(signal.SIGHUP)
        t.ok(eventually(lambda: loads(node)[3] > full1, 5, 0.1) and
             "reason=requested" in node.log().split("config full-load")[-1],
             "SIGHUP reloads in full")
        t.eq(loads(node)[1], 0, "still no mismatch")
        beside_full_load(t, slapd, node)
        node.stop()
        node = None
    finally:
        if node:
            node.stop()
        slapd.stop()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
