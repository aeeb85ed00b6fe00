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
 * prompt, and it reuses the KV the earlier turn left. A session ends when a turn with
 * end_session ends, by engine_end_session, or by engine_expire_sessions once it has been idle
 * longer than session_idle_s; the ids of the last ENGINE_ENDED_SESSIONS ended sessions are
 * remembered, and a turn naming one fails (ENGINE_ESESSION_ENDED) instead of silently starting
 * a new conversation. Older ended ids start a new session. */
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
    double session_idle_s;       /* sessions idle longer end (engine_expire_sessions); 0: never */
    int max_sessions;            /* sessions at once; a turn starting one more fails with
                                  * ENGINE_ESESSION_CAP (0: no cap) */
    double (*clock)(void);       /* seconds, for sessions' idle times; NULL: folio_now */
} engine_config;

/* Failures of engine_add (and a request's error_code) beyond -1 (a bad request). */
#define ENGINE_ESESSION_ENDED -2 /* the session named was ended (or expired) */
#define ENGINE_ESESSION_CAP -3   /* a new session would pass max_sessions */
#define ENGINE_ESESSION_BUSY -4  /* engine_end_session: a turn is in flight */
#define ENGINE_ENDED_SESSIONS 4096   /* ended session ids remembered */

/* Why a session ended (engine_stats.sessions_ended). */
typedef enum { SESSION_END_CLIENT, SESSION_END_EXPIRED, SESSION_END_REASONS } session_end_reason;

typedef struct request {
    int64_t id;
    void *tag;                   /* the caller's */
    int32_t *prompt;             /* [n_prompt] this turn's prompt (owned) */
    int n_prompt;
    request_params p;
    sequence **seqs;             /* [n] the samples (seqs[0] alone until the fork) */
    int n_seqs, n_done;
    char *error;                 /* a turn that could not start (owned), else NULL */
    int error_code;              /* with error: -1 or an ENGINE_E* code */
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
    double cpu_s;                /* rank-0 time in steps, outside the backend: */
    double plan_s;               /*   scheduling and the step's plan */
    double token_s;              /*   the sampled tokens: stop checks, text, on_token */
    double backend_s;
    int64_t prompt_steps;        /* steps carrying prompt tokens (more tokens than sequences: */
    double prompt_backend_s;     /*   prefill chunks, alone or beside decodes), their backend */
    int sessions;                /* live: parked, or a first turn in flight */
    int64_t sessions_ended[SESSION_END_REASONS];
} engine_stats;

typedef struct engine engine;

/* Validates c (sched_config_validate) and creates the engine. NULL with a message. */
engine *engine_create(const engine_config *c, engine_backend be, request_done_fn done,
                      void *user);
void engine_free(engine *e);

/* Adds a request (copies prompt and p). Checks the parameters and that the context fits
 * max_model_len: -1 with a message naming the field, nothing added; a session turn also
 * ENGINE_ESESSION_ENDED (the session was ended) or ENGINE_ESESSION_CAP (a new session beyond
 * max_sessions). *id: the request id. */
int engine_add(engine *e, const int32_t *prompt, int n_prompt, const request_params *p,
               void *tag, int64_t *id);

/* The check engine_add makes of a context of n_ctx tokens (a session turn's: its history and
 * prompt) and max_tokens against max_len: 0, or -1 with a message naming max_tokens. */
int engine_check_length(int max_len, int n_ctx, int max_tokens);

/* Cancels a request at any point between steps: its sequences leave the queues and free
 * their blocks now; the completion callback runs with finish reason "cancelled" for the
 * unfinished samples. -1 if no such request is in flight. */
int engine_cancel(engine *e, int64_t id);

/* Ends an idle session (its KV and history are freed; reason SESSION_END_CLIENT). 0;
 * ENGINE_ESESSION_BUSY if it has a turn in flight; -1 if it is unknown (the message says
 * whether it ended, and how). */
int engine_end_session(engine *e, int64_t session_id);
/* Ends the sessions idle (no turn in flight) for more than session_idle_s, the oldest first:
 * O(1) when none is due. Returns how many ended. */
int engine_expire_sessions(engine *e);

/* One step. 0, or -1 with a message (backend failure, or nothing can be scheduled). */
int engine_step(engine *e);
bool engine_busy(const engine *e);
/* Steps until every request is done. */
int engine_run(engine *e);

scheduler *engine_scheduler(engine *e);
const engine_stats *engine_get_stats(const engine *e);

const char *finish_reason_name(finish_reason f);

#endif
