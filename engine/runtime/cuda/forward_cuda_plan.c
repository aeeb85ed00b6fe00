/* The step plan on its way to the device. The plan travels as one pinned blob copied into one
 * device blob of fixed layout (capacities, not sizes), so a captured graph finds every array
 * at the same address on every replay; block tables always have max_blocks_per_seq columns on
 * the device. Here: that layout, the checks a plan must pass, packing (with the padding rows
 * of a graph's batch) and the upload. */
#ifdef FOLIO_HAVE_CUDA

#include <string.h>

#include "cuda_check.h"
#include "error.h"
#include "forward_cuda_internal.h"

plan_layout fc_plan_layout(const forward_cuda_options *o) {
    plan_layout l;
    size_t at = 0;
    l.token_ids = at; at = fc_align_up(at + sizeof(int32_t) * o->max_tokens);
    l.positions = at; at = fc_align_up(at + sizeof(int32_t) * o->max_tokens);
    l.logits_rows = at; at = fc_align_up(at + sizeof(int32_t) * o->max_logits);
    l.seq_start = at; at = fc_align_up(at + sizeof(int32_t) * (o->max_seqs + 1));
    l.context_lens = at; at = fc_align_up(at + sizeof(int32_t) * o->max_seqs);
    l.slots = at; at = fc_align_up(at + sizeof(int64_t) * o->max_tokens);
    l.block_tables = at;
    at = fc_align_up(at + sizeof(int32_t) * o->max_seqs * o->max_blocks_per_seq);
    l.total = at;
    return l;
}

/* 0 when p fits the workspace, the KV cache and the model's context; else -1 with a message. */
int fc_check_plan(const forward_cuda *f, const step_plan *p) {
    if (p->n_tokens > f->o.max_tokens || p->n_logits > f->o.max_logits ||
        p->n_seqs > f->o.max_seqs || p->max_blocks > f->o.max_blocks_per_seq)
        return folio_fail("forward (cuda): step of %d tokens / %d sequences / %d logits rows / "
                          "%d blocks per sequence exceeds the workspace (%d / %d / %d / %d)",
                          p->n_tokens, p->n_seqs, p->n_logits, p->max_blocks, f->o.max_tokens,
                          f->o.max_seqs, f->o.max_logits, f->o.max_blocks_per_seq);
    if (p->block_size != f->o.block_size)
        return folio_fail("forward (cuda): plan block size %d differs from the KV cache's %d",
                          p->block_size, f->o.block_size);
    const int n_positions = fc_rope_positions(f);
    for (int t = 0; t < p->n_tokens; t++)
        if (p->positions[t] < 0 || p->positions[t] >= n_positions)
            return folio_fail("forward: position %d is outside the context of %d tokens this "
                              "backend was built for (--max-model-len)", p->positions[t],
                              n_positions);
    return step_plan_validate(p, f->num_blocks);
}

/* The longest context of the plan's sequences (at least 1). */
int fc_plan_max_context(const step_plan *p) {
    int m = 1;
    for (int s = 0; s < p->n_seqs; s++)
        if (p->context_lens[s] > m) m = p->context_lens[s];
    return m;
}

/* Packs the plan into the pinned blob, padding a decode batch to `batch` rows (padding rows:
 * token 0 at position 0, no KV write, context 1 in block 0, logits row = itself). */
void fc_pack_plan(forward_cuda *f, const step_plan *p, int batch) {
    char *h = f->h_plan;
    const int MB = f->o.max_blocks_per_seq;
    int32_t *tok = PLAN_PTR(f, h, token_ids, int32_t), *pos = PLAN_PTR(f, h, positions, int32_t);
    int32_t *rows = PLAN_PTR(f, h, logits_rows, int32_t), *ss = PLAN_PTR(f, h, seq_start, int32_t);
    int32_t *ctx = PLAN_PTR(f, h, context_lens, int32_t);
    int32_t *bt = PLAN_PTR(f, h, block_tables, int32_t);
    int64_t *slot = PLAN_PTR(f, h, slots, int64_t);
    memcpy(tok, p->token_ids, sizeof *tok * p->n_tokens);
    memcpy(pos, p->positions, sizeof *pos * p->n_tokens);
    memcpy(slot, p->slot_mapping, sizeof *slot * p->n_tokens);
    memcpy(rows, p->logits_rows, sizeof *rows * p->n_logits);
    memcpy(ss, p->seq_start, sizeof *ss * (p->n_seqs + 1));
    memcpy(ctx, p->context_lens, sizeof *ctx * p->n_seqs);
    for (int s = 0; s < p->n_seqs; s++) {
        memcpy(bt + (size_t)s * MB, p->block_tables + (size_t)s * p->max_blocks,
               sizeof *bt * p->max_blocks);
    }
    for (int i = p->n_tokens; i < batch; i++) {
        tok[i] = 0;
        pos[i] = 0;
        slot[i] = -1;
        rows[i] = i;
        ss[i + 1] = i + 1;
        ctx[i] = 1;
        memset(bt + (size_t)i * MB, 0, sizeof *bt * MB);
    }
}

/* The blob up to the block tables' first n_rows rows, on f->stream. */
void fc_upload_plan(forward_cuda *f, int n_rows) {
    const size_t bytes = f->lay.block_tables + sizeof(int32_t) * (size_t)n_rows *
                                                   f->o.max_blocks_per_seq;
    CUDA_CHECK(cudaMemcpyAsync(f->d_plan, f->h_plan, bytes, cudaMemcpyHostToDevice, f->stream));
}

#else
typedef int folio_forward_cuda_plan_unused; /* built without CUDA */
#endif
