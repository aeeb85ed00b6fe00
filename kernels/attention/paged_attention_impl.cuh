/* Shared pieces of the paged attention kernels (paged_attention.cu is the launcher,
 * paged_attention_decode.cu the CUDA-core row kernels (float32 decodes and prefills) and the
 * partition merge, paged_attention_decode_mma.cu the bfloat16/float16 decode,
 * paged_attention_prefill.cu the tensor-core prefill): element conversions, 16-byte packs, the
 * split-context plan and the internal launchers. CUDA C++ only; the C interface is
 * attention_cuda.h. */
#ifndef FOLIO_PAGED_ATTENTION_IMPL_CUH
#define FOLIO_PAGED_ATTENTION_IMPL_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <stdint.h>

#include "attention_cuda.h"
#include "cuda_types.cuh"

namespace folio_attn {

using folio::from_f32;
using folio::kWarp;
using folio::launch_pdl;
using folio::pdl_launch_dependents;
using folio::pdl_wait;
using folio::prefetch_l2;
using folio::Pack;
using folio::to_f32;

/* c += a (16x16, row) * b (16x8, col), float32 accumulators. */
template <typename T> __device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4],
                                                               uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float c[4], const uint32_t a[4],
                                                        uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
                 "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma16816<__half>(float c[4], const uint32_t a[4], uint32_t b0,
                                                 uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, "
                 "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Two floats -> one register of two 16-bit values, the first in the low half. */
template <typename T> __device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <> __device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t *>(&v);
}
template <> __device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t *>(&v);
}

/* The FP8 KV cache (attention_cuda.h's kv_fp8) holds e4m3 bytes. Every e4m3 value is exactly a
 * float16 and a bfloat16 value, so the kernels widen cache bytes to their 16-bit type without
 * rounding and apply the layer's scales outside the loops: K's in the softmax scale, V's on
 * the output (both are linear). */
template <typename T> __device__ __forceinline__ uint32_t widen_fp8x2(uint32_t two_bytes);
template <> __device__ __forceinline__ uint32_t widen_fp8x2<__half>(uint32_t two_bytes) {
    const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)two_bytes, __NV_E4M3);
    return (uint32_t)h.x | (uint32_t)h.y << 16;
}
/* bfloat16 without conversion instructions: byte b as the bf16 bits (b & 0x80) << 8 |
 * (b & 0x7f) << 4 puts e4m3's exponent and mantissa in bf16's fields, which reads as the value
 * times 2^(7 - 127); one exact multiply by 2^120 restores it (a subnormal too: bf16's m/8
 * 2^-126 times 2^120 is e4m3's m/8 2^-6). Integer ops and one bf16x2 multiply instead of four
 * conversions (half2, two floats, bf16x2), which bound the FP8 decode attention. The NaN
 * bytes 0x7f / 0xff read as +-480 here (the cache writer saturates finite values, so only a
 * NaN already in the activations stores them). */
template <> __device__ __forceinline__ uint32_t widen_fp8x2<__nv_bfloat16>(uint32_t two_bytes) {
    const uint32_t spread = (two_bytes & 0xffu) | (two_bytes & 0xff00u) << 8;
    const uint32_t bits = (spread & 0x00800080u) << 8 | (spread & 0x007f007fu) << 4;
    uint32_t out;
    asm("mul.rn.bf16x2 %0, %1, %2;" : "=r"(out) : "r"(bits), "r"(0x7b807b80u)); /* 2^120 */
    return out;
}

/* 8 consecutive cache elements as loaded (Raw: 16 bytes of a 16-bit cache, 8 of an FP8 one)
 * and as 8 values of T in 16 bytes (widen; the first in the low half of .x). The decode
 * kernel keeps its loads raw in registers while it computes and widens them where it uses
 * them, so an FP8 load does not wait to be converted. p must be aligned to 8 elements. */
template <typename T, typename KV> struct Kv8;
template <typename T> struct Kv8<T, T> {
    using Raw = uint4;
    static __device__ __forceinline__ Raw load(const T *p) {
        return *reinterpret_cast<const uint4 *>(p);
    }
    static __device__ __forceinline__ uint4 widen(const Raw &r) { return r; }
    static __device__ __forceinline__ Raw zero() { return make_uint4(0, 0, 0, 0); }
};
template <typename T> struct Kv8<T, uint8_t> {
    using Raw = uint2;
    static __device__ __forceinline__ Raw load(const uint8_t *p) {
        return *reinterpret_cast<const uint2 *>(p);
    }
    static __device__ __forceinline__ uint4 widen(const Raw &w) {
        return make_uint4(widen_fp8x2<T>(w.x & 0xffffu), widen_fp8x2<T>(w.x >> 16),
                          widen_fp8x2<T>(w.y & 0xffffu), widen_fp8x2<T>(w.y >> 16));
    }
    static __device__ __forceinline__ Raw zero() { return make_uint2(0, 0); }
};
template <typename T, typename KV> __device__ __forceinline__ uint4 load8(const KV *p) {
    return Kv8<T, KV>::widen(Kv8<T, KV>::load(p));
}

/* Position p of a sequence -> element offset of its row [block][kv_head][offset][0] in the
 * GPU cache layout [num_blocks][n_kv_heads][block_size][head_dim]. bs_shift is log2(block
 * size) when the block size is a power of two, else -1 (one integer division). */
__device__ __forceinline__ int64_t kv_row_offset(const int32_t *table, /* [max_blocks] */
                                                 int p, int kvh, int n_kv, int bs, int bs_shift,
                                                 int head_dim) {
    const int b = bs_shift >= 0 ? p >> bs_shift : p / bs;
    const int o = p - b * bs;
    return (((int64_t)table[b] * n_kv + kvh) * bs + o) * (int64_t)head_dim;
}

/* How decode rows split their visible context: partitions of part_tokens positions (the
 * last one shorter), n_parts of them at most. Depends only on the bounds in the params, so
 * the grid does too (CUDA graphs). */
struct DecodePlan {
    int part_tokens;
    int n_parts;
};

/* Arguments of the row kernel (decode rows, float32 prefill rows) passed by value. */
struct RowArgs {
    int n_seqs, n_tokens, n_heads, n_kv_heads, group, block_size, bs_shift, max_blocks, window;
    float scale_log2;   /* softmax scale * log2(e): scores live in the base-2 domain */
    int part_tokens;    /* positions per partition (INT32_MAX: the whole context) */
    int n_parts;        /* partitions per row (1: write out directly) */
    int prefill_rows;   /* 0: rows are sequences and only q_len == 1 ones run;
                           1: rows are query tokens and only sequences with q_len > 1 run */
    float v_scale;      /* multiplies the output: the FP8 cache's V scale, else 1 */
    int prefetch_steps; /* decode: a warp asks L2 for the K and V rows of its tile this many
                           steps ahead (FOLIO_KV_PREFETCH; 0: none) */
};

/* Internal launchers (paged_attention_decode.cu, paged_attention_prefill.cu). */
void launch_rows(void *out, float *part_acc, float *part_ml, const void *q, const void *k_cache,
                 const void *v_cache, const int32_t *block_tables, const int32_t *seq_start,
                 const int32_t *context_lens, const RowArgs &a, int n_rows, int head_dim,
                 folio_dtype dtype, cudaStream_t stream);
/* Merges the partitions of decode rows into out (after launch_rows or launch_decode_mma). */
void launch_merge(void *out, const float *part_acc, const float *part_ml,
                  const int32_t *seq_start, const int32_t *context_lens, const RowArgs &a,
                  int head_dim, folio_dtype dtype, cudaStream_t stream);
/* Decode rows (q_len 1) on the tensor cores, bfloat16 and float16 (merge included); kv_fp8:
 * the cache holds e4m3 bytes. */
void launch_decode_mma(void *out, float *part_acc, float *part_ml, const void *q,
                       const void *k_cache, const void *v_cache, const int32_t *block_tables,
                       const int32_t *seq_start, const int32_t *context_lens, const RowArgs &a,
                       int head_dim, folio_dtype dtype, bool kv_fp8, cudaStream_t stream);
void launch_prefill_mma(void *out, const void *q, const void *k_cache, const void *v_cache,
                        const int32_t *block_tables, const int32_t *seq_start,
                        const int32_t *context_lens, const RowArgs &a, int max_q_len,
                        int head_dim, folio_dtype dtype, bool kv_fp8, cudaStream_t stream);

} // namespace folio_attn

#endif
