/* Request and sequence state on rank 0.
 *
 * A request is what a user sent: a prompt, its parameters, n samples. A sequence is one
 * token stream the scheduler runs: a request starts as one sequence that prefills the prompt;
 * when n > 1 it forks into n sequences after the prompt's logits are known, the forks sharing
 * every prompt block (copy-on-write guards the shared partial last block).
 *
 * Ownership: the engine owns requests (engine_loop.c); a request owns its sequences; the
 * scheduler holds pointers to sequences in its queues; a sequence holds one reference to each
 * block of its block table (block_manager.h). A sequence's tokens are its whole context:
 * for a session turn, the conversation so far plus the new prompt, then what it generates. */
#ifndef FOLIO_SEQUENCE_H
#define FOLIO_SEQUENCE_H

#include <stdbool.h>
#include <stdint.h>

#include "block_manager.h"
#include "sampler.h"

typedef enum { SEQ_WAITING, SEQ_RUNNING, SEQ_FINISHED, SEQ_PARKED } seq_status;

typedef enum {
    FINISH_NONE,
    FINISH_LENGTH,               /* max_tokens or the model length reached */
    FINISH_STOP,                 /* EOS, a stop token id or a stop string */
    FINISH_CANCELLED
} finish_reason;

#define FOLIO_MAX_LOGPROBS 20

typedef struct {
    int max_tokens;
    int n;                       /* samples, >= 1 */
    sampling_params sampling;
    logits_params proc;          /* proc.bias points into owned_bias */
    uint64_t seed;               /* sample i uses an RNG seeded from (seed, i) */
    bool ignore_eos;
    int32_t *stop_ids;           /* [n_stop_ids] owned */
    int n_stop_ids;
    char **stop;                 /* [n_stop] owned stop strings (need a text codec) */
    int n_stop;
    int logprobs;                /* -1 = off, else top-N alternatives (0..FOLIO_MAX_LOGPROBS) */
    bool keep_special;           /* output text keeps special tokens (skip_special_tokens off) */
    int64_t session_id;          /* -1 = none */
    bool end_session;            /* the session ends after this turn (its KV freed, not parked) */
    logit_bias_entry *owned_bias;
} request_params;

/* Defaults: max_tokens 16, n 1, greedy off (temperature 1, top_p 1), no session, no
 * logprobs, seed 0. */
void request_params_init(request_params *p);
/* Frees what p owns (stop ids and strings, bias). */
void request_params_free(request_params *p);
/* Deep copy. */
void request_params_copy(request_params *dst, const request_params *src);

typedef struct {
    float logprob;               /* of the chosen token */
    int32_t top_ids[FOLIO_MAX_LOGPROBS];
    float top_lps[FOLIO_MAX_LOGPROBS];
} token_logprobs;

struct request;

typedef struct sequence {
    struct request *req;
    int sample;                  /* index among the request's n samples */
    seq_status status;
    finish_reason finish;
    int32_t *tokens;             /* [cap_tokens] context: history + prompt + generated */
    int n_tokens, cap_tokens;
    int n_prompt;                /* tokens before this turn's generation began */
    int n_computed;              /* tokens whose K/V are in the cache */
    int n_cached;                /* context tokens whose K/V were reused at the first admission
                                  * (prefix cache or the session's parked turn); -1 before it */
    int32_t *blocks;             /* [cap_blocks] block table */
    int n_blocks, cap_blocks;
    int n_hashed;                /* leading full blocks registered in the prefix cache */
    bm_hash last_hash;           /* hash of block n_hashed - 1 (bm_hash_seed() if none) */
    int fork_pending;            /* > 1: fork into this many samples at the first token */
    sampler_rng rng;
    int64_t session_id;          /* -1 = none */
    int64_t admitted;            /* admission order (preemption takes the largest) */
    int n_preemptions;
    /* this step (set by the scheduler) */
    int step_new;                /* tokens scheduled this step (0 = not scheduled) */
    int logits_row;              /* row of the step's logits, -1 = none */
    /* outputs */
    token_logprobs *logprobs;    /* [cap_tokens - n_prompt] when requested */
    /* output text (with a text codec; engine_loop.c makes it, one token at a time) */
    char *text;                  /* [text_len] + NUL, owned: the text so far; at the finish,
                                  * cut before the earliest stop string */
    int text_len, text_cap;
    int text_safe;               /* leading bytes of text that are final: no stop string can
                                  * begin there (all of it once finished) */
    int n_lead;                  /* leading generated tokens that began the text (nothing was
                                  * shown before them: the decoders' start rules applied) */
    void *stream;                /* the codec's stream until the finish, owned */
    void (*stream_free)(void *stream);
} sequence;

/* Allocates a sequence with room for n_ctx context tokens plus max_new generated. */
sequence *sequence_create(struct request *req, int sample, const int32_t *ctx, int n_ctx,
                          int max_new, int block_size);
/* A fork of parent as sample `sample`: same tokens, computed count and hash state; the block
 * table is copied and the caller adds one reference per block. */
sequence *sequence_fork(const sequence *parent, int sample);
void sequence_free(sequence *s);

static inline int sequence_generated(const sequence *s) { return s->n_tokens - s->n_prompt; }

#endif
