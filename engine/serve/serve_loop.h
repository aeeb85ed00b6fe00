/* The server's engine thread (rank 0) and the jobs it runs for the HTTP threads.
 *
 * A job is one HTTP generation request: one or more prompts (completions may send a list),
 * each an engine request with n samples, so n_sub * n choices. HTTP threads build a job,
 * submit it, and wait on its condition variable; the engine thread adds it to the engine at
 * the start of its next step, pushes every sampled token into the job's choices (the text the
 * engine made for it, cut at stop strings; what may still be cut is not streamed yet), and marks it done. The engine thread never blocks on a client: it appends under
 * the job's mutex and signals; a stream whose unsent output passes SERVE_MAX_PENDING (a client
 * that stopped reading) is cancelled.
 *
 * Ownership: a job is reference-counted (the HTTP side, the engine while it runs the job, a
 * pending cancel); job_release frees it at zero. Fields marked "fixed" are written before
 * submission and read-only after; "mu" fields are under job->mu. */
#ifndef FOLIO_SERVE_LOOP_H
#define FOLIO_SERVE_LOOP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine_loop.h"
#include "metrics.h"
#include "tokenizer.h"

#define SERVE_MAX_PENDING (4 << 20) /* unsent bytes of one stream before it is dropped */

typedef enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED } job_state;

typedef struct {
    text_buf text;               /* mu: the choice's text so far */
    int safe_len;                /* mu: bytes of text final (not part of a possible stop) */
    int32_t *ids;                /* mu: [n_tok] generated ids */
    token_logprobs *lps;         /* mu: [n_tok] when logprobs were asked for */
    int *ends;                   /* mu: [n_tok] safe_len after each token */
    int *offs;                   /* mu: [n_tok] with lps: characters of text before each token */
    int n_chars;                 /* mu: characters of text */
    int n_lead;                  /* mu: leading tokens that began the text (nothing shown before
                                  * them: the decoders' start rules applied to them) */
    int n_tok, cap;
    finish_reason finish;        /* mu */
    bool done;                   /* mu */
    double t_last;               /* engine thread only */
} serve_choice;

struct serve_job;

typedef struct {
    struct serve_job *job;
    int index;                   /* which prompt */
    int64_t req_id;              /* engine request id once added */
    bool added, done;
    int n_prompt;                /* mu: prompt tokens the engine ran for this turn */
    int n_cached;                /* mu: context tokens whose KV was reused (prefix cache or
                                  * the session's earlier turns) */
} serve_sub;

typedef struct serve_job {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;                    /* mu */
    /* fixed */
    int n_sub;
    int32_t **prompts;           /* [n_sub] owned token ids */
    int *n_prompts;              /* [n_sub] */
    request_params p;            /* owned; p.n samples per prompt */
    bool skip_special;
    bool stream;
    int max_stop_len;            /* longest stop string (bytes) */
    double t_arrival;
    /* mu */
    job_state state;
    char *error;                 /* FAILED: the message (400) */
    int subs_added, subs_done;
    bool adding;                 /* the engine thread is still adding subs */
    bool cancel;                 /* the HTTP side gave up (disconnect, overflow, shutdown) */
    bool overflow;               /* dropped: the client did not read its stream */
    size_t sent_bytes, total_bytes;
    double t_first, t_done;
    int completion_tokens;
    serve_sub *subs;             /* [n_sub] */
    serve_choice *choices;       /* [n_sub * p.n] */
    struct serve_job *next;      /* the loop's queue link (under the loop's mutex) */
} serve_job;

/* A job for n_sub prompts (the caller fills prompts / n_prompts / p / flags); refs 1. */
serve_job *job_create(int n_sub);
void job_release(serve_job *j);
static inline int job_n_choices(const serve_job *j) { return j->n_sub * j->p.n; }

typedef struct serve_loop serve_loop;

/* Creates the engine (c's on_token is set here) over be; c->codec (required) makes the text.
 * NULL with a message. */
serve_loop *serve_loop_create(const engine_config *c, engine_backend be, metrics *m);
int serve_loop_start(serve_loop *L);
/* Queues a job for the next step (takes a reference). -1 when shutting down. max_jobs > 0:
 * -2 when that many jobs are already in flight (the caller answers 429). */
int serve_loop_submit(serve_loop *L, serve_job *j, int max_jobs);
/* Cancels a job (its blocks are freed at the start of the next step). */
void serve_loop_cancel(serve_loop *L, serve_job *j);
/* Jobs submitted and not finished. */
int serve_loop_in_flight(serve_loop *L);
/* Refuses new jobs from now on. */
void serve_loop_drain(serve_loop *L);
/* Cancels every job in flight. */
void serve_loop_cancel_all(serve_loop *L);
/* Stops the thread (after the current step) and frees everything; in-flight jobs are
 * cancelled first. */
void serve_loop_free(serve_loop *L);
/* The engine failed (backend error): the message, or NULL while healthy. */
const char *serve_loop_failure(serve_loop *L);

#endif
