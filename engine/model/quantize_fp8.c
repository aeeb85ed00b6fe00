/* folio quantize --format fp8: e4m3 weights with per-channel or 128x128-block scales, and the
 * quantization_config of compressed-tensors FP8_DYNAMIC and block FP8 checkpoints
 * (quantize_fp8.h). */
#include "quantize_fp8.h"

#include <math.h>

#include "fp8_layout.h"

int fp8_quant_scale_count(int rows, int cols, bool block) {
    if (!block) return rows;
    return ((rows + FP8_QUANT_BLOCK - 1) / FP8_QUANT_BLOCK) *
           ((cols + FP8_QUANT_BLOCK - 1) / FP8_QUANT_BLOCK);
}

/* max |w| / 448 over rows r0 .. r1 - 1, columns c0 .. c1 - 1 (1 when all zero). */
static float tile_scale(const float *w, int cols, int r0, int r1, int c0, int c1) {
    float amax = 0.0f;
    for (int r = r0; r < r1; r++)
        for (int c = c0; c < c1; c++) amax = fmaxf(amax, fabsf(w[(size_t)r * cols + c]));
    return amax > 0.0f ? amax / FP8_E4M3_MAX : 1.0f;
}

void fp8_quantize_matrix(const float *w, int rows, int cols, bool block, uint8_t *q,
                         float *scales) {
    const int bc = (cols + FP8_QUANT_BLOCK - 1) / FP8_QUANT_BLOCK;
    const int tr = block ? FP8_QUANT_BLOCK : 1, tc = block ? FP8_QUANT_BLOCK : cols;
    for (int r0 = 0, i = 0; r0 < rows; r0 += tr, i++)
        for (int c0 = 0, j = 0; c0 < cols; c0 += tc, j++) {
            const int r1 = r0 + tr < rows ? r0 + tr : rows, c1 = c0 + tc < cols ? c0 + tc : cols;
            const float s = tile_scale(w, cols, r0, r1, c0, c1);
            scales[block ? i * bc + j : i] = s;
            for (int r = r0; r < r1; r++)
                for (int c = c0; c < c1; c++)
                    q[(size_t)r * cols + c] = fp8_e4m3_from_float(w[(size_t)r * cols + c] / s);
        }
}

/* compressed-tensors quantization args of FP8 (llm-compressor's FP8_DYNAMIC preset). */
static json_t *ct_float_args(const char *strategy, bool dynamic, const char *observer) {
    return json_pack("{s:i, s:s, s:b, s:s, s:n, s:n, s:b, s:n, s:o, s:{}}", "num_bits", 8,
                     "type", "float", "symmetric", 1, "strategy", strategy, "group_size",
                     "block_structure", "dynamic", dynamic, "actorder", "observer",
                     observer ? json_string(observer) : json_null(), "observer_kwargs");
}

json_t *fp8_quant_config(bool block) {
    if (block)
        return json_pack("{s:s, s:s, s:s, s:[i, i]}", "quant_method", "fp8", "fmt", "e4m3",
                         "activation_scheme", "dynamic", "weight_block_size", FP8_QUANT_BLOCK,
                         FP8_QUANT_BLOCK);
    json_t *group = json_pack("{s:[s], s:o, s:o, s:n, s:s}", "targets", "Linear", "weights",
                              ct_float_args("channel", false, "minmax"), "input_activations",
                              ct_float_args("token", true, NULL), "output_activations",
                              "format", "float-quantized");
    return json_pack("{s:s, s:s, s:s, s:{s:o}, s:[s], s:n}", "quant_method",
                     "compressed-tensors", "format", "float-quantized", "quantization_status",
                     "compressed", "config_groups", "group_0", group, "ignore", "lm_head",
                     "kv_cache_scheme");
}
