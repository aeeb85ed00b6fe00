/* The tool-call parser's insides, shared by the common streaming logic (tool_parse.c) and the
 * one file per format family (tool_parse_hermes.c, tool_parse_llama.c,
 * tool_parse_mistral.c).
 *
 * The stream holds back in `pend` every byte it has not decided yet. In text mode a family's
 * text step releases what is surely content and either stops (it needs more bytes) or opens a
 * segment: a possible call, made of a lead (whitespace, a ";"), an opener marker and a body.
 * The family's segment step reads the body a byte at a time; it ends the segment as done
 * (its calls are released and its bytes dropped) or failed (its bytes go back to being text).
 * Every decision depends only on the bytes, never on how they were split, so any split of the
 * text gives the same result as the whole text (the tests split at every byte). */
#ifndef FOLIO_TOOL_PARSE_INTERNAL_H
#define FOLIO_TOOL_PARSE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tool_parse.h"

#define TP_MAX_DEPTH 512         /* JSON nesting a call may have */
#define TP_MAX_NAME 256          /* bytes of a mistral name[ARGS] function name */

/* An incremental scanner of one JSON object or array: where it ends, and early failure on a
 * byte that no JSON value could hold there (jansson checks the whole value afterwards). */
typedef struct {
    int depth;
    bool in_str, esc;
    uint8_t stack[TP_MAX_DEPTH]; /* the closing bracket of each open container */
} tp_jscan;

enum { JS_MORE, JS_DONE, JS_BAD };
void tp_jscan_begin(tp_jscan *j);
/* The next byte (the first must be '{' or '['): JS_DONE on the byte that closes the value. */
int tp_jscan_byte(tp_jscan *j, unsigned char c);

typedef enum { TP_TEXT, TP_SEGMENT, TP_PLAIN } tp_mode;

/* A text step's answer: stop (needs more bytes, or all is decided) or go on (mode changed). */
enum { TP_STOP, TP_GO };
/* A segment step's answer. */
enum { SEG_MORE, SEG_DONE, SEG_FAIL };

typedef struct tp_family tp_family;

struct tool_stream {
    const tp_family *fam;
    text_buf pend;               /* bytes held back, undecided */
    tp_mode mode;
    bool after_call;             /* whitespace that comes next is dropped */
    size_t text_ws;              /* text mode: pend[0..text_ws) is whitespace already scanned */
    /* the open segment: pend[0..open) its lead, pend[open..body) its opener */
    size_t open, body;
    size_t pos;                  /* next byte of pend the segment step reads; at SEG_DONE: the
                                  * bytes the segment took */
    int phase;                   /* the family's state within the segment */
    tp_jscan js;
    size_t json_start;           /* where the JSON value being scanned began */
    size_t name_start, name_end; /* mistral: the name of name[ARGS]{...} */
    tool_output pending;         /* the segment's calls, released when it is done */
    tool_output out;
};

struct tp_family {
    tool_format format;
    int (*text_step)(tool_stream *s, bool final);
    int (*segment_step)(tool_stream *s, bool final);
    bool fail_to_plain;          /* a failed segment makes the rest of the output content */
};

extern const tp_family tp_hermes, tp_llama3_json, tp_mistral;

/* ---- common helpers (tool_parse.c) ---- */

static inline bool tp_is_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Whether marker m begins at pend[i]: TP_FULL, TP_PARTIAL (the held bytes end inside it) or
 * TP_NO. */
enum { TP_NO, TP_PARTIAL, TP_FULL };
int tp_match(const tool_stream *s, size_t i, const char *m);

/* Moves pend[0..n) to the content / drops it. */
void tp_release(tool_stream *s, size_t n);
void tp_drop(tool_stream *s, size_t n);
/* Opens a segment whose lead is pend[0..open) and opener pend[open..body); the segment step
 * starts reading at body in its phase 0. */
void tp_open_segment(tool_stream *s, size_t open, size_t body);
/* The segment's JSON value starts at pos: scanned from there in `phase`. */
void tp_begin_json(tool_stream *s, int phase);
/* After a call, drops the whitespace that follows it; true when bytes are left to read. */
bool tp_skip_after_call(tool_stream *s);

/* The text step of families whose calls may follow any text: releases text up to a marker of
 * openers (NULL-terminated), holding back a possible start of one and the whitespace before
 * it; opens a segment at a whole marker. */
int tp_text_step_markers(tool_stream *s, bool final, const char *const *openers);

/* Checks the complete JSON value pend[json_start..pos) as one call object {"name", "arguments"
 * | "parameters"} (want_list: or an array of them) and adds its calls to s->pending. 0, or -1
 * when it is not one (the segment fails). */
int tp_take_calls(tool_stream *s, bool want_list);
/* Adds a call with a known name and the arguments JSON object pend[json_start..pos). */
int tp_take_named_call(tool_stream *s, const char *name, size_t name_len);

#endif
