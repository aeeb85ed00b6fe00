/* Device helpers shared by the CUDA kernels (CUDA C++ only): float <-> storage-type
 * conversions for float, __nv_bfloat16 and __half, a 16-byte vector of elements, warp sums,
 * and the switch that turns a folio_dtype into a template instantiation. */
#ifndef FOLIO_CUDA_TYPES_CUH
#define FOLIO_CUDA_TYPES_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdint.h>

#include "cuda_check.h"
#include "dtype.h"

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

/* dtype_size() without linking the engine library (kernels stand alone). */
inline size_t elem_size(folio_dtype t) { return t == DTYPE_F32 ? 4 : 2; }

inline bool aligned16(const void *p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

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

#endif
