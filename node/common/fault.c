/* fault: RELAYNODE_FAULT_SLEEP (fault.h), parsed once on first use (pthread_once, so worker
 * threads may be the first callers) into a small fixed table: test builds only. */
#include "node/common/fault.h"

#ifdef RN_FAULTS
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FAULT_POINTS 8

static struct { char name[32]; long ms; } points[FAULT_POINTS];
static size_t npoints;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* "a=300,b=50": names up to 31 bytes, ms 0..60000; anything else in an entry is ignored. */
static void fault_parse(void)
{
    const char *p = getenv("RELAYNODE_FAULT_SLEEP");
    while (p && *p && npoints < FAULT_POINTS) {
        size_t len = strcspn(p, ",");
        const char *eq = memchr(p, '=', len);
        if (eq && (size_t)(eq - p) < sizeof points[0].name && eq > p) {
            char *end;
            long ms = strtol(eq + 1, &end, 10);
            if (end == p + len && ms >= 0 && ms <= 60000) {
                memcpy(points[npoints].name, p, (size_t)(eq - p));
                points[npoints].name[eq - p] = '\0';
                points[npoints++].ms = ms;
            }
        }
        p += len;
        if (*p == ',')
            p++;
    }
}

void fault_sleep(const char *point)
{
    pthread_once(&once, fault_parse);
    for (size_t i = 0; i < npoints; i++)
        if (strcmp(points[i].name, point) == 0 && points[i].ms > 0) {
            struct timespec ts = {points[i].ms / 1000, (points[i].ms % 1000) * 1000000L};
            while (nanosleep(&ts, &ts) != 0)
                ;
            return;
        }
}
#else
/* ISO C wants a declaration in every translation unit. */
typedef int fault_unused;
#endif
