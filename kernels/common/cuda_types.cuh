/* Device helpers shared by the CUDA kernels (CUDA C++ only): float <-> storage-type
 * conversions for float, __nv_bfloat16 and __half, a 16-byte vector of elements, warp and
 * block sums, one pack of RMSNorm output, programmatic dependent launch, and the switch that turns a folio_dtype into a template
 * instantiation. */
#ifndef FOLIO_CUDA_TYPES_CUH
#define FOLIO_CUDA_TYPES_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdint.h>
#include <stdlib.h>

#include "cuda_check.h"
#include "dtype.h"
#include "env.h"

namespace folio {

constexpr int kWarp = 32;

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }

template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}
template <> __device__ __forceinline__ __half from_f32<__half>(float v) {
    return __float2half_rn(v);
}

/* VEC elements moved as one aligned load or store. */
template <typename T, int VEC> struct alignas(sizeof(T) * VEC) Pack {
    T v[VEC];
};

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int off = kWarp / 2; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int off = kWarp / 2; off > 0; off /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}

/* v summed (kMax false) or maxed over the block, to every thread (blockDim.x a multiple of
 * 32; a barrier before the shared slots are written, so calls may follow each other). */
template <bool kMax> __device__ __forceinline__ float block_reduce(float v) {
    __shared__ float partial[32];
    const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
    const int n_warps = (blockDim.x + kWarp - 1) / kWarp;
    v = kMax ? warp_max(v) : warp_sum(v);
    __syncthreads();
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    float r = partial[0];
    for (int w = 1; w < n_warps; w++) r = kMax ? fmaxf(r, partial[w]) : r + partial[w];
    return r;
}
__device__ __forceinline__ float block_sum(float v) { return block_reduce<false>(v); }
__device__ __forceinline__ float block_max(float v) { return block_reduce<true>(v); }

/* a[j] += v[j], rounded to the storage type; returns the sum of the new a[j]^2 in float (this
 * thread's share of the RMSNorm's sum of squares). */
template <typename T, int VEC>
__device__ __forceinline__ float add_residual_pack(Pack<T, VEC> &a, const float *v) {
    float ss = 0.0f;
#pragma unroll
    for (int j = 0; j < VEC; j++) {
        a.v[j] = from_f32<T>(to_f32(a.v[j]) + v[j]);
        const float f = to_f32(a.v[j]);
        ss += f * f;
    }
    return ss;
}

/* 1 / sqrt(mean of squares + eps) of a row whose squares this block's threads summed in ss. */
__device__ __forceinline__ float rms_inv(float ss, int dim, float eps) {
    return 1.0f / sqrtf(block_sum(ss) / (float)dim + eps);
}

/* One pack of Hugging Face's RMSNorm output from the residual a, the weight w and
 * inv = 1 / sqrt(mean(a^2) + eps): weight * (a * inv).to(dtype), rounded to the storage type. */
template <typename T, int VEC>
__device__ __forceinline__ Pack<T, VEC> rmsnorm_pack(const Pack<T, VEC> &a,
                                                     const Pack<T, VEC> &w, float inv) {
    Pack<T, VEC> y;
#pragma unroll
    for (int j = 0; j < VEC; j++) {
        const T normed = from_f32<T>(to_f32(a.v[j]) * inv);
        y.v[j] = from_f32<T>(to_f32(w.v[j]) * to_f32(normed));
    }
    return y;
}

/* Programmatic dependent launch (sm_90). A kernel started with launch_pdl() may begin while
 * the kernel before it on the stream is still finishing, so its launch and prologue hide in
 * that kernel's tail. Such a kernel must call pdl_wait() before it reads anything earlier
 * kernels wrote or writes anything they read, and on every path through the kernel (its own
 * completion must still imply theirs); only reads of constants (weights) may come before.
 * pdl_launch_dependents() lets the next PDL kernel start now rather than at this one's exit.
 * Both are no-ops in a kernel launched the ordinary way. FOLIO_PDL=0 turns launch_pdl() into
 * an ordinary launch (for comparisons). */
__device__ __forceinline__ void pdl_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ __forceinline__ void pdl_launch_dependents() {
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
}

inline bool pdl_enabled() {
    static const int on = [] {
        const char *e = folio_env("FOLIO_PDL");
        return !(e && e[0] == '0');
    }();
    return on != 0;
}

/* launch_pdl with `smem` bytes of dynamic shared memory (the kernel's attribute raised first
 * where it passes 48 KB). */
template <typename... Params, typename... Args>
inline void launch_pdl_smem(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                            cudaStream_t stream, Args... args) {
    cudaLaunchAttribute attr;
    attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr.val.programmaticStreamSerializationAllowed = pdl_enabled() ? 1 : 0;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cfg.attrs = &attr;
    cfg.numAttrs = 1;
    CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, static_cast<Params>(args)...));
}

template <typename... Params, typename... Args>
inline void launch_pdl(void (*kernel)(Params...), dim3 grid, dim3 block, cudaStream_t stream,
                       Args... args) {
    launch_pdl_smem(kernel, grid, block, 0, stream, args...);
}

/* A hint: asks L2 to fetch `bytes` (a multiple of 16) at p (16-byte aligned) and returns at
 * once (cp.async.bulk.prefetch, sm_90). Results never depend on it, so it orders nothing (no
 * memory clobber: loads around it stay free to move). */
__device__ __forceinline__ void prefetch_l2(const void *p, uint32_t bytes) {
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p), "r"(bytes));
}

/* FOLIO_L2_PREFETCH_MB in bytes (0: off), read once. */
inline size_t l2_prefetch_bytes() {
    static const size_t b = [] {
        const char *e = folio_env("FOLIO_L2_PREFETCH_MB");
        const long v = e ? strtol(e, NULL, 10) : 0;
        return v > 0 && v <= 1024 ? (size_t)v << 20 : (size_t)0;
    }();
    return b;
}

/* dtype_size() without linking the engine library (kernels stand alone). */
inline size_t elem_size(folio_dtype t) { return t == DTYPE_F32 ? 4 : 2; }

inline bool aligned16(const void *p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

/* v rounded up to 256 bytes (cudaMalloc's alignment: sub-buffers carved from one allocation). */
inline size_t align256(size_t v) { return (v + 255) & ~(size_t)255; }

/* The current device's SM count (asked once). */
inline int device_sm_count() {
    static const int sms = [] {
        int dev = 0, v = 0;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev));
        return v;
    }();
    return sms;
}

} // namespace folio

/* Runs BODY with `T` bound to the storage type of dtype (float, __nv_bfloat16, __half). */
#define FOLIO_DISPATCH_DTYPE(dtype, what, ...)                                               \
    do {                                                                                      \
        switch (dtype) {                                                                      \
        case DTYPE_F32: { using T = float; __VA_ARGS__; } break;                              \
        case DTYPE_BF16: { using T = __nv_bfloat16; __VA_ARGS__; } break;                     \
        case DTYPE_F16: { using T = __half; __VA_ARGS__; } break;                             \
        default: CUDA_REQUIRE(false, what ": unknown dtype");                                 \
        }                                                                                     \
    } while (0)

/* The same for the 16-bit types only (bfloat16, float16). */
#define FOLIO_DISPATCH_16BIT(dtype, what, ...)                                               \
    do {                                                                                      \
        switch (dtype) {                                                                      \
        case DTYPE_BF16: { using T = __nv_bfloat16; __VA_ARGS__; } break;                     \
        case DTYPE_F16: { using T = __half; __VA_ARGS__; } break;                             \
        default: CUDA_REQUIRE(false, what ": dtype must be DTYPE_BF16 or DTYPE_F16");         \
        }                                                                                     \
    } while (0)

#endif
