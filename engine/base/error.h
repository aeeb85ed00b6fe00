/* Error reporting: a failing function records one message naming the problem (file, field,
 * tensor, expected versus found) with folio_fail() and returns -1 up the stack; the top level
 * (launch/main.c, or a test) reads it with folio_last_error() and prints it once. */
#ifndef FOLIO_ERROR_H
#define FOLIO_ERROR_H

#include <stddef.h>

#if defined(__GNUC__)
#define FOLIO_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define FOLIO_PRINTF(a, b)
#endif

/* Records the message (replacing any earlier one) and returns -1. */
int folio_fail(const char *fmt, ...) FOLIO_PRINTF(1, 2);

/* Prefixes the recorded message with context, "context: message", and returns -1. */
int folio_fail_context(const char *fmt, ...) FOLIO_PRINTF(1, 2);

/* The last recorded message ("" if none). Valid until the next folio_fail on this thread. */
const char *folio_last_error(void);

void folio_clear_error(void);

/* Allocation that never returns NULL: prints and aborts on out-of-memory (host memory
 * exhaustion is not recoverable in a meaningful way for this program). */
void *folio_xmalloc(size_t n);
void *folio_xcalloc(size_t n, size_t size);
void *folio_xrealloc(void *p, size_t n);
char *folio_xstrdup(const char *s);

#endif
