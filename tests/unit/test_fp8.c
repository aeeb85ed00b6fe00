/* FP8 (e4m3) on the CPU: quantization_config of compressed-tensors float-quantized and block
 * FP8 checkpoints; loading tiny Llama checkpoints the test writes itself (its own e4m3 bytes
 * and scales) at world 1, 2 and 4, every rank's dequantized weights compared bit for bit with
 * e4m3 * scale and its activation scheme with the config's; malformed checkpoints failing with
 * one message naming the file, tensor, expected and found; the CPU twins (activation scales,
 * quantize-dequantize, the reference product); dummy FP8 weights (shards are slices of one
 * model, std as the dense dummy weights'). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dtype.h"
#include "error.h"
#include "fp8.h"
#include "fp8_dummy.h"
#include "kernels_cpu.h"
#include "load_util.h"
#include "model_config.h"
#include "st_writer.h"
#include "weights.h"

/* hidden 256, 4 heads of 64, 4 KV heads, intermediate 512, vocab 64, 1 layer: block FP8
 * shards hold whole 128-blocks at world 2, not at world 4. */
enum { HID = 256, HEADS = 4, KV = 4, HD = 64, INTER = 512, VOCAB = 64 };

typedef enum { CT_CHANNEL, CT_TENSOR_STATIC, CT_BLOCK, FP8_BLOCK, FP8_TENSOR } scheme;

typedef struct {
    scheme s;
    const char *scale_dtype;     /* "F32" (default), "BF16" */
    const char *weight_dtype;    /* the first module's weight dtype (default "F8_E4M3") */
    const char *skip;            /* a suffix left out of the first module */
    bool bad_scale_shape;        /* the first module's scale one row short */
    bool weight_only;            /* compressed-tensors input_activations null */
    bool nan_scale;              /* the first module's first weight scale NaN */
} fspec;

typedef struct {
    char module[128];
    int out, in;
    float *w;                    /* [out][in]: e4m3 * scale, the truth */
    float input_scale;
} truth;

typedef struct {
    truth t[8];
    int n;
    char dir[64];
} ckpt;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float rnd_unit(void) { return test_rnd_unit(&rng_state); }

static bool is_block(scheme s) { return s == CT_BLOCK || s == FP8_BLOCK; }

/* Scales of a matrix [out][in] for the scheme: one, [out] or [ceil(out/128)][ceil(in/128)]. */
static int scale_count(scheme s, int out, int in) {
    if (s == CT_TENSOR_STATIC || s == FP8_TENSOR) return 1;
    if (s == CT_CHANNEL) return out;
    return ((out + 127) / 128) * ((in + 127) / 128);
}

static int scale_index(scheme s, int in, int r, int c) {
    if (s == CT_TENSOR_STATIC || s == FP8_TENSOR) return 0;
    if (s == CT_CHANNEL) return r;
    return (r / 128) * ((in + 127) / 128) + c / 128;
}

/* Random e4m3 bytes and positive scales (bf16-exact, so every scale dtype holds them). */
static void make_module(st_writer *w, truth *t, const fspec *fs, bool first) {
    const int ns = scale_count(fs->s, t->out, t->in);
    uint8_t *q = malloc((size_t)t->out * t->in);
    float *sc = malloc(sizeof *sc * ns);
    t->w = malloc(sizeof *t->w * t->out * t->in);
    for (int i = 0; i < ns; i++) sc[i] = bf16_to_f32(f32_to_bf16(1e-3f * (1.5f + rnd_unit())));
    if (first && fs->nan_scale) sc[0] = NAN;
    for (int r = 0; r < t->out; r++)
        for (int c = 0; c < t->in; c++) {
            uint8_t b = fp8_e4m3_from_float(448.0f * rnd_unit());
            q[(size_t)r * t->in + c] = b;
            t->w[(size_t)r * t->in + c] = fp8_e4m3_to_float(b) *
                                          sc[scale_index(fs->s, t->in, r, c)];
        }
    char name[192];
    snprintf(name, sizeof name, "%s.weight", t->module);
    const char *wdt = first && fs->weight_dtype ? fs->weight_dtype : "F8_E4M3";
    if (strcmp(wdt, "F16") == 0) {
        uint16_t *h = malloc(2 * (size_t)t->out * t->in);
        for (size_t i = 0; i < (size_t)t->out * t->in; i++) h[i] = f32_to_f16(t->w[i]);
        stw_add(w, name, "F16", 2, t->out, t->in, h, 2 * (size_t)t->out * t->in);
        free(h);
    } else {
        stw_add(w, name, wdt, 2, t->out, t->in, q, (size_t)t->out * t->in);
    }
    const char *suffix = fs->s == FP8_BLOCK ? "weight_scale_inv" : "weight_scale";
    snprintf(name, sizeof name, "%s.%s", t->module, suffix);
    const bool bf16 = fs->scale_dtype && strcmp(fs->scale_dtype, "BF16") == 0;
    uint16_t *h = malloc(2 * (size_t)ns);
    for (int i = 0; i < ns; i++) h[i] = f32_to_bf16(sc[i]);
    const void *data = bf16 ? (const void *)h : (const void *)sc;
    const size_t es = bf16 ? 2 : 4;
    const char *dt = bf16 ? "BF16" : "F32";
    const bool skip = first && fs->skip && strcmp(fs->skip, suffix) == 0;
    const int short_by = first && fs->bad_scale_shape ? 1 : 0;
    if (skip) {
    } else if (fs->s == CT_TENSOR_STATIC || fs->s == FP8_TENSOR) {
        stw_add(w, name, dt, 1, 1, 0, data, es);
    } else if (fs->s == CT_CHANNEL) {
        stw_add(w, name, dt, 2, t->out - short_by, 1, data, es * (t->out - short_by));
    } else {
        const int br = (t->out + 127) / 128 - short_by, bc = (t->in + 127) / 128;
        stw_add(w, name, dt, 2, br, bc, data, es * (size_t)br * bc);
    }
    if (fs->s == CT_TENSOR_STATIC) {
        t->input_scale = 0.01f * (1.5f + rnd_unit());
        snprintf(name, sizeof name, "%s.input_scale", t->module);
        if (!(first && fs->skip && strcmp(fs->skip, "input_scale") == 0))
            stw_add(w, name, "F32", 1, 1, 0, &t->input_scale, 4);
    }
    free(h);
    free(q);
    free(sc);
}

static const char *quant_json(const fspec *fs) {
    static char buf[1024];
    const char *acts = fs->weight_only ? "null"
                       : fs->s == CT_TENSOR_STATIC
                           ? "{\"num_bits\": 8, \"type\": \"float\", \"symmetric\": true, "
                             "\"dynamic\": false, \"strategy\": \"tensor\"}"
                       : fs->s == CT_BLOCK
                           ? "{\"num_bits\": 8, \"type\": \"float\", \"symmetric\": true, "
                             "\"dynamic\": true, \"strategy\": \"group\", \"group_size\": 128}"
                           : "{\"num_bits\": 8, \"type\": \"float\", \"symmetric\": true, "
                             "\"dynamic\": true, \"strategy\": \"token\"}";
    if (fs->s == FP8_BLOCK)
        return "{\"quant_method\": \"fp8\", \"fmt\": \"e4m3\", \"activation_scheme\": "
               "\"dynamic\", \"weight_block_size\": [128, 128]}";
    if (fs->s == FP8_TENSOR)
        return "{\"quant_method\": \"fp8\", \"activation_scheme\": \"dynamic\"}";
    snprintf(buf, sizeof buf,
             "{\"quant_method\": \"compressed-tensors\", \"format\": \"float-quantized\", "
             "\"ignore\": [\"lm_head\"], \"kv_cache_scheme\": null, \"config_groups\": "
             "{\"group_0\": {\"targets\": [\"Linear\"], \"input_activations\": %s, "
             "\"output_activations\": null, \"weights\": {\"num_bits\": 8, \"type\": \"float\", "
             "\"symmetric\": true, \"dynamic\": false, \"strategy\": \"%s\"%s}}}}",
             acts, fs->s == CT_CHANNEL ? "channel" : fs->s == CT_BLOCK ? "block" : "tensor",
             fs->s == CT_BLOCK ? ", \"block_structure\": [128, 128]" : "");
    return buf;
}

static void write_config(const char *dir, const char *quant) {
    char path[128];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": %d, "
            "\"intermediate_size\": %d, \"num_hidden_layers\": 1, \"num_attention_heads\": %d, "
            "\"num_key_value_heads\": %d, \"head_dim\": %d, \"vocab_size\": %d, "
            "\"max_position_embeddings\": 128, \"rms_norm_eps\": 1e-5, \"torch_dtype\": "
            "\"bfloat16\", \"tie_word_embeddings\": false, \"quantization_config\": %s}\n",
            HID, INTER, HEADS, KV, HD, VOCAB, quant);
    fclose(f);
}

static void put_float(st_writer *w, const char *name, int rows, int cols, float fill) {
    put_float_tensor(w, &rng_state, name, rows, cols, fill);
}

static void write_ckpt(ckpt *c, const fspec *fs) {
    memset(c, 0, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "/tmp/folio_fp8_XXXXXX");
    assert_non_null(mkdtemp(c->dir));
    write_config(c->dir, quant_json(fs));
    st_writer w = {0};
    put_float(&w, "model.embed_tokens.weight", VOCAB, HID, 0);
    const struct { const char *name; int out, in; } lin[7] = {
        {"self_attn.q_proj", HEADS * HD, HID}, {"self_attn.k_proj", KV * HD, HID},
        {"self_attn.v_proj", KV * HD, HID}, {"self_attn.o_proj", HID, HEADS * HD},
        {"mlp.gate_proj", INTER, HID}, {"mlp.up_proj", INTER, HID},
        {"mlp.down_proj", HID, INTER}};
    for (int k = 0; k < 7; k++) {
        truth *t = &c->t[c->n++];
        snprintf(t->module, sizeof t->module, "model.layers.0.%s", lin[k].name);
        t->out = lin[k].out;
        t->in = lin[k].in;
        make_module(&w, t, fs, k == 0);
    }
    put_float(&w, "model.layers.0.input_layernorm.weight", HID, 0, 1.0f);
    put_float(&w, "model.layers.0.post_attention_layernorm.weight", HID, 0, 1.0f);
    put_float(&w, "model.norm.weight", HID, 0, 1.0f);
    put_float(&w, "lm_head.weight", VOCAB, HID, 0);
    char path[128];
    snprintf(path, sizeof path, "%s/model.safetensors", c->dir);
    stw_write(&w, path);
}

static void ckpt_free(ckpt *c) {
    char path[128];
    for (int i = 0; i < c->n; i++) free(c->t[i].w);
    snprintf(path, sizeof path, "%s/model.safetensors", c->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/config.json", c->dir);
    unlink(path);
    rmdir(c->dir);
}

/* Every rank's slice equals the truth bit for bit; the activation scheme is the config's. */
static void check_world(const ckpt *c, const fspec *fs, int world) {
    const fp8_act want = fs->s == CT_TENSOR_STATIC ? FP8_ACT_STATIC
                         : is_block(fs->s)         ? FP8_ACT_GROUP
                                                   : FP8_ACT_TOKEN;
    for (int rank = 0; rank < world; rank++) {
        model_config cfg;
        model_weights w;
        if (load_rank_dir(c->dir, rank, world, &cfg, &w) != 0)
            fail_msg("world %d rank %d: %s", world, rank, folio_last_error());
        int n = 0, compared = 0;
        tensor_spec *specs = weights_specs(&cfg, &w.shard, &w, &n);
        for (int i = 0; i < n; i++) {
            const tensor_spec *s = &specs[i];
            const truth *t = NULL;
            for (int k = 0; k < c->n; k++)
                if (strncmp(s->name, c->t[k].module, strlen(c->t[k].module)) == 0 &&
                    strcmp(s->name + strlen(c->t[k].module), ".weight") == 0)
                    t = &c->t[k];
            if (!t) {
                if (s->aq) assert_false(s->aq->on); /* lm_head: ignored */
                continue;
            }
            compared++;
            assert_true(s->aq->on);
            assert_int_equal(s->aq->act, want);
            if (want == FP8_ACT_STATIC) assert_true(s->aq->input_scale == t->input_scale);
            const int64_t nr = s->slice == SLICE_ROWS ? s->count : s->rows;
            const int64_t c0 = s->slice == SLICE_COLS ? s->start : 0;
            const int64_t nc = s->slice == SLICE_COLS ? s->count : s->cols;
            for (int64_t r = 0; r < nr; r++) {
                const int64_t row = s->slice == SLICE_ROWS ? s->start + r : r;
                if (memcmp(*s->dest + r * nc, t->w + row * t->in + c0, sizeof(float) * nc))
                    fail_msg("world %d rank %d: %s row %lld differs from e4m3 * scale", world,
                             rank, s->name, (long long)row);
            }
        }
        assert_int_equal(compared, 7);
        free(specs);
        weights_free(&w);
        model_config_free(&cfg);
    }
}

static void roundtrip(const fspec *fs, const int *worlds) {
    ckpt c;
    write_ckpt(&c, fs);
    for (int i = 0; worlds[i]; i++) check_world(&c, fs, worlds[i]);
    ckpt_free(&c);
}

static const int W124[] = {1, 2, 4, 0}, W12[] = {1, 2, 0};

static void test_load_schemes(void **state) {
    (void)state;
    for (int bf = 0; bf < 2; bf++) {
        const char *dt = bf ? "BF16" : "F32";
        roundtrip(&(fspec){.s = CT_CHANNEL, .scale_dtype = dt}, W124);
        roundtrip(&(fspec){.s = CT_TENSOR_STATIC, .scale_dtype = dt}, W124);
        roundtrip(&(fspec){.s = CT_BLOCK, .scale_dtype = dt}, W12);
        roundtrip(&(fspec){.s = FP8_BLOCK, .scale_dtype = dt}, W12);
        roundtrip(&(fspec){.s = FP8_TENSOR, .scale_dtype = dt}, W124);
    }
    roundtrip(&(fspec){.s = CT_CHANNEL, .weight_only = true}, W12); /* run per token */
}

static void test_load_errors(void **state) {
    (void)state;
    ckpt c;
    write_ckpt(&c, &(fspec){.s = FP8_BLOCK});
    expect_load_fail_dir(c.dir, 4, "model.layers.0.self_attn.q_proj",
                         "column-parallel split over 4 ranks cuts a 128x128 weight block",
                         "rows 0 .. 63 of 256", NULL);
    ckpt_free(&c);
    write_ckpt(&c, &(fspec){.s = FP8_BLOCK, .weight_dtype = "F16"});
    expect_load_fail_dir(c.dir, 1, "model.safetensors: tensor 'model.layers.0.self_attn.q_proj."
                         "weight': expected F8_E4M3 [256, 256] (from config.json), found F16",
                         NULL);
    ckpt_free(&c);
    write_ckpt(&c, &(fspec){.s = CT_CHANNEL, .weight_dtype = "F8_E5M2"});
    expect_load_fail_dir(c.dir, 1, "q_proj.weight': dtype F8_E5M2 is not supported for weights",
                         NULL);
    ckpt_free(&c);
    write_ckpt(&c, &(fspec){.s = FP8_BLOCK, .skip = "weight_scale_inv"});
    expect_load_fail_dir(c.dir, 1, "tensor 'model.layers.0.self_attn.q_proj.weight_scale_inv' is "
                         "missing", NULL);
    ckpt_free(&c);
    write_ckpt(&c, &(fspec){.s = FP8_BLOCK, .bad_scale_shape = true});
    expect_load_fail_dir(c.dir, 1, "q_proj.weight_scale_inv': expected F16 or BF16 or F32 [2, 2] "
                         "(from config.json), found F32 [1, 2]", NULL);
    ckpt_free(&c);
    write_ckpt(&c, &(fspec){.s = CT_CHANNEL, .bad_scale_shape = true});
    expect_load_fail_dir(c.dir, 1, "q_proj.weight_scale': expected F16 or BF16 or F32 [256, 1] "
                         "(from config.json), found F32 [255, 1]", NULL);
    ckpt_free(&c);
    write_ckpt(&c, &(fspec){.s = CT_CHANNEL, .nan_scale = true});
    expect_load_fail_dir(c.dir, 1, "layer 'model.layers.0.self_attn.q_proj': weight scale 0 is "
                         "nan (expected positive and finite)", NULL);
    ckpt_free(&c);
    write_ckpt(&c, &(fspec){.s = CT_TENSOR_STATIC, .skip = "input_scale"});
    expect_load_fail_dir(c.dir, 1, "tensor 'model.layers.0.self_attn.q_proj.input_scale' is "
                         "missing", NULL);
    ckpt_free(&c);
}

/* config.json variants: what is accepted (scheme read) and what is refused (field named). */
static void test_configs(void **state) {
    (void)state;
    static const struct { const char *quant, *needle; int weights, act; } CASES[] = {
        {"{\"quant_method\": \"fp8\", \"weight_block_size\": [128, 256]}", NULL, FP8_W_BLOCK,
         FP8_ACT_GROUP},
        {"{\"quant_method\": \"fp8\", \"activation_scheme\": \"static\"}", NULL, FP8_W_TENSOR,
         FP8_ACT_STATIC},
        {"{\"quant_method\": \"fp8\", \"weight_block_size\": [64, 128]}",
         "field 'quantization_config.weight_block_size': [64,128] is not supported (two "
         "positive multiples of 128", 0, 0},
        {"{\"quant_method\": \"fp8\", \"fmt\": \"e5m2\"}",
         "field 'quantization_config.fmt': \"e5m2\" is not supported (e4m3)", 0, 0},
        {"{\"quant_method\": \"fp8\", \"weight_block_size\": [128, 128], \"activation_scheme\": "
         "\"static\"}", "'quantization_config.activation_scheme': \"static\" is not supported",
         0, 0},
        {"{\"quant_method\": \"compressed-tensors\", \"format\": \"float-quantized\", "
         "\"config_groups\": {\"g\": {\"targets\": [\"Linear\"], \"weights\": {\"num_bits\": 4, "
         "\"type\": \"float\", \"strategy\": \"channel\"}}}}",
         "field 'quantization_config.config_groups.g.weights.num_bits': 4 is not supported (8)",
         0, 0},
        {"{\"quant_method\": \"compressed-tensors\", \"format\": \"float-quantized\", "
         "\"config_groups\": {\"g\": {\"targets\": [\"Linear\"], \"weights\": {\"num_bits\": 8, "
         "\"type\": \"float\", \"strategy\": \"group\"}}}}",
         "weights.strategy': \"group\" is not supported (channel, tensor or block)", 0, 0},
        {"{\"quant_method\": \"compressed-tensors\", \"format\": \"float-quantized\", "
         "\"config_groups\": {\"g\": {\"targets\": [\"Linear\"], \"weights\": {\"num_bits\": 8, "
         "\"type\": \"float\", \"strategy\": \"tensor\"}, \"input_activations\": {\"num_bits\": "
         "8, \"type\": \"float\", \"dynamic\": true, \"strategy\": \"tensor\"}}}}",
         "input_activations.dynamic': true is not supported", 0, 0},
        {"{\"quant_method\": \"compressed-tensors\", \"config_groups\": {\"g\": {\"targets\": "
         "[\"Linear\"], \"format\": \"float-quantized\", \"weights\": {\"num_bits\": 8, "
         "\"type\": \"float\", \"strategy\": \"tensor\"}, \"input_activations\": {\"num_bits\": "
         "8, \"type\": \"float\", \"dynamic\": false, \"strategy\": \"tensor\"}}}}", NULL,
         FP8_W_TENSOR, FP8_ACT_STATIC},
    };
    char dir[64] = "/tmp/folio_fp8cfg_XXXXXX";
    assert_non_null(mkdtemp(dir));
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        write_config(dir, CASES[i].quant);
        model_config cfg;
        folio_clear_error();
        const int rc = model_config_load(dir, &cfg);
        if (CASES[i].needle) {
            assert_int_equal(rc, -1);
            if (!strstr(folio_last_error(), CASES[i].needle))
                fail_msg("case %zu: \"%s\" lacks \"%s\"", i, folio_last_error(),
                         CASES[i].needle);
            continue;
        }
        if (rc != 0) fail_msg("case %zu: %s", i, folio_last_error());
        assert_int_equal(cfg.quant.method, QUANT_FP8);
        assert_int_equal(cfg.quant.fp8_weights, CASES[i].weights);
        assert_int_equal(cfg.quant.fp8_act, CASES[i].act);
        /* block FP8 never quantizes lm_head; compressed-tensors unless ignored */
        assert_true(quant_module_quantized(&cfg.quant, "lm_head") ==
                    !strstr(CASES[i].quant, "\"fp8\""));
        model_config_free(&cfg);
    }
    /* vLLM's ignored_layers (and transformers' modules_to_not_convert) match name parts */
    for (int k = 0; k < 2; k++) {
        char q[160];
        snprintf(q, sizeof q, "{\"quant_method\": \"fp8\", \"%s\": [\"mlp.down_proj\"]}",
                 k ? "ignored_layers" : "modules_to_not_convert");
        write_config(dir, q);
        model_config cfg;
        assert_int_equal(model_config_load(dir, &cfg), 0);
        assert_false(quant_module_quantized(&cfg.quant, "model.layers.0.mlp.down_proj"));
        assert_true(quant_module_quantized(&cfg.quant, "model.layers.0.mlp.up_proj"));
        model_config_free(&cfg);
    }
    char path[128];
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    rmdir(dir);
}

/* Activation scales (max|x| / 448; zero row 1; groups of 128, the last shorter), qdq equal to
 * quantize then dequantize, and the reference product equal to the float product of the
 * dequantized weights and the qdq'd input (within float rounding). */
static void test_cpu_twins(void **state) {
    (void)state;
    enum { N = 5, K = 300, R = 70 };
    static const fp8_act ACTS[] = {FP8_ACT_TOKEN, FP8_ACT_GROUP, FP8_ACT_STATIC};
    float *x = malloc(sizeof *x * N * K), *xq = malloc(sizeof *xq * N * K);
    for (int i = 0; i < N * K; i++) x[i] = 3.0f * rnd_unit();
    for (int c = 0; c < K; c++) x[2 * K + c] = 0.0f; /* a zero row */
    x[K + 5] = 1000.0f;                                /* outlier in token 1, group 0 */
    for (int a = 0; a < 3; a++) {
        const fp8_act act = ACTS[a];
        uint8_t q[N * K];
        float s[N * 3];
        assert_int_equal(fp8_act_scale_count(act, N, K), act == FP8_ACT_STATIC ? 1
                                                         : act == FP8_ACT_TOKEN ? N : N * 3);
        fp8_act_quant_cpu(q, s, x, N, K, act, 0.02f);
        if (act == FP8_ACT_TOKEN) {
            assert_true(s[1] == 1000.0f / 448.0f);
            assert_true(s[2] == 1.0f);
        }
        if (act == FP8_ACT_GROUP) {
            assert_true(s[3] == 1000.0f / 448.0f);
            assert_true(s[6] == 1.0f && s[7] == 1.0f && s[8] == 1.0f);
            float amax = 0;
            for (int c = 256; c < K; c++) amax = fmaxf(amax, fabsf(x[c]));
            assert_true(s[2] == amax / 448.0f); /* the last group: 44 columns */
        }
        memcpy(xq, x, sizeof *x * N * K);
        fp8_act_qdq_cpu(xq, N, K, act, 0.02f);
        for (int t = 0; t < N; t++)
            for (int c = 0; c < K; c++) {
                const float sc = act == FP8_ACT_STATIC ? s[0]
                                 : act == FP8_ACT_TOKEN ? s[t] : s[t * 3 + c / 128];
                assert_true(xq[t * K + c] == fp8_e4m3_to_float(q[t * K + c]) * sc);
            }
        /* the product */
        fp8_matrix m = {.rows = R, .cols = K, .kind = FP8_W_BLOCK, .block_rows = 128,
                        .block_cols = 128, .act = act, .input_scale = 0.02f};
        m.w = malloc((size_t)R * K);
        m.scale = malloc(sizeof *m.scale * fp8_scale_count(&m));
        for (int i = 0; i < fp8_scale_count(&m); i++) m.scale[i] = 1e-3f * (2.0f + rnd_unit());
        for (int i = 0; i < R * K; i++) m.w[i] = fp8_e4m3_from_float(448.0f * rnd_unit());
        float *wd = malloc(sizeof *wd * R * K), *y = malloc(sizeof *y * N * R);
        float *yref = malloc(sizeof *yref * N * R);
        fp8_matrix_dequantize(&m, wd);
        matmul_cpu(yref, xq, wd, NULL, N, K, R);
        assert_int_equal(fp8_gemm_cpu(y, x, &m, NULL, N), 0);
        double num = 0, den = 0;
        for (int i = 0; i < N * R; i++) {
            num = fmax(num, fabs((double)y[i] - yref[i]));
            den = fmax(den, fabs((double)yref[i]));
        }
        if (num > 1e-5 * den) fail_msg("act %d: product differs by %g of %g", a, num, den);
        free(wd);
        free(y);
        free(yref);
        fp8_matrix_free(&m);
    }
    free(x);
    free(xq);
}

/* A dummy FP8 model: world 2's shards are the slices of world 1's matrices (bytes and
 * scales); the dequantized weights' std is near the dense dummy weights' 1/sqrt(in). */
static void test_dummy(void **state) {
    (void)state;
    for (int blk = 0; blk < 2; blk++) {
        quant_config qc = {0};
        quant_config_dummy_fp8(&qc, &(dummy_quant){.fp8 = true, .fp8_block = blk});
        tensor_spec full = {.name = "model.layers.0.mlp.down_proj.weight", .rows = 512,
                            .cols = 1024, .slice = SLICE_NONE, .init = INIT_MATRIX};
        fp8_matrix m1, m2;
        assert_int_equal(fp8_dummy_matrix(&qc, 7, &full, 1, &m1), 0);
        float *w1 = malloc(sizeof *w1 * 512 * 1024), *w2 = malloc(sizeof *w2 * 512 * 512);
        fp8_matrix_dequantize(&m1, w1);
        double ss = 0;
        for (int i = 0; i < 512 * 1024; i++) ss += (double)w1[i] * w1[i];
        const double std = sqrt(ss / (512.0 * 1024)), want = 1.0 / sqrt(1024.0);
        if (fabs(std / want - 1) > 0.05) fail_msg("std %g, expected about %g", std, want);
        tensor_spec half = full;
        half.slice = SLICE_COLS;
        half.start = 512;
        half.count = 512;
        assert_int_equal(fp8_dummy_matrix(&qc, 7, &half, 2, &m2), 0);
        fp8_matrix_dequantize(&m2, w2);
        for (int r = 0; r < 512; r++)
            assert_memory_equal(w2 + r * 512, w1 + r * 1024 + 512, sizeof *w2 * 512);
        half.start = 448; /* a shard starting inside a 128-block */
        fp8_matrix m3;
        folio_clear_error();
        if (blk) {
            assert_int_equal(fp8_dummy_matrix(&qc, 7, &half, 2, &m3), -1);
            assert_non_null(strstr(folio_last_error(), "cuts a 128x128 weight block"));
        }
        free(w1);
        free(w2);
        fp8_matrix_free(&m1);
        fp8_matrix_free(&m2);
        quant_config_free(&qc);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_configs),     cmocka_unit_test(test_load_schemes),
        cmocka_unit_test(test_load_errors), cmocka_unit_test(test_cpu_twins),
        cmocka_unit_test(test_dummy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
