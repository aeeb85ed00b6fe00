/* libmicrohttpd server of `folio serve`: routing, auth, bodies, the OpenAI endpoints, SSE. */
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
#include "http_server.h"
#include "json_util.h"
#include "openai_api.h"
#include "openai_format.h"
#include "progress.h"

#define WAIT_SLICE_MS 100        /* how often a waiting thread checks its client */
#define MAX_LOGGED_UNKNOWN 64

struct http_server {
    http_config cfg;
    struct MHD_Daemon *d;
    serve_loop *L;
    tokenizer *tok;
    const chat_template *ct;
    metrics *m;
    pthread_mutex_t tok_mu;      /* tokenizer_encode and template rendering */
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
    oai_kind kind;
    double t_start;
    int top_n;
    bool echo_sent;
    /* a stream */
    struct MHD_Connection *conn;
    text_buf out;
    size_t out_off;
    int *sent_tok, *sent_len;
    bool *sent_final, *sent_role;
    bool ended;
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

static void wait_slice(serve_job *j) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += WAIT_SLICE_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&j->cv, &j->mu, &ts);
}

static bool job_over(const serve_job *j) { return j->state == JOB_DONE || j->state == JOB_FAILED; }
static bool job_accepted(const serve_job *j) {
    return job_over(j) || (j->state == JOB_RUNNING && !j->adding);
}

/* Waits (with j->mu held) until pred(j); false if the client went away first (the job is
 * then cancelled). */
static bool wait_for(conn_ctx *cx, serve_job *j, bool (*pred)(const serve_job *)) {
    while (!pred(j)) {
        wait_slice(j);
        if (pred(j)) break;
        pthread_mutex_unlock(&j->mu);
        bool gone = client_gone(cx->conn);
        if (gone) serve_loop_cancel(cx->s->L, j);
        pthread_mutex_lock(&j->mu);
        if (gone) return false;
    }
    return true;
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

/* Encodes text under the tokenizer lock. */
static int encode(http_server *s, const char *text, bool add_special, token_ids *out) {
    pthread_mutex_lock(&s->tok_mu);
    int rc = tokenizer_encode(s->tok, text, strlen(text), add_special, out);
    pthread_mutex_unlock(&s->tok_mu);
    return rc;
}

/* Renders messages with the chat template (the lock also covers the template). */
static int render_chat(http_server *s, const json_t *messages, bool add_generation_prompt,
                       char **out) {
    size_t len;
    pthread_mutex_lock(&s->tok_mu);
    int rc = chat_template_render(s->ct, messages, NULL, add_generation_prompt, out, &len);
    pthread_mutex_unlock(&s->tok_mu);
    return rc;
}

static enum MHD_Result do_tokenize(conn_ctx *cx, struct MHD_Connection *c) {
    http_server *s = cx->s;
    json_error_t jerr;
    json_t *o = json_loadb(cx->body ? cx->body : "", cx->len, 0, &jerr);
    if (!json_is_object(o)) {
        json_decref(o);
        return reply_error(cx, c, 400, "request body: expected a JSON object", "");
    }
    json_t *prompt = json_object_get(o, "prompt"), *msgs = json_object_get(o, "messages");
    json_t *as = json_object_get(o, "add_special_tokens");
    bool add_special = !as || json_is_true(as);
    char *rendered = NULL;
    token_ids ids = {0};
    enum MHD_Result res;
    if (json_is_string(prompt)) {
        if (encode(s, json_string_value(prompt), add_special, &ids) != 0) goto fail;
    } else if (json_is_array(msgs) && json_array_size(msgs) > 0) {
        if (!s->ct) {
            folio_fail("request body: field 'messages': this model has no chat template");
            goto fail;
        }
        json_t *agp = json_object_get(o, "add_generation_prompt");
        if (render_chat(s, msgs, !agp || json_is_true(agp), &rendered) != 0) goto fail;
        if (encode(s, rendered, as && json_is_true(as), &ids) != 0) goto fail;
    } else {
        folio_fail("request body: field 'prompt': expected a string (or messages)");
        goto fail;
    }
    json_t *r = json_object(), *arr = json_array();
    for (size_t i = 0; i < ids.n; i++) json_array_append_new(arr, json_integer(ids.ids[i]));
    json_object_set_new(r, "count", json_integer((json_int_t)ids.n));
    json_object_set_new(r, "max_model_len", json_integer(s->cfg.max_model_len));
    json_object_set_new(r, "tokens", arr);
    res = reply_json(cx, c, 200, json_dumps(r, JSON_COMPACT | JSON_PRESERVE_ORDER));
    json_decref(r);
    goto out;
fail:
    res = reply_error(cx, c, 400, folio_last_error(), NULL);
out:
    free(rendered);
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

/* Text of the prompt ids (echo). */
static char *decode_all(const http_server *s, const int32_t *ids, int n, bool skip) {
    text_buf t = {0};
    if (tokenizer_decode(s->tok, ids, (size_t)n, skip, &t) != 0) folio_clear_error();
    char *r = folio_xstrdup(t.s ? t.s : "");
    text_buf_free(&t);
    return r;
}

/* Prompts -> ids into the job. 0, or -1 with a message naming the field. */
static int build_prompts(conn_ctx *cx, const oai_request *rq, serve_job *j) {
    http_server *s = cx->s;
    for (int i = 0; i < j->n_sub; i++) {
        token_ids ids = {0};
        if (rq->kind == OAI_CHAT) {
            char *text = NULL;
            if (render_chat(s, rq->messages, rq->add_generation_prompt, &text) != 0)
                return folio_fail_context("request body: field 'messages'");
            /* as transformers' apply_chat_template(tokenize=True) and vLLM: the template
             * writes the special tokens itself */
            int rc = encode(s, text, false, &ids);
            free(text);
            if (rc != 0) return folio_fail_context("request body: field 'messages'");
        } else if (rq->prompt_texts) {
            if (encode(s, rq->prompt_texts[i], true, &ids) != 0)
                return folio_fail_context("request body: field 'prompt'");
        } else {
            for (int k = 0; k < rq->n_prompt_ids[i]; k++) token_ids_push(&ids, rq->prompt_ids[i][k]);
        }
        if (ids.n == 0) {
            token_ids_free(&ids);
            return folio_fail("request body: field '%s': the prompt is empty",
                              rq->kind == OAI_CHAT ? "messages" : "prompt");
        }
        if ((int)ids.n >= s->cfg.max_model_len) {
            int n = (int)ids.n;
            token_ids_free(&ids);
            return folio_fail("request body: field '%s': this model's maximum context length "
                              "is %d tokens, and the prompt has %d tokens",
                              rq->kind == OAI_CHAT ? "messages" : "prompt",
                              s->cfg.max_model_len, n);
        }
        j->prompts[i] = ids.ids;
        j->n_prompts[i] = (int)ids.n;
    }
    return 0;
}

static void setup_job(conn_ctx *cx, oai_request *rq, serve_job *j) {
    http_server *s = cx->s;
    request_params_copy(&j->p, &rq->p);
    j->skip_special = rq->skip_special;
    j->stream = rq->stream;
    for (int i = 0; i < j->p.n_stop; i++) {
        int l = (int)strlen(j->p.stop[i]);
        if (l > j->max_stop_len) j->max_stop_len = l;
    }
    int shortest_room = s->cfg.max_model_len;
    for (int i = 0; i < j->n_sub; i++) {
        int room = s->cfg.max_model_len - j->n_prompts[i];
        if (room < shortest_room) shortest_room = room;
    }
    if (!rq->max_tokens_given) {
        if (rq->kind == OAI_CHAT || j->p.max_tokens > shortest_room)
            j->p.max_tokens = shortest_room;
    }
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
        x->echo = folio_xcalloc(j->n_sub, sizeof *x->echo);
        for (int i = 0; i < j->n_sub; i++)
            x->echo[i] = decode_all(s, j->prompts[i], j->n_prompts[i], rq->skip_special);
    }
    cx->top_n = j->p.logprobs;
    if (s->cfg.log_requests) {
        char buf[512];
        snprintf(buf, sizeof buf, "max_tokens=%d n=%d temperature=%g top_p=%g top_k=%d "
                 "min_p=%g seed=%llu stop=%d stop_token_ids=%d logprobs=%d session=%lld "
                 "stream=%d", j->p.max_tokens, j->p.n, j->p.sampling.temperature,
                 j->p.sampling.top_p, j->p.sampling.top_k, j->p.sampling.min_p,
                 (unsigned long long)j->p.seed, j->p.n_stop, j->p.n_stop_ids, j->p.logprobs,
                 (long long)j->p.session_id, rq->stream);
        cx->log_params = folio_xstrdup(buf);
    }
}

/* The SSE producer: formats what the job's choices gained since the last call. */
static void stream_collect(conn_ctx *cx, serve_job *j) {
    int nc = job_n_choices(j);
    for (int i = 0; i < nc; i++) {
        serve_choice *c = &j->choices[i];
        int sub = i / j->p.n;
        bool chat = cx->x.kind == OAI_CHAT;
        if (chat && !cx->sent_role[i] && (c->n_tok > 0 || c->done)) {
            oai_format_chunk(&cx->x, i, "", 0, NULL, NULL, true, &cx->out);
            cx->sent_role[i] = true;
        }
        if (!chat && cx->x.echo && !cx->sent_role[i] && (c->n_tok > 0 || c->done)) {
            const char *e = cx->x.echo[sub];
            oai_format_chunk(&cx->x, i, e, strlen(e), NULL, NULL, false, &cx->out);
            cx->sent_role[i] = true;
        }
        while (cx->sent_tok[i] < c->n_tok) {
            int k = cx->sent_tok[i];
            bool last = c->done && k == c->n_tok - 1;
            int end = last ? c->safe_len : c->ends[k];
            if (end > c->safe_len) end = c->safe_len;
            if (end < cx->sent_len[i]) end = cx->sent_len[i];
            size_t len = (size_t)(end - cx->sent_len[i]);
            bool lp = j->p.logprobs >= 0 && c->lps;
            oai_tokens t = {.ids = &c->ids[k], .lps = lp ? &c->lps[k] : NULL,
                            .offs = lp ? &c->offs[k] : NULL, .n = 1, .top_n = cx->top_n,
                            .n_lead = c->n_lead - k};
            if (len > 0 || lp || last || cx->x.return_token_ids)
                oai_format_chunk(&cx->x, i, c->text.s + cx->sent_len[i], len, &t,
                                 last ? oai_finish_name(c->finish) : NULL, false, &cx->out);
            j->sent_bytes += len;
            cx->sent_len[i] = end;
            cx->sent_tok[i]++;
            if (last) cx->sent_final[i] = true;
        }
        if (c->done && !cx->sent_final[i]) { /* finished without a token of its own */
            oai_format_chunk(&cx->x, i, "", 0, NULL, oai_finish_name(c->finish), false,
                             &cx->out);
            cx->sent_final[i] = true;
        }
    }
}

static bool stream_has_news(conn_ctx *cx, serve_job *j) {
    if (job_over(j)) return true;
    for (int i = 0; i < job_n_choices(j); i++)
        if (cx->sent_tok[i] < j->choices[i].n_tok || (j->choices[i].done && !cx->sent_final[i]))
            return true;
    return false;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    conn_ctx *cx = cls;
    serve_job *j = cx->job;
    for (;;) {
        if (cx->out_off < cx->out.len) {
            size_t n = cx->out.len - cx->out_off;
            if (n > max) n = max;
            memcpy(buf, cx->out.s + cx->out_off, n);
            cx->out_off += n;
            return (ssize_t)n;
        }
        cx->out.len = cx->out_off = 0;
        if (cx->ended) return MHD_CONTENT_READER_END_OF_STREAM;
        pthread_mutex_lock(&j->mu);
        while (!stream_has_news(cx, j)) {
            wait_slice(j);
            if (stream_has_news(cx, j)) break;
            pthread_mutex_unlock(&j->mu);
            if (client_gone(cx->conn)) return MHD_CONTENT_READER_END_WITH_ERROR;
            pthread_mutex_lock(&j->mu);
        }
        if (j->overflow) {
            pthread_mutex_unlock(&j->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        stream_collect(cx, j);
        if (job_over(j)) {
            if (j->state == JOB_FAILED) {
                char *e = oai_format_error(j->error ? j->error : "failed", "BadRequestError", "",
                                           400);
                text_buf_append(&cx->out, "data: ", 6);
                text_buf_append(&cx->out, e, strlen(e));
                text_buf_append(&cx->out, "\n\n", 2);
                free(e);
            } else if (cx->x.include_usage) {
                int prompt = 0, cached = 0;
                for (int s = 0; s < j->n_sub; s++) {
                    prompt += j->subs[s].n_prompt;
                    cached += j->subs[s].n_cached;
                }
                oai_format_usage_chunk(&cx->x, prompt, j->completion_tokens, cached, &cx->out);
            }
            text_buf_append(&cx->out, "data: [DONE]\n\n", 14);
            cx->ended = true;
        }
        pthread_mutex_unlock(&j->mu);
    }
}

static enum MHD_Result do_generate(conn_ctx *cx, struct MHD_Connection *c) {
    http_server *s = cx->s;
    oai_request rq;
    oai_limits lim = {.vocab = s->cfg.vocab, .max_n = s->cfg.max_n};
    uint64_t seed = ((uint64_t)time(NULL) << 20) ^ (next_request_id(s) * 0x9e3779b97f4a7c15ull);
    cx->kind = cx->route == R_CHAT ? OAI_CHAT : OAI_COMPLETION;
    enum MHD_Result res;
    if (oai_parse_request(cx->body ? cx->body : "", cx->len, cx->kind, &lim, seed, &rq) != 0) {
        res = reply_error(cx, c, 400, folio_last_error(), NULL);
        goto out;
    }
    log_unknown_once(s, &rq);
    if (rq.model && strcmp(rq.model, s->cfg.served_name) != 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "The model `%.200s` does not exist (this server serves `%.200s`)",
                 rq.model, s->cfg.served_name);
        res = reply_error(cx, c, 404, msg, "model");
        goto out;
    }
    if (cx->kind == OAI_CHAT && !s->ct) {
        res = reply_error(cx, c, 400, "request body: field 'messages': this model has no chat "
                                      "template (tokenizer_config.json chat_template); use "
                                      "/v1/completions", "messages");
        goto out;
    }
    serve_job *j = job_create(cx->kind == OAI_CHAT ? 1 : rq.n_prompts);
    cx->job = j;
    if (build_prompts(cx, &rq, j) != 0) {
        res = reply_error(cx, c, 400, folio_last_error(), NULL);
        goto out;
    }
    setup_job(cx, &rq, j);
    int sub = serve_loop_submit(s->L, j, s->cfg.max_queue + s->cfg.max_n);
    if (sub == -2) {
        res = reply_error(cx, c, 429, "the server's queue is full; retry later", "");
        goto out;
    }
    if (sub != 0) {
        res = reply_error(cx, c, 503, "the server is shutting down", "");
        goto out;
    }
    pthread_mutex_lock(&j->mu);
    if (!wait_for(cx, j, job_accepted)) {
        pthread_mutex_unlock(&j->mu);
        res = MHD_NO;
        goto out;
    }
    if (j->state == JOB_FAILED) {
        char *msg = folio_xstrdup(j->error ? j->error : "failed");
        pthread_mutex_unlock(&j->mu);
        res = reply_error(cx, c, 400, msg, NULL);
        free(msg);
        goto out;
    }
    if (rq.stream) {
        pthread_mutex_unlock(&j->mu);
        int nc = job_n_choices(j);
        cx->sent_tok = folio_xcalloc(nc, sizeof *cx->sent_tok);
        cx->sent_len = folio_xcalloc(nc, sizeof *cx->sent_len);
        cx->sent_final = folio_xcalloc(nc, sizeof *cx->sent_final);
        cx->sent_role = folio_xcalloc(nc, sizeof *cx->sent_role);
        struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024,
                                                                   stream_read, cx, NULL);
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        add_cors(s, r);
        res = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        cx->responded = true;
        goto out;
    }
    bool ok = wait_for(cx, j, job_over);
    pthread_mutex_unlock(&j->mu);
    if (!ok) {
        res = MHD_NO;
        goto out;
    }
    if (j->state == JOB_FAILED) res = reply_error(cx, c, 400, j->error ? j->error : "failed", NULL);
    else res = reply_json(cx, c, 200, oai_format_response(&cx->x, j));
out:
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
        if (cx->len + n + 1 > cx->cap) {
            cx->cap = (cx->len + n + 1) * 2;
            if (cx->cap > s->cfg.max_body + 1) cx->cap = s->cfg.max_body + 1;
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
    serve_job *j = cx->job;
    pthread_mutex_lock(&j->mu);
    int prompt = 0;
    for (int i = 0; i < j->n_sub; i++) prompt += j->subs[i].n_prompt ? j->subs[i].n_prompt
                                                                      : j->n_prompts[i];
    const char *why = "-";
    if (j->state == JOB_FAILED) why = "error";
    else if (j->choices && job_n_choices(j) > 0 && j->choices[0].done)
        why = oai_finish_name(j->choices[0].finish);
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && j->state != JOB_DONE) why = "abort";
    double ttft = j->t_first > 0 ? (j->t_first - j->t_arrival) * 1e3 : -1;
    int completion = j->completion_tokens;
    pthread_mutex_unlock(&j->mu);
    fprintf(stderr, "folio: request %s: prompt %d tokens, completion %d tokens, ttft %.1f ms, "
                    "total %.1f ms, finish %s%s%s\n", cx->x.id, prompt, completion, ttft,
            (folio_now() - cx->t_start) * 1e3, why, cx->log_params ? "; " : "",
            cx->log_params ? cx->log_params : "");
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    http_server *s = cls;
    conn_ctx *cx = *con_cls;
    if (!cx) return;
    if (cx->job) {
        pthread_mutex_lock(&cx->job->mu);
        bool over = job_over(cx->job) || cx->job->state == JOB_QUEUED;
        pthread_mutex_unlock(&cx->job->mu);
        if (!over || toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) serve_loop_cancel(s->L, cx->job);
        if (cx->x.id[0]) log_request(cx, toe);
        job_release(cx->job);
    }
    if (cx->x.echo)
        for (int i = 0; cx->job && i < cx->job->n_sub; i++) free(cx->x.echo[i]);
    free(cx->x.echo);
    free(cx->body);
    text_buf_free(&cx->out);
    free(cx->sent_tok);
    free(cx->sent_len);
    free(cx->sent_final);
    free(cx->sent_role);
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
    s->ct = ct;
    s->m = m;
    pthread_mutex_init(&s->tok_mu, NULL);
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
        pthread_mutex_destroy(&s->tok_mu);
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
    pthread_mutex_destroy(&s->tok_mu);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
