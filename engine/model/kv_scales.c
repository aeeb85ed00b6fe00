/* Reading the FP8 KV cache's per-layer scales from a checkpoint (kv_scales.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtype.h"
#include "error.h"
#include "kv_scales.h"
#include "safetensors.h"

/* The scalar tensor `name`, if present: 1 with *v, 0 if absent, -1 if malformed. */
static int read_scalar(const safetensors_model *m, const char *name, float *v) {
    const st_tensor *t = safetensors_find(m, name);
    if (!t) return 0;
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    if (n != 1)
        return folio_fail("%s: tensor '%s': expected one element (a per-tensor KV scale), "
                          "found %lld", t->file, name, (long long)n);
    if (t->dtype == ST_F32) memcpy(v, t->data, sizeof *v);
    else if (t->dtype == ST_F16) *v = f16_to_f32(*(const uint16_t *)t->data);
    else if (t->dtype == ST_BF16) *v = bf16_to_f32(*(const uint16_t *)t->data);
    else
        return folio_fail("%s: tensor '%s': dtype %s, expected F32, F16 or BF16", t->file, name,
                          st_dtype_name(t->dtype));
    if (!(*v > 0.f) || !isfinite(*v))
        return folio_fail("%s: tensor '%s': %g is not a usable scale (positive and finite)",
                          t->file, name, (double)*v);
    return 1;
}

/* Layer l's scale under either name: 1, 0 (absent) or -1. */
static int read_layer(const safetensors_model *m, int l, const char *which, float *v) {
    char name[160];
    snprintf(name, sizeof name, "model.layers.%d.self_attn.%s_scale", l, which);
    int r = read_scalar(m, name, v);
    if (r != 0) return r;
    snprintf(name, sizeof name, "model.layers.%d.self_attn.%s_proj.output_scale", l, which);
    return read_scalar(m, name, v);
}

int kv_scales_load(const char *dir, const model_config *cfg, bool dummy, kv_scales *out) {
    memset(out, 0, sizeof *out);
    out->n_layers = cfg->n_layers;
    out->k = folio_xmalloc(sizeof(float) * (size_t)cfg->n_layers);
    out->v = folio_xmalloc(sizeof(float) * (size_t)cfg->n_layers);
    for (int l = 0; l < cfg->n_layers; l++) out->k[l] = out->v[l] = 1.0f;
    if (dummy) return 0;
    safetensors_model m = {0};
    if (safetensors_open_dir(dir, &m) != 0) {
        kv_scales_free(out);
        return -1;
    }
    int rc = 0;
    for (int l = 0; l < cfg->n_layers && rc == 0; l++) {
        const int k = read_layer(&m, l, "k", &out->k[l]);
        const int v = k < 0 ? 0 : read_layer(&m, l, "v", &out->v[l]);
        if (k < 0 || v < 0) rc = -1;
        else if (k != v)
            rc = folio_fail("%s: layer %d has a %s scale but no %s scale "
                            "(model.layers.%d.self_attn.k_scale / v_scale)", dir, l,
                            k ? "K" : "V", k ? "V" : "K", l);
        else out->found += k;
    }
    safetensors_close(&m);
    if (rc != 0) kv_scales_free(out);
    return rc;
}

void kv_scales_free(kv_scales *s) {
    free(s->k);
    free(s->v);
    memset(s, 0, sizeof *s);
}
