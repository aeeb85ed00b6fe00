/* The model math of one CUDA step (see forward_cuda.h), readable top to bottom: embedding ->
 * per layer attention_block and mlp_block, each ending in an all-reduce + residual + norm ->
 * LM head -> argmax. Mirrors forward_cpu.c step for step; the differences are storage (dtype
 * buffers and a device KV pool in the HND layout) and the fused q/k/v and gate/up GEMMs. The
 * plan arrays are read from the device blob (forward_cuda_plan.c); set-up, graphs, profiling
 * and sampling live beside this file (forward_cuda_internal.h lists them).
 *
 * Tensor parallelism (world > 1): the forward owns an NCCL communicator on its compute stream
 * (nccl_comm.h) and runs forward_cpu's collectives on the device: the vocab-parallel embedding
 * (zeros outside this rank's rows) and the o / down projections' partial sums are all-reduced,
 * the row-parallel biases added once after the sum. Where the ranks share a host and can map
 * each other's memory (comm/peer_memory.h), steps of up to oneshot_max_bytes per all-reduce
 * (decode steps) use the one-shot all-reduce fused with bias, residual add and the next
 * RMSNorm (kernels/oneshot_allreduce.h); larger ones NCCL in place, then the bias and
 * add_rmsnorm. The partial sums then live in three peer-visible buffers in rotation
 * (embedding, attention, MLP), as the one-shot reuse rule wants. The LM head computes this
 * rank's vocabulary rows into its block of an all-gather buffer, and vocab_unshard_cuda puts
 * the gathered blocks back into [n][vocab] order, so every rank holds the same logits and the
 * same greedy ids. Every collective is enqueued on the stream, so the decode graphs capture
 * them; all ranks capture the same graphs in the same order (same options) and replay them
 * for the same plans (rank 0's, broadcast). */
#ifdef FOLIO_HAVE_CUDA

#include <math.h>

#include "attention_cuda.h"
#include "cuda_check.h"
#include "error.h"
#include "forward_cuda_internal.h"
#include "kernels_cuda.h"
#include "tensor_parallel.h"

static ncclDataType_t nccl_type(folio_dtype dt) {
    return dt == DTYPE_F32 ? ncclFloat32 : dt == DTYPE_BF16 ? ncclBfloat16 : ncclFloat16;
}

/* forward_cpu's reduce_rows on the device: the sum over ranks of the partial products in
 * buf ([n][hidden], in place), then the row-parallel bias once (NULL: none). One rank: the
 * bias went into the GEMM already. */
static int reduce_rows(forward_cuda *f, void *buf, const void *bias, int n) {
    if (f->comm->world == 1) return 0;
    const size_t count = (size_t)n * f->cfg->hidden;
    if (nccl_allreduce_sum(&f->nccl, buf, count, nccl_type(f->dt)) != 0) return -1;
    fc_prof_mark(f, PROF_ALLREDUCE);
    add_bias_rows_cuda(buf, bias, n, f->cfg->hidden, f->dt, f->stream);
    return 0;
}

/* Whether the kernel before FP8 product `next` (NULL or a 16-bit layer: none) quantizes its
 * n rows for it (fp8_linear_reads_xq: a GEMM runs, per-token or static scales). */
static bool fp8_input_fused(const forward_cuda *f, const fp8_matrix *next, int n) {
    return next && next->w && fp8_linear_reads_xq(next, f->dt, n);
}

/* After a GEMM left this rank's partial sums of n rows in red[k]: their sum over ranks, the
 * row-parallel bias once (NULL: none), then x += that and xn = rmsnorm(x) * norm. One
 * kernel with the one-shot all-reduce; else NCCL, the bias and add_rmsnorm. */
static int reduce_add_norm(forward_cuda *f, int k, const void *bias, int n, const void *norm,
                           const fp8_matrix *next) {
    const int dim = f->cfg->hidden;
    const float eps = (float)f->cfg->rms_eps;
    const fp8_out_scale *x_scale = f->deferred.ws ? &f->deferred : NULL;
    const bool oneshot =
        f->oneshot_step && (size_t)n * dim * dtype_size(f->dt) <= f->oneshot_max_bytes;
    f->xq_ready = false;
    if (x_scale && (oneshot || f->comm->world != 1 || !fp8_input_fused(f, next, n)))
        FOLIO_BUG("forward (cuda): an FP8 product deferred its scales to a norm that cannot "
                  "take them");
    if (oneshot) {
        oneshot_allreduce_add_rmsnorm_cuda(&f->oneshot[k], f->x, f->xn, bias, norm, n, dim, eps,
                                           f->dt, f->stream);
        fc_prof_mark(f, PROF_ONESHOT);
        return 0;
    }
    if (reduce_rows(f, f->red[k], bias, n) != 0) return -1;
    if (fp8_input_fused(f, next, n)) { /* the norm quantizes xn for the FP8 product */
        add_rmsnorm_fp8_cuda(f->x, f->red[k], f->xn, norm, n, dim, eps, f->dt, f->fp8_xq,
                             f->fp8_xs, next->act, next->input_scale, x_scale, f->stream);
        f->deferred.ws = NULL;
        f->xq_ready = true;
    } else {
        add_rmsnorm_cuda(f->x, f->red[k], f->xn, norm, n, dim, eps, f->dt, f->stream);
    }
    fc_prof_mark(f, PROF_NORM);
    return 0;
}

/* The bias a row-parallel GEMM adds itself: all of it on one rank, none on more (added after
 * the reduce instead). */
static const void *gemm_bias(const forward_cuda *f, const void *bias) {
    return f->comm->world == 1 ? bias : NULL;
}

/* y[T][n] = x[T][k] @ W^T (+ bias): the dense GEMM, the 4-bit product where the layer's
 * weight is 4-bit (qm->tiles set; w4a16_gemm_cuda, dequantizing into the scratch
 * above W4A16_GEMV_MAX_N tokens), or the FP8 one (fm->w set; the activations quantized into
 * the FP8 scratch first, or already there: xq_ready, the norm or SiLU before it did it).
 * may_defer: the kernel after it can take the FP8 product's scales (f->deferred) in place of
 * a rescale pass over y. */
static void linear(forward_cuda *f, void *y, const void *x, const void *w,
                   const w4a16_tiles *qm, const fp8_matrix *fm, const void *bias, int T, int k,
                   int n, bool may_defer) {
    if (f->deferred.ws) FOLIO_BUG("forward (cuda): deferred FP8 scales were not applied");
    if (fm->w)
        fp8_linear_ex_cuda(f->gemm, y, x, fm, bias, f->dt, T, f->fp8_xq, f->fp8_xs, f->xq_ready,
                           may_defer ? &f->deferred : NULL, f->stream);
    else if (qm->tiles)
        w4a16_gemm_cuda(f->gemm, y, x, qm, bias, f->dt, T, f->w4_scratch, f->stream);
    else
        gemm_run(f->gemm, y, f->dt, x, w, bias, f->dt, T, k, n, f->stream);
    f->xq_ready = false; /* consumed (or not this product's) */
}

/* Layer `layer` of the pool: K or V. */
static char *kv_layer(const forward_cuda *f, void *pool, int layer) {
    return (char *)pool + f->layer_stride * layer * f->kv_elem;
}

/* xn -> qkv GEMM -> q/k norm + rope, K and V into the pool -> attention -> o GEMM, this rank's
 * partial sums in red[RED_ATTN]. */
static void attention_block(forward_cuda *f, const step_shape *s, int layer) {
    const model_config *c = f->cfg;
    const layer_weights_cuda *lw = &f->w->layers[layer];
    const shard_plan *sh = &f->w->shard;
    const int T = s->n_tokens;
    char *plan = f->d_plan;
    linear(f, f->qkv, f->xn, lw->w_qkv, &lw->q_qkv, &lw->f_qkv, lw->b_qkv, T, c->hidden,
           f->qkv_dim, false);
    fc_prof_mark(f, PROF_QKV);
    char *kc = kv_layer(f, f->k_pool, layer), *vc = kv_layer(f, f->v_pool, layer);
    const int64_t *slots = PLAN_PTR(f, plan, slots, int64_t);
    const int32_t *positions = PLAN_PTR(f, plan, positions, int32_t);
    if (f->kv_k_scale)
        rope_kv_write_fp8_cuda(f->q, f->qkv, (uint8_t *)kc, (uint8_t *)vc, slots, positions,
                               f->cos, f->sin, lw->q_norm, lw->k_norm, T, sh->n_heads,
                               sh->n_kv_heads, c->head_dim, f->o.block_size, (float)c->rms_eps,
                               f->kv_k_scale[layer], f->kv_v_scale[layer], f->dt, f->stream);
    else
        rope_kv_write_cuda(f->q, f->qkv, kc, vc, slots, positions, f->cos, f->sin, lw->q_norm,
                           lw->k_norm, T, sh->n_heads, sh->n_kv_heads, c->head_dim,
                           f->o.block_size, (float)c->rms_eps, f->dt, f->stream);
    fc_prof_mark(f, PROF_ROPE_KV);
    const paged_attention_params ap = {
        .n_seqs = s->n_seqs, .n_tokens = T, .max_q_len = s->max_q_len,
        .max_context = s->max_context, .max_blocks = f->o.max_blocks_per_seq,
        .n_heads = sh->n_heads,
        .n_kv_heads = sh->n_kv_heads, .head_dim = c->head_dim, .block_size = f->o.block_size,
        .window = c->sliding_window[layer], .scale = 1.0f / sqrtf((float)c->head_dim),
        .dtype = f->dt, .kv_fp8 = f->kv_k_scale != NULL,
        .k_scale = f->kv_k_scale ? f->kv_k_scale[layer] : 1.0f,
        .v_scale = f->kv_v_scale ? f->kv_v_scale[layer] : 1.0f};
    const int32_t *tables = PLAN_PTR(f, plan, block_tables, int32_t);
    const int32_t *starts = PLAN_PTR(f, plan, seq_start, int32_t);
    const int32_t *ctx = PLAN_PTR(f, plan, context_lens, int32_t);
    if (f->paged_attention)
        paged_attention_cuda(f->att, f->q, kc, vc, tables, starts, ctx, &ap, f->attn_ws,
                             f->stream);
    else
        attention_simple_cuda(f->att, f->q, kc, vc, tables, starts, ctx, &ap, f->stream);
    fc_prof_mark(f, PROF_ATTENTION);
    /* one rank: the norm after it applies the o product's FP8 scales (more ranks reduce the
     * partial sums first, each rank's token scales its own) */
    const bool defer_o = f->comm->world == 1 && fp8_input_fused(f, &lw->f_gate_up, T);
    linear(f, f->red[RED_ATTN], f->att, lw->wo, &lw->q_o, &lw->f_o, gemm_bias(f, lw->bo), T,
           f->q_dim, c->hidden, defer_o);
    fc_prof_mark(f, PROF_O);
}

/* xn -> gate_up GEMM -> silu * mul -> down GEMM, this rank's partial sums in red[RED_MLP].
 * next_qkv: the next layer's q|k|v product (NULL after the last layer). */
static void mlp_block(forward_cuda *f, int layer, int T, const fp8_matrix *next_qkv) {
    const model_config *c = f->cfg;
    const layer_weights_cuda *lw = &f->w->layers[layer];
    /* the fused kernel holds a row in one block: up to 4,096 packs of 8; it also applies the
     * gate|up product's FP8 scales */
    const bool silu_fp8 =
        fp8_input_fused(f, &lw->f_down, T) && f->inter % 8 == 0 && f->inter <= 8 * 4096;
    linear(f, f->gate_up, f->xn, lw->w_gate_up, &lw->q_gate_up, &lw->f_gate_up, lw->b_gate_up,
           T, c->hidden, 2 * f->inter, silu_fp8);
    fc_prof_mark(f, PROF_GATE_UP);
    if (silu_fp8) {
        silu_mul_fp8_cuda(f->act, f->gate_up, T, f->inter, f->dt, f->fp8_xq, f->fp8_xs,
                          lw->f_down.act, lw->f_down.input_scale,
                          f->deferred.ws ? &f->deferred : NULL, f->stream);
        f->deferred.ws = NULL;
        f->xq_ready = true; /* the down product reads it */
    } else {
        silu_mul_cuda(f->act, f->gate_up, T, f->inter, f->dt, f->stream);
    }
    fc_prof_mark(f, PROF_SILU);
    const bool defer_down = f->comm->world == 1 && fp8_input_fused(f, next_qkv, T);
    linear(f, f->red[RED_MLP], f->act, lw->w_down, &lw->q_down, &lw->f_down,
           gemm_bias(f, lw->b_down), T, f->inter, c->hidden, defer_down);
    fc_prof_mark(f, PROF_DOWN);
}

/* The LM head on the gathered rows xn[logits_rows], then the greedy ids. One rank: straight
 * into logits. More: this rank's [L][vocab_local] into its block of the all-gather buffer
 * (the last rank's block is only partly used), gather, reorder into [L][vocab]. */
static int lm_head(forward_cuda *f, int L) {
    const model_config *c = f->cfg;
    const cuda_weights *w = f->w;
    const shard_plan *sh = &w->shard;
    gather_rows_cuda(f->last, f->xn, PLAN_PTR(f, f->d_plan, logits_rows, int32_t), L, c->hidden,
                     f->dt, f->stream);
    const size_t count = (size_t)L * sh->vocab_shard;
    float *mine = sh->world == 1 ? f->logits : f->logits + count * sh->rank;
    if (sh->vocab > 0)
        gemm_run(f->gemm, mine, DTYPE_F32, f->last, w->lm_head, NULL, f->dt, L, c->hidden,
                 sh->vocab, f->stream);
    fc_prof_mark(f, PROF_LM_HEAD);
    if (sh->world > 1) {
        if (nccl_allgather(&f->nccl, mine, f->logits, count, ncclFloat32) != 0) return -1;
        vocab_unshard_cuda(f->logits_full, f->logits, L, sh->vocab_shard, c->vocab, sh->world,
                           f->stream);
        fc_prof_mark(f, PROF_GATHER);
    }
    argmax_cuda(f->ids, sh->world == 1 ? f->logits : f->logits_full, L,
                sh->world == 1 ? sh->vocab : c->vocab, f->stream);
    fc_prof_mark(f, PROF_ARGMAX);
    return 0;
}

int fc_run_forward(forward_cuda *f, const step_shape *s) {
    const model_config *c = f->cfg;
    const cuda_weights *w = f->w;
    const int T = s->n_tokens;
    /* One-shot only in steps that end with the logits all-gather: a rank done with it knows
     * every peer is done reading its region (so it may free it after its last step). */
    f->oneshot_step = f->use_oneshot && s->n_logits > 0;
    f->deferred.ws = NULL; /* a step that failed half-way left nothing to apply */
    fc_prof_mark(f, PROF_EMBED); /* start */
    embedding_cuda(f->red[RED_EMBED], w->embed, PLAN_PTR(f, f->d_plan, token_ids, int32_t), T,
                   c->hidden, w->shard.vocab_start, w->shard.vocab, f->dt, f->stream);
    CUDA_CHECK(cudaMemsetAsync(f->x, 0, (size_t)T * c->hidden * dtype_size(f->dt), f->stream));
    fc_prof_mark(f, PROF_EMBED);
    /* x = 0 + the embedding (rows outside a shard are zeros: the sum completes the lookup),
     * then the plain norm of forward_cpu */
    if (reduce_add_norm(f, RED_EMBED, NULL, T, w->layers[0].attn_norm, &w->layers[0].f_qkv) != 0)
        return -1;
    for (int l = 0; l < c->n_layers; l++) {
        attention_block(f, s, l);
        if (reduce_add_norm(f, RED_ATTN, w->layers[l].bo, T, w->layers[l].mlp_norm,
                            &w->layers[l].f_gate_up) != 0)
            return -1;
        const bool last = l + 1 == c->n_layers;
        mlp_block(f, l, T, last ? NULL : &w->layers[l + 1].f_qkv);
        if (reduce_add_norm(f, RED_MLP, w->layers[l].b_down, T,
                            last ? w->final_norm : w->layers[l + 1].attn_norm,
                            last ? NULL : &w->layers[l + 1].f_qkv) != 0)
            return -1;
    }
    return s->n_logits > 0 ? lm_head(f, s->n_logits) : 0;
}

#else
typedef int folio_forward_cuda_unused; /* built without CUDA */
#endif
