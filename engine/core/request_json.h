/* The OpenAI completion parameters of a JSON object (max_tokens, temperature, top_p, top_k,
 * min_p, n, stop, stop_token_ids, seed, ignore_eos, presence_penalty, frequency_penalty,
 * repetition_penalty, logprobs, session_id, min_tokens, logit_bias), read in one place for
 * the offline JSONL format (engine/offline) and the HTTP server's bodies (engine/serve). */
#ifndef FOLIO_REQUEST_JSON_H
#define FOLIO_REQUEST_JSON_H

#include <stdint.h>

#include <jansson.h>

#include "json_util.h"
#include "sequence.h"

/* The request parameters of obj: fields absent keep p's values; seed: used when the object
 * has none. 0, or -1 with a message naming the field (src's origin first). */
int request_params_from_json(const json_t *obj, const json_src *src, int vocab, uint64_t seed,
                             request_params *p);

/* The token ids of the array arr (field key), each inside [0, vocab): malloc'd in *ids.
 * 0, or -1 with a message naming the field and the element. */
int request_json_ids(const json_t *arr, const char *key, const json_src *src, int vocab,
                     int32_t **ids, int *n);

#endif
