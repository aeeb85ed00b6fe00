/* e4m3 on the device, as every FP8 kernel rounds it (engine/base/fp8_layout.h): the hardware
 * conversion (round to nearest even, saturating to +-448: fp8_e4m3_from_float's rounding), the
 * dynamic activation scale of a row or group, and the quantization of one pack of activations
 * (fp8_quantize_act_cuda's bytes, wherever a kernel quantizes its own output). */
#ifndef FOLIO_FP8_CONVERT_CUH
#define FOLIO_FP8_CONVERT_CUH

#include <cfloat>

#include <cuda_fp8.h>

#include "cuda_types.cuh"
#include "fp8_layout.h"

namespace folio {

__device__ __forceinline__ uint8_t to_e4m3(float v) {
    return (uint8_t)__nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3);
}

/* The activation scale of a row or group whose largest magnitude is amax (fp8_layout.h):
 * amax / 448, 1 for a zero row, never below FLT_MIN (x / a stays finite). */
__device__ __forceinline__ float act_scale(float amax) {
    return amax > 0.f ? fmaxf(amax / FP8_E4M3_MAX, FLT_MIN) : 1.f;
}

/* The largest |v| of a pack. */
template <typename T, int VEC> __device__ __forceinline__ float pack_amax(const Pack<T, VEC> &p) {
    float m = 0.f;
#pragma unroll
    for (int j = 0; j < VEC; j++) m = fmaxf(m, fabsf(to_f32(p.v[j])));
    return m;
}

/* e4m3(p / a), VEC bytes at dst (VEC-byte aligned). */
template <typename T, int VEC>
__device__ __forceinline__ void store_e4m3_pack(uint8_t *dst, const Pack<T, VEC> &p, float a) {
    uint8_t b[VEC];
#pragma unroll
    for (int j = 0; j < VEC; j++) b[j] = to_e4m3(to_f32(p.v[j]) / a);
    if constexpr (VEC == 8) {
        uint2 w;
        w.x = b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24;
        w.y = b[4] | b[5] << 8 | b[6] << 16 | (uint32_t)b[7] << 24;
        *reinterpret_cast<uint2 *>(dst) = w;
    } else {
#pragma unroll
        for (int j = 0; j < VEC; j++) dst[j] = b[j];
    }
}

} // namespace folio

#endif
