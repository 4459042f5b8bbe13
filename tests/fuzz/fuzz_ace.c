/* libFuzzer target for the relayAce grammar and dn_normalize (docs/style.md rule 10). Beyond "no
 * crash, no sanitizer report" it checks the contracts: an accepted value formats to a
 * canonical string that parses back to the same ACE and formats identically, and a
 * normalised DN is a fixed point of dn_normalize. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "directory/ace.h"
#include "directory/base/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > ACE_MAXLEN + 16)
        return 0;
    char *s = xstrndup((const char *)data, size);
    char err[RN_ERRLEN], out[ACE_MAXLEN * 2], again[ACE_MAXLEN * 2];
    struct ace a, b;
    if (ace_parse(s, &a, err, sizeof err) == 0) {
        /* Exactly one principal form: well-known, DN (with its canonical form), or SID. */
        if (a.rights == 0 || (a.wk >= 0) + (a.dn != NULL) + (a.sid != NULL) != 1 ||
            (a.dn != NULL) != (a.dn_norm != NULL))
            abort();
        ace_format(&a, out, sizeof out);
        if (ace_parse(out, &b, err, sizeof err) != 0)
            abort();   /* canonical output must parse */
        ace_format(&b, again, sizeof again);
        if (strcmp(out, again) != 0 || a.deny != b.deny || a.wk != b.wk || a.rights != b.rights ||
            (a.dn_norm && strcmp(a.dn_norm, b.dn_norm) != 0) ||
            (a.sid && (!b.sid || strcmp(a.sid, b.sid) != 0)))
            abort();
        ace_clear(&b);
        ace_clear(&a);
    }
    if (dn_normalize(s, out, sizeof out, err, sizeof err) == 0) {
        if (dn_normalize(out, again, sizeof again, err, sizeof err) != 0 || strcmp(out, again) != 0)
            abort();   /* canonical DNs are fixed points */
    }
    free(s);
    return 0;
}
