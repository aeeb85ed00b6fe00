/* The step plan: everything one forward step needs, as plain arrays (no pointers into rank-0
 * state), so rank 0 can broadcast it to the other ranks as bytes and every backend runs the
 * same thing. A step holds any mix of sequences: prefills (many new tokens, possibly after a
 * cached prefix) and decodes (one new token). Sequence i's new tokens are
 * token_ids[seq_start[i] .. seq_start[i+1]); they sit at the last positions of its context of
 * context_lens[i] tokens, whose KV lives in the blocks block_tables[i][0..]. */
#ifndef FOLIO_STEP_PLAN_H
#define FOLIO_STEP_PLAN_H

#include <stdint.h>

typedef struct {
    int64_t step;                /* step number, increasing */
    int n_tokens;                /* new tokens in this step */
    int n_seqs;
    int block_size;
    int max_blocks;              /* row length of block_tables */
    int n_logits;                /* rows of logits wanted */
    /* capacities (fixed at step_plan_create) */
    int cap_tokens, cap_seqs, cap_blocks;
    int32_t *token_ids;          /* [n_tokens] */
    int32_t *positions;          /* [n_tokens] position of each new token in its sequence */
    int64_t *slot_mapping;       /* [n_tokens] KV slot each new token's K/V is written to */
    int32_t *seq_start;          /* [n_seqs + 1] offsets into the token arrays */
    int32_t *context_lens;       /* [n_seqs] tokens in KV after this step (prefix + new) */
    int32_t *block_tables;       /* [n_seqs][max_blocks] block ids */
    int32_t *logits_rows;        /* [n_logits] token indices whose logits are wanted */
    int n_copies;                /* block copies before the forward (<= cap_seqs) */
    int32_t *copy_src;           /* [n_copies] */
    int32_t *copy_dst;           /* [n_copies] */
} step_plan;

/* Allocates arrays for up to cap_tokens tokens, cap_seqs sequences and cap_blocks blocks per
 * sequence. The caller owns the plan and frees it with step_plan_free(). */
void step_plan_create(step_plan *p, int cap_tokens, int cap_seqs, int cap_blocks,
                      int block_size);
void step_plan_free(step_plan *p);

/* Starts an empty plan for a new step. */
void step_plan_reset(step_plan *p, int64_t step);

/* Appends one sequence: its n_new new tokens (ids), the number of tokens already in its KV
 * (n_cached), its block table (enough blocks for n_cached + n_new tokens) and whether the
 * logits of its last new token are wanted (all_logits: every new token's). Positions and slots
 * are derived from n_cached and the block table. Returns the sequence's index, or -1 with a
 * message when a capacity or the block table is too small. */
int step_plan_add(step_plan *p, const int32_t *ids, int n_new, int n_cached,
                  const int32_t *block_table, int n_blocks, int want_logits, int all_logits);

/* Appends a block copy src -> dst (done before the forward). -1 with a message when full. */
int step_plan_add_copy(step_plan *p, int32_t src, int32_t dst);

/* Checks internal consistency (offsets, slots inside num_blocks, positions < context):
 * what a receiving rank runs before trusting a plan. -1 with a message if broken. */
int step_plan_validate(const step_plan *p, int num_blocks);

#endif
