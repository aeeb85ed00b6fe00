/* paged_attention_cuda: the launcher of the paged attention kernels (interface:
 * attention_cuda.h; CPU twin: paged_attention_cpu; check: tests/unit/test_gpu_attention.c).
 *
 * A step mixes decodes (q_len 1) and prefills (q_len > 1, possibly after a cached prefix).
 * With kv_fp8 the bfloat16/float16 kernels read e4m3 bytes (paged_attention_impl.cuh's load8).
 * Every call launches the decode kernel over all sequences (paged_attention_decode_mma.cu on
 * the tensor cores for bfloat16 and float16, paged_attention_decode.cu for float32; rows with
 * q_len != 1 return at once; plus the partition merge when the context is split) and, when max_q_len > 1, the prefill kernel
 * (paged_attention_prefill_wgmma.cu on Hopper's warpgroup MMA for head_dim 128 and
 * paged_attention_prefill.cu on mma.sync otherwise, bfloat16 and float16; the row kernel
 * over every query token for float32). Each output row is written by exactly one of them.
 *
 * Decode split: the visible context (max_context, or the window when shorter) is cut into
 * partitions of 512 positions, halved down to 64 while the grid would have fewer than
 * kTargetBlocks blocks (small batches: more blocks in flight on the SMs). The choice depends
 * only on n_seqs, n_kv_heads, max_context and window, never on device data, and a fixed
 * constant rather than the device's SM count, so the workspace size is a pure function of the
 * bounds. Workspace: raw partial outputs and (max, sum) per (sequence, head, partition). */
#include <cuda_runtime.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "attention_cuda.h"
#include "cuda_check.h"
#include "paged_attention_impl.cuh"

namespace {

using folio_attn::DecodePlan;
using folio_attn::RowArgs;

constexpr int kMaxPart = 512, kMinPart = 64;
constexpr long kTargetBlocks = 264; /* two per SM of a 132-SM H100 */

long ceil_div(long a, long b) { return (a + b - 1) / b; }

int visible_bound(const paged_attention_params *p) {
    int vis = p->max_context;
    if (p->window > 0 && p->window < vis) vis = p->window;
    return vis < 1 ? 1 : vis;
}

DecodePlan decode_plan(const paged_attention_params *p) {
    const long vis = visible_bound(p);
    const long rows = (long)p->n_seqs * p->n_kv_heads;
    int part = kMaxPart;
    while (part > kMinPart && rows * ceil_div(vis, part) < kTargetBlocks) part /= 2;
    return DecodePlan{part, (int)ceil_div(vis, part)};
}

bool aligned16(const void *p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

void check_params(const paged_attention_params *p) {
    if (p->head_dim != 64 && p->head_dim != 128)
        fprintf(stderr, "paged_attention_cuda: head_dim %d is not supported\n", p->head_dim);
    CUDA_REQUIRE(p->head_dim == 64 || p->head_dim == 128,
                 "paged_attention_cuda: head_dim must be 64 or 128 (the template list)");
    if (p->dtype != DTYPE_BF16 && p->dtype != DTYPE_F16 && p->dtype != DTYPE_F32)
        fprintf(stderr, "paged_attention_cuda: dtype %d is not supported\n", (int)p->dtype);
    CUDA_REQUIRE(p->dtype == DTYPE_BF16 || p->dtype == DTYPE_F16 || p->dtype == DTYPE_F32,
                 "paged_attention_cuda: dtype must be DTYPE_BF16, DTYPE_F16 or DTYPE_F32");
    CUDA_REQUIRE(p->n_kv_heads >= 1 && p->n_heads % p->n_kv_heads == 0,
                 "paged_attention_cuda: n_heads must be a multiple of n_kv_heads");
    const int group = p->n_heads / p->n_kv_heads;
    if (group > 8)
        fprintf(stderr, "paged_attention_cuda: %d query heads per KV head, at most 8\n", group);
    CUDA_REQUIRE(group >= 1 && group <= 8, "paged_attention_cuda: GQA ratio must be 1..8");
    CUDA_REQUIRE(p->block_size >= 1 && p->max_blocks >= 1 && p->max_context >= 1 &&
                     p->max_q_len >= 1 && p->window >= 0,
                 "paged_attention_cuda: bad block_size, max_blocks, max_context, max_q_len or "
                 "window");
    CUDA_REQUIRE(!p->kv_fp8 || p->dtype != DTYPE_F32,
                 "paged_attention_cuda: the FP8 KV cache runs with bfloat16 or float16 only");
    CUDA_REQUIRE(!p->kv_fp8 || (p->k_scale > 0.0f && p->v_scale > 0.0f),
                 "paged_attention_cuda: kv_fp8 needs positive k_scale and v_scale");
    CUDA_REQUIRE(p->n_kv_heads <= 65535 && p->n_seqs <= 65535,
                 "paged_attention_cuda: n_seqs and n_kv_heads must be <= 65535 (grid y, z)");
}

} // namespace

extern "C" size_t paged_attention_workspace_bytes(const paged_attention_params *p) {
    if (p->n_seqs <= 0 || p->n_kv_heads <= 0 || p->n_heads <= 0) return 0;
    const DecodePlan plan = decode_plan(p);
    /* Any call with n_seqs and max_context at most these bounds needs no more: with 512-wide
     * partitions the count of (row, KV head, partition) is at most this call's; a narrower
     * partition is chosen only while that count at twice the width is < kTargetBlocks, so it
     * is < 2 * kTargetBlocks. */
    long units = (long)p->n_seqs * p->n_kv_heads * ceil_div(visible_bound(p), kMaxPart);
    const long planned = (long)p->n_seqs * p->n_kv_heads * plan.n_parts;
    if (planned > units) units = planned;
    if (units < 2 * kTargetBlocks) units = 2 * kTargetBlocks;
    const long group = p->n_heads / p->n_kv_heads;
    return (size_t)units * (size_t)group * (size_t)(p->head_dim + 2) * sizeof(float) + 256;
}

/* FOLIO_PREFILL_ATTN: the prefill kernel for head_dim 128, "wgmma" (Hopper's warpgroup MMA,
 * the default) or "mma" (mma.sync, the only one for head_dim 64). */
static bool prefill_wgmma() {
    static const bool on = [] {
        const char *e = folio_env("FOLIO_PREFILL_ATTN");
        return e == NULL || strcmp(e, "mma") != 0;
    }();
    return on;
}

extern "C" void paged_attention_cuda(void *out, const void *q, const void *k_cache,
                                     const void *v_cache, const int32_t *block_tables,
                                     const int32_t *seq_start, const int32_t *context_lens,
                                     const paged_attention_params *p, void *workspace,
                                     cudaStream_t stream) {
    CUDA_REQUIRE(p != NULL, "paged_attention_cuda: params is NULL");
    if (p->n_seqs <= 0 || p->n_tokens <= 0) return;
    check_params(p);
    CUDA_REQUIRE(aligned16(out) && aligned16(q) && aligned16(k_cache) && aligned16(v_cache),
                 "paged_attention_cuda: out, q, k_cache and v_cache must be 16-byte aligned");

    const DecodePlan plan = decode_plan(p);
    RowArgs a;
    a.n_seqs = p->n_seqs;
    a.n_tokens = p->n_tokens;
    a.n_heads = p->n_heads;
    a.n_kv_heads = p->n_kv_heads;
    a.group = p->n_heads / p->n_kv_heads;
    a.block_size = p->block_size;
    a.bs_shift = -1;
    if ((p->block_size & (p->block_size - 1)) == 0) {
        a.bs_shift = 0;
        while ((1 << a.bs_shift) < p->block_size) a.bs_shift++;
    }
    a.max_blocks = p->max_blocks;
    a.window = p->window;
    a.scale_log2 = p->scale * 1.4426950408889634f * (p->kv_fp8 ? p->k_scale : 1.0f);
    a.v_scale = p->kv_fp8 ? p->v_scale : 1.0f;
    a.part_tokens = plan.part_tokens;
    a.n_parts = plan.n_parts;
    a.prefill_rows = 0;

    float *part_acc = NULL, *part_ml = NULL;
    if (plan.n_parts > 1) {
        CUDA_REQUIRE(workspace != NULL && aligned16(workspace),
                     "paged_attention_cuda: workspace missing (paged_attention_workspace_bytes)");
        part_acc = static_cast<float *>(workspace);
        part_ml = part_acc + (size_t)p->n_seqs * p->n_heads * plan.n_parts * p->head_dim;
    }
    if (p->dtype == DTYPE_F32)
        folio_attn::launch_rows(out, part_acc, part_ml, q, k_cache, v_cache, block_tables,
                                seq_start, context_lens, a, p->n_seqs, p->head_dim, p->dtype,
                                stream);
    else
        folio_attn::launch_decode_mma(out, part_acc, part_ml, q, k_cache, v_cache, block_tables,
                                      seq_start, context_lens, a, p->head_dim, p->dtype,
                                      p->kv_fp8 != 0, stream);

    if (p->max_q_len > 1) {
        if (p->dtype == DTYPE_F32) {
            RowArgs b = a;
            b.part_tokens = INT32_MAX;
            b.n_parts = 1;
            b.prefill_rows = 1;
            folio_attn::launch_rows(out, NULL, NULL, q, k_cache, v_cache, block_tables,
                                    seq_start, context_lens, b, p->n_tokens, p->head_dim,
                                    p->dtype, stream);
        } else if (p->head_dim == 128 && prefill_wgmma()) {
            folio_attn::launch_prefill_wgmma(out, q, k_cache, v_cache, block_tables, seq_start,
                                             context_lens, a, p->max_q_len, p->dtype,
                                             p->kv_fp8 != 0, stream);
        } else {
            folio_attn::launch_prefill_mma(out, q, k_cache, v_cache, block_tables, seq_start,
                                           context_lens, a, p->max_q_len, p->head_dim, p->dtype,
                                           p->kv_fp8 != 0, stream);
        }
    }
}
