/* A dummy 4-bit model (--load-format dummy --quantization w4a16): which shard of which Linear
 * weight a rank draws, checked like a checkpoint's (the group size divides the input size and,
 * for a row-parallel shard, its slice), and that shard drawn as a quant_matrix with the values
 * of engine/base/quant_dummy.h. The one definition of the model: the CPU loader dequantizes
 * these matrices, a GPU fill draws the same qd_shard. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "grow.h"
#include "quant.h"

/* "model.layers.0.mlp.down_proj" from its ".weight" tensor name. */
static void module_of(const tensor_spec *spec, char *buf, size_t n) {
    const size_t len = strlen(spec->name);
    const int keep = len > 7 && strcmp(spec->name + len - 7, ".weight") == 0 ? (int)(len - 7)
                                                                            : (int)len;
    snprintf(buf, n, "%.*s", keep, spec->name);
}

int quant_dummy_plan(const quant_config *qc, uint64_t seed, const tensor_spec *spec, int world,
                     qd_shard *out) {
    char module[128];
    module_of(spec, module, sizeof module);
    memset(out, 0, sizeof *out);
    if (qc->method != QUANT_DUMMY || qc->bits != 4 || spec->init != INIT_MATRIX)
        return folio_fail("layer '%s' is not a dummy 4-bit Linear weight", module);
    const int64_t in = spec->cols;
    const int64_t gs = qc->group_size > 0 ? qc->group_size : in;
    if (in % gs != 0)
        return folio_fail("layer '%s': --group-size %lld does not divide its input size %lld "
                          "(--quantization w4a16: pick a --group-size that divides it, or -1: per "
                          "channel)", module,
                          (long long)gs, (long long)in);
    const int row_split = spec->slice == SLICE_ROWS, col_split = spec->slice == SLICE_COLS;
    out->key = weights_dummy_key(seed, spec->name);
    out->dense_scale = weights_dummy_scale(spec);
    out->sym = qc->sym;
    out->r0 = row_split ? spec->start : 0;
    out->rows = (int)(row_split ? spec->count : spec->rows);
    out->c0 = col_split ? spec->start : 0;
    out->cols = (int)(col_split ? spec->count : in);
    const int per_channel = gs == in;
    if (!per_channel && (out->c0 % gs != 0 || out->cols % gs != 0))
        return folio_fail("layer '%s': --group-size %lld does not divide this rank's %d input "
                          "columns (%lld .. %lld of %lld: the row-parallel split over %d ranks "
                          "cuts a quantization group; pick a group size or a TP size that "
                          "keeps whole groups)", module, (long long)gs, out->cols,
                          (long long)out->c0, (long long)(out->c0 + out->cols - 1),
                          (long long)in, world);
    if (out->cols % 8 != 0)
        return folio_fail("layer '%s': this rank's %d input columns do not fill whole 4-bit "
                          "words (8 columns each)", module, out->cols);
    out->group_size = per_channel ? out->cols : (int)gs;
    out->g0 = per_channel ? 0 : out->c0 / gs;
    return 0;
}

int quant_dummy_matrix(const quant_config *qc, uint64_t seed, const tensor_spec *spec, int world,
                       quant_matrix *m) {
    qd_shard s;
    memset(m, 0, sizeof *m);
    if (quant_dummy_plan(qc, seed, spec, world, &s) != 0) return -1;
    m->rows = s.rows;
    m->cols = m->in_cols = s.cols;
    m->bits = 4;
    m->group_size = s.group_size;
    const int words = ql_words_per_row(m), groups = ql_groups(m);
    m->qweight = folio_xmalloc((size_t)m->rows * words * sizeof *m->qweight);
    m->scales = folio_xmalloc((size_t)m->rows * groups * sizeof *m->scales);
    m->zeros = folio_xmalloc((size_t)m->rows * groups);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < m->rows; r++) {
        uint32_t *w = m->qweight + (size_t)r * words;
        for (int j = 0; j < words; j++) w[j] = qd_shard_word(&s, r, j);
        for (int l = 0; l < groups; l++) {
            m->scales[(size_t)r * groups + l] = qd_shard_scale(&s, r, l);
            m->zeros[(size_t)r * groups + l] = qd_shard_zero(&s, r, l);
        }
    }
    return 0;
}

int quant_dummy_check(const model_config *cfg, const shard_plan *shard) {
    if (cfg->quant.method != QUANT_DUMMY) return 0;
    model_weights shadow = {0};
    int n = 0, rc = 0;
    tensor_spec *specs = weights_specs(cfg, shard, &shadow, &n);
    for (int i = 0; i < n && rc == 0; i++) {
        qd_shard s;
        if (quant_spec_quantized(&cfg->quant, &specs[i]))
            rc = quant_dummy_plan(&cfg->quant, 0, &specs[i], shard->world, &s);
    }
    free(specs);
    free(shadow.layers);
    return rc;
}
