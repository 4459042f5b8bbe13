/* libFuzzer target for the bootstrap parser (directory/bootstrap.c), fed as a file (a memfd,
 * so no disk). Beyond "no crash, no sanitizer report" it checks the contracts: the verdict is
 * deterministic (a second load gives the same result and the same error); an error is
 * NUL-terminated inside a small err buffer and names the path; a file holding a NUL byte is
 * refused (a NUL would hide the rest of its line: fail closed); an accepted file describes
 * itself (bootstrap_describe) without error and every value is freed by bootstrap_clear.
 *   clang -std=gnu11 -g -O1 -I. -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
 *     -o /tmp/fuzz_bootstrap tests/fuzz/fuzz_bootstrap.c directory/bootstrap.c \
 *     directory/base/util.c
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "directory/bootstrap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_line(const char *line, void *arg)
{
    size_t *n = arg;
    *n += strlen(line) + 1;
}

static int fuzz_load(const char *path, char *err, size_t errlen, size_t *described)
{
    struct rn_bootstrap b;
    memset(&b, 0, sizeof b);
    memset(err, 0x55, errlen);
    int rc = bootstrap_load(path, &b, err, errlen);
    if (rc == 0) {
        bootstrap_describe(&b, fuzz_line, described);
        bootstrap_clear(&b);
    } else if (rc != -1 || !memchr(err, '\0', errlen)) {
        abort();
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t errlen = (size_t)data[0] % 120 + 8;
    int fd = memfd_create("fuzz-bootstrap", 0);
    if (fd < 0)
        abort();
    if (size > 1 && write(fd, data + 1, size - 1) != (ssize_t)(size - 1))
        abort();
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    char *e1 = malloc(errlen), *e2 = malloc(errlen);
    size_t d1 = 0, d2 = 0;
    int r1 = fuzz_load(path, e1, errlen, &d1);
    int r2 = fuzz_load(path, e2, errlen, &d2);
    if (r1 != r2 || d1 != d2 || (r1 < 0 && strcmp(e1, e2) != 0))
        abort();                                  /* not deterministic */
    if (r1 < 0 && strncmp(e1, path, strnlen(e1, errlen)) != 0 &&
        strncmp(e1, path, strlen(path)) != 0)
        abort();                                  /* the error does not name the file */
    if (r1 == 0 && size > 1 && memchr(data + 1, '\0', size - 1))
        abort();                                  /* a NUL byte was accepted */
    free(e1);
    free(e2);
    close(fd);
    return 0;
}
