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
 * softmax, matmul) without the masked entries. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
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

void paged_attention_cpu(float *out,          /* [n_tokens][n_heads][head_dim] */
                         const float *q,      /* [n_tokens][n_heads][head_dim] */
                         const float *k_cache, /* [num_blocks][block_size][n_kv_heads][head_dim] */
                         const float *v_cache, /* same shape as k_cache */
                         const int32_t *block_tables, /* [n_seqs][max_blocks] */
                         int max_blocks,
                         const int32_t *seq_start, /* [n_seqs + 1] */
                         const int32_t *positions, /* [n_tokens] */
                         int n_seqs, int n_heads, int n_kv_heads, int head_dim, int block_size,
                         int window, float scale) {
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
                    const float *kv = k_cache + slot * slot_stride + kv_off;
                    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
                    for (int d = 0; d < head_dim; d++) dot += qv[d] * kv[d];
                    scores[j] = dot * scale;
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
                    const float *vv = v_cache + slot * slot_stride + kv_off;
                    const float pj = scores[j] / sum_f; /* HF: exp / sum */
#pragma omp simd
                    for (int d = 0; d < head_dim; d++) o[d] += pj * vv[d];
                }
            }
        }
        free(scores);
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
