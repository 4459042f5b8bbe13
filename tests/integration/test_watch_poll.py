#!/usr/bin/env python3
"""A directory without RFC 4533 (slapd without syncprov, via fixture.sh --no-syncprov): its
contextCSN was written once by slapadd -w and never moves again, which is also what a node
sees on a directory that keeps no contextCSN at all (Active Directory has
highestCommittedUSN instead).

  - the watcher falls back to polling (the Sync Request control is refused);
  - a change made with ldapmodify is enforced without SIGHUP: the poll's change mark (newest
    entryCSN, modifyTimestamp and entry count) moved although the version did not;
  - with the watcher off, SIGHUP applies a change although the version is the same (the
    snapshot's content hash differs): before, such a reload was skipped as "unchanged".
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import rncluster  # noqa: E402
import rnnode  # noqa: E402
import rntest  # noqa: E402
from rnnode import eventually  # noqa: E402

RCPT_OK = "250 2.1.5 Recipient OK"
NO_RELAY = "550 5.7.1 Unable to relay"


def main():
    if rnnode.missing_node():
        return 1
    t = rntest.Tap()
    slapd = rntest.Slapd(fixture_args=["--no-syncprov"])
    node = None
    try:
        slapd.start()
        with open(slapd.conf, "a") as f:
            f.write("directory_poll_interval = 1\n")
        node = rnnode.Node(slapd.conf, ports=[slapd.smtp_port])
        node.start()
        t.ok(eventually(lambda: "cluster watcher-up mode=poll" in node.log(), 10),
             "no syncprov: the watcher polls", node.log_tail(10))
        t.eq(rncluster.crm_rcpt(slapd.smtp_port), RCPT_OK, "CRM server relays (Option 1)")
        v0 = slapd.search(slapd.base_dn, "(objectClass=*)", ["contextCSN"], scope="base",
                          bind="admin")[0].get("contextCSN")
        rc, out, err = slapd.ldapmodify(rncluster.crm_ldif([1], grant=False))
        t.ok(rc == 0, "ldapmodify: CRM without Accept-Any-Recipient", err)
        v1 = slapd.search(slapd.base_dn, "(objectClass=*)", ["contextCSN"], scope="base",
                          bind="admin")[0].get("contextCSN")
        t.ok(v0 == v1, "the directory's contextCSN did not move (%s)" % v1)
        ok = eventually(lambda: rncluster.crm_rcpt(slapd.smtp_port) == NO_RELAY, 15, 0.3)
        t.ok(ok, "enforced without SIGHUP (poll's change mark)", node.log_tail(10))
        # The log writer is its own thread: wait for both lines, then read the log once
        # (the absent check below runs after them).
        t.ok(node.wait_log("cluster directory-changed mark=")
             and node.wait_log("config changed-same-version"),
             "logged: directory-changed, changed-same-version", node.log_tail(10))
        t.ok("reload-requested" not in node.log(), "no SIGHUP involved")
        node.stop()
        with open(slapd.conf, "a") as f:
            f.write("directory_watch = off\n")
        node = rnnode.Node(slapd.conf, ports=[slapd.smtp_port])
        node.start()
        rc, out, err = slapd.ldapmodify(rncluster.crm_ldif([1], grant=True))
        t.ok(rc == 0, "watcher off; ldapmodify grants the relay right", err)
        node.reload()
        ok = eventually(lambda: rncluster.crm_rcpt(slapd.smtp_port) == RCPT_OK, 10, 0.3)
        t.ok(ok, "SIGHUP applies it although the version is unchanged", node.log_tail(10))
        rc = node.stop()
        t.ok(rc == 0 and "AddressSanitizer" not in node.log(), "node exits 0, no sanitizer "
             "report")
        node = None
    finally:
        if node is not None:
            node.stop()
        slapd.stop()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
