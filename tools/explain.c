/* explain: placeholder until the loader lands; refuses to guess. */
#include <stdio.h>
#include "tools/relayctl.h"
int relayctl_explain(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "relayctl explain: the directory loader is not built yet\n");
    return 2;
}
