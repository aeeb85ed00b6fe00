/* SwiGLU on the GPU, reading the fused gate_up GEMM output: out[t][i] = silu(g) * u with
 * g = gate_up[t][i], u = gate_up[t][d + i], silu(x) = x / (1 + exp(-x)), computed in float and
 * rounded once to the storage type. CPU twin: silu_mul_cpu (on the two halves); check and
 * timing: tests/unit/test_gpu_silu_mul.c. Grid: (ceil(d / (threads * VEC)), n). Bytes moved:
 * 3 * n * d * sizeof(T). */
#include "cuda_types.cuh"
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
