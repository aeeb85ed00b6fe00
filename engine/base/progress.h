/* Progress on a terminal: a one-line bar redrawn in place on stderr, shown only when stderr
 * is a terminal, and the one-line summaries printed after loading and generating. */
#ifndef FOLIO_PROGRESS_H
#define FOLIO_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const char *label;
    uint64_t total;
    uint64_t done;
    double start;                /* seconds */
    double last_draw;
    bool enabled;
    const char *unit;            /* "B" formats as bytes; anything else as a count */
} progress_bar;

void progress_start(progress_bar *p, const char *label, uint64_t total, const char *unit,
                    bool enabled);
void progress_add(progress_bar *p, uint64_t n);
void progress_finish(progress_bar *p);

/* Monotonic seconds. */
double folio_now(void);

/* "15.0 GB", "812.3 MB", "64.0 KB" into buf. */
const char *format_bytes(double bytes, char *buf, int n);
/* "8.03B", "260.1K" into buf. */
const char *format_count(double count, char *buf, int n);

#endif
