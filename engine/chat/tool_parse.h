/* Tool calls in a model's output text: the formats the supported families emit, which one a
 * chat template implies, and a parser that turns output text into content and calls, whole
 * or as it streams in.
 *
 * Formats (vLLM's --tool-call-parser names):
 *   hermes       Qwen2.5, Qwen3, QwQ, Hermes 2 Pro / 3:   text <tool_call>{"name": ..., "arguments": {...}}</tool_call> ...
 *   llama3_json  Llama 3.1 / 3.2 / 3.3:  [<|python_tag|>]{"name": ..., "parameters": {...}}[; {...}] at the start of the output
 *   mistral      Mistral v0.3, Nemo, Small:  text [TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]
 *                                        or  text [TOOL_CALLS]name[ARGS]{...} (tokenizer v11+)
 * A call's "arguments" (or "parameters") is an object, a string holding JSON, or absent ({}).
 *
 * What the parser promises, for every format and any text:
 *   - content is the text that is not a call; the markup of a call that parses is not in it,
 *     nor is whitespace next to such a call, nor the ";" between two llama3_json calls;
 *   - a call that does not parse (malformed JSON, no name, cut off by the end of the text) is
 *     content, verbatim, markup included: with no call parsed, content is the text exactly;
 *   - a call's arguments are its JSON as the model wrote it (byte for byte), or the string's
 *     value when the model wrote a string;
 *   - fed in pieces split anywhere (between any two bytes), the parser releases the same
 *     content and calls as fed the whole text at once: content only once no later byte can
 *     make it part of a call (text that may be the start of a marker, and whitespace before
 *     one, is held back), and a call only once it is complete and parses.
 *
 * Pure text in, content and calls out: no tokenizer, no JSON writer of its own (jansson
 * checks each call). */
#ifndef FOLIO_TOOL_PARSE_H
#define FOLIO_TOOL_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "text_buf.h"

typedef enum {
    TOOL_FORMAT_NONE = 0,        /* no parsing: the output is content */
    TOOL_FORMAT_HERMES,
    TOOL_FORMAT_LLAMA3_JSON,
    TOOL_FORMAT_MISTRAL,
} tool_format;

/* "hermes", "llama3_json", "mistral", "none". */
const char *tool_format_name(tool_format f);
/* The format of a --tool-call-parser name (the names above, and "qwen" and "llama3" as
 * aliases). 0, or -1 with a message listing the names. */
int tool_format_parse(const char *name, tool_format *out);
/* The format a chat template's source implies (its tool-call markup: "[TOOL_CALLS]",
 * "<tool_call>", "<|python_tag|>" or Llama 3.1's "parameters" instruction), or
 * TOOL_FORMAT_NONE. Qwen3-Coder's XML calls (<function=...>) are not one of these formats. */
tool_format tool_format_detect(const char *template_source);
/* The marker strings of a format that a tokenizer may hold as special tokens (which a decoder
 * that skips special tokens would drop): NULL-terminated, empty for llama3_json (its parser
 * reads calls with or without <|python_tag|>). */
const char *const *tool_format_markers(tool_format f);

/* One call: owned strings. */
typedef struct {
    char *name;
    char *arguments;             /* JSON text */
    size_t content_before;       /* bytes of content released before the call */
} tool_call;

/* What a parser has released so far: content, and calls in the order they appear. */
typedef struct {
    text_buf content;
    tool_call *calls;
    int n_calls, cap_calls;
} tool_output;

void tool_output_free(tool_output *o);

typedef struct tool_stream tool_stream;

/* A parser for one output of format f (not TOOL_FORMAT_NONE). */
tool_stream *tool_stream_new(tool_format f);
void tool_stream_free(tool_stream *s);
/* Feeds the next text[0..len) of the output. */
void tool_stream_feed(tool_stream *s, const char *text, size_t len);
/* The output is over: what was held back is decided (a call cut off is content). */
void tool_stream_finish(tool_stream *s);
/* Everything released so far (grows with each feed; valid until the next feed or free). */
const tool_output *tool_stream_output(const tool_stream *s);

/* The whole text at once: feed + finish into *out (zero it first; free with
 * tool_output_free). */
void tool_parse_text(tool_format f, const char *text, size_t len, tool_output *out);

/* A call id: "call_" + 24 letters and digits, or 9 of them for mistral (its chat templates
 * refuse other ids). Drawn from seed (the caller mixes in what makes it unique). */
void tool_call_id(tool_format f, uint64_t seed, char buf[32]);

#endif
