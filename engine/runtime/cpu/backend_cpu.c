/* The CPU backend: block copies, then the float32 forward of the plan. */
#include <string.h>

#include "backend_cpu.h"
#include "error.h"

int backend_cpu_create(backend_cpu *b, const model *m, comm_ctx *comm, int num_blocks,
                       int block_size, int max_tokens, int max_logits, int max_model_len,
                       const kv_scales *kvs) {
    memset(b, 0, sizeof *b);
    b->m = m;
    if (kv_cache_create(&b->kv, m->cfg.n_layers, num_blocks, block_size, m->shard.n_kv_heads,
                        m->cfg.head_dim, kvs ? kvs->k : NULL, kvs ? kvs->v : NULL,
                        kvs != NULL) != 0)
        return -1;
    b->fwd = forward_cpu_create(&m->cfg, &m->weights, comm, max_tokens, max_logits,
                                max_model_len);
    return 0;
}

void backend_cpu_free(backend_cpu *b) {
    forward_cpu_free(b->fwd);
    kv_cache_free(&b->kv);
    memset(b, 0, sizeof *b);
}

static int cpu_step(void *self, const step_plan *plan, float *logits) {
    backend_cpu *b = self;
    for (int i = 0; i < plan->n_copies; i++) kv_cache_copy_block(&b->kv, plan->copy_src[i], plan->copy_dst[i]);
    return forward_cpu_step(b->fwd, &b->kv, plan, logits);
}

engine_backend backend_cpu_iface(backend_cpu *b) {
    return (engine_backend){.self = b, .step = cpu_step};
}

size_t backend_cpu_workspace_bytes(const model_config *c, int max_tokens, int max_logits,
                                   int max_model_len) {
    size_t T = (size_t)max_tokens, hd = (size_t)c->head_dim;
    size_t per_token = 3 * (size_t)c->hidden + 2 * (size_t)c->n_heads * hd +
                       2 * (size_t)c->n_kv_heads * hd + 2 * (size_t)c->intermediate;
    size_t rope = 2 * (size_t)max_model_len * (hd / 2);
    size_t logits = (size_t)max_logits * ((size_t)c->hidden + 2 * (size_t)c->vocab);
    return sizeof(float) * (T * per_token + rope + logits);
}
