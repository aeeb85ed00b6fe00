/* Skinny GEMM for decode (n <= 8 rows of activations): y[n][out] = x[n][in] @ w[out][in]^T
 * (+ bias), 16-bit weights and activations, float accumulation. At batch 1-8 a decode step is
 * a stream over the weights, so this kernel is built to keep the memory system busy: one warp
 * per output row, each lane loading 16 bytes of the row per step with eight loads in flight,
 * the activations re-read from L1/L2 (they are tiny), a warp-shuffle sum at the end. cuBLASLt
 * reaches 1.9-2.3 TB/s on the 4096-wide projections of an 8B model at batch 1 (H200, 4.3 TB/s
 * copy); this is the fix. Twin: matmul_cpu; check and timing: tests/unit/test_gpu_gemm.c. */
#include "cuda_types.cuh"
#include "kernels_cuda.h"

namespace {

using namespace folio;

constexpr int kWarpsPerBlock = 8;
constexpr int kUnroll = 8; /* 8 x 16 B in flight per lane: a 4096-wide row in two rounds */

template <typename T> __device__ __forceinline__ void unpack8(const uint4 &u, float *f) {
    const T *e = reinterpret_cast<const T *>(&u);
#pragma unroll
    for (int i = 0; i < 8; i++) f[i] = to_f32(e[i]);
}

/* acc[r] += w[p + u * 32] . x[r][p + u * 32] over u < U: U packs of 8 of one weight row. */
template <typename T, int N, int U>
__device__ __forceinline__ void dot_packs(float *acc, const uint4 *wv, const T *x, int in_f,
                                          int p) {
#pragma unroll
    for (int u = 0; u < U; u++) {
        float wf[8];
        unpack8<T>(wv[u], wf);
#pragma unroll
        for (int r = 0; r < N; r++) {
            const uint4 xv =
                __ldg(reinterpret_cast<const uint4 *>(x + (size_t)r * in_f) + p + u * kWarp);
            float xf[8];
            unpack8<T>(xv, xf);
#pragma unroll
            for (int i = 0; i < 8; i++) acc[r] += wf[i] * xf[i];
        }
    }
}

/* Launched with programmatic dependent launch: the first round of weight loads is issued
 * before pdl_wait(), while the kernel that writes x is still finishing. Rounds are eight
 * unguarded 16-byte loads per lane; a row's last, partial round (a 7168-wide row is 3.5
 * rounds) has its guarded loads in flight together too. */
template <typename T, typename Y, int N>
__global__ void __launch_bounds__(kWarpsPerBlock * kWarp)
gemv_kernel(Y *y,           /* [N][out_f] */
            const T *x,     /* [N][in_f] */
            const T *w,     /* [out_f][in_f] */
            const Y *bias,  /* [out_f] or NULL */
            int in_f, int out_f) {
    const int lane = threadIdx.x % kWarp;
    const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / kWarp;
    const int packs = in_f / 8; /* uint4 of 8 elements */
    const uint4 *wr = reinterpret_cast<const uint4 *>(w + (size_t)(row < out_f ? row : 0) * in_f);
    int p = lane;
    const bool first = row < out_f && p + (kUnroll - 1) * kWarp < packs;
    uint4 wv[kUnroll];
    if (first) {
#pragma unroll
        for (int u = 0; u < kUnroll; u++) wv[u] = __ldcs(wr + p + u * kWarp); /* streamed once */
    }
    pdl_wait();
    pdl_launch_dependents();
    if (row >= out_f) return;
    float acc[N];
#pragma unroll
    for (int r = 0; r < N; r++) acc[r] = 0.0f;
    if (first) {
        dot_packs<T, N, kUnroll>(acc, wv, x, in_f, p);
        p += kUnroll * kWarp;
    }
    for (; p + (kUnroll - 1) * kWarp < packs; p += kUnroll * kWarp) {
#pragma unroll
        for (int u = 0; u < kUnroll; u++) wv[u] = __ldcs(wr + p + u * kWarp);
        dot_packs<T, N, kUnroll>(acc, wv, x, in_f, p);
    }
    if (p < packs) { /* fewer than kUnroll packs left for this lane */
#pragma unroll
        for (int u = 0; u < kUnroll - 1; u++)
            if (p + u * kWarp < packs) wv[u] = __ldcs(wr + p + u * kWarp);
#pragma unroll
        for (int u = 0; u < kUnroll - 1; u++)
            if (p + u * kWarp < packs) dot_packs<T, N, 1>(acc, &wv[u], x, in_f, p + u * kWarp);
    }
#pragma unroll
    for (int r = 0; r < N; r++) {
        const float s = warp_sum(acc[r]);
        if (lane == 0) {
            const float b = bias ? to_f32(bias[row]) : 0.0f;
            y[(size_t)r * out_f + row] = from_f32<Y>(s + b);
        }
    }
}

template <typename T, typename Y, int N>
void launch_n(void *y, const void *x, const void *w, const void *bias, int in_f, int out_f,
              cudaStream_t stream) {
    const int blocks = (out_f + kWarpsPerBlock - 1) / kWarpsPerBlock;
    launch_pdl(gemv_kernel<T, Y, N>, dim3(blocks), dim3(kWarpsPerBlock * kWarp), stream,
               static_cast<Y *>(y), static_cast<const T *>(x), static_cast<const T *>(w),
               static_cast<const Y *>(bias), in_f, out_f);
}

template <typename T, typename Y>
void launch(void *y, const void *x, const void *w, const void *bias, int n, int in_f, int out_f,
            cudaStream_t stream) {
    switch (n) {
    case 1: launch_n<T, Y, 1>(y, x, w, bias, in_f, out_f, stream); break;
    case 2: launch_n<T, Y, 2>(y, x, w, bias, in_f, out_f, stream); break;
    case 3: launch_n<T, Y, 3>(y, x, w, bias, in_f, out_f, stream); break;
    case 4: launch_n<T, Y, 4>(y, x, w, bias, in_f, out_f, stream); break;
    case 5: launch_n<T, Y, 5>(y, x, w, bias, in_f, out_f, stream); break;
    case 6: launch_n<T, Y, 6>(y, x, w, bias, in_f, out_f, stream); break;
    case 7: launch_n<T, Y, 7>(y, x, w, bias, in_f, out_f, stream); break;
    default: launch_n<T, Y, 8>(y, x, w, bias, in_f, out_f, stream); break;
    }
    CUDA_CHECK_LAUNCH();
}

} // namespace

extern "C" int gemv_supported(int n, int in_f, folio_dtype dtype, const void *x, const void *w) {
    return dtype != DTYPE_F32 && n >= 1 && n <= GEMV_MAX_N && in_f % 8 == 0 && aligned16(x) &&
           aligned16(w);
}

extern "C" void gemv_cuda(void *y, folio_dtype y_type, const void *x, const void *w,
                          const void *bias, folio_dtype dtype, int n, int in_f, int out_f,
                          cudaStream_t stream) {
    CUDA_REQUIRE(gemv_supported(n, in_f, dtype, x, w),
                 "gemv_cuda: need 16-bit dtype, 1 <= n <= 8, in_f % 8 == 0, aligned x and w");
    CUDA_REQUIRE(y_type == dtype || y_type == DTYPE_F32, "gemv_cuda: y_type is dtype or F32");
    if (dtype == DTYPE_BF16) {
        if (y_type == DTYPE_F32) launch<__nv_bfloat16, float>(y, x, w, bias, n, in_f, out_f, stream);
        else launch<__nv_bfloat16, __nv_bfloat16>(y, x, w, bias, n, in_f, out_f, stream);
    } else {
        if (y_type == DTYPE_F32) launch<__half, float>(y, x, w, bias, n, in_f, out_f, stream);
        else launch<__half, __half>(y, x, w, bias, n, in_f, out_f, stream);
    }
}
