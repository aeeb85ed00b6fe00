/* compressed-tensors "pack-quantized": how one RTN-quantized Linear weight is stored, and the
 * quantization_config block that describes a whole checkpoint of them.
 *
 * For a module M with weight W [out][in], bits b (per = 32 / b values a word):
 *   M.weight_packed      I32 [out][in / per]       value i of a word (input column
 *                                                  per*j + i) at bits b*i .. b*i + b-1
 *   M.weight_scale       F16 [out][in / group]
 *   M.weight_zero_point  I32 [ceil(out / per)][in / group], asymmetric only: packed along
 *                        the out dim, row per*k + i of a column at bits b*i (0 past out)
 *   M.weight_shape       I32 [2] = {out, in}
 * Stored codes are unsigned 0 .. 2^b - 1 (compressed-tensors' signed code plus 2^(b-1));
 * W = (code - zero) * scale, with zero = 2^(b-1) when symmetric (not stored). */
#ifndef FOLIO_CT_PACK_H
#define FOLIO_CT_PACK_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "quantize.h"

/* m->q packed into out [rows][cols * bits / 32] (cols * bits must be a multiple of 32). */
void ct_pack_weight(const rtn_matrix *m, uint32_t *out);

/* Rows of the packed zero points: ceil(rows * bits / 32). */
int ct_zero_rows(const rtn_matrix *m);

/* m->zeros packed along rows into out [ct_zero_rows(m)][cols / group_size]. */
void ct_pack_zeros(const rtn_matrix *m, uint32_t *out);

/* The quantization_config object: quant_method compressed-tensors, format pack-quantized,
 * config_groups.group_0 {targets ["Linear"], weights {num_bits, type "int", symmetric,
 * strategy "group" (group_size) or "channel" (per_channel: group_size null), ...}},
 * ignore ["lm_head", extra...]. A new reference. */
json_t *ct_quant_config(int bits, int group_size, bool sym, bool per_channel,
                        const char *const *extra_ignore, int n_extra);

#endif
