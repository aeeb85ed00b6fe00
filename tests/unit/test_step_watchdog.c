/* The step watchdog's pieces: the adaptive limit from measured step times, the status channel
 * between ranks (rank_probe.h), the message that names the rank that stopped answering, and
 * the progress /health reads. (tests/cli/rank_watchdog.sh runs them end to end under mpirun.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "progress.h"
#include "rank_probe.h"
#include "step_watchdog.h"

static void test_limit_adapts_to_step_time(void **state) {
    (void)state;
    step_times t = {0};
    assert_true(step_times_expected(&t, 1) == 0);
    /* warm-up: FOLIO_STEP_TIMEOUT (the ceiling) */
    assert_true(step_times_limit(&t, 1, 30, 600) == 600);
    for (int i = 0; i < STEP_WARM_STEPS - 1; i++) step_times_record(&t, 1, 0.01);
    assert_true(step_times_limit(&t, 1, 30, 600) == 600);
    step_times_record(&t, 1, 0.01);
    /* warm: 20 x the measured time, at least the floor, at most the ceiling */
    assert_true(step_times_limit(&t, 1, 30, 600) == 30);
    assert_float_equal(step_times_limit(&t, 1, 0.1, 600), 20 * 0.01, 1e-12);
    assert_float_equal(step_times_limit(&t, 1, 0.1, 0.15), 0.15, 1e-12);
    /* an unseen larger step: scaled from the smaller bucket to the top of its own (64 tokens:
     * bucket 6, up to 127 tokens = 128 x one token) */
    assert_float_equal(step_times_expected(&t, 64), 0.01 * 128, 1e-12);
    step_times_record(&t, 100, 1.0);
    assert_float_equal(step_times_expected(&t, 64), 1.0, 1e-12);
    assert_float_equal(step_times_expected(&t, 127), 1.0, 1e-12);
    assert_float_equal(step_times_expected(&t, 1), 0.01, 1e-12);
    /* an unseen smaller step: the nearest larger bucket */
    step_times u = {0};
    step_times_record(&u, 300, 2.0);
    assert_float_equal(step_times_expected(&u, 1), 2.0, 1e-12);
    /* a slow outlier raises the limit at once and fades over a few steps */
    step_times_record(&t, 1, 40.0);
    assert_true(step_times_limit(&t, 1, 0.1, 600) == 600);
    for (int i = 0; i < 20; i++) step_times_record(&t, 1, 0.01);
    assert_true(step_times_expected(&t, 1) < 0.02);
}

/* A port nothing listens on (bound, then closed). */
static int closed_port(void) {
    int fd, port;
    assert_int_equal(probe_listen(&fd, &port), 0);
    close(fd);
    return port;
}

static void test_probe_answers_and_silence(void **state) {
    (void)state;
    int a, a_port, mute, mute_port;
    assert_int_equal(probe_listen(&a, &a_port), 0);
    assert_int_equal(probe_listen(&mute, &mute_port), 0); /* listens, never answers */
    probe_peer peers[4] = {{"localhost", a_port}, {"localhost", mute_port},
                           {"localhost", closed_port()}, {"localhost", 0}};
    char answers[4][PROBE_LINE];
    const double t0 = folio_now();
    /* rank 3 asks the others; it answers on its own port (peer 0's) while it waits */
    probe_peers(peers, 4, 3, 0.5, a, "rank=0 step=7 in_step=1 waiting=1 ms=5", answers);
    const double took = folio_now() - t0;
    assert_string_equal(answers[0], "rank=0 step=7 in_step=1 waiting=1 ms=5");
    assert_string_equal(answers[1], "");  /* no reply in time */
    assert_string_equal(answers[2], "");  /* refused */
    assert_string_equal(answers[3], "");  /* itself: not asked */
    assert_true(took >= 0.45 && took < 3.0);
    close(a);
    close(mute);
}

static void test_diagnose_names_the_rank(void **state) {
    (void)state;
    setenv("FOLIO_STEP_TIMEOUT", "600", 1);
    setenv("FOLIO_STEP_TIMEOUT_FLOOR", "30", 1);
    setenv("FOLIO_HEALTH_STALL", "0.2", 1);
    int port = 0;
    assert_int_equal(step_watchdog_prepare(2, &port), 0);
    assert_true(port > 0);
    probe_peer peers[2] = {{"localhost", port}, {"localhost", closed_port()}};
    assert_int_equal(step_watchdog_start(0, 2, peers), 0);
    char msg[2048];

    step_progress p;
    step_watchdog_progress(&p);
    assert_false(p.in_step);
    assert_true(p.since_step_s > 1e9); /* no step yet */

    /* waiting in a collective: the rank that does not answer is named */
    step_watchdog_enter(7, 1);
    step_watchdog_wait_begin("all-reduce");
    step_watchdog_diagnose(msg, sizeof msg);
    assert_non_null(strstr(msg, "step 7 made no progress for"));
    assert_non_null(strstr(msg, "waiting in all-reduce"));
    assert_non_null(strstr(msg, "FOLIO_STEP_TIMEOUT=600 s while warming up"));
    assert_non_null(strstr(msg, "rank 1 on localhost stopped answering (no reply"));
    assert_null(strstr(msg, "rank 0 on localhost stopped"));

    /* stuck in its own work: this rank is the one */
    step_watchdog_wait_end();
    step_watchdog_diagnose(msg, sizeof msg);
    assert_non_null(strstr(msg, "in this rank's own work, not in a collective"));
    assert_non_null(strstr(msg, "rank 0 on localhost stopped answering; ending the job"));

    /* /health: stalled once the step runs past FOLIO_HEALTH_STALL (no step measured yet) */
    step_watchdog_progress(&p);
    assert_true(p.in_step);
    assert_true(p.step == 7);
    assert_float_equal(p.stall_s, 0.2, 1e-9);
    const struct timespec nap = {0, 250 * 1000 * 1000};
    nanosleep(&nap, NULL);
    step_watchdog_progress(&p);
    assert_true(p.ran_s > p.stall_s);
    step_watchdog_leave();
    step_watchdog_progress(&p);
    assert_false(p.in_step);
    assert_true(p.since_step_s < 1.0);

    /* warm: the limit in the message is the adaptive one */
    for (int i = 0; i < STEP_WARM_STEPS; i++) {
        step_watchdog_enter(8 + i, 1);
        step_watchdog_leave();
    }
    step_watchdog_enter(20, 1);
    step_watchdog_diagnose(msg, sizeof msg);
    assert_non_null(strstr(msg, "(watchdog, limit 30.0 s: 20 x"));
    assert_non_null(strstr(msg, "at least FOLIO_STEP_TIMEOUT_FLOOR=30 s"));
    step_watchdog_leave();
    step_watchdog_stop();
}

static void test_bad_environment(void **state) {
    (void)state;
    int port;
    setenv("FOLIO_STEP_TIMEOUT_FLOOR", "soon", 1);
    assert_int_equal(step_watchdog_prepare(1, &port), -1);
    setenv("FOLIO_STEP_TIMEOUT_FLOOR", "30", 1);
    setenv("FOLIO_HEALTH_STALL", "-1", 1);
    assert_int_equal(step_watchdog_prepare(1, &port), -1);
    unsetenv("FOLIO_HEALTH_STALL");
    assert_int_equal(step_watchdog_prepare(1, &port), 0);
    assert_int_equal(port, 0); /* one rank: no status port */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limit_adapts_to_step_time),
        cmocka_unit_test(test_probe_answers_and_silence),
        cmocka_unit_test(test_diagnose_names_the_rank),
        cmocka_unit_test(test_bad_environment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
