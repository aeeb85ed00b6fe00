/* W4A16 products on the GPU: y[n][rows] = x[n][in_cols] @ W^T (+ bias), W[r][perm ? perm[c] :
 * c] = (q - z) * s (quant_layout.h; a padding column, perm QL_PAD, gathers x = 0), 16-bit
 * activations, float accumulation. Twin: w4a16_cpu; check and bench: test_gpu_w4a16.c.
 *
 * The layout (w4a16_tiles, packed once at load by w4a16_pack_kernel). Rows go in stripes of
 * 16 (one m16 tile of mma.m16n8k16), columns in tiles of 64. A tile is 512 contiguous bytes:
 * lane l = 4g + t of a warp holds, in 4 words j = 0..3, exactly the A operands of the 4 mma
 * it runs for the tile. Within a tile, lane t's columns are c0 + 4j + 0..3 (c0 = 16t), and
 * the mma's k positions 2t, 2t+1, 2t+8, 2t+9 stand for columns c0+4j, +1, +2, +3 (the k of
 * a product may be numbered in any order, as long as A and B agree). Word j's nibbles, in
 * the quant_layout.h pair order (pair i: bits 4i and 16 + 4i), are
 *     pair 0: W[g][c0+4j], W[g][c0+4j+1]        pair 1: W[g+8][c0+4j], W[g+8][c0+4j+1]
 *     pair 2: W[g][c0+4j+2], W[g][c0+4j+3]      pair 3: W[g+8][c0+4j+2], W[g+8][c0+4j+3]
 * so (word >> 4i) & 0x000F000F | magic is the i-th A register as two 16-bit floats M + q,
 * and one packed subtraction of M + z makes it q - z exactly. The B operands are x's columns
 * c0 + 4j .. + 3, i.e. lane t reads 16 consecutive x values (two 16-byte loads) per tile.
 * Scales and zeros of a (stripe, group) sit together: for lane group g one 8-byte word pair
 * {s[g] | s[g+8] << 16, z[g] | z[g+8] << 16}.
 *
 * Why: a warp's weight load for a tile is one fully used 512-byte run, consecutive tiles of
 * a stripe are consecutive in memory, and nothing is reshuffled in registers: the weight
 * costs ~1.5 integer/half2 instructions per element and the products run on the tensor
 * cores, so the kernel is bound by the 4-bit bytes.
 *
 * Decode (n = 1..16), two forms of the GEMV (FOLIO_W4A16_GEMV picks; kNT = 1 or 2 batch
 * tiles of 8 share each dequantized A operand; a block owns one stripe, its warps split the
 * stripe's tiles into contiguous runs and sum them in shared memory in a fixed order, so the
 * result is deterministic). w4a16_gemv_ring_kernel streams each warp's run through a ring of
 * shared memory with cp.async (kStages - 1 steps of kStepTiles tiles in flight while it
 * multiplies one; a lane reads back only the bytes it copied, so no barrier is needed) and
 * keeps x one step ahead in registers. w4a16_gemv_kernel loads the tiles straight into
 * registers, two chunks of kChunk tiles deep, with no per-tile checks where the chunks lie
 * wholly inside the run, and no shared-memory round trip: the ring form spends ~190 warp
 * instructions per 512-byte tile (Nsight Compute, docs/benchmarks.md), more than an SM can
 * issue at the copy rate (~39 cycles per tile per SM on an H100). Where a group spans whole
 * tiles (group_size % 64 == 0) the mma multiplies the exact integers q - z and the float tile
 * is scaled per tile; smaller groups scale the A operand in 16 bits.
 *
 * 17..256 tokens run the tensor-core GEMMs (w4a16_mma.cu, w4a16_wgmma.cu, w4a16_wgmma_ws.cu);
 * prefill above that, and act-order matrices above the GEMV: w4a16_dequant_kernel writes W in
 * 16 bits, input-column order, for the cuBLASLt GEMM (w4a16_gemm.c). */
#include "w4a16_tile.cuh"

namespace {

using namespace folio;
using namespace folio::w4;

constexpr int kStepTiles = 2; /* tiles per warp per pipeline step */
constexpr int kStages = 4;    /* steps in a warp's ring: kStages - 1 in flight */

/* x[b][c .. c + 15] as 8 registers of two 16-bit values, zeros past cols. */
__device__ __forceinline__ void load_x(uint32_t *xr, const uint16_t *x, int b, int c, int cols) {
    if (c >= cols) {
#pragma unroll
        for (int i = 0; i < 8; i++) xr[i] = 0;
        return;
    }
    const uint16_t *p = x + (size_t)b * cols + c;
    const uint4 lo = __ldg(reinterpret_cast<const uint4 *>(p));
    const uint4 hi = __ldg(reinterpret_cast<const uint4 *>(p + 8));
    xr[0] = lo.x, xr[1] = lo.y, xr[2] = lo.z, xr[3] = lo.w;
    xr[4] = hi.x, xr[5] = hi.y, xr[6] = hi.z, xr[7] = hi.w;
}

/* A warp's ring of kStages steps of kStepTiles tiles: per tile, each lane's 16 weight bytes
 * and its 8 bytes of scales and zeros. */
struct Stage {
    uint4 w[kStepTiles][kWarp];
    uint2 meta[kStepTiles][kWarp];
};

/* Issues step `step` of this warp's tiles [kt0, kt1) into its stage; always commits a group
 * (empty past the end) so the wait counts stay uniform. */
__device__ __forceinline__ void issue_step(Stage *ring, int step, const uint4 *tiles,
                                           const uint2 *meta, int kt0, int kt1, int lane,
                                           int t, int group_size, int groups) {
    Stage &st = ring[step % kStages];
#pragma unroll
    for (int u = 0; u < kStepTiles; u++) {
        const int kt = kt0 + step * kStepTiles + u;
        if (kt < kt1) {
            cp_async16(&st.w[u][lane], tiles + (size_t)kt * kWarp);
            cp_async8(&st.meta[u][lane], meta + (size_t)tile_group(kt, t, group_size, groups) * 8);
        }
    }
    cp_async_commit();
}

/* This lane's x registers for the kStepTiles tiles of step s of its run [kt0, kt1), for
 * each of the kNT batch tiles: batch row 8 nt + g (zeros past n and past the run). */
template <int kNT>
__device__ __forceinline__ void load_x_step(uint32_t (*xr)[kNT][8], const uint16_t *x, int s,
                                            int kt0, int kt1, int g, int t, int n, int cols) {
#pragma unroll
    for (int u = 0; u < kStepTiles; u++)
#pragma unroll
        for (int nt = 0; nt < kNT; nt++) {
            const int kt = kt0 + s * kStepTiles + u, b = 8 * nt + g;
            if (b < n && kt < kt1) {
                load_x(xr[u][nt], x, b, kt * kTileCols + 16 * t, cols);
            } else {
#pragma unroll
                for (int i = 0; i < 8; i++) xr[u][nt][i] = 0;
            }
        }
}

/* acc[nt] (rows g, g+8 x batch 8 nt + 2t, +1) += one tile's product for this lane: its A
 * operands dequantized once, used for the kNT batch tiles. Warp-uniform. */
template <typename T, bool kPost, int kNT>
__device__ __forceinline__ void tile_product(float (*acc)[4], const uint4 &w, uint2 meta,
                                             const uint32_t (*xr)[8]) {
    const uint32_t za = (Magic<T>::kHalf + (meta.y & 0xFFFFu)) * 0x00010001u;
    const uint32_t zb = (Magic<T>::kHalf + (meta.y >> 16)) * 0x00010001u;
    const float sa = half_bits_f32(meta.x), sb = half_bits_f32(meta.x >> 16);
    const uint32_t sa2 = kPost ? 0u : splat_x2<T>(sa), sb2 = kPost ? 0u : splat_x2<T>(sb);
    float cf[kNT][4];
#pragma unroll
    for (int nt = 0; nt < kNT; nt++) cf[nt][0] = cf[nt][1] = cf[nt][2] = cf[nt][3] = 0.0f;
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const uint32_t q = word(w, j);
        uint32_t a0 = dequant_pair<T>(q, 0, za), a1 = dequant_pair<T>(q, 1, zb);
        uint32_t a2 = dequant_pair<T>(q, 2, za), a3 = dequant_pair<T>(q, 3, zb);
        if (!kPost) {
            a0 = mul_x2<T>(a0, sa2), a1 = mul_x2<T>(a1, sb2);
            a2 = mul_x2<T>(a2, sa2), a3 = mul_x2<T>(a3, sb2);
        }
#pragma unroll
        for (int nt = 0; nt < kNT; nt++)
            mma16816<T>(cf[nt], a0, a1, a2, a3, xr[nt][2 * j], xr[nt][2 * j + 1]);
    }
#pragma unroll
    for (int nt = 0; nt < kNT; nt++) {
        const float fa = kPost ? sa : 1.0f, fb = kPost ? sb : 1.0f;
        acc[nt][0] += cf[nt][0] * fa, acc[nt][1] += cf[nt][1] * fa;
        acc[nt][2] += cf[nt][2] * fb, acc[nt][3] += cf[nt][3] * fb;
    }
}

/* y[b][r] = v (+ bias[r]) where r < rows and b < n. */
template <typename T>
__device__ __forceinline__ void store_out(T *y, const T *bias, int r, int b, float v, int rows,
                                          int n) {
    if (r < rows && b < n) y[(size_t)b * rows + r] = from_f32<T>(v + (bias ? to_f32(bias[r]) : 0.0f));
}

/* The block's stripe out: each warp's acc into shared memory, then warp 0 sums them in warp
 * order (deterministic) and stores y (+ bias). */
template <typename T, int kWarps, int kNT>
__device__ __forceinline__ void stripe_sum_store(T *y, const T *bias, const float (*acc)[4],
                                                 int rows, int n) {
    __shared__ float4 partial[kWarps][kNT][kWarp];
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
#pragma unroll
    for (int nt = 0; nt < kNT; nt++)
        partial[warp][nt][lane] = make_float4(acc[nt][0], acc[nt][1], acc[nt][2], acc[nt][3]);
    __syncthreads();
    if (warp != 0) return;
    const int r = blockIdx.x * kRows + lane / 4;
#pragma unroll
    for (int nt = 0; nt < kNT; nt++) {
        float4 v = partial[0][nt][lane];
#pragma unroll
        for (int w = 1; w < kWarps; w++) {
            const float4 p = partial[w][nt][lane];
            v.x += p.x, v.y += p.y, v.z += p.z, v.w += p.w;
        }
        const int b = 8 * nt + 2 * (lane % 4);
        store_out(y, bias, r, b, v.x, rows, n);
        store_out(y, bias, r, b + 1, v.y, rows, n);
        store_out(y, bias, r + 8, b, v.z, rows, n);
        store_out(y, bias, r + 8, b + 1, v.w, rows, n);
    }
}

/* One lane's share of kChunk consecutive tiles of its run: the 16 weight bytes of each and
 * the 8 bytes of scales and zeros of its group. */
constexpr int kChunk = 4;
constexpr int kGemvWarpsPerSm = 16; /* registers capped so that this many warps fit an SM */
struct Chunk {
    uint4 w[kChunk];
    uint2 meta[kChunk];
};

/* Where a lane reads: its first tile's weights and its stripe's scales and zeros; x at its
 * columns (16 t) of batch rows 8 nt + g, clamped to the last row: an mma's output columns are
 * independent, so a lane past n may feed a copy of a real row into a column never stored. */
template <int kNT> struct LaneSrc {
    const uint4 *tiles;
    const uint2 *meta;
    const uint16_t *x[kNT];
    int t, group_size, gshift, groups, cols, kt1;
};

/* The group of tile kt's columns for lane t (w4::tile_group): a shift where the group size is
 * a power of two (gshift >= 0; per-channel scales pass 31), else a division. */
template <int kNT>
__device__ __forceinline__ int lane_group(const LaneSrc<kNT> &s, int kt) {
    const int c = kt * kTileCols + 16 * s.t;
    return min(s.gshift >= 0 ? c >> s.gshift : c / s.group_size, s.groups - 1);
}

/* Issues the loads of tiles [kt, kt + kChunk): weights streamed once (evict-first), scales
 * and zeros through the read-only cache. kFull: all of them inside the run (no checks). */
template <bool kFull, int kNT>
__device__ __forceinline__ void load_chunk(Chunk &c, const LaneSrc<kNT> &s, int kt) {
#pragma unroll
    for (int u = 0; u < kChunk; u++) {
        if (kFull || kt + u < s.kt1) {
            c.w[u] = __ldcs(s.tiles + (size_t)(kt + u) * kWarp);
            c.meta[u] = __ldg(s.meta + (size_t)lane_group(s, kt + u) * 8);
        }
    }
}

/* acc += the chunk's products: per tile, this lane's x columns read through L1, then the
 * tile's mma. kFull: all tiles inside the run and all their columns inside cols; otherwise
 * tiles past the run are skipped and x past cols reads as 0. */
template <typename T, bool kPost, int kNT, bool kFull>
__device__ __forceinline__ void multiply_chunk(float (*acc)[4], const Chunk &c,
                                               const LaneSrc<kNT> &s, int kt) {
#pragma unroll
    for (int u = 0; u < kChunk; u++) {
        if (!kFull && kt + u >= s.kt1) break;
        const int col = (kt + u) * kTileCols;
        uint32_t xr[kNT][8];
#pragma unroll
        for (int nt = 0; nt < kNT; nt++) {
            if (kFull || col + 16 * s.t < s.cols) {
                const uint4 lo = __ldg(reinterpret_cast<const uint4 *>(s.x[nt] + col));
                const uint4 hi = __ldg(reinterpret_cast<const uint4 *>(s.x[nt] + col + 8));
                xr[nt][0] = lo.x, xr[nt][1] = lo.y, xr[nt][2] = lo.z, xr[nt][3] = lo.w;
                xr[nt][4] = hi.x, xr[nt][5] = hi.y, xr[nt][6] = hi.z, xr[nt][7] = hi.w;
            } else {
#pragma unroll
                for (int i = 0; i < 8; i++) xr[nt][i] = 0;
            }
        }
        tile_product<T, kPost, kNT>(acc, c.w[u], c.meta[u], xr);
    }
}

/* The GEMV. Block = one stripe; warp w streams the contiguous tiles [w * per, (w + 1) * per)
 * of it straight into registers, two chunks deep: while one chunk is multiplied the other's
 * loads are in flight. Where the next two chunks lie wholly inside the run and inside cols
 * the loop runs without checks. Launched with programmatic dependent launch: the first two
 * chunks' loads are issued before pdl_wait(); x ([n][cols], already gathered where the matrix
 * has a perm) is read after it. The warps' sums meet in shared memory in a fixed order. */
template <typename T, bool kPost, int kWarps, int kNT>
__global__ void __launch_bounds__(kWarps * kWarp, kGemvWarpsPerSm / kWarps > 0 ? kGemvWarpsPerSm / kWarps : 1)
w4a16_gemv_kernel(T *y, const uint16_t *x, const w4a16_tiles m, const T *bias, int n,
                  int gshift) {
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
    const int g = lane / 4, t = lane % 4;
    const int groups = m.cols / m.group_size;
    const int per = (m.ktiles + kWarps - 1) / kWarps;
    const int kt0 = min(warp * per, m.ktiles), kt1 = min(kt0 + per, m.ktiles);
    const int kt_full = min(kt1, m.cols / kTileCols); /* tiles wholly inside cols end here */
    LaneSrc<kNT> s;
    s.tiles = reinterpret_cast<const uint4 *>(m.tiles) + (size_t)blockIdx.x * m.ktiles * kWarp + lane;
    s.meta = reinterpret_cast<const uint2 *>(m.meta) + (size_t)blockIdx.x * groups * 8 + g;
#pragma unroll
    for (int nt = 0; nt < kNT; nt++) s.x[nt] = x + (size_t)min(8 * nt + g, n - 1) * m.cols + 16 * t;
    s.t = t, s.group_size = m.group_size, s.gshift = gshift, s.groups = groups;
    s.cols = m.cols, s.kt1 = kt1;
    Chunk a, b;
    load_chunk<false>(a, s, kt0);
    load_chunk<false>(b, s, kt0 + kChunk);
    pdl_wait();
    pdl_launch_dependents();
    float acc[kNT][4];
#pragma unroll
    for (int nt = 0; nt < kNT; nt++) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
    for (int kt = kt0; kt < kt1; kt += 2 * kChunk) {
        if (kt + 4 * kChunk <= kt_full) {
            multiply_chunk<T, kPost, kNT, true>(acc, a, s, kt);
            load_chunk<true>(a, s, kt + 2 * kChunk);
            multiply_chunk<T, kPost, kNT, true>(acc, b, s, kt + kChunk);
            load_chunk<true>(b, s, kt + 3 * kChunk);
        } else {
            multiply_chunk<T, kPost, kNT, false>(acc, a, s, kt);
            load_chunk<false>(a, s, kt + 2 * kChunk);
            multiply_chunk<T, kPost, kNT, false>(acc, b, s, kt + kChunk);
            load_chunk<false>(b, s, kt + 3 * kChunk);
        }
    }
    stripe_sum_store<T, kWarps, kNT>(y, bias, acc, m.rows, n);
}

/* Launched with programmatic dependent launch: the first steps' weight and scale copies are
 * issued before pdl_wait(); x ([n][cols]: already gathered where the matrix has a perm) is
 * read after it. Block = one stripe; warp w streams the
 * contiguous tiles [w * per, (w + 1) * per) of it through its ring (kStages - 1 steps in
 * flight while it multiplies one). */
template <typename T, bool kPost, int kWarps, int kNT>
__global__ void __launch_bounds__(kWarps * kWarp)
w4a16_gemv_ring_kernel(T *y, const uint16_t *x, const w4a16_tiles m, const T *bias, int n) {
    extern __shared__ Stage rings[]; /* [kWarps][kStages] */
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
    const int g = lane / 4, t = lane % 4;
    const int groups = m.cols / m.group_size;
    const uint4 *tiles = reinterpret_cast<const uint4 *>(m.tiles) +
                         (size_t)blockIdx.x * m.ktiles * kWarp + lane;
    const uint2 *meta = reinterpret_cast<const uint2 *>(m.meta) +
                        (size_t)blockIdx.x * groups * 8 + g;
    const int per = (m.ktiles + kWarps - 1) / kWarps;
    const int kt0 = min(warp * per, m.ktiles), kt1 = min(kt0 + per, m.ktiles);
    const int steps = (kt1 - kt0 + kStepTiles - 1) / kStepTiles;
    Stage *ring = rings + warp * kStages;
#pragma unroll
    for (int s = 0; s < kStages - 1; s++)
        issue_step(ring, s, tiles, meta, kt0, kt1, lane, t, m.group_size, groups);
    pdl_wait();
    pdl_launch_dependents();
    float acc[kNT][4];
#pragma unroll
    for (int nt = 0; nt < kNT; nt++) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
    uint32_t xcur[kStepTiles][kNT][8], xnext[kStepTiles][kNT][8]; /* one step ahead */
    load_x_step<kNT>(xcur, x, 0, kt0, kt1, g, t, n, m.cols);
    for (int s = 0; s < steps; s++) {
        cp_async_wait<kStages - 2>(); /* step s has landed */
        issue_step(ring, s + kStages - 1, tiles, meta, kt0, kt1, lane, t, m.group_size, groups);
        load_x_step<kNT>(xnext, x, s + 1, kt0, kt1, g, t, n, m.cols);
        const Stage &st = ring[s % kStages];
#pragma unroll
        for (int u = 0; u < kStepTiles; u++)
            if (kt0 + s * kStepTiles + u < kt1)
                tile_product<T, kPost, kNT>(acc, st.w[u][lane], st.meta[u][lane], xcur[u]);
#pragma unroll
        for (int u = 0; u < kStepTiles; u++)
#pragma unroll
            for (int nt = 0; nt < kNT; nt++)
#pragma unroll
                for (int i = 0; i < 8; i++) xcur[u][nt][i] = xnext[u][nt][i];
    }
    cp_async_wait<0>();
    stripe_sum_store<T, kWarps, kNT>(y, bias, acc, m.rows, n);
}

/* q of (r, c) of the row-major matrix, 0 outside it. */
__device__ __forceinline__ uint32_t q_at(const quant_matrix &m, int r, int c) {
    if (r >= m.rows || c >= m.cols) return 0;
    const uint32_t w = m.qweight[(size_t)r * (m.cols / 8) + c / 8];
    return (w >> ql_shift(4, c % 8)) & 15u;
}

/* One thread per tile word: tiles[s][kt][lane][j] from the row-major qweight (header). */
__global__ void __launch_bounds__(256)
w4a16_pack_kernel(uint32_t *tiles, const quant_matrix m, int stripes, int ktiles) {
    const int64_t total = (int64_t)stripes * ktiles * kWarp * 4;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int j = (int)(i % 4), lane = (int)(i / 4 % kWarp);
        const int kt = (int)(i / (4 * kWarp) % ktiles), s = (int)(i / (4 * kWarp * ktiles));
        const int g = lane / 4, t = lane % 4;
        const int ra = s * kRows + g, rb = ra + 8, c = kt * kTileCols + 16 * t + 4 * j;
        const uint32_t pair_r[4] = {(uint32_t)ra, (uint32_t)rb, (uint32_t)ra, (uint32_t)rb};
        const int pair_c[4] = {c, c, c + 2, c + 2};
        uint32_t w = 0;
#pragma unroll
        for (int p = 0; p < 4; p++) {
            w |= q_at(m, (int)pair_r[p], pair_c[p]) << (4 * p);
            w |= q_at(m, (int)pair_r[p], pair_c[p] + 1) << (16 + 4 * p);
        }
        tiles[i] = w;
    }
}

/* One thread per (stripe, group, g): {s[g] | s[g+8] << 16, z[g] | z[g+8] << 16}; rows past
 * the matrix get scale 0, zero 0. */
__global__ void __launch_bounds__(256)
w4a16_pack_meta_kernel(uint32_t *meta, const quant_matrix m, int stripes) {
    const int groups = m.cols / m.group_size;
    const int64_t total = (int64_t)stripes * groups * 8;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int g = (int)(i % 8), grp = (int)(i / 8 % groups), s = (int)(i / (8 * groups));
        const int ra = s * kRows + g, rb = ra + 8;
        uint32_t sv = 0, zv = 0;
        if (ra < m.rows) {
            sv |= m.scales[(size_t)ra * groups + grp];
            zv |= m.zeros[(size_t)ra * groups + grp];
        }
        if (rb < m.rows) {
            sv |= (uint32_t)m.scales[(size_t)rb * groups + grp] << 16;
            zv |= (uint32_t)m.zeros[(size_t)rb * groups + grp] << 16;
        }
        meta[2 * i] = sv;
        meta[2 * i + 1] = zv;
    }
}

/* One thread per (row, 8 columns): (q - z) * s rounded to T, written at w[r][perm ? perm[c] :
 * c] ([rows][in_cols]; consecutive threads write consecutive 16 bytes of a row). */
template <typename T>
__global__ void __launch_bounds__(256)
w4a16_dequant_kernel(T *w, const w4a16_tiles m) {
    const int groups = m.cols / m.group_size, chunks = m.cols / 8;
    const int64_t total = (int64_t)m.rows * chunks;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int r = (int)(i / chunks), c = (int)(i % chunks) * 8;
        const int s = r / kRows, g = r % 8, half = r % kRows / 8;
        const int kt = c / kTileCols, t = c % kTileCols / 16, e = c % 16 / 8;
        const size_t tile = ((size_t)s * m.ktiles + kt) * kWarp + 4 * g + t;
        const uint2 q2 = reinterpret_cast<const uint2 *>(m.tiles)[tile * 2 + e];
        const uint2 mt = reinterpret_cast<const uint2 *>(m.meta)[((size_t)s * groups + c / m.group_size) * 8 + g];
        const float sc = half_bits_f32(mt.x >> (16 * half));
        const int z = (int)((mt.y >> (16 * half)) & 0xFFFFu);
        Pack<T, 8> v;
#pragma unroll
        for (int k = 0; k < 8; k++) { /* word 2e + k / 4, column k % 4 of it */
            const uint32_t q = k < 4 ? q2.x : q2.y;
            const int pair = half + 2 * (k % 4 / 2);
            v.v[k] = from_f32<T>((float)((int)((q >> (4 * pair + 16 * (k % 2))) & 15u) - z) * sc);
        }
        T *wr = w + (size_t)r * m.in_cols;
        if (!m.perm) {
            *reinterpret_cast<Pack<T, 8> *>(wr + c) = v;
        } else {
#pragma unroll
            for (int k = 0; k < 8; k++) {
                const int in_c = __ldg(m.perm + c + k);
                if (in_c != QL_PAD) wr[in_c] = v.v[k];
            }
        }
    }
}

/* FOLIO_W4A16_WARPS, 0 where unset. */
int forced_warps() {
    static const int forced = [] {
        const char *e = folio_env("FOLIO_W4A16_WARPS");
        return e ? atoi(e) : 0;
    }();
    return forced;
}

/* Warps per stripe: the most (2 .. 16) that still give each warp a run of >= 8 tiles and
 * keep the grid near or below ~40 warps per SM (5,200 on an H100; measured on the 8B/70B
 * shapes and their TP shards, docs/benchmarks.md). FOLIO_W4A16_WARPS=2|4|8|16 overrides. */
int gemv_warps(int stripes, int ktiles) {
    const int forced = forced_warps();
    if (forced == 2 || forced == 4 || forced == 8 || forced == 16) return forced;
    const int sms = device_sm_count();
    int w = 16;
    while (w > 2 && (ktiles < 8 * w || (int64_t)stripes * w > 40 * sms)) w /= 2;
    return w;
}

template <typename T, bool kPost, int kWarps, int kNT>
void launch_gemv_warps(void *y, const void *x, const w4a16_tiles *m, const void *bias, int n,
                       cudaStream_t stream) {
    const size_t smem = (size_t)kWarps * kStages * sizeof(Stage);
    static bool configured = false; /* once per instantiation: above the 48 KiB default */
    if (!configured) {
        CUDA_CHECK(cudaFuncSetAttribute(w4a16_gemv_ring_kernel<T, kPost, kWarps, kNT>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        configured = true;
    }
    cudaLaunchAttribute attr;
    attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr.val.programmaticStreamSerializationAllowed = pdl_enabled() ? 1 : 0;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(m->stripes);
    cfg.blockDim = dim3(kWarps * kWarp);
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cfg.attrs = &attr;
    cfg.numAttrs = 1;
    CUDA_CHECK(cudaLaunchKernelEx(&cfg, w4a16_gemv_ring_kernel<T, kPost, kWarps, kNT>,
                                  static_cast<T *>(y), static_cast<const uint16_t *>(x), *m,
                                  static_cast<const T *>(bias), n));
    CUDA_CHECK_LAUNCH();
}

/* log2(group_size) where it is a power of two, 31 for per-channel scales (one group), else
 * -1 (the kernel divides). */
int group_shift(int group_size, int cols) {
    if (group_size == cols) return 31;
    for (int s = 0; s < 31; s++)
        if (group_size == 1 << s) return s;
    return -1;
}

/* Warps per stripe of the register GEMV: the most (1 .. 16) that keep a run of >= 2 chunks
 * per warp and the grid within ~kGemvWarpsPerSm warps per SM. FOLIO_W4A16_WARPS overrides. */
int gemv_reg_warps(int stripes, int ktiles) {
    const int forced = forced_warps();
    if (forced == 1 || forced == 2 || forced == 4 || forced == 8 || forced == 16) return forced;
    const int sms = device_sm_count();
    int w = 16;
    while (w > 1 && (ktiles < 2 * kChunk * w || (int64_t)stripes * w > (int64_t)kGemvWarpsPerSm * sms))
        w /= 2;
    return w;
}

template <typename T, bool kPost, int kWarps, int kNT>
void launch_gemv_reg_warps(void *y, const void *x, const w4a16_tiles *m, const void *bias, int n,
                           cudaStream_t stream) {
    launch_pdl(w4a16_gemv_kernel<T, kPost, kWarps, kNT>, dim3(m->stripes), dim3(kWarps * kWarp),
               stream, static_cast<T *>(y), static_cast<const uint16_t *>(x), *m,
               static_cast<const T *>(bias), n, group_shift(m->group_size, m->cols));
    CUDA_CHECK_LAUNCH();
}

/* FOLIO_W4A16_GEMV: "ring" (the cp.async ring through shared memory) or "registers" (loads
 * straight into registers, two chunks deep); unset, kGemvRegistersDefault. */
constexpr bool kGemvRegistersDefault = false;
bool gemv_registers() {
    static const bool reg = [] {
        const char *e = folio_env("FOLIO_W4A16_GEMV");
        if (e && strcmp(e, "registers") == 0) return true;
        if (e && strcmp(e, "ring") == 0) return false;
        if (e && *e)
            fprintf(stderr, "folio: FOLIO_W4A16_GEMV=%s is neither 'registers' nor 'ring': "
                            "ignored\n", e);
        return kGemvRegistersDefault;
    }();
    return reg;
}

template <typename T, bool kPost, int kNT>
void launch_gemv(void *y, const void *x, const w4a16_tiles *m, const void *bias, int n,
                 cudaStream_t stream) {
    if (gemv_registers()) {
        switch (gemv_reg_warps(m->stripes, m->ktiles)) {
        case 1: launch_gemv_reg_warps<T, kPost, 1, kNT>(y, x, m, bias, n, stream); break;
        case 2: launch_gemv_reg_warps<T, kPost, 2, kNT>(y, x, m, bias, n, stream); break;
        case 4: launch_gemv_reg_warps<T, kPost, 4, kNT>(y, x, m, bias, n, stream); break;
        case 8: launch_gemv_reg_warps<T, kPost, 8, kNT>(y, x, m, bias, n, stream); break;
        default: launch_gemv_reg_warps<T, kPost, 16, kNT>(y, x, m, bias, n, stream); break;
        }
        return;
    }
    switch (gemv_warps(m->stripes, m->ktiles)) {
    case 2: launch_gemv_warps<T, kPost, 2, kNT>(y, x, m, bias, n, stream); break;
    case 4: launch_gemv_warps<T, kPost, 4, kNT>(y, x, m, bias, n, stream); break;
    case 8: launch_gemv_warps<T, kPost, 8, kNT>(y, x, m, bias, n, stream); break;
    default: launch_gemv_warps<T, kPost, 16, kNT>(y, x, m, bias, n, stream); break;
    }
}

/* xg[b][c] = x[b][perm[c]] (0 at padding columns), b < n: the act-order gather. */
template <typename T>
__global__ void __launch_bounds__(256)
w4a16_gather_kernel(uint16_t *xg, const uint16_t *x, const int32_t *perm, int n, int cols,
                    int in_cols) {
    const int64_t total = (int64_t)n * cols;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int b = (int)(i / cols), c = (int)(i % cols), in_c = __ldg(perm + c);
        xg[i] = in_c != QL_PAD ? x[(size_t)b * in_cols + in_c] : (uint16_t)0;
    }
}

template <typename T>
void launch_gemv_t(void *y, const void *x, const w4a16_tiles *m, const void *bias, int n,
                   cudaStream_t stream) {
    w4a16_tiles plain = *m;
    if (m->perm) { /* gather x once into the matrix's buffer, then the plain product */
        const int64_t total = (int64_t)n * m->cols;
        const int blocks = (int)((total + 255) / 256 < 4096 ? (total + 255) / 256 : 4096);
        w4a16_gather_kernel<T><<<blocks, 256, 0, stream>>>(
            m->xg, static_cast<const uint16_t *>(x), m->perm, n, m->cols, m->in_cols);
        CUDA_CHECK_LAUNCH();
        x = m->xg;
        plain.perm = NULL;
        plain.in_cols = m->cols;
    }
    const bool post = m->group_size % kTileCols == 0;
    if (n <= 8) {
        if (post) launch_gemv<T, true, 1>(y, x, &plain, bias, n, stream);
        else launch_gemv<T, false, 1>(y, x, &plain, bias, n, stream);
    } else {
        if (post) launch_gemv<T, true, 2>(y, x, &plain, bias, n, stream);
        else launch_gemv<T, false, 2>(y, x, &plain, bias, n, stream);
    }
}

int grid_for(int64_t total) {
    const int64_t want = (total + 255) / 256;
    return (int)(want < (1 << 20) ? want : (1 << 20));
}

/* Padding columns only through perm. */
bool in_cols_ok(int in_cols, int cols, bool perm) {
    return in_cols >= 1 && in_cols <= cols && (perm || in_cols == cols);
}

bool shape_ok(int rows, int cols, int group_size) {
    return rows >= 1 && cols >= 32 && cols % 32 == 0 && group_size >= 32 &&
           group_size % 32 == 0 && cols % group_size == 0;
}

void require_tiles(const w4a16_tiles *m, folio_dtype dtype) {
    CUDA_REQUIRE(dtype == DTYPE_BF16 || dtype == DTYPE_F16, "w4a16: activations bf16 or fp16");
    CUDA_REQUIRE(shape_ok(m->rows, m->cols, m->group_size),
                 "w4a16: rows >= 1, cols a positive multiple of 32, group_size a multiple of "
                 "32 dividing cols");
    CUDA_REQUIRE(m->stripes == (m->rows + kRows - 1) / kRows &&
                     m->ktiles == (m->cols + kTileCols - 1) / kTileCols,
                 "w4a16: tiles not packed by w4a16_pack_cuda");
    CUDA_REQUIRE(aligned16(m->tiles) && aligned16(m->meta), "w4a16: tiles 16-byte aligned");
    CUDA_REQUIRE(in_cols_ok(m->in_cols, m->cols, m->perm != NULL),
                 "w4a16: 1 <= in_cols <= cols, in_cols = cols without perm");
}

} // namespace

extern "C" int w4a16_supported(const quant_matrix *m, folio_dtype dtype) {
    return m->bits == 4 && (dtype == DTYPE_BF16 || dtype == DTYPE_F16) &&
           shape_ok(m->rows, m->cols, m->group_size) &&
           in_cols_ok(m->in_cols, m->cols, m->perm != NULL);
}

extern "C" size_t w4a16_tiles_bytes(const quant_matrix *m) {
    const size_t stripes = (size_t)(m->rows + kRows - 1) / kRows;
    const size_t ktiles = (size_t)(m->cols + kTileCols - 1) / kTileCols;
    const size_t groups = (size_t)(m->cols / m->group_size);
    return align256(stripes * ktiles * kWarp * 16) + align256(stripes * groups * 8 * 8) +
           (m->perm ? align256((size_t)m->cols * sizeof(int32_t)) +
                          align256((size_t)W4A16_GEMV_MAX_N * m->cols * sizeof(uint16_t))
                    : 0);
}

extern "C" void w4a16_pack_cuda(w4a16_tiles *out, void *mem, const quant_matrix *m,
                                cudaStream_t stream) {
    CUDA_REQUIRE(m->bits == 4 && shape_ok(m->rows, m->cols, m->group_size) &&
                     in_cols_ok(m->in_cols, m->cols, m->perm != NULL),
                 "w4a16_pack_cuda: a 4-bit matrix w4a16_supported() takes");
    CUDA_REQUIRE((uintptr_t)mem % 256 == 0, "w4a16_pack_cuda: mem 256-byte aligned");
    w4a16_tiles t;
    t.rows = m->rows, t.cols = m->cols, t.in_cols = m->in_cols, t.group_size = m->group_size;
    t.stripes = (m->rows + kRows - 1) / kRows, t.ktiles = (m->cols + kTileCols - 1) / kTileCols;
    const size_t groups = (size_t)(m->cols / m->group_size);
    const size_t tile_bytes = align256((size_t)t.stripes * t.ktiles * kWarp * 16);
    const size_t meta_bytes = align256((size_t)t.stripes * groups * 8 * 8);
    t.tiles = static_cast<uint32_t *>(mem);
    t.meta = reinterpret_cast<uint32_t *>(static_cast<char *>(mem) + tile_bytes);
    char *rest = static_cast<char *>(mem) + tile_bytes + meta_bytes;
    t.perm = m->perm ? reinterpret_cast<int32_t *>(rest) : NULL;
    t.xg = m->perm ? reinterpret_cast<uint16_t *>(rest + align256((size_t)m->cols * 4)) : NULL;
    const int64_t words = (int64_t)t.stripes * t.ktiles * kWarp * 4;
    w4a16_pack_kernel<<<grid_for(words), 256, 0, stream>>>(t.tiles, *m, t.stripes, t.ktiles);
    CUDA_CHECK_LAUNCH();
    w4a16_pack_meta_kernel<<<grid_for((int64_t)t.stripes * groups * 8), 256, 0, stream>>>(
        t.meta, *m, t.stripes);
    CUDA_CHECK_LAUNCH();
    if (m->perm)
        CUDA_CHECK(cudaMemcpyAsync(t.perm, m->perm, (size_t)m->cols * sizeof(int32_t),
                                   cudaMemcpyDeviceToDevice, stream));
    *out = t;
}

extern "C" void w4a16_gemv_cuda(void *y, const void *x, const w4a16_tiles *m, const void *bias,
                                folio_dtype dtype, int n, cudaStream_t stream) {
    require_tiles(m, dtype);
    CUDA_REQUIRE(n >= 1 && n <= W4A16_GEMV_MAX_N, "w4a16_gemv_cuda: 1 <= n <= 16");
    CUDA_REQUIRE(aligned16(x), "w4a16_gemv_cuda: x 16-byte aligned");
    if (dtype == DTYPE_BF16) launch_gemv_t<__nv_bfloat16>(y, x, m, bias, n, stream);
    else launch_gemv_t<__half>(y, x, m, bias, n, stream);
}

extern "C" void w4a16_dequant_cuda(void *w, const w4a16_tiles *m, folio_dtype dtype,
                                   cudaStream_t stream) {
    require_tiles(m, dtype);
    CUDA_REQUIRE(aligned16(w), "w4a16_dequant_cuda: w 16-byte aligned");
    const int blocks = grid_for((int64_t)m->rows * (m->cols / 8));
    if (dtype == DTYPE_BF16)
        w4a16_dequant_kernel<__nv_bfloat16><<<blocks, 256, 0, stream>>>(static_cast<__nv_bfloat16 *>(w), *m);
    else
        w4a16_dequant_kernel<__half><<<blocks, 256, 0, stream>>>(static_cast<__half *>(w), *m);
    CUDA_CHECK_LAUNCH();
}
