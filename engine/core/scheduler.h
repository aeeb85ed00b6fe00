/* The continuous-batching scheduler (rank 0): waiting and running queues, a token budget and a
 * sequence cap per step, chunked prefill, preemption by recompute, prefix-cache admission,
 * copy-on-write of shared blocks, and the KV held by idle interactive sessions.
 *
 * Each step (sched_schedule):
 *   1. running decodes (one new token each), in admission order;
 *   2. running sequences still prefilling, a chunk each of what the budget leaves;
 *   3. if nothing was preempted this step, waiting sequences in queue order (preempted ones
 *      are at the front), each first reusing every cached full block of its context.
 * When blocks run out: first the KV of the least recently parked idle session is dropped;
 * then the most recently admitted running sequence not yet scheduled this step is preempted
 * (blocks freed, requeued at the front, to recompute its prompt and generated tokens later);
 * this can be the sequence being scheduled itself.
 *
 * Ownership: the scheduler owns the block manager and its queues (arrays of pointers); the
 * sequences belong to their requests (engine_loop.c). Parked session sequences are owned by
 * the scheduler. A waiting sequence holds no blocks. */
#ifndef FOLIO_SCHEDULER_H
#define FOLIO_SCHEDULER_H

#include <stdbool.h>
#include <stdint.h>

#include "block_manager.h"
#include "sequence.h"
#include "step_plan.h"

typedef struct {
    int num_blocks;
    int block_size;
    int max_num_seqs;            /* sequences per step (and running at once) */
    int max_num_batched_tokens;  /* tokens per step */
    int max_model_len;           /* longest context of one sequence */
    bool prefix_caching;
} sched_config;

typedef struct {
    int64_t steps;
    int64_t preemptions;
    int64_t session_drops;       /* idle sessions whose KV was freed under memory pressure */
    int64_t computed_tokens;     /* tokens run through the forward (prefill + decode) */
    int64_t prompt_tokens;       /* context tokens of admitted sequences (for the hit rate) */
    int64_t cached_tokens;       /* of those, found in the prefix cache or a parked session */
} sched_stats;

typedef struct scheduler scheduler;

/* Checks the configuration (positive sizes; one sequence of max_model_len must fit in the
 * pool; the budget must hold at least one token per sequence). -1 with a message naming the
 * knob to change. */
int sched_config_validate(const sched_config *c);

scheduler *sched_create(const sched_config *c);
void sched_free(scheduler *s);

block_manager *sched_blocks(scheduler *s);
const sched_stats *sched_get_stats(const scheduler *s);
int sched_num_waiting(const scheduler *s);
int sched_num_running(const scheduler *s);

/* Queues a sequence (back of the waiting queue). Its session, if any, is req's. */
void sched_add(scheduler *s, sequence *seq, int64_t session_id);

/* Decides this step and fills plan (reset with step number s->steps): tokens, slots, block
 * tables, logits rows, block copies. Sets every scheduled sequence's step_new and
 * logits_row. Returns the number of sequences scheduled (0: nothing runnable). */
int sched_schedule(scheduler *s, step_plan *plan);

/* The sequences scheduled by the last sched_schedule, in plan order. */
sequence *const *sched_scheduled(const scheduler *s, int *n);

/* After the forward: scheduled tokens are computed; newly full blocks join the prefix cache. */
void sched_step_done(scheduler *s);

/* Forks a running sequence into `n` samples: children 1..n-1 share all its blocks (one more
 * reference each) and run from the next step. Writes the n sequences (parent first) to out. */
void sched_fork(scheduler *s, sequence *parent, int n, sequence **out);

/* A sequence is finished (or cancelled): leaves its queue and frees its blocks now. */
void sched_remove(scheduler *s, sequence *seq);

/* Session KV between turns. Sessions are found by id in O(1) (a hash map) and kept in park
 * order on two lists: the idle ones (no turn in flight: the oldest first, for idle expiry) and
 * those whose parked sequence still holds blocks (the oldest is dropped first).
 *
 * sched_park: a finished session turn keeps its blocks (the scheduler takes ownership of seq,
 * replacing the session's earlier parked sequence); now: when the turn ended. True when the
 * session had no parked turn (its first). A later turn whose context starts with the parked
 * tokens adopts those blocks at admission. */
bool sched_park(scheduler *s, sequence *seq, int64_t session_id, double now);
/* A turn of the session starts: it leaves the idle list until it parks again. */
void sched_session_busy(scheduler *s, int64_t session_id);
/* The parked sequence of a session (its tokens are the conversation so far), or NULL. */
const sequence *sched_session(const scheduler *s, int64_t session_id);
/* Ends a session: frees its parked sequence and blocks. 0, or -1 if no such session. */
int sched_end_session(scheduler *s, int64_t session_id);
/* Sessions with a parked turn. */
int sched_num_sessions(const scheduler *s);
/* The idle session parked longest ago: true with its id and park time; false when none. */
bool sched_oldest_idle(const scheduler *s, int64_t *session_id, double *t_park);

/* Invariants (tests call it after every step): every block's refcount equals the references
 * the queued, running and parked sequences hold; sequences' counts are consistent. -1 with a
 * message naming the first violation. */
int sched_check(const scheduler *s);

#endif
