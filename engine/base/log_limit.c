/* Rate-limited log lines and escaping of outside text for them (log_limit.h). */
#include "log_limit.h"

#include <stdio.h>
#include <string.h>

#include "progress.h"

void folio_log_limit_init(folio_log_limit *l, int burst, double window_s) {
    *l = (folio_log_limit){.burst = burst, .window_s = window_s};
    pthread_mutex_init(&l->mu, NULL);
}

void folio_log_limit_destroy(folio_log_limit *l) { pthread_mutex_destroy(&l->mu); }

bool folio_vlog_limited(folio_log_limit *l, const char *fmt, va_list ap) {
    double now = folio_now();
    pthread_mutex_lock(&l->mu);
    if (l->start == 0.0 || now - l->start >= l->window_s) {
        l->start = now;
        l->printed = 0;
    }
    bool print = l->printed < l->burst;
    long long held = 0;
    if (print) {
        l->printed++;
        held = l->held;
        l->held = 0;
    } else {
        l->held++;
    }
    pthread_mutex_unlock(&l->mu);
    if (!print) return false;
    char line[1024];
    int n = vsnprintf(line, sizeof line, fmt, ap);
    if (n < 0) return false;
    if ((size_t)n >= sizeof line) n = (int)sizeof line - 1;
    while (n > 0 && line[n - 1] == '\n') line[--n] = '\0';
    if (held > 0)
        fprintf(stderr, "%s (and %lld similar line%s suppressed before it)\n", line, held,
                held == 1 ? "" : "s");
    else
        fprintf(stderr, "%s\n", line);
    return true;
}

bool folio_log_limited(folio_log_limit *l, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    bool printed = folio_vlog_limited(l, fmt, ap);
    va_end(ap);
    return printed;
}

long long folio_log_limit_held(folio_log_limit *l) {
    pthread_mutex_lock(&l->mu);
    long long held = l->held;
    pthread_mutex_unlock(&l->mu);
    return held;
}

char *folio_escape_log(const char *s, size_t n, char *out, size_t cap) {
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[5];
        size_t k = 0;
        if (c == '\n') e[k++] = '\\', e[k++] = 'n';
        else if (c == '\r') e[k++] = '\\', e[k++] = 'r';
        else if (c == '\t') e[k++] = '\\', e[k++] = 't';
        else if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') e[k++] = (char)c;
        else e[k++] = '\\', e[k++] = 'x', e[k++] = hex[c >> 4], e[k++] = hex[c & 15];
        /* room for this escape, and for "..." should anything follow it */
        size_t need = o + k + (i + 1 < n ? 3 : 0);
        if (need >= cap) {
            if (o + 3 >= cap) o = cap - 4; /* cap >= 8: room made by dropping a little */
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(out + o, e, k);
        o += k;
    }
    out[o] = '\0';
    return out;
}
