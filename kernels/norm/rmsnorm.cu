/* Fused residual add + RMSNorm on the GPU: residual += x; out = rmsnorm(residual) * weight.
 * CPU twin: add_rmsnorm_cpu (kernels/rmsnorm_cpu.c); check and timing:
 * tests/unit/test_gpu_rmsnorm.c.
 *
 * One thread block per row. Pass 1: each thread adds x into its elements of the residual
 * (rounding to the storage type), stores them and sums their squares in float; a warp-shuffle
 * reduction and one through shared memory give the row's sum. Pass 2: each thread re-reads
 * the same elements (they are its own writes, still in cache), normalises and scales them.
 * Threads touch the same indices in both passes, so out may alias x or residual.
 *
 * add_rmsnorm_fp8_cuda also quantizes the output for the FP8 product that follows (per token
 * or a static scale), bit for bit as fp8_quantize_act_cuda would: one pass fewer over the
 * activations and one launch fewer per product.
 *
 * Loads and stores are 16 bytes (4 floats, 8 bfloat16) when all pointers are 16-byte aligned
 * and dim is a multiple of the vector; otherwise one element at a time (e.g. dim 4095).
 * Memory traffic per row: read residual, x, weight; write residual, out.
 *
 * add_rmsnorm_fp8_cuda may also take x as an FP8 product's unscaled output and apply its
 * per-channel x per-token scales on the way in (fp8_out_scale): the same values the rescale
 * kernel would have stored, without its pass over x.
 *
 * Launched with programmatic dependent launch (launch_pdl, cuda_types.cuh): the kernel waits
 * for the one before it at its first line and lets the next one (a GEMV that starts streaming
 * its weights before its own wait) launch at once, so a decode step's norm -> product pairs
 * do not pay a launch gap. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdint.h>

#include "cuda_check.h"
#include "cuda_types.cuh"
#include "fp8_convert.cuh"
#include "kernels_cuda.h"

namespace {

constexpr int kMaxThreads = 1024;
using folio::add_residual_pack;
using folio::rms_inv;
using folio::from_f32;
using folio::kWarp;
using folio::Pack;
using folio::rmsnorm_pack;
using folio::to_f32;

/* Grid: one block per row; block: up to 1024 threads, a multiple of 32. kQuant: also the
 * output's FP8 quantization for the next product (a third pass over this thread's own
 * output packs, still in cache): xq [n][dim] = e4m3(out / a), xs[row] = a, with a the row's
 * act_scale (act FP8_ACT_TOKEN) or input_scale (FP8_ACT_STATIC). */
template <typename T, int VEC, bool kQuant>
__global__ void add_rmsnorm_kernel(T *residual,        /* [n][dim], updated in place */
                                   const T *x,         /* [n][dim] */
                                   T *out,             /* [n][dim] */
                                   const T *weight,    /* [dim] */
                                   int dim, float eps, uint8_t *xq, float *xs, int act,
                                   float input_scale, const float *x_ws, const float *x_xs) {
    using P = Pack<T, VEC>;
    folio::pdl_wait(); /* launched with launch_pdl: residual and x are earlier kernels' */
    folio::pdl_launch_dependents();
    float a_in = 1.0f;
    if (x_ws) { /* uniform; x_xs may be xs: read before the barrier, written after it */
        a_in = x_xs[blockIdx.x];
        __syncthreads();
    }
    const size_t row = (size_t)blockIdx.x * (size_t)dim;
    P *r = reinterpret_cast<P *>(residual + row);
    const P *xr = reinterpret_cast<const P *>(x + row);
    P *o = reinterpret_cast<P *>(out + row);
    const P *w = reinterpret_cast<const P *>(weight);
    const int n_packs = dim / VEC;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < n_packs; i += blockDim.x) {
        P a = r[i];
        const P b = xr[i];
        float v[VEC];
#pragma unroll
        for (int j = 0; j < VEC; j++) {
            v[j] = to_f32(b.v[j]);
            if (x_ws) /* fp8_rescale_rows_cuda's value, rounded to T as it stores it */
                v[j] = to_f32(from_f32<T>(v[j] * x_ws[i * VEC + j] * a_in));
        }
        ss += add_residual_pack<T, VEC>(a, v);
        r[i] = a;
    }
    const float inv = rms_inv(ss, dim, eps);
    float amax = 0.f;
    for (int i = threadIdx.x; i < n_packs; i += blockDim.x) {
        const P v = rmsnorm_pack<T, VEC>(r[i], w[i], inv);
        o[i] = v;
        if constexpr (kQuant) amax = fmaxf(amax, folio::pack_amax<T, VEC>(v));
    }
    if constexpr (kQuant) {
        const float a = act == FP8_ACT_TOKEN ? folio::act_scale(folio::block_max(amax)) : input_scale;
        for (int i = threadIdx.x; i < n_packs; i += blockDim.x)
            folio::store_e4m3_pack<T, VEC>(xq + row + (size_t)i * VEC, o[i], a);
        if (threadIdx.x == 0) xs[blockIdx.x] = a;
    }
}

bool aligned16(const void *p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

struct Fp8Out { /* the optional FP8 quantization of out, and x's deferred scales */
    uint8_t *xq;
    float *xs;
    int act;
    float input_scale;
    const float *x_ws, *x_xs;
};

template <typename T, bool kQuant>
void launch(T *residual, const T *x, T *out, const T *weight, int n, int dim, float eps,
            const Fp8Out &q, cudaStream_t stream) {
    constexpr int kVec = 16 / sizeof(T);
    const bool vec = dim % kVec == 0 && aligned16(residual) && aligned16(x) && aligned16(out) &&
                     aligned16(weight) && (!kQuant || reinterpret_cast<uintptr_t>(q.xq) % 8 == 0);
    const int per_row = vec ? dim / kVec : dim;         /* loads per row */
    int threads = (per_row + kWarp - 1) / kWarp * kWarp; /* one load per thread if it fits */
    if (threads > kMaxThreads) threads = kMaxThreads;
    if (vec)
        folio::launch_pdl(add_rmsnorm_kernel<T, kVec, kQuant>, dim3(n), dim3(threads), stream,
                          residual, x, out, weight, dim, eps, q.xq, q.xs, q.act, q.input_scale,
                          q.x_ws, q.x_xs);
    else
        folio::launch_pdl(add_rmsnorm_kernel<T, 1, kQuant>, dim3(n), dim3(threads), stream,
                          residual, x, out, weight, dim, eps, q.xq, q.xs, q.act, q.input_scale,
                          q.x_ws, q.x_xs);
    CUDA_CHECK_LAUNCH();
}

} // namespace

extern "C" void add_rmsnorm_cuda(void *residual, const void *x, void *out, const void *weight,
                                 int n, int dim, float eps, folio_dtype dtype,
                                 cudaStream_t stream) {
    CUDA_REQUIRE(n >= 0 && dim >= 1, "add_rmsnorm_cuda: need n >= 0 and dim >= 1");
    if (n == 0) return;
    switch (dtype) {
    case DTYPE_F32:
        launch<float, false>(static_cast<float *>(residual), static_cast<const float *>(x),
                             static_cast<float *>(out), static_cast<const float *>(weight), n,
                             dim, eps, Fp8Out{}, stream);
        break;
    case DTYPE_BF16:
        launch<__nv_bfloat16, false>(
            static_cast<__nv_bfloat16 *>(residual), static_cast<const __nv_bfloat16 *>(x),
            static_cast<__nv_bfloat16 *>(out), static_cast<const __nv_bfloat16 *>(weight), n,
            dim, eps, Fp8Out{}, stream);
        break;
    case DTYPE_F16:
        launch<__half, false>(static_cast<__half *>(residual), static_cast<const __half *>(x),
                              static_cast<__half *>(out), static_cast<const __half *>(weight), n,
                              dim, eps, Fp8Out{}, stream);
        break;
    default:
        CUDA_REQUIRE(false, "add_rmsnorm_cuda: dtype must be DTYPE_F32, DTYPE_BF16 or DTYPE_F16");
    }
}

extern "C" void add_rmsnorm_fp8_cuda(void *residual, const void *x, void *out,
                                     const void *weight, int n, int dim, float eps,
                                     folio_dtype dtype, uint8_t *xq, float *xs, fp8_act act,
                                     float input_scale, const fp8_out_scale *x_scale,
                                     cudaStream_t stream) {
    CUDA_REQUIRE(n >= 0 && dim >= 1, "add_rmsnorm_fp8_cuda: need n >= 0 and dim >= 1");
    CUDA_REQUIRE(act == FP8_ACT_TOKEN || act == FP8_ACT_STATIC,
                 "add_rmsnorm_fp8_cuda: per-token or static activation scales");
    if (n == 0) return;
    const Fp8Out q{xq, xs, (int)act, input_scale, x_scale ? x_scale->ws : NULL,
                   x_scale ? x_scale->xs : NULL};
    FOLIO_DISPATCH_16BIT(dtype, "add_rmsnorm_fp8_cuda",
                         launch<T, true>(static_cast<T *>(residual), static_cast<const T *>(x),
                                         static_cast<T *>(out), static_cast<const T *>(weight),
                                         n, dim, eps, q, stream));
}
