/* libFuzzer target for the security descriptor codec (directory/secdesc.c, sdaces.c). Beyond
 * "no crash, no sanitizer report" it checks the contracts on every accepted descriptor:
 * secdesc_aces succeeds and gives non-empty rights within R_ALL with one model ACE per
 * (deny, principal); serialize gives a descriptor that parses back to the same ACEs, and is
 * a fixed point (serialize(parse(serialize(x))) == serialize(x)); adding an allow object ACE
 * gives that right to its principal in the model unless it was already there, and adding it
 * twice answers "already present". A refused descriptor returns nothing. Seeds: the
 * descriptors captured from the Samba AD fixture (tests/data/sd/). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "directory/rights.h"
#include "directory/secdesc.h"
#include "directory/base/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct sd_rightmap rights[RIGHT_COUNT];
static const struct sd_sidmap sids[] = {
    {"S-1-5-21-3566121368-2833235078-3374141506-1105", WK_EXCHANGE_SERVERS},
    {"S-1-5-21-3566121368-2833235078-3374141506-1106", WK_LEGACY_INTEROP},
};

static void init_rights(void)
{
    static int done;
    if (done)
        return;
    for (unsigned i = 0; i < RIGHT_COUNT; i++) {
        if (sd_guid_parse(right_by_index(i)->guid, &rights[i].guid) != 0)
            abort();
        rights[i].bit = right_by_index(i)->bit;
    }
    done = 1;
}

static void model(const struct secdesc *sd, struct ace **a, size_t *n)
{
    char err[RN_ERRLEN];
    struct sd_guid cls;
    sd_guid_parse("44601346-776a-46e7-b4a4-2472e1c66806", &cls);
    if (secdesc_aces(sd, rights, RIGHT_COUNT, sids, 2, &cls, a, n, err, sizeof err) != 0)
        abort();
    for (size_t i = 0; i < *n; i++) {
        const struct ace *x = &(*a)[i];
        if (x->rights == 0 || (x->rights & ~R_ALL) || (x->wk < 0) != (x->sid != NULL))
            abort();
        for (size_t j = 0; j < i; j++)
            if ((*a)[j].deny == x->deny && (*a)[j].wk == x->wk &&
                (x->wk >= 0 || strcmp((*a)[j].sid, x->sid) == 0))
                abort();   /* merged: one per (deny, principal) */
    }
}

static bool same_model(const struct ace *a, size_t na, const struct ace *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (a[i].deny != b[i].deny || a[i].wk != b[i].wk || a[i].rights != b[i].rights ||
            (a[i].sid && strcmp(a[i].sid, b[i].sid) != 0))
            return false;
    return true;
}

static void model_free(struct ace *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ace_clear(&a[i]);
    free(a);
}

static uint32_t anon_allow(const struct ace *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!a[i].deny && a[i].wk == WK_ANONYMOUS)
            return a[i].rights;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_rights();
    struct secdesc sd, back;
    char err[RN_ERRLEN];
    if (secdesc_parse(data, size, &sd, err, sizeof err) != 0) {
        if (sd.aces || sd.naces || !*err)
            abort();   /* refused: nothing returned, and a reason */
        return 0;
    }
    struct ace *a, *b;
    size_t na, nb;
    model(&sd, &a, &na);
    unsigned char *o1, *o2;
    size_t l1, l2;
    if (secdesc_serialize(&sd, &o1, &l1, err, sizeof err) == 0) {
        if (secdesc_parse(o1, l1, &back, err, sizeof err) != 0)
            abort();   /* what we write, we read */
        model(&back, &b, &nb);
        if (!same_model(a, na, b, nb))
            abort();
        model_free(b, nb);
        if (secdesc_serialize(&back, &o2, &l2, err, sizeof err) != 0 || l1 != l2 ||
            memcmp(o1, o2, l1) != 0)
            abort();
        free(o2);
        secdesc_clear(&back);
        free(o1);
    }

    struct sd_sid anon;
    struct sd_guid submit;
    sd_sid_parse("S-1-5-7", &anon);
    sd_guid_parse(right_by_index(0)->guid, &submit);
    int rc = secdesc_add_object_ace(&sd, false, &anon, &submit);
    if (rc == 0 || rc == 1) {
        if (secdesc_add_object_ace(&sd, false, &anon, &submit) != 1)
            abort();
        /* An explicit allow for ANONYMOUS LOGON now exists: the model must show it. */
        model(&sd, &b, &nb);
        if (!(anon_allow(b, nb) & right_by_index(0)->bit))
            abort();
        model_free(b, nb);
        if (secdesc_remove_object_ace(&sd, false, &anon, &submit) != 0 ||
            secdesc_remove_object_ace(&sd, false, &anon, &submit) != 1)
            abort();
    }
    model_free(a, na);
    secdesc_clear(&sd);
    return 0;
}
