/* FP8 (e4m3, "float8_e4m3fn") weights and activations: the one in-memory form every FP8
 * checkpoint (compressed-tensors float-quantized, block FP8 `quant_method: fp8`) and a dummy
 * FP8 model are read into, and the exact e4m3 rounding the kernels, their CPU twins and
 * `folio quantize --format fp8` share. Plain data and bit operations, usable from C and CUDA.
 *
 * e4m3fn: 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities; 0x7f / 0xff are NaN;
 * largest finite 448, smallest subnormal 2^-9. Encoding rounds to nearest even and saturates
 * to +-448 (quantizers clamp first, so saturation only guards against rounding up past it).
 *
 * A matrix W [rows][cols] (a Hugging Face Linear weight, out x in) is
 *
 *     W[r][c] = e4m3(w[r][c]) * scale(r, c)
 *
 *   FP8_W_TENSOR   scale(r, c) = scale[0]                       (one float)
 *   FP8_W_CHANNEL  scale(r, c) = scale[r]                       ([rows] floats)
 *   FP8_W_BLOCK    scale(r, c) = scale[(r / br) * ceil(cols / bc) + c / bc]
 *                                                  ([ceil(rows/br)][ceil(cols/bc)] floats)
 *
 * and a product y = x W^T quantizes the activations x [n][cols] as the checkpoint says
 * (fp8_act), then multiplies: y[t][r] = sum_c e4m3(x[t][c] / a(t, c)) * a(t, c) * W[r][c].
 *
 *   FP8_ACT_TOKEN  a(t, c) = max_c |x[t][c]| / 448 per token (dynamic; compressed-tensors
 *                  FP8_DYNAMIC). A zero row gets a = 1.
 *   FP8_ACT_GROUP  a(t, c) = max over c's group of 128 consecutive columns / 448 (dynamic,
 *                  per token and group: block FP8's activation_scheme "dynamic").
 *   FP8_ACT_STATIC a(t, c) = input_scale (the checkpoint's per-layer scalar); values clamped
 *                  to +-448 after the division. */
#ifndef FOLIO_FP8_LAYOUT_H
#define FOLIO_FP8_LAYOUT_H

#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define F8_FN static inline __host__ __device__
#else
#define F8_FN static inline
#endif

#define FP8_E4M3_MAX 448.0f
#define FP8_ACT_GROUP_SIZE 128

typedef enum { FP8_W_TENSOR = 0, FP8_W_CHANNEL, FP8_W_BLOCK } fp8_weight_scale;
typedef enum { FP8_ACT_TOKEN = 0, FP8_ACT_GROUP, FP8_ACT_STATIC } fp8_act;

typedef struct {
    int rows, cols;              /* this rank's shard */
    fp8_weight_scale kind;
    int block_rows, block_cols;  /* FP8_W_BLOCK: the block (128 x 128 in practice) */
    uint8_t *w;                  /* e4m3 bits [rows][cols] */
    float *scale;                /* see above */
    fp8_act act;                 /* how activations are quantized before this product */
    float input_scale;           /* FP8_ACT_STATIC: the scalar; else 0 */
} fp8_matrix;

F8_FN int fp8_scale_count(const fp8_matrix *m) {
    if (m->kind == FP8_W_TENSOR) return 1;
    if (m->kind == FP8_W_CHANNEL) return m->rows;
    return ((m->rows + m->block_rows - 1) / m->block_rows) *
           ((m->cols + m->block_cols - 1) / m->block_cols);
}

F8_FN float fp8_weight_scale_at(const fp8_matrix *m, int r, int c) {
    if (m->kind == FP8_W_TENSOR) return m->scale[0];
    if (m->kind == FP8_W_CHANNEL) return m->scale[r];
    const int bcols = (m->cols + m->block_cols - 1) / m->block_cols;
    return m->scale[(r / m->block_rows) * bcols + c / m->block_cols];
}

/* e4m3 bits -> float (exact). */
F8_FN float fp8_e4m3_to_float(uint8_t b) {
    const int sign = b >> 7, e = (b >> 3) & 15, mant = b & 7;
    float v;
    if (e == 15 && mant == 7) {
        uint32_t nan = 0x7fc00000u;
        memcpy(&v, &nan, sizeof v);
        return v;
    }
    if (e == 0) v = (float)mant * (1.0f / 512.0f); /* subnormal: mant * 2^-9 */
    else {
        uint32_t bits = ((uint32_t)(e - 7 + 127) << 23) | ((uint32_t)mant << 20);
        memcpy(&v, &bits, sizeof v);
    }
    return sign ? -v : v;
}

/* float -> e4m3 bits: round to nearest even, saturate to +-448; NaN -> 0x7f. */
F8_FN uint8_t fp8_e4m3_from_float(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    const uint8_t sign = (uint8_t)((u >> 24) & 0x80);
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return 0x7f;             /* NaN */
    if (a >= 0x43e00000u) return sign | 0x7e;     /* >= 448 (and inf): saturate */
    const int e = (int)(a >> 23) - 127;           /* unbiased exponent */
    if (e < -6) {
        /* subnormal range: value / 2^-9 rounded to nearest even integer (0..8) */
        float af;
        memcpy(&af, &a, sizeof af);
        const float q = af * 512.0f;              /* exact: power-of-two scaling */
        int n = (int)q;
        const float frac = q - (float)n;
        if (frac > 0.5f || (frac == 0.5f && (n & 1))) n++;
        return sign | (uint8_t)n;                 /* n == 8 is 2^-6: exponent 1, mantissa 0 */
    }
    /* normal: keep 3 mantissa bits, round to nearest even on the 20 dropped bits */
    uint32_t m = a & 0x7fffffu;
    uint32_t keep = m >> 20, rest = m & 0xfffffu;
    uint32_t ex = (uint32_t)(e + 7);
    if (rest > 0x80000u || (rest == 0x80000u && (keep & 1))) {
        keep++;
        if (keep == 8) {
            keep = 0;
            ex++;
        }
    }
    if (ex > 15 || (ex == 15 && keep == 7)) return sign | 0x7e; /* rounded past 448 */
    return sign | (uint8_t)((ex << 3) | keep);
}

/* Quantize-dequantize one value with scale a (the activation path's exact rounding). */
F8_FN float fp8_qdq(float x, float a) {
    return fp8_e4m3_to_float(fp8_e4m3_from_float(x / a)) * a;
}

#endif
