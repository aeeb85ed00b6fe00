/* W4A16 products over Folio's quantized layout (engine/base/quant_layout.h): y[n][rows] =
 * x[n][in_cols] @ W^T (+ bias), W[r][perm ? perm[c] : c] = (q - z) * s (a padding column,
 * perm QL_PAD, gathers x = 0), 16-bit activations, float accumulation.
 *
 * Decode (n = 1..8): w4a16_gemv_kernel. A block of 8 warps owns 16 rows (one m16 tile) and
 * splits the columns between its warps in slots of 128 columns. In a slot, lane (g = lane/4,
 * t = lane%4) loads 16 bytes (32 columns) of row g and 16 bytes of row g+8 (coalesced: every
 * byte of the 64-byte runs is used), four slots per warp per round, so eight 16-byte loads
 * are in flight before the first is used; the scale and zero of the slot's group come with
 * them. Meanwhile the block stages x (gathered through perm) for the round's 4096 columns in
 * shared memory. Dequantization is the magic-number trick: (word >> 4i) & 0x000F000F |
 * magic gives two 16-bit floats 128 + q (bf16) or 1024 + q (fp16), one packed subtraction of
 * magic + z gives q - z exactly; those exact integers and x go through mma.m16n8k16 (rows x
 * batch, the batch padded to 8), whose float tile is scaled by the group's scale in float per
 * slot. So the weight costs ~1.5 integer/half2 instructions per element and the products run
 * on the tensor cores: the kernel is bound by the 4-bit bytes, not by instructions. The
 * warps' tiles are summed in shared memory in a fixed order (deterministic).
 *
 * Larger batches (interim, until a tensor-core mixed-input GEMM exists): w4a16_dequant_kernel
 * writes W in 16 bits, input-column order, for the cuBLASLt GEMM (w4a16_gemm.c).
 *
 * bits = 4 only (8-bit matrices have the CPU twin, w4a16_cpu, and are refused here).
 * Twin: w4a16_cpu; check and timing: tests/unit/test_gpu_w4a16.c. */
#include "cuda_types.cuh"
#include "kernels_cuda.h"
#include "quant_layout.h"

namespace {

using namespace folio;

constexpr int kWarps = 8;                            /* warps per block, splitting the columns */
constexpr int kThreads = kWarps * kWarp;
constexpr int kRows = 16;                            /* rows per block: one m16 tile */
constexpr int kSlotCols = 128;                       /* 4 lanes x 32 columns (16 bytes) */
constexpr int kUnroll = 4;                           /* slots per warp per round */
constexpr int kChunk = kWarps * kUnroll * kSlotCols; /* columns of x staged per round */
constexpr int kChunkPacks = kChunk / 8;              /* 16-byte packs per batch row */
constexpr int kStride = kChunkPacks + 1;             /* +1: odd batch rows use other banks */

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

/* q - z of kernel columns 8j+2i and 8j+2i+1 of word q, as two exact 16-bit floats;
 * mz = (M + z) in both halves. */
template <typename T>
__device__ __forceinline__ uint32_t dequant_pair(uint32_t q, int i, uint32_t mz) {
    const uint32_t m2 = Magic<T>::kHalf * 0x00010001u;
    return sub_x2<T>(((q >> (4 * i)) & 0x000F000Fu) | m2, mz);
}

/* The mma's A operand for pair i of word q: q - z exactly (kPost: the scale is applied to
 * the float tile after the mma), else (q - z) * s rounded to T (s2: s in both halves). */
template <typename T, bool kPost>
__device__ __forceinline__ uint32_t weight_pair(uint32_t q, int i, uint32_t mz, uint32_t s2) {
    const uint32_t d = dequant_pair<T>(q, i, mz);
    return kPost ? d : mul_x2<T>(d, s2);
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

/* Shared-memory position of pack p (8 elements) of a staged x row: bit 1 flipped where bit
 * 3 is set, so the four lanes t of one g read four different bank quads. */
__device__ __forceinline__ int swz(int p) { return p ^ ((p >> 2) & 2); }

__device__ __forceinline__ float half_bits_f32(uint16_t h) { return __half2float(__ushort_as_half(h)); }

/* xs[b][swz(p)] = packs of x[b] ([n][in_cols]) at kernel columns c0 + 8p .., gathered
 * through perm, zeros past cols and at padding columns (perm QL_PAD). Without perm in_cols =
 * cols. Every thread of the block calls it. */
__device__ __forceinline__ void stage_x(uint4 *xs, const uint16_t *x, const int32_t *perm,
                                        int n, int cols, int in_cols, int c0) {
    if (!perm) {
        for (int i = threadIdx.x; i < n * kChunkPacks; i += kThreads) {
            const int b = i / kChunkPacks, p = i % kChunkPacks, c = c0 + 8 * p;
            uint4 v = make_uint4(0, 0, 0, 0);
            if (c < cols) v = *reinterpret_cast<const uint4 *>(x + (size_t)b * cols + c);
            xs[b * kStride + swz(p)] = v;
        }
        return;
    }
    uint16_t *xe = reinterpret_cast<uint16_t *>(xs);
    for (int i = threadIdx.x; i < n * kChunk; i += kThreads) {
        const int b = i / kChunk, k = i % kChunk, c = c0 + k;
        const int in_c = c < cols ? __ldg(perm + c) : QL_PAD;
        const uint16_t v = in_c != QL_PAD ? x[(size_t)b * in_cols + in_c] : (uint16_t)0;
        xe[(b * kStride + swz(k / 8)) * 8 + k % 8] = v;
    }
}

/* One round's weights of this lane: rows g and g+8 (a, b) of kUnroll slots, with the scale
 * and M + z of each slot's group. Columns past cols (and whole slots past the row) read as
 * q = z, scale 0. */
struct Slots {
    uint4 wa[kUnroll], wb[kUnroll];
    float sa[kUnroll], sb[kUnroll];
    uint32_t za[kUnroll], zb[kUnroll];
};

template <typename T>
__device__ __forceinline__ void load_slots(Slots &s, const uint32_t *qa, const uint32_t *qb,
                                           const uint16_t *sca, const uint16_t *scb,
                                           const uint8_t *zra, const uint8_t *zrb, int slot0,
                                           int warp, int t, int cols, int group_size) {
    const uint32_t m2 = Magic<T>::kHalf * 0x00010001u;
#pragma unroll
    for (int u = 0; u < kUnroll; u++) {
        const int col = (slot0 + u * kWarps + warp) * kSlotCols + 32 * t;
        if (col < cols) {
            s.wa[u] = __ldcs(reinterpret_cast<const uint4 *>(qa + col / 8));
            s.wb[u] = __ldcs(reinterpret_cast<const uint4 *>(qb + col / 8));
            const int grp = col / group_size;
            s.sa[u] = half_bits_f32(__ldg(sca + grp));
            s.sb[u] = half_bits_f32(__ldg(scb + grp));
            s.za[u] = (Magic<T>::kHalf + __ldg(zra + grp)) * 0x00010001u;
            s.zb[u] = (Magic<T>::kHalf + __ldg(zrb + grp)) * 0x00010001u;
        } else {
            s.wa[u] = s.wb[u] = make_uint4(0, 0, 0, 0);
            s.sa[u] = s.sb[u] = 0.0f;
            s.za[u] = s.zb[u] = m2;
        }
    }
}

__device__ __forceinline__ uint32_t word(const uint4 &v, int j) {
    return j == 0 ? v.x : j == 1 ? v.y : j == 2 ? v.z : v.w;
}

/* acc (rows g, g+8 x batch 2t, 2t+1) += this lane's slot u: 8 mma over its 32 columns of
 * rows g and g+8 against x[g] (zeros for g >= n). The k of one mma spans the 4 lanes t, so
 * the scale may come after the mma only when the slot's 128 columns share one group (kPost:
 * group_size % 128 == 0, the exact path); smaller groups scale the A operand in T.
 * Warp-uniform call. */
template <typename T, bool kPost>
__device__ __forceinline__ void slot_product(float *acc, const Slots &s, int u,
                                             const uint4 *xs, int p0, int g, int n) {
    uint4 xv[4];
#pragma unroll
    for (int k = 0; k < 4; k++)
        xv[k] = g < n ? xs[g * kStride + swz(p0 + k)] : make_uint4(0, 0, 0, 0);
    const uint32_t sa2 = kPost ? 0u : splat_x2<T>(s.sa[u]);
    const uint32_t sb2 = kPost ? 0u : splat_x2<T>(s.sb[u]);
    const uint32_t za = s.za[u], zb = s.zb[u];
    float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const uint32_t qa = word(s.wa[u], j), qb = word(s.wb[u], j);
        /* k-lo of the mma = columns 8j+4h, +1 (pair 2h); k-hi = 8j+4h+2, +3 (pair 2h+1) */
        mma16816<T>(c, weight_pair<T, kPost>(qa, 0, za, sa2), weight_pair<T, kPost>(qb, 0, zb, sb2),
                    weight_pair<T, kPost>(qa, 1, za, sa2), weight_pair<T, kPost>(qb, 1, zb, sb2),
                    xv[j].x, xv[j].y);
        mma16816<T>(c, weight_pair<T, kPost>(qa, 2, za, sa2), weight_pair<T, kPost>(qb, 2, zb, sb2),
                    weight_pair<T, kPost>(qa, 3, za, sa2), weight_pair<T, kPost>(qb, 3, zb, sb2),
                    xv[j].z, xv[j].w);
    }
    const float fa = kPost ? s.sa[u] : 1.0f, fb = kPost ? s.sb[u] : 1.0f;
    acc[0] += c[0] * fa;
    acc[1] += c[1] * fa;
    acc[2] += c[2] * fb;
    acc[3] += c[3] * fb;
}

/* y[b][r] = v (+ bias[r]) where r < rows and b < n. */
template <typename T>
__device__ __forceinline__ void store_out(T *y, const T *bias, int r, int b, float v, int rows,
                                          int n) {
    if (r < rows && b < n) y[(size_t)b * rows + r] = from_f32<T>(v + (bias ? to_f32(bias[r]) : 0.0f));
}

/* Launched with programmatic dependent launch: the first round's weight, scale and zero
 * loads are issued before pdl_wait(); x is read after it. */
template <typename T, bool kPost>
__global__ void __launch_bounds__(kThreads, 2)
w4a16_gemv_kernel(T *y,                  /* [n][rows] */
                  const uint16_t *x,     /* [n][in_cols] bits of T */
                  const uint32_t *qw,    /* [rows][cols / 8] */
                  const uint16_t *scales, const uint8_t *zeros, /* [rows][groups] */
                  const int32_t *perm,   /* [cols] or NULL; QL_PAD: padding */
                  const T *bias,         /* [rows] or NULL */
                  int rows, int cols, int in_cols, int group_size, int n) {
    extern __shared__ uint4 xs[]; /* [n][kStride] */
    __shared__ float4 partial[kWarps][kWarp];
    const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
    const int g = lane / 4, t = lane % 4;
    const int row0 = blockIdx.x * kRows;
    const int ra = min(row0 + g, rows - 1), rb = min(row0 + g + 8, rows - 1);
    const int words = cols / 8, groups = cols / group_size;
    const uint32_t *qa = qw + (size_t)ra * words, *qb = qw + (size_t)rb * words;
    const uint16_t *sca = scales + (size_t)ra * groups, *scb = scales + (size_t)rb * groups;
    const uint8_t *zra = zeros + (size_t)ra * groups, *zrb = zeros + (size_t)rb * groups;
    const int slots = (cols + kSlotCols - 1) / kSlotCols;
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int slot0 = 0; slot0 < slots; slot0 += kWarps * kUnroll) {
        Slots s;
        load_slots<T>(s, qa, qb, sca, scb, zra, zrb, slot0, warp, t, cols, group_size);
        if (slot0 == 0) {
            pdl_wait();
            pdl_launch_dependents();
        }
        __syncthreads(); /* the previous round's readers of xs are done */
        stage_x(xs, x, perm, n, cols, in_cols, slot0 * kSlotCols);
        __syncthreads();
#pragma unroll
        for (int u = 0; u < kUnroll; u++)
            if (slot0 + u * kWarps + warp < slots)
                slot_product<T, kPost>(acc, s, u, xs, (u * kWarps + warp) * (kSlotCols / 8) + 4 * t, g, n);
    }
    partial[warp][lane] = make_float4(acc[0], acc[1], acc[2], acc[3]);
    __syncthreads();
    if (warp != 0) return;
    float4 v = partial[0][lane];
#pragma unroll
    for (int w = 1; w < kWarps; w++) {
        const float4 p = partial[w][lane];
        v.x += p.x;
        v.y += p.y;
        v.z += p.z;
        v.w += p.w;
    }
    store_out(y, bias, row0 + g, 2 * t, v.x, rows, n);
    store_out(y, bias, row0 + g, 2 * t + 1, v.y, rows, n);
    store_out(y, bias, row0 + g + 8, 2 * t, v.z, rows, n);
    store_out(y, bias, row0 + g + 8, 2 * t + 1, v.w, rows, n);
}

/* w[r][perm ? perm[c] : c] = (q - z) * s rounded to T (w: [rows][in_cols]; padding columns
 * write nothing), one 32-bit word (8 columns) per thread and step. */
template <typename T>
__global__ void __launch_bounds__(256)
w4a16_dequant_kernel(T *w, const uint32_t *qw, const uint16_t *scales, const uint8_t *zeros,
                     const int32_t *perm, int rows, int cols, int in_cols, int group_size) {
    const int words = cols / 8, groups = cols / group_size;
    const int64_t total = (int64_t)rows * words;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int r = (int)(i / words), c = (int)(i % words) * 8, grp = c / group_size;
        const uint32_t q = __ldcs(qw + i);
        const float s = half_bits_f32(__ldg(scales + (size_t)r * groups + grp));
        const int z = __ldg(zeros + (size_t)r * groups + grp);
        Pack<T, 8> v;
#pragma unroll
        for (int k = 0; k < 8; k++)
            v.v[k] = from_f32<T>((float)((int)((q >> ql_shift(4, k)) & 15u) - z) * s);
        T *wr = w + (size_t)r * in_cols;
        if (!perm) {
            *reinterpret_cast<Pack<T, 8> *>(wr + c) = v;
        } else {
#pragma unroll
            for (int k = 0; k < 8; k++) {
                const int in_c = __ldg(perm + c + k);
                if (in_c != QL_PAD) wr[in_c] = v.v[k];
            }
        }
    }
}

template <typename T, bool kPost>
void launch_gemv(void *y, const void *x, const quant_matrix *m, const void *bias, int n,
                 cudaStream_t stream) {
    static bool configured = false; /* once per T: up to 8 staged rows of x (64 KiB) */
    if (!configured) {
        CUDA_CHECK(cudaFuncSetAttribute(w4a16_gemv_kernel<T, kPost>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        W4A16_GEMV_MAX_N * kStride * (int)sizeof(uint4)));
        configured = true;
    }
    const int blocks = (m->rows + kRows - 1) / kRows;
    const size_t smem = (size_t)n * kStride * sizeof(uint4);
    cudaLaunchAttribute attr;
    attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr.val.programmaticStreamSerializationAllowed = pdl_enabled() ? 1 : 0;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(blocks);
    cfg.blockDim = dim3(kThreads);
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cfg.attrs = &attr;
    cfg.numAttrs = 1;
    CUDA_CHECK(cudaLaunchKernelEx(&cfg, w4a16_gemv_kernel<T, kPost>, static_cast<T *>(y),
                                  static_cast<const uint16_t *>(x),
                                  static_cast<const uint32_t *>(m->qweight),
                                  static_cast<const uint16_t *>(m->scales),
                                  static_cast<const uint8_t *>(m->zeros),
                                  static_cast<const int32_t *>(m->perm),
                                  static_cast<const T *>(bias), m->rows, m->cols,
                                  m->in_cols, m->group_size, n));
    CUDA_CHECK_LAUNCH();
}

template <typename T>
void launch_dequant(void *w, const quant_matrix *m, cudaStream_t stream) {
    const int64_t total = (int64_t)m->rows * (m->cols / 8);
    const int64_t want = (total + 255) / 256;
    const int blocks = (int)(want < (1 << 20) ? want : (1 << 20));
    w4a16_dequant_kernel<T><<<blocks, 256, 0, stream>>>(static_cast<T *>(w), m->qweight,
                                                         m->scales, m->zeros, m->perm, m->rows,
                                                         m->cols, m->in_cols, m->group_size);
    CUDA_CHECK_LAUNCH();
}

/* Padding columns only through perm. */
bool in_cols_ok(const quant_matrix *m) {
    return m->in_cols >= 1 && m->in_cols <= m->cols && (m->perm || m->in_cols == m->cols);
}

/* The preconditions both kernels share; aborts with the first that fails. */
void require_matrix(const quant_matrix *m, folio_dtype dtype) {
    CUDA_REQUIRE(m->bits == 4, "w4a16: the CUDA kernels take 4-bit matrices only (8-bit: the "
                               "CPU twin w4a16_cpu)");
    CUDA_REQUIRE(dtype == DTYPE_BF16 || dtype == DTYPE_F16, "w4a16: activations bf16 or fp16");
    CUDA_REQUIRE(m->rows >= 1 && m->cols >= 32 && m->cols % 32 == 0,
                 "w4a16: rows >= 1, cols a positive multiple of 32");
    CUDA_REQUIRE(m->group_size >= 32 && m->group_size % 32 == 0 && m->cols % m->group_size == 0,
                 "w4a16: group_size a multiple of 32 dividing cols");
    CUDA_REQUIRE(aligned16(m->qweight), "w4a16: qweight 16-byte aligned");
    CUDA_REQUIRE(in_cols_ok(m), "w4a16: 1 <= in_cols <= cols, in_cols = cols without perm");
}

} // namespace

extern "C" int w4a16_supported(const quant_matrix *m, folio_dtype dtype) {
    return m->bits == 4 && (dtype == DTYPE_BF16 || dtype == DTYPE_F16) && m->rows >= 1 &&
           m->cols >= 32 && m->cols % 32 == 0 && m->group_size >= 32 &&
           m->group_size % 32 == 0 && m->cols % m->group_size == 0 && aligned16(m->qweight) &&
           in_cols_ok(m);
}

extern "C" void w4a16_gemv_cuda(void *y, const void *x, const quant_matrix *m, const void *bias,
                                folio_dtype dtype, int n, cudaStream_t stream) {
    require_matrix(m, dtype);
    CUDA_REQUIRE(n >= 1 && n <= W4A16_GEMV_MAX_N, "w4a16_gemv_cuda: 1 <= n <= 8");
    CUDA_REQUIRE(aligned16(x), "w4a16_gemv_cuda: x 16-byte aligned");
    const bool post = m->group_size % kSlotCols == 0;
    if (dtype == DTYPE_BF16) {
        if (post) launch_gemv<__nv_bfloat16, true>(y, x, m, bias, n, stream);
        else launch_gemv<__nv_bfloat16, false>(y, x, m, bias, n, stream);
    } else {
        if (post) launch_gemv<__half, true>(y, x, m, bias, n, stream);
        else launch_gemv<__half, false>(y, x, m, bias, n, stream);
    }
}

extern "C" void w4a16_dequant_cuda(void *w, const quant_matrix *m, folio_dtype dtype,
                                   cudaStream_t stream) {
    require_matrix(m, dtype);
    CUDA_REQUIRE(aligned16(w), "w4a16_dequant_cuda: w 16-byte aligned");
    if (dtype == DTYPE_BF16) launch_dequant<__nv_bfloat16>(w, m, stream);
    else launch_dequant<__half>(w, m, stream);
}
