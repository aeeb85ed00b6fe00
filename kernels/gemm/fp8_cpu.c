/* CPU twins of the FP8 kernels (fp8_layout.h): activation quantization per token, per token
 * and group of 128 columns, or with a static scale; its quantize-dequantize in place (what the
 * CPU backend applies to a Linear's input before its float product with the dequantized
 * weights); and the reference product the GPU's FP8 GEMM and GEMV are checked against. The
 * e4m3 rounding is fp8_layout.h's, bit for bit. */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "kernels_cpu.h"

int fp8_act_scale_count(fp8_act act, int n, int k) {
    if (act == FP8_ACT_STATIC) return 1;
    if (act == FP8_ACT_TOKEN) return n;
    return n * ((k + FP8_ACT_GROUP_SIZE - 1) / FP8_ACT_GROUP_SIZE);
}

/* max |x| / 448 of x[0 .. len) (never below FLT_MIN, so x / a stays finite), or 1 for an
 * all-zero span. */
static float span_scale(const float *x, int len) {
    float amax = 0.0f;
    for (int c = 0; c < len; c++) amax = fmaxf(amax, fabsf(x[c]));
    return amax > 0.0f ? fmaxf(amax / FP8_E4M3_MAX, FLT_MIN) : 1.0f;
}

/* Scales of row t (into a; static: nothing to compute). Returns the count written. */
static int row_scales(const float *row, int k, fp8_act act, float *a) {
    if (act == FP8_ACT_STATIC) return 0;
    if (act == FP8_ACT_TOKEN) return a[0] = span_scale(row, k), 1;
    int g = 0;
    for (int c0 = 0; c0 < k; c0 += FP8_ACT_GROUP_SIZE, g++)
        a[g] = span_scale(row + c0, k - c0 < FP8_ACT_GROUP_SIZE ? k - c0 : FP8_ACT_GROUP_SIZE);
    return g;
}

/* The scale of column c of a row whose scales are a (static: input_scale). */
static inline float col_scale(const float *a, int c, fp8_act act, float input_scale) {
    if (act == FP8_ACT_STATIC) return input_scale;
    return act == FP8_ACT_TOKEN ? a[0] : a[c / FP8_ACT_GROUP_SIZE];
}

void fp8_act_quant_cpu(uint8_t *q, float *a, const float *x, int n, int k, fp8_act act,
                       float input_scale) {
    const int per_row = act == FP8_ACT_STATIC ? 0 : fp8_act_scale_count(act, 1, k);
    if (act == FP8_ACT_STATIC) a[0] = input_scale;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < n; t++) {
        const float *row = x + (size_t)t * k;
        float *at = a + (size_t)t * per_row;
        row_scales(row, k, act, at);
        for (int c = 0; c < k; c++)
            q[(size_t)t * k + c] = fp8_e4m3_from_float(row[c] / col_scale(at, c, act,
                                                                           input_scale));
    }
}

void fp8_act_qdq_cpu(float *x, int n, int k, fp8_act act, float input_scale) {
    const int groups = (k + FP8_ACT_GROUP_SIZE - 1) / FP8_ACT_GROUP_SIZE;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < n; t++) {
        float a[4096], *as = groups <= 4096 ? a : malloc(sizeof *as * (size_t)groups);
        float *row = x + (size_t)t * k;
        row_scales(row, k, act, as);
        for (int c = 0; c < k; c++) row[c] = fp8_qdq(row[c], col_scale(as, c, act, input_scale));
        if (as != a) free(as);
    }
}

int fp8_gemm_cpu(float *out, const float *x, const fp8_matrix *m, const float *bias, int n) {
    const int k = m->cols, per_row = m->act == FP8_ACT_STATIC ? 0 : fp8_act_scale_count(m->act, 1,
                                                                                        k);
    uint8_t *q = malloc((size_t)n * k + 1);
    float *a = malloc(sizeof *a * (size_t)(fp8_act_scale_count(m->act, n, k) + 1));
    if (!q || !a) {
        free(q);
        free(a);
        return -1;
    }
    fp8_act_quant_cpu(q, a, x, n, k, m->act, m->input_scale);
#pragma omp parallel for schedule(static)
    for (int t = 0; t < n; t++) {
        const uint8_t *qt = q + (size_t)t * k;
        const float *at = a + (size_t)t * per_row;
        for (int r = 0; r < m->rows; r++) {
            const uint8_t *wr = m->w + (size_t)r * k;
            double acc = 0.0;
            for (int c = 0; c < k; c++)
                acc += (double)fp8_e4m3_to_float(qt[c]) * col_scale(at, c, m->act,
                                                                     m->input_scale) *
                       fp8_e4m3_to_float(wr[c]) * fp8_weight_scale_at(m, r, c);
            out[(size_t)t * m->rows + r] = (float)(acc + (bias ? bias[r] : 0.0));
        }
    }
    free(q);
    free(a);
    return 0;
}
