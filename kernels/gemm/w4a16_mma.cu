/* W4A16 at batches above the GEMV's (n = 9 .. W4A16_MMA_MAX_N): a tensor-core GEMM that
 * dequantizes the 4-bit weights in registers (mixed-input: 4-bit A, 16-bit B, float
 * accumulation). y[n][rows] = x[n][in_cols] @ W^T (+ bias), as w4a16_gemv_cuda; no act-order
 * permutation (w4a16_gemm.c sends those to dequantize + cuBLASLt). Twin: w4a16_cpu; check and
 * bench: test_gpu_w4a16.c.
 *
 * A block of 4 warps owns 4 stripes (64 rows, warp w: stripe 4 blockIdx.y + w) and 8 kNT
 * batch rows (kNT n8 tiles; blockIdx.x, fastest, so blocks sharing weights run together), and a range of the column tiles (split-K over gridDim.z when
 * the grid would not fill the GPU). Per 64-column tile, every thread copies its share of
 * the x tile [8 kNT][64] and its lane's 16 weight bytes and 8 scale/zero bytes into a ring
 * of kStages shared-memory stages with cp.async (kStages - 1 tiles in flight). A warp
 * dequantizes its stripe's A operands once per tile (16 registers: q - z, times the scale in
 * 16 bits, as the dequantized reference rounds) and reuses them over the kNT n8 tiles; the B
 * operands are x's columns in the tile layout's k order (lane t: 16 consecutive columns,
 * two 16-byte shared loads per n8 tile; rows padded to 144 bytes so the 8 rows g of a load
 * hit different banks). Split-K partial tiles go to a float workspace in a fixed order and
 * splitk_reduce sums them (splitk.cuh: deterministic). */
#include "gemm.h"
#include "splitk.cuh"
#include "w4a16_tile.cuh"

namespace {

using namespace folio;
using namespace folio::w4;

constexpr int kWarps = 4;
constexpr int kStages = 4;
constexpr int kXStride = kTileCols + 8; /* 16-bit elements per staged x row (144 bytes) */

template <int kNT> struct MmaStage {
    uint16_t x[8 * kNT][kXStride];
    uint4 w[kWarps][kWarp];
    uint2 meta[kWarps][kWarp];
};

/* Copies tile kt of the block's x rows and of each warp's stripe into stage st. */
template <int kNT>
__device__ __forceinline__ void issue_tile(MmaStage<kNT> &st, const uint16_t *x,
                                           const w4a16_tiles &m, int kt, int b0, int n,
                                           int stripe, int warp, int lane, int groups) {
    constexpr int kChunks = 8 * kNT * (kTileCols / 8); /* 16-byte pieces of the x tile */
    for (int i = threadIdx.x; i < kChunks; i += kWarps * kWarp) {
        const int row = i / (kTileCols / 8), piece = i % (kTileCols / 8);
        const int b = b0 + row, c = kt * kTileCols + 8 * piece;
        const bool valid = b < n && c < m.cols;
        cp_async16_zfill(&st.x[row][8 * piece], valid ? x + (size_t)b * m.in_cols + c : x, valid);
    }
    if (stripe < m.stripes) {
        const int t = lane % 4, g = lane / 4;
        cp_async16(&st.w[warp][lane],
                   reinterpret_cast<const uint4 *>(m.tiles) + ((size_t)stripe * m.ktiles + kt) * kWarp + lane);
        cp_async8(&st.meta[warp][lane],
                  reinterpret_cast<const uint2 *>(m.meta) +
                      ((size_t)stripe * groups + tile_group(kt, t, m.group_size, groups)) * 8 + g);
    }
}

/* acc[nt] += this warp's stripe x the stage's x rows, n8 tile nt, over the tile's 64
 * columns. */
template <typename T, int kNT>
__device__ __forceinline__ void tile_mma(float (*acc)[4], const MmaStage<kNT> &st, int warp,
                                         int lane) {
    const int g = lane / 4, t = lane % 4;
    uint32_t a[4][4];
    dequant_scaled<T>(a, st.w[warp][lane], st.meta[warp][lane]);
#pragma unroll
    for (int nt = 0; nt < kNT; nt++) {
        const uint4 lo = *reinterpret_cast<const uint4 *>(&st.x[nt * 8 + g][16 * t]);
        const uint4 hi = *reinterpret_cast<const uint4 *>(&st.x[nt * 8 + g][16 * t + 8]);
        const uint32_t xr[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
#pragma unroll
        for (int j = 0; j < 4; j++)
            mma16816<T>(acc[nt], a[j][0], a[j][1], a[j][2], a[j][3], xr[2 * j], xr[2 * j + 1]);
    }
}

template <typename T, int kNT>
__global__ void __launch_bounds__(kWarps * kWarp)
w4a16_mma_kernel(T *y, float *part, const uint16_t *x, const w4a16_tiles m, const T *bias,
                 int n, int tiles_per_split) {
    extern __shared__ uint4 smem_raw[];
    MmaStage<kNT> *ring = reinterpret_cast<MmaStage<kNT> *>(smem_raw);
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
    const int stripe = blockIdx.y * kWarps + warp, b0 = blockIdx.x * 8 * kNT;
    const int groups = m.cols / m.group_size;
    const int kt0 = blockIdx.z * tiles_per_split, kt1 = min(m.ktiles, kt0 + tiles_per_split);
    const int count = max(kt1 - kt0, 0);
#pragma unroll
    for (int s = 0; s < kStages - 1; s++) {
        if (s < count) issue_tile(ring[s], x, m, kt0 + s, b0, n, stripe, warp, lane, groups);
        cp_async_commit();
    }
    float acc[kNT][4];
#pragma unroll
    for (int nt = 0; nt < kNT; nt++) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
    for (int i = 0; i < count; i++) {
        cp_async_wait<kStages - 2>();
        __syncthreads(); /* tile i is in for every thread; tile i - 1's readers are done */
        const int next = i + kStages - 1;
        if (next < count)
            issue_tile(ring[next % kStages], x, m, kt0 + next, b0, n, stripe, warp, lane, groups);
        cp_async_commit();
        if (stripe < m.stripes) tile_mma<T, kNT>(acc, ring[i % kStages], warp, lane);
    }
    cp_async_wait<0>();
    if (stripe >= m.stripes) return;
    const int g = lane / 4, t = lane % 4;
#pragma unroll
    for (int nt = 0; nt < kNT; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            splitk_store(y, part, bias, stripe * kRows + g + 8 * (e / 2),
                         b0 + nt * 8 + 2 * t + e % 2, acc[nt][e], m.rows, n);
}

template <typename T, int kNT>
void launch_mma(void *y, const void *x, const w4a16_tiles *m, const void *bias, int n,
                void *workspace, size_t workspace_bytes, cudaStream_t stream) {
    const size_t smem = (size_t)kStages * sizeof(MmaStage<kNT>);
    static bool configured = false; /* once per instantiation: above the 48 KiB default */
    if (!configured) {
        CUDA_CHECK(cudaFuncSetAttribute(w4a16_mma_kernel<T, kNT>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        configured = true;
    }
    const int bx = (m->stripes + kWarps - 1) / kWarps, by = (n + 8 * kNT - 1) / (8 * kNT);
    const int splits = splitk_count(bx * by, m->ktiles, 8, n, m->rows, workspace_bytes);
    const int per = (m->ktiles + splits - 1) / splits;
    float *part = splits > 1 ? static_cast<float *>(workspace) : NULL;
    w4a16_mma_kernel<T, kNT><<<dim3(by, bx, splits), kWarps * kWarp, smem, stream>>>(
        static_cast<T *>(y), part, static_cast<const uint16_t *>(x), *m,
        static_cast<const T *>(bias), n, per);
    CUDA_CHECK_LAUNCH();
    if (part)
        splitk_reduce<T>(static_cast<T *>(y), part, static_cast<const T *>(bias), m->rows, n,
                         splits, stream);
}

template <typename T>
void launch_mma_t(void *y, const void *x, const w4a16_tiles *m, const void *bias, int n,
                  void *workspace, size_t workspace_bytes, cudaStream_t stream) {
    if (n <= 16) launch_mma<T, 2>(y, x, m, bias, n, workspace, workspace_bytes, stream);
    else if (n <= 32) launch_mma<T, 4>(y, x, m, bias, n, workspace, workspace_bytes, stream);
    else launch_mma<T, 8>(y, x, m, bias, n, workspace, workspace_bytes, stream);
}

} // namespace

extern "C" void w4a16_mma_cuda(void *y, const void *x, const w4a16_tiles *m, const void *bias,
                               folio_dtype dtype, int n, void *workspace,
                               size_t workspace_bytes, cudaStream_t stream) {
    CUDA_REQUIRE(n >= 1 && m->perm == NULL, "w4a16_mma_cuda: n >= 1, no act-order permutation");
    CUDA_REQUIRE(aligned16(x) && m->in_cols % 8 == 0, "w4a16_mma_cuda: x 16-byte aligned rows");
    FOLIO_DISPATCH_16BIT(dtype, "w4a16_mma_cuda",
                         launch_mma_t<T>(y, x, m, bias, n, workspace, workspace_bytes, stream));
}
