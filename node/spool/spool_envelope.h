/* spool_envelope: what is recorded with each message and what is read back, shared by the
 * store (spool.h) and its record codec (spool_record.h), which therefore needs nothing of
 * the store. */
#ifndef RN_SPOOL_ENVELOPE_H
#define RN_SPOOL_ENVELOPE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* The envelope and facts recorded with each message. Strings are copied by spool_msg_new
 * (spool.h); the codec encodes them as they are. */
struct spool_envelope {
    const char *sender;             /* reverse path without <>, "" for the null sender */
    const char *const *rcpts; size_t nrcpts;
    const char *client_ip, *helo, *connector;
    const char *auth_user;          /* NULL when anonymous */
    const char *auth_as;            /* Anonymous / Internal / Partner */
    bool antispam_bypass;           /* the session held ms-Exch-Bypass-Anti-Spam */
    time_t received;
};

/* A message read back from queue/ (for listing, recovery and delivery): filled by the
 * record decoder, owned by the caller. */
struct spool_entry {
    char id[64];
    char *sender; char **rcpts; size_t nrcpts;
    char *client_ip, *helo, *connector, *auth_user, *auth_as;
    bool antispam_bypass;
    time_t received;
    uint64_t size;                  /* message bytes */
};
/* Free what e owns and zero it (a zeroed entry may be cleared again). */
void spool_entry_clear(struct spool_entry *e);
#endif
