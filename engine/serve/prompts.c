/* The server's prompts: chat template rendering (with the request's tools) and tokenization
 * under one lock, the prompt checks and the max_tokens policy. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "prompts.h"

void prompt_builder_init(prompt_builder *b, tokenizer *tok, const chat_template *ct,
                         int max_model_len) {
    b->tok = tok;
    b->ct = ct;
    b->max_model_len = max_model_len;
    pthread_mutex_init(&b->mu, NULL);
}

void prompt_builder_destroy(prompt_builder *b) { pthread_mutex_destroy(&b->mu); }

/* Encodes text under the lock. */
static int encode(prompt_builder *b, const char *text, bool add_special, token_ids *out) {
    pthread_mutex_lock(&b->mu);
    int rc = tokenizer_encode(b->tok, text, strlen(text), add_special, out);
    pthread_mutex_unlock(&b->mu);
    return rc;
}

/* The messages as templates read them: the API sends an assistant message's tool call
 * arguments as a JSON string, templates (transformers', vLLM's) take an object ({} for an
 * empty or absent one). A new reference: a copy where some arguments were parsed, else the
 * messages themselves. NULL with a message when arguments are not JSON. */
static json_t *template_messages(const json_t *messages) {
    json_t *copy = NULL;
    for (size_t i = 0; i < json_array_size(messages); i++) {
        const json_t *calls = json_object_get(json_array_get(messages, i), "tool_calls");
        for (size_t k = 0; k < json_array_size(calls); k++) {
            const json_t *args = json_object_get(
                json_object_get(json_array_get(calls, k), "function"), "arguments");
            if (json_is_object(args)) continue;
            if (!copy) copy = json_deep_copy(messages);
            json_t *f = json_object_get(
                json_array_get(json_object_get(json_array_get(copy, i), "tool_calls"), k),
                "function");
            json_t *parsed = json_object();
            if (json_is_string(args) && json_string_length(args) > 0) {
                json_decref(parsed);
                parsed = json_loadb(json_string_value(args), json_string_length(args),
                                    JSON_DECODE_ANY, NULL);
                if (!parsed) {
                    json_decref(copy);
                    folio_fail("request body: field 'messages[%zu].tool_calls[%zu].function."
                               "arguments': expected a string holding JSON", i, k);
                    return NULL;
                }
            }
            json_object_set_new(f, "arguments", parsed);
        }
    }
    return copy ? copy : json_incref((json_t *)messages);
}

/* Renders messages (and tools, or NULL) with the chat template (the lock also covers the
 * template). */
static int render_chat(prompt_builder *b, const json_t *messages, const json_t *tools,
                       bool add_generation_prompt, char **out) {
    size_t len;
    json_t *msgs = template_messages(messages);
    if (!msgs) return -1;
    pthread_mutex_lock(&b->mu);
    int rc = chat_template_render(b->ct, msgs, tools, add_generation_prompt, out, &len);
    pthread_mutex_unlock(&b->mu);
    json_decref(msgs);
    return rc;
}

/* Rendered messages -> ids. */
static int encode_chat(prompt_builder *b, const json_t *messages, const json_t *tools,
                       bool add_generation_prompt, bool add_special, token_ids *out) {
    char *text = NULL;
    if (render_chat(b, messages, tools, add_generation_prompt, &text) != 0) return -1;
    int rc = encode(b, text, add_special, out);
    free(text);
    return rc;
}

/* Prompt i of rq -> ids (unchecked). */
static int build_one(prompt_builder *b, const oai_request *rq, int i, token_ids *ids) {
    if (rq->kind == OAI_CHAT) {
        /* as transformers' apply_chat_template(tokenize=True) and vLLM: the template writes
         * the special tokens itself */
        if (encode_chat(b, rq->messages, rq->tools, rq->add_generation_prompt, false, ids) != 0)
            return folio_fail_context("request body: field 'messages'");
    } else if (rq->prompt_texts) {
        if (encode(b, rq->prompt_texts[i], true, ids) != 0)
            return folio_fail_context("request body: field 'prompt'");
    } else {
        for (int k = 0; k < rq->n_prompt_ids[i]; k++) token_ids_push(ids, rq->prompt_ids[i][k]);
    }
    return 0;
}

/* Refuses an empty prompt and one that leaves no room in the context. */
static int check_length(const prompt_builder *b, const oai_request *rq, int n) {
    const char *field = rq->kind == OAI_CHAT ? "messages" : "prompt";
    if (n == 0) return folio_fail("request body: field '%s': the prompt is empty", field);
    if (n >= b->max_model_len)
        return folio_fail("request body: field '%s': this model's maximum context length is %d "
                          "tokens, and the prompt has %d tokens", field, b->max_model_len, n);
    return 0;
}

int prompt_build(prompt_builder *b, const oai_request *rq, prompt_set *out) {
    out->n = rq->kind == OAI_CHAT ? 1 : rq->n_prompts;
    out->ids = folio_xcalloc(out->n, sizeof *out->ids);
    out->len = folio_xcalloc(out->n, sizeof *out->len);
    for (int i = 0; i < out->n; i++) {
        token_ids ids = {0};
        if (build_one(b, rq, i, &ids) != 0 || check_length(b, rq, (int)ids.n) != 0) {
            token_ids_free(&ids);
            prompt_set_free(out);
            return -1;
        }
        out->ids[i] = ids.ids;
        out->len[i] = (int)ids.n;
    }
    return 0;
}

void prompt_set_free(prompt_set *ps) {
    for (int i = 0; ps->ids && i < ps->n; i++) free(ps->ids[i]);
    free(ps->ids);
    free(ps->len);
    *ps = (prompt_set){0};
}

int prompt_max_tokens(const prompt_builder *b, const oai_request *rq, const prompt_set *ps) {
    if (rq->max_tokens_given) return rq->p.max_tokens;
    int room = b->max_model_len;
    for (int i = 0; i < ps->n; i++)
        if (b->max_model_len - ps->len[i] < room) room = b->max_model_len - ps->len[i];
    if ((rq->kind == OAI_CHAT && !rq->max_tokens_default) || rq->p.max_tokens > room) return room;
    return rq->p.max_tokens;
}

char *prompt_text(const prompt_builder *b, const int32_t *ids, int n, bool skip_special) {
    text_buf t = {0};
    if (tokenizer_decode(b->tok, ids, (size_t)n, skip_special, &t) != 0) folio_clear_error();
    char *r = folio_xstrdup(t.s ? t.s : "");
    text_buf_free(&t);
    return r;
}

int prompt_tokenize(prompt_builder *b, const json_t *body, token_ids *out) {
    const json_t *prompt = json_object_get(body, "prompt");
    const json_t *msgs = json_object_get(body, "messages");
    const json_t *as = json_object_get(body, "add_special_tokens");
    if (json_is_string(prompt))
        return encode(b, json_string_value(prompt), !as || json_is_true(as), out);
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return folio_fail("request body: field 'prompt': expected a string (or messages)");
    if (!b->ct)
        return folio_fail("request body: field 'messages': this model has no chat template");
    const json_t *agp = json_object_get(body, "add_generation_prompt");
    const json_t *tools = json_object_get(body, "tools");
    return encode_chat(b, msgs, json_is_array(tools) ? tools : NULL, !agp || json_is_true(agp),
                       as && json_is_true(as), out);
}
