/* CPU reference twins of the model's kernels, in float32. Each CUDA kernel in kernels/ (.cu files)
 * is checked against the function of the same name here. Shapes are given per parameter;
 * matrices are row-major. */
#ifndef FOLIO_KERNELS_CPU_H
#define FOLIO_KERNELS_CPU_H

#include <stdint.h>

/* out[t] = table[ids[t] - row_start] for ids inside [row_start, row_start + n_rows), else 0
 * (vocab-parallel: the all-reduce over ranks completes the lookup).
 * out: [n][dim]; table: [n_rows][dim]. */
void embedding_cpu(float *out, const float *table, const int32_t *ids, int n, int dim,
                   int row_start, int n_rows);

/* out[t] = x[t] / rms(x[t]) * weight, over dim. out may alias x. out, x: [n][dim]. */
void rmsnorm_cpu(float *out, const float *x, const float *weight, int n, int dim, float eps);

/* residual += x; out = rmsnorm(residual). The fused form the GPU kernel has.
 * residual, x, out: [n][dim]. */
void add_rmsnorm_cpu(float *residual, const float *x, float *out, const float *weight, int n,
                     int dim, float eps);

/* out[n][out_f] = x[n][in_f] @ w[out_f][in_f]^T (+ bias[out_f] if bias). The one place
 * weights meet activations on the CPU (quantised weight types plug in here). */
void matmul_cpu(float *out, const float *x, const float *w, const float *bias, int n, int in_f,
                int out_f);

/* Rotates the first rotary_dim features of each head of x in place, in Hugging Face's
 * "rotate_half" layout (pairs i and i + head_dim/2). cos, sin: [max_position][head_dim/2];
 * x: [n][n_heads][head_dim]; positions: [n]. */
void rope_cpu(float *x, const int32_t *positions, const float *cos_table,
              const float *sin_table, int n, int n_heads, int head_dim);

/* out[t] = silu(gate_up[t][0:d]) * gate_up[t][d:2d] ... here with separate inputs:
 * out[n][d] = silu(gate[n][d]) * up[n][d]. out may alias gate. */
void silu_mul_cpu(float *out, const float *gate, const float *up, int n, int d);

/* Paged attention for a batch of sequences, prefill and decode mixed.
 * q, out: [n_tokens][n_heads][head_dim]; k_cache, v_cache: one layer's
 * [num_blocks][block_size][n_kv_heads][head_dim]. Sequence s's queries are rows
 * seq_start[s]..seq_start[s+1], at positions positions[t]; query t attends causally to
 * positions max(0, positions[t] - window + 1) .. positions[t] of its sequence (window 0 =
 * unlimited), read through block_tables[s][pos / block_size]. Query head h uses KV head
 * h / (n_heads / n_kv_heads). */
void paged_attention_cpu(float *out, const float *q, const float *k_cache, const float *v_cache,
                         const int32_t *block_tables, int max_blocks, const int32_t *seq_start,
                         const int32_t *positions, int n_seqs, int n_heads, int n_kv_heads,
                         int head_dim, int block_size, int window, float scale);

/* Writes k, v ([n][n_kv_heads][head_dim]) into the cache at slot_mapping[t]. */
void kv_write_cpu(float *k_cache, float *v_cache, const float *k, const float *v,
                  const int64_t *slot_mapping, int n, int n_kv_heads, int head_dim);

#endif
