/* A dummy 4-bit model (--load-format dummy --quantization w4a16, engine/base/quant_dummy.h and
 * engine/model/quant_dummy.c): the header's values are pinned, in range, and have the dense
 * dummy weights' spread; its words, scales and zeros are those of a quant_matrix; every
 * tensor-parallel shard (column-parallel rows, row-parallel columns at group boundaries, per
 * channel, replicated KV heads) is bit for bit the slice of the one-rank matrices, and the CPU
 * loader's float32 weights are exactly their dequantization; group sizes that do not fit fail
 * naming the layer. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dtype.h"
#include "error.h"
#include "model.h"
#include "quant.h"
#include "quant_dummy.h"
#include "weights.h"

/* hidden 128, heads 8 (head_dim 16), KV heads 4, FFN 256: o_proj is [128][128], down_proj
 * [128][256]; q/k/v/gate/up take 128 inputs. */
static const char CONFIG[] =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 128, "
    "\"intermediate_size\": 256, \"num_hidden_layers\": 2, \"num_attention_heads\": 8, "
    "\"num_key_value_heads\": 4, \"vocab_size\": 64, \"max_position_embeddings\": 64, "
    "\"rms_norm_eps\": 1e-5, \"hidden_act\": \"silu\", \"torch_dtype\": \"float32\"}";

static void config_with(int group, bool sym, model_config *c) {
    if (model_config_parse(CONFIG, NULL, "test", c) != 0) fail_msg("%s", folio_last_error());
    const dummy_quant d = {.w4a16 = true, .group_size = group, .sym = sym};
    quant_config_dummy(&c->quant, &d);
}

/* ---- the header ---- */

static void test_f16_rounding(void **state) {
    (void)state;
    /* every 7th float bit pattern from 2^-30 up past the half range, and a few exact ones */
    for (uint32_t u = 0x30800000u; u < 0x47900000u; u += 7919u) {
        float f;
        memcpy(&f, &u, 4);
        if (qd_f32_to_f16(f) != f32_to_f16(f))
            fail_msg("f32 %08x (%g): half %04x, dtype.c %04x", u, f, qd_f32_to_f16(f),
                     f32_to_f16(f));
    }
    assert_int_equal(qd_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(qd_f32_to_f16(0.0f), 0);
    assert_int_equal(qd_f32_to_f16(5.9604645e-8f), 0x0001);  /* smallest half subnormal */
    assert_int_equal(qd_f32_to_f16(6.1035156e-5f), 0x0400);  /* smallest half normal */
}

/* Values pinned: the definition of a dummy model must not drift (the GPU fill and every
 * benchmark of a dummy model rely on it). */
static void test_pinned_values(void **state) {
    (void)state;
    const uint64_t key = weights_dummy_key(0, "model.layers.0.self_attn.q_proj.weight");
    const float a = sqrtf(3.0f / 4096.0f);
    char got[512] = "";
    for (int c = 0; c < 8; c++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%d ", qd_q(key, 3, c));
    snprintf(got + strlen(got), sizeof got - strlen(got), "| %08x %08x | %d %d | %04x %04x",
             qd_word(key, 3, 0), qd_word(key, 4095, 4088), qd_zero(key, 3, 0, 0),
             qd_zero(key, 1000, 31, 0), qd_scale(key, 3, 0, a, 0), qd_scale(key, 1000, 31, a, 1));
    assert_string_equal(got, "12 14 12 4 10 7 12 15 | f74ecacc 7d6aa446 | 8 8 | 19d1 192d");
}

static void test_ranges_and_spread(void **state) {
    (void)state;
    const int rows = 64, cols = 4096, gs = 128;
    const float a = sqrtf(3.0f / (float)cols), dense_std = a / sqrtf(3.0f);
    for (int sym = 0; sym <= 1; sym++) {
        const uint64_t key = weights_dummy_key(7, sym ? "sym" : "asym");
        long long hist[16] = {0}, zhist[16] = {0};
        double sum = 0, sum2 = 0;
        for (int r = 0; r < rows; r++)
            for (int g = 0; g < cols / gs; g++) {
                const int z = qd_zero(key, r, g, sym);
                const uint16_t sb = qd_scale(key, r, g, a, sym);
                assert_int_equal(z, qd_zero(key, r, g, sym)); /* deterministic */
                assert_true(sym ? z == 8 : (z >= 4 && z <= 11));
                zhist[z]++;
                const float s = f16_to_f32(sb);
                assert_true(s > 0.7f * dense_std / 5.0f && s < 1.3f * dense_std / 4.5f);
                for (int c = g * gs; c < (g + 1) * gs; c++) {
                    const int q = qd_q(key, r, c);
                    assert_true(q >= 0 && q <= 15);
                    hist[q]++;
                    const double w = (double)(q - z) * s;
                    sum += w;
                    sum2 += w * w;
                }
            }
        const double n = (double)rows * cols, std = sqrt(sum2 / n - (sum / n) * (sum / n));
        for (int q = 0; q < 16; q++) /* uniform: n/16 = 16384 each, within 4% */
            assert_true(fabs((double)hist[q] - n / 16) < 0.04 * n / 16);
        if (!sym)
            for (int z = 4; z <= 11; z++) assert_true(zhist[z] > 0);
        /* the dense dummy weights' std, within 3% */
        if (fabs(std / dense_std - 1.0) > 0.03)
            fail_msg("%s: std %g, dense dummy weights' %g", sym ? "sym" : "asym", std, dense_std);
        /* centred (asymmetric: E[q] = E[z] = 7.5); symmetric: E[q - 8] = -0.5, a mean of
         * -0.5 scale, about a tenth of the std, as real symmetric 4-bit weights */
        const double mean = sum / n, want = sym ? -0.5 * dense_std / 4.64 : 0.0;
        if (fabs(mean - want) > 0.02 * dense_std)
            fail_msg("%s: mean %g, expected %g", sym ? "sym" : "asym", mean, want);
        printf("%s: std %.4g (dense %.4g), mean %.3g\n", sym ? "sym" : "asym", std, dense_std,
               mean);
    }
}

/* qd_word packs qd_q in quant_layout.h's order; a shard that starts inside a word packs the
 * same columns one by one. */
static void test_words(void **state) {
    (void)state;
    const uint64_t key = weights_dummy_key(3, "w");
    uint32_t words[8];
    quant_matrix m = {.rows = 1, .cols = 64, .in_cols = 64, .bits = 4, .group_size = 64,
                      .qweight = words};
    for (int j = 0; j < 8; j++) words[j] = qd_word(key, 5, 8 * j);
    for (int c = 0; c < 64; c++) assert_int_equal(ql_get(&m, 0, c), qd_q(key, 5, c));
    qd_shard s = {.key = key, .r0 = 5, .c0 = 4, .rows = 1, .cols = 56, .group_size = 56};
    m.cols = m.in_cols = m.group_size = 56;
    for (int j = 0; j < 7; j++) words[j] = qd_shard_word(&s, 0, j);
    for (int c = 0; c < 56; c++) assert_int_equal(ql_get(&m, 0, c), qd_q(key, 5, 4 + c));
}

/* ---- shards ---- */

/* m (a shard: rows r0.., columns c0..) against full's slice, bit for bit. */
static void expect_slice(const quant_matrix *full, const quant_matrix *m, int r0, int c0,
                         const char *name) {
    const int gf = ql_groups(full), gm = ql_groups(m);
    const int g0 = full->group_size == full->cols ? 0 : c0 / full->group_size;
    assert_true(m->perm == NULL && m->bits == 4 && m->in_cols == m->cols);
    for (int r = 0; r < m->rows; r++) {
        for (int c = 0; c < m->cols; c++)
            if (ql_get(m, r, c) != ql_get(full, r0 + r, c0 + c))
                fail_msg("%s: q of (%d, %d) differs", name, r0 + r, c0 + c);
        for (int l = 0; l < gm; l++) {
            const size_t i = (size_t)r * gm + l, f = (size_t)(r0 + r) * gf + g0 + l;
            if (m->scales[i] != full->scales[f] || m->zeros[i] != full->zeros[f])
                fail_msg("%s: scale or zero of row %d, group %d differs", name, r0 + r, g0 + l);
        }
    }
}

/* W[r][c] of a loaded float32 shard against the header's formula on full coordinates. */
static void expect_formula(const model_config *c, const tensor_spec *s, const float *w) {
    const uint64_t key = weights_dummy_key(11, s->name);
    const int64_t rows = s->slice == SLICE_ROWS ? s->count : s->rows;
    const int64_t cols = s->slice == SLICE_COLS ? s->count : s->cols;
    const int64_t r0 = s->slice == SLICE_ROWS ? s->start : 0;
    const int64_t c0 = s->slice == SLICE_COLS ? s->start : 0;
    const int64_t gs = c->quant.group_size > 0 ? c->quant.group_size : s->cols;
    const float a = weights_dummy_scale(s);
    for (int64_t r = 0; r < rows; r += 3)
        for (int64_t k = 0; k < cols; k += 5) {
            const int64_t fr = r0 + r, fc = c0 + k, g = fc / gs;
            const float want = (float)(qd_q(key, fr, fc) - qd_zero(key, fr, g, c->quant.sym)) *
                               f16_to_f32(qd_scale(key, fr, g, a, c->quant.sym));
            if (w[r * cols + k] != want)
                fail_msg("%s (%lld, %lld): %g, the formula %g", s->name, (long long)fr,
                         (long long)fc, w[r * cols + k], want);
        }
}

/* Every rank's matrices at `world` are the slices of the one-rank matrices, and the CPU
 * loader's float32 weights are exactly their dequantization. */
static void check_world(int group, bool sym, int world) {
    model_config c;
    config_with(group, sym, &c);
    shard_plan sh;
    model_weights fs = {0};
    int n = 0, checked = 0;
    assert_int_equal(shard_plan_make(&c, 0, 1, &sh), 0);
    tensor_spec *fspec = weights_specs(&c, &sh, &fs, &n);
    quant_matrix *full = calloc((size_t)n, sizeof *full);
    for (int i = 0; i < n; i++)
        if (quant_spec_quantized(&c.quant, &fspec[i]) &&
            quant_dummy_matrix(&c.quant, 11, &fspec[i], 1, &full[i]) != 0)
            fail_msg("%s", folio_last_error());
    for (int rank = 0; rank < world; rank++) {
        assert_int_equal(shard_plan_make(&c, rank, world, &sh), 0);
        model_weights w;
        const load_options o = {.format = LOAD_DUMMY, .dummy_seed = 11};
        if (weights_load("unused", &c, &sh, &o, &w) != 0) fail_msg("%s", folio_last_error());
        int nw = 0;
        tensor_spec *ws = weights_specs(&c, &sh, &w, &nw); /* dest: w's loaded tensors */
        assert_int_equal(nw, n);
        for (int i = 0; i < n; i++) {
            const tensor_spec *s = &ws[i];
            assert_string_equal(s->name, fspec[i].name);
            assert_int_equal(quant_spec_quantized(&c.quant, s), full[i].qweight != NULL);
            if (!full[i].qweight) continue;
            quant_matrix m;
            if (quant_dummy_matrix(&c.quant, 11, s, world, &m) != 0)
                fail_msg("%s", folio_last_error());
            expect_slice(&full[i], &m, s->slice == SLICE_ROWS ? (int)s->start : 0,
                         s->slice == SLICE_COLS ? (int)s->start : 0, s->name);
            float *deq = malloc(tensor_spec_floats(s) * sizeof *deq);
            quant_matrix_dequantize(&m, deq);
            assert_memory_equal(deq, *s->dest, tensor_spec_floats(s) * sizeof *deq);
            expect_formula(&c, s, *s->dest);
            free(deq);
            quant_matrix_free(&m);
            checked++;
        }
        /* the rest stays dense dummy: the embedding is not quantized */
        assert_true(w.embed[0] != 0.0f && w.layers[0].attn_norm[0] == 1.0f);
        free(ws);
        weights_free(&w);
    }
    assert_int_equal(checked, world * 2 * 7);
    for (int i = 0; i < n; i++) quant_matrix_free(&full[i]);
    free(full);
    free(fspec);
    free(fs.layers);
    model_config_free(&c);
}

static void test_shards_match(void **state) {
    (void)state;
    check_world(32, false, 2); /* o: 64 inputs per rank, down: 128 */
    check_world(32, true, 2);
    check_world(-1, false, 2); /* per channel: each rank's slice of the one group */
    check_world(64, false, 2);
    check_world(16, false, 8); /* 1 head per rank, KV heads replicated */
    check_world(-1, false, 4);
}

/* ---- what does not fit ---- */

static void write_config(char *dir, size_t n) {
    snprintf(dir, n, "/tmp/folio_quant_dummy_XXXXXX");
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(CONFIG, f);
    fclose(f);
}

static void remove_config(const char *dir) {
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    rmdir(dir);
}

static void test_errors(void **state) {
    (void)state;
    char dir[64];
    write_config(dir, sizeof dir);
    model m;
    /* a group size that does not divide a layer's inputs: found when the config opens */
    dummy_quant d = {.w4a16 = true, .group_size = 48};
    assert_int_equal(model_open_config(dir, &d, 0, 1, &m), -1);
    assert_non_null(strstr(folio_last_error(), "layer 'model.layers.0.self_attn.q_proj': "
                                               "--group-size 48 does not divide its input "
                                               "size 128"));
    /* a row-parallel split that cuts a group: o_proj's 128 inputs over 4 ranks */
    d.group_size = 64;
    assert_int_equal(model_open_config(dir, &d, 1, 4, &m), -1);
    assert_non_null(strstr(folio_last_error(), "layer 'model.layers.0.self_attn.o_proj': "
                                               "--group-size 64 does not divide this rank's 32 "
                                               "input columns (32 .. 63 of 128"));
    /* ... which fits at 2 ranks, and per channel at 4 */
    assert_int_equal(model_open_config(dir, &d, 1, 2, &m), 0);
    assert_int_equal(m.cfg.quant.method, QUANT_DUMMY);
    assert_int_equal(m.cfg.quant.group_size, 64);
    model_close(&m);
    d.group_size = 0;
    assert_int_equal(model_open_config(dir, &d, 3, 4, &m), 0);
    assert_int_equal(m.cfg.quant.group_size, -1);
    model_close(&m);
    /* no --load-format dummy */
    d.group_size = 32;
    assert_int_equal(model_open(dir, LOAD_AUTO, &d, 0, 1, 0, &m), -1);
    assert_non_null(strstr(folio_last_error(), "needs --load-format dummy"));
    model_config c;
    config_with(32, false, &c);
    shard_plan sh;
    model_weights w;
    assert_int_equal(shard_plan_make(&c, 0, 1, &sh), 0);
    const load_options o = {.format = LOAD_AUTO};
    assert_int_equal(weights_load(dir, &c, &sh, &o, &w), -1);
    assert_non_null(strstr(folio_last_error(), "needs --load-format dummy"));
    /* inputs that do not fill whole words (per channel, 100 inputs) */
    tensor_spec s = {.name = "x.weight", .rows = 8, .cols = 100, .slice = SLICE_NONE,
                     .init = INIT_MATRIX};
    quant_matrix qm;
    c.quant.group_size = -1;
    assert_int_equal(quant_dummy_matrix(&c.quant, 0, &s, 1, &qm), -1);
    assert_non_null(strstr(folio_last_error(), "layer 'x': this rank's 100 input columns do "
                                               "not fill whole 4-bit words"));
    model_config_free(&c);
    remove_config(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_rounding), cmocka_unit_test(test_pinned_values),
        cmocka_unit_test(test_ranges_and_spread), cmocka_unit_test(test_words),
        cmocka_unit_test(test_shards_match), cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
