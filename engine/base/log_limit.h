/* Log lines that the outside world can provoke (a client, a flood of connections, a failing
 * peer), kept bounded:
 *   - folio_log_limited prints at most `burst` lines per window of `window_s` seconds for one
 *     limiter (one per call site or kind of message); the lines held back are counted, and the
 *     count is printed with the next line that goes out ("... N similar lines suppressed").
 *   - folio_escape_log makes text taken from outside safe for one log line: short, and no
 *     byte that a terminal or a log reader would act on (newline, ESC, other controls).
 * Thread-safe: a limiter has its own mutex. Lines go to stderr, each in one write. */
#ifndef FOLIO_LOG_LIMIT_H
#define FOLIO_LOG_LIMIT_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h" /* FOLIO_PRINTF */

typedef struct {
    int burst;                   /* lines printed per window */
    double window_s;
    pthread_mutex_t mu;          /* the fields below */
    double start;                /* the current window's start (folio_now) */
    int printed;                 /* lines printed in it */
    long long held;              /* lines held back since the last line printed */
} folio_log_limit;

/* A limiter as a static or member initialiser: FOLIO_LOG_LIMIT_INIT(5, 10.0). */
#define FOLIO_LOG_LIMIT_INIT(burst, window_s) \
    {(burst), (window_s), PTHREAD_MUTEX_INITIALIZER, 0.0, 0, 0}

/* For a limiter in allocated memory (destroy with folio_log_limit_destroy). */
void folio_log_limit_init(folio_log_limit *l, int burst, double window_s);
void folio_log_limit_destroy(folio_log_limit *l);

/* Prints fmt (one line; a trailing newline is added) to stderr unless this window's burst is
 * spent; true when printed. */
bool folio_log_limited(folio_log_limit *l, const char *fmt, ...) FOLIO_PRINTF(2, 3);
bool folio_vlog_limited(folio_log_limit *l, const char *fmt, va_list ap);

/* Lines held back so far and not yet reported. */
long long folio_log_limit_held(folio_log_limit *l);

/* s[0..n) for a log line, in out[0..cap) (cap >= 8), NUL-terminated: printable ASCII as is,
 * except backslash and the single quote; \n \r \t as such; every other byte (controls, ESC,
 * DEL, bytes of non-ASCII characters) as \xNN. Cut at a whole escape with "..." when it does
 * not fit. Returns out. */
char *folio_escape_log(const char *s, size_t n, char *out, size_t cap);

#endif
