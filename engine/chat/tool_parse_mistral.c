/* The mistral format (Mistral 7B v0.3, Nemo, Small): after any text,
 *   [TOOL_CALLS][{"name": "f", "arguments": {...}}, ...]     (or one object)
 *   [TOOL_CALLS]f[ARGS]{...}                                  (tokenizer v11 and later)
 * [TOOL_CALLS] and [ARGS] are special tokens: the server keeps special tokens in the text. */
#include <string.h>

#include "tool_parse_internal.h"

enum { M_LEAD, M_JSON, M_NAME, M_ARGS_MARK, M_ARGS_LEAD, M_ARGS_JSON };

static const char *const OPENERS[] = {"[TOOL_CALLS]", NULL};
static const char ARGS[] = "[ARGS]";

static bool name_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '.';
}

static int text_step(tool_stream *s, bool final) { return tp_text_step_markers(s, final, OPENERS); }

static int segment_step(tool_stream *s, bool final) {
    while (s->pos < s->pend.len) {
        unsigned char c = (unsigned char)s->pend.s[s->pos];
        switch (s->phase) {
        case M_LEAD:
            if (tp_is_ws(c)) s->pos++;
            else if (c == '[' || c == '{') tp_begin_json(s, M_JSON);
            else if (name_char(c)) {
                s->name_start = s->pos;
                s->phase = M_NAME;
            } else {
                return SEG_FAIL;
            }
            break;
        case M_NAME:
            if (c == '[') {
                s->name_end = s->pos;
                s->phase = M_ARGS_MARK;
            } else if (name_char(c) && s->pos - s->name_start < TP_MAX_NAME) {
                s->pos++;
            } else {
                return SEG_FAIL;
            }
            break;
        case M_ARGS_MARK:
            switch (tp_match(s, s->pos, ARGS)) {
            case TP_FULL:
                s->pos += sizeof ARGS - 1;
                s->phase = M_ARGS_LEAD;
                break;
            case TP_PARTIAL:
                if (!final) return SEG_MORE;
                return SEG_FAIL;
            default: return SEG_FAIL;
            }
            break;
        case M_ARGS_LEAD:
            if (tp_is_ws(c)) s->pos++;
            else if (c == '{') tp_begin_json(s, M_ARGS_JSON);
            else return SEG_FAIL;
            break;
        default: { /* M_JSON, M_ARGS_JSON */
            int r = tp_jscan_byte(&s->js, c);
            s->pos++;
            if (r == JS_BAD) return SEG_FAIL;
            if (r == JS_DONE) {
                int rc = s->phase == M_JSON
                             ? tp_take_calls(s, true)
                             : tp_take_named_call(s, s->pend.s + s->name_start,
                                                  s->name_end - s->name_start);
                return rc == 0 ? SEG_DONE : SEG_FAIL;
            }
            break;
        }
        }
    }
    return final ? SEG_FAIL : SEG_MORE;
}

const tp_family tp_mistral = {.format = TOOL_FORMAT_MISTRAL, .text_step = text_step,
                              .segment_step = segment_step};
