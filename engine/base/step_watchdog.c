/* The step watchdog: the step-time estimate, one polling thread that also answers the other
 * ranks' status questions, and the message naming the rank that stopped answering. State the
 * threads share is in atomics; the estimate belongs to the one thread that steps. */
#include <math.h>
#include <stdarg.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "env.h"
#include "error.h"
#include "step_watchdog.h"

/* ---- step times ---- */

static int bucket_of(int n_tokens) {
    unsigned n = n_tokens < 1 ? 1u : (unsigned)n_tokens;
    int b = 0;
    while (n >>= 1) b++;
    return b < STEP_TIME_BUCKETS ? b : STEP_TIME_BUCKETS - 1;
}

void step_times_record(step_times *t, int n_tokens, double secs) {
    if (!(secs >= 0)) return;
    double *v = &t->seen[bucket_of(n_tokens)];
    double mean = 0.5 * (*v + secs);
    *v = secs > mean ? secs : mean;
    t->steps++;
}

double step_times_expected(const step_times *t, int n_tokens) {
    const int b = bucket_of(n_tokens);
    if (t->seen[b] > 0) return t->seen[b];
    for (int k = b - 1; k >= 0; k--) /* linear in tokens from a smaller bucket: generous */
        if (t->seen[k] > 0) return t->seen[k] * ldexp(1.0, b + 1 - k);
    for (int k = b + 1; k < STEP_TIME_BUCKETS; k++)
        if (t->seen[k] > 0) return t->seen[k];
    return 0;
}

double step_times_limit(const step_times *t, int n_tokens, double floor_s, double ceiling_s) {
    if (t->steps < STEP_WARM_STEPS) return ceiling_s;
    double limit = STEP_TIMEOUT_MULTIPLE * step_times_expected(t, n_tokens);
    if (limit < floor_s) limit = floor_s;
    return limit < ceiling_s ? limit : ceiling_s;
}

/* ---- the watchdog ---- */

static struct {
    /* configuration (step_watchdog_prepare; defaults until then) */
    bool configured;
    double ceiling_s, floor_s, health_s;
    int listen_fd;
    /* the thread */
    pthread_t thread;
    bool running;
    atomic_bool stop;
    int rank, world;
    probe_peer *peers;           /* [world] or NULL */
    void (*_Atomic on_timeout)(void *);
    void *on_timeout_arg;
    /* the step in progress (written by the stepping thread) */
    atomic_llong entered_ns;     /* 0: not in a step */
    atomic_llong left_ns;        /* when the last step ended (0: none yet) */
    atomic_llong step;
    atomic_llong limit_us;       /* the watchdog's limit of this step */
    atomic_llong stall_us;       /* /health's */
    atomic_llong expected_us;    /* the estimate the limits came from (0: none) */
    atomic_bool warm;
    const char *_Atomic waiting; /* inside a collective: what; NULL: this rank's own work */
    int n_tokens;                /* stepping thread only */
    step_times times;            /* stepping thread only */
} wd = {.ceiling_s = STEP_TIMEOUT_DEFAULT_S, .floor_s = STEP_TIMEOUT_FLOOR_DEFAULT_S,
        .health_s = HEALTH_STALL_DEFAULT_S, .listen_fd = -1, .world = 1};

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* A number of seconds >= 0 from the environment (def when unset); -1 naming it when bad. */
static int env_seconds(const char *name, double def, double *out) {
    const char *env = folio_env(name);
    *out = def;
    if (!env || !*env) return 0;
    char *end;
    double v = strtod(env, &end);
    if (*end || !(v >= 0) || !isfinite(v))
        return folio_fail("%s: '%s' is not a number of seconds", name, env);
    *out = v;
    return 0;
}

int step_watchdog_prepare(int world, int *port) {
    *port = 0;
    if (env_seconds("FOLIO_STEP_TIMEOUT", STEP_TIMEOUT_DEFAULT_S, &wd.ceiling_s) != 0 ||
        env_seconds("FOLIO_STEP_TIMEOUT_FLOOR", STEP_TIMEOUT_FLOOR_DEFAULT_S, &wd.floor_s) != 0 ||
        env_seconds("FOLIO_HEALTH_STALL", HEALTH_STALL_DEFAULT_S, &wd.health_s) != 0)
        return -1;
    wd.configured = true;
    if (wd.ceiling_s == 0 || world <= 1 || wd.listen_fd >= 0) return 0;
    return probe_listen(&wd.listen_fd, port);
}

static const char *self_host(void) { return wd.peers ? wd.peers[wd.rank].host : "this host"; }

/* This rank's status line (the status channel's protocol). */
static void status_line(char *out, size_t n) {
    long long t = atomic_load(&wd.entered_ns);
    snprintf(out, n, "rank=%d step=%lld in_step=%d waiting=%d ms=%lld", wd.rank,
             atomic_load(&wd.step), t != 0, atomic_load(&wd.waiting) != NULL,
             t ? (now_ns() - t) / 1000000 : 0);
}

typedef struct {
    int rank, in_step, waiting;
    long long step, ms;
} peer_status;

static bool parse_status(const char *line, peer_status *s) {
    return sscanf(line, "rank=%d step=%lld in_step=%d waiting=%d ms=%lld", &s->rank, &s->step,
                  &s->in_step, &s->waiting, &s->ms) == 5;
}

/* Appends to out[0..n) (always terminated). */
static void append(char *out, size_t n, const char *fmt, ...) FOLIO_PRINTF(3, 4);
static void append(char *out, size_t n, const char *fmt, ...) {
    size_t len = strlen(out);
    if (len + 1 >= n) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + len, n - len, fmt, ap);
    va_end(ap);
}

/* Why peer i did not take part in step `step`, or "" when it waits in a collective too. */
static void peer_verdict(const char *line, long long step, char *why, size_t n) {
    peer_status s;
    why[0] = '\0';
    if (!line[0])
        snprintf(why, n, "no reply from its watchdog: the process is stopped or gone, or its "
                         "host is unreachable");
    else if (!parse_status(line, &s))
        snprintf(why, n, "an unreadable status reply");
    else if (!s.in_step)
        snprintf(why, n, "it is not in a step (its last was %lld)", s.step);
    else if (s.step != step)
        snprintf(why, n, "it is in step %lld", s.step);
    else if (!s.waiting)
        snprintf(why, n, "busy in its own work of step %lld for %.1f s, not in a collective",
                 s.step, 1e-3 * (double)s.ms);
}

void step_watchdog_diagnose(char *out, size_t n) {
    long long t = atomic_load(&wd.entered_ns), step = atomic_load(&wd.step);
    const char *waiting = atomic_load(&wd.waiting);
    double ran = t ? 1e-9 * (double)(now_ns() - t) : 0, limit = 1e-6 * atomic_load(&wd.limit_us);
    out[0] = '\0';
    append(out, n, "step %lld made no progress for %.1f s", step, ran);
    if (wd.world > 1 && waiting) append(out, n, " waiting in %s", waiting);
    else if (wd.world > 1) append(out, n, " in this rank's own work, not in a collective");
    append(out, n, " (watchdog, limit %.1f s: ", limit);
    if (atomic_load(&wd.warm))
        append(out, n, "%g x %.3g s expected, at least FOLIO_STEP_TIMEOUT_FLOOR=%g s, at most "
                       "FOLIO_STEP_TIMEOUT=%g s)", STEP_TIMEOUT_MULTIPLE,
               1e-6 * atomic_load(&wd.expected_us), wd.floor_s, wd.ceiling_s);
    else
        append(out, n, "FOLIO_STEP_TIMEOUT=%g s while warming up)", wd.ceiling_s);
    if (!waiting || wd.world <= 1 || !wd.peers) {
        append(out, n, ": rank %d on %s stopped answering; ending the job", wd.rank,
               self_host());
        return;
    }
    char(*answers)[PROBE_LINE] = folio_xcalloc((size_t)wd.world, sizeof *answers);
    char mine[PROBE_LINE];
    status_line(mine, sizeof mine);
    probe_peers(wd.peers, wd.world, wd.rank, STEP_PROBE_TIMEOUT_S, wd.listen_fd, mine, answers);
    int culprits = 0, silent = 0;
    for (int i = 0; i < wd.world; i++) {
        char why[200];
        if (i == wd.rank) continue;
        if (wd.peers[i].port <= 0) { /* its FOLIO_STEP_TIMEOUT is 0: nobody to ask */
            silent++;
            continue;
        }
        peer_verdict(answers[i], step, why, sizeof why);
        if (!why[0]) continue;
        append(out, n, "%s rank %d on %s stopped answering (%s)", culprits ? ";" : ":", i,
               wd.peers[i].host, why);
        culprits++;
    }
    free(answers);
    if (!culprits && silent)
        append(out, n, ": every rank asked waits in a collective of step %lld; %d rank%s run no "
                       "watchdog (FOLIO_STEP_TIMEOUT=0) and could not be asked", step, silent,
               silent == 1 ? "" : "s");
    else if (!culprits)
        append(out, n, ": every rank waits in a collective of step %lld (MPI, NCCL or the "
                       "network between the ranks hangs)", step);
    append(out, n, "; ending the job");
}

static void *watch(void *arg) {
    (void)arg;
    char line[PROBE_LINE];
    while (!atomic_load(&wd.stop)) {
        struct pollfd p = {.fd = wd.listen_fd, .events = POLLIN};
        if (poll(&p, 1, 100) > 0) {
            status_line(line, sizeof line);
            probe_answer(wd.listen_fd, line);
        }
        long long t = atomic_load(&wd.entered_ns);
        if (t == 0 || (now_ns() - t) / 1000 < atomic_load(&wd.limit_us)) continue;
        char msg[2048];
        step_watchdog_diagnose(msg, sizeof msg);
        fprintf(stderr, "folio: error (rank %d on %s): %s\n", wd.rank, self_host(), msg);
        fflush(stderr);
        void (*fn)(void *) = atomic_load(&wd.on_timeout);
        if (fn) fn(wd.on_timeout_arg);
        _exit(1);
    }
    return NULL;
}

int step_watchdog_start(int rank, int world, const probe_peer *peers) {
    if (wd.running) return 0;
    if (!wd.configured) {
        int port;
        if (step_watchdog_prepare(world, &port) != 0) return -1;
    }
    if (wd.ceiling_s == 0) return 0;
    wd.rank = rank;
    wd.world = world;
    free(wd.peers);
    wd.peers = folio_xcalloc((size_t)world, sizeof *wd.peers);
    memcpy(wd.peers, peers, sizeof *wd.peers * (size_t)world);
    atomic_store(&wd.stop, false);
    atomic_store(&wd.entered_ns, 0);
    if (pthread_create(&wd.thread, NULL, watch, NULL) != 0)
        return folio_fail("step watchdog: cannot start its thread");
    wd.running = true;
    return 0;
}

void step_watchdog_stop(void) {
    if (wd.running) {
        atomic_store(&wd.stop, true);
        pthread_join(wd.thread, NULL);
        wd.running = false;
    }
    if (wd.listen_fd >= 0) close(wd.listen_fd);
    wd.listen_fd = -1;
    free(wd.peers);
    wd.peers = NULL;
}

void step_watchdog_on_timeout(void (*fn)(void *), void *arg) {
    wd.on_timeout_arg = arg;
    atomic_store(&wd.on_timeout, fn);
}

void step_watchdog_enter(long long step, int n_tokens) {
    const double expected = step_times_expected(&wd.times, n_tokens);
    const double limit = step_times_limit(&wd.times, n_tokens, wd.floor_s, wd.ceiling_s);
    double stall = HEALTH_STALL_MULTIPLE * expected;
    if (stall < wd.health_s) stall = wd.health_s;
    wd.n_tokens = n_tokens;
    atomic_store(&wd.expected_us, llround(expected * 1e6));
    atomic_store(&wd.limit_us, llround(limit * 1e6));
    atomic_store(&wd.stall_us, llround(stall * 1e6));
    atomic_store(&wd.warm, wd.times.steps >= STEP_WARM_STEPS);
    atomic_store(&wd.waiting, NULL);
    atomic_store(&wd.step, step);
    atomic_store(&wd.entered_ns, now_ns());
}

void step_watchdog_leave(void) {
    long long t = atomic_exchange(&wd.entered_ns, 0), now = now_ns();
    atomic_store(&wd.left_ns, now);
    if (t) step_times_record(&wd.times, wd.n_tokens, 1e-9 * (double)(now - t));
    atomic_store(&wd.waiting, NULL);
}

void step_watchdog_wait_begin(const char *what) { atomic_store(&wd.waiting, what); }

void step_watchdog_wait_end(void) { atomic_store(&wd.waiting, NULL); }

void step_watchdog_progress(step_progress *p) {
    long long t = atomic_load(&wd.entered_ns), left = atomic_load(&wd.left_ns), now = now_ns();
    p->in_step = t != 0;
    p->step = atomic_load(&wd.step);
    p->ran_s = t ? 1e-9 * (double)(now - t) : 0;
    p->since_step_s = !t && left ? 1e-9 * (double)(now - left) : 1e30;
    p->stall_s = 1e-6 * (double)atomic_load(&wd.stall_us);
    p->health_floor_s = wd.health_s;
}
