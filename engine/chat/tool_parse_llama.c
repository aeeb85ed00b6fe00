/* The llama3_json format (Llama 3.1, 3.2, 3.3 with JSON tool calling): the output is calls,
 *   [<|python_tag|>]{"name": "f", "parameters": {...}}[; {...}]...
 * at its start (after whitespace), separated by ";" or whitespace. <|python_tag|> is a
 * special token: it is in the text only when special tokens are kept. Text that is not a call
 * where one could begin makes the rest of the output content. */
#include "tool_parse_internal.h"

enum { L_LEAD, L_JSON };

static const char TAG[] = "<|python_tag|>";

/* At the start of the output, or right after a call: the next call, or plain text. */
static int text_step(tool_stream *s, bool final) {
    if (!tp_skip_after_call(s)) return TP_STOP;
    size_t i = 0, len = s->pend.len;
    while (i < len && tp_is_ws((unsigned char)s->pend.s[i])) i++;
    if (i < len && s->pend.s[i] == ';' && s->out.n_calls > 0) {
        i++;
        while (i < len && tp_is_ws((unsigned char)s->pend.s[i])) i++;
    }
    if (i == len) { /* whitespace (and a ";") so far */
        if (!final) return TP_STOP;
        if (s->out.n_calls > 0) tp_drop(s, len); /* a separator after the last call */
        else s->mode = TP_PLAIN;
        return TP_GO;
    }
    if (s->pend.s[i] == '{') {
        tp_open_segment(s, i, i);
        tp_begin_json(s, L_JSON);
        return TP_GO;
    }
    switch (tp_match(s, i, TAG)) {
    case TP_FULL: tp_open_segment(s, i, i + sizeof TAG - 1); return TP_GO;
    case TP_PARTIAL:
        if (!final) return TP_STOP;
        break;
    default: break;
    }
    s->mode = TP_PLAIN;
    return TP_GO;
}

static int segment_step(tool_stream *s, bool final) {
    while (s->pos < s->pend.len) {
        unsigned char c = (unsigned char)s->pend.s[s->pos];
        if (s->phase == L_LEAD) {
            if (tp_is_ws(c)) {
                s->pos++;
                continue;
            }
            if (c != '{') return SEG_FAIL;
            tp_begin_json(s, L_JSON);
        }
        int r = tp_jscan_byte(&s->js, c);
        s->pos++;
        if (r == JS_BAD) return SEG_FAIL;
        if (r == JS_DONE) return tp_take_calls(s, false) == 0 ? SEG_DONE : SEG_FAIL;
    }
    return final ? SEG_FAIL : SEG_MORE;
}

const tp_family tp_llama3_json = {.format = TOOL_FORMAT_LLAMA3_JSON, .text_step = text_step,
                                  .segment_step = segment_step, .fail_to_plain = true};
