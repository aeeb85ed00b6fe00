/* The encoding pipeline (Hugging Face order): repair invalid UTF-8 -> split out added tokens
 * on the raw text -> normalize each piece between them -> split out normalized added tokens ->
 * pre-tokenize -> BPE each word -> post-processor ids around the sequence. Also the buffers,
 * accessors and tokenizer_free. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tokenizer_internal.h"
#include "utf8.h"

/* ---------------------------------------------------------------- buffers */

void token_ids_push(token_ids *t, int32_t id) {
    FOLIO_GROW(t->ids, t->cap, t->n + 1);
    t->ids[t->n++] = id;
}

void token_ids_free(token_ids *t) {
    free(t->ids);
    memset(t, 0, sizeof *t);
}

/* ---------------------------------------------------------------- encoding */

static const char METASPACE[] = "\xE2\x96\x81";

/* No pre-tokenizer: the whole piece is one word, or, where the vocabulary allows it (see
 * metaspace_split_safe), words starting at each "▁" that follows another character. */
static int encode_unsplit(tokenizer *tok, const char *s, size_t n, token_ids *out) {
    if (!tok->bpe.split_on_metaspace) return bpe_encode_word(tok, s, n, out);
    size_t start = 0, i = 0;
    while (i + 3 <= n) {
        const char *hit = memmem(s + i, n - i, METASPACE, 3);
        if (!hit) break;
        size_t at = (size_t)(hit - s);
        if (at > start && !(at >= 3 && memcmp(s + at - 3, METASPACE, 3) == 0)) {
            if (bpe_encode_word(tok, s + start, at - start, out) != 0) return -1;
            start = at;
        }
        i = at + 3;
    }
    return bpe_encode_word(tok, s + start, n - start, out);
}

static int encode_words(tokenizer *tok, const char *s, size_t n, token_ids *out) {
    if (tok->n_pre == 0) return encode_unsplit(tok, s, n, out);
    const char *base;
    if (pretokenize(tok, s, n, &tok->pieces, &tok->pre_buf, &base) != 0) return -1;
    for (size_t i = 0; i < tok->pieces.n; i++) {
        span p = tok->pieces.v[i];
        if (bpe_encode_word(tok, base + p.off, p.len, out) != 0) return -1;
    }
    return 0;
}

/* Splits s by the added tokens of `set`; the pieces between go to encode_words. */
typedef int (*piece_fn)(tokenizer *tok, const char *s, size_t n, token_ids *out);

static int split_added(tokenizer *tok, const added_set *set, const char *s, size_t n,
                       piece_fn fn, token_ids *out) {
    size_t pos = 0;
    bool first = tok->piece_first;
    for (;;) {
        size_t a = n, b = n;
        int k = added_find(tok, set, s, n, pos, &a, &b);
        size_t end = k >= 0 ? a : n;
        tok->piece_first = first && pos == 0;
        if (end > pos && fn(tok, s + pos, end - pos, out) != 0) return -1;
        if (k < 0) return 0;
        token_ids_push(out, tok->added[k].id);
        pos = b;
    }
}

static int encode_normalized(tokenizer *tok, const char *s, size_t n, token_ids *out) {
    if (tok->n_norm == 0) return split_added(tok, &tok->set_norm, s, n, encode_words, out);
    if (norm_apply(tok, s, n, &tok->normed) != 0) return -1;
    /* normed is reused by the next piece only after this one is done */
    return split_added(tok, &tok->set_norm, tok->normed.s, tok->normed.len, encode_words, out);
}

int tokenizer_encode(tokenizer *tok, const char *text, size_t len, bool add_special,
                     token_ids *out) {
    const char *s = text ? text : "";
    if (utf8_valid_prefix((const uint8_t *)s, len) != len) {
        tok->clean.len = 0;
        utf8_append_lossy((const uint8_t *)s, len, &tok->clean.s, &tok->clean.len,
                          &tok->clean.cap);
        s = tok->clean.s;
        len = tok->clean.len;
    }
    if (add_special)
        for (size_t i = 0; i < tok->prefix.n; i++) token_ids_push(out, tok->prefix.ids[i]);
    tok->piece_first = true;
    if (split_added(tok, &tok->set_raw, s, len, encode_normalized, out) != 0) return -1;
    if (add_special)
        for (size_t i = 0; i < tok->suffix.n; i++) token_ids_push(out, tok->suffix.ids[i]);
    return 0;
}

/* ---------------------------------------------------------------- accessors */

int32_t tokenizer_vocab_size(const tokenizer *tok) { return tok->n_vocab; }

const char *tokenizer_token_text(const tokenizer *tok, int32_t id) {
    if (id < 0 || id >= tok->n_vocab || tok->tok_off[id] == UINT32_MAX) return NULL;
    return tok->arena + tok->tok_off[id];
}

int32_t tokenizer_token_id(const tokenizer *tok, const char *text) {
    int32_t id;
    size_t n = strlen(text);
    if (strmap_get(&tok->added_ids, text, n, &id)) return id;
    return strmap_get(&tok->bpe.vocab, text, n, &id) ? id : -1;
}

int32_t tokenizer_bos_id(const tokenizer *tok) { return tok->bos_id; }
int32_t tokenizer_eos_id(const tokenizer *tok) { return tok->eos_id; }

bool tokenizer_is_special(const tokenizer *tok, int32_t id) {
    return id >= 0 && id < tok->n_vocab && tok->is_special[id];
}

void tokenizer_free(tokenizer *tok) {
    if (!tok) return;
    free(tok->path);
    free(tok->arena);
    free(tok->tok_off);
    free(tok->tok_len);
    free(tok->is_special);
    strmap_free(&tok->added_ids);
    free(tok->dec_arena);
    free(tok->dec_off);
    free(tok->dec_len);
    free(tok->dec_byte);
    free(tok->dec_plain);
    for (size_t i = 0; i < tok->n_norm; i++) {
        free(tok->norm[i].pattern);
        free(tok->norm[i].content);
    }
    free(tok->norm);
    for (size_t i = 0; i < tok->n_pre; i++) pcre2_code_free(tok->pre[i].re);
    free(tok->pre);
    for (size_t i = 0; i < tok->n_added; i++) {
        free(tok->added[i].content);
        free(tok->added[i].norm);
    }
    free(tok->added);
    free(tok->set_raw.order);
    free(tok->set_norm.order);
    bpe_free(&tok->bpe);
    token_ids_free(&tok->prefix);
    token_ids_free(&tok->suffix);
    pcre2_match_data_free(tok->md);
    text_buf_free(&tok->clean);
    text_buf_free(&tok->normed);
    text_buf_free(&tok->pre_buf);
    free(tok->pieces.v);
    free(tok->pieces2.v);
    free(tok);
}
