/* One step (forward_cuda_step): check the plan, pack and upload it, replay the decode graph
 * that holds it or run the forward eagerly, then copy the greedy ids and logits back. */
#ifdef FOLIO_HAVE_CUDA

#include <string.h>

#include "cuda_check.h"
#include "forward_cuda_internal.h"
#include "step_watchdog.h"

/* The eager step's shape: the plan's counts, its longest query and longest context. */
static step_shape eager_shape(const step_plan *p, int context) {
    int max_q = 0;
    for (int s = 0; s < p->n_seqs; s++)
        if (p->seq_start[s + 1] - p->seq_start[s] > max_q)
            max_q = p->seq_start[s + 1] - p->seq_start[s];
    return (step_shape){.n_tokens = p->n_tokens, .n_seqs = p->n_seqs, .n_logits = p->n_logits,
                        .max_q_len = max_q, .max_context = context};
}

/* Greedy ids and (rank 0: only it samples) the logits of L rows to the host, once the stream
 * is done. */
static void copy_back(forward_cuda *f, int L, float *logits, int32_t *greedy_ids) {
    if (greedy_ids && L)
        CUDA_CHECK(cudaMemcpyAsync(f->h_ids, f->ids, sizeof(int32_t) * L, cudaMemcpyDeviceToHost,
                                   f->stream));
    const bool want_logits = logits && L && f->comm->rank == 0;
    const size_t logits_bytes = sizeof(float) * (size_t)L * f->cfg->vocab;
    if (want_logits)
        CUDA_CHECK(cudaMemcpyAsync(f->h_logits, f->logits_full ? f->logits_full : f->logits,
                                   logits_bytes, cudaMemcpyDeviceToHost, f->stream));
    /* with several ranks the stream holds the step's collectives: stuck here, this rank waits
     * for the others (the step watchdog asks them who stopped) */
    const bool tp = f->comm->world > 1;
    if (tp) step_watchdog_wait_begin("the GPU stream (kernels and collectives)");
    CUDA_CHECK(cudaStreamSynchronize(f->stream));
    if (tp) step_watchdog_wait_end();
    if (greedy_ids && L) memcpy(greedy_ids, f->h_ids, sizeof(int32_t) * L);
    if (want_logits) memcpy(logits, f->h_logits, logits_bytes);
}

int forward_cuda_step(forward_cuda *f, const step_plan *p, float *logits, int32_t *greedy_ids) {
    if (fc_check_plan(f, p) != 0) return -1;
    if (p->n_tokens == 0) return 0;
    const int context = fc_plan_max_context(p);
    const int g = fc_graph_for(f, p, context);
    const int rows = g >= 0 ? f->graph_batch[g] : p->n_seqs;
    fc_pack_plan(f, p, g >= 0 ? rows : p->n_tokens);
    fc_upload_plan(f, rows);
    if (g >= 0) {
        CUDA_CHECK(cudaGraphLaunch(f->graphs[g], f->stream));
    } else {
        const step_shape s = eager_shape(p, context);
        if (fc_run_forward(f, &s) != 0) return -1;
    }
    copy_back(f, p->n_logits, logits, greedy_ids);
    fc_prof_collect(f, p->n_tokens == p->n_seqs);
    return 0;
}

#else
typedef int folio_forward_cuda_step_unused; /* built without CUDA */
#endif
