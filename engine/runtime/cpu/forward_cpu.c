/* The float32 CPU reference forward of one step plan, on one rank's shard of the model.
 *
 * Per layer:  xn = norm(x) -> q,k,v (this rank's heads) [-> per-head q/k norm] -> rope ->
 *             write K,V into their slots -> paged attention -> o-proj (partial sums) ->
 *             all-reduce (+ o bias) -> x += ; xn = norm(x) -> gate, up (this rank's columns) ->
 *             silu(gate) * up -> down-proj (partial sums) -> all-reduce (+ down bias) -> x +=
 * then the final norm and the LM head on the rows that want logits, this rank's vocabulary
 * rows, gathered over ranks. An FP8 checkpoint's Linear (its act_quant on) multiplies its
 * dequantized weights by its input quantized-dequantized as the checkpoint says
 * (fp8_act_qdq_cpu: per token, per token and group of 128, or static), so the product is the
 * FP8 kernels' e4m3 arithmetic in float; fused q/k/v and gate/up each quantize the shared
 * input with their own scheme (a static input_scale is per module). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "forward_cpu.h"
#include "kernels_cpu.h"
#include "rope_tables.h"

struct forward_cpu {
    const model_config *cfg;
    const model_weights *w;
    comm_ctx *comm;
    int max_tokens, max_logits;
    int n_positions;
    float *cos, *sin;            /* [n_positions][head_dim / 2] */
    float *x;                    /* [max_tokens][hidden] residual stream */
    float *xn;                   /* [max_tokens][hidden] normalised */
    float *q;                    /* [max_tokens][n_heads_local * head_dim] */
    float *k, *v;                /* [max_tokens][n_kv_local * head_dim] */
    float *att;                  /* [max_tokens][n_heads_local * head_dim] */
    float *proj;                 /* [max_tokens][hidden] o / down output (partial sums) */
    float *gate, *up;            /* [max_tokens][inter_local] */
    float *last;                 /* [max_logits][hidden] */
    float *logits_local;         /* [max_logits][vocab_shard] */
    float *xq;                   /* [max(max_tokens, max_logits)][widest Linear input]: an FP8
                                  * Linear's input (NULL without FP8 Linears) */
    forward_tap_fn tap;          /* calibration observer, or NULL */
    void *tap_user;
};

/* Whether any Linear quantizes its input (an FP8 checkpoint): then the forward needs xq. */
static bool has_act_quant(const model_config *cfg, const model_weights *w) {
    if (w->aq_lm_head.on) return true;
    for (int l = 0; l < cfg->n_layers; l++) {
        const layer_weights *lw = &w->layers[l];
        const act_quant *aq[] = {&lw->aq_q, &lw->aq_k, &lw->aq_v, &lw->aq_o, &lw->aq_gate,
                                 &lw->aq_up, &lw->aq_down};
        for (int i = 0; i < 7; i++)
            if (aq[i]->on) return true;
    }
    return false;
}

forward_cpu *forward_cpu_create(const model_config *cfg, const model_weights *w, comm_ctx *comm,
                                int max_tokens, int max_logits, int n_positions) {
    const shard_plan *s = &w->shard;
    forward_cpu *f = folio_xcalloc(1, sizeof *f);
    size_t T = (size_t)max_tokens, hd = (size_t)cfg->head_dim;
    f->cfg = cfg;
    f->w = w;
    f->comm = comm;
    f->max_tokens = max_tokens;
    f->max_logits = max_logits;
    f->n_positions = n_positions;
    f->cos = folio_xmalloc(sizeof(float) * f->n_positions * (hd / 2));
    f->sin = folio_xmalloc(sizeof(float) * f->n_positions * (hd / 2));
    rope_build_tables(&cfg->rope, cfg->head_dim, f->n_positions, f->cos, f->sin);
    f->x = folio_xmalloc(sizeof(float) * T * cfg->hidden);
    f->xn = folio_xmalloc(sizeof(float) * T * cfg->hidden);
    f->q = folio_xmalloc(sizeof(float) * T * s->n_heads * hd);
    f->k = folio_xmalloc(sizeof(float) * T * s->n_kv_heads * hd);
    f->v = folio_xmalloc(sizeof(float) * T * s->n_kv_heads * hd);
    f->att = folio_xmalloc(sizeof(float) * T * s->n_heads * hd);
    f->proj = folio_xmalloc(sizeof(float) * T * cfg->hidden);
    f->gate = folio_xmalloc(sizeof(float) * T * s->intermediate);
    f->up = folio_xmalloc(sizeof(float) * T * s->intermediate);
    f->last = folio_xmalloc(sizeof(float) * max_logits * cfg->hidden);
    f->logits_local = folio_xmalloc(sizeof(float) * max_logits * s->vocab_shard);
    if (has_act_quant(cfg, w)) {
        size_t widest = (size_t)cfg->hidden;
        if ((size_t)s->n_heads * hd > widest) widest = (size_t)s->n_heads * hd;
        if ((size_t)s->intermediate > widest) widest = (size_t)s->intermediate;
        f->xq = folio_xmalloc(sizeof(float) * (T > (size_t)max_logits ? T : (size_t)max_logits) *
                              widest);
    }
    return f;
}

void forward_cpu_free(forward_cpu *f) {
    if (!f) return;
    float *bufs[] = {f->cos, f->sin, f->x, f->xn, f->q, f->k, f->v, f->att, f->proj, f->gate,
                     f->up, f->last, f->logits_local, f->xq};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(f);
}

void forward_cpu_set_tap(forward_cpu *f, forward_tap_fn fn, void *user) {
    f->tap = fn;
    f->tap_user = user;
}

static void tap(const forward_cpu *f, int layer, forward_tap at, const float *x, int n, int dim) {
    if (f->tap) f->tap(f->tap_user, layer, at, x, n, dim);
}

/* out [n][out_f] = x W^T (+ bias), x first quantized-dequantized into f->xq when the Linear
 * is FP8 (aq->on). */
static void linear(forward_cpu *f, float *out, const float *x, const float *w, const float *bias,
                   const act_quant *aq, int n, int in_f, int out_f) {
    if (aq->on) {
        memcpy(f->xq, x, sizeof(float) * (size_t)n * in_f);
        fp8_act_qdq_cpu(f->xq, n, in_f, aq->act, aq->input_scale);
        x = f->xq;
    }
    matmul_cpu(out, x, w, bias, n, in_f, out_f);
}

static void add_bias_rows(float *x, const float *bias, int n, int dim) {
    if (!bias) return;
    for (int t = 0; t < n; t++)
        for (int j = 0; j < dim; j++) x[(size_t)t * dim + j] += bias[j];
}

/* Row-parallel output: sum the partial products over ranks, then add the bias once. */
static int reduce_rows(forward_cpu *f, float *y, const float *bias, int n) {
    if (comm_allreduce_sum(f->comm, y, (size_t)n * f->cfg->hidden) != 0) return -1;
    add_bias_rows(y, bias, n, f->cfg->hidden);
    return 0;
}

static int attention_block(forward_cpu *f, kv_cache *kv, const step_plan *p, int layer) {
    const model_config *c = f->cfg;
    const layer_weights *lw = &f->w->layers[layer];
    const shard_plan *s = &f->w->shard;
    int T = p->n_tokens, hd = c->head_dim, hidden = c->hidden;
    int q_dim = s->n_heads * hd, kv_dim = s->n_kv_heads * hd;

    tap(f, layer, FWD_TAP_ATTN_IN, f->xn, T, hidden);
    linear(f, f->q, f->xn, lw->wq, lw->bq, &lw->aq_q, T, hidden, q_dim);
    linear(f, f->k, f->xn, lw->wk, lw->bk, &lw->aq_k, T, hidden, kv_dim);
    linear(f, f->v, f->xn, lw->wv, lw->bv, &lw->aq_v, T, hidden, kv_dim);
    if (lw->q_norm) {
        rmsnorm_cpu(f->q, f->q, lw->q_norm, T * s->n_heads, hd, (float)c->rms_eps);
        rmsnorm_cpu(f->k, f->k, lw->k_norm, T * s->n_kv_heads, hd, (float)c->rms_eps);
    }
    rope_cpu(f->q, p->positions, f->cos, f->sin, T, s->n_heads, hd);
    rope_cpu(f->k, p->positions, f->cos, f->sin, T, s->n_kv_heads, hd);

    const float scale = 1.0f / sqrtf((float)hd);
    if (kv->fp8) {
        const size_t off = kv_cache_offset(kv, layer, 0);
        const float ks = kv->k_scale[layer], vs = kv->v_scale[layer];
        kv_write_fp8_cpu(kv->k8 + off, kv->v8 + off, f->k, f->v, p->slot_mapping, T,
                         s->n_kv_heads, hd, ks, vs);
        paged_attention_fp8_cpu(f->att, f->q, kv->k8 + off, kv->v8 + off, ks, vs,
                                p->block_tables, p->max_blocks, p->seq_start, p->positions,
                                p->n_seqs, s->n_heads, s->n_kv_heads, hd, p->block_size,
                                c->sliding_window[layer], scale);
    } else {
        float *k_cache = kv_cache_k(kv, layer, 0), *v_cache = kv_cache_v(kv, layer, 0);
        kv_write_cpu(k_cache, v_cache, f->k, f->v, p->slot_mapping, T, s->n_kv_heads, hd);
        paged_attention_cpu(f->att, f->q, k_cache, v_cache, p->block_tables, p->max_blocks,
                            p->seq_start, p->positions, p->n_seqs, s->n_heads, s->n_kv_heads,
                            hd, p->block_size, c->sliding_window[layer], scale);
    }

    tap(f, layer, FWD_TAP_O_IN, f->att, T, q_dim);
    linear(f, f->proj, f->att, lw->wo, NULL, &lw->aq_o, T, q_dim, hidden);
    return reduce_rows(f, f->proj, lw->bo, T);
}

static int mlp_block(forward_cpu *f, int layer, int T) {
    const model_config *c = f->cfg;
    const layer_weights *lw = &f->w->layers[layer];
    int inter = f->w->shard.intermediate;
    tap(f, layer, FWD_TAP_MLP_IN, f->xn, T, c->hidden);
    linear(f, f->gate, f->xn, lw->w_gate, lw->b_gate, &lw->aq_gate, T, c->hidden, inter);
    linear(f, f->up, f->xn, lw->w_up, lw->b_up, &lw->aq_up, T, c->hidden, inter);
    silu_mul_cpu(f->gate, f->gate, f->up, T, inter);
    tap(f, layer, FWD_TAP_DOWN_IN, f->gate, T, inter);
    linear(f, f->proj, f->gate, lw->w_down, NULL, &lw->aq_down, T, inter, c->hidden);
    return reduce_rows(f, f->proj, lw->b_down, T);
}

/* Final norm (already in xn) of the rows that want logits -> LM head -> gather. */
static int lm_head(forward_cpu *f, const step_plan *p, float *logits) {
    const model_config *c = f->cfg;
    const shard_plan *s = &f->w->shard;
    for (int i = 0; i < p->n_logits; i++)
        memcpy(f->last + (size_t)i * c->hidden, f->xn + (size_t)p->logits_rows[i] * c->hidden,
               sizeof(float) * c->hidden);
    if (s->vocab > 0)
        linear(f, f->logits_local, f->last, f->w->lm_head, NULL, &f->w->aq_lm_head, p->n_logits,
               c->hidden, s->vocab);
    if (s->vocab < s->vocab_shard) {
        /* The last rank holds fewer rows: respace its [n][vocab] result to [n][vocab_shard]
         * (backwards, in place) so every rank sends equal-sized rows. */
        for (int i = p->n_logits - 1; i >= 0; i--)
            memmove(f->logits_local + (size_t)i * s->vocab_shard,
                    f->logits_local + (size_t)i * s->vocab, sizeof(float) * s->vocab);
    }
    return comm_gather_vocab(f->comm, f->logits_local, p->n_logits, s->vocab_shard, c->vocab,
                             logits);
}

static int check_plan(const forward_cpu *f, const kv_cache *kv, const step_plan *p) {
    if (p->n_tokens > f->max_tokens || p->n_logits > f->max_logits)
        return folio_fail("forward: step of %d tokens / %d logits rows exceeds the workspace "
                          "(%d / %d)", p->n_tokens, p->n_logits, f->max_tokens, f->max_logits);
    if (p->block_size != kv->block_size)
        return folio_fail("forward: plan block size %d differs from the KV cache's %d",
                          p->block_size, kv->block_size);
    for (int t = 0; t < p->n_tokens; t++)
        if (p->positions[t] < 0 || p->positions[t] >= f->n_positions)
            return folio_fail("forward: position %d is outside the context of %d tokens this "
                              "backend was built for (--max-model-len)", p->positions[t],
                              f->n_positions);
    return step_plan_validate(p, kv->num_blocks);
}

int forward_cpu_step(forward_cpu *f, kv_cache *kv, const step_plan *p, float *logits) {
    const model_config *c = f->cfg;
    const model_weights *w = f->w;
    int T = p->n_tokens;
    float eps = (float)c->rms_eps;
    if (check_plan(f, kv, p) != 0) return -1;
    if (T == 0) return 0;

    embedding_cpu(f->x, w->embed, p->token_ids, T, c->hidden, w->shard.vocab_start,
                  w->shard.vocab);
    if (comm_allreduce_sum(f->comm, f->x, (size_t)T * c->hidden) != 0) return -1;
    rmsnorm_cpu(f->xn, f->x, w->layers[0].attn_norm, T, c->hidden, eps);

    for (int l = 0; l < c->n_layers; l++) {
        if (attention_block(f, kv, p, l) != 0) return -1;
        add_rmsnorm_cpu(f->x, f->proj, f->xn, w->layers[l].mlp_norm, T, c->hidden, eps);
        if (mlp_block(f, l, T) != 0) return -1;
        const float *next_norm = l + 1 < c->n_layers ? w->layers[l + 1].attn_norm : w->final_norm;
        add_rmsnorm_cpu(f->x, f->proj, f->xn, next_norm, T, c->hidden, eps);
    }
    return p->n_logits ? lm_head(f, p, logits) : 0;
}
