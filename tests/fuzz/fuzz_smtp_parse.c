/* libFuzzer target for smtp_parse: any line must parse or be refused without overreads, and an
 * accepted path never carries control bytes or exceeds the RFC 5321 limits.
 * Build: clang -std=gnu11 -g -O1 -I. -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
 *   -o /tmp/fuzz_smtp_parse tests/fuzz/fuzz_smtp_parse.c node/smtp/smtp_parse.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "node/smtp/smtp_parse.h"

static void fuzz_check_path(const struct smtp_path *p)
{
    size_t n = strlen(p->addr);
    if (n > SMTP_PATH_MAX || strlen(p->local) > SMTP_LOCAL_MAX || strlen(p->domain) > SMTP_DOMAIN_MAX)
        abort();
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p->addr[i];
        if (c < 32 || c == 127)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *line = (const char *)data;
    const char *args = NULL;
    enum smtp_verb v = smtp_cmd_verb(line, size, &args);
    size_t alen = size - (size_t)(args - line);
    struct smtp_mail m;
    struct smtp_path p;
    uint64_t n;
    int last;
    char helo[256];
    (void)v;
    if (smtp_mail_parse(args, alen, &m) == SMTP_PARSE_OK) {
        fuzz_check_path(&m.path);
        if (!m.smtputf8 && m.path.utf8)
            abort();
    }
    if (smtp_rcpt_parse(args, alen, 0, &p) == SMTP_PARSE_OK) {
        fuzz_check_path(&p);
        if (p.utf8)
            abort();
    }
    if (smtp_rcpt_parse(args, alen, 1, &p) == SMTP_PARSE_OK)
        fuzz_check_path(&p);
    (void)smtp_bdat_parse(args, alen, &n, &last);
    (void)smtp_helo_parse(args, alen, helo, sizeof helo);
    return 0;
}
