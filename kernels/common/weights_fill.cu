/* Filling device weights: dummy values computed on the GPU (the same pure function of seed,
 * tensor name and element index as weights.c's CPU dummy fill, so an 8B model appears in
 * seconds and equals what the CPU backend draws), constants (norm weights 1, biases 0), and the
 * float32 -> dtype conversion of uploaded checkpoint tensors. */
#include "cuda_types.cuh"
#include "hash.h" /* folio_splitmix64, as weights.c draws */
#include "kernels_cuda.h"

namespace {

using namespace folio;

template <typename T>
__global__ void dummy_fill_kernel(T *dst, /* [rows][cols] kept part, row-major */
                                  int64_t rows, int64_t cols, int64_t row0, int64_t col0,
                                  int64_t full_cols, uint64_t key, float scale) {
    const int64_t total = rows * cols;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / cols, c = i % cols;
        const uint64_t index = (uint64_t)(row0 + r) * (uint64_t)full_cols + (uint64_t)(col0 + c);
        const uint64_t u = folio_splitmix64(key + index * 0xd1b54a32d192ed03ull);
        const float v = scale * (float)((double)(u >> 11) * (2.0 / 9007199254740992.0) - 1.0);
        dst[i] = from_f32<T>(v);
    }
}

template <typename T> __global__ void fill_kernel(T *dst, int64_t n, float value) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = from_f32<T>(value);
}

template <typename T> __global__ void convert_kernel(T *dst, const float *src, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = from_f32<T>(src[i]);
}

int grid_for(int64_t n) {
    const int64_t blocks = (n + 255) / 256;
    return blocks > 8192 ? 8192 : (int)(blocks > 0 ? blocks : 1);
}

} // namespace

extern "C" void dummy_fill_cuda(void *dst, int64_t rows, int64_t cols, int64_t row0,
                                int64_t col0, int64_t full_cols, uint64_t key, float scale,
                                folio_dtype dtype, cudaStream_t stream) {
    if (rows * cols == 0) return;
    FOLIO_DISPATCH_DTYPE(dtype, "dummy_fill_cuda",
                         dummy_fill_kernel<T><<<grid_for(rows * cols), 256, 0, stream>>>(
                             static_cast<T *>(dst), rows, cols, row0, col0, full_cols, key,
                             scale));
    CUDA_CHECK_LAUNCH();
}

extern "C" void fill_cuda(void *dst, int64_t n, float value, folio_dtype dtype,
                          cudaStream_t stream) {
    if (n == 0) return;
    FOLIO_DISPATCH_DTYPE(dtype, "fill_cuda",
                         fill_kernel<T><<<grid_for(n), 256, 0, stream>>>(static_cast<T *>(dst),
                                                                         n, value));
    CUDA_CHECK_LAUNCH();
}

extern "C" void convert_f32_cuda(void *dst, const float *src, int64_t n, folio_dtype dtype,
                                 cudaStream_t stream) {
    if (n == 0) return;
    FOLIO_DISPATCH_DTYPE(dtype, "convert_f32_cuda",
                         convert_kernel<T><<<grid_for(n), 256, 0, stream>>>(
                             static_cast<T *>(dst), src, n));
    CUDA_CHECK_LAUNCH();
}
