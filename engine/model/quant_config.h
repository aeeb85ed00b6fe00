/* What config.json's quantization_config says about a weight-only quantized checkpoint (AWQ
 * GEMM, GPTQ, compressed-tensors pack-quantized), normalised into one struct, and which
 * modules it quantizes. Reading it lives in quant_config.c (model_config_load calls it). */
#ifndef FOLIO_QUANT_CONFIG_H
#define FOLIO_QUANT_CONFIG_H

#include <stdbool.h>

#include "fp8_layout.h"

/* QUANT_DUMMY: no checkpoint: --load-format dummy --quantization w4a16 draws the layers'
 * Linear weights as random packed 4-bit matrices (engine/base/quant_dummy.h; bits 4,
 * group_size, sym; no act-order, no lm_head, no ignore list). */
/* QUANT_FP8: FP8 e4m3 weights and activations (engine/base/fp8_layout.h): compressed-tensors
 * format float-quantized (fp8_source FP8_SRC_CT), block FP8 quant_method "fp8"
 * (FP8_SRC_BLOCK), or a dummy FP8 model (FP8_SRC_DUMMY, --load-format dummy --quantization
 * fp8). */
typedef enum { QUANT_NONE = 0, QUANT_AWQ, QUANT_GPTQ, QUANT_CT, QUANT_DUMMY, QUANT_FP8 } quant_method;
typedef enum { FP8_SRC_CT = 0, FP8_SRC_BLOCK, FP8_SRC_DUMMY } fp8_source;

typedef struct {
    quant_method method;
    int bits;                  /* 4 or 8 (AWQ: 4) */
    int group_size;            /* > 0, or -1: per output channel (one group of all inputs) */
    bool sym;                  /* symmetric: the zero is 2^(bits-1) */
    bool act_order;            /* GPTQ desc_act, compressed-tensors actorder "group" */
    bool gptq_v2;              /* GPTQ checkpoint_format "gptq_v2" (v1: stored zero = zero-1) */
    bool lm_head;              /* lm_head is quantized too */
    char **ignore;             /* module names, or "re:REGEX" (owned) */
    int n_ignore;
    bool ignore_substring;     /* AWQ modules_to_not_convert: an entry matches any module
                                * name containing it */
    /* QUANT_FP8 only (bits 8, group_size 0): */
    fp8_source fp8_src;
    fp8_weight_scale fp8_weights;  /* tensor, channel or block */
    int fp8_block[2];              /* FP8_W_BLOCK: weight_block_size [rows, cols] */
    fp8_act fp8_act;               /* how activations are quantized */
} quant_config;

/* What --quantization asks of a dummy model (--load-format dummy). */
typedef struct {
    bool w4a16;                /* --quantization w4a16 (false: dense dummy weights) */
    int group_size;            /* --group-size: > 0, or -1 per channel (default 128) */
    bool sym;                  /* --sym: every zero 8 (default: zeros drawn in 4..11) */
    bool fp8;                  /* --quantization fp8: a dummy FP8 model (engine/base/fp8_dummy.h) */
    bool fp8_block;            /* --fp8-scheme block: 128x128 block scales, activations per
                                * token and group of 128 (default channel: per-channel scales,
                                * activations per token) */
} dummy_quant;

#define DUMMY_QUANT_GROUP_DEFAULT 128

/* "awq", "gptq", "compressed-tensors", "dummy", "fp8" ("none" for QUANT_NONE). */
const char *quant_method_name(quant_method m);

/* Whether the Linear module `module` ("model.layers.0.mlp.down_proj", "lm_head") is stored
 * quantized under q. */
bool quant_module_quantized(const quant_config *q, const char *module);

void quant_config_free(quant_config *q);

/* Replaces *q (freed) by the config of a dummy 4-bit model: method QUANT_DUMMY, bits 4, d's
 * group size (-1 or 0: per channel, stored -1) and sym, nothing else quantized than the
 * layers' Linear weights. */
void quant_config_dummy(quant_config *q, const dummy_quant *d);

/* Replaces *q (freed) by the config of a dummy FP8 model (d->fp8): method QUANT_FP8, fp8_src
 * FP8_SRC_DUMMY, per-channel weights and per-token activations, or (d->fp8_block) 128x128
 * blocks and per-token-and-group activations; the layers' Linear weights only. */
void quant_config_dummy_fp8(quant_config *q, const dummy_quant *d);

#endif
