/* Paged attention on CUDA cores for one query row at a time, grouped-query aware: the float32
 * decode (q_len 1, split along the context, then the log-sum-exp merge kernel, which the
 * tensor-core decode of paged_attention_decode_mma.cu shares) and, with the same kernel, the
 * float32 prefill path (one row per query token, whole context in one pass). It was the
 * first bfloat16 decode too: 59% of the copy bandwidth on an H200 at batch 64 x 4,096, bound
 * by instruction issue (64 FMA + 32 shuffles + conversions per 16-byte load pair for GQA 8).
 * Launcher: paged_attention_cuda (paged_attention.cu); check: tests/unit/test_gpu_attention.c.
 *
 * One thread block per (row, KV head, partition). The block serves all GP query heads that
 * share the KV head, so each K and V row of the partition is read from memory once for the
 * whole group. A partition is walked in chunks of kChunk positions:
 *   1. the chunk's row offsets (block table lookups) go to shared memory;
 *   2. K pass: L = head_dim / VEC lanes hold one token's row, a 16-byte vector each, and dot
 *      it with their slice of the GP queries (float32); a shuffle reduction over the L lanes
 *      gives the GP scores (base-2 domain), stored in shared memory;
 *   3. softmax: one warp per head takes the chunk maximum, rescales the running sum (online
 *      softmax across chunks) and turns scores into exp2(s - max) in place;
 *   4. V pass: the same lanes read the token's V vector and accumulate p * v per head.
 * Several 16-byte loads are issued before their first use (U per thread) to keep enough bytes
 * in flight. At the end the per-token-slot accumulators are summed (shuffles, then shared
 * memory across warps) and written: normalised into out when the row has one partition,
 * else raw with (max, sum) into the workspace, which paged_attention_merge_kernel combines.
 *
 * The grid depends only on bounds (n_seqs or n_tokens, n_kv_heads, n_parts): blocks whose
 * partition starts past their row's visible context, or whose row is not of their kind,
 * return at once. That is what lets the backend capture decode steps in CUDA graphs. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "cuda_check.h"
#include "paged_attention_impl.cuh"

namespace folio_attn {

namespace {

constexpr int kRowThreads = 128;
constexpr int kRowWarps = kRowThreads / kWarp;
constexpr int kChunk = 256; /* positions per chunk (scores in shared memory) */
constexpr int kUnroll = 4;  /* 16-byte loads in flight per thread per pass */

using folio::warp_max;
using folio::warp_sum;

/* Grid: x = row (sequence in decode mode, query token in prefill mode), y = KV head,
 * z = partition. Block: kRowThreads. GP: query heads per KV head rounded up to 1, 2, 4, 8
 * (heads past a.group compute on zeros and are not written). */
template <typename T, int D, int GP>
__global__ void __launch_bounds__(kRowThreads)
paged_attention_rows_kernel(T *out,                   /* [n_tokens][n_heads][D] */
                            float *part_acc,          /* [n_rows][n_heads][n_parts][D] */
                            float *part_ml,           /* [n_rows][n_heads][n_parts][2] */
                            const T *q,               /* [n_tokens][n_heads][D] */
                            const T *k_cache,         /* [num_blocks][n_kv][block_size][D] */
                            const T *v_cache,         /* [num_blocks][n_kv][block_size][D] */
                            const int32_t *block_tables, /* [n_seqs][max_blocks] */
                            const int32_t *seq_start, /* [n_seqs + 1] */
                            const int32_t *context_lens, /* [n_seqs] */
                            RowArgs a) {
    constexpr int VEC = 16 / (int)sizeof(T);
    constexpr int L = D / VEC;        /* lanes per token row */
    constexpr int TPW = kWarp / L;    /* token slots per warp */
    constexpr int TPB = TPW * kRowWarps;
    using P = Pack<T, VEC>;
    static_assert(L <= kWarp && kWarp % L == 0, "a token row must fit a warp");

    __shared__ float s_p[GP][kChunk];     /* scores, then probabilities of the chunk */
    __shared__ int64_t s_off[kChunk];     /* element offset of each position's K/V row */
    __shared__ float s_red[kRowWarps][GP][D]; /* per-warp accumulators at the end */
    __shared__ float s_alpha[GP], s_m[GP], s_l[GP];

    const int row = blockIdx.x, kvh = blockIdx.y, part = blockIdx.z;
    int s, t;
    if (!a.prefill_rows) {
        s = row;
        t = seq_start[s];
        if (seq_start[s + 1] - t != 1) return;
    } else {
        t = row;
        if (t < seq_start[0] || t >= seq_start[a.n_seqs]) return;
        int lo = 0, hi = a.n_seqs - 1; /* last s with seq_start[s] <= t */
        while (lo < hi) {
            const int mid = lo + (hi - lo + 1) / 2;
            if (seq_start[mid] <= t) lo = mid;
            else hi = mid - 1;
        }
        s = lo;
        if (seq_start[s + 1] - seq_start[s] == 1) return; /* the decode launch has it */
    }
    const int pos = context_lens[s] - (seq_start[s + 1] - t);
    const int vis_lo = a.window > 0 && pos >= a.window ? pos - a.window + 1 : 0;
    if (pos - vis_lo < part * (int64_t)a.part_tokens) return; /* past the visible context */
    const int start = vis_lo + part * a.part_tokens;
    const int end = pos + 1 - start > a.part_tokens ? start + a.part_tokens : pos + 1;

    const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
    const int li = lane % L;               /* which VEC-slice of the row */
    const int slot = warp * TPW + lane / L; /* token slot within a block step */

    float qf[GP][VEC];
#pragma unroll
    for (int g = 0; g < GP; g++) {
        if (g < a.group) {
            const int h = kvh * a.group + g;
            const P v = *reinterpret_cast<const P *>(q + ((int64_t)t * a.n_heads + h) * D +
                                                     li * VEC);
#pragma unroll
            for (int i = 0; i < VEC; i++) qf[g][i] = to_f32(v.v[i]) * a.scale_log2;
        } else {
#pragma unroll
            for (int i = 0; i < VEC; i++) qf[g][i] = 0.0f;
        }
    }
    float acc[GP][VEC];
#pragma unroll
    for (int g = 0; g < GP; g++)
#pragma unroll
        for (int i = 0; i < VEC; i++) acc[g][i] = 0.0f;

    const int32_t *table = block_tables + (int64_t)s * a.max_blocks;
    for (int c0 = start; c0 < end; c0 += kChunk) {
        const int n = end - c0 < kChunk ? end - c0 : kChunk;
        for (int j = threadIdx.x; j < n; j += kRowThreads)
            s_off[j] = kv_row_offset(table, c0 + j, kvh, a.n_kv_heads, a.block_size, a.bs_shift, D);
        __syncthreads();

        /* K pass */
        for (int j0 = 0; j0 < n; j0 += TPB * kUnroll) {
            P kv[kUnroll];
#pragma unroll
            for (int u = 0; u < kUnroll; u++) {
                const int j = j0 + u * TPB + slot;
                if (j < n) {
                    kv[u] = *reinterpret_cast<const P *>(k_cache + s_off[j] + li * VEC);
                } else {
#pragma unroll
                    for (int i = 0; i < VEC; i++) kv[u].v[i] = from_f32<T>(0.0f);
                }
            }
#pragma unroll
            for (int u = 0; u < kUnroll; u++) {
                const int j = j0 + u * TPB + slot;
                float d[GP];
#pragma unroll
                for (int g = 0; g < GP; g++) {
                    float x = 0.0f;
#pragma unroll
                    for (int i = 0; i < VEC; i++) x = fmaf(qf[g][i], to_f32(kv[u].v[i]), x);
                    d[g] = x;
                }
#pragma unroll
                for (int off = L / 2; off > 0; off /= 2)
#pragma unroll
                    for (int g = 0; g < GP; g++) d[g] += __shfl_xor_sync(0xffffffffu, d[g], off);
                if (li == 0 && j < n)
#pragma unroll
                    for (int g = 0; g < GP; g++) s_p[g][j] = d[g];
            }
        }
        __syncthreads();

        /* softmax of the chunk, merged into the running (max, sum) of the partition */
        for (int g = warp; g < GP; g += kRowWarps) {
            float mx = -INFINITY;
            for (int j = lane; j < n; j += kWarp) mx = fmaxf(mx, s_p[g][j]);
            mx = warp_max(mx);
            const float m_old = c0 == start ? -INFINITY : s_m[g];
            const float m_new = fmaxf(m_old, mx);
            float sum = 0.0f;
            for (int j = lane; j < n; j += kWarp) {
                const float e = exp2f(s_p[g][j] - m_new);
                s_p[g][j] = e;
                sum += e;
            }
            sum = warp_sum(sum);
            __syncwarp(); /* every lane has read s_m[g] (m_old) before lane 0 rewrites it */
            if (lane == 0) {
                const float alpha = c0 == start ? 0.0f : exp2f(m_old - m_new);
                s_alpha[g] = alpha;
                s_l[g] = (c0 == start ? 0.0f : s_l[g]) * alpha + sum;
                s_m[g] = m_new;
            }
        }
        __syncthreads();

        /* V pass */
#pragma unroll
        for (int g = 0; g < GP; g++) {
            const float alpha = s_alpha[g];
#pragma unroll
            for (int i = 0; i < VEC; i++) acc[g][i] *= alpha;
        }
        for (int j0 = 0; j0 < n; j0 += TPB * kUnroll) {
            P vv[kUnroll];
#pragma unroll
            for (int u = 0; u < kUnroll; u++) {
                const int j = j0 + u * TPB + slot;
                if (j < n) vv[u] = *reinterpret_cast<const P *>(v_cache + s_off[j] + li * VEC);
            }
#pragma unroll
            for (int u = 0; u < kUnroll; u++) {
                const int j = j0 + u * TPB + slot;
                if (j < n) {
#pragma unroll
                    for (int g = 0; g < GP; g++) {
                        const float p = s_p[g][j];
#pragma unroll
                        for (int i = 0; i < VEC; i++) acc[g][i] = fmaf(p, to_f32(vv[u].v[i]), acc[g][i]);
                    }
                }
            }
        }
        __syncthreads(); /* s_p and s_off are rewritten by the next chunk */
    }

    /* sum the token slots: lanes of one warp with the same slice, then the warps */
#pragma unroll
    for (int off = L; off < kWarp; off *= 2)
#pragma unroll
        for (int g = 0; g < GP; g++)
#pragma unroll
            for (int i = 0; i < VEC; i++) acc[g][i] += __shfl_xor_sync(0xffffffffu, acc[g][i], off);
    if (lane < L)
#pragma unroll
        for (int g = 0; g < GP; g++)
#pragma unroll
            for (int i = 0; i < VEC; i++) s_red[warp][g][li * VEC + i] = acc[g][i];
    __syncthreads();
    for (int e = threadIdx.x; e < a.group * D; e += kRowThreads) {
        const int g = e / D, d = e % D;
        float v = 0.0f;
#pragma unroll
        for (int w = 0; w < kRowWarps; w++) v += s_red[w][g][d];
        const int h = kvh * a.group + g;
        if (a.n_parts == 1) {
            out[((int64_t)t * a.n_heads + h) * D + d] = from_f32<T>(v / s_l[g]);
        } else {
            const int64_t idx = ((int64_t)row * a.n_heads + h) * a.n_parts + part;
            part_acc[idx * D + d] = v;
            if (d == 0) {
                part_ml[idx * 2] = s_m[g];
                part_ml[idx * 2 + 1] = s_l[g];
            }
        }
    }
}

/* Grid: x = sequence, y = query head; block: D threads (one output element each). Merges the
 * partitions of a decode row: out = sum_i 2^(m_i - M) acc_i / sum_i 2^(m_i - M) l_i. */
template <typename T, int D>
__global__ void __launch_bounds__(D)
paged_attention_merge_kernel(T *out,                   /* [n_tokens][n_heads][D] */
                             const float *part_acc,    /* [n_seqs][n_heads][n_parts][D] */
                             const float *part_ml,     /* [n_seqs][n_heads][n_parts][2] */
                             const int32_t *seq_start, /* [n_seqs + 1] */
                             const int32_t *context_lens, /* [n_seqs] */
                             RowArgs a) {
    pdl_wait(); /* with launch_pdl (launch_merge_t): the parts are the previous kernel's */
    pdl_launch_dependents();
    const int s = blockIdx.x, h = blockIdx.y, d = threadIdx.x;
    const int t = seq_start[s];
    if (seq_start[s + 1] - t != 1) return;
    const int pos = context_lens[s] - 1;
    const int vis_lo = a.window > 0 && pos >= a.window ? pos - a.window + 1 : 0;
    const int vis = pos + 1 - vis_lo;
    if (vis <= 0) return;
    const int nv = (vis + a.part_tokens - 1) / a.part_tokens; /* partitions that ran */
    const int64_t base = ((int64_t)s * a.n_heads + h) * a.n_parts;
    float m = -INFINITY;
    for (int i = 0; i < nv; i++) m = fmaxf(m, part_ml[(base + i) * 2]);
    float num = 0.0f, den = 0.0f;
    for (int i = 0; i < nv; i++) {
        const float w = exp2f(part_ml[(base + i) * 2] - m);
        den = fmaf(w, part_ml[(base + i) * 2 + 1], den);
        num = fmaf(w, part_acc[(base + i) * D + d], num);
    }
    out[((int64_t)t * a.n_heads + h) * D + d] = from_f32<T>(num / den);
}

template <typename T, int D, int GP>
void launch_rows_t(T *out, float *part_acc, float *part_ml, const T *q, const T *k_cache,
                   const T *v_cache, const int32_t *block_tables, const int32_t *seq_start,
                   const int32_t *context_lens, const RowArgs &a, int n_rows, cudaStream_t stream) {
    const dim3 grid((unsigned)n_rows, (unsigned)a.n_kv_heads, (unsigned)a.n_parts);
    paged_attention_rows_kernel<T, D, GP><<<grid, kRowThreads, 0, stream>>>(
        out, part_acc, part_ml, q, k_cache, v_cache, block_tables, seq_start, context_lens, a);
    CUDA_CHECK_LAUNCH();
    if (a.n_parts > 1) {
        paged_attention_merge_kernel<T, D><<<dim3((unsigned)n_rows, (unsigned)a.n_heads), D, 0,
                                             stream>>>(out, part_acc, part_ml, seq_start,
                                                       context_lens, a);
        CUDA_CHECK_LAUNCH();
    }
}

template <typename T>
void launch_merge_t(void *out, const float *part_acc, const float *part_ml,
                    const int32_t *seq_start, const int32_t *context_lens, const RowArgs &a,
                    int head_dim, cudaStream_t stream) {
    const dim3 grid((unsigned)a.n_seqs, (unsigned)a.n_heads);
    if (head_dim == 64)
        launch_pdl(paged_attention_merge_kernel<T, 64>, grid, dim3(64), stream,
                   static_cast<T *>(out), part_acc, part_ml, seq_start, context_lens, a);
    else
        launch_pdl(paged_attention_merge_kernel<T, 128>, grid, dim3(128), stream,
                   static_cast<T *>(out), part_acc, part_ml, seq_start, context_lens, a);
    CUDA_CHECK_LAUNCH();
}

/* GQA ratio -> template: 1, 2, 4, 8 (3 runs as 4, 5..7 as 8). Four instantiations per dtype
 * and head size keep the build short while every ratio of LLaMA-family models (1, 4, 7, 8)
 * runs with its accumulators in registers. */
template <typename T, int D>
void launch_rows_d(T *out, float *part_acc, float *part_ml, const T *q, const T *k_cache,
                   const T *v_cache, const int32_t *block_tables, const int32_t *seq_start,
                   const int32_t *context_lens, const RowArgs &a, int n_rows, cudaStream_t stream) {
    if (a.group == 1)
        launch_rows_t<T, D, 1>(out, part_acc, part_ml, q, k_cache, v_cache, block_tables,
                               seq_start, context_lens, a, n_rows, stream);
    else if (a.group == 2)
        launch_rows_t<T, D, 2>(out, part_acc, part_ml, q, k_cache, v_cache, block_tables,
                               seq_start, context_lens, a, n_rows, stream);
    else if (a.group <= 4)
        launch_rows_t<T, D, 4>(out, part_acc, part_ml, q, k_cache, v_cache, block_tables,
                               seq_start, context_lens, a, n_rows, stream);
    else
        launch_rows_t<T, D, 8>(out, part_acc, part_ml, q, k_cache, v_cache, block_tables,
                               seq_start, context_lens, a, n_rows, stream);
}

template <typename T>
void launch_rows_typed(void *out, float *part_acc, float *part_ml, const void *q,
                       const void *k_cache, const void *v_cache, const int32_t *block_tables,
                       const int32_t *seq_start, const int32_t *context_lens, const RowArgs &a,
                       int n_rows, int head_dim, cudaStream_t stream) {
    T *o = static_cast<T *>(out);
    const T *qq = static_cast<const T *>(q), *k = static_cast<const T *>(k_cache),
            *v = static_cast<const T *>(v_cache);
    if (head_dim == 64)
        launch_rows_d<T, 64>(o, part_acc, part_ml, qq, k, v, block_tables, seq_start,
                             context_lens, a, n_rows, stream);
    else
        launch_rows_d<T, 128>(o, part_acc, part_ml, qq, k, v, block_tables, seq_start,
                              context_lens, a, n_rows, stream);
}

} // namespace

void launch_merge(void *out, const float *part_acc, const float *part_ml,
                  const int32_t *seq_start, const int32_t *context_lens, const RowArgs &a,
                  int head_dim, folio_dtype dtype, cudaStream_t stream) {
    if (dtype == DTYPE_BF16)
        launch_merge_t<__nv_bfloat16>(out, part_acc, part_ml, seq_start, context_lens, a,
                                      head_dim, stream);
    else if (dtype == DTYPE_F16)
        launch_merge_t<__half>(out, part_acc, part_ml, seq_start, context_lens, a, head_dim,
                               stream);
    else
        launch_merge_t<float>(out, part_acc, part_ml, seq_start, context_lens, a, head_dim,
                              stream);
}

void launch_rows(void *out, float *part_acc, float *part_ml, const void *q, const void *k_cache,
                 const void *v_cache, const int32_t *block_tables, const int32_t *seq_start,
                 const int32_t *context_lens, const RowArgs &a, int n_rows, int head_dim,
                 folio_dtype dtype, cudaStream_t stream) {
    switch (dtype) {
    case DTYPE_BF16:
        launch_rows_typed<__nv_bfloat16>(out, part_acc, part_ml, q, k_cache, v_cache,
                                         block_tables, seq_start, context_lens, a, n_rows,
                                         head_dim, stream);
        break;
    case DTYPE_F16:
        launch_rows_typed<__half>(out, part_acc, part_ml, q, k_cache, v_cache, block_tables,
                                  seq_start, context_lens, a, n_rows, head_dim, stream);
        break;
    default:
        launch_rows_typed<float>(out, part_acc, part_ml, q, k_cache, v_cache, block_tables,
                                 seq_start, context_lens, a, n_rows, head_dim, stream);
        break;
    }
}

} // namespace folio_attn
