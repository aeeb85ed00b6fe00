/* W4A16 at batches W4A16_WGMMA_MIN_N .. W4A16_WGMMA_MAX_N on Hopper's warpgroup MMA (wgmma,
 * sm_90a): y[n][rows] = x[n][in_cols] @ W^T (+ bias), the product of w4a16_mma_cuda, from the
 * same w4a16_tiles (no act-order permutation). Twin: w4a16_cpu; check and bench:
 * test_gpu_w4a16.c.
 *
 * A block of 4 warpgroups owns 256 rows (warp w of warpgroup v: stripe 16 blockIdx.y + 4v + w,
 * so a warpgroup's 4 stripes are the 64 rows of one wgmma m64), kBN = 64 or 128 batch rows
 * (blockIdx.x, fastest, so the blocks that read the same weights run together) and a range of
 * the 64-column tiles (split-K over gridDim.z, as many splits as fill the GPU once). Per
 * tile, each warp dequantizes its stripe's A operands in registers (dequant_scaled: the
 * register-A layout of wgmma is mma.sync's) and the warpgroup runs 4 wgmma m64n{kBN}k16 with
 * B = the x tile in shared memory. The four warpgroups share each x tile: x crosses L2 once
 * per 256 rows.
 *
 * The x tile in shared memory: kBN rows of 128 bytes in the 128-byte swizzle (wgmma.cuh),
 * K-major. The tile layout numbers the k of step j so that lane t's A holds columns
 * 16t + 4j .. 16t + 4j + 3 (w4a16.cu), so the x tile holds, at 4-byte pair 8j + 4h + t of
 * each row, x's pair 8t + 2j + h: a 4 x 4 transpose of pairs within every 64 columns.
 * stmatrix does it: lane 4r + c holds 16 bytes of x (columns 16c + 8h .. + 7 of row r of an
 * 8-row group), whose word i belongs at row r, 16-byte chunk 4h + i, slot c: exactly the
 * fragment that stmatrix.m8n8.x4 stores as matrix i.
 *
 * Pipeline: the weights, scales and zeros and the x tile go by cp.async kStages - 1 tiles ahead
 * into a ring of stages (each thread reads back only what it copied: no barrier for that); one
 * tile ahead of its wgmmas, each thread moves its x chunks from the ring into the tile's
 * wgmma-order buffer (ld.shared, stmatrix). The A operands alternate between two register
 * sets: tile i + 1 dequantizes while tile i's wgmmas run, and the wait for tile i - 1's
 * (wgmma_wait<1>) frees its register set and its x buffer. Split-K partial tiles go to a float
 * workspace and splitk_reduce sums them in a fixed order (deterministic). */
#include "gemm.h"
#include "splitk.cuh"
#include "w4a16_tile.cuh"
#include "wgmma.cuh"

namespace {

using namespace folio;
using namespace folio::w4;

constexpr int kThreads = 4 * 128;         /* 4 warpgroups */
constexpr int kWarps = kThreads / kWarp;  /* 16: one stripe each */
constexpr int kBlockStripes = kWarps;     /* 256 rows */

/* Shared memory: kStages stages of {the x tile as copied (its 16-byte chunks swizzled by row,
 * so the copies and the read-back are free of bank conflicts), each thread's 16 weight bytes,
 * its 8 bytes of scales and zeros}, then 3 buffers of the x tile in wgmma's order (1024-byte
 * aligned, as the swizzle needs): the one tile i's wgmmas read, tile i - 1's (maybe still
 * running), and tile i + 1's being written. */
template <int kBN> struct Ring {
    static constexpr int kStages = kBN == 64 ? 8 : 6;
    static constexpr int kXBytes = kBN * 128;
    static constexpr int kWOff = kXBytes;
    static constexpr int kMetaOff = kWOff + kThreads * 16;
    static constexpr int kStageBytes = kMetaOff + kThreads * 8;
    static constexpr int kSwzOff = kStages * kStageBytes;
    static constexpr int kLoads = kBN / 64; /* 16-byte x chunks per thread per tile */
    static constexpr size_t kSmem = (size_t)kSwzOff + 3 * kXBytes + 1024; /* + alignment */
    static_assert(kStageBytes % 1024 == 0, "buffers start on 1024-byte boundaries");
    static_assert(kSmem <= 227 * 1024, "fits an SM's shared memory");
};

__device__ __forceinline__ void stmatrix_x4(uint32_t addr, const uint4 &v) {
    asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(addr),
                 "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w)
                 : "memory");
}

template <typename T, int kBN>
__global__ void __launch_bounds__(kThreads, 1)
w4a16_wgmma_kernel(T *y, float *part, const uint16_t *x, const w4a16_tiles m, const T *bias,
                   int n, int tiles_per_split) {
    using R = Ring<kBN>;
    constexpr int S = R::kStages;
    extern __shared__ uint8_t smem_raw[];
    const uint32_t raw = smem_addr(smem_raw), pad = ((raw + 1023u) & ~1023u) - raw;
    uint8_t *ring = smem_raw + pad;
    const uint32_t ring_s = raw + pad;
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp, g = lane / 4, t = lane % 4;
    const int stripe = blockIdx.y * kBlockStripes + warp, b0 = blockIdx.x * kBN;
    const int groups = m.cols / m.group_size;
    const int kt0 = blockIdx.z * tiles_per_split;
    const int count = max(min(m.ktiles, kt0 + tiles_per_split) - kt0, 0);
    const bool rows_here = stripe < m.stripes;
    const uint4 *tiles = reinterpret_cast<const uint4 *>(m.tiles) +
                         (size_t)(rows_here ? stripe : 0) * m.ktiles * kWarp + lane;
    const uint2 *meta = reinterpret_cast<const uint2 *>(m.meta) +
                        (size_t)(rows_here ? stripe : 0) * groups * 8 + g;

    /* this thread's x chunks: chunk l is row 8 (u / 2) + g, columns 16t + 8 (u % 2) .. + 7 of
     * the tile (u = warp + 16 l), at 16-byte chunk 2t + u % 2 of its row */
    auto chunk_row = [&](int l) { return 8 * ((warp + kWarps * l) / 2) + g; };
    auto chunk_col = [&](int l) { return 2 * t + (warp + kWarps * l) % 2; };
    /* tile i of this split into stage i % S: weights, scales and zeros, x (zeros past n and
     * cols); one commit group per tile, always */
    auto issue = [&](int i) {
        uint8_t *st = ring + (i % S) * R::kStageBytes;
        if (i < count) {
            const int kt = kt0 + i;
            if (rows_here) {
                cp_async16(st + R::kWOff + threadIdx.x * 16, tiles + (size_t)kt * kWarp);
                cp_async8(st + R::kMetaOff + threadIdx.x * 8,
                          meta + (size_t)tile_group(kt, t, m.group_size, groups) * 8);
            }
#pragma unroll
            for (int l = 0; l < R::kLoads; l++) {
                const int b = b0 + chunk_row(l), c = kt * kTileCols + 8 * chunk_col(l);
                const bool valid = b < n && c < m.cols;
                cp_async16_zfill(st + swizzle_offset(chunk_row(l), chunk_col(l)),
                                 valid ? x + (size_t)b * m.in_cols + c : x, valid);
            }
        }
        cp_async_commit();
    };
    /* tile i's x from its stage into its wgmma-order buffer; stmatrix lane l addresses row
     * rr = l % 8 of matrix l / 8 (the chunk 4 (u % 2) + l / 8 of that row) */
    auto reorder_x = [&](int i) {
        if (i >= count) return;
        const uint8_t *st = ring + (i % S) * R::kStageBytes;
        const uint32_t xs = ring_s + (uint32_t)(R::kSwzOff + (i % 3) * R::kXBytes);
        const int mi = lane / 8, rr = lane % 8;
#pragma unroll
        for (int l = 0; l < R::kLoads; l++) {
            const int u = warp + kWarps * l;
            const uint4 v =
                *reinterpret_cast<const uint4 *>(st + swizzle_offset(chunk_row(l), chunk_col(l)));
            stmatrix_x4(xs + (uint32_t)(8 * (u / 2) + rr) * 128u +
                            ((uint32_t)((4 * (u % 2) + mi) ^ rr) << 4),
                        v);
        }
    };
    auto dequant = [&](uint32_t (&a)[4][4], int i) {
        const uint8_t *st = ring + (i % S) * R::kStageBytes;
        if (rows_here) {
            dequant_scaled<T>(a, *reinterpret_cast<const uint4 *>(st + R::kWOff + threadIdx.x * 16),
                              *reinterpret_cast<const uint2 *>(st + R::kMetaOff + threadIdx.x * 8));
        } else {
#pragma unroll
            for (int j = 0; j < 4; j++) a[j][0] = a[j][1] = a[j][2] = a[j][3] = 0u;
        }
    };

    float d[kBN / 2];
#pragma unroll
    for (int i = 0; i < kBN / 2; i++) d[i] = 0.0f;
    /* tile i's 4 k16 steps: step j is 32 bytes into each 128-byte x row */
    auto issue_mma = [&](uint32_t (&a)[4][4], int i) {
        const uint32_t xs = ring_s + (uint32_t)(R::kSwzOff + (i % 3) * R::kXBytes);
        wgmma_hold_a(a);
        wgmma_hold(d);
        wgmma_fence();
#pragma unroll
        for (int j = 0; j < 4; j++) wgmma_rs<T>(d, a[j], wgmma_desc(xs + 32u * j, 16, 1024));
        wgmma_commit();
    };
    /* Iteration i: this thread's copies of tiles i and i + 1 in; every thread's reordered x of
     * tile i visible to the async proxy, and the block past it; the copies of tile i + S - 1
     * into the stage tile i - 1 left; tile i + 1's x reordered into the buffer tile i - 2's
     * wgmmas (finished) left; tile i's A and its wgmmas; the wait that frees tile i - 1's
     * registers and x buffer. */
    auto step = [&](uint32_t (&a)[4][4], int i) {
        cp_async_wait<S - 3>();
        fence_proxy_async();
        __syncthreads();
        issue(i + S - 1);
        reorder_x(i + 1);
        dequant(a, i);
        issue_mma(a, i);
        wgmma_wait<1>();
    };

#pragma unroll
    for (int s = 0; s < S - 1; s++) issue(s);
    cp_async_wait<S - 2>();
    reorder_x(0);
    uint32_t a0[4][4], a1[4][4];
    for (int i = 0; i < count; i += 2) {
        step(a0, i);
        if (i + 1 < count) step(a1, i + 1);
    }
    wgmma_wait<0>();
    wgmma_hold(d);
    wgmma_hold_a(a0);
    wgmma_hold_a(a1);
    cp_async_wait<0>();
    if (!rows_here) return;
#pragma unroll
    for (int j = 0; j < kBN / 8; j++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            splitk_store(y, part, bias, stripe * kRows + g + 8 * (e / 2),
                         b0 + 8 * j + 2 * t + e % 2, d[4 * j + e], m.rows, n);
}

template <typename T, int kBN>
void launch_wgmma(void *y, const void *x, const w4a16_tiles *m, const void *bias, int n,
                  void *workspace, size_t workspace_bytes, cudaStream_t stream) {
    auto kernel = w4a16_wgmma_kernel<T, kBN>;
    static bool configured = false; /* once per instantiation: above the 48 KiB default */
    if (!configured) {
        CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        (int)Ring<kBN>::kSmem));
        configured = true;
    }
    splitk_launch_one_wave(kernel, (n + kBN - 1) / kBN,
                           (m->stripes + kBlockStripes - 1) / kBlockStripes, kThreads,
                           Ring<kBN>::kSmem, *m, y, x, bias, n, workspace, workspace_bytes,
                           stream);
}

template <typename T>
void launch_wgmma_t(void *y, const void *x, const w4a16_tiles *m, const void *bias, int n,
                    void *workspace, size_t workspace_bytes, cudaStream_t stream) {
    if (n <= 64) launch_wgmma<T, 64>(y, x, m, bias, n, workspace, workspace_bytes, stream);
    else launch_wgmma<T, 128>(y, x, m, bias, n, workspace, workspace_bytes, stream);
}

} // namespace

extern "C" void w4a16_wgmma_cuda(void *y, const void *x, const w4a16_tiles *m, const void *bias,
                                 folio_dtype dtype, int n, void *workspace,
                                 size_t workspace_bytes, cudaStream_t stream) {
    CUDA_REQUIRE(n >= 1 && m->perm == NULL, "w4a16_wgmma_cuda: n >= 1, no act-order permutation");
    CUDA_REQUIRE(aligned16(x) && m->in_cols % 8 == 0, "w4a16_wgmma_cuda: x 16-byte aligned rows");
    FOLIO_DISPATCH_16BIT(dtype, "w4a16_wgmma_cuda",
                         launch_wgmma_t<T>(y, x, m, bias, n, workspace, workspace_bytes, stream));
}
