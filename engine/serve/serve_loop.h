/* The server's engine thread (rank 0) and the jobs it runs for the HTTP threads.
 *
 * A job is one HTTP generation request: one or more prompts (completions may send a list),
 * each an engine request with n samples, so n_sub * n choices. HTTP threads build a job,
 * submit it, wait on it (job_wait) and read its output (job_read, job_output, job_stats); the
 * job itself, and its lock, are private to serve_loop.c. The engine thread adds it to the
 * engine at the start of its next step, pushes every sampled token into the job's choices
 * (the text the engine made for it, cut at stop strings; what a stop string may still cut is
 * not streamed yet), and marks it done. The engine thread never blocks on a client: it
 * appends under the job's mutex and signals; a stream whose unsent output passes
 * SERVE_MAX_PENDING (a client that stopped reading) is cancelled.
 *
 * Session commands (DELETE /v1/sessions/{id}) take the same queue onto the engine thread, which
 * also ends sessions idle past --session-idle-timeout (looked at once a second).
 *
 * Ownership: a job is reference-counted (the HTTP side, the engine while it runs the job, a
 * pending cancel); job_release frees it at zero. */
#ifndef FOLIO_SERVE_LOOP_H
#define FOLIO_SERVE_LOOP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine_loop.h"
#include "metrics.h"

#define SERVE_MAX_PENDING (4 << 20) /* unsent bytes of one stream before it is dropped */
#define SERVE_WAIT_SLICE_MS 100     /* how often a waiting thread checks its client */
#define SERVE_EXPIRY_CHECK_S 1.0    /* how often idle sessions are looked at */

typedef enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED } job_state;

typedef struct serve_job serve_job;

/* A job for n_sub prompts (default parameters, special tokens skipped); refs 1. Its arrival
 * (for TTFT) is now. Every prompt is set before the job is submitted. */
serve_job *job_create(int n_sub);
/* Before submission: run each prompt with p (copied; p->n samples a prompt). */
void job_set_params(serve_job *j, const request_params *p, bool skip_special, bool stream);
/* Before submission: prompt i is ids[0..n) (taken). */
void job_set_prompt(serve_job *j, int i, int32_t *ids, int n);
void job_release(serve_job *j);
int job_n_choices(const serve_job *j);

/* What a waiting HTTP thread waits for: the job added to the engine (or over), the job over,
 * or output its stream has not read yet (or the job over). */
typedef enum { JOB_WAIT_ACCEPTED, JOB_WAIT_OVER, JOB_WAIT_OUTPUT } job_wait_for;

/* Waits for `until`, calling gone(user) (NULL: never gone) every SERVE_WAIT_SLICE_MS; false
 * once it says the client went away (the caller cancels). */
bool job_wait(serve_job *j, job_wait_for until, bool (*gone)(void *user), void *user);

/* Waits on cv (mu held) until signalled or SERVE_WAIT_SLICE_MS pass. */
void serve_wait_slice(pthread_cond_t *cv, pthread_mutex_t *mu);

/* Whether `until` holds now (never blocks): for an event loop that parks the client and is
 * told when to look again (job_set_notify). */
bool job_ready(serve_job *j, job_wait_for until);

/* fn(user) is called whenever the job may meet a job_wait_for it did not meet before (it is
 * accepted, has new output, is over), from the engine thread (or the one freeing the loop),
 * under the job's lock: fn must be quick and must not call back into the job. NULL detaches:
 * once that returns, fn is not running and will not run again. */
void job_set_notify(serve_job *j, void (*fn)(void *user), void *user);

/* Some of one choice's output: a whole finished choice (job_output), or one streamed piece
 * (job_read): one token and the text it made final, or the end of a choice that ended
 * without a token of its own (n_tok 0). */
typedef struct {
    int choice;                  /* index among the job's n_sub * p.n choices */
    int prompt;                  /* which prompt it continues */
    const char *text;            /* text[0..len) */
    size_t len;
    const int32_t *ids;          /* [n_tok] */
    const token_logprobs *lps;   /* [n_tok], or NULL: no logprobs asked for */
    const int *offs;             /* [n_tok] with lps: characters of the choice's text before */
    int n_tok;
    int n_lead;                  /* ids[0..n_lead) began the text */
    int top_logprobs;            /* alternatives per token (p.logprobs) */
    bool done;                   /* the choice ends here; finish says why */
    finish_reason finish;
} serve_output;

/* The stream's reader: hands fn (under the job's lock; fn must not call back into the job)
 * each piece not read yet, choice by choice, and marks it read. 1: the job is over and all of
 * it was read; 0: more may come; -1: the stream was dropped (the client did not read it). */
int job_read(serve_job *j, void (*fn)(void *user, const serve_output *piece), void *user);

/* Choice i of a job that is over (JOB_DONE): pointers into the job, valid while it is held. */
void job_output(serve_job *j, int i, serve_output *out);

typedef struct {
    job_state state;
    int prompt_tokens;           /* the engine ran (a prompt it never ran counts 0) */
    int prompt_len;              /* the same, a prompt never run counted at its length */
    int cached_tokens;           /* context tokens whose KV was reused */
    int completion_tokens;
    double ttft_s;               /* arrival to the first token; < 0 before it */
    bool first_done;             /* choice 0 is over, ended by first_finish */
    finish_reason first_finish;
} serve_stats;

/* A snapshot of the job's counts. */
void job_stats(serve_job *j, serve_stats *st);
/* JOB_FAILED: its message (malloc'd) and, status not NULL, its HTTP status (400; 404 for a
 * session that ended, 429 for one more session than --max-sessions); else NULL. */
char *job_failure(serve_job *j, int *status);

typedef struct serve_loop serve_loop;

/* Creates the engine (c's on_token is set here) over be; c->codec (required) makes the text.
 * NULL with a message. */
serve_loop *serve_loop_create(const engine_config *c, engine_backend be, metrics *m);
int serve_loop_start(serve_loop *L);
/* What may be in flight at once (submitted, not finished), counted over every job's
 * sequences: prompts x n, and their tokens: (prompt + max_tokens) x n. 0: no limit. A job is
 * always admitted when nothing else is in flight. */
typedef struct {
    int64_t max_seqs;            /* --max-num-seqs + --max-queue */
    int64_t max_tokens;          /* --max-queue-tokens */
} serve_admission;

/* The sequences and the token budget (prompt + max_tokens, each sequence) of a job whose
 * prompts and parameters are set. */
void job_cost(const serve_job *j, int64_t *seqs, int64_t *tokens);

/* Queues a job for the next step (takes a reference). -1 when shutting down; with lim (NULL:
 * no limit) -2 when its sequences would pass lim->max_seqs, -3 when its tokens would pass
 * lim->max_tokens (the caller answers 429). */
int serve_loop_submit(serve_loop *L, serve_job *j, const serve_admission *lim);
/* Sequences and tokens in flight now (as counted by serve_loop_submit). */
void serve_loop_load(serve_loop *L, int64_t *seqs, int64_t *tokens);
/* Ends an idle session on the engine thread (DELETE /v1/sessions/{id}); blocks until the
 * engine thread has done it (it takes it up between steps). 0, or one of the codes below with
 * *message (malloc'd). */
#define SERVE_SESSION_UNKNOWN -1    /* no such session (the message says if it ended) */
#define SERVE_SESSION_BUSY -2       /* a turn is in flight */
#define SERVE_SESSION_SHUTDOWN -3   /* the engine thread has stopped */
int serve_loop_end_session(serve_loop *L, int64_t session_id, char **message);
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
/* Whether the engine has stopped making progress while requests are in flight (for /health):
 * the step in progress has run longer than its stall limit (step_watchdog_progress:
 * FOLIO_HEALTH_STALL seconds, or 5 x the step's measured time if longer), or the engine
 * thread has run no step and taken up no work for FOLIO_HEALTH_STALL seconds. true with the
 * reason in why[0..n). */
bool serve_loop_stalled(serve_loop *L, char *why, size_t n);

#endif
