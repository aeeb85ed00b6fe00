/* The OpenAI completion parameters of a JSON object, shared by the offline JSONL format and the
 * HTTP server's request bodies. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "error.h"
#include "hash.h"
#include "request_json.h"

int request_json_ids(const json_t *arr, const char *key, const json_src *src, int vocab,
                     int32_t **ids, int *n) {
    size_t len = json_array_size(arr);
    *ids = folio_xmalloc(sizeof **ids * (len ? len : 1));
    *n = (int)len;
    for (size_t i = 0; i < len; i++) {
        char name[64];
        int v;
        snprintf(name, sizeof name, "%s[%zu]", key, i);
        if (json_value_int(json_array_get(arr, i), name, src, 0, vocab - 1, &v) != 0) return -1;
        (*ids)[i] = v;
    }
    return 0;
}

static int read_float(const json_t *obj, const char *key, const json_src *src, float *out) {
    double d;
    int rc = json_get_double(obj, key, src, &d, false);
    if (rc == JSON_OK) *out = (float)d;
    return rc < 0 ? -1 : 0;
}

/* stop: "text" or ["a", "b"]: non-empty strings, at most FOLIO_MAX_STOP_STRINGS of them and
 * FOLIO_MAX_STOP_BYTES in all. */
static int read_stop(const json_t *obj, const json_src *src, request_params *p) {
    json_t *v = json_object_get(obj, "stop");
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v) && !json_is_array(v))
        return json_fail_field(src, "stop", "a string or an array of strings", v);
    size_t n = json_is_string(v) ? 1 : json_array_size(v), bytes = 0;
    if (n > FOLIO_MAX_STOP_STRINGS)
        return folio_fail("%s: field 'stop': %zu stop strings; at most %d are allowed",
                          src->origin, n, FOLIO_MAX_STOP_STRINGS);
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_is_string(v) ? v : json_array_get(v, i);
        if (!json_is_string(s) || json_string_length(s) == 0)
            return json_fail_field(src, "stop", "non-empty strings", s);
        bytes += json_string_length(s);
    }
    if (bytes > FOLIO_MAX_STOP_BYTES)
        return folio_fail("%s: field 'stop': the stop strings have %zu bytes in all; at most %d "
                          "are allowed", src->origin, bytes, FOLIO_MAX_STOP_BYTES);
    p->stop = folio_xmalloc(sizeof *p->stop * n);
    for (size_t i = 0; i < n; i++)
        p->stop[p->n_stop++] =
            folio_xstrdup(json_string_value(json_is_string(v) ? v : json_array_get(v, i)));
    return 0;
}

static int read_bias(const json_t *obj, const json_src *src, int vocab, request_params *p) {
    const json_t *b = NULL;
    if (json_get_object(obj, "logit_bias", src, &b, false) < 0) return -1;
    if (!b) return 0;
    p->owned_bias = folio_xmalloc(sizeof *p->owned_bias * (json_object_size(b) + 1));
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)b, key, v) {
        char *end;
        long id = strtol(key, &end, 10);
        if (*key == '\0' || *end != '\0' || id < 0 || id >= vocab || !json_is_number(v))
            return json_fail_field(src, "logit_bias", "{\"token id\": number} with ids inside "
                                   "the vocabulary", b);
        /* clamped to [-100, 100], as OpenAI documents it and vLLM does */
        double bias = json_number_value(v);
        if (bias > FOLIO_MAX_LOGIT_BIAS) bias = FOLIO_MAX_LOGIT_BIAS;
        if (bias < -FOLIO_MAX_LOGIT_BIAS) bias = -FOLIO_MAX_LOGIT_BIAS;
        p->owned_bias[p->proc.n_bias++] = (logit_bias_entry){(int32_t)id, (float)bias};
    }
    p->proc.bias = p->owned_bias;
    return 0;
}

static int read_session(const json_t *obj, const json_src *src, request_params *p) {
    json_t *v = json_object_get(obj, "session_id");
    if (!v || json_is_null(v)) return 0;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        p->session_id = json_integer_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        p->session_id = request_session_id_of_name(json_string_value(v));
        return 0;
    }
    return json_fail_field(src, "session_id", "a non-negative integer or a string", v);
}

/* end_session: true ends the session after this turn; it needs a session_id. */
static int read_end_session(const json_t *obj, const json_src *src, request_params *p) {
    if (json_get_bool(obj, "end_session", src, &p->end_session, false) < 0) return -1;
    if (p->end_session && p->session_id < 0)
        return json_fail_field(src, "end_session", "true only with a session_id",
                               json_object_get(obj, "end_session"));
    return 0;
}

int64_t request_session_id_of_name(const char *name) {
    const uint64_t h = folio_fnv1a64(FOLIO_FNV64_FOLIO_START, name); /* a name: hashed */
    return (int64_t)(h >> 1);
}

int request_params_from_json(const json_t *obj, const json_src *src, int vocab, uint64_t seed,
                             request_params *p) {
    const json_t *arr = NULL;
    int v;
    long long seed_v;
    if (json_get_int(obj, "max_tokens", src, 1, 1 << 30, &p->max_tokens, false) < 0 ||
        json_get_int(obj, "n", src, 1, 1024, &p->n, false) < 0 ||
        json_get_int(obj, "top_k", src, -1, 1 << 30, &p->sampling.top_k, false) < 0 ||
        json_get_int(obj, "min_tokens", src, 0, 1 << 30, &p->proc.min_tokens, false) < 0 ||
        read_float(obj, "temperature", src, &p->sampling.temperature) < 0 ||
        read_float(obj, "top_p", src, &p->sampling.top_p) < 0 ||
        read_float(obj, "min_p", src, &p->sampling.min_p) < 0 ||
        read_float(obj, "presence_penalty", src, &p->proc.presence_penalty) < 0 ||
        read_float(obj, "frequency_penalty", src, &p->proc.frequency_penalty) < 0 ||
        read_float(obj, "repetition_penalty", src, &p->proc.repetition_penalty) < 0 ||
        json_get_bool(obj, "ignore_eos", src, &p->ignore_eos, false) < 0 || read_stop(obj, src, p) < 0 ||
        read_bias(obj, src, vocab, p) < 0 || read_session(obj, src, p) < 0 ||
        read_end_session(obj, src, p) < 0)
        return -1;
    if (p->sampling.top_k < 0) p->sampling.top_k = 0; /* -1 = off, as in vLLM */
    /* 0 turns the penalty off inside the engine; asked for, it must be a real penalty */
    json_t *rp = json_object_get(obj, "repetition_penalty");
    if (rp && !json_is_null(rp) && !(p->proc.repetition_penalty > 0.0f))
        return json_fail_field(src, "repetition_penalty", "a number > 0", rp);
    if (json_get_array(obj, "stop_token_ids", src, &arr, false) < 0) return -1;
    if (arr && json_array_size(arr) > FOLIO_MAX_STOP_TOKEN_IDS)
        return folio_fail("%s: field 'stop_token_ids': %zu ids; at most %d are allowed",
                          src->origin, json_array_size(arr), FOLIO_MAX_STOP_TOKEN_IDS);
    if (arr && request_json_ids(arr, "stop_token_ids", src, vocab, &p->stop_ids, &p->n_stop_ids) != 0)
        return -1;
    json_t *lp = json_object_get(obj, "logprobs");
    if (lp && !json_is_null(lp) && !json_is_false(lp)) {
        if (json_is_true(lp)) p->logprobs = 0;
        else if (json_value_int(lp, "logprobs", src, 0, FOLIO_MAX_LOGPROBS, &v) != 0) return -1;
        else p->logprobs = v;
    }
    p->seed = seed;
    json_t *sv = json_object_get(obj, "seed");
    if (sv && !json_is_null(sv)) {
        if (!json_is_integer(sv)) return json_fail_field(src, "seed", "an integer", sv);
        seed_v = json_integer_value(sv);
        p->seed = (uint64_t)seed_v;
    }
    return 0;
}
