/* Loading 4-/8-bit weight-only checkpoints (AWQ GEMM, GPTQ v1/v2, compressed-tensors
 * pack-quantized): the test quantizes random float weights with its own round-to-nearest
 * (q, zero, scale known), writes a tiny Llama checkpoint in each format exactly as the format
 * stores it (docs/quantization.md), loads it through the normal loader at world 1, 2 and 4,
 * and compares every rank's dequantized float32 weights with (q - zero) * scale bit for bit.
 * Malformed checkpoints fail with one message naming the file, tensor, expected and found. */
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

#include "backend.h"
#include "comm.h"
#include "dtype.h"
#include "error.h"
#include "fixture_util.h"
#include "kernels_cpu.h"
#include "load_util.h"
#include "quant.h"
#include "sequence_runner.h"
#include "st_writer.h"
#include "weights.h"

typedef struct { int hidden, heads, kv, hd, inter, vocab, layers; } dims;
static const dims DIMS_B = {256, 4, 2, 64, 512, 64, 1};
static const dims DIMS_ODD = {192, 6, 2, 32, 96, 40, 2}; /* gate/up: out 96, in 192 */

typedef struct {
    quant_method method;
    int bits, group;             /* group -1: per channel */
    bool sym, act_order;
    int perm_block;              /* act-order: g_idx permuted within blocks of inputs (0: all) */
    bool v2_label, v2_data;      /* GPTQ: the config's checkpoint_format, the zeros' encoding */
    const char *scale_dtype;     /* compressed-tensors: "F16" (default), "BF16", "F32" */
    const char *skip;            /* a tensor suffix left out of the first module */
    bool bad_shape;              /* the first module's scales written one group row short */
    int config_bits;             /* bits written in config.json (0: bits) */
    bool bad_g_idx;              /* the first module's g_idx[0] written out of range */
} qspec;

typedef struct {
    char module[160];
    int out, in, gs, G;
    uint8_t *q, *z;              /* [out][in], [out][G] */
    uint16_t *s;                 /* [out][G] fp16 */
    int32_t *g_idx;              /* [in] */
    float *w;                    /* [out][in]: (q - z) * s */
} truth;

typedef struct {
    truth t[16];
    int n;
    char dir[64];
} ckpt;

static uint64_t rng_state = 88172645463325252ull;
static uint32_t rnd(void) { return test_rnd(&rng_state); }
static float rnd_unit(void) { return test_rnd_unit(&rng_state); }

/* ---- the test's own quantizer ---- */

static void make_g_idx(truth *t, const qspec *qs) {
    int *pos = malloc(sizeof *pos * t->in), block = qs->perm_block ? qs->perm_block : t->in;
    for (int i = 0; i < t->in; i++) pos[i] = i;
    for (int b = 0; qs->act_order && b < t->in; b += block)
        for (int i = block - 1; i > 0; i--) {
            int j = (int)(rnd() % (uint32_t)(i + 1)), x = pos[b + i];
            pos[b + i] = pos[b + j];
            pos[b + j] = x;
        }
    for (int i = 0; i < t->in; i++) t->g_idx[i] = pos[i] / t->gs;
    free(pos);
}

/* Scale of one group: fp16 that bf16 holds too (so every scale dtype stores it exactly). */
static uint16_t group_scale(float lo, float hi, const qspec *qs) {
    const int maxq = (1 << qs->bits) - 1;
    float s = qs->sym ? 2.0f * fmaxf(fabsf(lo), fabsf(hi)) / (float)maxq : (hi - lo) / (float)maxq;
    if (s <= 0) s = 1e-3f;
    return f32_to_f16(bf16_to_f32(f32_to_bf16(s)));
}

static void quantize_row(truth *t, int o, const float *w0, const qspec *qs) {
    const int maxq = (1 << qs->bits) - 1, half = 1 << (qs->bits - 1);
    float lo[4096], hi[4096];
    for (int g = 0; g < t->G; g++) lo[g] = hi[g] = 0;
    for (int i = 0; i < t->in; i++) {
        lo[t->g_idx[i]] = fminf(lo[t->g_idx[i]], w0[i]);
        hi[t->g_idx[i]] = fmaxf(hi[t->g_idx[i]], w0[i]);
    }
    for (int g = 0; g < t->G; g++) {
        uint16_t sh = group_scale(lo[g], hi[g], qs);
        float z = qs->sym ? (float)half : fminf(fmaxf(roundf(-lo[g] / f16_to_f32(sh)), 0), maxq);
        t->s[o * t->G + g] = sh;
        t->z[o * t->G + g] = (uint8_t)z;
    }
    for (int i = 0; i < t->in; i++) {
        const int g = t->g_idx[i], z = t->z[o * t->G + g];
        const float sf = f16_to_f32(t->s[o * t->G + g]);
        float q = fminf(fmaxf(roundf(w0[i] / sf) + (float)z, 0), (float)maxq);
        t->q[(size_t)o * t->in + i] = (uint8_t)q;
        t->w[(size_t)o * t->in + i] = (float)((int)q - z) * sf;
    }
}

static void make_truth(truth *t, const char *module, int out, int in, const qspec *qs) {
    snprintf(t->module, sizeof t->module, "%s", module);
    t->out = out;
    t->in = in;
    t->gs = qs->group > 0 ? qs->group : in;
    t->G = in / t->gs;
    t->q = malloc((size_t)out * in);
    t->z = malloc((size_t)out * t->G);
    t->s = malloc(sizeof *t->s * out * t->G);
    t->g_idx = malloc(sizeof *t->g_idx * in);
    t->w = malloc(sizeof *t->w * out * in);
    make_g_idx(t, qs);
    float *w0 = malloc(sizeof *w0 * in);
    for (int o = 0; o < out; o++) {
        const float shift = qs->sym ? 0.0f : 0.3f * rnd_unit();
        for (int i = 0; i < in; i++) w0[i] = 0.1f * (rnd_unit() + shift);
        quantize_row(t, o, w0, qs);
    }
    free(w0);
}

static void truth_free(truth *t) {
    free(t->q);
    free(t->z);
    free(t->s);
    free(t->g_idx);
    free(t->w);
}

/* ---- the formats, written from their specifications ---- */

static void put(st_writer *w, const truth *t, const qspec *qs, bool first, const char *suffix,
                const char *dtype, int ndim, int64_t d0, int64_t d1, const void *data,
                size_t elem) {
    if (first && qs->skip && strcmp(qs->skip, suffix) == 0) return;
    char name[192];
    snprintf(name, sizeof name, "%s.%s", t->module, suffix);
    stw_add(w, name, dtype, ndim, d0, d1, data, (size_t)d0 * (ndim == 2 ? d1 : 1) * elem);
}

/* scales [G][out] fp16 (AWQ, GPTQ); bad_shape drops the last group row's worth of outputs. */
static void put_scales_t(st_writer *w, const truth *t, const qspec *qs, bool first) {
    uint16_t *s = malloc(sizeof *s * t->G * t->out);
    for (int g = 0; g < t->G; g++)
        for (int o = 0; o < t->out; o++) s[g * t->out + o] = t->s[o * t->G + g];
    int out = first && qs->bad_shape ? t->out - 8 : t->out;
    put(w, t, qs, first, "scales", "F16", 2, t->G, out, s, 2);
    free(s);
}

/* AWQ: nibble k of a word holds output 8j + ORDER[k]. */
static void write_awq(st_writer *w, const truth *t, const qspec *qs, bool first) {
    static const int ORDER[8] = {0, 2, 4, 6, 1, 3, 5, 7};
    const int ow = t->out / 8;
    uint32_t *qw = calloc((size_t)t->in * ow, 4), *qz = calloc((size_t)t->G * ow, 4);
    for (int j = 0; j < ow; j++)
        for (int k = 0; k < 8; k++) {
            const int o = 8 * j + ORDER[k];
            for (int i = 0; i < t->in; i++)
                qw[(size_t)i * ow + j] |= (uint32_t)t->q[(size_t)o * t->in + i] << (4 * k);
            for (int g = 0; g < t->G; g++) qz[g * ow + j] |= (uint32_t)t->z[o * t->G + g] << (4 * k);
        }
    put(w, t, qs, first, "qweight", "I32", 2, t->in, ow, qw, 4);
    put(w, t, qs, first, "qzeros", "I32", 2, t->G, ow, qz, 4);
    put_scales_t(w, t, qs, first);
    free(qw);
    free(qz);
}

/* GPTQ: qweight packed along inputs, qzeros along outputs (v1: zero - 1). */
static void write_gptq(st_writer *w, const truth *t, const qspec *qs, bool first) {
    const int b = qs->bits, per = 32 / b, mask = (1 << b) - 1;
    uint32_t *qw = calloc((size_t)t->in / per * t->out, 4);
    uint32_t *qz = calloc((size_t)t->G * t->out / per, 4);
    for (int o = 0; o < t->out; o++) {
        for (int i = 0; i < t->in; i++)
            qw[(size_t)(i / per) * t->out + o] |= (uint32_t)t->q[(size_t)o * t->in + i]
                                                  << (b * (i % per));
        for (int g = 0; g < t->G; g++) {
            int z = t->z[o * t->G + g], stored = qs->v2_data ? z : (z - 1) & mask;
            qz[(size_t)g * (t->out / per) + o / per] |= (uint32_t)stored << (b * (o % per));
        }
    }
    put(w, t, qs, first, "qweight", "I32", 2, t->in / per, t->out, qw, 4);
    put(w, t, qs, first, "qzeros", "I32", 2, t->G, t->out / per, qz, 4);
    put_scales_t(w, t, qs, first);
    int32_t *g_idx = malloc(sizeof *g_idx * t->in);
    memcpy(g_idx, t->g_idx, sizeof *g_idx * t->in);
    if (first && qs->bad_g_idx) g_idx[0] = t->G;
    put(w, t, qs, first, "g_idx", "I32", 1, t->in, 0, g_idx, 4);
    free(g_idx);
    free(qw);
    free(qz);
}

static void put_ct_scale(st_writer *w, const truth *t, const qspec *qs, bool first) {
    const char *dt = qs->scale_dtype ? qs->scale_dtype : "F16";
    const size_t n = (size_t)t->out * t->G;
    uint16_t *h = malloc(2 * n);
    float *f = malloc(4 * n);
    for (size_t k = 0; k < n; k++) {
        f[k] = f16_to_f32(t->s[k]);
        h[k] = strcmp(dt, "BF16") == 0 ? f32_to_bf16(f[k]) : t->s[k];
    }
    int out = first && qs->bad_shape ? t->out - 8 : t->out;
    put(w, t, qs, first, "weight_scale", dt, 2, out, t->G, strcmp(dt, "F32") ? (void *)h : f,
        strcmp(dt, "F32") ? 2 : 4);
    free(h);
    free(f);
}

/* compressed-tensors pack-quantized: values (signed + 2^(bits-1)) along inputs, zero points
 * along outputs. */
static void write_ct(st_writer *w, const truth *t, const qspec *qs, bool first) {
    const int b = qs->bits, per = 32 / b, zr = (t->out + per - 1) / per;
    uint32_t *wp = calloc((size_t)t->out * t->in / per, 4), *zp = calloc((size_t)zr * t->G, 4);
    for (int o = 0; o < t->out; o++) {
        for (int i = 0; i < t->in; i++)
            wp[(size_t)o * (t->in / per) + i / per] |= (uint32_t)t->q[(size_t)o * t->in + i]
                                                       << (b * (i % per));
        for (int g = 0; g < t->G; g++)
            zp[(size_t)(o / per) * t->G + g] |= (uint32_t)t->z[o * t->G + g] << (b * (o % per));
    }
    const int32_t shape[2] = {t->out, t->in};
    put(w, t, qs, first, "weight_packed", "I32", 2, t->out, t->in / per, wp, 4);
    put(w, t, qs, first, "weight_shape", "I32", 1, 2, 0, shape, 4);
    put_ct_scale(w, t, qs, first);
    if (!qs->sym) put(w, t, qs, first, "weight_zero_point", "I32", 2, zr, t->G, zp, 4);
    if (qs->act_order) put(w, t, qs, first, "weight_g_idx", "I32", 1, t->in, 0, t->g_idx, 4);
    free(wp);
    free(zp);
}

/* ---- the checkpoint ---- */

static void quant_json(const qspec *qs, char *buf, size_t n) {
    const int bits = qs->config_bits ? qs->config_bits : qs->bits;
    if (qs->method == QUANT_NONE)
        snprintf(buf, n, "null");
    else if (qs->method == QUANT_AWQ)
        snprintf(buf, n, "{\"quant_method\": \"awq\", \"bits\": %d, \"group_size\": %d, "
                 "\"version\": \"gemm\", \"zero_point\": true}", bits, qs->group);
    else if (qs->method == QUANT_GPTQ)
        snprintf(buf, n, "{\"quant_method\": \"gptq\", \"bits\": %d, \"group_size\": %d, "
                 "\"desc_act\": %s, \"sym\": %s, \"checkpoint_format\": \"%s\"}", bits,
                 qs->group, qs->act_order ? "true" : "false", qs->sym ? "true" : "false",
                 qs->v2_label ? "gptq_v2" : "gptq");
    else
        snprintf(buf, n, "{\"quant_method\": \"compressed-tensors\", \"format\": "
                 "\"pack-quantized\", \"ignore\": [\"lm_head\"], \"config_groups\": {\"group_0\": "
                 "{\"targets\": [\"Linear\"], \"input_activations\": null, \"weights\": "
                 "{\"num_bits\": %d, \"type\": \"int\", \"symmetric\": %s, \"strategy\": \"%s\", "
                 "\"group_size\": %d, \"actorder\": %s}}}}", bits, qs->sym ? "true" : "false",
                 qs->group > 0 ? "group" : "channel", qs->group,
                 qs->act_order ? "\"group\"" : "null");
}

static void write_config(const char *dir, const dims *d, const qspec *qs) {
    char path[128], q[1024];
    quant_json(qs, q, sizeof q);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": %d, "
            "\"intermediate_size\": %d, \"num_hidden_layers\": %d, \"num_attention_heads\": %d, "
            "\"num_key_value_heads\": %d, \"head_dim\": %d, \"vocab_size\": %d, "
            "\"max_position_embeddings\": 128, \"rms_norm_eps\": 1e-5, \"torch_dtype\": "
            "\"float16\", \"tie_word_embeddings\": false, \"quantization_config\": %s}\n",
            d->hidden, d->inter, d->layers, d->heads, d->kv, d->hd, d->vocab, q);
    fclose(f);
}

static void put_float(st_writer *w, const char *name, int rows, int cols, float fill) {
    put_float_tensor(w, &rng_state, name, rows, cols, fill);
}

static void write_layer(st_writer *w, ckpt *c, const dims *d, const qspec *qs, int l) {
    const int q = d->heads * d->hd, kv = d->kv * d->hd;
    const struct { const char *name; int out, in; } lin[7] = {
        {"self_attn.q_proj", q, d->hidden}, {"self_attn.k_proj", kv, d->hidden},
        {"self_attn.v_proj", kv, d->hidden}, {"self_attn.o_proj", d->hidden, q},
        {"mlp.gate_proj", d->inter, d->hidden}, {"mlp.up_proj", d->inter, d->hidden},
        {"mlp.down_proj", d->hidden, d->inter},
    };
    char name[128];
    for (int k = 0; k < 7; k++) {
        truth *t = &c->t[c->n++];
        snprintf(name, sizeof name, "model.layers.%d.%s", l, lin[k].name);
        make_truth(t, name, lin[k].out, lin[k].in, qs);
        bool first = c->n == 1;
        if (qs->method == QUANT_AWQ) write_awq(w, t, qs, first);
        if (qs->method == QUANT_GPTQ) write_gptq(w, t, qs, first);
        if (qs->method == QUANT_CT) write_ct(w, t, qs, first);
    }
    snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
    put_float(w, name, d->hidden, 0, 1.0f);
    snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
    put_float(w, name, d->hidden, 0, 1.0f);
}

/* A checkpoint in a fresh temporary directory. */
static void write_ckpt(ckpt *c, const dims *d, const qspec *qs) {
    memset(c, 0, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "/tmp/folio_qload_XXXXXX");
    assert_non_null(mkdtemp(c->dir));
    write_config(c->dir, d, qs);
    st_writer w = {0};
    put_float(&w, "model.embed_tokens.weight", d->vocab, d->hidden, 0);
    for (int l = 0; l < d->layers; l++) write_layer(&w, c, d, qs, l);
    put_float(&w, "model.norm.weight", d->hidden, 0, 1.0f);
    put_float(&w, "lm_head.weight", d->vocab, d->hidden, 0);
    char path[128];
    snprintf(path, sizeof path, "%s/model.safetensors", c->dir);
    stw_write(&w, path);
}

static void ckpt_free(ckpt *c) {
    char path[128];
    for (int i = 0; i < c->n; i++) truth_free(&c->t[i]);
    snprintf(path, sizeof path, "%s/model.safetensors", c->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/config.json", c->dir);
    unlink(path);
    rmdir(c->dir);
}

/* ---- loading and comparing ---- */

static const truth *find_truth(const ckpt *c, const char *spec_name) {
    for (int i = 0; i < c->n; i++)
        if (strncmp(spec_name, c->t[i].module, strlen(c->t[i].module)) == 0 &&
            strcmp(spec_name + strlen(c->t[i].module), ".weight") == 0)
            return &c->t[i];
    return NULL;
}

/* This rank's slice of the spec equals the truth's (q - z) * s, bit for bit. */
static int compare_spec(const ckpt *c, const tensor_spec *s) {
    const truth *t = find_truth(c, s->name);
    if (!t) return 0;
    const float *got = *s->dest;
    for (int r = 0; r < (s->slice == SLICE_ROWS ? s->count : s->rows); r++) {
        const int64_t row = s->slice == SLICE_ROWS ? s->start + r : r;
        const int64_t c0 = s->slice == SLICE_COLS ? s->start : 0;
        const int64_t nc = s->slice == SLICE_COLS ? s->count : s->cols;
        if (memcmp(got + r * nc, t->w + row * t->in + c0, sizeof(float) * nc) != 0)
            fail_msg("%s: row %lld differs from (q - z) * s", s->name, (long long)row);
    }
    return 1;
}

static void check_world(const ckpt *c, int world) {
    for (int rank = 0; rank < world; rank++) {
        model_config cfg;
        model_weights w;
        if (load_rank_dir(c->dir, rank, world, &cfg, &w) != 0)
            fail_msg("world %d rank %d: %s", world, rank, folio_last_error());
        int n = 0, compared = 0;
        tensor_spec *specs = weights_specs(&cfg, &w.shard, &w, &n);
        for (int i = 0; i < n; i++) compared += compare_spec(c, &specs[i]);
        assert_int_equal(compared, c->n);
        free(specs);
        weights_free(&w);
        model_config_free(&cfg);
    }
}

/* Writes, loads at each world in worlds (0-terminated) and compares. */
static void roundtrip(const dims *d, const qspec *qs, const int *worlds) {
    ckpt c;
    write_ckpt(&c, d, qs);
    for (int i = 0; worlds[i]; i++) check_world(&c, worlds[i]);
    ckpt_free(&c);
}

static const int W124[] = {1, 2, 4, 0}, W12[] = {1, 2, 0}, W1[] = {1, 0};
static const int GROUPS[] = {32, 64, 128, -1};

/* ---- tests ---- */

static void test_awq(void **state) {
    (void)state;
    for (int g = 0; g < 4; g++) {
        qspec qs = {.method = QUANT_AWQ, .bits = 4, .group = GROUPS[g]};
        roundtrip(&DIMS_B, &qs, GROUPS[g] == 128 ? W12 : W124);
    }
}

static void test_gptq(void **state) {
    (void)state;
    for (int g = 0; g < 4; g++)
        for (int v = 0; v < 4; v++) {
            qspec qs = {.method = QUANT_GPTQ, .bits = 4, .group = GROUPS[g], .sym = v & 1,
                        .v2_label = v >> 1, .v2_data = v >> 1};
            roundtrip(&DIMS_B, &qs, GROUPS[g] == 128 ? W12 : W124);
        }
}

static void test_compressed_tensors(void **state) {
    (void)state;
    static const char *const dtypes[] = {"F16", "BF16", "F32"};
    for (int g = 0; g < 4; g++)
        for (int v = 0; v < 6; v++) {
            qspec qs = {.method = QUANT_CT, .bits = 4, .group = GROUPS[g], .sym = v & 1,
                        .scale_dtype = dtypes[v >> 1]};
            roundtrip(&DIMS_B, &qs, GROUPS[g] == 128 ? W12 : W124);
        }
}

static void test_8bit(void **state) {
    (void)state;
    for (int sym = 0; sym < 2; sym++) {
        qspec gptq = {.method = QUANT_GPTQ, .bits = 8, .group = 64, .sym = sym, .v2_label = 1,
                      .v2_data = 1};
        roundtrip(&DIMS_B, &gptq, W124);
        qspec ct = {.method = QUANT_CT, .bits = 8, .group = sym ? -1 : 32, .sym = sym};
        roundtrip(&DIMS_B, &ct, W124);
    }
}

/* A random g_idx permutation over all inputs (at world 2 and 4 every row-parallel shard cuts
 * every group: padded), and one permuted inside each half (whole groups per shard at world
 * 2, no padding); 4- and 8-bit, groups 32 and 64. */
static void test_act_order(void **state) {
    (void)state;
    for (int m = 0; m < 2; m++)
        for (int half = 0; half < 2; half++) {
            qspec qs = {.method = m ? QUANT_CT : QUANT_GPTQ, .bits = 4, .group = 32,
                        .sym = half, .act_order = true, .v2_label = 1, .v2_data = 1,
                        .perm_block = half ? 128 : 0};
            roundtrip(&DIMS_B, &qs, half ? W12 : W124);
        }
    qspec g64 = {.method = QUANT_GPTQ, .bits = 8, .group = 64, .act_order = true,
                 .v2_label = 1, .v2_data = 1};
    roundtrip(&DIMS_B, &g64, W124);
}

/* out 96 / in 192, two layers, group 32 (world 1) and 48 (world 2: whole groups per shard). */
static void test_odd_sizes(void **state) {
    (void)state;
    for (int m = 0; m < 3; m++)
        for (int gi = 0; gi < 2; gi++) {
            qspec qs = {.method = m == 0 ? QUANT_AWQ : m == 1 ? QUANT_GPTQ : QUANT_CT,
                        .bits = 4, .group = gi ? 48 : 32, .sym = m == 2};
            roundtrip(&DIMS_ODD, &qs, gi ? W12 : W1);
        }
}

/* Labelled gptq but zeros stored as v2 (and the reverse): the data wins, with a note naming
 * the file and what was assumed; the weights are right either way. */
static void test_gptq_mislabeled(void **state) {
    (void)state;
    for (int v = 0; v < 2; v++) {
        qspec qs = {.method = QUANT_GPTQ, .bits = 4, .group = 64, .sym = true, .v2_label = v,
                    .v2_data = !v};
        ckpt c;
        write_ckpt(&c, &DIMS_B, &qs);
        check_world(&c, 2);
        model_config cfg;
        model_weights w;
        assert_int_equal(load_rank_dir(c.dir, 0, 1, &cfg, &w), 0);
        assert_non_null(strstr(w.load_note, c.dir));
        assert_non_null(strstr(w.load_note, v ? "assumed gptq (v1)" : "assumed gptq_v2"));
        weights_free(&w);
        model_config_free(&cfg);
        ckpt_free(&c);
    }
    qspec ok = {.method = QUANT_GPTQ, .bits = 4, .group = 64, .sym = true};
    ckpt c;
    write_ckpt(&c, &DIMS_B, &ok);
    model_config cfg;
    model_weights w;
    assert_int_equal(load_rank_dir(c.dir, 0, 1, &cfg, &w), 0);
    assert_string_equal(w.load_note, "");
    weights_free(&w);
    model_config_free(&cfg);
    ckpt_free(&c);
}

/* The quant_matrix itself: act-order sets perm (columns sorted by group), plain order not. */
static void test_quant_matrix_perm(void **state) {
    (void)state;
    for (int act = 0; act < 2; act++) {
        qspec qs = {.method = QUANT_GPTQ, .bits = 4, .group = 32, .act_order = act,
                    .v2_label = 1, .v2_data = 1};
        ckpt c;
        write_ckpt(&c, &DIMS_B, &qs);
        model_config cfg;
        assert_int_equal(model_config_load(c.dir, &cfg), 0);
        shard_plan sh;
        assert_int_equal(shard_plan_make(&cfg, 0, 1, &sh), 0);
        safetensors_model st;
        assert_int_equal(safetensors_open_dir(c.dir, &st), 0);
        quant_loader ql = {.st = &st, .dir = c.dir, .qc = &cfg.quant, .world = 1};
        tensor_spec s = {.name = "model.layers.0.mlp.up_proj.weight", .rows = 512, .cols = 256,
                         .slice = SLICE_NONE, .init = INIT_MATRIX};
        quant_matrix m;
        assert_int_equal(quant_load_matrix(&ql, &s, &m), 0);
        assert_int_equal(m.group_size, 32);
        assert_true(act ? m.perm != NULL : m.perm == NULL);
        const truth *t = find_truth(&c, s.name);
        for (int k = 0; act && k < m.cols; k++) /* groups contiguous, in group order */
            assert_int_equal(t->g_idx[m.perm[k]], k / 32);
        float *out = malloc(sizeof *out * 512 * 256);
        quant_matrix_dequantize(&m, out);
        assert_memory_equal(out, t->w, sizeof *out * 512 * 256);
        free(out);
        quant_matrix_free(&m);
        safetensors_close(&st);
        model_config_free(&cfg);
        ckpt_free(&c);
    }
}


/* One local group of an act-order shard's quant_matrix (rank 1 of 2 of o_proj): its real
 * kernel columns first, all of one checkpoint group (after the previous local group's), in
 * input order; then padding (QL_PAD) whose q is the group's zero. Returns its real count. */
static int check_padded_group(const quant_matrix *m, const truth *t, int c0, int l, int *prev) {
    int real = 0, last = -1;
    for (int k = l * m->group_size; k < (l + 1) * m->group_size; k++) {
        const int in_c = m->perm[k];
        if (in_c == QL_PAD) {
            for (int r = 0; r < m->rows; r++)
                assert_int_equal(ql_get(m, r, k), m->zeros[(size_t)r * ql_groups(m) + l]);
            continue;
        }
        assert_int_equal(real, k - l * m->group_size); /* no input after padding */
        assert_true(in_c > last && in_c < m->in_cols);
        if (real == 0) assert_true(t->g_idx[c0 + in_c] > *prev);
        else assert_int_equal(t->g_idx[c0 + in_c], *prev);
        *prev = t->g_idx[c0 + in_c];
        last = in_c;
        real++;
    }
    return real;
}

/* The padding layout: every group exactly group_size kernel columns, every input once,
 * padding dequantizes to 0 (dequantize writes [rows][in_cols], bit-exact). */
static void test_padded_layout(void **state) {
    (void)state;
    qspec qs = {.method = QUANT_GPTQ, .bits = 4, .group = 32, .act_order = true,
                .v2_label = 1, .v2_data = 1};
    ckpt c;
    write_ckpt(&c, &DIMS_B, &qs);
    model_config cfg;
    assert_int_equal(model_config_load(c.dir, &cfg), 0);
    safetensors_model st;
    assert_int_equal(safetensors_open_dir(c.dir, &st), 0);
    quant_loader ql = {.st = &st, .dir = c.dir, .qc = &cfg.quant, .world = 2};
    tensor_spec s = {.name = "model.layers.0.self_attn.o_proj.weight", .rows = 256,
                     .cols = 256, .slice = SLICE_COLS, .start = 128, .count = 128,
                     .init = INIT_MATRIX};
    quant_matrix m;
    assert_int_equal(quant_load_matrix(&ql, &s, &m), 0);
    const truth *t = find_truth(&c, s.name);
    assert_int_equal(m.group_size, 32);
    assert_int_equal(m.in_cols, 128);
    assert_true(m.cols > m.in_cols && m.cols % m.group_size == 0 && m.perm != NULL);
    int real = 0, prev = -1;
    for (int l = 0; l < ql_groups(&m); l++) {
        const int n = check_padded_group(&m, t, 128, l, &prev);
        assert_true(n >= 1 && n <= 32);
        real += n;
    }
    assert_int_equal(real, m.in_cols); /* every input once (increasing, distinct per group) */
    float *out = malloc(sizeof *out * 256 * 128);
    quant_matrix_dequantize(&m, out);
    for (int r = 0; r < 256; r++)
        assert_memory_equal(out + r * 128, t->w + r * 256 + 128, sizeof *out * 128);
    float *cpu = malloc(sizeof *cpu * 256 * 128);
    w4a16_dequant_cpu(cpu, &m);
    assert_memory_equal(cpu, out, sizeof *out * 256 * 128);
    free(cpu);
    free(out);
    quant_matrix_free(&m);
    safetensors_close(&st);
    model_config_free(&cfg);
    ckpt_free(&c);
}

/* ---- the forward ---- */

/* The float checkpoint of c: the same float tensors, and every quantized Linear as its
 * dequantized float32 weight. */
static void write_float_twin(const ckpt *c, const dims *d, const char *dir) {
    static const char *const keep[] = {"embed_tokens", "norm", "lm_head"};
    safetensors_model st;
    assert_int_equal(safetensors_open_dir(c->dir, &st), 0);
    st_writer w = {0};
    for (int i = 0; i < st.n_tensors; i++)
        for (int k = 0; k < 3; k++)
            if (strstr(st.tensors[i].name, keep[k]) && st.tensors[i].dtype == ST_F32) {
                const st_tensor *t = &st.tensors[i];
                stw_add(&w, t->name, "F32", t->ndim, t->shape[0], t->ndim > 1 ? t->shape[1] : 0,
                        t->data, t->nbytes);
                break;
            }
    for (int i = 0; i < c->n; i++) {
        char name[192];
        snprintf(name, sizeof name, "%s.weight", c->t[i].module);
        stw_add(&w, name, "F32", 2, c->t[i].out, c->t[i].in, c->t[i].w,
                sizeof(float) * c->t[i].out * c->t[i].in);
    }
    safetensors_close(&st);
    char path[128];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    stw_write(&w, path);
    qspec none = {.method = QUANT_NONE};
    write_config(dir, d, &none);
}

static void logits_of(const char *dir, float *logits, int n) {
    comm_ctx comm;
    comm_init_single(&comm);
    device_model m;
    open_model_or_fail(dir, LOAD_AUTO, &comm, &m);
    static const int32_t ids[] = {1, 7, 22, 5, 39, 3};
    assert_int_equal(score_sequence(&m, &comm, ids, n, 16, logits), 0);
    device_model_close(&m);
}

/* A W4A16 model's forward is exactly the forward of its dequantized weights; --device cuda
 * refuses it (act-order) for now. */
static void test_forward_is_dequantized_forward(void **state) {
    (void)state;
    qspec qs = {.method = QUANT_CT, .bits = 4, .group = 32, .act_order = true};
    ckpt c;
    write_ckpt(&c, &DIMS_ODD, &qs);
    char twin[64] = "/tmp/folio_qload_twin_XXXXXX";
    assert_non_null(mkdtemp(twin));
    write_float_twin(&c, &DIMS_ODD, twin);
    const int n = 6, vocab = DIMS_ODD.vocab;
    float *a = malloc(sizeof *a * n * vocab), *b = malloc(sizeof *b * n * vocab);
    logits_of(c.dir, a, n);
    logits_of(twin, b, n);
    assert_memory_equal(a, b, sizeof *a * n * vocab);
    comm_ctx comm;
    comm_init_single(&comm);
    device_model m;
    const device_options gpu = {.device = DEVICE_CUDA, .format = LOAD_AUTO};
    assert_int_equal(device_model_open(c.dir, &gpu, &comm, &m), -1);
    assert_non_null(strstr(folio_last_error(),
                           "--device cuda: act-order 4-bit weights"));
    free(a);
    free(b);
    char path[128];
    snprintf(path, sizeof path, "%s/model.safetensors", twin);
    unlink(path);
    snprintf(path, sizeof path, "%s/config.json", twin);
    unlink(path);
    rmdir(twin);
    ckpt_free(&c);
}

/* ---- malformed checkpoints ---- */

static void test_error_missing_qzeros(void **state) {
    (void)state;
    qspec qs = {.method = QUANT_GPTQ, .bits = 4, .group = 64, .skip = "qzeros"};
    ckpt c;
    write_ckpt(&c, &DIMS_B, &qs);
    expect_load_fail_dir(c.dir, 1, c.dir, "'model.layers.0.self_attn.q_proj.qzeros' is missing",
                         "gptq", NULL);
    ckpt_free(&c);
    qspec ct = {.method = QUANT_CT, .bits = 4, .group = 64, .skip = "weight_zero_point"};
    write_ckpt(&c, &DIMS_B, &ct);
    expect_load_fail_dir(c.dir, 1, "'model.layers.0.self_attn.q_proj.weight_zero_point' is missing",
                         NULL);
    ckpt_free(&c);
}

static void test_error_wrong_shape(void **state) {
    (void)state;
    qspec qs = {.method = QUANT_AWQ, .bits = 4, .group = 64, .bad_shape = true};
    ckpt c;
    write_ckpt(&c, &DIMS_B, &qs);
    expect_load_fail_dir(c.dir, 1,
                         "model.safetensors: tensor 'model.layers.0.self_attn.q_proj.scales'",
                         "expected F16 [4, 256]", "found F16 [4, 248]", NULL);
    ckpt_free(&c);
    qspec ct = {.method = QUANT_CT, .bits = 4, .group = 64, .sym = true, .bad_shape = true,
                .scale_dtype = "BF16"};
    write_ckpt(&c, &DIMS_B, &ct);
    expect_load_fail_dir(c.dir, 1, "'model.layers.0.self_attn.q_proj.weight_scale'",
                         "expected F16 or BF16 or F32 [256, 4]", "found BF16 [248, 4]", NULL);
    ckpt_free(&c);
}

static void test_error_g_idx(void **state) {
    (void)state;
    qspec qs = {.method = QUANT_GPTQ, .bits = 4, .group = 64, .act_order = true, .skip = "g_idx"};
    ckpt c;
    write_ckpt(&c, &DIMS_B, &qs);
    expect_load_fail_dir(c.dir, 1, "'model.layers.0.self_attn.q_proj.g_idx' is missing", NULL);
    ckpt_free(&c);
    qspec bad = {.method = QUANT_GPTQ, .bits = 4, .group = 64, .bad_g_idx = true};
    write_ckpt(&c, &DIMS_B, &bad);
    expect_load_fail_dir(c.dir, 1,
                         "model.safetensors: tensor 'model.layers.0.self_attn.q_proj.g_idx'",
                         "expected groups 0 .. 3, found 4 at input 0", NULL);
    ckpt_free(&c);
}

static void test_error_bits3(void **state) {
    (void)state;
    qspec qs = {.method = QUANT_GPTQ, .bits = 4, .group = 64, .config_bits = 3};
    ckpt c;
    write_ckpt(&c, &DIMS_B, &qs);
    expect_load_fail_dir(c.dir, 1,
                         "config.json: field 'quantization_config.bits': 3 is not supported "
                         "(4 or 8)", NULL);
    ckpt_free(&c);
}

/* o_proj has 256 inputs: over 4 ranks each holds 64, half of a 128 group. */
static void test_error_split_cuts_group(void **state) {
    (void)state;
    qspec qs = {.method = QUANT_GPTQ, .bits = 4, .group = 128, .sym = true};
    ckpt c;
    write_ckpt(&c, &DIMS_B, &qs);
    expect_load_fail_dir(c.dir, 4, "layer 'model.layers.0.self_attn.o_proj'", "over 4 ranks",
                         "cuts quantization group", "group_size 128", NULL);
    ckpt_free(&c);
    qspec ct = {.method = QUANT_CT, .bits = 4, .group = 128};
    write_ckpt(&c, &DIMS_B, &ct);
    expect_load_fail_dir(c.dir, 4, "layer 'model.layers.0.self_attn.o_proj'", "over 4 ranks",
                         "cuts quantization group", "group_size 128", NULL);
    ckpt_free(&c);
    qspec act = {.method = QUANT_GPTQ, .bits = 4, .group = 128, .act_order = true};
    write_ckpt(&c, &DIMS_B, &act); /* act-order: the same cut is padded instead */
    check_world(&c, 4);
    ckpt_free(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_awq),
        cmocka_unit_test(test_gptq),
        cmocka_unit_test(test_compressed_tensors),
        cmocka_unit_test(test_8bit),
        cmocka_unit_test(test_act_order),
        cmocka_unit_test(test_odd_sizes),
        cmocka_unit_test(test_gptq_mislabeled),
        cmocka_unit_test(test_quant_matrix_perm),
        cmocka_unit_test(test_padded_layout),
        cmocka_unit_test(test_forward_is_dequantized_forward),
        cmocka_unit_test(test_error_missing_qzeros),
        cmocka_unit_test(test_error_wrong_shape),
        cmocka_unit_test(test_error_g_idx),
        cmocka_unit_test(test_error_bits3),
        cmocka_unit_test(test_error_split_cuts_group),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
