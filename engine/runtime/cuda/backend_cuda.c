/* The CUDA backend of the engine loop (see backend_cuda.h). */
#ifdef FOLIO_HAVE_CUDA

#include <string.h>

#include <cuda_runtime_api.h>

#include "backend_cuda.h"
#include "cuda_check.h"
#include "error.h"
#include "weights_cuda.h"

forward_cuda_options backend_cuda_options(const device_model *dm, const backend_sizes *s) {
    return (forward_cuda_options){
        .max_tokens = s->max_tokens > s->max_seqs ? s->max_tokens : s->max_seqs,
        .max_seqs = s->max_seqs, .max_logits = s->max_logits,
        .max_blocks_per_seq = (s->max_model_len + s->block_size - 1) / s->block_size,
        .block_size = s->block_size, .num_blocks = s->num_blocks,
        .enforce_eager = dm->enforce_eager, .nccl_only = dm->allreduce_nccl,
        .kv_k_scale = dm->kv_fp8 ? dm->kv_scales.k : NULL,
        .kv_v_scale = dm->kv_fp8 ? dm->kv_scales.v : NULL};
}

int backend_cuda_create(backend_cuda *b, const device_model *dm, comm_ctx *comm,
                        const backend_sizes *s) {
    memset(b, 0, sizeof *b);
    const forward_cuda_options o = backend_cuda_options(dm, s);
    b->fwd = forward_cuda_create(&dm->m.cfg, dm->gpu_weights, comm, &o);
    return b->fwd ? 0 : -1;
}

void backend_cuda_free(backend_cuda *b) {
    forward_cuda_free(b->fwd);
    memset(b, 0, sizeof *b);
}

static int cuda_step(void *self, const step_plan *plan, float *logits) {
    backend_cuda *b = self;
    if (plan->n_copies)
        forward_cuda_copy_blocks(b->fwd, plan->copy_src, plan->copy_dst, plan->n_copies);
    return forward_cuda_step(b->fwd, plan, logits, NULL);
}

/* The forward, then the sampler on the GPU: only ids (and logprobs) come back. */
static int cuda_step_sample(void *self, const step_plan *plan, const sample_row_params *params,
                            const sample_entry *entries, int n_entries, int32_t *ids,
                            float *logprobs) {
    backend_cuda *b = self;
    if (plan->n_copies)
        forward_cuda_copy_blocks(b->fwd, plan->copy_src, plan->copy_dst, plan->n_copies);
    if (forward_cuda_step(b->fwd, plan, NULL, NULL) != 0) return -1;
    return forward_cuda_sample(b->fwd, plan->n_logits, params, entries, n_entries, ids,
                               logprobs);
}

engine_backend backend_cuda_iface(backend_cuda *b) {
    return (engine_backend){.self = b, .step = cuda_step, .step_sample = cuda_step_sample};
}

size_t backend_cuda_workspace_bytes(const device_model *dm, const backend_sizes *s) {
    const forward_cuda_options o = backend_cuda_options(dm, s);
    return forward_cuda_workspace_bytes(&dm->m.cfg, dm->gpu_weights, &o);
}

int backend_cuda_memory(size_t *total, size_t *free_bytes) {
    if (cudaMemGetInfo(free_bytes, total) != cudaSuccess) {
        (void)cudaGetLastError();
        return folio_fail("cudaMemGetInfo failed: no usable GPU");
    }
    return 0;
}

#else
typedef int folio_backend_cuda_unused; /* built without CUDA */
#endif
