/* A per-process watchdog over steps: a thread that ends the job when one step (the forward
 * and its collectives) makes no progress for longer than its limit. Waiting for work between
 * steps (a worker idle in its receive, a server with no requests) is never timed.
 *
 * The limit adapts to the measured step time (step_times below):
 *   - the first STEP_WARM_STEPS steps of the process (warm-up: first touches, lazy loading,
 *     graph capture) may take FOLIO_STEP_TIMEOUT seconds (default 600; 0 = no watchdog);
 *   - after them, a step of n tokens may take STEP_TIMEOUT_MULTIPLE times the time expected
 *     for n tokens, at least FOLIO_STEP_TIMEOUT_FLOOR (default 30 s) and at most
 *     FOLIO_STEP_TIMEOUT; so a hung rank ends a warm job within about a minute.
 *
 * On timeout the watchdog says who stopped answering: a rank that is in its own part of the
 * step (not inside a collective) names itself; a rank waiting in a collective asks the others
 * over the status channel (rank_probe.h) and names those that did not answer or are busy in
 * their own work. It prints one line "folio: error (rank R on HOST): ... rank Q on HOSTQ
 * stopped answering ...; ending the job" and exits with status 1 without running atexit
 * handlers; mpirun/srun then end the other ranks. It makes no MPI call (MPI may be initialised
 * as MPI_THREAD_SERIALIZED). The NCCL watchdog (nccl_comm.h) also aborts the communicators
 * first (step_watchdog_on_timeout).
 *
 * The same timing answers /health (step_watchdog_progress): a step running longer than
 * max(FOLIO_HEALTH_STALL, STALL_MULTIPLE x its expected time) counts as stalled. */
#ifndef FOLIO_STEP_WATCHDOG_H
#define FOLIO_STEP_WATCHDOG_H

#include <stdbool.h>
#include <stddef.h>

#include "rank_probe.h"

/* FOLIO_STEP_TIMEOUT's default: the ceiling of any step, and the limit of warm-up steps; also
 * the NCCL watchdog's deadline (nccl_comm.h). */
#define STEP_TIMEOUT_DEFAULT_S 600.0
/* FOLIO_STEP_TIMEOUT_FLOOR's default: the least limit of a warm step. */
#define STEP_TIMEOUT_FLOOR_DEFAULT_S 30.0
/* A warm step may take this many times its expected time (before the floor and ceiling). */
#define STEP_TIMEOUT_MULTIPLE 20.0
/* Steps of a process timed against FOLIO_STEP_TIMEOUT before the adaptive limit applies. */
#define STEP_WARM_STEPS 3
/* FOLIO_HEALTH_STALL's default, and the multiple of the expected time for /health. */
#define HEALTH_STALL_DEFAULT_S 5.0
#define HEALTH_STALL_MULTIPLE 5.0
/* How long a stalled rank waits for the others' status lines. */
#define STEP_PROBE_TIMEOUT_S 2.0

/* ---- step times: what a step of n tokens is expected to take ---- */

#define STEP_TIME_BUCKETS 32     /* by floor(log2(tokens)) */

typedef struct {
    double seen[STEP_TIME_BUCKETS]; /* per bucket: a decaying maximum of step seconds, 0: none */
    long long steps;             /* steps recorded */
} step_times;

/* Records a step of n_tokens (< 1 counts as 1) that took secs. The bucket keeps the larger of
 * secs and the mean of secs and what it held, so one slow outlier fades over a few steps. */
void step_times_record(step_times *t, int n_tokens, double secs);

/* Seconds a step of n_tokens is expected to take: its bucket's value; else the nearest
 * smaller bucket's scaled by the token ratio (to the top of n's bucket); else the nearest
 * larger bucket's. 0 when nothing was recorded. */
double step_times_expected(const step_times *t, int n_tokens);

/* The watchdog's limit for a step of n_tokens: ceiling_s until STEP_WARM_STEPS steps were
 * recorded, then min(ceiling_s, max(floor_s, STEP_TIMEOUT_MULTIPLE x expected)). */
double step_times_limit(const step_times *t, int n_tokens, double floor_s, double ceiling_s);

/* ---- the watchdog of this process ---- */

/* Reads FOLIO_STEP_TIMEOUT, FOLIO_STEP_TIMEOUT_FLOOR and FOLIO_HEALTH_STALL and, when the
 * watchdog is on and there are several ranks, opens this rank's status port (*port; 0 when
 * none). Every rank calls it before the ports are exchanged. 0, or -1 with a message (a bad
 * value, naming the variable). */
int step_watchdog_prepare(int world, int *port);

/* Starts the thread (once per process; later calls do nothing): peers[0..world) are the
 * ranks' hosts and status ports (copied), this one peers[rank]. 0, or -1 with a message. Does
 * nothing but return 0 when FOLIO_STEP_TIMEOUT is 0. */
int step_watchdog_start(int rank, int world, const probe_peer *peers);
void step_watchdog_stop(void);

/* A function the watchdog calls before it ends the process (e.g. ncclCommAbort, so no rank
 * stays inside NCCL); NULL removes it. */
void step_watchdog_on_timeout(void (*fn)(void *), void *arg);

/* Marks the start and end of a step of n_tokens tokens (one thread steps; cheap: a few atomic
 * stores, the limit computed at enter, the time recorded at leave). Timing and /health work
 * whether or not the thread runs. */
void step_watchdog_enter(long long step, int n_tokens);
void step_watchdog_leave(void);

/* Around a wait for the other ranks inside a step (a collective; what: e.g. "all-reduce", a
 * static string): a rank stuck there is waiting, not the one that stopped. */
void step_watchdog_wait_begin(const char *what);
void step_watchdog_wait_end(void);

/* The step in progress, for /health. */
typedef struct {
    bool in_step;
    long long step;
    double ran_s;                /* how long it has run */
    double stall_s;              /* when it counts as stalled: max(FOLIO_HEALTH_STALL,
                                  * HEALTH_STALL_MULTIPLE x expected) */
    double since_step_s;         /* not in a step: since the last one ended (1e30 before any) */
    double health_floor_s;       /* FOLIO_HEALTH_STALL */
} step_progress;
void step_watchdog_progress(step_progress *p);

/* What the watchdog would print on timeout now (without "folio: error (...): "), with the
 * other ranks asked over the status channel; for tests and the watchdog thread. */
void step_watchdog_diagnose(char *out, size_t n);

#endif
