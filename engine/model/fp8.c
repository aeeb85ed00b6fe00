/* FP8 checkpoints at load (fp8.h): this rank's shard of one Linear weight as an fp8_matrix,
 * read from compressed-tensors float-quantized tensors (MODULE.weight F8_E4M3 [out, in],
 * MODULE.weight_scale: a scalar or [1] per tensor, [out, 1] per channel, [ceil(out/br),
 * ceil(in/bc)] per block; MODULE.input_scale, a scalar, with static activations) or block FP8
 * ones (MODULE.weight, MODULE.weight_scale_inv [ceil(out/br)][ceil(in/bc)], which despite its
 * name MULTIPLIES: W = e4m3(w) * weight_scale_inv, as transformers' FineGrainedFP8 and vLLM read
 * it; without weight_block_size, MODULE.weight_scale per tensor). Scales F32, BF16 or F16, kept
 * as float. Column-parallel shards take their rows (and those rows' channel or block scales),
 * row-parallel ones their columns (and those columns' block scales); a per-tensor scale is kept
 * by every shard; a split that cuts a block is refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtype.h"
#include "error.h"
#include "fp8.h"
#include "fp8_dummy.h"
#include "quant_load.h"

#define SCALE_DTYPES (QT(ST_F32) | QT(ST_BF16) | QT(ST_F16))

/* A one-value tensor MODULE.SUFFIX (shape [], [1] or [1, 1]): its value in *v. */
static int read_scalar(quant_loader *ql, const char *module, const char *suffix, float *v) {
    char name[192];
    snprintf(name, sizeof name, "%s.%s", module, suffix);
    const st_tensor *t = safetensors_find(ql->st, name);
    if (!t)
        return folio_fail("%s: tensor '%s' is missing (config.json's quantization_config says "
                          "'%s' is stored fp8-quantized)", ql->dir, name, module);
    int64_t numel = 1;
    for (int d = 0; d < t->ndim; d++) numel *= t->shape[d];
    if (!(SCALE_DTYPES & QT(t->dtype)) || numel != 1 || t->ndim > 2)
        return folio_fail("%s: tensor '%s': expected F32, BF16 or F16 of one value (shape [] or "
                          "[1], from config.json), found %s with %lld values", t->file, name,
                          st_dtype_name(t->dtype), (long long)numel);
    *v = quant_float_at(t, 0);
    if (!(*v > 0) || *v > 3.0e38f)
        return folio_fail("%s: tensor '%s': expected a positive finite scale, found %g",
                          t->file, name, (double)*v);
    return 0;
}

/* The e4m3 weight: F8_E4M3 [out, in] (F8_E5M2 named as unsupported). */
static int find_weight(quant_loader *ql, const char *module, const tensor_spec *s,
                       const st_tensor **w) {
    char name[192];
    snprintf(name, sizeof name, "%s.weight", module);
    const st_tensor *t = safetensors_find(ql->st, name);
    if (t && t->dtype == ST_F8_E5M2)
        return folio_fail("%s: tensor '%s': dtype F8_E5M2 is not supported for weights "
                          "(expected F8_E4M3, float8_e4m3fn)", t->file, name);
    return quant_tensor(ql, module, "weight", QT(ST_F8_E4M3), 2, s->rows, s->cols, true, w);
}

/* The rows [r0, r0 + nr) and columns [c0, c0 + nc) this rank keeps; a block split must fall on
 * block boundaries (the last block may be partial and end the matrix). */
static int check_block_cut(const char *where, int world, const char *module,
                           const fp8_matrix *m, const char *what, int64_t start, int64_t count,
                           int64_t full, int block) {
    if (start % block == 0 && (count % block == 0 || start + count == full)) return 0;
    return folio_fail("%s: layer '%s': the %s split over %d ranks cuts a %dx%d weight block: "
                      "this rank's %s %lld .. %lld of %lld do not start and end on multiples of "
                      "%d (pick a TP size that keeps whole blocks)", where, module, what,
                      world, m->block_rows, m->block_cols,
                      strcmp(what, "column-parallel") == 0 ? "rows" : "input columns",
                      (long long)start, (long long)(start + count - 1), (long long)full, block);
}

/* Scales of this shard: per tensor the scalar, per channel its rows, per block its blocks. */
static int read_scales(quant_loader *ql, const char *module, const tensor_spec *s, int64_t r0,
                       int64_t c0, fp8_matrix *m) {
    const quant_config *qc = ql->qc;
    const char *suffix = qc->fp8_src == FP8_SRC_BLOCK && m->kind == FP8_W_BLOCK
                             ? "weight_scale_inv" : "weight_scale";
    m->scale = folio_xmalloc(sizeof *m->scale * (size_t)fp8_scale_count(m));
    if (m->kind == FP8_W_TENSOR) return read_scalar(ql, module, suffix, &m->scale[0]);
    const st_tensor *t = NULL;
    if (m->kind == FP8_W_CHANNEL) {
        if (quant_tensor(ql, module, suffix, SCALE_DTYPES, 2, s->rows, 1, true, &t) != 0)
            return -1;
        for (int r = 0; r < m->rows; r++) m->scale[r] = quant_float_at(t, (size_t)(r0 + r));
        return 0;
    }
    const int64_t br = m->block_rows, bc = m->block_cols;
    const int64_t full_bc = (s->cols + bc - 1) / bc;
    if (quant_tensor(ql, module, suffix, SCALE_DTYPES, 2, (s->rows + br - 1) / br, full_bc, true,
                     &t) != 0)
        return -1;
    const int nbr = (m->rows + m->block_rows - 1) / m->block_rows;
    const int nbc = (m->cols + m->block_cols - 1) / m->block_cols;
    for (int i = 0; i < nbr; i++)
        for (int j = 0; j < nbc; j++)
            m->scale[(size_t)i * nbc + j] =
                quant_float_at(t, (size_t)(r0 / br + i) * full_bc + (size_t)(c0 / bc + j));
    return 0;
}

/* Every scale positive and finite (a zero or NaN scale would silently zero or poison a
 * layer). */
static int check_scales(const quant_loader *ql, const char *module, const fp8_matrix *m) {
    for (int i = 0; i < fp8_scale_count(m); i++)
        if (!(m->scale[i] > 0) || m->scale[i] > 3.0e38f)
            return folio_fail("%s: layer '%s': weight scale %d is %g (expected positive and "
                              "finite)", ql->dir, module, i, (double)m->scale[i]);
    return 0;
}

/* "model.layers.0.mlp.down_proj" of its ".weight" spec. */
static void module_of(const tensor_spec *spec, char *buf, size_t n) {
    snprintf(buf, n, "%.*s", (int)(strlen(spec->name) - 7), spec->name);
}

/* m's shape (this rank's shard of spec) and scheme from qc; nothing allocated. */
static void shard_init(const quant_config *qc, const tensor_spec *spec, fp8_matrix *m) {
    memset(m, 0, sizeof *m);
    m->rows = (int)(spec->slice == SLICE_ROWS ? spec->count : spec->rows);
    m->cols = (int)(spec->slice == SLICE_COLS ? spec->count : spec->cols);
    m->kind = qc->fp8_weights;
    m->act = qc->fp8_act;
    if (m->kind == FP8_W_BLOCK) {
        m->block_rows = qc->fp8_block[0];
        m->block_cols = qc->fp8_block[1];
    }
}

/* A block-scaled shard must hold whole blocks (column-parallel: rows; row-parallel: input
 * columns). */
static int check_shard(const char *where, int world, const char *module, const tensor_spec *spec,
                       const fp8_matrix *m) {
    if (m->kind != FP8_W_BLOCK) return 0;
    if (spec->slice == SLICE_ROWS)
        return check_block_cut(where, world, module, m, "column-parallel", spec->start,
                               spec->count, spec->rows, m->block_rows);
    if (spec->slice == SLICE_COLS)
        return check_block_cut(where, world, module, m, "row-parallel", spec->start,
                               spec->count, spec->cols, m->block_cols);
    return 0;
}

static void copy_weight(const st_tensor *w, int64_t cols, int64_t r0, int64_t c0,
                        fp8_matrix *m) {
    const uint8_t *src = w->data;
    for (int r = 0; r < m->rows; r++)
        memcpy(m->w + (size_t)r * m->cols, src + (size_t)(r0 + r) * cols + c0, (size_t)m->cols);
}

int fp8_load_matrix(quant_loader *ql, const tensor_spec *spec, fp8_matrix *m) {
    const quant_config *qc = ql->qc;
    char module[128];
    module_of(spec, module, sizeof module);
    shard_init(qc, spec, m);
    const int64_t r0 = spec->slice == SLICE_ROWS ? spec->start : 0;
    const int64_t c0 = spec->slice == SLICE_COLS ? spec->start : 0;
    const st_tensor *w = NULL;
    int rc = find_weight(ql, module, spec, &w);
    if (rc == 0) rc = check_shard(ql->dir, ql->world, module, spec, m);
    if (rc == 0) rc = read_scales(ql, module, spec, r0, c0, m);
    if (rc == 0) rc = check_scales(ql, module, m);
    if (rc == 0 && m->act == FP8_ACT_STATIC)
        rc = read_scalar(ql, module, "input_scale", &m->input_scale);
    if (rc != 0) {
        fp8_matrix_free(m);
        return -1;
    }
    m->w = folio_xmalloc((size_t)m->rows * m->cols);
    copy_weight(w, spec->cols, r0, c0, m);
    return 0;
}

int fp8_dummy_matrix(const quant_config *qc, uint64_t seed, const tensor_spec *spec, int world,
                     fp8_matrix *m) {
    char module[128];
    module_of(spec, module, sizeof module);
    shard_init(qc, spec, m);
    if (check_shard("--load-format dummy --quantization fp8", world, module, spec, m) != 0)
        return -1;
    const int64_t r0 = spec->slice == SLICE_ROWS ? spec->start : 0;
    const int64_t c0 = spec->slice == SLICE_COLS ? spec->start : 0;
    const uint64_t key = weights_dummy_key(seed, spec->name);
    const float a = weights_dummy_scale(spec);
    m->w = folio_xmalloc((size_t)m->rows * m->cols);
    m->scale = folio_xmalloc(sizeof *m->scale * (size_t)fp8_scale_count(m));
#pragma omp parallel for schedule(static)
    for (int r = 0; r < m->rows; r++)
        for (int c = 0; c < m->cols; c++)
            m->w[(size_t)r * m->cols + c] = fd_weight(key, r0 + r, c0 + c);
    if (m->kind == FP8_W_TENSOR) m->scale[0] = fd_scale(key, 0, 0, a);
    for (int r = 0; m->kind == FP8_W_CHANNEL && r < m->rows; r++)
        m->scale[r] = fd_scale(key, r0 + r, 0, a);
    if (m->kind == FP8_W_BLOCK) {
        const int nbr = (m->rows + m->block_rows - 1) / m->block_rows;
        const int nbc = (m->cols + m->block_cols - 1) / m->block_cols;
        for (int i = 0; i < nbr; i++)
            for (int j = 0; j < nbc; j++)
                m->scale[(size_t)i * nbc + j] =
                    fd_scale(key, r0 / m->block_rows + i, c0 / m->block_cols + j, a);
    }
    return 0;
}

int fp8_dummy_check(const model_config *cfg, const shard_plan *shard) {
    if (cfg->quant.method != QUANT_FP8 || cfg->quant.fp8_src != FP8_SRC_DUMMY) return 0;
    model_weights shadow = {0};
    int n = 0, rc = 0;
    tensor_spec *specs = weights_specs(cfg, shard, &shadow, &n);
    for (int i = 0; i < n && rc == 0; i++) {
        if (!quant_spec_quantized(&cfg->quant, &specs[i])) continue;
        char module[128];
        fp8_matrix m;
        module_of(&specs[i], module, sizeof module);
        shard_init(&cfg->quant, &specs[i], &m);
        rc = check_shard("--load-format dummy --quantization fp8", shard->world, module,
                         &specs[i], &m);
    }
    free(specs);
    free(shadow.layers);
    return rc;
}

void fp8_matrix_dequantize(const fp8_matrix *m, float *out) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < m->rows; r++)
        for (int c = 0; c < m->cols; c++)
            out[(size_t)r * m->cols + c] = fp8_e4m3_to_float(m->w[(size_t)r * m->cols + c]) *
                                           fp8_weight_scale_at(m, r, c);
}

void fp8_matrix_free(fp8_matrix *m) {
    free(m->w);
    free(m->scale);
    memset(m, 0, sizeof *m);
}

size_t fp8_matrix_bytes(const fp8_matrix *m) {
    return (size_t)m->rows * m->cols + sizeof(float) * (size_t)(m->scale ? fp8_scale_count(m) : 0);
}
