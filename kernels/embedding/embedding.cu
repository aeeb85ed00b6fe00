/* Embedding lookup on the GPU (vocab-parallel): out[t] = table[ids[t] - row_start] when the id
 * is one of this rank's rows, else zeros (the all-reduce over ranks completes the lookup).
 * CPU twin: embedding_cpu; check and timing: tests/unit/test_gpu_embedding.c.
 * One block per token; 16-byte copies when the row size and pointers allow. Pure copy:
 * bytes moved = 2 * n * dim * sizeof(T). */
#include "cuda_types.cuh"
#include "kernels_cuda.h"

namespace {

using namespace folio;

template <typename P>
__global__ void embedding_kernel(P *out,             /* [n][packs] */
                                 const P *table,     /* [n_rows][packs] */
                                 const int32_t *ids, /* [n] */
                                 int packs, int row_start, int n_rows) {
    const int64_t r = (int64_t)ids[blockIdx.x] - row_start;
    P *o = out + (size_t)blockIdx.x * packs;
    if (r >= 0 && r < n_rows) {
        const P *src = table + (size_t)r * packs;
        for (int i = threadIdx.x; i < packs; i += blockDim.x) o[i] = src[i];
    } else {
        P zero;
        memset(&zero, 0, sizeof zero);
        for (int i = threadIdx.x; i < packs; i += blockDim.x) o[i] = zero;
    }
}

template <typename P>
void launch(void *out, const void *table, const int32_t *ids, int n, int packs, int row_start,
            int n_rows, cudaStream_t stream) {
    int threads = packs < 256 ? (packs + kWarp - 1) / kWarp * kWarp : 256;
    embedding_kernel<P><<<n, threads, 0, stream>>>(static_cast<P *>(out),
                                                   static_cast<const P *>(table), ids, packs,
                                                   row_start, n_rows);
    CUDA_CHECK_LAUNCH();
}

} // namespace

extern "C" void embedding_cuda(void *out, const void *table, const int32_t *ids, int n, int dim,
                               int row_start, int n_rows, folio_dtype dtype,
                               cudaStream_t stream) {
    CUDA_REQUIRE(n >= 0 && dim >= 1, "embedding_cuda: need n >= 0 and dim >= 1");
    if (n == 0) return;
    const size_t row_bytes = (size_t)dim * folio::elem_size(dtype);
    if (row_bytes % 16 == 0 && aligned16(out) && aligned16(table))
        launch<uint4>(out, table, ids, n, (int)(row_bytes / 16), row_start, n_rows, stream);
    else if (row_bytes % 4 == 0)
        launch<uint32_t>(out, table, ids, n, (int)(row_bytes / 4), row_start, n_rows, stream);
    else
        launch<uint16_t>(out, table, ids, n, (int)(row_bytes / 2), row_start, n_rows, stream);
}
