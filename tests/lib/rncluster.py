"""rncluster: what the cluster test and the cluster benchmark share about the clusters
deploy/cluster/cluster.py makes: the CRM connector of each node and the one-ldapmodify
change that grants or removes ms-Exch-SMTP-Accept-Any-Recipient for ANONYMOUS LOGON on all
of them (Option 2 of the seed article, auth Tls only)."""

SITE = "cn=Default-Site,cn=Sites,ou=Relay,dc=example,dc=com"
ANON = "NT AUTHORITY\\ANONYMOUS LOGON"
BASE_ACE = ("allow; %s; ms-Exch-SMTP-Submit, ms-Exch-SMTP-Accept-Any-Sender, "
            "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender, ms-Exch-Accept-Headers-Routing"
            % ANON)
GRANT_ACE = "allow; %s; ms-Exch-SMTP-Accept-Any-Recipient" % ANON


def crm_dn(k):
    """The CRM connector of node k (node1's is the example's, the others cluster.py's)."""
    return ("cn=CRM Application,cn=node1,%s" % SITE if k == 1
            else "cn=CRM Application node%d,cn=node%d,%s" % (k, k, SITE))


def crm_ldif(nodes, grant):
    """One LDIF, one modify per node in `nodes` (node numbers). The connector becomes
    anonymous, so its refusals would wait TarpitInterval (5 s): the probes measure
    convergence, not the tarpit, so it is set to 0."""
    return "\n".join("dn: %s\nchangetype: modify\nreplace: relayAuthMechanism\n"
                     "relayAuthMechanism: Tls\n-\nreplace: relayTarpitInterval\n"
                     "relayTarpitInterval: 0\n-\nreplace: relayAce\nrelayAce: %s\n%s-\n"
                     % (crm_dn(k), BASE_ACE, ("relayAce: %s\n" % GRANT_ACE) if grant else "")
                     for k in nodes)


def crm_rcpt(port, source="127.0.2.55", sender="app@example.com"):
    """A client asks a node to relay to an outside address (by default the CRM application
    server, 127.0.2.55): the RCPT reply, or "error: ..." when the session broke."""
    import rnnode
    try:
        # 15 s: an anonymous refusal on a connector left at the default waits
        # TarpitInterval (5 s) before it is sent
        with rnnode.Client("127.0.0.1", port, source=source, timeout=15) as cl:
            cl.ehlo()
            cl.cmd("MAIL FROM:<%s>" % sender)
            return cl.cmd("RCPT TO:<someone@outside.example>")
    except (OSError, rnnode.Closed) as e:
        return "error: %s" % e
