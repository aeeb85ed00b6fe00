/* libmicrohttpd glue of `folio serve`: routes, authentication, body limits, responses; the
 * generation routes hand prompts to prompts.c, jobs to serve_loop.c and streams to sse.c. */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
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
#include "http_server.h"
#include "json_util.h"
#include "openai_api.h"
#include "openai_format.h"
#include "progress.h"
#include "prompts.h"
#include "sse.h"

#define MAX_LOGGED_UNKNOWN 64

struct http_server {
    http_config cfg;
    struct MHD_Daemon *d;
    serve_loop *L;
    tokenizer *tok;
    prompt_builder pb;
    metrics *m;
    pthread_mutex_t mu;          /* below */
    int active;
    uint64_t next_id;
    char *logged[MAX_LOGGED_UNKNOWN];
    int n_logged;
    int port;
};

enum { R_NONE, R_HEALTH, R_METRICS, R_MODELS, R_COMPLETIONS, R_CHAT, R_TOKENIZE, R_DETOKENIZE,
       R_OPTIONS };

typedef struct {
    http_server *s;
    int route;
    char *body;
    size_t len, cap;
    bool too_big, responded;
    bool unauthorized;           /* answered 401 once the body has been read (no reset) */
    /* a generation */
    serve_job *job;
    oai_response_ctx x;
    int n_echo;                  /* x.echo's prompts */
    oai_kind kind;
    double t_start;
    struct MHD_Connection *conn;
    sse_stream *sse;             /* a stream */
    char *log_params;
} conn_ctx;

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
    MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
}

static enum MHD_Result reply(conn_ctx *cx, struct MHD_Connection *c, unsigned status,
                             const char *type, char *body /* taken */) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body,
                                                             MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", type);
    add_cors(cx->s, r);
    if (status == 429) MHD_add_response_header(r, "Retry-After", "1");
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    cx->responded = true;
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
    case 413: return "RequestTooLarge";
    case 429: return "RateLimitError";
    case 503: return "ServiceUnavailableError";
    default: return "InternalServerError";
    }
}

static enum MHD_Result reply_error(conn_ctx *cx, struct MHD_Connection *c, unsigned status,
                                   const char *message, const char *param) {
    char p[96];
    if (!param) oai_error_param(message, p, sizeof p);
    return reply_json(cx, c, status,
                      oai_format_error(message, error_type(status), param ? param : p,
                                       (int)status));
}

/* True when the peer closed the connection (or it broke). */
static bool client_gone(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return false;
    char b;
    ssize_t r = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static bool conn_gone(void *conn) { return client_gone(conn); }

/* Waits for the job; false if the client went away first (the job is then cancelled). */
static bool wait_job(conn_ctx *cx, job_wait_for until) {
    if (job_wait(cx->job, until, conn_gone, cx->conn)) return true;
    serve_loop_cancel(cx->s->L, cx->job);
    return false;
}

static void log_unknown_once(http_server *s, const oai_request *r) {
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < r->n_unknown; i++) {
        bool seen = false;
        for (int k = 0; k < s->n_logged && !seen; k++) seen = strcmp(s->logged[k], r->unknown[i]) == 0;
        if (seen || s->n_logged == MAX_LOGGED_UNKNOWN) continue;
        s->logged[s->n_logged++] = folio_xstrdup(r->unknown[i]);
        fprintf(stderr, "folio: serve: ignoring unknown request field '%s' (logged once)\n",
                r->unknown[i]);
    }
    pthread_mutex_unlock(&s->mu);
}

/* ---- simple routes ---- */

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

static enum MHD_Result do_tokenize(conn_ctx *cx, struct MHD_Connection *c) {
    json_error_t jerr;
    json_t *o = json_loadb(cx->body ? cx->body : "", cx->len, 0, &jerr);
    if (!json_is_object(o)) {
        json_decref(o);
        return reply_error(cx, c, 400, "request body: expected a JSON object", "");
    }
    token_ids ids = {0};
    enum MHD_Result res;
    if (prompt_tokenize(&cx->s->pb, o, &ids) != 0) {
        res = reply_error(cx, c, 400, folio_last_error(), NULL);
    } else {
        json_t *r = json_object(), *arr = json_array();
        for (size_t i = 0; i < ids.n; i++) json_array_append_new(arr, json_integer(ids.ids[i]));
        json_object_set_new(r, "count", json_integer((json_int_t)ids.n));
        json_object_set_new(r, "max_model_len", json_integer(cx->s->cfg.max_model_len));
        json_object_set_new(r, "tokens", arr);
        res = reply_json(cx, c, 200, json_dumps(r, JSON_COMPACT | JSON_PRESERVE_ORDER));
        json_decref(r);
    }
    token_ids_free(&ids);
    json_decref(o);
    return res;
}

static enum MHD_Result do_detokenize(conn_ctx *cx, struct MHD_Connection *c) {
    json_error_t jerr;
    json_t *o = json_loadb(cx->body ? cx->body : "", cx->len, 0, &jerr);
    json_t *toks = json_is_object(o) ? json_object_get(o, "tokens") : NULL;
    if (!json_is_array(toks)) {
        json_decref(o);
        return reply_error(cx, c, 400, "request body: field 'tokens': expected a list of token "
                                       "ids", "tokens");
    }
    size_t n = json_array_size(toks);
    int32_t *ids = folio_xmalloc(sizeof *ids * (n ? n : 1));
    json_src src = {.origin = "request body", .object = NULL};
    enum MHD_Result res;
    for (size_t i = 0; i < n; i++) {
        char key[32];
        int v;
        snprintf(key, sizeof key, "tokens[%zu]", i);
        if (json_value_int(json_array_get(toks, i), key, &src, 0, cx->s->cfg.vocab - 1, &v) != 0) {
            res = reply_error(cx, c, 400, folio_last_error(), NULL);
            goto out;
        }
        ids[i] = v;
    }
    text_buf t = {0};
    if (tokenizer_decode(cx->s->tok, ids, n, false, &t) != 0) {
        res = reply_error(cx, c, 400, folio_last_error(), "tokens");
    } else {
        json_t *r = json_object();
        json_object_set_new(r, "prompt", json_stringn(t.s ? t.s : "", t.len));
        res = reply_json(cx, c, 200, json_dumps(r, JSON_COMPACT));
        json_decref(r);
    }
    text_buf_free(&t);
out:
    free(ids);
    json_decref(o);
    return res;
}

/* ---- generation ---- */

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
    if (s->cfg.log_requests) cx->log_params = params_line(rq);
}

/* Parses the body into rq (freed by the caller either way) and checks it can be served; false
 * with the error answered in *res. */
static bool read_request(conn_ctx *cx, struct MHD_Connection *c, oai_request *rq,
                         enum MHD_Result *res) {
    http_server *s = cx->s;
    oai_limits lim = {.vocab = s->cfg.vocab, .max_n = s->cfg.max_n};
    uint64_t seed = ((uint64_t)time(NULL) << 20) ^ (next_request_id(s) * FOLIO_GOLDEN64);
    cx->kind = cx->route == R_CHAT ? OAI_CHAT : OAI_COMPLETION;
    if (oai_parse_request(cx->body ? cx->body : "", cx->len, cx->kind, &lim, seed, rq) != 0) {
        *res = reply_error(cx, c, 400, folio_last_error(), NULL);
        return false;
    }
    log_unknown_once(s, rq);
    if (rq->model && strcmp(rq->model, s->cfg.served_name) != 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "The model `%.200s` does not exist (this server serves `%.200s`)",
                 rq->model, s->cfg.served_name);
        *res = reply_error(cx, c, 404, msg, "model");
        return false;
    }
    if (cx->kind == OAI_CHAT && !s->pb.ct) {
        *res = reply_error(cx, c, 400, "request body: field 'messages': this model has no chat "
                                       "template (tokenizer_config.json chat_template); use "
                                       "/v1/completions", "messages");
        return false;
    }
    return true;
}

/* Answers with the job's error (400) when it failed; false when it did not. */
static bool reply_failure(conn_ctx *cx, struct MHD_Connection *c, enum MHD_Result *res) {
    char *failure = job_failure(cx->job);
    if (!failure) return false;
    *res = reply_error(cx, c, 400, failure, NULL);
    free(failure);
    return true;
}

static enum MHD_Result start_stream(conn_ctx *cx, struct MHD_Connection *c) {
    cx->sse = sse_stream_create(cx->job, &cx->x, conn_gone, cx->conn);
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024,
                                                               sse_stream_read, cx->sse, NULL);
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    add_cors(cx->s, r);
    enum MHD_Result res = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    cx->responded = true;
    return res;
}

/* Submits the job and answers once the engine has it: the stream, or the whole response. */
static enum MHD_Result run_job(conn_ctx *cx, struct MHD_Connection *c, bool stream) {
    http_server *s = cx->s;
    enum MHD_Result res;
    int sub = serve_loop_submit(s->L, cx->job, s->cfg.max_queue + s->cfg.max_n);
    if (sub == -2) return reply_error(cx, c, 429, "the server's queue is full; retry later", "");
    if (sub != 0) return reply_error(cx, c, 503, "the server is shutting down", "");
    if (!wait_job(cx, JOB_WAIT_ACCEPTED)) return MHD_NO;
    if (reply_failure(cx, c, &res)) return res;
    if (stream) return start_stream(cx, c);
    if (!wait_job(cx, JOB_WAIT_OVER)) return MHD_NO;
    if (reply_failure(cx, c, &res)) return res;
    return reply_json(cx, c, 200, oai_format_response(&cx->x, cx->job));
}

static enum MHD_Result do_generate(conn_ctx *cx, struct MHD_Connection *c) {
    oai_request rq;
    prompt_set ps = {0};
    enum MHD_Result res;
    if (!read_request(cx, c, &rq, &res)) goto out;
    if (oai_tools_prepare(&rq, &cx->s->cfg.tools, &cx->x.tools) != 0) {
        res = reply_error(cx, c, 400, folio_last_error(), NULL);
        goto out;
    }
    cx->job = job_create(cx->kind == OAI_CHAT ? 1 : rq.n_prompts);
    if (prompt_build(&cx->s->pb, &rq, &ps) != 0) {
        res = reply_error(cx, c, 400, folio_last_error(), NULL);
        goto out;
    }
    rq.p.max_tokens = prompt_max_tokens(&cx->s->pb, &rq, &ps);
    setup_response(cx, &rq, &ps);
    job_set_params(cx->job, &rq.p, rq.skip_special, rq.stream);
    for (int i = 0; i < ps.n; i++) {
        job_set_prompt(cx->job, i, ps.ids[i], ps.len[i]);
        ps.ids[i] = NULL;
    }
    res = run_job(cx, c, rq.stream);
out:
    prompt_set_free(&ps);
    oai_request_free(&rq);
    return res;
}

/* ---- MHD callbacks ---- */

static int route_of(const char *method, const char *url, bool *post) {
    static const struct {
        const char *url;
        int route;
        bool post;
    } T[] = {{"/health", R_HEALTH, false},           {"/metrics", R_METRICS, false},
             {"/v1/models", R_MODELS, false},        {"/v1/completions", R_COMPLETIONS, true},
             {"/v1/chat/completions", R_CHAT, true}, {"/tokenize", R_TOKENIZE, true},
             {"/detokenize", R_DETOKENIZE, true}};
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++)
        if (strcmp(url, T[i].url) == 0) {
            *post = T[i].post;
            if (strcmp(method, "OPTIONS") == 0) return R_OPTIONS;
            return T[i].route;
        }
    return R_NONE;
}

static enum MHD_Result first_call(conn_ctx *cx, struct MHD_Connection *c, const char *url,
                                  const char *method) {
    http_server *s = cx->s;
    bool post = false;
    cx->route = route_of(method, url, &post);
    if (cx->route == R_NONE) return reply_error(cx, c, 404, "no such route", "");
    if (cx->route == R_OPTIONS) {
        if (!s->cfg.cors) return reply_error(cx, c, 405, "CORS is off (--cors)", "");
        return reply(cx, c, 204, "text/plain", folio_xstrdup(""));
    }
    if (strcmp(method, post ? "POST" : "GET") != 0)
        return reply_error(cx, c, 405, post ? "use POST" : "use GET", "");
    if (s->cfg.api_key && strncmp(url, "/v1/", 4) == 0) {
        const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
        if (!auth || strncmp(auth, "Bearer ", 7) != 0 || strcmp(auth + 7, s->cfg.api_key) != 0)
            cx->unauthorized = true;
    }
    if (post) {
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->cfg.max_body) {
            char msg[160];
            snprintf(msg, sizeof msg, "the request body of %s bytes is larger than the limit of "
                     "%zu bytes (--max-body-bytes)", cl, s->cfg.max_body);
            return reply_error(cx, c, 413, msg, "");
        }
    }
    return MHD_YES;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version,
                               const char *upload_data, size_t *upload_size, void **con_cls) {
    http_server *s = cls;
    conn_ctx *cx = *con_cls;
    if (!cx) {
        cx = folio_xcalloc(1, sizeof *cx);
        cx->s = s;
        cx->conn = c;
        cx->t_start = folio_now();
        *con_cls = cx;
        pthread_mutex_lock(&s->mu);
        s->active++;
        pthread_mutex_unlock(&s->mu);
        return first_call(cx, c, url, method);
    }
    if (cx->responded) { /* an early error: discard the body */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (cx->too_big || cx->unauthorized || cx->len + n > s->cfg.max_body) {
            cx->too_big = true;
            return MHD_YES;
        }
        if (cx->len + n + 1 > cx->cap) { /* doubled, but never past the largest body */
            size_t cap = folio_grow_cap(cx->cap, cx->len + n + 1);
            cx->cap = cap < s->cfg.max_body + 1 ? cap : s->cfg.max_body + 1;
            cx->body = folio_xrealloc(cx->body, cx->cap);
        }
        memcpy(cx->body + cx->len, upload_data, n);
        cx->len += n;
        cx->body[cx->len] = '\0';
        return MHD_YES;
    }
    if (cx->unauthorized)
        return reply_error(cx, c, 401, "invalid or missing API key (Authorization: Bearer)", "");
    if (cx->too_big)
        return reply_error(cx, c, 413, "the request body is larger than the limit "
                                       "(--max-body-bytes)", "");
    switch (cx->route) {
    case R_HEALTH: {
        const char *f = serve_loop_failure(s->L);
        if (f) return reply_error(cx, c, 503, f, "");
        return reply(cx, c, 200, "text/plain", folio_xstrdup(""));
    }
    case R_METRICS:
        return reply(cx, c, 200, "text/plain; version=0.0.4; charset=utf-8",
                     metrics_render(s->m));
    case R_MODELS: return do_models(cx, c);
    case R_TOKENIZE: return do_tokenize(cx, c);
    case R_DETOKENIZE: return do_detokenize(cx, c);
    default: return do_generate(cx, c);
    }
}

static void log_request(conn_ctx *cx, enum MHD_RequestTerminationCode toe) {
    serve_stats st;
    job_stats(cx->job, &st);
    const char *why = "-";
    if (st.state == JOB_FAILED) why = "error";
    else if (st.first_done) why = oai_finish_name(st.first_finish);
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && st.state != JOB_DONE) why = "abort";
    fprintf(stderr, "folio: request %s: prompt %d tokens, completion %d tokens, ttft %.1f ms, "
                    "total %.1f ms, finish %s%s%s\n", cx->x.id, st.prompt_len,
            st.completion_tokens, st.ttft_s >= 0 ? st.ttft_s * 1e3 : -1,
            (folio_now() - cx->t_start) * 1e3, why, cx->log_params ? "; " : "",
            cx->log_params ? cx->log_params : "");
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    http_server *s = cls;
    conn_ctx *cx = *con_cls;
    (void)c;
    if (!cx) return;
    if (cx->job) {
        serve_stats st;
        job_stats(cx->job, &st);
        bool over = st.state != JOB_RUNNING;
        if (!over || toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) serve_loop_cancel(s->L, cx->job);
        if (cx->x.id[0]) log_request(cx, toe);
        job_release(cx->job);
    }
    for (int i = 0; cx->x.echo && i < cx->n_echo; i++) free(cx->x.echo[i]);
    free(cx->x.echo);
    free(cx->body);
    sse_stream_free(cx->sse);
    free(cx->log_params);
    free(cx);
    *con_cls = NULL;
    pthread_mutex_lock(&s->mu);
    s->active--;
    pthread_mutex_unlock(&s->mu);
}

/* ---- start / stop ---- */

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
    prompt_builder_init(&s->pb, tok, ct, c->max_model_len);
    pthread_mutex_init(&s->mu, NULL);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->d = MHD_start_daemon(flags, (uint16_t)c->port, NULL, NULL, handler, s,
                            MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
                            MHD_OPTION_THREAD_STACK_SIZE, (size_t)(1 << 20),
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
                            MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->d) {
        folio_fail("serve: cannot listen on %s:%d (in use, or not an address of this host?)",
                   c->host, c->port);
        prompt_builder_destroy(&s->pb);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : c->port;
    return s;
}

int http_server_port(const http_server *s) { return s->port; }

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
    MHD_stop_daemon(s->d);
    for (int i = 0; i < s->n_logged; i++) free(s->logged[i]);
    prompt_builder_destroy(&s->pb);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
