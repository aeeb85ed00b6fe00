/* The hermes format (Qwen2.5, Qwen3, QwQ, Hermes 2 Pro / 3): calls anywhere in the text, each
 *   <tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>
 * The closing tag may be missing at the very end (a model that stops on it). */
#include "tool_parse_internal.h"

enum { H_LEAD, H_JSON, H_CLOSE };

static const char *const OPENERS[] = {"<tool_call>", NULL};
static const char CLOSER[] = "</tool_call>";

static int text_step(tool_stream *s, bool final) { return tp_text_step_markers(s, final, OPENERS); }

static int segment_step(tool_stream *s, bool final) {
    while (s->pos < s->pend.len) {
        unsigned char c = (unsigned char)s->pend.s[s->pos];
        switch (s->phase) {
        case H_LEAD:
            if (tp_is_ws(c)) {
                s->pos++;
                break;
            }
            if (c != '{') return SEG_FAIL;
            tp_begin_json(s, H_JSON);
            break;
        case H_JSON: {
            int r = tp_jscan_byte(&s->js, c);
            s->pos++;
            if (r == JS_BAD) return SEG_FAIL;
            if (r == JS_DONE) {
                if (tp_take_calls(s, false) != 0) return SEG_FAIL;
                s->phase = H_CLOSE;
            }
            break;
        }
        default: /* H_CLOSE */
            if (tp_is_ws(c)) {
                s->pos++;
                break;
            }
            switch (tp_match(s, s->pos, CLOSER)) {
            case TP_FULL: s->pos += sizeof CLOSER - 1; return SEG_DONE;
            case TP_PARTIAL:
                if (!final) return SEG_MORE;
                s->pos = s->pend.len; /* a closing tag cut short by the end */
                return SEG_DONE;
            default: return SEG_FAIL;
            }
        }
    }
    if (!final) return SEG_MORE;
    return s->phase == H_CLOSE ? SEG_DONE : SEG_FAIL;
}

const tp_family tp_hermes = {.format = TOOL_FORMAT_HERMES, .text_step = text_step,
                             .segment_step = segment_step};
