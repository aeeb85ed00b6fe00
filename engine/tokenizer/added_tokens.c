/* Added tokens, matched in the text before BPE as Hugging Face does: leftmost match, longest
 * at that position, non-overlapping; special and normalized:false tokens on the raw text,
 * normalized:true tokens on the normalized text. single_word discards a match touching a word
 * character; lstrip/rstrip extend a match over the whitespace beside it. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "error.h"
#include "tokenizer_internal.h"
#include "utf8.h"

static const added_token *set_token(const tokenizer *tok, const added_set *set, size_t k,
                                    const char **s, size_t *len) {
    const added_token *a = &tok->added[set->order[k]];
    bool normed = set == &tok->set_norm;
    *s = normed ? a->norm : a->content;
    *len = normed ? a->norm_len : a->len;
    return a;
}

static const tokenizer *g_sort_tok;
static const added_set *g_sort_set;

/* Sort by first byte, then longest first. */
static int cmp_added(const void *x, const void *y) {
    const char *a, *b;
    size_t la, lb;
    const added_token *ta = &g_sort_tok->added[*(const int32_t *)x];
    const added_token *tb = &g_sort_tok->added[*(const int32_t *)y];
    bool normed = g_sort_set == &g_sort_tok->set_norm;
    a = normed ? ta->norm : ta->content;
    la = normed ? ta->norm_len : ta->len;
    b = normed ? tb->norm : tb->content;
    lb = normed ? tb->norm_len : tb->len;
    if ((uint8_t)a[0] != (uint8_t)b[0]) return (uint8_t)a[0] < (uint8_t)b[0] ? -1 : 1;
    if (la != lb) return la > lb ? -1 : 1;
    return *(const int32_t *)x - *(const int32_t *)y;
}

void added_set_build(tokenizer *tok, added_set *set, bool normalized) {
    set->order = folio_xmalloc((tok->n_added + 1) * sizeof *set->order);
    set->n = 0;
    for (size_t i = 0; i < tok->n_added; i++) {
        const added_token *a = &tok->added[i];
        if (a->normalized != normalized) continue;
        if (normalized ? a->norm_len == 0 : a->len == 0) continue;
        set->order[set->n++] = (int32_t)i;
    }
    g_sort_tok = tok;
    g_sort_set = set;
    qsort(set->order, set->n, sizeof *set->order, cmp_added);
    size_t k = 0;
    for (int b = 0; b < 256; b++) {
        set->start[b] = (uint32_t)k;
        while (k < set->n) {
            const char *s;
            size_t len;
            set_token(tok, set, k, &s, &len);
            if ((uint8_t)s[0] != b) break;
            k++;
        }
    }
    set->start[256] = (uint32_t)k;
}

/* Unicode \w as Hugging Face's single_word check uses it (Rust regex): letters, marks,
 * decimal and letter numbers, connector punctuation, the joiners, and the circled letters
 * (the Other_Alphabetic symbols that matter in practice). */
static bool is_word_char(uint32_t cp) {
    if (cp < 0x80) return cp == '_' || (cp >= '0' && cp <= '9') || ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z');
    if (cp == 0x200C || cp == 0x200D || (cp >= 0x24B6 && cp <= 0x24E9)) return true;
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_ME) || c == UTF8PROC_CATEGORY_ND ||
           c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_PC;
}

/* Start of the character that ends at s[end). */
static size_t prev_char(const char *s, size_t end) {
    size_t i = end - 1;
    while (i > 0 && ((uint8_t)s[i] & 0xC0) == 0x80) i--;
    return i;
}

static uint32_t cp_at(const char *s, size_t len, size_t i) {
    size_t n;
    uint32_t cp = 0xFFFD;
    utf8_decode((const uint8_t *)s + i, len - i, &n, &cp);
    return cp;
}

static bool single_word_ok(const char *s, size_t len, size_t a, size_t b) {
    if (a > 0 && is_word_char(cp_at(s, len, prev_char(s, a)))) return false;
    if (b < len && is_word_char(cp_at(s, len, b))) return false;
    return true;
}

/* The longest token of the set at s[p..), or -1. */
static int match_at(const tokenizer *tok, const added_set *set, const char *s, size_t len,
                    size_t p, size_t *mlen) {
    uint8_t b = (uint8_t)s[p];
    for (uint32_t k = set->start[b]; k < set->start[b + 1]; k++) {
        const char *c;
        size_t cl;
        set_token(tok, set, k, &c, &cl);
        if (cl <= len - p && memcmp(s + p, c, cl) == 0) {
            *mlen = cl;
            return (int)k;
        }
    }
    return -1;
}

int added_find(const tokenizer *tok, const added_set *set, const char *s, size_t len,
               size_t from, size_t *start, size_t *end) {
    if (set->n == 0) return -1;
    size_t p = from;
    while (p < len) {
        uint8_t b = (uint8_t)s[p];
        if (set->start[b] == set->start[b + 1]) {
            p++;
            continue;
        }
        size_t mlen;
        int k = match_at(tok, set, s, len, p, &mlen);
        if (k < 0) {
            p++;
            continue;
        }
        const added_token *a = &tok->added[set->order[k]];
        size_t a0 = p, b0 = p + mlen;
        if (a->single_word && !single_word_ok(s, len, a0, b0)) {
            p = b0;
            continue;
        }
        if (a->lstrip)
            while (a0 > from && utf8_is_space(cp_at(s, len, prev_char(s, a0)))) a0 = prev_char(s, a0);
        if (a->rstrip)
            while (b0 < len && utf8_is_space(cp_at(s, len, b0))) {
                size_t n;
                uint32_t cp;
                utf8_decode((const uint8_t *)s + b0, len - b0, &n, &cp);
                b0 += n;
            }
        *start = a0;
        *end = b0;
        return set->order[k];
    }
    return -1;
}
