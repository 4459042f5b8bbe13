/* snapdump: a snapshot as canonical text (snapdump.h). Every field of model.h is printed, so
 * a field added there and not here is a difference the comparison cannot see: keep the two
 * in step. The recipient set is printed as its size (rcptset has no iteration) and the
 * content hash, which folds in its values. */
#include "directory/snapdump.h"
#include "directory/ace.h"
#include "directory/ipr.h"
#include "directory/base/util.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *nz(const char *s)
{
    return s ? s : "-";
}

static void dump_connector(FILE *f, const struct rn_connector *c)
{
    char buf[ACE_MAXLEN];
    fprintf(f, "connector %s\n dn %s\n site %d enabled %d auth %u fqdn %s\n banner %s\n"
            " comment %s\n tls %d milter %d secure %d cert %s\n", nz(c->name), nz(c->dn),
            c->site_scoped, c->enabled, c->auth, nz(c->fqdn), nz(c->banner), nz(c->comment),
            c->require_tls, c->milter_enabled, c->domain_secure, nz(c->tls_cert_name));
    fprintf(f, " limits %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
            " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
            " %" PRIu64 " %u\n", c->max_message_size, c->max_header_size, c->max_recipients,
            c->max_hop_count, c->max_local_hop_count, c->connection_timeout,
            c->inactivity_timeout, c->max_inbound, c->max_inbound_per_source,
            c->max_inbound_pct_per_source, c->max_logon_failures, c->max_protocol_errors,
            c->message_rate_limit, c->tarpit_interval, c->protocol_logging);
    for (size_t i = 0; i < c->nbindings; i++) {
        ipr_binding_format(&c->bindings[i], buf, sizeof buf);
        fprintf(f, " binding %s\n", buf);
    }
    for (size_t i = 0; i < c->nranges; i++) {
        ipr_range_format(&c->ranges[i], buf, sizeof buf);
        fprintf(f, " range %s\n", buf);
    }
    for (size_t i = 0; i < c->naces; i++) {
        ace_format(&c->aces[i], buf, sizeof buf);
        fprintf(f, " ace %s | %s\n", buf, nz(c->aces[i].dn_norm));
    }
}

char *snapshot_dump(const struct rn_snapshot *s, bool with_version)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        abort();                       /* out of memory is fatal */
    if (with_version)
        fprintf(f, "version %s\n", nz(s->version));
    fprintf(f, "node %s dn %s site %s\nhash %016" PRIx64 "\n", nz(s->node_name),
            nz(s->node_dn), nz(s->site_dn), s->content_hash);
    for (size_t i = 0; i < s->nconnectors; i++)
        dump_connector(f, &s->connectors[i]);
    for (size_t i = 0; i < s->ndomains; i++) {
        const struct rn_domain *d = &s->domains[i];
        fprintf(f, "domain %s type %d default %d abook_off %d dn %s\n", nz(d->domain), d->type,
                d->is_default, d->address_book_off, nz(d->dn));
    }
    for (size_t i = 0; i < s->nsendconns; i++) {
        const struct rn_sendconn *c = &s->sendconns[i];
        fprintf(f, "sendconn %s dn %s enabled %d cost %" PRIu64 " tls %d\n", nz(c->name),
                nz(c->dn), c->enabled, c->cost, c->require_tls);
        for (size_t k = 0; k < c->naddress_spaces; k++)
            fprintf(f, " space %s\n", c->address_spaces[k]);
        for (size_t k = 0; k < c->nsmart_hosts; k++)
            fprintf(f, " smarthost %s\n", c->smart_hosts[k]);
    }
    for (size_t i = 0; i < s->nnode_certs; i++) {
        fprintf(f, "nodecert %s dn %s ", nz(s->node_certs[i].name), nz(s->node_certs[i].dn));
        for (size_t k = 0; k < 32; k++)
            fprintf(f, "%02x", s->node_certs[i].sha256[k]);
        fputc('\n', f);
    }
    for (size_t i = 0; i < s->npartner_domains; i++)
        fprintf(f, "partner %s\n", s->partner_domains[i]);
    for (size_t i = 0; i < s->nerrors; i++)
        fprintf(f, "error %s\n", s->errors[i]);
    fprintf(f, "recipients %s %zu\n", s->recipients ? "yes" : "no",
            s->recipients ? rcptset_count(s->recipients) : 0);
    if (fclose(f) != 0 || !out)
        abort();                       /* out of memory is fatal */
    return out;
}

void snapshot_dump_diff(const char *a, const char *b, char *out, size_t outlen)
{
    out[0] = '\0';
    for (;;) {
        const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
        size_t la = ea ? (size_t)(ea - a) : strlen(a), lb = eb ? (size_t)(eb - b) : strlen(b);
        if (la != lb || memcmp(a, b, la) != 0) {
            snprintf(out, outlen, "full: %.*s | incremental: %.*s", (int)(la > 200 ? 200 : la),
                     a, (int)(lb > 200 ? 200 : lb), b);
            return;
        }
        if (!ea || !eb)
            return;
        a = ea + 1;
        b = eb + 1;
    }
}
