/* validate: the write-time rules Exchange enforces on receive connectors, applied at load and
 * by relayctl before any write (docs/permission-model.md §3.2 and §4.3). Pure. Messages name the
 * attribute at fault; callers prefix the entry DN. */
#ifndef RN_VALIDATE_H
#define RN_VALIDATE_H
#include <stddef.h>
#include "directory/model.h"

/* Rules of §3.2 on one connector: BasicAuthRequireTLS => BasicAuth and Tls; RequireTLS => Tls;
 * ExternalAuthoritative only with Tls and only with the ExchangeServers permission group
 * (derived from the ACEs); None alone; banner is a 220 reply of <= 50 lines of <= 2000
 * chars; inactivity timeout <= connection timeout; at least one binding and one range. */
int validate_connector(const struct rn_connector *c, char *err, size_t errlen);

/* Conflicts of §4.3 between a and b (connectors of the same node, including its site's):
 * an identical binding with equal or partially overlapping ranges, or a wildcard-vs-specific
 * binding overlap with partially overlapping ranges. Nested ranges are fine. */
int validate_conflict(const struct rn_connector *a, const struct rn_connector *b,
                      char *err, size_t errlen);
#endif
