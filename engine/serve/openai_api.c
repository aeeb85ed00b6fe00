/* Parsing OpenAI completion and chat-completion bodies into request parameters. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "json_util.h"
#include "openai_api.h"
#include "request_json.h"

static const json_src SRC = {.origin = "request body", .object = NULL};

/* Fields read here or by request_params_from_json; others are reported as unknown. */
static const char *const KNOWN[] = {
    "model", "prompt", "messages", "max_tokens", "max_completion_tokens", "temperature",
    "top_p", "n", "stop", "seed", "presence_penalty", "frequency_penalty", "logit_bias",
    "logprobs", "top_logprobs", "echo", "user", "stream", "stream_options", "top_k", "min_p",
    "repetition_penalty", "stop_token_ids", "ignore_eos", "min_tokens", "skip_special_tokens",
    "add_generation_prompt", "priority", "session_id", "end_session", "return_token_ids", NULL};
/* Known to chat requests only (unknown, so logged, in a completion request). */
static const char *const CHAT_ONLY[] = {"tools", "tool_choice", "parallel_tool_calls", NULL};

static const char *const ROLES[] = {"system", "user", "assistant", "tool", "developer", NULL};

static bool known(const char *key, oai_kind kind) {
    for (int k = 0; KNOWN[k]; k++)
        if (strcmp(KNOWN[k], key) == 0) return true;
    for (int k = 0; kind == OAI_CHAT && CHAT_ONLY[k]; k++)
        if (strcmp(CHAT_ONLY[k], key) == 0) return true;
    return false;
}

static int read_ids(const json_t *arr, const char *name, int vocab, int32_t **ids, int *n) {
    size_t len = json_array_size(arr);
    if (len == 0) return json_fail_field(&SRC, name, "a non-empty list of token ids", arr);
    *ids = folio_xmalloc(sizeof **ids * len);
    *n = (int)len;
    for (size_t i = 0; i < len; i++) {
        char key[64];
        int v;
        snprintf(key, sizeof key, "%s[%zu]", name, i);
        if (json_value_int(json_array_get(arr, i), key, &SRC, 0, vocab - 1, &v) != 0) return -1;
        (*ids)[i] = v;
    }
    return 0;
}

static void alloc_prompts(oai_request *r, int n, bool text) {
    r->n_prompts = n;
    if (text) r->prompt_texts = folio_xcalloc(n, sizeof *r->prompt_texts);
    else {
        r->prompt_ids = folio_xcalloc(n, sizeof *r->prompt_ids);
        r->n_prompt_ids = folio_xcalloc(n, sizeof *r->n_prompt_ids);
    }
}

/* prompt: "text" | ["a", "b"] | [1, 2, 3] | [[1, 2], [3]] */
static int read_prompt(const json_t *obj, const oai_limits *lim, oai_request *r) {
    const json_t *v = json_object_get(obj, "prompt");
    if (!v || json_is_null(v)) return json_fail_field(&SRC, "prompt", "a prompt", NULL);
    if (json_is_string(v)) {
        alloc_prompts(r, 1, true);
        r->prompt_texts[0] = folio_xstrdup(json_string_value(v));
        return 0;
    }
    size_t n = json_array_size(v);
    if (!json_is_array(v) || n == 0)
        return json_fail_field(&SRC, "prompt", "a string, a list of strings or token ids", v);
    const json_t *first = json_array_get(v, 0);
    if (json_is_integer(first)) {
        alloc_prompts(r, 1, false);
        return read_ids(v, "prompt", lim->vocab, &r->prompt_ids[0], &r->n_prompt_ids[0]);
    }
    if (n > OAI_MAX_PROMPTS)
        return json_fail_field(&SRC, "prompt", "at most 64 prompts in one request", v);
    bool text = json_is_string(first);
    alloc_prompts(r, (int)n, text);
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        char name[32];
        snprintf(name, sizeof name, "prompt[%zu]", i);
        if (text) {
            if (!json_is_string(e))
                return json_fail_field(&SRC, name, "a string (like the other prompts)", e);
            r->prompt_texts[i] = folio_xstrdup(json_string_value(e));
        } else {
            if (!json_is_array(e))
                return json_fail_field(&SRC, name, "a list of token ids", e);
            if (read_ids(e, name, lim->vocab, &r->prompt_ids[i], &r->n_prompt_ids[i]) != 0)
                return -1;
        }
    }
    return 0;
}

/* A message's content: a string, null (an assistant message), or a list of text parts. */
static int check_content(const json_t *m, size_t i) {
    char name[48];
    snprintf(name, sizeof name, "messages[%zu].content", i);
    const json_t *c = json_object_get(m, "content");
    if (!c || json_is_null(c) || json_is_string(c)) return 0;
    if (!json_is_array(c)) return json_fail_field(&SRC, name, "a string or a list of parts", c);
    for (size_t k = 0; k < json_array_size(c); k++) {
        const json_t *part = json_array_get(c, k);
        const json_t *type = json_object_get(part, "type");
        if (!json_is_object(part) || !json_is_string(type) ||
            strcmp(json_string_value(type), "text") != 0 ||
            !json_is_string(json_object_get(part, "text")))
            return json_fail_unsupported(&SRC, name, "content other than text parts", part);
    }
    return 0;
}

/* An assistant message's tool_calls: [{"id", "type": "function", "function": {"name",
 * "arguments"}}], arguments a string holding JSON (or an object, or absent), as a client
 * sends back the calls it was given. */
static int check_tool_calls(const json_t *m, size_t i) {
    const json_t *tc = json_object_get(m, "tool_calls");
    char name[96];
    snprintf(name, sizeof name, "messages[%zu].tool_calls", i);
    if (!tc || json_is_null(tc)) return 0;
    if (!json_is_array(tc)) return json_fail_field(&SRC, name, "a list of tool calls", tc);
    for (size_t k = 0; k < json_array_size(tc); k++) {
        const json_t *call = json_array_get(tc, k), *f = json_object_get(call, "function");
        const json_t *args = json_object_get(f, "arguments");
        snprintf(name, sizeof name, "messages[%zu].tool_calls[%zu]", i, k);
        if (!json_is_object(call) || !json_is_object(f) ||
            !json_is_string(json_object_get(f, "name")))
            return json_fail_field(&SRC, name, "{\"type\": \"function\", \"function\": "
                                   "{\"name\": ..., \"arguments\": ...}}", call);
        snprintf(name, sizeof name, "messages[%zu].tool_calls[%zu].function.arguments", i, k);
        if (args && !json_is_null(args) && !json_is_string(args) && !json_is_object(args))
            return json_fail_field(&SRC, name, "a JSON string", args);
        if (json_is_string(args) && json_string_length(args) > 0) { /* the template gets it */
            json_t *parsed = json_loadb(json_string_value(args), json_string_length(args),
                                        JSON_DECODE_ANY, NULL);
            if (!parsed) return json_fail_field(&SRC, name, "a string holding JSON", args);
            json_decref(parsed);
        }
    }
    return 0;
}

static int read_messages(const json_t *obj, oai_request *r) {
    const json_t *v = json_object_get(obj, "messages");
    if (!v || json_is_null(v)) return json_fail_field(&SRC, "messages", "a list of messages", NULL);
    if (!json_is_array(v)) return json_fail_field(&SRC, "messages", "a list of messages", v);
    if (json_array_size(v) == 0)
        return json_fail_field(&SRC, "messages", "at least one message", v);
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *m = json_array_get(v, i);
        char name[48];
        snprintf(name, sizeof name, "messages[%zu]", i);
        if (!json_is_object(m)) return json_fail_field(&SRC, name, "an object", m);
        const json_t *role = json_object_get(m, "role");
        snprintf(name, sizeof name, "messages[%zu].role", i);
        if (!json_is_string(role)) return json_fail_field(&SRC, name, "a role string", role);
        int k = 0;
        while (ROLES[k] && strcmp(ROLES[k], json_string_value(role)) != 0) k++;
        if (!ROLES[k])
            return json_fail_unsupported(&SRC, name, "this role (system, user, assistant, "
                                         "tool, developer are)", role);
        if (check_content(m, i) != 0 || check_tool_calls(m, i) != 0) return -1;
    }
    r->messages = json_incref((json_t *)v);
    return 0;
}

/* tools: [{"type": "function", "function": {"name", "description"?, "parameters"?,
 * "strict"?}}]. */
static int read_tool_list(const json_t *obj, oai_request *r) {
    const json_t *v = json_object_get(obj, "tools");
    if (!v || json_is_null(v)) return 0;
    if (!json_is_array(v)) return json_fail_field(&SRC, "tools", "a list of tools", v);
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *t = json_array_get(v, i), *type = json_object_get(t, "type");
        const json_t *f = json_object_get(t, "function"), *fname = json_object_get(f, "name");
        const json_t *params = json_object_get(f, "parameters");
        char name[48];
        snprintf(name, sizeof name, "tools[%zu]", i);
        if (!json_is_object(t)) return json_fail_field(&SRC, name, "an object", t);
        if (!json_is_string(type) || strcmp(json_string_value(type), "function") != 0)
            return json_fail_unsupported(&SRC, name, "a tool whose type is not \"function\"",
                                         type);
        snprintf(name, sizeof name, "tools[%zu].function", i);
        if (!json_is_object(f)) return json_fail_field(&SRC, name, "an object", f);
        snprintf(name, sizeof name, "tools[%zu].function.name", i);
        if (!json_is_string(fname) || json_string_length(fname) == 0)
            return json_fail_field(&SRC, name, "a non-empty string", fname);
        snprintf(name, sizeof name, "tools[%zu].function.parameters", i);
        if (params && !json_is_null(params) && !json_is_object(params))
            return json_fail_field(&SRC, name, "a JSON schema object", params);
    }
    if (json_array_size(v) > 0) r->tools = json_incref((json_t *)v);
    return 0;
}

static bool has_tool(const json_t *tools, const char *name) {
    for (size_t i = 0; i < json_array_size(tools); i++) {
        const json_t *f = json_object_get(json_array_get(tools, i), "function");
        if (strcmp(json_string_value(json_object_get(f, "name")), name) == 0) return true;
    }
    return false;
}

/* tools, tool_choice and parallel_tool_calls, checked against each other as OpenAI does. */
static int read_tools(const json_t *obj, oai_request *r) {
    if (read_tool_list(obj, r) != 0 ||
        json_get_bool(obj, "parallel_tool_calls", &SRC, &r->parallel_tool_calls, false) < 0)
        return -1;
    const json_t *v = json_object_get(obj, "tool_choice");
    r->tool_choice = r->tools ? OAI_TOOLS_AUTO : OAI_TOOLS_NONE;
    if (!v || json_is_null(v)) return 0;
    static const char *const EXPECTED =
        "\"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}";
    if (json_is_string(v)) {
        const char *c = json_string_value(v);
        if (strcmp(c, "none") == 0) r->tool_choice = OAI_TOOLS_NONE;
        else if (strcmp(c, "auto") == 0) r->tool_choice = OAI_TOOLS_AUTO;
        else if (strcmp(c, "required") == 0) r->tool_choice = OAI_TOOLS_REQUIRED;
        else return json_fail_field(&SRC, "tool_choice", EXPECTED, v);
    } else {
        const json_t *type = json_object_get(v, "type"), *f = json_object_get(v, "function");
        const json_t *name = json_object_get(f, "name");
        if (!json_is_string(type) || strcmp(json_string_value(type), "function") != 0 ||
            !json_is_string(name))
            return json_fail_field(&SRC, "tool_choice", EXPECTED, v);
        r->tool_choice = OAI_TOOLS_NAMED;
        r->tool_name = folio_xstrdup(json_string_value(name));
    }
    if (!r->tools && (r->tool_choice == OAI_TOOLS_REQUIRED || r->tool_choice == OAI_TOOLS_NAMED))
        return json_fail_field(&SRC, "tool_choice", "tools to choose from (field 'tools')", v);
    if (r->tool_choice == OAI_TOOLS_NAMED && !has_tool(r->tools, r->tool_name)) {
        return folio_fail("request body: field 'tool_choice': the function '%.200s' is not one "
                          "of the tools", r->tool_name);
    }
    return 0;
}

static int read_flags(const json_t *obj, oai_request *r) {
    const json_t *so = NULL;
    int prio;
    if (json_get_bool(obj, "stream", &SRC, &r->stream, false) < 0 ||
        json_get_bool(obj, "echo", &SRC, &r->echo, false) < 0 ||
        json_get_bool(obj, "skip_special_tokens", &SRC, &r->skip_special, false) < 0 ||
        json_get_bool(obj, "add_generation_prompt", &SRC, &r->add_generation_prompt, false) < 0 ||
        json_get_bool(obj, "return_token_ids", &SRC, &r->return_token_ids, false) < 0 ||
        json_get_int(obj, "priority", &SRC, -(1 << 30), 1 << 30, &prio, false) < 0 ||
        json_get_object(obj, "stream_options", &SRC, &so, false) < 0)
        return -1;
    if (so) {
        if (!r->stream) /* as vLLM */
            return json_fail_unsupported(&SRC, "stream_options", "stream_options without "
                                         "\"stream\": true", so);
        json_src s2 = {.origin = "request body", .object = "stream_options"};
        if (json_get_bool(so, "include_usage", &s2, &r->include_usage, false) < 0) return -1;
    }
    const json_t *user = json_object_get(obj, "user");
    if (user && !json_is_null(user) && !json_is_string(user))
        return json_fail_field(&SRC, "user", "a string", user);
    const json_t *model = json_object_get(obj, "model");
    if (model && !json_is_null(model)) {
        if (!json_is_string(model)) return json_fail_field(&SRC, "model", "a string", model);
        r->model = folio_xstrdup(json_string_value(model));
    }
    return 0;
}

/* logprobs: completions take an integer (top-N, OpenAI allows up to 5; we allow 20);
 * chat takes a boolean plus top_logprobs. */
static int read_logprobs(const json_t *obj, oai_request *r) {
    const json_t *lp = json_object_get(obj, "logprobs");
    if (r->kind == OAI_CHAT) {
        bool on = false;
        int top = 0;
        if (json_get_bool(obj, "logprobs", &SRC, &on, false) < 0 ||
            json_get_int(obj, "top_logprobs", &SRC, 0, FOLIO_MAX_LOGPROBS, &top, false) < 0)
            return -1;
        if (!on && json_object_get(obj, "top_logprobs") &&
            !json_is_null(json_object_get(obj, "top_logprobs")) && top > 0)
            return json_fail_field(&SRC, "top_logprobs", "logprobs: true with top_logprobs",
                                   json_object_get(obj, "top_logprobs"));
        r->p.logprobs = on ? top : -1;
        return 0;
    }
    if (lp && !json_is_null(lp) && !json_is_integer(lp))
        return json_fail_field(&SRC, "logprobs", "an integer in [0, 20]", lp);
    return 0;
}

oai_defaults oai_defaults_builtin(void) {
    request_params p;
    request_params_init(&p);
    return (oai_defaults){.temperature = p.sampling.temperature, .top_p = p.sampling.top_p,
                          .top_k = p.sampling.top_k, .min_p = p.sampling.min_p,
                          .repetition_penalty = p.proc.repetition_penalty};
}

int oai_parse_request(const char *body, size_t len, oai_kind kind, const oai_limits *lim,
                      uint64_t default_seed, oai_request *out) {
    memset(out, 0, sizeof *out);
    out->kind = kind;
    out->skip_special = true;
    out->add_generation_prompt = true;
    out->tool_choice = OAI_TOOLS_NONE;
    out->parallel_tool_calls = true;
    request_params_init(&out->p);
    if (lim->defaults) {
        const oai_defaults *d = lim->defaults;
        out->p.sampling.temperature = d->temperature;
        out->p.sampling.top_p = d->top_p;
        out->p.sampling.top_k = d->top_k;
        out->p.sampling.min_p = d->min_p;
        out->p.proc.repetition_penalty = d->repetition_penalty;
        if (d->max_tokens > 0) {
            out->p.max_tokens = d->max_tokens;
            out->max_tokens_default = true;
        }
    }
    json_error_t jerr;
    json_t *obj = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj)
        return folio_fail("request body: invalid JSON at line %d, column %d: %s", jerr.line,
                          jerr.column, jerr.text);
    int rc = -1;
    if (!json_is_object(obj)) {
        json_fail_field(&SRC, "", "a JSON object", obj);
        goto done;
    }
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        if (known(key, kind)) continue;
        out->n_unknown_total++;
        if (out->n_unknown == OAI_MAX_UNKNOWN) continue;
        size_t klen = strlen(key);
        int k = out->n_unknown++;
        out->unknown_cut[k] = klen > OAI_UNKNOWN_NAME_MAX;
        if (out->unknown_cut[k]) klen = OAI_UNKNOWN_NAME_MAX;
        memcpy(out->unknown[k], key, klen);
        out->unknown[k][klen] = '\0';
        out->unknown_len[k] = klen;
    }
    if (read_flags(obj, out) != 0) goto done;
    if (kind == OAI_CHAT) {
        if (json_object_get(obj, "prompt")) {
            json_fail_unsupported(&SRC, "prompt", "a prompt in a chat request (use messages)",
                                  json_object_get(obj, "prompt"));
            goto done;
        }
        if (read_messages(obj, out) != 0 || read_tools(obj, out) != 0) goto done;
        if (out->echo) {
            json_fail_unsupported(&SRC, "echo", "echo in a chat request",
                                  json_object_get(obj, "echo"));
            goto done;
        }
    } else if (read_prompt(obj, lim, out) != 0) {
        goto done;
    }
    /* "logprobs" for chat is a boolean: hide it from the shared reader */
    json_t *lp = json_object_get(obj, "logprobs");
    if (lp) json_incref(lp);
    if (kind == OAI_CHAT && lp) json_object_del(obj, "logprobs");
    int prc = request_params_from_json(obj, &SRC, lim->vocab, default_seed, &out->p);
    out->p.keep_special = !out->skip_special; /* the engine's output text */
    if (kind == OAI_CHAT && lp) json_object_set(obj, "logprobs", lp);
    json_decref(lp);
    if (prc != 0 || read_logprobs(obj, out) != 0) goto done;
    int mct = 0;
    int mrc = json_get_int(obj, "max_completion_tokens", &SRC, 1, 1 << 30, &mct, false);
    if (mrc < 0) goto done;
    if (mrc == JSON_OK) out->p.max_tokens = mct;
    const json_t *mt = json_object_get(obj, "max_tokens");
    out->max_tokens_given = mrc == JSON_OK || (mt && !json_is_null(mt));
    if (out->max_tokens_given) out->max_tokens_default = false;
    int n_prompts = kind == OAI_CHAT ? 1 : out->n_prompts;
    if ((int64_t)out->p.n * n_prompts > lim->max_n) {
        if (n_prompts > 1)
            folio_fail("request body: field 'n': n = %d for each of %d prompts is %lld "
                       "sequences, more than this server runs at once (%d, --max-num-seqs)",
                       out->p.n, n_prompts, (long long)out->p.n * n_prompts, lim->max_n);
        else
            folio_fail("request body: field 'n': %d is more than this server runs at once (%d, "
                       "--max-num-seqs)", out->p.n, lim->max_n);
        goto done;
    }
    if (out->max_tokens_given && out->p.proc.min_tokens > out->p.max_tokens) {
        folio_fail("request body: field 'min_tokens': %d is more than max_tokens (%d)",
                   out->p.proc.min_tokens, out->p.max_tokens);
        goto done;
    }
    if (out->echo && out->p.logprobs >= 0) {
        json_fail_unsupported(&SRC, "echo", "echo together with logprobs", json_true());
        goto done;
    }
    if (out->p.session_id >= 0 && (out->n_prompts > 1 || out->p.n > 1)) {
        json_fail_unsupported(&SRC, "session_id", "a session turn with n > 1 or several prompts",
                              json_object_get(obj, "session_id"));
        goto done;
    }
    if (sampling_params_validate(&out->p.sampling) != 0 ||
        logits_params_validate(&out->p.proc, lim->vocab) != 0) {
        folio_fail_context("request body");
        goto done;
    }
    rc = 0;
done:
    json_decref(obj);
    return rc;
}

void oai_request_free(oai_request *r) {
    for (int i = 0; i < r->n_prompts; i++) {
        if (r->prompt_texts) free(r->prompt_texts[i]);
        if (r->prompt_ids) free(r->prompt_ids[i]);
    }
    free(r->prompt_texts);
    free(r->prompt_ids);
    free(r->n_prompt_ids);
    json_decref(r->messages);
    json_decref(r->tools);
    free(r->tool_name);
    free(r->model);
    request_params_free(&r->p);
    memset(r, 0, sizeof *r);
}

void oai_error_param(const char *message, char *buf, size_t n) {
    buf[0] = '\0';
    const char *f = strstr(message, "field '");
    if (f) {
        f += 7;
        const char *end = strchr(f, '\'');
        size_t len = end ? (size_t)(end - f) : 0;
        if (len >= n) len = n - 1;
        memcpy(buf, f, len);
        buf[len] = '\0';
        return;
    }
    if (strncmp(message, "request body: ", 14) == 0) message += 14;
    size_t len = strspn(message, "abcdefghijklmnopqrstuvwxyz_[]0123456789.");
    if (len > 0 && len < n && message[len] == ':') {
        memcpy(buf, message, len);
        buf[len] = '\0';
    }
}
