/* The step plan: building one step's arrays from sequences, and checking a received plan. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "step_plan.h"

void step_plan_create(step_plan *p, int cap_tokens, int cap_seqs, int cap_blocks,
                      int block_size) {
    memset(p, 0, sizeof *p);
    p->cap_tokens = cap_tokens;
    p->cap_seqs = cap_seqs;
    p->cap_blocks = cap_blocks;
    p->block_size = block_size;
    p->max_blocks = cap_blocks;
    p->token_ids = folio_xcalloc(cap_tokens, sizeof *p->token_ids);
    p->positions = folio_xcalloc(cap_tokens, sizeof *p->positions);
    p->slot_mapping = folio_xcalloc(cap_tokens, sizeof *p->slot_mapping);
    p->logits_rows = folio_xcalloc(cap_tokens, sizeof *p->logits_rows);
    p->seq_start = folio_xcalloc((size_t)cap_seqs + 1, sizeof *p->seq_start);
    p->context_lens = folio_xcalloc(cap_seqs, sizeof *p->context_lens);
    p->block_tables = folio_xcalloc((size_t)cap_seqs * cap_blocks, sizeof *p->block_tables);
    p->copy_src = folio_xcalloc(cap_seqs, sizeof *p->copy_src);
    p->copy_dst = folio_xcalloc(cap_seqs, sizeof *p->copy_dst);
}

void step_plan_free(step_plan *p) {
    free(p->token_ids);
    free(p->positions);
    free(p->slot_mapping);
    free(p->logits_rows);
    free(p->seq_start);
    free(p->context_lens);
    free(p->block_tables);
    free(p->copy_src);
    free(p->copy_dst);
    memset(p, 0, sizeof *p);
}

void step_plan_reset(step_plan *p, int64_t step) {
    p->step = step;
    p->n_tokens = p->n_seqs = p->n_logits = p->n_copies = 0;
    p->seq_start[0] = 0;
}

int step_plan_add(step_plan *p, const int32_t *ids, int n_new, int n_cached,
                  const int32_t *block_table, int n_blocks, int want_logits, int all_logits) {
    int ctx = n_cached + n_new;
    if (n_new < 1) return folio_fail("step plan: a sequence needs at least one new token");
    if (p->n_seqs == p->cap_seqs || p->n_tokens + n_new > p->cap_tokens)
        return folio_fail("step plan: %d sequences / %d tokens exceed the capacity of %d / %d",
                          p->n_seqs + 1, p->n_tokens + n_new, p->cap_seqs, p->cap_tokens);
    if ((long long)n_blocks * p->block_size < ctx || n_blocks > p->cap_blocks)
        return folio_fail("step plan: %d blocks of %d tokens cannot hold a context of %d "
                          "(capacity %d blocks per sequence)", n_blocks, p->block_size, ctx,
                          p->cap_blocks);
    int s = p->n_seqs++;
    int32_t *row = p->block_tables + (size_t)s * p->max_blocks;
    memcpy(row, block_table, sizeof *row * n_blocks);
    for (int b = n_blocks; b < p->max_blocks; b++) row[b] = -1;
    for (int i = 0; i < n_new; i++) {
        int t = p->n_tokens + i, pos = n_cached + i;
        p->token_ids[t] = ids[i];
        p->positions[t] = pos;
        p->slot_mapping[t] = (int64_t)row[pos / p->block_size] * p->block_size +
                             pos % p->block_size;
        if (all_logits) p->logits_rows[p->n_logits++] = t;
    }
    p->n_tokens += n_new;
    if (want_logits && !all_logits) p->logits_rows[p->n_logits++] = p->n_tokens - 1;
    p->seq_start[s + 1] = p->n_tokens;
    p->context_lens[s] = ctx;
    return s;
}

int step_plan_add_copy(step_plan *p, int32_t src, int32_t dst) {
    if (p->n_copies == p->cap_seqs)
        return folio_fail("step plan: more than %d block copies in one step", p->cap_seqs);
    p->copy_src[p->n_copies] = src;
    p->copy_dst[p->n_copies] = dst;
    p->n_copies++;
    return 0;
}

int step_plan_validate(const step_plan *p, int num_blocks) {
    if (p->n_seqs < 0 || p->n_seqs > p->cap_seqs || p->n_tokens < 0 ||
        p->n_tokens > p->cap_tokens || p->n_logits < 0 || p->n_logits > p->n_tokens)
        return folio_fail("step plan %lld: counts out of range (%d seqs, %d tokens, %d logits)",
                          (long long)p->step, p->n_seqs, p->n_tokens, p->n_logits);
    if (p->seq_start[0] != 0 || p->seq_start[p->n_seqs] != p->n_tokens)
        return folio_fail("step plan %lld: sequence offsets do not cover the tokens",
                          (long long)p->step);
    for (int s = 0; s < p->n_seqs; s++) {
        int a = p->seq_start[s], b = p->seq_start[s + 1], ctx = p->context_lens[s];
        if (b <= a || ctx < b - a || (ctx + p->block_size - 1) / p->block_size > p->max_blocks)
            return folio_fail("step plan %lld: sequence %d has %d new tokens in a context of %d",
                              (long long)p->step, s, b - a, ctx);
        const int32_t *row = p->block_tables + (size_t)s * p->max_blocks;
        for (int blk = 0; blk < (ctx + p->block_size - 1) / p->block_size; blk++)
            if (row[blk] < 0 || row[blk] >= num_blocks)
                return folio_fail("step plan %lld: sequence %d block %d is %d, outside the pool "
                                  "of %d", (long long)p->step, s, blk, row[blk], num_blocks);
        for (int t = a; t < b; t++) {
            int pos = p->positions[t];
            if (pos != ctx - (b - t))
                return folio_fail("step plan %lld: token %d has position %d, expected %d",
                                  (long long)p->step, t, pos, ctx - (b - t));
            int64_t want = (int64_t)row[pos / p->block_size] * p->block_size +
                           pos % p->block_size;
            if (p->slot_mapping[t] != want)
                return folio_fail("step plan %lld: token %d slot %lld, block table says %lld",
                                  (long long)p->step, t, (long long)p->slot_mapping[t],
                                  (long long)want);
        }
    }
    if (p->n_copies < 0 || p->n_copies > p->cap_seqs)
        return folio_fail("step plan %lld: %d block copies (capacity %d)", (long long)p->step,
                          p->n_copies, p->cap_seqs);
    for (int i = 0; i < p->n_copies; i++)
        if (p->copy_src[i] < 0 || p->copy_src[i] >= num_blocks || p->copy_dst[i] < 0 ||
            p->copy_dst[i] >= num_blocks || p->copy_src[i] == p->copy_dst[i])
            return folio_fail("step plan %lld: block copy %d -> %d is outside the pool of %d",
                              (long long)p->step, p->copy_src[i], p->copy_dst[i], num_blocks);
    for (int i = 0; i < p->n_logits; i++)
        if (p->logits_rows[i] < 0 || p->logits_rows[i] >= p->n_tokens)
            return folio_fail("step plan %lld: logits row %d is outside the step's tokens",
                              (long long)p->step, p->logits_rows[i]);
    return 0;
}
