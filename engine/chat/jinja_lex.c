/* Jinja lexer: splits a template into text and tag tokens. It applies the whitespace rules of
 * the environment transformers renders chat templates with, so the text tokens are exactly
 * what will be output:
 *   - newlines are normalised to \n and one trailing newline of the template is dropped
 *     (keep_trailing_newline=False);
 *   - "{%-", "{{-", "{#-" strip all whitespace before the tag; "-%}", "-}}", "-#}" all after;
 *   - lstrip_blocks: spaces and tabs between a line start and "{%" or "{#" are dropped
 *     (not with "{%+");
 *   - trim_blocks: the first newline after "%}" or "#}" is dropped (not after "+%}"). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "jinja_internal.h"

typedef struct {
    const char *src;
    size_t len, pos;
    int line;
    jarena *a;
    jtoken *toks;
    int n, cap;
} lexer;

static jtoken *push(lexer *L, jtok_kind kind, int line, const char *s, size_t n) {
    JARENA_PUSH_ROOM(L->a, L->toks, L->n, L->cap);
    jtoken *t = &L->toks[L->n++];
    memset(t, 0, sizeof *t);
    t->kind = kind;
    t->line = line;
    t->s = jarena_strndup(L->a, s, n);
    t->n = n;
    return t;
}

/* Moves to position p, counting lines. */
static void advance(lexer *L, size_t p) {
    for (; L->pos < p; L->pos++)
        if (L->src[L->pos] == '\n') L->line++;
}

/* The source with \r\n and \r made \n and one trailing newline removed (in the arena). */
static char *normalise(jarena *a, const char *src, size_t *len) {
    size_t n = strlen(src), k = 0;
    char *out = jarena_alloc(a, n + 1);
    for (size_t i = 0; i < n; i++) {
        if (src[i] == '\r') {
            out[k++] = '\n';
            if (i + 1 < n && src[i + 1] == '\n') i++;
        } else {
            out[k++] = src[i];
        }
    }
    if (k > 0 && out[k - 1] == '\n') k--;
    out[k] = '\0';
    *len = k;
    return out;
}

/* Length of the leading whitespace of s[0..n) (Python's \s). */
static size_t leading_space(const char *s, size_t n) {
    size_t i = 0, len;
    while (i < n && jinja_is_space(jinja_utf8_at(s, n, i, &len))) i += len;
    return i;
}

/* Length of s[0..n) without its trailing whitespace. */
static size_t without_trailing_space(const char *s, size_t n) {
    size_t end = 0, i = 0, len;
    while (i < n) {
        uint32_t cp = jinja_utf8_at(s, n, i, &len);
        i += len;
        if (!jinja_is_space(cp)) end = i;
    }
    return end;
}

static size_t find_tag(const lexer *L, size_t from) {
    for (size_t i = from; i + 1 < L->len; i++)
        if (L->src[i] == '{' && strchr("{%#", L->src[i + 1])) return i;
    return L->len;
}

static int decode_string(lexer *L, size_t *i, text_buf *out) {
    const char *s = L->src;
    char q = s[(*i)++];
    while (*i < L->len && s[*i] != q) {
        char c = s[(*i)++];
        if (c != '\\' || *i >= L->len) {
            text_buf_putc(out, c);
            continue;
        }
        char e = s[(*i)++];
        switch (e) {
        case 'n': text_buf_putc(out, '\n'); break;
        case 't': text_buf_putc(out, '\t'); break;
        case 'r': text_buf_putc(out, '\r'); break;
        case 'b': text_buf_putc(out, '\b'); break;
        case 'f': text_buf_putc(out, '\f'); break;
        case 'v': text_buf_putc(out, '\v'); break;
        case 'a': text_buf_putc(out, '\a'); break;
        case '0': text_buf_putc(out, '\0'); break;
        case '\\': case '\'': case '"': text_buf_putc(out, e); break;
        case '\n': break;
        case 'x': case 'u': case 'U': {
            int digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            uint32_t cp = 0;
            for (int k = 0; k < digits; k++, (*i)++) {
                if (*i >= L->len || !isxdigit((unsigned char)s[*i]))
                    return folio_fail("chat template line %d: bad \\%c escape in a string",
                                      L->line, e);
                char h = s[*i];
                cp = cp * 16 + (uint32_t)(isdigit((unsigned char)h) ? h - '0'
                                                                    : (tolower(h) - 'a' + 10));
            }
            jinja_utf8_put(out, cp);
            break;
        }
        default: text_buf_putc(out, '\\'); text_buf_putc(out, e); break;
        }
    }
    if (*i >= L->len) return folio_fail("chat template line %d: unterminated string", L->line);
    (*i)++;
    return 0;
}

static const char *const OPS[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%",
                                  "~", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|", "=",
                                  "<", ">", NULL};

static int lex_number(lexer *L, size_t *i) {
    const char *s = L->src;
    size_t start = *i;
    bool is_float = false;
    while (*i < L->len && (isdigit((unsigned char)s[*i]) || s[*i] == '_')) (*i)++;
    if (*i + 1 < L->len && s[*i] == '.' && isdigit((unsigned char)s[*i + 1])) {
        is_float = true;
        (*i)++;
        while (*i < L->len && (isdigit((unsigned char)s[*i]) || s[*i] == '_')) (*i)++;
    }
    if (*i < L->len && (s[*i] == 'e' || s[*i] == 'E')) {
        size_t k = *i + 1;
        if (k < L->len && (s[k] == '+' || s[k] == '-')) k++;
        if (k < L->len && isdigit((unsigned char)s[k])) {
            is_float = true;
            while (k < L->len && isdigit((unsigned char)s[k])) k++;
            *i = k;
        }
    }
    char tmp[64];
    size_t k = 0;
    for (size_t j = start; j < *i && k + 1 < sizeof tmp; j++)
        if (s[j] != '_') tmp[k++] = s[j];
    tmp[k] = '\0';
    jtoken *t = push(L, is_float ? TK_FLOAT : TK_INT, L->line, s + start, *i - start);
    if (is_float) t->f = strtod(tmp, NULL);
    else t->i = strtoll(tmp, NULL, 10);
    return 0;
}

/* Lexes one token inside a tag at *i. */
static int lex_token(lexer *L, size_t *i, int *depth) {
    const char *s = L->src;
    char c = s[*i];
    if (isalpha((unsigned char)c) || c == '_') {
        size_t start = *i;
        while (*i < L->len && (isalnum((unsigned char)s[*i]) || s[*i] == '_')) (*i)++;
        push(L, TK_NAME, L->line, s + start, *i - start);
        return 0;
    }
    if (isdigit((unsigned char)c)) return lex_number(L, i);
    if (c == '\'' || c == '"') {
        text_buf b = {0};
        int rc = decode_string(L, i, &b);
        if (rc == 0) push(L, TK_STRING, L->line, b.s ? b.s : "", b.len);
        text_buf_free(&b);
        return rc;
    }
    for (int k = 0; OPS[k]; k++) {
        size_t n = strlen(OPS[k]);
        if (*i + n <= L->len && memcmp(s + *i, OPS[k], n) == 0) {
            if (strchr("([{", c)) (*depth)++;
            if (strchr(")]}", c)) (*depth)--;
            push(L, TK_OP, L->line, OPS[k], n);
            *i += n;
            return 0;
        }
    }
    return folio_fail("chat template line %d: unexpected character '%c'", L->line, c);
}

/* Lexes the inside of a "{{" or "{%" tag from L->pos up to and including its end; sets
 * *strip_after for "-}}"/"-%}" and *trim for "%}" without '+'. */
static int lex_tag(lexer *L, bool block, bool *strip_after, bool *trim) {
    int depth = 0, start_line = L->line;
    const char *end = block ? "%}" : "}}";
    size_t i = L->pos;
    while (1) {
        while (i < L->len && isspace((unsigned char)L->src[i])) {
            if (L->src[i] == '\n') L->line++;
            i++;
        }
        if (i >= L->len)
            return folio_fail("chat template line %d: unclosed '%s' tag", start_line,
                              block ? "{%" : "{{");
        const char *p = L->src + i;
        if (depth <= 0) {
            size_t mark = (p[0] == '-' || (block && p[0] == '+')) ? 1 : 0;
            if (i + mark + 2 <= L->len && memcmp(p + mark, end, 2) == 0) {
                *strip_after = mark && p[0] == '-';
                *trim = block && !(mark && p[0] == '+');
                push(L, block ? TK_BLOCK_END : TK_VAR_END, L->line, end, 2);
                L->pos = i + mark + 2;
                return 0;
            }
        }
        size_t before = i;
        if (lex_token(L, &i, &depth) != 0) return -1;
        for (; before < i; before++) /* string literals may span lines */
            if (L->src[before] == '\n') L->line++;
    }
}

/* Skips a comment starting at L->pos (after "{#" and its sign). */
static int lex_comment(lexer *L, bool *strip_after, bool *trim) {
    int start_line = L->line;
    const char *end = strstr(L->src + L->pos, "#}");
    if (!end) return folio_fail("chat template line %d: unclosed comment", start_line);
    size_t close = (size_t)(end - L->src);
    char sign = close > L->pos ? L->src[close - 1] : 0;
    *strip_after = sign == '-';
    *trim = sign != '+';
    advance(L, close + 2);
    return 0;
}

/* Text before a tag, stripped per the tag's sign and lstrip_blocks. */
static void emit_text(lexer *L, size_t start, size_t end, int line, char sign, bool lstrip_ok,
                      bool line_starting) {
    const char *t = L->src + start;
    size_t n = end - start;
    if (sign == '-') {
        n = without_trailing_space(t, n);
    } else if (sign != '+' && lstrip_ok) {
        size_t l = n;
        while (l > 0 && t[l - 1] != '\n') l--;
        if (l > 0 || line_starting) {
            size_t k = l;
            while (k < n && (t[k] == ' ' || t[k] == '\t')) k++;
            if (k == n) n = l;
        }
    }
    if (n > 0) push(L, TK_TEXT, line, t, n);
}

static int lex_all(lexer *L) {
    bool strip_next = false, line_starting = true;
    while (L->pos < L->len) {
        if (strip_next) {
            size_t k = leading_space(L->src + L->pos, L->len - L->pos);
            if (k > 0) line_starting = L->src[L->pos + k - 1] == '\n';
            advance(L, L->pos + k);
            strip_next = false;
        }
        size_t tag = find_tag(L, L->pos);
        int line = L->line;
        if (tag == L->len) {
            emit_text(L, L->pos, tag, line, 0, false, false);
            advance(L, tag);
            break;
        }
        char kind = L->src[tag + 1];
        char sign = tag + 2 < L->len ? L->src[tag + 2] : 0;
        if (sign != '-' && (sign != '+' || kind == '{')) sign = 0;
        emit_text(L, L->pos, tag, line, sign, kind != '{', line_starting);
        advance(L, tag);
        int tag_line = L->line;
        advance(L, tag + 2 + (sign ? 1 : 0));
        bool strip_after = false, trim = false;
        if (kind == '#') {
            if (lex_comment(L, &strip_after, &trim) != 0) return -1;
        } else {
            push(L, kind == '%' ? TK_BLOCK_BEGIN : TK_VAR_BEGIN, tag_line,
                 kind == '%' ? "{%" : "{{", 2);
            if (lex_tag(L, kind == '%', &strip_after, &trim) != 0) return -1;
        }
        line_starting = false;
        if (strip_after) {
            strip_next = true;
        } else if (trim && L->pos < L->len && L->src[L->pos] == '\n') {
            advance(L, L->pos + 1);
            line_starting = true;
        }
    }
    push(L, TK_EOF, L->line, "", 0);
    return 0;
}

int jinja_lex(const char *src, jarena *a, jtoken **toks, int *ntoks) {
    lexer L = {0};
    L.a = a;
    L.line = 1;
    L.src = normalise(a, src, &L.len);
    if (lex_all(&L) != 0) return -1;
    *toks = L.toks;
    *ntoks = L.n;
    return 0;
}
