/* Tests of the CPU kernel twins (kernels/<name>_cpu.c): each one against an independent, plainly
 * written formulation in double precision on random inputs of several shapes (n = 1, odd
 * dims, dims that are not multiples of 8 or of the kernels' tile sizes). Paged attention is
 * checked against dense attention over contiguous K/V, through shuffled block tables whose
 * unused slots hold NaN, so any read of a wrong slot shows.
 *
 * FOLIO_BENCH=1 in the environment adds a timing of matmul_cpu at 4096 x 4096 (GFLOP/s). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <complex.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "kernels_cpu.h"

/* ---- helpers ---- */

static uint64_t g_rng;

static void rng_seed(uint64_t seed) { g_rng = seed * 0x9E3779B97F4A7C15ull + 1; }

static uint64_t rng_next(void) { /* splitmix64 */
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float urand(float lo, float hi) { /* uniform in [lo, hi) */
    return lo + (hi - lo) * (float)((double)(rng_next() >> 11) / 9007199254740992.0);
}

static int irand(int n) { return (int)(rng_next() % (uint64_t)n); } /* [0, n) */

static float *rand_vec(size_t n, float lo, float hi) {
    float *v = folio_xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) v[i] = urand(lo, hi);
    return v;
}

static float *nan_vec(size_t n) {
    float *v = folio_xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) v[i] = NAN;
    return v;
}

/* Counts entries with |got - ref| > atol + rtol * |ref| (NaN counts), printing the first
 * few with their index. */
static size_t count_mismatches(const char *what, const float *got, const double *ref, size_t n,
                               double atol, double rtol) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        const double err = fabs((double)got[i] - ref[i]);
        if (!(err <= atol + rtol * fabs(ref[i]))) {
            if (bad < 5)
                fprintf(stderr, "  %s: [%zu] got %.9g want %.9g (err %.3g)\n", what, i,
                        (double)got[i], ref[i], err);
            bad++;
        }
    }
    if (bad) fprintf(stderr, "  %s: %zu of %zu mismatches\n", what, bad, n);
    return bad;
}

/* ---- embedding ---- */

static void test_embedding_vocab_shard(void **state) {
    (void)state;
    rng_seed(1);
    const int vocab = 50, dims[] = {1, 7, 64};
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
        const int dim = dims[di];
        float *full = rand_vec((size_t)vocab * dim, -1, 1);  /* [vocab][dim] */
        /* Boundaries of the shard [20, 35) first, then random ids over the whole vocab. */
        const int n = 40;
        int32_t ids[40] = {19, 20, 34, 35, 0, 49};
        for (int t = 6; t < n; t++) ids[t] = irand(vocab);

        /* One shard: rows inside give the table row, rows outside give zeros. */
        const int row_start = 20, n_rows = 15;
        float *out = nan_vec((size_t)n * dim);
        embedding_cpu(out, full + (size_t)row_start * dim, ids, n, dim, row_start, n_rows);
        for (int t = 0; t < n; t++) {
            const int inside = ids[t] >= row_start && ids[t] < row_start + n_rows;
            for (int i = 0; i < dim; i++) {
                const float want = inside ? full[(size_t)ids[t] * dim + i] : 0.0f;
                if (out[(size_t)t * dim + i] != want)
                    fail_msg("embedding dim %d id %d [%d]: got %g want %g", dim, ids[t], i,
                             (double)out[(size_t)t * dim + i], (double)want);
            }
        }

        /* Ceil-split over three ranks (17, 17, 16 rows): the sum over shards, what the
         * all-reduce computes, is the full lookup. n = 1 as in decode, then all. */
        for (int nn = 1; nn <= n; nn += n - 1) {
            float *sum = folio_xcalloc((size_t)nn * dim, sizeof(float));
            for (int r = 0; r < 3; r++) {
                const int start = r * 17, rows = r < 2 ? 17 : vocab - 34;
                embedding_cpu(out, full + (size_t)start * dim, ids, nn, dim, start, rows);
                for (size_t i = 0; i < (size_t)nn * dim; i++) sum[i] += out[i];
            }
            for (int t = 0; t < nn; t++)
                assert_memory_equal(sum + (size_t)t * dim, full + (size_t)ids[t] * dim,
                                    (size_t)dim * sizeof(float));
            free(sum);
        }
        free(out);
        free(full);
    }
}

/* ---- rmsnorm ---- */

/* ref[t] = w * x[t] / sqrt(mean(x[t]^2) + eps), all in double. */
static void ref_rmsnorm(double *ref, const float *x, const float *w, int n, int dim, float eps) {
    for (int t = 0; t < n; t++) {
        const float *xr = x + (size_t)t * dim;
        double ss = 0;
        for (int i = 0; i < dim; i++) ss += (double)xr[i] * xr[i];
        const double inv = 1.0 / sqrt(ss / dim + (double)eps);
        for (int i = 0; i < dim; i++) ref[(size_t)t * dim + i] = (double)w[i] * xr[i] * inv;
    }
}

static const int norm_shapes[][2] = {{1, 1}, {1, 7}, {3, 33}, {2, 4095}, {5, 4096},
                                     {1, 5120}, {4, 8192}, {70, 129}};
static const float norm_scales[] = {1.0f, 1000.0f, 1e-3f}; /* 1e-3: eps matters */

static void test_rmsnorm_vs_double(void **state) {
    (void)state;
    rng_seed(2);
    const float eps = 1e-6f;
    for (size_t si = 0; si < sizeof norm_shapes / sizeof norm_shapes[0]; si++) {
        for (size_t ci = 0; ci < sizeof norm_scales / sizeof norm_scales[0]; ci++) {
            const int n = norm_shapes[si][0], dim = norm_shapes[si][1];
            const size_t len = (size_t)n * dim;
            const float sc = norm_scales[ci];
            float *x = rand_vec(len, -sc, sc), *w = rand_vec((size_t)dim, -2, 2);
            double *ref = folio_xmalloc(len * sizeof(double));
            ref_rmsnorm(ref, x, w, n, dim, eps);

            float *out = nan_vec(len);
            rmsnorm_cpu(out, x, w, n, dim, eps);
            assert_int_equal(count_mismatches("rmsnorm", out, ref, len, 0, 1e-6), 0);

            memcpy(out, x, len * sizeof(float)); /* in place: out == x */
            rmsnorm_cpu(out, out, w, n, dim, eps);
            assert_int_equal(count_mismatches("rmsnorm in place", out, ref, len, 0, 1e-6), 0);
            free(out);
            free(ref);
            free(x);
            free(w);
        }
    }
}

static void test_add_rmsnorm_vs_double(void **state) {
    (void)state;
    rng_seed(3);
    const float eps = 1e-5f;
    for (size_t si = 0; si < sizeof norm_shapes / sizeof norm_shapes[0]; si++) {
        const int n = norm_shapes[si][0], dim = norm_shapes[si][1];
        const size_t len = (size_t)n * dim;
        float *res0 = rand_vec(len, -3, 3), *x = rand_vec(len, -1, 1);
        float *w = rand_vec((size_t)dim, -2, 2);
        float *sum = folio_xmalloc(len * sizeof(float)); /* residual + x, in float */
        for (size_t i = 0; i < len; i++) sum[i] = res0[i] + x[i];
        double *ref = folio_xmalloc(len * sizeof(double));
        ref_rmsnorm(ref, sum, w, n, dim, eps);

        /* 0: separate out; 1: out aliases x; 2: out aliases residual. */
        for (int alias = 0; alias < 3; alias++) {
            float *res = folio_xmalloc(len * sizeof(float));
            float *xin = folio_xmalloc(len * sizeof(float));
            memcpy(res, res0, len * sizeof(float));
            memcpy(xin, x, len * sizeof(float));
            float *sep = nan_vec(len);
            float *out = alias == 0 ? sep : alias == 1 ? xin : res;
            add_rmsnorm_cpu(res, xin, out, w, n, dim, eps);
            if (alias != 2) assert_memory_equal(res, sum, len * sizeof(float));
            assert_int_equal(count_mismatches("add_rmsnorm", out, ref, len, 0, 1e-6), 0);
            free(sep);
            free(xin);
            free(res);
        }
        free(ref);
        free(sum);
        free(w);
        free(x);
        free(res0);
    }
}

/* ---- matmul ---- */

/* ref = x @ w^T + bias and mag = |x| @ |w|^T + |bias|, in double, as a triple loop. */
static void ref_matmul(double *ref, double *mag, const float *x, const float *w,
                       const float *bias, int n, int in_f, int out_f) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < out_f; j++) {
            double s = bias ? bias[j] : 0.0, m = bias ? fabs(bias[j]) : 0.0;
            for (int k = 0; k < in_f; k++) {
                const double p = (double)x[(size_t)i * in_f + k] * w[(size_t)j * in_f + k];
                s += p;
                m += fabs(p);
            }
            ref[(size_t)i * out_f + j] = s;
            mag[(size_t)i * out_f + j] = m;
        }
}

static void test_matmul_vs_double(void **state) {
    (void)state;
    rng_seed(4);
    /* {n, in_f, out_f}: decode rows, tile tails in every direction, in_f across the
     * 512-float chunk, n across the 64-row panel, in_f = 0 (out = bias). */
    static const int shapes[][3] = {{1, 1, 1},     {1, 7, 5},      {2, 8, 3},
                                    {3, 13, 17},   {1, 4096, 67},  {5, 1000, 37},
                                    {64, 257, 129}, {67, 513, 131}, {130, 600, 50},
                                    {1, 1031, 4099}, {9, 2048, 12}, {2, 0, 5}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int n = shapes[si][0], in_f = shapes[si][1], out_f = shapes[si][2];
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            float *x = rand_vec((size_t)n * in_f, -1, 1);
            float *w = rand_vec((size_t)out_f * in_f, -1, 1);
            float *bias = with_bias ? rand_vec((size_t)out_f, -1, 1) : NULL;
            const size_t len = (size_t)n * out_f;
            double *ref = folio_xmalloc(len * sizeof(double));
            double *mag = folio_xmalloc(len * sizeof(double));
            ref_matmul(ref, mag, x, w, bias, n, in_f, out_f);
            float *out = nan_vec(len);
            matmul_cpu(out, x, w, bias, n, in_f, out_f);
            /* Tolerance from the magnitude of the summands: float summation error stays far
             * below 1e-5 of it, while one lost term of 1031 is ~1e-3 of it. */
            size_t bad = 0;
            for (size_t i = 0; i < len; i++) {
                const double err = fabs((double)out[i] - ref[i]);
                if (!(err <= 1e-5 * mag[i] + 1e-30)) {
                    if (bad < 5)
                        fprintf(stderr, "  matmul %dx%dx%d [%zu]: got %.9g want %.9g\n", n, in_f,
                                out_f, i, (double)out[i], ref[i]);
                    bad++;
                }
            }
            assert_int_equal(bad, 0);
            free(out);
            free(mag);
            free(ref);
            free(bias);
            free(w);
            free(x);
        }
    }
}

static double now_s(void) { return omp_get_wtime(); }

/* GFLOP/s of matmul_cpu at 4096 x 4096 for n = 1 (decode) and n = 64 (prefill). */
static void bench_matmul(void) {
    const int in_f = 4096, out_f = 4096, ns[] = {1, 64};
    rng_seed(5);
    float *w = rand_vec((size_t)out_f * in_f, -1, 1), *x = rand_vec((size_t)64 * in_f, -1, 1);
    float *out = folio_xmalloc((size_t)64 * out_f * sizeof(float));
    for (int c = 0; c < 2; c++) {
        const int n = ns[c], reps = n == 1 ? 50 : 5;
        matmul_cpu(out, x, w, NULL, n, in_f, out_f); /* warm-up */
        const double t0 = now_s();
        for (int r = 0; r < reps; r++) matmul_cpu(out, x, w, NULL, n, in_f, out_f);
        const double t = (now_s() - t0) / reps;
        printf("bench matmul_cpu n=%d %dx%d, %d threads: %.3f ms, %.1f GFLOP/s\n", n, out_f,
               in_f, omp_get_max_threads(), t * 1e3, 2.0 * n * in_f * out_f / t * 1e-9);
    }
    free(out);
    free(x);
    free(w);
}

/* ---- rope ---- */

static void test_rope_vs_complex(void **state) {
    (void)state;
    rng_seed(6);
    const int max_pos = 300;
    static const int shapes[][3] = {/* n, n_heads, head_dim */
                                    {1, 1, 2}, {1, 8, 64}, {5, 3, 128}, {17, 2, 80},
                                    {3, 5, 6}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int n = shapes[si][0], nh = shapes[si][1], hd = shapes[si][2], half = hd / 2;
        /* Tables as the engine builds them: angle = pos * theta^(-2i / head_dim). */
        float *cos_t = folio_xmalloc((size_t)max_pos * half * sizeof(float));
        float *sin_t = folio_xmalloc((size_t)max_pos * half * sizeof(float));
        for (int p = 0; p < max_pos; p++)
            for (int i = 0; i < half; i++) {
                const double a = p * pow(10000.0, -2.0 * i / hd);
                cos_t[(size_t)p * half + i] = (float)cos(a);
                sin_t[(size_t)p * half + i] = (float)sin(a);
            }
        int32_t *pos = folio_xmalloc((size_t)n * sizeof(int32_t));
        for (int t = 0; t < n; t++) pos[t] = t == 0 ? max_pos - 1 : irand(max_pos);
        const size_t len = (size_t)n * nh * hd;
        float *x = rand_vec(len, -2, 2), *y = folio_xmalloc(len * sizeof(float));
        memcpy(y, x, len * sizeof(float));
        rope_cpu(y, pos, cos_t, sin_t, n, nh, hd);

        /* Feature pair (i, i + half) is the complex number x[i] + i x[i + half], turned by
         * the angle whose cosine and sine the tables hold. */
        for (int t = 0; t < n; t++)
            for (int h = 0; h < nh; h++) {
                const size_t base = ((size_t)t * nh + h) * hd;
                for (int i = 0; i < half; i++) {
                    const double complex z = x[base + i] + I * (double)x[base + half + i];
                    const double complex turn = cos_t[(size_t)pos[t] * half + i] +
                                                I * (double)sin_t[(size_t)pos[t] * half + i];
                    const double complex r = z * turn;
                    const double tol = 1e-6 * (fabs(x[base + i]) + fabs(x[base + half + i]));
                    if (!(fabs(y[base + i] - creal(r)) <= tol &&
                          fabs(y[base + half + i] - cimag(r)) <= tol))
                        fail_msg("rope n=%d heads=%d hd=%d t=%d h=%d i=%d: got (%g, %g) want "
                                 "(%g, %g)",
                                 n, nh, hd, t, h, i, (double)y[base + i],
                                 (double)y[base + half + i], creal(r), cimag(r));
                }
            }
        free(y);
        free(x);
        free(pos);
        free(sin_t);
        free(cos_t);
    }
}

/* ---- silu * mul ---- */

static void test_silu_mul_vs_double(void **state) {
    (void)state;
    rng_seed(7);
    static const int shapes[][2] = {{1, 1}, {1, 11}, {3, 4095}, {2, 14336}};
    static const float extremes[] = {-100.0f, -88.0f, -20.0f, -1e-3f, 0.0f, 1e-3f, 20.0f,
                                     88.0f,   100.0f};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int n = shapes[si][0], d = shapes[si][1];
        const size_t len = (size_t)n * d;
        float *g = rand_vec(len, -10, 10), *u = rand_vec(len, -3, 3);
        for (size_t i = 0; i < len && i < sizeof extremes / sizeof extremes[0]; i++)
            g[i] = extremes[i];
        double *ref = folio_xmalloc(len * sizeof(double));
        for (size_t i = 0; i < len; i++) ref[i] = g[i] / (1.0 + exp(-(double)g[i])) * u[i];

        float *out = nan_vec(len);
        silu_mul_cpu(out, g, u, n, d);
        assert_int_equal(count_mismatches("silu_mul", out, ref, len, 1e-30, 1e-6), 0);
        float *g2 = folio_xmalloc(len * sizeof(float)), *u2 = folio_xmalloc(len * sizeof(float));
        memcpy(g2, g, len * sizeof(float));
        memcpy(u2, u, len * sizeof(float));
        silu_mul_cpu(g2, g2, u, n, d); /* out aliases gate */
        silu_mul_cpu(u2, g, u2, n, d); /* out aliases up */
        assert_int_equal(count_mismatches("silu_mul out=gate", g2, ref, len, 1e-30, 1e-6), 0);
        assert_int_equal(count_mismatches("silu_mul out=up", u2, ref, len, 1e-30, 1e-6), 0);
        free(u2);
        free(g2);
        free(out);
        free(ref);
        free(u);
        free(g);
    }
}

/* ---- paged attention and kv_write ---- */

typedef struct {
    int n_cached, n_new; /* tokens already in the cache, tokens of this step */
} seq_spec;

typedef struct {
    int n_heads, n_kv_heads, head_dim, block_size, window;
    float q_amp, scale; /* q uniform in [-q_amp, q_amp); scale 0 = 1/sqrt(head_dim) */
    double atol, rtol;
} attn_case;

/* Builds the case's sequences with dense K/V, stores them in a paged pool through shuffled
 * block tables (prefix by the test, new tokens through kv_write_cpu), checks the pool, runs
 * paged_attention_cpu and compares it with dense attention in double. */
static void run_attention_case(const attn_case *c, const seq_spec *seqs, int n_seqs) {
    const int nh = c->n_heads, nkv = c->n_kv_heads, hd = c->head_dim, bs = c->block_size;
    const int group = nh / nkv;
    const float scale = c->scale > 0 ? c->scale : 1.0f / sqrtf((float)hd);
    const size_t kv_row = (size_t)nkv * hd;

    /* Shapes and the shuffled block assignment; the last block is a spare that stays NaN
     * and fills the unused ends of the block tables. */
    int n_tokens = 0, max_blocks = 1, total_blocks = 0;
    for (int s = 0; s < n_seqs; s++) {
        const int nb = (seqs[s].n_cached + seqs[s].n_new + bs - 1) / bs;
        n_tokens += seqs[s].n_new;
        total_blocks += nb;
        if (nb + 1 > max_blocks) max_blocks = nb + 1;
    }
    const int num_blocks = total_blocks + 3;
    int32_t *perm = folio_xmalloc((size_t)num_blocks * sizeof(int32_t));
    for (int b = 0; b < num_blocks; b++) perm[b] = b;
    for (int b = num_blocks - 1; b > 0; b--) {
        const int j = irand(b + 1);
        const int32_t tmp = perm[b];
        perm[b] = perm[j];
        perm[j] = tmp;
    }
    const int32_t spare = perm[num_blocks - 1];
    int32_t *tables = folio_xmalloc((size_t)n_seqs * max_blocks * sizeof(int32_t));
    int32_t *seq_start = folio_xmalloc((size_t)(n_seqs + 1) * sizeof(int32_t));
    int32_t *positions = folio_xmalloc((size_t)(n_tokens + 1) * sizeof(int32_t));
    int64_t *slots = folio_xmalloc((size_t)(n_tokens + 1) * sizeof(int64_t));
    float **dense_k = folio_xmalloc((size_t)n_seqs * sizeof(float *)); /* [ctx][nkv][hd] */
    float **dense_v = folio_xmalloc((size_t)n_seqs * sizeof(float *));
    const size_t pool_len = (size_t)num_blocks * bs * kv_row;
    float *k_cache = nan_vec(pool_len), *v_cache = nan_vec(pool_len);
    float *k_want = nan_vec(pool_len), *v_want = nan_vec(pool_len);
    /* New tokens' K/V, one padding row at the end (slot -1) that must not be stored. */
    float *k_new = rand_vec((size_t)(n_tokens + 1) * kv_row, -1, 1);
    float *v_new = rand_vec((size_t)(n_tokens + 1) * kv_row, -1, 1);

    int next_block = 0, t = 0;
    seq_start[0] = 0;
    for (int s = 0; s < n_seqs; s++) {
        const int ctx = seqs[s].n_cached + seqs[s].n_new, nb = (ctx + bs - 1) / bs;
        int32_t *table = tables + (size_t)s * max_blocks;
        for (int b = 0; b < max_blocks; b++) table[b] = b < nb ? perm[next_block++] : spare;
        dense_k[s] = rand_vec((size_t)ctx * kv_row, -1, 1);
        dense_v[s] = rand_vec((size_t)ctx * kv_row, -1, 1);
        for (int p = 0; p < ctx; p++) {
            const size_t slot = (size_t)table[p / bs] * bs + p % bs;
            float *kd = dense_k[s] + (size_t)p * kv_row, *vd = dense_v[s] + (size_t)p * kv_row;
            if (p >= seqs[s].n_cached) { /* a new token: its K/V come from k_new, v_new */
                memcpy(kd, k_new + (size_t)t * kv_row, kv_row * sizeof(float));
                memcpy(vd, v_new + (size_t)t * kv_row, kv_row * sizeof(float));
                positions[t] = p;
                slots[t] = (int64_t)slot;
                t++;
            } else { /* the cached prefix, stored by the test */
                memcpy(k_cache + slot * kv_row, kd, kv_row * sizeof(float));
                memcpy(v_cache + slot * kv_row, vd, kv_row * sizeof(float));
            }
            memcpy(k_want + slot * kv_row, kd, kv_row * sizeof(float));
            memcpy(v_want + slot * kv_row, vd, kv_row * sizeof(float));
        }
        seq_start[s + 1] = t;
    }
    slots[n_tokens] = -1;

    kv_write_cpu(k_cache, v_cache, k_new, v_new, slots, n_tokens + 1, nkv, hd);
    for (size_t i = 0; i < pool_len; i++) {
        const int k_ok = isnan(k_want[i]) ? isnan(k_cache[i]) : k_cache[i] == k_want[i];
        const int v_ok = isnan(v_want[i]) ? isnan(v_cache[i]) : v_cache[i] == v_want[i];
        if (!k_ok || !v_ok) fail_msg("kv_write: pool element %zu differs", i);
    }

    const size_t q_len = (size_t)n_tokens * nh * hd;
    float *q = rand_vec(q_len, -c->q_amp, c->q_amp);
    float *out = nan_vec(q_len);
    paged_attention_cpu(out, q, k_cache, v_cache, tables, max_blocks, seq_start, positions,
                        n_seqs, nh, nkv, hd, bs, c->window, scale);

    /* Dense reference: softmax over the visible positions of the sequence, in double. */
    double *ref = folio_xmalloc(q_len * sizeof(double));
    int max_ctx = 1;
    for (int s = 0; s < n_seqs; s++)
        if (seqs[s].n_cached + seqs[s].n_new > max_ctx) max_ctx = seqs[s].n_cached + seqs[s].n_new;
    double *w = folio_xmalloc((size_t)max_ctx * sizeof(double)); /* [max_ctx] */
    for (int s = 0; s < n_seqs; s++) {
        for (int tt = seq_start[s]; tt < seq_start[s + 1]; tt++) {
            const int p = positions[tt];
            const int lo = c->window > 0 && p - c->window + 1 > 0 ? p - c->window + 1 : 0;
            for (int h = 0; h < nh; h++) {
                const float *qv = q + ((size_t)tt * nh + h) * hd;
                const int kvh = h / group;
                double m = -INFINITY, sum = 0;
                for (int j = lo; j <= p; j++) {
                    const float *kv = dense_k[s] + (size_t)j * kv_row + (size_t)kvh * hd;
                    double dot = 0;
                    for (int d = 0; d < hd; d++) dot += (double)qv[d] * kv[d];
                    w[j - lo] = dot * scale;
                    if (w[j - lo] > m) m = w[j - lo];
                }
                for (int j = lo; j <= p; j++) sum += (w[j - lo] = exp(w[j - lo] - m));
                double *r = ref + ((size_t)tt * nh + h) * hd;
                for (int d = 0; d < hd; d++) r[d] = 0;
                for (int j = lo; j <= p; j++) {
                    const float *vv = dense_v[s] + (size_t)j * kv_row + (size_t)kvh * hd;
                    for (int d = 0; d < hd; d++) r[d] += w[j - lo] / sum * vv[d];
                }
            }
        }
    }
    char what[160];
    snprintf(what, sizeof what, "attention heads %d/%d hd %d bs %d window %d", nh, nkv, hd, bs,
             c->window);
    assert_int_equal(count_mismatches(what, out, ref, q_len, c->atol, c->rtol), 0);

    free(w);
    free(ref);
    free(out);
    free(q);
    for (int s = 0; s < n_seqs; s++) {
        free(dense_k[s]);
        free(dense_v[s]);
    }
    free(v_new);
    free(k_new);
    free(v_want);
    free(k_want);
    free(v_cache);
    free(k_cache);
    free(dense_v);
    free(dense_k);
    free(slots);
    free(positions);
    free(seq_start);
    free(tables);
    free(perm);
}

/* One prefill of 37 tokens after 5 cached, two decodes (contexts 50 and 17): over block
 * sizes, GQA ratios and head dims. */
static void test_paged_attention_mixed(void **state) {
    (void)state;
    rng_seed(8);
    static const seq_spec seqs[] = {{5, 37}, {49, 1}, {16, 1}};
    static const int block_sizes[] = {1, 16, 32}, ratios[] = {1, 4, 8}, dims[] = {64, 128};
    for (int bi = 0; bi < 3; bi++)
        for (int ri = 0; ri < 3; ri++)
            for (int di = 0; di < 2; di++) {
                const attn_case c = {.n_heads = 2 * ratios[ri], .n_kv_heads = 2,
                                     .head_dim = dims[di], .block_size = block_sizes[bi],
                                     .window = 0, .q_amp = 1, .atol = 1e-5, .rtol = 1e-5};
                run_attention_case(&c, seqs, 3);
            }
}

/* Sliding windows narrower than, equal to and wider than the contexts; window 1 sees only
 * the token itself. */
static void test_paged_attention_sliding_window(void **state) {
    (void)state;
    rng_seed(9);
    static const seq_spec seqs[] = {{5, 37}, {49, 1}, {16, 1}};
    static const int windows[] = {1, 7, 16, 33, 42, 4096};
    for (int wi = 0; wi < 6; wi++) {
        const attn_case c = {.n_heads = 8, .n_kv_heads = 2, .head_dim = 64, .block_size = 16,
                             .window = windows[wi], .q_amp = 1, .atol = 1e-5, .rtol = 1e-5};
        run_attention_case(&c, seqs, 3);
    }
    const attn_case c1 = {.n_heads = 4, .n_kv_heads = 4, .head_dim = 128, .block_size = 1,
                          .window = 5, .q_amp = 1, .atol = 1e-5, .rtol = 1e-5};
    run_attention_case(&c1, seqs, 3);
}

/* Edge cases: prefill from an empty cache, a decode at position 0, a lone decode, and
 * scores far beyond float's exp range (only the max subtraction keeps them finite). */
static void test_paged_attention_edges(void **state) {
    (void)state;
    rng_seed(10);
    static const seq_spec fresh[] = {{0, 20}, {0, 1}};
    const attn_case c0 = {.n_heads = 16, .n_kv_heads = 2, .head_dim = 128, .block_size = 16,
                          .window = 0, .q_amp = 1, .atol = 1e-5, .rtol = 1e-5};
    run_attention_case(&c0, fresh, 2);

    static const seq_spec lone[] = {{1000, 1}};
    const attn_case c1 = {.n_heads = 8, .n_kv_heads = 1, .head_dim = 64, .block_size = 32,
                          .window = 0, .q_amp = 1, .atol = 1e-5, .rtol = 1e-5};
    run_attention_case(&c1, lone, 1);

    static const seq_spec peaky[] = {{30, 3}, {7, 1}};
    const attn_case c2 = {.n_heads = 4, .n_kv_heads = 4, .head_dim = 128, .block_size = 16,
                          .window = 0, .q_amp = 30, .scale = 1.0f, .atol = 2e-4, .rtol = 2e-4};
    run_attention_case(&c2, peaky, 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embedding_vocab_shard),
        cmocka_unit_test(test_rmsnorm_vs_double),
        cmocka_unit_test(test_add_rmsnorm_vs_double),
        cmocka_unit_test(test_matmul_vs_double),
        cmocka_unit_test(test_rope_vs_complex),
        cmocka_unit_test(test_silu_mul_vs_double),
        cmocka_unit_test(test_paged_attention_mixed),
        cmocka_unit_test(test_paged_attention_sliding_window),
        cmocka_unit_test(test_paged_attention_edges),
    };
    const int failed = cmocka_run_group_tests(tests, NULL, NULL);
    const char *bench = getenv("FOLIO_BENCH");
    if (!failed && bench && *bench && strcmp(bench, "0") != 0) bench_matmul();
    return failed;
}
