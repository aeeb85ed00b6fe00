/* Decode steps as CUDA graphs: at creation, one graph per batch size 1, 2, 4, 8, ... up to
 * max_seqs and per context bucket (512, 2048, 8192, ... x 4, the last one the backend's whole
 * context), each captured from a padding-only decode step (run once first, so cuBLASLt has
 * picked its algorithms); per step, the smallest graph that holds the decode batch (the plan
 * is padded up to its size) and its longest context, or none. The context bucket sets the
 * decode attention's split of the context into partitions (kernels/attention/
 * paged_attention.cu): one graph for the whole context would launch, on a server of 8,192
 * tokens, 16 partitions of 512 positions per sequence and head, and merge them, for contexts
 * of a few hundred. */
#ifdef FOLIO_HAVE_CUDA

#include <stdio.h>

#include "cuda_check.h"
#include "forward_cuda_internal.h"
#include "progress.h"

enum { FIRST_BUCKET = 512, BUCKET_STEP = 4 };

/* Runs the padding-only decode step of `batch` rows and context bound `context` once, then
 * captures it as graph n_graphs. */
static int capture_one(forward_cuda *f, int batch, int context) {
    step_plan empty = {.n_seqs = 0, .max_blocks = 0};
    int32_t zero = 0;
    empty.seq_start = &zero;
    fc_pack_plan(f, &empty, batch);
    fc_upload_plan(f, batch);
    const step_shape s = {.n_tokens = batch, .n_seqs = batch, .n_logits = batch, .max_q_len = 1,
                          .max_context = context};
    if (fc_run_forward(f, &s) != 0) return -1;
    CUDA_CHECK(cudaStreamSynchronize(f->stream));
    cudaGraph_t g;
    CUDA_CHECK(cudaStreamBeginCapture(f->stream, cudaStreamCaptureModeThreadLocal));
    int rc = fc_run_forward(f, &s);
    CUDA_CHECK(cudaStreamEndCapture(f->stream, &g));
    if (rc != 0) return -1;
    CUDA_CHECK(cudaGraphInstantiate(&f->graphs[f->n_graphs], g, 0));
    CUDA_CHECK(cudaGraphDestroy(g));
    f->graph_batch[f->n_graphs] = batch;
    f->graph_context[f->n_graphs++] = context;
    return 0;
}

/* The bucket after `context` (0: the first), at most the whole context. */
static int next_bucket(int context, int whole) {
    const long c = context == 0 ? FIRST_BUCKET : (long)context * BUCKET_STEP;
    return (int)(c < whole ? c : whole);
}

int fc_capture_graphs(forward_cuda *f) {
    const double t0 = folio_now();
    static const int sizes[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
    const int whole = f->o.max_blocks_per_seq * f->o.block_size;
    int n_buckets = 0;
    for (int c = 0; c < whole; c = next_bucket(c, whole)) n_buckets++;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        const int b = sizes[i];
        if (b > f->o.max_seqs || b > f->o.max_tokens || b > f->o.max_logits) break;
        for (int c = next_bucket(0, whole); f->n_graphs < MAX_GRAPHS; c = next_bucket(c, whole)) {
            if (capture_one(f, b, c) != 0) return -1;
            if (c == whole) break;
        }
    }
    f->capture_ms = (folio_now() - t0) * 1e3;
    if (!f->o.quiet && f->comm->rank == 0)
        fprintf(stderr, "folio: captured %d decode CUDA graphs (batch 1..%d; contexts up to %d, "
                "%d bucket%s) in %.0f ms\n", f->n_graphs,
                f->n_graphs ? f->graph_batch[f->n_graphs - 1] : 0, whole, n_buckets,
                n_buckets == 1 ? "" : "s", f->capture_ms);
    return 0;
}

/* The captured graph for a decode step: the smallest batch that holds its sequences, in it
 * the smallest context bucket that holds its longest context `context` (graphs are in that
 * order).
 * -1: none fits, or not a decode. */
int fc_graph_for(const forward_cuda *f, const step_plan *p, int context) {
    if (p->n_tokens != p->n_seqs || p->n_logits != p->n_seqs) return -1;
    for (int i = 0; i < p->n_logits; i++)
        if (p->logits_rows[i] != i) return -1;
    for (int g = 0; g < f->n_graphs; g++)
        if (f->graph_batch[g] >= p->n_seqs && f->graph_context[g] >= context) return g;
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
