/* One sequence through the CPU forward: prefill, then decode token by token. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "forward_cpu.h"
#include "kv_cache.h"
#include "progress.h"
#include "sequence_runner.h"
#include "step_plan.h"
#ifdef FOLIO_HAVE_CUDA
#include "forward_cuda.h"
#endif

/* Everything one sequence needs: KV pool sized to its context, a block table, a plan, and
 * the forward of the model's backend (CPU, or CUDA when the model is on the GPU). */
typedef struct {
    kv_cache kv;
    forward_cpu *fwd;
    void *fwd_cuda;              /* forward_cuda (with its own device KV pool) or NULL */
    step_plan plan;
    int32_t *table;
    int n_blocks;
} seq_state;

#ifdef FOLIO_HAVE_CUDA
static int seq_state_create_cuda(seq_state *s, const model *m, comm_ctx *comm,
                                 int max_step_tokens, int max_logits, int block_size) {
    const forward_cuda_options o = {.max_tokens = max_step_tokens, .max_seqs = 1,
                                    .max_logits = max_logits, .max_blocks_per_seq = s->n_blocks,
                                    .block_size = block_size, .num_blocks = s->n_blocks,
                                    .gpu_memory_utilization = m->gpu_memory_utilization,
                                    .enforce_eager = m->enforce_eager,
                                    .nccl_only = m->allreduce_nccl, .quiet = false};
    s->fwd_cuda = forward_cuda_create(&m->cfg, m->gpu_weights, comm, &o);
    return s->fwd_cuda ? 0 : -1;
}
#endif

/* One step through the backend: logits [n_logits][vocab] and/or greedy ids [n_logits]
 * (computed on the GPU there; on the CPU from the logits by the caller). */
static int seq_step(seq_state *s, float *logits, int32_t *greedy_ids) {
#ifdef FOLIO_HAVE_CUDA
    if (s->fwd_cuda) return forward_cuda_step(s->fwd_cuda, &s->plan, logits, greedy_ids);
#endif
    (void)greedy_ids;
    return forward_cpu_step(s->fwd, &s->kv, &s->plan, logits);
}

static int seq_state_create(seq_state *s, const model *m, comm_ctx *comm, int context,
                            int max_step_tokens, int max_logits, int block_size) {
    const model_config *c = &m->cfg;
    memset(s, 0, sizeof *s);
    s->n_blocks = (context + block_size - 1) / block_size;
    s->table = folio_xmalloc(sizeof *s->table * s->n_blocks);
    for (int b = 0; b < s->n_blocks; b++) s->table[b] = b;
    step_plan_create(&s->plan, max_step_tokens, 1, s->n_blocks, block_size);
    if (m->gpu_weights) {
#ifdef FOLIO_HAVE_CUDA
        return seq_state_create_cuda(s, m, comm, max_step_tokens, max_logits, block_size);
#endif
    }
    if (kv_cache_create(&s->kv, c->n_layers, s->n_blocks, block_size, m->shard.n_kv_heads,
                        c->head_dim) != 0)
        return -1;
    s->fwd = forward_cpu_create(c, &m->weights, comm, max_step_tokens, max_logits);
    return 0;
}

static void seq_state_free(seq_state *s) {
#ifdef FOLIO_HAVE_CUDA
    forward_cuda_free(s->fwd_cuda);
#endif
    forward_cpu_free(s->fwd);
    step_plan_free(&s->plan);
    kv_cache_free(&s->kv);
    free(s->table);
}

static int check_context(const model_config *c, int n_prompt, int max_tokens) {
    if (n_prompt < 1) return folio_fail("the prompt is empty");
    if (n_prompt > c->max_position)
        return folio_fail("the prompt has %d tokens; the model's context is %d tokens "
                          "(max_position_embeddings)", n_prompt, c->max_position);
    if ((long long)n_prompt + max_tokens > c->max_position)
        return folio_fail("the prompt has %d tokens and %d more were asked for (--max-tokens), "
                          "%d in all; the model's context is %d tokens "
                          "(max_position_embeddings)", n_prompt, max_tokens,
                          n_prompt + max_tokens, c->max_position);
    return 0;
}

static bool is_eos(const model_config *c, int32_t id) {
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_ids[i] == id) return true;
    return false;
}

int run_sequence(const model *m, comm_ctx *comm, const int32_t *prompt, int n_prompt,
                 const run_options *o, token_callback cb, void *user, run_result *out) {
    const model_config *c = &m->cfg;
    out->ids = NULL;
    out->n = 0;
    out->hit_eos = false;
    if (check_context(c, n_prompt, o->max_tokens) != 0) return -1;
    if (sampling_params_validate(&o->sampling) != 0) return -1;
    seq_state s;
    if (seq_state_create(&s, m, comm, n_prompt + o->max_tokens, n_prompt, 1, o->block_size) != 0) {
        seq_state_free(&s);
        return -1;
    }
    const bool greedy_on_device = s.fwd_cuda && o->sampling.temperature == 0;
    float *logits = folio_xmalloc(sizeof(float) * c->vocab);
    float *scratch_f = folio_xmalloc(sizeof(float) * c->vocab);
    int *scratch_i = folio_xmalloc(sizeof(int) * c->vocab);
    out->ids = folio_xmalloc(sizeof(int32_t) * (o->max_tokens ? o->max_tokens : 1));
    sampler_rng rng;
    sampler_rng_seed(&rng, o->seed);

    int rc = 0, n_ctx = 0;
    const int32_t *next = prompt;
    int n_next = n_prompt;
    double t0 = folio_now();
    while (out->n < o->max_tokens) {
        int32_t id = 0;
        step_plan_reset(&s.plan, out->n);
        if (step_plan_add(&s.plan, next, n_next, n_ctx, s.table, s.n_blocks, 1, 0) < 0 ||
            seq_step(&s, greedy_on_device ? NULL : logits, greedy_on_device ? &id : NULL) != 0) {
            rc = -1;
            break;
        }
        n_ctx += n_next;
        if (!greedy_on_device)
            id = sampler_sample(logits, c->vocab, &o->sampling, &rng, scratch_f, scratch_i);
        if (out->n == 0) out->prefill_s = folio_now() - t0;
        out->ids[out->n++] = id;
        if (cb && comm->rank == 0) cb(id, user);
        if (!o->ignore_eos && is_eos(c, id)) {
            out->hit_eos = true;
            break;
        }
        next = &out->ids[out->n - 1];
        n_next = 1;
    }
    out->decode_s = folio_now() - t0 - out->prefill_s;
    free(logits);
    free(scratch_f);
    free(scratch_i);
    seq_state_free(&s);
    if (rc != 0) {
        free(out->ids);
        out->ids = NULL;
        out->n = 0;
    }
    return rc;
}

int score_sequence(const model *m, comm_ctx *comm, const int32_t *ids, int n, int block_size,
                   float *logits) {
    if (check_context(&m->cfg, n, 0) != 0) return -1;
    seq_state s;
    if (seq_state_create(&s, m, comm, n, n, n, block_size) != 0) {
        seq_state_free(&s);
        return -1;
    }
    step_plan_reset(&s.plan, 0);
    int rc = step_plan_add(&s.plan, ids, n, 0, s.table, s.n_blocks, 1, 1) < 0
                 ? -1
                 : seq_step(&s, logits, NULL);
    seq_state_free(&s);
    return rc;
}
