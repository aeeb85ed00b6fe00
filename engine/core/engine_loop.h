/* The engine loop on rank 0: requests in, one step at a time (schedule -> build the step
 * plan -> backend step -> sample -> update), finished requests out through a callback.
 *
 * A backend (engine_backend.h) runs a step plan on the model (every rank, every device); the
 * CPU, CUDA and tensor-parallel backends (engine/runtime) and the unit tests' mock model all
 * plug in the same way.
 *
 * Ownership: the engine owns requests from engine_add until their completion callback
 * returns; the callback may read (not keep) the request and its sequences. Interactive
 * sessions: requests with the same session_id run one turn at a time in the order added;
 * each turn's context is the conversation so far (earlier prompts and outputs) plus its own
 * prompt, and it reuses the KV the earlier turn left. */
#ifndef FOLIO_ENGINE_LOOP_H
#define FOLIO_ENGINE_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "scheduler.h"
#include "sequence.h"
#include "engine_backend.h"
#include "step_plan.h"
#include "text_codec.h"

struct request;


typedef struct {
    sched_config sched;
    int vocab;
    const int32_t *eos_ids;      /* generation_config.json's EOS ids */
    int n_eos;
    const text_codec *codec;     /* NULL: ids only (no output text, no stop strings) */
    /* Optional: called for every sampled token (q's newest, q->tokens[q->n_tokens - 1],
     * logprobs in q->logprobs[sequence_generated(q) - 1] when requested), after its stop
     * check and before q finishes, with why = the finish reason it gets (FINISH_NONE while
     * it goes on). text[0..n_text): the bytes this token added to q->text (with a codec;
     * they start at q->text_len - n_text, or none when a stop string cut the text). q->text
     * is final when why != FINISH_NONE; before, its first q->text_safe bytes are (a stop
     * string may be forming after them). user: engine_create's. Streaming servers push text
     * from here; it must not block. */
    void (*on_token)(const struct request *r, const sequence *q, const char *text,
                     int n_text, finish_reason why, void *user);
} engine_config;

typedef struct request {
    int64_t id;
    void *tag;                   /* the caller's */
    int32_t *prompt;             /* [n_prompt] this turn's prompt (owned) */
    int n_prompt;
    request_params p;
    sequence **seqs;             /* [n] the samples (seqs[0] alone until the fork) */
    int n_seqs, n_done;
    char *error;                 /* a turn that could not start (owned), else NULL */
    struct request *next_turn;   /* the session's next queued turn */
    int max_stop_len;            /* bytes of the longest stop string (0: none) */
    bool started;
} request;

typedef void (*request_done_fn)(const request *r, void *user);

typedef struct {
    int64_t requests_done;
    int64_t generated_tokens;
    int64_t text_bytes;          /* output text the codec streams gave */
    int64_t stop_scan_bytes;     /* text bytes compared against stop strings */
    double cpu_s;                /* rank-0 time in steps, outside the backend */
    double backend_s;
} engine_stats;

typedef struct engine engine;

/* Validates c (sched_config_validate) and creates the engine. NULL with a message. */
engine *engine_create(const engine_config *c, engine_backend be, request_done_fn done,
                      void *user);
void engine_free(engine *e);

/* Adds a request (copies prompt and p). Checks the parameters and that the context fits
 * max_model_len: -1 with a message naming the field, nothing added. *id: the request id. */
int engine_add(engine *e, const int32_t *prompt, int n_prompt, const request_params *p,
               void *tag, int64_t *id);

/* Cancels a request at any point between steps: its sequences leave the queues and free
 * their blocks now; the completion callback runs with finish reason "cancelled" for the
 * unfinished samples. -1 if no such request is in flight. */
int engine_cancel(engine *e, int64_t id);

/* Ends an idle session (its KV is freed). -1 if the session has a turn in flight or is
 * unknown. */
int engine_end_session(engine *e, int64_t session_id);

/* One step. 0, or -1 with a message (backend failure, or nothing can be scheduled). */
int engine_step(engine *e);
bool engine_busy(const engine *e);
/* Steps until every request is done. */
int engine_run(engine *e);

scheduler *engine_scheduler(engine *e);
const engine_stats *engine_get_stats(const engine *e);

const char *finish_reason_name(finish_reason f);

#endif
