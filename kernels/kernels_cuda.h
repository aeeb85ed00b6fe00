/* C-callable launchers of the CUDA kernels, one kernels/<name>.cu each. Every launcher is
 * asynchronous on the stream it is given and is checked against the CPU twin of the same
 * name (kernels_cpu.h) by tests/unit/test_gpu_<name>.c. Pointers are device pointers; shapes
 * are given per parameter, row-major. Available when built with CUDA (FOLIO_HAVE_CUDA).
 * Precondition violations (dtype, shape) are bugs: the launcher prints them and aborts. */
#ifndef FOLIO_KERNELS_CUDA_H
#define FOLIO_KERNELS_CUDA_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#include "attention_cuda.h"
#include "sample_rows.h"

#include "dtype.h"
#include "fp8_layout.h"
#include "quant_dummy.h"
#include "quant_layout.h"

#ifdef __cplusplus
extern "C" {
#endif

/* residual += x; out = rmsnorm(residual) * weight, per row (twin: add_rmsnorm_cpu).
 * residual, x, out: [n][dim]; weight: [dim]; all of element type dtype, DTYPE_F32 or
 * DTYPE_BF16 (or DTYPE_F16, rounded the same way). out may alias x or residual. Rounds
 * as Hugging Face does in that dtype: in bfloat16 the sum is rounded to bfloat16, the mean of squares is taken in float32 over the
 * rounded sum, x * 1/sqrt(mean + eps) is rounded to bfloat16 and multiplied by the weight,
 * rounded again. Rows of any dim >= 1; 16-byte vector loads when every pointer is 16-byte
 * aligned and a row is a whole number of vectors. */
void add_rmsnorm_cuda(void *residual, const void *x, void *out, const void *weight, int n,
                      int dim, float eps, folio_dtype dtype, cudaStream_t stream);
/* The scales an FP8 product left to the kernel that reads its output (fp8_linear_ex_cuda,
 * gemm.h): the value of y[t][c] is y[t][c] * ws[c] * xs[t], in float, rounded to y's type,
 * bit for bit what fp8_rescale_rows_cuda would have stored. xs may be the buffer the reading
 * kernel writes its own quantization scales to (each row's scale is read first). */
typedef struct {
    const float *ws; /* [columns of y] */
    const float *xs; /* [rows of y] */
} fp8_out_scale;

/* add_rmsnorm_cuda (bf16 or fp16), and out's FP8 quantization for the next product in the
 * same kernel: xq e4m3 [n][dim] (8-byte aligned for the vector path), xs [n] (act
 * FP8_ACT_TOKEN: each row's scale; FP8_ACT_STATIC: input_scale), bit for bit
 * fp8_quantize_act_cuda's of out (twin: add_rmsnorm_cpu, then fp8_act_quant_cpu). x_scale
 * (NULL: none): x is an FP8 product's unscaled output, applied as fp8_out_scale says. */
void add_rmsnorm_fp8_cuda(void *residual, const void *x, void *out, const void *weight, int n,
                          int dim, float eps, folio_dtype dtype, uint8_t *xq, float *xs,
                          fp8_act act, float input_scale, const fp8_out_scale *x_scale,
                          cudaStream_t stream);

/* Below, dtype is DTYPE_F32, DTYPE_BF16 or DTYPE_F16 unless said otherwise. */

/* out[t] = table[ids[t] - row_start] for ids in [row_start, row_start + n_rows), else zeros
 * (twin: embedding_cpu). out: [n][dim]; table: [n_rows][dim]; ids: [n]. */
void embedding_cuda(void *out, const void *table, const int32_t *ids, int n, int dim,
                    int row_start, int n_rows, folio_dtype dtype, cudaStream_t stream);

/* out[t][i] = silu(gate_up[t][i]) * gate_up[t][d + i], in float, rounded once (twin:
 * silu_mul_cpu on the two halves). out: [n][d]; gate_up: [n][2d] (the fused GEMM output);
 * n <= 65535. */
void silu_mul_cuda(void *out, const void *gate_up, int n, int d, folio_dtype dtype,
                   cudaStream_t stream);
/* silu_mul_cuda (bf16 or fp16, d <= 4096 16-byte packs), and out's FP8 quantization for the
 * down product in the same kernel, as add_rmsnorm_fp8_cuda: xq e4m3 [n][d], xs [n] (twin:
 * silu_mul_cpu, then fp8_act_quant_cpu). gu_scale (NULL: none): gate_up is the gate|up FP8
 * product's unscaled output, applied as fp8_out_scale says (ws over all 2d columns). */
void silu_mul_fp8_cuda(void *out, const void *gate_up, int n, int d, folio_dtype dtype,
                       uint8_t *xq, float *xs, fp8_act act, float input_scale,
                       const fp8_out_scale *gu_scale, cudaStream_t stream);

/* out[i] = x[rows[i]] (twin: gather_rows_cpu). out: [m][dim]; x: [n][dim]; rows: [m]. */
void gather_rows_cuda(void *out, const void *x, const int32_t *rows, int m, int dim,
                      folio_dtype dtype, cudaStream_t stream);

/* Per-head RMSNorm (when q_norm/k_norm are given, Qwen3) and rotary embedding of the q and k
 * heads of the fused GEMM output, K and V written into one layer's HND cache at
 * slot_mapping[t] (slot < 0: not written), rotated q written contiguously to q_out (twins:
 * rmsnorm_cpu, rope_cpu, kv_write_cpu). q_out: [n][n_heads][head_dim];
 * qkv: [n][(n_heads + 2 n_kv_heads) * head_dim] (q heads, k heads, v heads; not modified);
 * k_cache, v_cache: [num_blocks][n_kv_heads][block_size][head_dim]; slot_mapping, positions:
 * [n]; cos_table, sin_table: float [max_position][head_dim / 2]; q_norm, k_norm: [head_dim] or
 * both NULL. */
void rope_kv_write_cuda(void *q_out, const void *qkv, void *k_cache, void *v_cache,
                        const int64_t *slot_mapping, const int32_t *positions,
                        const float *cos_table, const float *sin_table, const void *q_norm,
                        const void *k_norm, int n, int n_heads, int n_kv_heads, int head_dim,
                        int block_size, float eps, folio_dtype dtype, cudaStream_t stream);
/* The same into an FP8 (e4m3) cache: each K and V value, rounded to dtype as above, is stored
 * as e4m3(value / k_scale or v_scale), round to nearest even, saturating at +-448 (twin:
 * kv_write_fp8_cpu). k_cache, v_cache: one byte per element, same layout. */
void rope_kv_write_fp8_cuda(void *q_out, const void *qkv, uint8_t *k_cache, uint8_t *v_cache,
                            const int64_t *slot_mapping, const int32_t *positions,
                            const float *cos_table, const float *sin_table, const void *q_norm,
                            const void *k_norm, int n, int n_heads, int n_kv_heads,
                            int head_dim, int block_size, float eps, float k_scale,
                            float v_scale, folio_dtype dtype, cudaStream_t stream);

/* ids[r] = index of the largest logit of row r, lowest on ties (twin: sampler_argmax).
 * ids: [n]; logits: float [n][vocab]. */
void argmax_cuda(int32_t *ids, const float *logits, int n, int vocab, cudaStream_t stream);

/* The whole sampler on the GPU, kernels/sample_rows.h's algorithm (twin: sample_rows_cpu,
 * bit-identical ids). ids: [n]; logprobs: [n] the chosen token's log-probability under the
 * raw row, or NULL; logits: float [n][vocab], the entries applied in place; params: [n];
 * entries: [sum of n_entries] (their raw fields are written). */
void sample_rows_cuda(int32_t *ids, float *logprobs, float *logits, int n, int vocab,
                      const sample_row_params *params, sample_entry *entries,
                      cudaStream_t stream);

/* Skinny GEMM of decode steps: y[n][out_f] = x[n][in_f] @ w[out_f][in_f]^T (+ bias[out_f]),
 * dtype DTYPE_BF16 or DTYPE_F16, y (and bias) of dtype or DTYPE_F32, float accumulation
 * (twin: matmul_cpu). gemv_supported() says whether a call qualifies: 16-bit dtype,
 * 1 <= n <= GEMV_MAX_N, in_f % 8 == 0, x and w 16-byte aligned. */
#define GEMV_MAX_N 8
int gemv_supported(int n, int in_f, folio_dtype dtype, const void *x, const void *w);
void gemv_cuda(void *y, folio_dtype y_type, const void *x, const void *w, const void *bias,
               folio_dtype dtype, int n, int in_f, int out_f, cudaStream_t stream);

/* W4A16 on the GPU. A quant_matrix (quant_layout.h, 4-bit, group_size a multiple of 32
 * dividing cols, cols a multiple of 32) is packed once, at load, into w4a16_tiles: the layout
 * the kernels stream (kernels/gemm/w4a16.cu explains it). w4a16_supported() says whether m
 * and dtype qualify (8-bit matrices do not: CPU twin only). */
typedef struct {
    int rows, cols, in_cols, group_size; /* as the quant_matrix it was packed from */
    int stripes, ktiles;                 /* ceil(rows / 16), ceil(cols / 64) */
    uint32_t *tiles; /* [stripes][ktiles][32 lanes][4 words]: 16 rows x 64 columns per tile */
    uint32_t *meta;  /* [stripes][groups][8][2]: scales of rows g | g+8 (half bits), zeros */
    int32_t *perm;   /* [cols] or NULL (quant_layout.h) */
    uint16_t *xg;    /* with perm: [W4A16_GEMV_MAX_N][cols], the GEMV's gathered x */
} w4a16_tiles;

#define W4A16_GEMV_MAX_N 16
int w4a16_supported(const quant_matrix *m, folio_dtype dtype);
/* Device bytes w4a16_pack_cuda needs for m (tiles, meta, and with perm the perm and the
 * GEMV's gather buffer; each 256-byte aligned). The gather buffer makes an act-order
 * matrix's products one stream at a time (Folio runs one stream per rank). */
size_t w4a16_tiles_bytes(const quant_matrix *m);
/* *out = m packed into mem (w4a16_tiles_bytes(m) device bytes, 256-byte aligned). m's arrays
 * are DEVICE pointers in quant_layout.h's row-major layout; they may be freed once the stream
 * has passed. */
void w4a16_pack_cuda(w4a16_tiles *out, void *mem, const quant_matrix *m, cudaStream_t stream);
/* y[n][m->rows] = x[n][m->in_cols] @ W^T (+ bias[m->rows]), W[r][perm ? perm[c] : c] =
 * (q - z) * s (a padding column, perm QL_PAD, gathers 0 and contributes nothing), x, y and
 * bias of dtype DTYPE_BF16 or DTYPE_F16, float accumulation (twin: w4a16_cpu). Decode:
 * 1 <= n <= W4A16_GEMV_MAX_N, x 16-byte aligned. Larger batches: w4a16_gemm_cuda (gemm.h). */
void w4a16_gemv_cuda(void *y, const void *x, const w4a16_tiles *m, const void *bias,
                     folio_dtype dtype, int n, cudaStream_t stream);
/* The same product for larger n on the tensor cores (kernels/gemm/w4a16_mma.cu), without an
 * act-order permutation (m->perm NULL); x 16-byte aligned. workspace (workspace_bytes, may be
 * 0) holds split-K partial sums when the grid is small; in use until the stream passes. */
#define W4A16_MMA_MAX_N 128
void w4a16_mma_cuda(void *y, const void *x, const w4a16_tiles *m, const void *bias,
                    folio_dtype dtype, int n, void *workspace, size_t workspace_bytes,
                    cudaStream_t stream);
/* The same product on Hopper's warpgroup MMA (kernels/gemm/w4a16_wgmma.cu), the default for
 * W4A16_WGMMA_MIN_N <= n < W4A16_WS_MIN_N (and up to W4A16_WGMMA_MAX_N where the scratch cannot
 * hold w4a16_wgmma_ws_cuda's workspace); the same arguments and rules as w4a16_mma_cuda
 * (workspace: split-K partial sums, splits x n x rows floats at most). */
#define W4A16_WGMMA_MIN_N 17
#define W4A16_WGMMA_MAX_N 256
void w4a16_wgmma_cuda(void *y, const void *x, const w4a16_tiles *m, const void *bias,
                      folio_dtype dtype, int n, void *workspace, size_t workspace_bytes,
                      cudaStream_t stream);
/* The same product on wgmma with a producer warp and two consumer warpgroups
 * (kernels/gemm/w4a16_wgmma_ws.cu), the default for W4A16_WS_MIN_N <= n <= W4A16_WGMMA_MAX_N
 * where the scratch holds its workspace; the same arguments and rules as w4a16_wgmma_cuda,
 * except that the workspace (256-byte aligned) is required: w4a16_wgmma_ws_workspace(m, n)
 * bytes for x reordered, the rest for split-K partial sums. */
#define W4A16_WS_MIN_N 129
size_t w4a16_wgmma_ws_workspace(const w4a16_tiles *m, int n);
void w4a16_wgmma_ws_cuda(void *y, const void *x, const w4a16_tiles *m, const void *bias,
                         folio_dtype dtype, int n, void *workspace, size_t workspace_bytes,
                         cudaStream_t stream);
/* w[r][perm ? perm[c] : c] = (q - z) * s rounded to dtype (twin: w4a16_dequant_cpu).
 * w: [m->rows][m->in_cols], 16-byte aligned; padding columns write nothing. */
void w4a16_dequant_cuda(void *w, const w4a16_tiles *m, folio_dtype dtype, cudaStream_t stream);

/* FP8 (engine/base/fp8_layout.h) on the GPU (kernels/gemm/fp8.cu). An fp8_matrix with
 * DEVICE pointers: w e4m3 [rows][cols]; scale per channel [rows] (per-tensor scales are
 * expanded at load), or per 128 x 128 block [ceil(rows/128)][fp8_block_scale_ld(cols)]
 * (cuBLASLt's BLK128x128 layout: the column-block index runs fastest, rows padded to a
 * multiple of 4 blocks). The GPU runs two schemes: channel weights with per-token or static
 * activations, and 128 x 128 block weights with per-group activations.
 * fp8_quantize_act_cuda: xq e4m3 [n][k] and xs = the scales a of fp8_layout.h:
 * FP8_ACT_TOKEN and FP8_ACT_STATIC [n] (static: input_scale each), FP8_ACT_GROUP
 * [ceil(k/128)][n] (the token index runs fastest: cuBLASLt's VEC128 layout); x of dtype
 * [n][k] (twin: fp8_act_quant_cpu). */
F8_FN int fp8_block_scale_ld(int cols) {
    return ((cols + FP8_ACT_GROUP_SIZE - 1) / FP8_ACT_GROUP_SIZE + 3) & ~3;
}
void fp8_quantize_act_cuda(uint8_t *xq, float *xs, const void *x, folio_dtype dtype, int n,
                           int k, fp8_act act, float input_scale, cudaStream_t stream);
/* y[n][m->rows] (dtype, bias of dtype or NULL) = the FP8 product of fp8_layout.h from the
 * quantized activations, float sums (twin: fp8_gemm_cpu). Decode: fp8_gemv_supported()
 * says whether (m, dtype, n) qualifies (1 <= n <= FP8_GEMV_MAX_N, cols % 16 == 0, one of the
 * two schemes, xq 16-byte aligned). Larger n: fp8_linear_cuda (gemm.h, cuBLASLt). */
#define FP8_GEMV_MAX_N 4
int fp8_gemv_supported(const fp8_matrix *m, folio_dtype dtype, int n);
/* The most tokens one fp8_gemv_cuda call takes for (m, dtype): 4, 2 for inputs wider than
 * 16384, 0 for an unsupported scheme. */
int fp8_gemv_max_tokens(const fp8_matrix *m, folio_dtype dtype);

void fp8_gemv_cuda(void *y, const uint8_t *xq, const float *xs, const fp8_matrix *m,
                   const void *bias, folio_dtype dtype, int n, cudaStream_t stream);
/* The same product from the 16-bit activations x [n][m->cols] (dtype, 16-byte aligned),
 * quantized inside the kernel exactly as fp8_quantize_act_cuda would (m->act, m->input_scale):
 * one launch instead of two (twin: fp8_act_quant_cpu, then fp8_gemm_cpu). */
void fp8_gemv_x_cuda(void *y, const void *x, const fp8_matrix *m, const void *bias,
                     folio_dtype dtype, int n, cudaStream_t stream);
/* The same product from the quantized activations at any n on the tensor cores (mma.sync
 * e4m3, kernels/gemm/fp8_mma.cu): channel weights, or 128 x 128 blocks with group
 * activations; xq, m->w 16-byte aligned, cols % 16 == 0. workspace (workspace_bytes, may be
 * 0) holds split-K partial sums when the grid is small; in use until the stream passes. */
void fp8_mma_cuda(void *y, const uint8_t *xq, const float *xs, const fp8_matrix *m,
                  const void *bias, folio_dtype dtype, int n, void *workspace,
                  size_t workspace_bytes, cudaStream_t stream);
/* y[t][r] = y[t][r] * ws[r] * xs[t] + bias[r] (bias NULL: none), in float, rounded once:
 * the per-channel x per-token scales after an unscaled FP8 GEMM (where cuBLASLt has no
 * OUTER_VEC kernel). y: [n][rows] bf16 or fp16. */
void fp8_rescale_rows_cuda(void *y, const float *ws, const float *xs, const void *bias, int n,
                           int rows, folio_dtype dtype, cudaStream_t stream);

/* paged_attention_cuda's contract in a simple kernel, no workspace (the fallback for shapes
 * the paged kernels do not support, and FOLIO_ATTENTION=simple). head_dim <= 256. */
void attention_simple_cuda(void *out, const void *q, const void *k_cache, const void *v_cache,
                           const int32_t *block_tables, const int32_t *seq_start,
                           const int32_t *context_lens, const paged_attention_params *p,
                           cudaStream_t stream);

/* Weight filling (weights.h documents the dummy function): dst [rows][cols], the kept part of
 * a tensor of full_cols columns starting at (row0, col0). */
void dummy_fill_cuda(void *dst, int64_t rows, int64_t cols, int64_t row0, int64_t col0,
                     int64_t full_cols, uint64_t key, float scale, folio_dtype dtype,
                     cudaStream_t stream);
/* m's arrays (DEVICE pointers, row-major quant_layout.h, m->rows x m->cols = the shard's)
 * = the dummy 4-bit shard s (engine/base/quant_dummy.h: the CPU loader's same values). */
void quant_dummy_fill_cuda(quant_matrix *m, const qd_shard *s, cudaStream_t stream);
/* dst[0..n) = value. */
void fill_cuda(void *dst, int64_t n, float value, folio_dtype dtype, cudaStream_t stream);
/* dst[i] = (dtype) src[i], i < n; src: float [n]. */
void convert_f32_cuda(void *dst, const float *src, int64_t n, folio_dtype dtype,
                      cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
