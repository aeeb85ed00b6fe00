/* Rank 0's broadcasting backend and the other ranks' worker loop. */
#include <signal.h>
#include <unistd.h>

#include "backend_tp.h"
#include "error.h"
#include "fault.h"
#include "progress.h"
#include "step_watchdog.h"

/* Before a rank runs a plan: the fault hooks, then the watchdog starts timing the step
 * (step_watchdog_leave() when it is done). */
static int enter_step(int rank, const step_plan *plan) {
    if (fault_check("step", rank, plan->step) != 0) return -1;
    step_watchdog_enter(plan->step, plan->n_tokens);
    while (fault_armed("hang", rank, plan->step)) sleep(1);
    if (fault_armed("stop", rank, plan->step)) raise(SIGSTOP); /* its watchdog stops too */
    return 0;
}

/* What every rank does with a plan it holds: the hooks, then the local step, watched. */
static int run_local(engine_backend local, int rank, const step_plan *plan, float *logits) {
    if (enter_step(rank, plan) != 0) return -1;
    int rc = local.step(local.self, plan, logits);
    step_watchdog_leave();
    return rc;
}

/* Rank 0: the plan to the other ranks (nothing on one rank), timed. */
static int send_plan(backend_tp *b, const step_plan *plan) {
    double t0 = folio_now();
    int rc = plan_channel_send_plan(b->ch, plan);
    b->send_s += folio_now() - t0;
    return rc;
}

static int tp_step(void *self, const step_plan *plan, float *logits) {
    backend_tp *b = self;
    if (send_plan(b, plan) != 0) return -1;
    return run_local(b->local, b->rank, plan, logits);
}

/* The same with sampling in the local backend (the CUDA backend's device sampling): the
 * plan goes out as in tp_step; the other ranks run the forward only, and rank 0 samples its
 * gathered logits on its own GPU. */
static int tp_step_sample(void *self, const step_plan *plan, const sample_row_params *params,
                          const sample_entry *entries, int n_entries, int32_t *ids,
                          float *logprobs) {
    backend_tp *b = self;
    if (send_plan(b, plan) != 0) return -1;
    if (enter_step(b->rank, plan) != 0) return -1;
    int rc = b->local.step_sample(b->local.self, plan, params, entries, n_entries, ids,
                                  logprobs);
    step_watchdog_leave();
    return rc;
}

engine_backend backend_tp_iface(backend_tp *b, engine_backend local, plan_channel *ch) {
    *b = (backend_tp){.local = local, .ch = ch, .rank = ch->comm->rank};
    return (engine_backend){.self = b, .step = tp_step,
                            .step_sample = local.step_sample ? tp_step_sample : NULL};
}

int tp_worker_loop(plan_channel *ch, engine_backend local, step_plan *plan, float *logits,
                   long long *steps) {
    *steps = 0;
    for (;;) {
        plan_msg_kind kind;
        if (plan_channel_recv(ch, &kind) != 0) return -1;
        if (kind == PLAN_MSG_STOP) return 0;
        if (kind != PLAN_MSG_STEP)
            return folio_fail("worker: expected a step plan or stop from rank 0, got message "
                              "kind %d", (int)kind);
        if (plan_channel_decode_plan(ch, plan) != 0) return -1;
        if (run_local(local, ch->comm->rank, plan, logits) != 0) return -1;
        ++*steps;
    }
}
