/* Formatting OpenAI responses: whole bodies, SSE chunks, logprobs (token strings in context,
 * see oai_tokens), usage, errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "hash.h"
#include "openai_format.h"
#include "utf8.h"

const char *oai_finish_name(finish_reason f) {
    switch (f) {
    case FINISH_STOP: return "stop";
    case FINISH_LENGTH: return "length";
    default: return "abort";
    }
}

static char *dump(json_t *o) {
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(8));
    json_decref(o);
    return s;
}

/* The token's text where it stands (tokenizer_token_piece) into *piece. */
static void token_piece(const oai_response_ctx *x, int32_t id, bool at_start, text_buf *piece) {
    piece->len = 0;
    if (tokenizer_token_piece(x->tok, id, at_start, piece) != 0) folio_clear_error();
    text_buf_append(piece, "", 0);
}

/* The piece as a token string: itself when valid UTF-8, else "bytes:\xNN..." (vLLM's form). */
static json_t *token_json(const text_buf *piece) {
    const uint8_t *p = (const uint8_t *)piece->s;
    if (utf8_valid_prefix(p, piece->len) == piece->len) return json_stringn(piece->s, piece->len);
    char *s = folio_xmalloc(6 + 4 * piece->len + 1);
    memcpy(s, "bytes:", 6);
    for (size_t i = 0; i < piece->len; i++) snprintf(s + 6 + 4 * i, 5, "\\x%02x", p[i]);
    json_t *j = json_string(s);
    free(s);
    return j;
}

static json_t *bytes_json(const text_buf *piece) {
    json_t *a = json_array();
    for (size_t i = 0; i < piece->len; i++)
        json_array_append_new(a, json_integer((unsigned char)piece->s[i]));
    return a;
}

/* Completions: {"tokens", "token_logprobs", "top_logprobs", "text_offset"}. */
static json_t *completion_logprobs(const oai_response_ctx *x, const oai_tokens *t) {
    json_t *toks = json_array(), *lp = json_array(), *tops = json_array(), *offs = json_array();
    text_buf piece = {0};
    for (int i = 0; i < t->n; i++) {
        bool lead = i < t->n_lead;
        token_piece(x, t->ids[i], lead, &piece);
        json_array_append_new(toks, token_json(&piece));
        json_array_append_new(offs, json_integer(t->offs ? t->offs[i] : 0));
        json_array_append_new(lp, json_real(t->lps[i].logprob));
        json_t *alt = json_object();
        for (int k = 0; k < t->top_n; k++) {
            token_piece(x, t->lps[i].top_ids[k], lead, &piece);
            json_t *ks = token_json(&piece);
            if (!json_object_get(alt, json_string_value(ks)))
                json_object_set_new(alt, json_string_value(ks), json_real(t->lps[i].top_lps[k]));
            json_decref(ks);
        }
        json_array_append_new(tops, alt);
    }
    text_buf_free(&piece);
    json_t *o = json_object();
    json_object_set_new(o, "text_offset", offs);
    json_object_set_new(o, "token_logprobs", lp);
    json_object_set_new(o, "tokens", toks);
    json_object_set_new(o, "top_logprobs", tops);
    return o;
}

/* Chat's {"token", "logprob", "bytes"} of one token. */
static json_t *chat_entry(const oai_response_ctx *x, int32_t id, bool lead, float logprob,
                          text_buf *piece) {
    json_t *e = json_object();
    token_piece(x, id, lead, piece);
    json_object_set_new(e, "token", token_json(piece));
    json_object_set_new(e, "logprob", json_real(logprob));
    json_object_set_new(e, "bytes", bytes_json(piece));
    return e;
}

/* Chat: {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}]}. */
static json_t *chat_logprobs(const oai_response_ctx *x, const oai_tokens *t) {
    json_t *content = json_array();
    text_buf piece = {0};
    for (int i = 0; i < t->n; i++) {
        bool lead = i < t->n_lead;
        json_t *e = chat_entry(x, t->ids[i], lead, t->lps[i].logprob, &piece), *tops = json_array();
        for (int k = 0; k < t->top_n; k++)
            json_array_append_new(tops, chat_entry(x, t->lps[i].top_ids[k], lead,
                                                   t->lps[i].top_lps[k], &piece));
        json_object_set_new(e, "top_logprobs", tops);
        json_array_append_new(content, e);
    }
    text_buf_free(&piece);
    json_t *o = json_object();
    json_object_set_new(o, "content", content);
    return o;
}

static json_t *logprobs_json(const oai_response_ctx *x, const oai_tokens *t) {
    if (!t || !t->lps || t->n <= 0) return json_null();
    return x->kind == OAI_CHAT ? chat_logprobs(x, t) : completion_logprobs(x, t);
}

static json_t *usage_json(int prompt, int completion, int cached) {
    json_t *u = json_object(), *details = json_object();
    json_object_set_new(u, "prompt_tokens", json_integer(prompt));
    json_object_set_new(u, "total_tokens", json_integer(prompt + completion));
    json_object_set_new(u, "completion_tokens", json_integer(completion));
    json_object_set_new(details, "cached_tokens", json_integer(cached));
    json_object_set_new(u, "prompt_tokens_details", details);
    return u;
}

static json_t *head(const oai_response_ctx *x, bool chunk) {
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(x->id));
    json_object_set_new(o, "object", json_string(x->kind == OAI_CHAT
                                                     ? (chunk ? "chat.completion.chunk"
                                                              : "chat.completion")
                                                     : "text_completion"));
    json_object_set_new(o, "created", json_integer(x->created));
    json_object_set_new(o, "model", json_string(x->model));
    return o;
}

static json_t *ids_json(const int32_t *ids, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_integer(ids[i]));
    return a;
}

/* Call `index` of a choice as JSON: whole ({"id", "type": "function", "function": {"name",
 * "arguments"}}, a message's), or a stream's delta of it: its head ({"index", "id", "type",
 * "function": {"name", "arguments": ""}}) or its arguments ({"index", "function":
 * {"arguments"}}). The id is drawn from the response's id, the choice and the index. */
enum { CALL_WHOLE, CALL_HEAD, CALL_ARGS };
static json_t *tool_call_json(const oai_response_ctx *x, int choice, int index,
                              const tool_call *c, int part) {
    json_t *o = json_object(), *f = json_object();
    if (part != CALL_WHOLE) json_object_set_new(o, "index", json_integer(index));
    if (part != CALL_ARGS) {
        char id[32];
        uint64_t seed = folio_fnv1a64(FOLIO_FNV64_OFFSET, x->id);
        tool_call_id(x->tools.format, folio_mix64(seed + (uint64_t)choice * 131 + (uint64_t)index),
                     id);
        json_object_set_new(o, "id", json_string(id));
        json_object_set_new(o, "type", json_string("function"));
        json_object_set_new(f, "name", json_string(c->name));
    }
    json_object_set_new(f, "arguments", json_string(part == CALL_HEAD ? "" : c->arguments));
    json_object_set_new(o, "function", f);
    return o;
}

/* A chat message's content and tool_calls from the choice's text; returns the calls parsed. */
static int tool_message(const oai_response_ctx *x, const serve_output *c, json_t *m) {
    tool_output o = {0};
    tool_parse_text(x->tools.format, c->text, c->len, &o);
    if (o.n_calls > 0 && o.content.len == 0) json_object_set_new(m, "content", json_null());
    else json_object_set_new(m, "content", json_stringn(o.content.s, o.content.len));
    if (o.n_calls > 0 || x->tools.forced) {
        json_t *calls = json_array();
        for (int k = 0; k < o.n_calls && oai_tools_shown(&x->tools, k); k++)
            json_array_append_new(calls, tool_call_json(x, c->choice, k, &o.calls[k], CALL_WHOLE));
        json_object_set_new(m, "tool_calls", calls);
    }
    int n = o.n_calls;
    tool_output_free(&o);
    return n;
}

/* One choice of a whole response. */
static json_t *choice_json(const oai_response_ctx *x, const serve_output *c) {
    json_t *ch = json_object();
    int n_calls = 0;
    json_object_set_new(ch, "index", json_integer(c->choice));
    if (x->kind == OAI_CHAT) {
        json_t *m = json_object();
        json_object_set_new(m, "role", json_string("assistant"));
        if (x->tools.format != TOOL_FORMAT_NONE) n_calls = tool_message(x, c, m);
        else json_object_set_new(m, "content", json_stringn(c->text, c->len));
        json_object_set_new(ch, "message", m);
    } else if (x->echo) {
        size_t el = strlen(x->echo[c->prompt]);
        char *all = folio_xmalloc(el + c->len + 1);
        memcpy(all, x->echo[c->prompt], el);
        memcpy(all + el, c->text, c->len);
        json_object_set_new(ch, "text", json_stringn(all, el + c->len));
        free(all);
    } else {
        json_object_set_new(ch, "text", json_stringn(c->text, c->len));
    }
    oai_tokens t = {.ids = c->ids, .lps = c->lps, .offs = c->offs, .n = c->n_tok,
                    .top_n = c->top_logprobs, .n_lead = c->n_lead};
    json_object_set_new(ch, "logprobs", logprobs_json(x, &t));
    json_object_set_new(ch, "finish_reason",
                        json_string(oai_tools_finish(&x->tools, c->finish, n_calls)));
    if (x->return_token_ids) json_object_set_new(ch, "token_ids", ids_json(c->ids, c->n_tok));
    return ch;
}

char *oai_format_response(const oai_response_ctx *x, serve_job *j) {
    json_t *o = head(x, false), *choices = json_array();
    for (int i = 0; i < job_n_choices(j); i++) {
        serve_output c;
        job_output(j, i, &c);
        json_array_append_new(choices, choice_json(x, &c));
    }
    serve_stats st;
    job_stats(j, &st);
    json_object_set_new(o, "choices", choices);
    json_object_set_new(o, "usage", usage_json(st.prompt_tokens, st.completion_tokens,
                                               st.cached_tokens));
    return dump(o);
}

static void append_event(text_buf *out, json_t *o) {
    char *s = dump(o);
    text_buf_append(out, "data: ", 6);
    text_buf_append(out, s, strlen(s));
    text_buf_append(out, "\n\n", 2);
    free(s);
}

void oai_format_chunk(const oai_response_ctx *x, int index, const char *text, size_t len,
                      const oai_tokens *t, const char *finish, bool role, text_buf *out) {
    json_t *o = head(x, true), *choices = json_array(), *ch = json_object();
    json_object_set_new(ch, "index", json_integer(index));
    if (x->kind == OAI_CHAT) {
        json_t *d = json_object();
        if (role) json_object_set_new(d, "role", json_string("assistant"));
        if (role || len || !finish) json_object_set_new(d, "content", json_stringn(text, len));
        json_object_set_new(ch, "delta", d);
    } else {
        json_object_set_new(ch, "text", json_stringn(text, len));
    }
    json_object_set_new(ch, "logprobs", logprobs_json(x, t));
    json_object_set_new(ch, "finish_reason", finish ? json_string(finish) : json_null());
    if (x->return_token_ids)
        json_object_set_new(ch, "token_ids", ids_json(t ? t->ids : NULL, t ? t->n : 0));
    json_array_append_new(choices, ch);
    json_object_set_new(o, "choices", choices);
    if (x->include_usage) json_object_set_new(o, "usage", json_null());
    append_event(out, o);
}

void oai_format_tool_chunk(const oai_response_ctx *x, int choice, int index, const tool_call *c,
                           bool first, text_buf *out) {
    json_t *o = head(x, true), *choices = json_array(), *ch = json_object(), *d = json_object();
    json_t *calls = json_array();
    json_array_append_new(calls, tool_call_json(x, choice, index, c, first ? CALL_HEAD : CALL_ARGS));
    json_object_set_new(d, "tool_calls", calls);
    json_object_set_new(ch, "index", json_integer(choice));
    json_object_set_new(ch, "delta", d);
    json_object_set_new(ch, "logprobs", json_null());
    json_object_set_new(ch, "finish_reason", json_null());
    json_array_append_new(choices, ch);
    json_object_set_new(o, "choices", choices);
    if (x->include_usage) json_object_set_new(o, "usage", json_null());
    append_event(out, o);
}

void oai_format_usage_chunk(const oai_response_ctx *x, int prompt_tokens, int completion_tokens,
                            int cached_tokens, text_buf *out) {
    json_t *o = head(x, true);
    json_object_set_new(o, "choices", json_array());
    json_object_set_new(o, "usage", usage_json(prompt_tokens, completion_tokens, cached_tokens));
    append_event(out, o);
}

char *oai_format_error(const char *message, const char *type, const char *param, int code) {
    json_t *o = json_object(), *e = json_object();
    /* messages may quote invalid input bytes: keep them ASCII */
    char *m = folio_xstrdup(message);
    for (char *c = m; *c; c++)
        if ((unsigned char)*c >= 0x80 || (unsigned char)*c < 0x20) *c = '?';
    json_object_set_new(e, "message", json_string(m));
    free(m);
    json_object_set_new(e, "type", json_string(type));
    json_object_set_new(e, "param", param && *param ? json_string(param) : json_null());
    json_object_set_new(e, "code", json_integer(code));
    json_object_set_new(o, "error", e);
    return dump(o);
}
