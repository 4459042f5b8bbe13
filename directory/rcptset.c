/* rcptset: an open-addressing hash set of lower-cased addresses (rcptset.h). The strings
 * live back to back in one arena and the table holds 32-bit offsets into it, so 100,000
 * addresses cost the addresses themselves plus 4 bytes per slot (load factor at most 1/2)
 * and no per-address allocation; the whole set is built once per snapshot by the loader and
 * then read by every session without locks. Lookups normalise into a stack buffer, so a
 * RCPT allocates nothing. */
#include "directory/rcptset.h"
#include "directory/base/util.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EMPTY UINT32_MAX

struct rcptset {
    char *arena;          /* owned: NUL-terminated addresses back to back */
    size_t used, cap;     /* arena bytes used and allocated */
    uint32_t *slots;      /* owned: arena offsets, EMPTY = free; NULL until frozen */
    size_t nslots;        /* a power of two, at least twice the entries */
    size_t n;             /* distinct addresses (after freeze; entries added before) */
    bool frozen;
    int refs;             /* atomic: holders (snapshots and the loader's store share a set) */
};

/* Lower-case addr into out (RCPTSET_ADDR_MAX + 1 bytes); -1 when rcptset_add refuses it. */
static int normalize(const char *addr, size_t len, char *out)
{
    if (len && addr[len - 1] == '.')
        len--;
    if (len == 0 || len > RCPTSET_ADDR_MAX)
        return -1;
    bool at = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)addr[i];
        if (ch < 0x20 || ch == 0x7f)
            return -1;
        at = at || ch == '@';
        out[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
    }
    out[len] = '\0';
    return at && out[0] != '@' && out[len - 1] != '@' ? (int)len : -1;
}

static uint64_t hash(const char *s)
{
    uint64_t h = 14695981039346656037ULL;   /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h ^ (h >> 29);
}

struct rcptset *rcptset_new(void)
{
    struct rcptset *s = xcalloc(1, sizeof(struct rcptset));
    s->refs = 1;
    return s;
}

struct rcptset *rcptset_ref(struct rcptset *s)
{
    if (s)
        __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
    return s;
}

void rcptset_free(struct rcptset **sp)
{
    struct rcptset *s = *sp;
    *sp = NULL;
    if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    free(s->arena);
    free(s->slots);
    free(s);
}

int rcptset_add(struct rcptset *s, const char *addr, size_t len)
{
    char buf[RCPTSET_ADDR_MAX + 1];
    int n = normalize(addr, len, buf);
    if (n < 0 || s->frozen)
        return -1;
    /* Offsets are 32-bit: 4 GiB of addresses is far past any directory; refuse, never wrap. */
    if (s->used + (size_t)n + 1 > UINT32_MAX)
        return -1;
    if (s->used + (size_t)n + 1 > s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4096;
        while (s->cap < s->used + (size_t)n + 1)
            s->cap *= 2;
        s->arena = xrealloc(s->arena, s->cap);
    }
    memcpy(s->arena + s->used, buf, (size_t)n + 1);
    s->used += (size_t)n + 1;
    s->n++;
    return 0;
}

/* The slot holding key, or the free slot where it would go. */
static size_t probe(const struct rcptset *s, const char *key)
{
    size_t mask = s->nslots - 1, i = (size_t)hash(key) & mask;
    while (s->slots[i] != EMPTY && strcmp(s->arena + s->slots[i], key) != 0)
        i = (i + 1) & mask;
    return i;
}

void rcptset_freeze(struct rcptset *s)
{
    if (s->frozen)
        return;
    s->nslots = 16;
    while (s->nslots < s->n * 2)
        s->nslots *= 2;
    s->slots = xmalloc(s->nslots * sizeof *s->slots);
    memset(s->slots, 0xff, s->nslots * sizeof *s->slots);   /* every slot EMPTY */
    size_t distinct = 0;
    for (size_t off = 0; off < s->used; off += strlen(s->arena + off) + 1) {
        size_t i = probe(s, s->arena + off);
        if (s->slots[i] == EMPTY) {
            s->slots[i] = (uint32_t)off;
            distinct++;
        }
    }
    s->n = distinct;
    if (s->cap > s->used) {           /* give back the arena's growth room */
        s->arena = xrealloc(s->arena, s->used ? s->used : 1);
        s->cap = s->used ? s->used : 1;
    }
    s->frozen = true;
}

bool rcptset_has(const struct rcptset *s, const char *addr)
{
    char buf[RCPTSET_ADDR_MAX + 1];
    if (!s || !s->frozen || !addr || normalize(addr, strlen(addr), buf) < 0)
        return false;
    return s->slots[probe(s, buf)] != EMPTY;
}

size_t rcptset_count(const struct rcptset *s)
{
    return s ? s->n : 0;
}

size_t rcptset_bytes(const struct rcptset *s)
{
    return s ? sizeof *s + s->cap + s->nslots * sizeof *s->slots : 0;
}
