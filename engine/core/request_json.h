/* The OpenAI completion parameters of a JSON object (max_tokens, temperature, top_p, top_k,
 * min_p, n, stop, stop_token_ids, seed, ignore_eos, presence_penalty, frequency_penalty,
 * repetition_penalty, logprobs, session_id, end_session, min_tokens, logit_bias), read in one place for
 * the offline JSONL format (engine/offline) and the HTTP server's bodies (engine/serve). */
#ifndef FOLIO_REQUEST_JSON_H
#define FOLIO_REQUEST_JSON_H

#include <stdint.h>

#include <jansson.h>

#include "json_util.h"
#include "sequence.h"

/* Bounds on what one request may ask for, each a 400 naming the field beyond it: stop strings
 * are searched in the text at every token (OpenAI allows 4), stop ids checked at every token;
 * a logit bias beyond +-100 is clamped to it (OpenAI's range; vLLM clamps too). */
#define FOLIO_MAX_STOP_STRINGS 64
#define FOLIO_MAX_STOP_BYTES 4096
#define FOLIO_MAX_STOP_TOKEN_IDS 1024
#define FOLIO_MAX_LOGIT_BIAS 100.0

/* The request parameters of obj: fields absent keep p's values; seed: used when the object
 * has none. 0, or -1 with a message naming the field (src's origin first). */
int request_params_from_json(const json_t *obj, const json_src *src, int vocab, uint64_t seed,
                             request_params *p);

/* The session id a string session_id names (a hash of it, non-negative): the same in a body
 * and in DELETE /v1/sessions/{name}. */
int64_t request_session_id_of_name(const char *name);

/* The token ids of the array arr (field key), each inside [0, vocab): malloc'd in *ids.
 * 0, or -1 with a message naming the field and the element. */
int request_json_ids(const json_t *arr, const char *key, const json_src *src, int vocab,
                     int32_t **ids, int *n);

#endif
