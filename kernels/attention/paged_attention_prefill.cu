/* Paged attention for prefills (q_len > 1) in bfloat16 and float16 on the tensor cores,
 * flash-attention style: no score matrix in memory, an online softmax over key tiles.
 * Launcher: paged_attention_cuda (paged_attention.cu); check: tests/unit/test_gpu_attention.c.
 *
 * One thread block (4 warps) per (tile of kBM = 64 query rows, query head, sequence); each
 * warp owns 16 query rows. The block walks the key positions its rows can see (causal by
 * position, a cached prefix first, sliding window if any) in tiles of kBN = 64, read through
 * the block table with cp.async into shared memory, two tiles deep so the next tile loads
 * while this one is computed. Per tile each warp:
 *   S = Q K^T with mma.sync m16n8k16 (Q fragments stay in registers, K via ldmatrix),
 *   masks S only in tiles that cross the diagonal or the window edge,
 *   updates the row maximum and sum (base 2, float32) and rescales its O accumulator,
 *   O += P V with P rounded to the input type straight from the S registers (the C layout of
 *   two n8 tiles is the A layout of one k16 slice) and V via ldmatrix.trans.
 * Shared-memory rows are padded by 16 bytes so ldmatrix's 8 rows fall in distinct banks.
 * Query tiles run longest first (the last tile of a causal prompt sees the most keys).
 * The FP8 KV cache (e4m3) is widened to the 16-bit type on its way to shared memory: the next
 * tile's raw 8-byte loads go to registers before the current tile's math and are widened into
 * the other buffer after it (a register pipeline in place of cp.async, which cannot convert);
 * K's scale is in the softmax scale and V's on the output.
 * Rows of sequences with q_len 1 are left to the decode kernel. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <math.h>
#include <stdint.h>

#include <type_traits>

#include "cuda_check.h"
#include "async_copy.cuh"
#include "paged_attention_impl.cuh"

namespace folio_attn {

namespace {

constexpr int kPfThreads = 128;
constexpr int kBM = 64; /* query rows per block: 16 per warp */
constexpr int kBN = 64; /* key positions per tile */

template <int D> constexpr int prefill_smem_bytes() {
    return (kBM + 4 * kBN) * (D + 8) * 2; /* Q, K x2, V x2; rows padded by 8 elements */
}

/* Grid: x = query tile (reversed: longest first), y = query head, z = sequence.
 * Block: kPfThreads. Dynamic shared memory: prefill_smem_bytes<D>(). KV: T, or uint8_t for
 * the FP8 cache. */
template <typename T, typename KV, int D>
__global__ void __launch_bounds__(kPfThreads)
paged_attention_prefill_kernel(T *out,                   /* [n_tokens][n_heads][D] */
                               const T *q,               /* [n_tokens][n_heads][D] */
                               const KV *k_cache,        /* [num_blocks][n_kv][block_size][D] */
                               const KV *v_cache,        /* [num_blocks][n_kv][block_size][D] */
                               const int32_t *block_tables, /* [n_seqs][max_blocks] */
                               const int32_t *seq_start, /* [n_seqs + 1] */
                               const int32_t *context_lens, /* [n_seqs] */
                               RowArgs a) {
    constexpr int SD = D + 8;           /* shared row stride, elements */
    constexpr int CPR = D / 8;          /* 16-byte chunks per row */
    constexpr int RPP = kPfThreads / CPR; /* rows per load pass */
    extern __shared__ __align__(16) unsigned char smem_raw[];
    T *sQ = reinterpret_cast<T *>(smem_raw); /* [kBM][SD] */
    T *sK = sQ + kBM * SD;                   /* [2][kBN][SD] */
    T *sV = sK + 2 * kBN * SD;               /* [2][kBN][SD] */

    const int s = blockIdx.z, h = blockIdx.y;
    PrefillTile pt;
    if (!prefill_tile<kBM, kBN>(pt, seq_start, context_lens, s, a.window)) return;
    const int q0 = pt.q0, i0 = pt.i0, rows = pt.rows, klo = pt.klo, kend = pt.kend;
    const int n_tiles = pt.n_tiles;
    const int kvh = h / a.group;
    const int32_t *table = block_tables + (int64_t)s * a.max_blocks;

    const int tid = threadIdx.x, lane = tid % kWarp, warp = tid / kWarp;
    const int lr = tid / CPR, lc = tid % CPR;

    for (int r = lr; r < kBM; r += RPP) {
        const bool valid = r < rows;
        const T *src = valid ? q + ((int64_t)(q0 + i0 + r) * a.n_heads + h) * D + lc * 8 : q;
        folio::cp_async16_zfill(sQ + r * SD + lc * 8, src, valid);
    }
    /* K and V of the next tile: a 16-bit cache by cp.async straight into shared memory; an
     * FP8 one as raw 8-byte loads into registers (load_kv) that are widened into shared
     * memory only after the current tile's math (store_kv), so the loads stay in flight
     * meanwhile. */
    constexpr bool kFp8 = !std::is_same<KV, T>::value;
    constexpr int kRowsPerThread = kBN / RPP;
    using L = Kv8<T, KV>;
    typename L::Raw rk[kFp8 ? kRowsPerThread : 1], rv[kFp8 ? kRowsPerThread : 1];
    auto row_off = [&](int p) {
        return kv_row_offset(table, p, kvh, a.n_kv_heads, a.block_size, a.bs_shift, D) + lc * 8;
    };
    auto load_kv = [&](int kstart, int buf) {
        if constexpr (kFp8) {
#pragma unroll
            for (int i = 0; i < kRowsPerThread; i++) {
                const int p = kstart + lr + i * RPP;
                const int64_t off = p < kend ? row_off(p) : -1;
                rk[i] = off >= 0 ? L::load(k_cache + off) : L::zero();
                rv[i] = off >= 0 ? L::load(v_cache + off) : L::zero();
            }
        } else {
            for (int r = lr; r < kBN; r += RPP) {
                const int p = kstart + r;
                const bool valid = p < kend;
                const int64_t off = valid ? row_off(p) : 0;
                folio::cp_async16_zfill(sK + (buf * kBN + r) * SD + lc * 8, k_cache + off, valid);
                folio::cp_async16_zfill(sV + (buf * kBN + r) * SD + lc * 8, v_cache + off, valid);
            }
        }
    };
    auto store_kv = [&](int buf) { /* FP8: the fetched rows, widened, into buffer buf */
        if constexpr (kFp8) {
#pragma unroll
            for (int i = 0; i < kRowsPerThread; i++) {
                const int r = lr + i * RPP;
                *reinterpret_cast<uint4 *>(sK + (buf * kBN + r) * SD + lc * 8) = L::widen(rk[i]);
                *reinterpret_cast<uint4 *>(sV + (buf * kBN + r) * SD + lc * 8) = L::widen(rv[i]);
            }
        }
    };
    load_kv(klo, 0);
    store_kv(0);
    folio::cp_async_commit();

    const int g = lane / 4, tq = lane % 4;
    const int qp0 = pt.pos0 + warp * 16 + g; /* this thread's rows: qp0, qp0 + 8 */
    uint32_t qa[D / 16][4];
    float o[D / 8][4];
#pragma unroll
    for (int j = 0; j < D / 8; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;

    for (int tile = 0; tile < n_tiles; tile++) {
        folio::cp_async_wait<0>();
        __syncthreads();
        if (tile == 0) {
#pragma unroll
            for (int kc = 0; kc < D / 16; kc++)
                folio::ldmatrix_x4(qa[kc], sQ + (warp * 16 + lane % 16) * SD + kc * 16 + (lane / 16) * 8);
        }
        if (tile + 1 < n_tiles) {
            load_kv(klo + (tile + 1) * kBN, (tile + 1) & 1);
            folio::cp_async_commit();
        }
        const T *k = sK + (tile & 1) * kBN * SD;
        const T *v = sV + (tile & 1) * kBN * SD;
        const int kstart = klo + tile * kBN;

        float sc[kBN / 8][4];
#pragma unroll
        for (int j = 0; j < kBN / 8; j++) sc[j][0] = sc[j][1] = sc[j][2] = sc[j][3] = 0.0f;
#pragma unroll
        for (int kc = 0; kc < D / 16; kc++) {
#pragma unroll
            for (int jn = 0; jn < kBN / 8; jn += 2) {
                uint32_t b[4];
                folio::ldmatrix_x4(b, k + (8 * jn + (lane / 16) * 8 + lane % 8) * SD + kc * 16 +
                                   ((lane / 8) % 2) * 8);
                mma16816<T>(sc[jn], qa[kc], b[0], b[1]);
                mma16816<T>(sc[jn + 1], qa[kc], b[2], b[3]);
            }
        }

        float alpha0, alpha1;
        prefill_softmax<kBN / 8>(&sc[0][0], a, pt, kstart, qp0, tq, m0, m1, l0, l1, alpha0,
                                 alpha1);
#pragma unroll
        for (int j = 0; j < D / 8; j++) {
            o[j][0] *= alpha0;
            o[j][1] *= alpha0;
            o[j][2] *= alpha1;
            o[j][3] *= alpha1;
        }

#pragma unroll
        for (int kc = 0; kc < kBN / 16; kc++) {
            uint32_t pa[4];
            pa[0] = pack2<T>(sc[2 * kc][0], sc[2 * kc][1]);
            pa[1] = pack2<T>(sc[2 * kc][2], sc[2 * kc][3]);
            pa[2] = pack2<T>(sc[2 * kc + 1][0], sc[2 * kc + 1][1]);
            pa[3] = pack2<T>(sc[2 * kc + 1][2], sc[2 * kc + 1][3]);
#pragma unroll
            for (int jd = 0; jd < D / 8; jd += 2) {
                uint32_t b[4];
                folio::ldmatrix_x4_trans(b, v + (16 * kc + lane % 8 + ((lane / 8) % 2) * 8) * SD +
                                         8 * (jd + lane / 16));
                mma16816<T>(o[jd], pa, b[0], b[1]);
                mma16816<T>(o[jd + 1], pa, b[2], b[3]);
            }
        }
        if (tile + 1 < n_tiles) store_kv((tile + 1) & 1); /* FP8: nobody reads that buffer now */
    }

    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const float inv0 = a.v_scale / l0, inv1 = a.v_scale / l1;
    const int r0 = warp * 16 + g, r1 = r0 + 8;
#pragma unroll
    for (int jd = 0; jd < D / 8; jd++) {
        const int d = 8 * jd + 2 * tq;
        if (r0 < rows)
            *reinterpret_cast<uint32_t *>(out + ((int64_t)(q0 + i0 + r0) * a.n_heads + h) * D + d) =
                pack2<T>(o[jd][0] * inv0, o[jd][1] * inv0);
        if (r1 < rows)
            *reinterpret_cast<uint32_t *>(out + ((int64_t)(q0 + i0 + r1) * a.n_heads + h) * D + d) =
                pack2<T>(o[jd][2] * inv1, o[jd][3] * inv1);
    }
}

template <typename T, typename KV, int D>
void launch_prefill_t(void *out, const void *q, const void *k_cache, const void *v_cache,
                      const int32_t *block_tables, const int32_t *seq_start,
                      const int32_t *context_lens, const RowArgs &a, int max_q_len,
                      cudaStream_t stream) {
    constexpr int smem = prefill_smem_bytes<D>();
    auto kernel = paged_attention_prefill_kernel<T, KV, D>;
    /* above 48 KB for D = 128; set every call (cheap), so every device the caller uses has it */
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    const dim3 grid((unsigned)((max_q_len + kBM - 1) / kBM), (unsigned)a.n_heads,
                    (unsigned)a.n_seqs);
    kernel<<<grid, kPfThreads, smem, stream>>>(
        static_cast<T *>(out), static_cast<const T *>(q), static_cast<const KV *>(k_cache),
        static_cast<const KV *>(v_cache), block_tables, seq_start, context_lens, a);
    CUDA_CHECK_LAUNCH();
}

template <typename T, typename KV>
void launch_prefill_kv(void *out, const void *q, const void *k_cache, const void *v_cache,
                       const int32_t *block_tables, const int32_t *seq_start,
                       const int32_t *context_lens, const RowArgs &a, int max_q_len,
                       int head_dim, cudaStream_t stream) {
    if (head_dim == 64)
        launch_prefill_t<T, KV, 64>(out, q, k_cache, v_cache, block_tables, seq_start,
                                    context_lens, a, max_q_len, stream);
    else
        launch_prefill_t<T, KV, 128>(out, q, k_cache, v_cache, block_tables, seq_start,
                                     context_lens, a, max_q_len, stream);
}

} // namespace

void launch_prefill_mma(void *out, const void *q, const void *k_cache, const void *v_cache,
                        const int32_t *block_tables, const int32_t *seq_start,
                        const int32_t *context_lens, const RowArgs &a, int max_q_len,
                        int head_dim, folio_dtype dtype, bool kv_fp8, cudaStream_t stream) {
    if (dtype == DTYPE_BF16 && kv_fp8)
        launch_prefill_kv<__nv_bfloat16, uint8_t>(out, q, k_cache, v_cache, block_tables,
                                                  seq_start, context_lens, a, max_q_len,
                                                  head_dim, stream);
    else if (dtype == DTYPE_BF16)
        launch_prefill_kv<__nv_bfloat16, __nv_bfloat16>(out, q, k_cache, v_cache, block_tables,
                                                        seq_start, context_lens, a, max_q_len,
                                                        head_dim, stream);
    else if (kv_fp8)
        launch_prefill_kv<__half, uint8_t>(out, q, k_cache, v_cache, block_tables, seq_start,
                                           context_lens, a, max_q_len, head_dim, stream);
    else
        launch_prefill_kv<__half, __half>(out, q, k_cache, v_cache, block_tables, seq_start,
                                          context_lens, a, max_q_len, head_dim, stream);
}

} // namespace folio_attn
