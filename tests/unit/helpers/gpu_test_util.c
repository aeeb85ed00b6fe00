/* Helpers of the GPU tests (see gpu_test_util.h). */
#ifdef FOLIO_HAVE_CUDA

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "cuda_check.h"
#include "error.h"
#include "gpu_test_util.h"

static uint64_t g_rng = 12345;

float gpu_test_urand(float lo, float hi) {
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    const uint64_t r = g_rng * 0x2545F4914F6CDD1Dull;
    return lo + (hi - lo) * (float)((double)(r >> 11) / 9007199254740992.0);
}

static float round_to(float v, folio_dtype t) {
    if (t == DTYPE_BF16) return bf16_to_f32(f32_to_bf16(v));
    if (t == DTYPE_F16) return f16_to_f32(f32_to_f16(v));
    return v;
}

void gpu_test_round(float *h, size_t n, folio_dtype t) {
    for (size_t i = 0; i < n; i++) h[i] = round_to(h[i], t);
}

float *gpu_test_rand(size_t n, float lo, float hi, folio_dtype t) {
    float *v = folio_xmalloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) v[i] = round_to(gpu_test_urand(lo, hi), t);
    return v;
}

void *gpu_test_to_device(const float *h, size_t n, folio_dtype t) {
    void *d = NULL;
    CUDA_CHECK(cudaMalloc(&d, n * dtype_size(t) + 16));
    if (t == DTYPE_F32) {
        CUDA_CHECK(cudaMemcpy(d, h, n * sizeof(float), cudaMemcpyHostToDevice));
        return d;
    }
    uint16_t *tmp = folio_xmalloc((n ? n : 1) * sizeof(uint16_t));
    for (size_t i = 0; i < n; i++) tmp[i] = t == DTYPE_BF16 ? f32_to_bf16(h[i]) : f32_to_f16(h[i]);
    CUDA_CHECK(cudaMemcpy(d, tmp, n * sizeof(uint16_t), cudaMemcpyHostToDevice));
    free(tmp);
    return d;
}

void gpu_test_from_device(float *h, const void *d, size_t n, folio_dtype t) {
    if (t == DTYPE_F32) {
        CUDA_CHECK(cudaMemcpy(h, d, n * sizeof(float), cudaMemcpyDeviceToHost));
        return;
    }
    uint16_t *tmp = folio_xmalloc((n ? n : 1) * sizeof(uint16_t));
    CUDA_CHECK(cudaMemcpy(tmp, d, n * sizeof(uint16_t), cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++) h[i] = t == DTYPE_BF16 ? bf16_to_f32(tmp[i]) : f16_to_f32(tmp[i]);
    free(tmp);
}

size_t gpu_test_mismatches(const char *what, const float *got, const float *want, size_t n,
                           double atol, double rtol) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        const double err = fabs((double)got[i] - (double)want[i]);
        if (!(err <= atol + rtol * fabs((double)want[i]))) {
            if (bad < 10)
                fprintf(stderr, "  %s [%zu]: gpu %.8g cpu %.8g\n", what, i, (double)got[i],
                        (double)want[i]);
            bad++;
        }
    }
    if (bad) fprintf(stderr, "  %s: %zu of %zu mismatches\n", what, bad, n);
    return bad;
}

bool gpu_test_skip(void) {
    const char *why = "";
    if (cuda_device_count_or_zero(&why) > 0) return false;
    printf("SKIPPED: no CUDA device (%s)\n", why);
    return true;
}

bool gpu_test_bench_enabled(void) {
    const char *b = getenv("FOLIO_BENCH");
    return !(b && strcmp(b, "0") == 0);
}

static int cmp_float(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

double gpu_test_time_ms(void (*fn)(void *), void *arg, int warmup, int reps) {
    int l2 = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0));
    const size_t flush_bytes = 2 * (size_t)(l2 > 0 ? l2 : 64 << 20);
    void *flush = NULL;
    CUDA_CHECK(cudaMalloc(&flush, flush_bytes));
    cudaEvent_t start, stop;
    CUDA_CHECK(cudaEventCreate(&start));
    CUDA_CHECK(cudaEventCreate(&stop));
    for (int r = 0; r < warmup; r++) fn(arg);
    float *ms = folio_xmalloc(sizeof(float) * reps);
    for (int r = 0; r < reps; r++) {
        CUDA_CHECK(cudaMemsetAsync(flush, r & 0xff, flush_bytes, 0));
        CUDA_CHECK(cudaEventRecord(start, 0));
        fn(arg);
        CUDA_CHECK(cudaEventRecord(stop, 0));
        CUDA_CHECK(cudaEventSynchronize(stop));
        CUDA_CHECK(cudaEventElapsedTime(&ms[r], start, stop));
    }
    qsort(ms, reps, sizeof *ms, cmp_float);
    const double med = ms[reps / 2];
    free(ms);
    CUDA_CHECK(cudaEventDestroy(stop));
    CUDA_CHECK(cudaEventDestroy(start));
    CUDA_CHECK(cudaFree(flush));
    return med;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double gpu_test_rotating_us(void (*fn)(void *arg, int copy), void *arg, int copies) {
    const int iters = copies * (copies < 20 ? (40 + copies - 1) / copies : 2), reps = 7;
    cudaEvent_t start, stop;
    CUDA_CHECK(cudaEventCreate(&start));
    CUDA_CHECK(cudaEventCreate(&stop));
    for (int i = 0; i < copies; i++) fn(arg, i); /* warm-up (cuBLASLt plans, first touch) */
    double us[7];
    for (int r = 0; r < reps; r++) {
        CUDA_CHECK(cudaEventRecord(start, 0));
        for (int i = 0; i < iters; i++) fn(arg, i % copies);
        CUDA_CHECK(cudaEventRecord(stop, 0));
        CUDA_CHECK(cudaEventSynchronize(stop));
        float ms = 0;
        CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
        us[r] = 1e3 * ms / iters;
    }
    qsort(us, reps, sizeof us[0], cmp_double);
    CUDA_CHECK(cudaEventDestroy(start));
    CUDA_CHECK(cudaEventDestroy(stop));
    return us[reps / 2];
}

double gpu_test_copy_gbps(void) {
    const size_t bytes = (size_t)2 << 30;
    void *src = NULL, *dst = NULL;
    CUDA_CHECK(cudaMalloc(&src, bytes));
    CUDA_CHECK(cudaMalloc(&dst, bytes));
    CUDA_CHECK(cudaMemset(src, 1, bytes));
    cudaEvent_t start, stop;
    CUDA_CHECK(cudaEventCreate(&start));
    CUDA_CHECK(cudaEventCreate(&stop));
    double ms[5];
    for (int r = 0; r < 6; r++) { /* r = 0 warms up */
        CUDA_CHECK(cudaEventRecord(start, 0));
        CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, 0));
        CUDA_CHECK(cudaEventRecord(stop, 0));
        CUDA_CHECK(cudaEventSynchronize(stop));
        float t = 0;
        CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
        if (r) ms[r - 1] = t;
    }
    qsort(ms, 5, sizeof ms[0], cmp_double);
    CUDA_CHECK(cudaEventDestroy(start));
    CUDA_CHECK(cudaEventDestroy(stop));
    CUDA_CHECK(cudaFree(src));
    CUDA_CHECK(cudaFree(dst));
    return 2.0 * bytes / (ms[2] * 1e-3) * 1e-9;
}

size_t gpu_test_device_diff(const void *a, const void *b, size_t bytes, size_t elem) {
    unsigned char *ha = folio_xmalloc(bytes ? bytes : 1), *hb = folio_xmalloc(bytes ? bytes : 1);
    CUDA_CHECK(cudaMemcpy(ha, a, bytes, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(hb, b, bytes, cudaMemcpyDeviceToHost));
    size_t diff = 0;
    for (size_t i = 0; i < bytes; i += elem) diff += memcmp(ha + i, hb + i, elem) != 0;
    free(ha);
    free(hb);
    return diff;
}

size_t gpu_test_bits_diff(const void *a, const void *b, size_t n, folio_dtype t) {
    return gpu_test_device_diff(a, b, n * dtype_size(t), dtype_size(t));
}

void gpu_test_fp8_out_alloc(gpu_test_fp8_out *o, size_t len, int n, folio_dtype t) {
    CUDA_CHECK(cudaMalloc(&o->out, len * dtype_size(t)));
    CUDA_CHECK(cudaMalloc((void **)&o->q, len));
    CUDA_CHECK(cudaMalloc((void **)&o->s, sizeof(float) * (size_t)n));
}

void gpu_test_fp8_out_pair(gpu_test_fp8_out *a, gpu_test_fp8_out *b, size_t len, int n,
                           folio_dtype t, const float *xs) {
    gpu_test_fp8_out_alloc(a, len, n, t);
    gpu_test_fp8_out_alloc(b, len, n, t);
    CUDA_CHECK(cudaMemcpy(a->s, xs, sizeof(float) * (size_t)n, cudaMemcpyDeviceToDevice));
}

size_t gpu_test_fp8_out_diff(const gpu_test_fp8_out *a, const gpu_test_fp8_out *b, size_t len,
                             int n, folio_dtype t) {
    return gpu_test_bits_diff(a->out, b->out, len, t) + gpu_test_device_diff(a->q, b->q, len, 1) +
           gpu_test_device_diff(a->s, b->s, sizeof(float) * (size_t)n, sizeof(float));
}

void gpu_test_fp8_out_free(gpu_test_fp8_out *o) {
    CUDA_CHECK(cudaFree(o->out));
    CUDA_CHECK(cudaFree(o->q));
    CUDA_CHECK(cudaFree(o->s));
}

#else
typedef int folio_gpu_test_util_unused; /* built without CUDA */
#endif
