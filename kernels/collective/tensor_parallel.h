/* Launchers of the tensor-parallel kernels (kernels/tensor_parallel.cu), asynchronous on the
 * given stream, device pointers, row-major; CUDA builds only (FOLIO_HAVE_CUDA). Kept apart
 * from kernels_cuda.h so that adding them rebuilds no other kernel. */
#ifndef FOLIO_TENSOR_PARALLEL_H
#define FOLIO_TENSOR_PARALLEL_H

#include <cuda_runtime_api.h>

#include "dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y[t][i] += bias[i], rounded once to dtype (the row-parallel bias, added once after the
 * all-reduce). y: [n][dim]; bias: [dim] or NULL (then nothing is done). */
void add_bias_rows_cuda(void *y, const void *bias, int n, int dim, folio_dtype dtype,
                        cudaStream_t stream);

/* out[r][k * shard + j] = all[k][r * cols_k + j] for j < cols_k = min(shard, total - k * shard):
 * the all-gathered vocab-parallel logits back in vocabulary order (the device twin of
 * comm_gather_vocab's copy, each rank's rows packed at its own width cols_k).
 * out: float [n][total]; all: float [world][n * shard]; shard * world >= total. */
void vocab_unshard_cuda(float *out, const float *all, int n, int shard, int total, int world,
                        cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
