/* One sequence through a backend of its own: prefill, then decode token by token. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "progress.h"
#include "sequence_runner.h"
#include "step_plan.h"

/* Everything one sequence needs: a backend whose KV pool holds its context, a block table
 * over the whole pool, a plan. */
typedef struct {
    backend *be;
    engine_backend iface;
    step_plan plan;
    int32_t *table;
    int n_blocks;
} seq_state;

static int seq_state_create(seq_state *s, const device_model *dm, comm_ctx *comm, int context,
                            int max_step_tokens, int max_logits, int block_size) {
    memset(s, 0, sizeof *s);
    s->n_blocks = (context + block_size - 1) / block_size;
    s->table = folio_xmalloc(sizeof *s->table * s->n_blocks);
    for (int b = 0; b < s->n_blocks; b++) s->table[b] = b;
    step_plan_create(&s->plan, max_step_tokens, 1, s->n_blocks, block_size);
    const backend_sizes sizes = {.num_blocks = s->n_blocks, .block_size = block_size,
                                 .max_tokens = max_step_tokens, .max_seqs = 1,
                                 .max_logits = max_logits, .max_model_len = context};
    s->be = backend_create(dm, comm, &sizes);
    if (!s->be) return -1;
    s->iface = backend_iface(s->be);
    return 0;
}

static void seq_state_free(seq_state *s) {
    backend_free(s->be);
    step_plan_free(&s->plan);
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

/* One step of the plan, then the next token: on the device when the backend samples there,
 * else by the host twin over the logits row (the same algorithm, the same token). */
static int step_and_sample(seq_state *s, const sample_row_params *prm, float *logits, int vocab,
                           int32_t *id) {
    if (s->iface.step_sample)
        return s->iface.step_sample(s->iface.self, &s->plan, prm, NULL, 0, id, NULL);
    if (s->iface.step(s->iface.self, &s->plan, logits) != 0) return -1;
    sample_rows_cpu(id, NULL, logits, 1, vocab, prm, NULL);
    return 0;
}

int run_sequence(const device_model *dm, comm_ctx *comm, const int32_t *prompt, int n_prompt,
                 const run_options *o, token_callback cb, void *user, run_result *out) {
    const model_config *c = &dm->m.cfg;
    memset(out, 0, sizeof *out);
    if (check_context(c, n_prompt, o->max_tokens) != 0) return -1;
    if (sampling_params_validate(&o->sampling) != 0) return -1;
    seq_state s;
    if (seq_state_create(&s, dm, comm, n_prompt + o->max_tokens, n_prompt, 1,
                         o->block_size) != 0) {
        seq_state_free(&s);
        return -1;
    }
    float *logits = folio_xmalloc(sizeof(float) * c->vocab);
    out->ids = folio_xmalloc(sizeof(int32_t) * (o->max_tokens ? o->max_tokens : 1));
    sampler_rng rng;
    sampler_rng_seed(&rng, o->seed);
    sample_row_params prm = sample_row_params_of(&o->sampling, NULL, &rng, 0);

    int rc = 0, n_ctx = 0;
    const int32_t *next = prompt;
    int n_next = n_prompt;
    double t0 = folio_now();
    while (out->n < o->max_tokens) {
        int32_t id = 0;
        step_plan_reset(&s.plan, out->n);
        prm.counter = (uint64_t)out->n;
        if (step_plan_add(&s.plan, next, n_next, n_ctx, s.table, s.n_blocks, 1, 0) < 0 ||
            step_and_sample(&s, &prm, logits, c->vocab, &id) != 0) {
            rc = -1;
            break;
        }
        n_ctx += n_next;
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
    seq_state_free(&s);
    if (rc != 0) {
        free(out->ids);
        memset(out, 0, sizeof *out);
    }
    return rc;
}

int score_sequence(const device_model *dm, comm_ctx *comm, const int32_t *ids, int n,
                   int block_size, float *logits) {
    if (check_context(&dm->m.cfg, n, 0) != 0) return -1;
    seq_state s;
    if (seq_state_create(&s, dm, comm, n, n, n, block_size) != 0) {
        seq_state_free(&s);
        return -1;
    }
    step_plan_reset(&s.plan, 0);
    int rc = step_plan_add(&s.plan, ids, n, 0, s.table, s.n_blocks, 1, 1) < 0
                 ? -1
                 : s.iface.step(s.iface.self, &s.plan, logits);
    seq_state_free(&s);
    return rc;
}

double token_nll(const float *logits, int vocab, int32_t id) {
    float max = logits[0];
    for (int i = 1; i < vocab; i++)
        if (logits[i] > max) max = logits[i];
    double sum = 0.0;
    for (int i = 0; i < vocab; i++) sum += exp((double)logits[i] - max);
    return -((double)logits[id] - max - log(sum));
}

/* Steps of a window: at most this many new tokens (and logits rows) at a time. */
#define SCORE_CHUNK 256

int score_windows(const device_model *dm, comm_ctx *comm, const int32_t *ids, int n, int window,
                  int stride, int block_size, bool progress, double *nll) {
    const int vocab = dm->m.cfg.vocab;
    *nll = 0.0;
    if (n < 2) return folio_fail("the text has %d token(s); a perplexity needs at least 2", n);
    if (window < 2 || window > dm->m.cfg.max_position)
        return folio_fail("a window of %d tokens: expected 2 .. %d (the model's context)", window,
                          dm->m.cfg.max_position);
    if (stride < 1 || stride > window)
        return folio_fail("a stride of %d tokens: expected 1 .. %d (the window)", stride, window);
    const int chunk = window < SCORE_CHUNK ? window : SCORE_CHUNK;
    seq_state s;
    if (seq_state_create(&s, dm, comm, window, chunk, chunk, block_size) != 0) {
        seq_state_free(&s);
        return -1;
    }
    float *logits = folio_xmalloc(sizeof(float) * chunk * vocab);
    progress_bar bar;
    progress_start(&bar, "scoring", (uint64_t)(n - 1), "tokens", progress && comm->rank == 0);
    int rc = 0, done = 1; /* ids[0 .. done) need no more predictions */
    int64_t step = 0;
    for (int begin = 0; done < n && rc == 0; begin += stride) {
        const int end = begin + window < n ? begin + window : n;
        for (int at = begin; at < end && rc == 0; at += chunk) {
            const int len = end - at < chunk ? end - at : chunk;
            step_plan_reset(&s.plan, step++);
            rc = step_plan_add(&s.plan, ids + at, len, at - begin, s.table, s.n_blocks, 1, 1) < 0
                     ? -1
                     : s.iface.step(s.iface.self, &s.plan, logits);
            /* row j predicts ids[at + j + 1]: only those not predicted yet */
            for (int j = 0; rc == 0 && j < len && at + j + 1 < end; j++)
                if (at + j + 1 >= done)
                    *nll += token_nll(logits + (size_t)j * vocab, vocab, ids[at + j + 1]);
        }
        if (rc == 0) progress_add(&bar, (uint64_t)(end - done));
        done = end;
    }
    progress_finish(&bar);
    free(logits);
    seq_state_free(&s);
    return rc;
}
