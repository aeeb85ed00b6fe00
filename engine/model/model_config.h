/* Model configuration: what config.json and generation_config.json of a Hugging Face model
 * directory say, normalised into one struct for every supported family (Llama 2/3/3.1+,
 * Mistral, Qwen2/2.5, Qwen3) and both ways rope is written (rope_theta + rope_scaling, or the
 * newer rope_parameters block). */
#ifndef FOLIO_MODEL_CONFIG_H
#define FOLIO_MODEL_CONFIG_H

#include <stdbool.h>

#include "dtype.h"
#include "quant_config.h"

typedef enum { ARCH_LLAMA, ARCH_MISTRAL, ARCH_QWEN2, ARCH_QWEN3 } model_arch;

typedef enum { ROPE_DEFAULT, ROPE_LINEAR, ROPE_LLAMA3, ROPE_YARN } rope_kind;

typedef struct {
    rope_kind kind;
    double theta;
    double factor;                 /* linear, llama3, yarn */
    double low_freq_factor;        /* llama3 */
    double high_freq_factor;       /* llama3 */
    int original_max_position;     /* llama3, yarn */
    double beta_fast, beta_slow;   /* yarn */
    double attention_factor;       /* yarn: scale applied to cos and sin (1 otherwise) */
    bool truncate;                 /* yarn: round the correction range (default true) */
} rope_config;

#define FOLIO_MAX_EOS 16
/* The largest head_dim the loader accepts (rope_tables.c sizes its buffers from it). */
#define MODEL_MAX_HEAD_DIM (1 << 12)

typedef struct {
    model_arch arch;
    char arch_name[64];            /* as written in "architectures" (else "model_type") */
    int hidden;                    /* hidden_size */
    int intermediate;              /* intermediate_size */
    int n_layers;                  /* num_hidden_layers */
    int n_heads;                   /* num_attention_heads */
    int n_kv_heads;                /* num_key_value_heads (defaults to n_heads) */
    int head_dim;                  /* explicit head_dim, else hidden / n_heads */
    int vocab;                     /* vocab_size */
    int max_position;              /* max_position_embeddings */
    double rms_eps;
    rope_config rope;
    bool tie_embeddings;
    bool qkv_bias;                 /* Qwen2 always; Llama/Qwen3 with attention_bias */
    bool o_bias;                   /* Llama with attention_bias */
    bool mlp_bias;                 /* Llama with mlp_bias */
    bool qk_norm;                  /* Qwen3: RMSNorm over each head of q and k */
    int *sliding_window;           /* [n_layers] window in tokens, 0 = full attention; owned */
    folio_dtype dtype;             /* torch_dtype / dtype of the checkpoint */
    int bos_id;                    /* -1 if none */
    int eos_ids[FOLIO_MAX_EOS];    /* generation_config.json's, else config.json's */
    int n_eos;
    quant_config quant;            /* quantization_config (method QUANT_NONE: none) */
} model_config;

/* Reads DIR/config.json and, when present, DIR/generation_config.json. Unknown architectures,
 * unsupported rope types or activations, missing or inconsistent sizes: -1 with a message
 * naming the file, the field and the value. On success the caller owns cfg and releases it
 * with model_config_free(). */
int model_config_load(const char *dir, model_config *cfg);

/* Same, from JSON text already in memory (config, and optional generation config or NULL);
 * `origin` names the source in messages as a directory would: "ORIGIN/config.json: ...",
 * "ORIGIN/generation_config.json: ..." (NULL: "config.json: ..."). */
int model_config_parse(const char *config_json, const char *generation_json, const char *origin,
                       model_config *cfg);

void model_config_free(model_config *cfg);

/* Supported architectures, comma-separated, for messages and --help. */
const char *model_config_supported(void);

/* Parameters of the whole (unsharded) model. */
long long model_config_param_count(const model_config *cfg);

#endif
