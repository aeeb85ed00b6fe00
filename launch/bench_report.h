/* What folio bench keeps of a run: the --output-json file (its path checked before the run,
 * written atomically after it), the fields every result carries (version, commit, date,
 * device, command line), and the statistics that both the printed table and the file use
 * (mean, standard deviation, percentiles as numpy computes them), so the two always agree.
 * Key names follow vLLM's benchmark scripts where vLLM has one (docs/benchmarks.md). */
#ifndef FOLIO_BENCH_REPORT_H
#define FOLIO_BENCH_REPORT_H

#include <jansson.h>

/* A result file being prepared: path and a temporary file beside it. */
typedef struct {
    const char *path;            /* NULL: no --output-json */
    char *tmp;                   /* PATH.tmp.PID, created by bench_json_prepare */
} bench_json_file;

/* Checks that --output-json PATH can be written, before the run: creates the temporary file
 * beside it (so a missing folder, a folder in its place or no permission fails now, naming
 * PATH and the reason). path NULL: nothing to do. 0, or -1 with a message. */
int bench_json_prepare(bench_json_file *f, const char *path);

/* Writes root (indented) to the temporary file, syncs it and renames it onto the path, so a
 * reader sees the old file or the whole new one. Takes the reference to root. No file: only
 * drops root. 0, or -1 with a message. */
int bench_json_commit(bench_json_file *f, json_t *root);

/* Removes the temporary file (a run that failed writes nothing). */
void bench_json_abandon(bench_json_file *f);

/* The end of a run: rc 0 commits result (and says on stderr where it went), else drops it
 * and the temporary file. Takes the reference to result (NULL allowed). rc, or -1 when
 * writing failed. */
int bench_json_finish(bench_json_file *f, int rc, json_t *result);

/* A new result object with the fields every result carries: "mode" (latency, throughput,
 * serve), "folio_version", "git_commit", "date" (vLLM's form, UTC: 20261205-201126),
 * "timestamp" (ISO 8601 UTC), "gpu" (device name, "cpu" on the CPU backend; NULL: null), "command"
 * ("folio bench" and argv, the arguments after it, joined by spaces: argv[0] is the mode). */
json_t *bench_json_header(const char *mode, const char *gpu, int argc, char **argv);

/* A JSON number, or null when x is not finite (jansson has no NaN or infinity). */
json_t *bench_json_real(double x);

/* Statistics of n values (n >= 1); v is sorted in place. */
typedef struct {
    double mean, std, median, min, max;
} bench_stats;
void bench_stats_of(double *v, int n, bench_stats *s);

/* The p-th percentile (0..100) of sorted v[0..n), linearly interpolated between the closest
 * ranks (numpy.percentile's default, what vLLM reports). n >= 1. */
double bench_percentile(const double *sorted, int n, double p);

#endif
