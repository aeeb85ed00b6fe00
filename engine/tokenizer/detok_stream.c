/* Decoding, as a stream: each id's decoded piece was computed at load time
 * (tokenizer_load.c: Replace, Metaspace, ByteLevel per token); what is left is what crosses
 * token boundaries, and it is all here:
 *   - ByteLevel: bytes of all tokens are concatenated and repaired the lossy way, so a
 *     character split over tokens is held until it completes (or proves invalid);
 *   - ByteFallback: a run of <0xNN> tokens is one group, emitted as its bytes when the whole
 *     group is valid UTF-8, else as one U+FFFD per byte token (Hugging Face's rule), so a
 *     group is held until a non-byte token (or the flush) ends it;
 *   - Strip after Fuse strips the start of the whole output; Metaspace the first token.
 * tokenizer_decode() is this stream run over all ids, so streamed and one-shot decoding
 * cannot disagree; tokenizer_token_piece() is one token through the same rules, without the
 * holding (the token strings of the server's logprobs). */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tokenizer_internal.h"
#include "utf8.h"

struct detok_stream {
    const tokenizer *tok;
    bool skip_special;
    text_buf pending;  /* ByteLevel: incomplete tail; ByteFallback: the open group */
    size_t group_n;    /* byte tokens in the open group */
    int strip_left;    /* output-level Strip still to apply */
    bool started;      /* some text has been emitted */
    bool first_done;   /* a token has been decoded (Metaspace strips only the first) */
    text_buf scratch;
};

static void stream_init(detok_stream *s, const tokenizer *tok, bool skip_special) {
    memset(s, 0, sizeof *s);
    s->tok = tok;
    s->skip_special = skip_special;
    s->strip_left = tok->dec.strip_start;
}

static void stream_release(detok_stream *s) {
    text_buf_free(&s->pending);
    text_buf_free(&s->scratch);
}

/* Appends text to out, applying the output-level Strip to the very start. */
static void emit(detok_stream *s, const char *p, size_t n, text_buf *out) {
    if (!s->started) {
        while (s->strip_left > 0 && n > 0 && *p == s->tok->dec.strip_char) {
            p++;
            n--;
            s->strip_left--;
        }
        if (n == 0) return;
        s->started = true;
        s->strip_left = 0;
    }
    text_buf_append(out, p, n);
}

static void emit_lossy(detok_stream *s, const char *p, size_t n, text_buf *out) {
    if (utf8_valid_prefix((const uint8_t *)p, n) == n) {
        emit(s, p, n, out);
        return;
    }
    s->scratch.len = 0;
    utf8_append_lossy((const uint8_t *)p, n, &s->scratch.s, &s->scratch.len, &s->scratch.cap);
    emit(s, s->scratch.s, s->scratch.len, out);
}

static void close_group(detok_stream *s, text_buf *out) {
    if (!s->group_n) return;
    if (utf8_valid_prefix((const uint8_t *)s->pending.s, s->pending.len) == s->pending.len) {
        emit(s, s->pending.s, s->pending.len, out);
    } else {
        for (size_t i = 0; i < s->group_n; i++) emit(s, "\xEF\xBF\xBD", 3, out);
    }
    s->pending.len = 0;
    s->group_n = 0;
}

/* Length of the prefix of p that no later byte can change: all but a trailing character
 * that is valid so far but incomplete. */
static size_t settled_prefix(const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp;
        if (utf8_decode(p + i, n - i, &len, &cp) == UTF8_TRUNCATED) return i;
        i += len;
    }
    return n;
}

static void push_bytelevel(detok_stream *s, const char *p, size_t n, text_buf *out) {
    if (s->pending.len == 0 && utf8_valid_prefix((const uint8_t *)p, n) == n) {
        emit(s, p, n, out);
        return;
    }
    text_buf_append(&s->pending, p, n);
    size_t k = settled_prefix((const uint8_t *)s->pending.s, s->pending.len);
    if (k == 0) return;
    emit_lossy(s, s->pending.s, k, out);
    memmove(s->pending.s, s->pending.s + k, s->pending.len - k);
    s->pending.len -= k;
}

/* Metaspace decoder, first token: every replacement character is dropped (not turned into a
 * space), as Hugging Face does. */
static void emit_first_metaspace(detok_stream *s, int32_t id, text_buf *out) {
    const tokenizer *tok = s->tok;
    const char *p = tok->arena + tok->tok_off[id];
    size_t n = tok->tok_len[id], rl = strlen(tok->dec.meta_rep);
    s->scratch.len = 0;
    for (size_t i = 0; i < n;) {
        if (i + rl <= n && memcmp(p + i, tok->dec.meta_rep, rl) == 0) {
            i += rl;
            continue;
        }
        text_buf_append(&s->scratch, p + i, 1);
        i++;
    }
    if (s->scratch.len) emit(s, s->scratch.s, s->scratch.len, out);
}

static void push_piece(detok_stream *s, int32_t id, text_buf *out) {
    const tokenizer *tok = s->tok;
    const char *p = tok->dec_arena + tok->dec_off[id];
    size_t n = tok->dec_len[id];
    if (tok->dec.byte_fallback && tok->dec_byte[id] >= 0) {
        char b = (char)tok->dec_byte[id];
        text_buf_append(&s->pending, &b, 1);
        s->group_n++;
        s->first_done = true;
        return;
    }
    close_group(s, out);
    if (tok->dec.strip_first_token && !s->first_done) {
        s->first_done = true;
        emit_first_metaspace(s, id, out);
        return;
    }
    s->first_done = true;
    if (tok->dec.byte_level) push_bytelevel(s, p, n, out);
    else emit(s, p, n, out);
}

static int check_id(const tokenizer *tok, int32_t id) {
    if (id < 0 || id >= tok->n_vocab)
        return folio_fail("token id %d is outside the vocabulary [0, %d) of %s", id,
                          tok->n_vocab, tok->path);
    return 0;
}

int detok_stream_push(detok_stream *s, int32_t id, text_buf *out) {
    if (check_id(s->tok, id) != 0) return -1;
    if (s->tok->tok_off[id] == UINT32_MAX) return 0; /* no token: skipped, as HF does */
    if (s->skip_special && s->tok->is_special[id]) return 0;
    push_piece(s, id, out);
    if (out->s == NULL) text_buf_append(out, "", 0);
    return 0;
}

void detok_stream_flush(detok_stream *s, text_buf *out) {
    close_group(s, out);
    if (s->pending.len) emit_lossy(s, s->pending.s, s->pending.len, out);
    s->pending.len = 0;
    if (out->s == NULL) text_buf_append(out, "", 0);
}

bool detok_stream_at_start(const detok_stream *s) {
    return !s->first_done && s->pending.len == 0;
}

/* One token through the stream's rules alone: emit() and the Metaspace first-token rule on a
 * fresh stream (at_start) or on one already past the start, without the UTF-8 holding. */
int tokenizer_token_piece(const tokenizer *tok, int32_t id, bool at_start, text_buf *out) {
    if (check_id(tok, id) != 0) return -1;
    text_buf_append(out, "", 0);
    if (tok->tok_off[id] == UINT32_MAX) return 0;
    detok_stream s;
    stream_init(&s, tok, false);
    if (!at_start) {
        s.started = s.first_done = true;
        s.strip_left = 0;
    }
    if (tok->dec.byte_fallback && tok->dec_byte[id] >= 0) {
        char b = (char)tok->dec_byte[id];
        emit(&s, &b, 1, out);
    } else if (tok->dec.strip_first_token && !s.first_done) {
        emit_first_metaspace(&s, id, out);
    } else {
        emit(&s, tok->dec_arena + tok->dec_off[id], tok->dec_len[id], out);
    }
    stream_release(&s);
    return 0;
}

detok_stream *detok_stream_new(const tokenizer *tok, bool skip_special) {
    detok_stream *s = folio_xmalloc(sizeof *s);
    stream_init(s, tok, skip_special);
    return s;
}

void detok_stream_free(detok_stream *s) {
    if (!s) return;
    stream_release(s);
    free(s);
}

int detok_stream_prime(detok_stream *s, const int32_t *ids, size_t n) {
    text_buf shown = {0};
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) rc = detok_stream_push(s, ids[i], &shown);
    text_buf_free(&shown);
    return rc;
}

/* The stream's common case, inlined: nothing pending, output started, a plain piece. */
static bool fast_piece(const detok_stream *s, int32_t id, text_buf *out) {
    const tokenizer *tok = s->tok;
    if (!s->started || s->pending.len || s->group_n || !tok->dec_plain[id] ||
        (s->skip_special && tok->is_special[id]))
        return false;
    size_t n = tok->dec_len[id];
    if (out->len + n + 1 > out->cap) return false; /* the slow path grows the buffer */
    memcpy(out->s + out->len, tok->dec_arena + tok->dec_off[id], n);
    out->len += n;
    return true;
}

int tokenizer_decode(const tokenizer *tok, const int32_t *ids, size_t n, bool skip_special,
                     text_buf *out) {
    detok_stream s;
    stream_init(&s, tok, skip_special);
    int rc = 0;
    text_buf_append(out, "", 0);
    for (size_t i = 0; i < n && rc == 0; i++) {
        int32_t id = ids[i];
        if (id >= 0 && id < tok->n_vocab && fast_piece(&s, id, out)) continue;
        rc = detok_stream_push(&s, id, out);
    }
    if (rc == 0) detok_stream_flush(&s, out);
    text_buf_append(out, "", 0); /* NUL-terminate after the fast path */
    stream_release(&s);
    return rc;
}
