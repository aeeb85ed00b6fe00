/* cuda_device_count_or_zero(): device discovery that tolerates machines without a GPU or a
 * driver (tests skip there instead of aborting). CUDA builds only. */
#ifdef FOLIO_HAVE_CUDA
#include "cuda_check.h"

int cuda_device_count_or_zero(const char **reason) {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        (void)cudaGetLastError(); /* leave no error behind for the next check */
        if (reason) *reason = cudaGetErrorString(err);
        return 0;
    }
    if (reason) *reason = count > 0 ? "" : "cudaGetDeviceCount found 0 devices";
    return count;
}
#else
typedef int folio_cuda_check_unused; /* an ISO C translation unit is never empty */
#endif
