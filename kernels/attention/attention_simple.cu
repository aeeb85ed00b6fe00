/* A simple, correct paged attention for the CUDA backend: the fallback where
 * paged_attention_cuda does not support the shape (forward_cuda_setup.c choose_attention), and
 * the reference it is compared with (FOLIO_ATTENTION=simple). Same contract as
 * paged_attention_cuda (attention_cuda.h), HND cache layout, prefill and decode mixed.
 *
 * Grid: (n_tokens, n_heads); block: 4 warps. The query row sits in shared memory as float.
 * Warp w takes chunks of 32 keys (w, w + 4, ...); lane j scores key j of the chunk (a whole
 * row of K, 16-byte loads), the warp updates its running max and sum (online softmax) and then
 * accumulates the chunk's V rows, lane l owning output dims l, l + 32, ... (head_dim <= 256).
 * The four warps' partial results are merged through shared memory. Float throughout.
 *
 * Two versions. attention_simple_kernel (any head_dim <= 256) accumulates V one key at a time
 * per warp: 32 dependent rounds per chunk, so it is latency-bound (an 8B decode step at
 * context 128 spent 1.56 of 6.6 ms in it on an H200). attention_chunk_kernel (head_dim / VEC
 * a power of two <= 32, VEC = 16 bytes of elements) loads the chunk's K rows whole (every load
 * of a lane in flight at once) and splits the V rows over lane groups, PACKS lanes per row
 * with 16-byte loads, every key of the chunk in flight; the groups are summed by shuffles. */
#include "attention_cuda.h"
#include "cuda_types.cuh"
#include "kernels_cuda.h"

namespace {

using namespace folio;

constexpr int kWarps = 4;
constexpr int kMaxPerLane = 8; /* head_dim <= 256 */
constexpr int kMaxHeadDim = kWarp * kMaxPerLane;

/* The sequence of token t: the last s with seq_start[s] <= t. */
__device__ int seq_of_token(const int32_t *seq_start, int n_seqs, int t) {
    int lo = 0, hi = n_seqs - 1;
    while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        if (seq_start[mid] <= t) lo = mid; else hi = mid - 1;
    }
    return lo;
}

/* Element offset of key j's row of kv head kvh in the HND cache, through the block table. */
__device__ size_t kv_row(const int32_t *table, int j, int n_kv, int kvh, int bs, int hd) {
    return (((size_t)table[j / bs] * n_kv + kvh) * bs + j % bs) * hd;
}

/* Merges the kWarps partial results (running max s_m, sum s_l, accumulators s_acc rows of
 * stride hd_stride) into orow[0..hd). */
template <typename T>
__device__ void merge_warps(T *orow, const float *s_m, const float *s_l, const float *s_acc,
                            int hd_stride, int hd) {
    float mm = -INFINITY;
    for (int w = 0; w < kWarps; w++) mm = fmaxf(mm, s_m[w]);
    float ll = 0.0f, f[kWarps];
    for (int w = 0; w < kWarps; w++) {
        f[w] = s_m[w] == -INFINITY ? 0.0f : expf(s_m[w] - mm);
        ll += s_l[w] * f[w];
    }
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float o = 0.0f;
        for (int w = 0; w < kWarps; w++) o += s_acc[w * hd_stride + d] * f[w];
        orow[d] = from_f32<T>(o / ll);
    }
}

template <typename T, int VEC>
__global__ void __launch_bounds__(kWarps * kWarp)
attention_simple_kernel(T *out,                      /* [n_tokens][n_heads][hd] */
                        const T *q,                  /* [n_tokens][n_heads][hd] */
                        const T *k_cache, const T *v_cache, /* [blocks][nkv][bs][hd] */
                        const int32_t *block_tables, /* [n_seqs][max_blocks] */
                        const int32_t *seq_start,    /* [n_seqs + 1] */
                        const int32_t *context_lens, /* [n_seqs] */
                        int n_seqs, int max_blocks, int n_heads, int n_kv, int hd, int bs,
                        int window, float scale) {
    __shared__ float s_q[kMaxHeadDim];
    __shared__ float s_m[kWarps], s_l[kWarps];
    __shared__ float s_acc[kWarps][kMaxHeadDim];
    const int t = blockIdx.x, h = blockIdx.y, kvh = h / (n_heads / n_kv);
    const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
    const int s = seq_of_token(seq_start, n_seqs, t);
    const int pos = context_lens[s] - (seq_start[s + 1] - t);
    const int first = window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
    const int32_t *table = block_tables + (size_t)s * max_blocks;
    const T *qrow = q + ((size_t)t * n_heads + h) * hd;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) s_q[d] = to_f32(qrow[d]);
    __syncthreads();

    float m = -INFINITY, l = 0.0f, acc[kMaxPerLane];
#pragma unroll
    for (int e = 0; e < kMaxPerLane; e++) acc[e] = 0.0f;
    for (int c0 = first + warp * kWarp; c0 <= pos; c0 += kWarps * kWarp) {
        const int j = c0 + lane;
        float score = -INFINITY;
        if (j <= pos) {
            const size_t off = kv_row(table, j, n_kv, kvh, bs, hd);
            const Pack<T, VEC> *krow = reinterpret_cast<const Pack<T, VEC> *>(k_cache + off);
            float dot = 0.0f;
            for (int p = 0; p < hd / VEC; p++) {
                const Pack<T, VEC> kv = krow[p];
#pragma unroll
                for (int e = 0; e < VEC; e++) dot += s_q[p * VEC + e] * to_f32(kv.v[e]);
            }
            score = dot * scale;
        }
        const float m_new = fmaxf(m, warp_max(score));
        const float corr = expf(m - m_new);
        const float p = j <= pos ? expf(score - m_new) : 0.0f;
        l = l * corr + warp_sum(p);
#pragma unroll
        for (int e = 0; e < kMaxPerLane; e++) acc[e] *= corr;
        const int n_keys = pos - c0 + 1 < kWarp ? pos - c0 + 1 : kWarp;
        for (int kk = 0; kk < n_keys; kk++) {
            const float pk = __shfl_sync(0xffffffffu, p, kk);
            const int jj = c0 + kk;
            const T *vrow = v_cache + kv_row(table, jj, n_kv, kvh, bs, hd);
#pragma unroll
            for (int e = 0; e < kMaxPerLane; e++) {
                const int d = lane + e * kWarp;
                if (d < hd) acc[e] += pk * to_f32(vrow[d]);
            }
        }
        m = m_new;
    }
    if (lane == 0) {
        s_m[warp] = m;
        s_l[warp] = l;
    }
#pragma unroll
    for (int e = 0; e < kMaxPerLane; e++)
        if (lane + e * kWarp < hd) s_acc[warp][lane + e * kWarp] = acc[e];
    __syncthreads();
    merge_warps(out + ((size_t)t * n_heads + h) * hd, s_m, s_l, &s_acc[0][0], kMaxHeadDim, hd);
}

template <typename T, int PACKS>
__global__ void __launch_bounds__(kWarps * kWarp)
attention_chunk_kernel(T *out,                      /* [n_tokens][n_heads][hd] */
                       const T *q,                  /* [n_tokens][n_heads][hd] */
                       const T *k_cache, const T *v_cache, /* [blocks][nkv][bs][hd] */
                       const int32_t *block_tables, /* [n_seqs][max_blocks] */
                       const int32_t *seq_start,    /* [n_seqs + 1] */
                       const int32_t *context_lens, /* [n_seqs] */
                       int n_seqs, int max_blocks, int n_heads, int n_kv, int bs, int window,
                       float scale) {
    constexpr int VEC = 16 / sizeof(T), HD = PACKS * VEC, GROUPS = kWarp / PACKS;
    using P = Pack<T, VEC>;
    __shared__ float s_q[HD];
    __shared__ float s_m[kWarps], s_l[kWarps];
    __shared__ float s_acc[kWarps][HD];
    const int t = blockIdx.x, h = blockIdx.y, kvh = h / (n_heads / n_kv);
    const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
    const int group = lane / PACKS, part = lane % PACKS; /* V phase: key group, 16-B part */
    const int s = seq_of_token(seq_start, n_seqs, t);
    const int pos = context_lens[s] - (seq_start[s + 1] - t);
    const int first = window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
    const int32_t *table = block_tables + (size_t)s * max_blocks;
    const T *qrow = q + ((size_t)t * n_heads + h) * HD;
    for (int d = threadIdx.x; d < HD; d += blockDim.x) s_q[d] = to_f32(qrow[d]);
    __syncthreads();

    float m = -INFINITY, l = 0.0f, acc[VEC];
#pragma unroll
    for (int e = 0; e < VEC; e++) acc[e] = 0.0f;
    for (int c0 = first + warp * kWarp; c0 <= pos; c0 += kWarps * kWarp) {
        const int j = c0 + lane, jc = j <= pos ? j : pos; /* clamped: always a valid row */
        const P *krow =
            reinterpret_cast<const P *>(k_cache + kv_row(table, jc, n_kv, kvh, bs, HD));
        P kv[PACKS];
#pragma unroll
        for (int p = 0; p < PACKS; p++) kv[p] = krow[p];
        float dot = 0.0f;
#pragma unroll
        for (int p = 0; p < PACKS; p++)
#pragma unroll
            for (int e = 0; e < VEC; e++) dot += s_q[p * VEC + e] * to_f32(kv[p].v[e]);
        const float score = j <= pos ? dot * scale : -INFINITY;
        const float m_new = fmaxf(m, warp_max(score));
        const float corr = expf(m - m_new);
        const float p_key = j <= pos ? expf(score - m_new) : 0.0f;
        l = l * corr + warp_sum(p_key);
#pragma unroll
        for (int e = 0; e < VEC; e++) acc[e] *= corr;
        P vv[PACKS];
        float pk[PACKS];
#pragma unroll
        for (int i = 0; i < PACKS; i++) { /* key kk = group + GROUPS * i of the chunk */
            const int kk = group + GROUPS * i;
            pk[i] = __shfl_sync(0xffffffffu, p_key, kk);
            const int jj = c0 + kk <= pos ? c0 + kk : pos;
            const P *vrow =
                reinterpret_cast<const P *>(v_cache + kv_row(table, jj, n_kv, kvh, bs, HD));
            vv[i] = vrow[part];
        }
#pragma unroll
        for (int i = 0; i < PACKS; i++)
#pragma unroll
            for (int e = 0; e < VEC; e++) acc[e] += pk[i] * to_f32(vv[i].v[e]);
        m = m_new;
    }
#pragma unroll
    for (int off = PACKS; off < kWarp; off *= 2) /* sum the key groups */
#pragma unroll
        for (int e = 0; e < VEC; e++) acc[e] += __shfl_xor_sync(0xffffffffu, acc[e], off);
    if (lane == 0) {
        s_m[warp] = m;
        s_l[warp] = l;
    }
    if (group == 0)
#pragma unroll
        for (int e = 0; e < VEC; e++) s_acc[warp][part * VEC + e] = acc[e];
    __syncthreads();
    merge_warps(out + ((size_t)t * n_heads + h) * HD, s_m, s_l, &s_acc[0][0], HD, HD);
}

template <typename T>
void launch(void *out, const void *q, const void *k_cache, const void *v_cache,
            const int32_t *block_tables, const int32_t *seq_start, const int32_t *context_lens,
            const paged_attention_params *p, cudaStream_t stream) {
    constexpr int kVec = 16 / sizeof(T);
    const dim3 grid(p->n_tokens, p->n_heads);
#define ARGS                                                                                  \
    static_cast<T *>(out), static_cast<const T *>(q), static_cast<const T *>(k_cache),        \
        static_cast<const T *>(v_cache), block_tables, seq_start, context_lens, p->n_seqs,    \
        p->max_blocks, p->n_heads, p->n_kv_heads, p->head_dim, p->block_size, p->window,     \
        p->scale
#define CHUNK_ARGS                                                                            \
    static_cast<T *>(out), static_cast<const T *>(q), static_cast<const T *>(k_cache),        \
        static_cast<const T *>(v_cache), block_tables, seq_start, context_lens, p->n_seqs,    \
        p->max_blocks, p->n_heads, p->n_kv_heads, p->block_size, p->window, p->scale
    const bool vec_ok = p->head_dim % kVec == 0 && aligned16(k_cache) && aligned16(v_cache);
    const int packs = p->head_dim / kVec;
    if (vec_ok && packs == 2)
        attention_chunk_kernel<T, 2><<<grid, kWarps * kWarp, 0, stream>>>(CHUNK_ARGS);
    else if (vec_ok && packs == 4)
        attention_chunk_kernel<T, 4><<<grid, kWarps * kWarp, 0, stream>>>(CHUNK_ARGS);
    else if (vec_ok && packs == 8)
        attention_chunk_kernel<T, 8><<<grid, kWarps * kWarp, 0, stream>>>(CHUNK_ARGS);
    else if (vec_ok && packs == 16)
        attention_chunk_kernel<T, 16><<<grid, kWarps * kWarp, 0, stream>>>(CHUNK_ARGS);
    else if (vec_ok && packs == 32)
        attention_chunk_kernel<T, 32><<<grid, kWarps * kWarp, 0, stream>>>(CHUNK_ARGS);
    else if (vec_ok)
        attention_simple_kernel<T, kVec><<<grid, kWarps * kWarp, 0, stream>>>(ARGS);
    else
        attention_simple_kernel<T, 1><<<grid, kWarps * kWarp, 0, stream>>>(ARGS);
#undef ARGS
#undef CHUNK_ARGS
    CUDA_CHECK_LAUNCH();
}

} // namespace

extern "C" void attention_simple_cuda(void *out, const void *q, const void *k_cache,
                                      const void *v_cache, const int32_t *block_tables,
                                      const int32_t *seq_start, const int32_t *context_lens,
                                      const paged_attention_params *p, cudaStream_t stream) {
    CUDA_REQUIRE(!p->kv_fp8, "attention_simple_cuda: no FP8 KV cache (paged_attention_cuda has it)");
    CUDA_REQUIRE(p->head_dim <= kMaxHeadDim && p->n_kv_heads > 0 &&
                     p->n_heads % p->n_kv_heads == 0,
                 "attention_simple_cuda: need head_dim <= 256 and n_heads % n_kv_heads == 0");
    if (p->n_tokens == 0) return;
    FOLIO_DISPATCH_DTYPE(p->dtype, "attention_simple_cuda",
                         launch<T>(out, q, k_cache, v_cache, block_tables, seq_start,
                                   context_lens, p, stream));
}
