/* Request parameters and sequence state: creation, forks, release. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "sequence.h"

void request_params_init(request_params *p) {
    memset(p, 0, sizeof *p);
    p->max_tokens = 16;
    p->n = 1;
    p->sampling = (sampling_params){.temperature = 1.0f, .top_k = 0, .top_p = 1.0f};
    p->proc.repetition_penalty = 1.0f;
    p->logprobs = -1;
    p->session_id = -1;
}

void request_params_free(request_params *p) {
    free(p->stop_ids);
    for (int i = 0; i < p->n_stop; i++) free(p->stop[i]);
    free(p->stop);
    free(p->owned_bias);
    p->stop_ids = NULL;
    p->stop = NULL;
    p->owned_bias = NULL;
    p->proc.bias = NULL;
    p->n_stop_ids = p->n_stop = p->proc.n_bias = 0;
}

void request_params_copy(request_params *dst, const request_params *src) {
    *dst = *src;
    if (src->n_stop_ids) {
        dst->stop_ids = folio_xmalloc(sizeof *dst->stop_ids * src->n_stop_ids);
        memcpy(dst->stop_ids, src->stop_ids, sizeof *dst->stop_ids * src->n_stop_ids);
    }
    if (src->n_stop) {
        dst->stop = folio_xmalloc(sizeof *dst->stop * src->n_stop);
        for (int i = 0; i < src->n_stop; i++) dst->stop[i] = folio_xstrdup(src->stop[i]);
    }
    if (src->proc.n_bias) {
        dst->owned_bias = folio_xmalloc(sizeof *dst->owned_bias * src->proc.n_bias);
        memcpy(dst->owned_bias, src->proc.bias, sizeof *dst->owned_bias * src->proc.n_bias);
    } else {
        dst->owned_bias = NULL;
    }
    dst->proc.bias = dst->owned_bias;
}

sequence *sequence_create(struct request *req, int sample, const int32_t *ctx, int n_ctx,
                          int max_new, int block_size) {
    sequence *s = folio_xcalloc(1, sizeof *s);
    s->req = req;
    s->sample = sample;
    s->cap_tokens = n_ctx + max_new + 1;
    s->tokens = folio_xmalloc(sizeof *s->tokens * s->cap_tokens);
    memcpy(s->tokens, ctx, sizeof *s->tokens * n_ctx);
    s->n_tokens = s->n_prompt = n_ctx;
    s->cap_blocks = (s->cap_tokens + block_size - 1) / block_size;
    s->blocks = folio_xmalloc(sizeof *s->blocks * s->cap_blocks);
    s->last_hash = bm_hash_seed();
    s->logits_row = -1;
    s->session_id = -1;
    s->n_cached = -1;
    return s;
}

sequence *sequence_fork(const sequence *parent, int sample) {
    sequence *s = folio_xmalloc(sizeof *s);
    *s = *parent;
    s->sample = sample;
    s->fork_pending = 0;
    s->tokens = folio_xmalloc(sizeof *s->tokens * s->cap_tokens);
    memcpy(s->tokens, parent->tokens, sizeof *s->tokens * parent->n_tokens);
    s->blocks = folio_xmalloc(sizeof *s->blocks * s->cap_blocks);
    memcpy(s->blocks, parent->blocks, sizeof *s->blocks * parent->n_blocks);
    s->logprobs = NULL;
    if (parent->logprobs) {
        size_t n = (size_t)(s->cap_tokens - s->n_prompt);
        s->logprobs = folio_xmalloc(sizeof *s->logprobs * n);
        memcpy(s->logprobs, parent->logprobs,
               sizeof *s->logprobs * (size_t)sequence_generated(parent));
    }
    s->text = NULL;
    if (parent->text) {
        s->text = folio_xmalloc((size_t)parent->text_cap);
        memcpy(s->text, parent->text, (size_t)parent->text_len + 1);
    }
    s->stream = NULL; /* the engine gives a fork its own */
    s->stream_free = NULL;
    return s;
}

void sequence_free(sequence *s) {
    if (!s) return;
    free(s->tokens);
    free(s->blocks);
    free(s->logprobs);
    free(s->text);
    if (s->stream_free) s->stream_free(s->stream);
    free(s);
}
