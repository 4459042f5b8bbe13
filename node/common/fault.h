/* fault: test-only slow-disk hooks (docs/reliability.md §2.6). A build with -DRN_FAULTS (make
 * test) reads RELAYNODE_FAULT_SLEEP="point=ms,point=ms" once, and fault_sleep(point) then
 * sleeps that long where the named blocking step runs, so a test can show which thread waits
 * for it. Points: spool-create (a message's tmp/ file), spool-write (each write(2) of a
 * spool file's bytes, whichever thread makes it), spool-statvfs (the free-space check at
 * MAIL), dsn (building a DSN), cert-read (PEM files read on SIGHUP), watch-version (the
 * change watcher's thread, before it hands a version to the loop), full-load (a full
 * snapshot load, after its read: a change made meanwhile is not in it). Without RN_FAULTS
 * fault_sleep is an empty inline: nothing in production. */
#ifndef RN_FAULT_H
#define RN_FAULT_H

#ifdef RN_FAULTS
/* Any thread. Unknown points and an unset variable sleep 0 ms. */
void fault_sleep(const char *point);
#else
static inline void fault_sleep(const char *point)
{
    (void)point;
}
#endif
#endif
