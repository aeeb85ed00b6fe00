/* Two small kernels of tensor parallelism on the GPU (forward_cuda with world > 1):
 *   add_bias_rows_cuda:  the row-parallel projections' bias, added once after the all-reduce
 *                        (adding it on every rank before the sum would count it world times);
 *   vocab_unshard_cuda:  the all-gathered vocab-parallel logits, one block per rank, put back
 *                        into [n][vocab] order (the device twin of comm_gather_vocab's copy).
 * Both are memory-bound copies; neither allocates, so both can be captured in CUDA graphs. */
#include "cuda_types.cuh"
#include "kernels_cuda.h"
#include "tensor_parallel.h"

namespace {

using namespace folio;

template <typename T>
__global__ void add_bias_rows_kernel(T *y,           /* [n][dim] */
                                     const T *bias,  /* [dim] */
                                     int dim) {
    T *row = y + (size_t)blockIdx.x * dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        row[i] = from_f32<T>(to_f32(row[i]) + to_f32(bias[i]));
}

/* grid (n rows, world ranks): rank k's block holds cols_k = min(shard, total - k shard)
 * columns of each row, rows packed at stride cols_k (the LM head GEMM's own layout). */
__global__ void vocab_unshard_kernel(float *out,        /* [n][total] */
                                     const float *all,  /* [world][n * shard] */
                                     int n, int shard, int total) {
    const int r = blockIdx.x, k = blockIdx.y;
    const int start = k * shard;
    const int cols = total - start < shard ? total - start : shard;
    if (cols <= 0) return;
    const float *src = all + (size_t)k * n * shard + (size_t)r * cols;
    float *dst = out + (size_t)r * total + start;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) dst[i] = src[i];
}

} // namespace

extern "C" void add_bias_rows_cuda(void *y, const void *bias, int n, int dim, folio_dtype dtype,
                                   cudaStream_t stream) {
    CUDA_REQUIRE(n >= 0 && dim >= 1, "add_bias_rows_cuda: need n >= 0 and dim >= 1");
    if (n == 0 || !bias) return;
    const int threads = dim < 256 ? (dim + kWarp - 1) / kWarp * kWarp : 256;
    FOLIO_DISPATCH_DTYPE(dtype, "add_bias_rows_cuda",
                         add_bias_rows_kernel<T><<<n, threads, 0, stream>>>(
                             static_cast<T *>(y), static_cast<const T *>(bias), dim);
                         CUDA_CHECK_LAUNCH());
}

extern "C" void vocab_unshard_cuda(float *out, const float *all, int n, int shard, int total,
                                   int world, cudaStream_t stream) {
    CUDA_REQUIRE(n >= 0 && shard >= 1 && world >= 1 && total <= shard * world,
                 "vocab_unshard_cuda: need shard * world >= total");
    if (n == 0) return;
    vocab_unshard_kernel<<<dim3(n, world), 256, 0, stream>>>(out, all, n, shard, total);
    CUDA_CHECK_LAUNCH();
}
