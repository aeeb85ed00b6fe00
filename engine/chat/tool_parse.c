/* Tool calls in output text: the format table, detection from a chat template, the streaming
 * machine common to every format (held-back text, segments, their success and failure), the
 * incremental JSON scanner, and the checks that turn a JSON value into calls. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "error.h"
#include "grow.h"
#include "hash.h"
#include "tool_parse_internal.h"

/* ---- formats ---- */

static const struct {
    const char *name;
    tool_format f;
} NAMES[] = {{"none", TOOL_FORMAT_NONE},          {"hermes", TOOL_FORMAT_HERMES},
             {"llama3_json", TOOL_FORMAT_LLAMA3_JSON}, {"mistral", TOOL_FORMAT_MISTRAL},
             {"qwen", TOOL_FORMAT_HERMES},          {"llama3", TOOL_FORMAT_LLAMA3_JSON}};

const char *tool_format_name(tool_format f) {
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
        if (NAMES[i].f == f) return NAMES[i].name;
    return "none";
}

int tool_format_parse(const char *name, tool_format *out) {
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
        if (strcmp(NAMES[i].name, name) == 0) {
            *out = NAMES[i].f;
            return 0;
        }
    return folio_fail("unknown tool-call parser '%s' (hermes, llama3_json, mistral, none)", name);
}

tool_format tool_format_detect(const char *src) {
    if (!src) return TOOL_FORMAT_NONE;
    if (strstr(src, "[TOOL_CALLS]")) return TOOL_FORMAT_MISTRAL;
    /* Qwen3-Coder wraps XML calls (<function=name><parameter=...>) in the same tags */
    if (strstr(src, "<tool_call>") && !strstr(src, "<function=")) return TOOL_FORMAT_HERMES;
    if (strstr(src, "<|python_tag|>") ||
        strstr(src, "\"parameters\": dictionary of argument name"))
        return TOOL_FORMAT_LLAMA3_JSON;
    return TOOL_FORMAT_NONE;
}

const char *const *tool_format_markers(tool_format f) {
    static const char *const hermes[] = {"<tool_call>", "</tool_call>", NULL};
    static const char *const mistral[] = {"[TOOL_CALLS]", "[ARGS]", NULL};
    static const char *const none[] = {NULL};
    switch (f) {
    case TOOL_FORMAT_HERMES: return hermes;
    case TOOL_FORMAT_MISTRAL: return mistral;
    default: return none;
    }
}

void tool_call_id(tool_format f, uint64_t seed, char buf[32]) {
    static const char ALNUM[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    size_t at = 0, n = 9;
    if (f != TOOL_FORMAT_MISTRAL) {
        memcpy(buf, "call_", 5);
        at = 5;
        n = 24;
    }
    uint64_t x = seed;
    for (size_t i = 0; i < n; i++) {
        x += FOLIO_GOLDEN64;
        buf[at + i] = ALNUM[folio_mix64(x) % 62];
    }
    buf[at + n] = '\0';
}

/* ---- output ---- */

static void add_call(tool_output *o, char *name, char *arguments) {
    FOLIO_GROW(o->calls, o->cap_calls, o->n_calls + 1);
    o->calls[o->n_calls++] = (tool_call){.name = name, .arguments = arguments};
}

static void clear_calls(tool_output *o) {
    for (int i = 0; i < o->n_calls; i++) {
        free(o->calls[i].name);
        free(o->calls[i].arguments);
    }
    o->n_calls = 0;
}

void tool_output_free(tool_output *o) {
    clear_calls(o);
    free(o->calls);
    text_buf_free(&o->content);
    *o = (tool_output){0};
}

/* ---- the JSON scanner ---- */

void tp_jscan_begin(tp_jscan *j) {
    j->depth = 0;
    j->in_str = j->esc = false;
}

int tp_jscan_byte(tp_jscan *j, unsigned char c) {
    if (j->in_str) {
        if (j->esc) j->esc = false;
        else if (c == '\\') j->esc = true;
        else if (c == '"') j->in_str = false;
        else if (c < 0x20) return JS_BAD;
        return JS_MORE;
    }
    if (j->depth == 0 && c != '{' && c != '[') return JS_BAD;
    switch (c) {
    case '"': j->in_str = true; return JS_MORE;
    case '{':
    case '[':
        if (j->depth == TP_MAX_DEPTH) return JS_BAD;
        j->stack[j->depth++] = c == '{' ? '}' : ']';
        return JS_MORE;
    case '}':
    case ']':
        if (j->stack[j->depth - 1] != c) return JS_BAD;
        return --j->depth == 0 ? JS_DONE : JS_MORE;
    default:
        /* whitespace, separators, numbers, true / false / null */
        if (tp_is_ws(c) || strchr(",:0123456789-+.eEtrufalsn", c)) return JS_MORE;
        return JS_BAD;
    }
}

/* ---- the machine ---- */

int tp_match(const tool_stream *s, size_t i, const char *m) {
    size_t n = strlen(m), have = s->pend.len - i;
    size_t k = have < n ? have : n;
    if (memcmp(s->pend.s + i, m, k) != 0) return TP_NO;
    return have >= n ? TP_FULL : TP_PARTIAL;
}

void tp_drop(tool_stream *s, size_t n) {
    memmove(s->pend.s, s->pend.s + n, s->pend.len - n);
    s->pend.len -= n;
    s->pend.s[s->pend.len] = '\0';
}

void tp_release(tool_stream *s, size_t n) {
    if (n == 0) return;
    text_buf_append(&s->out.content, s->pend.s, n);
    tp_drop(s, n);
}

void tp_open_segment(tool_stream *s, size_t open, size_t body) {
    s->mode = TP_SEGMENT;
    s->open = open;
    s->body = body;
    s->pos = body;
    s->phase = 0;
    s->text_ws = 0;
}

void tp_begin_json(tool_stream *s, int phase) {
    s->json_start = s->pos;
    tp_jscan_begin(&s->js);
    s->phase = phase;
}

bool tp_skip_after_call(tool_stream *s) {
    if (!s->after_call) return true;
    size_t n = 0;
    while (n < s->pend.len && tp_is_ws((unsigned char)s->pend.s[n])) n++;
    tp_drop(s, n);
    s->after_call = s->pend.len == 0; /* more whitespace may come */
    return !s->after_call;
}

int tp_text_step_markers(tool_stream *s, bool final, const char *const *openers) {
    if (!tp_skip_after_call(s)) return TP_STOP;
    size_t len = s->pend.len, run = 0; /* pend[run..i) is the whitespace just before i */
    for (size_t i = s->text_ws; i < len; i++) {
        if (tp_is_ws((unsigned char)s->pend.s[i])) continue;
        for (int k = 0; openers[k]; k++) {
            int m = tp_match(s, i, openers[k]);
            if (m == TP_FULL) {
                tp_release(s, run);
                tp_open_segment(s, i - run, i - run + strlen(openers[k]));
                return TP_GO;
            }
            if (m == TP_PARTIAL && !final) {
                tp_release(s, run);
                s->text_ws = i - run;
                return TP_STOP;
            }
        }
        run = i + 1;
    }
    if (final) run = len;
    tp_release(s, run);
    s->text_ws = s->pend.len;
    return TP_STOP;
}

static void segment_done(tool_stream *s) {
    for (int i = 0; i < s->pending.n_calls; i++) {
        add_call(&s->out, s->pending.calls[i].name, s->pending.calls[i].arguments);
        s->out.calls[s->out.n_calls - 1].content_before = s->out.content.len;
    }
    s->pending.n_calls = 0; /* the strings moved to out */
    tp_drop(s, s->pos);
    s->mode = TP_TEXT;
    s->after_call = true;
    s->text_ws = 0;
}

static void segment_failed(tool_stream *s) {
    clear_calls(&s->pending);
    if (s->fam->fail_to_plain) {
        s->mode = TP_PLAIN;
        return;
    }
    tp_release(s, s->body); /* the lead and the opener are text; what follows is read again */
    s->mode = TP_TEXT;
    s->text_ws = 0;
}

static void run(tool_stream *s, bool final) {
    for (;;) {
        switch (s->mode) {
        case TP_PLAIN: tp_release(s, s->pend.len); return;
        case TP_TEXT:
            if (s->pend.len == 0 || s->fam->text_step(s, final) == TP_STOP) return;
            break;
        case TP_SEGMENT:
            switch (s->fam->segment_step(s, final)) {
            case SEG_MORE:
                if (final) FOLIO_BUG("tool_parse: a segment wants more bytes after the end");
                return;
            case SEG_DONE: segment_done(s); break;
            default: segment_failed(s); break;
            }
            break;
        }
    }
}

tool_stream *tool_stream_new(tool_format f) {
    tool_stream *s = folio_xcalloc(1, sizeof *s);
    switch (f) {
    case TOOL_FORMAT_HERMES: s->fam = &tp_hermes; break;
    case TOOL_FORMAT_LLAMA3_JSON: s->fam = &tp_llama3_json; break;
    case TOOL_FORMAT_MISTRAL: s->fam = &tp_mistral; break;
    default: FOLIO_BUG("tool_stream_new: no parser for format %d", (int)f);
    }
    s->mode = TP_TEXT;
    text_buf_append(&s->pend, NULL, 0);
    text_buf_append(&s->out.content, NULL, 0);
    return s;
}

void tool_stream_free(tool_stream *s) {
    if (!s) return;
    text_buf_free(&s->pend);
    tool_output_free(&s->pending);
    tool_output_free(&s->out);
    free(s);
}

void tool_stream_feed(tool_stream *s, const char *text, size_t len) {
    if (len == 0) return;
    text_buf_append(&s->pend, text, len);
    run(s, false);
}

void tool_stream_finish(tool_stream *s) { run(s, true); }

const tool_output *tool_stream_output(const tool_stream *s) { return &s->out; }

void tool_parse_text(tool_format f, const char *text, size_t len, tool_output *out) {
    tool_stream *s = tool_stream_new(f);
    tool_stream_feed(s, text, len);
    tool_stream_finish(s);
    *out = s->out;
    s->out = (tool_output){0};
    tool_stream_free(s);
}

/* ---- JSON values into calls ---- */

/* Walkers over text already known to be valid JSON. */
static size_t skip_ws(const char *p, size_t i, size_t n) {
    while (i < n && tp_is_ws((unsigned char)p[i])) i++;
    return i;
}

static size_t skip_string(const char *p, size_t i, size_t n) {
    for (i++; i < n && p[i] != '"'; i++)
        if (p[i] == '\\') i++;
    return i + 1;
}

static size_t skip_value(const char *p, size_t i, size_t n) {
    if (p[i] == '"') return skip_string(p, i, n);
    if (p[i] == '{' || p[i] == '[') {
        int depth = 0;
        while (i < n) {
            char c = p[i];
            if (c == '"') {
                i = skip_string(p, i, n);
                continue;
            }
            if (c == '{' || c == '[') depth++;
            else if ((c == '}' || c == ']') && --depth == 0) return i + 1;
            i++;
        }
        return n;
    }
    while (i < n && !strchr(",}] \t\n\r", p[i])) i++;
    return i;
}

/* The text of member `key` (written without escapes) of the object p[0..n): 0, or -1. */
static int member_span(const char *p, size_t n, const char *key, size_t *vs, size_t *ve) {
    size_t klen = strlen(key), i = skip_ws(p, 0, n) + 1;
    for (;;) {
        i = skip_ws(p, i, n);
        if (i >= n || p[i] != '"') return -1;
        size_t ks = i + 1;
        i = skip_string(p, i, n);
        bool hit = i - 1 - ks == klen && memcmp(p + ks, key, klen) == 0;
        i = skip_ws(p, skip_ws(p, i, n) + 1, n); /* past ':' */
        *vs = i;
        i = skip_value(p, i, n);
        *ve = i;
        if (hit) return 0;
        i = skip_ws(p, i, n);
        if (i >= n || p[i] != ',') return -1;
        i++;
    }
}

static char *dup_n(const char *s, size_t n) {
    char *d = folio_xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static json_t *load(const char *p, size_t n) {
    json_error_t err;
    return json_loadb(p, n, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL,
                      &err);
}

/* The arguments text of call object o (parsed from p[0..n)), malloc'd; NULL when they are
 * neither an object, a string nor absent. */
static char *arguments_of(const json_t *o, const char *p, size_t n) {
    const char *key = json_object_get(o, "arguments") ? "arguments" : "parameters";
    const json_t *a = json_object_get(o, key);
    if (!a || json_is_null(a)) return folio_xstrdup("{}");
    if (json_is_string(a)) return dup_n(json_string_value(a), json_string_length(a));
    if (!json_is_object(a)) return NULL;
    size_t vs, ve;
    if (member_span(p, n, key, &vs, &ve) == 0) return dup_n(p + vs, ve - vs);
    /* a key written with escapes: the same JSON, re-written */
    return json_dumps(a, JSON_COMPACT | JSON_PRESERVE_ORDER);
}

/* One call object p[0..n) into s->pending. */
static int take_object(tool_stream *s, const char *p, size_t n) {
    json_t *o = load(p, n);
    const json_t *name = json_object_get(o, "name");
    int rc = -1;
    if (json_is_object(o) && json_is_string(name) && json_string_length(name) > 0 &&
        strlen(json_string_value(name)) == json_string_length(name)) {
        char *args = arguments_of(o, p, n);
        if (args) {
            add_call(&s->pending, folio_xstrdup(json_string_value(name)), args);
            rc = 0;
        }
    }
    json_decref(o);
    return rc;
}

int tp_take_calls(tool_stream *s, bool want_list) {
    const char *p = s->pend.s + s->json_start;
    size_t n = s->pos - s->json_start;
    if (p[0] == '{') return take_object(s, p, n);
    if (!want_list) return -1;
    json_t *a = load(p, n); /* the array as a whole must be valid JSON */
    bool ok = json_is_array(a) && json_array_size(a) > 0;
    json_decref(a);
    if (!ok) return -1;
    for (size_t i = skip_ws(p, 1, n); i < n && p[i] != ']';) {
        size_t e = skip_value(p, i, n);
        if (p[i] != '{' || take_object(s, p + i, e - i) != 0) return -1;
        i = skip_ws(p, e, n);
        if (i < n && p[i] == ',') i = skip_ws(p, i + 1, n);
    }
    return 0;
}

int tp_take_named_call(tool_stream *s, const char *name, size_t name_len) {
    const char *p = s->pend.s + s->json_start;
    size_t n = s->pos - s->json_start;
    json_t *o = load(p, n);
    bool ok = json_is_object(o);
    json_decref(o);
    if (!ok) return -1;
    add_call(&s->pending, dup_n(name, name_len), dup_n(p, n));
    return 0;
}
