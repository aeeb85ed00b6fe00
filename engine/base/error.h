/* The error policy, the same in every layer.
 *
 * Runtime errors are what the world can cause: bad files, options, requests, a device without
 * enough memory, a rank or client that goes away. A failing function records one message
 * naming the problem (file, field, tensor, expected versus found) with folio_fail() and returns
 * -1 (or NULL) up the stack; the top level (launch/main.c, the server's request handler, or a
 * test) reads it with folio_last_error() and prints it once. Nothing below the top prints.
 *
 * Bugs are what only the code can cause: a broken invariant (a block freed twice, a plan that
 * overflows capacities sized from the same config). FOLIO_BUG() prints "folio: bug at
 * file:line: ..." and aborts; it is never compiled out. Out of host memory is treated the same
 * way (folio_xmalloc and friends never return NULL).
 *
 * Library calls are checked with one macro per library:
 *   MPI_CHECK (comm.h), NCCL_CHECK (nccl_comm.h): a failure is a runtime error (another rank
 *     failed, the network went away): the message names the call and file:line, -1 returns.
 *   CUDA_CHECK (cuda_check.h): a failure is fatal, as a bug: file:line, the call and CUDA's
 *     message, then abort (the context is usually unusable after it; under mpirun the abort
 *     ends the whole job). What may legitimately be missing is queried first, not checked: a
 *     device (cuda_device_count_or_zero), free memory, peer access. */
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

/* A bug: prints "folio: bug at FILE:LINE: message" and aborts. */
#define FOLIO_BUG(...) folio_bug(__FILE__, __LINE__, __VA_ARGS__)
#ifdef __cplusplus
[[noreturn]]
#else
_Noreturn
#endif
void folio_bug(const char *file, int line, const char *fmt, ...) FOLIO_PRINTF(3, 4);

/* Allocation that never returns NULL: prints and aborts on out-of-memory (host memory
 * exhaustion is not recoverable in a meaningful way for this program). */
void *folio_xmalloc(size_t n);
void *folio_xcalloc(size_t n, size_t size);
void *folio_xrealloc(void *p, size_t n);
char *folio_xstrdup(const char *s);

#endif
