/* folio bench's result file (checked early, written atomically), the fields every result
 * carries, and the statistics shared by the printed table and the file. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_report.h"
#include "build_info.h"
#include "error.h"

int bench_json_prepare(bench_json_file *f, const char *path) {
    *f = (bench_json_file){.path = path};
    if (!path) return 0;
    if (!*path) return folio_fail("--output-json: empty path");
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return folio_fail("--output-json %s: is a directory (give a file name)", path);
    const size_t n = strlen(path) + 32;
    f->tmp = folio_xmalloc(n);
    snprintf(f->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    const int fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        const int err = errno;
        free(f->tmp);
        f->tmp = NULL;
        return folio_fail("--output-json %s: cannot create a file there (%s)", path,
                          strerror(err));
    }
    close(fd);
    return 0;
}

int bench_json_commit(bench_json_file *f, json_t *root) {
    if (!f->tmp) {
        json_decref(root);
        return 0;
    }
    FILE *out = fopen(f->tmp, "w");
    int rc = 0;
    if (!out) {
        rc = folio_fail("--output-json %s: cannot reopen %s (%s)", f->path, f->tmp,
                        strerror(errno));
    } else {
        if (json_dumpf(root, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
                                      JSON_REAL_PRECISION(12)) != 0 ||
            fputc('\n', out) == EOF || fflush(out) != 0 || fsync(fileno(out)) != 0)
            rc = folio_fail("--output-json %s: writing %s failed (%s)", f->path, f->tmp,
                            strerror(errno));
        if (fclose(out) != 0 && rc == 0)
            rc = folio_fail("--output-json %s: closing %s failed (%s)", f->path, f->tmp,
                            strerror(errno));
        if (rc == 0 && rename(f->tmp, f->path) != 0)
            rc = folio_fail("--output-json %s: renaming %s onto it failed (%s)", f->path,
                            f->tmp, strerror(errno));
    }
    json_decref(root);
    if (rc != 0) unlink(f->tmp);
    free(f->tmp);
    f->tmp = NULL;
    return rc;
}

void bench_json_abandon(bench_json_file *f) {
    if (!f->tmp) return;
    unlink(f->tmp);
    free(f->tmp);
    f->tmp = NULL;
}

int bench_json_finish(bench_json_file *f, int rc, json_t *result) {
    if (rc != 0) {
        json_decref(result);
        bench_json_abandon(f);
        return rc;
    }
    fflush(stdout); /* the table before the note */
    const bool write = f->tmp != NULL;
    if (bench_json_commit(f, result) != 0) return -1;
    if (write) fprintf(stderr, "folio: bench: results written to %s\n", f->path);
    return 0;
}

json_t *bench_json_header(const char *mode, const char *gpu, int argc, char **argv) {
    char date[32] = "", stamp[32] = "";
    const time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm)) {
        strftime(date, sizeof date, "%Y%m%d-%H%M%S", &tm);
        strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    size_t len = sizeof "folio bench";
    for (int i = 0; i < argc; i++) len += strlen(argv[i]) + 1;
    char *command = folio_xmalloc(len), *p = command;
    p += sprintf(p, "folio bench");
    for (int i = 0; i < argc; i++) p += sprintf(p, " %s", argv[i]);
    json_t *o = json_object();
    json_object_set_new(o, "mode", json_string(mode));
    json_object_set_new(o, "folio_version", json_string(FOLIO_VERSION));
    json_object_set_new(o, "git_commit", json_string(FOLIO_GIT_COMMIT));
    json_object_set_new(o, "date", json_string(date));
    json_object_set_new(o, "timestamp", json_string(stamp));
    json_object_set_new(o, "gpu", gpu ? json_string(gpu) : json_null());
    json_object_set_new(o, "command", json_string(command));
    free(command);
    return o;
}

json_t *bench_json_real(double x) {
    return isfinite(x) ? json_real(x) : json_null();
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_percentile(const double *sorted, int n, double p) {
    const double rank = p / 100.0 * (n - 1);
    const int lo = (int)floor(rank);
    if (lo >= n - 1) return sorted[n - 1];
    return sorted[lo] + (rank - lo) * (sorted[lo + 1] - sorted[lo]);
}

void bench_stats_of(double *v, int n, bench_stats *s) {
    qsort(v, n, sizeof *v, cmp_double);
    double sum = 0, sq = 0;
    for (int i = 0; i < n; i++) sum += v[i];
    s->mean = sum / n;
    for (int i = 0; i < n; i++) sq += (v[i] - s->mean) * (v[i] - s->mean);
    s->std = sqrt(sq / n);
    s->median = bench_percentile(v, n, 50);
    s->min = v[0];
    s->max = v[n - 1];
}
