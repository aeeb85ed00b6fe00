/* The scheduler and engine loop on the mock model (tests/unit/helpers/mock_model.h):
 * thousands of random request streams (random prompt and output lengths, shared prefixes,
 * n > 1, cancellations, requests arriving while others run, KV pools small enough to force
 * preemption, tiny token budgets forcing chunked prefill) keep the block invariants after every
 * step, leak nothing, and give every request exactly the output it gives alone. Also: prefix
 * cache hit counts, copy-on-write, seeded sampling across batch compositions, sessions; one
 * sampler: sampled requests draw the same tokens on the host and device sampling paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine_loop.h"
#include "error.h"
#include "mock_model.h"

#define VOCAB 48
#define MAX_PROMPT 48
#define MAX_OUT 40
#define MAX_N 3
#define MAX_REQ 24

static const int32_t EOS[] = {1};

typedef struct {
    int32_t prompt[MAX_PROMPT];
    int n_prompt;
    request_params p;
    int32_t stop_ids[2];
    int64_t id;
    bool added, done, cancel;
    int n_out;
    int32_t out[MAX_N][MAX_OUT];
    int out_len[MAX_N];
    finish_reason fin[MAX_N];
} treq;

static void on_done(const request *r, void *user) {
    (void)user;
    treq *t = r->tag;
    assert_false(t->done);
    assert_null(r->error);
    t->done = true;
    t->n_out = r->n_seqs;
    for (int i = 0; i < r->n_seqs; i++) {
        const sequence *q = r->seqs[i];
        int g = sequence_generated(q);
        assert_true(g <= MAX_OUT);
        memcpy(t->out[i], q->tokens + q->n_prompt, sizeof(int32_t) * g);
        t->out_len[i] = g;
        t->fin[i] = q->finish;
    }
}

static uint32_t rnd(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*s >> 33);
}
static int rnd_in(uint64_t *s, int lo, int hi) { return lo + (int)(rnd(s) % (uint32_t)(hi - lo + 1)); }

static void step_checked(engine *e, mock_model *m) {
    int rc = engine_step(e);
    if (rc != 0) fail_msg("step: %s %s", folio_last_error(), m->error);
    if (sched_check(engine_scheduler(e)) != 0) fail_msg("invariants: %s", folio_last_error());
}

/* Runs one request alone on a roomy engine (the reference for sampled requests). */
/* The backend every engine of a test uses: the host-sampling mock, or the one that samples
 * "on the device" (the engine's step_sample path, as with the CUDA backend). */
static engine_backend (*g_backend)(mock_model *m) = mock_backend;

static void run_alone(const sched_config *base, treq *t, treq *out) {
    sched_config c = *base;
    c.num_blocks = 4 * ((c.max_model_len + c.block_size - 1) / c.block_size) * MAX_N;
    c.max_num_seqs = 8;
    c.max_num_batched_tokens = 256;
    mock_model m;
    mock_model_init(&m, VOCAB, c.num_blocks, c.block_size);
    engine_config ec = {.sched = c, .vocab = VOCAB, .eos_ids = EOS, .n_eos = 1};
    engine *e = engine_create(&ec, g_backend(&m), on_done, NULL);
    assert_non_null(e);
    *out = *t;
    out->done = false;
    assert_int_equal(engine_add(e, t->prompt, t->n_prompt, &t->p, out, NULL), 0);
    while (engine_busy(e)) step_checked(e, &m);
    engine_free(e);
    mock_model_free(&m);
}

static void make_request(uint64_t *rs, treq *t, int32_t prefixes[3][32], int max_model_len) {
    memset(t, 0, sizeof *t);
    request_params_init(&t->p);
    int shared = rnd(rs) % 2 ? rnd_in(rs, 1, 32) : 0;
    int n = rnd_in(rs, 1, MAX_PROMPT - 8);
    if (shared > n) n = shared;
    int pre = (int)(rnd(rs) % 3);
    for (int i = 0; i < n; i++) t->prompt[i] = i < shared ? prefixes[pre][i] : rnd_in(rs, 2, VOCAB - 1);
    t->n_prompt = n;
    int room = max_model_len - n;
    t->p.max_tokens = rnd_in(rs, 1, room < MAX_OUT ? room : MAX_OUT);
    t->p.n = rnd(rs) % 4 == 0 ? rnd_in(rs, 2, MAX_N) : 1;
    t->p.ignore_eos = rnd(rs) % 3 == 0;
    t->p.seed = rnd(rs);
    t->p.sampling.temperature = rnd(rs) % 4 == 0 ? 0.8f : 0.0f;
    if (rnd(rs) % 5 == 0) {
        t->stop_ids[0] = rnd_in(rs, 2, VOCAB - 1);
        t->p.stop_ids = t->stop_ids;
        t->p.n_stop_ids = 1;
    }
    t->cancel = rnd(rs) % 10 == 0;
}

static void check_against_alone(const sched_config *c, treq *t) {
    if (!t->done) fail_msg("request never completed");
    if (t->cancel) return;
    assert_int_equal(t->n_out, t->p.n);
    if (t->p.sampling.temperature == 0.0f) {
        int32_t ref[MAX_OUT];
        int n = mock_reference_greedy(t->prompt, t->n_prompt, t->p.max_tokens, t->p.ignore_eos,
                                      EOS, 1, t->p.stop_ids, t->p.n_stop_ids, c->max_model_len,
                                      VOCAB, ref);
        for (int s = 0; s < t->n_out; s++) {
            assert_int_equal(t->out_len[s], n);
            assert_memory_equal(t->out[s], ref, sizeof(int32_t) * n);
        }
    } else {
        treq alone;
        run_alone(c, t, &alone);
        for (int s = 0; s < t->n_out; s++) {
            assert_int_equal(t->out_len[s], alone.out_len[s]);
            assert_memory_equal(t->out[s], alone.out[s], sizeof(int32_t) * t->out_len[s]);
        }
    }
}

/* One random stream: returns the number of preemptions it saw. */
static int64_t run_stream(uint64_t seed) {
    uint64_t rs = seed * 2654435761u + 1;
    sched_config c = {.block_size = 1 << rnd_in(&rs, 0, 4), .max_num_seqs = rnd_in(&rs, 1, 12),
                      .max_num_batched_tokens = rnd_in(&rs, 1, 3) == 1 ? rnd_in(&rs, 1, 16)
                                                                       : rnd_in(&rs, 16, 128),
                      .max_model_len = rnd_in(&rs, 56, 96), .prefix_caching = rnd(&rs) % 4 != 0};
    int need = (c.max_model_len + c.block_size - 1) / c.block_size;
    c.num_blocks = need + rnd_in(&rs, 0, 2 * need);
    mock_model m;
    mock_model_init(&m, VOCAB, c.num_blocks, c.block_size);
    engine_config ec = {.sched = c, .vocab = VOCAB, .eos_ids = EOS, .n_eos = 1};
    engine *e = engine_create(&ec, g_backend(&m), on_done, NULL);
    if (!e) fail_msg("engine_create: %s", folio_last_error());
    int32_t prefixes[3][32];
    for (int p = 0; p < 3; p++)
        for (int i = 0; i < 32; i++) prefixes[p][i] = rnd_in(&rs, 2, VOCAB - 1);
    static treq reqs[MAX_REQ];
    int n_req = rnd_in(&rs, 2, MAX_REQ), n_added = 0;
    for (int i = 0; i < n_req; i++) {
        make_request(&rs, &reqs[i], prefixes, c.max_model_len);
        if (reqs[i].p.n > c.max_num_seqs) reqs[i].p.n = c.max_num_seqs;
    }
    int64_t steps = 0;
    while (n_added < n_req || engine_busy(e)) {
        while (n_added < n_req && (n_added == 0 || rnd(&rs) % 3 != 0 || !engine_busy(e))) {
            treq *t = &reqs[n_added++];
            if (engine_add(e, t->prompt, t->n_prompt, &t->p, t, &t->id) != 0)
                fail_msg("add: %s", folio_last_error());
            t->added = true;
            if (rnd(&rs) % 2) break;
        }
        for (int i = 0; i < n_added; i++)
            if (reqs[i].cancel && !reqs[i].done && rnd(&rs) % 4 == 0) {
                assert_int_equal(engine_cancel(e, reqs[i].id), 0);
                assert_true(reqs[i].done);
                if (sched_check(engine_scheduler(e)) != 0)
                    fail_msg("after cancel: %s", folio_last_error());
            }
        if (engine_busy(e)) step_checked(e, &m);
        if (++steps > 100000) fail_msg("stream %llu does not finish", (unsigned long long)seed);
    }
    /* everything finished: every block is free or a cached evictable block */
    block_manager *bm = sched_blocks(engine_scheduler(e));
    assert_int_equal(bm_num_available(bm), c.num_blocks);
    assert_int_equal(sched_check(engine_scheduler(e)), 0);
    int64_t pre = sched_get_stats(engine_scheduler(e))->preemptions;
    engine_free(e);
    mock_model_free(&m);
    for (int i = 0; i < n_req; i++) check_against_alone(&c, &reqs[i]);
    return pre;
}

static void test_random_streams(void **state) {
    (void)state;
    int64_t preemptions = 0;
    const char *env = getenv("FOLIO_SCHED_STREAMS");
    int n = env ? atoi(env) : 2000;
    for (int s = 0; s < n; s++) preemptions += run_stream((uint64_t)s);
    printf("%d streams, %lld preemptions\n", n, (long long)preemptions);
    assert_true(preemptions > 100);
}

/* The same invariants through the engine's device-sampling path (step_sample, with the GPU
 * sampler's CPU twin): greedy requests give the reference output, sampled ones what they give
 * alone, whatever the batch, preemptions and prefix hits. */
static void test_random_streams_device_sampling(void **state) {
    (void)state;
    const char *env = getenv("FOLIO_SCHED_STREAMS");
    int n = env ? atoi(env) / 4 : 500;
    int64_t preemptions = 0;
    g_backend = mock_backend_sampling;
    for (int s = 0; s < n; s++) preemptions += run_stream((uint64_t)s + 100000);
    g_backend = mock_backend;
    printf("%d streams through step_sample, %lld preemptions\n", n, (long long)preemptions);
    assert_true(preemptions > 20);
}

/* ---- one sampler: the host path and the device path draw the same tokens ---- */

/* A sampled request of every kind: temperature 0.8, top-p 0.9, top-k, min-p, penalties,
 * logit bias, min_tokens, its own seed; some with logprobs > 0 or n > 1, whose steps sample
 * on the host even with a device-sampling backend. */
static void make_sampled(uint64_t *rs, treq *t, logit_bias_entry *bias) {
    memset(t, 0, sizeof *t);
    request_params_init(&t->p);
    t->n_prompt = rnd_in(rs, 1, 20);
    for (int i = 0; i < t->n_prompt; i++) t->prompt[i] = rnd_in(rs, 2, VOCAB - 1);
    t->p.max_tokens = rnd_in(rs, 1, MAX_OUT);
    t->p.n = rnd(rs) % 5 == 0 ? rnd_in(rs, 2, MAX_N) : 1;
    t->p.seed = rnd(rs);
    t->p.ignore_eos = rnd(rs) % 2;
    t->p.logprobs = rnd(rs) % 4 == 0 ? rnd_in(rs, 1, 5) : (rnd(rs) % 2 ? 0 : -1);
    t->p.sampling = (sampling_params){.temperature = 0.8f, .top_p = 0.9f,
                                      .top_k = rnd(rs) % 2 ? rnd_in(rs, 2, 20) : 0,
                                      .min_p = rnd(rs) % 3 == 0 ? 0.05f : 0.0f};
    t->p.proc = (logits_params){.repetition_penalty = rnd(rs) % 2 ? 1.3f : 0.0f,
                                .presence_penalty = rnd(rs) % 2 ? 0.5f : 0.0f,
                                .frequency_penalty = rnd(rs) % 2 ? 0.3f : 0.0f,
                                .min_tokens = rnd_in(rs, 0, 4)};
    if (rnd(rs) % 2) {
        *bias = (logit_bias_entry){.token = rnd_in(rs, 0, VOCAB - 1), .bias = 1.5f};
        t->p.proc.bias = bias;
        t->p.proc.n_bias = 1;
    }
}

/* Runs reqs [n] together on one engine over the given backend; results into out [n]. */
static void run_sampled(engine_backend (*backend)(mock_model *m), const treq *reqs, int n,
                        treq *out) {
    sched_config c = {.num_blocks = 40, .block_size = 4, .max_num_seqs = 8,
                      .max_num_batched_tokens = 32, .max_model_len = 96, .prefix_caching = true};
    mock_model m;
    mock_model_init(&m, VOCAB, c.num_blocks, c.block_size);
    engine_config ec = {.sched = c, .vocab = VOCAB, .eos_ids = EOS, .n_eos = 1};
    engine *e = engine_create(&ec, backend(&m), on_done, NULL);
    assert_non_null(e);
    for (int i = 0; i < n; i++) {
        out[i] = reqs[i];
        assert_int_equal(engine_add(e, reqs[i].prompt, reqs[i].n_prompt, &reqs[i].p, &out[i],
                                    NULL), 0);
    }
    while (engine_busy(e)) step_checked(e, &m);
    engine_free(e);
    mock_model_free(&m);
}

/* The same sampled requests give the same tokens with the host-sampling mock (the CPU
 * backend's path: sample_rows_cpu on each row) and with the one that samples "on the device"
 * (step_sample, the CUDA backend's path), steps of the two mixed in the second. */
static void test_one_sampler(void **state) {
    (void)state;
    static treq reqs[MAX_REQ], host[MAX_REQ], dev[MAX_REQ];
    static logit_bias_entry bias[MAX_REQ];
    int n_tokens = 0;
    for (uint64_t round = 0; round < 20; round++) {
        uint64_t rs = round * 7919 + 3;
        for (int i = 0; i < MAX_REQ; i++) make_sampled(&rs, &reqs[i], &bias[i]);
        run_sampled(mock_backend, reqs, MAX_REQ, host);
        run_sampled(mock_backend_sampling, reqs, MAX_REQ, dev);
        for (int i = 0; i < MAX_REQ; i++) {
            assert_true(host[i].done && dev[i].done);
            assert_int_equal(host[i].n_out, reqs[i].p.n);
            assert_int_equal(dev[i].n_out, host[i].n_out);
            for (int s = 0; s < host[i].n_out; s++) {
                assert_int_equal(dev[i].out_len[s], host[i].out_len[s]);
                assert_memory_equal(dev[i].out[s], host[i].out[s],
                                    sizeof(int32_t) * host[i].out_len[s]);
                n_tokens += host[i].out_len[s];
            }
        }
    }
    printf("one sampler: %d sampled tokens alike on the host and device paths\n", n_tokens);
}

/* ---- targeted tests ---- */

typedef struct {
    mock_model m;
    engine *e;
    sched_config c;
} rig;

static void rig_open(rig *r, int num_blocks, int block_size, int max_seqs, int budget) {
    r->c = (sched_config){.num_blocks = num_blocks, .block_size = block_size,
                          .max_num_seqs = max_seqs, .max_num_batched_tokens = budget,
                          .max_model_len = 128, .prefix_caching = true};
    mock_model_init(&r->m, VOCAB, num_blocks, block_size);
    engine_config ec = {.sched = r->c, .vocab = VOCAB, .eos_ids = EOS, .n_eos = 1};
    r->e = engine_create(&ec, mock_backend(&r->m), on_done, NULL);
    assert_non_null(r->e);
}

static void rig_run(rig *r) {
    while (engine_busy(r->e)) step_checked(r->e, &r->m);
}

static void rig_close(rig *r) {
    engine_free(r->e);
    mock_model_free(&r->m);
}

static void add_greedy(rig *r, treq *t, const int32_t *prompt, int n, int max_tokens) {
    memset(t, 0, sizeof *t);
    memcpy(t->prompt, prompt, sizeof(int32_t) * n);
    t->n_prompt = n;
    request_params_init(&t->p);
    t->p.sampling.temperature = 0;
    t->p.max_tokens = max_tokens;
    t->p.ignore_eos = true;
    assert_int_equal(engine_add(r->e, prompt, n, &t->p, t, &t->id), 0);
}

static void test_prefix_cache_hits(void **state) {
    (void)state;
    rig r;
    rig_open(&r, 64, 4, 4, 256);
    int32_t p[40];
    for (int i = 0; i < 40; i++) p[i] = 2 + (i * 7) % (VOCAB - 2);
    treq a, b;
    add_greedy(&r, &a, p, 40, 5);
    rig_run(&r);
    const sched_stats *st = sched_get_stats(engine_scheduler(r.e));
    assert_int_equal(st->cached_tokens, 0);
    int64_t computed = st->computed_tokens;
    /* same 37-token prefix: 9 full blocks (36 tokens) are reused */
    int32_t q[40];
    memcpy(q, p, sizeof q);
    q[37] = 3;
    add_greedy(&r, &b, q, 40, 5);
    rig_run(&r);
    assert_int_equal(st->cached_tokens, 36);
    assert_int_equal(st->computed_tokens - computed, 40 - 36 + 4);
    const bm_stats *bs = bm_get_stats(sched_blocks(engine_scheduler(r.e)));
    assert_int_equal(bs->hit_blocks, 9);
    /* the whole prompt cached: all but the last token's block is reused */
    treq c2;
    add_greedy(&r, &c2, p, 40, 5);
    rig_run(&r);
    assert_int_equal(st->cached_tokens, 36 + 36);
    int32_t ref[8];
    mock_reference_greedy(p, 40, 5, true, EOS, 1, NULL, 0, 128, VOCAB, ref);
    assert_memory_equal(a.out[0], ref, sizeof(int32_t) * 5);
    assert_memory_equal(c2.out[0], ref, sizeof(int32_t) * 5);
    mock_reference_greedy(q, 40, 5, true, EOS, 1, NULL, 0, 128, VOCAB, ref);
    assert_memory_equal(b.out[0], ref, sizeof(int32_t) * 5);
    rig_close(&r);
}

static void test_copy_on_write(void **state) {
    (void)state;
    rig r;
    rig_open(&r, 64, 8, 8, 256);
    int32_t p[13];
    for (int i = 0; i < 13; i++) p[i] = 2 + i;
    treq t;
    memset(&t, 0, sizeof t);
    memcpy(t.prompt, p, sizeof p);
    t.n_prompt = 13;
    request_params_init(&t.p);
    t.p.n = 3;
    t.p.max_tokens = 12;
    t.p.ignore_eos = true;
    t.p.sampling.temperature = 1.5f;
    t.p.seed = 5;
    assert_int_equal(engine_add(r.e, p, 13, &t.p, &t, NULL), 0);
    rig_run(&r);
    /* three samples share the prompt's partial second block: two copies on their first write */
    assert_int_equal(bm_get_stats(sched_blocks(engine_scheduler(r.e)))->cow_copies, 2);
    assert_int_equal(t.n_out, 3);
    assert_memory_not_equal(t.out[0], t.out[1], sizeof(int32_t) * 12);
    /* each sample is what it gives alone (the mock reads its history through the blocks) */
    treq alone;
    run_alone(&r.c, &t, &alone);
    for (int s = 0; s < 3; s++) assert_memory_equal(t.out[s], alone.out[s], sizeof(int32_t) * 12);
    rig_close(&r);
}

static void test_seed_across_batches(void **state) {
    (void)state;
    int32_t p[9] = {5, 6, 7, 8, 9, 10, 11, 12, 13};
    treq solo, mixed, other[6];
    rig r;
    rig_open(&r, 40, 4, 8, 16);
    memset(&solo, 0, sizeof solo);
    request_params_init(&solo.p);
    solo.p.sampling = (sampling_params){.temperature = 1.0f, .top_p = 0.9f, .top_k = 20};
    solo.p.seed = 77;
    solo.p.max_tokens = 30;
    solo.p.ignore_eos = true;
    assert_int_equal(engine_add(r.e, p, 9, &solo.p, &solo, NULL), 0);
    rig_run(&r);
    rig_close(&r);
    rig_open(&r, 40, 4, 8, 16);
    int32_t q[20];
    for (int i = 0; i < 6; i++) {
        for (int k = 0; k < 20; k++) q[k] = 2 + (k * (i + 3)) % (VOCAB - 2);
        add_greedy(&r, &other[i], q, 10 + i, 20);
    }
    mixed = solo;
    mixed.done = false;
    assert_int_equal(engine_add(r.e, p, 9, &solo.p, &mixed, NULL), 0);
    rig_run(&r);
    assert_true(sched_get_stats(engine_scheduler(r.e))->preemptions > 0);
    assert_int_equal(mixed.out_len[0], 30);
    assert_memory_equal(solo.out[0], mixed.out[0], sizeof(int32_t) * 30);
    rig_close(&r);
}

static void test_sessions(void **state) {
    (void)state;
    rig r;
    rig_open(&r, 64, 4, 4, 256);
    const sched_stats *st = sched_get_stats(engine_scheduler(r.e));
    int32_t t1[10] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, t2[5] = {20, 21, 22, 23, 24};
    treq a, b, full;
    memset(&a, 0, sizeof a);
    request_params_init(&a.p);
    a.p.sampling.temperature = 0;
    a.p.max_tokens = 7;
    a.p.ignore_eos = true;
    a.p.session_id = 42;
    b = a;
    assert_int_equal(engine_add(r.e, t1, 10, &a.p, &a, NULL), 0);
    assert_int_equal(engine_add(r.e, t2, 5, &b.p, &b, NULL), 0); /* queued behind turn 1 */
    rig_run(&r);
    /* turn 2 prefilled the last answer token (never run through the model) + 5 new ones */
    assert_int_equal(st->computed_tokens, (10 + 6) + (1 + 5 + 6));
    /* the same conversation as one fresh prompt gives the same answer */
    int32_t whole[32];
    memcpy(whole, t1, sizeof t1);
    memcpy(whole + 10, a.out[0], sizeof(int32_t) * 7);
    memcpy(whole + 17, t2, sizeof t2);
    int32_t ref[8];
    mock_reference_greedy(whole, 22, 7, true, EOS, 1, NULL, 0, 128, VOCAB, ref);
    assert_memory_equal(b.out[0], ref, sizeof(int32_t) * 7);
    (void)full;
    /* a session's KV is dropped under memory pressure; its next turn recomputes, same output */
    int32_t big[100];
    for (int i = 0; i < 100; i++) big[i] = 2 + (i * 5) % (VOCAB - 2);
    treq hog, c;
    add_greedy(&r, &hog, big, 100, 20); /* needs 30 of 64 blocks... */
    treq hog2;
    add_greedy(&r, &hog2, big + 1, 99, 20);
    rig_run(&r);
    assert_true(st->session_drops > 0);
    c = a;
    c.done = false;
    int32_t t3[3] = {30, 31, 32};
    assert_int_equal(engine_add(r.e, t3, 3, &c.p, &c, NULL), 0);
    rig_run(&r);
    memcpy(whole + 22, b.out[0], sizeof(int32_t) * 7);
    memcpy(whole + 29, t3, sizeof t3);
    mock_reference_greedy(whole, 32, 7, true, EOS, 1, NULL, 0, 128, VOCAB, ref);
    assert_memory_equal(c.out[0], ref, sizeof(int32_t) * 7);
    assert_int_equal(engine_end_session(r.e, 42), 0);
    assert_int_equal(engine_end_session(r.e, 42), -1);
    assert_int_equal(bm_num_available(sched_blocks(engine_scheduler(r.e))), 64);
    rig_close(&r);
}

static void test_config_errors(void **state) {
    (void)state;
    sched_config c = {.num_blocks = 3, .block_size = 16, .max_num_seqs = 4,
                      .max_num_batched_tokens = 64, .max_model_len = 512};
    assert_int_equal(sched_config_validate(&c), -1);
    assert_non_null(strstr(folio_last_error(), "--max-model-len"));
    c.num_blocks = 32;
    assert_int_equal(sched_config_validate(&c), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_errors),     cmocka_unit_test(test_prefix_cache_hits),
        cmocka_unit_test(test_copy_on_write),     cmocka_unit_test(test_seed_across_batches),
        cmocka_unit_test(test_sessions),          cmocka_unit_test(test_random_streams),
        cmocka_unit_test(test_random_streams_device_sampling),
        cmocka_unit_test(test_one_sampler),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
