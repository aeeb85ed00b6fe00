/* Split-K for the tiled GEMMs whose grid would not fill the GPU at small batches (w4a16_mma.cu,
 * fp8_mma.cu, the W4A16 wgmma GEMMs): how many splits of the inner dimension, and the
 * deterministic reduction of the splits' float partial sums (part[s][n][rows], summed in split
 * order) into y with the bias. */
#ifndef FOLIO_SPLITK_CUH
#define FOLIO_SPLITK_CUH

#include "cuda_check.h"
#include "cuda_types.cuh"

namespace folio {

/* Splits of ktiles inner tiles for a grid of `blocks`: doubled while the grid stays under
 * ~2 blocks per SM, each split keeps >= min_tiles tiles and the partials (splits x n x rows
 * floats) fit workspace_bytes. */
inline int splitk_count(int blocks, int ktiles, int min_tiles, int n, int rows,
                        size_t workspace_bytes) {
    const int sms = device_sm_count();
    int splits = 1;
    while (blocks * splits * 2 <= 2 * sms && ktiles / (splits * 2) >= min_tiles &&
           (size_t)splits * 2 * n * rows * sizeof(float) <= workspace_bytes)
        splits *= 2;
    return splits;
}

/* Splits for the GEMMs that run one block per SM (w4a16_wgmma.cu, w4a16_wgmma_ws.cu): as
 * many as keep the grid within one wave, each split >= min_tiles tiles, the partials within
 * workspace_bytes. */
inline int splitk_one_wave(int blocks, int ktiles, int min_tiles, int n, int rows,
                           size_t workspace_bytes) {
    const int sms = device_sm_count();
    int splits = 1;
    while (blocks * (splits + 1) <= sms && ktiles / (splits + 1) >= min_tiles &&
           (size_t)(splits + 1) * n * rows * sizeof(float) <= workspace_bytes)
        splits++;
    return splits;
}

/* Output (r, b) of a split-K GEMM's block, value v: into the split's partials
 * part[blockIdx.z][b][r] when there are several splits, else y[b][r] = v (+ bias[r]);
 * nothing outside rows x n. */
template <typename T>
__device__ __forceinline__ void splitk_store(T *y, float *part, const T *bias, int r, int b,
                                             float v, int rows, int n) {
    if (r >= rows || b >= n) return;
    if (part) part[((size_t)blockIdx.z * n + b) * rows + r] = v;
    else y[(size_t)b * rows + r] = from_f32<T>(v + (bias ? to_f32(bias[r]) : 0.0f));
}

/* y[b][r] = sum over the splits, in order, of part[s][b][r] (+ bias[r]). */
template <typename T>
__global__ void __launch_bounds__(256)
splitk_reduce_kernel(T *y, const float *part, const T *bias, int rows, int n, int splits) {
    const int64_t total = (int64_t)n * rows;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        float v = 0.0f;
        for (int s = 0; s < splits; s++) v += part[(size_t)s * total + i];
        const int r = (int)(i % rows);
        y[i] = from_f32<T>(v + (bias ? to_f32(bias[r]) : 0.0f));
    }
}

template <typename T>
void splitk_reduce(T *y, const float *part, const T *bias, int rows, int n, int splits,
                   cudaStream_t stream) {
    const int64_t total = (int64_t)n * rows;
    const int blocks = (int)((total + 255) / 256 < 4096 ? (total + 255) / 256 : 4096);
    splitk_reduce_kernel<T><<<blocks, 256, 0, stream>>>(y, part, bias, rows, n, splits);
    CUDA_CHECK_LAUNCH();
}

/* The W4A16 GEMMs that run one block per SM (w4a16_wgmma.cu, w4a16_wgmma_ws.cu): kernel(y,
 * part, x, m, bias, n, tiles_per_split) over bx x by blocks of `threads` with `smem` bytes of
 * dynamic shared memory (set once per kernel by the caller), times the splits of m's tiles
 * that fill one wave; then the partials' reduction. */
template <typename T, typename M>
void splitk_launch_one_wave(void (*kernel)(T *, float *, const uint16_t *, const M, const T *,
                                           int, int),
                            int bx, int by, int threads, size_t smem, const M &m, void *y,
                            const void *x, const void *bias, int n, void *workspace,
                            size_t workspace_bytes, cudaStream_t stream) {
    const int splits = splitk_one_wave(bx * by, m.ktiles, 4, n, m.rows, workspace_bytes);
    const int per = (m.ktiles + splits - 1) / splits;
    const int used = (m.ktiles + per - 1) / per; /* splits that get tiles */
    float *part = used > 1 ? static_cast<float *>(workspace) : NULL;
    kernel<<<dim3(bx, by, used), threads, smem, stream>>>(
        static_cast<T *>(y), part, static_cast<const uint16_t *>(x), m,
        static_cast<const T *>(bias), n, per);
    CUDA_CHECK_LAUNCH();
    if (part)
        splitk_reduce<T>(static_cast<T *>(y), part, static_cast<const T *>(bias), m.rows, n,
                         used, stream);
}

} // namespace folio

#endif
