/* explain_render: an explanation (explain.h) as text or JSON. Text is one aligned
 * "label  value" line per fact, the rights as a table and each stage with its exact reply;
 * JSON is one object with the same facts, written with tools/output's writer. Both stop
 * where the explanation ends: no connector, or a failed --user lookup. Strings the JSON has
 * always printed as "" when absent (the version, a stage's "why") stay "". */
#include "tools/explain.h"
#include "tools/output.h"
#include <string.h>

#define LABEL_WIDTH 22           /* text: the label column */
#define STAGE_WIDTH 40           /* text: "RCPT TO <address>" column of the stage lines */

static const char *nz(const char *s)
{
    return s ? s : "";
}

/* ---- text ---- */

static void text_connector(const struct explanation *x, FILE *f)
{
    const struct explain_match *m = &x->chosen;
    text_line(f, LABEL_WIDTH, "connector", "%s (%s)", m->name, m->dn);
    text_line(f, LABEL_WIDTH, "  binding matched", "%s%s", m->binding,
              m->wildcard ? " (wildcard)" : " (exact)");
    text_line(f, LABEL_WIDTH, "  range matched", "%s (%s address%s: the smallest holding %s)",
              m->range, m->range_size, strcmp(m->range_size, "1") ? "es" : "", x->args->remote);
    for (size_t i = 0; i < x->ncands; i++) {
        const struct explain_match *o = &x->cands[i];
        text_line(f, LABEL_WIDTH, i == 0 ? "  also considered" : "",
                  "%s: %s, range %s (%s address%s)", o->name, o->binding, o->range,
                  o->range_size, strcmp(o->range_size, "1") ? "es" : "");
    }
    if (!x->ncands)
        text_line(f, LABEL_WIDTH, "  also considered", "%s",
                  "no other connector serves this client here");
}

static void text_token(const struct explanation *x, FILE *f)
{
    if (*x->tls_identity)
        text_line(f, LABEL_WIDTH, "client certificate", "%s", x->tls_identity);
    text_line(f, LABEL_WIDTH, "token", "%s", x->token);
    for (size_t i = 0; i < x->naddrs; i++)
        text_line(f, LABEL_WIDTH, i == 0 ? "  addresses" : "", "%s", x->addrs[i]);
    text_line(f, LABEL_WIDTH, "permission groups", "%s", x->groups);
    text_line(f, LABEL_WIDTH, "rights", "%s", "");
    for (unsigned i = 0; i < RIGHT_COUNT; i++)
        fprintf(f, "  %-54s %-8s %s\n", x->rights[i].name, x->rights[i].state,
                nz(x->rights[i].ace));
}

static void text_stages(const struct explanation *x, FILE *f)
{
    for (size_t i = 0; i < x->nstages; i++) {
        const struct explain_stage *st = &x->stages[i];
        char label[700];
        snprintf(label, sizeof label, "%s %s", st->name, st->arg);
        if (!st->reached) {
            text_line(f, LABEL_WIDTH, label, "not reached");
            continue;
        }
        fprintf(f, "%-*s %s", STAGE_WIDTH, label, st->reply);
        if (st->v.why || st->right)
            fprintf(f, "  (%s%s%s)", nz(st->v.why), st->v.why && st->right ? ": " : "",
                    nz(st->right));
        fputc('\n', f);
    }
    text_line(f, LABEL_WIDTH, "auth as", "%s", x->auth_as);
    text_line(f, LABEL_WIDTH, "anti-spam", "%s", x->bypass_spam ? "bypassed" : "applies");
    text_line(f, LABEL_WIDTH, "size limits", "%s", x->bypass_size ? "bypassed" : "apply");
    text_line(f, LABEL_WIDTH, "result", "%s", x->refused ? "refused" : "accepted");
}

void explain_print_text(const struct explanation *x, FILE *f)
{
    const struct rn_snapshot *s = x->s;
    text_line(f, LABEL_WIDTH, "snapshot", "%s (node %s, %zu connectors)", s->version,
              s->node_dn, s->nconnectors);
    for (size_t i = 0; i < s->nerrors; i++)
        text_line(f, LABEL_WIDTH, "warning", "%s", s->errors[i]);
    if (x->end == EXPLAIN_NO_CONNECTOR) {
        text_line(f, LABEL_WIDTH, "connector", "none: no enabled connector serves %s from %s",
                  x->args->local, x->args->remote);
        text_line(f, LABEL_WIDTH, "connect", "%s", x->connect_reply);
        text_line(f, LABEL_WIDTH, "result", "%s", "refused");
        return;
    }
    text_connector(x, f);
    if (x->end == EXPLAIN_AUTH_FAILED) {
        text_line(f, LABEL_WIDTH, "AUTH", "%s", x->auth_reply);
        text_line(f, LABEL_WIDTH, "  because", "%s", x->auth_error);
        text_line(f, LABEL_WIDTH, "result", "%s", x->auth_tempfail ? "directory error"
                                                                   : "refused");
        return;
    }
    text_token(x, f);
    text_stages(x, f);
}

/* ---- JSON ---- */

static void json_match(struct json *j, const struct explain_match *m, bool chosen)
{
    json_string(j, "name", nz(m->name));
    if (chosen)
        json_string(j, "dn", nz(m->dn));
    json_string(j, "binding", m->binding);
    if (chosen)
        json_bool(j, "wildcard", m->wildcard);
    json_string(j, "range", m->range);
    json_string(j, "range_size", m->range_size);
}

static void json_connector(struct json *j, const struct explanation *x)
{
    json_begin_object(j, "connector");
    json_match(j, &x->chosen, true);
    json_begin_array(j, "candidates");
    for (size_t i = 0; i < x->ncands; i++) {
        json_begin_object(j, NULL);
        json_match(j, &x->cands[i], false);
        json_end_object(j);
    }
    json_end_array(j);
    json_end_object(j);
}

static void json_token(struct json *j, const struct explanation *x)
{
    if (*x->tls_identity)
        json_string(j, "client_certificate", x->tls_identity);
    json_string(j, "token", x->token);
    json_begin_array(j, "addresses");
    for (size_t i = 0; i < x->naddrs; i++)
        json_string(j, NULL, nz(x->addrs[i]));
    json_end_array(j);
    json_string(j, "permission_groups", x->groups);
    json_begin_object(j, "rights");
    for (unsigned i = 0; i < RIGHT_COUNT; i++) {
        json_begin_object(j, x->rights[i].name);
        json_string(j, "state", x->rights[i].state);
        json_string(j, "ace", x->rights[i].ace);
        json_end_object(j);
    }
    json_end_object(j);
}

static void json_stages(struct json *j, const struct explanation *x)
{
    json_begin_array(j, "stages");
    for (size_t i = 0; i < x->nstages; i++) {
        const struct explain_stage *st = &x->stages[i];
        json_begin_object(j, NULL);
        json_string(j, "stage", st->name);
        json_string(j, "arg", st->arg);
        json_bool(j, "reached", st->reached);
        if (st->reached) {
            json_bool(j, "ok", st->v.ok);
            json_string(j, "reply", st->reply);
            json_string(j, "why", nz(st->v.why));
            json_string(j, "right", st->right);
        }
        json_end_object(j);
    }
    json_end_array(j);
    json_string(j, "auth_as", nz(x->auth_as));
    json_bool(j, "bypass_anti_spam", x->bypass_spam);
    json_bool(j, "bypass_size_limits", x->bypass_size);
    json_string(j, "result", x->refused ? "refused" : "accepted");
}

void explain_print_json(const struct explanation *x, FILE *f)
{
    const struct rn_snapshot *s = x->s;
    struct json *j = json_new(f);
    json_begin_object(j, NULL);
    json_string(j, "version", nz(s->version));
    json_string(j, "node", nz(s->node_dn));
    json_begin_array(j, "warnings");
    for (size_t i = 0; i < s->nerrors; i++)
        json_string(j, NULL, nz(s->errors[i]));
    json_end_array(j);
    if (x->end == EXPLAIN_NO_CONNECTOR) {
        json_string(j, "connector", NULL);
        json_string(j, "connect", x->connect_reply);
        json_string(j, "result", "refused");
    } else {
        json_connector(j, x);
        if (x->end == EXPLAIN_AUTH_FAILED) {
            json_string(j, "auth", x->auth_reply);
            json_string(j, "auth_error", x->auth_error);
            json_string(j, "result", x->auth_tempfail ? "error" : "refused");
        } else {
            json_token(j, x);
            json_stages(j, x);
        }
    }
    json_end_object(j);
    json_free(&j);
}
