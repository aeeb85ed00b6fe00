/* libmicrohttpd glue of `folio serve`: routes, authentication, limits, responses; connections
 * parked while their job runs (http_server.h); the generation routes hand prompts to
 * prompts.c, jobs to serve_loop.c and streams to sse.c. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "error.h"
#include "grow.h"
#include "hash.h"
#include "http_limits.h"
#include "http_server.h"
#include "json_util.h"
#include "log_limit.h"
#include "openai_api.h"
#include "openai_format.h"
#include "progress.h"
#include "prompts.h"
#include "request_json.h"
#include "sse.h"

#define MAX_LOGGED_UNKNOWN 64    /* unknown field names remembered (each logged once) */
#define PREP_THREADS 2           /* parse, template, tokenize (the tokenizer is one lock) */
#define FD_RESERVE 64            /* descriptors kept for everything but connections ... */
#define FD_SLACK 32              /* ... of which these may briefly hold connections being refused */
#define LOG_BURST 5              /* lines a client-provoked kind of message may log ... */
#define LOG_WINDOW_S 10.0        /* ... per this many seconds */
#define MAX_LOG_KINDS 32         /* libmicrohttpd messages rate-limited each on its own */

enum { R_NONE, R_HEALTH, R_METRICS, R_MODELS, R_COMPLETIONS, R_CHAT, R_TOKENIZE, R_DETOKENIZE,
       R_SESSION, R_OPTIONS };

#define SESSIONS_PREFIX "/v1/sessions/"   /* DELETE /v1/sessions/{id} */

/* Where a request is once its body is in (each resume comes back to the phase). */
enum { PH_BODY, PH_PREP, PH_ACCEPT, PH_OVER };

typedef struct conn_ctx conn_ctx;

struct http_server {
    http_config cfg;
    struct MHD_Daemon *d;
    serve_loop *L;
    tokenizer *tok;
    prompt_builder pb;
    metrics *m;
    body_budget *budget;
    serve_admission admit;
    unsigned serve_max, open_max;  /* connections served / held by libmicrohttpd */
    atomic_int open_conns;
    atomic_uint_least64_t next_serial;
    pthread_mutex_t mu;          /* below */
    int active;
    uint64_t next_id;
    char logged[MAX_LOGGED_UNKNOWN][OAI_UNKNOWN_NAME_MAX + 1];  /* unknown names logged */
    int n_logged;
    long long unknown_total;     /* unknown fields seen in all requests */
    int port;
    folio_log_limit unknown_log;
    folio_log_limit refuse_log;
    /* libmicrohttpd's messages, rate-limited by kind (its format string) */
    pthread_mutex_t lmu;
    struct {
        const char *fmt;
        folio_log_limit lim;
    } mhd_logs[MAX_LOG_KINDS];
    int n_mhd_logs;
    folio_log_limit mhd_other_log;
    /* parked connections (suspended until their job or preparation changes) */
    pthread_mutex_t pmu;         /* below, and conn_ctx's parking fields */
    pthread_cond_t pcv;
    conn_ctx **parked;           /* [n_parked] */
    int n_parked, cap_parked;
    bool stopping;
    pthread_t waker;
    bool waker_started;
    /* preparation threads */
    pthread_mutex_t qmu;         /* below */
    pthread_cond_t qcv;
    conn_ctx *q_head, *q_tail;
    bool q_quit;
    pthread_t prep[PREP_THREADS];
    int n_prep;
};

struct conn_ctx {
    http_server *s;
    struct MHD_Connection *conn;
    int fd;
    uint64_t serial;             /* unique among connections (the waker's sweep checks it) */
    client_key client;
    int route;
    int phase;
    bool responded;
    /* the body */
    char *body;
    size_t len, cap;
    size_t limit;                /* the route's largest body */
    size_t reserved;             /* bytes of the body budget held */
    unsigned refused;            /* 413 / 429 / 503 to answer once the upload is over */
    /* preparation (a preparation thread owns the request from prep_submit to prepped) */
    conn_ctx *q_next;
    bool prepped;                /* pmu */
    unsigned pend_status;        /* a prepared answer (pend_body != NULL) */
    char *pend_body;
    bool stream;
    /* parking: pmu */
    bool parked, woken, gone;
    int park_idx;
    /* a generation */
    serve_job *job;
    oai_response_ctx x;
    int n_echo;                  /* x.echo's prompts */
    oai_kind kind;
    double t_start;
    sse_stream *sse;             /* a stream */
    char *log_params;
    char *session;               /* R_SESSION: the id in the path (decoded) */
    /* the access line */
    unsigned status;             /* the status sent (0: none yet) */
    char peer[64];               /* the client's address and port */
    char request_line[96];       /* "METHOD PATH", escaped and cut */
};

/* ---- helpers ---- */

static uint64_t next_request_id(http_server *s) {
    pthread_mutex_lock(&s->mu);
    uint64_t id = ++s->next_id;
    pthread_mutex_unlock(&s->mu);
    return id;
}

static void add_cors(const http_server *s, struct MHD_Response *r) {
    if (!s->cfg.cors) return;
    MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
    MHD_add_response_header(r, "Access-Control-Allow-Headers", "Authorization, Content-Type");
    MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
}

static enum MHD_Result reply(conn_ctx *cx, struct MHD_Connection *c, unsigned status,
                             const char *type, char *body /* taken */) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body,
                                                             MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", type);
    add_cors(cx->s, r);
    if (status == 429 || status == 503) MHD_add_response_header(r, "Retry-After", "1");
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    cx->responded = true;
    cx->status = status;
    if (status >= 400) metrics_http_error(cx->s->m, (int)status);
    return ok;
}

static enum MHD_Result reply_json(conn_ctx *cx, struct MHD_Connection *c, unsigned status,
                                  char *body) {
    return reply(cx, c, status, "application/json", body);
}

static const char *error_type(unsigned status) {
    switch (status) {
    case 400: return "BadRequestError";
    case 401: return "AuthenticationError";
    case 404: return "NotFoundError";
    case 405: return "MethodNotAllowed";
    case 409: return "ConflictError";
    case 413: return "RequestTooLarge";
    case 415: return "UnsupportedMediaType";
    case 429: return "RateLimitError";
    case 503: return "ServiceUnavailableError";
    default: return "InternalServerError";
    }
}

/* An OpenAI error body; param NULL: the field the message names. malloc'd. */
static char *error_body(unsigned status, const char *message, const char *param) {
    char p[96];
    if (!param) oai_error_param(message, p, sizeof p);
    return oai_format_error(message, error_type(status), param ? param : p, (int)status);
}

static enum MHD_Result reply_error(conn_ctx *cx, struct MHD_Connection *c, unsigned status,
                                   const char *message, const char *param) {
    return reply_json(cx, c, status, error_body(status, message, param));
}

/* A prepared answer (a preparation thread's), sent when the connection is resumed. */
static void answer(conn_ctx *cx, unsigned status, char *body) {
    cx->pend_status = status;
    cx->pend_body = body;
}

static void answer_error(conn_ctx *cx, unsigned status, const char *message, const char *param) {
    answer(cx, status, error_body(status, message, param));
}

/* Gives the body and its share of the budget back. */
static void release_body(conn_ctx *cx) {
    free(cx->body);
    cx->body = NULL;
    cx->len = cx->cap = 0;
    body_budget_give(cx->s->budget, &cx->client, cx->reserved);
    cx->reserved = 0;
}

/* True when the peer closed the connection (or it broke). */
static bool fd_gone(int fd) {
    char b;
    ssize_t r = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* ---- logging what clients send ---- */

/* libmicrohttpd's messages (some provoked by clients: a flood of connections, descriptors run
 * out): escaped, each kind at most LOG_BURST lines per LOG_WINDOW_S. */
static void mhd_log(void *cls, const char *fmt, va_list ap) {
    http_server *s = cls;
    folio_log_limit *lim = &s->mhd_other_log;
    pthread_mutex_lock(&s->lmu);
    int k = 0;
    while (k < s->n_mhd_logs && s->mhd_logs[k].fmt != fmt) k++;
    if (k == s->n_mhd_logs && k < MAX_LOG_KINDS) {
        s->mhd_logs[k].fmt = fmt;
        folio_log_limit_init(&s->mhd_logs[k].lim, LOG_BURST, LOG_WINDOW_S);
        s->n_mhd_logs++;
    }
    if (k < s->n_mhd_logs) lim = &s->mhd_logs[k].lim;
    pthread_mutex_unlock(&s->lmu);
    char msg[512], esc[640];
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    if (n < 0) return;
    size_t len = strlen(msg);
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' ')) len--;
    folio_log_limited(lim, "folio: http: %s", folio_escape_log(msg, len, esc, sizeof esc));
}

/* Unknown fields: each name logged once (escaped, cut short), at most MAX_LOGGED_UNKNOWN names
 * remembered; every unknown field counted. */
static void log_unknown(http_server *s, const oai_request *r) {
    if (r->n_unknown_total == 0) return;
    char line[1024];
    size_t o = 0;
    int fresh = 0;
    pthread_mutex_lock(&s->mu);
    s->unknown_total += r->n_unknown_total;
    long long total = s->unknown_total;
    for (int i = 0; i < r->n_unknown; i++) {
        bool seen = false;
        for (int k = 0; k < s->n_logged && !seen; k++) seen = strcmp(s->logged[k], r->unknown[i]) == 0;
        if (seen) continue;
        if (s->n_logged < MAX_LOGGED_UNKNOWN) memcpy(s->logged[s->n_logged++], r->unknown[i],
                                                    sizeof s->logged[0]);
        char esc[4 * OAI_UNKNOWN_NAME_MAX + 8];
        folio_escape_log(r->unknown[i], r->unknown_len[i], esc, sizeof esc);
        int n = snprintf(line + o, sizeof line - o, "%s'%s%s'", fresh ? ", " : "", esc,
                         r->unknown_cut[i] ? "..." : "");
        if (n > 0 && (size_t)n < sizeof line - o) o += (size_t)n;
        fresh++;
    }
    pthread_mutex_unlock(&s->mu);
    if (fresh == 0) return;
    line[o] = '\0';
    folio_log_limited(&s->unknown_log, "folio: serve: ignoring unknown request field%s %s (%d in "
                      "this request, %lld so far; each name logged once)", fresh > 1 ? "s" : "",
                      line, r->n_unknown_total, total);
}

/* ---- parking: a connection suspended until its job or preparation changes ---- */

static void unpark_locked(http_server *s, conn_ctx *cx) {
    int i = cx->park_idx;
    s->parked[i] = s->parked[--s->n_parked];
    s->parked[i]->park_idx = i;
    cx->parked = false;
    MHD_resume_connection(cx->conn);
}

/* With s->pmu held: cx has news (its job changed, its preparation is done): resumed if parked
 * (a mutex and a write to libmicrohttpd's event fd: no more than the condition variable a
 * thread per connection was woken by), else told to look again before it parks. */
static void wake_locked(http_server *s, conn_ctx *cx) {
    if (cx->parked) unpark_locked(s, cx);
    else cx->woken = true;
}

/* The job's notifier (engine thread, under the job's lock). */
static void wake(void *user) {
    conn_ctx *cx = user;
    pthread_mutex_lock(&cx->s->pmu);
    wake_locked(cx->s, cx);
    pthread_mutex_unlock(&cx->s->pmu);
}

/* From the connection's own callbacks: suspends it until wake (or the waker finds the client
 * gone, or the server stops), true; false without suspending when news came since the last
 * look (look again) or the server is stopping. */
static bool park(conn_ctx *cx) {
    http_server *s = cx->s;
    bool parked = false;
    pthread_mutex_lock(&s->pmu);
    if (cx->woken) {
        cx->woken = false;
    } else if (!s->stopping) {
        FOLIO_GROW(s->parked, s->cap_parked, s->n_parked + 1);
        cx->park_idx = s->n_parked;
        s->parked[s->n_parked++] = cx;
        cx->parked = true;
        MHD_suspend_connection(cx->conn);
        parked = true;
    }
    pthread_mutex_unlock(&s->pmu);
    return parked;
}

/* The client went away (seen by the waker) or the server is stopping. */
static bool conn_dead(conn_ctx *cx) {
    pthread_mutex_lock(&cx->s->pmu);
    bool dead = cx->gone || cx->s->stopping;
    pthread_mutex_unlock(&cx->s->pmu);
    return dead;
}

/* The waker: every SERVE_WAIT_SLICE_MS looks for parked clients that went away (each is
 * resumed to cancel its job); once stopping, resumes everyone and ends. */
static void *waker_main(void *arg) {
    http_server *s = arg;
    struct snap {
        conn_ctx *cx;
        uint64_t serial;
        int fd, idx;
    } *snap = NULL;
    int cap_snap = 0;
    double next_sweep = folio_now() + SERVE_WAIT_SLICE_MS / 1e3;
    pthread_mutex_lock(&s->pmu);
    for (;;) {
        while (!s->stopping && folio_now() < next_sweep) serve_wait_slice(&s->pcv, &s->pmu);
        if (s->stopping) {
            while (s->n_parked > 0) unpark_locked(s, s->parked[s->n_parked - 1]);
            break;
        }
        /* the sweep: recv() outside the lock, on a snapshot checked again after */
        int n = 0;
        FOLIO_GROW(snap, cap_snap, s->n_parked);
        for (int i = 0; i < s->n_parked; i++)
            if (!s->parked[i]->gone)
                snap[n++] = (struct snap){s->parked[i], s->parked[i]->serial, s->parked[i]->fd, i};
        pthread_mutex_unlock(&s->pmu);
        int gone = 0;
        for (int i = 0; i < n; i++)
            if (fd_gone(snap[i].fd)) snap[gone++] = snap[i];
        pthread_mutex_lock(&s->pmu);
        for (int i = 0; i < gone; i++) {
            int idx = snap[i].idx;
            conn_ctx *cx = snap[i].cx;
            if (idx < s->n_parked && s->parked[idx] == cx && cx->serial == snap[i].serial) {
                cx->gone = true;
                unpark_locked(s, cx);
            }
        }
        next_sweep = folio_now() + SERVE_WAIT_SLICE_MS / 1e3;
    }
    pthread_mutex_unlock(&s->pmu);
    free(snap);
    return NULL;
}

/* ---- simple routes (answered on libmicrohttpd's thread) ---- */

static enum MHD_Result do_models(conn_ctx *cx, struct MHD_Connection *c) {
    json_t *o = json_object(), *data = json_array(), *m = json_object();
    json_object_set_new(m, "id", json_string(cx->s->cfg.served_name));
    json_object_set_new(m, "object", json_string("model"));
    json_object_set_new(m, "created", json_integer((json_int_t)time(NULL)));
    json_object_set_new(m, "owned_by", json_string("folio"));
    json_object_set_new(m, "max_model_len", json_integer(cx->s->cfg.max_model_len));
    json_array_append_new(data, m);
    json_object_set_new(o, "object", json_string("list"));
    json_object_set_new(o, "data", data);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return reply_json(cx, c, 200, s);
}

static enum MHD_Result do_simple(conn_ctx *cx, struct MHD_Connection *c) {
    http_server *s = cx->s;
    switch (cx->route) {
    case R_HEALTH: {
        const char *f = serve_loop_failure(s->L);
        if (f) return reply_error(cx, c, 503, f, "");
        char stalled[256];
        if (serve_loop_stalled(s->L, stalled, sizeof stalled))
            return reply_error(cx, c, 503, stalled, "");
        return reply(cx, c, 200, "text/plain", folio_xstrdup(""));
    }
    case R_METRICS:
        return reply(cx, c, 200, "text/plain; version=0.0.4; charset=utf-8",
                     metrics_render(s->m));
    default: return do_models(cx, c);
    }
}

/* ---- preparation (a preparation thread): tokenize, detokenize, generation requests ---- */

static void prep_tokenize(conn_ctx *cx) {
    json_error_t jerr;
    json_t *o = json_loadb(cx->body ? cx->body : "", cx->len, 0, &jerr);
    if (!json_is_object(o)) {
        json_decref(o);
        answer_error(cx, 400, "request body: expected a JSON object", "");
        return;
    }
    token_ids ids = {0};
    if (prompt_tokenize(&cx->s->pb, o, &ids) != 0) {
        answer_error(cx, 400, folio_last_error(), NULL);
    } else {
        json_t *r = json_object(), *arr = json_array();
        for (size_t i = 0; i < ids.n; i++) json_array_append_new(arr, json_integer(ids.ids[i]));
        json_object_set_new(r, "count", json_integer((json_int_t)ids.n));
        json_object_set_new(r, "max_model_len", json_integer(cx->s->cfg.max_model_len));
        json_object_set_new(r, "tokens", arr);
        answer(cx, 200, json_dumps(r, JSON_COMPACT | JSON_PRESERVE_ORDER));
        json_decref(r);
    }
    token_ids_free(&ids);
    json_decref(o);
}

static void prep_detokenize(conn_ctx *cx) {
    json_error_t jerr;
    json_t *o = json_loadb(cx->body ? cx->body : "", cx->len, 0, &jerr);
    json_t *toks = json_is_object(o) ? json_object_get(o, "tokens") : NULL;
    if (!json_is_array(toks)) {
        json_decref(o);
        answer_error(cx, 400, "request body: field 'tokens': expected a list of token ids",
                     "tokens");
        return;
    }
    size_t n = json_array_size(toks);
    int32_t *ids = folio_xmalloc(sizeof *ids * (n ? n : 1));
    json_src src = {.origin = "request body", .object = NULL};
    for (size_t i = 0; i < n; i++) {
        char key[32];
        int v;
        snprintf(key, sizeof key, "tokens[%zu]", i);
        if (json_value_int(json_array_get(toks, i), key, &src, 0, cx->s->cfg.vocab - 1, &v) != 0) {
            answer_error(cx, 400, folio_last_error(), NULL);
            goto out;
        }
        ids[i] = v;
    }
    text_buf t = {0};
    if (tokenizer_decode(cx->s->tok, ids, n, false, &t) != 0) {
        answer_error(cx, 400, folio_last_error(), "tokens");
    } else {
        json_t *r = json_object();
        json_object_set_new(r, "prompt", json_stringn(t.s ? t.s : "", t.len));
        answer(cx, 200, json_dumps(r, JSON_COMPACT));
        json_decref(r);
    }
    text_buf_free(&t);
out:
    free(ids);
    json_decref(o);
}

/* The request's parameters for the log line. malloc'd. */
static char *params_line(const oai_request *rq) {
    const request_params *p = &rq->p;
    char buf[512];
    snprintf(buf, sizeof buf, "max_tokens=%d n=%d temperature=%g top_p=%g top_k=%d "
             "min_p=%g seed=%llu stop=%d stop_token_ids=%d logprobs=%d session=%lld "
             "stream=%d", p->max_tokens, p->n, p->sampling.temperature, p->sampling.top_p,
             p->sampling.top_k, p->sampling.min_p, (unsigned long long)p->seed, p->n_stop,
             p->n_stop_ids, p->logprobs, (long long)p->session_id, rq->stream);
    return folio_xstrdup(buf);
}

/* The response's context (id, echo texts) and the log line of a request about to run. */
static void setup_response(conn_ctx *cx, const oai_request *rq, const prompt_set *ps) {
    http_server *s = cx->s;
    oai_response_ctx *x = &cx->x;
    x->kind = rq->kind;
    snprintf(x->id, sizeof x->id, "%s-%016llx%08llx", rq->kind == OAI_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)time(NULL) * 2654435761ull, (unsigned long long)next_request_id(s));
    x->created = (long long)time(NULL);
    x->model = s->cfg.served_name;
    x->tok = s->tok;
    x->return_token_ids = rq->return_token_ids;
    x->include_usage = rq->include_usage;
    if (rq->echo) {
        cx->n_echo = ps->n;
        x->echo = folio_xcalloc(ps->n, sizeof *x->echo);
        for (int i = 0; i < ps->n; i++)
            x->echo[i] = prompt_text(&s->pb, ps->ids[i], ps->len[i], rq->skip_special);
    }
    if (s->cfg.log_requests && s->cfg.access_log) cx->log_params = params_line(rq);
}

/* Parses the body into rq (freed by the caller either way) and checks it can be served; false
 * with the error answered. */
static bool read_request(conn_ctx *cx, oai_request *rq) {
    http_server *s = cx->s;
    oai_limits lim = {.vocab = s->cfg.vocab, .max_n = s->cfg.max_n, .defaults = s->cfg.defaults};
    uint64_t seed = ((uint64_t)time(NULL) << 20) ^ (next_request_id(s) * FOLIO_GOLDEN64);
    cx->kind = cx->route == R_CHAT ? OAI_CHAT : OAI_COMPLETION;
    int rc = oai_parse_request(cx->body ? cx->body : "", cx->len, cx->kind, &lim, seed, rq);
    log_unknown(s, rq);
    if (rc != 0) {
        answer_error(cx, 400, folio_last_error(), NULL);
        return false;
    }
    if (rq->model && strcmp(rq->model, s->cfg.served_name) != 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "The model `%.200s` does not exist (this server serves `%.200s`)",
                 rq->model, s->cfg.served_name);
        answer_error(cx, 404, msg, "model");
        return false;
    }
    if (cx->kind == OAI_CHAT && !s->pb.ct) {
        answer_error(cx, 400, "request body: field 'messages': this model has no chat template "
                              "(tokenizer_config.json chat_template); use /v1/completions",
                     "messages");
        return false;
    }
    return true;
}

/* Builds the job and submits it (the answer is left to the connection once the engine has
 * it), or answers the error. */
static void prep_generate(conn_ctx *cx) {
    http_server *s = cx->s;
    oai_request rq;
    prompt_set ps = {0};
    if (!read_request(cx, &rq)) goto out;
    if (oai_tools_prepare(&rq, &s->cfg.tools, &cx->x.tools) != 0) {
        answer_error(cx, 400, folio_last_error(), NULL);
        goto out;
    }
    if (prompt_build(&s->pb, &rq, &ps) != 0) {
        answer_error(cx, 400, folio_last_error(), NULL);
        goto out;
    }
    rq.p.max_tokens = prompt_max_tokens(&s->pb, &rq, &ps);
    if (rq.p.proc.min_tokens > rq.p.max_tokens) {
        char msg[200];
        snprintf(msg, sizeof msg, "request body: field 'min_tokens': %d is more than the %d "
                 "tokens this request may generate (max_tokens)", rq.p.proc.min_tokens,
                 rq.p.max_tokens);
        answer_error(cx, 400, msg, "min_tokens");
        goto out;
    }
    /* a prompt too long for its max_tokens fails here, not after it was counted in flight
     * (where a request that cannot run would crowd out others: 429s while it waits) */
    for (int i = 0; i < ps.n; i++)
        if (engine_check_length(s->cfg.max_model_len, ps.len[i], rq.p.max_tokens) != 0) {
            answer_error(cx, 400, folio_last_error(), NULL);
            goto out;
        }
    cx->job = job_create(cx->kind == OAI_CHAT ? 1 : rq.n_prompts);
    setup_response(cx, &rq, &ps);
    job_set_params(cx->job, &rq.p, rq.skip_special, rq.stream);
    for (int i = 0; i < ps.n; i++) {
        job_set_prompt(cx->job, i, ps.ids[i], ps.len[i]);
        ps.ids[i] = NULL;
    }
    cx->stream = rq.stream;
    job_set_notify(cx->job, wake, cx);
    int sub = serve_loop_submit(s->L, cx->job, &s->admit);
    if (sub == -2 || sub == -3) {
        int64_t seqs, toks, my_seqs, my_toks;
        serve_loop_load(s->L, &seqs, &toks);
        job_cost(cx->job, &my_seqs, &my_toks);
        char msg[300];
        if (sub == -2)
            snprintf(msg, sizeof msg, "the server's queue is full: %lld sequences in flight, and "
                     "this request adds %lld (at most %lld: --max-num-seqs + --max-queue); retry "
                     "later", (long long)seqs, (long long)my_seqs, (long long)s->admit.max_seqs);
        else
            snprintf(msg, sizeof msg, "the server's queue is full: %lld tokens in flight, and "
                     "this request adds %lld (prompt + max_tokens for each sequence; at most "
                     "%lld: --max-queue-tokens); retry later", (long long)toks,
                     (long long)my_toks, (long long)s->admit.max_tokens);
        answer_error(cx, 429, msg, "");
    } else if (sub != 0) {
        answer_error(cx, 503, "the server is shutting down", "");
    }
out:
    prompt_set_free(&ps);
    oai_request_free(&rq);
}

/* DELETE /v1/sessions/{id}: an id of digits is the integer session_id, anything else the
 * string one (hashed as in a body). Ended on the engine thread; this preparation thread waits
 * for it. 200 {"id", "object": "session", "deleted": true}; 404 unknown (or already ended);
 * 409 a turn in flight. */
static void prep_session(conn_ctx *cx) {
    const char *key = cx->session;
    size_t len = strlen(key);
    bool digits = len > 0 && len <= 18 && strspn(key, "0123456789") == len;
    if (len == 0) {
        answer_error(cx, 404, "no session id in the path (DELETE /v1/sessions/ID)", "");
        return;
    }
    int64_t id = digits ? (int64_t)strtoll(key, NULL, 10) : request_session_id_of_name(key);
    char *msg = NULL;
    int rc = serve_loop_end_session(cx->s->L, id, &msg);
    if (rc == 0) {
        json_t *o = json_object();
        json_object_set_new(o, "id", digits ? json_integer((json_int_t)id) : json_string(key));
        json_object_set_new(o, "object", json_string("session"));
        json_object_set_new(o, "deleted", json_true());
        answer(cx, 200, json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER));
        json_decref(o);
    } else {
        answer_error(cx, rc == SERVE_SESSION_BUSY ? 409 : rc == SERVE_SESSION_UNKNOWN ? 404 : 503,
                     msg ? msg : "failed", "");
    }
    free(msg);
}

/* Hands the request to a preparation thread (the connection parks meanwhile). */
static void prep_submit(conn_ctx *cx) {
    http_server *s = cx->s;
    pthread_mutex_lock(&s->qmu);
    cx->q_next = NULL;
    if (s->q_tail) s->q_tail->q_next = cx;
    else s->q_head = cx;
    s->q_tail = cx;
    pthread_cond_signal(&s->qcv);
    pthread_mutex_unlock(&s->qmu);
}

/* The request is the connection's again: its answer, or a job the engine has. */
static void prep_done(conn_ctx *cx) {
    http_server *s = cx->s; /* once resumed, cx may be freed (a client gone: completed) */
    pthread_mutex_lock(&s->pmu);
    cx->prepped = true;
    wake_locked(s, cx);
    pthread_mutex_unlock(&s->pmu);
}

static void *prep_main(void *arg) {
    http_server *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->qmu);
        while (!s->q_head && !s->q_quit) pthread_cond_wait(&s->qcv, &s->qmu);
        conn_ctx *cx = s->q_quit ? NULL : s->q_head;
        if (cx && !(s->q_head = cx->q_next)) s->q_tail = NULL;
        pthread_mutex_unlock(&s->qmu);
        if (!cx) return NULL;
        if (cx->route == R_TOKENIZE) prep_tokenize(cx);
        else if (cx->route == R_DETOKENIZE) prep_detokenize(cx);
        else if (cx->route == R_SESSION) prep_session(cx);
        else prep_generate(cx);
        release_body(cx);
        folio_clear_error();
        prep_done(cx);
    }
}

/* ---- the connection's side of a request whose body is in ---- */

/* Answers with the job's error (400, or 404 / 429 for sessions) when it failed; false when it
 * did not. */
static bool reply_failure(conn_ctx *cx, struct MHD_Connection *c, enum MHD_Result *res) {
    int status;
    char *failure = job_failure(cx->job, &status);
    if (!failure) return false;
    *res = reply_error(cx, c, (unsigned)status, failure, NULL);
    free(failure);
    return true;
}

static sse_park_result stream_park(void *user) {
    conn_ctx *cx = user;
    if (conn_dead(cx)) return SSE_GONE;
    return park(cx) ? SSE_PARKED : SSE_RETRY;
}

static enum MHD_Result start_stream(conn_ctx *cx, struct MHD_Connection *c) {
    cx->sse = sse_stream_create(cx->job, &cx->x, stream_park, cx);
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024,
                                                               sse_stream_read, cx->sse, NULL);
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    add_cors(cx->s, r);
    enum MHD_Result res = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    cx->responded = true;
    cx->status = 200;
    return res;
}

static enum MHD_Result reply_refused(conn_ctx *cx, struct MHD_Connection *c) {
    char msg[200];
    http_server *s = cx->s;
    if (cx->refused == 413)
        snprintf(msg, sizeof msg, "the request body is larger than the limit of %zu bytes (%s)",
                 cx->limit, cx->limit == s->cfg.max_body ? "--max-body-bytes"
                                                         : "--max-tokenize-bytes");
    else if (cx->refused == 429)
        snprintf(msg, sizeof msg, "this client's request bodies in flight would pass %zu bytes "
                 "(--max-buffered-bytes-per-client); retry later", s->cfg.max_buffered_client);
    else
        snprintf(msg, sizeof msg, "the request bodies in flight would pass %zu bytes "
                 "(--max-buffered-bytes); retry later", s->cfg.max_buffered);
    return reply_error(cx, c, cx->refused, msg, "");
}

/* Called when the body is in, and again after each resume: moves the request on as far as it
 * can, then answers, or parks until there is news. */
static enum MHD_Result request_ready(conn_ctx *cx, struct MHD_Connection *c) {
    enum MHD_Result res;
    if (cx->refused) return reply_refused(cx, c);
    for (;;) {
        switch (cx->phase) {
        case PH_BODY:
            if (cx->route != R_COMPLETIONS && cx->route != R_CHAT && cx->route != R_TOKENIZE &&
                cx->route != R_DETOKENIZE && cx->route != R_SESSION) {
                release_body(cx);
                return do_simple(cx, c);
            }
            cx->phase = PH_PREP;
            prep_submit(cx);
            break;
        case PH_PREP: {
            pthread_mutex_lock(&cx->s->pmu);
            bool ready = cx->prepped;
            pthread_mutex_unlock(&cx->s->pmu);
            if (!ready) break; /* a preparation thread has it: only its wake moves on */
            if (cx->pend_body) {
                char *body = cx->pend_body;
                cx->pend_body = NULL;
                return reply_json(cx, c, cx->pend_status, body);
            }
            cx->phase = PH_ACCEPT;
            continue;
        }
        case PH_ACCEPT:
            if (conn_dead(cx)) {
                serve_loop_cancel(cx->s->L, cx->job);
                return MHD_NO;
            }
            if (!job_ready(cx->job, JOB_WAIT_ACCEPTED)) break;
            if (reply_failure(cx, c, &res)) return res;
            if (cx->stream) return start_stream(cx, c);
            cx->phase = PH_OVER;
            continue;
        default: /* PH_OVER */
            if (conn_dead(cx)) {
                serve_loop_cancel(cx->s->L, cx->job);
                return MHD_NO;
            }
            if (!job_ready(cx->job, JOB_WAIT_OVER)) break;
            if (reply_failure(cx, c, &res)) return res;
            return reply_json(cx, c, 200, oai_format_response(&cx->x, cx->job));
        }
        if (park(cx)) return MHD_YES; /* called again once resumed */
    }
}

/* ---- MHD callbacks ---- */

/* The route of a request, and the method it takes (*want). */
static int route_of(const char *method, const char *url, const char **want) {
    static const struct {
        const char *url;
        int route;
        const char *method;
    } T[] = {{"/health", R_HEALTH, "GET"},           {"/metrics", R_METRICS, "GET"},
             {"/v1/models", R_MODELS, "GET"},        {"/v1/completions", R_COMPLETIONS, "POST"},
             {"/v1/chat/completions", R_CHAT, "POST"}, {"/tokenize", R_TOKENIZE, "POST"},
             {"/detokenize", R_DETOKENIZE, "POST"}};
    int route = R_NONE;
    for (size_t i = 0; i < sizeof T / sizeof T[0] && route == R_NONE; i++)
        if (strcmp(url, T[i].url) == 0) {
            *want = T[i].method;
            route = T[i].route;
        }
    if (route == R_NONE && strncmp(url, SESSIONS_PREFIX, strlen(SESSIONS_PREFIX)) == 0) {
        *want = "DELETE";
        route = R_SESSION;
    }
    if (route != R_NONE && strcmp(method, "OPTIONS") == 0) return R_OPTIONS;
    return route;
}

/* With --api-key: every route needs it but /health and /metrics (vLLM's rule), unknown ones
 * too (401 before 404). Compared in constant time. */
static bool authorized(const http_server *s, struct MHD_Connection *c, int route) {
    if (!s->cfg.api_key || route == R_HEALTH || route == R_METRICS) return true;
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!auth || strncmp(auth, "Bearer ", 7) != 0) return false;
    return ct_equal(s->cfg.api_key, strlen(s->cfg.api_key), auth + 7, strlen(auth + 7));
}

/* The headers are in: everything that can be refused before the body is read is refused here
 * (libmicrohttpd then sends the answer without reading the body, and closes). */
static enum MHD_Result first_call(conn_ctx *cx, struct MHD_Connection *c, const char *url,
                                  const char *method) {
    http_server *s = cx->s;
    if (atomic_load(&s->open_conns) > (int)s->serve_max) {
        char msg[160];
        snprintf(msg, sizeof msg, "the server has too many connections open (at most %u, "
                 "--max-connections); retry later", s->serve_max);
        return reply_error(cx, c, 503, msg, "");
    }
    const char *want = "GET";
    cx->route = route_of(method, url, &want);
    bool post = strcmp(want, "POST") == 0;
    if (cx->route == R_OPTIONS) {
        if (!s->cfg.cors) return reply_error(cx, c, 405, "CORS is off (--cors)", "");
        return reply(cx, c, 204, "text/plain", folio_xstrdup(""));
    }
    if (!authorized(s, c, cx->route))
        return reply_error(cx, c, 401, "invalid or missing API key (Authorization: Bearer)", "");
    if (cx->route == R_NONE) return reply_error(cx, c, 404, "no such route", "");
    if (strcmp(method, want) != 0) {
        char msg[32];
        snprintf(msg, sizeof msg, "use %s", want);
        return reply_error(cx, c, 405, msg, "");
    }
    if (cx->route == R_SESSION) cx->session = folio_xstrdup(url + strlen(SESSIONS_PREFIX));
    cx->limit = s->cfg.max_body; /* a GET's body, if any, is read (within it) and ignored */
    if (!post) return MHD_YES;
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    if (ct && !media_type_is_json(ct)) {
        char msg[200], esc[80];
        snprintf(msg, sizeof msg, "Content-Type '%s' is not supported: the body must be "
                 "application/json", folio_escape_log(ct, strlen(ct), esc, sizeof esc));
        return reply_error(cx, c, 415, msg, "");
    }
    if ((cx->route == R_TOKENIZE || cx->route == R_DETOKENIZE) &&
        s->cfg.max_tokenize_body < cx->limit)
        cx->limit = s->cfg.max_tokenize_body;
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (!cl) return MHD_YES; /* chunked: reserved piece by piece */
    unsigned long long n = strtoull(cl, NULL, 10);
    if (n > cx->limit) {
        cx->refused = 413;
        return reply_refused(cx, c);
    }
    budget_result br = body_budget_take(s->budget, &cx->client, (size_t)n);
    if (br != BUDGET_OK) {
        cx->refused = br == BUDGET_FULL ? 503 : 429;
        return reply_refused(cx, c);
    }
    cx->reserved = (size_t)n;
    return MHD_YES;
}

/* A piece of the body: kept within the route's limit and the budget (a chunked upload
 * reserves as it goes); past either, the rest is dropped and the answer is 413 / 429 / 503. */
static void take_upload(conn_ctx *cx, const char *data, size_t n) {
    http_server *s = cx->s;
    if (cx->refused) return;
    if (cx->len + n > cx->limit) {
        cx->refused = 413;
        release_body(cx);
        return;
    }
    if (cx->len + n > cx->reserved) {
        size_t more = cx->len + n - cx->reserved;
        budget_result br = body_budget_take(s->budget, &cx->client, more);
        if (br != BUDGET_OK) {
            cx->refused = br == BUDGET_FULL ? 503 : 429;
            release_body(cx);
            return;
        }
        cx->reserved += more;
    }
    if (cx->len + n + 1 > cx->cap) { /* the declared length at once, else doubled */
        size_t cap = cx->reserved + 1 > cx->len + n + 1 ? cx->reserved + 1
                                                       : folio_grow_cap(cx->cap, cx->len + n + 1);
        cx->cap = cap < cx->limit + 1 ? cap : cx->limit + 1;
        cx->body = folio_xrealloc(cx->body, cx->cap);
    }
    memcpy(cx->body + cx->len, data, n);
    cx->len += n;
    cx->body[cx->len] = '\0';
}

/* The client's address and port, and the request line (client text: escaped, cut), for the
 * access line. */
static void describe_request(conn_ctx *cx, const struct sockaddr *a, const char *method,
                             const char *url) {
    char host[INET6_ADDRSTRLEN + 2] = "?", port[8] = "?";
    if (a) {
        socklen_t len = a->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                 : sizeof(struct sockaddr_in);
        if (getnameinfo(a, len, host, sizeof host, port, sizeof port,
                        NI_NUMERICHOST | NI_NUMERICSERV) != 0)
            snprintf(host, sizeof host, "?");
    }
    snprintf(cx->peer, sizeof cx->peer, a && a->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s",
             host, port);
    char m[24], u[72];
    folio_escape_log(method, strlen(method), m, sizeof m);
    folio_escape_log(url, strlen(url), u, sizeof u);
    snprintf(cx->request_line, sizeof cx->request_line, "%s %s", m, u);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version,
                               const char *upload_data, size_t *upload_size, void **con_cls) {
    http_server *s = cls;
    conn_ctx *cx = *con_cls;
    (void)version;
    if (!cx) {
        cx = folio_xcalloc(1, sizeof *cx);
        cx->s = s;
        cx->conn = c;
        cx->serial = atomic_fetch_add(&s->next_serial, 1);
        cx->t_start = folio_now();
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        cx->fd = ci ? ci->connect_fd : -1;
        ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        client_key_of(ci ? ci->client_addr : NULL, &cx->client);
        if (s->cfg.access_log) describe_request(cx, ci ? ci->client_addr : NULL, method, url);
        *con_cls = cx;
        pthread_mutex_lock(&s->mu);
        s->active++;
        pthread_mutex_unlock(&s->mu);
        return first_call(cx, c, url, method);
    }
    if (cx->responded) { /* an early answer: the body is dropped */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        take_upload(cx, upload_data, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    return request_ready(cx, c);
}

/* One line per request when it ends (--disable-log-requests: none): the client, the request
 * line, the status sent (499: none, the client went first), the tokens, the time since the
 * headers came; for a generation also the time to the first token, how it finished (abort: the
 * client went away or the server cancelled it; the tokens are those made so far) and its id;
 * with --log-requests its parameters. */
static void log_access(conn_ctx *cx, enum MHD_RequestTerminationCode toe) {
    int prompt = 0, output = 0;
    char more[160] = "";
    if (cx->job && cx->x.id[0]) {
        serve_stats st;
        job_stats(cx->job, &st);
        const char *why = "-";
        if (st.state == JOB_FAILED) why = "error";
        else if (st.first_done) why = oai_finish_name(st.first_finish);
        if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && st.state != JOB_DONE) why = "abort";
        prompt = st.prompt_len;
        output = st.completion_tokens;
        snprintf(more, sizeof more, " ttft_ms=%.1f finish=%s id=%s",
                 st.ttft_s >= 0 ? st.ttft_s * 1e3 : -1, why, cx->x.id);
    }
    fprintf(stderr, "folio: access: %s '%s' %u prompt_tokens=%d output_tokens=%d ms=%.1f%s%s%s\n",
            cx->peer, cx->request_line, cx->status ? cx->status : 499, prompt, output,
            (folio_now() - cx->t_start) * 1e3, more, cx->log_params ? "; " : "",
            cx->log_params ? cx->log_params : "");
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    http_server *s = cls;
    conn_ctx *cx = *con_cls;
    (void)c;
    if (!cx) return;
    if (cx->job) {
        job_set_notify(cx->job, NULL, NULL); /* no wake for cx from here on */
        serve_stats st;
        job_stats(cx->job, &st);
        bool over = st.state != JOB_RUNNING;
        if (!over || toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) serve_loop_cancel(s->L, cx->job);
    }
    if (s->cfg.access_log) log_access(cx, toe);
    if (cx->job) job_release(cx->job);
    for (int i = 0; cx->x.echo && i < cx->n_echo; i++) free(cx->x.echo[i]);
    free(cx->x.echo);
    release_body(cx);
    free(cx->pend_body);
    sse_stream_free(cx->sse);
    free(cx->log_params);
    free(cx->session);
    free(cx);
    *con_cls = NULL;
    pthread_mutex_lock(&s->mu);
    s->active--;
    pthread_mutex_unlock(&s->mu);
}

/* A connection beyond open_max is closed at once, before anything is read (the cheapest
 * refusal: libmicrohttpd's own limit, a little higher, would leave it waiting in the backlog). */
static enum MHD_Result accept_policy(void *cls, const struct sockaddr *addr, socklen_t len) {
    http_server *s = cls;
    (void)addr;
    (void)len;
    int open = atomic_load(&s->open_conns);
    if (open < (int)s->open_max) return MHD_YES;
    folio_log_limited(&s->refuse_log, "folio: serve: refusing connections: %d open, at most %u "
                      "(--max-connections, and the open-file limit)", open, s->open_max);
    return MHD_NO;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
    http_server *s = cls;
    (void)c;
    (void)socket_context;
    atomic_fetch_add(&s->open_conns, toe == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1);
}

/* ---- start / stop ---- */

static void server_free(http_server *s) {
    for (int k = 0; k < s->n_mhd_logs; k++) folio_log_limit_destroy(&s->mhd_logs[k].lim);
    folio_log_limit_destroy(&s->mhd_other_log);
    folio_log_limit_destroy(&s->unknown_log);
    folio_log_limit_destroy(&s->refuse_log);
    body_budget_free(s->budget);
    prompt_builder_destroy(&s->pb);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->lmu);
    pthread_mutex_destroy(&s->pmu);
    pthread_cond_destroy(&s->pcv);
    pthread_mutex_destroy(&s->qmu);
    pthread_cond_destroy(&s->qcv);
    free(s->parked);
    free(s);
}

/* Stops the preparation threads and the waker (every parked connection resumed, none parks
 * again); requests that were waiting for preparation get 503. */
static void stop_threads(http_server *s) {
    pthread_mutex_lock(&s->qmu);
    s->q_quit = true;
    pthread_cond_broadcast(&s->qcv);
    pthread_mutex_unlock(&s->qmu);
    for (int i = 0; i < s->n_prep; i++) pthread_join(s->prep[i], NULL);
    s->n_prep = 0;
    for (conn_ctx *cx = s->q_head, *next; cx; cx = next) {
        next = cx->q_next;
        answer_error(cx, 503, "the server is shutting down", "");
        release_body(cx);
        prep_done(cx);
    }
    s->q_head = s->q_tail = NULL;
    if (s->waker_started) {
        pthread_mutex_lock(&s->pmu);
        s->stopping = true;
        pthread_cond_signal(&s->pcv);
        pthread_mutex_unlock(&s->pmu);
        pthread_join(s->waker, NULL);
        s->waker_started = false;
    }
}

http_server *http_server_start(const http_config *c, serve_loop *L, tokenizer *tok,
                               const chat_template *ct, metrics *m) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", c->port);
    int gai = getaddrinfo(c->host, port, &hints, &ai);
    if (gai != 0) {
        folio_fail("--host %s: %s", c->host, gai_strerror(gai));
        return NULL;
    }
    http_server *s = folio_xcalloc(1, sizeof *s);
    s->cfg = *c;
    s->L = L;
    s->tok = tok;
    s->m = m;
    s->budget = body_budget_create(c->max_buffered, c->max_buffered_client);
    s->admit = (serve_admission){.max_seqs = (int64_t)c->max_n + c->max_queue,
                                 .max_tokens = c->max_queue_tokens};
    prompt_builder_init(&s->pb, tok, ct, c->max_model_len);
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->lmu, NULL);
    pthread_mutex_init(&s->pmu, NULL);
    pthread_cond_init(&s->pcv, NULL);
    pthread_mutex_init(&s->qmu, NULL);
    pthread_cond_init(&s->qcv, NULL);
    folio_log_limit_init(&s->unknown_log, LOG_BURST, LOG_WINDOW_S);
    folio_log_limit_init(&s->mhd_other_log, LOG_BURST, LOG_WINDOW_S);
    folio_log_limit_init(&s->refuse_log, 1, LOG_WINDOW_S);
    long soft_before, soft_after;
    fd_connection_limits(c->max_connections, FD_RESERVE, &s->serve_max, &s->open_max,
                         &soft_before, &soft_after);
    if (soft_after != soft_before)
        fprintf(stderr, "folio: serve: raised the open-file limit from %ld to %ld\n",
                soft_before, soft_after);
    unsigned threads = c->threads > 0 ? (unsigned)c->threads : 1;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    flags |= MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES ? MHD_USE_EPOLL : MHD_USE_POLL;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->d = MHD_start_daemon(flags, (uint16_t)c->port, accept_policy, s, handler, s,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s, /* first: it says so */
                            MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                            MHD_OPTION_THREAD_POOL_SIZE, threads,
                            MHD_OPTION_CONNECTION_LIMIT, s->open_max + FD_SLACK,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)c->idle_timeout_s,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
                            MHD_OPTION_THREAD_STACK_SIZE, (size_t)(1 << 20),
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
                            MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->d) {
        folio_fail("serve: cannot listen on %s:%d (in use, or not an address of this host?)",
                   c->host, c->port);
        server_free(s);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : c->port;
    bool ok = pthread_create(&s->waker, NULL, waker_main, s) == 0;
    s->waker_started = ok;
    for (int i = 0; ok && i < PREP_THREADS; i++) {
        ok = pthread_create(&s->prep[i], NULL, prep_main, s) == 0;
        if (ok) s->n_prep++;
    }
    if (!ok) {
        folio_fail("serve: cannot start the server's threads");
        stop_threads(s);
        MHD_stop_daemon(s->d);
        server_free(s);
        return NULL;
    }
    return s;
}

int http_server_port(const http_server *s) { return s->port; }

void http_server_connection_limits(const http_server *s, unsigned *served, unsigned *held) {
    *served = s->serve_max;
    *held = s->open_max;
}

void http_server_quiesce(http_server *s) {
    MHD_socket fd = MHD_quiesce_daemon(s->d);
    if (fd != MHD_INVALID_SOCKET) close(fd);
}

int http_server_active(http_server *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->active;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void http_server_stop(http_server *s) {
    if (!s) return;
    stop_threads(s);
    MHD_stop_daemon(s->d);
    server_free(s);
}
