/* output: how relayctl's verbs print results: aligned text tables (the default, like
 * Format-Table), "label  value" lines, JSON (--json: one document on stdout, for scripts;
 * the only JSON writer relayctl has) and the "relayctl <verb>: message" line on stderr. */
#ifndef RN_OUTPUT_H
#define RN_OUTPUT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>

/* A table of strings; cells are copied. */
struct table;
struct table *table_new(size_t ncols, const char *const *headers);
/* Append a row of ncols cells (NULL prints as empty). */
void table_row(struct table *t, const char *const *cells);
/* Print with columns padded to their widest cell; the last column is not padded. */
void table_print(const struct table *t, FILE *f);
void table_free(struct table **t);

/* JSON writer: emits commas itself. Objects and arrays nest up to 16 levels. */
struct json;
struct json *json_new(FILE *f);
void json_free(struct json **j);          /* prints a final newline */
void json_begin_object(struct json *j, const char *key);   /* key NULL inside arrays / top */
void json_end_object(struct json *j);
void json_begin_array(struct json *j, const char *key);
void json_end_array(struct json *j);
void json_string(struct json *j, const char *key, const char *value);   /* NULL -> null */
void json_bool(struct json *j, const char *key, bool value);
void json_uint(struct json *j, const char *key, unsigned long long value);
/* A comma/space separated list ("a, b") as an array of strings. */
void json_list(struct json *j, const char *key, const char *list);

/* A listing: the rows of a list verb go either into a table or, with --json, into a JSON
 * array on stdout (exactly one of t and j is set). listing_end prints the table or closes
 * the array, and frees both. */
struct listing { struct table *t; struct json *j; };
void listing_begin(struct listing *l, bool json, size_t ncols, const char *const *headers);
void listing_end(struct listing *l);

/* "label value": label padded to width columns, one space, the formatted value, newline. */
void text_line(FILE *f, int width, const char *label, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* "relayctl <verb>: <message>" and a newline on stderr. */
void output_verror(const char *verb, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
#endif
