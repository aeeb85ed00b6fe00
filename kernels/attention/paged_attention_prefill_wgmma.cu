/* Paged attention for prefills on Hopper's warpgroup MMA (wgmma, sm_90a): head_dim 128,
 * bfloat16 and float16, a 16-bit or an FP8 (e4m3) KV cache. Same contract and masking as the
 * mma.sync kernel (paged_attention_prefill.cu), which it replaces for head_dim 128 unless
 * FOLIO_PREFILL_ATTN=mma (paged_attention.cu). Check: tests/unit/test_gpu_attention.c (both
 * kernels, tests/gpu/run_prefill_attn.sh); CPU twin: paged_attention_cpu.
 *
 * One thread block of two warpgroups per (tile of kBM = 128 query rows, query head, sequence);
 * warpgroup w owns rows 64w..64w+63. The block walks the key positions its rows can see in
 * tiles of kBN = 128, read through the block table into shared memory in wgmma's 128-byte
 * swizzled layout (wgmma.cuh), two tiles deep: the whole block copies the next tile (cp.async
 * for a 16-bit cache; 8-byte loads widened through registers for an FP8 one) while it
 * computes this one. Per tile each warpgroup:
 *   S = Q K^T: 8 wgmma m64n128k16, Q and K both from shared memory (K-major);
 *   masks S only in tiles that cross the diagonal or the window edge, updates the row maxima
 *   and sums (base 2, float32) and rescales its O accumulator, as the mma.sync kernel does;
 *   O += P V: 8 wgmma m64n128k16, P from registers (the accumulator layout of S is the A
 *   layout, wgmma.cuh), V from shared memory read N-major (transposed: V needs no transpose
 *   on its way in).
 * Tried and slower (docs/benchmarks.md): issuing S of the next tile with P V of this one so
 * the softmax overlaps P V within a warpgroup (175 against 205 TFLOP/s at 2,048 tokens).
 * Not here yet (FlashAttention-3's design, docs/benchmarks.md): TMA copies, a producer warp,
 * and ping-pong scheduling of the two warpgroups' softmax against each other's matrix work. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <math.h>
#include <stdint.h>

#include <type_traits>

#include "cuda_check.h"
#include "async_copy.cuh"
#include "paged_attention_impl.cuh"
#include "wgmma.cuh"

namespace folio_attn {

namespace {

using folio::swizzle_offset;
using folio::wgmma_desc;

constexpr int kD = 128;        /* head_dim */
constexpr int kBM = 128;       /* query rows per block: 64 per warpgroup */
constexpr int kBN = 128;       /* key positions per tile */
constexpr int kThreads = 256;  /* two warpgroups */
constexpr int kSlab = 128 * 128;          /* bytes of one 64-column slab of a 128-row tile */
constexpr int kTile = 2 * kSlab;          /* a Q, K or V tile: 128 rows x 128 columns x 2 B */
constexpr int kSmem = 5 * kTile + 1024;   /* Q, K x2, V x2, and slack to align to 1024 */
static_assert(kBM * 128 == kSlab && kBN * 128 == kSlab, "tiles share one slab size");

/* Shared byte offsets from the 1024-aligned base. */
__device__ __forceinline__ uint32_t k_tile(int buf) { return (uint32_t)((1 + buf) * kTile); }
__device__ __forceinline__ uint32_t v_tile(int buf) { return (uint32_t)((3 + buf) * kTile); }

/* Grid: x = query tile (reversed: longest first), y = query head, z = sequence. */
template <typename T, typename KV>
__global__ void __launch_bounds__(kThreads, 1)
paged_attention_prefill_wgmma_kernel(T *out,                   /* [n_tokens][n_heads][128] */
                                     const T *q,               /* [n_tokens][n_heads][128] */
                                     const KV *k_cache,        /* [blocks][n_kv][bs][128] */
                                     const KV *v_cache,        /* [blocks][n_kv][bs][128] */
                                     const int32_t *block_tables, /* [n_seqs][max_blocks] */
                                     const int32_t *seq_start,    /* [n_seqs + 1] */
                                     const int32_t *context_lens, /* [n_seqs] */
                                     RowArgs a) {
    extern __shared__ unsigned char smem_raw[];
    const uint32_t raw = folio::smem_addr(smem_raw);
    const uint32_t base = (raw + 1023u) & ~1023u; /* the swizzle pattern's period */
    unsigned char *smem = smem_raw + (base - raw);

    const int s = blockIdx.z, h = blockIdx.y;
    PrefillTile pt;
    if (!prefill_tile<kBM, kBN>(pt, seq_start, context_lens, s, a.window)) return;
    const int q0 = pt.q0, i0 = pt.i0, rows = pt.rows, klo = pt.klo, kend = pt.kend;
    const int n_tiles = pt.n_tiles;
    const int kvh = h / a.group;
    const int32_t *table = block_tables + (int64_t)s * a.max_blocks;

    const int tid = threadIdx.x, lane = tid % kWarp, warp = tid / kWarp;
    const int wg = warp / 4, wq = warp % 4; /* warpgroup, warp within it */
    /* copies: thread tid moves 16-byte chunk lc of rows lr, lr + 16, ... */
    const int lc = tid % 16, lr = tid / 16;
    constexpr int kRowStep = kThreads / 16, kRowsPerThread = kBN / kRowStep;
    const uint32_t chunk_off = (uint32_t)(lc / 8) * kSlab; /* which 64-column slab */
    auto at = [&](uint32_t buf_off, int r) { /* this thread's chunk of row r of a tile */
        return smem + buf_off + chunk_off + swizzle_offset(r, lc % 8);
    };

    for (int r = lr; r < kBM; r += kRowStep) {
        const bool valid = r < rows;
        const T *src = valid ? q + ((int64_t)(q0 + i0 + r) * a.n_heads + h) * kD + lc * 8 : q;
        folio::cp_async16_zfill(at(0, r), src, valid);
    }
    /* K and V rows of a tile: a 16-bit cache by cp.async straight into shared memory; an FP8
     * one as raw 8-byte loads into registers (fetch) widened into shared memory after this
     * iteration's math (store), so the loads stay in flight meanwhile. The block-table entries
     * of a tile's rows are read one tile ahead (lookup), so no copy waits on them. */
    constexpr bool kFp8 = !std::is_same<KV, T>::value;
    using L = Kv8<T, KV>;
    typename L::Raw rk[kFp8 ? kRowsPerThread : 1], rv[kFp8 ? kRowsPerThread : 1];
    int blk[kRowsPerThread]; /* physical block of each of this thread's rows; -1: past the end */
    auto lookup = [&](int tile) {
        const int kstart = klo + tile * kBN;
#pragma unroll
        for (int i = 0; i < kRowsPerThread; i++) {
            const int p = kstart + lr + i * kRowStep;
            const int b = a.bs_shift >= 0 ? p >> a.bs_shift : p / a.block_size;
            blk[i] = p < kend ? table[b] : -1;
        }
    };
    auto fetch = [&](int tile, int buf) {
        const int kstart = klo + tile * kBN;
#pragma unroll
        for (int i = 0; i < kRowsPerThread; i++) {
            const int r = lr + i * kRowStep, p = kstart + r;
            const bool valid = blk[i] >= 0;
            const int in_block = a.bs_shift >= 0 ? p & (a.block_size - 1) : p % a.block_size;
            const int64_t off =
                valid ? (((int64_t)blk[i] * a.n_kv_heads + kvh) * a.block_size + in_block) * kD + lc * 8
                      : 0;
            if constexpr (kFp8) {
                rk[i] = valid ? L::load(k_cache + off) : L::zero();
                rv[i] = valid ? L::load(v_cache + off) : L::zero();
            } else {
                folio::cp_async16_zfill(at(k_tile(buf), r), k_cache + off, valid);
                folio::cp_async16_zfill(at(v_tile(buf), r), v_cache + off, valid);
            }
        }
    };
    auto store = [&](int buf) {
        if constexpr (kFp8) {
#pragma unroll
            for (int i = 0; i < kRowsPerThread; i++) {
                const int r = lr + i * kRowStep;
                *reinterpret_cast<uint4 *>(at(k_tile(buf), r)) = L::widen(rk[i]);
                *reinterpret_cast<uint4 *>(at(v_tile(buf), r)) = L::widen(rv[i]);
            }
        }
    };
    /* all of this thread's copies landed and visible to wgmma (the async proxy), then the
     * block's */
    auto sync_tiles = [&]() {
        folio::cp_async_wait<0>();
        folio::fence_proxy_async();
        __syncthreads();
    };
    lookup(0);
    fetch(0, 0);
    store(0);
    folio::cp_async_commit();
    if (n_tiles > 1) lookup(1);

    const int g = lane / 4, tq = lane % 4;
    const int qp0 = pt.pos0 + wg * 64 + wq * 16 + g; /* this thread's rows: qp0, qp0 + 8 */
    float o[64];
#pragma unroll
    for (int i = 0; i < 64; i++) o[i] = 0.0f;
    uint32_t pa[kBN / 16][4]; /* P as the A operand of O += P V, one k16 step each */
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
    const uint32_t q_rows = base + (uint32_t)wg * 64 * 128; /* this warpgroup's 64 Q rows */
    auto hold_pa = [&]() { /* P's registers stay untouched until the P V reading them ends */
#pragma unroll
        for (int kk = 0; kk < kBN / 16; kk++)
            asm volatile("" : "+r"(pa[kk][0]), "+r"(pa[kk][1]), "+r"(pa[kk][2]), "+r"(pa[kk][3])::"memory");
    };
    /* O += P V of tile `tile` (its V in buffer tile & 1): k16 steps over the positions (16 rows
     * = 2048 bytes of each slab); V read N-major, the next 64 output columns one slab on */
    auto issue_pv = [&](int tile) {
        const uint32_t sv = base + v_tile(tile & 1);
        folio::wgmma_hold(o); /* O's rescale and P's packing stay above the fence */
        hold_pa();
        folio::wgmma_fence(); /* P and O were written since the last wgmma */
#pragma unroll
        for (int kk = 0; kk < kBN / 16; kk++)
            folio::wgmma_m64n128k16_rs<T, 1>(o, pa[kk], wgmma_desc(sv + kk * 2048u, kSlab, 1024));
        folio::wgmma_commit();
    };

    /* S = Q K^T of tile `tile` (its K in buffer tile & 1), issued: k16 steps over head_dim;
     * step kk is 32 bytes into slab kk / 4 */
    auto issue_s = [&](float (&sc)[64], int tile) {
        const uint32_t sk = base + k_tile(tile & 1);
        folio::wgmma_fence();
        folio::wgmma_m64n128k16_ss<T, 0, false>(sc, wgmma_desc(q_rows, 16, 1024),
                                                wgmma_desc(sk, 16, 1024));
#pragma unroll
        for (int kk = 1; kk < kD / 16; kk++) {
            const uint32_t koff = (uint32_t)(kk / 4) * kSlab + (uint32_t)(kk % 4) * 32;
            folio::wgmma_m64n128k16_ss<T, 0, true>(sc, wgmma_desc(q_rows + koff, 16, 1024),
                                                   wgmma_desc(sk + koff, 16, 1024));
        }
        folio::wgmma_commit();
    };
    /* P into registers: columns 16kk..16kk+15 of the accumulator are k step kk's A fragment */
    auto pack_p = [&](const float (&sc)[64]) {
#pragma unroll
        for (int kk = 0; kk < kBN / 16; kk++) {
            pa[kk][0] = pack2<T>(sc[8 * kk], sc[8 * kk + 1]);
            pa[kk][1] = pack2<T>(sc[8 * kk + 2], sc[8 * kk + 3]);
            pa[kk][2] = pack2<T>(sc[8 * kk + 4], sc[8 * kk + 5]);
            pa[kk][3] = pack2<T>(sc[8 * kk + 6], sc[8 * kk + 7]);
        }
    };
    /* Iteration `tile`: S; softmax; O rescaled; O += P V. At its top the block fetches K and
     * V of the next tile into the buffers the previous one left (read by wgmmas the previous
     * iteration waited for); FP8: widened into them at its bottom. */
    for (int tile = 0; tile < n_tiles; tile++) {
        sync_tiles();
        if (tile + 1 < n_tiles) {
            fetch(tile + 1, (tile + 1) & 1);
            folio::cp_async_commit();
            if (tile + 2 < n_tiles) lookup(tile + 2);
        }
        float sc[64], alpha0, alpha1;
        issue_s(sc, tile);
        folio::wgmma_wait<0>();
        folio::wgmma_hold(sc);
        prefill_softmax<kBN / 8>(sc, a, pt, klo + tile * kBN, qp0, tq, m0, m1, l0, l1, alpha0,
                                 alpha1);
#pragma unroll
        for (int j = 0; j < kD / 8; j++) {
            o[4 * j] *= alpha0;
            o[4 * j + 1] *= alpha0;
            o[4 * j + 2] *= alpha1;
            o[4 * j + 3] *= alpha1;
        }
        pack_p(sc);
        issue_pv(tile);
        folio::wgmma_wait<0>();
        folio::wgmma_hold(o);
        hold_pa();
        if (tile + 1 < n_tiles) store((tile + 1) & 1);
    }

    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const float inv0 = a.v_scale / l0, inv1 = a.v_scale / l1;
    const int r0 = wg * 64 + wq * 16 + g, r1 = r0 + 8;
#pragma unroll
    for (int j = 0; j < kD / 8; j++) {
        const int d = 8 * j + 2 * tq;
        if (r0 < rows)
            *reinterpret_cast<uint32_t *>(out + ((int64_t)(q0 + i0 + r0) * a.n_heads + h) * kD + d) =
                pack2<T>(o[4 * j] * inv0, o[4 * j + 1] * inv0);
        if (r1 < rows)
            *reinterpret_cast<uint32_t *>(out + ((int64_t)(q0 + i0 + r1) * a.n_heads + h) * kD + d) =
                pack2<T>(o[4 * j + 2] * inv1, o[4 * j + 3] * inv1);
    }
}

template <typename T, typename KV>
void launch_t(void *out, const void *q, const void *k_cache, const void *v_cache,
              const int32_t *block_tables, const int32_t *seq_start, const int32_t *context_lens,
              const RowArgs &a, int max_q_len, cudaStream_t stream) {
    auto kernel = paged_attention_prefill_wgmma_kernel<T, KV>;
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem));
    const dim3 grid((unsigned)((max_q_len + kBM - 1) / kBM), (unsigned)a.n_heads,
                    (unsigned)a.n_seqs);
    kernel<<<grid, kThreads, kSmem, stream>>>(
        static_cast<T *>(out), static_cast<const T *>(q), static_cast<const KV *>(k_cache),
        static_cast<const KV *>(v_cache), block_tables, seq_start, context_lens, a);
    CUDA_CHECK_LAUNCH();
}

} // namespace

void launch_prefill_wgmma(void *out, const void *q, const void *k_cache, const void *v_cache,
                          const int32_t *block_tables, const int32_t *seq_start,
                          const int32_t *context_lens, const RowArgs &a, int max_q_len,
                          folio_dtype dtype, bool kv_fp8, cudaStream_t stream) {
    if (dtype == DTYPE_BF16 && kv_fp8)
        launch_t<__nv_bfloat16, uint8_t>(out, q, k_cache, v_cache, block_tables, seq_start,
                                         context_lens, a, max_q_len, stream);
    else if (dtype == DTYPE_BF16)
        launch_t<__nv_bfloat16, __nv_bfloat16>(out, q, k_cache, v_cache, block_tables,
                                               seq_start, context_lens, a, max_q_len, stream);
    else if (kv_fp8)
        launch_t<__half, uint8_t>(out, q, k_cache, v_cache, block_tables, seq_start,
                                  context_lens, a, max_q_len, stream);
    else
        launch_t<__half, __half>(out, q, k_cache, v_cache, block_tables, seq_start,
                                 context_lens, a, max_q_len, stream);
}

} // namespace folio_attn
