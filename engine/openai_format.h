/* OpenAI response bodies of the server: completions and chat completions (whole, and as
 * server-sent-event chunks), usage, logprobs in both APIs' shapes, and error bodies
 * ({"error": {"message", "type", "param", "code"}}). */
#ifndef FOLIO_OPENAI_FORMAT_H
#define FOLIO_OPENAI_FORMAT_H

#include <stdbool.h>
#include <stdint.h>

#include "openai_api.h"
#include "serve_loop.h"
#include "tokenizer.h"

typedef struct {
    oai_kind kind;
    char id[48];                 /* "cmpl-..." / "chatcmpl-..." */
    long long created;
    const char *model;
    const tokenizer *tok;        /* token strings of logprobs */
    char **echo;                 /* [n_sub] prompt texts to prepend, or NULL */
    bool return_token_ids;
    bool include_usage;
} oai_response_ctx;

/* The whole response of a finished job (j done: read without its lock). malloc'd. */
char *oai_format_response(const oai_response_ctx *x, const serve_job *j);

/* One SSE event "data: {...}\n\n" for choice `index`: text[0..len), the tokens ids[0..n_ids)
 * with their logprobs (lps NULL: none), finish (NULL: not finished), role: chat's first
 * chunk of the choice. Appended to *out (text_buf). */
void oai_format_chunk(const oai_response_ctx *x, int index, const char *text, size_t len,
                      const int32_t *ids, const token_logprobs *lps, int n_ids, int top_n,
                      int text_offset, const char *finish, bool role, text_buf *out);

/* The final usage chunk (choices: []) of a stream. */
void oai_format_usage_chunk(const oai_response_ctx *x, int prompt_tokens, int completion_tokens,
                            text_buf *out);

/* {"error": {...}}; param may be "" (null), type e.g. "BadRequestError". malloc'd. */
char *oai_format_error(const char *message, const char *type, const char *param, int code);

/* "stop", "length" or "abort" (cancelled). */
const char *oai_finish_name(finish_reason f);

#endif
