/* Shared pieces of the paged attention kernels (paged_attention.cu is the launcher,
 * paged_attention_decode.cu the CUDA-core row kernels (float32 decodes and prefills) and the
 * partition merge, paged_attention_decode_mma.cu the bfloat16/float16 decode,
 * paged_attention_prefill.cu the tensor-core prefill, paged_attention_prefill_wgmma.cu its
 * wgmma form for head_dim 128): element conversions, 16-byte packs, the
 * split-context plan, the prefill kernels' tile setup and online-softmax step, and the internal
 * launchers. CUDA C++ only; the C interface is attention_cuda.h. */
#ifndef FOLIO_PAGED_ATTENTION_IMPL_CUH
#define FOLIO_PAGED_ATTENTION_IMPL_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <math.h>
#include <stdint.h>

#include "attention_cuda.h"
#include "cuda_types.cuh"

namespace folio_attn {

using folio::from_f32;
using folio::kWarp;
using folio::launch_pdl;
using folio::pdl_launch_dependents;
using folio::pdl_wait;
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

/* Arguments of the attention kernels (decode rows, prefill tiles), passed by value. */
struct RowArgs {
    int n_seqs, n_tokens, n_heads, n_kv_heads, group, block_size, bs_shift, max_blocks, window;
    float scale_log2;   /* softmax scale * log2(e): scores live in the base-2 domain */
    int part_tokens;    /* positions per partition (INT32_MAX: the whole context) */
    int n_parts;        /* partitions per row (1: write out directly) */
    int prefill_rows;   /* 0: rows are sequences and only q_len == 1 ones run;
                           1: rows are query tokens and only sequences with q_len > 1 run */
    float v_scale;      /* multiplies the output: the FP8 cache's V scale, else 1 */
};

/* The query tile of one prefill block (kBM of the sequence's new tokens, counted from the
 * first; grid x runs the tiles in reverse, so the longest start first) and the key positions
 * its rows see. */
struct PrefillTile {
    int q0;             /* query row of the sequence's first new token */
    int i0, rows;       /* the tile's first row within the sequence, its rows (<= kBM) */
    int pos0, pos_last; /* positions of its first and last row */
    int klo, kend;      /* visible keys: [klo, kend) (causal, sliding window if any) */
    int n_tiles;        /* key tiles of kBN positions over [klo, kend) */
};

/* Fills t for block (blockIdx.x, sequence s); false where the block has nothing to do (a decode
 * row, a tile past the sequence's new tokens, a context shorter than them). Uniform over the
 * block, so it may return before any barrier. */
template <int kBM, int kBN>
__device__ __forceinline__ bool prefill_tile(PrefillTile &pt, const int32_t *seq_start,
                                             const int32_t *context_lens, int s, int window) {
    pt.q0 = seq_start[s];
    const int qlen = seq_start[s + 1] - pt.q0;
    if (qlen <= 1) return false;
    pt.i0 = (gridDim.x - 1 - blockIdx.x) * kBM;
    if (pt.i0 >= qlen) return false;
    const int ctx = context_lens[s];
    pt.rows = qlen - pt.i0 < kBM ? qlen - pt.i0 : kBM;
    pt.pos0 = ctx - qlen + pt.i0;
    pt.pos_last = pt.pos0 + pt.rows - 1;
    if (pt.pos0 < 0) return false; /* context shorter than q_len: invalid step */
    pt.klo = window > 0 && pt.pos0 >= window ? pt.pos0 - window + 1 : 0;
    pt.kend = pt.pos_last + 1;
    pt.n_tiles = (pt.kend - pt.klo + kBN - 1) / kBN;
    return true;
}

/* One key tile's online-softmax step in the tensor-core prefill kernels, for this thread's two
 * query rows (positions qp0 and qp0 + 8). sc: the tile's scores as accumulator fragments, kN8
 * of them (n8 tile j: sc[4j + e] is row e / 2, key kstart + 8j + 2 tq + e % 2), rewritten in
 * place: masked (only in tiles that cross the diagonal, the end or the window edge), base 2,
 * exponentiated against the new row maxima m0 / m1. l0 / l1 (this thread's partial row sums)
 * are updated; alpha0 / alpha1 are the factors that rescale the output accumulated so far. */
template <int kN8>
__device__ __forceinline__ void prefill_softmax(float *sc, const RowArgs &a, const PrefillTile &pt,
                                                int kstart, int qp0, int tq, float &m0, float &m1,
                                                float &l0, float &l1, float &alpha0,
                                                float &alpha1) {
    const int qp1 = qp0 + 8;
    const bool need_mask = kstart + 8 * kN8 - 1 > pt.pos0 ||
                           (a.window > 0 && kstart <= pt.pos_last - a.window);
    float mx0 = m0, mx1 = m1;
#pragma unroll
    for (int j = 0; j < kN8; j++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
            float x = sc[4 * j + e] * a.scale_log2;
            if (need_mask) {
                const int kp = kstart + 8 * j + 2 * tq + (e & 1);
                const int qp = e < 2 ? qp0 : qp1;
                if (kp > qp || kp >= pt.kend || (a.window > 0 && kp <= qp - a.window))
                    x = -INFINITY;
            }
            sc[4 * j + e] = x;
        }
        mx0 = fmaxf(mx0, fmaxf(sc[4 * j], sc[4 * j + 1]));
        mx1 = fmaxf(mx1, fmaxf(sc[4 * j + 2], sc[4 * j + 3]));
    }
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
    const float base0 = mx0 == -INFINITY ? 0.0f : mx0; /* row fully masked so far */
    const float base1 = mx1 == -INFINITY ? 0.0f : mx1;
    alpha0 = exp2f(m0 - base0);
    alpha1 = exp2f(m1 - base1);
    m0 = mx0;
    m1 = mx1;
    float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
    for (int j = 0; j < kN8; j++) {
        sc[4 * j] = exp2f(sc[4 * j] - base0);
        sc[4 * j + 1] = exp2f(sc[4 * j + 1] - base0);
        sc[4 * j + 2] = exp2f(sc[4 * j + 2] - base1);
        sc[4 * j + 3] = exp2f(sc[4 * j + 3] - base1);
        sum0 += sc[4 * j] + sc[4 * j + 1];
        sum1 += sc[4 * j + 2] + sc[4 * j + 3];
    }
    l0 = l0 * alpha0 + sum0; /* per-thread partial sums; the quad is summed at the end */
    l1 = l1 * alpha1 + sum1;
}

/* Internal launchers (paged_attention_decode.cu, paged_attention_decode_mma.cu,
 * paged_attention_prefill.cu, paged_attention_prefill_wgmma.cu). */
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
/* The prefill kernel on wgmma (paged_attention_prefill_wgmma.cu): head_dim 128 only. */
void launch_prefill_wgmma(void *out, const void *q, const void *k_cache, const void *v_cache,
                          const int32_t *block_tables, const int32_t *seq_start,
                          const int32_t *context_lens, const RowArgs &a, int max_q_len,
                          folio_dtype dtype, bool kv_fp8, cudaStream_t stream);

} // namespace folio_attn

#endif
