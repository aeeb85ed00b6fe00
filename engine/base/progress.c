/* Terminal progress bar (stderr, only on a terminal) and number formatting for summaries. */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "progress.h"

double folio_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

const char *format_bytes(double bytes, char *buf, int n) {
    static const char *const units[] = {"B", "KB", "MB", "GB", "TB"};
    int u = 0;
    while (bytes >= 1000.0 && u < 4) {
        bytes /= 1000.0;
        u++;
    }
    snprintf(buf, n, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
    return buf;
}

const char *format_count(double count, char *buf, int n) {
    static const char *const units[] = {"", "K", "M", "B", "T"};
    int u = 0;
    while (count >= 1000.0 && u < 4) {
        count /= 1000.0;
        u++;
    }
    snprintf(buf, n, u == 0 ? "%.0f%s" : "%.2f%s", count, units[u]);
    return buf;
}

static void draw(progress_bar *p) {
    const int width = 30;
    double frac = p->total ? (double)p->done / p->total : 1.0;
    int fill = (int)(frac * width + 0.5);
    char done[32], total[32];
    if (p->unit[0] == 'B') {
        format_bytes((double)p->done, done, sizeof done);
        format_bytes((double)p->total, total, sizeof total);
    } else {
        snprintf(done, sizeof done, "%llu", (unsigned long long)p->done);
        snprintf(total, sizeof total, "%llu %s", (unsigned long long)p->total, p->unit);
    }
    fprintf(stderr, "\r%s [", p->label);
    for (int i = 0; i < width; i++) fputc(i < fill ? '#' : '.', stderr);
    fprintf(stderr, "] %3.0f%% %s / %s  %.1fs ", frac * 100, done, total,
            folio_now() - p->start);
    fflush(stderr);
}

void progress_start(progress_bar *p, const char *label, uint64_t total, const char *unit,
                    bool enabled) {
    p->label = label;
    p->total = total;
    p->done = 0;
    p->unit = unit;
    p->start = p->last_draw = folio_now();
    p->enabled = enabled && isatty(STDERR_FILENO);
    if (p->enabled) draw(p);
}

void progress_add(progress_bar *p, uint64_t n) {
    p->done += n;
    if (!p->enabled) return;
    double now = folio_now();
    if (now - p->last_draw < 0.1 && p->done < p->total) return;
    p->last_draw = now;
    draw(p);
}

void progress_finish(progress_bar *p) {
    if (!p->enabled) return;
    p->done = p->total;
    draw(p);
    fputc('\r', stderr);
    fprintf(stderr, "\033[K");    /* clear the line; the caller prints a summary */
    fflush(stderr);
}
