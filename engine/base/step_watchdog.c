/* The step watchdog: one polling thread, state in atomics. */
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

static struct {
    pthread_t thread;
    bool running;
    atomic_bool stop;
    atomic_llong entered_ns;     /* 0: not in a step */
    atomic_llong step;
    double timeout_s;
    int rank;
    char host[256];
    void (*_Atomic on_timeout)(void *);
    void *on_timeout_arg;
} wd;

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static void *watch(void *arg) {
    (void)arg;
    const struct timespec tick = {0, 100 * 1000 * 1000};
    while (!atomic_load(&wd.stop)) {
        nanosleep(&tick, NULL);
        long long t = atomic_load(&wd.entered_ns);
        if (t == 0 || (now_ns() - t) * 1e-9 < wd.timeout_s) continue;
        fprintf(stderr, "folio: error (rank %d on %s): step %lld made no progress for %.0f s "
                        "(watchdog, FOLIO_STEP_TIMEOUT=%g): another rank failed or hangs; "
                        "ending the job\n", wd.rank, wd.host, atomic_load(&wd.step),
                wd.timeout_s, wd.timeout_s);
        fflush(stderr);
        void (*fn)(void *) = atomic_load(&wd.on_timeout);
        if (fn) fn(wd.on_timeout_arg);
        _exit(1);
    }
    return NULL;
}

int step_watchdog_start(int rank, const char *host) {
    if (wd.running) return 0;
    const char *env = folio_env("FOLIO_STEP_TIMEOUT");
    double timeout = STEP_TIMEOUT_DEFAULT_S;
    if (env && *env) {
        char *end;
        timeout = strtod(env, &end);
        if (*end || !(timeout >= 0))
            return folio_fail("FOLIO_STEP_TIMEOUT: '%s' is not a number of seconds", env);
    }
    if (timeout == 0) return 0;
    wd.timeout_s = timeout;
    wd.rank = rank;
    snprintf(wd.host, sizeof wd.host, "%s", host);
    atomic_store(&wd.stop, false);
    atomic_store(&wd.entered_ns, 0);
    if (pthread_create(&wd.thread, NULL, watch, NULL) != 0)
        return folio_fail("step watchdog: cannot start its thread");
    wd.running = true;
    return 0;
}

void step_watchdog_stop(void) {
    if (!wd.running) return;
    atomic_store(&wd.stop, true);
    pthread_join(wd.thread, NULL);
    wd.running = false;
}

void step_watchdog_on_timeout(void (*fn)(void *), void *arg) {
    wd.on_timeout_arg = arg;
    atomic_store(&wd.on_timeout, fn);
}

void step_watchdog_enter(long long step) {
    atomic_store(&wd.step, step);
    atomic_store(&wd.entered_ns, now_ns());
}

void step_watchdog_leave(void) { atomic_store(&wd.entered_ns, 0); }
