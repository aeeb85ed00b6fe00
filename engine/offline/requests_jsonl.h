/* The offline batch format of `folio generate --requests FILE.jsonl`: one JSON object a line
 * with `prompt` (text) or `prompt_ids` (array of ids) and OpenAI completion parameters
 * (max_tokens, temperature, top_p, top_k, min_p, n, stop, stop_token_ids, seed, ignore_eos,
 * presence_penalty, frequency_penalty, repetition_penalty, logprobs, session_id, plus
 * min_tokens and logit_bias); and the result line of each request. A bad line becomes an error
 * result naming the line and the field; the other lines are unaffected. */
#ifndef FOLIO_REQUESTS_JSONL_H
#define FOLIO_REQUESTS_JSONL_H

#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "engine_loop.h"
#include "json_util.h"
#include "request_json.h"
#include "sequence.h"
#include "text_codec.h"

typedef struct {
    int index;                   /* 0-based input line number of requests (blank lines skip) */
    int32_t *prompt_ids;         /* owned */
    int n_prompt;
    request_params p;            /* owned */
    char *error;                 /* owned: this line's error, or NULL */
} jsonl_request;

/* Parses one line. Never fails as a whole: problems land in out->error ("line L: field 'x':
 * ..."). codec: to encode a text prompt (NULL: a text prompt is an error). vocab: for id
 * checks. default_seed: for requests without one (sample i of request k gets its own). */
void jsonl_parse_request(const char *line, int line_no, int index, int vocab,
                         const text_codec *codec, uint64_t default_seed, jsonl_request *out);
void jsonl_request_free(jsonl_request *r);

/* The result line of a finished request (no newline), malloc'd. "text": the engine's output
 * text (null when it ran without a codec). */
char *jsonl_format_result(int index, const request *r);
/* {"index": i, "error": "..."} */
char *jsonl_format_error(int index, const char *error);

#endif
