/* folio quantize: float checkpoint -> compressed-tensors pack-quantized checkpoint
 * (quantize_model.h). Tensors are read from the mmapped input one at a time, so memory holds
 * one float matrix plus the output shard being written. */
#include "quantize_model.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ct_pack.h"
#include "dtype.h"
#include "error.h"
#include "grow.h"
#include "json_util.h"
#include "progress.h"
#include "quantize.h"
#include "quantize_fp8.h"
#include "safetensors.h"
#include "safetensors_write.h"

typedef struct {
    const quantize_options *o;
    st_writer *w;
    char **ignore;               /* [cap_ignore] module names kept in float */
    int n_ignore, cap_ignore;
    quantize_report *rep;
} qm_run;

static const char *const TARGETS[] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                      "gate_proj", "up_proj", "down_proj"};

/* "model.layers.0.self_attn.q_proj.weight" of a target module, 2-D. */
static bool is_target(const st_tensor *t) {
    const size_t n = strlen(t->name), suf = strlen(".weight");
    if (t->ndim != 2 || n <= suf || strcmp(t->name + n - suf, ".weight") != 0) return false;
    if (strncmp(t->name, "lm_head", 7) == 0) return false;
    const char *end = t->name + n - suf, *mod = end;
    while (mod > t->name && mod[-1] != '.') mod--;
    for (size_t i = 0; i < sizeof TARGETS / sizeof TARGETS[0]; i++)
        if ((size_t)(end - mod) == strlen(TARGETS[i]) && strncmp(mod, TARGETS[i], end - mod) == 0)
            return true;
    return false;
}

static int to_f32(const st_tensor *t, float *out) {
    folio_dtype d;
    if (t->dtype == ST_F32) d = DTYPE_F32;
    else if (t->dtype == ST_F16) d = DTYPE_F16;
    else if (t->dtype == ST_BF16) d = DTYPE_BF16;
    else
        return folio_fail("%s: tensor '%s': dtype %s cannot be quantized (F32, F16 or BF16)",
                          t->file, t->name, st_dtype_name(t->dtype));
    dtype_to_f32(out, t->data, d, (size_t)(t->shape[0] * t->shape[1]));
    return 0;
}

/* Adds NAME<suffix> to the writer. */
static int add_part(qm_run *run, const char *module, const char *suffix, st_dtype dt, int ndim,
                    const int64_t *shape, const void *data, uint64_t nbytes) {
    char name[1024];
    const int len = snprintf(name, sizeof name, "%s%s", module, suffix);
    if (len < 0 || (size_t)len >= sizeof name)
        return folio_fail("quantize: tensor name %s%s is too long", module, suffix);
    run->rep->out_bytes += nbytes;
    return st_writer_add(run->w, name, dt, ndim, shape, data, nbytes);
}

static int write_packed(qm_run *run, const char *module, const rtn_matrix *m) {
    const int64_t rows = m->rows, groups = m->cols / m->group_size;
    const int64_t wshape[2] = {rows, (int64_t)m->cols * m->bits / 32};
    const int64_t sshape[2] = {rows, groups}, zshape[2] = {ct_zero_rows(m), groups};
    const int64_t shape_shape[1] = {2};
    const int32_t orig[2] = {m->rows, m->cols};
    uint32_t *packed = folio_xmalloc((size_t)(wshape[0] * wshape[1]) * 4);
    ct_pack_weight(m, packed);
    int rc = add_part(run, module, ".weight_packed", ST_I32, 2, wshape, packed,
                      (uint64_t)(wshape[0] * wshape[1]) * 4);
    if (rc == 0)
        rc = add_part(run, module, ".weight_scale", ST_F16, 2, sshape, m->scales,
                      (uint64_t)(rows * groups) * 2);
    if (rc == 0) rc = add_part(run, module, ".weight_shape", ST_I32, 1, shape_shape, orig, 8);
    if (rc == 0 && !run->o->sym) {
        packed = folio_xrealloc(packed, (size_t)(zshape[0] * groups) * 4);
        ct_pack_zeros(m, packed);
        rc = add_part(run, module, ".weight_zero_point", ST_I32, 2, zshape, packed,
                      (uint64_t)(zshape[0] * groups) * 4);
    }
    free(packed);
    return rc;
}

static int copy_tensor(qm_run *run, const st_tensor *t) {
    run->rep->n_copied++;
    run->rep->out_bytes += t->nbytes;
    return st_writer_add(run->w, t->name, t->dtype, t->ndim, t->shape, t->data, t->nbytes);
}

/* The float32 values o->values gives for t, or NULL (*rc -1 with a message when their size
 * disagrees with the tensor's). */
static const float *given_values(const qm_run *run, const st_tensor *t, int *rc) {
    *rc = 0;
    for (int i = 0; i < run->o->n_values; i++) {
        const quantize_values *v = &run->o->values[i];
        if (strcmp(v->name, t->name) != 0) continue;
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) numel *= t->shape[d];
        if (numel == v->numel) return v->data;
        *rc = folio_fail("%s: tensor '%s' has %lld elements, the values given for it %lld",
                         t->file, t->name, (long long)numel, (long long)v->numel);
        return NULL;
    }
    return NULL;
}

/* t with the values v instead of its own, in t's dtype. */
static int write_values(qm_run *run, const st_tensor *t, const float *v) {
    const size_t n = t->nbytes / st_dtype_size(t->dtype);
    if (t->dtype == ST_F32) {
        run->rep->n_copied++;
        run->rep->out_bytes += t->nbytes;
        return st_writer_add(run->w, t->name, t->dtype, t->ndim, t->shape, v, t->nbytes);
    }
    if (t->dtype != ST_BF16 && t->dtype != ST_F16)
        return folio_fail("%s: tensor '%s': dtype %s cannot take new values (F32, F16 or BF16)",
                          t->file, t->name, st_dtype_name(t->dtype));
    uint16_t *h = folio_xmalloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++)
        h[i] = t->dtype == ST_BF16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
    run->rep->n_copied++;
    run->rep->out_bytes += t->nbytes;
    int rc = st_writer_add(run->w, t->name, t->dtype, t->ndim, t->shape, h, t->nbytes);
    free(h);
    return rc;
}

/* The module name kept in float goes to the ignore list; the weight is copied (or written
 * from v). */
static int keep_float(qm_run *run, const st_tensor *t, const float *v) {
    const size_t n = strlen(t->name) - strlen(".weight");
    FOLIO_GROW(run->ignore, run->cap_ignore, run->n_ignore + 1);
    char *mod = folio_xmalloc(n + 1);
    memcpy(mod, t->name, n);
    mod[n] = '\0';
    run->ignore[run->n_ignore++] = mod;
    if (run->rep->n_kept++ == 0)
        snprintf(run->rep->first_kept, sizeof run->rep->first_kept, "%s", t->name);
    run->rep->n_copied--;
    return v ? write_values(run, t, v) : copy_tensor(run, t);
}

/* FP8: MODULE.weight F8_E4M3 and its scales (quantize_fp8.h). */
static int quantize_fp8(qm_run *run, const st_tensor *t, const float *v) {
    const int rows = (int)t->shape[0], cols = (int)t->shape[1];
    const bool block = run->o->fp8_block;
    const int ns = fp8_quant_scale_count(rows, cols, block);
    float *w = v ? NULL : folio_xmalloc((size_t)rows * cols * sizeof *w);
    if (w && to_f32(t, w) != 0) {
        free(w);
        return -1;
    }
    uint8_t *q = folio_xmalloc((size_t)rows * cols);
    float *scales = folio_xmalloc(sizeof *scales * (size_t)ns);
    fp8_quantize_matrix(v ? v : w, rows, cols, block, q, scales);
    free(w);
    char module[1024];
    snprintf(module, sizeof module, "%.*s", (int)(strlen(t->name) - strlen(".weight")), t->name);
    const int64_t sshape[2] = {block ? (rows + FP8_QUANT_BLOCK - 1) / FP8_QUANT_BLOCK : rows,
                               block ? (cols + FP8_QUANT_BLOCK - 1) / FP8_QUANT_BLOCK : 1};
    int rc = add_part(run, module, ".weight", ST_F8_E4M3, 2, t->shape, q,
                      (uint64_t)rows * cols);
    if (rc == 0)
        rc = add_part(run, module, block ? ".weight_scale_inv" : ".weight_scale", ST_F32, 2,
                      sshape, scales, (uint64_t)ns * 4);
    free(q);
    free(scales);
    run->rep->n_quantized++;
    return rc;
}

/* v: the values to quantize instead of t's own, or NULL. */
static int quantize_tensor(qm_run *run, const st_tensor *t, const float *v) {
    if (run->o->fp8) return quantize_fp8(run, t, v);
    const int rows = (int)t->shape[0], cols = (int)t->shape[1];
    if (!rtn_fits(cols, run->o->bits, run->o->group_size)) return keep_float(run, t, v);
    const int group = run->o->group_size > 0 ? run->o->group_size : cols;
    float *w = v ? NULL : folio_xmalloc((size_t)rows * cols * sizeof *w);
    rtn_params p = {.bits = run->o->bits, .group_size = group, .sym = run->o->sym};
    rtn_matrix m;
    char what[1100];
    snprintf(what, sizeof what, "%s: tensor '%s'", t->file, t->name);
    int rc = v ? 0 : to_f32(t, w);
    if (rc == 0) rc = rtn_quantize(v ? v : w, rows, cols, &p, what, &m);
    free(w);
    if (rc != 0) return -1;
    char module[1024];
    snprintf(module, sizeof module, "%.*s", (int)(strlen(t->name) - strlen(".weight")), t->name);
    rc = write_packed(run, module, &m);
    rtn_free(&m);
    run->rep->n_quantized++;
    return rc;
}

static int quantize_tensors(qm_run *run, const safetensors_model *in) {
    progress_bar bar;
    progress_start(&bar, "quantizing", in->total_bytes, "B", run->o->progress);
    int rc = 0;
    for (int i = 0; i < in->n_tensors && rc == 0; i++) {
        const st_tensor *t = &in->tensors[i];
        run->rep->in_bytes += t->nbytes;
        const float *v = given_values(run, t, &rc);
        if (rc == 0)
            rc = is_target(t) ? quantize_tensor(run, t, v)
                 : v          ? write_values(run, t, v)
                              : copy_tensor(run, t);
        progress_add(&bar, t->nbytes);
    }
    progress_finish(&bar);
    return rc;
}

/* ---- the output directory: created empty, config.json, side files ---- */

/* 0 when dir does not exist or is empty (*exists says which). */
static int check_out_dir(const char *dir, bool *exists) {
    DIR *d = opendir(dir);
    *exists = d != NULL;
    if (!d) return 0;
    const struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(d);
    return n == 0 ? 0 : folio_fail("%s: the output directory exists and is not empty", dir);
}

static int prepare_out_dir(const char *dir) {
    bool exists;
    if (check_out_dir(dir, &exists) != 0) return -1;
    if (!exists && mkdir(dir, 0777) != 0)
        return folio_fail("%s: cannot create the output directory: %s", dir, strerror(errno));
    return 0;
}

static int write_config(const qm_run *run, json_t *cfg) {
    const quantize_options *o = run->o;
    json_object_set_new(cfg, "quantization_config",
                        o->fp8 ? fp8_quant_config(o->fp8_block)
                               : ct_quant_config(o->bits, o->group_size, o->sym,
                                                 o->group_size <= 0,
                                                 (const char *const *)run->ignore,
                                                 run->n_ignore));
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", o->out_dir);
    if (json_dump_file(cfg, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0)
        return folio_fail("%s: cannot write", path);
    return 0;
}

static int copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb");
    if (!in) return errno == ENOENT ? 0 : folio_fail("%s: cannot open: %s", from, strerror(errno));
    FILE *out = fopen(to, "wb");
    int rc = out ? 0 : folio_fail("%s: cannot create: %s", to, strerror(errno));
    char buf[1 << 16];
    size_t n;
    while (rc == 0 && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) rc = folio_fail("%s: write failed", to);
    if (rc == 0 && ferror(in)) rc = folio_fail("%s: read error", from);
    if (out && fclose(out) != 0 && rc == 0) rc = folio_fail("%s: write failed", to);
    fclose(in);
    return rc;
}

static int copy_side_files(const quantize_options *o) {
    static const char *const FILES[] = {"tokenizer.json", "tokenizer_config.json",
                                        "generation_config.json", "special_tokens_map.json"};
    for (size_t i = 0; i < sizeof FILES / sizeof FILES[0]; i++) {
        char from[4096], to[4096];
        snprintf(from, sizeof from, "%s/%s", o->model_dir, FILES[i]);
        snprintf(to, sizeof to, "%s/%s", o->out_dir, FILES[i]);
        if (copy_file(from, to) != 0) return -1;
    }
    return 0;
}

static int read_input_config(const quantize_options *o, json_t **cfg) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", o->model_dir);
    if (json_read_file(path, false, cfg) != 0) return -1;
    if (json_object_get(*cfg, "quantization_config")) {
        json_decref(*cfg);
        return folio_fail("%s: the model is already quantized (it has a quantization_config)",
                          path);
    }
    if (!o->fp8 && o->bits != 4 && o->bits != 8) {
        json_decref(*cfg);
        return folio_fail("--bits %d: 4 or 8 bits are supported", o->bits);
    }
    return 0;
}

int quantize_check(const quantize_options *o) {
    json_t *cfg;
    bool exists;
    if (read_input_config(o, &cfg) != 0) return -1;
    json_decref(cfg);
    return check_out_dir(o->out_dir, &exists);
}

int quantize_model(const quantize_options *o, quantize_report *rep) {
    *rep = (quantize_report){0};
    json_t *cfg;
    if (read_input_config(o, &cfg) != 0) return -1;
    safetensors_model in;
    if (safetensors_open_dir(o->model_dir, &in) != 0) {
        json_decref(cfg);
        return -1;
    }
    qm_run run = {.o = o, .rep = rep};
    int rc = prepare_out_dir(o->out_dir);
    if (rc == 0) {
        run.w = st_writer_open(o->out_dir, o->max_shard_bytes);
        rc = quantize_tensors(&run, &in);
        if (rc == 0) rc = st_writer_close(run.w, &rep->n_files);
        else st_writer_abort(run.w);
    }
    if (rc == 0) rc = write_config(&run, cfg);
    if (rc == 0) rc = copy_side_files(o);
    for (int i = 0; i < run.n_ignore; i++) free(run.ignore[i]);
    free(run.ignore);
    json_decref(cfg);
    safetensors_close(&in);
    return rc;
}
