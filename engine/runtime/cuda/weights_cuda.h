/* Model weights of one rank on the GPU, in the compute dtype: this rank's shard of every
 * tensor (weights.c's one description of the tensors), with q/k/v fused into one [q; k; v]
 * matrix and gate/up into one [gate; up] matrix (and their biases), so each layer runs two
 * GEMMs instead of five on its input. Dummy weights are drawn on the device (same values as
 * the CPU backend's); checkpoint weights are read by the CPU loader and converted on upload.
 * Available with CUDA (FOLIO_HAVE_CUDA). */
#ifndef FOLIO_WEIGHTS_CUDA_H
#define FOLIO_WEIGHTS_CUDA_H

#ifdef FOLIO_HAVE_CUDA

#include <stddef.h>

#include "dtype.h"
#include "kernels_cuda.h"
#include "model_config.h"
#include "quant_layout.h"
#include "shard.h"
#include "weights.h"

/* Device pointers of element type cuda_weights.dtype. A quantized checkpoint (4-bit, see
 * quant_layout.h) keeps its q/k/v, o, gate/up and down Linear weights packed for the GPU's
 * kernels (w4a16_tiles, kernels_cuda.h; q_* below: tiles != NULL, the dense pointer is then
 * NULL): q|k|v and gate|up fused by concatenating their rows (same cols and group size, no
 * act-order permutation). Biases, norms, embedding and LM head stay dense in dtype. */
typedef struct {
    void *attn_norm;             /* [hidden] */
    void *w_qkv;                 /* [(n_heads_local + 2 n_kv_local) * head_dim][hidden] */
    void *b_qkv;                 /* [rows of w_qkv] or NULL */
    void *q_norm, *k_norm;       /* [head_dim] or NULL (Qwen3) */
    void *wo;                    /* [hidden][n_heads_local * head_dim] */
    void *bo;                    /* [hidden] or NULL */
    void *mlp_norm;              /* [hidden] */
    void *w_gate_up;             /* [2 * inter_local][hidden]: gate rows, then up rows */
    void *b_gate_up;             /* [2 * inter_local] or NULL */
    void *w_down;                /* [hidden][inter_local] */
    void *b_down;                /* [hidden] or NULL */
    w4a16_tiles q_qkv, q_o, q_gate_up, q_down; /* packed 4-bit weights (tiles NULL: dense);
                                  * each one device allocation starting at tiles */
    fp8_matrix f_qkv, f_o, f_gate_up, f_down;  /* FP8 weights (w NULL: not FP8), fused as
                                  * the 4-bit ones; each one device allocation starting at w */
} layer_weights_cuda;

typedef struct {
    folio_dtype dtype;
    shard_plan shard;
    void *embed;                 /* [vocab_local][hidden] */
    void *final_norm;            /* [hidden] */
    void *lm_head;               /* [vocab_local][hidden]; == embed when tied */
    layer_weights_cuda *layers;  /* [n_layers] */
    int n_layers;
    void *arena;                 /* one device allocation holding every dense tensor */
    size_t bytes;                /* dense arena + quant matrices */
    size_t quant_scratch_elems;  /* the largest quant matrix's rows * cols (0: none): the
                                  * dequantized scratch w4a16_gemm_cuda needs above
                                  * W4A16_GEMV_MAX_N tokens */
    size_t fp8_max_cols;         /* the widest FP8 matrix's input columns (0: none): sizes the
                                  * quantized-activation scratch of the FP8 products */
} cuda_weights;

/* Uploads parts[0..n) (this rank's host FP8 matrices of one fused product: q, k, v or gate,
 * up, or one alone) as one device matrix of their rows concatenated (weights_cuda_fp8.c);
 * adds its bytes to *bytes. -1 with a message naming `name` when they cannot be fused. */
int weights_cuda_upload_fp8(const fp8_matrix *parts, int n, const char *name, fp8_matrix *out,
                            size_t *bytes);

/* Bytes the weights take on the device in dtype. */
size_t weights_cuda_bytes(const model_config *cfg, const shard_plan *shard, folio_dtype dtype);

/* Loads (format LOAD_AUTO: from DIR's safetensors through the CPU loader; a quantized
 * checkpoint tensor by tensor, its 4-bit Linear weights uploaded as quant_matrix, failing
 * with a message naming the layer for what the GPU does not run: 8-bit, act-order on q/k/v or
 * gate/up, group sizes or widths not multiples of 32, float32 compute) or draws
 * (LOAD_DUMMY, on the device) this rank's weights in dtype on the current device. Fails with
 * a message naming --gpu-memory-utilization / --dtype when they do not fit. */
int weights_cuda_load(const char *dir, const model_config *cfg, const shard_plan *shard,
                      const load_options *opt, folio_dtype dtype, cuda_weights *w);
void weights_cuda_free(cuda_weights *w);

#endif
#endif
