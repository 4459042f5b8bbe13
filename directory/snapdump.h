/* snapdump: a snapshot as canonical text, one fact per line, every field of every part in
 * the snapshot's own order (the build fixes it), so two snapshots are the same configuration
 * exactly when their dumps are equal. The incremental path's tests and the node's
 * verification mode (RELAYNODE_VERIFY_INCREMENTAL) compare a full load with it. Pure. */
#ifndef RN_SNAPDUMP_H
#define RN_SNAPDUMP_H
#include <stdbool.h>
#include "directory/model.h"

/* The dump; with_version adds the version line (two loads of one directory state may carry
 * different stamps). Caller frees. */
char *snapshot_dump(const struct rn_snapshot *s, bool with_version);
/* The first line where a and b differ ("" when equal) into out. */
void snapshot_dump_diff(const char *a, const char *b, char *out, size_t outlen);
#endif
