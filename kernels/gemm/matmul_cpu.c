/* Matrix product with transposed weights, CPU reference and the CPU backend's hot spot:
 * out[n][out_f] = x[n][in_f] @ w[out_f][in_f]^T (+ bias[out_f]), float32.
 *
 * Both operands are read along in_f (contiguous), so each output is a dot product. The work is
 * cut into micro-tiles of TILE_X rows of x by TILE_W rows of w: the tile's TILE_X * TILE_W
 * dot products run together, eight lanes wide, so each loaded vector of w is used TILE_X times
 * and each vector of x TILE_W times. Around that:
 *   - threads split the output features (rows of w), each owning whole columns of out;
 *   - in_f is walked in chunks of KC floats, so a tile's slice of w stays in L1 while every
 *     x row of the panel passes it, and the panel's slice of x (PANEL_X rows) stays in L2;
 *   - prefill (large n) goes through x in panels of PANEL_X rows, each panel a pass over w.
 * Decode (n = 1) is one pass over w with 1 x TILE_W tiles: bound by memory bandwidth.
 *
 * The eight-lane vectors use the GCC/Clang vector extension: plain C arithmetic that compiles
 * to SSE pairs on baseline x86-64 and to one AVX register in the clones of w_tile below.
 * Summation order differs from a naive loop (per-lane partial sums, then per-chunk sums), so
 * results match a double-precision reference to float rounding, not bit for bit. */
#include <stddef.h>
#include <string.h>

#include "kernels_cpu.h"

#define TILE_X 4    /* rows of x per micro-tile */
#define TILE_W 3    /* rows of w per micro-tile: 4 x 3 accumulators + 2 fit 16 registers */
#define KC 512      /* in_f chunk, floats: a tile's w slice is TILE_W * 2 KiB */
#define PANEL_X 64  /* rows of x per pass over w: 64 * KC * 4 B = 128 KiB per chunk */
#define MATMUL_PAR_MIN_FLOPS (1 << 18) /* below this a single thread is faster */

/* The tile loops must be unrolled completely for the accumulators to live in registers;
 * -O2 alone does not do it. */
#if defined(__GNUC__) && !defined(__clang__)
#define UNROLL _Pragma("GCC unroll 4")
#elif defined(__clang__)
#define UNROLL _Pragma("unroll")
#else
#define UNROLL
#endif

typedef float v8f __attribute__((vector_size(8 * sizeof(float))));

/* Adds to out[a][b] (a < nx, b < nw) the dot product of x row a and w row b over len
 * floats. nx <= TILE_X and nw <= TILE_W are compile-time constants at every call, so the
 * accumulator array becomes registers. */
static inline __attribute__((always_inline)) void
micro_tile(float *restrict out,     /* [nx][ldo], columns 0..nw-1 */
           size_t ldo,
           const float *restrict x, /* [nx][ld], len floats used */
           const float *restrict w, /* [nw][ld], len floats used */
           size_t ld, int len, const int nx, const int nw) {
    v8f acc[TILE_X][TILE_W];
    UNROLL
    for (int a = 0; a < nx; a++)
        UNROLL
        for (int b = 0; b < nw; b++) acc[a][b] = (v8f){0};

    int k = 0;
    for (; k + 8 <= len; k += 8) {
        v8f wv[TILE_W];
        UNROLL
        for (int b = 0; b < nw; b++) memcpy(&wv[b], w + (size_t)b * ld + k, sizeof(v8f));
        UNROLL
        for (int a = 0; a < nx; a++) {
            v8f xv;
            memcpy(&xv, x + (size_t)a * ld + k, sizeof xv);
            UNROLL
            for (int b = 0; b < nw; b++) acc[a][b] += xv * wv[b];
        }
    }
    UNROLL
    for (int a = 0; a < nx; a++) {
        UNROLL
        for (int b = 0; b < nw; b++) {
            const v8f v = acc[a][b];
            float s = ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
            for (int kk = k; kk < len; kk++)
                s += x[(size_t)a * ld + kk] * w[(size_t)b * ld + kk];
            out[(size_t)a * ldo + b] += s;
        }
    }
}

/* One w tile (nw rows starting at w) against x rows [0, ni) over the whole in_f, adding into
 * out (which the caller initialised). GCC compiles it three times, for AVX-512 (32 vector
 * registers), AVX2 and baseline x86-64, and the loader picks one once (function
 * multi-versioning). No FMA contraction in ISO C mode, so every version rounds the same way
 * and the results do not depend on the machine. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#endif
static void w_tile(float *out,     /* [ni][ldo], columns 0..nw-1 */
                   size_t ldo,
                   const float *x, /* [ni][in_f] */
                   const float *w, /* [nw][in_f] */
                   int ni, int nw, int in_f) {
    const size_t ld = (size_t)in_f;
    for (int k0 = 0; k0 < in_f; k0 += KC) {
        const int len = in_f - k0 < KC ? in_f - k0 : KC;
        int i = 0;
        if (nw == TILE_W) {
            for (; i + TILE_X <= ni; i += TILE_X)
                micro_tile(out + (size_t)i * ldo, ldo, x + (size_t)i * ld + k0, w + k0, ld, len,
                           TILE_X, TILE_W);
            for (; i < ni; i++)
                micro_tile(out + (size_t)i * ldo, ldo, x + (size_t)i * ld + k0, w + k0, ld, len,
                           1, TILE_W);
        } else { /* the last, partial w tile: one output feature at a time */
            for (int b = 0; b < nw; b++) {
                const float *wb = w + (size_t)b * ld + k0;
                for (i = 0; i + TILE_X <= ni; i += TILE_X)
                    micro_tile(out + (size_t)i * ldo + b, ldo, x + (size_t)i * ld + k0, wb, ld,
                               len, TILE_X, 1);
                for (; i < ni; i++)
                    micro_tile(out + (size_t)i * ldo + b, ldo, x + (size_t)i * ld + k0, wb, ld,
                               len, 1, 1);
            }
        }
    }
}

void matmul_cpu(float *out,       /* [n][out_f] */
                const float *x,   /* [n][in_f] */
                const float *w,   /* [out_f][in_f] */
                const float *bias, /* [out_f] or NULL */
                int n, int in_f, int out_f) {
    const int n_tiles = (out_f + TILE_W - 1) / TILE_W;
    const double flops = 2.0 * (double)n * (double)in_f * (double)out_f;
#pragma omp parallel if (flops >= MATMUL_PAR_MIN_FLOPS)
    for (int i0 = 0; i0 < n; i0 += PANEL_X) {
        const int ni = n - i0 < PANEL_X ? n - i0 : PANEL_X;
#pragma omp for schedule(static)
        for (int tile = 0; tile < n_tiles; tile++) {
            const int j = tile * TILE_W;
            const int nw = out_f - j < TILE_W ? out_f - j : TILE_W;
            float *o = out + (size_t)i0 * (size_t)out_f + (size_t)j;
            for (int i = 0; i < ni; i++)
                for (int b = 0; b < nw; b++)
                    o[(size_t)i * (size_t)out_f + b] = bias ? bias[j + b] : 0.0f;
            w_tile(o, (size_t)out_f, x + (size_t)i0 * (size_t)in_f, w + (size_t)j * (size_t)in_f,
                   ni, nw, in_f);
        }
    }
}
