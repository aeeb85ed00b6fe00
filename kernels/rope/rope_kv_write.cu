/* Rotary embedding fused with the KV-cache write, on the fused q/k/v GEMM output.
 *
 * For each token t and head:
 *   q heads:  [per-head RMSNorm (Qwen3)] -> rotate -> q_out[t][h]          (contiguous q for
 *             the attention kernel)
 *   k heads:  [per-head RMSNorm] -> rotate -> k_cache at slot_mapping[t]
 *   v heads:  copied to v_cache at slot_mapping[t]
 * Slots < 0 (padding rows of a captured batch) write nothing to the cache. Rotation is HF's
 * rotate_half with the engine's float32 cos/sin tables (every rope type the loader accepts is
 * folded into those tables by rope_tables.c); arithmetic in float, one rounding to the storage
 * type. The norm rounds the normalised value to T before the weight, as HF does.
 * CPU twins: rmsnorm_cpu + rope_cpu + kv_write_cpu (the test converts the cache layout);
 * check and timing: tests/unit/test_gpu_rope_kv_write.c.
 *
 * The FP8 cache variant (rope_kv_write_fp8_cuda) stores e4m3(value / scale) of the same rounded
 * values, with the hardware's round-to-nearest-even saturating conversion (twin:
 * kv_write_fp8_cpu, bit for bit).
 *
 * Grid: (n tokens, ceil((n_heads + 2 * n_kv_heads) / 8)); block: 8 warps, a warp a head, lane j
 * owning the pairs (i, i + head_dim / 2) for i = j, j + 32, ... (the per-head norm is a warp
 * sum). A block a (token, head) of head_dim / 2 threads ran 1.5 million 64-thread blocks for a
 * 32,768-token prefill of Llama-3-8B: 1.9 ms a layer on an H100, bound by block launches. */
#include <cuda_fp8.h>

#include <type_traits>

#include "cuda_types.cuh"
#include "kernels_cuda.h"

namespace {

using namespace folio;

/* One cache element: the 16-bit cache stores v (already of type T), the FP8 one e4m3(v / s). */
template <typename T> __device__ __forceinline__ void kv_store(T *p, T v, float) { *p = v; }
template <typename T> __device__ __forceinline__ void kv_store(uint8_t *p, T v, float s) {
    *p = (uint8_t)__nv_cvt_float_to_fp8(__fdiv_rn(to_f32(v), s), __NV_SATFINITE, __NV_E4M3);
}

/* One (token, head) for one warp: lane j owns the pairs (i, i + hd / 2), i = j, j + 32, ...
 * C: the cache element, T or uint8_t (e4m3). */
template <typename T, typename C>
__device__ __forceinline__ void rope_head(T *q_out, const T *src, C *k_cache, C *v_cache,
                                          size_t cache_off, bool to_cache, int t, int head,
                                          const float *cos_row, const float *sin_row,
                                          const T *q_norm, const T *k_norm, int n_heads,
                                          int n_kv, int hd, float eps, float k_scale,
                                          float v_scale) {
    const int half = hd / 2, lane = threadIdx.x % kWarp;
    const bool is_q = head < n_heads, is_k = !is_q && head < n_heads + n_kv;
    if (!is_q && !is_k) { /* v: plain copy */
        if (to_cache)
            for (int i = lane; i < hd; i += kWarp) kv_store<T>(v_cache + cache_off + i, src[i], v_scale);
        return;
    }
    const T *norm_w = is_q ? q_norm : k_norm;
    float inv = 0.0f;
    if (norm_w) { /* Qwen3: RMSNorm of the head first (the warp's sum) */
        float ss = 0.0f;
        for (int i = lane; i < half; i += kWarp) {
            const float a = to_f32(src[i]), b = to_f32(src[i + half]);
            ss += a * a + b * b;
        }
        inv = rsqrtf(warp_sum(ss) / (float)hd + eps);
    }
    T *dst = q_out + ((size_t)t * n_heads + head) * hd;
    for (int i = lane; i < half; i += kWarp) {
        float a = to_f32(src[i]), b = to_f32(src[i + half]);
        if (norm_w) {
            a = to_f32(from_f32<T>(to_f32(norm_w[i]) * to_f32(from_f32<T>(a * inv))));
            b = to_f32(from_f32<T>(to_f32(norm_w[i + half]) * to_f32(from_f32<T>(b * inv))));
        }
        const float c = cos_row[i], sn = sin_row[i];
        const T ra = from_f32<T>(__fsub_rn(__fmul_rn(a, c), __fmul_rn(b, sn)));
        const T rb = from_f32<T>(__fadd_rn(__fmul_rn(b, c), __fmul_rn(a, sn)));
        if (is_q) {
            dst[i] = ra;
            dst[i + half] = rb;
        } else if (to_cache) {
            kv_store<T>(k_cache + cache_off + i, ra, k_scale);
            kv_store<T>(k_cache + cache_off + i + half, rb, k_scale);
        }
    }
}

/* Grid (n tokens, ceil(heads / kRopeWarps)); each warp one head of the token. */
constexpr int kRopeWarps = 8;

template <typename T, typename C>
__global__ void __launch_bounds__(kRopeWarps * kWarp)
rope_kv_write_kernel(T *q_out,                  /* [n][n_heads][hd] */
                     const T *qkv,              /* [n][(nh + 2 nkv) * hd] */
                     C *k_cache, C *v_cache,    /* [blocks][nkv][bs][hd] */
                     const int64_t *slot_mapping, /* [n] */
                     const int32_t *positions,  /* [n] */
                     const float *cos_table,    /* [max_pos][hd / 2] */
                     const float *sin_table,    /* [max_pos][hd / 2] */
                     const T *q_norm, const T *k_norm, /* [hd] or NULL */
                     int n_heads, int n_kv, int hd, int block_size, float eps, float k_scale,
                     float v_scale) {
    pdl_wait(); /* launched with launch_pdl: qkv is the previous kernel's */
    pdl_launch_dependents();
    const int t = blockIdx.x, head = blockIdx.y * kRopeWarps + threadIdx.x / kWarp;
    if (head >= n_heads + 2 * n_kv) return;
    const T *src = qkv + (size_t)t * (size_t)(n_heads + 2 * n_kv) * hd + (size_t)head * hd;
    const int64_t slot = slot_mapping[t];
    const int kv_head = head < n_heads ? 0 : (head - n_heads) % n_kv;
    size_t cache_off = 0;
    if (slot >= 0)
        cache_off = (((size_t)(slot / block_size) * n_kv + kv_head) * block_size +
                     (size_t)(slot % block_size)) * hd;
    const size_t trow = (size_t)positions[t] * (hd / 2);
    rope_head<T, C>(q_out, src, k_cache, v_cache, cache_off, slot >= 0, t, head,
                    cos_table + trow, sin_table + trow, q_norm, k_norm, n_heads, n_kv, hd, eps,
                    k_scale, v_scale);
}

/* Checks and the launch of either cache type (16-bit: k_scale and v_scale unused). */
/* C: void for the 16-bit cache, uint8_t for the FP8 one. */
template <typename C>
void launch_rope_kv(void *q_out, const void *qkv, void *k_cache, void *v_cache,
                    const int64_t *slot_mapping, const int32_t *positions,
                    const float *cos_table, const float *sin_table, const void *q_norm,
                    const void *k_norm, int n, int n_heads, int n_kv_heads, int head_dim,
                    int block_size, float eps, float k_scale, float v_scale, folio_dtype dtype,
                    cudaStream_t stream) {
    CUDA_REQUIRE(n >= 0 && head_dim >= 2 && head_dim % 2 == 0 && head_dim <= 2048,
                 "rope_kv_write_cuda: need an even head_dim <= 2048");
    CUDA_REQUIRE((q_norm == NULL) == (k_norm == NULL),
                 "rope_kv_write_cuda: q_norm and k_norm come together");
    if (n == 0) return;
    const dim3 grid(n, (n_heads + 2 * n_kv_heads + kRopeWarps - 1) / kRopeWarps);
    FOLIO_DISPATCH_DTYPE(dtype, "rope_kv_write_cuda",
        using CT = typename std::conditional<std::is_same<C, uint8_t>::value, uint8_t, T>::type;
        launch_pdl(rope_kv_write_kernel<T, CT>, grid, dim3(kRopeWarps * kWarp), stream,
            static_cast<T *>(q_out), static_cast<const T *>(qkv), static_cast<CT *>(k_cache),
            static_cast<CT *>(v_cache), slot_mapping, positions, cos_table, sin_table,
            static_cast<const T *>(q_norm), static_cast<const T *>(k_norm), n_heads,
            n_kv_heads, head_dim, block_size, eps, k_scale, v_scale));
    CUDA_CHECK_LAUNCH();
}

} // namespace

extern "C" void rope_kv_write_cuda(void *q_out, const void *qkv, void *k_cache, void *v_cache,
                                   const int64_t *slot_mapping, const int32_t *positions,
                                   const float *cos_table, const float *sin_table,
                                   const void *q_norm, const void *k_norm, int n, int n_heads,
                                   int n_kv_heads, int head_dim, int block_size, float eps,
                                   folio_dtype dtype, cudaStream_t stream) {
    launch_rope_kv<void>(q_out, qkv, k_cache, v_cache, slot_mapping, positions, cos_table,
                         sin_table, q_norm, k_norm, n, n_heads, n_kv_heads, head_dim, block_size,
                         eps, 1.0f, 1.0f, dtype, stream);
}

extern "C" void rope_kv_write_fp8_cuda(void *q_out, const void *qkv, uint8_t *k_cache,
                                       uint8_t *v_cache, const int64_t *slot_mapping,
                                       const int32_t *positions, const float *cos_table,
                                       const float *sin_table, const void *q_norm,
                                       const void *k_norm, int n, int n_heads, int n_kv_heads,
                                       int head_dim, int block_size, float eps, float k_scale,
                                       float v_scale, folio_dtype dtype, cudaStream_t stream) {
    CUDA_REQUIRE(k_scale > 0.0f && v_scale > 0.0f,
                 "rope_kv_write_fp8_cuda: k_scale and v_scale must be positive");
    launch_rope_kv<uint8_t>(q_out, qkv, k_cache, v_cache, slot_mapping, positions, cos_table,
                            sin_table, q_norm, k_norm, n, n_heads, n_kv_heads, head_dim,
                            block_size, eps, k_scale, v_scale, dtype, stream);
}
