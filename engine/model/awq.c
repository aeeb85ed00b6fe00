/* AWQ: calibration statistics, the scale and clip searches, and their folding into a model
 * (awq.h). */
#include "awq.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "progress.h"

/* ---- calibration statistics ---- */

/* The input width of each group: hidden, q_dim, hidden, intermediate. */
static void group_dims(const model_config *cfg, int dims[AWQ_N_GROUPS]) {
    dims[AWQ_QKV] = cfg->hidden;
    dims[AWQ_O] = cfg->n_heads * cfg->head_dim;
    dims[AWQ_GATE_UP] = cfg->hidden;
    dims[AWQ_DOWN] = cfg->intermediate;
}

void awq_calib_init(awq_calib *c, const model_config *cfg, long long n_tokens, int max_samples) {
    int dims[AWQ_N_GROUPS];
    group_dims(cfg, dims);
    if (max_samples < 1) max_samples = 1;
    c->n_layers = cfg->n_layers;
    c->stride = n_tokens > max_samples ? (int)((n_tokens + max_samples - 1) / max_samples) : 1;
    const int cap = n_tokens > 0 ? (int)((n_tokens + c->stride - 1) / c->stride) : 1;
    c->act = folio_xcalloc((size_t)c->n_layers * AWQ_N_GROUPS, sizeof *c->act);
    for (int i = 0; i < c->n_layers * AWQ_N_GROUPS; i++) {
        awq_act *a = &c->act[i];
        a->dim = dims[i % AWQ_N_GROUPS];
        a->abs_sum = folio_xcalloc((size_t)a->dim, sizeof *a->abs_sum);
        a->cap = cap;
        a->rows = folio_xmalloc((size_t)cap * a->dim * sizeof *a->rows);
    }
}

void awq_calib_add(awq_calib *c, int layer, awq_group_kind g, const float *x, int n, int dim) {
    awq_act *a = &c->act[layer * AWQ_N_GROUPS + g];
    if (dim != a->dim) FOLIO_BUG("awq_calib_add: layer %d input %d has %d channels, expected %d",
                                 layer, (int)g, dim, a->dim);
    for (int t = 0; t < n; t++) {
        const float *row = x + (size_t)t * dim;
        for (int i = 0; i < dim; i++) a->abs_sum[i] += fabsf(row[i]);
        if ((a->seen + t) % c->stride == 0 && a->n < a->cap)
            memcpy(a->rows + (size_t)a->n++ * dim, row, sizeof(float) * dim);
    }
    a->seen += n;
}

void awq_calib_free(awq_calib *c) {
    for (int i = 0; c->act && i < c->n_layers * AWQ_N_GROUPS; i++) {
        free(c->act[i].abs_sum);
        free(c->act[i].rows);
    }
    free(c->act);
    memset(c, 0, sizeof *c);
}

/* ---- the searches ---- */

/* The squared output error of a weight error on fixed inputs x [n][in]: for a row d,
 * sum over tokens t of (x_t . d)^2 = d^T G d with G = X^T X. Through G when that is cheaper
 * (in <= n), else directly. */
typedef struct {
    const float *x;
    int n, in;
    double *gram;                /* [in][in], or NULL: directly */
} err_metric;

/* G [len][len] of columns [c0, c0 + len) of x [n][in]. */
static void gram(const float *x, int n, int in, int c0, int len, double *g) {
    memset(g, 0, sizeof(double) * len * len);
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * in + c0;
        for (int i = 0; i < len; i++) {
            const double xi = xt[i];
            for (int j = 0; j <= i; j++) g[(size_t)i * len + j] += xi * xt[j];
        }
    }
    for (int i = 0; i < len; i++)
        for (int j = i + 1; j < len; j++) g[(size_t)i * len + j] = g[(size_t)j * len + i];
}

/* d^T G d. */
static double quad(const double *g, const float *d, int len) {
    double sum = 0.0;
    for (int i = 0; i < len; i++) {
        double gi = 0.0;
        for (int j = 0; j < len; j++) gi += g[(size_t)i * len + j] * d[j];
        sum += gi * d[i];
    }
    return sum;
}

static err_metric metric_make(const float *x, int n, int in) {
    err_metric m = {.x = x, .n = n, .in = in};
    if (in <= n) {
        m.gram = folio_xmalloc(sizeof(double) * in * in);
        gram(x, n, in, 0, in, m.gram);
    }
    return m;
}

/* The error of d [len] on columns [c0, c0 + len) of the inputs (m->gram: theirs, len x len). */
static double group_error(const err_metric *m, int c0, const float *d, int len) {
    if (m->gram) return quad(m->gram, d, len);
    double err = 0.0;
    for (int t = 0; t < m->n; t++) {
        const float *xt = m->x + (size_t)t * m->in + c0;
        float acc = 0.0f;
        for (int i = 0; i < len; i++) acc += xt[i] * d[i];
        err += (double)acc * acc;
    }
    return err;
}

/* The summed error of the rows of d [rows][in]. */
static double output_error(const err_metric *m, const float *d, int rows) {
    double total = 0.0;
#pragma omp parallel for reduction(+ : total) schedule(static)
    for (int r = 0; r < rows; r++) total += group_error(m, 0, d + (size_t)r * m->in, m->in);
    return total;
}

/* s = max(mag^alpha, 1e-4), divided by sqrt(max(s) * min(s)) so the scales straddle 1. */
static void make_scale(const float *mag, int in, float alpha, float *s) {
    float lo = FLT_MAX, hi = 0.0f;
    for (int i = 0; i < in; i++) {
        s[i] = fmaxf(powf(mag[i], alpha), 1e-4f);
        lo = fminf(lo, s[i]);
        hi = fmaxf(hi, s[i]);
    }
    const float norm = sqrtf(lo * hi);
    for (int i = 0; i < in; i++) s[i] /= norm;
}

/* The output error of one Linear w [rows][in] quantized with input scales s:
 * || X (W - Q(W diag s) diag(1/s))^T ||^2. work: rows * in floats. */
static int scaled_error(const float *w, int rows, int in, const float *s, const err_metric *m,
                        const rtn_params *p, float *work, double *err) {
    const size_t count = (size_t)rows * in;
    for (size_t i = 0; i < count; i++) work[i] = w[i] * s[i % in];
    if (rtn_roundtrip(work, rows, in, p, work) != 0) return -1;
    for (size_t i = 0; i < count; i++) work[i] = w[i] - work[i] / s[i % in];
    *err = output_error(m, work, rows);
    return 0;
}

int awq_search_scale(const awq_linears *g, const rtn_params *p, int n_grid, const char *what,
                     float *scale, awq_choice *out) {
    int max_rows = 0;
    for (int i = 0; i < g->n_w; i++) max_rows = g->rows[i] > max_rows ? g->rows[i] : max_rows;
    float *s = folio_xmalloc(sizeof(float) * g->in);
    float *work = folio_xmalloc(sizeof(float) * (size_t)max_rows * g->in);
    *out = (awq_choice){.err = INFINITY};
    err_metric m = metric_make(g->x, g->n, g->in);
    int rc = 0;
    for (int k = 0; k < n_grid && rc == 0; k++) {
        const float alpha = (float)k / (float)n_grid;
        make_scale(g->mag, g->in, alpha, s);
        double err = 0.0;
        for (int i = 0; i < g->n_w && rc == 0; i++) {
            double e;
            rc = scaled_error(g->w[i], g->rows[i], g->in, s, &m, p, work, &e);
            err += e;
        }
        if (rc != 0) break;
        if (k == 0) out->err_rtn = err;
        if (err < out->err) {
            out->err = err;
            out->alpha = alpha;
            memcpy(scale, s, sizeof(float) * g->in);
        }
    }
    free(m.gram);
    free(work);
    free(s);
    if (rc != 0)
        return folio_fail("%s: a quantization scale of the scaled weights does not fit a float16",
                          what);
    return 0;
}

int awq_search_clip(float *w, int rows, const float *x, int n, int in, const rtn_params *p,
                    int n_grid, const char *what, double *err_before, double *err_after) {
    const int group = p->group_size > 0 ? p->group_size : in, groups = in / group;
    const rtn_params pg = {.bits = p->bits, .group_size = group, .sym = p->sym};
    const int n_shrink = n_grid / 2;
    /* The Gram matrix of each group's columns, [groups][group][group], where that is cheaper
     * than the inputs themselves (group <= n). */
    double *g = group <= n ? folio_xmalloc(sizeof(double) * groups * group * group) : NULL;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < (g ? groups : 0); k++)
        gram(x, n, in, k * group, group, g + (size_t)k * group * group);
    double before = 0.0, after = 0.0;
    int failed = 0;
#pragma omp parallel reduction(+ : before, after) reduction(| : failed)
    {
        float *d = folio_xmalloc(sizeof(float) * group);
        float *q = folio_xmalloc(sizeof(float) * group);
#pragma omp for schedule(static)
        for (int rg = 0; rg < rows * groups; rg++) {
            float *wg = w + (size_t)(rg / groups) * in + (size_t)(rg % groups) * group;
            const int c0 = (rg % groups) * group;
            const err_metric m = {.x = x, .n = n, .in = in,
                                  .gram = g ? g + (size_t)c0 * group : NULL};
            float amax = 0.0f;
            for (int j = 0; j < group; j++) amax = fmaxf(amax, fabsf(wg[j]));
            double best = INFINITY;
            float best_c = amax;
            for (int i = 0; i < n_shrink && amax > 0.0f && !failed; i++) {
                const float c = amax * (1.0f - (float)i / (float)n_grid);
                for (int j = 0; j < group; j++) q[j] = fminf(fmaxf(wg[j], -c), c);
                if (rtn_roundtrip(q, 1, group, &pg, q) != 0) {
                    failed = 1;
                    break;
                }
                for (int j = 0; j < group; j++) d[j] = wg[j] - q[j];
                const double err = group_error(&m, c0, d, group);
                if (i == 0) before += err;
                if (err < best) {
                    best = err;
                    best_c = c;
                }
            }
            if (amax > 0.0f && best < INFINITY) {
                after += best;
                for (int j = 0; j < group; j++) wg[j] = fminf(fmaxf(wg[j], -best_c), best_c);
            }
        }
        free(q);
        free(d);
    }
    free(g);
    if (failed)
        return folio_fail("%s: a quantization scale of the scaled weights does not fit a float16",
                          what);
    *err_before = before;
    *err_after = after;
    return 0;
}

/* ---- folding into a model ---- */

static float round_to(folio_dtype t, float v) {
    if (t == DTYPE_BF16) return bf16_to_f32(f32_to_bf16(v));
    if (t == DTYPE_F16) return f16_to_f32(f32_to_f16(fminf(fmaxf(v, -65504.0f), 65504.0f)));
    return v;
}

/* norm /= s, rounded to the checkpoint's type; s becomes norm / rounded, the scale the
 * rounded norm really applies, so the Linears' columns compensate it exactly. */
static void fold_into_norm(float *norm, float *s, int dim, folio_dtype t) {
    for (int i = 0; i < dim; i++) {
        const float folded = round_to(t, norm[i] / s[i]);
        if (folded != 0.0f && t != DTYPE_F32) s[i] = norm[i] / folded;
        norm[i] = folded;
    }
}

/* Columns of w [rows][in] times s. */
static void scale_cols(float *w, int rows, int in, const float *s) {
    for (size_t i = 0; i < (size_t)rows * in; i++) w[i] *= s[i % in];
}

/* Rows of w [rows][in] (and bias [rows]) divided by s_of_row[r]. */
static void unscale_rows(float *w, float *bias, int rows, int in, const float *s_of_row) {
    for (int r = 0; r < rows; r++) {
        for (int i = 0; i < in; i++) w[(size_t)r * in + i] /= s_of_row[r];
        if (bias) bias[r] /= s_of_row[r];
    }
}

/* The mean |x| of every channel of one layer input. */
static int act_mag(const awq_act *a, float *mag, int layer, int g) {
    if (a->seen == 0 || a->n == 0)
        return folio_fail("awq: layer %d input %d: the calibration run saw no tokens", layer, g);
    for (int i = 0; i < a->dim; i++) mag[i] = (float)(a->abs_sum[i] / (double)a->seen);
    return 0;
}

/* o's input channel (h, d) is fed by v's row (h / rep, d): average the magnitudes over the
 * query heads of each KV head, so their scales agree and fold into one row of v. */
static void tie_gqa(float *mag, int n_heads, int n_kv, int hd) {
    const int rep = n_heads / n_kv;
    for (int kh = 0; kh < n_kv; kh++)
        for (int d = 0; d < hd; d++) {
            float sum = 0.0f;
            for (int j = 0; j < rep; j++) sum += mag[(kh * rep + j) * hd + d];
            for (int j = 0; j < rep; j++) mag[(kh * rep + j) * hd + d] = sum / (float)rep;
        }
}

typedef struct {
    float *w;
    int rows;
} linear_ref;

/* One layer's groups: the Linears of each, their input width. */
typedef struct {
    linear_ref lin[AWQ_N_GROUPS][3];
    int n_lin[AWQ_N_GROUPS];
    int in[AWQ_N_GROUPS];
} layer_groups;

static layer_groups groups_of(layer_weights *lw, const model_config *cfg) {
    const int q_dim = cfg->n_heads * cfg->head_dim, kv_dim = cfg->n_kv_heads * cfg->head_dim;
    const int inter = cfg->intermediate, hidden = cfg->hidden;
    return (layer_groups){
        .lin = {{{lw->wq, q_dim}, {lw->wk, kv_dim}, {lw->wv, kv_dim}},
                {{lw->wo, hidden}},
                {{lw->w_gate, inter}, {lw->w_up, inter}},
                {{lw->w_down, hidden}}},
        .n_lin = {3, 1, 2, 1},
        .in = {hidden, q_dim, hidden, inter}};
}

static int search_layer(const layer_groups *lg, const awq_calib *c, int layer,
                        const awq_options *o, const model_config *cfg, float *s[AWQ_N_GROUPS],
                        awq_report *rep) {
    static const char *const NAMES[AWQ_N_GROUPS] = {"q/k/v", "o", "gate/up", "down"};
    for (int g = 0; g < AWQ_N_GROUPS; g++) {
        rep->alpha[layer * AWQ_N_GROUPS + g] = -1.0f;
        if (!rtn_fits(lg->in[g], o->q.bits, o->q.group_size)) {
            rep->n_skipped++;
            continue;
        }
        const awq_act *a = &c->act[layer * AWQ_N_GROUPS + g];
        float *mag = folio_xmalloc(sizeof(float) * lg->in[g]);
        int rc = act_mag(a, mag, layer, g);
        if (rc == 0 && g == AWQ_O) tie_gqa(mag, cfg->n_heads, cfg->n_kv_heads, cfg->head_dim);
        const float *w[3];
        int rows[3];
        for (int i = 0; i < lg->n_lin[g]; i++) {
            w[i] = lg->lin[g][i].w;
            rows[i] = lg->lin[g][i].rows;
        }
        const awq_linears lin = {.x = a->rows, .n = a->n, .in = lg->in[g], .mag = mag,
                                 .w = w, .rows = rows, .n_w = lg->n_lin[g]};
        rtn_params p = o->q;
        if (p.group_size <= 0) p.group_size = lg->in[g];
        char what[96];
        snprintf(what, sizeof what, "awq: layer %d %s", layer, NAMES[g]);
        s[g] = folio_xmalloc(sizeof(float) * lg->in[g]);
        awq_choice ch;
        if (rc == 0) rc = awq_search_scale(&lin, &p, o->n_grid, what, s[g], &ch);
        free(mag);
        if (rc != 0) return -1;
        rep->alpha[layer * AWQ_N_GROUPS + g] = ch.alpha;
        rep->err_rtn += ch.err_rtn;
        rep->err_awq += ch.err;
        rep->n_scaled++;
    }
    return 0;
}

static void fold_layer(layer_weights *lw, const layer_groups *lg, const model_config *cfg,
                       folio_dtype dense, float *s[AWQ_N_GROUPS]) {
    const int hidden = cfg->hidden, hd = cfg->head_dim, inter = cfg->intermediate;
    const int kv_dim = cfg->n_kv_heads * hd, rep = cfg->n_heads / cfg->n_kv_heads;
    if (s[AWQ_QKV]) {
        fold_into_norm(lw->attn_norm, s[AWQ_QKV], hidden, dense);
        for (int i = 0; i < 3; i++) scale_cols(lg->lin[AWQ_QKV][i].w, lg->lin[AWQ_QKV][i].rows,
                                               hidden, s[AWQ_QKV]);
    }
    if (s[AWQ_O]) {
        float *row_s = folio_xmalloc(sizeof(float) * kv_dim);
        for (int r = 0; r < kv_dim; r++) row_s[r] = s[AWQ_O][(r / hd) * rep * hd + r % hd];
        unscale_rows(lw->wv, lw->bv, kv_dim, hidden, row_s);
        free(row_s);
        scale_cols(lw->wo, hidden, cfg->n_heads * hd, s[AWQ_O]);
    }
    if (s[AWQ_GATE_UP]) {
        fold_into_norm(lw->mlp_norm, s[AWQ_GATE_UP], hidden, dense);
        scale_cols(lw->w_gate, inter, hidden, s[AWQ_GATE_UP]);
        scale_cols(lw->w_up, inter, hidden, s[AWQ_GATE_UP]);
    }
    if (s[AWQ_DOWN]) {
        unscale_rows(lw->w_up, lw->b_up, inter, hidden, s[AWQ_DOWN]);
        scale_cols(lw->w_down, hidden, inter, s[AWQ_DOWN]);
    }
}

/* Clip search of every Linear but q and k, on the group's sampled inputs divided by its
 * scale (the inputs the scaled weights now see). */
static int clip_layer(const layer_groups *lg, const awq_calib *c, int layer,
                      const awq_options *o, float *s[AWQ_N_GROUPS], awq_report *rep) {
    static const char *const NAMES[AWQ_N_GROUPS][3] = {
        {"q_proj", "k_proj", "v_proj"}, {"o_proj"}, {"gate_proj", "up_proj"}, {"down_proj"}};
    for (int g = 0; g < AWQ_N_GROUPS; g++) {
        const int in = lg->in[g];
        if (!rtn_fits(in, o->q.bits, o->q.group_size)) continue;
        const awq_act *a = &c->act[layer * AWQ_N_GROUPS + g];
        float *x = folio_xmalloc(sizeof(float) * (size_t)a->n * in);
        for (size_t i = 0; i < (size_t)a->n * in; i++)
            x[i] = s[g] ? a->rows[i] / s[g][i % in] : a->rows[i];
        rtn_params p = o->q;
        if (p.group_size <= 0) p.group_size = in;
        int rc = 0;
        for (int i = g == AWQ_QKV ? 2 : 0; i < lg->n_lin[g] && rc == 0; i++) {
            char what[96];
            snprintf(what, sizeof what, "awq: layer %d %s", layer, NAMES[g][i]);
            double before, after;
            rc = awq_search_clip(lg->lin[g][i].w, lg->lin[g][i].rows, x, a->n, in, &p,
                                 o->n_grid, what, &before, &after);
            rep->n_clipped++;
        }
        free(x);
        if (rc != 0) return -1;
    }
    return 0;
}

int awq_apply(model_weights *w, const model_config *cfg, const awq_calib *c,
              const awq_options *o, bool progress, awq_report *rep) {
    *rep = (awq_report){0};
    const shard_plan *sh = &w->shard;
    if (sh->n_heads != cfg->n_heads || sh->n_kv_heads != cfg->n_kv_heads ||
        sh->intermediate != cfg->intermediate || c->n_layers != cfg->n_layers)
        FOLIO_BUG("awq_apply: needs the whole model on one rank and its statistics");
    rep->alpha = folio_xmalloc(sizeof(float) * cfg->n_layers * AWQ_N_GROUPS);
    progress_bar bar;
    progress_start(&bar, "awq search", (uint64_t)cfg->n_layers, "layers", progress);
    int rc = 0;
    for (int l = 0; l < cfg->n_layers && rc == 0; l++) {
        layer_weights *lw = &w->layers[l];
        const layer_groups lg = groups_of(lw, cfg);
        float *s[AWQ_N_GROUPS] = {0};
        rc = search_layer(&lg, c, l, o, cfg, s, rep);
        if (rc == 0) fold_layer(lw, &lg, cfg, o->dense_dtype, s);
        if (rc == 0 && o->clip) rc = clip_layer(&lg, c, l, o, s, rep);
        for (int g = 0; g < AWQ_N_GROUPS; g++) free(s[g]);
        progress_add(&bar, 1);
    }
    progress_finish(&bar);
    return rc;
}

void awq_report_free(awq_report *r) {
    free(r->alpha);
    r->alpha = NULL;
}
