/* compressed-tensors pack-quantized packing and its quantization_config (ct_pack.h). */
#include "ct_pack.h"

#include <string.h>

void ct_pack_weight(const rtn_matrix *m, uint32_t *out) {
    const int per = 32 / m->bits, words = m->cols / per;
    for (int r = 0; r < m->rows; r++)
        for (int j = 0; j < words; j++) {
            const uint8_t *q = m->q + (size_t)r * m->cols + (size_t)j * per;
            uint32_t w = 0;
            for (int i = 0; i < per; i++) w |= (uint32_t)q[i] << (m->bits * i);
            out[(size_t)r * words + j] = w;
        }
}

int ct_zero_rows(const rtn_matrix *m) {
    const int per = 32 / m->bits;
    return (m->rows + per - 1) / per;
}

void ct_pack_zeros(const rtn_matrix *m, uint32_t *out) {
    const int per = 32 / m->bits, groups = m->cols / m->group_size;
    memset(out, 0, (size_t)ct_zero_rows(m) * groups * sizeof *out);
    for (int r = 0; r < m->rows; r++)
        for (int g = 0; g < groups; g++)
            out[(size_t)(r / per) * groups + g] |=
                (uint32_t)m->zeros[(size_t)r * groups + g] << (m->bits * (r % per));
}

static json_t *weights_args(int bits, int group_size, bool sym, bool per_channel) {
    return json_pack("{s:i, s:s, s:b, s:s, s:o, s:n, s:b, s:s}", "num_bits", bits, "type", "int",
                     "symmetric", sym, "strategy", per_channel ? "channel" : "group",
                     "group_size", per_channel ? json_null() : json_integer(group_size),
                     "actorder", "dynamic", 0, "observer", "minmax");
}

json_t *ct_quant_config(int bits, int group_size, bool sym, bool per_channel,
                        const char *const *extra_ignore, int n_extra) {
    json_t *group = json_pack("{s:[s], s:o, s:n, s:n, s:s}", "targets", "Linear", "weights",
                              weights_args(bits, group_size, sym, per_channel),
                              "input_activations", "output_activations", "format",
                              "pack-quantized");
    json_t *ignore = json_pack("[s]", "lm_head");
    for (int i = 0; i < n_extra; i++) json_array_append_new(ignore, json_string(extra_ignore[i]));
    return json_pack("{s:s, s:s, s:s, s:{s:o}, s:o, s:n}", "quant_method", "compressed-tensors",
                     "format", "pack-quantized", "quantization_status", "compressed",
                     "config_groups", "group_0", group, "ignore", ignore, "kv_cache_scheme");
}
