/* One step holding a prefill, a chunked prefill (new tokens after a cached prefix) and two
 * decodes, over shuffled non-contiguous block tables with a small block size, gives each
 * sequence the logits it gets when run alone. Run on fixtures with GQA, a sliding window and
 * per-head q/k norms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "error.h"
#include "fixture_util.h"
#include "forward_cpu.h"
#include "sequence_runner.h"

#define N_SEQS 4
#define POOL_BLOCKS 96

typedef struct {
    int n_cached, n_new;
    int32_t ids[64];
    int32_t table[32];
    int n_blocks;
} test_seq;

static comm_ctx g_comm;

static uint32_t lcg(uint32_t *s) { return (*s = *s * 1664525u + 1013904223u) >> 8; }

/* Hands out blocks from a shuffled permutation of the pool, so tables are non-contiguous. */
static void assign_blocks(test_seq *seqs, int n, int block_size, uint32_t seed) {
    int perm[POOL_BLOCKS];
    for (int i = 0; i < POOL_BLOCKS; i++) perm[i] = i;
    for (int i = POOL_BLOCKS - 1; i > 0; i--) {
        int j = (int)(lcg(&seed) % (uint32_t)(i + 1)), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    int next = 0;
    for (int s = 0; s < n; s++) {
        int ctx = seqs[s].n_cached + seqs[s].n_new;
        seqs[s].n_blocks = (ctx + block_size - 1) / block_size;
        for (int b = 0; b < seqs[s].n_blocks; b++) seqs[s].table[b] = perm[next++];
        assert_true(next <= POOL_BLOCKS);
    }
}

/* Logits of sequence s's new tokens when it runs alone: [n_new][vocab]. */
static float *alone(const device_model *m, const test_seq *s) {
    int n = s->n_cached + s->n_new, vocab = m->m.cfg.vocab;
    float *all = malloc(sizeof(float) * n * vocab);
    assert_int_equal(score_sequence(m, &g_comm, s->ids, n, 16, all), 0);
    float *out = malloc(sizeof(float) * s->n_new * vocab);
    memcpy(out, all + (size_t)s->n_cached * vocab, sizeof(float) * s->n_new * vocab);
    free(all);
    return out;
}

static void run_mixed_step(const char *name, int block_size) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", FIXTURE_MODELS, name);
    device_model m;
    open_model_or_fail(dir, LOAD_AUTO, &g_comm, &m);
    int vocab = m.m.cfg.vocab;
    test_seq seqs[N_SEQS] = {{.n_cached = 0, .n_new = 23}, {.n_cached = 17, .n_new = 9},
                             {.n_cached = 30, .n_new = 1}, {.n_cached = 5, .n_new = 1}};
    uint32_t seed = 12345;
    for (int s = 0; s < N_SEQS; s++)
        for (int i = 0; i < seqs[s].n_cached + seqs[s].n_new; i++)
            seqs[s].ids[i] = 3 + (int32_t)(lcg(&seed) % (uint32_t)(vocab - 3));
    assign_blocks(seqs, N_SEQS, block_size, 777);

    kv_cache kv;
    assert_int_equal(kv_cache_create(&kv, m.m.cfg.n_layers, POOL_BLOCKS, block_size,
                                     m.m.shard.n_kv_heads, m.m.cfg.head_dim, NULL, NULL, false),
                     0);
    forward_cpu *f = forward_cpu_create(&m.m.cfg, &m.m.weights, &g_comm, 128, 64,
                                        m.m.cfg.max_position);
    step_plan plan;
    step_plan_create(&plan, 128, N_SEQS, 32, block_size);
    float *logits = malloc(sizeof(float) * 64 * vocab);

    /* Step 0: prefill the cached prefixes of the sequences that have one, batched. */
    step_plan_reset(&plan, 0);
    for (int s = 0; s < N_SEQS; s++)
        if (seqs[s].n_cached > 0)
            assert_true(step_plan_add(&plan, seqs[s].ids, seqs[s].n_cached, 0, seqs[s].table,
                                      seqs[s].n_blocks, 0, 0) >= 0);
    assert_int_equal(forward_cpu_step(f, &kv, &plan, logits), 0);

    /* Step 1: everyone's new tokens together; all logits for the prefills, last for decodes. */
    step_plan_reset(&plan, 1);
    for (int s = 0; s < N_SEQS; s++)
        assert_true(step_plan_add(&plan, seqs[s].ids + seqs[s].n_cached, seqs[s].n_new,
                                  seqs[s].n_cached, seqs[s].table, seqs[s].n_blocks, 1,
                                  seqs[s].n_new > 1) >= 0);
    assert_int_equal(forward_cpu_step(f, &kv, &plan, logits), 0);

    const float *row = logits;
    for (int s = 0; s < N_SEQS; s++) {
        float *want = alone(&m, &seqs[s]);
        double rel = max_rel_diff(row, want, (size_t)seqs[s].n_new * vocab);
        if (rel > 1e-5)
            fail_msg("%s, block size %d: sequence %d batched differs from alone by %.3g", name,
                     block_size, s, rel);
        row += (size_t)seqs[s].n_new * vocab;
        free(want);
    }
    free(logits);
    step_plan_free(&plan);
    forward_cpu_free(f);
    kv_cache_free(&kv);
    device_model_close(&m);
}

static void test_gqa_tied(void **state) {
    (void)state;
    run_mixed_step("llama_gqa_tied", 4);
    run_mixed_step("llama_gqa_tied", 1);
}
static void test_sliding_window(void **state) {
    (void)state;
    run_mixed_step("mistral_swa_headdim", 4);
    run_mixed_step("qwen2_swa", 3);
}
static void test_qk_norm(void **state) {
    (void)state;
    run_mixed_step("qwen3_qknorm", 8);
}

/* A corrupted plan (slot that disagrees with the block table) is refused, not run. */
static void test_corrupt_plan_refused(void **state) {
    (void)state;
    step_plan p;
    step_plan_create(&p, 8, 2, 4, 4);
    int32_t ids[3] = {5, 6, 7}, table[2] = {3, 1};
    step_plan_reset(&p, 0);
    assert_true(step_plan_add(&p, ids, 3, 2, table, 2, 1, 0) >= 0);
    assert_int_equal(step_plan_validate(&p, 4), 0);
    assert_int_equal(p.positions[0], 2);
    assert_int_equal(p.slot_mapping[0], 3 * 4 + 2);
    assert_int_equal(p.slot_mapping[2], 1 * 4 + 0);
    p.slot_mapping[1] = 9;
    assert_int_equal(step_plan_validate(&p, 4), -1);
    assert_non_null(strstr(folio_last_error(), "slot"));
    p.slot_mapping[1] = 3 * 4 + 3;
    table[1] = 7;
    p.block_tables[1] = 7;
    assert_int_equal(step_plan_validate(&p, 4), -1);
    assert_non_null(strstr(folio_last_error(), "outside the pool"));
    /* a table too short for the context is refused when building */
    step_plan_reset(&p, 1);
    assert_int_equal(step_plan_add(&p, ids, 3, 6, table, 2, 1, 0), -1);
    step_plan_free(&p);
}

int main(void) {
    comm_init_single(&g_comm);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gqa_tied),
        cmocka_unit_test(test_sliding_window),
        cmocka_unit_test(test_qk_norm),
        cmocka_unit_test(test_corrupt_plan_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
