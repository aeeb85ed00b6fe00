/* Loading one quantized Linear weight: find and check its tensors, unpack them with the
 * checkpoint format's reader, and build this rank's quant_matrix. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "error.h"
#include "quant_load.h"

int quant_spec_quantized(const quant_config *qc, const tensor_spec *spec) {
    if (qc->method == QUANT_NONE || spec->init != INIT_MATRIX) return 0;
    char module[128];
    size_t n = strlen(spec->name);
    if (n < 7 || strcmp(spec->name + n - 7, ".weight") != 0) return 0;
    snprintf(module, sizeof module, "%.*s", (int)(n - 7), spec->name);
    return quant_module_quantized(qc, module);
}

void quant_note(quant_loader *ql, const char *fmt, ...) {
    if (ql->note[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ql->note, sizeof ql->note, fmt, ap);
    va_end(ap);
}

static void describe(char *buf, size_t n, const char *dtypes, int ndim, int64_t d0, int64_t d1) {
    if (ndim == 1)
        snprintf(buf, n, "%s [%lld]", dtypes, (long long)d0);
    else
        snprintf(buf, n, "%s [%lld, %lld]", dtypes, (long long)d0, (long long)d1);
}

static void dtype_list(unsigned dtypes, char *buf, size_t n) {
    buf[0] = 0;
    for (int d = 0; d < ST_DTYPE_COUNT; d++)
        if (dtypes & QT(d))
            snprintf(buf + strlen(buf), n - strlen(buf), "%s%s", buf[0] ? " or " : "",
                     st_dtype_name((st_dtype)d));
}

int quant_tensor(quant_loader *ql, const char *module, const char *suffix, unsigned dtypes,
                 int ndim, int64_t d0, int64_t d1, bool required, const st_tensor **t) {
    char name[192];
    snprintf(name, sizeof name, "%s.%s", module, suffix);
    *t = safetensors_find(ql->st, name);
    if (!*t) {
        if (!required) return 1;
        return folio_fail("%s: tensor '%s' is missing (config.json's quantization_config says "
                          "'%s' is stored %s-quantized)", ql->dir, name, module,
                          quant_method_name(ql->qc->method));
    }
    const st_tensor *x = *t;
    bool ok = (dtypes & QT(x->dtype)) && x->ndim == ndim && x->shape[0] == d0 &&
              (ndim == 1 || x->shape[1] == d1);
    if (ok) return 0;
    char want[96], found[96], types[64];
    dtype_list(dtypes, types, sizeof types);
    describe(want, sizeof want, types, ndim, d0, d1);
    snprintf(found, sizeof found, "%s [", st_dtype_name(x->dtype));
    for (int d = 0; d < x->ndim; d++)
        snprintf(found + strlen(found), sizeof found - strlen(found), "%s%lld", d ? ", " : "",
                 (long long)x->shape[d]);
    strcat(found, "]");
    return folio_fail("%s: tensor '%s': expected %s (from config.json), found %s", x->file, name,
                      want, found);
}

int quant_read_g_idx(quant_loader *ql, quant_unpacked *u, const char *name) {
    const st_tensor *t = NULL;
    int r = quant_tensor(ql, u->module, name, QT(ST_I32), 1, u->in, 0, ql->qc->act_order, &t);
    if (r != 0) return r < 0 ? -1 : 0;
    for (int i = 0; i < u->in; i++) u->g_idx[i] = (int32_t)quant_word(t, (size_t)i);
    u->g_idx_name = name;
    return 0;
}

static void unpacked_free(quant_unpacked *u) {
    free(u->q);
    free(u->zeros);
    free(u->scales);
    free(u->g_idx);
}

/* Shapes and buffers of the rows this rank reads. */
static int unpacked_init(quant_loader *ql, const tensor_spec *s, const char *module,
                         quant_unpacked *u) {
    memset(u, 0, sizeof *u);
    u->module = module;
    u->out = (int)s->rows;
    u->in = (int)s->cols;
    u->r0 = s->slice == SLICE_ROWS ? (int)s->start : 0;
    u->rows = s->slice == SLICE_ROWS ? (int)s->count : u->out;
    u->bits = ql->qc->bits;
    u->group_size = ql->qc->group_size > 0 ? ql->qc->group_size : u->in;
    if (u->in % u->group_size != 0)
        return folio_fail("%s: layer '%s': group_size %d does not divide its input size %d",
                          ql->dir, module, u->group_size, u->in);
    u->groups = u->in / u->group_size;
    u->q = folio_xmalloc((size_t)u->rows * u->in);
    u->zeros = folio_xmalloc((size_t)u->rows * u->groups);
    u->scales = folio_xmalloc((size_t)u->rows * u->groups * sizeof *u->scales);
    u->g_idx = folio_xmalloc((size_t)u->in * sizeof *u->g_idx);
    for (int c = 0; c < u->in; c++) u->g_idx[c] = c / u->group_size;
    return 0;
}

int quant_load_matrix(quant_loader *ql, const tensor_spec *spec, quant_matrix *m) {
    char module[128];
    snprintf(module, sizeof module, "%.*s", (int)(strlen(spec->name) - 7), spec->name);
    memset(m, 0, sizeof *m);
    quant_unpacked u;
    int rc = unpacked_init(ql, spec, module, &u);
    if (rc == 0) {
        switch (ql->qc->method) {
        case QUANT_AWQ: rc = quant_read_awq(ql, &u); break;
        case QUANT_GPTQ: rc = quant_read_gptq(ql, &u); break;
        case QUANT_CT: rc = quant_read_ct(ql, &u); break;
        default: rc = folio_fail("%s: '%s' is not quantized", ql->dir, module); break;
        }
    }
    if (rc == 0) rc = quant_build(ql, &u, spec, m);
    unpacked_free(&u);
    return rc;
}
