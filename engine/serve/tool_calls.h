/* Tool calling in `folio serve`: which format this model's calls come in (chosen once, from
 * --tool-call-parser or the chat template), and what one chat request asks of it (its tools,
 * tool_choice and parallel_tool_calls against that format) as the response formatting needs
 * it. The parsing itself is engine/chat/tool_parse.h; the response shapes openai_format.c and
 * sse.c.
 *
 * As vLLM: tools are rendered by the template whatever tool_choice says; with tool_choice
 * "none" the output is not parsed; with "auto", "required" or a named function it is, and a
 * request that needs parsing on a server without a format gets 400. There is no constrained
 * decoding: under "required" or a named function, output that holds no call comes back as
 * content with "tool_calls": [] (vLLM's answer when its parser finds none). */
#ifndef FOLIO_TOOL_CALLS_H
#define FOLIO_TOOL_CALLS_H

#include <stdbool.h>

#include "chat_template.h"
#include "openai_api.h" /* and finish_reason */
#include "tokenizer.h"
#include "tool_parse.h"

/* The server's setup. */
typedef struct {
    tool_format format;          /* TOOL_FORMAT_NONE: no parsing */
    bool from_template;          /* found in the chat template (else --tool-call-parser) */
    bool keep_special;           /* a marker of the format is a special token of this
                                  * tokenizer: requests that parse keep special tokens */
} serve_tools;

/* parser: --tool-call-parser's value, NULL or "auto" to read the template ct (may be NULL).
 * 0, or -1 with a message (an unknown name). */
int serve_tools_resolve(const char *parser, const chat_template *ct, const tokenizer *tok,
                        serve_tools *out);

/* One request's tool calling, as its response is formatted. */
typedef struct {
    tool_format format;          /* TOOL_FORMAT_NONE: the output is content */
    bool parallel;               /* parallel_tool_calls: all calls, else only the first */
    bool forced;                 /* tool_choice required or named: "tool_calls" always there */
    bool named;                  /* a named function: finish_reason "stop", as OpenAI */
} oai_tool_ctx;

/* Sets *out for rq on a server set up as st, and makes rq keep special tokens when the
 * markers need it. 0, or -1 with a message naming the field (400). */
int oai_tools_prepare(oai_request *rq, const serve_tools *st, oai_tool_ctx *out);

/* Whether the response shows call k (0, 1, ...) of those parsed: all of them, or only the
 * first under parallel_tool_calls false (vLLM drops the others too). */
bool oai_tools_shown(const oai_tool_ctx *t, int k);

/* finish_reason of a choice whose output held n_calls calls: "tool_calls" when it called a
 * tool and stopped (not cut by length) under auto or required; else the engine's reason. */
const char *oai_tools_finish(const oai_tool_ctx *t, finish_reason f, int n_calls);

#endif
