/* GEMMs of the CUDA backend through cuBLASLt: y[n][out] = x[n][in] @ w[out][in]^T (+ bias),
 * the weight in Hugging Face's [out_features, in_features] row-major layout. Inputs float32,
 * bfloat16 or float16, float32 accumulation; float32 inputs use plain FP32 compute (no TF32),
 * so the float32 backend matches the CPU reference. The output is the input type or float32
 * (the LM head's logits). Decode-sized 16-bit GEMMs go to gemv_cuda (kernels/gemv.cu). One
 * algorithm per shape, chosen by cuBLASLt's heuristic on first
 * use and cached; one workspace, sized once. Available with CUDA (FOLIO_HAVE_CUDA). */
#ifndef FOLIO_GEMM_H
#define FOLIO_GEMM_H

#ifdef FOLIO_HAVE_CUDA

#include <stdbool.h>

#include <cuda_runtime_api.h>

#include "dtype.h"
#include "kernels_cuda.h"
#include "quant_layout.h"

typedef struct gemm_ctx gemm_ctx;

/* Creates the cuBLASLt handle and a workspace of workspace_bytes on the current device.
 * Returns NULL with a message on failure. */
gemm_ctx *gemm_create(size_t workspace_bytes);
void gemm_free(gemm_ctx *g);

/* Skinny 16-bit GEMMs (n <= GEMV_MAX_N, decode) through Folio's gemv_cuda instead of cuBLASLt:
 * on by default, off with FOLIO_GEMV=0 in the environment or here (for comparisons). */
void gemm_set_gemv(gemm_ctx *g, bool on);

/* The cuBLASLt handle (a cublasLtHandle_t), the workspace and the FP8 plan cache's slot,
 * for gemm_fp8.c (which frees the cache through fp8_plan_cache_free). */
void *gemm_lt_handle(gemm_ctx *g);
void *gemm_workspace(gemm_ctx *g, size_t *bytes);
struct fp8_plan_cache;
struct fp8_plan_cache **gemm_fp8_cache(gemm_ctx *g);
void fp8_plan_cache_free(struct fp8_plan_cache *c);

/* y: [n][out_f] of y_type (dtype or DTYPE_F32); x: [n][in_f]; w: [out_f][in_f]; bias: [out_f]
 * of y_type, or NULL. Asynchronous on stream; graph-capturable once the shape was run. A
 * cuBLASLt failure is a bug here (shapes are checked at start): prints and aborts. */
void gemm_run(gemm_ctx *g, void *y, folio_dtype y_type, const void *x, const void *w,
              const void *bias, folio_dtype dtype, int n, int in_f, int out_f,
              cudaStream_t stream);

/* W4A16 product at any batch: y[n][m->rows] = x[n][m->in_cols] @ W^T (+ bias), as
 * w4a16_gemv_cuda (kernels_cuda.h). n <= W4A16_GEMV_MAX_N runs w4a16_gemv_cuda (scratch
 * unused, may be NULL). Above it, scratch (m->rows * m->in_cols 16-bit elements, 16-byte
 * aligned, the caller's; in use until the stream passes) holds the tensor-core GEMMs' workspace
 * (w4a16_wgmma_cuda below W4A16_WS_MIN_N: split-K partial sums; w4a16_wgmma_ws_cuda from there
 * to W4A16_WGMMA_MAX_N: x reordered, then partial sums; w4a16_mma_cuda up to W4A16_MMA_MAX_N
 * with FOLIO_W4A16_GEMM=mma), and for larger n and act-order matrices W dequantized in dtype
 * (w4a16_dequant_cuda) for gemm_run. */
void w4a16_gemm_cuda(gemm_ctx *g, void *y, const void *x, const w4a16_tiles *m,
                     const void *bias, folio_dtype dtype, int n, void *scratch,
                     cudaStream_t stream);

/* FP8 product (engine/base/fp8_layout.h) at any batch: y[n][m->rows] (dtype DTYPE_BF16 or
 * DTYPE_F16; bias of dtype or NULL) from x [n][m->cols] of dtype. The activations are
 * quantized per m->act into xq (e4m3 [n][m->cols]) and xs (n * ceil(cols / 128) floats at
 * most), the caller's scratch, in use until the stream passes: the first n & ~7 tokens
 * through cuBLASLt's FP8 GEMM (scales applied by cuBLASLt), the rest through fp8_gemv_cuda
 * (all of them when n <= fp8_gemv_max_tokens); where cuBLASLt has no kernel for the shape,
 * all n through fp8_mma_cuda. kernels/gemm/gemm_fp8.c explains. */
void fp8_linear_cuda(gemm_ctx *g, void *y, const void *x, const fp8_matrix *m,
                     const void *bias, folio_dtype dtype, int n, uint8_t *xq, float *xs,
                     cudaStream_t stream);
/* fp8_linear_cuda where xq, xs already hold the quantization of all n rows of x (per token or
 * static: add_rmsnorm_fp8_cuda, silu_mul_fp8_cuda wrote it): the GEMM reads them, tokens left
 * to the GEMV still read x. Call it where fp8_linear_reads_xq says the GEMM runs. */
void fp8_linear_prequantized_cuda(gemm_ctx *g, void *y, const void *x, const fp8_matrix *m,
                                  const void *bias, folio_dtype dtype, int n,
                                  const uint8_t *xq, const float *xs, cudaStream_t stream);
/* fp8_linear_cuda (x_quantized false) or fp8_linear_prequantized_cuda (true), and where
 * `defer` is non-NULL and the product runs as cuBLASLt's unit-scale GEMM over all n tokens
 * with no bias (channel weights on an H100, n a multiple of 8): y is left unscaled, *defer
 * gets m->scale and xs, and 1 is returned: the kernel that reads y applies them
 * (fp8_out_scale, kernels_cuda.h), saving the rescale's pass over y. 0: y is final. */
int fp8_linear_ex_cuda(gemm_ctx *g, void *y, const void *x, const fp8_matrix *m,
                       const void *bias, folio_dtype dtype, int n, uint8_t *xq, float *xs,
                       bool x_quantized, fp8_out_scale *defer, cudaStream_t stream);
/* Whether fp8_linear_cuda would quantize x into xq for n tokens of m (a GEMM runs; per-token
 * or static activations): a kernel before it may then write the quantization instead. */
int fp8_linear_reads_xq(const fp8_matrix *m, folio_dtype dtype, int n);

/* The GEMM half of it (xq, xs already written by fp8_quantize_act_cuda for these n tokens):
 * cuBLASLt where it has the kernel and n is a multiple of 8, else fp8_mma_cuda. */
void fp8_gemm_cuda(gemm_ctx *g, void *y, const uint8_t *xq, const float *xs,
                   const fp8_matrix *m, const void *bias, folio_dtype dtype, int n,
                   cudaStream_t stream);

#endif
#endif
