/* Error reporting: one thread-local message buffer, set by folio_fail(), read by the top level. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

static _Thread_local char g_error[2048];

int folio_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_error, sizeof g_error, fmt, ap);
    va_end(ap);
    return -1;
}

int folio_fail_context(const char *fmt, ...) {
    char prefix[1024], old[sizeof g_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_error, sizeof old);
    size_t n = strlen(prefix);
    if (n > sizeof g_error - 3) n = sizeof g_error - 3;
    memcpy(g_error, prefix, n);
    memcpy(g_error + n, ": ", 2);
    size_t room = sizeof g_error - n - 3;
    size_t m = strnlen(old, room);
    memcpy(g_error + n + 2, old, m);
    g_error[n + 2 + m] = '\0';
    return -1;
}

const char *folio_last_error(void) { return g_error; }

void folio_clear_error(void) { g_error[0] = '\0'; }

_Noreturn void folio_bug(const char *file, int line, const char *fmt, ...) {
    fprintf(stderr, "folio: bug at %s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

static void out_of_memory(size_t n) {
    fprintf(stderr, "folio: error: out of host memory allocating %zu bytes\n", n);
    abort();
}

void *folio_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) out_of_memory(n);
    return p;
}

void *folio_xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) out_of_memory(n * size);
    return p;
}

void *folio_xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) out_of_memory(n);
    return q;
}

char *folio_xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = folio_xmalloc(n);
    memcpy(p, s, n);
    return p;
}
