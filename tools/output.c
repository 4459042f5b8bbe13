/* output: text tables, label lines and a small streaming JSON writer for relayctl (RFC 8259
 * string escaping; everything we print is UTF-8 already, so only quotes, backslashes and
 * control characters are escaped). Every verb prints JSON through this writer. */
#include "tools/output.h"
#include "directory/base/util.h"
#include <stdlib.h>
#include <string.h>

struct table {
    size_t ncols, nrows;
    char **cells;                 /* nrows+1 rows (headers first) of ncols; owned */
};

struct table *table_new(size_t ncols, const char *const *headers)
{
    struct table *t = xcalloc(1, sizeof *t);
    t->ncols = ncols;
    table_row(t, headers);
    t->nrows = 0;                 /* the header row is row 0 of cells, not counted */
    return t;
}

void table_row(struct table *t, const char *const *cells)
{
    size_t rows = t->cells ? t->nrows + 1 : 0;
    t->cells = xrealloc(t->cells, (rows + 1) * t->ncols * sizeof *t->cells);
    for (size_t c = 0; c < t->ncols; c++)
        t->cells[rows * t->ncols + c] = xstrdup(cells[c] ? cells[c] : "");
    if (rows)
        t->nrows++;
}

/* Display width of a UTF-8 string: code points, not bytes. */
static size_t width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            w++;
    return w;
}

void table_print(const struct table *t, FILE *f)
{
    size_t *w = xcalloc(t->ncols, sizeof *w);
    for (size_t r = 0; r <= t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            size_t x = width(t->cells[r * t->ncols + c]);
            if (x > w[c])
                w[c] = x;
        }
    for (size_t r = 0; r <= t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * t->ncols + c];
            if (c + 1 == t->ncols) {
                fprintf(f, "%s\n", s);
                break;
            }
            fprintf(f, "%s%*s  ", s, (int)(w[c] - width(s)), "");
        }
    }
    free(w);
}

void table_free(struct table **t)
{
    if (!t || !*t)
        return;
    for (size_t i = 0; i < ((*t)->nrows + 1) * (*t)->ncols; i++)
        free((*t)->cells[i]);
    free((*t)->cells);
    free(*t);
    *t = NULL;
}

struct json {
    FILE *f;
    int depth;
    bool first[17];               /* per level: nothing written yet */
};

struct json *json_new(FILE *f)
{
    struct json *j = xcalloc(1, sizeof *j);
    j->f = f;
    j->first[0] = true;
    return j;
}

void json_free(struct json **j)
{
    if (!j || !*j)
        return;
    fputc('\n', (*j)->f);
    free(*j);
    *j = NULL;
}

static void json_escaped(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void json_key(struct json *j, const char *key)
{
    if (!j->first[j->depth])
        fputc(',', j->f);
    j->first[j->depth] = false;
    if (key) {
        json_escaped(j->f, key);
        fputc(':', j->f);
    }
}

static void json_open(struct json *j, const char *key, char c)
{
    json_key(j, key);
    fputc(c, j->f);
    if (j->depth < 16)
        j->first[++j->depth] = true;
}

void json_begin_object(struct json *j, const char *key) { json_open(j, key, '{'); }
void json_begin_array(struct json *j, const char *key) { json_open(j, key, '['); }

void json_end_object(struct json *j)
{
    fputc('}', j->f);
    if (j->depth)
        j->depth--;
}

void json_end_array(struct json *j)
{
    fputc(']', j->f);
    if (j->depth)
        j->depth--;
}

void json_string(struct json *j, const char *key, const char *value)
{
    json_key(j, key);
    if (value)
        json_escaped(j->f, value);
    else
        fputs("null", j->f);
}

void json_bool(struct json *j, const char *key, bool value)
{
    json_key(j, key);
    fputs(value ? "true" : "false", j->f);
}

void json_uint(struct json *j, const char *key, unsigned long long value)
{
    json_key(j, key);
    fprintf(j->f, "%llu", value);
}

void json_list(struct json *j, const char *key, const char *list)
{
    json_begin_array(j, key);
    const char *p = list ? list : "";
    while (*p) {
        p += strspn(p, ", ");
        size_t n = strcspn(p, ",");
        while (n && p[n - 1] == ' ')
            n--;
        if (n) {
            char *v = xstrndup(p, n);
            json_string(j, NULL, v);
            free(v);
        }
        p += n;
        p += strcspn(p, ",");
    }
    json_end_array(j);
}

void listing_begin(struct listing *l, bool json, size_t ncols, const char *const *headers)
{
    l->t = json ? NULL : table_new(ncols, headers);
    l->j = json ? json_new(stdout) : NULL;
    if (l->j)
        json_begin_array(l->j, NULL);
}

void listing_end(struct listing *l)
{
    if (l->j) {
        json_end_array(l->j);
        json_free(&l->j);
    } else if (l->t) {
        table_print(l->t, stdout);
    }
    table_free(&l->t);
}

void text_line(FILE *f, int width, const char *label, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(f, "%-*s ", width, label);
    vfprintf(f, fmt, ap);
    fputc('\n', f);
    va_end(ap);
}

void output_verror(const char *verb, const char *fmt, va_list ap)
{
    fprintf(stderr, "relayctl %s: ", verb);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}
