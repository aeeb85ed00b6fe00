/* Device helpers of the W4A16 kernels (w4a16.cu: pack, GEMV, dequantize; w4a16_mma.cu and
 * w4a16_wgmma.cu: the tensor-core GEMMs) over the w4a16_tiles layout that w4a16.cu's header
 * explains: the tile geometry, the magic-number dequantization of the A registers, the mma
 * (cp.async: async_copy.cuh). */
#ifndef FOLIO_W4A16_TILE_CUH
#define FOLIO_W4A16_TILE_CUH

#include "async_copy.cuh"
#include "cuda_types.cuh"
#include "kernels_cuda.h"
#include "quant_layout.h"

namespace folio {
namespace w4 {

constexpr int kRows = 16;     /* rows per stripe: one m16 tile */
constexpr int kTileCols = 64; /* columns per tile: 4 mma of k16 */

/* Two 16-bit floats M + q from two nibbles (q in the low bits of each half). */
template <typename T> struct Magic;
template <> struct Magic<__nv_bfloat16> { static constexpr uint32_t kHalf = 0x4300u; }; /* 128 */
template <> struct Magic<__half> { static constexpr uint32_t kHalf = 0x6400u; };        /* 1024 */

template <typename T> __device__ __forceinline__ uint32_t sub_x2(uint32_t a, uint32_t b);
template <> __device__ __forceinline__ uint32_t sub_x2<__nv_bfloat16>(uint32_t a, uint32_t b) {
    uint32_t d;
    asm("sub.rn.bf16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
    return d;
}
template <> __device__ __forceinline__ uint32_t sub_x2<__half>(uint32_t a, uint32_t b) {
    uint32_t d;
    asm("sub.rn.f16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
    return d;
}

template <typename T> __device__ __forceinline__ uint32_t mul_x2(uint32_t a, uint32_t b);
template <> __device__ __forceinline__ uint32_t mul_x2<__nv_bfloat16>(uint32_t a, uint32_t b) {
    uint32_t d;
    asm("mul.rn.bf16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
    return d;
}
template <> __device__ __forceinline__ uint32_t mul_x2<__half>(uint32_t a, uint32_t b) {
    uint32_t d;
    asm("mul.rn.f16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
    return d;
}

/* s rounded to T, in both halves. */
template <typename T> __device__ __forceinline__ uint32_t splat_x2(float s) {
    const uint16_t h = __bfloat16_as_ushort(__float2bfloat16_rn(s));
    return h * 0x00010001u;
}
template <> __device__ __forceinline__ uint32_t splat_x2<__half>(float s) {
    const uint16_t h = __half_as_ushort(__float2half_rn(s));
    return h * 0x00010001u;
}

/* A register i of word q as q - z, exactly (mz = M + z in both halves). */
template <typename T>
__device__ __forceinline__ uint32_t dequant_pair(uint32_t q, int i, uint32_t mz) {
    const uint32_t m2 = Magic<T>::kHalf * 0x00010001u;
    return sub_x2<T>(((q >> (4 * i)) & 0x000F000Fu) | m2, mz);
}

/* c[16 x 8] += a[16 x 16] b[16 x 8], float accumulation. */
template <typename T>
__device__ __forceinline__ void mma16816(float *c, uint32_t a0, uint32_t a1, uint32_t a2,
                                         uint32_t a3, uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float *c, uint32_t a0, uint32_t a1,
                                                        uint32_t a2, uint32_t a3, uint32_t b0,
                                                        uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma16816<__half>(float *c, uint32_t a0, uint32_t a1,
                                                 uint32_t a2, uint32_t a3, uint32_t b0,
                                                 uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

__device__ __forceinline__ float half_bits_f32(uint32_t h) {
    return __half2float(__ushort_as_half((uint16_t)(h & 0xFFFFu)));
}

__device__ __forceinline__ uint32_t word(const uint4 &v, int j) {
    return j == 0 ? v.x : j == 1 ? v.y : j == 2 ? v.z : v.w;
}

/* The A operands of one tile for this lane (a[j]: k16 step j, the mma.sync m16n8k16 and
 * wgmma register layout): (q - z) times the scale, rounded to T as the dequantized
 * reference is. q4: the lane's 16 tile bytes; mt: {s[g] | s[g+8] << 16, z[g] | z[g+8] << 16}. */
template <typename T>
__device__ __forceinline__ void dequant_scaled(uint32_t (&a)[4][4], const uint4 &q4, uint2 mt) {
    const uint32_t za = (Magic<T>::kHalf + (mt.y & 0xFFFFu)) * 0x00010001u;
    const uint32_t zb = (Magic<T>::kHalf + (mt.y >> 16)) * 0x00010001u;
    const uint32_t sa2 = splat_x2<T>(half_bits_f32(mt.x));
    const uint32_t sb2 = splat_x2<T>(half_bits_f32(mt.x >> 16));
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const uint32_t q = word(q4, j);
        a[j][0] = mul_x2<T>(dequant_pair<T>(q, 0, za), sa2);
        a[j][1] = mul_x2<T>(dequant_pair<T>(q, 1, zb), sb2);
        a[j][2] = mul_x2<T>(dequant_pair<T>(q, 2, za), sa2);
        a[j][3] = mul_x2<T>(dequant_pair<T>(q, 3, zb), sb2);
    }
}

/* The group of the tile columns lane t reads (clamped: columns past cols in the last tile
 * are q = 0 against x = 0). */
__device__ __forceinline__ int tile_group(int kt, int t, int group_size, int groups) {
    return min((kt * kTileCols + 16 * t) / group_size, groups - 1);
}

} // namespace w4
} // namespace folio

#endif
