/* Tensor parallelism in the engine: rank 0 drives, the other ranks follow.
 *
 * Rank 0's engine gets backend_tp: each step it broadcasts the step plan (plan_channel) and
 * then runs its own shard (the local backend, whose forward joins the all-reduces). The other
 * ranks run tp_worker_loop over the same kind of local backend: receive a plan, check it, run
 * it, repeat until rank 0's stop message. Sampling, the scheduler, the tokenizer and all
 * output stay on rank 0; a worker's logits buffer only receives the gathered rows.
 *
 * With one rank backend_tp is the local backend plus the fault and watchdog hooks; nothing is
 * sent. */
#ifndef FOLIO_BACKEND_TP_H
#define FOLIO_BACKEND_TP_H

#include "comm.h"
#include "engine_loop.h"
#include "plan_channel.h"
#include "step_plan.h"

typedef struct {
    engine_backend local;
    plan_channel *ch;
    int rank;
    double send_s;               /* time spent broadcasting plans (statistics) */
} backend_tp;

/* Rank 0. ch and local outlive the backend. */
engine_backend backend_tp_iface(backend_tp *b, engine_backend local, plan_channel *ch);

/* Every rank but 0: runs plans until STOP. plan: created with rank 0's capacities (the
 * engine's: max_num_batched_tokens, max_num_seqs, max_model_len / block_size blocks);
 * logits: [plan->cap_seqs][vocab]. 0 after STOP, -1 with a message on any failure (a bad
 * plan, a failed step, an unexpected message). *steps: plans run. */
int tp_worker_loop(plan_channel *ch, engine_backend local, step_plan *plan, float *logits,
                   long long *steps);

#endif
