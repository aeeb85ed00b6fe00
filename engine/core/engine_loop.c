/* The engine loop: requests, steps, sampling, stop conditions, sessions, cancellation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine_loop.h"
#include "error.h"
#include "grow.h"
#include "hash.h"
#include "hashmap.h"
#include "progress.h"

struct engine {
    engine_config cfg;
    int32_t *eos;                /* owned copy of cfg.eos_ids */
    engine_backend be;
    request_done_fn done;
    void *user;
    scheduler *sched;
    step_plan plan;
    float *logits;               /* [max_num_seqs][vocab] */
    float *scratch_f;            /* [vocab] the row sample_rows_cpu processes */
    int32_t *counts;             /* [vocab] zero between uses */
    /* the one sampler: on the device (be.step_sample) or its host twin (sample_rows_cpu) */
    sample_row_params *params;   /* [max_num_seqs] per logits row */
    sample_entry *entries;       /* [cap_entries] */
    int cap_entries;
    int32_t *ids;                /* [max_num_seqs] */
    float *lps;                  /* [max_num_seqs] */
    sequence **todo;             /* [max_num_seqs] this step's scheduled sequences */
    request **live;              /* in-flight requests (started or queued behind a turn) */
    int n_live, cap_live;
    int64_t next_id;
    engine_stats stats;
    int n_opening;               /* first turns of new sessions in flight (not parked yet) */
    /* the last ENGINE_ENDED_SESSIONS ended sessions: a ring, and id -> ring index */
    struct {
        int64_t id;
        double idle_s;           /* SESSION_END_EXPIRED: how long it had been idle */
        session_end_reason why;
    } ended[ENGINE_ENDED_SESSIONS];
    int n_ended, next_ended;
    u64map ended_ids;
};

const char *finish_reason_name(finish_reason f) {
    switch (f) {
    case FINISH_LENGTH: return "length";
    case FINISH_STOP: return "stop";
    case FINISH_CANCELLED: return "cancelled";
    default: return "none";
    }
}

engine *engine_create(const engine_config *c, engine_backend be, request_done_fn done,
                      void *user) {
    if (sched_config_validate(&c->sched) != 0) return NULL;
    if (c->vocab < 1) {
        folio_fail("engine: vocabulary size %d", c->vocab);
        return NULL;
    }
    engine *e = folio_xcalloc(1, sizeof *e);
    e->cfg = *c;
    e->eos = folio_xmalloc(sizeof *e->eos * (c->n_eos ? c->n_eos : 1));
    if (c->n_eos) memcpy(e->eos, c->eos_ids, sizeof *e->eos * c->n_eos);
    e->cfg.eos_ids = e->eos;
    e->be = be;
    e->done = done;
    e->user = user;
    e->sched = sched_create(&c->sched);
    const sched_config *s = &c->sched;
    step_plan_create(&e->plan, s->max_num_batched_tokens, s->max_num_seqs,
                     (s->max_model_len + s->block_size - 1) / s->block_size, s->block_size);
    e->logits = folio_xmalloc(sizeof(float) * (size_t)s->max_num_seqs * c->vocab);
    e->scratch_f = folio_xmalloc(sizeof(float) * c->vocab);
    e->counts = folio_xcalloc(c->vocab, sizeof *e->counts);
    e->todo = folio_xmalloc(sizeof *e->todo * s->max_num_seqs);
    e->params = folio_xmalloc(sizeof *e->params * s->max_num_seqs);
    e->ids = folio_xmalloc(sizeof *e->ids * s->max_num_seqs);
    e->lps = folio_xmalloc(sizeof *e->lps * s->max_num_seqs);
    u64map_init(&e->ended_ids, ENGINE_ENDED_SESSIONS); /* its full size: RSS stays flat */
    return e;
}

static void request_free(request *r) {
    for (int i = 0; i < r->n_seqs; i++) sequence_free(r->seqs[i]);
    free(r->seqs);
    free(r->prompt);
    free(r->error);
    request_params_free(&r->p);
    free(r);
}

void engine_free(engine *e) {
    if (!e) return;
    /* in-flight sequences leave the scheduler before it goes */
    for (int i = 0; i < e->n_live; i++) {
        request *r = e->live[i];
        for (int k = 0; k < r->n_seqs; k++)
            if (r->seqs[k]) sched_remove(e->sched, r->seqs[k]);
        while (r) {
            request *next = r->next_turn;
            request_free(r);
            r = next;
        }
    }
    free(e->todo);
    free(e->live);
    sched_free(e->sched);
    step_plan_free(&e->plan);
    free(e->logits);
    free(e->scratch_f);
    free(e->counts);
    free(e->params);
    free(e->entries);
    free(e->ids);
    free(e->lps);
    free(e->eos);
    u64map_free(&e->ended_ids);
    free(e);
}

scheduler *engine_scheduler(engine *e) { return e->sched; }
const engine_stats *engine_get_stats(const engine *e) { return &e->stats; }
bool engine_busy(const engine *e) { return e->n_live > 0; }

/* ---- adding requests ---- */

static int check_params(const engine *e, const request_params *p, int n_prompt) {
    if (n_prompt < 1) return folio_fail("prompt: empty");
    if (p->n < 1 || p->n > e->cfg.sched.max_num_seqs)
        return folio_fail("n: %d is out of range [1, %d] (--max-num-seqs)", p->n,
                          e->cfg.sched.max_num_seqs);
    if (p->max_tokens < 1) return folio_fail("max_tokens: %d must be >= 1", p->max_tokens);
    if (p->logprobs > FOLIO_MAX_LOGPROBS)
        return folio_fail("logprobs: %d is out of range [0, %d]", p->logprobs,
                          FOLIO_MAX_LOGPROBS);
    if (p->n_stop > 0 && !e->cfg.codec)
        return folio_fail("stop: stop strings need the tokenizer (use stop_token_ids)");
    if (p->session_id >= 0 && p->n != 1)
        return folio_fail("n: must be 1 in a session (session_id %lld)",
                          (long long)p->session_id);
    for (int i = 0; i < p->n_stop_ids; i++)
        if (p->stop_ids[i] < 0 || p->stop_ids[i] >= e->cfg.vocab)
            return folio_fail("stop_token_ids: %d is outside the vocabulary of %d",
                              p->stop_ids[i], e->cfg.vocab);
    if (sampling_params_validate(&p->sampling) != 0) return -1;
    return logits_params_validate(&p->proc, e->cfg.vocab);
}

static int check_length(const engine *e, int n_ctx, int max_tokens) {
    return engine_check_length(e->cfg.sched.max_model_len, n_ctx, max_tokens);
}

int engine_check_length(int max_len, int n_ctx, int max_tokens) {
    if ((long long)n_ctx + max_tokens > max_len)
        return folio_fail("max_tokens: the context of %d tokens plus max_tokens %d exceeds the "
                          "model length of %d (--max-model-len)", n_ctx, max_tokens, max_len);
    return 0;
}

static uint64_t sample_seed(uint64_t seed, int sample) {
    return seed ^ ((uint64_t)sample * FOLIO_GOLDEN64);
}

/* ---- output text: one stream per sequence, stop strings found as the text grows ---- */

/* Gives q an empty text and the codec's stream, primed with q's context. */
static void text_begin(const engine *e, sequence *q) {
    const text_codec *c = e->cfg.codec;
    if (!c) return;
    if (!q->text) {
        q->text_cap = 64;
        q->text = folio_xmalloc((size_t)q->text_cap);
        q->text[0] = '\0';
    }
    q->stream = c->stream_new(c->self, q->tokens, q->n_prompt, !q->req->p.keep_special);
    q->stream_free = c->stream_free;
}

static void text_append(sequence *q, const text_piece *piece) {
    if (piece->len == 0) return;
    FOLIO_GROW(q->text, q->text_cap, (size_t)q->text_len + piece->len + 1);
    memcpy(q->text + q->text_len, piece->s, piece->len);
    q->text_len += (int)piece->len;
    q->text[q->text_len] = '\0';
}

/* The earliest stop string in q->text among those ending at or after byte `from` (the text
 * before it holds none: it was searched as it came), or -1. Each stop string is compared
 * only over the window where such a match can lie. */
static int find_stop(engine *e, const sequence *q, int from) {
    const request_params *p = &q->req->p;
    int best = -1;
    for (int i = 0; i < p->n_stop; i++) {
        const char *stop = p->stop[i];
        int len = (int)strlen(stop), at = from - (len - 1);
        if (at < 0) at = 0;
        int last = q->text_len - len; /* the last start with room for the match */
        if (best >= 0 && last >= best) last = best - 1;
        if (last >= at) e->stats.stop_scan_bytes += q->text_len - at;
        for (; at <= last; at++) {
            const char *hit = memchr(q->text + at, stop[0], (size_t)(last - at + 1));
            if (!hit) break;
            at = (int)(hit - q->text);
            if (memcmp(hit, stop, (size_t)len) == 0) {
                best = at;
                break;
            }
        }
    }
    return best;
}

/* The final bytes: all but the last max_stop_len - 1 (where a stop string may be forming),
 * on a character boundary; never fewer than before. */
static void text_settle(sequence *q) {
    int safe = q->text_len - (q->req->max_stop_len > 0 ? q->req->max_stop_len - 1 : 0);
    if (safe <= q->text_safe) return;
    while (safe > q->text_safe && ((unsigned char)q->text[safe] & 0xC0) == 0x80) safe--;
    q->text_safe = safe;
}

/* The text grew from `from` bytes: searches the new bytes for stop strings; true on a match,
 * the text cut before it. */
static bool text_grew(engine *e, sequence *q, int from) {
    e->stats.text_bytes += q->text_len - from;
    if (q->req->p.n_stop == 0 || q->text_len == from) return false;
    int cut = find_stop(e, q, from);
    if (cut < 0) return false;
    q->text_len = cut;
    q->text[cut] = '\0';
    return true;
}

/* Pushes token t (q's newest) into q's text: true when a stop string completed. */
static bool text_push(engine *e, sequence *q, int32_t t) {
    const text_codec *c = e->cfg.codec;
    if (!c || !q->stream) return false;
    if (q->n_lead == sequence_generated(q) - 1 && c->stream_at_start(q->stream)) q->n_lead++;
    int from = q->text_len;
    text_piece piece;
    if (c->stream_push(q->stream, t, &piece) != 0) folio_clear_error(); /* t is in the vocab */
    text_append(q, &piece);
    bool hit = text_grew(e, q, from);
    text_settle(q);
    return hit;
}

/* q's text is final: unless a stop string already cut it, what the stream still holds is
 * added (and searched); the stream goes. True when a stop string completed in that rest. */
static bool text_finish(engine *e, sequence *q, bool cut) {
    const text_codec *c = e->cfg.codec;
    if (!c || !q->stream) return false;
    bool hit = false;
    if (!cut) {
        int from = q->text_len;
        text_piece piece;
        c->stream_flush(q->stream, &piece);
        text_append(q, &piece);
        hit = text_grew(e, q, from);
    }
    q->text_safe = q->text_len;
    c->stream_free(q->stream);
    q->stream = NULL;
    q->stream_free = NULL;
    return hit;
}

/* Starts a turn: builds its first sequence (conversation so far + prompt) and queues it. */
static int session_ended_error(const engine *e, int64_t session_id);

static int start_request(engine *e, request *r) {
    if (r->p.session_id >= 0 && session_ended_error(e, r->p.session_id) != 0)
        return ENGINE_ESESSION_ENDED; /* a turn queued behind the one that ended it */
    const sequence *hist = r->p.session_id >= 0 ? sched_session(e->sched, r->p.session_id)
                                                : NULL;
    int n_hist = hist ? hist->n_tokens : 0, n_ctx = n_hist + r->n_prompt;
    if (check_length(e, n_ctx, r->p.max_tokens) != 0) return -1;
    int32_t *ctx = folio_xmalloc(sizeof *ctx * n_ctx);
    if (n_hist) memcpy(ctx, hist->tokens, sizeof *ctx * n_hist);
    memcpy(ctx + n_hist, r->prompt, sizeof *ctx * r->n_prompt);
    sequence *q = sequence_create(r, 0, ctx, n_ctx, r->p.max_tokens, e->cfg.sched.block_size);
    free(ctx);
    q->fork_pending = r->p.n;
    sampler_rng_seed(&q->rng, sample_seed(r->p.seed, 0));
    if (r->p.logprobs >= 0)
        q->logprobs = folio_xmalloc(sizeof *q->logprobs * (size_t)(q->cap_tokens - q->n_prompt));
    text_begin(e, q);
    r->seqs[0] = q;
    r->n_seqs = 1;
    r->started = true;
    sched_add(e->sched, q, r->p.session_id);
    if (r->p.session_id >= 0) sched_session_busy(e->sched, r->p.session_id);
    return 0;
}

static void live_push(engine *e, request *r) {
    FOLIO_GROW(e->live, e->cap_live, e->n_live + 1);
    e->live[e->n_live++] = r;
}

static void live_remove(engine *e, request *r) {
    for (int i = 0; i < e->n_live; i++)
        if (e->live[i] == r) {
            memmove(e->live + i, e->live + i + 1, sizeof *e->live * (e->n_live - i - 1));
            e->n_live--;
            return;
        }
}

static request *find_turn_in_flight(engine *e, int64_t session) {
    for (int i = e->n_live - 1; i >= 0; i--)
        if (e->live[i]->p.session_id == session) {
            request *r = e->live[i];
            while (r->next_turn) r = r->next_turn;
            return r;
        }
    return NULL;
}

/* ---- sessions: ended ids, the cap ---- */

static double engine_now(const engine *e) { return e->cfg.clock ? e->cfg.clock() : folio_now(); }

static void sessions_changed(engine *e) {
    e->stats.sessions = sched_num_sessions(e->sched) + e->n_opening;
}

/* Remembers an ended session (the ring's oldest entry is forgotten when it is full). */
static void remember_ended(engine *e, int64_t id, session_end_reason why, double idle_s) {
    int i = e->next_ended;
    uint64_t at;
    if (e->n_ended == ENGINE_ENDED_SESSIONS &&
        u64map_get(&e->ended_ids, (uint64_t)e->ended[i].id, &at) && at == (uint64_t)i)
        u64map_del(&e->ended_ids, (uint64_t)e->ended[i].id);
    e->ended[i].id = id;
    e->ended[i].why = why;
    e->ended[i].idle_s = idle_s;
    u64map_put(&e->ended_ids, (uint64_t)id, (uint64_t)i);
    e->next_ended = (i + 1) % ENGINE_ENDED_SESSIONS;
    if (e->n_ended < ENGINE_ENDED_SESSIONS) e->n_ended++;
}

/* A remembered ended session: ENGINE_ESESSION_ENDED with a message saying how it ended. */
static int session_ended_error(const engine *e, int64_t session_id) {
    uint64_t at;
    if (!u64map_get(&e->ended_ids, (uint64_t)session_id, &at)) return 0;
    if (e->ended[at].why == SESSION_END_EXPIRED)
        folio_fail("session_id: session %lld ended (expired after %.0f s idle; "
                   "--session-idle-timeout %.0f s); start a new session_id",
                   (long long)session_id, e->ended[at].idle_s, e->cfg.session_idle_s);
    else
        folio_fail("session_id: session %lld ended (ended by the client); start a new "
                   "session_id", (long long)session_id);
    return ENGINE_ESESSION_ENDED;
}

static void end_session(engine *e, int64_t session_id, session_end_reason why, double idle_s) {
    if (sched_end_session(e->sched, session_id) != 0)
        FOLIO_BUG("ending session %lld, which has no parked turn", (long long)session_id);
    remember_ended(e, session_id, why, idle_s);
    e->stats.sessions_ended[why]++;
    sessions_changed(e);
}

/* Whether a turn of session_id may be added: 0 and *fresh (it starts a new session), or an
 * ENGINE_E* code with a message. */
static int session_admit(engine *e, int64_t session_id, bool busy, bool *fresh) {
    *fresh = false;
    if (busy || sched_session(e->sched, session_id)) return 0;
    int rc = session_ended_error(e, session_id);
    if (rc != 0) return rc;
    if (e->cfg.max_sessions > 0 && e->stats.sessions >= e->cfg.max_sessions) {
        folio_fail("session_id: session %lld would be a new session, but %d are open, the most "
                   "this server holds (--max-sessions); end one (\"end_session\": true or "
                   "DELETE /v1/sessions/ID) or retry later", (long long)session_id,
                   e->stats.sessions);
        return ENGINE_ESESSION_CAP;
    }
    *fresh = true;
    return 0;
}

int engine_add(engine *e, const int32_t *prompt, int n_prompt, const request_params *p,
               void *tag, int64_t *id) {
    if (check_params(e, p, n_prompt) != 0) return -1;
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= e->cfg.vocab)
            return folio_fail("prompt_ids: id %d is outside the vocabulary of %d", prompt[i],
                              e->cfg.vocab);
    request *busy = p->session_id >= 0 ? find_turn_in_flight(e, p->session_id) : NULL;
    const sequence *hist = p->session_id >= 0 ? sched_session(e->sched, p->session_id) : NULL;
    if (!busy && check_length(e, n_prompt + (hist ? hist->n_tokens : 0), p->max_tokens) != 0)
        return -1;
    bool fresh = false;
    if (p->session_id >= 0) {
        int rc = session_admit(e, p->session_id, busy != NULL, &fresh);
        if (rc != 0) return rc;
    }
    request *r = folio_xcalloc(1, sizeof *r);
    r->id = e->next_id++;
    r->tag = tag;
    r->prompt = folio_xmalloc(sizeof *r->prompt * n_prompt);
    memcpy(r->prompt, prompt, sizeof *r->prompt * n_prompt);
    r->n_prompt = n_prompt;
    request_params_copy(&r->p, p);
    for (int i = 0; i < p->n_stop; i++) {
        int len = (int)strlen(p->stop[i]);
        if (len > r->max_stop_len) r->max_stop_len = len;
    }
    r->seqs = folio_xcalloc(p->n, sizeof *r->seqs);
    if (busy) {
        busy->next_turn = r;
    } else {
        live_push(e, r);
        if (start_request(e, r) != 0) /* its length and session were checked above */
            FOLIO_BUG("request %lld: %s", (long long)r->id, folio_last_error());
    }
    if (fresh) {
        e->n_opening++;
        sessions_changed(e);
    }
    if (id) *id = r->id;
    return 0;
}

/* ---- completion ---- */

/* Starts the session's next queued turn (or reports why it cannot start). */
static void start_next_turn(engine *e, request *next);

static void complete_request(engine *e, request *r) {
    request *next = r->next_turn;
    r->next_turn = NULL;
    live_remove(e, r);
    e->stats.requests_done++;
    if (e->done) e->done(r, e->user);
    if (r->p.session_id >= 0 && r->n_seqs == 1 && r->seqs[0]) {
        if (sched_park(e->sched, r->seqs[0], r->p.session_id, engine_now(e))) e->n_opening--;
        r->seqs[0] = NULL;
        if (r->p.end_session) end_session(e, r->p.session_id, SESSION_END_CLIENT, 0);
        sessions_changed(e);
    }
    request_free(r);
    if (next) start_next_turn(e, next);
}

static void start_next_turn(engine *e, request *next) {
    live_push(e, next);
    int rc = start_request(e, next);
    if (rc != 0) {
        next->error = folio_xstrdup(folio_last_error());
        next->error_code = rc;
        next->n_seqs = 0;
        complete_request(e, next);
    }
}

/* A sequence is done: its blocks are freed now (a session turn keeps them when the request
 * completes); the request completes when all its samples have. */
static void finish_seq(engine *e, sequence *q, finish_reason why) {
    request *r = q->req;
    q->finish = why;
    text_finish(e, q, false); /* a cancelled sequence's: what its stream still holds */
    if (r->p.session_id >= 0) {
        q->status = SEQ_FINISHED; /* parked (with its blocks) in complete_request */
    } else {
        sched_remove(e->sched, q);
    }
    if (++r->n_done == r->n_seqs && r->n_seqs == r->p.n) complete_request(e, r);
}

int engine_cancel(engine *e, int64_t id) {
    for (int i = 0; i < e->n_live; i++) {
        request *r = e->live[i];
        for (request *t = r; t; t = t->next_turn) {
            if (t->id != id) continue;
            if (!t->started) { /* queued behind a session turn: unlink it */
                request *p = r;
                while (p->next_turn != t) p = p->next_turn;
                p->next_turn = t->next_turn;
                t->next_turn = NULL;
                if (e->done) e->done(t, e->user);
                request_free(t);
                return 0;
            }
            /* the last finish_seq completes and frees t: collect the live samples first */
            int n = t->n_seqs, m = 0;
            sequence **live = folio_xmalloc(sizeof *live * n);
            for (int k = 0; k < n; k++)
                if (t->seqs[k]->status != SEQ_FINISHED) live[m++] = t->seqs[k];
            t->seqs[0]->fork_pending = 0;
            t->p.n = n; /* an unforked request completes with its one sequence */
            for (int k = 0; k < m; k++) {
                if (t->p.session_id >= 0) sched_remove(e->sched, live[k]);
                finish_seq(e, live[k], FINISH_CANCELLED);
            }
            free(live);
            return 0;
        }
    }
    return folio_fail("cancel: no request %lld in flight", (long long)id);
}

int engine_end_session(engine *e, int64_t session_id) {
    if (find_turn_in_flight(e, session_id)) {
        folio_fail("session %lld has a turn in flight; end it after the turn (or with "
                   "\"end_session\": true in the turn)", (long long)session_id);
        return ENGINE_ESESSION_BUSY;
    }
    if (!sched_session(e->sched, session_id)) {
        if (session_ended_error(e, session_id) != 0) return -1; /* its message says how */
        return folio_fail("session %lld is unknown", (long long)session_id);
    }
    end_session(e, session_id, SESSION_END_CLIENT, 0);
    return 0;
}

int engine_expire_sessions(engine *e) {
    if (e->cfg.session_idle_s <= 0) return 0;
    double now = engine_now(e), t_park;
    int64_t id;
    int n = 0;
    while (sched_oldest_idle(e->sched, &id, &t_park) && now - t_park > e->cfg.session_idle_s) {
        end_session(e, id, SESSION_END_EXPIRED, now - t_park);
        n++;
    }
    return n;
}

/* ---- sampling and stop conditions ---- */

static bool in_list(const int32_t *ids, int n, int32_t id) {
    for (int i = 0; i < n; i++)
        if (ids[i] == id) return true;
    return false;
}

/* The finish reason token t (q's newest) gives q; its text goes into q->text (all of it,
 * final, when q finishes), except a stop token's (EOS, stop_token_ids): as in vLLM, the token
 * that stops a sequence is not part of its text, even with special tokens kept. */
static finish_reason stop_check(engine *e, sequence *q, int32_t t) {
    const request_params *p = &q->req->p;
    finish_reason why = FINISH_NONE;
    if ((!p->ignore_eos && in_list(e->cfg.eos_ids, e->cfg.n_eos, t)) ||
        in_list(p->stop_ids, p->n_stop_ids, t))
        why = FINISH_STOP;
    else if (sequence_generated(q) >= p->max_tokens ||
             q->n_tokens >= e->cfg.sched.max_model_len)
        why = FINISH_LENGTH;
    bool hit = why == FINISH_STOP ? false : text_push(e, q, t);
    if (hit || why != FINISH_NONE) hit |= text_finish(e, q, hit);
    return hit ? FINISH_STOP : why;
}

/* q's row parameters for sample_rows_*, its entries appended at e->entries[*n_entries..]. */
static void row_params(engine *e, const sequence *q, sample_row_params *prm, int *n_entries) {
    const request_params *p = &q->req->p;
    const int bound = sampler_entries_bound(&p->proc, q->n_prompt, sequence_generated(q),
                                            e->cfg.n_eos);
    FOLIO_GROW(e->entries, e->cap_entries, *n_entries + bound);
    const int n = sampler_entries_build(e->entries + *n_entries, &p->proc, q->tokens,
                                        q->n_prompt, q->tokens + q->n_prompt,
                                        sequence_generated(q), e->cfg.eos_ids, e->cfg.n_eos,
                                        e->counts);
    *prm = sample_row_params_of(&p->sampling, &p->proc, &q->rng,
                                (uint64_t)sequence_generated(q));
    prm->entry_start = *n_entries;
    prm->n_entries = n;
    *n_entries += n;
}

/* The host path's token for q: sample_rows_cpu, the device sampler's twin, on a copy of the
 * raw row with q's entries, so it is the token the device path would draw. */
static int32_t sample_host(engine *e, const sequence *q, const float *row) {
    sample_row_params prm;
    int n_entries = 0;
    int32_t t;
    row_params(e, q, &prm, &n_entries);
    memcpy(e->scratch_f, row, sizeof(float) * e->cfg.vocab);
    sample_rows_cpu(&t, NULL, e->scratch_f, 1, e->cfg.vocab, &prm, e->entries);
    return t;
}

/* Samples one token for q. dev: the device path's (id, logprob) or NULL; else from the raw
 * row (the logprobs too). */
static int32_t sample_one(engine *e, sequence *q, const float *row, const int32_t *dev_id,
                          const float *dev_lp) {
    const request_params *p = &q->req->p;
    const int32_t t = dev_id ? *dev_id : sample_host(e, q, row);
    if (p->logprobs >= 0) {
        token_logprobs *lp = &q->logprobs[sequence_generated(q)];
        if (dev_id)
            lp->logprob = dev_lp ? *dev_lp : 0.0f;
        else
            lp->logprob = sampler_logprobs(row, e->cfg.vocab, t, p->logprobs, lp->top_ids,
                                           lp->top_lps);
    }
    q->tokens[q->n_tokens++] = t;
    e->stats.generated_tokens++;
    return t;
}

/* Samples q's next token (its forks' too, at the first token of n > 1), then the common
 * update: stop checks, on_token, finishing. row: the host row, or NULL on the device path
 * (dev_id, dev_lp: its results). */
static void sample_seq(engine *e, sequence *q, const float *row, const int32_t *dev_id,
                       const float *dev_lp) {
    request *r = q->req;
    const request_params *p = &r->p;
    sequence **seqs = &q;
    int n = 1;
    if (q->fork_pending > 1) {
        n = q->fork_pending;
        seqs = folio_xmalloc(sizeof *seqs * n);
        sched_fork(e->sched, q, n, seqs);
        for (int i = 1; i < n; i++) {
            sampler_rng_seed(&seqs[i]->rng, sample_seed(p->seed, i));
            text_begin(e, seqs[i]);
            r->seqs[i] = seqs[i];
        }
        r->n_seqs = n;
    }
    q->fork_pending = 0;
    for (int i = 0; i < n; i++) {
        sequence *s = seqs[i];
        int from = s->text_len;
        int32_t t = sample_one(e, s, row, dev_id, dev_lp);
        finish_reason why = stop_check(e, s, t);
        if (e->cfg.on_token) {
            int n_text = s->text_len > from ? s->text_len - from : 0;
            e->cfg.on_token(r, s, s->text ? s->text + s->text_len - n_text : NULL, n_text, why,
                            e->user);
        }
        if (why != FINISH_NONE) finish_seq(e, s, why);
    }
    if (seqs != &q) free(seqs);
}

/* ---- the step ---- */

int engine_step(engine *e) {
    double t0 = folio_now();
    int n = sched_schedule(e->sched, &e->plan);
    if (n == 0) {
        if (sched_num_waiting(e->sched) > 0 || sched_num_running(e->sched) > 0)
            return folio_fail("engine: nothing could be scheduled with %d waiting and %d "
                              "running sequences", sched_num_waiting(e->sched),
                              sched_num_running(e->sched));
        return 0;
    }
    int n_sched;
    sequence *const *sched = sched_scheduled(e->sched, &n_sched);
    /* copy: finishing a sequence edits the scheduled list */
    sequence **todo = e->todo;
    memcpy(todo, sched, sizeof *todo * n_sched);
    /* the device path, unless a sequence wants what it lacks (top-N alternatives, a fork) */
    bool dev = e->be.step_sample != NULL, want_lp = false;
    for (int i = 0; i < n_sched && dev; i++) {
        const sequence *q = todo[i];
        if (q->logits_row < 0) continue;
        if (q->req->p.logprobs > 0 || q->fork_pending > 1) dev = false;
        want_lp |= q->req->p.logprobs == 0;
    }
    int n_entries = 0;
    if (dev)
        for (int i = 0; i < n_sched; i++)
            if (todo[i]->logits_row >= 0)
                row_params(e, todo[i], &e->params[todo[i]->logits_row], &n_entries);
    double t1 = folio_now();
    int rc = dev ? e->be.step_sample(e->be.self, &e->plan, e->params, e->entries, n_entries,
                                     e->ids, want_lp ? e->lps : NULL)
                 : e->be.step(e->be.self, &e->plan, e->logits);
    if (rc != 0) return -1;
    double t2 = folio_now();
    sched_step_done(e->sched);
    for (int i = 0; i < n_sched; i++) {
        sequence *q = todo[i];
        const int row = q->logits_row;
        if (row < 0) continue;
        if (dev)
            sample_seq(e, q, NULL, &e->ids[row], want_lp ? &e->lps[row] : NULL);
        else
            sample_seq(e, q, e->logits + (size_t)row * e->cfg.vocab, NULL, NULL);
    }
    const double t3 = folio_now();
    e->stats.plan_s += t1 - t0;
    e->stats.token_s += t3 - t2;
    e->stats.cpu_s += (t1 - t0) + (t3 - t2);
    e->stats.backend_s += t2 - t1;
    if (e->plan.n_tokens > e->plan.n_seqs) {
        e->stats.prompt_steps++;
        e->stats.prompt_backend_s += t2 - t1;
    }
    return 0;
}

int engine_run(engine *e) {
    while (engine_busy(e))
        if (engine_step(e) != 0) return -1;
    return 0;
}
