/* Decode attention (q_len 1) for bfloat16 and float16 on the tensor cores, grouped-query
 * aware: the GQA group's query heads are the M rows of an mma.sync m16n8k16 (up to 8 heads,
 * rows 8..15 zero), so each K and V row is read from memory once for the whole group and the
 * per-element work (dot products, type conversion, shuffle reductions) that bounded the
 * CUDA-core version (paged_attention_decode.cu: 59% of copy bandwidth on an H200, issue-bound)
 * becomes a few mma per 16 positions. Launcher: paged_attention_cuda (paged_attention.cu);
 * check: tests/unit/test_gpu_attention.c.
 *
 * Grid and partitions as the row kernel: one block per (sequence, KV head, partition), blocks
 * past the visible context or of rows with q_len != 1 return at once; partial results go to
 * the same workspace and merge kernel. Inside a block each of the 4 warps takes every 4th tile
 * of 16 positions and keeps its own online softmax (max, sum, O); the warps are combined
 * through shared memory at the end. No shared memory in the loop, no barriers: every load is
 * a 16-byte load from the cache straight into the registers where the mma wants it:
 *   S = Q K^T: B = K^T (k = head dims, n = 8 positions). A dot product may sum its dims in any
 *     order, so thread (g, t) of the quad layout reads position g's dims 32i + 8t .. +8 (a
 *     quad covers 64 contiguous bytes of a row) and Q is loaded with the same permutation.
 *   P: the S accumulator (head g, positions 2t, 2t+1 of each n8 tile) is already the A
 *     fragment of the next mma after rounding to the input type.
 *   O = P V: B = V (k = 16 positions, n = 8 dims) wants two positions of one dim per
 *     register; thread (g, t) reads positions 2t, 2t+1, 2t+8, 2t+9 at dims 64i + 8g .. +8
 *     (n-tile j holds dims 64(j/8) + 8g + j%8) and pairs halves with byte permutes.
 * The FP8 KV cache (e4m3) takes the same path with 8-byte loads kept raw in registers until
 * the mma needs them, then widened to the 16-bit type (Kv8): half the bytes per position for
 * the same mma work, and so half the bytes in flight for a latency-bound kernel (60% of copy
 * bandwidth on an H100 where bf16 reads at 87%; a shared-memory ring of 3 tiles in flight a
 * warp and L2 prefetch of later tiles were measured and lost: docs/benchmarks.md). */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <math.h>
#include <stdint.h>

#include "cuda_check.h"
#include "paged_attention_impl.cuh"

namespace folio_attn {

namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / kWarp;
constexpr int kTile = 16; /* positions per warp step */

__device__ __forceinline__ uint32_t word(const uint4 &v, int i) {
    return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

/* Grid: x = sequence, y = KV head, z = partition. Block: kThreads. KV: T, or uint8_t for the
 * FP8 cache (8-byte loads kept raw, widened to T where used: Kv8; K's scale is in
 * a.scale_log2, V's applied at the end). */
template <typename T, typename KV, int D>
__global__ void __launch_bounds__(kThreads)
paged_attention_decode_mma_kernel(T *out,                   /* [n_tokens][n_heads][D] */
                                  float *part_acc,          /* [n_seqs][n_heads][n_parts][D] */
                                  float *part_ml,           /* [n_seqs][n_heads][n_parts][2] */
                                  const T *q,               /* [n_tokens][n_heads][D] */
                                  const KV *k_cache,        /* [num_blocks][n_kv][bs][D] */
                                  const KV *v_cache,        /* [num_blocks][n_kv][bs][D] */
                                  const int32_t *block_tables, /* [n_seqs][max_blocks] */
                                  const int32_t *seq_start, /* [n_seqs + 1] */
                                  const int32_t *context_lens, /* [n_seqs] */
                                  RowArgs a) {
    constexpr int NK = D / 32; /* K vectors per thread per position: dims 32i + 8t */
    constexpr int NV = D / 64; /* V vectors per thread per position: dims 64i + 8g */
    constexpr int NT = D / 8;  /* n8 tiles of O */
    __shared__ float s_o[kWarps][8][D];
    __shared__ float s_m[kWarps][8], s_l[kWarps][8];

    pdl_wait(); /* launched with launch_pdl: q and the KV cache are earlier kernels' */
    pdl_launch_dependents();
    const int s = blockIdx.x, kvh = blockIdx.y, part = blockIdx.z;
    const int t = seq_start[s];
    if (seq_start[s + 1] - t != 1) return;
    const int pos = context_lens[s] - 1;
    const int vis_lo = a.window > 0 && pos >= a.window ? pos - a.window + 1 : 0;
    if (pos - vis_lo < part * (int64_t)a.part_tokens) return; /* past the visible context */
    const int start = vis_lo + part * a.part_tokens;
    const int end = pos + 1 - start > a.part_tokens ? start + a.part_tokens : pos + 1;
    const int n = end - start;

    const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
    const int g = lane / 4, tq = lane % 4;
    const bool head_ok = g < a.group;
    const int h = kvh * a.group + g;

    uint32_t qa[D / 16][2]; /* A fragments a0, a2 of each k16 slice; a1 = a3 = 0 (heads 8..15) */
#pragma unroll
    for (int i = 0; i < NK; i++) {
        uint4 v = make_uint4(0, 0, 0, 0);
        if (head_ok)
            v = *reinterpret_cast<const uint4 *>(q + ((int64_t)t * a.n_heads + h) * D + 32 * i +
                                                 8 * tq);
        qa[2 * i][0] = v.x;
        qa[2 * i][1] = v.y;
        qa[2 * i + 1][0] = v.z;
        qa[2 * i + 1][1] = v.w;
    }

    float o[NT][4];
#pragma unroll
    for (int j = 0; j < NT; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    const int32_t *table = block_tables + (int64_t)s * a.max_blocks;

    /* Software pipeline in registers: K of tile j + 1 and V of tile j are in flight while
     * tile j's scores, softmax and P V are computed. Measured on an H200: the same 72-73% of
     * copy bandwidth as loading the whole tile at the top of the loop (the compiler already
     * hoisted the loads); capping registers for 3 blocks per SM (168, small spill) gave 71%.
     * At 202 registers 2 blocks (8 warps) fit per SM: ncu shows 12.5% occupancy and 56% DRAM
     * throughput under its clocks, so the kernel is latency-bound; the next step is fewer
     * registers (the accumulator rows 8..15 of O are dead weight) or a cp.async pipeline
     * through shared memory. */
    using L = Kv8<T, KV>; /* loads stay raw (8 bytes a vector for FP8) until used */
    typename L::Raw k0[NK], k1[NK];
    typename L::Raw vv[4][NV]; /* positions j0 + 2t, 2t+1, 2t+8, 2t+9 */
    auto load_k = [&](int j0) {
        const int ja = j0 + g, jb = j0 + 8 + g;
        const int64_t oa = ja < n ? kv_row_offset(table, start + ja, kvh, a.n_kv_heads,
                                                  a.block_size, a.bs_shift, D)
                                  : -1;
        const int64_t ob = jb < n ? kv_row_offset(table, start + jb, kvh, a.n_kv_heads,
                                                  a.block_size, a.bs_shift, D)
                                  : -1;
#pragma unroll
        for (int i = 0; i < NK; i++) {
            k0[i] = oa >= 0 ? L::load(k_cache + oa + 32 * i + 8 * tq) : L::zero();
            k1[i] = ob >= 0 ? L::load(k_cache + ob + 32 * i + 8 * tq) : L::zero();
        }
    };
    auto load_v = [&](int j0) {
#pragma unroll
        for (int r = 0; r < 4; r++) {
            const int jr = j0 + 2 * tq + (r & 1) + (r >> 1) * 8;
            const int64_t ov = jr < n ? kv_row_offset(table, start + jr, kvh, a.n_kv_heads,
                                                      a.block_size, a.bs_shift, D)
                                      : -1;
#pragma unroll
            for (int i = 0; i < NV; i++)
                vv[r][i] = ov >= 0 ? L::load(v_cache + ov + 64 * i + 8 * g) : L::zero();
        }
    };
    /* S = Q K^T from k0 / k1: positions j0..j0+7 (s0) and j0+8..j0+15 (s1) */
    auto scores = [&](float (&s0)[4], float (&s1)[4]) {
#pragma unroll
        for (int e = 0; e < 4; e++) s0[e] = s1[e] = 0.0f;
#pragma unroll
        for (int i = 0; i < NK; i++) {
            const uint4 ka = L::widen(k0[i]), kb = L::widen(k1[i]);
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
                const uint32_t af[4] = {qa[2 * i + hh][0], 0u, qa[2 * i + hh][1], 0u};
                mma16816<T>(s0, af, word(ka, 2 * hh), word(ka, 2 * hh + 1));
                mma16816<T>(s1, af, word(kb, 2 * hh), word(kb, 2 * hh + 1));
            }
        }
    };
    /* the online softmax of head g over the tile's 16 positions, then O += P V from vv */
    auto softmax_pv = [&](int j0, const float (&s0)[4], const float (&s1)[4]) {
        const int jv0 = j0 + 2 * tq; /* positions jv0, +1, +8, +9 */
        float x[4] = {s0[0] * a.scale_log2, s0[1] * a.scale_log2, s1[0] * a.scale_log2,
                      s1[1] * a.scale_log2};
        if (jv0 >= n) x[0] = -INFINITY;
        if (jv0 + 1 >= n) x[1] = -INFINITY;
        if (jv0 + 8 >= n) x[2] = -INFINITY;
        if (jv0 + 9 >= n) x[3] = -INFINITY;
        float mx = fmaxf(fmaxf(x[0], x[1]), fmaxf(x[2], x[3]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float m_new = fmaxf(m, mx); /* finite: position j0 is valid */
        const float alpha = exp2f(m - m_new);
        float p[4];
#pragma unroll
        for (int r = 0; r < 4; r++) p[r] = exp2f(x[r] - m_new);
        l = l * alpha + (p[0] + p[1]) + (p[2] + p[3]);
        m = m_new;
#pragma unroll
        for (int j = 0; j < NT; j++) {
            o[j][0] *= alpha;
            o[j][1] *= alpha;
        }
        const uint32_t pa[4] = {pack2<T>(p[0], p[1]), 0u, pack2<T>(p[2], p[3]), 0u};
        uint4 vw[4][NV];
#pragma unroll
        for (int r = 0; r < 4; r++)
#pragma unroll
            for (int i = 0; i < NV; i++) vw[r][i] = L::widen(vv[r][i]);
#pragma unroll
        for (int j = 0; j < NT; j++) {
            const int i = j / 8, e = j % 8;
            const uint32_t sel = e % 2 ? 0x7632u : 0x5410u;
            const uint32_t b0 = __byte_perm(word(vw[0][i], e / 2), word(vw[1][i], e / 2), sel);
            const uint32_t b1 = __byte_perm(word(vw[2][i], e / 2), word(vw[3][i], e / 2), sel);
            mma16816<T>(o[j], pa, b0, b1);
        }
    };

    if (warp * kTile < n) load_k(warp * kTile);
    for (int j0 = warp * kTile; j0 < n; j0 += kWarps * kTile) {
        load_v(j0);
        float s0[4], s1[4];
        scores(s0, s1);
        if (j0 + kWarps * kTile < n) load_k(j0 + kWarps * kTile); /* K regs are free now */
        softmax_pv(j0, s0, s1);
    }

    /* combine the warps */
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
#pragma unroll
    for (int j = 0; j < NT; j++) {
        const int d = 64 * (j / 8) + 16 * tq + j % 8; /* n = 2t -> dim d, n = 2t+1 -> d + 8 */
        s_o[warp][g][d] = o[j][0];
        s_o[warp][g][d + 8] = o[j][1];
    }
    if (tq == 0) {
        s_m[warp][g] = m;
        s_l[warp][g] = l;
    }
    __syncthreads();
    for (int e = threadIdx.x; e < a.group * D; e += kThreads) {
        const int hg = e / D, d = e % D;
        float mm = -INFINITY;
#pragma unroll
        for (int w = 0; w < kWarps; w++) mm = fmaxf(mm, s_m[w][hg]);
        float num = 0.0f, den = 0.0f;
#pragma unroll
        for (int w = 0; w < kWarps; w++) {
            const float sc = exp2f(s_m[w][hg] - mm); /* 0 for a warp that had no tile */
            num = fmaf(sc, s_o[w][hg][d], num);
            den = fmaf(sc, s_l[w][hg], den);
        }
        num *= a.v_scale;
        const int hh = kvh * a.group + hg;
        if (a.n_parts == 1) {
            out[((int64_t)t * a.n_heads + hh) * D + d] = from_f32<T>(num / den);
        } else {
            const int64_t idx = ((int64_t)s * a.n_heads + hh) * a.n_parts + part;
            part_acc[idx * D + d] = num;
            if (d == 0) {
                part_ml[idx * 2] = mm;
                part_ml[idx * 2 + 1] = den;
            }
        }
    }
}

template <typename T, typename KV, int D>
void launch_t(void *out, float *part_acc, float *part_ml, const void *q, const void *k_cache,
              const void *v_cache, const int32_t *block_tables, const int32_t *seq_start,
              const int32_t *context_lens, const RowArgs &a, cudaStream_t stream) {
    const dim3 grid((unsigned)a.n_seqs, (unsigned)a.n_kv_heads, (unsigned)a.n_parts);
    launch_pdl(paged_attention_decode_mma_kernel<T, KV, D>, grid, dim3(kThreads), stream,
               static_cast<T *>(out), part_acc, part_ml, static_cast<const T *>(q),
               static_cast<const KV *>(k_cache), static_cast<const KV *>(v_cache), block_tables,
               seq_start, context_lens, a);
    CUDA_CHECK_LAUNCH();
}

template <typename T, typename KV>
void launch_kv(void *out, float *part_acc, float *part_ml, const void *q, const void *k_cache,
               const void *v_cache, const int32_t *block_tables, const int32_t *seq_start,
               const int32_t *context_lens, const RowArgs &a, int head_dim, cudaStream_t stream) {
    if (head_dim == 64)
        launch_t<T, KV, 64>(out, part_acc, part_ml, q, k_cache, v_cache, block_tables, seq_start,
                            context_lens, a, stream);
    else
        launch_t<T, KV, 128>(out, part_acc, part_ml, q, k_cache, v_cache, block_tables, seq_start,
                             context_lens, a, stream);
}

} // namespace

void launch_decode_mma(void *out, float *part_acc, float *part_ml, const void *q,
                       const void *k_cache, const void *v_cache, const int32_t *block_tables,
                       const int32_t *seq_start, const int32_t *context_lens, const RowArgs &a,
                       int head_dim, folio_dtype dtype, bool kv_fp8, cudaStream_t stream) {
    if (dtype == DTYPE_BF16 && kv_fp8)
        launch_kv<__nv_bfloat16, uint8_t>(out, part_acc, part_ml, q, k_cache, v_cache,
                                          block_tables, seq_start, context_lens, a, head_dim,
                                          stream);
    else if (dtype == DTYPE_BF16)
        launch_kv<__nv_bfloat16, __nv_bfloat16>(out, part_acc, part_ml, q, k_cache, v_cache,
                                                block_tables, seq_start, context_lens, a,
                                                head_dim, stream);
    else if (kv_fp8)
        launch_kv<__half, uint8_t>(out, part_acc, part_ml, q, k_cache, v_cache, block_tables,
                                   seq_start, context_lens, a, head_dim, stream);
    else
        launch_kv<__half, __half>(out, part_acc, part_ml, q, k_cache, v_cache, block_tables,
                                  seq_start, context_lens, a, head_dim, stream);
    if (a.n_parts > 1)
        launch_merge(out, part_acc, part_ml, seq_start, context_lens, a, head_dim, dtype, stream);
}

} // namespace folio_attn
