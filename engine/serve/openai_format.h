/* OpenAI response bodies of the server: completions and chat completions (whole, and as
 * server-sent-event chunks), usage (with prompt_tokens_details.cached_tokens), logprobs in
 * both APIs' shapes, tool calls (message.tool_calls, and their deltas in a stream), and error
 * bodies ({"error": {"message", "type", "param", "code"}}). */
#ifndef FOLIO_OPENAI_FORMAT_H
#define FOLIO_OPENAI_FORMAT_H

#include <stdbool.h>
#include <stdint.h>

#include "openai_api.h"
#include "serve_loop.h"
#include "tokenizer.h"
#include "tool_calls.h"

typedef struct {
    oai_kind kind;
    char id[48];                 /* "cmpl-..." / "chatcmpl-..." */
    long long created;
    const char *model;
    const tokenizer *tok;        /* token strings of logprobs */
    char **echo;                 /* [n_sub] prompt texts to prepend, or NULL */
    bool return_token_ids;
    bool include_usage;
    oai_tool_ctx tools;          /* chat: how the output's tool calls are read */
} oai_response_ctx;

/* Sampled tokens of one choice, or of one streamed chunk of it, and what their logprobs need.
 * Token strings are the tokens' text as it appears in the choice's text
 * (tokenizer_token_piece), so the sampled tokens' strings concatenate to the text wherever
 * each token holds whole characters; special tokens show as their text ("</s>"). A token
 * holding part of a UTF-8 character shows as "bytes:" and its bytes escaped "\xNN"
 * (lowercase hex), vLLM's convention; chat's "bytes" are always the token's real bytes.
 * text_offset counts characters (code points, as Python's len), not bytes, and indexes the
 * choice's text (echo, which would put the prompt first, is refused with logprobs). */
typedef struct {
    const int32_t *ids;          /* [n] */
    const token_logprobs *lps;   /* [n], or NULL: no logprobs */
    const int *offs;             /* [n] characters of the choice's text before each token (lps) */
    int n;
    int top_n;                   /* alternatives per token */
    int n_lead;                  /* ids[0..n_lead) began the text (the decoders' start rules) */
} oai_tokens;

/* The whole response of a finished job (JOB_DONE). malloc'd. */
char *oai_format_response(const oai_response_ctx *x, serve_job *j);

/* One SSE event "data: {...}\n\n" for choice `index`: text[0..len), the tokens t (NULL:
 * none), finish (NULL: not finished), role: chat's first chunk of the choice. Appended to
 * *out (text_buf). */
void oai_format_chunk(const oai_response_ctx *x, int index, const char *text, size_t len,
                      const oai_tokens *t, const char *finish, bool role, text_buf *out);

/* A stream's chunk for call `index` (among those shown) of choice `choice`: first, its id,
 * type and name with arguments ""; else its arguments. Appended to *out. */
void oai_format_tool_chunk(const oai_response_ctx *x, int choice, int index, const tool_call *c,
                           bool first, text_buf *out);

/* The final usage chunk (choices: []) of a stream. cached_tokens: context tokens whose KV was
 * reused (prompt_tokens_details.cached_tokens). */
void oai_format_usage_chunk(const oai_response_ctx *x, int prompt_tokens, int completion_tokens,
                            int cached_tokens, text_buf *out);

/* {"error": {...}}; param may be "" (null), type e.g. "BadRequestError". malloc'd. */
char *oai_format_error(const char *message, const char *type, const char *param, int code);

/* "stop", "length" or "abort" (cancelled). */
const char *oai_finish_name(finish_reason f);

#endif
