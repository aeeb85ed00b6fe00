/* The FP8 KV cache on the CPU (--kv-cache-dtype fp8):
 *   - kv_write_fp8_cpu stores e4m3(value / scale) exactly as fp8_layout.h rounds, saturating at
 *     +-448 * scale, and skips padding slots;
 *   - paged_attention_fp8_cpu equals paged_attention_cpu run on the dequantized cache (e4m3 *
 *     scale as floats), for causal, sliding-window, GQA and multi-sequence steps;
 *   - kv_cache_copy_block copies an FP8 block's bytes in every layer;
 *   - kv_scales_load reads model.layers.N.self_attn.k_scale / v_scale (and the
 *     k_proj.output_scale alias), defaults to 1.0, and refuses malformed scales naming the
 *     tensor. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "error.h"
#include "fp8_layout.h"
#include "kernels_cpu.h"
#include "kv_cache.h"
#include "kv_scales.h"
#include "safetensors_write.h"

static uint64_t g_rng = 0x2545F4914F6CDD1Dull;

static float urand(float lo, float hi) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return lo + (hi - lo) * (float)((g_rng >> 11) * (1.0 / 9007199254740992.0));
}

static void test_write_rounds_and_saturates(void **state) {
    (void)state;
    enum { HEADS = 2, HD = 8, SLOTS = 4 };
    float k[3][HEADS * HD], v[3][HEADS * HD];
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < HEADS * HD; i++) {
            k[t][i] = urand(-3, 3);
            v[t][i] = urand(-3, 3);
        }
    k[1][3] = 1000.f; /* 1000 / 0.5 = 2000: saturates to 448 */
    v[2][5] = -900.f;
    uint8_t kc[SLOTS * HEADS * HD], vc[SLOTS * HEADS * HD];
    memset(kc, 0xAA, sizeof kc);
    memset(vc, 0xAA, sizeof vc);
    const int64_t slots[3] = {2, -1, 0};
    kv_write_fp8_cpu(kc, vc, &k[0][0], &v[0][0], slots, 3, HEADS, HD, 0.5f, 2.0f);
    for (int t = 0; t < 3; t++) {
        if (slots[t] < 0) continue;
        for (int i = 0; i < HEADS * HD; i++) {
            const size_t at = (size_t)slots[t] * HEADS * HD + i;
            assert_int_equal(kc[at], fp8_e4m3_from_float(k[t][i] / 0.5f));
            assert_int_equal(vc[at], fp8_e4m3_from_float(v[t][i] / 2.0f));
        }
    }
    assert_true(fp8_e4m3_to_float(vc[5]) == -448.f);
    for (int i = 0; i < HEADS * HD; i++) { /* slot 1 (the padding token's) untouched */
        assert_int_equal(kc[HEADS * HD + i], 0xAA);
        assert_int_equal(vc[3 * HEADS * HD + i], 0xAA);
    }
}

/* One step over a pool: FP8 attention against float attention on the dequantized pool. */
static void check_attention(int n_heads, int n_kv, int window) {
    enum { HD = 16, BS = 4, BLOCKS = 12, MAXB = 6 };
    const int slot_elems = n_kv * HD, pool = BLOCKS * BS * slot_elems;
    uint8_t *k8 = calloc((size_t)pool, 1), *v8 = calloc((size_t)pool, 1);
    float *kf = calloc((size_t)pool, sizeof(float)), *vf = calloc((size_t)pool, sizeof(float));
    const float ks = 0.03f, vs = 0.7f;
    /* two sequences: 9 cached + 3 new tokens, and 5 new tokens (a prefill) */
    const int32_t tables[2][MAXB] = {{3, 7, 1, 0, 0, 0}, {5, 9, 0, 0, 0, 0}};
    const int32_t seq_start[3] = {0, 3, 8};
    int32_t pos[8];
    int64_t slots[8];
    for (int t = 0; t < 8; t++) {
        const int s = t < 3 ? 0 : 1;
        pos[t] = s == 0 ? 9 + t : t - 3;
        slots[t] = (int64_t)tables[s][pos[t] / BS] * BS + pos[t] % BS;
    }
    /* the cached prefix of sequence 0 (positions 0..8), written through the same function */
    float *k = malloc(sizeof(float) * 9 * slot_elems), *v = malloc(sizeof(float) * 9 * slot_elems);
    int64_t pre[9];
    for (int p = 0; p < 9; p++) pre[p] = (int64_t)tables[0][p / BS] * BS + p % BS;
    for (int i = 0; i < 9 * slot_elems; i++) k[i] = urand(-2, 2), v[i] = urand(-2, 2);
    kv_write_fp8_cpu(k8, v8, k, v, pre, 9, n_kv, HD, ks, vs);
    free(k);
    free(v);
    k = malloc(sizeof(float) * 8 * slot_elems);
    v = malloc(sizeof(float) * 8 * slot_elems);
    for (int i = 0; i < 8 * slot_elems; i++) k[i] = urand(-2, 2), v[i] = urand(-2, 2);
    kv_write_fp8_cpu(k8, v8, k, v, slots, 8, n_kv, HD, ks, vs);
    for (int i = 0; i < pool; i++) {
        kf[i] = fp8_e4m3_to_float(k8[i]) * ks;
        vf[i] = fp8_e4m3_to_float(v8[i]) * vs;
    }
    float *q = malloc(sizeof(float) * 8 * n_heads * HD);
    for (int i = 0; i < 8 * n_heads * HD; i++) q[i] = urand(-1, 1);
    float *got = malloc(sizeof(float) * 8 * n_heads * HD);
    float *want = malloc(sizeof(float) * 8 * n_heads * HD);
    const float scale = 1.0f / sqrtf((float)HD);
    paged_attention_fp8_cpu(got, q, k8, v8, ks, vs, &tables[0][0], MAXB, seq_start, pos, 2,
                            n_heads, n_kv, HD, BS, window, scale);
    paged_attention_cpu(want, q, kf, vf, &tables[0][0], MAXB, seq_start, pos, 2, n_heads, n_kv,
                        HD, BS, window, scale);
    for (int i = 0; i < 8 * n_heads * HD; i++)
        assert_float_equal(got[i], want[i], 1e-5 + 1e-5 * fabsf(want[i]));
    free(k8), free(v8), free(kf), free(vf), free(k), free(v), free(q), free(got), free(want);
}

static void test_attention_matches_dequantized(void **state) {
    (void)state;
    check_attention(4, 4, 0);  /* MHA */
    check_attention(8, 2, 0);  /* GQA */
    check_attention(4, 1, 5);  /* MQA, sliding window */
}

static void test_copy_block(void **state) {
    (void)state;
    kv_cache kv;
    const float ks[2] = {1, 2}, vs[2] = {3, 4};
    assert_int_equal(kv_cache_create(&kv, 2, 4, 2, 1, 8, ks, vs, true), 0);
    for (int l = 0; l < 2; l++)
        for (int i = 0; i < 2 * 8; i++) {
            kv.k8[kv_cache_offset(&kv, l, 2) + i] = (uint8_t)(l * 40 + i);
            kv.v8[kv_cache_offset(&kv, l, 2) + i] = (uint8_t)(l * 40 + i + 1);
        }
    kv_cache_copy_block(&kv, 1, 3);
    for (int l = 0; l < 2; l++)
        for (int i = 0; i < 2 * 8; i++) {
            assert_int_equal(kv.k8[kv_cache_offset(&kv, l, 6) + i], l * 40 + i);
            assert_int_equal(kv.v8[kv_cache_offset(&kv, l, 6) + i], l * 40 + i + 1);
        }
    assert_true(kv.k_scale[1] == 2.f && kv.v_scale[0] == 3.f);
    kv_cache_free(&kv);
}

/* A directory holding one safetensors file of the given scalar tensors. */
static void write_dir(char *dir, const char *const *names, const float *values, int n,
                      int64_t elems) {
    strcpy(dir, "/tmp/folio_kvfp8_XXXXXX");
    assert_non_null(mkdtemp(dir));
    st_out_tensor t[8];
    float data[8][2];
    for (int i = 0; i < n; i++) {
        data[i][0] = data[i][1] = values[i];
        t[i] = (st_out_tensor){.name = names[i], .dtype = ST_F32, .ndim = 1,
                               .shape = {elems}, .data = data[i],
                               .nbytes = (uint64_t)elems * sizeof(float)};
    }
    char path[300];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    assert_int_equal(safetensors_write_file(path, t, n), 0);
}

static void remove_dir(const char *dir) {
    char path[300];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    rmdir(dir);
}

static void test_scales_load(void **state) {
    (void)state;
    model_config cfg = {.n_layers = 3};
    char dir[64];
    const char *names[] = {"model.layers.0.self_attn.k_scale", "model.layers.0.self_attn.v_scale",
                           "model.layers.2.self_attn.k_proj.output_scale",
                           "model.layers.2.self_attn.v_proj.output_scale"};
    const float values[] = {0.25f, 0.5f, 2.0f, 4.0f};
    write_dir(dir, names, values, 4, 1);
    kv_scales s;
    assert_int_equal(kv_scales_load(dir, &cfg, false, &s), 0);
    assert_int_equal(s.found, 2);
    assert_true(s.k[0] == 0.25f && s.v[0] == 0.5f && s.k[1] == 1.f && s.v[1] == 1.f &&
                s.k[2] == 2.f && s.v[2] == 4.f);
    kv_scales_free(&s);
    remove_dir(dir);

    write_dir(dir, names, values, 1, 1); /* K without V */
    assert_int_equal(kv_scales_load(dir, &cfg, false, &s), -1);
    assert_non_null(strstr(folio_last_error(), "layer 0 has a K scale but no V scale"));
    remove_dir(dir);

    write_dir(dir, names, values, 2, 2); /* two elements: not a per-tensor scale */
    assert_int_equal(kv_scales_load(dir, &cfg, false, &s), -1);
    assert_non_null(strstr(folio_last_error(), "model.layers.0.self_attn.k_scale"));
    remove_dir(dir);

    const float bad[] = {-1.f, 1.f};
    write_dir(dir, names, bad, 2, 1);
    assert_int_equal(kv_scales_load(dir, &cfg, false, &s), -1);
    assert_non_null(strstr(folio_last_error(), "not a usable scale"));
    remove_dir(dir);

    assert_int_equal(kv_scales_load("/nonexistent", &cfg, true, &s), 0); /* dummy: 1.0 */
    assert_true(s.k[2] == 1.f && s.found == 0);
    kv_scales_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_rounds_and_saturates),
        cmocka_unit_test(test_attention_matches_dequantized),
        cmocka_unit_test(test_copy_block),
        cmocka_unit_test(test_scales_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
