/* OpenAI request bodies -> request parameters: POST /v1/completions and
 * /v1/chat/completions. The sampling fields are read by request_params_from_json
 * (requests_jsonl.c, shared with `folio generate --requests`); this file adds the OpenAI
 * shapes around them: prompt as a string, a list of strings, a list of ids or a list of id
 * lists; messages; max_completion_tokens; logprobs/top_logprobs; stream and stream_options;
 * echo, skip_special_tokens, add_generation_prompt, priority, user, model, return_token_ids;
 * chat's tools, tool_choice and parallel_tool_calls (OpenAI's shapes, checked here; whether
 * the server can read calls is tool_calls.h's business). Unknown fields are counted, and the
 * first few names returned to the caller cut short (the server logs each name once, escaped).
 *
 * Pure: no tokenizer, no engine, so it can be fuzzed (tests/fuzz/fuzz_openai_request.c). */
#ifndef FOLIO_OPENAI_API_H
#define FOLIO_OPENAI_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sequence.h"

typedef enum { OAI_COMPLETION, OAI_CHAT } oai_kind;

/* tool_choice: "auto" (the default with tools), "none" (the default without), "required", or
 * {"type": "function", "function": {"name": ...}}. */
typedef enum { OAI_TOOLS_AUTO, OAI_TOOLS_NONE, OAI_TOOLS_REQUIRED, OAI_TOOLS_NAMED } oai_tool_choice;

#define OAI_MAX_PROMPTS 64
#define OAI_MAX_UNKNOWN 8        /* unknown field names kept of one request */
#define OAI_UNKNOWN_NAME_MAX 64  /* bytes kept of each (the rest is cut) */

typedef struct {
    oai_kind kind;
    char *model;                 /* NULL when absent */
    int n_prompts;               /* completions: prompts in the list (>= 1) */
    char **prompt_texts;         /* [n_prompts] text prompts, or NULL (ids) */
    int32_t **prompt_ids;        /* [n_prompts] id prompts, or NULL (text) */
    int *n_prompt_ids;
    json_t *messages;            /* chat: the messages array (a reference) */
    json_t *tools;               /* chat: the tools array (a reference), or NULL (none, or []) */
    oai_tool_choice tool_choice;
    char *tool_name;             /* OAI_TOOLS_NAMED: the function (one of tools) */
    bool parallel_tool_calls;    /* default true: every call the model makes, else the first */
    request_params p;
    bool max_tokens_given;
    bool max_tokens_default;     /* max_tokens is the server's default (--generation-config's
                                  * max_new_tokens): a cap, for chat too */
    bool stream, include_usage, echo, skip_special, add_generation_prompt, return_token_ids;
    char unknown[OAI_MAX_UNKNOWN][OAI_UNKNOWN_NAME_MAX + 1];  /* the first unknown field
                                  * names, cut to OAI_UNKNOWN_NAME_MAX bytes (not escaped) */
    size_t unknown_len[OAI_MAX_UNKNOWN];   /* their lengths as kept */
    bool unknown_cut[OAI_MAX_UNKNOWN];     /* the name was longer */
    int n_unknown;               /* names in unknown[] */
    int n_unknown_total;         /* unknown fields in the body */
} oai_request;

/* The server's defaults for a request's sampling (vLLM's: the generation config's), used where
 * the request does not say. */
typedef struct {
    float temperature, top_p, min_p, repetition_penalty;
    int top_k;
    int max_tokens;              /* 0: the built-in rule (16 for completions, the room for chat) */
} oai_defaults;

typedef struct {
    int vocab;                   /* ids must be in [0, vocab) */
    int max_n;                   /* n x prompts <= max_n (--max-num-seqs) */
    const oai_defaults *defaults; /* NULL: request_params_init's */
} oai_limits;

/* The built-in defaults (request_params_init's). */
oai_defaults oai_defaults_builtin(void);

/* Parses and checks a body of len bytes (need not be NUL-terminated). 0, or -1 with an
 * OpenAI-style message naming the field ("field 'temperature': ..."). default_seed: for a
 * request without "seed". out is always initialised; free it with oai_request_free. */
int oai_parse_request(const char *body, size_t len, oai_kind kind, const oai_limits *lim,
                      uint64_t default_seed, oai_request *out);
void oai_request_free(oai_request *r);

/* The field an error message names ("field 'x'" or a leading "x: "), copied into buf; ""
 * when none. */
void oai_error_param(const char *message, char *buf, size_t n);

#endif
