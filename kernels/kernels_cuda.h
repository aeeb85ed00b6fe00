/* C-callable launchers of the CUDA kernels, one kernels/<name>.cu each. Every launcher is
 * asynchronous on the stream it is given and is checked against the CPU twin of the same
 * name (kernels_cpu.h) by tests/unit/test_gpu_<name>.c. Pointers are device pointers; shapes
 * are given per parameter, row-major. Available when built with CUDA (FOLIO_HAVE_CUDA).
 * Precondition violations (dtype, shape) are bugs: the launcher prints them and aborts. */
#ifndef FOLIO_KERNELS_CUDA_H
#define FOLIO_KERNELS_CUDA_H

#include <cuda_runtime_api.h>

#include "dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

/* residual += x; out = rmsnorm(residual) * weight, per row (twin: add_rmsnorm_cpu).
 * residual, x, out: [n][dim]; weight: [dim]; all of element type dtype, DTYPE_F32 or
 * DTYPE_BF16. out may alias x or residual. Rounds as Hugging Face does in that dtype: in
 * bfloat16 the sum is rounded to bfloat16, the mean of squares is taken in float32 over the
 * rounded sum, x * 1/sqrt(mean + eps) is rounded to bfloat16 and multiplied by the weight,
 * rounded again. Rows of any dim >= 1; 16-byte vector loads when every pointer is 16-byte
 * aligned and a row is a whole number of vectors. */
void add_rmsnorm_cuda(void *residual, const void *x, void *out, const void *weight, int n,
                      int dim, float eps, folio_dtype dtype, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
