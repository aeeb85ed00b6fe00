/* W4A16 at W4A16_WS_MIN_N .. W4A16_WGMMA_MAX_N tokens on wgmma with warp specialization
 * (sm_90a): the product of w4a16_wgmma_cuda, from the same w4a16_tiles (no act-order
 * permutation). Twin: w4a16_cpu; check and bench: test_gpu_w4a16.c.
 *
 * Why a second wgmma kernel: the first (w4a16_wgmma.cu) has every warp copy, reorder x,
 * dequantize and multiply, with a block-wide barrier every 64 columns, and at 256 tokens two
 * blocks of 128 batch rows dequantize every weight twice. Here a block is 3 warpgroups: one
 * warp of the first only copies, the 2 others only dequantize and multiply, handed stages
 * through mbarriers (kernels/common/mbarrier.cuh), so a consumer waits for its data and never
 * for the other warps; every copy is a bulk copy by the copy engine, so no thread tracks
 * copies in flight (per-thread cp.async from a producer warpgroup, tried first, ran a tile per
 * memory round trip).
 *
 * x in the tile layout's k order, once per call (w4a16_ws_order_x_kernel, into the workspace):
 * the tile layout has lane t's A operand of k16 step j hold columns 16t + 4j .. + 3
 * (w4a16.cu), so wgmma's B, read in k order, must hold at 4-byte pair 8j + 4h + t of a tile
 * row x's pair 8t + 2j + h; 16-byte chunk c of that row (pairs 4c .. 4c + 3) is then x's pairs
 * c, 8 + c, 16 + c, 24 + c. The reordered x is stored per 64-column tile as rows of 128 bytes
 * already in the 128-byte swizzle (wgmma.cuh), so a block's x tile is one contiguous run of
 * kBN x 128 bytes: one bulk copy, and wgmma reads it as the first kernel's x tile.
 *
 * A block owns 128 rows (consumer c, warp w: stripe 8 blockIdx.y + 4c + w, so a consumer's 4
 * stripes are the 64 rows of one wgmma m64) x kBN = 128 or 256 batch rows, and a range of the
 * 64-column tiles (split-K over gridDim.z, as many splits as fill the GPU once). A stage holds
 * one tile: the x tile, the 8 stripes' 512 weight bytes (a bulk copy each: a stripe's tile is
 * contiguous) and their scales and zeros (one or two groups of 64 bytes each). The consumer
 * waits for a stage, dequantizes its A operands into one of two register sets (dequant_scaled,
 * while the previous tile's wgmmas still run), issues 4 k16 steps of wgmma (one m64n128k16 per
 * 128 batch rows) and waits for the previous tile's group, after which each of its warps
 * (__syncwarp, then lane 0) arrives on that stage's "empty" barrier. Registers move from the producer warpgroup (40 a
 * thread) to the consumers (232): 128 float accumulators at kBN = 256. Split-K partial tiles
 * go to the workspace past the reordered x; splitk_reduce sums them in a fixed order.
 *
 * Measured (H100, docs/benchmarks.md): faster than the first kernel at 256 tokens on 5 of 6
 * shapes (gateup 8B 145 against 189 us; cuBLASLt bf16 99), slower at 128, hence the default
 * from 129. Its limit is the copies: with the consumers doing nothing but wait and release, a
 * tile still takes ~0.85-1 us however many bytes it holds, i.e. the 17 bulk copies of a tile
 * are served about one memory latency per tile; fewer, larger copies (the 8 stripes of a tile
 * side by side in the layout, or a 2-D tensor map) are the next step. */
#include "gemm.h"
#include "mbarrier.cuh"
#include "splitk.cuh"
#include "w4a16_tile.cuh"
#include "wgmma.cuh"

namespace {

using namespace folio;
using namespace folio::w4;

constexpr int kConsumers = 2;                      /* warpgroups that multiply */
constexpr int kThreads = (1 + kConsumers) * 128;   /* + the producer warpgroup */
constexpr int kBlockStripes = kConsumers * 4;      /* 128 rows */
constexpr int kProducerRegs = 40, kConsumerRegs = 232;
static_assert(128 * kProducerRegs + kConsumers * 128 * kConsumerRegs <= 65536, "register file");
constexpr int kMetaStripeBytes = 2 * 8 * 8; /* a tile spans at most 2 groups of 8 pairs */

template <int kBN> struct Stages {
    static constexpr int kXBytes = kBN * 128;
    static constexpr int kWOff = kXBytes;
    static constexpr int kMetaOff = kWOff + kBlockStripes * 512;
    static constexpr int kStageBytes = kMetaOff + kBlockStripes * kMetaStripeBytes;
    static constexpr int kStages = kBN == 256 ? 6 : 10;
    static constexpr int kBarOff = kStages * kStageBytes; /* full[kStages], empty[kStages] */
    static constexpr size_t kSmem = (size_t)kBarOff + 2 * kStages * 8 + 1024; /* + alignment */
    static_assert(kStageBytes % 1024 == 0, "x tiles on 1024-byte boundaries (the swizzle)");
    static_assert(kSmem <= 227 * 1024, "fits an SM's shared memory");
};

/* Batch rows padded to a multiple of 8 (the swizzle's period), and the reordered x's bytes. */
__host__ __device__ __forceinline__ int rows8(int n) { return (n + 7) / 8 * 8; }
size_t order_x_bytes(const w4a16_tiles *m, int n) { return (size_t)m->ktiles * rows8(n) * 128; }

/* One thread per 16-byte chunk of xo ([ktiles][rows8(n)][8 chunks of 16 bytes], each row's
 * chunks in the 128-byte swizzle: chunk c of row b at c ^ (b % 8)): chunk c of row b of tile
 * kt = x's pairs c, 8 + c, 16 + c, 24 + c of that tile row (zeros past n and past cols).
 * Consecutive threads write consecutive chunks. */
__global__ void __launch_bounds__(256)
w4a16_ws_order_x_kernel(uint4 *xo, const uint16_t *x, int n, int cols, int ld, int ktiles) {
    const int rows = rows8(n);
    const int64_t total = (int64_t)ktiles * rows * 8;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int b = (int)(i / 8 % rows), kt = (int)(i / (8 * rows));
        const int c = (int)(i % 8) ^ (b % 8);
        uint32_t w[4] = {0u, 0u, 0u, 0u};
#pragma unroll
        for (int k = 0; k < 4; k++) {
            const int col = kt * kTileCols + 2 * (8 * k + c);
            if (b < n && col < cols) w[k] = *reinterpret_cast<const uint32_t *>(x + (size_t)b * ld + col);
        }
        xo[i] = make_uint4(w[0], w[1], w[2], w[3]);
    }
}

/* The producer (one warp): tile i of this split into stage i % kStages once the consumers
 * have released it: lane 0 the x tile, lanes 1-8 a stripe's weights, lanes 9-16 its scales
 * and zeros, all counted on the stage's "full" barrier. */
template <int kBN>
__device__ __forceinline__ void produce(uint32_t ring, const uint8_t *xo, const w4a16_tiles &m,
                                        int n, int b0, int kt0, int count) {
    using St = Stages<kBN>;
    constexpr int S = St::kStages;
    const int lane = threadIdx.x % kWarp, groups = m.cols / m.group_size;
    const int stripe0 = blockIdx.y * kBlockStripes;
    const int stripes = min(kBlockStripes, m.stripes - stripe0);
    const int x_rows = min(kBN, rows8(n) - b0);
    const uint8_t *tiles = reinterpret_cast<const uint8_t *>(m.tiles);
    const uint8_t *meta = reinterpret_cast<const uint8_t *>(m.meta);
    for (int i = 0; i < count; i++) {
        const int s = i % S, kt = kt0 + i;
        const int g0 = kt * kTileCols / m.group_size, ng = min(2, groups - g0);
        const uint32_t st = ring + (uint32_t)(s * St::kStageBytes);
        const uint32_t full = ring + St::kBarOff + 8 * s;
        if (i >= S) mbar_wait(ring + St::kBarOff + 8 * (S + s), (uint32_t)((i / S - 1) & 1));
        if (lane == 0)
            mbar_arrive_expect_tx(full, (uint32_t)(x_rows * 128 + stripes * (512 + 64 * ng)));
        __syncwarp();
        if (lane == 0) {
            bulk_copy(st, xo + ((size_t)kt * rows8(n) + b0) * 128, (uint32_t)(x_rows * 128), full);
        } else if (lane <= stripes) {
            const int l = lane - 1;
            bulk_copy(st + St::kWOff + 512 * l,
                      tiles + ((size_t)(stripe0 + l) * m.ktiles + kt) * 512, 512, full);
        } else if (lane >= 9 && lane < 9 + stripes) {
            const int l = lane - 9;
            bulk_copy(st + St::kMetaOff + kMetaStripeBytes * l,
                      meta + ((size_t)(stripe0 + l) * groups + g0) * 64, (uint32_t)(64 * ng), full);
        }
    }
}

template <typename T, int kBN>
__global__ void __launch_bounds__(kThreads, 1)
w4a16_wgmma_ws_kernel(T *y, float *part, const uint16_t *x_ordered, const w4a16_tiles m,
                      const T *bias, int n, int tiles_per_split) {
    const uint8_t *xo = reinterpret_cast<const uint8_t *>(x_ordered);
    using St = Stages<kBN>;
    constexpr int S = St::kStages, kHalves = kBN / 128;
    extern __shared__ uint8_t smem_raw[];
    const uint32_t raw = smem_addr(smem_raw), pad = ((raw + 1023u) & ~1023u) - raw;
    const uint32_t ring = raw + pad;
    const uint8_t *ring_p = smem_raw + pad;
    const int b0 = blockIdx.x * kBN, kt0 = blockIdx.z * tiles_per_split;
    const int count = max(min(m.ktiles, kt0 + tiles_per_split) - kt0, 0);
    if (threadIdx.x == 0)
        for (int s = 0; s < S; s++) {
            mbar_init(ring + St::kBarOff + 8 * s, 1);                        /* full */
            mbar_init(ring + St::kBarOff + 8 * (S + s), kConsumers * 4);     /* empty */
        }
    __syncthreads();
    if (threadIdx.x < 128) {
        regs_dealloc<kProducerRegs>();
        if (threadIdx.x < kWarp) produce<kBN>(ring, xo, m, n, b0, kt0, count);
        return;
    }
    regs_alloc<kConsumerRegs>();
    const int ct = threadIdx.x - 128, warp = ct / kWarp, lane = ct % kWarp, g = lane / 4,
              t = lane % 4;
    const int stripe = blockIdx.y * kBlockStripes + warp;
    const bool rows_here = stripe < m.stripes;
    const int groups = m.cols / m.group_size;

    float d[kHalves][64];
#pragma unroll
    for (int h = 0; h < kHalves; h++)
#pragma unroll
        for (int i = 0; i < 64; i++) d[h][i] = 0.0f;
    /* tile i: wait for its stage, its A, its wgmmas (k16 step j is 32 bytes into each x row;
     * batch rows 128 h on are 16 KiB on), then release tile i - 1's stage */
    auto step = [&](uint32_t (&a)[4][4], int i) {
        const int s = i % S, kt = kt0 + i;
        mbar_wait(ring + St::kBarOff + 8 * s, (uint32_t)((i / S) & 1));
        const uint8_t *st = ring_p + s * St::kStageBytes;
        if (rows_here) {
            const int grp = tile_group(kt, t, m.group_size, groups) - kt * kTileCols / m.group_size;
            dequant_scaled<T>(a, *reinterpret_cast<const uint4 *>(st + St::kWOff + 16 * ct),
                              *reinterpret_cast<const uint2 *>(st + St::kMetaOff +
                                                               kMetaStripeBytes * warp +
                                                               64 * grp + 8 * g));
        } else {
#pragma unroll
            for (int j = 0; j < 4; j++) a[j][0] = a[j][1] = a[j][2] = a[j][3] = 0u;
        }
        const uint32_t xs = ring + (uint32_t)(s * St::kStageBytes);
        wgmma_hold_a(a);
#pragma unroll
        for (int h = 0; h < kHalves; h++) wgmma_hold(d[h]);
        wgmma_fence();
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int h = 0; h < kHalves; h++)
                wgmma_m64n128k16_rs<T, 0>(
                    d[h], a[j], wgmma_desc(xs + (uint32_t)(16384 * h + 32 * j), 16, 1024));
        wgmma_commit();
        wgmma_wait<1>();
        __syncwarp(); /* the warp's reads of the stage, ordered before lane 0's release */
        if (i > 0 && lane == 0) mbar_arrive(ring + St::kBarOff + 8 * (S + (i - 1) % S));
    };
    uint32_t a0[4][4], a1[4][4];
    for (int i = 0; i < count; i += 2) {
        step(a0, i);
        if (i + 1 < count) step(a1, i + 1);
    }
    wgmma_wait<0>();
#pragma unroll
    for (int h = 0; h < kHalves; h++) wgmma_hold(d[h]);
    if (!rows_here) return;
#pragma unroll
    for (int h = 0; h < kHalves; h++)
#pragma unroll
        for (int j = 0; j < 16; j++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                splitk_store(y, part, bias, stripe * kRows + g + 8 * (e / 2),
                             b0 + 128 * h + 8 * j + 2 * t + e % 2, d[h][4 * j + e], m.rows, n);
}

template <typename T, int kBN>
void launch_ws(void *y, const void *x, const w4a16_tiles *m, const void *bias, int n,
               void *workspace, size_t workspace_bytes, cudaStream_t stream) {
    auto kernel = w4a16_wgmma_ws_kernel<T, kBN>;
    static bool configured = false; /* once per instantiation: above the 48 KiB default */
    if (!configured) {
        CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        (int)Stages<kBN>::kSmem));
        configured = true;
    }
    const size_t xo_bytes = align256(order_x_bytes(m, n));
    const int64_t chunks = (int64_t)m->ktiles * rows8(n) * 8;
    const int blocks = (int)((chunks + 255) / 256 < 8192 ? (chunks + 255) / 256 : 8192);
    w4a16_ws_order_x_kernel<<<blocks, 256, 0, stream>>>(
        static_cast<uint4 *>(workspace), static_cast<const uint16_t *>(x), n, m->cols,
        m->in_cols, m->ktiles);
    CUDA_CHECK_LAUNCH();
    splitk_launch_one_wave(kernel, (n + kBN - 1) / kBN,
                           (m->stripes + kBlockStripes - 1) / kBlockStripes, kThreads,
                           Stages<kBN>::kSmem, *m, y, workspace, bias, n,
                           static_cast<uint8_t *>(workspace) + xo_bytes,
                           workspace_bytes - xo_bytes, stream);
}

} // namespace

extern "C" size_t w4a16_wgmma_ws_workspace(const w4a16_tiles *m, int n) {
    return align256(order_x_bytes(m, n));
}

extern "C" void w4a16_wgmma_ws_cuda(void *y, const void *x, const w4a16_tiles *m,
                                    const void *bias, folio_dtype dtype, int n, void *workspace,
                                    size_t workspace_bytes, cudaStream_t stream) {
    CUDA_REQUIRE(n >= 1 && m->perm == NULL,
                 "w4a16_wgmma_ws_cuda: n >= 1, no act-order permutation");
    CUDA_REQUIRE(aligned16(x) && m->in_cols % 8 == 0,
                 "w4a16_wgmma_ws_cuda: x 16-byte aligned rows");
    CUDA_REQUIRE(workspace && (uintptr_t)workspace % 256 == 0 &&
                     workspace_bytes >= w4a16_wgmma_ws_workspace(m, n),
                 "w4a16_wgmma_ws_cuda: a 256-byte aligned workspace of at least "
                 "w4a16_wgmma_ws_workspace() bytes (x in the tile order)");
    FOLIO_DISPATCH_16BIT(dtype, "w4a16_wgmma_ws_cuda",
                         if (n <= 128) launch_ws<T, 128>(y, x, m, bias, n, workspace,
                                                         workspace_bytes, stream);
                         else launch_ws<T, 256>(y, x, m, bias, n, workspace, workspace_bytes,
                                                stream));
}
