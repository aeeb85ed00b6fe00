/* The paged attention launcher the CUDA backend calls once per layer per step: the new tokens
 * of every sequence of the step (prefills, chunked prefills after a cached prefix, and
 * decodes, mixed) attend over their sequence's paged KV cache. Twin: paged_attention_cpu
 * (kernels_cpu.h), which uses the CPU cache layout; tests convert between layouts.
 *
 * GPU KV cache layout, per layer ("HND": one block of one KV head is contiguous, so a decode
 * reads whole 16-token x head_dim tiles):
 *     k_cache, v_cache: [num_blocks][n_kv_heads][block_size][head_dim], element type dtype,
 *     or one e4m3 byte per element with kv_fp8 (value = e4m3 * the layer's k_scale / v_scale;
 *     bfloat16 and float16 only; written by rope_kv_write_fp8_cuda).
 * The new tokens' K and V are already written into the cache (by the backend's rope + KV
 * write kernel) when this runs. */
#ifndef FOLIO_ATTENTION_CUDA_H
#define FOLIO_ATTENTION_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int n_seqs;                  /* sequences in the step */
    int n_tokens;                /* query rows (new tokens) in the step */
    int max_q_len;               /* bound on new tokens of one sequence (1: all decodes) */
    int max_context;             /* bound on context_lens[] (prefix + new); the grid may
                                    depend on this bound but never on the per-step values in
                                    device memory, so a decode step can be captured in a CUDA
                                    graph and replayed with other contexts up to the bound */
    int max_blocks;              /* row length of block_tables */
    int n_heads, n_kv_heads, head_dim, block_size;
    int window;                  /* sliding window in tokens, 0 = none (query at position p
                                    sees positions p - window + 1 .. p) */
    float scale;                 /* softmax scale, 1/sqrt(head_dim) */
    folio_dtype dtype;           /* DTYPE_BF16, DTYPE_F16 or DTYPE_F32 */
    int kv_fp8;                  /* 1: the cache holds e4m3 bytes (dtype BF16 or F16) */
    float k_scale, v_scale;      /* kv_fp8: the layer's scales (the cache stores value/scale) */
} paged_attention_params;

/* Device scratch bytes paged_attention_cuda needs for these bounds (split-context partial
 * results and their reduction). Enough for every later call whose n_seqs and max_context are
 * at most these (same heads, head_dim, window), so size it once with the largest bounds. */
size_t paged_attention_workspace_bytes(const paged_attention_params *p);

/* out, q: [n_tokens][n_heads][head_dim] (device, dtype). Device arrays, as in the step plan:
 * seq_start [n_seqs + 1] (query rows of each sequence), context_lens [n_seqs],
 * block_tables [n_seqs][max_blocks]. Query row t of sequence s is at position
 * context_lens[s] - (seq_start[s + 1] - t) and attends causally to its sequence's positions.
 * Query head h uses KV head h / (n_heads / n_kv_heads). Asynchronous on stream.
 * out, q, k_cache, v_cache and workspace must be 16-byte aligned (16-byte vector loads);
 * head_dim 64 or 128, n_heads / n_kv_heads 1..8, any block_size. */
void paged_attention_cuda(void *out, const void *q, const void *k_cache, const void *v_cache,
                          const int32_t *block_tables, const int32_t *seq_start,
                          const int32_t *context_lens, const paged_attention_params *p,
                          void *workspace, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
