/* Model weights of one rank, in float32 for the CPU reference backend: loaded from the
 * safetensors files (this rank's slice of each tensor, converted from f32/f16/bf16) or filled
 * with random values of the right shapes (--load-format dummy). Matrices keep Hugging Face's
 * [out_features, in_features] row-major layout. */
#ifndef FOLIO_WEIGHTS_H
#define FOLIO_WEIGHTS_H

#include <stdbool.h>
#include <stdint.h>

#include "model_config.h"
#include "safetensors.h"
#include "shard.h"

/* How a Linear's input is quantized before its product: an FP8 checkpoint's activation scheme
 * (fp8_layout.h; the CPU forward applies fp8_act_qdq_cpu to the input), or not at all (on
 * false: float weights and the weight-only formats). */
typedef struct {
    bool on;
    fp8_act act;
    float input_scale;           /* FP8_ACT_STATIC: the layer's input_scale */
} act_quant;

typedef struct {
    float *attn_norm;            /* [hidden] */
    float *wq;                   /* [n_heads_local * head_dim, hidden] */
    float *wk, *wv;              /* [n_kv_local * head_dim, hidden] */
    float *bq, *bk, *bv;         /* [rows of wq / wk / wv] or NULL */
    float *q_norm, *k_norm;      /* [head_dim] or NULL (Qwen3) */
    float *wo;                   /* [hidden, n_heads_local * head_dim] (row-parallel slice) */
    float *bo;                   /* [hidden] or NULL; added once, after the all-reduce */
    float *mlp_norm;             /* [hidden] */
    float *w_gate, *w_up;        /* [inter_local, hidden] */
    float *b_gate, *b_up;        /* [inter_local] or NULL */
    float *w_down;               /* [hidden, inter_local] (row-parallel slice) */
    float *b_down;               /* [hidden] or NULL; added once, after the all-reduce */
    /* the activation quantization of each Linear's input (FP8 checkpoints) */
    act_quant aq_q, aq_k, aq_v, aq_o, aq_gate, aq_up, aq_down;
} layer_weights;

typedef struct {
    shard_plan shard;
    float *embed;                /* [vocab_local, hidden] rows vocab_start.. */
    float *final_norm;           /* [hidden] */
    float *lm_head;              /* [vocab_local, hidden]; == embed when tied */
    act_quant aq_lm_head;        /* an FP8 lm_head's input quantization */
    layer_weights *layers;       /* [n_layers] */
    /* Every tensor is one allocation in `arena`; weights_free releases it. */
    float *arena;
    size_t arena_floats;
    long long n_params_local;    /* parameters held by this rank */
    char load_note[384];         /* a quantized checkpoint whose label disagreed with its data:
                                  * what the loader assumed (printed on rank 0), else "" */
} model_weights;

typedef enum { LOAD_AUTO, LOAD_DUMMY } load_format;

typedef struct {
    load_format format;
    bool show_progress;          /* progress bar on stderr (rank 0 on a terminal) */
    uint64_t dummy_seed;
} load_options;

/* Loads this rank's slice (shard decided by shard_plan_make) of every tensor from DIR.
 * Validates every tensor's presence, dtype and shape against the config (message: file,
 * tensor, expected versus found) and that no tensor belongs to a layer beyond
 * num_hidden_layers (weights_check_layers); warns on stderr, naming the tensor, of NaN or
 * infinite values in this rank's slice (counted while converting, so at no extra pass). The
 * caller owns *w and frees it with weights_free(). */
int weights_load(const char *dir, const model_config *cfg, const shard_plan *shard,
                 const load_options *opt, model_weights *w);

void weights_free(model_weights *w);

/* ---- the one description of the model's tensors, shared by the CPU loader and the GPU
 * upload (weights_cuda.c) ---- */

typedef enum { SLICE_NONE, SLICE_ROWS, SLICE_COLS } slice_kind;
typedef enum { INIT_MATRIX, INIT_NORM, INIT_BIAS, INIT_EMBED } init_kind;

typedef struct {
    char name[128];              /* Hugging Face tensor name */
    float **dest;                /* the model_weights field this tensor lands in */
    int64_t rows, cols;          /* full shape; cols == 0 for vectors */
    slice_kind slice;
    int64_t start, count;        /* rows or columns kept */
    init_kind init;              /* for --load-format dummy */
    act_quant *aq;               /* a Linear weight's input quantization (set by an FP8 load),
                                  * or NULL */
} tensor_spec;

/* Every tensor of this rank, in the order the float32 arena lays them out (so q, k, v are
 * adjacent, as are gate and up, and their biases). dest points into w (w->layers allocated
 * here when NULL). Returns a malloc'd array of *n specs; the caller frees it. */
tensor_spec *weights_specs(const model_config *cfg, const shard_plan *shard, model_weights *w,
                           int *n);

/* Reads this rank's slice of the unquantized tensor s from the opened checkpoint m of DIR
 * into dst (float32, tensor_spec_floats(s) elements), checking its presence, dtype and shape
 * as weights_load does (the GPU upload of a quantized checkpoint's dense tensors); a warning
 * on stderr names it when it holds NaN or infinite values. */
int weights_read_spec(const char *dir, const safetensors_model *m, const tensor_spec *s,
                      float *dst);

/* A checkpoint with tensors of layers beyond cfg->n_layers (num_hidden_layers): -1 with a
 * message naming the first such tensor (lowest layer), else 0. */
int weights_check_layers(const safetensors_model *m, const model_config *cfg);

/* Elements this rank keeps of a spec. */
size_t tensor_spec_floats(const tensor_spec *s);

/* Dummy values: element (r, c) of the FULL tensor is
 *   scale * (u * 2^-52 - 1),  u = splitmix64(key + (r * cols + c) * 0xd1b54a32d192ed03) >> 11
 * (uniform in [-scale, scale)), key = weights_dummy_key(seed, name), scale =
 * weights_dummy_scale(spec); norms are 1, biases 0. The GPU fills the same values. A dummy
 * 4-bit model (cfg->quant.method QUANT_DUMMY, --quantization w4a16) draws its layers' Linear
 * weights from the same key as packed 4-bit matrices instead (engine/base/quant_dummy.h,
 * quant_dummy_matrix in quant.h), a dummy FP8 model (QUANT_FP8, fp8_src FP8_SRC_DUMMY) as FP8
 * matrices (engine/base/fp8_dummy.h, fp8_dummy_matrix in fp8.h); the CPU loader holds them
 * dequantized. */
uint64_t weights_dummy_key(uint64_t seed, const char *name);
float weights_dummy_scale(const tensor_spec *s);

/* Bytes this rank's float32 weights will take (for a memory check before allocating). */
size_t weights_bytes_f32(const model_config *cfg, const shard_plan *shard);

#endif
