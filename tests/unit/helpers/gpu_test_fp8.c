/* gpu_test_fp8_quant_diff (gpu_test_util.h), in its own file: only the tests that call it
 * link the FP8 kernels (a static library's objects are pulled in one by one, and the GPU
 * machine's carry is limited). */
#ifdef FOLIO_HAVE_CUDA

#include <stdio.h>

#include <cuda_runtime_api.h>

#include "cuda_check.h"
#include "gpu_test_util.h"
#include "kernels_cuda.h"

size_t gpu_test_fp8_quant_diff(const char *what, const void *x, const uint8_t *xq,
                               const float *xs, int n, int k, folio_dtype t, int act,
                               float input_scale) {
    uint8_t *rq = NULL;
    float *rs = NULL;
    CUDA_CHECK(cudaMalloc((void **)&rq, (size_t)n * k));
    CUDA_CHECK(cudaMalloc((void **)&rs, sizeof(float) * (size_t)n));
    fp8_quantize_act_cuda(rq, rs, x, t, n, k, (fp8_act)act, input_scale, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
    const size_t dq = gpu_test_device_diff(xq, rq, (size_t)n * k, 1);
    const size_t ds = gpu_test_device_diff(xs, rs, sizeof(float) * (size_t)n, sizeof(float));
    if (dq || ds)
        fprintf(stderr, "  %s: %zu of %zu e4m3 bytes and %zu of %d scales differ from "
                        "fp8_quantize_act_cuda's\n", what, dq, (size_t)n * k, ds, n);
    CUDA_CHECK(cudaFree(rq));
    CUDA_CHECK(cudaFree(rs));
    return dq + ds;
}

#else
typedef int folio_gpu_test_fp8_unused; /* built without CUDA */
#endif
