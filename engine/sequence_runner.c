/* One sequence through the CPU forward: prefill, then decode token by token. */
#include <stdlib.h>

#include "error.h"
#include "forward_cpu.h"
#include "kv_cache.h"
#include "progress.h"
#include "sequence_runner.h"
#include "step_plan.h"

/* Everything one sequence needs: KV pool sized to its context, a block table, a plan. */
typedef struct {
    kv_cache kv;
    forward_cpu *fwd;
    step_plan plan;
    int32_t *table;
    int n_blocks;
} seq_state;

static int seq_state_create(seq_state *s, const model *m, comm_ctx *comm, int context,
                            int max_step_tokens, int max_logits, int block_size) {
    const model_config *c = &m->cfg;
    s->n_blocks = (context + block_size - 1) / block_size;
    if (kv_cache_create(&s->kv, c->n_layers, s->n_blocks, block_size, m->shard.n_kv_heads,
                        c->head_dim) != 0)
        return -1;
    s->table = folio_xmalloc(sizeof *s->table * s->n_blocks);
    for (int b = 0; b < s->n_blocks; b++) s->table[b] = b;
    s->fwd = forward_cpu_create(c, &m->weights, comm, max_step_tokens, max_logits);
    step_plan_create(&s->plan, max_step_tokens, 1, s->n_blocks, block_size);
    return 0;
}

static void seq_state_free(seq_state *s) {
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
    if (seq_state_create(&s, m, comm, n_prompt + o->max_tokens, n_prompt, 1, o->block_size) != 0)
        return -1;
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
        step_plan_reset(&s.plan, out->n);
        if (step_plan_add(&s.plan, next, n_next, n_ctx, s.table, s.n_blocks, 1, 0) < 0 ||
            forward_cpu_step(s.fwd, &s.kv, &s.plan, logits) != 0) {
            rc = -1;
            break;
        }
        n_ctx += n_next;
        int32_t id = sampler_sample(logits, c->vocab, &o->sampling, &rng, scratch_f, scratch_i);
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
    if (seq_state_create(&s, m, comm, n, n, n, block_size) != 0) return -1;
    step_plan_reset(&s.plan, 0);
    int rc = step_plan_add(&s.plan, ids, n, 0, s.table, s.n_blocks, 1, 1) < 0
                 ? -1
                 : forward_cpu_step(s.fwd, &s.kv, &s.plan, logits);
    seq_state_free(&s);
    return rc;
}
