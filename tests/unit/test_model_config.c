/* Tests of model_config (config.json + generation_config.json -> model_config) and of the typed
 * JSON readers it uses: real published configs of every supported family, both ways rope is
 * written, sliding windows, EOS precedence, parameter counts of configs/, and one test per kind
 * of error with the file, field and value the message must name. Real configs live in
 * tests/unit/data/configs/ and configs/; variants are made by patching them in memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "error.h"
#include "json_util.h"
#include "model_config.h"

#define DATA FOLIO_SOURCE_DIR "/tests/unit/data/configs/"
#define BENCH FOLIO_SOURCE_DIR "/configs/"

/* ---- helpers ---- */

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

/* The config at path with the fields of patch (a JSON object) set; a patch value of the string
 * "<absent>" removes the field instead. The caller frees the text. */
static char *patched(const char *path, const char *patch) {
    char *text = read_text(path);
    json_t *root = json_loads(text, 0, NULL), *p = json_loads(patch, 0, NULL);
    assert_non_null(root);
    if (!p) fail_msg("bad patch in test: %s", patch);
    const char *key;
    json_t *value;
    json_object_foreach(p, key, value) {
        if (json_is_string(value) && strcmp(json_string_value(value), "<absent>") == 0)
            json_object_del(root, key);
        else
            json_object_set(root, key, value);
    }
    char *out = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    json_decref(p);
    free(text);
    return out;
}

static void load_ok(const char *dir, model_config *c) {
    if (model_config_load(dir, c) != 0) fail_msg("%s: %s", dir, folio_last_error());
}

static void parse_ok(const char *config, const char *gen, model_config *c) {
    if (model_config_parse(config, gen, NULL, c) != 0) fail_msg("%s", folio_last_error());
}

/* The last error contains every one of the NULL-terminated needles. */
static void assert_error_has(const char *first, ...) {
    const char *msg = folio_last_error();
    va_list ap;
    va_start(ap, first);
    for (const char *n = first; n; n = va_arg(ap, const char *))
        if (!strstr(msg, n)) fail_msg("error \"%s\" does not contain \"%s\"", msg, n);
    va_end(ap);
}

/* A failed parse or load leaves cfg as model_config_free would: zeroed, nothing owned. */
static void assert_clean(const model_config *c) {
    model_config zero;
    memset(&zero, 0, sizeof zero);
    assert_memory_equal(c, &zero, sizeof zero);
}

/* Parsing `text` (generation config `gen`) fails; the message names every needle. */
#define EXPECT_FAIL(text, gen, ...)                                            \
    do {                                                                       \
        model_config c_;                                                       \
        folio_clear_error();                                                   \
        assert_int_equal(model_config_parse((text), (gen), NULL, &c_), -1);    \
        assert_clean(&c_);                                                     \
        assert_error_has(__VA_ARGS__, NULL);                                   \
    } while (0)

/* Patching the Llama 3.1 8B config with `patch` makes parsing fail naming every needle. */
#define EXPECT_PATCH_FAIL(patch, ...)                                          \
    do {                                                                       \
        char *t_ = patched(DATA "llama-3.1-8b-instruct/config.json", (patch)); \
        EXPECT_FAIL(t_, NULL, __VA_ARGS__);                                    \
        free(t_);                                                              \
    } while (0)

static void assert_near(double a, double b) {
    if (fabs(a - b) > 1e-12 * fmax(1.0, fabs(b))) fail_msg("%.17g != %.17g", a, b);
}

static void assert_windows(const model_config *c, int first_sliding, int window) {
    assert_non_null(c->sliding_window);
    for (int i = 0; i < c->n_layers; i++)
        assert_int_equal(c->sliding_window[i], i >= first_sliding ? window : 0);
}

static void assert_eos(const model_config *c, int n, const int *ids) {
    assert_int_equal(c->n_eos, n);
    for (int i = 0; i < n; i++) assert_int_equal(c->eos_ids[i], ids[i]);
}

static void assert_same_rope(const rope_config *a, const rope_config *b) {
    assert_int_equal(a->kind, b->kind);
    assert_near(a->theta, b->theta);
    assert_near(a->factor, b->factor);
    assert_near(a->low_freq_factor, b->low_freq_factor);
    assert_near(a->high_freq_factor, b->high_freq_factor);
    assert_int_equal(a->original_max_position, b->original_max_position);
    assert_near(a->beta_fast, b->beta_fast);
    assert_near(a->beta_slow, b->beta_slow);
    assert_near(a->attention_factor, b->attention_factor);
    assert_int_equal(a->truncate, b->truncate);
}

/* Every field equal (the window arrays by content). */
static void assert_same_config(const model_config *a, const model_config *b) {
    assert_int_equal(a->arch, b->arch);
    assert_string_equal(a->arch_name, b->arch_name);
    assert_int_equal(a->hidden, b->hidden);
    assert_int_equal(a->intermediate, b->intermediate);
    assert_int_equal(a->n_layers, b->n_layers);
    assert_int_equal(a->n_heads, b->n_heads);
    assert_int_equal(a->n_kv_heads, b->n_kv_heads);
    assert_int_equal(a->head_dim, b->head_dim);
    assert_int_equal(a->vocab, b->vocab);
    assert_int_equal(a->max_position, b->max_position);
    assert_near(a->rms_eps, b->rms_eps);
    assert_same_rope(&a->rope, &b->rope);
    assert_int_equal(a->tie_embeddings, b->tie_embeddings);
    assert_int_equal(a->qkv_bias, b->qkv_bias);
    assert_int_equal(a->o_bias, b->o_bias);
    assert_int_equal(a->mlp_bias, b->mlp_bias);
    assert_int_equal(a->qk_norm, b->qk_norm);
    assert_memory_equal(a->sliding_window, b->sliding_window, (size_t)a->n_layers * sizeof(int));
    assert_int_equal(a->dtype, b->dtype);
    assert_int_equal(a->bos_id, b->bos_id);
    assert_eos(a, b->n_eos, b->eos_ids);
}

/* Within 0.5% of an approximate published count. */
static void assert_params_about(const model_config *c, double expected) {
    double n = (double)model_config_param_count(c);
    if (fabs(n - expected) > 0.005 * expected)
        fail_msg("%s: %.0f parameters, expected about %.4g", c->arch_name, n, expected);
}

/* ---- real configs ---- */

static void test_stories260k(void **state) {
    (void)state;
    model_config c;
    const char *dir = FOLIO_SOURCE_DIR "/configs/stories260K";
    load_ok(dir, &c);
    assert_int_equal(c.arch, ARCH_LLAMA);
    assert_string_equal(c.arch_name, "LlamaForCausalLM");
    assert_int_equal(c.hidden, 64);
    assert_int_equal(c.intermediate, 172);
    assert_int_equal(c.n_layers, 5);
    assert_int_equal(c.n_heads, 8);
    assert_int_equal(c.n_kv_heads, 4);
    assert_int_equal(c.head_dim, 8);
    assert_int_equal(c.vocab, 512);
    assert_int_equal(c.max_position, 512);
    assert_near(c.rms_eps, 1e-5);
    assert_int_equal(c.rope.kind, ROPE_DEFAULT);
    assert_near(c.rope.theta, 10000.0);
    assert_near(c.rope.attention_factor, 1.0);
    assert_true(c.tie_embeddings);
    assert_false(c.qkv_bias || c.o_bias || c.mlp_bias || c.qk_norm);
    assert_windows(&c, c.n_layers, 0);
    assert_int_equal(c.dtype, DTYPE_F32);
    assert_int_equal(c.bos_id, 1);
    assert_eos(&c, 1, (const int[]){2});
    /* embed 512*64 (tied) + 5 * (4096 q + 2*2048 kv + 4096 o + 3*64*172 mlp + 128 norms) + 64 */
    assert_int_equal(model_config_param_count(&c), 260032);
    model_config_free(&c);
    assert_clean(&c);
}

static void test_llama31_classic_and_rope_parameters_agree(void **state) {
    (void)state;
    model_config a, b;
    load_ok(DATA "llama-3.1-8b-instruct", &a);
    load_ok(DATA "llama-3.1-8b-instruct-v5/", &b); /* trailing slash on purpose */
    assert_int_equal(a.rope.kind, ROPE_LLAMA3);
    assert_near(a.rope.theta, 500000.0);
    assert_near(a.rope.factor, 8.0);
    assert_near(a.rope.low_freq_factor, 1.0);
    assert_near(a.rope.high_freq_factor, 4.0);
    assert_int_equal(a.rope.original_max_position, 8192);
    assert_near(a.rope.attention_factor, 1.0);
    assert_int_equal(a.max_position, 131072);
    assert_int_equal(a.n_kv_heads, 8);
    assert_int_equal(a.head_dim, 128);
    assert_int_equal(a.dtype, DTYPE_BF16);
    assert_int_equal(a.bos_id, 128000);
    assert_eos(&a, 3, (const int[]){128001, 128008, 128009});
    assert_false(a.tie_embeddings);
    assert_int_equal(model_config_param_count(&a), 8030261248LL);
    assert_same_config(&a, &b);
    model_config_free(&a);
    model_config_free(&b);
}

static void test_llama2_linear_with_old_type_key(void **state) {
    (void)state;
    model_config c;
    load_ok(DATA "llama-2-7b-linear", &c);
    assert_int_equal(c.rope.kind, ROPE_LINEAR);
    assert_near(c.rope.factor, 2.0);
    assert_near(c.rope.theta, 10000.0); /* no rope_theta: LlamaConfig's default */
    assert_near(c.rope.attention_factor, 1.0);
    assert_int_equal(c.n_kv_heads, 32);
    assert_int_equal(c.dtype, DTYPE_F16);
    assert_int_equal(c.bos_id, 1);
    assert_eos(&c, 1, (const int[]){2});
    assert_int_equal(model_config_param_count(&c), 6738415616LL);
    model_config_free(&c);
}

static void test_mistral_v01_window_and_v03_null(void **state) {
    (void)state;
    model_config c;
    load_ok(DATA "mistral-7b-v0.1", &c);
    assert_int_equal(c.arch, ARCH_MISTRAL);
    assert_windows(&c, 0, 4096);
    assert_false(c.qkv_bias || c.o_bias || c.mlp_bias || c.qk_norm);
    assert_near(c.rope.theta, 10000.0);
    assert_int_equal(model_config_param_count(&c), 7241732096LL);
    model_config_free(&c);

    load_ok(DATA "mistral-7b-v0.3", &c);
    assert_windows(&c, c.n_layers, 0);
    assert_int_equal(c.vocab, 32768);
    assert_near(c.rope.theta, 1000000.0);
    model_config_free(&c);

    /* Absent (not null): MistralConfig's default window of 4096. */
    char *t = patched(DATA "mistral-7b-v0.1/config.json", "{\"sliding_window\": \"<absent>\"}");
    parse_ok(t, NULL, &c);
    assert_windows(&c, 0, 4096);
    model_config_free(&c);
    free(t);
}

static void test_qwen25_7b(void **state) {
    (void)state;
    model_config c;
    load_ok(BENCH "qwen2.5-7b", &c);
    assert_int_equal(c.arch, ARCH_QWEN2);
    assert_true(c.qkv_bias);
    assert_false(c.o_bias || c.mlp_bias || c.qk_norm || c.tie_embeddings);
    assert_windows(&c, c.n_layers, 0); /* use_sliding_window false: window 131072 unused */
    assert_int_equal(c.head_dim, 128);
    assert_int_equal(c.n_kv_heads, 4);
    assert_near(c.rms_eps, 1e-6);
    assert_near(c.rope.theta, 1000000.0);
    assert_int_equal(c.max_position, 32768);
    assert_eos(&c, 2, (const int[]){151645, 151643}); /* generation_config.json's list */
    assert_int_equal(model_config_param_count(&c), 7615616512LL);
    model_config_free(&c);
}

static void test_qwen3_06b(void **state) {
    (void)state;
    model_config c;
    load_ok(DATA "qwen3-0.6b", &c);
    assert_int_equal(c.arch, ARCH_QWEN3);
    assert_int_equal(c.head_dim, 128); /* not 1024 / 16 */
    assert_true(c.tie_embeddings);
    assert_true(c.qk_norm);
    assert_false(c.qkv_bias || c.o_bias || c.mlp_bias);
    assert_windows(&c, c.n_layers, 0);
    assert_int_equal(c.rope.kind, ROPE_DEFAULT);
    assert_int_equal(c.bos_id, 151643);
    assert_eos(&c, 2, (const int[]){151645, 151643});
    /* 0.6B total, 0.44B without the (tied) embedding, as Qwen publishes */
    assert_int_equal(model_config_param_count(&c), 596049920LL);
    model_config_free(&c);

    /* head_dim absent: Qwen3Config's default of 128, not hidden / heads */
    char *t = patched(DATA "qwen3-0.6b/config.json", "{\"head_dim\": \"<absent>\"}");
    parse_ok(t, NULL, &c);
    assert_int_equal(c.head_dim, 128);
    model_config_free(&c);
    free(t);

    /* attention_bias moves q, k, v and o to biased projections */
    t = patched(DATA "qwen3-0.6b/config.json", "{\"attention_bias\": true}");
    parse_ok(t, NULL, &c);
    assert_true(c.qkv_bias && c.o_bias);
    assert_int_equal(model_config_param_count(&c), 596049920LL + 28LL * (2048 + 2 * 1024 + 1024));
    model_config_free(&c);
    free(t);
}

static void test_qwen2_sliding_window_layers(void **state) {
    (void)state;
    model_config c;
    char *t = patched(BENCH "qwen2.5-7b/config.json",
                      "{\"use_sliding_window\": true, \"sliding_window\": 4096,"
                      " \"max_window_layers\": 20}");
    parse_ok(t, NULL, &c);
    assert_windows(&c, 20, 4096);
    model_config_free(&c);
    free(t);

    /* max_window_layers absent: Qwen2Config's default of 28 */
    t = patched(BENCH "qwen2.5-7b/config.json",
                "{\"use_sliding_window\": true, \"num_hidden_layers\": 30,"
                " \"max_window_layers\": \"<absent>\"}");
    parse_ok(t, NULL, &c);
    assert_windows(&c, 28, 131072);
    model_config_free(&c);
    free(t);

    /* layer_types decides instead of max_window_layers */
    t = patched(BENCH "qwen2.5-7b/config.json",
                "{\"use_sliding_window\": true, \"num_hidden_layers\": 4, \"sliding_window\": 512,"
                " \"layer_types\": [\"sliding_attention\", \"full_attention\","
                " \"sliding_attention\", \"full_attention\"]}");
    parse_ok(t, NULL, &c);
    for (int i = 0; i < 4; i++) assert_int_equal(c.sliding_window[i], i % 2 == 0 ? 512 : 0);
    model_config_free(&c);
    free(t);

    /* layer_types without use_sliding_window: no window anywhere (transformers sets
     * sliding_window to None) */
    t = patched(BENCH "qwen2.5-7b/config.json",
                "{\"num_hidden_layers\": 2,"
                " \"layer_types\": [\"sliding_attention\", \"sliding_attention\"]}");
    parse_ok(t, NULL, &c);
    assert_windows(&c, c.n_layers, 0);
    model_config_free(&c);
    free(t);

    /* use_sliding_window true with a null window: none */
    t = patched(BENCH "qwen2.5-7b/config.json",
                "{\"use_sliding_window\": true, \"sliding_window\": null,"
                " \"max_window_layers\": 0}");
    parse_ok(t, NULL, &c);
    assert_windows(&c, 0, 0);
    model_config_free(&c);
    free(t);
}

static void test_llama_layer_types(void **state) {
    (void)state;
    model_config c;
    char *t = patched(BENCH "llama-3-8b/config.json",
                      "{\"num_hidden_layers\": 3, \"sliding_window\": 1024,"
                      " \"layer_types\": [\"full_attention\", \"sliding_attention\","
                      " \"full_attention\"]}");
    parse_ok(t, NULL, &c);
    assert_int_equal(c.sliding_window[0], 0);
    assert_int_equal(c.sliding_window[1], 1024);
    assert_int_equal(c.sliding_window[2], 0);
    model_config_free(&c);
    free(t);

    /* a sliding_window without layer_types means nothing to Llama */
    t = patched(BENCH "llama-3-8b/config.json", "{\"sliding_window\": 1024}");
    parse_ok(t, NULL, &c);
    assert_windows(&c, c.n_layers, 0);
    model_config_free(&c);
    free(t);
}

static void test_generation_config_eos_list_wins(void **state) {
    (void)state;
    model_config c;
    char *t = read_text(BENCH "llama-3-8b/config.json"); /* eos_token_id 128001 */
    parse_ok(t, "{\"eos_token_id\": [128001, 128008, 128009]}", &c);
    assert_eos(&c, 3, (const int[]){128001, 128008, 128009});
    assert_int_equal(c.bos_id, 128000);
    model_config_free(&c);

    /* a generation config without eos_token_id leaves config.json's */
    parse_ok(t, "{\"temperature\": 0.6}", &c);
    assert_eos(&c, 1, (const int[]){128001});
    model_config_free(&c);
    free(t);

    /* bos from the generation config when config.json has none; -1 when neither has */
    t = patched(BENCH "llama-3-8b/config.json",
                "{\"bos_token_id\": null, \"eos_token_id\": \"<absent>\"}");
    parse_ok(t, "{\"bos_token_id\": 7, \"eos_token_id\": 9}", &c);
    assert_int_equal(c.bos_id, 7);
    assert_eos(&c, 1, (const int[]){9});
    model_config_free(&c);
    parse_ok(t, NULL, &c);
    assert_int_equal(c.bos_id, -1);
    assert_int_equal(c.n_eos, 0);
    model_config_free(&c);
    free(t);
}

static void test_mqa(void **state) {
    (void)state;
    model_config c;
    char *t = patched(BENCH "llama-3-8b/config.json", "{\"num_key_value_heads\": 1}");
    parse_ok(t, NULL, &c);
    assert_int_equal(c.n_kv_heads, 1);
    assert_int_equal(c.head_dim, 128);
    /* 8B with k and v shrunk from 8 to 1 head of 128 in each of 32 layers */
    assert_int_equal(model_config_param_count(&c), 8030261248LL - 32LL * 2 * 4096 * 7 * 128);
    model_config_free(&c);
    free(t);
}

static void test_llama_biases_and_defaults(void **state) {
    (void)state;
    model_config c;
    char *t = patched(BENCH "llama-3-8b/config.json",
                      "{\"attention_bias\": true, \"mlp_bias\": true}");
    parse_ok(t, NULL, &c);
    assert_true(c.qkv_bias && c.o_bias && c.mlp_bias);
    assert_false(c.qk_norm);
    long long per_layer = (4096 + 2 * 1024) + 4096 + (2 * 14336 + 4096);
    assert_int_equal(model_config_param_count(&c), 8030261248LL + 32 * per_layer);
    model_config_free(&c);
    free(t);

    /* Fields left out take LlamaConfig's defaults. */
    const char *minimal = "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 256,"
                          " \"intermediate_size\": 512, \"num_hidden_layers\": 2,"
                          " \"num_attention_heads\": 4, \"vocab_size\": 1000}";
    parse_ok(minimal, NULL, &c);
    assert_int_equal(c.n_kv_heads, 4);
    assert_int_equal(c.head_dim, 64);
    assert_int_equal(c.max_position, 2048);
    assert_near(c.rms_eps, 1e-6);
    assert_near(c.rope.theta, 10000.0);
    assert_int_equal(c.rope.kind, ROPE_DEFAULT);
    assert_int_equal(c.dtype, DTYPE_F32);
    assert_false(c.tie_embeddings || c.qkv_bias || c.o_bias || c.mlp_bias);
    assert_int_equal(c.bos_id, -1);
    assert_int_equal(c.n_eos, 0);
    model_config_free(&c);

    /* model_type when architectures is absent; an integral real is an integer */
    parse_ok("{\"model_type\": \"mistral\", \"hidden_size\": 256.0, \"intermediate_size\": 512,"
             " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 1000}",
             NULL, &c);
    assert_int_equal(c.arch, ARCH_MISTRAL);
    assert_string_equal(c.arch_name, "mistral");
    assert_int_equal(c.hidden, 256);
    assert_int_equal(c.max_position, 131072);
    model_config_free(&c);
}

static void test_dtype_keys(void **state) {
    (void)state;
    model_config c;
    char *t = patched(BENCH "llama-3-8b/config.json",
                      "{\"dtype\": \"float16\", \"torch_dtype\": \"bfloat16\"}");
    parse_ok(t, NULL, &c); /* "dtype" (transformers v5) first */
    assert_int_equal(c.dtype, DTYPE_F16);
    model_config_free(&c);
    free(t);
    t = patched(BENCH "llama-3-8b/config.json", "{\"torch_dtype\": \"<absent>\"}");
    parse_ok(t, NULL, &c);
    assert_int_equal(c.dtype, DTYPE_F32);
    model_config_free(&c);
    free(t);
}

static void test_yarn(void **state) {
    (void)state;
    model_config c;
    char *t = patched(BENCH "qwen2.5-7b/config.json",
                      "{\"rope_scaling\": {\"factor\": 4.0, \"original_max_position_embeddings\":"
                      " 32768, \"type\": \"yarn\"}}");
    parse_ok(t, NULL, &c);
    assert_int_equal(c.rope.kind, ROPE_YARN);
    assert_near(c.rope.factor, 4.0);
    assert_int_equal(c.rope.original_max_position, 32768);
    assert_near(c.rope.beta_fast, 32.0);
    assert_near(c.rope.beta_slow, 1.0);
    assert_near(c.rope.attention_factor, 0.1 * log(4.0) + 1.0);
    assert_true(c.rope.truncate);
    assert_near(c.rope.theta, 1000000.0);
    model_config_free(&c);
    free(t);

    /* explicit values; original_max_position_embeddings absent: max_position_embeddings */
    t = patched(BENCH "qwen2.5-7b/config.json",
                "{\"rope_parameters\": {\"rope_type\": \"yarn\", \"rope_theta\": 20000.0,"
                " \"factor\": 2.0, \"beta_fast\": 16, \"beta_slow\": 2, \"attention_factor\": 1.5,"
                " \"truncate\": false}}");
    parse_ok(t, NULL, &c);
    assert_near(c.rope.theta, 20000.0); /* the block's over the top-level rope_theta */
    assert_near(c.rope.factor, 2.0);
    assert_int_equal(c.rope.original_max_position, 32768);
    assert_near(c.rope.beta_fast, 16.0);
    assert_near(c.rope.beta_slow, 2.0);
    assert_near(c.rope.attention_factor, 1.5);
    assert_false(c.rope.truncate);
    model_config_free(&c);
    free(t);

    /* factor absent: max_position_embeddings / original_max_position_embeddings */
    t = patched(BENCH "qwen2.5-7b/config.json",
                "{\"max_position_embeddings\": 131072, \"rope_scaling\": {\"rope_type\": \"yarn\","
                " \"original_max_position_embeddings\": 32768}}");
    parse_ok(t, NULL, &c);
    assert_near(c.rope.factor, 4.0);
    model_config_free(&c);
    free(t);
}

static void test_rope_block_precedence(void **state) {
    (void)state;
    model_config c;
    /* transformers (v4 and v5) take a non-empty rope_scaling over rope_parameters */
    char *t = patched(BENCH "llama-3-8b/config.json",
                      "{\"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": 2.0},"
                      " \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 1.0}}");
    parse_ok(t, NULL, &c);
    assert_int_equal(c.rope.kind, ROPE_LINEAR);
    assert_near(c.rope.theta, 500000.0);
    model_config_free(&c);
    free(t);
    /* a null or empty rope_scaling leaves rope_parameters in charge */
    t = patched(BENCH "llama-3-8b/config.json",
                "{\"rope_scaling\": {}, \"rope_parameters\": {\"rope_type\": \"linear\","
                " \"factor\": 3.0, \"rope_theta\": 250000.0}}");
    parse_ok(t, NULL, &c);
    assert_int_equal(c.rope.kind, ROPE_LINEAR);
    assert_near(c.rope.factor, 3.0);
    assert_near(c.rope.theta, 250000.0);
    model_config_free(&c);
    free(t);
}

static void test_bench_configs(void **state) {
    (void)state;
    static const struct {
        const char *dir;
        double params;
        int bos, eos;
        rope_kind rope;
    } want[] = {
        {BENCH "llama-2-7b", 6.74e9, 1, 2, ROPE_DEFAULT},
        {BENCH "llama-3-8b", 8.03e9, 128000, 128001, ROPE_DEFAULT},
        {BENCH "llama-3.1-8b-instruct", 8.03e9, 128000, 128001, ROPE_LLAMA3}, /* 128k context */
        {BENCH "llama-3-70b", 70.55e9, 128000, 128001, ROPE_DEFAULT},
        {BENCH "qwen2.5-7b", 7.62e9, 151643, 151645, ROPE_DEFAULT},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        model_config c;
        load_ok(want[i].dir, &c);
        assert_params_about(&c, want[i].params);
        assert_int_equal(c.bos_id, want[i].bos);
        assert_int_equal(c.eos_ids[0], want[i].eos);
        assert_int_equal(c.rope.kind, want[i].rope);
        assert_true(c.dtype == DTYPE_BF16 || c.dtype == DTYPE_F16);
        model_config_free(&c);
    }
}


/* ---- quantization_config ---- */

static void parse_patch_ok(const char *patch, model_config *c) {
    char *t = patched(DATA "llama-3.1-8b-instruct/config.json", patch);
    parse_ok(t, NULL, c);
    free(t);
}

static void test_quant_configs(void **state) {
    (void)state;
    model_config c;
    parse_patch_ok("{\"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": 4, "
                   "\"group_size\": 128, \"desc_act\": true, \"sym\": false, "
                   "\"checkpoint_format\": \"gptq_v2\"}}", &c);
    assert_int_equal(c.quant.method, QUANT_GPTQ);
    assert_int_equal(c.quant.bits, 4);
    assert_int_equal(c.quant.group_size, 128);
    assert_true(c.quant.act_order && !c.quant.sym && c.quant.gptq_v2 && !c.quant.lm_head);
    assert_true(quant_module_quantized(&c.quant, "model.layers.0.mlp.up_proj"));
    assert_false(quant_module_quantized(&c.quant, "lm_head"));
    model_config_free(&c);
    parse_patch_ok("{\"quantization_config\": {\"quant_method\": \"awq\", \"bits\": 4, "
                   "\"group_size\": 64, \"version\": \"GEMM\", \"zero_point\": true, "
                   "\"modules_to_not_convert\": [\"mlp.down\"]}}", &c);
    assert_int_equal(c.quant.method, QUANT_AWQ);
    assert_false(quant_module_quantized(&c.quant, "model.layers.3.mlp.down_proj"));
    assert_true(quant_module_quantized(&c.quant, "model.layers.3.mlp.gate_proj"));
    model_config_free(&c);
    parse_patch_ok("{\"quantization_config\": {\"quant_method\": \"compressed-tensors\", "
                   "\"format\": \"pack-quantized\", \"ignore\": [\"re:.*layers[.]1[.].*\"], "
                   "\"config_groups\": {\"group_0\": {\"targets\": [\"Linear\"], "
                   "\"input_activations\": null, \"weights\": {\"num_bits\": 8, "
                   "\"type\": \"int\", \"symmetric\": true, \"strategy\": \"channel\", "
                   "\"actorder\": \"group\"}}}}}", &c);
    assert_int_equal(c.quant.method, QUANT_CT);
    assert_int_equal(c.quant.bits, 8);
    assert_int_equal(c.quant.group_size, -1);
    assert_true(c.quant.sym && c.quant.act_order && c.quant.lm_head);
    assert_false(quant_module_quantized(&c.quant, "model.layers.1.mlp.up_proj"));
    assert_true(quant_module_quantized(&c.quant, "model.layers.11.mlp.up_proj"));
    model_config_free(&c);
}

static void test_error_quant(void **state) {
    (void)state;
    EXPECT_PATCH_FAIL("{\"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": 3, "
                      "\"group_size\": 128}}",
                      "config.json: field 'quantization_config.bits': 3 is not supported (4 or 8)");
    EXPECT_PATCH_FAIL("{\"quantization_config\": {\"quant_method\": \"awq\", \"bits\": 8, "
                      "\"group_size\": 128}}", "'quantization_config.bits': 8", "(4)");
    EXPECT_PATCH_FAIL("{\"quantization_config\": {\"quant_method\": \"awq\", \"bits\": 4, "
                      "\"group_size\": 128, \"version\": \"gemv\"}}",
                      "'quantization_config.version': \"gemv\" is not supported");
    EXPECT_PATCH_FAIL("{\"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": 4, "
                      "\"group_size\": 128, \"checkpoint_format\": \"marlin\"}}",
                      "'quantization_config.checkpoint_format': \"marlin\"");
    EXPECT_PATCH_FAIL("{\"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": 4, "
                      "\"group_size\": 128, \"dynamic\": {\"-:.*down\": {}}}}",
                      "'quantization_config.dynamic'", "not supported");
    EXPECT_PATCH_FAIL("{\"quantization_config\": {\"quant_method\": \"compressed-tensors\", "
                      "\"format\": \"marlin-24\", \"config_groups\": {\"g\": "
                      "{\"targets\": [\"Linear\"], \"weights\": {\"num_bits\": 4, "
                      "\"strategy\": \"group\", \"group_size\": 128}}}}}",
                      "'quantization_config.format': \"marlin-24\"",
                      "pack-quantized or float-quantized");
    EXPECT_PATCH_FAIL("{\"quantization_config\": {\"quant_method\": \"compressed-tensors\", "
                      "\"format\": \"pack-quantized\", \"config_groups\": {\"g\": "
                      "{\"targets\": [\"Linear\"], \"input_activations\": {\"num_bits\": 8}, "
                      "\"weights\": {\"num_bits\": 4, \"strategy\": \"group\", "
                      "\"group_size\": 128}}}}}",
                      "'quantization_config.config_groups.g.input_activations'");
}

/* ---- errors ---- */

static void test_error_architecture(void **state) {
    (void)state;
    EXPECT_PATCH_FAIL("{\"architectures\": [\"Gemma2ForCausalLM\"]}", "config.json",
                      "'architectures'", "\"Gemma2ForCausalLM\"", model_config_supported());
    EXPECT_PATCH_FAIL("{\"architectures\": \"<absent>\", \"model_type\": \"gpt2\"}",
                      "'model_type'", "\"gpt2\"", "Qwen3ForCausalLM");
    EXPECT_PATCH_FAIL("{\"architectures\": \"<absent>\", \"model_type\": \"<absent>\"}",
                      "neither 'architectures' nor 'model_type'");
    EXPECT_PATCH_FAIL("{\"architectures\": [42]}", "'architectures[0]'", "a string", "42");
    EXPECT_PATCH_FAIL("{\"quantization_config\": {\"quant_method\": \"bitsandbytes\"}}",
                      "'quantization_config.quant_method'", "\"bitsandbytes\" is not supported",
                      "awq, gptq, compressed-tensors or fp8");
    assert_string_equal(model_config_supported(),
                        "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, "
                        "Qwen3ForCausalLM");
}

static void test_error_sizes(void **state) {
    (void)state;
    EXPECT_PATCH_FAIL("{\"hidden_size\": \"abc\"}", "config.json: field 'hidden_size': "
                      "expected a positive integer, found \"abc\"");
    EXPECT_PATCH_FAIL("{\"hidden_size\": -4096}", "'hidden_size'", "positive", "-4096");
    EXPECT_PATCH_FAIL("{\"hidden_size\": 4096.5}", "'hidden_size'", "4096.5");
    EXPECT_PATCH_FAIL("{\"hidden_size\": true}", "'hidden_size'", "found true");
    EXPECT_PATCH_FAIL("{\"hidden_size\": 3000000000}", "'hidden_size'", "at most", "3000000000");
    EXPECT_PATCH_FAIL("{\"hidden_size\": \"<absent>\"}", "'hidden_size': missing");
    EXPECT_PATCH_FAIL("{\"num_hidden_layers\": 0}", "'num_hidden_layers'", "found 0");
    EXPECT_PATCH_FAIL("{\"intermediate_size\": null}", "'intermediate_size'", "found null");
    EXPECT_PATCH_FAIL("{\"vocab_size\": [128256]}", "'vocab_size'", "[128256]");
    EXPECT_PATCH_FAIL("{\"num_key_value_heads\": 5}", "'num_key_value_heads'",
                      "num_attention_heads (32)", "num_key_value_heads (5)");
    EXPECT_PATCH_FAIL("{\"hidden_size\": 4000, \"num_attention_heads\": 48,"
                      " \"num_key_value_heads\": 8}",
                      "'head_dim'", "hidden_size (4000)", "num_attention_heads (48)");
    EXPECT_PATCH_FAIL("{\"head_dim\": \"128\"}", "'head_dim'", "\"128\"");
    EXPECT_PATCH_FAIL("{\"max_position_embeddings\": -1}", "'max_position_embeddings'", "-1");
    /* absurd: accepted, it once sized 32 GB rope tables and aborted (issue 13) */
    EXPECT_PATCH_FAIL("{\"max_position_embeddings\": 2147483647}", "'max_position_embeddings'",
                      "at most 16777216", "found 2147483647");
    EXPECT_PATCH_FAIL("{\"rms_norm_eps\": 0}", "'rms_norm_eps'", "a positive number", "found 0");
    EXPECT_PATCH_FAIL("{\"rms_norm_eps\": \"1e-5\"}", "'rms_norm_eps'", "\"1e-5\"");
}

static void test_error_fields(void **state) {
    (void)state;
    EXPECT_PATCH_FAIL("{\"hidden_act\": \"gelu\"}", "'hidden_act'", "\"silu\"", "\"gelu\"");
    EXPECT_PATCH_FAIL("{\"torch_dtype\": \"float8_e4m3fn\"}", "'torch_dtype'", "float8_e4m3fn",
                      "bfloat16");
    EXPECT_PATCH_FAIL("{\"dtype\": 16}", "'dtype'", "a string", "16");
    EXPECT_PATCH_FAIL("{\"tie_word_embeddings\": \"yes\"}", "'tie_word_embeddings'",
                      "true or false", "\"yes\"");
    EXPECT_PATCH_FAIL("{\"attention_bias\": 1}", "'attention_bias'", "true or false");
    EXPECT_PATCH_FAIL("{\"partial_rotary_factor\": 0.5}", "'partial_rotary_factor'",
                      "not supported", "0.5");
    EXPECT_PATCH_FAIL("{\"num_hidden_layers\": 3, \"layer_types\": [\"full_attention\","
                      " \"chunked_attention\", \"full_attention\"]}",
                      "'layer_types[1]'", "\"chunked_attention\"", "sliding_attention");
    EXPECT_PATCH_FAIL("{\"num_hidden_layers\": 3, \"layer_types\": [\"full_attention\"]}",
                      "'layer_types'", "3 entries", "found 1");

    char *t = patched(BENCH "qwen2.5-7b/config.json", "{\"use_sliding_window\": \"true\"}");
    EXPECT_FAIL(t, NULL, "'use_sliding_window'", "\"true\"");
    free(t);
    t = patched(DATA "mistral-7b-v0.1/config.json", "{\"sliding_window\": -1}");
    EXPECT_FAIL(t, NULL, "'sliding_window'", "non-negative", "-1");
    free(t);
    t = patched(BENCH "qwen2.5-7b/config.json",
                "{\"use_sliding_window\": true, \"max_window_layers\": -3}");
    EXPECT_FAIL(t, NULL, "'max_window_layers'", "-3");
    free(t);
}

static void test_error_rope(void **state) {
    (void)state;
    EXPECT_PATCH_FAIL("{\"rope_scaling\": {\"rope_type\": \"dynamic\", \"factor\": 2.0}}",
                      "'rope_scaling.rope_type'", "\"dynamic\"", "default, linear, llama3, yarn");
    EXPECT_PATCH_FAIL("{\"rope_scaling\": {\"type\": \"su\", \"factor\": 2.0}}",
                      "'rope_scaling.type'", "\"su\"");
    EXPECT_PATCH_FAIL("{\"rope_scaling\": null, \"rope_parameters\": {\"rope_type\": \"longrope\","
                      " \"rope_theta\": 10000.0}}",
                      "'rope_parameters.rope_type'", "\"longrope\"");
    EXPECT_PATCH_FAIL("{\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0,"
                      " \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192}}",
                      "'rope_scaling.low_freq_factor': missing");
    EXPECT_PATCH_FAIL("{\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0,"
                      " \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0}}",
                      "'rope_scaling.original_max_position_embeddings': missing");
    EXPECT_PATCH_FAIL("{\"rope_scaling\": {\"type\": \"linear\"}}",
                      "'rope_scaling.factor': missing");
    EXPECT_PATCH_FAIL("{\"rope_scaling\": {\"type\": \"linear\", \"factor\": \"2\"}}",
                      "'rope_scaling.factor'", "\"2\"");
    EXPECT_PATCH_FAIL("{\"rope_scaling\": {\"factor\": 2.0}}", "'rope_scaling.rope_type': missing");
    EXPECT_PATCH_FAIL("{\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 40.0,"
                      " \"mscale\": 0.707, \"mscale_all_dim\": 0.707}}",
                      "'rope_scaling.mscale'", "not supported", "0.707");
    EXPECT_PATCH_FAIL("{\"rope_scaling\": \"linear\"}", "'rope_scaling'", "an object",
                      "\"linear\"");
    EXPECT_PATCH_FAIL("{\"rope_theta\": -1}", "'rope_theta'", "-1");
    EXPECT_PATCH_FAIL("{\"rope_scaling\": null, \"rope_parameters\": {\"full_attention\":"
                      " {\"rope_type\": \"default\"}, \"sliding_attention\": {}}}",
                      "'rope_parameters.full_attention'", "not supported");
}

static void test_error_eos(void **state) {
    (void)state;
    EXPECT_PATCH_FAIL("{\"eos_token_id\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,"
                      " 17]}",
                      "'eos_token_id'", "at most 16", "found 17");
    EXPECT_PATCH_FAIL("{\"eos_token_id\": [128001, \"128009\"]}", "'eos_token_id[1]'",
                      "\"128009\"");
    EXPECT_PATCH_FAIL("{\"bos_token_id\": -5}", "'bos_token_id'", "-5");
    /* ids outside the vocabulary (vocab_size 128256), in either file */
    EXPECT_PATCH_FAIL("{\"bos_token_id\": 128256}", "config.json: field 'bos_token_id'",
                      "token id 128256 is outside the vocabulary (vocab_size 128256");
    EXPECT_PATCH_FAIL("{\"eos_token_id\": [128001, 999999]}", "field 'eos_token_id[1]'",
                      "token id 999999 is outside the vocabulary");
    char *t = read_text(BENCH "llama-3-8b/config.json");
    EXPECT_FAIL(t, "{\"eos_token_id\": 128256}", "generation_config.json: field 'eos_token_id'",
                "token id 128256");
    EXPECT_FAIL(t, "{\"bos_token_id\": 200000}", "generation_config.json: field 'bos_token_id'",
                "token id 200000");
    EXPECT_FAIL(t, "{\"eos_token_id\": {\"id\": 2}}", "generation_config.json",
                "'eos_token_id'", "{\"id\":2}");
    EXPECT_FAIL(t, "{\"eos_token_id\": [1,]}", "generation_config.json", "invalid JSON",
                "line 1");
    free(t);
}

static void test_error_json_and_files(void **state) {
    (void)state;
    EXPECT_FAIL("{\"hidden_size\": 4096,,}", NULL, "config.json: invalid JSON at line 1, column");
    EXPECT_FAIL("{\n  \"hidden_size\": 4096\n  \"vocab_size\": 1\n}", NULL, "line 3");
    EXPECT_FAIL("[1, 2]", NULL, "config.json", "expected a JSON object at the top level",
                "[1,2]");
    EXPECT_FAIL("", NULL, "config.json: invalid JSON");
    EXPECT_FAIL(NULL, NULL, "config.json", "no JSON text");

    model_config c;
    folio_clear_error();
    assert_int_equal(model_config_parse("{}", NULL, "models/x", &c), -1);
    assert_error_has("models/x/config.json: neither", NULL);

    assert_int_equal(model_config_load("/nonexistent/folio-model", &c), -1);
    assert_clean(&c);
    assert_error_has("/nonexistent/folio-model/config.json", "cannot open",
                     "No such file or directory", NULL);

    /* a directory holding a broken generation_config.json, and one where config.json is a
     * directory */
    char dir[] = "/tmp/folio-test-config-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 128,"
          " \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"vocab_size\": 10}", f);
    fclose(f);
    load_ok(dir, &c); /* no generation_config.json: fine */
    assert_int_equal(c.n_eos, 0);
    model_config_free(&c);
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"eos_token_id\": 2,\n \"bos_token_id\": }", f);
    fclose(f);
    assert_int_equal(model_config_load(dir, &c), -1);
    assert_clean(&c);
    assert_error_has(path, "invalid JSON at line 2", NULL);
    unlink(path);
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(model_config_load(dir, &c), -1);
    assert_error_has(path, "is a directory", NULL);
    rmdir(path);
    rmdir(dir);
}

static void test_free_is_safe(void **state) {
    (void)state;
    model_config c;
    memset(&c, 0, sizeof c);
    model_config_free(&c);
    model_config_free(NULL);
    load_ok(BENCH "llama-3-8b", &c);
    model_config_free(&c);
    model_config_free(&c);
    assert_clean(&c);
}

/* ---- json_util on its own ---- */

static void test_json_util(void **state) {
    (void)state;
    json_t *o = json_parse_object("{\"a\": 3, \"b\": 2.0, \"c\": null, \"s\": \"x\","
                                  " \"r\": {\"k\": 1.5}}", "t.json");
    assert_non_null(o);
    const json_src src = {"t.json", NULL}, nested = {"t.json", "r"};
    int i = -1;
    double d = 0;
    const char *s = NULL;
    const json_t *r = NULL;
    assert_int_equal(json_get_int(o, "a", &src, 1, 10, &i, true), JSON_OK);
    assert_int_equal(i, 3);
    assert_int_equal(json_get_int(o, "b", &src, 0, 10, &i, true), JSON_OK);
    assert_int_equal(i, 2);
    assert_int_equal(json_get_int(o, "c", &src, 0, 10, &i, false), JSON_ABSENT);
    assert_int_equal(json_get_int(o, "zz", &src, 0, 10, &i, false), JSON_ABSENT);
    assert_int_equal(i, 2);
    assert_int_equal(json_get_int(o, "a", &src, 5, 10, &i, true), -1);
    assert_error_has("t.json: field 'a': expected an integer >= 5, found 3", NULL);
    assert_int_equal(json_get_int(o, "a", &src, 0, 2, &i, true), -1);
    assert_error_has("a non-negative integer (at most 2), found 3", NULL);
    assert_int_equal(json_get_string(o, "s", &src, &s, true), JSON_OK);
    assert_string_equal(s, "x");
    assert_int_equal(json_get_object(o, "r", &src, &r, true), JSON_OK);
    assert_int_equal(json_get_positive(r, "k", &nested, &d, true), JSON_OK);
    assert_near(d, 1.5);
    bool b = false;
    assert_int_equal(json_get_bool(r, "k", &nested, &b, true), -1);
    assert_error_has("t.json: field 'r.k': expected true or false, found 1.5", NULL);
    char buf[8];
    json_describe(o, buf, sizeof buf);
    assert_string_equal(buf, "{\"a\"...");
    json_decref(o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories260k),
        cmocka_unit_test(test_llama31_classic_and_rope_parameters_agree),
        cmocka_unit_test(test_llama2_linear_with_old_type_key),
        cmocka_unit_test(test_mistral_v01_window_and_v03_null),
        cmocka_unit_test(test_qwen25_7b),
        cmocka_unit_test(test_qwen3_06b),
        cmocka_unit_test(test_qwen2_sliding_window_layers),
        cmocka_unit_test(test_llama_layer_types),
        cmocka_unit_test(test_generation_config_eos_list_wins),
        cmocka_unit_test(test_mqa),
        cmocka_unit_test(test_llama_biases_and_defaults),
        cmocka_unit_test(test_dtype_keys),
        cmocka_unit_test(test_yarn),
        cmocka_unit_test(test_rope_block_precedence),
        cmocka_unit_test(test_bench_configs),
        cmocka_unit_test(test_quant_configs),
        cmocka_unit_test(test_error_quant),
        cmocka_unit_test(test_error_architecture),
        cmocka_unit_test(test_error_sizes),
        cmocka_unit_test(test_error_fields),
        cmocka_unit_test(test_error_rope),
        cmocka_unit_test(test_error_eos),
        cmocka_unit_test(test_error_json_and_files),
        cmocka_unit_test(test_free_is_safe),
        cmocka_unit_test(test_json_util),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
