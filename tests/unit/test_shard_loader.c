/* Sharding and the shard-aware loader: each rank's slices of q/k/v, gate/up (rows), o/down
 * (columns) and the vocabulary-split embedding put back together give the unsharded tensors;
 * KV heads are replicated when there are fewer than ranks; dummy weights are the same model
 * whatever the sharding; sizes that don't divide, misshapen or missing tensors fail with a
 * message naming the tensor or dimension. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "error.h"
#include "fixture_util.h"
#include "weights.h"

static int load_rank(const char *dir, const model_config *cfg, int rank, int world,
                     load_format fmt, model_weights *w) {
    shard_plan s;
    if (shard_plan_make(cfg, rank, world, &s) != 0) return -1;
    load_options o = {.format = fmt, .dummy_seed = 7};
    return weights_load(dir, cfg, &s, &o, w);
}

/* full[rows][cols] vs the rank's rows [r0, r0+n) */
static void expect_rows(const float *full, const float *part, int r0, int n, int cols) {
    assert_memory_equal(full + (size_t)r0 * cols, part, sizeof(float) * n * cols);
}

/* full[rows][cols] vs the rank's columns [c0, c0+n) of every row */
static void expect_cols(const float *full, const float *part, int rows, int cols, int c0, int n) {
    for (int r = 0; r < rows; r++)
        assert_memory_equal(full + (size_t)r * cols + c0, part + (size_t)r * n, sizeof(float) * n);
}

static void check_world(const char *dir, const model_config *c, const model_weights *full,
                        int world, load_format fmt) {
    int hd = c->head_dim;
    for (int rank = 0; rank < world; rank++) {
        model_weights w;
        if (load_rank(dir, c, rank, world, fmt, &w) != 0) fail_msg("%s", folio_last_error());
        const shard_plan *s = &w.shard;
        expect_rows(full->embed, w.embed, s->vocab_start, s->vocab, c->hidden);
        for (int l = 0; l < c->n_layers; l++) {
            const layer_weights *F = &full->layers[l], *P = &w.layers[l];
            expect_rows(F->wq, P->wq, s->head_start * hd, s->n_heads * hd, c->hidden);
            expect_rows(F->wk, P->wk, s->kv_head_start * hd, s->n_kv_heads * hd, c->hidden);
            expect_rows(F->wv, P->wv, s->kv_head_start * hd, s->n_kv_heads * hd, c->hidden);
            expect_cols(F->wo, P->wo, c->hidden, c->n_heads * hd, s->head_start * hd,
                        s->n_heads * hd);
            expect_rows(F->w_gate, P->w_gate, s->inter_start, s->intermediate, c->hidden);
            expect_rows(F->w_up, P->w_up, s->inter_start, s->intermediate, c->hidden);
            expect_cols(F->w_down, P->w_down, c->hidden, c->intermediate, s->inter_start,
                        s->intermediate);
            assert_memory_equal(F->attn_norm, P->attn_norm, sizeof(float) * c->hidden);
        }
        weights_free(&w);
    }
}

static void test_slices_reassemble(void **state) {
    (void)state;
    /* llama_gqa_tied: 6 heads, 2 KV heads, ffn 192, vocab 300 */
    const char *dir = FIXTURE_MODELS "/llama_gqa_tied";
    model_config c;
    assert_int_equal(model_config_load(dir, &c), 0);
    model_weights full;
    assert_int_equal(load_rank(dir, &c, 0, 1, LOAD_AUTO, &full), 0);
    check_world(dir, &c, &full, 2, LOAD_AUTO);   /* KV heads split */
    check_world(dir, &c, &full, 6, LOAD_AUTO);   /* KV heads replicated, 3 ranks each */
    weights_free(&full);
    assert_int_equal(load_rank(dir, &c, 0, 1, LOAD_DUMMY, &full), 0);
    check_world(dir, &c, &full, 2, LOAD_DUMMY);  /* dummy values independent of sharding */
    weights_free(&full);
    model_config_free(&c);
}

static void test_vocab_split_uneven(void **state) {
    (void)state;
    model_config c = {.n_heads = 7, .n_kv_heads = 7, .intermediate = 14, .vocab = 300};
    int total = 0;
    for (int r = 0; r < 7; r++) {
        shard_plan s;
        assert_int_equal(shard_plan_make(&c, r, 7, &s), 0);
        assert_int_equal(s.vocab_shard, 43);
        assert_int_equal(s.vocab_start, 43 * r);
        total += s.vocab;
    }
    assert_int_equal(total, 300);   /* 6 x 43 + 42 */
}

static void test_replicated_kv_heads(void **state) {
    (void)state;
    model_config c = {.n_heads = 8, .n_kv_heads = 2, .intermediate = 16, .vocab = 64};
    int want_kv[8] = {0, 0, 0, 0, 1, 1, 1, 1};
    for (int r = 0; r < 8; r++) {
        shard_plan s;
        assert_int_equal(shard_plan_make(&c, r, 8, &s), 0);
        assert_int_equal(s.n_kv_heads, 1);
        assert_int_equal(s.kv_head_start, want_kv[r]);
    }
}

static void test_indivisible_sizes(void **state) {
    (void)state;
    shard_plan s;
    model_config c = {.n_heads = 6, .n_kv_heads = 2, .intermediate = 192, .vocab = 300};
    assert_int_equal(shard_plan_make(&c, 0, 4, &s), -1);
    assert_non_null(strstr(folio_last_error(), "num_attention_heads 6"));
    assert_int_equal(shard_plan_make(&c, 0, 3, &s), -1);
    assert_non_null(strstr(folio_last_error(), "num_key_value_heads 2"));
    c.intermediate = 191;
    assert_int_equal(shard_plan_make(&c, 0, 2, &s), -1);
    assert_non_null(strstr(folio_last_error(), "intermediate_size 191"));
}

static void test_misshapen_and_missing(void **state) {
    (void)state;
    const char *dir = FIXTURE_MODELS "/llama_mha_f32";
    model_config c;
    model_weights w;
    assert_int_equal(model_config_load(dir, &c), 0);
    c.intermediate = 128;                        /* the file has 96 */
    assert_int_equal(load_rank(dir, &c, 0, 1, LOAD_AUTO, &w), -1);
    const char *e = folio_last_error();
    assert_non_null(strstr(e, "model.layers.0.mlp.gate_proj.weight"));
    assert_non_null(strstr(e, "expected shape [128, 64]"));
    assert_non_null(strstr(e, "found [96, 64]"));
    c.intermediate = 96;
    c.qkv_bias = true;                           /* the file has no biases */
    assert_int_equal(load_rank(dir, &c, 0, 1, LOAD_AUTO, &w), -1);
    assert_non_null(strstr(folio_last_error(), "model.layers.0.self_attn.q_proj.bias"));
    assert_non_null(strstr(folio_last_error(), "missing"));
    model_config_free(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slices_reassemble),  cmocka_unit_test(test_vocab_split_uneven),
        cmocka_unit_test(test_replicated_kv_heads), cmocka_unit_test(test_indivisible_sizes),
        cmocka_unit_test(test_misshapen_and_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
