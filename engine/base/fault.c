/* FOLIO_FAULT parsing: "RANK:POINT[:N]" entries separated by commas. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"
#include "error.h"
#include "fault.h"

/* Whether one entry [s, end) names rank, point and n. */
static bool entry_matches(const char *s, const char *end, const char *point, int rank,
                          long long n) {
    char *after;
    long r = strtol(s, &after, 10);
    if (after == s || after >= end || *after != ':' || r != rank) return false;
    const char *p = after + 1;
    size_t len = strlen(point);
    if ((size_t)(end - p) < len || strncmp(p, point, len) != 0) return false;
    p += len;
    if (p == end) return true; /* no step given: any step */
    if (*p != ':') return false;
    long long want = strtoll(p + 1, &after, 10);
    return after == end && want == n;
}

bool fault_armed(const char *point, int rank, long long n) {
    const char *spec = folio_env("FOLIO_FAULT");
    if (!spec || !*spec) return false;
    for (const char *s = spec; *s;) {
        const char *end = strchr(s, ',');
        if (!end) end = s + strlen(s);
        if (entry_matches(s, end, point, rank, n)) return true;
        s = *end ? end + 1 : end;
    }
    return false;
}

int fault_check(const char *point, int rank, long long n) {
    if (!fault_armed(point, rank, n)) return 0;
    if (n >= 0)
        return folio_fail("injected fault (FOLIO_FAULT=%s): rank %d fails at %s %lld",
                          folio_env("FOLIO_FAULT"), rank, point, n);
    return folio_fail("injected fault (FOLIO_FAULT=%s): rank %d fails at %s",
                      folio_env("FOLIO_FAULT"), rank, point);
}
