/* Check and timing of silu_mul_cuda (kernels/silu_mul.cu) against silu_mul_cpu on the two
 * halves of a fused gate_up row, in float32, bfloat16 and float16 (vector and scalar paths),
 * then GB/s (read gate_up, write out) on Llama-3-8B's FFN width; silu_mul_fp8_cuda against
 * silu_mul_cuda + fp8_quantize_act_cuda (bit for bit), and with gate_up's FP8 scales deferred
 * to it against fp8_rescale_rows_cuda + silu_mul_fp8_cuda (bit for bit). Skips (77) without a
 * GPU. */
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
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "cuda_check.h"
#include "error.h"
#include "gpu_test_util.h"
#include "kernels_cpu.h"
#include "kernels_cuda.h"

static void check_case(int n, int d, folio_dtype t) {
    const size_t len = (size_t)n * d;
    float *gu = gpu_test_rand(2 * len, -8, 8, t);
    float *gate = folio_xmalloc(sizeof(float) * len), *up = folio_xmalloc(sizeof(float) * len);
    for (int r = 0; r < n; r++)
        for (int i = 0; i < d; i++) {
            gate[(size_t)r * d + i] = gu[(size_t)r * 2 * d + i];
            up[(size_t)r * d + i] = gu[(size_t)r * 2 * d + d + i];
        }
    void *d_gu = gpu_test_to_device(gu, 2 * len, t), *d_out = NULL;
    CUDA_CHECK(cudaMalloc(&d_out, len * dtype_size(t)));
    CUDA_CHECK(cudaMemset(d_out, 0x7f, len * dtype_size(t)));
    silu_mul_cuda(d_out, d_gu, n, d, t, 0);
    float *got = folio_xmalloc(sizeof(float) * len), *want = folio_xmalloc(sizeof(float) * len);
    gpu_test_from_device(got, d_out, len, t);
    silu_mul_cpu(want, gate, up, n, d);
    gpu_test_round(want, len, t);
    char what[64];
    snprintf(what, sizeof what, "%s n=%d d=%d", dtype_name(t), n, d);
    /* float32: expf vs the GPU's expf differ by an ulp or two; 16-bit: one rounding of the
     * float result on each side, so at most one ulp apart */
    const double rtol = t == DTYPE_F32 ? 1e-6 : t == DTYPE_BF16 ? 1.0 / 128 : 1.0 / 1024;
    assert_int_equal(gpu_test_mismatches(what, got, want, len, 1e-6, rtol), 0);
    CUDA_CHECK(cudaFree(d_out));
    CUDA_CHECK(cudaFree(d_gu));
    free(got);
    free(want);
    free(gate);
    free(up);
    free(gu);
}

static void test_silu_mul(void **state) {
    (void)state;
    const folio_dtype types[] = {DTYPE_F32, DTYPE_BF16, DTYPE_F16};
    for (int i = 0; i < 3; i++) {
        check_case(1, 1, types[i]);
        check_case(3, 7, types[i]);
        check_case(5, 96, types[i]);
        check_case(2, 14336, types[i]);
        check_case(37, 1000, types[i]);
    }
}

/* silu_mul_fp8_cuda against silu_mul_cuda + fp8_quantize_act_cuda on the same gate_up: out
 * bit for bit, and the e4m3 bytes and scales (per token, a zero row included; static with
 * saturating values). */
static void check_fp8_case(int n, int d, folio_dtype t, fp8_act act) {
    const size_t len = (size_t)n * d;
    float *gu = gpu_test_rand(2 * len, -8, 8, t);
    if (act == FP8_ACT_TOKEN)
        for (int i = 0; i < 2 * d; i++) gu[i] = 0.f; /* a zero row: scale 1 */
    const float input_scale = 1.0f / 64; /* |out| up to ~64: some values saturate */
    void *d_gu = gpu_test_to_device(gu, 2 * len, t), *d_out = NULL, *d_out2 = NULL;
    uint8_t *d_q = NULL;
    float *d_s = NULL;
    CUDA_CHECK(cudaMalloc(&d_out, len * dtype_size(t)));
    CUDA_CHECK(cudaMalloc(&d_out2, len * dtype_size(t)));
    CUDA_CHECK(cudaMalloc((void **)&d_q, len));
    CUDA_CHECK(cudaMalloc((void **)&d_s, sizeof(float) * (size_t)n));
    silu_mul_fp8_cuda(d_out, d_gu, n, d, t, d_q, d_s, act, input_scale, NULL, 0);
    silu_mul_cuda(d_out2, d_gu, n, d, t, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
    char what[96];
    snprintf(what, sizeof what, "silu_mul_fp8 %s n=%d d=%d %s", dtype_name(t), n, d,
             act == FP8_ACT_TOKEN ? "token" : "static");
    assert_int_equal(gpu_test_bits_diff(d_out, d_out2, len, t), 0);
    assert_int_equal(gpu_test_fp8_quant_diff(what, d_out, d_q, d_s, n, d, t, act, input_scale), 0);
    void *dev[] = {d_gu, d_out, d_out2, d_q, d_s};
    for (int i = 0; i < 5; i++) CUDA_CHECK(cudaFree(dev[i]));
    free(gu);
}

/* silu_mul_fp8_cuda taking gate_up unscaled with its FP8 product's scales (fp8_out_scale;
 * the token scales in the very buffer the kernel writes its own to, as the forward does)
 * against fp8_rescale_rows_cuda, then silu_mul_fp8_cuda: out, bytes and scales bit for bit. */
static void check_fp8_scaled_case(int n, int d, folio_dtype t, fp8_act act) {
    const size_t len = (size_t)n * d;
    float *gu = gpu_test_rand(2 * len, -4, 4, t);
    float *ws = gpu_test_rand((size_t)2 * d, 0.25f, 2.f, DTYPE_F32);
    float *xs = gpu_test_rand((size_t)n, 0.125f, 1.f, DTYPE_F32);
    void *d_gu = gpu_test_to_device(gu, 2 * len, t), *d_gu2 = gpu_test_to_device(gu, 2 * len, t);
    float *d_ws = gpu_test_to_device(ws, (size_t)2 * d, DTYPE_F32);
    float *d_xs2 = gpu_test_to_device(xs, (size_t)n, DTYPE_F32);
    gpu_test_fp8_out a, b;
    gpu_test_fp8_out_pair(&a, &b, len, n, t, d_xs2);
    const fp8_out_scale sc = {.ws = d_ws, .xs = a.s};
    const float input_scale = 1.0f / 64;
    silu_mul_fp8_cuda(a.out, d_gu, n, d, t, a.q, a.s, act, input_scale, &sc, 0);
    fp8_rescale_rows_cuda(d_gu2, d_ws, d_xs2, NULL, n, 2 * d, t, 0);
    silu_mul_fp8_cuda(b.out, d_gu2, n, d, t, b.q, b.s, act, input_scale, NULL, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
    assert_int_equal(gpu_test_fp8_out_diff(&a, &b, len, n, t), 0);
    gpu_test_fp8_out_free(&a);
    gpu_test_fp8_out_free(&b);
    void *dev[] = {d_gu, d_gu2, d_ws, d_xs2};
    for (int i = 0; i < 4; i++) CUDA_CHECK(cudaFree(dev[i]));
    free(gu);
    free(ws);
    free(xs);
}

static void test_silu_mul_fp8(void **state) {
    (void)state;
    /* 1001: the one-element path (d not a multiple of 8) */
    static const int shapes[][2] = {{1, 16}, {3, 1000}, {3, 1001}, {5, 14336}, {2, 28672},
                                    {64, 4864}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int a = 0; a < 2; a++) {
            const fp8_act act = a ? FP8_ACT_STATIC : FP8_ACT_TOKEN;
            check_fp8_case(shapes[i][0], shapes[i][1], DTYPE_BF16, act);
            check_fp8_case(shapes[i][0], shapes[i][1], DTYPE_F16, act);
            check_fp8_scaled_case(shapes[i][0], shapes[i][1], DTYPE_BF16, act);
            check_fp8_scaled_case(shapes[i][0], shapes[i][1], DTYPE_F16, act);
        }
}

typedef struct {
    void *out, *gu;
    int n, d;
} bench_args;

static void run_bench(void *p) {
    bench_args *a = p;
    silu_mul_cuda(a->out, a->gu, a->n, a->d, DTYPE_BF16, 0);
}

static void bench(void) {
    const int ns[] = {1, 64, 2048};
    for (int i = 0; i < 3; i++) {
        bench_args a = {.n = ns[i], .d = 14336};
        const size_t len = (size_t)a.n * a.d;
        float *h = gpu_test_rand(2 * len, -4, 4, DTYPE_BF16);
        a.gu = gpu_test_to_device(h, 2 * len, DTYPE_BF16);
        CUDA_CHECK(cudaMalloc(&a.out, len * 2));
        const double ms = gpu_test_time_ms(run_bench, &a, 3, 20);
        printf("bench silu_mul_cuda bfloat16 n=%d d=%d: median %.4f ms (%.0f GB/s)\n", a.n, a.d,
               ms, 3.0 * len * 2 / (ms * 1e-3) * 1e-9);
        CUDA_CHECK(cudaFree(a.out));
        CUDA_CHECK(cudaFree(a.gu));
        free(h);
    }
}

int main(void) {
    if (gpu_test_skip()) return 77;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_silu_mul),
                                       cmocka_unit_test(test_silu_mul_fp8)};
    const int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (!failed && gpu_test_bench_enabled()) bench();
    return failed;
}
#endif
