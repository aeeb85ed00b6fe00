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
 * Grid: (n tokens, n_heads + 2 * n_kv_heads); block: head_dim / 2 threads rounded up to a warp,
 * thread i owns the pair (i, i + head_dim / 2). */
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

/* C: the cache element, T or uint8_t (e4m3). */
template <typename T, typename C>
__global__ void rope_kv_write_kernel(T *q_out,                  /* [n][n_heads][hd] */
                                     const T *qkv,              /* [n][(nh + 2 nkv) * hd] */
                                     C *k_cache, C *v_cache,    /* [blocks][nkv][bs][hd] */
                                     const int64_t *slot_mapping, /* [n] */
                                     const int32_t *positions,  /* [n] */
                                     const float *cos_table,    /* [max_pos][hd / 2] */
                                     const float *sin_table,    /* [max_pos][hd / 2] */
                                     const T *q_norm, const T *k_norm, /* [hd] or NULL */
                                     int n_heads, int n_kv, int hd, int block_size, float eps,
                                     float k_scale, float v_scale) {
    pdl_wait(); /* launched with launch_pdl: qkv is the previous kernel's */
    pdl_launch_dependents();
    const int t = blockIdx.x, head = blockIdx.y, half = hd / 2, i = threadIdx.x;
    const bool active = i < half;
    const size_t row = (size_t)t * (size_t)(n_heads + 2 * n_kv) * hd;
    const T *src = qkv + row + (size_t)head * hd;
    const int64_t slot = slot_mapping[t];
    const bool is_q = head < n_heads, is_k = !is_q && head < n_heads + n_kv;
    const int kv_head = is_q ? 0 : (head - n_heads) % n_kv;
    size_t cache_off = 0;
    if (slot >= 0)
        cache_off = (((size_t)(slot / block_size) * n_kv + kv_head) * block_size +
                     (size_t)(slot % block_size)) * hd;
    float a = active ? to_f32(src[i]) : 0.0f, b = active ? to_f32(src[i + half]) : 0.0f;
    if (!is_q && !is_k) { /* v: plain copy */
        if (active && slot >= 0) {
            kv_store<T>(v_cache + cache_off + i, src[i], v_scale);
            kv_store<T>(v_cache + cache_off + i + half, src[i + half], v_scale);
        }
        return;
    }
    const T *norm_w = is_q ? q_norm : k_norm;
    if (norm_w) { /* uniform across the block: every thread takes this branch or none */
        const float inv = rsqrtf(block_sum(a * a + b * b) / (float)hd + eps);
        if (active) {
            a = to_f32(from_f32<T>(to_f32(norm_w[i]) * to_f32(from_f32<T>(a * inv))));
            b = to_f32(from_f32<T>(to_f32(norm_w[i + half]) * to_f32(from_f32<T>(b * inv))));
        }
    }
    if (!active) return;
    const size_t trow = (size_t)positions[t] * half;
    const float c = cos_table[trow + i], s = sin_table[trow + i];
    const T ra = from_f32<T>(__fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s)));
    const T rb = from_f32<T>(__fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s)));
    if (is_q) {
        T *dst = q_out + ((size_t)t * n_heads + head) * hd;
        dst[i] = ra;
        dst[i + half] = rb;
    } else if (slot >= 0) {
        kv_store<T>(k_cache + cache_off + i, ra, k_scale);
        kv_store<T>(k_cache + cache_off + i + half, rb, k_scale);
    }
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
    const int threads = (head_dim / 2 + kWarp - 1) / kWarp * kWarp;
    const dim3 grid(n, n_heads + 2 * n_kv_heads);
    FOLIO_DISPATCH_DTYPE(dtype, "rope_kv_write_cuda",
        using CT = typename std::conditional<std::is_same<C, uint8_t>::value, uint8_t, T>::type;
        launch_pdl(rope_kv_write_kernel<T, CT>, grid, dim3(threads), stream,
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
