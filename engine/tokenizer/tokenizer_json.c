/* A minimal JSON scanner for tokenizer.json's model.vocab and model.merges (see
 * tokenizer_json.h): skipping values, decoding strings (all escapes, surrogate pairs),
 * integers. Errors name the file and the byte offset. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tokenizer_json.h"
#include "utf8.h"

typedef struct {
    const char *s, *p, *end;
    const char *path;
    text_buf str; /* last decoded string */
} scanner;

static int fail_at(const scanner *sc, const char *what) {
    return folio_fail("%s: invalid JSON at byte %zu: %s", sc->path, (size_t)(sc->p - sc->s), what);
}

static void skip_ws(scanner *sc) {
    while (sc->p < sc->end && (*sc->p == ' ' || *sc->p == '\n' || *sc->p == '\r' || *sc->p == '\t'))
        sc->p++;
}

static int expect(scanner *sc, char c) {
    skip_ws(sc);
    if (sc->p >= sc->end || *sc->p != c) {
        char msg[32] = "expected 'x'";
        msg[10] = c;
        return fail_at(sc, msg);
    }
    sc->p++;
    return 0;
}

static int hex4(const char *p, unsigned *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        *v = *v * 16 + (unsigned)d;
    }
    return 0;
}

static int read_escape(scanner *sc) {
    char e = *sc->p++;
    const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
    const char *k = strchr(from, e);
    if (e && k) {
        text_buf_append(&sc->str, &to[k - from], 1);
        return 0;
    }
    if (e != 'u' || sc->end - sc->p < 4) return fail_at(sc, "bad escape");
    unsigned cp;
    if (hex4(sc->p, &cp) != 0) return fail_at(sc, "bad \\u escape");
    sc->p += 4;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        unsigned lo;
        if (sc->end - sc->p < 6 || sc->p[0] != '\\' || sc->p[1] != 'u' || hex4(sc->p + 2, &lo) != 0 ||
            lo < 0xDC00 || lo > 0xDFFF)
            return fail_at(sc, "lone surrogate in \\u escape");
        sc->p += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        return fail_at(sc, "lone surrogate in \\u escape");
    }
    char u[4];
    text_buf_append(&sc->str, u, utf8_encode(cp, u));
    return 0;
}

/* Decodes the string at sc->p into sc->str. */
static int read_string(scanner *sc) {
    if (expect(sc, '"') != 0) return -1;
    sc->str.len = 0;
    text_buf_append(&sc->str, "", 0);
    for (;;) {
        const char *q = sc->p;
        while (q < sc->end && *q != '"' && *q != '\\') q++;
        text_buf_append(&sc->str, sc->p, (size_t)(q - sc->p));
        sc->p = q;
        if (q >= sc->end) return fail_at(sc, "unterminated string");
        sc->p++;
        if (*q == '"') return 0;
        if (sc->p >= sc->end) return fail_at(sc, "unterminated string");
        if (read_escape(sc) != 0) return -1;
    }
}

static int skip_string(scanner *sc) {
    sc->p++; /* opening quote */
    while (sc->p < sc->end) {
        char c = *sc->p++;
        if (c == '"') return 0;
        if (c == '\\') sc->p++;
    }
    return fail_at(sc, "unterminated string");
}

static int skip_value(scanner *sc) {
    skip_ws(sc);
    if (sc->p >= sc->end) return fail_at(sc, "expected a value");
    if (*sc->p == '"') return skip_string(sc);
    if (*sc->p != '{' && *sc->p != '[') {
        while (sc->p < sc->end && !strchr(",}] \t\r\n", *sc->p)) sc->p++;
        return 0;
    }
    int depth = 0;
    while (sc->p < sc->end) {
        char c = *sc->p;
        if (c == '"') {
            if (skip_string(sc) != 0) return -1;
            continue;
        }
        sc->p++;
        if (c == '{' || c == '[') depth++;
        else if ((c == '}' || c == ']') && --depth == 0) return 0;
    }
    return fail_at(sc, "unterminated object or array");
}

/* Calls back for each key of the object at sc->p, positioned at its value. */
typedef int (*member_fn)(scanner *sc, void *ctx);

static int each_member(scanner *sc, member_fn fn, void *ctx) {
    if (expect(sc, '{') != 0) return -1;
    skip_ws(sc);
    if (sc->p < sc->end && *sc->p == '}') {
        sc->p++;
        return 0;
    }
    for (;;) {
        if (read_string(sc) != 0 || expect(sc, ':') != 0) return -1;
        skip_ws(sc);
        if (fn(sc, ctx) != 0) return -1;
        skip_ws(sc);
        if (sc->p < sc->end && *sc->p == ',') {
            sc->p++;
            continue;
        }
        return expect(sc, '}');
    }
}

typedef struct {
    tj_span *vocab, *merges;
} find_ctx;

static int model_member(scanner *sc, void *ctx) {
    find_ctx *f = ctx;
    tj_span *target = strcmp(sc->str.s, "vocab") == 0 ? f->vocab
                    : strcmp(sc->str.s, "merges") == 0 ? f->merges : NULL;
    size_t start = (size_t)(sc->p - sc->s);
    if (skip_value(sc) != 0) return -1;
    if (target) {
        target->start = start;
        target->end = (size_t)(sc->p - sc->s);
    }
    return 0;
}

static int top_member(scanner *sc, void *ctx) {
    if (strcmp(sc->str.s, "model") == 0 && sc->p < sc->end && *sc->p == '{')
        return each_member(sc, model_member, ctx);
    return skip_value(sc);
}

int tj_find_model_fields(const char *s, size_t n, const char *path, tj_span *vocab,
                         tj_span *merges) {
    scanner sc = {s, s, s + n, path, {0}};
    memset(vocab, 0, sizeof *vocab);
    memset(merges, 0, sizeof *merges);
    find_ctx f = {vocab, merges};
    int rc = each_member(&sc, top_member, &f);
    text_buf_free(&sc.str);
    return rc;
}

void tj_blank(char *s, tj_span sp, char open, char close) {
    if (sp.end <= sp.start + 1) return;
    memset(s + sp.start, ' ', sp.end - sp.start);
    s[sp.start] = open;
    s[sp.start + 1] = close;
}

typedef struct {
    tj_vocab_fn fn;
    void *ctx;
} vocab_ctx;

static int vocab_member(scanner *sc, void *ctx) {
    vocab_ctx *v = ctx;
    char *endp;
    long long id = strtoll(sc->p, &endp, 10);
    if (endp == sc->p) return fail_at(sc, "model.vocab: expected an integer id");
    sc->p = endp;
    return v->fn(v->ctx, sc->str.s, sc->str.len, id);
}

int tj_read_vocab(const char *s, tj_span sp, const char *path, tj_vocab_fn fn, void *ctx) {
    scanner sc = {s, s + sp.start, s + sp.end, path, {0}};
    vocab_ctx v = {fn, ctx};
    int rc = each_member(&sc, vocab_member, &v);
    text_buf_free(&sc.str);
    return rc;
}

static int read_merge(scanner *sc, size_t index, text_buf *first, tj_merge_fn fn, void *ctx) {
    skip_ws(sc);
    if (sc->p < sc->end && *sc->p == '"') {
        if (read_string(sc) != 0) return -1;
        return fn(ctx, index, sc->str.s, sc->str.len, NULL, 0, 0);
    }
    if (expect(sc, '[') != 0 || read_string(sc) != 0) return -1;
    first->len = 0;
    text_buf_append(first, sc->str.s, sc->str.len);
    if (expect(sc, ',') != 0 || read_string(sc) != 0 || expect(sc, ']') != 0) return -1;
    return fn(ctx, index, first->s, first->len, sc->str.s, sc->str.len, 1);
}

int tj_read_merges(const char *s, tj_span sp, const char *path, tj_merge_fn fn, void *ctx) {
    scanner sc = {s, s + sp.start, s + sp.end, path, {0}};
    text_buf first = {0};
    int rc = expect(&sc, '[');
    skip_ws(&sc);
    bool empty = rc == 0 && sc.p < sc.end && *sc.p == ']';
    for (size_t i = 0; rc == 0 && !empty; i++) {
        rc = read_merge(&sc, i, &first, fn, ctx);
        skip_ws(&sc);
        if (rc == 0 && sc.p < sc.end && *sc.p == ',') {
            sc.p++;
            continue;
        }
        if (rc == 0) rc = expect(&sc, ']');
        break;
    }
    text_buf_free(&sc.str);
    text_buf_free(&first);
    return rc;
}
