/* Check and timing of rope_kv_write_cuda (kernels/rope_kv_write.cu) against its CPU twins
 * (rmsnorm_cpu per head for Qwen3's q/k norm, rope_cpu, kv_write_cpu), in float32, bfloat16
 * and float16: random fused q/k/v rows, random positions, shuffled slots in a cache of more
 * blocks than needed, padding rows (slot -1) that must write nothing, with and without the
 * per-head norm, GQA and MHA head counts, head_dim 16 to 256. The GPU cache (HND) is converted
 * to the CPU layout for the comparison. The FP8 cache (rope_kv_write_fp8_cuda) against
 * kv_write_fp8_cpu applied to the 16-bit kernel's own K and V (checked above against the float
 * twins): every byte equal, so the quantization is tested exactly and the rotation's roundings
 * once. Skips (77) without a GPU. */
#include <stdio.h>

#ifndef FOLIO_HAVE_CUDA
int main(void) {
    printf("SKIPPED: no CUDA device (built without CUDA)\n");
    return 77;
}
#else

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cuda_check.h"
#include "error.h"
#include "fp8_layout.h"
#include "gpu_test_util.h"
#include "kernels_cpu.h"
#include "kernels_cuda.h"

enum { MAX_POS = 512 };

/* HND [blocks][nkv][bs][hd] -> CPU [blocks][bs][nkv][hd] */
static void hnd_to_cpu(float *dst, const float *src, int blocks, int nkv, int bs, int hd) {
    for (int b = 0; b < blocks; b++)
        for (int h = 0; h < nkv; h++)
            for (int s = 0; s < bs; s++)
                memcpy(dst + (((size_t)b * bs + s) * nkv + h) * hd,
                       src + (((size_t)b * nkv + h) * bs + s) * hd, sizeof(float) * hd);
}

/* HND e4m3 bytes -> CPU layout bytes */
static void hnd_to_cpu8(uint8_t *dst, const uint8_t *src, int blocks, int nkv, int bs, int hd) {
    for (int b = 0; b < blocks; b++)
        for (int h = 0; h < nkv; h++)
            for (int s = 0; s < bs; s++)
                memcpy(dst + (((size_t)b * bs + s) * nkv + h) * hd,
                       src + (((size_t)b * nkv + h) * bs + s) * hd, (size_t)hd);
}

/* The FP8 caches of the GPU (HND, device) against kv_write_fp8_cpu on the K and V the 16-bit
 * kernel wrote for the same inputs (kc16, vc16: host, HND, rounded values): bytes that differ. */
static size_t fp8_cache_mismatches(const char *what, const void *d_kc, const void *d_vc,
                                   const float *kc16, const float *vc16, const int64_t *slots,
                                   int n, int blocks, int nkv, int bs, int hd, float ks, float vs) {
    const size_t len = (size_t)blocks * bs * nkv * hd, row = (size_t)nkv * hd;
    float *k = folio_xcalloc((size_t)n * row, sizeof(float));
    float *v = folio_xcalloc((size_t)n * row, sizeof(float));
    for (int i = 0; i < n; i++) /* token i's rows out of the HND cache */
        for (int h = 0; slots[i] >= 0 && h < nkv; h++) {
            const size_t src = (((size_t)(slots[i] / bs) * nkv + h) * bs + slots[i] % bs) * hd;
            memcpy(k + i * row + (size_t)h * hd, kc16 + src, sizeof(float) * hd);
            memcpy(v + i * row + (size_t)h * hd, vc16 + src, sizeof(float) * hd);
        }
    uint8_t *want_k = folio_xcalloc(len, 1), *want_v = folio_xcalloc(len, 1);
    uint8_t *raw = folio_xmalloc(len), *got_k = folio_xmalloc(len), *got_v = folio_xmalloc(len);
    kv_write_fp8_cpu(want_k, want_v, k, v, slots, n, nkv, hd, ks, vs);
    CUDA_CHECK(cudaMemcpy(raw, d_kc, len, cudaMemcpyDeviceToHost));
    hnd_to_cpu8(got_k, raw, blocks, nkv, bs, hd);
    CUDA_CHECK(cudaMemcpy(raw, d_vc, len, cudaMemcpyDeviceToHost));
    hnd_to_cpu8(got_v, raw, blocks, nkv, bs, hd);
    size_t bad = 0, saturated = 0;
    for (size_t i = 0; i < len; i++) {
        saturated += (got_k[i] & 0x7f) == 0x7e;
        if (got_k[i] != want_k[i] || got_v[i] != want_v[i]) {
            if (bad < 8)
                fprintf(stderr, "  %s: element %zu: k gpu %02x cpu %02x, v gpu %02x cpu %02x\n",
                        what, i, got_k[i], want_k[i], got_v[i], want_v[i]);
            bad++;
        }
    }
    printf("  %s fp8: %zu of %zu bytes differ (%zu K values saturated at 448)\n", what, bad, len,
           saturated);
    uint8_t *bufs[] = {want_k, want_v, raw, got_k, got_v};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(k);
    free(v);
    return bad;
}

static void check_case(int n, int nh, int nkv, int hd, int qk_norm, folio_dtype t, int fp8) {
    const int bs = 16, blocks = (n + bs - 1) / bs + 3, qkv_w = (nh + 2 * nkv) * hd;
    const size_t cache_len = (size_t)blocks * bs * nkv * hd;
    float *qkv = gpu_test_rand((size_t)n * qkv_w, -2, 2, t);
    float *qn = gpu_test_rand(hd, 0.5f, 1.5f, t), *kn = gpu_test_rand(hd, 0.5f, 1.5f, t);
    float *cos_t = folio_xmalloc(sizeof(float) * MAX_POS * hd / 2);
    float *sin_t = folio_xmalloc(sizeof(float) * MAX_POS * hd / 2);
    for (int i = 0; i < MAX_POS * hd / 2; i++) {
        const float a = gpu_test_urand(-3.14f, 3.14f);
        cos_t[i] = cosf(a);
        sin_t[i] = sinf(a);
    }
    int32_t *pos = folio_xmalloc(sizeof *pos * n);
    int64_t *slots = folio_xmalloc(sizeof *slots * n);
    int *perm = folio_xmalloc(sizeof *perm * blocks * bs);
    for (int i = 0; i < blocks * bs; i++) perm[i] = i;
    for (int i = blocks * bs - 1; i > 0; i--) { /* shuffled, distinct slots */
        const int j = (int)gpu_test_urand(0, (float)(i + 1));
        const int tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    for (int i = 0; i < n; i++) {
        pos[i] = (int32_t)gpu_test_urand(0, MAX_POS);
        slots[i] = i % 5 == 4 ? -1 : perm[i];
    }
    /* device */
    void *d_qkv = gpu_test_to_device(qkv, (size_t)n * qkv_w, t);
    void *d_qn = gpu_test_to_device(qn, hd, t), *d_kn = gpu_test_to_device(kn, hd, t);
    float *zeros = folio_xcalloc(cache_len, sizeof(float));
    void *d_kc = gpu_test_to_device(zeros, cache_len, t), *d_vc = gpu_test_to_device(zeros, cache_len, t);
    const float ks = 1.0f / 96.0f, vs = 1.0f / 200.0f; /* |k| up to ~40: some saturate at 448 */
    float *d_cos = gpu_test_to_device(cos_t, MAX_POS * hd / 2, DTYPE_F32);
    float *d_sin = gpu_test_to_device(sin_t, MAX_POS * hd / 2, DTYPE_F32);
    int32_t *d_pos;
    int64_t *d_slots;
    void *d_q;
    CUDA_CHECK(cudaMalloc((void **)&d_pos, sizeof *pos * n));
    CUDA_CHECK(cudaMalloc((void **)&d_slots, sizeof *slots * n));
    CUDA_CHECK(cudaMalloc(&d_q, (size_t)n * nh * hd * dtype_size(t)));
    CUDA_CHECK(cudaMemcpy(d_pos, pos, sizeof *pos * n, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(d_slots, slots, sizeof *slots * n, cudaMemcpyHostToDevice));
    if (fp8) /* the byte caches fit in the zeroed 16-bit ones */
        rope_kv_write_fp8_cuda(d_q, d_qkv, d_kc, d_vc, d_slots, d_pos, d_cos, d_sin,
                               qk_norm ? d_qn : NULL, qk_norm ? d_kn : NULL, n, nh, nkv, hd, bs,
                               1e-6f, ks, vs, t, 0);
    else
        rope_kv_write_cuda(d_q, d_qkv, d_kc, d_vc, d_slots, d_pos, d_cos, d_sin,
                           qk_norm ? d_qn : NULL, qk_norm ? d_kn : NULL, n, nh, nkv, hd, bs,
                           1e-6f, t, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
    /* CPU: split q, k, v; norm; rope; write */
    float *q = folio_xmalloc(sizeof(float) * n * nh * hd), *k = folio_xmalloc(sizeof(float) * n * nkv * hd);
    float *v = folio_xmalloc(sizeof(float) * n * nkv * hd);
    for (int i = 0; i < n; i++) {
        const float *row = qkv + (size_t)i * qkv_w;
        memcpy(q + (size_t)i * nh * hd, row, sizeof(float) * nh * hd);
        memcpy(k + (size_t)i * nkv * hd, row + nh * hd, sizeof(float) * nkv * hd);
        memcpy(v + (size_t)i * nkv * hd, row + (nh + nkv) * hd, sizeof(float) * nkv * hd);
    }
    if (qk_norm) {
        rmsnorm_cpu(q, q, qn, n * nh, hd, 1e-6f);
        rmsnorm_cpu(k, k, kn, n * nkv, hd, 1e-6f);
    }
    rope_cpu(q, pos, cos_t, sin_t, n, nh, hd);
    rope_cpu(k, pos, cos_t, sin_t, n, nkv, hd);
    float *kc = folio_xcalloc(cache_len, sizeof(float)), *vc = folio_xcalloc(cache_len, sizeof(float));
    kv_write_cpu(kc, vc, k, v, slots, n, nkv, hd);
    gpu_test_round(q, (size_t)n * nh * hd, t);
    gpu_test_round(kc, cache_len, t);
    /* compare */
    const size_t big = cache_len > (size_t)n * nh * hd ? cache_len : (size_t)n * nh * hd;
    float *g = folio_xmalloc(sizeof(float) * big), *g2 = folio_xmalloc(sizeof(float) * big);
    char what[96];
    const double rtol = t == DTYPE_F32 ? 2e-6 : t == DTYPE_BF16 ? 3.0 / 128 : 3.0 / 1024;
    const double atol = t == DTYPE_F32 ? 1e-5 : t == DTYPE_BF16 ? 3e-2 : 4e-3;
    snprintf(what, sizeof what, "%s n=%d h=%d/%d hd=%d norm=%d", dtype_name(t), n, nh, nkv, hd,
             qk_norm);
    gpu_test_from_device(g, d_q, (size_t)n * nh * hd, t);
    assert_int_equal(gpu_test_mismatches(what, g, q, (size_t)n * nh * hd, atol, rtol), 0);
    if (fp8) { /* the 16-bit kernel's K and V for the same inputs, then the bytes */
        void *d_kc16 = gpu_test_to_device(zeros, cache_len, t);
        void *d_vc16 = gpu_test_to_device(zeros, cache_len, t);
        rope_kv_write_cuda(d_q, d_qkv, d_kc16, d_vc16, d_slots, d_pos, d_cos, d_sin,
                           qk_norm ? d_qn : NULL, qk_norm ? d_kn : NULL, n, nh, nkv, hd, bs,
                           1e-6f, t, 0);
        gpu_test_from_device(g, d_kc16, cache_len, t);
        gpu_test_from_device(g2, d_vc16, cache_len, t);
        assert_int_equal(fp8_cache_mismatches(what, d_kc, d_vc, g, g2, slots, n, blocks, nkv,
                                              bs, hd, ks, vs),
                         0);
        CUDA_CHECK(cudaFree(d_kc16));
        CUDA_CHECK(cudaFree(d_vc16));
        goto done;
    }
    gpu_test_from_device(g2, d_kc, cache_len, t);
    hnd_to_cpu(g, g2, blocks, nkv, bs, hd);
    assert_int_equal(gpu_test_mismatches(what, g, kc, cache_len, atol, rtol), 0);
    gpu_test_from_device(g2, d_vc, cache_len, t);
    hnd_to_cpu(g, g2, blocks, nkv, bs, hd);
    assert_int_equal(gpu_test_mismatches(what, g, vc, cache_len, 0, 0), 0);
done:;
    void *dev[] = {d_qkv, d_qn, d_kn, d_kc, d_vc, d_cos, d_sin, d_pos, d_slots, d_q};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) CUDA_CHECK(cudaFree(dev[i]));
    float *host[] = {qkv, qn, kn, cos_t, sin_t, zeros, q, k, v, kc, vc, g, g2};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++) free(host[i]);
    free(pos);
    free(slots);
    free(perm);
}

static void test_rope_kv_write(void **state) {
    (void)state;
    const folio_dtype types[] = {DTYPE_F32, DTYPE_BF16, DTYPE_F16};
    for (int i = 0; i < 3; i++)
        for (int norm = 0; norm < 2; norm++) {
            check_case(1, 4, 2, 16, norm, types[i], 0);
            check_case(29, 4, 4, 16, norm, types[i], 0);
            check_case(40, 8, 1, 64, norm, types[i], 0);
            check_case(33, 32, 8, 128, norm, types[i], 0);
            check_case(5, 4, 2, 256, norm, types[i], 0);
        }
}

static void test_rope_kv_write_fp8(void **state) {
    (void)state;
    const folio_dtype types[] = {DTYPE_BF16, DTYPE_F16};
    for (int i = 0; i < 2; i++)
        for (int norm = 0; norm < 2; norm++) {
            check_case(29, 4, 4, 16, norm, types[i], 1);
            check_case(40, 8, 1, 64, norm, types[i], 1);
            check_case(33, 32, 8, 128, norm, types[i], 1);
        }
}

typedef struct {
    void *q, *qkv, *kc, *vc;
    int64_t *slots;
    int32_t *pos;
    float *cos, *sin;
    int n;
} bench_args;

static void run_bench(void *p) {
    bench_args *a = p;
    rope_kv_write_cuda(a->q, a->qkv, a->kc, a->vc, a->slots, a->pos, a->cos, a->sin, NULL, NULL,
                       a->n, 32, 8, 128, 16, 1e-6f, DTYPE_BF16, 0);
}

static void bench(void) {
    const int ns[] = {1, 64, 2048};
    for (int c = 0; c < 3; c++) {
        bench_args a = {.n = ns[c]};
        const int n = a.n, blocks = n / 16 + 1;
        CUDA_CHECK(cudaMalloc(&a.q, (size_t)n * 32 * 128 * 2));
        CUDA_CHECK(cudaMalloc(&a.qkv, (size_t)n * 48 * 128 * 2));
        CUDA_CHECK(cudaMemset(a.qkv, 0x3c, (size_t)n * 48 * 128 * 2));
        CUDA_CHECK(cudaMalloc(&a.kc, (size_t)blocks * 16 * 8 * 128 * 2));
        CUDA_CHECK(cudaMalloc(&a.vc, (size_t)blocks * 16 * 8 * 128 * 2));
        CUDA_CHECK(cudaMalloc((void **)&a.cos, 8192 * 64 * 4));
        CUDA_CHECK(cudaMalloc((void **)&a.sin, 8192 * 64 * 4));
        CUDA_CHECK(cudaMemset(a.cos, 0, 8192 * 64 * 4));
        CUDA_CHECK(cudaMemset(a.sin, 0, 8192 * 64 * 4));
        int64_t *slots = folio_xmalloc(sizeof *slots * n);
        int32_t *pos = folio_xmalloc(sizeof *pos * n);
        for (int i = 0; i < n; i++) {
            slots[i] = i;
            pos[i] = i;
        }
        CUDA_CHECK(cudaMalloc((void **)&a.slots, sizeof *slots * n));
        CUDA_CHECK(cudaMalloc((void **)&a.pos, sizeof *pos * n));
        CUDA_CHECK(cudaMemcpy(a.slots, slots, sizeof *slots * n, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(a.pos, pos, sizeof *pos * n, cudaMemcpyHostToDevice));
        const double ms = gpu_test_time_ms(run_bench, &a, 3, 20);
        const double bytes = (double)n * (48 * 128 * 2 + 48 * 128 * 2 + 64 * 8);
        printf("bench rope_kv_write_cuda bfloat16 n=%d heads 32/8 hd 128: median %.4f ms "
               "(%.0f GB/s)\n", n, ms, bytes / (ms * 1e-3) * 1e-9);
        void *dev[] = {a.q, a.qkv, a.kc, a.vc, a.cos, a.sin, a.slots, a.pos};
        for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) CUDA_CHECK(cudaFree(dev[i]));
        free(slots);
        free(pos);
    }
}

int main(void) {
    if (gpu_test_skip()) return 77;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_rope_kv_write),
                                       cmocka_unit_test(test_rope_kv_write_fp8)};
    const int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (!failed && gpu_test_bench_enabled()) bench();
    return failed;
}
#endif
