/* Interactive sessions ending, on the mock model with a fake clock: u64map deletion (against a
 * plain array over random operations); end_session on a turn (and a turn queued behind it
 * failing with ENGINE_ESESSION_ENDED); engine_end_session's codes; idle expiry in park order,
 * never a session with a turn in flight; the cap on new sessions; the ring of ended ids
 * (an id older than ENGINE_ENDED_SESSIONS starts a new session); the live-session count;
 * memory pressure dropping the least recently parked session's KV first; the scheduler's
 * invariants (map, lists, block references) after every step. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine_loop.h"
#include "error.h"
#include "hashmap.h"
#include "mock_model.h"

#define VOCAB 32

static const int32_t EOS[] = {1};
static double g_now;             /* the engines' clock */
static double fake_clock(void) { return g_now; }

typedef struct {
    int done, errors;
    int last_error;              /* the last failed request's error_code */
} tally;

static void on_done(const request *r, void *user) {
    tally *t = user;
    t->done++;
    if (r->error) {
        t->errors++;
        t->last_error = r->error_code;
    }
}

typedef struct {
    mock_model m;
    engine *e;
    tally t;
} rig;

static void rig_open(rig *r, int num_blocks, double idle_s, int max_sessions) {
    memset(r, 0, sizeof *r);
    sched_config c = {.num_blocks = num_blocks, .block_size = 4, .max_num_seqs = 4,
                      .max_num_batched_tokens = 64, .max_model_len = 64, .prefix_caching = true};
    mock_model_init(&r->m, VOCAB, num_blocks, c.block_size);
    engine_config ec = {.sched = c, .vocab = VOCAB, .eos_ids = EOS, .n_eos = 1,
                        .session_idle_s = idle_s, .max_sessions = max_sessions,
                        .clock = fake_clock};
    r->e = engine_create(&ec, mock_backend(&r->m), on_done, &r->t);
    assert_non_null(r->e);
}

static void rig_run(rig *r) {
    while (engine_busy(r->e)) {
        if (engine_step(r->e) != 0) fail_msg("step: %s", folio_last_error());
        if (sched_check(engine_scheduler(r->e)) != 0) fail_msg("%s", folio_last_error());
    }
}

static void rig_close(rig *r) {
    engine_free(r->e);
    mock_model_free(&r->m);
}

/* Adds a 6-token turn of session sid (4 tokens out); returns engine_add's code. */
static int add_turn(rig *r, int64_t sid, bool end) {
    int32_t prompt[6];
    for (int i = 0; i < 6; i++) prompt[i] = 2 + (int32_t)((sid * 7 + i * 3) % (VOCAB - 2));
    request_params p;
    request_params_init(&p);
    p.sampling.temperature = 0;
    p.max_tokens = 4;
    p.ignore_eos = true;
    p.session_id = sid;
    p.end_session = end;
    return engine_add(r->e, prompt, 6, &p, NULL, NULL);
}

static int live(rig *r) { return engine_get_stats(r->e)->sessions; }

static void test_u64map_del(void **state) {
    (void)state;
    enum { KEYS = 300 };
    uint64_t ref[KEYS];          /* UINT64_MAX: absent */
    u64map m;
    u64map_init(&m, 4);
    for (int i = 0; i < KEYS; i++) ref[i] = UINT64_MAX;
    uint64_t rs = 7;
    for (int op = 0; op < 200000; op++) {
        rs = rs * 6364136223846793005ull + 1442695040888963407ull;
        int k = (int)((rs >> 33) % KEYS);
        uint64_t key = (uint64_t)k * 1024; /* clustered keys: long probe runs */
        if ((rs >> 20) % 3 == 0) {
            assert_int_equal(u64map_del(&m, key), ref[k] != UINT64_MAX);
            ref[k] = UINT64_MAX;
        } else {
            u64map_put(&m, key, (uint64_t)op);
            ref[k] = (uint64_t)op;
        }
        if (op % 997 == 0) {
            size_t n = 0;
            for (int i = 0; i < KEYS; i++) {
                uint64_t v;
                bool has = u64map_get(&m, (uint64_t)i * 1024, &v);
                assert_int_equal(has, ref[i] != UINT64_MAX);
                if (has) assert_int_equal(v, ref[i]);
                n += has;
            }
            assert_int_equal(n, m.count);
        }
    }
    u64map_free(&m);
}

static void test_end_session_turn(void **state) {
    (void)state;
    rig r;
    rig_open(&r, 64, 0, 0);
    assert_int_equal(add_turn(&r, 5, false), 0);
    assert_int_equal(live(&r), 1); /* a first turn in flight counts */
    rig_run(&r);
    assert_int_equal(live(&r), 1);
    assert_non_null(sched_session(engine_scheduler(r.e), 5));
    /* turn 2 ends the session; turn 3, queued behind it, fails as ended */
    assert_int_equal(add_turn(&r, 5, true), 0);
    assert_int_equal(add_turn(&r, 5, false), 0);
    rig_run(&r);
    assert_int_equal(r.t.done, 3);
    assert_int_equal(r.t.errors, 1);
    assert_int_equal(r.t.last_error, ENGINE_ESESSION_ENDED);
    assert_null(sched_session(engine_scheduler(r.e), 5));
    assert_int_equal(live(&r), 0);
    assert_int_equal(engine_get_stats(r.e)->sessions_ended[SESSION_END_CLIENT], 1);
    assert_int_equal(bm_num_available(sched_blocks(engine_scheduler(r.e))), 64);
    /* a new turn naming it: refused, with how it ended */
    assert_int_equal(add_turn(&r, 5, false), ENGINE_ESESSION_ENDED);
    assert_non_null(strstr(folio_last_error(), "ended by the client"));
    /* engine_end_session: unknown, ended, busy, done */
    assert_int_equal(engine_end_session(r.e, 77), -1);
    assert_non_null(strstr(folio_last_error(), "unknown"));
    assert_int_equal(engine_end_session(r.e, 5), -1);
    assert_non_null(strstr(folio_last_error(), "ended"));
    assert_int_equal(add_turn(&r, 6, false), 0);
    assert_int_equal(engine_end_session(r.e, 6), ENGINE_ESESSION_BUSY);
    rig_run(&r);
    assert_int_equal(engine_end_session(r.e, 6), 0);
    assert_int_equal(live(&r), 0);
    rig_close(&r);
}

static void test_idle_expiry(void **state) {
    (void)state;
    rig r;
    rig_open(&r, 64, 10, 0);
    g_now = 100;
    for (int64_t s = 1; s <= 3; s++) {
        assert_int_equal(add_turn(&r, s, false), 0);
        rig_run(&r);
        g_now += 1; /* parked at 100, 101, 102 */
    }
    /* session 1 turns again at 103: it moves to the back of the park order */
    assert_int_equal(add_turn(&r, 1, false), 0);
    rig_run(&r);
    g_now = 111.2; /* only session 2 (parked at 101) is idle more than 10 s */
    assert_int_equal(engine_expire_sessions(r.e), 1);
    assert_null(sched_session(engine_scheduler(r.e), 2));
    assert_int_equal(add_turn(&r, 2, false), ENGINE_ESESSION_ENDED);
    assert_non_null(strstr(folio_last_error(), "expired after 10 s idle"));
    /* a session with a turn in flight is not idle, however old its park */
    assert_int_equal(add_turn(&r, 3, false), 0);
    g_now = 200;
    assert_int_equal(engine_expire_sessions(r.e), 1); /* session 1, not 3 */
    assert_non_null(sched_session(engine_scheduler(r.e), 3));
    rig_run(&r);
    assert_int_equal(engine_expire_sessions(r.e), 0); /* 3 parked just now */
    g_now = 211;
    assert_int_equal(engine_expire_sessions(r.e), 1);
    assert_int_equal(live(&r), 0);
    assert_int_equal(engine_get_stats(r.e)->sessions_ended[SESSION_END_EXPIRED], 3);
    assert_int_equal(bm_num_available(sched_blocks(engine_scheduler(r.e))), 64);
    assert_int_equal(sched_check(engine_scheduler(r.e)), 0);
    rig_close(&r);
}

static void test_cap_and_ring(void **state) {
    (void)state;
    rig r;
    rig_open(&r, 64, 0, 2);
    assert_int_equal(add_turn(&r, 1, false), 0);
    assert_int_equal(add_turn(&r, 2, false), 0); /* both first turns in flight */
    assert_int_equal(add_turn(&r, 3, false), ENGINE_ESESSION_CAP);
    assert_non_null(strstr(folio_last_error(), "--max-sessions"));
    assert_int_equal(add_turn(&r, 1, false), 0); /* an existing session goes on */
    rig_run(&r);
    assert_int_equal(add_turn(&r, 3, false), ENGINE_ESESSION_CAP);
    assert_int_equal(engine_end_session(r.e, 2), 0);
    assert_int_equal(add_turn(&r, 3, false), 0);
    rig_run(&r);
    assert_int_equal(live(&r), 2);
    rig_close(&r);

    /* the ring: after ENGINE_ENDED_SESSIONS more ends, the first id is forgotten */
    rig_open(&r, 64, 0, 0);
    for (int64_t s = 0; s <= ENGINE_ENDED_SESSIONS; s++) {
        assert_int_equal(add_turn(&r, 1000 + s, true), 0);
        rig_run(&r);
    }
    assert_int_equal(live(&r), 0);
    assert_int_equal(add_turn(&r, 1000, false), 0); /* forgotten: a new session */
    assert_int_equal(add_turn(&r, 1001, false), ENGINE_ESESSION_ENDED);
    assert_int_equal(add_turn(&r, 1000 + ENGINE_ENDED_SESSIONS, false), ENGINE_ESESSION_ENDED);
    rig_run(&r);
    assert_int_equal(live(&r), 1);
    rig_close(&r);
}

static void test_drop_oldest_kv_first(void **state) {
    (void)state;
    rig r;
    rig_open(&r, 16, 0, 0); /* 16 blocks of 4 tokens; a parked session holds 3 */
    g_now = 0;
    for (int64_t s = 1; s <= 4; s++) {
        assert_int_equal(add_turn(&r, s, false), 0);
        rig_run(&r);
        g_now += 1;
    }
    assert_int_equal(add_turn(&r, 1, false), 0); /* 1 runs again: now the most recent */
    rig_run(&r);
    scheduler *s = engine_scheduler(r.e);
    for (int64_t k = 1; k <= 4; k++) assert_true(sched_session(s, k)->n_blocks > 0);
    /* a 40-token request needs 10 blocks: sessions 2 and 3 (parked longest ago) lose theirs */
    int32_t big[40];
    for (int i = 0; i < 40; i++) big[i] = 2 + (i * 5) % (VOCAB - 2);
    request_params p;
    request_params_init(&p);
    p.max_tokens = 1;
    assert_int_equal(engine_add(r.e, big, 40, &p, NULL, NULL), 0);
    rig_run(&r);
    assert_true(sched_get_stats(s)->session_drops >= 2);
    assert_int_equal(sched_session(s, 2)->n_blocks, 0);
    assert_int_equal(sched_session(s, 3)->n_blocks, 0);
    assert_true(sched_session(s, 1)->n_blocks > 0);
    assert_int_equal(sched_check(s), 0);
    rig_close(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_u64map_del),      cmocka_unit_test(test_end_session_turn),
        cmocka_unit_test(test_idle_expiry),     cmocka_unit_test(test_cap_and_ring),
        cmocka_unit_test(test_drop_oldest_kv_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
