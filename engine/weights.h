/* Model weights of one rank, in float32 for the CPU reference backend: loaded from the
 * safetensors files (this rank's slice of each tensor, converted from f32/f16/bf16) or filled
 * with random values of the right shapes (--load-format dummy). Matrices keep Hugging Face's
 * [out_features, in_features] row-major layout. */
#ifndef FOLIO_WEIGHTS_H
#define FOLIO_WEIGHTS_H

#include <stdbool.h>
#include <stdint.h>

#include "model_config.h"
#include "shard.h"

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
} layer_weights;

typedef struct {
    shard_plan shard;
    float *embed;                /* [vocab_local, hidden] rows vocab_start.. */
    float *final_norm;           /* [hidden] */
    float *lm_head;              /* [vocab_local, hidden]; == embed when tied */
    layer_weights *layers;       /* [n_layers] */
    /* Every tensor is one allocation in `arena`; weights_free releases it. */
    float *arena;
    size_t arena_floats;
    long long n_params_local;    /* parameters held by this rank */
} model_weights;

typedef enum { LOAD_AUTO, LOAD_DUMMY } load_format;

typedef struct {
    load_format format;
    bool show_progress;          /* progress bar on stderr (rank 0 on a terminal) */
    uint64_t dummy_seed;
} load_options;

/* Loads this rank's slice (shard decided by shard_plan_make) of every tensor from DIR.
 * Validates every tensor's presence, dtype and shape against the config (message: file,
 * tensor, expected versus found). The caller owns *w and frees it with weights_free(). */
int weights_load(const char *dir, const model_config *cfg, const shard_plan *shard,
                 const load_options *opt, model_weights *w);

void weights_free(model_weights *w);

/* Bytes this rank's float32 weights will take (for a memory check before allocating). */
size_t weights_bytes_f32(const model_config *cfg, const shard_plan *shard);

#endif
