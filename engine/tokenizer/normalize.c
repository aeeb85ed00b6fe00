/* Normalizers, applied to each piece of text between added tokens: Unicode normalization
 * forms through utf8proc, and Hugging Face's Prepend and Replace (SentencePiece-style models:
 * Prepend "▁" to every non-empty piece, then Replace " " by "▁"). */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "error.h"
#include "tokenizer_internal.h"

bool norm_is_identity(const tokenizer *tok) { return tok->n_norm == 0; }

/* Characters below U+0300 (lead bytes below 0xCC) are stable under every normalization form
 * used here and never compose with what precedes them. */
static bool below_combining(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++)
        if ((uint8_t)s[i] >= 0xCC) return false;
    return true;
}

static int utf8proc_form(const norm_step *st, const char *s, size_t len, text_buf *out) {
    int opts = UTF8PROC_STABLE;
    if (st->kind == NORM_NFC || st->kind == NORM_NFKC) opts |= UTF8PROC_COMPOSE;
    else opts |= UTF8PROC_DECOMPOSE;
    if (st->kind == NORM_NFKC || st->kind == NORM_NFKD) opts |= UTF8PROC_COMPAT;
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &dst,
                                      (utf8proc_option_t)opts);
    if (n < 0) return folio_fail("unicode normalization failed: %s", utf8proc_errmsg(n));
    text_buf_append(out, dst, (size_t)n);
    free(dst);
    return 0;
}

/* True at a character that starts below U+0300: ASCII or a lead byte C0..CB. */
static bool low_start(uint8_t b) { return b < 0x80 || (b >= 0xC0 && b < 0xCC); }

/* NFC: text below U+0300 is copied as it is; only the runs around higher characters (with the
 * character before each run, which marks may compose with) go through utf8proc. Cutting
 * before a character below U+0300 is safe: it never composes with what precedes it. */
static int nfc_runs(const norm_step *st, const char *s, size_t len, text_buf *out) {
    const uint8_t *u = (const uint8_t *)s;
    size_t done = 0, i = 0;
    while (i < len) {
        if (u[i] < 0xCC) {
            i++;
            continue;
        }
        size_t start = i;
        if (start > done) {
            start--;
            while (start > done && (u[start] & 0xC0) == 0x80) start--;
        }
        size_t end = i;
        while (end < len && !low_start(u[end])) end++;
        text_buf_append(out, s + done, start - done);
        if (utf8proc_form(st, s + start, end - start, out) != 0) return -1;
        done = i = end;
    }
    text_buf_append(out, s + done, len - done);
    return 0;
}

static int unicode_form(const norm_step *st, const char *s, size_t len, text_buf *out) {
    if (st->kind == NORM_NFC) {
        if (below_combining(s, len)) {
            text_buf_append(out, s, len);
            return 0;
        }
        return nfc_runs(st, s, len, out);
    }
    return utf8proc_form(st, s, len, out);
}

static void replace_into(const norm_step *st, const char *s, size_t len, text_buf *out) {
    size_t i = 0;
    while (i < len) {
        const char *hit = memmem(s + i, len - i, st->pattern, st->pattern_len);
        size_t upto = hit ? (size_t)(hit - s) : len;
        text_buf_append(out, s + i, upto - i);
        if (!hit) break;
        text_buf_append(out, st->content, st->content_len);
        i = upto + st->pattern_len;
    }
}

static int apply_step(const norm_step *st, const char *s, size_t len, text_buf *out) {
    out->len = 0;
    switch (st->kind) {
    case NORM_PREPEND:
        if (len) text_buf_append(out, st->pattern, st->pattern_len);
        text_buf_append(out, s, len);
        return 0;
    case NORM_REPLACE:
        replace_into(st, s, len, out);
        return 0;
    default:
        return unicode_form(st, s, len, out);
    }
}

int norm_apply(const tokenizer *tok, const char *s, size_t len, text_buf *out) {
    out->len = 0;
    text_buf_append(out, s, len);
    text_buf tmp = {0};
    for (size_t i = 0; i < tok->n_norm; i++) {
        if (apply_step(&tok->norm[i], out->s, out->len, &tmp) != 0) {
            text_buf_free(&tmp);
            return -1;
        }
        text_buf swap = *out;
        *out = tmp;
        tmp = swap;
    }
    text_buf_free(&tmp);
    return 0;
}
