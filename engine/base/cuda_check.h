/* The CUDA side of the error policy (error.h), usable from C and CUDA C++:
 *   CUDA_CHECK(call)     runs a CUDA runtime call; on failure prints file:line, the call and
 *                        cudaGetErrorString, then aborts: a failing CUDA call is fatal (the
 *                        context is usually unusable after it; under mpirun the abort ends the
 *                        job). Expected answers are queried, not checked: whether there is a
 *                        device (cuda_device_count_or_zero), free memory, peer access.
 *   CUDA_CHECK_LAUNCH()  after a kernel launch: catches a bad launch configuration; built with
 *                        -DFOLIO_CUDA_SYNC_CHECK it also waits for the kernel, so an
 *                        asynchronous fault is reported at the launch that caused it.
 *   CUDA_REQUIRE(cond, msg)  a launcher's precondition (shape, dtype, alignment), never compiled
 *                        out: prints file:line and msg, then aborts.
 * and cuda_device_count_or_zero(), the one call that may run where there is no driver. */
#ifndef FOLIO_CUDA_CHECK_H
#define FOLIO_CUDA_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#include <cuda_runtime_api.h>

#define CUDA_CHECK(call)                                                                      \
    do {                                                                                      \
        const cudaError_t cuda_check_err_ = (call);                                           \
        if (cuda_check_err_ != cudaSuccess) {                                                 \
            fprintf(stderr, "folio: fatal at %s:%d: CUDA call %s failed: %s (%s)\n",          \
                    __FILE__, __LINE__, #call, cudaGetErrorString(cuda_check_err_),           \
                    cudaGetErrorName(cuda_check_err_));                                       \
            abort();                                                                          \
        }                                                                                     \
    } while (0)

#ifdef FOLIO_CUDA_SYNC_CHECK
#define CUDA_CHECK_LAUNCH()                                                                   \
    do {                                                                                      \
        CUDA_CHECK(cudaGetLastError());                                                       \
        CUDA_CHECK(cudaDeviceSynchronize());                                                  \
    } while (0)
#else
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
#endif

#define CUDA_REQUIRE(cond, msg)                                                               \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "folio: bug at %s:%d: %s (failed: %s)\n", __FILE__, __LINE__,      \
                    (msg), #cond);                                                            \
            abort();                                                                          \
        }                                                                                     \
    } while (0)

#ifdef __cplusplus
extern "C" {
#endif

/* Number of CUDA devices, or 0 when there is none or no usable driver (cudaGetDeviceCount
 * failing is not an error here: it is how a machine without a GPU answers). If reason is not
 * NULL it is set to a static string saying why the count is 0 ("" when it is not). */
int cuda_device_count_or_zero(const char **reason);

#ifdef __cplusplus
}
#endif

#endif
