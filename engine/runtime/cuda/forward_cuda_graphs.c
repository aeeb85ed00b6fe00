/* Decode steps as CUDA graphs: at creation, one graph per batch size 1, 2, 4, 8, ... up to
 * max_seqs, each captured from a padding-only decode step (run once first, so cuBLASLt has
 * picked its algorithms); per step, the smallest graph that holds a decode batch (the plan is
 * padded up to its size), or none. */
#ifdef FOLIO_HAVE_CUDA

#include <stdio.h>

#include "cuda_check.h"
#include "forward_cuda_internal.h"
#include "progress.h"

/* Runs the padding-only decode step of `batch` rows once, then captures it as graph n_graphs. */
static int capture_one(forward_cuda *f, int batch) {
    step_plan empty = {.n_seqs = 0, .max_blocks = 0};
    int32_t zero = 0;
    empty.seq_start = &zero;
    fc_pack_plan(f, &empty, batch);
    fc_upload_plan(f, batch);
    const step_shape s = {.n_tokens = batch, .n_seqs = batch, .n_logits = batch, .max_q_len = 1};
    if (fc_run_forward(f, &s) != 0) return -1;
    CUDA_CHECK(cudaStreamSynchronize(f->stream));
    cudaGraph_t g;
    CUDA_CHECK(cudaStreamBeginCapture(f->stream, cudaStreamCaptureModeThreadLocal));
    int rc = fc_run_forward(f, &s);
    CUDA_CHECK(cudaStreamEndCapture(f->stream, &g));
    if (rc != 0) return -1;
    CUDA_CHECK(cudaGraphInstantiate(&f->graphs[f->n_graphs], g, 0));
    CUDA_CHECK(cudaGraphDestroy(g));
    f->graph_batch[f->n_graphs++] = batch;
    return 0;
}

int fc_capture_graphs(forward_cuda *f) {
    const double t0 = folio_now();
    static const int sizes[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0] && f->n_graphs < MAX_GRAPHS; i++) {
        const int b = sizes[i];
        if (b > f->o.max_seqs || b > f->o.max_tokens || b > f->o.max_logits) break;
        if (capture_one(f, b) != 0) return -1;
    }
    f->capture_ms = (folio_now() - t0) * 1e3;
    if (!f->o.quiet && f->comm->rank == 0)
        fprintf(stderr, "folio: captured %d decode CUDA graphs (batch 1..%d) in %.0f ms\n",
                f->n_graphs, f->n_graphs ? f->graph_batch[f->n_graphs - 1] : 0, f->capture_ms);
    return 0;
}

/* The captured graph for a decode step of n sequences (-1: none fits, or not a decode). */
int fc_graph_for(const forward_cuda *f, const step_plan *p) {
    if (p->n_tokens != p->n_seqs || p->n_logits != p->n_seqs) return -1;
    for (int i = 0; i < p->n_logits; i++)
        if (p->logits_rows[i] != i) return -1;
    for (int g = 0; g < f->n_graphs; g++)
        if (f->graph_batch[g] >= p->n_seqs) return g;
    return -1;
}

void fc_graphs_free(forward_cuda *f) {
    for (int i = 0; i < f->n_graphs; i++) CUDA_CHECK(cudaGraphExecDestroy(f->graphs[i]));
    f->n_graphs = 0;
}

double forward_cuda_capture_ms(const forward_cuda *f, int *n_graphs) {
    if (n_graphs) *n_graphs = f->n_graphs;
    return f->capture_ms;
}

#else
typedef int folio_forward_cuda_graphs_unused; /* built without CUDA */
#endif
