/* util: allocation that never returns NULL (out of memory is fatal, as Postfix's mymalloc),
 * error-string filling for library code, and small string helpers. */
#ifndef RN_UTIL_H
#define RN_UTIL_H
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>

#define RN_ERRLEN 512 /* size of the error buffers callers pass to library functions */

void *xmalloc(size_t n);              /* abort on failure; caller frees */
void *xcalloc(size_t n, size_t sz);   /* zeroed; overflow-checked; caller frees */
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);         /* caller frees */
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* caller frees */

/* Fill err (if non-NULL) with a formatted message, truncating safely; returns -1 so a
 * library function can `return rn_err(err, len, ...)`. */
int rn_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

bool rn_strieq(const char *a, const char *b);                  /* ASCII case-insensitive equality */
bool rn_strnieq(const char *a, const char *b, size_t n);
void rn_strlower(char *s);                                     /* ASCII lowercase in place */
/* Copy src into dst of size dstlen, always NUL-terminated; returns strlen(src). */
size_t rn_strlcpy(char *dst, const char *src, size_t dstlen);
/* Where the text from p[i] ends: the index of the next CR or LF in p[i..n), or n. Two memchr
 * scans, the second bounded by the first's answer, so a caller that consumes the text (or
 * stops at a bare LF) does linear work over a buffer (smtp_data.c, dotstuff.c). */
size_t rn_text_end(const char *p, size_t i, size_t n);
/* RFC 4648 base64 of n bytes into out (NUL-terminated); the length written, or 0 when out
 * (which needs 4 * ceil(n / 3) + 1 bytes) is too small. */
size_t rn_base64_encode(const void *in, size_t n, char *out, size_t outlen);
#endif
