/* Check and timing of the FP8 kernels (kernels/gemm/fp8.cu, gemm_fp8.c) against their CPU
 * twins (kernels/gemm/fp8_cpu.c):
 *   - fp8_quantize_act_cuda = fp8_act_quant_cpu: every byte and every scale, per token, per
 *     128-column group and static, bf16 and fp16 inputs, rows with zeros and outliers;
 *   - fp8_linear_cuda (GEMV at small n, cuBLASLt on n & ~7 tokens and the GEMV for the rest)
 *     against fp8_gemm_cpu: per-channel weights with per-token and static activations, 128 x
 *     128 block weights with group activations (block rows padded on the device), with and
 *     without bias, odd row counts, model-sized and the widest inputs; activations spread
 *     over powers of two per token and group, so a scale applied to the wrong token or group
 *     shows. The output is poisoned (NaN) first: an element left unwritten fails. Where the
 *     GEMV takes all n tokens, its fused form (fp8_gemv_x_cuda, quantizing inside) must give
 *     the same bits as fp8_quantize_act_cuda + fp8_gemv_cuda; fp8_linear_ex_cuda with its
 *     scales handed over, rescaled after, the same bits too; where a GEMM reads quantized
 *     input, fp8_linear_prequantized_cuda on it must give fp8_linear_cuda's bits.
 * Then (unless FOLIO_BENCH=0) the bench: the 8B/70B projection shapes, n = 1 .. 4096: median
 * microseconds per call (back-to-back, weights rotated over >= 3x L2) of the whole FP8 product
 * (activation quantization included) and of the bf16 product (gemm_run) on the same shape,
 * GB/s of the FP8 weight bytes against the device copy rate at n <= 4, TFLOP/s at n >= 256;
 * beside them Folio's own GEMM (fp8_mma_cuda) at n >= 8, and the chosen GEMM alone on input
 * quantized before (what activation quantization costs). FOLIO_BENCH=only: the bench alone.
 * Skips (77) without a GPU. */
#include <stdio.h>

#ifndef FOLIO_HAVE_CUDA
int main(void) {
    printf("SKIPPED: no CUDA device (built without CUDA)\n");
    return 77;
}
#else

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cuda_check.h"
#include "error.h"
#include "fp8_layout.h"
#include "gemm.h"
#include "gpu_test_util.h"
#include "kernels_cpu.h"
#include "kernels_cuda.h"

static gemm_ctx *g_gemm;

/* A random FP8 weight: e4m3 of N(0,1)-ish values times 100 (a spread of exponents), scales
 * near 1/100 per channel or per block. Host copy h, device copy d. */
typedef struct {
    fp8_matrix h, d;
} fp8_pair;

static int act_groups(int k) { return (k + FP8_ACT_GROUP_SIZE - 1) / FP8_ACT_GROUP_SIZE; }

static void *to_dev(const void *h, size_t bytes) {
    void *d = NULL;
    CUDA_CHECK(cudaMalloc(&d, bytes ? bytes : 16));
    if (bytes) CUDA_CHECK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
    return d;
}

static void pair_make(fp8_pair *p, int rows, int cols, fp8_weight_scale kind, fp8_act act) {
    fp8_matrix *h = &p->h;
    *h = (fp8_matrix){.rows = rows, .cols = cols, .kind = kind, .block_rows = 128,
                      .block_cols = 128, .act = act,
                      .input_scale = act == FP8_ACT_STATIC ? 0.004f : 0.f};
    const size_t n = (size_t)rows * cols;
    h->w = folio_xmalloc(n);
    for (size_t i = 0; i < n; i++) {
        const float v = (gpu_test_urand(-1, 1) + gpu_test_urand(-1, 1)) * 150.0f;
        h->w[i] = fp8_e4m3_from_float(v);
    }
    const int ns = fp8_scale_count(h);
    h->scale = folio_xmalloc(sizeof(float) * (size_t)ns);
    for (int i = 0; i < ns; i++) h->scale[i] = gpu_test_urand(0.5f, 1.5f) / 100.0f;
    p->d = *h;
    p->d.w = to_dev(h->w, n);
    if (kind != FP8_W_BLOCK) {
        p->d.scale = to_dev(h->scale, sizeof(float) * (size_t)ns);
        return;
    }
    /* the device's block scales: rows of fp8_block_scale_ld(cols), padded with zeros */
    const int bc = act_groups(cols), ld = fp8_block_scale_ld(cols), br = (rows + 127) / 128;
    float *pad = folio_xcalloc((size_t)br * ld, sizeof(float));
    for (int b = 0; b < br; b++) memcpy(pad + (size_t)b * ld, h->scale + (size_t)b * bc,
                                        sizeof(float) * (size_t)bc);
    p->d.scale = to_dev(pad, sizeof(float) * (size_t)br * ld);
    free(pad);
}

static void pair_free(fp8_pair *p) {
    free(p->h.w);
    free(p->h.scale);
    CUDA_CHECK(cudaFree(p->d.w));
    CUDA_CHECK(cudaFree(p->d.scale));
}

/* The twin's scales (fp8_act_quant_cpu: [n] per token, [n][groups] per group, [1] static)
 * in the GPU's layout ([n]; [groups][n], tokens fastest; static: one per token). */
static void twin_scales_gpu_layout(float *out, const float *a, int n, int k, fp8_act act) {
    const int g = act_groups(k);
    for (int t = 0; t < n; t++) {
        if (act == FP8_ACT_GROUP)
            for (int j = 0; j < g; j++) out[(size_t)j * n + t] = a[(size_t)t * g + j];
        else
            out[t] = act == FP8_ACT_STATIC ? a[0] : a[t];
    }
}

static void check_quantize(int n, int k, fp8_act act, folio_dtype t) {
    float *x = gpu_test_rand((size_t)n * k, -2, 2, t);
    for (int i = 0; i < k; i++) x[i] = 0.f;                 /* a zero row: scale 1 */
    if (n > 1) x[(size_t)k + k / 2] = 300.f;                /* an outlier */
    gpu_test_round(x, (size_t)n * k, t);
    void *d_x = gpu_test_to_device(x, (size_t)n * k, t);
    const size_t ns = act == FP8_ACT_GROUP ? (size_t)n * act_groups(k) : (size_t)n;
    uint8_t *d_q = NULL, *q = folio_xmalloc((size_t)n * k), *wq = folio_xmalloc((size_t)n * k);
    float *d_s = NULL, *s = folio_xmalloc(ns * sizeof(float)), *ws = folio_xmalloc(ns * sizeof(float));
    CUDA_CHECK(cudaMalloc((void **)&d_q, (size_t)n * k));
    CUDA_CHECK(cudaMalloc((void **)&d_s, ns * sizeof(float)));
    fp8_quantize_act_cuda(d_q, d_s, d_x, t, n, k, act, 0.01f, 0);
    CUDA_CHECK(cudaMemcpy(q, d_q, (size_t)n * k, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(s, d_s, ns * sizeof(float), cudaMemcpyDeviceToHost));
    float *tw = folio_xmalloc(sizeof(float) * (size_t)fp8_act_scale_count(act, n, k));
    fp8_act_quant_cpu(wq, tw, x, n, k, act, 0.01f);
    twin_scales_gpu_layout(ws, tw, n, k, act);
    free(tw);
    size_t bad = 0;
    for (size_t i = 0; i < (size_t)n * k; i++)
        if (q[i] != wq[i] && bad++ < 5)
            printf("quantize %s n=%d k=%d act=%d: byte %zu: 0x%02x, want 0x%02x\n",
                   dtype_name(t), n, k, (int)act, i, q[i], wq[i]);
    for (size_t i = 0; i < ns; i++)
        if (s[i] != ws[i] && bad++ < 10)
            printf("quantize %s n=%d k=%d act=%d: scale %zu: %g, want %g\n", dtype_name(t), n, k,
                   (int)act, i, s[i], ws[i]);
    assert_int_equal(bad, 0);
    CUDA_CHECK(cudaFree(d_x));
    CUDA_CHECK(cudaFree(d_q));
    CUDA_CHECK(cudaFree(d_s));
    free(x);
    free(q);
    free(wq);
    free(s);
    free(ws);
}

static void test_quantize(void **state) {
    (void)state;
    const folio_dtype types[] = {DTYPE_BF16, DTYPE_F16};
    for (int ti = 0; ti < 2; ti++)
        for (int act = 0; act < 3; act++) {
            check_quantize(1, 4096, (fp8_act)act, types[ti]);
            check_quantize(7, 640, (fp8_act)act, types[ti]);
            check_quantize(33, 14336, (fp8_act)act, types[ti]);
            check_quantize(3, 200, (fp8_act)act, types[ti]); /* a partial group */
            check_quantize(2, 32768, (fp8_act)act, types[ti]); /* past the held packs */
            check_quantize(3, 204, (fp8_act)act, types[ti]);   /* k % 8 != 0: the scalar path */
        }
}

/* Activations with a spread of magnitudes: each token and each 128-column group times a
 * random power of two (2^-6 .. 2^6), so per-token and per-group scales differ widely and a
 * scale applied to the wrong token or group shows. */
static float *spread_x(int n, int cols, folio_dtype t) {
    float *x = gpu_test_rand((size_t)n * cols, -1, 1, t);
    for (int r = 0; r < n; r++) {
        const float tok = ldexpf(1.f, (int)gpu_test_urand(-3, 4));
        for (int g = 0; g < act_groups(cols); g++) {
            const float f = tok * ldexpf(1.f, (int)gpu_test_urand(-3, 4));
            for (int c = g * 128; c < cols && c < (g + 1) * 128; c++) x[(size_t)r * cols + c] *= f;
        }
    }
    gpu_test_round(x, (size_t)n * cols, t); /* exact: powers of two */
    return x;
}

/* Outputs off by more than 1% of their token's largest (16-bit output rounding, fast
 * accumulation), counted and reported. */
static size_t mismatches(const char *what, const float *got, const float *want, int n,
                         int rows) {
    size_t bad = 0;
    for (int r = 0; r < n; r++) {
        double peak = 0;
        for (int c = 0; c < rows; c++) peak = fmax(peak, fabs(want[(size_t)r * rows + c]));
        bad += gpu_test_mismatches(what, got + (size_t)r * rows, want + (size_t)r * rows,
                                   (size_t)rows, 0.01 * peak, 0.01);
    }
    return bad;
}

static int g_deferred; /* products whose scales fp8_linear_ex_cuda handed over */

static void check_product(int rows, int cols, fp8_weight_scale kind, fp8_act act, int n,
                          int bias, folio_dtype t) {
    fp8_pair p;
    pair_make(&p, rows, cols, kind, act);
    float *x = spread_x(n, cols, t);
    float *b = bias ? gpu_test_rand(rows, -0.5f, 0.5f, t) : NULL;
    void *d_x = gpu_test_to_device(x, (size_t)n * cols, t);
    void *d_b = bias ? gpu_test_to_device(b, rows, t) : NULL, *d_y = NULL;
    const size_t ns = act == FP8_ACT_GROUP ? (size_t)n * act_groups(cols) : (size_t)n;
    uint8_t *d_q = NULL;
    float *d_s = NULL;
    CUDA_CHECK(cudaMalloc((void **)&d_q, (size_t)n * cols));
    CUDA_CHECK(cudaMalloc((void **)&d_s, ns * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&d_y, (size_t)n * rows * 2));
    CUDA_CHECK(cudaMemset(d_y, 0xff, (size_t)n * rows * 2)); /* NaN in both 16-bit types */
    fp8_linear_cuda(g_gemm, d_y, d_x, &p.d, d_b, t, n, d_q, d_s, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
    /* the twin quantizes the same x (bit-identical: test_quantize) and sums in double */
    float *got = folio_xmalloc(sizeof(float) * (size_t)n * rows);
    float *want = folio_xmalloc(sizeof(float) * (size_t)n * rows);
    gpu_test_from_device(got, d_y, (size_t)n * rows, t);
    assert_int_equal(fp8_gemm_cpu(want, x, &p.h, b, n), 0);
    char what[160];
    const int per = fp8_gemv_max_tokens(&p.d, t);
    snprintf(what, sizeof what, "fp8 %s rows=%d cols=%d %s/%s n=%d bias=%d (%s)", dtype_name(t),
             rows, cols, kind == FP8_W_BLOCK ? "block" : "channel",
             act == FP8_ACT_GROUP ? "group" : act == FP8_ACT_STATIC ? "static" : "token", n, bias,
             n <= per ? "gemv" : n % 8 ? "GEMM + gemv" : "GEMM");
    assert_int_equal(mismatches(what, got, want, n, rows), 0);
    if (fp8_linear_reads_xq(&p.d, t, n)) { /* input quantized before (the fused norm's way) */
        void *d_y3 = NULL;
        CUDA_CHECK(cudaMalloc(&d_y3, (size_t)n * rows * 2));
        CUDA_CHECK(cudaMemset(d_y3, 0xff, (size_t)n * rows * 2));
        fp8_quantize_act_cuda(d_q, d_s, d_x, t, n, cols, p.d.act, p.d.input_scale, 0);
        fp8_linear_prequantized_cuda(g_gemm, d_y3, d_x, &p.d, d_b, t, n, d_q, d_s, 0);
        CUDA_CHECK(cudaDeviceSynchronize());
        const size_t diff = gpu_test_bits_diff(d_y, d_y3, (size_t)n * rows, t);
        if (diff) fprintf(stderr, "  %s: prequantized input differs in %zu of %zu\n", what, diff,
                          (size_t)n * rows);
        assert_int_equal(diff, 0);
        CUDA_CHECK(cudaFree(d_y3));
    }
    if (n <= per) { /* the fused GEMV against quantize + GEMV: bit for bit */
        void *d_y2 = NULL;
        CUDA_CHECK(cudaMalloc(&d_y2, (size_t)n * rows * 2));
        fp8_quantize_act_cuda(d_q, d_s, d_x, t, n, cols, p.d.act, p.d.input_scale, 0);
        fp8_gemv_cuda(d_y2, d_q, d_s, &p.d, d_b, t, n, 0);
        uint16_t *a = folio_xmalloc((size_t)n * rows * 2), *b2 = folio_xmalloc((size_t)n * rows * 2);
        CUDA_CHECK(cudaMemcpy(a, d_y, (size_t)n * rows * 2, cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(b2, d_y2, (size_t)n * rows * 2, cudaMemcpyDeviceToHost));
        size_t diff = 0;
        for (size_t i = 0; i < (size_t)n * rows; i++) diff += a[i] != b2[i];
        if (diff) fprintf(stderr, "  %s: fused GEMV differs from quantize + GEMV in %zu of %zu\n",
                          what, diff, (size_t)n * rows);
        assert_int_equal(diff, 0);
        free(a);
        free(b2);
        CUDA_CHECK(cudaFree(d_y2));
    }
    { /* fp8_linear_ex_cuda asked to hand its scales over: y left unscaled only where a
       * unit-scale GEMM ran all n tokens with no bias, and then, rescaled, the same bits */
        void *d_y4 = NULL;
        CUDA_CHECK(cudaMalloc(&d_y4, (size_t)n * rows * 2));
        CUDA_CHECK(cudaMemset(d_y4, 0xff, (size_t)n * rows * 2));
        fp8_out_scale def = {NULL, NULL};
        const int deferred =
            fp8_linear_ex_cuda(g_gemm, d_y4, d_x, &p.d, d_b, t, n, d_q, d_s, false, &def, 0);
        if (deferred) {
            assert_true(n % 8 == 0 && !bias && n > per && kind == FP8_W_CHANNEL);
            assert_ptr_equal(def.ws, p.d.scale);
            assert_ptr_equal(def.xs, d_s);
            fp8_rescale_rows_cuda(d_y4, def.ws, def.xs, NULL, n, rows, t, 0);
            g_deferred++;
        }
        CUDA_CHECK(cudaDeviceSynchronize());
        const size_t diff = gpu_test_bits_diff(d_y, d_y4, (size_t)n * rows, t);
        if (diff) fprintf(stderr, "  %s: fp8_linear_ex_cuda (deferred %d) differs in %zu of %zu\n",
                          what, deferred, diff, (size_t)n * rows);
        assert_int_equal(diff, 0);
        CUDA_CHECK(cudaFree(d_y4));
    }
    /* Folio's tensor-core GEMM alone on all n tokens (the block scheme's GEMM where cuBLASLt
     * has none; split-K at small n), against the same twin */
    CUDA_CHECK(cudaMemset(d_y, 0xff, (size_t)n * rows * 2));
    fp8_quantize_act_cuda(d_q, d_s, d_x, t, n, cols, p.d.act, p.d.input_scale, 0);
    size_t ws_bytes;
    void *ws = gemm_workspace(g_gemm, &ws_bytes);
    fp8_mma_cuda(d_y, d_q, d_s, &p.d, d_b, t, n, ws, ws_bytes, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
    gpu_test_from_device(got, d_y, (size_t)n * rows, t);
    snprintf(what + strlen(what) - 1, sizeof what - strlen(what) + 1, ", alone: fp8_mma)");
    assert_int_equal(mismatches(what, got, want, n, rows), 0);
    void *dev[] = {d_x, d_b, d_y, d_q, d_s};
    for (int i = 0; i < 5; i++)
        if (dev[i]) CUDA_CHECK(cudaFree(dev[i]));
    free(x);
    free(b);
    free(got);
    free(want);
    pair_free(&p);
}

static void test_products(void **state) {
    (void)state;
    static const int batches[] = {1, 2, 3, 4, 5, 8, 16, 64, 200};
    static const int shapes[][2] = {{256, 512}, {96, 4096}, {128, 14336}, {1024, 1024}};
    for (size_t si = 0; si < 4; si++)
        for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++) {
            const int r = shapes[si][0], c = shapes[si][1], n = batches[bi];
            check_product(r, c, FP8_W_CHANNEL, FP8_ACT_TOKEN, n, bi % 2, DTYPE_BF16);
            check_product(r, c, FP8_W_CHANNEL, FP8_ACT_STATIC, n, 0, DTYPE_BF16);
            check_product(r, c, FP8_W_BLOCK, FP8_ACT_GROUP, n, bi % 2, DTYPE_BF16);
        }
    /* GEMV only: odd rows, fp16 */
    for (int n = 1; n <= FP8_GEMV_MAX_N; n++) {
        check_product(37, 4096, FP8_W_CHANNEL, FP8_ACT_TOKEN, n, 1, DTYPE_F16);
        check_product(133, 1152, FP8_W_BLOCK, FP8_ACT_GROUP, n, 0, DTYPE_BF16);
    }
    /* block scales whose rows are padded (ceil(cols / 128) not a multiple of 4), through
     * cuBLASLt and its GEMV remainder; the widest inputs (4 chunks a thread: 2 tokens a GEMV) */
    static const int odd[] = {8, 13, 24, 31};
    for (int i = 0; i < 4; i++) {
        check_product(256, 1152, FP8_W_BLOCK, FP8_ACT_GROUP, odd[i], i % 2, DTYPE_BF16);
        check_product(136, 640, FP8_W_BLOCK, FP8_ACT_GROUP, odd[i], 0, DTYPE_F16);
        check_product(64, 28672, FP8_W_CHANNEL, FP8_ACT_TOKEN, odd[i] - 5, 0, DTYPE_BF16);
        check_product(128, 28672, FP8_W_BLOCK, FP8_ACT_GROUP, odd[i] - 5, 1, DTYPE_BF16);
        /* fp16 output of a channel GEMM: the unit-scale sums would overflow fp16 */
        check_product(256, 4096, FP8_W_CHANNEL, FP8_ACT_TOKEN, odd[i], i % 2, DTYPE_F16);
    }
    /* none where cuBLASLt has per-channel x per-token kernels; on an H100 (cuBLASLt 13.1) the
     * bias-free bf16 channel cases at multiples of 8 */
    printf("  fp8_linear_ex_cuda handed its scales over in %d products\n", g_deferred);
}

/* ---- bench ---- */

enum { MAX_COPIES = 48 };

typedef struct {
    int rows, cols, n, copies;
    fp8_matrix w8[MAX_COPIES];
    void *w16[MAX_COPIES];
    void *x, *y;
    uint8_t *xq;
    float *xs;
} bench_case;

static void run_fp8(void *arg, int i) {
    bench_case *c = arg;
    fp8_linear_cuda(g_gemm, c->y, c->x, &c->w8[i], NULL, DTYPE_BF16, c->n,
                    c->xq, c->xs, 0);
}

static void run_mma(void *arg, int i) { /* quantization + Folio's GEMM, whatever cuBLASLt has */
    bench_case *c = arg;
    size_t ws_bytes;
    void *ws = gemm_workspace(g_gemm, &ws_bytes);
    fp8_quantize_act_cuda(c->xq, c->xs, c->x, DTYPE_BF16, c->n, c->cols, c->w8[i].act, 0.f, 0);
    fp8_mma_cuda(c->y, c->xq, c->xs, &c->w8[i], NULL, DTYPE_BF16, c->n, ws, ws_bytes, 0);
}

static void run_gemm_only(void *arg, int i) { /* the chosen GEMM on already quantized input */
    bench_case *c = arg;
    fp8_gemm_cuda(g_gemm, c->y, c->xq, c->xs, &c->w8[i], NULL, DTYPE_BF16, c->n, 0);
}

static void run_bf16(void *arg, int i) {
    bench_case *c = arg;
    gemm_run(g_gemm, c->y, DTYPE_BF16, c->x, c->w16[i], NULL, DTYPE_BF16, c->n,
             c->cols, c->rows, 0);
}

static void bench_shape(const char *name, int rows, int cols, fp8_weight_scale kind,
                        double copy, size_t l2) {
    bench_case c = {.rows = rows, .cols = cols};
    const size_t wbytes = (size_t)rows * cols;
    c.copies = (int)((3 * l2) / wbytes) + 2;
    if (c.copies > MAX_COPIES) c.copies = MAX_COPIES;
    fp8_pair src;
    pair_make(&src, rows, cols, kind, kind == FP8_W_BLOCK ? FP8_ACT_GROUP : FP8_ACT_TOKEN);
    for (int i = 0; i < c.copies; i++) {
        c.w8[i] = src.d;
        CUDA_CHECK(cudaMalloc((void **)&c.w8[i].w, wbytes));
        CUDA_CHECK(cudaMemcpy(c.w8[i].w, src.d.w, wbytes, cudaMemcpyDeviceToDevice));
        CUDA_CHECK(cudaMalloc(&c.w16[i], wbytes * 2));
        CUDA_CHECK(cudaMemset(c.w16[i], 0x3c, wbytes * 2));
    }
    const int max_n = 4096;
    float *hx = gpu_test_rand((size_t)max_n * cols, -1, 1, DTYPE_BF16);
    c.x = gpu_test_to_device(hx, (size_t)max_n * cols, DTYPE_BF16);
    free(hx);
    CUDA_CHECK(cudaMalloc(&c.y, (size_t)max_n * rows * 2));
    CUDA_CHECK(cudaMalloc((void **)&c.xq, (size_t)max_n * cols));
    CUDA_CHECK(cudaMalloc((void **)&c.xs, sizeof(float) * (size_t)max_n * act_groups(cols)));
    static const int ns[] = {1, 2, 4, 8, 16, 64, 256, 1024, 4096};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        c.n = ns[k];
        const double f8 = gpu_test_rotating_us(run_fp8, &c, c.copies);
        const double bf = gpu_test_rotating_us(run_bf16, &c, c.copies);
        const double mma = c.n >= 8 ? gpu_test_rotating_us(run_mma, &c, c.copies) : NAN;
        double gemm = NAN;
        if (c.n >= 8 && c.n % 8 == 0) { /* quantized once: the GEMM (+ rescale) alone */
            fp8_quantize_act_cuda(c.xq, c.xs, c.x, DTYPE_BF16, c.n, cols, c.w8[0].act, 0.f, 0);
            gemm = gpu_test_rotating_us(run_gemm_only, &c, c.copies);
        }
        printf("%-9s %-7s %6d %6d %5d | %9.2f %9.2f %6.2fx | %9.2f %9.2f |", name,
               kind == FP8_W_BLOCK ? "block" : "channel", rows, cols, c.n, f8, bf, bf / f8, mma,
               gemm);
        if (c.n <= FP8_GEMV_MAX_N) {
            const double gbps = (double)wbytes / (f8 * 1e-6) * 1e-9;
            printf(" %6.0f GB/s %5.1f%% of copy", gbps, 100.0 * gbps / copy);
        } else if (c.n >= 256) {
            const double fl = 2.0 * rows * cols * c.n;
            printf(" fp8 %6.0f TFLOP/s, mma %6.0f, bf16 %6.0f", fl / (f8 * 1e-6) * 1e-12,
                   fl / (mma * 1e-6) * 1e-12, fl / (bf * 1e-6) * 1e-12);
        }
        printf("\n");
    }
    for (int i = 0; i < c.copies; i++) {
        CUDA_CHECK(cudaFree(c.w8[i].w));
        CUDA_CHECK(cudaFree(c.w16[i]));
    }
    CUDA_CHECK(cudaFree(c.x));
    CUDA_CHECK(cudaFree(c.y));
    CUDA_CHECK(cudaFree(c.xq));
    CUDA_CHECK(cudaFree(c.xs));
    pair_free(&src);
}

static void bench(void) {
    static const struct {
        const char *name;
        int rows, cols;
    } shapes[] = {{"qkv8B", 6144, 4096},   {"o8B", 4096, 4096},     {"gateup8B", 28672, 4096},
                  {"down8B", 4096, 14336}, {"qkv70B", 10240, 8192}, {"down70B", 8192, 28672}};
    int l2 = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0));
    struct cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    const double copy = gpu_test_copy_gbps();
    printf("\nfp8 bench on %s: bf16 activations, median us per call (weights rotated over >= "
           "3x L2); fp8 = activation quantization + GEMV (n <= %d) or the chosen FP8 GEMM; mma "
           "= quantization + fp8_mma_cuda; gemm = fp8_gemm_cuda alone (input quantized before); "
           "bf16 = gemm_run; copy 2 GiB D2D = %.0f GB/s (read + write)\n", prop.name, FP8_GEMV_MAX_N,
           copy);
    printf("%-9s %-7s %6s %6s %5s | %9s %9s %7s | %9s %9s |\n", "shape", "weights", "rows",
           "cols", "n", "fp8 us", "bf16 us", "bf/fp8", "mma us", "gemm us");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        bench_shape(shapes[i].name, shapes[i].rows, shapes[i].cols, FP8_W_CHANNEL, copy,
                    (size_t)l2);
        if (i == 0 || i == 3)
            bench_shape(shapes[i].name, shapes[i].rows, shapes[i].cols, FP8_W_BLOCK, copy,
                        (size_t)l2);
    }
}

int main(void) {
    if (gpu_test_skip()) return 77;
    g_gemm = gemm_create((size_t)32 << 20);
    if (!g_gemm) {
        fprintf(stderr, "%s\n", folio_last_error());
        return 1;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_quantize),
                                       cmocka_unit_test(test_products)};
    const char *only = getenv("FOLIO_BENCH"); /* "only": the bench without the checks */
    const int failed = only && strcmp(only, "only") == 0 ? 0
                                                          : cmocka_run_group_tests(tests, NULL, NULL);
    if (!failed && gpu_test_bench_enabled()) bench();
    gemm_free(g_gemm);
    return failed ? 1 : 0;
}

#endif
