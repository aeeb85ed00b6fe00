/* RMSNorm, CPU reference (float32), as Hugging Face's LlamaRMSNorm / Qwen2RMSNorm compute it
 * in float32: y = weight * (x * 1/sqrt(mean(x^2) + eps)). The mean of squares is accumulated
 * in double, so the only roundings are those of the float32 formula itself (within a few ulp
 * of the exact value). add_rmsnorm_cpu is the fused "residual += x; out = rmsnorm(residual)"
 * that the CUDA kernel (kernels/rmsnorm.cu) implements. */
#include <math.h>
#include <stddef.h>

#include "kernels_cpu.h"

/* Rows of work below which threads cost more than they save. */
#define RMSNORM_PAR_MIN_ELEMS 65536

/* 1/sqrt(mean(x^2) + eps) of one row, in float as HF returns it. */
static float inv_rms(const float *x, /* [dim] */ int dim, float eps) {
    double ss = 0.0;
    for (int i = 0; i < dim; i++) ss += (double)x[i] * (double)x[i];
    const float mean = (float)(ss / (double)dim);
    return 1.0f / sqrtf(mean + eps);
}

void rmsnorm_cpu(float *out,          /* [n][dim], may alias x */
                 const float *x,      /* [n][dim] */
                 const float *weight, /* [dim] */
                 int n, int dim, float eps) {
#pragma omp parallel for schedule(static) if ((size_t)n * (size_t)dim >= RMSNORM_PAR_MIN_ELEMS)
    for (int t = 0; t < n; t++) {
        const float *xr = x + (size_t)t * (size_t)dim;
        float *o = out + (size_t)t * (size_t)dim;
        const float inv = inv_rms(xr, dim, eps);
        for (int i = 0; i < dim; i++) o[i] = weight[i] * (xr[i] * inv);
    }
}

void add_rmsnorm_cpu(float *residual,     /* [n][dim], updated: residual += x */
                     const float *x,      /* [n][dim] */
                     float *out,          /* [n][dim], may alias x or residual */
                     const float *weight, /* [dim] */
                     int n, int dim, float eps) {
#pragma omp parallel for schedule(static) if ((size_t)n * (size_t)dim >= RMSNORM_PAR_MIN_ELEMS)
    for (int t = 0; t < n; t++) {
        float *r = residual + (size_t)t * (size_t)dim;
        const float *xr = x + (size_t)t * (size_t)dim;
        float *o = out + (size_t)t * (size_t)dim;
        for (int i = 0; i < dim; i++) r[i] += xr[i];
        const float inv = inv_rms(r, dim, eps);
        for (int i = 0; i < dim; i++) o[i] = weight[i] * (r[i] * inv);
    }
}
