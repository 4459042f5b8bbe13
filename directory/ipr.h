/* ipr: IP addresses, remote IP ranges and listener bindings, IPv4 and IPv6
 * (docs/permission-model.md §4.4). Pure: no I/O, no globals.
 * IPv4 is stored IPv4-mapped (::ffff:a.b.c.d) so every comparison is 128-bit; the v4 flag
 * keeps the family, because an IPv4 binding only matches IPv4 ranges and vice versa. */
#ifndef RN_IPR_H
#define RN_IPR_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct { uint8_t b[16]; } ipr_addr;      /* network byte order */

enum ipr_form { IPR_SINGLE, IPR_LOHI, IPR_CIDR, IPR_NETMASK };

typedef struct {
    ipr_addr lo, hi;          /* inclusive bounds */
    uint8_t form;             /* enum ipr_form: how it was written, kept for round trips */
    uint8_t prefix;           /* CIDR length (per family) for IPR_CIDR and IPR_NETMASK */
    bool v4;
    ipr_addr base;            /* the address as written for CIDR/netmask (need not be the network) */
} ipr_range;

typedef struct {
    ipr_addr ip;
    uint16_t port;
    bool v4;
    bool wildcard;            /* 0.0.0.0 or [::] */
} ipr_binding;

enum ipr_overlap { IPR_DISJOINT, IPR_EQUAL, IPR_NESTED, IPR_PARTIAL };

/* Parse a literal IPv4 or IPv6 address (no zone id); sets *v4. -1 on error. */
int ipr_addr_parse(const char *s, ipr_addr *out, bool *v4);
/* Format an address; IPv4-mapped prints dotted quad when v4. Returns chars written. */
size_t ipr_addr_format(const ipr_addr *a, bool v4, char *buf, size_t len);
/* True when a is an IPv4-mapped address (::ffff:0:0/96). */
bool ipr_addr_is_v4mapped(const ipr_addr *a);

/* Parse a remote range: single, lo-hi, CIDR (a/n) or netmask a(m.m.m.m). Families may not
 * mix, lo <= hi, CIDR length per family, netmask contiguous. -1 with a message on error. */
int ipr_range_parse(const char *s, ipr_range *out, char *err, size_t errlen);
/* Re-serialise in the form it was written (CIDR a/n, netmask a(m), lo-hi a-b, single a). */
size_t ipr_range_format(const ipr_range *r, char *buf, size_t len);
bool ipr_range_contains(const ipr_range *r, const ipr_addr *a, bool v4);
/* Compare sizes (hi - lo as 128-bit numbers): <0 when a is smaller, 0 equal, >0 larger. */
int ipr_range_cmp_size(const ipr_range *a, const ipr_range *b);
/* Relation of two ranges of the same family (different families are DISJOINT). */
enum ipr_overlap ipr_range_overlap(const ipr_range *a, const ipr_range *b);

/* Parse a binding "IP:port" or "[IPv6]:port"; port 1..65535; multicast and broadcast
 * addresses are refused (§3.2 rule 12). */
int ipr_binding_parse(const char *s, ipr_binding *out, char *err, size_t errlen);
size_t ipr_binding_format(const ipr_binding *b, char *buf, size_t len);
/* Same family, same port, and same address or either side the family's wildcard. */
bool ipr_binding_overlaps(const ipr_binding *a, const ipr_binding *b);
#endif
