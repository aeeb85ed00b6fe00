/* Paged attention and the KV-cache write, CPU reference (float32).
 *
 * The KV cache of one layer is a pool of blocks, [num_blocks][block_size][n_kv_heads][head_dim];
 * the token at position pos of sequence s lives in block block_tables[s][pos / block_size] at
 * offset pos % block_size. kv_write_cpu stores the step's new K/V at their slots first, so by the
 * time attention runs the cache holds each sequence's whole context, prefix and new tokens.
 *
 * Each (query token, head) is independent: scores q.k * scale over the visible positions,
 * softmax with the maximum subtracted (float exponentials, double sum), then the weighted sum
 * of V rows. This is HF's eager attention (matmul, * scaling, causal/sliding mask, float32
 * softmax, matmul) without the masked entries.
 *
 * The FP8 KV cache (--kv-cache-dtype fp8) stores e4m3(value / scale) per element with one K
 * and one V scale per layer (engine/base/fp8_layout.h's rounding); attention then takes
 * (q . e4m3 row) * k_scale and adds p * v_scale * e4m3 row: the same arithmetic the GPU's
 * FP8 KV path is to follow. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fp8_layout.h"
#include "kernels_cpu.h"

/* Index of the sequence whose token range [seq_start[s], seq_start[s+1]) holds token t. */
static int seq_of_token(const int32_t *seq_start, /* [n_seqs + 1] */ int n_seqs, int t) {
    int lo = 0, hi = n_seqs - 1;
    while (lo < hi) { /* last s with seq_start[s] <= t */
        const int mid = lo + (hi - lo + 1) / 2;
        if (seq_start[mid] <= t) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

/* First position query position p may see: p - window + 1, clamped at 0 (window 0 = all). */
static int first_visible(int p, int window) {
    if (window <= 0 || p < window) return 0;
    return p - window + 1;
}

/* The cache one attention reads: float rows, or FP8 (e4m3) rows and their per-layer scales. */
typedef struct {
    const float *k, *v;          /* float cache, or NULL */
    const uint8_t *k8, *v8;      /* FP8 cache (when k is NULL) */
    float k_scale, v_scale;
} kv_rows;

/* q . K[slot] (the row at kv_off of that slot). FP8: the sum over e4m3 values, then times
 * the scale. */
static float kv_dot(const kv_rows *c, size_t at, const float *qv, int head_dim) {
    float dot = 0.0f;
    if (c->k) {
        const float *kv = c->k + at;
#pragma omp simd reduction(+ : dot)
        for (int d = 0; d < head_dim; d++) dot += qv[d] * kv[d];
        return dot;
    }
    const uint8_t *k8 = c->k8 + at;
    for (int d = 0; d < head_dim; d++) dot += qv[d] * fp8_e4m3_to_float(k8[d]);
    return dot * c->k_scale;
}

/* o += p V[slot]. */
static void kv_axpy(const kv_rows *c, size_t at, float p, float *o, int head_dim) {
    if (c->v) {
        const float *vv = c->v + at;
#pragma omp simd
        for (int d = 0; d < head_dim; d++) o[d] += p * vv[d];
        return;
    }
    const uint8_t *v8 = c->v8 + at;
    const float ps = p * c->v_scale;
    for (int d = 0; d < head_dim; d++) o[d] += ps * fp8_e4m3_to_float(v8[d]);
}

static void attend(float *out, const float *q, const kv_rows *cache,
                   const int32_t *block_tables, int max_blocks, const int32_t *seq_start,
                   const int32_t *positions, int n_seqs, int n_heads, int n_kv_heads,
                   int head_dim, int block_size, int window, float scale) {
    if (n_seqs <= 0) return;
    const int n_tokens = seq_start[n_seqs] - seq_start[0];
    if (n_tokens <= 0) return;
    const int t0 = seq_start[0];
    const int group = n_heads / n_kv_heads; /* query heads per KV head */
    const size_t slot_stride = (size_t)n_kv_heads * (size_t)head_dim;

    /* The longest visible context sizes each thread's score buffer. */
    int max_ctx = 1;
    for (int t = t0; t < t0 + n_tokens; t++) {
        const int ctx = positions[t] + 1 - first_visible(positions[t], window);
        if (ctx > max_ctx) max_ctx = ctx;
    }

#pragma omp parallel
    {
        float *scores = folio_xmalloc((size_t)max_ctx * sizeof(float)); /* [max_ctx] */
#pragma omp for collapse(2) schedule(dynamic, 4)
        for (int t = t0; t < t0 + n_tokens; t++) {
            for (int h = 0; h < n_heads; h++) {
                const int s = seq_of_token(seq_start, n_seqs, t);
                const int32_t *table = block_tables + (size_t)s * (size_t)max_blocks;
                const int p = positions[t];
                const int lo = first_visible(p, window);
                const int ctx = p + 1 - lo;
                const size_t kv_off = (size_t)(h / group) * (size_t)head_dim;
                const float *qv = q + ((size_t)t * (size_t)n_heads + (size_t)h) * (size_t)head_dim;
                float *o = out + ((size_t)t * (size_t)n_heads + (size_t)h) * (size_t)head_dim;

                float max_score = -INFINITY;
                for (int j = 0; j < ctx; j++) {
                    const int pos = lo + j;
                    const size_t slot = (size_t)table[pos / block_size] * (size_t)block_size +
                                        (size_t)(pos % block_size);
                    scores[j] = kv_dot(cache, slot * slot_stride + kv_off, qv, head_dim) * scale;
                    if (scores[j] > max_score) max_score = scores[j];
                }
                double sum = 0.0;
                for (int j = 0; j < ctx; j++) {
                    scores[j] = expf(scores[j] - max_score);
                    sum += scores[j];
                }
                const float sum_f = (float)sum;

                memset(o, 0, (size_t)head_dim * sizeof(float));
                for (int j = 0; j < ctx; j++) {
                    const int pos = lo + j;
                    const size_t slot = (size_t)table[pos / block_size] * (size_t)block_size +
                                        (size_t)(pos % block_size);
                    const float pj = scores[j] / sum_f; /* HF: exp / sum */
                    kv_axpy(cache, slot * slot_stride + kv_off, pj, o, head_dim);
                }
            }
        }
        free(scores);
    }
}

void paged_attention_cpu(float *out, const float *q, const float *k_cache, const float *v_cache,
                         const int32_t *block_tables, int max_blocks, const int32_t *seq_start,
                         const int32_t *positions, int n_seqs, int n_heads, int n_kv_heads,
                         int head_dim, int block_size, int window, float scale) {
    const kv_rows c = {.k = k_cache, .v = v_cache};
    attend(out, q, &c, block_tables, max_blocks, seq_start, positions, n_seqs, n_heads,
           n_kv_heads, head_dim, block_size, window, scale);
}

void paged_attention_fp8_cpu(float *out, const float *q, const uint8_t *k_cache,
                             const uint8_t *v_cache, float k_scale, float v_scale,
                             const int32_t *block_tables, int max_blocks,
                             const int32_t *seq_start, const int32_t *positions, int n_seqs,
                             int n_heads, int n_kv_heads, int head_dim, int block_size,
                             int window, float scale) {
    const kv_rows c = {.k8 = k_cache, .v8 = v_cache, .k_scale = k_scale, .v_scale = v_scale};
    attend(out, q, &c, block_tables, max_blocks, seq_start, positions, n_seqs, n_heads,
           n_kv_heads, head_dim, block_size, window, scale);
}

void kv_write_fp8_cpu(uint8_t *k_cache, uint8_t *v_cache, const float *k, const float *v,
                      const int64_t *slot_mapping, int n, int n_kv_heads, int head_dim,
                      float k_scale, float v_scale) {
    const size_t row = (size_t)n_kv_heads * (size_t)head_dim;
    for (int t = 0; t < n; t++) {
        const int64_t slot = slot_mapping[t];
        if (slot < 0) continue;
        for (size_t i = 0; i < row; i++) {
            k_cache[(size_t)slot * row + i] = fp8_e4m3_from_float(k[(size_t)t * row + i] / k_scale);
            v_cache[(size_t)slot * row + i] = fp8_e4m3_from_float(v[(size_t)t * row + i] / v_scale);
        }
    }
}

void kv_write_cpu(float *k_cache,              /* [num_blocks][block_size][n_kv_heads][head_dim] */
                  float *v_cache,              /* same shape as k_cache */
                  const float *k,              /* [n][n_kv_heads][head_dim] */
                  const float *v,              /* [n][n_kv_heads][head_dim] */
                  const int64_t *slot_mapping, /* [n] slot = block * block_size + offset */
                  int n, int n_kv_heads, int head_dim) {
    const size_t row = (size_t)n_kv_heads * (size_t)head_dim;
    for (int t = 0; t < n; t++) {
        const int64_t slot = slot_mapping[t];
        if (slot < 0) continue; /* padding token: nothing to store */
        memcpy(k_cache + (size_t)slot * row, k + (size_t)t * row, row * sizeof(float));
        memcpy(v_cache + (size_t)slot * row, v + (size_t)t * row, row * sizeof(float));
    }
}
