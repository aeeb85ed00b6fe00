/* Gathers rows of a matrix: out[i] = x[rows[i]] (the last token of each sequence before the
 * LM head). CPU twin: gather_rows_cpu; check: tests/unit/test_gpu_gather_rows.c. One block
 * per output row, 16-byte copies when the row size and pointers allow. */
#include "cuda_types.cuh"
#include "kernels_cuda.h"

namespace {

template <typename P>
__global__ void gather_rows_kernel(P *out,              /* [m][packs] */
                                   const P *x,          /* [n][packs] */
                                   const int32_t *rows, /* [m] */
                                   int packs) {
    const P *src = x + (size_t)rows[blockIdx.x] * packs;
    P *dst = out + (size_t)blockIdx.x * packs;
    for (int i = threadIdx.x; i < packs; i += blockDim.x) dst[i] = src[i];
}

template <typename P>
void launch(void *out, const void *x, const int32_t *rows, int m, int packs,
            cudaStream_t stream) {
    const int threads = packs < 256 ? (packs + 31) / 32 * 32 : 256;
    gather_rows_kernel<P><<<m, threads, 0, stream>>>(static_cast<P *>(out),
                                                     static_cast<const P *>(x), rows, packs);
    CUDA_CHECK_LAUNCH();
}

} // namespace

extern "C" void gather_rows_cuda(void *out, const void *x, const int32_t *rows, int m, int dim,
                                 folio_dtype dtype, cudaStream_t stream) {
    CUDA_REQUIRE(m >= 0 && dim >= 1, "gather_rows_cuda: need m >= 0 and dim >= 1");
    if (m == 0) return;
    const size_t row_bytes = (size_t)dim * folio::elem_size(dtype);
    if (row_bytes % 16 == 0 && folio::aligned16(out) && folio::aligned16(x))
        launch<uint4>(out, x, rows, m, (int)(row_bytes / 16), stream);
    else if (row_bytes % 4 == 0)
        launch<uint32_t>(out, x, rows, m, (int)(row_bytes / 4), stream);
    else
        launch<uint16_t>(out, x, rows, m, (int)(row_bytes / 2), stream);
}
