/* cluster_wire: the frames of the cluster bus, protocol 1 (schema/cluster-protocol.md §2).
 * Pure and bounds-checked: no I/O, no allocation, no globals. Decoding copies into the fixed
 * buffers of struct cluster_msg, so a decoded message never points into the frame. */
#ifndef RN_CLUSTER_WIRE_H
#define RN_CLUSTER_WIRE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLUSTER_PROTOCOL      1
#define CLUSTER_FRAME_MAX     4096     /* bytes in one frame */
#define CLUSTER_NODE_MAX      255      /* node name */
#define CLUSTER_VERSION_MAX   1024     /* version string */
#define CLUSTER_ORIGIN_MAX    64       /* NOTICE origin */

enum cluster_msg_type { CLUSTER_NOTICE = 1, CLUSTER_HEARTBEAT = 2 };

#define CLUSTER_FLAG_STALE 0x01        /* HEARTBEAT: the sender runs its last good snapshot */

struct cluster_msg {
    enum cluster_msg_type type;
    char node[CLUSTER_NODE_MAX + 1];        /* sender; never empty in a valid frame */
    char version[CLUSTER_VERSION_MAX + 1];  /* NOTICE: the new version; HEARTBEAT: applied */
    char origin[CLUSTER_ORIGIN_MAX + 1];    /* NOTICE only ("" in a HEARTBEAT) */
    uint64_t seq;                           /* per-sender, strictly increasing */
    bool stale;                             /* HEARTBEAT only */
    uint64_t time_ms;                       /* HEARTBEAT: sender's wall clock, ms since epoch */
    uint64_t uptime_s;                      /* HEARTBEAT: seconds since the sender started */
};

/* Encode m into out (cap bytes); returns the frame length, or -1 with err when a field is
 * over its limit, holds a byte outside 0x20..0x7e, node is empty, or cap is too small. */
int cluster_wire_encode(const struct cluster_msg *m, uint8_t *out, size_t cap, char *err,
                        size_t errlen);

/* Decode one whole frame into *m; 0, or -1 with err naming the first fault (truncation,
 * bad magic, unknown protocol or type, field over its limit or with a bad byte, empty
 * node, unknown flag bits, trailing bytes). *m is unspecified after a failure. */
int cluster_wire_decode(const uint8_t *frame, size_t len, struct cluster_msg *m, char *err,
                        size_t errlen);
#endif
