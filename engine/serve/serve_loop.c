/* The engine thread of `folio serve`: a queue of jobs and cancellations from the HTTP
 * threads, engine steps, and per-token text pushed into each job's choices; the jobs
 * themselves, whose lock no other file takes (the HTTP side waits and reads through the
 * job_ functions). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "grow.h"
#include "progress.h"
#include "serve_loop.h"
#include "step_watchdog.h"
#include "tokenizer.h"
#include "utf8.h"

/* A job's fields marked "fixed" are written before submission and read-only after; "mu"
 * fields are under job->mu. */
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
    int read_tok, read_len;      /* mu: tokens and text bytes the stream's reader has taken */
    bool read_final;             /* mu: the reader has taken the end */
    double t_last;               /* engine thread only */
} serve_choice;

typedef struct {
    struct serve_job *job;
    int index;                   /* which prompt */
    int64_t req_id;              /* engine request id once added */
    bool added, done;
    int n_prompt;                /* mu: prompt tokens the engine ran for this turn */
    int n_cached;                /* mu: context tokens whose KV was reused (prefix cache or
                                  * the session's earlier turns) */
} serve_sub;

struct serve_job {
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
    double t_arrival;
    int64_t cost_seqs, cost_tokens;   /* what serve_loop_submit counted */
    /* mu */
    void (*notify)(void *user);  /* job_set_notify */
    void *notify_user;
    job_state state;
    char *error;                 /* FAILED: the message */
    int error_status;            /* FAILED: the HTTP status (400, 404, 429) */
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
};

/* A DELETE /v1/sessions/{id} on its way to the engine thread (on the waiting thread's stack). */
typedef struct session_cmd {
    int64_t id;
    int rc;                      /* SERVE_SESSION_* (written before done) */
    char *message;               /* its message when it failed (malloc'd; before done) */
    bool done;                   /* mu: rc and message are final */
    struct session_cmd *next;
} session_cmd;

struct serve_loop {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_cond_t cmd_cv;       /* a session command was answered */
    serve_job *head, *tail;      /* mu: submitted, not yet added */
    session_cmd *cmds;           /* mu: session commands, not yet run */
    serve_job **cancels;         /* mu: jobs to cancel (each holds a reference) */
    int n_cancels, cap_cancels;
    bool draining, quit, cancel_all;   /* mu */
    int in_flight;               /* mu: jobs */
    int64_t seqs_in_flight, tokens_in_flight;   /* mu: their job_cost */
    char *failure;               /* mu */
    bool idle;                   /* mu: the engine thread waits for work */
    double beat;                 /* mu: when the engine thread last took up its queue */
    pthread_t thread;
    bool started;
    /* engine thread only */
    engine *e;
    metrics *m;
    serve_job **running;         /* jobs added to the engine and not finished */
    int n_running, cap_running;
    serve_job **overflowed;      /* streams to drop after this step */
    int n_overflowed, cap_overflowed;
    double last_step_s;
    double loop_s;               /* engine thread's time around the steps while they ran
                                  * back to back (admission, cancels, metrics) */
    double session_idle_s;       /* engine_config's: 0, no expiry */
    double last_expiry;          /* when idle sessions were last looked at */
};

/* ---- jobs ---- */

serve_job *job_create(int n_sub) {
    serve_job *j = folio_xcalloc(1, sizeof *j);
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->refs = 1;
    j->n_sub = n_sub;
    j->prompts = folio_xcalloc(n_sub, sizeof *j->prompts);
    j->n_prompts = folio_xcalloc(n_sub, sizeof *j->n_prompts);
    j->subs = folio_xcalloc(n_sub, sizeof *j->subs);
    request_params_init(&j->p);
    j->skip_special = true;
    j->t_arrival = folio_now();
    return j;
}

void job_set_params(serve_job *j, const request_params *p, bool skip_special, bool stream) {
    request_params_free(&j->p);
    request_params_copy(&j->p, p);
    j->skip_special = skip_special;
    j->stream = stream;
}

void job_set_prompt(serve_job *j, int i, int32_t *ids, int n) {
    free(j->prompts[i]);
    j->prompts[i] = ids;
    j->n_prompts[i] = n;
}

int job_n_choices(const serve_job *j) { return j->n_sub * j->p.n; }

static void job_free(serve_job *j) {
    for (int i = 0; j->choices && i < job_n_choices(j); i++) {
        serve_choice *c = &j->choices[i];
        text_buf_free(&c->text);
        free(c->ids);
        free(c->lps);
        free(c->ends);
        free(c->offs);
    }
    free(j->choices);
    for (int i = 0; i < j->n_sub; i++) free(j->prompts[i]);
    free(j->prompts);
    free(j->n_prompts);
    free(j->subs);
    free(j->error);
    request_params_free(&j->p);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

void job_release(serve_job *j) {
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    int left = --j->refs;
    pthread_mutex_unlock(&j->mu);
    if (left == 0) job_free(j);
}

static void job_ref(serve_job *j) {
    pthread_mutex_lock(&j->mu);
    j->refs++;
    pthread_mutex_unlock(&j->mu);
}

/* With j->mu held, after a change a waiter may be looking for: wakes job_wait and calls the
 * notifier. */
static void job_changed(serve_job *j) {
    pthread_cond_broadcast(&j->cv);
    if (j->notify) j->notify(j->notify_user);
}

void job_set_notify(serve_job *j, void (*fn)(void *user), void *user) {
    pthread_mutex_lock(&j->mu);
    j->notify = fn;
    j->notify_user = user;
    pthread_mutex_unlock(&j->mu);
}

void job_cost(const serve_job *j, int64_t *seqs, int64_t *tokens) {
    *seqs = (int64_t)j->n_sub * j->p.n;
    *tokens = 0;
    for (int i = 0; i < j->n_sub; i++)
        *tokens += ((int64_t)j->n_prompts[i] + j->p.max_tokens) * j->p.n;
}

/* ---- the HTTP side: waiting and reading ---- */

static bool job_over(const serve_job *j) { return j->state == JOB_DONE || j->state == JOB_FAILED; }

/* With j->mu held, once the job was accepted: output the reader has not taken, or the end. */
static bool has_unread(const serve_job *j) {
    if (job_over(j)) return true;
    for (int i = 0; i < job_n_choices(j); i++) {
        const serve_choice *c = &j->choices[i];
        if (c->read_tok < c->n_tok || (c->done && !c->read_final)) return true;
    }
    return false;
}

static bool wait_met(const serve_job *j, job_wait_for until) {
    switch (until) {
    case JOB_WAIT_ACCEPTED: return job_over(j) || (j->state == JOB_RUNNING && !j->adding);
    case JOB_WAIT_OVER: return job_over(j);
    default: return has_unread(j);
    }
}

void serve_wait_slice(pthread_cond_t *cv, pthread_mutex_t *mu) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += SERVE_WAIT_SLICE_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(cv, mu, &ts);
}

bool job_wait(serve_job *j, job_wait_for until, bool (*gone)(void *user), void *user) {
    pthread_mutex_lock(&j->mu);
    while (!wait_met(j, until)) {
        serve_wait_slice(&j->cv, &j->mu);
        if (wait_met(j, until)) break;
        pthread_mutex_unlock(&j->mu);
        if (gone && gone(user)) return false;
        pthread_mutex_lock(&j->mu);
    }
    pthread_mutex_unlock(&j->mu);
    return true;
}

bool job_ready(serve_job *j, job_wait_for until) {
    pthread_mutex_lock(&j->mu);
    bool met = wait_met(j, until);
    pthread_mutex_unlock(&j->mu);
    return met;
}

/* Hands fn the pieces of choice i the reader has not taken (j->mu held). */
static void read_choice(serve_job *j, int i, void (*fn)(void *, const serve_output *),
                        void *user) {
    serve_choice *c = &j->choices[i];
    bool lp = j->p.logprobs >= 0 && c->lps;
    serve_output o = {.choice = i, .prompt = i / j->p.n, .top_logprobs = j->p.logprobs,
                      .finish = c->finish, .n_tok = 1};
    while (c->read_tok < c->n_tok) {
        int k = c->read_tok;
        bool last = c->done && k == c->n_tok - 1;
        int end = last ? c->safe_len : c->ends[k];
        if (end > c->safe_len) end = c->safe_len;
        if (end < c->read_len) end = c->read_len;
        o.text = (c->text.s ? c->text.s : "") + c->read_len; /* NULL: no text yet */
        o.len = (size_t)(end - c->read_len);
        o.ids = &c->ids[k];
        o.lps = lp ? &c->lps[k] : NULL;
        o.offs = lp ? &c->offs[k] : NULL;
        o.n_lead = c->n_lead - k;
        o.done = last;
        fn(user, &o);
        j->sent_bytes += o.len;
        c->read_len = end;
        c->read_tok++;
        if (last) c->read_final = true;
    }
    if (c->done && !c->read_final) { /* finished without a token of its own */
        o = (serve_output){.choice = i, .prompt = i / j->p.n, .text = "",
                           .top_logprobs = j->p.logprobs, .done = true, .finish = c->finish};
        fn(user, &o);
        c->read_final = true;
    }
}

int job_read(serve_job *j, void (*fn)(void *user, const serve_output *piece), void *user) {
    pthread_mutex_lock(&j->mu);
    int rc = -1;
    if (!j->overflow) {
        for (int i = 0; i < job_n_choices(j); i++) read_choice(j, i, fn, user);
        rc = job_over(j) ? 1 : 0;
    }
    pthread_mutex_unlock(&j->mu);
    return rc;
}

void job_output(serve_job *j, int i, serve_output *out) {
    pthread_mutex_lock(&j->mu);
    const serve_choice *c = &j->choices[i];
    *out = (serve_output){.choice = i, .prompt = i / j->p.n, .text = c->text.s ? c->text.s : "",
                          .len = c->text.len, .ids = c->ids,
                          .lps = j->p.logprobs >= 0 ? c->lps : NULL, .offs = c->offs,
                          .n_tok = c->n_tok, .n_lead = c->n_lead, .top_logprobs = j->p.logprobs,
                          .done = c->done, .finish = c->finish};
    pthread_mutex_unlock(&j->mu);
}

void job_stats(serve_job *j, serve_stats *st) {
    pthread_mutex_lock(&j->mu);
    *st = (serve_stats){.state = j->state, .completion_tokens = j->completion_tokens,
                        .ttft_s = j->t_first > 0 ? j->t_first - j->t_arrival : -1};
    for (int i = 0; i < j->n_sub; i++) {
        const serve_sub *s = &j->subs[i];
        st->prompt_tokens += s->n_prompt;
        st->prompt_len += s->n_prompt ? s->n_prompt : j->n_prompts[i];
        st->cached_tokens += s->n_cached;
    }
    if (j->choices && job_n_choices(j) > 0 && j->choices[0].done) {
        st->first_done = true;
        st->first_finish = j->choices[0].finish;
    }
    pthread_mutex_unlock(&j->mu);
}

char *job_failure(serve_job *j, int *status) {
    pthread_mutex_lock(&j->mu);
    char *m = j->state == JOB_FAILED ? folio_xstrdup(j->error ? j->error : "failed") : NULL;
    if (status) *status = j->error_status ? j->error_status : 400;
    pthread_mutex_unlock(&j->mu);
    return m;
}

/* The HTTP status of an engine failure code (engine_add's, a request's error_code). */
static int status_of(int engine_rc) {
    switch (engine_rc) {
    case ENGINE_ESESSION_ENDED: return 404;
    case ENGINE_ESESSION_CAP: return 429;
    default: return 400;
    }
}

/* ---- engine callbacks (engine thread) ---- */

static void push_ptr(serve_job ***arr, int *n, int *cap, serve_job *j) {
    FOLIO_GROW(*arr, *cap, *n + 1);
    (*arr)[(*n)++] = j;
}

/* The engine makes the text (and cuts it at stop strings): text[0..n_text) is what this token
 * added to the choice's text, q->text_safe how much of it is final so far. */
static void on_token(const request *r, const sequence *q, const char *text, int n_text,
                     finish_reason why, void *user) {
    serve_loop *L = user;
    serve_sub *sub = r->tag;
    serve_job *j = sub->job;
    serve_choice *c = &j->choices[sub->index * j->p.n + q->sample];
    int32_t t = q->tokens[q->n_tokens - 1];
    double now = folio_now();
    bool first = false, drop = false;
    pthread_mutex_lock(&j->mu);
    int chars_before = c->n_chars;
    if (n_text) {
        text_buf_append(&c->text, text, (size_t)n_text);
        c->n_chars += (int)utf8_count(text, (size_t)n_text);
    }
    if (c->n_tok == c->cap) {
        c->cap = (int)folio_grow_cap((size_t)c->cap, (size_t)c->n_tok + 1);
        c->ids = folio_xrealloc(c->ids, sizeof *c->ids * c->cap);
        c->ends = folio_xrealloc(c->ends, sizeof *c->ends * c->cap);
        if (r->p.logprobs >= 0) {
            c->lps = folio_xrealloc(c->lps, sizeof *c->lps * c->cap);
            c->offs = folio_xrealloc(c->offs, sizeof *c->offs * c->cap);
        }
    }
    c->ids[c->n_tok] = t;
    c->n_lead = q->n_lead;
    if (r->p.logprobs >= 0 && q->logprobs) {
        c->lps[c->n_tok] = q->logprobs[sequence_generated(q) - 1];
        c->offs[c->n_tok] = chars_before;
    }
    if (c->text.s && (int)c->text.len > q->text_len) { /* cut before a stop string */
        c->text.len = (size_t)q->text_len;
        c->text.s[c->text.len] = '\0';
    }
    c->safe_len = q->text_safe;
    if (why != FINISH_NONE) {
        c->finish = why;
        c->done = true;
    }
    c->ends[c->n_tok++] = c->safe_len;
    j->total_bytes += (size_t)n_text;
    j->completion_tokens++;
    if (j->t_first == 0) {
        j->t_first = now;
        first = true;
    }
    if (j->stream && !j->overflow && j->total_bytes > j->sent_bytes + SERVE_MAX_PENDING) {
        j->overflow = true;
        drop = true;
    }
    job_changed(j);
    pthread_mutex_unlock(&j->mu);
    if (first) {
        metrics_observe(L->m, HIST_TTFT, now - j->t_arrival);
        double queued = now - j->t_arrival - L->last_step_s;
        metrics_observe(L->m, HIST_QUEUE, queued > 0 ? queued : 0);
    } else if (c->t_last > 0) {
        metrics_observe(L->m, HIST_ITL, now - c->t_last);
    }
    c->t_last = now;
    if (drop) push_ptr(&L->overflowed, &L->n_overflowed, &L->cap_overflowed, j);
}

static void running_remove(serve_loop *L, serve_job *j) {
    for (int i = 0; i < L->n_running; i++)
        if (L->running[i] == j) {
            L->running[i] = L->running[--L->n_running];
            return;
        }
}

/* With j->mu held: true when every added sub is done and no more will be added. */
static bool job_finished_locked(serve_job *j) {
    return !j->adding && j->subs_done == j->subs_added &&
           (j->state == JOB_QUEUED || j->state == JOB_RUNNING);
}

/* The engine's part of j is over: mark it, wake the HTTP side, drop the engine's reference. */
static void job_finish(serve_loop *L, serve_job *j) {
    pthread_mutex_lock(&j->mu);
    j->state = j->error ? JOB_FAILED : JOB_DONE;
    j->t_done = folio_now();
    job_changed(j);
    pthread_mutex_unlock(&j->mu);
    if (!j->error) metrics_observe(L->m, HIST_E2E, j->t_done - j->t_arrival);
    running_remove(L, j);
    pthread_mutex_lock(&L->mu);
    L->in_flight--;
    L->seqs_in_flight -= j->cost_seqs;
    L->tokens_in_flight -= j->cost_tokens;
    pthread_mutex_unlock(&L->mu);
    job_release(j);
}

static void on_done(const request *r, void *user) {
    serve_loop *L = user;
    serve_sub *sub = r->tag;
    serve_job *j = sub->job;
    int generated = 0;
    const char *why = "abort";
    pthread_mutex_lock(&j->mu);
    if (r->error && !j->error) {
        j->error = folio_xstrdup(r->error);
        j->error_status = status_of(r->error_code);
    }
    sub->n_prompt = r->n_prompt;
    sub->n_cached = r->n_seqs > 0 && r->seqs[0] && r->seqs[0]->n_cached > 0
                        ? r->seqs[0]->n_cached : 0;
    sub->done = true;
    for (int i = 0; i < j->p.n; i++) {
        serve_choice *c = &j->choices[sub->index * j->p.n + i];
        generated += c->n_tok;
        if (!c->done) {
            c->done = true;
            c->finish = FINISH_CANCELLED;
        }
        if (i == 0 || c->finish != FINISH_CANCELLED) why = finish_reason_name(c->finish);
    }
    j->subs_done++;
    bool finished = job_finished_locked(j);
    job_changed(j);
    pthread_mutex_unlock(&j->mu);
    if (!r->error)
        metrics_request_done(L->m, r->n_prompt, generated,
                             strcmp(why, "cancelled") == 0 ? "abort" : why);
    if (finished) job_finish(L, j);
}

/* ---- the loop ---- */

serve_loop *serve_loop_create(const engine_config *c, engine_backend be, metrics *m) {
    if (!c->codec) {
        folio_fail("serve: the engine needs a text codec (the tokenizer)");
        return NULL;
    }
    serve_loop *L = folio_xcalloc(1, sizeof *L);
    engine_config ec = *c;
    ec.on_token = on_token;
    L->e = engine_create(&ec, be, on_done, L);
    if (!L->e) {
        free(L);
        return NULL;
    }
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->cv, NULL);
    pthread_cond_init(&L->cmd_cv, NULL);
    L->session_idle_s = c->session_idle_s;
    L->m = m;
    return L;
}

/* Adds a job's prompts to the engine; a failure fails the job (400) and cancels what was
 * added. */
static void add_job(serve_loop *L, serve_job *j) {
    int n = job_n_choices(j);
    pthread_mutex_lock(&j->mu);
    j->choices = folio_xcalloc(n, sizeof *j->choices);
    j->adding = true;
    j->state = JOB_RUNNING;
    bool cancelled = j->cancel;
    pthread_mutex_unlock(&j->mu);
    push_ptr(&L->running, &L->n_running, &L->cap_running, j);
    char *err = NULL;
    int added = 0, err_status = 0;
    for (int i = 0; i < j->n_sub && !cancelled; i++) {
        serve_sub *s = &j->subs[i];
        s->job = j;
        s->index = i;
        int rc = engine_add(L->e, j->prompts[i], j->n_prompts[i], &j->p, s, &s->req_id);
        if (rc != 0) {
            err = folio_xstrdup(folio_last_error());
            err_status = status_of(rc);
            break;
        }
        s->added = true;
        added++;
        pthread_mutex_lock(&j->mu);
        j->subs_added++;
        pthread_mutex_unlock(&j->mu);
    }
    if (err)
        for (int i = 0; i < added; i++)
            if (!j->subs[i].done) engine_cancel(L->e, j->subs[i].req_id);
    pthread_mutex_lock(&j->mu);
    if (err && !j->error) {
        j->error = err;
        j->error_status = err_status;
    } else {
        free(err);
    }
    j->adding = false;
    bool finished = job_finished_locked(j);
    job_changed(j); /* accepted */
    pthread_mutex_unlock(&j->mu);
    if (finished) job_finish(L, j);
}

static void cancel_job(serve_loop *L, serve_job *j) {
    for (int i = 0; i < L->n_running; i++)
        if (L->running[i] == j) {
            for (int k = 0; k < j->n_sub; k++)
                if (j->subs[k].added && !j->subs[k].done) engine_cancel(L->e, j->subs[k].req_id);
            return;
        }
}

static void publish_metrics(serve_loop *L) {
    scheduler *s = engine_scheduler(L->e);
    block_manager *bm = sched_blocks(s);
    const sched_stats *st = sched_get_stats(s);
    metrics_engine me = {.running = sched_num_running(s), .waiting = sched_num_waiting(s),
                         .kv_blocks_total = bm_num_blocks(bm),
                         .kv_blocks_used = bm_num_blocks(bm) - bm_num_available(bm),
                         .prefix_queries = st->prompt_tokens, .prefix_hits = st->cached_tokens,
                         .preemptions = st->preemptions, .steps = st->steps};
    const engine_stats *es = engine_get_stats(L->e);
    me.sessions = es->sessions;
    me.sessions_ended_client = es->sessions_ended[SESSION_END_CLIENT];
    me.sessions_ended_expired = es->sessions_ended[SESSION_END_EXPIRED];
    me.kv_usage = me.kv_blocks_total ? (double)me.kv_blocks_used / me.kv_blocks_total : 0;
    me.backend_s = es->backend_s;
    me.plan_s = es->plan_s;
    me.token_s = es->token_s;
    me.loop_s = L->loop_s;
    me.prompt_steps = es->prompt_steps;
    me.prompt_backend_s = es->prompt_backend_s;
    metrics_set_engine(L->m, &me);
}

/* Answers the session commands in list (the engine thread; quit: all refused). A waiting
 * thread returns, and its command (on its stack) goes, once it sees done: so every command is
 * finished, its result written, before done is set for any, all under the lock. */
static void run_session_cmds(serve_loop *L, session_cmd *list, bool quit) {
    if (!list) return;
    for (session_cmd *c = list; c; c = c->next) {
        int rc = quit ? -1 : engine_end_session(L->e, c->id);
        c->message = rc == 0 ? NULL : folio_xstrdup(quit ? "the server is shutting down"
                                                         : folio_last_error());
        c->rc = quit ? SERVE_SESSION_SHUTDOWN
                : rc == 0 ? 0 : rc == ENGINE_ESESSION_BUSY ? SERVE_SESSION_BUSY
                : SERVE_SESSION_UNKNOWN;
    }
    pthread_mutex_lock(&L->mu);
    for (session_cmd *c = list, *next; c; c = next) {
        next = c->next;
        c->done = true;
    }
    pthread_cond_broadcast(&L->cmd_cv);
    pthread_mutex_unlock(&L->mu);
}

/* Idle sessions past --session-idle-timeout end: looked at once a second (O(1) when none is
 * due). */
static void expire_sessions(serve_loop *L) {
    if (L->session_idle_s <= 0) return;
    double now = folio_now();
    if (now - L->last_expiry < SERVE_EXPIRY_CHECK_S) return;
    L->last_expiry = now;
    engine_expire_sessions(L->e);
}

/* With L->mu held: waits for work; while sessions may expire, at most a check's interval. */
static void wait_for_work(serve_loop *L) {
    while (!L->head && !L->cmds && L->n_cancels == 0 && !L->quit && !L->cancel_all &&
           !L->failure && !engine_busy(L->e)) {
        if (L->session_idle_s <= 0 || engine_get_stats(L->e)->sessions == 0) {
            pthread_cond_wait(&L->cv, &L->mu);
            continue;
        }
        double due = L->last_expiry + SERVE_EXPIRY_CHECK_S, now = folio_now();
        if (due <= now) return;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double at = (double)ts.tv_sec + ts.tv_nsec * 1e-9 + (due - now);
        ts.tv_sec = (time_t)at;
        ts.tv_nsec = (long)((at - (double)ts.tv_sec) * 1e9);
        pthread_cond_timedwait(&L->cv, &L->mu, &ts);
    }
}

static void *loop_main(void *arg) {
    serve_loop *L = arg;
    publish_metrics(L);
    L->last_expiry = folio_now();
    for (;;) {
        pthread_mutex_lock(&L->mu);
        L->idle = true;
        wait_for_work(L);
        L->idle = false;
        const double t_iter = folio_now();
        bool stepped = false;
        session_cmd *cmds = L->cmds;
        L->cmds = NULL;
        L->beat = folio_now();
        serve_job *list = L->head;
        L->head = L->tail = NULL;
        int nc = L->n_cancels;
        serve_job **cancels = NULL;
        if (nc) {
            cancels = folio_xmalloc(sizeof *cancels * nc);
            memcpy(cancels, L->cancels, sizeof *cancels * nc);
            L->n_cancels = 0;
        }
        bool quit = L->quit, all = L->cancel_all || L->quit || L->failure;
        L->cancel_all = false;
        pthread_mutex_unlock(&L->mu);
        while (list) {
            serve_job *next = list->next;
            list->next = NULL;
            add_job(L, list);
            list = next;
        }
        run_session_cmds(L, cmds, false);
        for (int i = 0; i < nc; i++) {
            cancel_job(L, cancels[i]);
            job_release(cancels[i]);
        }
        free(cancels);
        if (all)
            while (L->n_running > 0) {
                int before = L->n_running;
                cancel_job(L, L->running[L->n_running - 1]);
                if (L->n_running == before) break; /* should not happen */
            }
        if (quit) break;
        expire_sessions(L);
        if (engine_busy(L->e)) {
            double t0 = folio_now();
            if (engine_step(L->e) != 0) {
                pthread_mutex_lock(&L->mu);
                L->failure = folio_xstrdup(folio_last_error());
                pthread_mutex_unlock(&L->mu);
                fprintf(stderr, "folio: error: engine step failed: %s\n", L->failure);
            }
            L->last_step_s = folio_now() - t0;
            for (int i = 0; i < L->n_overflowed; i++) cancel_job(L, L->overflowed[i]);
            L->n_overflowed = 0;
            stepped = true;
        }
        publish_metrics(L);
        if (stepped) L->loop_s += folio_now() - t_iter - L->last_step_s;
    }
    pthread_mutex_lock(&L->mu);
    session_cmd *late = L->cmds;
    L->cmds = NULL;
    pthread_mutex_unlock(&L->mu);
    run_session_cmds(L, late, true);
    publish_metrics(L);
    return NULL;
}

int serve_loop_start(serve_loop *L) {
    L->beat = folio_now();
    if (pthread_create(&L->thread, NULL, loop_main, L) != 0)
        return folio_fail("serve: cannot start the engine thread");
    L->started = true;
    return 0;
}

int serve_loop_submit(serve_loop *L, serve_job *j, const serve_admission *lim) {
    job_cost(j, &j->cost_seqs, &j->cost_tokens);
    pthread_mutex_lock(&L->mu);
    int rc = 0;
    if (L->draining || L->quit || L->failure) rc = -1;
    else if (lim && L->in_flight > 0 && lim->max_seqs > 0 &&
             L->seqs_in_flight + j->cost_seqs > lim->max_seqs)
        rc = -2;
    else if (lim && L->in_flight > 0 && lim->max_tokens > 0 &&
             L->tokens_in_flight + j->cost_tokens > lim->max_tokens)
        rc = -3;
    if (rc != 0) {
        pthread_mutex_unlock(&L->mu);
        return rc;
    }
    job_ref(j);
    L->in_flight++;
    L->seqs_in_flight += j->cost_seqs;
    L->tokens_in_flight += j->cost_tokens;
    if (L->tail) L->tail->next = j;
    else L->head = j;
    L->tail = j;
    pthread_cond_signal(&L->cv);
    pthread_mutex_unlock(&L->mu);
    return 0;
}

void serve_loop_cancel(serve_loop *L, serve_job *j) {
    pthread_mutex_lock(&j->mu);
    bool already = j->cancel || j->state == JOB_DONE || j->state == JOB_FAILED;
    j->cancel = true;
    pthread_mutex_unlock(&j->mu);
    if (already) return;
    job_ref(j);
    pthread_mutex_lock(&L->mu);
    push_ptr(&L->cancels, &L->n_cancels, &L->cap_cancels, j);
    pthread_cond_signal(&L->cv);
    pthread_mutex_unlock(&L->mu);
}

int serve_loop_end_session(serve_loop *L, int64_t session_id, char **message) {
    session_cmd c = {.id = session_id};
    *message = NULL;
    pthread_mutex_lock(&L->mu);
    if (L->quit || !L->started) {
        pthread_mutex_unlock(&L->mu);
        *message = folio_xstrdup("the server is shutting down");
        return SERVE_SESSION_SHUTDOWN;
    }
    c.next = L->cmds;
    L->cmds = &c;
    pthread_cond_signal(&L->cv);
    while (!c.done) pthread_cond_wait(&L->cmd_cv, &L->mu);
    pthread_mutex_unlock(&L->mu);
    *message = c.message;
    return c.rc;
}

void serve_loop_load(serve_loop *L, int64_t *seqs, int64_t *tokens) {
    pthread_mutex_lock(&L->mu);
    *seqs = L->seqs_in_flight;
    *tokens = L->tokens_in_flight;
    pthread_mutex_unlock(&L->mu);
}

int serve_loop_in_flight(serve_loop *L) {
    pthread_mutex_lock(&L->mu);
    int n = L->in_flight;
    pthread_mutex_unlock(&L->mu);
    return n;
}

void serve_loop_drain(serve_loop *L) {
    pthread_mutex_lock(&L->mu);
    L->draining = true;
    pthread_mutex_unlock(&L->mu);
}

void serve_loop_cancel_all(serve_loop *L) {
    pthread_mutex_lock(&L->mu);
    L->cancel_all = true;
    pthread_cond_signal(&L->cv);
    pthread_mutex_unlock(&L->mu);
}

const char *serve_loop_failure(serve_loop *L) {
    pthread_mutex_lock(&L->mu);
    const char *f = L->failure;
    pthread_mutex_unlock(&L->mu);
    return f;
}

bool serve_loop_stalled(serve_loop *L, char *why, size_t n) {
    pthread_mutex_lock(&L->mu);
    const int pending = L->in_flight;
    const bool waiting = L->idle || !L->started || L->failure;
    const double beat = L->beat;
    pthread_mutex_unlock(&L->mu);
    if (pending == 0 || waiting) return false;
    step_progress p;
    step_watchdog_progress(&p);
    if (p.in_step && p.ran_s > p.stall_s) {
        snprintf(why, n, "the engine has made no progress for %.1f s: step %lld is still running "
                         "(stalled after %.1f s) with %d request%s in flight", p.ran_s, p.step,
                 p.stall_s, pending, pending == 1 ? "" : "s");
        return true;
    }
    double idle = folio_now() - beat;
    if (p.since_step_s < idle) idle = p.since_step_s;
    if (p.in_step || idle <= p.health_floor_s) return false;
    snprintf(why, n, "the engine has made no progress for %.1f s (no step running) with %d "
                     "request%s in flight", idle, pending, pending == 1 ? "" : "s");
    return true;
}

void serve_loop_free(serve_loop *L) {
    if (!L) return;
    if (L->started) {
        pthread_mutex_lock(&L->mu);
        L->quit = true;
        pthread_cond_signal(&L->cv);
        pthread_mutex_unlock(&L->mu);
        pthread_join(L->thread, NULL);
    }
    /* jobs submitted after the thread ended were never added */
    while (L->head) {
        serve_job *j = L->head;
        L->head = j->next;
        pthread_mutex_lock(&j->mu);
        if (!j->error) j->error = folio_xstrdup("the server is shutting down");
        j->state = JOB_FAILED;
        job_changed(j);
        pthread_mutex_unlock(&j->mu);
        job_release(j);
    }
    for (int i = 0; i < L->n_cancels; i++) job_release(L->cancels[i]);
    engine_free(L->e);
    free(L->cancels);
    free(L->running);
    free(L->overflowed);
    free(L->failure);
    pthread_mutex_destroy(&L->mu);
    pthread_cond_destroy(&L->cv);
    pthread_cond_destroy(&L->cmd_cv);
    free(L);
}
