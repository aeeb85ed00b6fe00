/* The engine loop on the real trained stories260K (CPU backend): batched greedy outputs equal
 * each request alone; a prefix-cached run gives bit-identical logprobs (top 20 of every step)
 * to an uncached one; copy-on-write under n > 1; a session turn prefills only its new tokens
 * and answers as the whole conversation sent fresh would; each sequence's count of reused
 * (cached) context tokens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend_cpu.h"
#include "engine_loop.h"
#include "error.h"
#include "fixture_util.h"

#define MAXG 64
#define NREQ 12

typedef struct {
    int n_out;
    int32_t out[4][MAXG];
    int len[4];
    token_logprobs lp[MAXG];
    int n_cached;
    bool done;
} result;

static comm_ctx g_comm;
static device_model g_m;

static void on_done(const request *r, void *user) {
    (void)user;
    result *res = r->tag;
    res->done = true;
    res->n_out = r->n_seqs;
    res->n_cached = r->seqs[0]->n_cached;
    for (int i = 0; i < r->n_seqs; i++) {
        const sequence *q = r->seqs[i];
        res->len[i] = sequence_generated(q);
        memcpy(res->out[i], q->tokens + q->n_prompt, sizeof(int32_t) * res->len[i]);
        if (i == 0 && q->logprobs) memcpy(res->lp, q->logprobs, sizeof *q->logprobs * res->len[0]);
    }
}

typedef struct {
    backend_cpu be;
    engine *e;
} rig;

static void rig_open(rig *r, int num_blocks, int max_seqs, int budget, bool prefix) {
    sched_config sc = {.num_blocks = num_blocks, .block_size = 16, .max_num_seqs = max_seqs,
                       .max_num_batched_tokens = budget, .max_model_len = 256,
                       .prefix_caching = prefix};
    assert_int_equal(backend_cpu_create(&r->be, &g_m.m, &g_comm, num_blocks, 16, budget, max_seqs,
                                        sc.max_model_len, NULL), 0);
    engine_config ec = {.sched = sc, .vocab = g_m.m.cfg.vocab, .eos_ids = g_m.m.cfg.eos_ids,
                        .n_eos = g_m.m.cfg.n_eos};
    r->e = engine_create(&ec, backend_cpu_iface(&r->be), on_done, NULL);
    assert_non_null(r->e);
}

static void rig_run(rig *r) {
    while (engine_busy(r->e)) {
        if (engine_step(r->e) != 0) fail_msg("%s", folio_last_error());
        if (sched_check(engine_scheduler(r->e)) != 0) fail_msg("%s", folio_last_error());
    }
}

static void rig_close(rig *r) {
    engine_free(r->e);
    backend_cpu_free(&r->be);
}

static int make_prompt(int i, int32_t *p) {
    int n = 20 + (i * 7) % 30;
    p[0] = 1;
    for (int k = 1; k < n; k++) p[k] = k < 18 ? 3 + (k * 31) % 500 : 3 + ((k + i) * 53) % 500;
    return n;
}

static void greedy_params(request_params *p, int max_tokens) {
    request_params_init(p);
    p->sampling.temperature = 0;
    p->max_tokens = max_tokens;
    p->logprobs = 20;
}

static int setup(void **state) {
    (void)state;
    open_stories_or_skip(&g_comm, &g_m);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    device_model_close(&g_m);
    return 0;
}

static void test_batched_equals_alone(void **state) {
    (void)state;
    static result batched[NREQ], alone[NREQ];
    int32_t p[64];
    rig r;
    rig_open(&r, 24, 8, 64, true); /* 24 blocks of 16: preemption, chunked prefill */
    for (int i = 0; i < NREQ; i++) {
        request_params rp;
        greedy_params(&rp, 24 + i * 3);
        rp.ignore_eos = i % 2;
        int n = make_prompt(i, p);
        assert_int_equal(engine_add(r.e, p, n, &rp, &batched[i], NULL), 0);
    }
    rig_run(&r);
    assert_true(sched_get_stats(engine_scheduler(r.e))->preemptions > 0);
    assert_true(sched_get_stats(engine_scheduler(r.e))->cached_tokens > 0);
    rig_close(&r);
    for (int i = 0; i < NREQ; i++) {
        rig_open(&r, 24, 1, 256, false);
        request_params rp;
        greedy_params(&rp, 24 + i * 3);
        rp.ignore_eos = i % 2;
        int n = make_prompt(i, p);
        assert_int_equal(engine_add(r.e, p, n, &rp, &alone[i], NULL), 0);
        rig_run(&r);
        rig_close(&r);
        assert_int_equal(batched[i].len[0], alone[i].len[0]);
        assert_memory_equal(batched[i].out[0], alone[i].out[0], sizeof(int32_t) * alone[i].len[0]);
        /* the same logits, bit for bit: cached prefix blocks, batching and preemption included */
        assert_memory_equal(batched[i].lp, alone[i].lp, sizeof(token_logprobs) * alone[i].len[0]);
    }
}

static void test_prefix_cached_logits(void **state) {
    (void)state;
    int32_t p[64];
    int n = make_prompt(3, p);
    result first, second, fresh;
    memset(&first, 0, sizeof first);
    memset(&second, 0, sizeof second);
    memset(&fresh, 0, sizeof fresh);
    request_params rp;
    greedy_params(&rp, 20);
    rp.ignore_eos = true;
    rig r;
    rig_open(&r, 32, 4, 256, true);
    assert_int_equal(engine_add(r.e, p, n, &rp, &first, NULL), 0);
    rig_run(&r);
    assert_int_equal(engine_add(r.e, p, n, &rp, &second, NULL), 0);
    rig_run(&r);
    const sched_stats *st = sched_get_stats(engine_scheduler(r.e));
    assert_int_equal(st->cached_tokens, (n - 1) / 16 * 16);
    assert_int_equal(first.n_cached, 0);
    assert_int_equal(second.n_cached, (n - 1) / 16 * 16);
    rig_close(&r);
    rig_open(&r, 32, 4, 256, false);
    assert_int_equal(engine_add(r.e, p, n, &rp, &fresh, NULL), 0);
    rig_run(&r);
    rig_close(&r);
    assert_memory_equal(second.out[0], fresh.out[0], sizeof(int32_t) * 20);
    assert_memory_equal(second.lp, fresh.lp, sizeof(token_logprobs) * 20);
    assert_memory_equal(first.lp, fresh.lp, sizeof(token_logprobs) * 20);
}

static void test_session_turns(void **state) {
    (void)state;
    int32_t t1[64], t2[6] = {1, 45, 67, 89, 101, 123}, whole[128];
    int n1 = make_prompt(5, t1);
    result a, b, full;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memset(&full, 0, sizeof full);
    request_params rp;
    greedy_params(&rp, 12);
    rp.ignore_eos = true;
    rp.session_id = 9;
    rig r;
    rig_open(&r, 32, 4, 256, true);
    assert_int_equal(engine_add(r.e, t1, n1, &rp, &a, NULL), 0);
    rig_run(&r);
    const sched_stats *st = sched_get_stats(engine_scheduler(r.e));
    int64_t before = st->computed_tokens;
    assert_int_equal(engine_add(r.e, t2, 6, &rp, &b, NULL), 0);
    rig_run(&r);
    /* the last answer token and the 6 new ones are prefilled, then 11 decodes */
    assert_int_equal(st->computed_tokens - before, 1 + 6 + 11);
    /* the rest of the context came from the session's KV: turn 1's prompt and 11 decodes */
    assert_int_equal(a.n_cached, 0);
    assert_int_equal(b.n_cached, n1 + 11);
    assert_int_equal(engine_end_session(r.e, 9), 0);
    rig_close(&r);
    memcpy(whole, t1, sizeof(int32_t) * n1);
    memcpy(whole + n1, a.out[0], sizeof(int32_t) * 12);
    memcpy(whole + n1 + 12, t2, sizeof t2);
    rp.session_id = -1;
    rig_open(&r, 32, 4, 256, false);
    assert_int_equal(engine_add(r.e, whole, n1 + 18, &rp, &full, NULL), 0);
    rig_run(&r);
    rig_close(&r);
    assert_memory_equal(b.out[0], full.out[0], sizeof(int32_t) * 12);
    assert_memory_equal(b.lp, full.lp, sizeof(token_logprobs) * 12);
}

static void test_n_samples_cow(void **state) {
    (void)state;
    int32_t p[64];
    int n = make_prompt(1, p);
    result many, one;
    memset(&many, 0, sizeof many);
    request_params rp;
    request_params_init(&rp);
    rp.sampling = (sampling_params){.temperature = 0.9f, .top_p = 0.95f};
    rp.max_tokens = 30;
    rp.n = 3;
    rp.seed = 1234;
    rp.ignore_eos = true;
    rig r;
    rig_open(&r, 32, 4, 256, true);
    assert_int_equal(engine_add(r.e, p, n, &rp, &many, NULL), 0);
    rig_run(&r);
    assert_true(bm_get_stats(sched_blocks(engine_scheduler(r.e)))->cow_copies >= 1);
    rig_close(&r);
    assert_int_equal(many.n_out, 3);
    assert_memory_not_equal(many.out[0], many.out[1], sizeof(int32_t) * 30);
    /* sample 0 of n = 3 is what n = 1 with the same seed gives */
    memset(&one, 0, sizeof one);
    rp.n = 1;
    rig_open(&r, 32, 4, 256, true);
    assert_int_equal(engine_add(r.e, p, n, &rp, &one, NULL), 0);
    rig_run(&r);
    rig_close(&r);
    assert_memory_equal(many.out[0], one.out[0], sizeof(int32_t) * 30);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batched_equals_alone), cmocka_unit_test(test_prefix_cached_logits),
        cmocka_unit_test(test_session_turns), cmocka_unit_test(test_n_samples_cow),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
