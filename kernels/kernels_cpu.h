/* CPU reference twins of the model's kernels, in float32. Each CUDA kernel in kernels/ (the
 * .cu files) is checked against the function of the same name here. Shapes are given per
 * parameter; matrices are row-major. One file per kernel: kernels/<name>_cpu.c. */
#ifndef FOLIO_KERNELS_CPU_H
#define FOLIO_KERNELS_CPU_H

#include <stdint.h>

#include "fp8_layout.h"
#include "quant_layout.h"

/* out[t] = table[ids[t] - row_start] for ids inside [row_start, row_start + n_rows), else 0
 * (vocab-parallel: the all-reduce over ranks completes the lookup).
 * out: [n][dim]; table: [n_rows][dim]. */
void embedding_cpu(float *out, const float *table, const int32_t *ids, int n, int dim,
                   int row_start, int n_rows);

/* out[t] = weight * (x[t] / sqrt(mean(x[t]^2) + eps)), over dim, as HF's LlamaRMSNorm in
 * float32. out may alias x. out, x: [n][dim]; weight: [dim]. */
void rmsnorm_cpu(float *out, const float *x, const float *weight, int n, int dim, float eps);

/* residual += x; out = rmsnorm(residual). The fused form the GPU kernel has.
 * residual, x, out: [n][dim]; out may alias x or residual. weight: [dim]. */
void add_rmsnorm_cpu(float *residual, const float *x, float *out, const float *weight, int n,
                     int dim, float eps);

/* sum = parts[0] + ... + parts[world-1] (in rank order) + bias; residual += sum;
 * out = rmsnorm(residual): the one-shot all-reduce's fused tail (oneshot_allreduce.cu).
 * residual, out, sum, parts[k]: [n][dim]; bias: [dim] or NULL; weight: [dim]. */
void reduce_add_rmsnorm_cpu(float *residual, float *out, float *sum,
                            const float *const *parts, int world, const float *bias,
                            const float *weight, int n, int dim, float eps);

/* out[n][out_f] = x[n][in_f] @ w[out_f][in_f]^T (+ bias[out_f] if bias). The one place
 * weights meet activations on the CPU (quantised weight types plug in here). out must not
 * overlap x, w or bias. Float accumulation in a blocked order: equal to the exact product
 * to float rounding, not bit for bit to a naive loop. */
void matmul_cpu(float *out, const float *x, const float *w, const float *bias, int n, int in_f,
                int out_f);

/* Rotates every feature of each head of x in place (rotary dim = head_dim; partial rotary
 * is not supported), in Hugging Face's "rotate_half" layout: pairs i and i + head_dim/2,
 *   x'[i] = x[i] cos[i] - x[i + head_dim/2] sin[i],
 *   x'[i + head_dim/2] = x[i + head_dim/2] cos[i] + x[i] sin[i]   (i < head_dim/2),
 * with cos, sin the rows positions[t] of the engine's tables. head_dim even; positions must
 * be below max_position (not checked). cos, sin: [max_position][head_dim/2];
 * x: [n][n_heads][head_dim]; positions: [n]. */
void rope_cpu(float *x, const int32_t *positions, const float *cos_table,
              const float *sin_table, int n, int n_heads, int head_dim);

/* out = silu(gate) * up elementwise, silu(x) = x / (1 + exp(-x)).
 * out, gate, up: [n][d]; out may alias gate or up. */
void silu_mul_cpu(float *out, const float *gate, const float *up, int n, int d);

/* Paged attention for a batch of sequences, prefill and decode mixed.
 * q, out: [n_tokens][n_heads][head_dim] (out must not overlap q); k_cache, v_cache: one
 * layer's [num_blocks][block_size][n_kv_heads][head_dim]; block_tables: [n_seqs][max_blocks];
 * seq_start: [n_seqs + 1]; positions: [n_tokens]. Sequence s's queries are rows
 * seq_start[s]..seq_start[s+1] (exclusive), at positions positions[t]; query t attends
 * causally to positions max(0, positions[t] - window + 1) .. positions[t] of its sequence
 * (window 0 = unlimited), position pos read from block block_tables[s][pos / block_size] at
 * offset pos % block_size. The cache must already hold all those positions (kv_write_cpu
 * stores the step's new tokens first). Query head h uses KV head h / (n_heads / n_kv_heads).
 * Softmax of (q . k) * scale, with the maximum subtracted. */
void paged_attention_cpu(float *out, const float *q, const float *k_cache, const float *v_cache,
                         const int32_t *block_tables, int max_blocks, const int32_t *seq_start,
                         const int32_t *positions, int n_seqs, int n_heads, int n_kv_heads,
                         int head_dim, int block_size, int window, float scale);

/* Writes k, v ([n][n_kv_heads][head_dim]) into the cache (layout as above) at slot
 * slot_mapping[t] = block * block_size + offset ([n]); a negative slot (padding) is skipped. */
void kv_write_cpu(float *k_cache, float *v_cache, const float *k, const float *v,
                  const int64_t *slot_mapping, int n, int n_kv_heads, int head_dim);

/* The FP8 KV cache: kv_write_cpu storing e4m3(k / k_scale), e4m3(v / v_scale) bytes
 * (engine/base/fp8_layout.h's rounding, saturating at +-448), and paged_attention_cpu over
 * such a cache: scores (q . e4m3(K)) * k_scale * scale, output sum p * v_scale * e4m3(V).
 * One K and one V scale per layer. */
void kv_write_fp8_cpu(uint8_t *k_cache, uint8_t *v_cache, const float *k, const float *v,
                      const int64_t *slot_mapping, int n, int n_kv_heads, int head_dim,
                      float k_scale, float v_scale);
void paged_attention_fp8_cpu(float *out, const float *q, const uint8_t *k_cache,
                             const uint8_t *v_cache, float k_scale, float v_scale,
                             const int32_t *block_tables, int max_blocks,
                             const int32_t *seq_start, const int32_t *positions, int n_seqs,
                             int n_heads, int n_kv_heads, int head_dim, int block_size,
                             int window, float scale);

/* out[i] = x[rows[i]]. out: [m][dim]; x: [n][dim]; rows: [m]. */
void gather_rows_cpu(float *out, const float *x, const int32_t *rows, int m, int dim);

/* W[r][perm ? perm[c] : c] = (q - z) * s of a quantized matrix (quant_layout.h, host
 * pointers, bits 4 or 8), in float. w: [m->rows][m->in_cols], input-column order; padding
 * columns (perm QL_PAD) are skipped. */
void w4a16_dequant_cpu(float *w, const quant_matrix *m);

/* out[n][m->rows] = x[n][m->in_cols] @ W^T (+ bias[m->rows] if bias), W as w4a16_dequant_cpu
 * makes it (twin of w4a16_gemv_cuda and w4a16_gemm_cuda). Returns -1 when the float copy of W
 * cannot be allocated, else 0. */
int w4a16_cpu(float *out, const float *x, const quant_matrix *m, const float *bias, int n);

/* ---- FP8 e4m3 (fp8_layout.h; twins of the FP8 GEMM / GEMV and activation quantization) ---- */

/* Activation scales of x [n][k] for fp8_act act: FP8_ACT_TOKEN a[t] = max_c |x[t][c]| / 448
 * ([n]); FP8_ACT_GROUP a[t][g] over columns 128g .. 128g + 127 (the last group may be
 * shorter; [n][ceil(k / 128)]); FP8_ACT_STATIC a[0] = input_scale ([1]). A zero row or group
 * gets 1. fp8_act_scale_count gives the number. */
int fp8_act_scale_count(fp8_act act, int n, int k);

/* q [n][k] = e4m3(x / a) (static: the quotient clamped to +-448 first; dynamic quotients are
 * within +-448 by construction) and a as above. */
void fp8_act_quant_cpu(uint8_t *q, float *a, const float *x, int n, int k, fp8_act act,
                       float input_scale);

/* x [n][k] = e4m3(x / a) * a in place (fp8_qdq of every element with its scale): what the FP8
 * kernels compute with, as float. */
void fp8_act_qdq_cpu(float *x, int n, int k, fp8_act act, float input_scale);

/* The reference FP8 product: out[n][m->rows] = sum_c e4m3(xq[t][c]) * a(t, c) *
 * e4m3(w[r][c]) * scale(r, c) (+ bias[m->rows] if bias), x [n][m->cols] quantized as m->act
 * says (fp8_act_quant_cpu), each product formed in double and summed in double, rounded to
 * float once. Returns -1 when its scratch cannot be allocated, else 0. */
int fp8_gemm_cpu(float *out, const float *x, const fp8_matrix *m, const float *bias, int n);

#endif
