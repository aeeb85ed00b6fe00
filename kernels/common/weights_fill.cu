/* Filling device weights: dummy values computed on the GPU (the same pure function of seed,
 * tensor name and element index as weights.c's CPU dummy fill, so an 8B model appears in
 * seconds and equals what the CPU backend draws), a dummy 4-bit model's packed matrices
 * (quant_dummy.h), constants (norm weights 1, biases 0), and the float32 -> dtype conversion of
 * uploaded checkpoint tensors. */
#include "cuda_types.cuh"
#include "hash.h" /* folio_splitmix64, as weights.c draws */
#include "kernels_cuda.h"
#include "quant_dummy.h"

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

/* One thread per word, then per (row, group): the shard's dummy 4-bit matrix
 * (quant_dummy.h) in quant_layout.h's row-major arrays. */
__global__ void __launch_bounds__(256)
quant_dummy_fill_kernel(uint32_t *qweight, uint16_t *scales, uint8_t *zeros, const qd_shard s) {
    const int words = s.cols / 8, groups = s.cols / s.group_size;
    const int64_t n_words = (int64_t)s.rows * words, n_meta = (int64_t)s.rows * groups;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n_words + n_meta;
         i += (int64_t)gridDim.x * blockDim.x) {
        if (i < n_words) {
            qweight[i] = qd_shard_word(&s, (int)(i / words), (int)(i % words));
        } else {
            const int64_t k = i - n_words;
            const int r = (int)(k / groups), l = (int)(k % groups);
            scales[k] = qd_shard_scale(&s, r, l);
            zeros[k] = qd_shard_zero(&s, r, l);
        }
    }
}

} // namespace

extern "C" void quant_dummy_fill_cuda(quant_matrix *m, const qd_shard *s, cudaStream_t stream) {
    CUDA_REQUIRE(m->bits == 4 && m->rows == s->rows && m->cols == s->cols &&
                     m->group_size == s->group_size && s->cols % 8 == 0,
                 "quant_dummy_fill_cuda: the matrix must have the shard's 4-bit shape");
    const int64_t total = (int64_t)s->rows * (s->cols / 8 + s->cols / s->group_size);
    if (total == 0) return;
    quant_dummy_fill_kernel<<<grid_for(total), 256, 0, stream>>>(m->qweight, m->scales,
                                                                  m->zeros, *s);
    CUDA_CHECK_LAUNCH();
}

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
