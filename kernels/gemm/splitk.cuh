/* Split-K for the tiled GEMMs whose grid would not fill the GPU at small batches (w4a16_mma.cu,
 * fp8_mma.cu): how many splits of the inner dimension, and the deterministic reduction of the
 * splits' float partial sums (part[s][n][rows], summed in split order) into y with the bias. */
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

} // namespace folio

#endif
