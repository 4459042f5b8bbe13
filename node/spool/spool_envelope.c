/* spool_envelope: the envelope types shared by the spool and its record codec
 * (spool_envelope.h). */
#include "node/spool/spool_envelope.h"
#include <stdlib.h>
#include <string.h>

void spool_entry_clear(struct spool_entry *e)
{
    free(e->sender);
    for (size_t i = 0; i < e->nrcpts; i++)
        free(e->rcpts[i]);
    free(e->rcpts);
    free(e->client_ip);
    free(e->helo);
    free(e->connector);
    free(e->auth_user);
    free(e->auth_as);
    memset(e, 0, sizeof *e);
}
