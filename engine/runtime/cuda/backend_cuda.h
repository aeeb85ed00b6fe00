/* The CUDA backend of the engine loop: forward_cuda (one GPU, its device KV pool, decode CUDA
 * graphs) behind the engine_backend interface; block copies (copy-on-write) on the device,
 * then the forward; then either the sampler on the GPU (step_sample: only ids and logprobs
 * come back) or full-vocabulary logits back to the host for the engine's sampler.
 * Available with CUDA (FOLIO_HAVE_CUDA). */
#ifndef FOLIO_BACKEND_CUDA_H
#define FOLIO_BACKEND_CUDA_H

#ifdef FOLIO_HAVE_CUDA

#include <stddef.h>

#include "backend.h"
#include "comm.h"
#include "engine_backend.h"
#include "forward_cuda.h"

typedef struct {
    forward_cuda *fwd;
} backend_cuda;

/* The forward's options for a backend of sizes s (s->num_blocks: the pool backend_kv_blocks
 * sized); for a command that runs forward_cuda directly on the engine's shapes. */
forward_cuda_options backend_cuda_options(const device_model *dm, const backend_sizes *s);

/* A backend of sizes s over dm's GPU weights. 0, or -1 with a message. */
int backend_cuda_create(backend_cuda *b, const device_model *dm, comm_ctx *comm,
                        const backend_sizes *s);
void backend_cuda_free(backend_cuda *b);
engine_backend backend_cuda_iface(backend_cuda *b);

/* Device bytes besides the weights and the KV pool for these sizes (KV capacity planning),
 * and this GPU's total and free memory now. */
size_t backend_cuda_workspace_bytes(const device_model *dm, const backend_sizes *s);
int backend_cuda_memory(size_t *total, size_t *free_bytes);

#endif
#endif
