/* FP8 (e4m3) products on the GPU, the parts cuBLASLt does not do: quantizing the activations
 * as the checkpoint's scheme says (per token, per token and 128-column group, or a static
 * scale: engine/base/fp8_layout.h), and the skinny product of decode steps.
 *
 * fp8_quantize_act_cuda: per token one block a row (16-byte loads, the row held in registers
 * between its max and its 8-byte stores), per 128-column group one warp a group (no
 * barriers); the largest magnitude, then e4m3(x / a) with the hardware conversion
 * (cvt.rn.satfinite: round to nearest even, saturating), which is fp8_e4m3_from_float's
 * rounding. a = amax / 448 (1 for a zero row, never below FLT_MIN).
 *
 * fp8_gemv_cuda (n <= FP8_GEMV_MAX_N tokens): a stream over the FP8 weights, one byte a
 * weight. A block owns a few output rows and covers the whole input dimension (up to 512
 * threads): thread j handles 16-byte chunks j, j + blockDim, ... (1, 2 or 4) of every row, so the activations it needs are
 * the same for all its rows and stay in registers (as half: an e4m3 value is exact in half,
 * taken times 2^-8 so that products and sums of 16 cannot overflow). Per chunk: one 16-byte
 * load of weights, 8 conversions e4m3x2 -> half2 (once for all tokens), 8 half2 fused
 * multiply-adds per token; the
 * chunk's sum goes to float at once, so half accumulates 16 products only. Block-scaled
 * weights (and activations per 128-column group) scale each chunk's sum (a chunk never
 * crosses a 128-column block); per-channel weights and per-token activations scale the row's
 * sum at the end. Rows are reduced across the block through shared memory. The grid is
 * persistent (as many blocks as the GPU holds at once): a block takes groups of rows
 * blockIdx.x, + gridDim.x, ... and loads the next group's weights while it multiplies and
 * reduces the current one, so the memory system never waits for a block to end and a new
 * one to start, and no partial last wave idles the GPU (qkv 8B's 768 groups of 8 rows ran at
 * 60% of copy bandwidth as one block a group, 1.2 waves).
 *
 * fp8_gemv_x_cuda: the same GEMV fed the 16-bit activations, quantizing them in its prologue
 * (each block the whole of its n <= 4 rows: a few KB from L2) with fp8_quantize_act_cuda's
 * scale and rounding, bit for bit: a decode step saves one launch and one round trip through
 * memory per FP8 product (128 launches a step for Llama-3-8B).
 * Twins: fp8_act_quant_cpu, fp8_gemm_cpu (kernels/gemm/fp8_cpu.c); check and timing:
 * tests/unit/test_gpu_fp8.c. */
#include <cfloat>

#include <cuda_fp8.h>

#include "cuda_types.cuh"
#include "fp8_convert.cuh"
#include "kernels_cuda.h"

namespace {

using namespace folio;

constexpr int kQuantThreads = 256;
constexpr int kMaxThreads = 512; /* GEMV block; a thread keeps its activations in registers */
constexpr int kRowRegs = 8;      /* 16-byte weight loads in flight per thread (rows x chunks) */

/* Rows of a GEMV row group: kRowRegs 16-byte loads a thread (twice that in flight with the
 * next group's), halved where several tokens and chunks a row would spill registers. */
template <int N, int NCH> __host__ __device__ constexpr int group_rows() {
    return N > 1 && NCH > 1 ? kRowRegs / NCH / 2 : kRowRegs / NCH;
}

/* Largest |x| over [c0, c1) of one row, to every thread of the block. */
template <typename T>
__device__ float row_amax(const T *x, int c0, int c1) {
    float m = 0.f;
    for (int c = c0 + threadIdx.x; c < c1; c += blockDim.x) m = fmaxf(m, fabsf(to_f32(x[c])));
    return block_max(m);
}

/* Per token (or a static scale): one block a row; xs[t]. */
template <typename T>
__global__ void __launch_bounds__(kQuantThreads)
quantize_token_kernel(uint8_t *xq, float *xs, const T *x, int k, int act, float input_scale) {
    const int t = blockIdx.x;
    const T *row = x + (size_t)t * k;
    uint8_t *out = xq + (size_t)t * k;
    float a = input_scale;
    if (act == FP8_ACT_TOKEN) a = act_scale(row_amax(row, 0, k));
    for (int c = threadIdx.x; c < k; c += blockDim.x) out[c] = to_e4m3(to_f32(row[c]) / a);
    if (threadIdx.x == 0) xs[t] = a;
}

/* The same with 16-byte loads, for 16-bit x with k % 8 == 0 and 16-byte aligned rows (every
 * call of a forward): one block of kTokenThreads a row, the first kHeldPacks packs of each
 * thread kept in registers between the max and the stores (rows up to 16,384 wide; wider
 * ones re-read the rest), 8 bytes stored at a time. The one-block-a-row scalar kernel above
 * took 25-30 us for 8 rows of 14,336 (8 blocks on 132 SMs, byte loads and stores); this one
 * is a few microseconds at any n. Launched with launch_pdl (x is the previous kernel's). */
constexpr int kTokenThreads = 512;
constexpr int kHeldPacks = 4;

template <typename T>
__global__ void __launch_bounds__(kTokenThreads)
quantize_token_vec_kernel(uint8_t *xq, float *xs, const T *x, int k, int act,
                          float input_scale) {
    constexpr int VEC = 8;
    using P = Pack<T, VEC>;
    pdl_wait();
    pdl_launch_dependents();
    const size_t t = blockIdx.x;
    const P *row = reinterpret_cast<const P *>(x + t * k);
    const int packs = k / VEC;
    P held[kHeldPacks];
    float m = 0.f;
#pragma unroll
    for (int i = 0; i < kHeldPacks; i++) {
        const int p = threadIdx.x + i * blockDim.x;
        if (p < packs) {
            held[i] = row[p];
            m = fmaxf(m, pack_amax<T, VEC>(held[i]));
        }
    }
    for (int p = threadIdx.x + kHeldPacks * blockDim.x; p < packs; p += blockDim.x)
        m = fmaxf(m, pack_amax<T, VEC>(row[p]));
    const float a = act == FP8_ACT_TOKEN ? act_scale(block_max(m)) : input_scale;
    uint8_t *out = xq + t * k;
#pragma unroll
    for (int i = 0; i < kHeldPacks; i++) {
        const int p = threadIdx.x + i * blockDim.x;
        if (p < packs) store_e4m3_pack<T, VEC>(out + (size_t)p * VEC, held[i], a);
    }
    for (int p = threadIdx.x + kHeldPacks * blockDim.x; p < packs; p += blockDim.x)
        store_e4m3_pack<T, VEC>(out + (size_t)p * VEC, row[p], a);
    if (threadIdx.x == 0) xs[t] = a;
}

/* Per token and 128-column group: one warp a group (4 values a lane), no barriers;
 * xs[g * n + t] (the token index runs fastest: cuBLASLt's VEC128 layout). */
template <typename T>
__global__ void __launch_bounds__(kQuantThreads)
quantize_group_kernel(uint8_t *xq, float *xs, const T *x, int n, int k) {
    const int t = blockIdx.x, lane = threadIdx.x % kWarp;
    const int g = blockIdx.y * (kQuantThreads / kWarp) + threadIdx.x / kWarp;
    const int c0 = g * FP8_ACT_GROUP_SIZE;
    if (c0 >= k) return;
    const T *row = x + (size_t)t * k;
    float v[FP8_ACT_GROUP_SIZE / kWarp];
    float m = 0.f;
#pragma unroll
    for (int i = 0; i < FP8_ACT_GROUP_SIZE / kWarp; i++) {
        const int c = c0 + i * kWarp + lane;
        v[i] = c < k ? to_f32(row[c]) : 0.f;
        m = fmaxf(m, fabsf(v[i]));
    }
    const float a = act_scale(warp_max(m));
#pragma unroll
    for (int i = 0; i < FP8_ACT_GROUP_SIZE / kWarp; i++) {
        const int c = c0 + i * kWarp + lane;
        if (c < k) xq[(size_t)t * k + c] = to_e4m3(v[i] / a);
    }
    if (lane == 0) xs[(size_t)g * n + t] = a;
}

/* Two e4m3 values (the low 16 bits of v) as half2, exact. */
__device__ __forceinline__ __half2 e4m3x2_to_half2(uint32_t v) {
    const __half2_raw r = __nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)(v & 0xffffu), __NV_E4M3);
    return *reinterpret_cast<const __half2 *>(&r);
}

/* 16 activation values (one chunk) as 8 half2, times 2^-8 (exact). */
__device__ __forceinline__ void load_x_chunk(__half2 *h, const uint8_t *xrow, int c) {
    const uint4 v = *reinterpret_cast<const uint4 *>(xrow + c);
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
    const __half2 s = __float2half2_rn(1.0f / 256.0f);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        h[2 * i] = __hmul2(e4m3x2_to_half2(w[i]), s);
        h[2 * i + 1] = __hmul2(e4m3x2_to_half2(w[i] >> 16), s);
    }
}

/* A chunk's 16 weights as 8 half2 (exact), converted once for all the tokens. */
__device__ __forceinline__ void widen_chunk(__half2 (&wh)[8], const uint4 &wv) {
    const uint32_t w[4] = {wv.x, wv.y, wv.z, wv.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        wh[2 * i] = e4m3x2_to_half2(w[i]);
        wh[2 * i + 1] = e4m3x2_to_half2(w[i] >> 16);
    }
}

/* Sum over one chunk of w . x (w as widen_chunk gives it, x as load_x_chunk loads it), in
 * float, times 2^8. */
__device__ __forceinline__ float dot_chunk(const __half2 (&wh)[8], const __half2 *xh) {
    __half2 acc = __float2half2_rn(0.f);
#pragma unroll
    for (int i = 0; i < 8; i++) acc = __hfma2(wh[i], xh[i], acc);
    const float2 f = __half22float2(acc);
    return (f.x + f.y) * 256.0f;
}

/* The same from the raw chunk (converted for this token alone: fewer registers). */
__device__ __forceinline__ float dot_chunk(const uint4 &wv, const __half2 *xh) {
    __half2 wh[8];
    widen_chunk(wh, wv);
    return dot_chunk(wh, xh);
}

/* 16 values of x at p (16-byte aligned) as float. */
template <typename T> __device__ __forceinline__ void load16(float (&v)[16], const T *p) {
    constexpr int VEC = 16 / (int)sizeof(T);
#pragma unroll
    for (int h = 0; h < 16 / VEC; h++) {
        const Pack<T, VEC> pk = *reinterpret_cast<const Pack<T, VEC> *>(p + h * VEC);
#pragma unroll
        for (int i = 0; i < VEC; i++) v[h * VEC + i] = to_f32(pk.v[i]);
    }
}

/* The fused GEMV's prologue: token t's 16 values of each chunk this thread owns, quantized
 * as quantize_token_kernel / quantize_group_kernel do (same scale a, same e4m3(v / a)) into
 * the registers load_x_chunk fills; xsc[t][j] = the chunk's group scale (act GROUP, else 1)
 * and s_tok[t] = the token's scale (TOKEN, STATIC). Every thread of the block must call it
 * (a block max for TOKEN: a first pass over x; 8-lane shuffles for GROUP: a 128-column group
 * is the chunks of 8 neighbouring threads, blockDim being a multiple of 32). x is re-read
 * from L1/L2 rather than held (16 * N * NCH floats would spill). */
template <typename T, int N, int NCH>
__device__ void quantize_x_regs(__half2 (&xh)[N][NCH][8], float (&xsc)[N][NCH], float *s_tok,
                                const T *x, int k, int act, float input_scale,
                                const bool (&have)[NCH]) {
    __shared__ float part[N][kMaxThreads / kWarp];
    float a_tok[N];
#pragma unroll
    for (int t = 0; t < N; t++) a_tok[t] = input_scale;
    if (act == FP8_ACT_TOKEN) {
        const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
#pragma unroll
        for (int t = 0; t < N; t++) {
            float m = 0.f;
#pragma unroll
            for (int j = 0; j < NCH; j++) {
                if (!have[j]) continue;
                float v[16];
                load16(v, x + (size_t)t * k + (threadIdx.x + j * blockDim.x) * 16);
#pragma unroll
                for (int i = 0; i < 16; i++) m = fmaxf(m, fabsf(v[i]));
            }
            m = warp_max(m);
            if (lane == 0) part[t][warp] = m;
        }
        __syncthreads();
#pragma unroll
        for (int t = 0; t < N; t++) {
            float r = 0.f;
            for (int w = 0; w < (int)(blockDim.x / kWarp); w++) r = fmaxf(r, part[t][w]);
            a_tok[t] = act_scale(r);
        }
    }
    if (threadIdx.x < N) s_tok[threadIdx.x] = a_tok[threadIdx.x];
    const __half2 s8 = __float2half2_rn(1.0f / 256.0f);
#pragma unroll
    for (int t = 0; t < N; t++)
#pragma unroll
        for (int j = 0; j < NCH; j++) {
            float v[16];
            if (have[j]) {
                load16(v, x + (size_t)t * k + (threadIdx.x + j * blockDim.x) * 16);
            } else {
#pragma unroll
                for (int i = 0; i < 16; i++) v[i] = 0.f;
            }
            float a = a_tok[t];
            xsc[t][j] = 1.f;
            if (act == FP8_ACT_GROUP) { /* uniform: every lane shuffles */
                float g = 0.f;
#pragma unroll
                for (int i = 0; i < 16; i++) g = fmaxf(g, fabsf(v[i]));
                g = fmaxf(g, __shfl_xor_sync(0xffffffffu, g, 1));
                g = fmaxf(g, __shfl_xor_sync(0xffffffffu, g, 2));
                g = fmaxf(g, __shfl_xor_sync(0xffffffffu, g, 4));
                a = act_scale(g);
                xsc[t][j] = a;
            }
#pragma unroll
            for (int i = 0; i < 8; i++) {
                const uint32_t two = (uint32_t)to_e4m3(v[2 * i] / a) |
                                     (uint32_t)to_e4m3(v[2 * i + 1] / a) << 8;
                xh[t][j][i] = __hmul2(e4m3x2_to_half2(two), s8);
            }
        }
}

/* This thread's 16-byte chunks of rows r0 .. r0 + R - 1 (clamped to the last row), streamed
 * past the caches. */
template <int R, int NCH>
__device__ __forceinline__ void load_rows(uint4 (&wv)[R][NCH], const uint8_t *w, int r0,
                                          int rows, int k, const bool (&have)[NCH]) {
#pragma unroll
    for (int r = 0; r < R; r++) {
        const int row = min(r0 + r, rows - 1);
#pragma unroll
        for (int j = 0; j < NCH; j++)
            if (have[j])
                wv[r][j] = __ldcs(reinterpret_cast<const uint4 *>(w + (size_t)row * k) +
                                  threadIdx.x + j * blockDim.x);
    }
}

/* Up to `bytes` of the weights of this block's row groups after its first (first, second,
 * ...), asked of L2 (prefetch_l2, one request a group; thread 0). */
template <int R>
__device__ void prefetch_groups(const uint8_t *w, int rows, int k, int n_groups,
                                uint32_t bytes) {
    for (int grp = blockIdx.x + gridDim.x; grp < n_groups && bytes >= 16; grp += gridDim.x) {
        const int r0 = grp * R, nr = min(R, rows - r0);
        uint32_t b = (uint32_t)nr * (uint32_t)k; /* rows are k bytes, k % 16 == 0 */
        if (b > bytes) b = bytes & ~15u;
        prefetch_l2(w + (size_t)r0 * k, b);
        bytes -= b;
    }
}

/* FUSED: x is T [N][k], quantized by quantize_x_regs (xq, xs unused); else xq, xs are
 * fp8_quantize_act_cuda's. Launched with launch_pdl: the first row group's weights (constants)
 * are loaded before pdl_wait(), while the kernel that writes x is still finishing, and L2 is
 * asked for up to prefetch bytes of the next groups' (FOLIO_L2_PREFETCH_MB: at batch 1 the
 * norm, RoPE and attention kernels before a product leave the memory system idle). */
template <typename T, int N, int NCH, bool BLOCK, bool FUSED>
__global__ void __launch_bounds__(kMaxThreads, 1)
fp8_gemv_kernel(T *y, const uint8_t *xq, const float *xs, const T *x, int act, float input_scale,
                const uint8_t *w, const float *ws, const T *bias, int rows, int k,
                int block_rows, uint32_t prefetch) {
    constexpr int R = group_rows<N, NCH>(); /* rows per group: NCH * R loads per thread */
    const int chunks = k / 16;
    const int n_groups = (rows + R - 1) / R;
    __half2 xh[N][NCH][8];
    float xsc[N][NCH];
    bool have[NCH];
    __shared__ float s_tok[N]; /* FUSED: the tokens' scales (TOKEN, STATIC) */
#pragma unroll
    for (int j = 0; j < NCH; j++) have[j] = threadIdx.x + j * blockDim.x < chunks;
    uint4 wv[R][NCH], wn[R][NCH];
    if (blockIdx.x < n_groups) load_rows<R, NCH>(wv, w, blockIdx.x * R, rows, k, have);
    if (prefetch && threadIdx.x == 0) prefetch_groups<R>(w, rows, k, n_groups, prefetch);
    pdl_wait();
    pdl_launch_dependents();
    if constexpr (FUSED) {
        quantize_x_regs<T, N, NCH>(xh, xsc, s_tok, x, k, act, input_scale, have);
    } else {
#pragma unroll
        for (int j = 0; j < NCH; j++) {
            const int ch = threadIdx.x + j * blockDim.x;
#pragma unroll
            for (int t = 0; t < N; t++) {
                if (have[j]) load_x_chunk(xh[t][j], xq + (size_t)t * k, ch * 16);
                xsc[t][j] = BLOCK && have[j]
                                ? xs[(size_t)(ch * 16 / FP8_ACT_GROUP_SIZE) * N + t]
                                : 1.f;
            }
        }
    }
    /* persistent: the block takes row groups blockIdx.x, + gridDim.x, ...; the next group's
     * weights are loaded while this one's are multiplied and reduced */
    __shared__ float part[2][R * N][kMaxThreads / kWarp]; /* by iteration parity */
    const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
    const int n_warps = blockDim.x / kWarp;
    int parity = 0;
    for (int grp = blockIdx.x; grp < n_groups; grp += gridDim.x, parity ^= 1) {
        const int r0 = grp * R;
        if (grp + (int)gridDim.x < n_groups)
            load_rows<R, NCH>(wn, w, (grp + gridDim.x) * R, rows, k, have);
        float acc[R][N];
#pragma unroll
        for (int r = 0; r < R; r++) {
#pragma unroll
            for (int t = 0; t < N; t++) acc[r][t] = 0.f;
            const int row = min(r0 + r, rows - 1);
#pragma unroll
            for (int j = 0; j < NCH; j++) {
                if (!have[j]) continue;
                float wsc = 1.f;
                if (BLOCK) {
                    const int c = (threadIdx.x + j * blockDim.x) * 16;
                    wsc = ws[(size_t)(row / block_rows) * fp8_block_scale_ld(k) +
                             c / FP8_ACT_GROUP_SIZE];
                }
                /* the weights converted once for all tokens, except where the registers
                 * are short (4 chunks a row: 2 tokens at most) */
                __half2 wh[8];
                if constexpr (NCH < 4) widen_chunk(wh, wv[r][j]);
#pragma unroll
                for (int t = 0; t < N; t++) {
                    float d;
                    if constexpr (NCH < 4) d = dot_chunk(wh, xh[t][j]);
                    else d = dot_chunk(wv[r][j], xh[t][j]);
                    acc[r][t] = BLOCK ? fmaf(d, wsc * xsc[t][j], acc[r][t]) : acc[r][t] + d;
                }
            }
        }
        /* reduce every (row, token) over the block; part[parity]'s readers of two groups
         * ago passed the barrier of the last one */
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int t = 0; t < N; t++) {
                const float v = warp_sum(acc[r][t]);
                if (lane == 0) part[parity][r * N + t][warp] = v;
            }
        __syncthreads();
        if (threadIdx.x < R * N) {
            const int r = threadIdx.x / N, t = threadIdx.x % N, row = r0 + r;
            if (row < rows) {
                float v = 0.f;
                for (int i = 0; i < n_warps; i++) v += part[parity][threadIdx.x][i];
                if (!BLOCK) v *= ws[row] * (FUSED ? s_tok[t] : xs[t]);
                if (bias) v += to_f32(bias[row]);
                y[(size_t)t * rows + row] = from_f32<T>(v);
            }
        }
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int j = 0; j < NCH; j++) wv[r][j] = wn[r][j];
    }
}

/* Threads of a block for k columns, and the chunks each takes per row. */
void gemv_shape(int k, int *threads, int *nch) {
    const int chunks = k / 16;
    *nch = chunks <= kMaxThreads ? 1 : chunks <= 2 * kMaxThreads ? 2 : 4;
    int t = (chunks + *nch - 1) / *nch;
    *threads = (t + kWarp - 1) / kWarp * kWarp;
}

/* The GEMV's activations: quantized ones (xq, xs) or, fused, the 16-bit x. */
struct GemvIn {
    const uint8_t *xq;
    const float *xs;
    const void *x; /* non-NULL: the fused kernel */
};

/* Blocks of `threads` threads of this GEMV that the GPU holds at once (the persistent grid),
 * computed once per block size. */
template <typename T, int N, int NCH, bool FUSED>
int resident_blocks(bool block, int threads) {
    static int cache[2][kMaxThreads / kWarp + 1];
    int &c = cache[block][threads / kWarp];
    if (c == 0) {
        int per_sm = 0;
        if (block)
            CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
                &per_sm, fp8_gemv_kernel<T, N, NCH, true, FUSED>, threads, 0));
        else
            CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
                &per_sm, fp8_gemv_kernel<T, N, NCH, false, FUSED>, threads, 0));
        c = (per_sm > 0 ? per_sm : 1) * device_sm_count();
    }
    return c;
}

template <typename T, int N, int NCH, bool FUSED>
void launch_gemv_f(void *y, const GemvIn &in, const fp8_matrix *m, const void *bias,
                   int threads, cudaStream_t s) {
    constexpr int R = group_rows<N, NCH>();
    const int groups = (m->rows + R - 1) / R;
    const int grid = groups < resident_blocks<T, N, NCH, FUSED>(m->kind == FP8_W_BLOCK, threads)
                         ? groups
                         : resident_blocks<T, N, NCH, FUSED>(m->kind == FP8_W_BLOCK, threads);
    const size_t pf = l2_prefetch_bytes() / (size_t)grid;
    const uint32_t prefetch = (uint32_t)(pf < (1u << 30) ? pf : (1u << 30));
    if (m->kind == FP8_W_BLOCK)
        launch_pdl(fp8_gemv_kernel<T, N, NCH, true, FUSED>, dim3(grid), dim3(threads), s,
                   (T *)y, in.xq, in.xs, (const T *)in.x, (int)m->act, m->input_scale, m->w,
                   m->scale, (const T *)bias, m->rows, m->cols, m->block_rows, prefetch);
    else
        launch_pdl(fp8_gemv_kernel<T, N, NCH, false, FUSED>, dim3(grid), dim3(threads), s,
                   (T *)y, in.xq, in.xs, (const T *)in.x, (int)m->act, m->input_scale, m->w,
                   m->scale, (const T *)bias, m->rows, m->cols, m->block_rows, prefetch);
}

template <typename T, int N, int NCH>
void launch_gemv(void *y, const GemvIn &in, const fp8_matrix *m, const void *bias, int threads,
                 cudaStream_t s) {
    if (in.x) launch_gemv_f<T, N, NCH, true>(y, in, m, bias, threads, s);
    else launch_gemv_f<T, N, NCH, false>(y, in, m, bias, threads, s);
}

/* n tokens (1..4; with 4 chunks a row, 1..2: fp8_gemv_supported keeps it so). */
template <typename T, int NCH>
void gemv_nch(void *y, const GemvIn &in, const fp8_matrix *m, const void *bias, int n,
              int threads, cudaStream_t s) {
    if (n == 1) return launch_gemv<T, 1, NCH>(y, in, m, bias, threads, s);
    if (n == 2) return launch_gemv<T, 2, NCH>(y, in, m, bias, threads, s);
    if constexpr (NCH <= 2) {
        if (n == 3) return launch_gemv<T, 3, NCH>(y, in, m, bias, threads, s);
        if (n == 4) return launch_gemv<T, 4, NCH>(y, in, m, bias, threads, s);
    }
    fprintf(stderr, "fp8_gemv_cuda: %d tokens with %d chunks a row: not supported\n", n, NCH);
    abort();
}

template <typename T>
void gemv_n(void *y, const GemvIn &in, const fp8_matrix *m, const void *bias, int n,
            cudaStream_t s) {
    int threads, nch;
    gemv_shape(m->cols, &threads, &nch);
    if (nch == 1) gemv_nch<T, 1>(y, in, m, bias, n, threads, s);
    else if (nch == 2) gemv_nch<T, 2>(y, in, m, bias, n, threads, s);
    else gemv_nch<T, 4>(y, in, m, bias, n, threads, s);
}

void gemv_dispatch(void *y, const GemvIn &in, const fp8_matrix *m, const void *bias,
                   folio_dtype dtype, int n, cudaStream_t stream) {
    if (!fp8_gemv_supported(m, dtype, n) || ((uintptr_t)in.xq & 15) != 0 ||
        ((uintptr_t)in.x & 15) != 0) {
        fprintf(stderr, "fp8_gemv_cuda: unsupported call (n=%d, %d x %d, kind %d, act %d, dtype %d)\n",
                n, m->rows, m->cols, (int)m->kind, (int)m->act, (int)dtype);
        abort();
    }
    if (dtype == DTYPE_BF16) gemv_n<__nv_bfloat16>(y, in, m, bias, n, stream);
    else gemv_n<__half>(y, in, m, bias, n, stream);
    CUDA_CHECK(cudaGetLastError());
}

template <typename T>
void quantize(uint8_t *xq, float *xs, const void *x, int n, int k, fp8_act act,
              float input_scale, cudaStream_t stream) {
    if (act == FP8_ACT_GROUP) {
        const int groups = (k + FP8_ACT_GROUP_SIZE - 1) / FP8_ACT_GROUP_SIZE;
        const dim3 grid(n, (groups + kQuantThreads / kWarp - 1) / (kQuantThreads / kWarp));
        quantize_group_kernel<T><<<grid, kQuantThreads, 0, stream>>>(xq, xs, (const T *)x, n, k);
        return;
    }
    if constexpr (sizeof(T) == 2) {
        if (k % 8 == 0 && aligned16(x) && aligned16(xq)) {
            int threads = (k / 8 + kHeldPacks - 1) / kHeldPacks;
            threads = (threads + kWarp - 1) / kWarp * kWarp;
            if (threads > kTokenThreads) threads = kTokenThreads;
            launch_pdl(quantize_token_vec_kernel<T>, dim3(n), dim3(threads), stream, xq, xs,
                       (const T *)x, k, (int)act, input_scale);
            return;
        }
    }
    quantize_token_kernel<T><<<n, kQuantThreads, 0, stream>>>(xq, xs, (const T *)x, k, (int)act,
                                                              input_scale);
}

/* y[t][r] = y[t][r] * ws[r] * xs[t] (+ bias[r]), rounded once. VEC = 8: a thread's 8
 * neighbouring elements of one token through 16-byte loads and stores (rows % 8 == 0, y and
 * bias 16-byte aligned: every model's products), VEC = 1 otherwise. Grid (ceil(rows / (256 *
 * VEC)), n). Launched with launch_pdl: y is the GEMM's output. */
template <typename T, int VEC>
__global__ void __launch_bounds__(256)
rescale_rows_kernel(T *y, const float *ws, const float *xs, const T *bias, int rows) {
    using P = Pack<T, VEC>;
    pdl_wait();
    pdl_launch_dependents();
    const int t = blockIdx.y, r = (blockIdx.x * 256 + threadIdx.x) * VEC;
    if (r >= rows) return;
    P *p = reinterpret_cast<P *>(y + (size_t)t * rows + r);
    P v = *p, b;
    if (bias) b = *reinterpret_cast<const P *>(bias + r);
    const float a = xs[t];
#pragma unroll
    for (int j = 0; j < VEC; j++) {
        float f = to_f32(v.v[j]) * ws[r + j] * a;
        if (bias) f += to_f32(b.v[j]);
        v.v[j] = from_f32<T>(f);
    }
    *p = v;
}

/* Tokens go in chunks of at most 65,535 (the grid's y limit). */
template <typename T>
void rescale(void *y, const float *ws, const float *xs, const void *bias, int n, int rows,
             cudaStream_t stream) {
    const T *bt = static_cast<const T *>(bias);
    const bool vec = rows % 8 == 0 && aligned16(y) && (!bias || aligned16(bias));
    for (int t0 = 0; t0 < n; t0 += 65535) {
        T *yt = static_cast<T *>(y) + (size_t)t0 * rows;
        const unsigned nt = (unsigned)(n - t0 < 65535 ? n - t0 : 65535);
        if (vec)
            launch_pdl(rescale_rows_kernel<T, 8>, dim3((unsigned)((rows / 8 + 255) / 256), nt),
                       dim3(256), stream, yt, ws, xs + t0, bt, rows);
        else
            launch_pdl(rescale_rows_kernel<T, 1>, dim3((unsigned)((rows + 255) / 256), nt),
                       dim3(256), stream, yt, ws, xs + t0, bt, rows);
    }
}

} // namespace

extern "C" void fp8_rescale_rows_cuda(void *y, const float *ws, const float *xs,
                                      const void *bias, int n, int rows, folio_dtype dtype,
                                      cudaStream_t stream) {
    if (n <= 0) return;
    if (dtype == DTYPE_BF16) rescale<__nv_bfloat16>(y, ws, xs, bias, n, rows, stream);
    else rescale<__half>(y, ws, xs, bias, n, rows, stream);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void fp8_quantize_act_cuda(uint8_t *xq, float *xs, const void *x, folio_dtype dtype,
                                      int n, int k, fp8_act act, float input_scale,
                                      cudaStream_t stream) {
    if (n <= 0) return;
    switch (dtype) {
    case DTYPE_BF16: quantize<__nv_bfloat16>(xq, xs, x, n, k, act, input_scale, stream); break;
    case DTYPE_F16: quantize<__half>(xq, xs, x, n, k, act, input_scale, stream); break;
    default: quantize<float>(xq, xs, x, n, k, act, input_scale, stream); break;
    }
    CUDA_CHECK(cudaGetLastError());
}

extern "C" int fp8_gemv_supported(const fp8_matrix *m, folio_dtype dtype, int n) {
    if (n < 1 || n > FP8_GEMV_MAX_N || m->cols % 16 != 0) return 0;
    if (dtype != DTYPE_BF16 && dtype != DTYPE_F16) return 0;
    int threads, nch;
    gemv_shape(m->cols, &threads, &nch);
    if (m->cols / 16 > 4 * kMaxThreads || n * nch > 8) return 0; /* registers */
    if (m->kind == FP8_W_BLOCK)
        return m->block_cols == FP8_ACT_GROUP_SIZE && m->act == FP8_ACT_GROUP;
    /* per-tensor weight scales are expanded per channel at load */
    return m->kind == FP8_W_CHANNEL && m->act != FP8_ACT_GROUP;
}

extern "C" int fp8_gemv_max_tokens(const fp8_matrix *m, folio_dtype dtype) {
    for (int n = FP8_GEMV_MAX_N; n >= 1; n--)
        if (fp8_gemv_supported(m, dtype, n)) return n;
    return 0;
}

extern "C" void fp8_gemv_cuda(void *y, const uint8_t *xq, const float *xs, const fp8_matrix *m,
                              const void *bias, folio_dtype dtype, int n, cudaStream_t stream) {
    gemv_dispatch(y, GemvIn{xq, xs, NULL}, m, bias, dtype, n, stream);
}

extern "C" void fp8_gemv_x_cuda(void *y, const void *x, const fp8_matrix *m, const void *bias,
                                folio_dtype dtype, int n, cudaStream_t stream) {
    gemv_dispatch(y, GemvIn{NULL, NULL, x}, m, bias, dtype, n, stream);
}
