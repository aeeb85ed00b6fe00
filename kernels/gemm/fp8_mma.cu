/* FP8 GEMM on the tensor cores with mma.sync (m16n8k32, e4m3 x e4m3, float accumulation;
 * sm_90: sm_89 has the instruction but not the 147 KB of shared memory this tiling takes):
 * y[n][rows] = the FP8 product of fp8_layout.h from the quantized activations, for both
 * schemes the GPU runs, at any n. It is the block scheme's GEMM where cuBLASLt offers no
 * BLK128x128 kernel (cuBLASLt 13.1 on an H100 has none), the channel scheme's for fp16 output
 * or where cuBLASLt has no FP8 kernel at all, and any FP8 GEMM's with FOLIO_FP8_GEMM=mma
 * (gemm_fp8.c chooses).
 *
 * A block of 8 warps owns 128 weight rows (one 128-row scale block) and kBN tokens; warps sit
 * 4 (rows, 32 each) x 2 (tokens, kBN / 2 each). The token blocks run fastest in the grid
 * (blockIdx.x), so the blocks that share a weight tile run together and all but the first
 * find it in L2. The inner dimension goes in tiles of 128
 * columns, exactly one scale block / activation group: per tile, every thread copies its
 * 16-byte pieces of the weight tile [128][128] and the activation tile [kBN][128] into a
 * ring of kStages shared-memory stages with cp.async (zeros past rows, tokens and columns;
 * rows padded to 144 bytes so ldmatrix's 8 rows hit distinct banks). Both operands are
 * K-major, so ldmatrix's 8 x 16-byte tiles are exactly the e4m3 A and B fragments (lane
 * g = lane / 4 holds row g, bytes 4 (lane % 4) .. + 3). Per tile: 4 k32 steps of 2 m16 x
 * kBN / 16 n8 mma per warp.
 *
 * Scales: per channel x per token, the float sums times ws[r] xs[t] at the end; 128 x 128
 * blocks x 128-column groups, each tile's sums times ws[block row][tile] xs[tile][t] added
 * into a second set of float accumulators (the tile's products never leave the tensor
 * cores' accumulation, as DeepSeek-V3's promotion every 128 columns). When the grid would
 * not fill the GPU (decode-sized n), the tiles are split over gridDim.z and splitk_reduce
 * sums the scaled partials in a fixed order. Twin: fp8_gemm_cpu; check and bench:
 * tests/unit/test_gpu_fp8.c. */
#include "async_copy.cuh"
#include "cuda_types.cuh"
#include "kernels_cuda.h"
#include "splitk.cuh"

namespace {

using namespace folio;

constexpr int kWarps = 8;
constexpr int kBM = 128;            /* weight rows per block: one scale block */
constexpr int kBK = 128;            /* columns per tile: one scale block / activation group */
constexpr int kStride = kBK + 16;   /* bytes per staged row */
constexpr int kStages = 4;

template <int kBN> struct Fp8Stage {
    uint8_t a[kBM][kStride];
    uint8_t b[kBN][kStride];
};

__device__ __forceinline__ void mma_e4m3(float *c, const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
    asm("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Copies tile kt of the block's weight rows [r0, r0 + kBM) and tokens [b0, b0 + kBN). */
template <int kBN>
__device__ __forceinline__ void issue_tile(Fp8Stage<kBN> &st, const uint8_t *w,
                                           const uint8_t *xq, int rows, int cols, int n,
                                           int r0, int b0, int kt) {
    constexpr int kPieces = kBK / 16;
    for (int i = threadIdx.x; i < (kBM + kBN) * kPieces; i += kWarps * kWarp) {
        const int row = i / kPieces, c = kt * kBK + 16 * (i % kPieces);
        if (row < kBM) {
            const bool ok = r0 + row < rows && c < cols;
            cp_async16_zfill(&st.a[row][c - kt * kBK], ok ? w + (size_t)(r0 + row) * cols + c : w, ok);
        } else {
            const int t = row - kBM;
            const bool ok = b0 + t < n && c < cols;
            cp_async16_zfill(&st.b[t][c - kt * kBK], ok ? xq + (size_t)(b0 + t) * cols + c : xq, ok);
        }
    }
}

/* acc += this warp's 32 rows x kBN / 2 tokens over the stage's 128 columns. */
template <int kBN>
__device__ __forceinline__ void tile_mma(float (*acc)[kBN / 16][4], const Fp8Stage<kBN> &st,
                                         int wm, int wn, int lane) {
    constexpr int kNT = kBN / 16; /* n8 tiles per warp */
#pragma unroll
    for (int ks = 0; ks < kBK / 32; ks++) {
        uint32_t a[2][4];
#pragma unroll
        for (int mt = 0; mt < 2; mt++)
            ldmatrix_x4(a[mt], &st.a[wm * 32 + mt * 16 + lane % 8 + 8 * ((lane / 8) % 2)]
                                    [ks * 32 + 16 * (lane / 16)]);
#pragma unroll
        for (int np = 0; np < kNT / 2; np++) {
            uint32_t b[4];
            ldmatrix_x4(b, &st.b[wn * (kBN / 2) + np * 16 + lane % 8 + 8 * (lane / 16)]
                                [ks * 32 + 16 * ((lane / 8) % 2)]);
#pragma unroll
            for (int mt = 0; mt < 2; mt++) {
                mma_e4m3(acc[mt][2 * np], a[mt], b[0], b[1]);
                mma_e4m3(acc[mt][2 * np + 1], a[mt], b[2], b[3]);
            }
        }
    }
}

template <typename T, int kBN, bool kBlock>
__global__ void __launch_bounds__(kWarps * kWarp)
fp8_mma_kernel(T *y, float *part, const uint8_t *xq, const float *xs, const fp8_matrix m,
               const T *bias, int n, int tiles_per_split) {
    constexpr int kNT = kBN / 16;
    extern __shared__ uint4 smem_raw[];
    Fp8Stage<kBN> *ring = reinterpret_cast<Fp8Stage<kBN> *>(smem_raw);
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
    const int wm = warp % 4, wn = warp / 4, g = lane / 4, t = lane % 4;
    const int r0 = blockIdx.y * kBM, b0 = blockIdx.x * kBN;
    const int ktiles = (m.cols + kBK - 1) / kBK;
    const int kt0 = blockIdx.z * tiles_per_split, kt1 = min(ktiles, kt0 + tiles_per_split);
    const int count = max(kt1 - kt0, 0);
#pragma unroll
    for (int s = 0; s < kStages - 1; s++) {
        if (s < count) issue_tile(ring[s], m.w, xq, m.rows, m.cols, n, r0, b0, kt0 + s);
        cp_async_commit();
    }
    float acc[2][kNT][4] = {};
    float tot[kBlock ? 2 : 1][kBlock ? kNT : 1][4] = {};
    const int ld = fp8_block_scale_ld(m.cols);
    for (int i = 0; i < count; i++) {
        cp_async_wait<kStages - 2>();
        __syncthreads(); /* tile i is in for every thread; tile i - 1's readers are done */
        const int next = i + kStages - 1;
        if (next < count)
            issue_tile(ring[next % kStages], m.w, xq, m.rows, m.cols, n, r0, b0, kt0 + next);
        cp_async_commit();
        tile_mma<kBN>(acc, ring[i % kStages], wm, wn, lane);
        if constexpr (kBlock) { /* this tile's sums, scaled, into tot */
            const int kt = kt0 + i;
            const float wsc = m.scale[(size_t)blockIdx.y * ld + kt];
#pragma unroll
            for (int nt = 0; nt < kNT; nt++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int b = b0 + wn * (kBN / 2) + nt * 8 + 2 * t + e;
                    const float s = b < n ? wsc * xs[(size_t)kt * n + b] : 0.f;
#pragma unroll
                    for (int mt = 0; mt < 2; mt++) {
                        tot[mt][nt][e] += acc[mt][nt][e] * s;
                        tot[mt][nt][e + 2] += acc[mt][nt][e + 2] * s;
                        acc[mt][nt][e] = acc[mt][nt][e + 2] = 0.f;
                    }
                }
        }
    }
    cp_async_wait<0>();
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int nt = 0; nt < kNT; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int r = r0 + wm * 32 + mt * 16 + g + 8 * (e / 2);
                const int b = b0 + wn * (kBN / 2) + nt * 8 + 2 * t + e % 2;
                if (r >= m.rows || b >= n) continue;
                float v;
                if constexpr (kBlock) v = tot[mt][nt][e];
                else v = acc[mt][nt][e] * m.scale[r] * xs[b];
                if (part) part[((size_t)blockIdx.z * n + b) * m.rows + r] = v;
                else y[(size_t)b * m.rows + r] = from_f32<T>(v + (bias ? to_f32(bias[r]) : 0.f));
            }
}

template <typename T, int kBN, bool kBlock>
void launch(void *y, const uint8_t *xq, const float *xs, const fp8_matrix *m, const void *bias,
            int n, void *workspace, size_t workspace_bytes, cudaStream_t stream) {
    const size_t smem = (size_t)kStages * sizeof(Fp8Stage<kBN>);
    static bool configured = false; /* once per instantiation: above the 48 KiB default */
    if (!configured) {
        CUDA_CHECK(cudaFuncSetAttribute(fp8_mma_kernel<T, kBN, kBlock>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        configured = true;
    }
    const int bx = (n + kBN - 1) / kBN, by = (m->rows + kBM - 1) / kBM;
    const int ktiles = (m->cols + kBK - 1) / kBK;
    const int splits = splitk_count(bx * by, ktiles, 4, n, m->rows, workspace ? workspace_bytes : 0);
    const int per = (ktiles + splits - 1) / splits;
    float *part = splits > 1 ? static_cast<float *>(workspace) : NULL;
    fp8_mma_kernel<T, kBN, kBlock><<<dim3(bx, by, splits), kWarps * kWarp, smem, stream>>>(
        static_cast<T *>(y), part, xq, xs, *m, static_cast<const T *>(bias), n, per);
    CUDA_CHECK_LAUNCH();
    if (part)
        splitk_reduce<T>(static_cast<T *>(y), part, static_cast<const T *>(bias), m->rows, n,
                         splits, stream);
}

template <typename T, bool kBlock>
void launch_n(void *y, const uint8_t *xq, const float *xs, const fp8_matrix *m,
              const void *bias, int n, void *workspace, size_t workspace_bytes,
              cudaStream_t stream) {
    if (n <= 32) launch<T, 32, kBlock>(y, xq, xs, m, bias, n, workspace, workspace_bytes, stream);
    else if (n <= 64) launch<T, 64, kBlock>(y, xq, xs, m, bias, n, workspace, workspace_bytes, stream);
    else launch<T, 128, kBlock>(y, xq, xs, m, bias, n, workspace, workspace_bytes, stream);
}

template <typename T>
void launch_t(void *y, const uint8_t *xq, const float *xs, const fp8_matrix *m,
              const void *bias, int n, void *workspace, size_t workspace_bytes,
              cudaStream_t stream) {
    if (m->kind == FP8_W_BLOCK)
        launch_n<T, true>(y, xq, xs, m, bias, n, workspace, workspace_bytes, stream);
    else
        launch_n<T, false>(y, xq, xs, m, bias, n, workspace, workspace_bytes, stream);
}

} // namespace

extern "C" void fp8_mma_cuda(void *y, const uint8_t *xq, const float *xs, const fp8_matrix *m,
                             const void *bias, folio_dtype dtype, int n, void *workspace,
                             size_t workspace_bytes, cudaStream_t stream) {
    CUDA_REQUIRE(dtype == DTYPE_BF16 || dtype == DTYPE_F16, "fp8_mma_cuda: bf16 or fp16 output");
    CUDA_REQUIRE(n >= 1 && m->cols % 16 == 0 && aligned16(xq) && aligned16(m->w),
                 "fp8_mma_cuda: n >= 1, cols a multiple of 16, 16-byte aligned operands");
    CUDA_REQUIRE((m->kind == FP8_W_CHANNEL && m->act != FP8_ACT_GROUP) ||
                     (m->kind == FP8_W_BLOCK && m->block_rows == kBM && m->block_cols == kBK &&
                      m->act == FP8_ACT_GROUP),
                 "fp8_mma_cuda: channel weights with token or static activations, or 128 x 128 "
                 "blocks with group activations");
    if (dtype == DTYPE_BF16)
        launch_t<__nv_bfloat16>(y, xq, xs, m, bias, n, workspace, workspace_bytes, stream);
    else
        launch_t<__half>(y, xq, xs, m, bias, n, workspace, workspace_bytes, stream);
}
