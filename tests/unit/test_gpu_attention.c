/* Check and timing of paged_attention_cuda (kernels/paged_attention*.cu) against its CPU twin
 * paged_attention_cpu, in bfloat16, float16 and float32: random shapes (odd context lengths,
 * lengths that are not a multiple of the block size, shuffled non-contiguous block tables,
 * GQA 1/4/7/8, head sizes 64 and 128, block sizes 1/8/16/24/32, sliding windows, decode-only,
 * prefill-only and mixed steps with cached prefixes, contexts up to ~4,500), a CUDA graph
 * captured once and replayed with other context lengths; the FP8 (e4m3) cache in bfloat16 and
 * float16 against paged_attention_fp8_cpu on the same bytes and scales (decodes, prefills,
 * mixed). Then benches: device-to-device copy bandwidth, decode attention (batch 64 and batch
 * 1, 16-bit and FP8 caches; the FP8 bandwidth counts the bytes read) and 2,048-token prefills.
 *
 * The GPU cache layout is [num_blocks][n_kv][block_size][head_dim], the CPU twin's
 * [num_blocks][block_size][n_kv][head_dim]: the test fills one and transposes it into the
 * other. Inputs are rounded to the dtype on the host first, so both sides start from the same
 * numbers; the output is poisoned (all bits set: NaN) before each run, so an unwritten row
 * fails. FOLIO_BENCH=0 leaves the timing out (e.g. under compute-sanitizer); FOLIO_BENCH=only
 * runs the benches alone; FOLIO_BENCH=profile only the batch-64 decode and the 2,048-token
 * prefill (for ncu). Without a GPU it prints "SKIPPED: ..." and exits 77. */
#include <stdio.h>

#ifndef FOLIO_HAVE_CUDA

int main(void) {
    printf("SKIPPED: no CUDA device (built without CUDA)\n");
    return 77;
}

#else

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attention_cuda.h"
#include "cuda_check.h"
#include "dtype.h"
#include "error.h"
#include "fp8_layout.h"
#include "kernels_cpu.h"

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;

static uint64_t next_u64(void) { /* xorshift64* */
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 0x2545F4914F6CDD1Dull;
}
static float urand(float lo, float hi) {
    return lo + (hi - lo) * (float)((double)(next_u64() >> 11) / 9007199254740992.0);
}
static int irand(int lo, int hi) { /* uniform in [lo, hi] */
    return lo + (int)(next_u64() % (uint64_t)(hi - lo + 1));
}

static float round_to(float v, folio_dtype t) {
    if (t == DTYPE_BF16) return bf16_to_f32(f32_to_bf16(v));
    if (t == DTYPE_F16) return f16_to_f32(f32_to_f16(v));
    return v;
}

static void *to_device(const float *h, size_t n, folio_dtype t) {
    void *d = NULL;
    const size_t esz = dtype_size(t);
    CUDA_CHECK(cudaMalloc(&d, n * esz + 16));
    if (t == DTYPE_F32) {
        CUDA_CHECK(cudaMemcpy(d, h, n * sizeof(float), cudaMemcpyHostToDevice));
    } else {
        uint16_t *tmp = folio_xmalloc(n * sizeof(uint16_t) + 1);
        for (size_t i = 0; i < n; i++)
            tmp[i] = t == DTYPE_BF16 ? f32_to_bf16(h[i]) : f32_to_f16(h[i]);
        CUDA_CHECK(cudaMemcpy(d, tmp, n * sizeof(uint16_t), cudaMemcpyHostToDevice));
        free(tmp);
    }
    return d;
}

static void from_device(float *h, const void *d, size_t n, folio_dtype t) {
    if (t == DTYPE_F32) {
        CUDA_CHECK(cudaMemcpy(h, d, n * sizeof(float), cudaMemcpyDeviceToHost));
    } else {
        uint16_t *tmp = folio_xmalloc(n * sizeof(uint16_t) + 1);
        CUDA_CHECK(cudaMemcpy(tmp, d, n * sizeof(uint16_t), cudaMemcpyDeviceToHost));
        dtype_to_f32(h, tmp, t, n);
        free(tmp);
    }
}

static void *to_device_i32(const int32_t *h, size_t n) {
    void *d = NULL;
    CUDA_CHECK(cudaMalloc(&d, n * sizeof(int32_t) + 16));
    CUDA_CHECK(cudaMemcpy(d, h, n * sizeof(int32_t), cudaMemcpyHostToDevice));
    return d;
}

/* Mismatches of |got - want| > atol + rtol |want| (NaN counts); prints the first ten. */
static size_t mismatches(const char *what, const float *got, const float *want, size_t n,
                         int n_heads, int head_dim, double atol, double rtol) {
    size_t bad = 0;
    double max_err = 0;
    for (size_t i = 0; i < n; i++) {
        const double err = fabs((double)got[i] - (double)want[i]);
        if (err > max_err || err != err) max_err = err;
        if (!(err <= atol + rtol * fabs((double)want[i]))) {
            if (bad < 10) {
                const size_t row = i / ((size_t)n_heads * head_dim);
                const size_t h = i / head_dim % n_heads, d = i % head_dim;
                fprintf(stderr, "  %s: token %zu head %zu dim %zu: gpu %.7g cpu %.7g\n", what,
                        row, h, d, (double)got[i], (double)want[i]);
            }
            bad++;
        }
    }
    if (bad) fprintf(stderr, "  %s: %zu of %zu mismatches (max err %.3g)\n", what, bad, n, max_err);
    return bad;
}

typedef struct {
    folio_dtype dtype;
    int head_dim, n_heads, n_kv, block_size, window;
    int n_seqs;
    const int *q_lens;  /* [n_seqs] new tokens */
    const int *ctx;     /* [n_seqs] context lengths (prefix + new) */
    int kv_fp8;         /* 1: the cache in e4m3 bytes with scales (bfloat16/float16 only) */
} attn_case;

/* A step's host and device state: random cache, q, shuffled block tables. */
typedef struct {
    paged_attention_params p;
    int num_blocks;
    float *k_gpu, *v_gpu, *k_cpu, *v_cpu, *q; /* host, rounded to the dtype */
    uint8_t *k8_gpu, *v8_gpu, *k8_cpu, *v8_cpu; /* kv_fp8: the e4m3 bytes, both layouts */
    int32_t *tables, *seq_start, *ctx, *positions;
    void *d_k, *d_v, *d_q, *d_out, *d_tables, *d_seq_start, *d_ctx, *d_ws;
} step;

static void step_build(step *st, const attn_case *c, int with_cpu) {
    memset(st, 0, sizeof *st);
    paged_attention_params *p = &st->p;
    p->n_seqs = c->n_seqs;
    p->n_heads = c->n_heads;
    p->n_kv_heads = c->n_kv;
    p->head_dim = c->head_dim;
    p->block_size = c->block_size;
    p->window = c->window;
    p->scale = 1.0f / sqrtf((float)c->head_dim);
    p->dtype = c->dtype;
    p->kv_fp8 = c->kv_fp8;
    p->k_scale = c->kv_fp8 ? 1.0f / 160.0f : 1.0f; /* values in [-1, 1] fill e4m3's range */
    p->v_scale = c->kv_fp8 ? 1.0f / 224.0f : 1.0f;
    p->max_q_len = 1;
    p->max_context = 1;
    p->max_blocks = 1;
    int total_blocks = 0, n_tokens = 0;
    for (int s = 0; s < c->n_seqs; s++) {
        const int nb = (c->ctx[s] + c->block_size - 1) / c->block_size;
        total_blocks += nb;
        if (nb > p->max_blocks) p->max_blocks = nb;
        if (c->ctx[s] > p->max_context) p->max_context = c->ctx[s];
        if (c->q_lens[s] > p->max_q_len) p->max_q_len = c->q_lens[s];
        n_tokens += c->q_lens[s];
    }
    p->max_blocks += 1; /* rows longer than needed, as the block manager's are */
    p->n_tokens = n_tokens;
    st->num_blocks = total_blocks + 3; /* a few blocks nobody uses */

    /* block ids shuffled over the pool */
    int *perm = folio_xmalloc((size_t)st->num_blocks * sizeof(int));
    for (int i = 0; i < st->num_blocks; i++) perm[i] = i;
    for (int i = st->num_blocks - 1; i > 0; i--) {
        const int j = irand(0, i), tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    st->tables = folio_xmalloc((size_t)c->n_seqs * p->max_blocks * sizeof(int32_t));
    st->seq_start = folio_xmalloc((size_t)(c->n_seqs + 1) * sizeof(int32_t));
    st->ctx = folio_xmalloc((size_t)c->n_seqs * sizeof(int32_t));
    st->positions = folio_xmalloc((size_t)(n_tokens + 1) * sizeof(int32_t));
    int next = 0;
    st->seq_start[0] = 0;
    for (int s = 0; s < c->n_seqs; s++) {
        const int nb = (c->ctx[s] + c->block_size - 1) / c->block_size;
        for (int b = 0; b < p->max_blocks; b++)
            st->tables[(size_t)s * p->max_blocks + b] = b < nb ? perm[next++] : -1;
        st->ctx[s] = c->ctx[s];
        st->seq_start[s + 1] = st->seq_start[s] + c->q_lens[s];
        for (int t = st->seq_start[s]; t < st->seq_start[s + 1]; t++)
            st->positions[t] = c->ctx[s] - (st->seq_start[s + 1] - t);
    }
    free(perm);

    const size_t row = (size_t)c->n_kv * c->head_dim;
    const size_t cache_n = (size_t)st->num_blocks * c->block_size * row;
    st->k_gpu = folio_xmalloc(cache_n * sizeof(float));
    st->v_gpu = folio_xmalloc(cache_n * sizeof(float));
    for (size_t i = 0; i < cache_n; i++) {
        st->k_gpu[i] = round_to(urand(-1, 1), c->dtype);
        st->v_gpu[i] = round_to(urand(-1, 1), c->dtype);
    }
    if (with_cpu) {
        st->k_cpu = folio_xmalloc(cache_n * sizeof(float));
        st->v_cpu = folio_xmalloc(cache_n * sizeof(float));
    }
    for (int b = 0; with_cpu && b < st->num_blocks; b++) /* [b][kv][o][d] -> [b][o][kv][d] */
        for (int kv = 0; kv < c->n_kv; kv++)
            for (int o = 0; o < c->block_size; o++) {
                const size_t src = (((size_t)b * c->n_kv + kv) * c->block_size + o) * c->head_dim;
                const size_t dst = (((size_t)b * c->block_size + o) * c->n_kv + kv) * c->head_dim;
                memcpy(st->k_cpu + dst, st->k_gpu + src, c->head_dim * sizeof(float));
                memcpy(st->v_cpu + dst, st->v_gpu + src, c->head_dim * sizeof(float));
            }
    if (c->kv_fp8) { /* e4m3(value / scale), both layouts */
        st->k8_gpu = folio_xmalloc(cache_n);
        st->v8_gpu = folio_xmalloc(cache_n);
        for (size_t i = 0; i < cache_n; i++) {
            st->k8_gpu[i] = fp8_e4m3_from_float(st->k_gpu[i] / p->k_scale);
            st->v8_gpu[i] = fp8_e4m3_from_float(st->v_gpu[i] / p->v_scale);
        }
        st->k8_cpu = folio_xmalloc(cache_n);
        st->v8_cpu = folio_xmalloc(cache_n);
        for (size_t i = 0; with_cpu && i < cache_n / c->head_dim; i++) { /* row i = [b][kv][o] */
            const size_t b = i / ((size_t)c->n_kv * c->block_size);
            const size_t kv = i / c->block_size % c->n_kv, o = i % c->block_size;
            const size_t dst = ((b * c->block_size + o) * c->n_kv + kv) * c->head_dim;
            memcpy(st->k8_cpu + dst, st->k8_gpu + i * c->head_dim, c->head_dim);
            memcpy(st->v8_cpu + dst, st->v8_gpu + i * c->head_dim, c->head_dim);
        }
    }
    const size_t q_n = (size_t)n_tokens * c->n_heads * c->head_dim;
    st->q = folio_xmalloc(q_n * sizeof(float) + 4);
    for (size_t i = 0; i < q_n; i++) st->q[i] = round_to(urand(-3, 3), c->dtype);

    if (c->kv_fp8) {
        CUDA_CHECK(cudaMalloc(&st->d_k, cache_n));
        CUDA_CHECK(cudaMalloc(&st->d_v, cache_n));
        CUDA_CHECK(cudaMemcpy(st->d_k, st->k8_gpu, cache_n, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(st->d_v, st->v8_gpu, cache_n, cudaMemcpyHostToDevice));
    } else {
        st->d_k = to_device(st->k_gpu, cache_n, c->dtype);
        st->d_v = to_device(st->v_gpu, cache_n, c->dtype);
    }
    st->d_q = to_device(st->q, q_n, c->dtype);
    CUDA_CHECK(cudaMalloc(&st->d_out, q_n * dtype_size(c->dtype) + 16));
    st->d_tables = to_device_i32(st->tables, (size_t)c->n_seqs * p->max_blocks);
    st->d_seq_start = to_device_i32(st->seq_start, (size_t)c->n_seqs + 1);
    st->d_ctx = to_device_i32(st->ctx, (size_t)c->n_seqs);
    const size_t ws = paged_attention_workspace_bytes(p);
    if (ws) CUDA_CHECK(cudaMalloc(&st->d_ws, ws));
}

static void step_free(step *st) {
    CUDA_CHECK(cudaFree(st->d_ws));
    CUDA_CHECK(cudaFree(st->d_ctx));
    CUDA_CHECK(cudaFree(st->d_seq_start));
    CUDA_CHECK(cudaFree(st->d_tables));
    CUDA_CHECK(cudaFree(st->d_out));
    CUDA_CHECK(cudaFree(st->d_q));
    CUDA_CHECK(cudaFree(st->d_v));
    CUDA_CHECK(cudaFree(st->d_k));
    free(st->q);
    free(st->k8_gpu);
    free(st->v8_gpu);
    free(st->k8_cpu);
    free(st->v8_cpu);
    free(st->v_cpu);
    free(st->k_cpu);
    free(st->v_gpu);
    free(st->k_gpu);
    free(st->positions);
    free(st->ctx);
    free(st->seq_start);
    free(st->tables);
}

/* Tolerances: float32 sums in another order (1e-4 is loose); float16 rounds the output and,
 * in the prefill, the probabilities to 11 bits (2^-11 = 4.9e-4 relative each); bfloat16 to
 * 8 bits (2^-8 = 3.9e-3). Outputs are averages of values in [-1, 1], so atol ~ rtol. */
static void tolerances(folio_dtype t, double *atol, double *rtol) {
    if (t == DTYPE_F32) *atol = *rtol = 1e-4;
    else if (t == DTYPE_F16) *atol = *rtol = 2e-3;
    else *atol = *rtol = 1.6e-2;
}

static size_t compare_with_cpu(step *st, const char *what) {
    const paged_attention_params *p = &st->p;
    const size_t q_n = (size_t)p->n_tokens * p->n_heads * p->head_dim;
    float *got = folio_xmalloc(q_n * sizeof(float) + 4), *want = folio_xmalloc(q_n * sizeof(float) + 4);
    from_device(got, st->d_out, q_n, p->dtype);
    if (p->kv_fp8)
        paged_attention_fp8_cpu(want, st->q, st->k8_cpu, st->v8_cpu, p->k_scale, p->v_scale,
                                st->tables, p->max_blocks, st->seq_start, st->positions,
                                p->n_seqs, p->n_heads, p->n_kv_heads, p->head_dim,
                                p->block_size, p->window, p->scale);
    else
        paged_attention_cpu(want, st->q, st->k_cpu, st->v_cpu, st->tables, p->max_blocks,
                            st->seq_start, st->positions, p->n_seqs, p->n_heads, p->n_kv_heads,
                            p->head_dim, p->block_size, p->window, p->scale);
    double atol, rtol;
    tolerances(p->dtype, &atol, &rtol);
    const size_t bad = mismatches(what, got, want, q_n, p->n_heads, p->head_dim, atol, rtol);
    free(want);
    free(got);
    return bad;
}

static size_t run_case(const attn_case *c) {
    step st;
    step_build(&st, c, 1);
    const size_t q_n = (size_t)st.p.n_tokens * c->n_heads * c->head_dim;
    CUDA_CHECK(cudaMemset(st.d_out, 0xff, q_n * dtype_size(c->dtype)));
    paged_attention_cuda(st.d_out, st.d_q, st.d_k, st.d_v, st.d_tables, st.d_seq_start,
                         st.d_ctx, &st.p, st.d_ws, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
    char what[160];
    snprintf(what, sizeof what, "%s%s d=%d heads=%d/%d bs=%d win=%d seqs=%d max_q=%d max_ctx=%d",
             dtype_name(c->dtype), c->kv_fp8 ? " fp8-kv" : "", c->head_dim, c->n_heads, c->n_kv, c->block_size, c->window,
             c->n_seqs, st.p.max_q_len, st.p.max_context);
    const size_t bad = compare_with_cpu(&st, what);
    printf("  %s: %s\n", what, bad ? "FAIL" : "ok");
    step_free(&st);
    return bad;
}

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Decode-only steps: random odd contexts up to ~4,500. */
static void test_decode(void **state) {
    (void)state;
    static const struct {
        folio_dtype t;
        int d, h, kv, bs, win;
    } shapes[] = {
        {DTYPE_BF16, 128, 32, 8, 16, 0}, {DTYPE_BF16, 128, 32, 4, 16, 0},
        {DTYPE_BF16, 64, 8, 8, 1, 0},    {DTYPE_F16, 128, 16, 2, 32, 0},
        {DTYPE_F16, 64, 28, 4, 8, 0},    {DTYPE_F32, 128, 8, 8, 16, 0},
        {DTYPE_F32, 64, 32, 4, 32, 0},   {DTYPE_BF16, 128, 32, 8, 16, 1000},
        {DTYPE_F16, 128, 12, 4, 16, 37}, {DTYPE_BF16, 64, 14, 2, 24, 300},
        {DTYPE_BF16, 128, 6, 2, 16, 0},
    };
    size_t bad = 0;
    for (int i = 0; i < N(shapes); i++) {
        const int n_seqs = irand(1, 9);
        int q_lens[16], ctx[16];
        for (int s = 0; s < n_seqs; s++) {
            q_lens[s] = 1;
            ctx[s] = s == 0 ? 4500 - irand(0, 3) * 2 + 1 : irand(1, 3000) | 1;
        }
        if (n_seqs > 2) ctx[1] = 1; /* the first token of a sequence */
        const attn_case c = {shapes[i].t, shapes[i].d, shapes[i].h, shapes[i].kv, shapes[i].bs,
                             shapes[i].win, n_seqs, q_lens, ctx, 0};
        bad += run_case(&c);
    }
    assert_int_equal(bad, 0);
}

/* Prefill-only and mixed steps: prompts with and without a cached prefix, decodes beside. */
/* q_len, context per sequence of the prefill steps: a fresh prompt, a chunk after a prefix,
 * decodes, tiny ones (mixed); two chunks after long prefixes (chunk). */
static const int q_mixed[] = {300, 1, 77, 1, 2, 129, 1};
static const int c_mixed[] = {300, 4501, 1077, 33, 2, 2176, 1};
static const int q_chunk[] = {200, 63};
static const int c_chunk[] = {1000, 4000};

static void test_prefill_mixed(void **state) {
    (void)state;
    static const struct {
        folio_dtype t;
        int d, h, kv, bs, win;
    } shapes[] = {
        {DTYPE_BF16, 128, 32, 8, 16, 0}, {DTYPE_BF16, 64, 16, 16, 1, 0},
        {DTYPE_F16, 128, 8, 1, 32, 0},   {DTYPE_F16, 64, 28, 4, 8, 100},
        {DTYPE_F32, 64, 8, 2, 16, 0},    {DTYPE_F32, 128, 4, 4, 32, 50},
        {DTYPE_BF16, 128, 32, 8, 16, 64}, {DTYPE_BF16, 128, 8, 2, 24, 0},
        {DTYPE_F16, 128, 16, 4, 16, 300}, /* a window wider than a 128-key tile */
    };
    static const int q_pre[] = {65};
    static const int c_pre[] = {65};
    size_t bad = 0;
    for (int i = 0; i < N(shapes); i++) {
        attn_case c = {shapes[i].t, shapes[i].d, shapes[i].h, shapes[i].kv, shapes[i].bs,
                       shapes[i].win, N(q_mixed), q_mixed, c_mixed, 0};
        bad += run_case(&c);
        if (shapes[i].t == DTYPE_F32) continue; /* the row path: slow, one case is enough */
        c.n_seqs = N(q_pre);
        c.q_lens = q_pre;
        c.ctx = c_pre;
        bad += run_case(&c);
        c.n_seqs = N(q_chunk);
        c.q_lens = q_chunk;
        c.ctx = c_chunk;
        bad += run_case(&c);
    }
    assert_int_equal(bad, 0);
}

/* The FP8 cache: decodes (long contexts, split into partitions), prefills after a cached prefix
 * and mixed steps, in bfloat16 and float16, GQA 1/4/8, head sizes 64 and 128, sliding windows. */
static void test_fp8_kv(void **state) {
    (void)state;
    static const struct {
        folio_dtype t;
        int d, h, kv, bs, win;
    } shapes[] = {
        {DTYPE_BF16, 128, 32, 8, 16, 0}, {DTYPE_F16, 128, 16, 4, 32, 0},
        {DTYPE_BF16, 64, 8, 8, 1, 0},    {DTYPE_F16, 64, 28, 4, 8, 100},
        {DTYPE_BF16, 128, 8, 1, 24, 0},  {DTYPE_BF16, 128, 16, 4, 16, 200},
    };
    size_t bad = 0;
    for (int i = 0; i < N(shapes); i++) {
        const int n_seqs = irand(1, 9);
        int q_lens[16], ctx[16];
        for (int s = 0; s < n_seqs; s++) {
            q_lens[s] = 1;
            ctx[s] = s == 0 ? 4501 : irand(1, 3000) | 1;
        }
        attn_case c = {shapes[i].t, shapes[i].d, shapes[i].h, shapes[i].kv, shapes[i].bs,
                       shapes[i].win, n_seqs, q_lens, ctx, 1};
        bad += run_case(&c);
        c.n_seqs = N(q_mixed);
        c.q_lens = q_mixed;
        c.ctx = c_mixed;
        bad += run_case(&c);
        c.n_seqs = N(q_chunk);
        c.q_lens = q_chunk;
        c.ctx = c_chunk;
        bad += run_case(&c);
    }
    assert_int_equal(bad, 0);
}

/* A decode step captured in a CUDA graph at bounds (max_context 4,096), replayed after the
 * context lengths in device memory change: the grid must not depend on them. */
static void test_graph_replay(void **state) {
    (void)state;
    enum { S = 5 };
    static const int q_lens[S] = {1, 1, 1, 1, 1};
    static const int ctx[S] = {4096, 4000, 3000, 17, 1500};
    const attn_case c = {DTYPE_BF16, 128, 32, 8, 16, 0, S, q_lens, ctx, 0};
    step st;
    step_build(&st, &c, 1);
    cudaStream_t stream;
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    paged_attention_cuda(st.d_out, st.d_q, st.d_k, st.d_v, st.d_tables, st.d_seq_start,
                         st.d_ctx, &st.p, st.d_ws, stream);
    CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
    CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    size_t bad = 0;
    for (int round = 0; round < 3; round++) {
        if (round > 0) { /* shorter contexts, same tables (they cover the longest) */
            for (int s = 0; s < S; s++) st.ctx[s] = irand(1, ctx[s]);
            for (int s = 0; s < S; s++) st.positions[s] = st.ctx[s] - 1;
            CUDA_CHECK(cudaMemcpy(st.d_ctx, st.ctx, S * sizeof(int32_t), cudaMemcpyHostToDevice));
        }
        const size_t q_n = (size_t)st.p.n_tokens * c.n_heads * c.head_dim;
        CUDA_CHECK(cudaMemset(st.d_out, 0xff, q_n * 2));
        CUDA_CHECK(cudaGraphLaunch(exec, stream));
        CUDA_CHECK(cudaStreamSynchronize(stream));
        char what[64];
        snprintf(what, sizeof what, "graph replay %d", round);
        const size_t b = compare_with_cpu(&st, what);
        printf("  %s (contexts %d %d %d %d %d): %s\n", what, st.ctx[0], st.ctx[1], st.ctx[2],
               st.ctx[3], st.ctx[4], b ? "FAIL" : "ok");
        bad += b;
    }
    CUDA_CHECK(cudaGraphExecDestroy(exec));
    CUDA_CHECK(cudaGraphDestroy(graph));
    CUDA_CHECK(cudaStreamDestroy(stream));
    step_free(&st);
    assert_int_equal(bad, 0);
}

/* ---- benches ---- */

static int cmp_float(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

typedef struct {
    void *flush;
    size_t flush_bytes;
    cudaEvent_t start, stop;
} bench_ctx;

/* Median ms of reps launches of one attention call, after warm-up, L2 flushed before each. */
static float time_attention(bench_ctx *b, step *st, int reps) {
    float *ms = folio_xmalloc((size_t)reps * sizeof(float));
    for (int r = 0; r < 3; r++)
        paged_attention_cuda(st->d_out, st->d_q, st->d_k, st->d_v, st->d_tables, st->d_seq_start,
                             st->d_ctx, &st->p, st->d_ws, 0);
    for (int r = 0; r < reps; r++) {
        CUDA_CHECK(cudaMemsetAsync(b->flush, r & 0xff, b->flush_bytes, 0));
        CUDA_CHECK(cudaEventRecord(b->start, 0));
        paged_attention_cuda(st->d_out, st->d_q, st->d_k, st->d_v, st->d_tables, st->d_seq_start,
                             st->d_ctx, &st->p, st->d_ws, 0);
        CUDA_CHECK(cudaEventRecord(b->stop, 0));
        CUDA_CHECK(cudaEventSynchronize(b->stop));
        CUDA_CHECK(cudaEventElapsedTime(&ms[r], b->start, b->stop));
    }
    qsort(ms, (size_t)reps, sizeof(float), cmp_float);
    const float med = ms[reps / 2];
    free(ms);
    return med;
}

/* Device-to-device copy: (read + write) bytes / time, median of 10, 1 GiB. */
static double copy_bandwidth(bench_ctx *b) {
    const size_t n = (size_t)1 << 30;
    void *src, *dst;
    CUDA_CHECK(cudaMalloc(&src, n));
    CUDA_CHECK(cudaMalloc(&dst, n));
    CUDA_CHECK(cudaMemset(src, 1, n));
    float ms[10];
    for (int r = 0; r < 2; r++) CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, 0));
    for (int r = 0; r < 10; r++) {
        CUDA_CHECK(cudaEventRecord(b->start, 0));
        CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, 0));
        CUDA_CHECK(cudaEventRecord(b->stop, 0));
        CUDA_CHECK(cudaEventSynchronize(b->stop));
        CUDA_CHECK(cudaEventElapsedTime(&ms[r], b->start, b->stop));
    }
    qsort(ms, 10, sizeof(float), cmp_float);
    CUDA_CHECK(cudaFree(dst));
    CUDA_CHECK(cudaFree(src));
    const double gbs = 2.0 * (double)n / (ms[5] * 1e-3) * 1e-9;
    printf("bench copy d2d 1 GiB: median %.1f us, %.0f GB/s (read + write)\n", ms[5] * 1e3, gbs);
    return gbs;
}

static void bench_decode(bench_ctx *b, folio_dtype t, int kv_fp8, int batch, int context,
                         int bs, double copy_gbs) {
    int *q_lens = folio_xmalloc((size_t)batch * sizeof(int)), *ctx = folio_xmalloc((size_t)batch * sizeof(int));
    for (int s = 0; s < batch; s++) {
        q_lens[s] = 1;
        ctx[s] = context;
    }
    const attn_case c = {t, 128, 32, 8, bs, 0, batch, q_lens, ctx, kv_fp8};
    step st;
    step_build(&st, &c, 0);
    const float ms = time_attention(b, &st, batch >= 16 ? 30 : 100);
    const double bytes = 2.0 * batch * (double)context * c.n_kv * c.head_dim *
                         (kv_fp8 ? 1.0 : (double)dtype_size(t));
    const double gbs = bytes / (ms * 1e-3) * 1e-9;
    printf("bench decode %s%s batch=%d ctx=%d heads=32/8 d=128 bs=%d: median %.1f us, KV %.0f "
           "GB/s = %.1f%% of copy\n",
           dtype_name(t), kv_fp8 ? " fp8-kv" : "", batch, context, bs, ms * 1e3, gbs,
           100.0 * gbs / copy_gbs);
    step_free(&st);
    free(ctx);
    free(q_lens);
}

static void bench_prefill(bench_ctx *b, folio_dtype t, int kv_fp8, int n, int d) {
    const int q_lens[1] = {n}, ctx[1] = {n};
    const attn_case c = {t, d, 32, 8, 16, 0, 1, q_lens, ctx, kv_fp8};
    step st;
    step_build(&st, &c, 0);
    const float ms = time_attention(b, &st, 30);
    const double flops = 2.0 * 2.0 * ((double)n * n / 2.0) * c.n_heads * d;
    const double tf = flops / (ms * 1e-3) * 1e-12;
    printf("bench prefill %s%s n=%d heads=32/8 d=%d bs=16: median %.1f us, %.1f TFLOP/s = "
           "%.1f%% of 790\n",
           dtype_name(t), kv_fp8 ? " fp8-kv" : "", n, d, ms * 1e3, tf, 100.0 * tf / 790.0);
    step_free(&st);
}

/* quick: only the batch-64 decode and the 2,048-token prefill (for a profiler). */
static void bench(int quick) {
    bench_ctx b;
    int l2 = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0));
    b.flush_bytes = 2 * (size_t)(l2 > 0 ? l2 : 64 << 20);
    CUDA_CHECK(cudaMalloc(&b.flush, b.flush_bytes));
    CUDA_CHECK(cudaEventCreate(&b.start));
    CUDA_CHECK(cudaEventCreate(&b.stop));
    struct cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    printf("bench device: %s, %d SMs, L2 %d MB\n", prop.name, prop.multiProcessorCount, l2 >> 20);

    const double copy = quick ? 3000.0 : copy_bandwidth(&b);
    bench_decode(&b, DTYPE_BF16, 0, 64, 4096, 16, copy);
    if (quick) {
        bench_prefill(&b, DTYPE_BF16, 0, 2048, 128);
        goto done;
    }
    bench_decode(&b, DTYPE_BF16, 1, 64, 4096, 16, copy);
    bench_decode(&b, DTYPE_BF16, 0, 64, 4096, 32, copy);
    bench_decode(&b, DTYPE_BF16, 0, 64, 4096, 8, copy);
    bench_decode(&b, DTYPE_BF16, 0, 64, 4096, 1, copy);
    bench_decode(&b, DTYPE_F16, 0, 64, 4096, 16, copy);
    bench_decode(&b, DTYPE_BF16, 0, 256, 1024, 16, copy);
    bench_decode(&b, DTYPE_BF16, 1, 256, 1024, 16, copy);
    bench_decode(&b, DTYPE_BF16, 0, 1, 128, 16, copy);
    bench_decode(&b, DTYPE_BF16, 0, 1, 4096, 16, copy);
    bench_decode(&b, DTYPE_BF16, 1, 1, 4096, 16, copy);
    bench_decode(&b, DTYPE_BF16, 0, 8, 4096, 16, copy);
    bench_prefill(&b, DTYPE_BF16, 0, 2048, 128);
    bench_prefill(&b, DTYPE_BF16, 1, 2048, 128);
    bench_prefill(&b, DTYPE_F16, 0, 2048, 128);
    bench_prefill(&b, DTYPE_BF16, 0, 2048, 64);
    bench_prefill(&b, DTYPE_BF16, 0, 4096, 128);
    bench_prefill(&b, DTYPE_BF16, 0, 8192, 128);
    bench_prefill(&b, DTYPE_BF16, 0, 16384, 128);
    bench_prefill(&b, DTYPE_BF16, 1, 8192, 128);
done:

    CUDA_CHECK(cudaEventDestroy(b.stop));
    CUDA_CHECK(cudaEventDestroy(b.start));
    CUDA_CHECK(cudaFree(b.flush));
}

int main(void) {
    const char *why = "";
    if (cuda_device_count_or_zero(&why) == 0) {
        printf("SKIPPED: no CUDA device (%s)\n", why);
        return 77;
    }
    const char *bench_env = getenv("FOLIO_BENCH");
    if (bench_env && (strcmp(bench_env, "only") == 0 || strcmp(bench_env, "profile") == 0)) {
        bench(strcmp(bench_env, "profile") == 0);
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_prefill_mixed),
        cmocka_unit_test(test_graph_replay),
        cmocka_unit_test(test_fp8_kv),
    };
    const int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (!failed && !(bench_env && strcmp(bench_env, "0") == 0)) bench(0);
    return failed;
}

#endif
