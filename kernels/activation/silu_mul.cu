/* SwiGLU on the GPU, reading the fused gate_up GEMM output: out[t][i] = silu(g) * u with
 * g = gate_up[t][i], u = gate_up[t][d + i], silu(x) = x / (1 + exp(-x)), computed in float and
 * rounded once to the storage type. CPU twin: silu_mul_cpu (on the two halves); check and
 * timing: tests/unit/test_gpu_silu_mul.c. Grid: (ceil(d / (threads * VEC)), n). Bytes moved:
 * 3 * n * d * sizeof(T). silu_mul_fp8_cuda: one block a row, which also quantizes the row for
 * the FP8 down product (fp8_quantize_act_cuda's bytes, no extra pass over memory). */
#include "cuda_types.cuh"
#include "fp8_convert.cuh"
#include "kernels_cuda.h"

namespace {

using namespace folio;

template <typename T, int VEC>
__global__ void silu_mul_kernel(T *out,           /* [n][d] */
                                const T *gate_up, /* [n][2d]: gate columns, then up columns */
                                int d) {
    using P = Pack<T, VEC>;
    pdl_wait(); /* launched with launch_pdl: gate_up is the previous kernel's */
    pdl_launch_dependents();
    const int i = (blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i >= d) return;
    const size_t row = blockIdx.y;
    const P g = *reinterpret_cast<const P *>(gate_up + row * 2 * d + i);
    const P u = *reinterpret_cast<const P *>(gate_up + row * 2 * d + d + i);
    P o;
#pragma unroll
    for (int j = 0; j < VEC; j++) {
        const float x = to_f32(g.v[j]);
        o.v[j] = from_f32<T>(x / (1.0f + expf(-x)) * to_f32(u.v[j]));
    }
    *reinterpret_cast<P *>(out + row * d + i) = o;
}

/* The same for one row a block, and out's FP8 quantization for the down product (per token
 * or static, fp8_quantize_act_cuda's bytes): packs kept in registers between the passes
 * (up to kRowPacks a thread). gu_ws / gu_xs (NULL: none): gate_up is the gate|up product's
 * unscaled output (fp8_out_scale); gu_xs may be xs, so the row's scale is read before a
 * barrier and xs written after the next one. Grid: n; block: threads, a multiple of 32. */
constexpr int kRowPacks = 4;

template <typename T, int VEC>
__global__ void __launch_bounds__(1024) silu_mul_fp8_kernel(T *out, const T *gate_up, int d, uint8_t *xq, float *xs,
                                    int act, float input_scale, const float *gu_ws,
                                    const float *gu_xs) {
    using P = Pack<T, VEC>;
    pdl_wait(); /* launched with launch_pdl: gate_up is the previous kernel's */
    pdl_launch_dependents();
    const size_t row = blockIdx.x;
    const int n_packs = d / VEC;
    float a_in = 1.f;
    if (gu_ws) { /* uniform: the barrier is reached by every thread or none */
        a_in = gu_xs[row];
        __syncthreads();
    }
    P o[kRowPacks];
    float amax = 0.f;
#pragma unroll
    for (int k = 0; k < kRowPacks; k++) {
        const int i = (threadIdx.x + k * blockDim.x) * VEC;
        if (i >= n_packs * VEC) continue;
        const P g = *reinterpret_cast<const P *>(gate_up + row * 2 * d + i);
        const P u = *reinterpret_cast<const P *>(gate_up + row * 2 * d + d + i);
#pragma unroll
        for (int j = 0; j < VEC; j++) {
            float x = to_f32(g.v[j]), y = to_f32(u.v[j]);
            if (gu_ws) { /* fp8_rescale_rows_cuda's value, rounded to T as it stores it */
                x = to_f32(from_f32<T>(x * gu_ws[i + j] * a_in));
                y = to_f32(from_f32<T>(y * gu_ws[d + i + j] * a_in));
            }
            o[k].v[j] = from_f32<T>(x / (1.0f + expf(-x)) * y);
        }
        *reinterpret_cast<P *>(out + row * d + i) = o[k];
        amax = fmaxf(amax, pack_amax<T, VEC>(o[k]));
    }
    const float a = act == FP8_ACT_TOKEN ? act_scale(block_max(amax)) : input_scale;
#pragma unroll
    for (int k = 0; k < kRowPacks; k++) {
        const int i = (threadIdx.x + k * blockDim.x) * VEC;
        if (i < n_packs * VEC) store_e4m3_pack<T, VEC>(xq + row * d + i, o[k], a);
    }
    if (threadIdx.x == 0) xs[row] = a; /* after block_max's barrier, or (static) the one above */
}

template <typename T>
void launch_fp8(void *out, const void *gate_up, int n, int d, uint8_t *xq, float *xs,
                fp8_act act, float input_scale, const fp8_out_scale *gs, cudaStream_t stream) {
    const float *gws = gs ? gs->ws : NULL, *gxs = gs ? gs->xs : NULL;
    constexpr int kVec = 16 / sizeof(T);
    T *o = static_cast<T *>(out);
    const T *gu = static_cast<const T *>(gate_up);
    const bool vec = d % kVec == 0 && aligned16(o) && aligned16(gu) &&
                     reinterpret_cast<uintptr_t>(xq) % 8 == 0;
    const int per_row = vec ? d / kVec : d;
    int threads = (per_row + kRowPacks - 1) / kRowPacks;
    threads = (threads + kWarp - 1) / kWarp * kWarp;
    CUDA_REQUIRE(threads <= 1024, "silu_mul_fp8_cuda: rows of at most 4096 packs");
    if (vec)
        launch_pdl(silu_mul_fp8_kernel<T, kVec>, dim3(n), dim3(threads), stream, o, gu, d, xq,
                   xs, (int)act, input_scale, gws, gxs);
    else
        launch_pdl(silu_mul_fp8_kernel<T, 1>, dim3(n), dim3(threads), stream, o, gu, d, xq, xs,
                   (int)act, input_scale, gws, gxs);
    CUDA_CHECK_LAUNCH();
}

template <typename T>
void launch(void *out, const void *gate_up, int n, int d, cudaStream_t stream) {
    constexpr int kVec = 16 / sizeof(T), kThreads = 256;
    T *o = static_cast<T *>(out);
    const T *gu = static_cast<const T *>(gate_up);
    if (d % kVec == 0 && aligned16(o) && aligned16(gu)) {
        dim3 grid((d / kVec + kThreads - 1) / kThreads, n);
        launch_pdl(silu_mul_kernel<T, kVec>, grid, dim3(kThreads), stream, o, gu, d);
    } else {
        dim3 grid((d + kThreads - 1) / kThreads, n);
        launch_pdl(silu_mul_kernel<T, 1>, grid, dim3(kThreads), stream, o, gu, d);
    }
    CUDA_CHECK_LAUNCH();
}

} // namespace

extern "C" void silu_mul_cuda(void *out, const void *gate_up, int n, int d, folio_dtype dtype,
                              cudaStream_t stream) {
    CUDA_REQUIRE(n >= 0 && d >= 1 && n <= 65535, "silu_mul_cuda: need 0 <= n <= 65535, d >= 1");
    if (n == 0) return;
    FOLIO_DISPATCH_DTYPE(dtype, "silu_mul_cuda", launch<T>(out, gate_up, n, d, stream));
}

extern "C" void silu_mul_fp8_cuda(void *out, const void *gate_up, int n, int d,
                                  folio_dtype dtype, uint8_t *xq, float *xs, fp8_act act,
                                  float input_scale, const fp8_out_scale *gu_scale,
                                  cudaStream_t stream) {
    CUDA_REQUIRE(n >= 0 && d >= 1, "silu_mul_fp8_cuda: need n >= 0, d >= 1");
    CUDA_REQUIRE(act == FP8_ACT_TOKEN || act == FP8_ACT_STATIC,
                 "silu_mul_fp8_cuda: per-token or static activation scales");
    if (n == 0) return;
    FOLIO_DISPATCH_16BIT(dtype, "silu_mul_fp8_cuda",
                         launch_fp8<T>(out, gate_up, n, d, xq, xs, act, input_scale, gu_scale,
                                       stream));
}
