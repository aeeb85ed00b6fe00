/* Model configuration: config.json and generation_config.json of a Hugging Face model directory,
 * normalised into model_config. Defaults are those of the transformers config classes (LlamaConfig,
 * MistralConfig, Qwen2Config, Qwen3Config) for fields a checkpoint leaves out. Rope is read from
 * rope_theta + rope_scaling, or from the transformers v5 rope_parameters block; as in transformers
 * (v4 and v5 alike), a non-empty rope_scaling is used in preference to rope_parameters. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "json_util.h"
#include "model_config.h"
#include "quant_config_read.h"

/* Plausibility bounds: far above any published model, low enough that every product of sizes
 * (param counts, n_heads * head_dim, ...) stays well inside its integer type. */
#define MAX_HIDDEN (1 << 20)
#define MAX_INTERMEDIATE (1 << 22)
#define MAX_LAYERS (1 << 12)
#define MAX_HEADS (1 << 12)
#define MAX_HEAD_DIM MODEL_MAX_HEAD_DIM
#define MAX_VOCAB (1 << 24)
/* Above the longest published context (10M tokens); the engine sizes its tables from the
 * context in use (--max-model-len), but the default context is this one. */
#define MAX_POSITION (1 << 24)
#define ANY_INT INT_MAX

/* What transformers' config class of each family defaults to. */
typedef struct {
    model_arch arch;
    const char *class_name;  /* "architectures" entry */
    const char *model_type;
    int max_position;        /* max_position_embeddings */
    int head_dim;            /* head_dim, 0 = hidden_size / num_attention_heads */
    int sliding_window;      /* sliding_window when the field is absent (0 = none) */
} family;

static const family FAMILIES[] = {
    {ARCH_LLAMA, "LlamaForCausalLM", "llama", 2048, 0, 0},
    {ARCH_MISTRAL, "MistralForCausalLM", "mistral", 4096 * 32, 0, 4096},
    {ARCH_QWEN2, "Qwen2ForCausalLM", "qwen2", 32768, 0, 4096},
    {ARCH_QWEN3, "Qwen3ForCausalLM", "qwen3", 32768, 128, 4096},
};
#define N_FAMILIES (sizeof FAMILIES / sizeof FAMILIES[0])

#define ROPE_TYPES "default, linear, llama3, yarn"

/* Defaults the four config classes share (max_window_layers: Qwen2 and Qwen3 only). */
#define DEFAULT_RMS_EPS 1e-6
#define DEFAULT_ROPE_THETA 10000.0
#define DEFAULT_MAX_WINDOW_LAYERS 28
#define YARN_BETA_FAST 32.0
#define YARN_BETA_SLOW 1.0

const char *model_config_supported(void) {
    return "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM";
}

/* The field's value unless it is missing or null. */
static const json_t *given(const json_t *obj, const char *key) {
    const json_t *v = obj ? json_object_get(obj, key) : NULL;
    return v && !json_is_null(v) ? v : NULL;
}

/* ---- architecture ---- */

static const family *family_named(const char *name, bool by_class) {
    for (size_t i = 0; i < N_FAMILIES; i++)
        if (strcmp(name, by_class ? FAMILIES[i].class_name : FAMILIES[i].model_type) == 0)
            return &FAMILIES[i];
    return NULL;
}

static int read_arch(const json_t *root, const json_src *src, model_config *cfg,
                     const family **fam) {
    const json_t *archs = NULL;
    if (json_get_array(root, "architectures", src, &archs, false) < 0) return -1;
    const char *name = NULL, *field = "architectures";
    bool by_class = archs && json_array_size(archs) > 0;
    if (by_class) {
        const json_t *first = json_array_get(archs, 0);
        if (!json_is_string(first))
            return json_fail_field(src, "architectures[0]", "a string", first);
        name = json_string_value(first);
    } else {
        if (!given(root, "model_type"))
            return folio_fail("%s: neither 'architectures' nor 'model_type' is given "
                              "(supported: %s)", src->origin, model_config_supported());
        if (json_get_string(root, "model_type", src, &name, true) < 0) return -1;
        field = "model_type";
    }
    *fam = family_named(name, by_class);
    if (!*fam)
        return folio_fail("%s: field '%s': unsupported architecture \"%.100s\" (supported: %s)",
                          src->origin, field, name, model_config_supported());
    cfg->arch = (*fam)->arch;
    snprintf(cfg->arch_name, sizeof cfg->arch_name, "%s", name);
    return 0;
}

/* ---- sizes ---- */

static int read_head_dim(const json_t *root, const json_src *src, const family *fam,
                         model_config *cfg) {
    int r = json_get_int(root, "head_dim", src, 1, MAX_HEAD_DIM, &cfg->head_dim, false);
    if (r != JSON_ABSENT) return r;
    if (fam->head_dim) {
        cfg->head_dim = fam->head_dim;
        return 0;
    }
    if (cfg->hidden % cfg->n_heads != 0)
        return folio_fail("%s: field 'head_dim': missing, and hidden_size (%d) is not a multiple "
                          "of num_attention_heads (%d)", src->origin, cfg->hidden, cfg->n_heads);
    cfg->head_dim = cfg->hidden / cfg->n_heads;
    return 0;
}

static int read_sizes(const json_t *root, const json_src *src, const family *fam,
                      model_config *cfg) {
    if (json_get_int(root, "hidden_size", src, 1, MAX_HIDDEN, &cfg->hidden, true) < 0 ||
        json_get_int(root, "intermediate_size", src, 1, MAX_INTERMEDIATE, &cfg->intermediate,
                     true) < 0 ||
        json_get_int(root, "num_hidden_layers", src, 1, MAX_LAYERS, &cfg->n_layers, true) < 0 ||
        json_get_int(root, "num_attention_heads", src, 1, MAX_HEADS, &cfg->n_heads, true) < 0)
        return -1;
    cfg->n_kv_heads = cfg->n_heads;
    if (json_get_int(root, "num_key_value_heads", src, 1, MAX_HEADS, &cfg->n_kv_heads, false) < 0)
        return -1;
    if (cfg->n_heads % cfg->n_kv_heads != 0)
        return folio_fail("%s: field 'num_key_value_heads': num_attention_heads (%d) is not a "
                          "multiple of num_key_value_heads (%d)", src->origin, cfg->n_heads,
                          cfg->n_kv_heads);
    if (read_head_dim(root, src, fam, cfg) < 0) return -1;
    cfg->max_position = fam->max_position;
    cfg->rms_eps = DEFAULT_RMS_EPS;
    if (json_get_int(root, "vocab_size", src, 1, MAX_VOCAB, &cfg->vocab, true) < 0 ||
        json_get_int(root, "max_position_embeddings", src, 1, MAX_POSITION, &cfg->max_position,
                     false) < 0 ||
        json_get_positive(root, "rms_norm_eps", src, &cfg->rms_eps, false) < 0)
        return -1;
    return 0;
}

/* ---- activation, dtype, biases ---- */

static int read_activation(const json_t *root, const json_src *src) {
    const char *act = "silu";
    if (json_get_string(root, "hidden_act", src, &act, false) < 0) return -1;
    if (strcmp(act, "silu") != 0)
        return json_fail_field(src, "hidden_act", "\"silu\" (the only activation supported)",
                               json_object_get(root, "hidden_act"));
    return 0;
}

/* "dtype" (transformers v5) or "torch_dtype"; float32 when neither is given. */
static int read_dtype(const json_t *root, const json_src *src, model_config *cfg) {
    const char *key = given(root, "dtype") ? "dtype" : "torch_dtype", *name = NULL;
    cfg->dtype = DTYPE_F32;
    int r = json_get_string(root, key, src, &name, false);
    if (r != JSON_OK) return r < 0 ? -1 : 0;
    if (dtype_parse(name, &cfg->dtype) < 0)
        return json_fail_field(src, key, "one of float32, float16, bfloat16",
                               json_object_get(root, key));
    return 0;
}

/* Biases, q/k norms and tied embeddings: what decides the tensors a layer has. */
static int read_layout(const json_t *root, const json_src *src, model_config *cfg) {
    bool attention_bias = false, mlp_bias = false;
    switch (cfg->arch) {
    case ARCH_LLAMA:
        if (json_get_bool(root, "attention_bias", src, &attention_bias, false) < 0 ||
            json_get_bool(root, "mlp_bias", src, &mlp_bias, false) < 0)
            return -1;
        cfg->qkv_bias = cfg->o_bias = attention_bias;
        cfg->mlp_bias = mlp_bias;
        break;
    case ARCH_QWEN2: /* q, k and v always carry a bias in Qwen2, o never */
        cfg->qkv_bias = true;
        break;
    case ARCH_QWEN3:
        if (json_get_bool(root, "attention_bias", src, &attention_bias, false) < 0) return -1;
        cfg->qkv_bias = cfg->o_bias = attention_bias;
        cfg->qk_norm = true;
        break;
    case ARCH_MISTRAL: break;
    }
    if (json_get_bool(root, "tie_word_embeddings", src, &cfg->tie_embeddings, false) < 0) return -1;
    return 0;
}

/* ---- sliding window ---- */

/* "sliding_window": absent -> the family default, null -> 0 (none), else a count >= 0. */
static int read_window(const json_t *root, const json_src *src, const family *fam, int *window) {
    const json_t *v = json_object_get(root, "sliding_window");
    *window = fam->sliding_window;
    if (!v) return 0;
    if (json_is_null(v)) {
        *window = 0;
        return 0;
    }
    return json_value_int(v, "sliding_window", src, 0, ANY_INT, window);
}

/* "layer_types": one "full_attention" / "sliding_attention" per layer; sets sliding[i]. */
static int read_layer_types(const json_t *root, const json_src *src, int n_layers,
                            bool *sliding, bool *present) {
    const json_t *types = NULL;
    int r = json_get_array(root, "layer_types", src, &types, false);
    *present = r == JSON_OK;
    if (r != JSON_OK) return r < 0 ? -1 : 0;
    if (json_array_size(types) != (size_t)n_layers)
        return folio_fail("%s: field 'layer_types': expected %d entries (num_hidden_layers), "
                          "found %zu", src->origin, n_layers, json_array_size(types));
    for (int i = 0; i < n_layers; i++) {
        const json_t *t = json_array_get(types, (size_t)i);
        const char *s = json_is_string(t) ? json_string_value(t) : "";
        if (strcmp(s, "full_attention") != 0 && strcmp(s, "sliding_attention") != 0) {
            char key[32];
            snprintf(key, sizeof key, "layer_types[%d]", i);
            return json_fail_field(src, key, "\"full_attention\" or \"sliding_attention\"", t);
        }
        sliding[i] = strcmp(s, "sliding_attention") == 0;
    }
    return 0;
}

/* Which layers slide when layer_types does not say: Mistral all, Qwen those from
 * max_window_layers on. */
static int default_sliding(const json_t *root, const json_src *src, const model_config *cfg,
                           bool *sliding) {
    int first = 0;
    if (cfg->arch == ARCH_QWEN2 || cfg->arch == ARCH_QWEN3) {
        first = DEFAULT_MAX_WINDOW_LAYERS;
        if (json_get_int(root, "max_window_layers", src, 0, ANY_INT, &first, false) < 0) return -1;
    }
    for (int i = first; i < cfg->n_layers; i++) sliding[i] = true;
    return 0;
}

static int fill_windows(const json_t *root, const json_src *src, const family *fam,
                        model_config *cfg, bool *sliding) {
    bool typed = false, enabled = true;
    int window = 0;
    /* MistralConfig has no layer_types; Llama slides only where layer_types says so. */
    if (cfg->arch != ARCH_MISTRAL &&
        read_layer_types(root, src, cfg->n_layers, sliding, &typed) < 0)
        return -1;
    if (cfg->arch == ARCH_LLAMA) enabled = typed;
    if (cfg->arch == ARCH_QWEN2 || cfg->arch == ARCH_QWEN3) {
        enabled = false;
        if (json_get_bool(root, "use_sliding_window", src, &enabled, false) < 0) return -1;
    }
    if (!enabled) return 0;
    if (read_window(root, src, fam, &window) < 0) return -1;
    if (!typed && default_sliding(root, src, cfg, sliding) < 0) return -1;
    for (int i = 0; i < cfg->n_layers; i++) cfg->sliding_window[i] = sliding[i] ? window : 0;
    return 0;
}

static int read_sliding(const json_t *root, const json_src *src, const family *fam,
                        model_config *cfg) {
    cfg->sliding_window = folio_xcalloc((size_t)cfg->n_layers, sizeof(int));
    bool *sliding = folio_xcalloc((size_t)cfg->n_layers, sizeof(bool));
    int r = fill_windows(root, src, fam, cfg, sliding);
    free(sliding);
    return r;
}

/* ---- rope ---- */

static int rope_linear(const json_t *b, const json_src *bs, rope_config *rope) {
    return json_get_positive(b, "factor", bs, &rope->factor, true) < 0 ? -1 : 0;
}

static int rope_llama3(const json_t *b, const json_src *bs, rope_config *rope) {
    if (json_get_positive(b, "factor", bs, &rope->factor, true) < 0 ||
        json_get_positive(b, "low_freq_factor", bs, &rope->low_freq_factor, true) < 0 ||
        json_get_positive(b, "high_freq_factor", bs, &rope->high_freq_factor, true) < 0 ||
        json_get_int(b, "original_max_position_embeddings", bs, 1, ANY_INT,
                     &rope->original_max_position, true) < 0)
        return -1;
    return 0;
}

/* Reads an optional number where 0, like absence, means the default (transformers' `x or d`). */
static int number_or(const json_t *b, const char *key, const json_src *bs, double dflt,
                     double *out) {
    *out = dflt;
    if (json_get_double(b, key, bs, out, false) < 0) return -1;
    if (*out == 0) *out = dflt;
    return 0;
}

static int rope_yarn(const json_t *b, const json_src *bs, int max_position, rope_config *rope) {
    static const char *const deepseek_keys[] = {"mscale", "mscale_all_dim"};
    for (size_t i = 0; i < 2; i++)
        if (given(b, deepseek_keys[i]))
            return json_fail_unsupported(bs, deepseek_keys[i], "yarn with mscale",
                                         json_object_get(b, deepseek_keys[i]));
    rope->original_max_position = max_position;
    rope->truncate = true;
    int has_factor = json_get_positive(b, "factor", bs, &rope->factor, false);
    if (has_factor < 0 ||
        json_get_int(b, "original_max_position_embeddings", bs, 1, ANY_INT,
                     &rope->original_max_position, false) < 0 ||
        number_or(b, "beta_fast", bs, YARN_BETA_FAST, &rope->beta_fast) < 0 ||
        number_or(b, "beta_slow", bs, YARN_BETA_SLOW, &rope->beta_slow) < 0 ||
        json_get_bool(b, "truncate", bs, &rope->truncate, false) < 0)
        return -1;
    if (has_factor == JSON_ABSENT) /* transformers v5: the ratio of the two context lengths */
        rope->factor = (double)max_position / rope->original_max_position;
    rope->attention_factor = rope->factor > 1 ? 0.1 * log(rope->factor) + 1.0 : 1.0;
    if (json_get_positive(b, "attention_factor", bs, &rope->attention_factor, false) < 0) return -1;
    return 0;
}

/* rope_type (or the older "type"); a block without one is plain rope unless it carries a factor. */
static int rope_type_of(const json_t *b, const json_src *bs, const char **type, const char **key) {
    *type = "default";
    *key = "rope_type";
    if (!b) return 0;
    if (!given(b, "rope_type") && given(b, "type")) *key = "type";
    int r = json_get_string(b, *key, bs, type, false);
    if (r < 0) return -1;
    if (r == JSON_ABSENT && given(b, "factor"))
        return json_fail_field(bs, "rope_type", "one of " ROPE_TYPES ", since 'factor' is given",
                               NULL);
    return 0;
}

static int refuse_partial_rotary(const json_t *obj, const json_src *src) {
    double f = 1.0;
    if (json_get_double(obj, "partial_rotary_factor", src, &f, false) < 0) return -1;
    if (f != 1.0)
        return json_fail_unsupported(src, "partial_rotary_factor", "a partial rotary embedding",
                                     json_object_get(obj, "partial_rotary_factor"));
    return 0;
}

/* The block rope is read from: rope_scaling when it is a non-empty object, else rope_parameters,
 * else none. Either must be an object or null; per-layer-type blocks (Gemma-style
 * {"full_attention": {...}, "sliding_attention": {...}}) are refused. */
static int rope_block(const json_t *root, const json_src *src, const json_t **block,
                      const char **name) {
    static const char *const keys[] = {"rope_scaling", "rope_parameters"};
    static const char *const layer_keys[] = {"full_attention", "sliding_attention"};
    *block = NULL;
    *name = NULL;
    for (size_t i = 0; i < 2; i++) {
        const json_t *b = NULL;
        if (json_get_object(root, keys[i], src, &b, false) < 0) return -1;
        if (!*block && b && json_object_size(b) > 0) {
            *block = b;
            *name = keys[i];
        }
    }
    const json_src bs = {src->origin, *name};
    for (size_t i = 0; i < 2; i++)
        if (given(*block, layer_keys[i]))
            return json_fail_unsupported(&bs, layer_keys[i], "rope parameters per layer type",
                                         json_object_get(*block, layer_keys[i]));
    return 0;
}

static int read_rope(const json_t *root, const json_src *src, model_config *cfg) {
    const json_t *b = NULL;
    const char *name = NULL, *type = NULL, *type_key = NULL;
    rope_config *rope = &cfg->rope;
    if (rope_block(root, src, &b, &name) < 0) return -1;
    json_src bs = {src->origin, name};
    rope->theta = DEFAULT_ROPE_THETA;
    rope->attention_factor = 1.0;
    rope->truncate = true;
    if (json_get_positive(root, "rope_theta", src, &rope->theta, false) < 0 ||
        json_get_positive(b, "rope_theta", &bs, &rope->theta, false) < 0 ||
        refuse_partial_rotary(root, src) < 0 || refuse_partial_rotary(b, &bs) < 0 ||
        rope_type_of(b, &bs, &type, &type_key) < 0)
        return -1;
    if (strcmp(type, "default") == 0) {
        rope->kind = ROPE_DEFAULT;
        return 0;
    }
    if (strcmp(type, "linear") == 0) {
        rope->kind = ROPE_LINEAR;
        return rope_linear(b, &bs, rope);
    }
    if (strcmp(type, "llama3") == 0) {
        rope->kind = ROPE_LLAMA3;
        return rope_llama3(b, &bs, rope);
    }
    if (strcmp(type, "yarn") == 0) {
        rope->kind = ROPE_YARN;
        return rope_yarn(b, &bs, cfg->max_position, rope);
    }
    return json_fail_field(&bs, type_key, "a supported rope type (" ROPE_TYPES ")",
                           json_object_get(b, type_key));
}

/* ---- special tokens ---- */

/* A special token id v into *id: a non-negative integer inside the vocabulary. */
static int token_id(const json_t *v, const char *key, const json_src *src, int vocab, int *id) {
    if (json_value_int(v, key, src, 0, ANY_INT, id) < 0) return -1;
    if (*id >= vocab)
        return folio_fail("%s: field '%s': token id %d is outside the vocabulary (vocab_size %d: "
                          "ids 0 to %d)", src->origin, key, *id, vocab, vocab - 1);
    return 0;
}

/* eos_token_id: one id or a list of ids into ids[FOLIO_MAX_EOS] and *n; *found stays false (and
 * ids, *n untouched) when it is absent or null. */
static int read_eos(const json_t *obj, const json_src *src, int vocab, int *ids, int *n,
                    bool *found) {
    const json_t *v = given(obj, "eos_token_id");
    *found = v != NULL;
    if (!v) return 0;
    if (!json_is_array(v)) {
        *n = 1;
        return token_id(v, "eos_token_id", src, vocab, &ids[0]);
    }
    size_t count = json_array_size(v);
    if (count > FOLIO_MAX_EOS)
        return folio_fail("%s: field 'eos_token_id': expected at most %d ids, found %zu",
                          src->origin, FOLIO_MAX_EOS, count);
    for (size_t i = 0; i < count; i++) {
        char key[32];
        snprintf(key, sizeof key, "eos_token_id[%zu]", i);
        if (token_id(json_array_get(v, i), key, src, vocab, &ids[i]) < 0) return -1;
    }
    *n = (int)count;
    return 0;
}

/* EOS: generation_config.json's when it names any, else config.json's. BOS: config.json's, else
 * generation_config.json's, else -1. Every id given (in either file) must be inside the
 * vocabulary. */
static int read_tokens(const json_t *root, const json_t *gen, const json_src *src,
                       const json_src *gsrc, model_config *cfg) {
    bool found = false;
    cfg->bos_id = -1;
    if (read_eos(root, src, cfg->vocab, cfg->eos_ids, &cfg->n_eos, &found) < 0 ||
        read_eos(gen, gsrc, cfg->vocab, cfg->eos_ids, &cfg->n_eos, &found) < 0)
        return -1;
    const json_t *bos = given(root, "bos_token_id"), *gen_bos = given(gen, "bos_token_id");
    if (gen_bos && token_id(gen_bos, "bos_token_id", gsrc, cfg->vocab, &cfg->bos_id) < 0)
        return -1;
    if (bos && token_id(bos, "bos_token_id", src, cfg->vocab, &cfg->bos_id) < 0) return -1;
    return 0;
}

/* ---- entry points ---- */

static int parse_roots(const json_t *root, const json_t *gen, const char *origin,
                       const char *gen_origin, model_config *cfg) {
    const json_src src = {origin, NULL}, gsrc = {gen_origin, NULL};
    const family *fam = NULL;
    if (read_arch(root, &src, cfg, &fam) < 0 || read_sizes(root, &src, fam, cfg) < 0 ||
        quant_config_read(root, &src, cfg) < 0 || read_activation(root, &src) < 0 ||
        read_dtype(root, &src, cfg) < 0 || read_layout(root, &src, cfg) < 0 ||
        read_sliding(root, &src, fam, cfg) < 0 || read_rope(root, &src, cfg) < 0 ||
        read_tokens(root, gen, &src, &gsrc, cfg) < 0) {
        model_config_free(cfg);
        return -1;
    }
    return 0;
}

/* "DIR/NAME", or NAME alone when dir is NULL or empty; the caller frees it. */
static char *path_in(const char *dir, const char *name) {
    if (!dir || !dir[0]) return folio_xstrdup(name);
    size_t n = strlen(dir);
    while (n > 0 && dir[n - 1] == '/') n--; /* "dir/" and "dir" alike; "/" stays the root */
    size_t len = n + 1 + strlen(name) + 1;
    char *p = folio_xmalloc(len);
    snprintf(p, len, "%.*s/%s", (int)n, dir, name);
    return p;
}

int model_config_load(const char *dir, model_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    char *cpath = path_in(dir, "config.json"), *gpath = path_in(dir, "generation_config.json");
    json_t *root = NULL, *gen = NULL;
    int r = -1;
    if (json_read_file(cpath, false, &root) == JSON_OK && json_read_file(gpath, true, &gen) >= 0)
        r = parse_roots(root, gen, cpath, gpath, cfg);
    json_decref(root);
    json_decref(gen);
    free(cpath);
    free(gpath);
    return r;
}

int model_config_parse(const char *config_json, const char *generation_json, const char *origin,
                       model_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    char *cpath = path_in(origin, "config.json");
    char *gpath = path_in(origin, "generation_config.json");
    json_t *root = json_parse_object(config_json, cpath), *gen = NULL;
    int r = -1;
    if (root && (!generation_json || (gen = json_parse_object(generation_json, gpath))))
        r = parse_roots(root, gen, cpath, gpath, cfg);
    json_decref(root);
    json_decref(gen);
    free(cpath);
    free(gpath);
    return r;
}

void model_config_free(model_config *cfg) {
    if (!cfg) return;
    free(cfg->sliding_window);
    quant_config_free(&cfg->quant);
    memset(cfg, 0, sizeof *cfg);
}

long long model_config_param_count(const model_config *cfg) {
    long long h = cfg->hidden, f = cfg->intermediate, d = cfg->head_dim;
    long long q = (long long)cfg->n_heads * d, kv = (long long)cfg->n_kv_heads * d;
    long long layer = h * q + 2 * h * kv + q * h /* q, k, v, o */
                      + 3 * h * f                /* gate, up, down */
                      + 2 * h;                   /* input and post-attention norms */
    if (cfg->qkv_bias) layer += q + 2 * kv;
    if (cfg->o_bias) layer += h;
    if (cfg->mlp_bias) layer += 2 * f + h;
    if (cfg->qk_norm) layer += 2 * d;
    long long embed = (long long)cfg->vocab * h;
    return embed * (cfg->tie_embeddings ? 1 : 2) + cfg->n_layers * layer + h /* final norm */;
}
