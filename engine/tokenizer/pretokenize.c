/* Pre-tokenizers: Split (a regex through PCRE2 with UTF, UCP and JIT, or a literal string),
 * Metaspace (SentencePiece style: spaces -> "▁", prepend always/first/never, split) and ByteLevel (add_prefix_space, the GPT-2 regex when use_regex; the byte <-> character
 * table, applied at the BPE step). A pre-tokenizer turns one piece of normalized text into
 * the list of "words" BPE sees. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tokenizer_internal.h"

void bytelevel_tables(uint32_t byte_to_cp[256]) {
    uint32_t next = 256;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
        byte_to_cp[b] = printable ? (uint32_t)b : next++;
    }
}

void span_push(span_list *l, uint32_t off, uint32_t len) {
    FOLIO_GROW(l->v, l->cap, l->n + 1);
    l->v[l->n].off = off;
    l->v[l->n++].len = len;
}

/* Oniguruma's (and Hugging Face's) \s is Unicode White_Space; PCRE2's UCP \s also takes
 * U+180E. Spell the class out so both agree. */
#define WS_CLASS "\\t-\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}" \
                 "\\x{202F}\\x{205F}\\x{3000}"

static int translate_pattern(const char *p, const char *where, text_buf *out) {
    bool in_class = false;
    for (size_t i = 0; p[i]; i++) {
        char c = p[i];
        if (c == '\\' && p[i + 1]) {
            char e = p[++i];
            if (e == 's') {
                if (in_class) text_buf_append(out, WS_CLASS, strlen(WS_CLASS));
                else text_buf_append(out, "[" WS_CLASS "]", strlen(WS_CLASS) + 2);
            } else if (e == 'S') {
                if (in_class)
                    return folio_fail("%s: pre_tokenizer regex \"%s\": \\S inside a class is "
                                      "not supported", where, p);
                text_buf_append(out, "[^" WS_CLASS "]", strlen(WS_CLASS) + 3);
            } else {
                text_buf_append(out, &c, 1);
                text_buf_append(out, &e, 1);
            }
            continue;
        }
        if (c == '[' && !in_class) {
            in_class = true;
            text_buf_append(out, &c, 1);
            if (p[i + 1] == '^') text_buf_append(out, &p[++i], 1);
            if (p[i + 1] == ']') text_buf_append(out, &p[++i], 1); /* literal ] first */
            continue;
        }
        if (c == ']' && in_class) in_class = false;
        text_buf_append(out, &c, 1);
    }
    text_buf_append(out, "", 1);
    return 0;
}

int pretok_compile(const char *pattern, bool literal, const char *where, pcre2_code **out) {
    text_buf pat = {0};
    uint32_t opts = PCRE2_UTF | PCRE2_UCP;
    if (literal) {
        opts |= PCRE2_LITERAL;
        text_buf_append(&pat, pattern, strlen(pattern) + 1);
    } else if (translate_pattern(pattern, where, &pat) != 0) {
        text_buf_free(&pat);
        return -1;
    }
    int err;
    PCRE2_SIZE erroff;
    *out = pcre2_compile((PCRE2_SPTR)pat.s, PCRE2_ZERO_TERMINATED, opts, &err, &erroff, NULL);
    text_buf_free(&pat);
    if (!*out) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return folio_fail("%s: pre_tokenizer pattern \"%s\" at offset %zu: %s", where, pattern,
                          (size_t)erroff, (const char *)msg);
    }
    pcre2_jit_compile(*out, PCRE2_JIT_COMPLETE); /* falls back to the interpreter if absent */
    return 0;
}

/* Adds [a, b) of a split to out according to the behavior. *last_match tracks merging. */
static void emit_split(span_list *out, uint32_t a, uint32_t b, bool is_match,
                       split_behavior beh, bool *prev_match) {
    if (a == b) return;
    bool pm = *prev_match;
    *prev_match = is_match;
    switch (beh) {
    case SPLIT_ISOLATED:
        span_push(out, a, b - a);
        return;
    case SPLIT_REMOVED:
        if (!is_match) span_push(out, a, b - a);
        return;
    case SPLIT_MERGED_PREV:
        if (is_match && !pm && out->n) out->v[out->n - 1].len = b - out->v[out->n - 1].off;
        else span_push(out, a, b - a);
        return;
    case SPLIT_MERGED_NEXT:
        if (!is_match && pm && out->n) out->v[out->n - 1].len = b - out->v[out->n - 1].off;
        else span_push(out, a, b - a);
        return;
    }
}

static int regex_split(tokenizer *tok, const pre_step *st, const char *base, span piece,
                       span_list *out) {
    const PCRE2_SPTR subj = (PCRE2_SPTR)(base + piece.off);
    PCRE2_SIZE pos = 0, gap = 0, n = piece.len;
    bool prev_match = false;
    while (pos <= n) {
        int rc = pcre2_jit_match(st->re, subj, n, pos, PCRE2_NO_UTF_CHECK, tok->md, NULL);
        if (rc == PCRE2_ERROR_JIT_BADOPTION)
            rc = pcre2_match(st->re, subj, n, pos, PCRE2_NO_UTF_CHECK, tok->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) return folio_fail("pre_tokenizer regex match failed (PCRE2 error %d)", rc);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(tok->md);
        if (ov[1] == ov[0]) { /* empty match: step over one character */
            pos = ov[0] + 1;
            while (pos < n && (subj[pos] & 0xC0) == 0x80) pos++;
            if (ov[0] >= n) break;
            continue;
        }
        emit_split(out, piece.off + (uint32_t)gap, piece.off + (uint32_t)ov[0], false,
                   st->behavior, &prev_match);
        emit_split(out, piece.off + (uint32_t)ov[0], piece.off + (uint32_t)ov[1], true,
                   st->behavior, &prev_match);
        gap = pos = ov[1];
    }
    emit_split(out, piece.off + (uint32_t)gap, piece.off + (uint32_t)n, false, st->behavior,
               &prev_match);
    return 0;
}

/* ByteLevel add_prefix_space: every piece not starting with ' ' gets one; pieces move into buf. */
static void add_prefix_spaces(const char **base, span_list *pieces, text_buf *buf) {
    text_buf tmp = {0};
    for (size_t i = 0; i < pieces->n; i++) {
        span *p = &pieces->v[i];
        const char *s = *base + p->off;
        uint32_t off = (uint32_t)tmp.len;
        if (p->len == 0 || s[0] != ' ') text_buf_append(&tmp, " ", 1);
        text_buf_append(&tmp, s, p->len);
        p->off = off;
        p->len = (uint32_t)tmp.len - off;
    }
    buf->len = 0;
    text_buf_append(buf, tmp.s ? tmp.s : "", tmp.len);
    text_buf_free(&tmp);
    *base = buf->s;
}

/* Metaspace: ' ' -> replacement, the replacement prepended (always, or on the first piece of
 * the input only), then optionally split before each replacement (merged with the next). */
static void metaspace(const tokenizer *tok, const pre_step *st, const char **base,
                      span_list *pieces, text_buf *buf, span_list *next) {
    text_buf tmp = {0};
    next->n = 0;
    for (size_t i = 0; i < pieces->n; i++) {
        span p = pieces->v[i];
        const char *s = *base + p.off;
        uint32_t off = (uint32_t)tmp.len;
        bool starts = p.len >= st->rep_len && memcmp(s, st->rep, st->rep_len) == 0;
        bool pre = st->prepend == PREPEND_ALWAYS ||
                   (st->prepend == PREPEND_FIRST && tok->piece_first && i == 0 && p.off == 0);
        if (pre && !starts && !(p.len > 0 && s[0] == ' ')) text_buf_append(&tmp, st->rep, st->rep_len);
        for (uint32_t j = 0; j < p.len; j++) {
            if (s[j] == ' ') text_buf_append(&tmp, st->rep, st->rep_len);
            else text_buf_append(&tmp, s + j, 1);
        }
        uint32_t end = (uint32_t)tmp.len;
        if (!st->split) {
            span_push(next, off, end - off);
            continue;
        }
        bool prev_match = false;
        uint32_t gap = off;
        for (uint32_t j = off; j + st->rep_len <= end;) {
            if (memcmp(tmp.s + j, st->rep, st->rep_len) != 0) {
                j++;
                continue;
            }
            emit_split(next, gap, j, false, SPLIT_MERGED_NEXT, &prev_match);
            emit_split(next, j, j + (uint32_t)st->rep_len, true, SPLIT_MERGED_NEXT, &prev_match);
            j += (uint32_t)st->rep_len;
            gap = j;
        }
        emit_split(next, gap, end, false, SPLIT_MERGED_NEXT, &prev_match);
    }
    buf->len = 0;
    text_buf_append(buf, tmp.s ? tmp.s : "", tmp.len);
    text_buf_free(&tmp);
    *base = buf->s;
}

int pretokenize(tokenizer *tok, const char *s, size_t len, span_list *out, text_buf *buf,
                const char **base) {
    *base = s;
    out->n = 0;
    span_push(out, 0, (uint32_t)len);
    for (size_t k = 0; k < tok->n_pre; k++) {
        const pre_step *st = &tok->pre[k];
        if (st->kind == PRE_METASPACE) {
            metaspace(tok, st, base, out, buf, &tok->pieces2);
            span_list swap = *out;
            *out = tok->pieces2;
            tok->pieces2 = swap;
            continue;
        }
        if (st->kind == PRE_BYTELEVEL && st->add_prefix_space) add_prefix_spaces(base, out, buf);
        if (!st->re) continue;
        span_list *next = &tok->pieces2;
        next->n = 0;
        for (size_t i = 0; i < out->n; i++)
            if (regex_split(tok, st, *base, out->v[i], next) != 0) return -1;
        span_list swap = *out;
        *out = *next;
        *next = swap;
    }
    return 0;
}
