/* The CUDA backend of the engine loop: forward_cuda (one GPU, its device KV pool, decode CUDA
 * graphs) behind the engine_backend interface; block copies (copy-on-write) on the device,
 * then the forward; then either the sampler on the GPU (step_sample: only ids and logprobs
 * come back) or full-vocabulary logits back to the host for the engine's sampler.
 * Available with CUDA (FOLIO_HAVE_CUDA). */
#ifndef FOLIO_BACKEND_CUDA_H
#define FOLIO_BACKEND_CUDA_H

#ifdef FOLIO_HAVE_CUDA

#include <stddef.h>

#include "comm.h"
#include "engine_loop.h"
#include "forward_cuda.h"
#include "model.h"

typedef struct {
    const model *m;
    forward_cuda *fwd;
} backend_cuda;

/* A pool of num_blocks blocks, steps of up to max_tokens tokens, max_seqs sequences (and
 * logits rows), contexts of up to max_model_len. 0, or -1 with a message. */
int backend_cuda_create(backend_cuda *b, const model *m, comm_ctx *comm, int num_blocks,
                        int block_size, int max_tokens, int max_seqs, int max_model_len);
void backend_cuda_free(backend_cuda *b);
engine_backend backend_cuda_iface(backend_cuda *b);

/* Device bytes besides the weights and the KV pool for these sizes (KV capacity planning),
 * and this GPU's total and free memory now. */
size_t backend_cuda_workspace_bytes(const model *m, int block_size, int max_tokens,
                                    int max_seqs, int max_model_len);
int backend_cuda_memory(size_t *total, size_t *free_bytes);

#endif
#endif
