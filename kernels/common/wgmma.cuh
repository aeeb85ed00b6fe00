/* Hopper warpgroup matrix multiply (wgmma, sm_90a) for the tiled kernels: shared-memory
 * matrix descriptors of the 128-byte swizzled layout, the fences and group waits, and
 * m64n128k16 with float32 accumulators (A from shared memory or from registers, B from shared
 * memory), and m64n64k16 with A from registers (the W4A16 GEMM). CUDA C++ only. A warpgroup
 * is 4 consecutive warps (128 threads) that issue every wgmma instruction together.
 *
 * The 128-byte swizzled layout (what TMA writes with CU_TENSOR_MAP_SWIZZLE_128B, and what
 * swizzle_offset computes for a copy by hand): a tile of 16-bit values is cut into column
 * slabs of 64 elements (128 bytes); a slab is its rows one after another, 128 bytes each, and
 * within each row the 16-byte chunk c sits at chunk c ^ (row % 8). Slabs and tiles start on
 * 1024-byte boundaries (8 rows: one period of the pattern). The hardware applies the pattern to
 * address bits, so a descriptor may start 32 bytes into a row (the next k16 step).
 *
 * Register layouts (PTX ISA, "wgmma register fragments"), warp w of the warpgroup, g = lane / 4,
 * t = lane % 4:
 *   accumulator d[64] of m64n128: d[4j + e] is row 16w + g + 8 (e / 2), column 8j + 2t + e % 2;
 *   A from registers, one k16 step: a[0] rows 16w + g, columns 2t, 2t+1; a[1] row + 8; a[2]
 *   columns + 8; a[3] both (the layout of mma.sync m16n8k16's A).
 * So the accumulator's columns 16k..16k+15 are, packed two to a register in that order, the A
 * operand of k step k (flash attention keeps P in registers this way). */
#ifndef FOLIO_WGMMA_CUH
#define FOLIO_WGMMA_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <stdint.h>

namespace folio {

/* Byte offset of 16-byte chunk `chunk` (0..7) of row `row` in a 128-byte swizzled slab. */
__device__ __forceinline__ uint32_t swizzle_offset(int row, int chunk) {
    return (uint32_t)(row * 128 + ((chunk ^ (row & 7)) << 4));
}

/* Matrix descriptor for a 128-byte swizzled operand at shared address addr (bytes). K-major
 * (rows along M or N, K along the 128-byte rows): lbo is unused (pass 16, encoded 1, as
 * CUTLASS does), sbo = 1024 (8 rows). MN-major (the transposed B of P V: rows along K, 64 N
 * values per slab row): lbo = bytes from one 64-wide N slab to the next, sbo = 1024 (8 K
 * rows). */
__device__ __forceinline__ uint64_t wgmma_desc(uint32_t addr, uint32_t lbo, uint32_t sbo) {
    return (uint64_t)((addr & 0x3ffffu) >> 4) | (uint64_t)((lbo >> 4) & 0x3fffu) << 16 |
           (uint64_t)((sbo >> 4) & 0x3fffu) << 32 | (uint64_t)1 << 62; /* 1: 128-byte swizzle */
}

/* Before the first wgmma that reads registers written since (accumulators, A fragments). */
__device__ __forceinline__ void wgmma_fence() {
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_commit() {
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
/* Until at most kPending committed groups of this warpgroup are unfinished. */
template <int kPending> __device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
}
/* Shared memory written by ordinary stores or cp.async, made visible to wgmma (the async
 * proxy): each writing thread, after its writes land and before the barrier. */
__device__ __forceinline__ void fence_proxy_async() {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
/* The accumulators are outputs of the wgmma asm as far as the compiler knows, but the
 * hardware writes them until the wait: after a wait, tie every register to this point so no
 * use moves above it. */
template <int kN> __device__ __forceinline__ void wgmma_hold(float (&d)[kN]) {
#pragma unroll
    for (int i = 0; i < kN; i++) asm volatile("" : "+f"(d[i])::"memory");
}

/* A fragments from registers (k16 steps x 4) stay where they are until the wgmma reading them
 * is issued, and are not reused before its wait. */
__device__ __forceinline__ void wgmma_hold_a(uint32_t (&a)[4][4]) {
#pragma unroll
    for (int j = 0; j < 4; j++)
        asm volatile("" : "+r"(a[j][0]), "+r"(a[j][1]), "+r"(a[j][2]), "+r"(a[j][3])::"memory");
}

/* The 64 accumulator operands of an m64n128 instruction, with constraint c ("+f" to add to
 * d, "=f" to overwrite it: no false dependence on the old values), and their placeholders. */
#define FOLIO_WGMMA_D64(c)                                                                    \
    c(d[0]), c(d[1]), c(d[2]), c(d[3]), c(d[4]), c(d[5]), c(d[6]), c(d[7]),                       \
    c(d[8]), c(d[9]), c(d[10]), c(d[11]), c(d[12]), c(d[13]), c(d[14]), c(d[15]),                 \
    c(d[16]), c(d[17]), c(d[18]), c(d[19]), c(d[20]), c(d[21]), c(d[22]), c(d[23]),               \
    c(d[24]), c(d[25]), c(d[26]), c(d[27]), c(d[28]), c(d[29]), c(d[30]), c(d[31]),               \
    c(d[32]), c(d[33]), c(d[34]), c(d[35]), c(d[36]), c(d[37]), c(d[38]), c(d[39]),               \
    c(d[40]), c(d[41]), c(d[42]), c(d[43]), c(d[44]), c(d[45]), c(d[46]), c(d[47]),               \
    c(d[48]), c(d[49]), c(d[50]), c(d[51]), c(d[52]), c(d[53]), c(d[54]), c(d[55]),               \
    c(d[56]), c(d[57]), c(d[58]), c(d[59]), c(d[60]), c(d[61]), c(d[62]), c(d[63])
#define FOLIO_WGMMA_R64                                                                       \
    "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                      \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "            \
    "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "            \
    "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"

#define FOLIO_WGMMA_SS(TY, C, ACC)                                                            \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                                 \
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32." TY "." TY " {" FOLIO_WGMMA_R64 \
                 "}, %64, %65, p, 1, 1, 0, %67;\n}\n"                                          \
                 : FOLIO_WGMMA_D64(C)                                                          \
                 : "l"(desc_a), "l"(desc_b), "r"(ACC), "n"(kTransB))
#define FOLIO_WGMMA_RS(TY)                                                                    \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"                                 \
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32." TY "." TY " {" FOLIO_WGMMA_R64 \
                 "}, {%64, %65, %66, %67}, %68, p, 1, 1, %70;\n}\n"                            \
                 : FOLIO_WGMMA_D64("+f")                                                       \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(1),            \
                   "n"(kTransB))

template <typename T> struct WgmmaType;
template <> struct WgmmaType<__nv_bfloat16> { static constexpr bool kBf16 = true; };
template <> struct WgmmaType<__half> { static constexpr bool kBf16 = false; };

/* d = A B (kAccumulate false) or d += A B, m64n128k16. A: K-major descriptor. B: K-major
 * descriptor (kTransB 0) or MN-major (1). */
template <typename T, int kTransB, bool kAccumulate>
__device__ __forceinline__ void wgmma_m64n128k16_ss(float (&d)[64], uint64_t desc_a,
                                                    uint64_t desc_b) {
    if constexpr (WgmmaType<T>::kBf16 && kAccumulate)
        FOLIO_WGMMA_SS("bf16", "+f", 1);
    else if constexpr (WgmmaType<T>::kBf16)
        FOLIO_WGMMA_SS("bf16", "=f", 0);
    else if constexpr (kAccumulate)
        FOLIO_WGMMA_SS("f16", "+f", 1);
    else
        FOLIO_WGMMA_SS("f16", "=f", 0);
}

/* d += A B, m64n128k16, A from registers (a[4], the layout above), B a descriptor, K-major
 * (kTransB 0) or MN-major (1). */
template <typename T, int kTransB>
__device__ __forceinline__ void wgmma_m64n128k16_rs(float (&d)[64], const uint32_t (&a)[4],
                                                    uint64_t desc_b) {
    if constexpr (WgmmaType<T>::kBf16)
        FOLIO_WGMMA_RS("bf16");
    else
        FOLIO_WGMMA_RS("f16");
}

/* d += A B, m64n64k16 (32 accumulators: d[4j + e] is row 16w + g + 8 (e / 2), column
 * 8j + 2t + e % 2), A from registers, B a K-major descriptor. */
#define FOLIO_WGMMA_RS64(TY)                                                                  \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"                                 \
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32." TY "." TY " {"                \
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "       \
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, "  \
                 "%31}, {%32, %33, %34, %35}, %36, p, 1, 1, 0;\n}\n"                            \
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),     \
                   "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),   \
                   "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),            \
                   "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]),            \
                   "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]),            \
                   "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])             \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(1))

template <typename T>
__device__ __forceinline__ void wgmma_m64n64k16_rs(float (&d)[32], const uint32_t (&a)[4],
                                                   uint64_t desc_b) {
    if constexpr (WgmmaType<T>::kBf16)
        FOLIO_WGMMA_RS64("bf16");
    else
        FOLIO_WGMMA_RS64("f16");
}

/* The RS product of either width: N = 2 x the accumulator count. */
template <typename T>
__device__ __forceinline__ void wgmma_rs(float (&d)[32], const uint32_t (&a)[4], uint64_t desc_b) {
    wgmma_m64n64k16_rs<T>(d, a, desc_b);
}
template <typename T>
__device__ __forceinline__ void wgmma_rs(float (&d)[64], const uint32_t (&a)[4], uint64_t desc_b) {
    wgmma_m64n128k16_rs<T, 0>(d, a, desc_b);
}

#undef FOLIO_WGMMA_RS64
#undef FOLIO_WGMMA_SS
#undef FOLIO_WGMMA_RS
#undef FOLIO_WGMMA_R64
#undef FOLIO_WGMMA_D64

} // namespace folio

#endif
