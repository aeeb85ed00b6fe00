/* Parsing request lines and formatting result lines of the offline JSONL batch format. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "error.h"
#include "json_util.h"
#include "request_json.h"
#include "requests_jsonl.h"

/* Fields a request line may carry; anything else is reported (a typo would otherwise be
 * silently ignored). "model" and "user" are accepted and ignored. */
static const char *const KNOWN[] = {
    "prompt", "prompt_ids", "max_tokens", "temperature", "top_p", "top_k", "min_p", "n",
    "stop", "stop_token_ids", "seed", "ignore_eos", "presence_penalty", "frequency_penalty",
    "repetition_penalty", "logprobs", "session_id", "min_tokens", "logit_bias", "model", "user",
    NULL};

static int check_known(const json_t *obj, const json_src *src) {
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        int k = 0;
        while (KNOWN[k] && strcmp(KNOWN[k], key) != 0) k++;
        if (!KNOWN[k]) return json_fail_field(src, key, "a known request field", v);
    }
    return 0;
}

static int read_prompt(const json_t *obj, const json_src *src, int vocab,
                       const text_codec *codec, jsonl_request *out) {
    const json_t *arr = NULL;
    const char *text = NULL;
    if (json_get_array(obj, "prompt_ids", src, &arr, false) < 0) return -1;
    if (json_get_string(obj, "prompt", src, &text, false) < 0) return -1;
    if (arr && text) return json_fail_field(src, "prompt", "either prompt or prompt_ids", NULL);
    if (arr) {
        if (json_array_size(arr) == 0)
            return json_fail_field(src, "prompt_ids", "a non-empty array of token ids", arr);
        return request_json_ids(arr, "prompt_ids", src, vocab, &out->prompt_ids, &out->n_prompt);
    }
    if (!text) return json_fail_field(src, "prompt", "a prompt (or prompt_ids)", NULL);
    if (!codec)
        return json_fail_field(src, "prompt", "token ids in prompt_ids (prompt text needs the "
                               "tokenizer)", json_object_get(obj, "prompt"));
    if (codec->encode(codec->self, text, &out->prompt_ids, &out->n_prompt) != 0)
        return folio_fail_context("%s: field 'prompt'", src->origin);
    return 0;
}

void jsonl_parse_request(const char *line, int line_no, int index, int vocab,
                         const text_codec *codec, uint64_t default_seed, jsonl_request *out) {
    memset(out, 0, sizeof *out);
    out->index = index;
    request_params_init(&out->p);
    char origin[64];
    snprintf(origin, sizeof origin, "line %d", line_no);
    json_src src = {.origin = origin, .object = NULL};
    json_t *obj = json_parse_object(line, origin);
    int rc = obj ? 0 : -1;
    if (rc == 0) rc = check_known(obj, &src);
    if (rc == 0) rc = read_prompt(obj, &src, vocab, codec, out);
    if (rc == 0) rc = request_params_from_json(obj, &src, vocab, default_seed, &out->p);
    if (rc != 0) out->error = folio_xstrdup(folio_last_error());
    json_decref(obj);
}

void jsonl_request_free(jsonl_request *r) {
    free(r->prompt_ids);
    free(r->error);
    request_params_free(&r->p);
    memset(r, 0, sizeof *r);
}

static json_t *logprobs_json(const sequence *q, int top_n) {
    json_t *chosen = json_array(), *tops = json_array();
    for (int i = 0; i < sequence_generated(q); i++) {
        const token_logprobs *lp = &q->logprobs[i];
        json_array_append_new(chosen, json_real(lp->logprob));
        json_t *alt = json_object();
        for (int k = 0; k < top_n; k++) {
            char key[16];
            snprintf(key, sizeof key, "%d", lp->top_ids[k]);
            json_object_set_new(alt, key, json_real(lp->top_lps[k]));
        }
        json_array_append_new(tops, alt);
    }
    json_t *o = json_object();
    json_object_set_new(o, "token_logprobs", chosen);
    json_object_set_new(o, "top_logprobs", tops);
    return o;
}

/* text: what the engine made (with a codec), else null. */
static json_t *output_json(const sequence *q, const request *r) {
    json_t *o = json_object(), *ids = json_array();
    int g = sequence_generated(q);
    for (int i = 0; i < g; i++) json_array_append_new(ids, json_integer(q->tokens[q->n_prompt + i]));
    json_object_set_new(o, "text", q->text ? json_string(q->text) : json_null());
    json_object_set_new(o, "token_ids", ids);
    json_object_set_new(o, "finish_reason", json_string(finish_reason_name(q->finish)));
    json_object_set_new(o, "logprobs", r->p.logprobs >= 0 && q->logprobs
                                           ? logprobs_json(q, r->p.logprobs) : json_null());
    return o;
}

char *jsonl_format_result(int index, const request *r) {
    if (r->error) return jsonl_format_error(index, r->error);
    json_t *o = json_object(), *outs = json_array();
    json_object_set_new(o, "index", json_integer(index));
    json_object_set_new(o, "prompt_tokens", json_integer(r->n_prompt));
    for (int i = 0; i < r->n_seqs; i++) json_array_append_new(outs, output_json(r->seqs[i], r));
    json_object_set_new(o, "outputs", outs);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(7));
    json_decref(o);
    return s;
}

char *jsonl_format_error(int index, const char *error) {
    json_t *o = json_object();
    json_object_set_new(o, "index", json_integer(index));
    json_object_set_new(o, "error", json_string(error));
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}
