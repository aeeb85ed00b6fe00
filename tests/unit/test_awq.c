/* AWQ (awq.h): the scale search on a synthetic layer whose one input channel carries large
 * activations (the searched scales beat RTN's output error and favour that channel), the clip
 * search (never worse than no clipping, weights clamped), the calibration statistics (sums
 * over every token, every stride-th token sampled), and the folding: a model whose scales are
 * searched and folded (no clipping, no quantization) computes the same logits as before, on
 * fixtures with GQA, biases, per-head q/k norms, an explicit head_dim and bf16 norms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <math.h>

#include "awq.h"
#include "calibrate_cpu.h"
#include "error.h"
#include "fixture_util.h"
#include "sequence_runner.h"

static comm_ctx g_comm;

static uint32_t lcg(uint32_t *s) { return (*s = *s * 1664525u + 1013904223u) >> 8; }

/* Roughly normal: the sum of four uniforms in [-1, 1). */
static float noise(uint32_t *s) {
    float sum = 0.0f;
    for (int i = 0; i < 4; i++) sum += (float)(lcg(s) % 65536u) / 32768.0f - 1.0f;
    return sum;
}

enum { N_TOK = 256, IN = 64, ROWS = 48, HOT = 7 };

/* x [N_TOK][IN] with channel HOT 30x larger than the rest, w [ROWS][IN]. */
static void synthetic_layer(float *x, float *w, float *mag) {
    uint32_t seed = 2024;
    memset(mag, 0, sizeof(float) * IN);
    for (int t = 0; t < N_TOK; t++)
        for (int i = 0; i < IN; i++) {
            x[t * IN + i] = noise(&seed) * (i == HOT ? 30.0f : 1.0f);
            mag[i] += fabsf(x[t * IN + i]) / N_TOK;
        }
    for (int i = 0; i < ROWS * IN; i++) w[i] = noise(&seed) * 0.05f;
}

static void test_scale_search_outlier(void **state) {
    (void)state;
    static float x[N_TOK * IN], w[ROWS * IN];
    float mag[IN], scale[IN];
    synthetic_layer(x, w, mag);
    for (int sym = 0; sym < 2; sym++) {
        const rtn_params p = {.bits = 4, .group_size = 32, .sym = sym};
        const float *ws[1] = {w};
        const int rows[1] = {ROWS};
        const awq_linears g = {.x = x, .n = N_TOK, .in = IN, .mag = mag, .w = ws, .rows = rows,
                               .n_w = 1};
        awq_choice ch;
        assert_int_equal(awq_search_scale(&g, &p, 20, "synthetic", scale, &ch), 0);
        printf("sym %d: alpha %.2f, output error %.4g vs RTN %.4g (%.3fx)\n", sym, ch.alpha,
               ch.err, ch.err_rtn, ch.err / ch.err_rtn);
        assert_true(ch.alpha > 0.0f);
        assert_true(ch.err < 0.8 * ch.err_rtn);
        for (int i = 0; i < IN; i++)
            if (i != HOT) assert_true(scale[HOT] > scale[i]);
    }
}

static void test_clip_search(void **state) {
    (void)state;
    static float x[N_TOK * IN], w[ROWS * IN], orig[ROWS * IN];
    float mag[IN];
    synthetic_layer(x, w, mag);
    w[3 * IN + 40] = 1.0f; /* one outlier weight: its group's range is worth clipping */
    memcpy(orig, w, sizeof w);
    const rtn_params p = {.bits = 4, .group_size = 32, .sym = false};
    double before, after;
    assert_int_equal(awq_search_clip(w, ROWS, x, N_TOK, IN, &p, 20, "synthetic", &before, &after),
                     0);
    printf("clip: output error %.4g -> %.4g\n", before, after);
    assert_true(after <= before);
    int clipped = 0;
    for (int i = 0; i < ROWS * IN; i++) {
        assert_true(fabsf(w[i]) <= fabsf(orig[i]));
        assert_true(w[i] == orig[i] || fabsf(w[i]) < fabsf(orig[i]));
        clipped += w[i] != orig[i];
    }
    assert_true(clipped > 0);
}

static void test_calib_sampling(void **state) {
    (void)state;
    model_config cfg = {.hidden = 4, .intermediate = 6, .n_layers = 2, .n_heads = 2,
                        .n_kv_heads = 1, .head_dim = 2};
    awq_calib c;
    awq_calib_init(&c, &cfg, 10, 4); /* 10 tokens, at most 4 kept: every 3rd */
    assert_int_equal(c.stride, 3);
    float x[10 * 4];
    for (int i = 0; i < 40; i++) x[i] = (float)(i % 4 == 1 ? -i : i);
    awq_calib_add(&c, 1, AWQ_GATE_UP, x, 7, 4);
    awq_calib_add(&c, 1, AWQ_GATE_UP, x + 28, 3, 4);
    const awq_act *a = &c.act[1 * AWQ_N_GROUPS + AWQ_GATE_UP];
    assert_int_equal(a->seen, 10);
    assert_int_equal(a->n, 4); /* tokens 0, 3, 6, 9 */
    for (int k = 0; k < 4; k++) assert_true(a->rows[k * 4 + 2] == x[(3 * k) * 4 + 2]);
    double sum1 = 0.0;
    for (int t = 0; t < 10; t++) sum1 += fabsf(x[t * 4 + 1]);
    assert_true(fabs(a->abs_sum[1] - sum1) < 1e-9);
    assert_int_equal(c.act[AWQ_DOWN].dim, 6);
    assert_int_equal(c.act[AWQ_O].seen, 0);
    awq_calib_free(&c);
}

/* Scales searched and folded into the float model: the logits do not change. */
static void check_fold_keeps_logits(const char *name) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", FIXTURE_MODELS, name);
    device_model m;
    open_model_or_fail(dir, LOAD_AUTO, &g_comm, &m);
    const model_config *cfg = &m.m.cfg;
    enum { N = 48 };
    int32_t ids[N];
    uint32_t seed = 99;
    for (int i = 0; i < N; i++) ids[i] = 3 + (int32_t)(lcg(&seed) % (uint32_t)(cfg->vocab - 3));
    float *before = malloc(sizeof(float) * N * cfg->vocab);
    float *after = malloc(sizeof(float) * N * cfg->vocab);
    assert_int_equal(score_sequence(&m, &g_comm, ids, N, 16, before), 0);

    awq_calib c;
    awq_calib_init(&c, cfg, N, 32);
    if (calibrate_cpu(&m.m, &g_comm, ids, N, 16, &c, false) != 0)
        fail_msg("%s", folio_last_error());
    const awq_options o = {.q = {.bits = 4, .group_size = 32, .sym = true}, .n_grid = 20,
                           .clip = false, .dense_dtype = cfg->dtype};
    awq_report rep;
    if (awq_apply(&m.m.weights, cfg, &c, &o, false, &rep) != 0) fail_msg("%s", folio_last_error());
    assert_int_equal(rep.n_scaled, AWQ_N_GROUPS * cfg->n_layers);
    int nontrivial = 0;
    for (int i = 0; i < AWQ_N_GROUPS * cfg->n_layers; i++) nontrivial += rep.alpha[i] > 0.0f;
    assert_int_equal(score_sequence(&m, &g_comm, ids, N, 16, after), 0);
    const double diff = max_rel_diff(after, before, (size_t)N * cfg->vocab);
    printf("%s: %d of %d groups scaled with alpha > 0; logits differ by %.2g (relative)\n", name,
           nontrivial, rep.n_scaled, diff);
    assert_true(nontrivial > 0);
    assert_true(diff < 1e-4);
    awq_report_free(&rep);
    awq_calib_free(&c);
    free(before);
    free(after);
    device_model_close(&m);
}

static void test_fold_gqa_tied(void **state) {
    (void)state;
    check_fold_keeps_logits("llama_gqa_tied");
}
static void test_fold_biases(void **state) {
    (void)state;
    check_fold_keeps_logits("llama_bias");
    check_fold_keeps_logits("qwen2_bias_tied");
}
static void test_fold_qk_norm_head_dim(void **state) {
    (void)state;
    check_fold_keeps_logits("qwen3_qknorm");
}
static void test_fold_bf16_norms(void **state) {
    (void)state;
    check_fold_keeps_logits("llama_bf16");
}

int main(void) {
    comm_init_single(&g_comm);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scale_search_outlier), cmocka_unit_test(test_clip_search),
        cmocka_unit_test(test_calib_sampling),       cmocka_unit_test(test_fold_gqa_tied),
        cmocka_unit_test(test_fold_biases),          cmocka_unit_test(test_fold_qk_norm_head_dim),
        cmocka_unit_test(test_fold_bf16_norms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
