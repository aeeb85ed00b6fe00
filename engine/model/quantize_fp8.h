/* FP8 e4m3 weight quantization, the arithmetic of `folio quantize --format fp8`, and the
 * quantization_config blocks of the two checkpoint forms it writes:
 *   --scheme dynamic  compressed-tensors float-quantized, llm-compressor's FP8_DYNAMIC:
 *                     MODULE.weight F8_E4M3 [out, in], MODULE.weight_scale F32 [out, 1] =
 *                     max|row| / 448; activations dynamic per token; lm_head ignored
 *   --scheme block    block FP8 (quant_method fp8, as Qwen3-*-FP8 and DeepSeek-V3 write it):
 *                     MODULE.weight F8_E4M3, MODULE.weight_scale_inv F32 [ceil(out/128),
 *                     ceil(in/128)] = max|block| / 448 (W = e4m3 * weight_scale_inv);
 *                     activations dynamic per token and group of 128
 * Every weight is e4m3(w / scale) (fp8_layout.h's rounding: nearest even, saturating); an
 * all-zero row or block gets scale 1. */
#ifndef FOLIO_QUANTIZE_FP8_H
#define FOLIO_QUANTIZE_FP8_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#define FP8_QUANT_BLOCK 128

/* Scales of a [rows][cols] matrix: rows (per channel) or ceil(rows/128) * ceil(cols/128). */
int fp8_quant_scale_count(int rows, int cols, bool block);

/* q [rows][cols] e4m3 bytes and scales (fp8_quant_scale_count floats) of w. */
void fp8_quantize_matrix(const float *w, int rows, int cols, bool block, uint8_t *q,
                         float *scales);

/* The quantization_config object of a checkpoint of either scheme (every q/k/v/o/gate/up/down
 * weight quantized; lm_head not). A new reference. */
json_t *fp8_quant_config(bool block);

#endif
