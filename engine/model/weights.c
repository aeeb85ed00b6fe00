/* Model weights of one rank: every tensor the model needs is described once (a "spec": its
 * Hugging Face name, full shape, and which rows or columns this rank keeps); one pass sizes a
 * single float32 arena, a second pass fills it from the safetensors files or with dummy
 * values. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fp8.h"
#include "grow.h"
#include "hash.h"
#include "progress.h"
#include "quant.h"
#include "safetensors.h"
#include "weights.h"

typedef struct {
    tensor_spec *items;
    int n, cap;
} spec_list;

static void add_spec(spec_list *l, float **dest, init_kind init, int64_t rows, int64_t cols,
                     slice_kind slice, int64_t start, int64_t count, const char *fmt, int layer) {
    FOLIO_GROW(l->items, l->cap, l->n + 1);
    tensor_spec *s = &l->items[l->n++];
    snprintf(s->name, sizeof s->name, fmt, layer);
    s->dest = dest;
    s->rows = rows;
    s->cols = cols;
    s->slice = slice;
    s->start = start;
    s->count = count;
    s->init = init;
    s->aq = NULL;
}

/* The last spec added is a Linear weight whose input quantization lands in aq. */
static void set_aq(spec_list *l, act_quant *aq) { l->items[l->n - 1].aq = aq; }

size_t tensor_spec_floats(const tensor_spec *s) {
    int64_t cols = s->cols ? s->cols : 1;
    switch (s->slice) {
    case SLICE_ROWS: return (size_t)s->count * cols;
    case SLICE_COLS: return (size_t)s->rows * s->count;
    default: return (size_t)s->rows * cols;
    }
}

static void add_layer_specs(spec_list *l, const model_config *c, const shard_plan *sh,
                            layer_weights *lw, int i) {
    int64_t h = c->hidden, hd = c->head_dim;
    int64_t q_rows = (int64_t)c->n_heads * hd, kv_rows = (int64_t)c->n_kv_heads * hd;
    int64_t q0 = (int64_t)sh->head_start * hd, qn = (int64_t)sh->n_heads * hd;
    int64_t k0 = (int64_t)sh->kv_head_start * hd, kn = (int64_t)sh->n_kv_heads * hd;
    int64_t f0 = sh->inter_start, fn = sh->intermediate, ff = c->intermediate;
    const char *p = "model.layers.%d.";
    char n[128];
#define NAME(suffix) (snprintf(n, sizeof n, "%s%s", p, suffix), n)
    add_spec(l, &lw->attn_norm, INIT_NORM, h, 0, SLICE_NONE, 0, 0,
             NAME("input_layernorm.weight"), i);
    add_spec(l, &lw->wq, INIT_MATRIX, q_rows, h, SLICE_ROWS, q0, qn,
             NAME("self_attn.q_proj.weight"), i);
    set_aq(l, &lw->aq_q);
    add_spec(l, &lw->wk, INIT_MATRIX, kv_rows, h, SLICE_ROWS, k0, kn,
             NAME("self_attn.k_proj.weight"), i);
    set_aq(l, &lw->aq_k);
    add_spec(l, &lw->wv, INIT_MATRIX, kv_rows, h, SLICE_ROWS, k0, kn,
             NAME("self_attn.v_proj.weight"), i);
    set_aq(l, &lw->aq_v);
    if (c->qkv_bias) {
        add_spec(l, &lw->bq, INIT_BIAS, q_rows, 0, SLICE_ROWS, q0, qn,
                 NAME("self_attn.q_proj.bias"), i);
        add_spec(l, &lw->bk, INIT_BIAS, kv_rows, 0, SLICE_ROWS, k0, kn,
                 NAME("self_attn.k_proj.bias"), i);
        add_spec(l, &lw->bv, INIT_BIAS, kv_rows, 0, SLICE_ROWS, k0, kn,
                 NAME("self_attn.v_proj.bias"), i);
    }
    if (c->qk_norm) {
        add_spec(l, &lw->q_norm, INIT_NORM, hd, 0, SLICE_NONE, 0, 0,
                 NAME("self_attn.q_norm.weight"), i);
        add_spec(l, &lw->k_norm, INIT_NORM, hd, 0, SLICE_NONE, 0, 0,
                 NAME("self_attn.k_norm.weight"), i);
    }
    add_spec(l, &lw->wo, INIT_MATRIX, h, q_rows, SLICE_COLS, q0, qn,
             NAME("self_attn.o_proj.weight"), i);
    set_aq(l, &lw->aq_o);
    if (c->o_bias)
        add_spec(l, &lw->bo, INIT_BIAS, h, 0, SLICE_NONE, 0, 0, NAME("self_attn.o_proj.bias"), i);
    add_spec(l, &lw->mlp_norm, INIT_NORM, h, 0, SLICE_NONE, 0, 0,
             NAME("post_attention_layernorm.weight"), i);
    add_spec(l, &lw->w_gate, INIT_MATRIX, ff, h, SLICE_ROWS, f0, fn, NAME("mlp.gate_proj.weight"),
             i);
    set_aq(l, &lw->aq_gate);
    add_spec(l, &lw->w_up, INIT_MATRIX, ff, h, SLICE_ROWS, f0, fn, NAME("mlp.up_proj.weight"), i);
    set_aq(l, &lw->aq_up);
    add_spec(l, &lw->w_down, INIT_MATRIX, h, ff, SLICE_COLS, f0, fn, NAME("mlp.down_proj.weight"),
             i);
    set_aq(l, &lw->aq_down);
    if (c->mlp_bias) {
        add_spec(l, &lw->b_gate, INIT_BIAS, ff, 0, SLICE_ROWS, f0, fn, NAME("mlp.gate_proj.bias"),
                 i);
        add_spec(l, &lw->b_up, INIT_BIAS, ff, 0, SLICE_ROWS, f0, fn, NAME("mlp.up_proj.bias"), i);
        add_spec(l, &lw->b_down, INIT_BIAS, h, 0, SLICE_NONE, 0, 0, NAME("mlp.down_proj.bias"), i);
    }
#undef NAME
}

/* Every tensor of the model, in file order of a typical checkpoint. */
static void build_specs(spec_list *l, const model_config *c, const shard_plan *sh,
                        model_weights *w) {
    add_spec(l, &w->embed, INIT_EMBED, c->vocab, c->hidden, SLICE_ROWS, sh->vocab_start,
             sh->vocab, "model.embed_tokens.weight", 0);
    for (int i = 0; i < c->n_layers; i++) add_layer_specs(l, c, sh, &w->layers[i], i);
    add_spec(l, &w->final_norm, INIT_NORM, c->hidden, 0, SLICE_NONE, 0, 0, "model.norm.weight", 0);
    if (!c->tie_embeddings)
        add_spec(l, &w->lm_head, INIT_MATRIX, c->vocab, c->hidden, SLICE_ROWS, sh->vocab_start,
                 sh->vocab, "lm_head.weight", 0);
    if (!c->tie_embeddings) set_aq(l, &w->aq_lm_head);
}

tensor_spec *weights_specs(const model_config *cfg, const shard_plan *shard, model_weights *w,
                           int *n) {
    if (!w->layers) w->layers = folio_xcalloc(cfg->n_layers, sizeof *w->layers);
    spec_list l = {0};
    build_specs(&l, cfg, shard, w);
    *n = l.n;
    return l.items;
}

size_t weights_bytes_f32(const model_config *cfg, const shard_plan *shard) {
    model_weights w = {0};
    layer_weights *layers = folio_xcalloc(cfg->n_layers, sizeof *layers);
    w.layers = layers;
    spec_list l = {0};
    build_specs(&l, cfg, shard, &w);
    size_t total = 0;
    for (int i = 0; i < l.n; i++) total += tensor_spec_floats(&l.items[i]);
    free(l.items);
    free(layers);
    return total * sizeof(float);
}

/* ---- dummy values: a pure function of (seed, tensor name, element index in the FULL tensor),
 * so every rank draws the same model whatever the sharding ---- */

uint64_t weights_dummy_key(uint64_t seed, const char *name) {
    return folio_splitmix64(seed ^ folio_fnv1a64(FOLIO_FNV64_FOLIO_START, name));
}

float weights_dummy_scale(const tensor_spec *s) {
    return s->init == INIT_EMBED ? 1.0f : sqrtf(3.0f / (float)s->cols);
}

static float dummy_value(uint64_t key, uint64_t index, float scale) {
    uint64_t r = folio_splitmix64(key + index * 0xd1b54a32d192ed03ull);
    return scale * (float)((double)(r >> 11) * (2.0 / 9007199254740992.0) - 1.0);
}

static void fill_dummy(const tensor_spec *s, float *dst, uint64_t seed) {
    if (s->init == INIT_NORM) {
        for (size_t i = 0; i < tensor_spec_floats(s); i++) dst[i] = 1.0f;
        return;
    }
    if (s->init == INIT_BIAS) {
        memset(dst, 0, tensor_spec_floats(s) * sizeof *dst);
        return;
    }
    /* uniform(-a, a) with variance 1/fan_in (matrices) or 1/3 (embeddings) */
    float a = weights_dummy_scale(s);
    uint64_t key = weights_dummy_key(seed, s->name);
    int64_t r0 = s->slice == SLICE_ROWS ? s->start : 0;
    int64_t nr = s->slice == SLICE_ROWS ? s->count : s->rows;
    int64_t c0 = s->slice == SLICE_COLS ? s->start : 0;
    int64_t nc = s->slice == SLICE_COLS ? s->count : s->cols;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < nr; r++)
        for (int64_t c = 0; c < nc; c++)
            dst[r * nc + c] = dummy_value(key, (uint64_t)(r0 + r) * s->cols + c0 + c, a);
}

/* An FP8 Linear weight: the fp8_matrix dequantized into the arena, its activation scheme into
 * the spec's act_quant. */
static void hold_fp8(const tensor_spec *s, fp8_matrix *m) {
    fp8_matrix_dequantize(m, *s->dest);
    if (s->aq) *s->aq = (act_quant){.on = true, .act = m->act, .input_scale = m->input_scale};
    fp8_matrix_free(m);
}

/* A dummy model's tensor: a dummy 4-bit model's Linear weights (cfg->quant QUANT_DUMMY) are
 * the dequantized quant_dummy_matrix of this rank's shard (quant_dummy.h's values), a dummy
 * FP8 model's the dequantized fp8_dummy_matrix (fp8_dummy.h's), the rest as above. */
static int fill_dummy_spec(const model_config *cfg, const shard_plan *shard, const tensor_spec *s,
                           uint64_t seed) {
    const bool fp8 = cfg->quant.method == QUANT_FP8 && cfg->quant.fp8_src == FP8_SRC_DUMMY;
    if (fp8 && quant_spec_quantized(&cfg->quant, s)) {
        fp8_matrix m;
        if (fp8_dummy_matrix(&cfg->quant, seed, s, shard->world, &m) != 0) return -1;
        hold_fp8(s, &m);
        return 0;
    }
    if (cfg->quant.method != QUANT_DUMMY || !quant_spec_quantized(&cfg->quant, s)) {
        fill_dummy(s, *s->dest, seed);
        return 0;
    }
    quant_matrix qm;
    if (quant_dummy_matrix(&cfg->quant, seed, s, shard->world, &qm) != 0) return -1;
    quant_matrix_dequantize(&qm, *s->dest);
    quant_matrix_free(&qm);
    return 0;
}

/* ---- loading from files ---- */

static int to_folio_dtype(st_dtype t, folio_dtype *out) {
    switch (t) {
    case ST_F32: *out = DTYPE_F32; return 0;
    case ST_F16: *out = DTYPE_F16; return 0;
    case ST_BF16: *out = DTYPE_BF16; return 0;
    default: return -1;
    }
}

static int check_tensor(const tensor_spec *s, const st_tensor *t, folio_dtype *dt) {
    if (to_folio_dtype(t->dtype, dt) != 0)
        return folio_fail("%s: tensor '%s': dtype %s is not supported (expected F32, F16 or "
                          "BF16)", t->file, s->name, st_dtype_name(t->dtype));
    int want_ndim = s->cols ? 2 : 1;
    bool ok = t->ndim == want_ndim && t->shape[0] == s->rows && (!s->cols || t->shape[1] == s->cols);
    if (ok) return 0;
    char found[128] = "[";
    for (int d = 0; d < t->ndim; d++)
        snprintf(found + strlen(found), sizeof found - strlen(found), "%s%lld", d ? ", " : "",
                 (long long)t->shape[d]);
    strcat(found, "]");
    if (s->cols)
        return folio_fail("%s: tensor '%s': expected shape [%lld, %lld] (from config.json), "
                          "found %s", t->file, s->name, (long long)s->rows, (long long)s->cols,
                          found);
    return folio_fail("%s: tensor '%s': expected shape [%lld] (from config.json), found %s",
                      t->file, s->name, (long long)s->rows, found);
}

/* Copies this rank's rows or columns of t into dst, converting to float32; returns how many
 * of the values are NaN or infinite (counted by the conversion itself). */
static size_t copy_slice(const tensor_spec *s, const st_tensor *t, folio_dtype dt, float *dst) {
    size_t es = dtype_size(dt), bad = 0;
    const char *src = t->data;
    int64_t cols = s->cols ? s->cols : 1;
    switch (s->slice) {
    case SLICE_ROWS:
        return dtype_to_f32(dst, src + (size_t)s->start * cols * es, dt, (size_t)s->count * cols);
    case SLICE_COLS:
        for (int64_t r = 0; r < s->rows; r++)
            bad += dtype_to_f32(dst + r * s->count, src + ((size_t)r * cols + s->start) * es, dt,
                                (size_t)s->count);
        return bad;
    default: return dtype_to_f32(dst, src, dt, (size_t)s->rows * cols);
    }
}

/* At most this many tensors are named in NaN / Inf warnings of one load; a line counts the
 * rest. */
#define NONFINITE_WARNINGS 8

/* What one load found: tensors with NaN or infinite values (this rank's slices). */
typedef struct {
    int tensors;
    int rank, world;
} nonfinite_log;

/* A warning naming the tensor (weights stay as they are: a NaN reaches the logits, where the
 * sampler and the user see it, rather than being hidden). */
static void warn_nonfinite(nonfinite_log *log, const tensor_spec *s, const st_tensor *t,
                           size_t bad) {
    if (bad == 0) return;
    if (log && log->tensors++ >= NONFINITE_WARNINGS) return;
    char who[32] = "";
    if (log && log->world > 1) snprintf(who, sizeof who, " (rank %d)", log->rank);
    fprintf(stderr, "folio: warning%s: %s: tensor '%s' has %zu NaN or infinite value%s (of %zu "
                    "loaded)\n", who, t->file, s->name, bad, bad == 1 ? "" : "s",
            tensor_spec_floats(s));
}

/* The summary after a load that found more such tensors than it named. */
static void warn_nonfinite_rest(const nonfinite_log *log) {
    if (log->tensors > NONFINITE_WARNINGS)
        fprintf(stderr, "folio: warning: %d more tensors have NaN or infinite values\n",
                log->tensors - NONFINITE_WARNINGS);
}

int weights_check_layers(const safetensors_model *m, const model_config *cfg) {
    const st_tensor *first = NULL;
    long first_layer = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const char *name = m->tensors[i].name, *prefix = "model.layers.";
        if (strncmp(name, prefix, strlen(prefix)) != 0) continue;
        char *end;
        long layer = strtol(name + strlen(prefix), &end, 10);
        if (end == name + strlen(prefix) || *end != '.' || layer < cfg->n_layers) continue;
        if (!first || layer < first_layer) {
            first = &m->tensors[i];
            first_layer = layer;
        }
    }
    if (!first) return 0;
    return folio_fail("%s: tensor '%s' belongs to layer %ld, but config.json says "
                      "num_hidden_layers is %d (layers 0 to %d): the checkpoint has more layers "
                      "than the config", first->file, first->name, first_layer, cfg->n_layers,
                      cfg->n_layers - 1);
}

/* A quantized Linear weight: this rank's quant_matrix, dequantized into the arena. */
static int load_quantized(quant_loader *ql, const tensor_spec *s) {
    if (ql->qc->method == QUANT_FP8) {
        fp8_matrix m;
        if (fp8_load_matrix(ql, s, &m) != 0) return -1;
        hold_fp8(s, &m);
        return 0;
    }
    quant_matrix qm;
    if (quant_load_matrix(ql, s, &qm) != 0) return -1;
    quant_matrix_dequantize(&qm, *s->dest);
    quant_matrix_free(&qm);
    return 0;
}

static int load_float(const char *dir, const safetensors_model *m, const tensor_spec *s,
                      nonfinite_log *log) {
    const st_tensor *t = safetensors_find(m, s->name);
    folio_dtype dt = DTYPE_F32;
    if (!t)
        return folio_fail("%s: tensor '%s' is missing (the config says the model has it)", dir,
                          s->name);
    if (check_tensor(s, t, &dt) != 0) return -1;
    warn_nonfinite(log, s, t, copy_slice(s, t, dt, *s->dest));
    return 0;
}

int weights_read_spec(const char *dir, const safetensors_model *m, const tensor_spec *s,
                      float *dst) {
    tensor_spec t = *s;
    t.dest = &dst;
    return load_float(dir, m, &t, NULL);
}

static int load_from_files(const char *dir, const model_config *cfg, const shard_plan *shard,
                           spec_list *l, const load_options *opt, model_weights *w) {
    safetensors_model m = {0};
    if (safetensors_open_dir(dir, &m) != 0) return -1;
    int rc = weights_check_layers(&m, cfg);
    nonfinite_log log = {.rank = shard->rank, .world = shard->world};
    uint64_t bytes = 0;
    for (int i = 0; i < l->n; i++) bytes += tensor_spec_floats(&l->items[i]) * sizeof(float);
    quant_loader ql = {.st = &m, .dir = dir, .qc = &cfg->quant, .world = shard->world};
    progress_bar bar;
    progress_start(&bar, "loading", bytes, "B", opt->show_progress);
    for (int i = 0; i < l->n && rc == 0; i++) {
        const tensor_spec *s = &l->items[i];
        rc = quant_spec_quantized(&cfg->quant, s) ? load_quantized(&ql, s)
                                                  : load_float(dir, &m, s, &log);
        if (rc == 0) progress_add(&bar, tensor_spec_floats(s) * sizeof(float));
    }
    progress_finish(&bar);
    warn_nonfinite_rest(&log);
    safetensors_close(&m);
    snprintf(w->load_note, sizeof w->load_note, "%s", ql.note);
    if (rc == 0 && ql.note[0] && shard->rank == 0)
        fprintf(stderr, "folio: warning: %s\n", ql.note);
    return rc;
}

static long long host_memory_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char line[256];
    long long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1) break;
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

int weights_load(const char *dir, const model_config *cfg, const shard_plan *shard,
                 const load_options *opt, model_weights *w) {
    memset(w, 0, sizeof *w);
    w->shard = *shard;
    size_t need = weights_bytes_f32(cfg, shard);
    long long avail = host_memory_available();
    if (avail > 0 && (long long)need > avail * 9 / 10) {
        char a[32], b[32];
        return folio_fail("the CPU backend holds weights in float32: this rank needs %s, but "
                          "only %s of host memory is available (use more ranks, or --device "
                          "cuda)", format_bytes((double)need, a, sizeof a),
                          format_bytes((double)avail, b, sizeof b));
    }
    w->layers = folio_xcalloc(cfg->n_layers, sizeof *w->layers);
    spec_list l = {0};
    build_specs(&l, cfg, shard, w);
    w->arena_floats = need / sizeof(float);
    w->arena = malloc(need ? need : 1);
    if (!w->arena) {
        free(l.items);
        weights_free(w);
        return folio_fail("cannot allocate %zu bytes for the weights", need);
    }
    float *next = w->arena;
    for (int i = 0; i < l.n; i++) {
        *l.items[i].dest = next;
        next += tensor_spec_floats(&l.items[i]);
    }
    int rc = 0;
    const bool fp8_dummy = cfg->quant.method == QUANT_FP8 && cfg->quant.fp8_src == FP8_SRC_DUMMY;
    if ((cfg->quant.method == QUANT_DUMMY || fp8_dummy) && opt->format != LOAD_DUMMY) {
        rc = folio_fail("--quantization %s draws a dummy model: it needs --load-format dummy "
                        "(a checkpoint carries its own quantization_config)",
                        fp8_dummy ? "fp8" : "w4a16");
    } else if (opt->format == LOAD_DUMMY) {
        for (int i = 0; i < l.n && rc == 0; i++)
            rc = fill_dummy_spec(cfg, shard, &l.items[i], opt->dummy_seed);
    } else {
        rc = load_from_files(dir, cfg, shard, &l, opt, w);
    }
    free(l.items);
    if (rc != 0) {
        weights_free(w);
        return -1;
    }
    if (cfg->tie_embeddings) w->lm_head = w->embed;
    w->n_params_local = (long long)w->arena_floats;
    return 0;
}

void weights_free(model_weights *w) {
    free(w->arena);
    free(w->layers);
    memset(w, 0, sizeof *w);
}
