/* Formatting OpenAI responses: whole bodies, SSE chunks, logprobs, usage, errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "openai_format.h"

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

/* The token's own text (special tokens included), as one string. */
static json_t *token_string(const tokenizer *tok, int32_t id, text_buf *tmp) {
    tmp->len = 0;
    if (tokenizer_decode(tok, &id, 1, false, tmp) != 0) {
        folio_clear_error();
        return json_string("");
    }
    return json_stringn(tmp->s ? tmp->s : "", tmp->len);
}

static json_t *bytes_of(const json_t *str) {
    json_t *a = json_array();
    const char *s = json_string_value(str);
    for (size_t i = 0; i < json_string_length(str); i++)
        json_array_append_new(a, json_integer((unsigned char)s[i]));
    return a;
}

/* Completions: {"tokens", "token_logprobs", "top_logprobs", "text_offset"}. */
static json_t *completion_logprobs(const oai_response_ctx *x, const int32_t *ids,
                                   const token_logprobs *lps, int n, int top_n, int offset) {
    json_t *toks = json_array(), *lp = json_array(), *tops = json_array(), *offs = json_array();
    text_buf tmp = {0};
    for (int i = 0; i < n; i++) {
        json_t *ts = token_string(x->tok, ids[i], &tmp);
        json_array_append_new(offs, json_integer(offset));
        offset += (int)json_string_length(ts);
        json_array_append_new(toks, ts);
        json_array_append_new(lp, json_real(lps[i].logprob));
        json_t *alt = json_object();
        for (int k = 0; k < top_n; k++) {
            json_t *ks = token_string(x->tok, lps[i].top_ids[k], &tmp);
            if (!json_object_get(alt, json_string_value(ks)))
                json_object_set_new(alt, json_string_value(ks), json_real(lps[i].top_lps[k]));
            json_decref(ks);
        }
        json_array_append_new(tops, alt);
    }
    text_buf_free(&tmp);
    json_t *o = json_object();
    json_object_set_new(o, "text_offset", offs);
    json_object_set_new(o, "token_logprobs", lp);
    json_object_set_new(o, "tokens", toks);
    json_object_set_new(o, "top_logprobs", tops);
    return o;
}

/* Chat: {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}]}. */
static json_t *chat_logprobs(const oai_response_ctx *x, const int32_t *ids,
                             const token_logprobs *lps, int n, int top_n) {
    json_t *content = json_array();
    text_buf tmp = {0};
    for (int i = 0; i < n; i++) {
        json_t *e = json_object(), *tops = json_array();
        json_t *ts = token_string(x->tok, ids[i], &tmp);
        json_object_set_new(e, "token", ts);
        json_object_set_new(e, "logprob", json_real(lps[i].logprob));
        json_object_set_new(e, "bytes", bytes_of(ts));
        for (int k = 0; k < top_n; k++) {
            json_t *t = json_object(), *ks = token_string(x->tok, lps[i].top_ids[k], &tmp);
            json_object_set_new(t, "token", ks);
            json_object_set_new(t, "logprob", json_real(lps[i].top_lps[k]));
            json_object_set_new(t, "bytes", bytes_of(ks));
            json_array_append_new(tops, t);
        }
        json_object_set_new(e, "top_logprobs", tops);
        json_array_append_new(content, e);
    }
    text_buf_free(&tmp);
    json_t *o = json_object();
    json_object_set_new(o, "content", content);
    return o;
}

static json_t *usage_json(int prompt, int completion) {
    json_t *u = json_object();
    json_object_set_new(u, "prompt_tokens", json_integer(prompt));
    json_object_set_new(u, "total_tokens", json_integer(prompt + completion));
    json_object_set_new(u, "completion_tokens", json_integer(completion));
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

char *oai_format_response(const oai_response_ctx *x, const serve_job *j) {
    json_t *o = head(x, false), *choices = json_array();
    int prompt = 0;
    for (int s = 0; s < j->n_sub; s++) prompt += j->subs[s].n_prompt;
    int completion = 0;
    for (int i = 0; i < job_n_choices(j); i++) {
        const serve_choice *c = &j->choices[i];
        int sub = i / j->p.n;
        completion += c->n_tok;
        json_t *ch = json_object();
        json_object_set_new(ch, "index", json_integer(i));
        const char *text = c->text.s ? c->text.s : "";
        if (x->kind == OAI_CHAT) {
            json_t *m = json_object();
            json_object_set_new(m, "role", json_string("assistant"));
            json_object_set_new(m, "content", json_stringn(text, c->text.len));
            json_object_set_new(ch, "message", m);
        } else if (x->echo) {
            size_t el = strlen(x->echo[sub]);
            char *all = folio_xmalloc(el + c->text.len + 1);
            memcpy(all, x->echo[sub], el);
            memcpy(all + el, text, c->text.len);
            json_object_set_new(ch, "text", json_stringn(all, el + c->text.len));
            free(all);
        } else {
            json_object_set_new(ch, "text", json_stringn(text, c->text.len));
        }
        json_t *lp = json_null();
        if (j->p.logprobs >= 0 && c->lps)
            lp = x->kind == OAI_CHAT ? chat_logprobs(x, c->ids, c->lps, c->n_tok, j->p.logprobs)
                                     : completion_logprobs(x, c->ids, c->lps, c->n_tok,
                                                           j->p.logprobs, 0);
        json_object_set_new(ch, "logprobs", lp);
        json_object_set_new(ch, "finish_reason", json_string(oai_finish_name(c->finish)));
        if (x->return_token_ids) json_object_set_new(ch, "token_ids", ids_json(c->ids, c->n_tok));
        json_array_append_new(choices, ch);
    }
    json_object_set_new(o, "choices", choices);
    json_object_set_new(o, "usage", usage_json(prompt, completion));
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
                      const int32_t *ids, const token_logprobs *lps, int n_ids, int top_n,
                      int text_offset, const char *finish, bool role, text_buf *out) {
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
    json_t *lp = json_null();
    if (lps && n_ids > 0)
        lp = x->kind == OAI_CHAT ? chat_logprobs(x, ids, lps, n_ids, top_n)
                                 : completion_logprobs(x, ids, lps, n_ids, top_n, text_offset);
    json_object_set_new(ch, "logprobs", lp);
    json_object_set_new(ch, "finish_reason", finish ? json_string(finish) : json_null());
    if (x->return_token_ids) json_object_set_new(ch, "token_ids", ids_json(ids, n_ids));
    json_array_append_new(choices, ch);
    json_object_set_new(o, "choices", choices);
    if (x->include_usage) json_object_set_new(o, "usage", json_null());
    append_event(out, o);
}

void oai_format_usage_chunk(const oai_response_ctx *x, int prompt_tokens, int completion_tokens,
                            text_buf *out) {
    json_t *o = head(x, true);
    json_object_set_new(o, "choices", json_array());
    json_object_set_new(o, "usage", usage_json(prompt_tokens, completion_tokens));
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
