/* CPU twin of the one-shot all-reduce fused with bias, residual add and RMSNorm
 * (kernels/oneshot_allreduce.cu): the ranks' partial sums added in rank order, the bias, then
 * add_rmsnorm_cpu. Float32; the GPU kernel rounds to its storage type at the same points. */
#include <stddef.h>

#include "kernels_cpu.h"

void reduce_add_rmsnorm_cpu(float *residual, float *out, float *sum,
                            const float *const *parts, int world, const float *bias,
                            const float *weight, int n, int dim, float eps) {
    for (size_t i = 0; i < (size_t)n * (size_t)dim; i++) {
        float s = parts[0][i];
        for (int k = 1; k < world; k++) s += parts[k][i];
        sum[i] = bias ? s + bias[i % (size_t)dim] : s;
    }
    add_rmsnorm_cpu(residual, sum, out, weight, n, dim, eps);
}
