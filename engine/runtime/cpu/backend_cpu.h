/* The CPU backend of the engine loop: the float32 forward (forward_cpu) over this rank's
 * paged KV pool, behind the engine_backend interface. It performs the plan's block copies
 * (copy-on-write) on every layer's K and V, then the forward. */
#ifndef FOLIO_BACKEND_CPU_H
#define FOLIO_BACKEND_CPU_H

#include "comm.h"
#include "engine_backend.h"
#include "forward_cpu.h"
#include "kv_cache.h"
#include "kv_scales.h"
#include "model.h"

typedef struct {
    const model *m;
    kv_cache kv;
    forward_cpu *fwd;
} backend_cpu;

/* A pool of num_blocks blocks and a workspace for steps of up to max_tokens tokens and
 * max_logits logits rows, over contexts of up to max_model_len tokens; an FP8 pool with the
 * per-layer scales kvs (NULL: float32). 0, or -1 with a message. */
int backend_cpu_create(backend_cpu *b, const model *m, comm_ctx *comm, int num_blocks,
                       int block_size, int max_tokens, int max_logits, int max_model_len,
                       const kv_scales *kvs);
void backend_cpu_free(backend_cpu *b);
engine_backend backend_cpu_iface(backend_cpu *b);

/* Bytes of activation workspace forward_cpu_create takes for max_tokens tokens (estimate,
 * for capacity planning), its rope tables for max_model_len positions included. */
size_t backend_cpu_workspace_bytes(const model_config *c, int max_tokens, int max_logits,
                                   int max_model_len);

#endif
