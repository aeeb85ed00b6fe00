/* Check and timing of the W4A16 kernels (kernels/gemm/w4a16.cu, w4a16_gemm.c) against their
 * CPU twins (w4a16_cpu, w4a16_dequant_cpu), on random quantized matrices: asymmetric random
 * zeros, random fp16 scales, act-order random permutations, group sizes 32, 64, 128 and
 * per-channel, odd row counts, columns a multiple of the group (partial slots, several
 * staging rounds), batches 1..16 (w4a16_gemv_cuda), 17..256 (the tensor-core GEMMs) and above
 * (dequantize + cuBLASLt), bf16 and fp16 activations, with and without bias; and each
 * tensor-core GEMM (mma.sync, the two wgmma ones) called directly on the same kinds of shapes, with and
 * without split-K. The output is poisoned (NaN) before each run, so an element left unwritten
 * fails; NaN never passes.
 *
 * Then (unless FOLIO_BENCH=0) the bench: for the 8B/70B projection shapes and their TP=2/4
 * shards, batches 1 .. 2048: median microseconds per call (CUDA events around a run of
 * back-to-back calls over weight copies rotated to span 3x L2), GB/s of the quantized bytes
 * and % of the device-to-device copy rate, the act-order variant, each wgmma GEMM called
 * directly (from 17 tokens), the same shape's bf16 product through gemm_run (gemv at n = 1,
 * cuBLASLt above) and, at n = 1, cuBLASLt itself; ratios bf16 time / w4a16 time. Skips (77)
 * without a GPU. */
#include <stdio.h>

#ifndef FOLIO_HAVE_CUDA
int main(void) {
    printf("SKIPPED: no CUDA device (built without CUDA)\n");
    return 77;
}
#else

#include <math.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cuda_check.h"
#include "error.h"
#include "gemm.h"
#include "gpu_test_util.h"
#include "kernels_cpu.h"
#include "kernels_cuda.h"
#include "quant_layout.h"

static gemm_ctx *g_gemm;
static uint64_t g_bits = 0x9E3779B97F4A7C15ull;

static uint32_t rand_u32(void) {
    g_bits ^= g_bits >> 12;
    g_bits ^= g_bits << 25;
    g_bits ^= g_bits >> 27;
    return (uint32_t)((g_bits * 0x2545F4914F6CDD1Dull) >> 32);
}

static int rand_int(int lo, int hi) { return lo + (int)(rand_u32() % (uint32_t)(hi - lo + 1)); }

/* A random 4-bit matrix on the host (h), its row-major device copy (d) and the packed
 * tiles the kernels read (t, in tmem). */
typedef struct {
    quant_matrix h, d;
    w4a16_tiles t;
    void *tmem;
} qpair;

static void *to_dev(const void *h, size_t bytes) {
    void *d = NULL;
    CUDA_CHECK(cudaMalloc(&d, bytes ? bytes : 16));
    if (bytes) CUDA_CHECK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
    return d;
}

/* A random permutation of perm[0 .. n-1]'s values. */
static void shuffle(int32_t *perm, int n) {
    for (int c = n - 1; c > 0; c--) {
        const int j = rand_int(0, c), t = perm[c];
        perm[c] = perm[j];
        perm[j] = t;
    }
}

/* Act-order with padding (as an act-order row-parallel shard): the last 0 .. group_size/2
 * kernel columns of each group are padding (perm QL_PAD, q = the group's zero), the others
 * take the in_cols inputs in a random order. */
static void pad_groups(quant_matrix *h) {
    h->in_cols = 0;
    for (int c = 0; c < h->cols; c++) h->perm[c] = QL_PAD;
    for (int g = 0; g < ql_groups(h); g++) {
        const int real = h->group_size - rand_int(0, h->group_size / 2);
        for (int k = 0; k < real; k++) h->perm[g * h->group_size + k] = h->in_cols++;
    }
    int32_t *inputs = folio_xmalloc(sizeof(int32_t) * h->in_cols);
    for (int i = 0; i < h->in_cols; i++) inputs[i] = i;
    shuffle(inputs, h->in_cols);
    for (int c = 0; c < h->cols; c++) {
        if (h->perm[c] == QL_PAD) {
            for (int r = 0; r < h->rows; r++)
                ql_set(h, r, c, h->zeros[(size_t)r * ql_groups(h) + c / h->group_size]);
        } else {
            h->perm[c] = inputs[h->perm[c]];
        }
    }
    free(inputs);
}

/* act_order 0: no perm; 1: a permutation of all columns; 2: with padding (pad_groups). */
static void qpair_make(qpair *p, int rows, int cols, int group_size, int act_order) {
    quant_matrix *h = &p->h;
    *h = (quant_matrix){.rows = rows, .cols = cols, .in_cols = cols, .bits = 4,
                        .group_size = group_size};
    const size_t words = (size_t)rows * ql_words_per_row(h), groups = (size_t)rows * ql_groups(h);
    h->qweight = folio_xmalloc(words * 4);
    h->scales = folio_xmalloc(groups * 2);
    h->zeros = folio_xmalloc(groups);
    for (size_t i = 0; i < words; i++) h->qweight[i] = rand_u32();
    for (size_t i = 0; i < groups; i++) {
        h->scales[i] = f32_to_f16(gpu_test_urand(0.002f, 0.02f));
        h->zeros[i] = (uint8_t)(rand_u32() & 15u);
    }
    h->perm = NULL;
    if (act_order) {
        h->perm = folio_xmalloc(sizeof(int32_t) * cols);
        for (int c = 0; c < cols; c++) h->perm[c] = c;
        shuffle(h->perm, cols);
        if (act_order == 2) pad_groups(h);
    }
    p->d = *h;
    p->d.qweight = to_dev(h->qweight, words * 4);
    p->d.scales = to_dev(h->scales, groups * 2);
    p->d.zeros = to_dev(h->zeros, groups);
    p->d.perm = h->perm ? to_dev(h->perm, sizeof(int32_t) * cols) : NULL;
    CUDA_CHECK(cudaMalloc(&p->tmem, w4a16_tiles_bytes(&p->d)));
    w4a16_pack_cuda(&p->t, p->tmem, &p->d, 0);
}

static void qpair_free(qpair *p) {
    free(p->h.qweight);
    free(p->h.scales);
    free(p->h.zeros);
    free(p->h.perm);
    CUDA_CHECK(cudaFree(p->d.qweight));
    CUDA_CHECK(cudaFree(p->d.scales));
    CUDA_CHECK(cudaFree(p->d.zeros));
    if (p->d.perm) CUDA_CHECK(cudaFree(p->d.perm));
    CUDA_CHECK(cudaFree(p->tmem));
}

/* Fails the test unless got matches want: no NaN (unwritten), relative L2 error <= tol and
 * every element within 2% of the largest |want|. */
static void expect_close(const char *what, const float *got, const float *want, size_t n,
                         double tol) {
    double num = 0, den = 0, peak = 0;
    size_t nan = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(got[i])) nan++;
        const double d = (double)got[i] - want[i];
        num += d * d;
        den += (double)want[i] * want[i];
        if (fabs(want[i]) > peak) peak = fabs(want[i]);
    }
    const double err = sqrt(num / (den > 0 ? den : 1));
    const size_t bad = gpu_test_mismatches(what, got, want, n, 0.02 * peak + 1e-6, 0);
    if (nan || bad || !(err <= tol))
        fail_msg("%s: rel L2 error %.3g (tol %.1g), %zu NaN/unwritten, %zu far off", what, err,
                 tol, nan, bad);
}

/* Which entry a check calls: the dispatcher, or one tensor-core GEMM directly (with the
 * scratch as split-K workspace, or with none). */
typedef enum { VIA_GEMM, VIA_MMA, VIA_WGMMA, VIA_WGMMA_NO_SPLIT, VIA_WS, VIA_WS_NO_SPLIT } via;

static const char *via_name(via v) {
    static const char *names[] = {"w4a16_gemm_cuda", "mma",   "wgmma",
                                   "wgmma-no-split",  "ws",    "ws-no-split"};
    return names[v];
}

static void run_via(via v, void *d_y, const void *d_x, const w4a16_tiles *m, const void *d_b,
                    folio_dtype t, int n, void *scratch, size_t scratch_bytes) {
    switch (v) {
    case VIA_GEMM: w4a16_gemm_cuda(g_gemm, d_y, d_x, m, d_b, t, n, scratch, 0); break;
    case VIA_MMA: w4a16_mma_cuda(d_y, d_x, m, d_b, t, n, scratch, scratch_bytes, 0); break;
    case VIA_WGMMA: w4a16_wgmma_cuda(d_y, d_x, m, d_b, t, n, scratch, scratch_bytes, 0); break;
    case VIA_WGMMA_NO_SPLIT: w4a16_wgmma_cuda(d_y, d_x, m, d_b, t, n, NULL, 0, 0); break;
    case VIA_WS: w4a16_wgmma_ws_cuda(d_y, d_x, m, d_b, t, n, scratch, scratch_bytes, 0); break;
    case VIA_WS_NO_SPLIT: /* a workspace for x alone: no room for partials */
        w4a16_wgmma_ws_cuda(d_y, d_x, m, d_b, t, n, scratch, w4a16_wgmma_ws_workspace(m, n), 0);
        break;
    }
}

/* One product at batch n through `v` against the twin. */
static void check_via(via v, int rows, int cols, int group_size, int n, int act_order, int bias,
                      folio_dtype t) {
    qpair q;
    qpair_make(&q, rows, cols, group_size, act_order);
    const int in_cols = q.h.in_cols;
    float *x = gpu_test_rand((size_t)n * in_cols, -1, 1, t);
    float *b = bias ? gpu_test_rand(rows, -0.1f, 0.1f, t) : NULL;
    void *d_x = gpu_test_to_device(x, (size_t)n * in_cols, t);
    void *d_b = bias ? gpu_test_to_device(b, rows, t) : NULL, *d_y = NULL, *scratch = NULL;
    CUDA_CHECK(cudaMalloc(&d_y, (size_t)n * rows * 2));
    CUDA_CHECK(cudaMemset(d_y, 0xff, (size_t)n * rows * 2)); /* NaN in bf16 and fp16 */
    /* the warp-specialized GEMM needs room for x reordered (without split-K: that alone) */
    const size_t ws_x = v == VIA_WS || v == VIA_WS_NO_SPLIT ? w4a16_wgmma_ws_workspace(&q.t, n) : 0;
    const size_t scratch_bytes = v == VIA_WS_NO_SPLIT ? ws_x : (size_t)rows * in_cols * 2 + ws_x;
    if (n > W4A16_GEMV_MAX_N || v != VIA_GEMM) CUDA_CHECK(cudaMalloc(&scratch, scratch_bytes));
    run_via(v, d_y, d_x, &q.t, d_b, t, n, scratch, scratch_bytes);
    CUDA_CHECK(cudaDeviceSynchronize());
    float *got = folio_xmalloc(sizeof(float) * n * rows), *want = folio_xmalloc(sizeof(float) * n * rows);
    gpu_test_from_device(got, d_y, (size_t)n * rows, t);
    assert_int_equal(w4a16_cpu(want, x, &q.h, b, n), 0);
    char what[128];
    snprintf(what, sizeof what,
             "w4a16 %s %s rows=%d cols=%d in_cols=%d group=%d n=%d act_order=%d bias=%d",
             via_name(v), dtype_name(t), rows, cols, in_cols, group_size, n, act_order, bias);
    expect_close(what, got, want, (size_t)n * rows, t == DTYPE_BF16 ? 8e-3 : 2e-3);
    void *dev[] = {d_x, d_b, d_y, scratch};
    for (int i = 0; i < 4; i++)
        if (dev[i]) CUDA_CHECK(cudaFree(dev[i]));
    free(x);
    free(b);
    free(got);
    free(want);
    qpair_free(&q);
}

static void check_product(int rows, int cols, int group_size, int n, int act_order, int bias,
                          folio_dtype t) {
    check_via(VIA_GEMM, rows, cols, group_size, n, act_order, bias, t);
}

static const int k_groups[] = {32, 64, 128, 0}; /* 0: per-channel (group = cols) */
static const int k_batches[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 40, 64, 256, 300};

/* Every group size x batch x dtype, random odd shapes, act-order (every other one padded) and
 * bias on alternate cases. */
static void test_products_random(void **state) {
    (void)state;
    const folio_dtype types[] = {DTYPE_BF16, DTYPE_F16};
    int k = 0;
    for (int ti = 0; ti < 2; ti++)
        for (int gi = 0; gi < 4; gi++)
            for (size_t bi = 0; bi < sizeof k_batches / sizeof k_batches[0]; bi++, k++) {
                const int unit = k_groups[gi] ? k_groups[gi] : 32;
                int cols = unit * rand_int(1, 5000 / unit);
                const int gs = k_groups[gi] ? k_groups[gi] : cols;
                const int rows = rand_int(1, 300) | 1;
                const int act = k % 2 ? 1 + (k / 2) % 2 : 0;
                check_product(rows, cols, gs, k_batches[bi], act, k % 3 == 0, types[ti]);
            }
}

/* Model-sized and edge shapes: one row, a partial last slot (cols % 128 == 32), several
 * staging rounds with a partial one (14336 = 3.5 rounds), rows off the 16-row tile. */
static void test_products_edges(void **state) {
    (void)state;
    static const int cases[][4] = {/* rows, cols, group, act_order (2: padded) */
                                   {1, 32, 32, 0},       {1, 4096, 128, 1},
                                   {17, 160, 32, 1},     {33, 4096 + 32, 32, 0},
                                   {4096 + 7, 4096, 128, 0}, {40, 14336, 128, 1},
                                   {23, 8192, 64, 0},    {16, 3584, 3584, 1},
                                   {250, 4224, 128, 1},  {1537, 2048, 128, 0},
                                   {1, 64, 32, 2},       {40, 14336, 128, 2},
                                   {17, 160, 32, 2},     {16, 3584, 3584, 2}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int n = 1; n <= 16; n += n == 1 ? 8 : 7) {
            check_product(cases[i][0], cases[i][1], cases[i][2], n, cases[i][3], 0, DTYPE_BF16);
            check_product(cases[i][0], cases[i][1], cases[i][2], n, cases[i][3], 1, DTYPE_F16);
        }
}

/* Each tensor-core GEMM called directly: every group size, batches across both tile widths of
 * each wgmma GEMM (and past one block), rows off the 128- and 256-row blocks and the 16-row stripe,
 * columns with a partial last tile, one tile only, and model sizes that split K. */
static void test_products_gemm(void **state) {
    (void)state;
    static const int ns[] = {17, 33, 64, 65, 128, 129, 200, 256};
    static const int shapes[][3] = {/* rows, cols, group (0: per-channel) */
                                    {300, 4096, 128}, {1, 64, 32},     {257, 96, 32},
                                    {2048, 4096, 128}, {40, 14336, 64}, {513, 3584, 0},
                                    {16, 4160, 64},   {1537, 2048, 32}};
    /* FOLIO_W4A16_QUICK=1: the first three shapes (for compute-sanitizer's slow runs) */
    const char *quick = getenv("FOLIO_W4A16_QUICK");
    const size_t n_shapes = quick && quick[0] == '1' ? 3 : sizeof shapes / sizeof shapes[0];
    int k = 0;
    for (size_t si = 0; si < n_shapes; si++)
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++, k++) {
            const int cols = shapes[si][1], gs = shapes[si][2] ? shapes[si][2] : cols;
            const folio_dtype t = k % 2 ? DTYPE_F16 : DTYPE_BF16;
            if (ns[ni] <= W4A16_MMA_MAX_N)
                check_via(VIA_MMA, shapes[si][0], cols, gs, ns[ni], 0, k % 3 == 0, t);
            check_via(k % 4 == 3 ? VIA_WGMMA_NO_SPLIT : VIA_WGMMA, shapes[si][0], cols, gs,
                      ns[ni], 0, k % 3 == 0, t);
            check_via(k % 4 == 1 ? VIA_WS_NO_SPLIT : VIA_WS, shapes[si][0], cols, gs, ns[ni], 0,
                      k % 3 == 1, t);
        }
}

/* w4a16_dequant_cuda = w4a16_dequant_cpu rounded to the dtype, bit for bit. */
static void test_dequant(void **state) {
    (void)state;
    const folio_dtype types[] = {DTYPE_BF16, DTYPE_F16};
    for (int ti = 0; ti < 2; ti++)
        for (int act = 0; act < 3; act++) {
            const int rows = 37, cols = 640, gs = act ? 64 : 128;
            qpair q;
            qpair_make(&q, rows, cols, gs, act);
            const size_t n = (size_t)rows * q.h.in_cols;
            void *d_w = NULL;
            CUDA_CHECK(cudaMalloc(&d_w, n * 2));
            CUDA_CHECK(cudaMemset(d_w, 0xff, n * 2));
            w4a16_dequant_cuda(d_w, &q.t, types[ti], 0);
            float *got = folio_xmalloc(sizeof(float) * n), *want = folio_xmalloc(sizeof(float) * n);
            gpu_test_from_device(got, d_w, n, types[ti]);
            w4a16_dequant_cpu(want, &q.h);
            gpu_test_round(want, n, types[ti]);
            assert_int_equal(gpu_test_mismatches("dequant", got, want, n, 0, 0), 0);
            CUDA_CHECK(cudaFree(d_w));
            free(got);
            free(want);
            qpair_free(&q);
        }
}

/* ---- bench ---- */

enum { MAX_COPIES = 64 };

typedef struct {
    int rows, cols, n, copies;
    w4a16_tiles q[MAX_COPIES];  /* device tiles; copies share meta/perm */
    void *w[MAX_COPIES];        /* bf16 copies */
    void *x, *y, *scratch;
    size_t scratch_bytes;       /* the dequantized matrix, or x reordered + split-K partials */
} bench_case;

static void run_w4(void *p, int i) {
    bench_case *c = p;
    w4a16_gemm_cuda(g_gemm, c->y, c->x, &c->q[i], NULL, DTYPE_BF16, c->n, c->scratch, 0);
}

static void run_wgmma(void *p, int i) {
    bench_case *c = p;
    w4a16_wgmma_cuda(c->y, c->x, &c->q[i], NULL, DTYPE_BF16, c->n, c->scratch,
                     c->scratch_bytes, 0);
}

static void run_ws(void *p, int i) {
    bench_case *c = p;
    w4a16_wgmma_ws_cuda(c->y, c->x, &c->q[i], NULL, DTYPE_BF16, c->n, c->scratch,
                        c->scratch_bytes, 0);
}

static void run_dequant_lt(void *p, int i) {
    bench_case *c = p;
    w4a16_dequant_cuda(c->scratch, &c->q[i], DTYPE_BF16, 0);
    gemm_run(g_gemm, c->y, DTYPE_BF16, c->x, c->scratch, NULL, DTYPE_BF16, c->n, c->cols,
             c->rows, 0);
}

static void run_bf16(void *p, int i) {
    bench_case *c = p;
    gemm_run(g_gemm, c->y, DTYPE_BF16, c->x, c->w[i], NULL, DTYPE_BF16, c->n, c->cols, c->rows, 0);
}

static int copies_for(size_t bytes, size_t l2) {
    const size_t k = (3 * l2 + bytes - 1) / bytes;
    return k < 2 ? 2 : k > MAX_COPIES ? MAX_COPIES : (int)k;
}

typedef struct {
    const char *name;
    int rows, cols;
} bench_shape;

/* Rows of one shape (all batches); returns how many n = 1 rows met 3.6x over cuBLASLt. */
static int bench_shape_rows(const bench_shape *s, size_t l2, double copy) {
    const int group = 128, groups = s->cols / group;
    const size_t qbytes = (size_t)s->rows * s->cols / 2, sbytes = (size_t)s->rows * groups;
    const size_t wbytes = (size_t)s->rows * s->cols * 2;
    bench_case c = {.rows = s->rows, .cols = s->cols};
    /* one random matrix, copied: qweight per copy, shared scales/zeros/perm (small) */
    qpair src;
    qpair_make(&src, s->rows, s->cols, group, 1);
    const int wq = copies_for(qbytes + 3 * sbytes, l2), wb = copies_for(wbytes, l2);
    c.copies = wq;
    for (int i = 0; i < wq; i++) {
        c.q[i] = src.t;
        c.q[i].perm = NULL;
        c.q[i].xg = NULL;
        c.q[i].in_cols = s->cols;
        const size_t tb = (size_t)src.t.stripes * src.t.ktiles * 512;
        CUDA_CHECK(cudaMalloc((void **)&c.q[i].tiles, tb));
        CUDA_CHECK(cudaMemcpy(c.q[i].tiles, src.t.tiles, tb, cudaMemcpyDeviceToDevice));
    }
    for (int i = 0; i < wb; i++) {
        CUDA_CHECK(cudaMalloc(&c.w[i], wbytes));
        fill_cuda(c.w[i], (int64_t)s->rows * s->cols, 0.01f, DTYPE_BF16, 0);
    }
    const int max_n = 2048;
    float *hx = gpu_test_rand((size_t)max_n * s->cols, -1, 1, DTYPE_BF16);
    c.x = gpu_test_to_device(hx, (size_t)max_n * s->cols, DTYPE_BF16);
    free(hx);
    CUDA_CHECK(cudaMalloc(&c.y, (size_t)max_n * s->rows * 2));
    c.scratch_bytes = wbytes + (size_t)max_n * s->cols * 2 + 256;
    CUDA_CHECK(cudaMalloc(&c.scratch, c.scratch_bytes));
    static const int ns[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 2048};
    /* FOLIO_W4A16_BENCH_MAX_N=N: batches up to N only (e.g. 16: the GEMV's) */
    const char *max_env = getenv("FOLIO_W4A16_BENCH_MAX_N");
    const int max_bench_n = max_env && atoi(max_env) > 0 ? atoi(max_env) : max_n;
    int met = 0;
    for (size_t k = 0; k < sizeof ns / sizeof ns[0] && ns[k] <= max_bench_n; k++) {
        c.n = ns[k];
        const double w4 = gpu_test_rotating_us(run_w4, &c, wq);
        double ao = 0;
        if (c.n <= W4A16_GEMV_MAX_N) {
            for (int i = 0; i < wq; i++) c.q[i].perm = src.t.perm, c.q[i].xg = src.t.xg;
            ao = gpu_test_rotating_us(run_w4, &c, wq);
            for (int i = 0; i < wq; i++) c.q[i].perm = NULL, c.q[i].xg = NULL;
        } else {
            ao = gpu_test_rotating_us(run_dequant_lt, &c, wq);
        }
        /* each wgmma GEMM on its own, in and past its default range */
        const bool has_alt = c.n >= W4A16_WGMMA_MIN_N;
        const double alt = has_alt ? gpu_test_rotating_us(run_wgmma, &c, wq) : NAN;
        const double ws = has_alt ? gpu_test_rotating_us(run_ws, &c, wq) : NAN;
        const double bf = gpu_test_rotating_us(run_bf16, &c, wb);
        double lt = 0;
        if (c.n == 1) {
            gemm_set_gemv(g_gemm, false);
            lt = gpu_test_rotating_us(run_bf16, &c, wb);
            gemm_set_gemv(g_gemm, true);
            met += lt / w4 >= 3.6;
        }
        const double bytes = (double)qbytes + 3.0 * sbytes + 2.0 * c.n * (s->cols + s->rows);
        const double gbps = bytes / (w4 * 1e-6) * 1e-9;
        printf("%-10s %6d %6d %4d | %8.2f %6.0f %5.1f%% | %8.2f | %8.2f %8.2f | %8.2f %-4s "
               "%5.2fx",
               s->name, s->rows, s->cols, c.n, w4, gbps, 100.0 * gbps / copy, ao, alt, ws, bf,
               c.n == 1 ? "gemv" : "lt", bf / w4);
        if (c.n == 1) printf(" | %8.2f %5.2fx", lt, lt / w4);
        /* issue #12's batch targets: 2.5x bf16 at 16, within 10% of it at 64..256 */
        if (c.n == 16) printf("  %s", bf / w4 >= 2.5 ? "target met" : "target MISSED");
        if (c.n >= 64 && c.n <= 256) printf("  %s", bf / w4 >= 0.9 ? "target met" : "target MISSED");
        printf("\n");
    }
    for (int i = 0; i < wq; i++) CUDA_CHECK(cudaFree(c.q[i].tiles));
    for (int i = 0; i < wb; i++) CUDA_CHECK(cudaFree(c.w[i]));
    CUDA_CHECK(cudaFree(c.x));
    CUDA_CHECK(cudaFree(c.y));
    CUDA_CHECK(cudaFree(c.scratch));
    qpair_free(&src);
    return met;
}

static void bench(void) {
    static const bench_shape shapes[] = {
        {"qkv8B", 6144, 4096},     {"qkv8B/2", 3072, 4096},   {"qkv8B/4", 1536, 4096},
        {"gateup8B", 28672, 4096}, {"gateup/2", 14336, 4096}, {"gateup/4", 7168, 4096},
        {"down8B", 4096, 14336},   {"down/2", 4096, 7168},    {"down/4", 4096, 3584},
        {"qkv70B", 10240, 8192},   {"qkv70B/2", 5120, 8192},  {"qkv70B/4", 2560, 8192}};
    int l2 = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0));
    struct cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    const double copy = gpu_test_copy_gbps();
    printf("\nw4a16 bench on %s: bf16 activations, group 128, median us per call over "
           "back-to-back calls (weights rotated over >= 3x L2); copy 2 GiB D2D = %.0f GB/s "
           "(read + write)\n", prop.name, copy);
    printf("GB/s: 4-bit weights + fp16 scales + zeros + x + y; ao: act-order (n <= %d), else "
           "dequantize + cuBLASLt; wg: the first wgmma GEMM, ws: the warp-specialized one (each "
           "called directly); bf16: gemm_run (gemv n=1, cuBLASLt above); w4a16: "
           "w4a16_gemm_cuda (GEMV n <= %d, wg below %d, ws to %d, dequantize + cuBLASLt "
           "above)\n",
           W4A16_GEMV_MAX_N, W4A16_GEMV_MAX_N, W4A16_WS_MIN_N, W4A16_WGMMA_MAX_N);
    printf("%-10s %6s %6s %4s | %8s %6s %6s | %8s | %8s %8s | %8s %-4s %6s | %8s %6s\n",
           "shape", "rows", "cols", "n", "w4a16us", "GB/s", "%copy", "ao us", "wg us", "ws us",
           "bf16 us", "path", "bf/w4", "lt us", "lt/w4");
    int met = 0, total = 0;
    /* FOLIO_W4A16_BENCH_SHAPE=NAME: that shape only (e.g. gateup8B) */
    const char *only = getenv("FOLIO_W4A16_BENCH_SHAPE");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        if (only && only[0] && strcmp(only, shapes[i].name) != 0) continue;
        met += bench_shape_rows(&shapes[i], (size_t)l2, copy);
        total++;
    }
    printf("target (issue #12): w4a16 >= 3.6x faster than cuBLASLt bf16 at n=1: met on %d of "
           "%d shapes\n", met, total);
}

int main(void) {
    if (gpu_test_skip()) return 77;
    g_gemm = gemm_create((size_t)32 << 20);
    if (!g_gemm) {
        fprintf(stderr, "%s\n", folio_last_error());
        return 1;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_dequant),
                                       cmocka_unit_test(test_products_edges),
                                       cmocka_unit_test(test_products_gemm),
                                       cmocka_unit_test(test_products_random)};
    /* FOLIO_TEST_FILTER: only the tests whose names match (cmocka's pattern: * and ?), e.g.
     * test_products_gemm under compute-sanitizer */
    const char *filter = getenv("FOLIO_TEST_FILTER");
    if (filter && filter[0]) cmocka_set_test_filter(filter);
    /* FOLIO_W4A16_BENCH_ONLY=1: the bench alone (tests/gpu/run_w4a16_bench.sh's variants) */
    const char *only = getenv("FOLIO_W4A16_BENCH_ONLY");
    const int failed = only && only[0] == '1' ? 0 : cmocka_run_group_tests(tests, NULL, NULL);
    if (!failed && gpu_test_bench_enabled()) bench();
    gemm_free(g_gemm);
    return failed;
}
#endif
