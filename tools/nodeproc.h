/* nodeproc: is a pid the relaynode that owns a spool? Used by `relayctl queue retry` before
 * it sends SIGUSR1, so a stale or forged pid in the lock file never gets a signal. Linux
 * /proc only. */
#ifndef RN_NODEPROC_H
#define RN_NODEPROC_H
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* True only when pid runs relaynode (the basename of /proc/PID/exe, or of argv[0] in
 * /proc/PID/cmdline) AND one of its descriptors is the file lockpath with a write flock
 * held on it (/proc/PID/fdinfo "lock:" lines). false with the reason in why otherwise,
 * including when /proc cannot be read (fail closed). */
bool nodeproc_owns_lock(pid_t pid, const char *lockpath, char *why, size_t whylen);
#endif
