/* The FP8 KV cache's scales (--kv-cache-dtype fp8): one K and one V scale per layer, read from
 * the checkpoint where it has them (model.layers.N.self_attn.k_scale / v_scale, the names
 * llm-compressor writes and vLLM reads; or ...self_attn.k_proj.output_scale /
 * v_proj.output_scale), else 1.0. The cache stores e4m3(value / scale). */
#ifndef FOLIO_KV_SCALES_H
#define FOLIO_KV_SCALES_H

#include <stdbool.h>

#include "model_config.h"

typedef struct {
    float *k, *v;                /* [n_layers] */
    int n_layers;
    int found;                   /* layers whose scales came from the checkpoint */
} kv_scales;

/* Reads the scales of DIR's checkpoint (dummy: no files, every scale 1.0). A layer with one
 * of the two scales must have both; each a positive finite scalar (one element of F32, F16 or
 * BF16). -1 with a message naming the file and tensor. The caller frees with
 * kv_scales_free. */
int kv_scales_load(const char *dir, const model_config *cfg, bool dummy, kv_scales *out);
void kv_scales_free(kv_scales *s);

#endif
