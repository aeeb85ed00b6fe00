/* Memory and text plumbing of the Jinja interpreter: a bump arena (a template's syntax tree, a
 * render's values), a growable byte buffer, and the UTF-8 and whitespace helpers that give
 * strings Python's code-point semantics. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "jinja_internal.h"

#define ARENA_BLOCK (64 * 1024)

struct jarena_block {
    jarena_block *next;
    size_t used, cap;
    _Alignas(16) char data[];
};

void *jarena_alloc(jarena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    jarena_block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        b = folio_xmalloc(sizeof *b + cap);
        b->used = 0;
        b->cap = cap;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *jarena_strndup(jarena *a, const char *s, size_t n) {
    char *p = jarena_alloc(a, n + 1);
    if (n) memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void jarena_free(jarena *a) {
    jarena_block *b = a->head;
    while (b) {
        jarena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}

void jbuf_put(jbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = folio_xmalloc(cap);
        if (b->len) memcpy(p, b->data, b->len);
        free(b->data);
        b->data = p;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void jbuf_puts(jbuf *b, const char *s) { jbuf_put(b, s, strlen(s)); }

void jbuf_putc(jbuf *b, char c) { jbuf_put(b, &c, 1); }

void jbuf_free(jbuf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

uint32_t utf8_decode(const char *s, size_t n, size_t i, size_t *len) {
    const unsigned char *p = (const unsigned char *)s + i;
    size_t left = n - i;
    unsigned c = p[0];
    int need = c >= 0xF0 && c < 0xF8 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
    if (c >= 0xF8) need = 0;
    if (need == 0 || left <= (size_t)need) {
        *len = 1;
        return c;
    }
    uint32_t cp = c & (0x3F >> need);
    for (int k = 1; k <= need; k++) {
        if ((p[k] & 0xC0) != 0x80) {
            *len = 1;
            return c;
        }
        cp = (cp << 6) | (p[k] & 0x3F);
    }
    *len = (size_t)need + 1;
    return cp;
}

void utf8_encode(jbuf *b, uint32_t cp) {
    char t[4];
    if (cp < 0x80) {
        t[0] = (char)cp;
        jbuf_put(b, t, 1);
    } else if (cp < 0x800) {
        t[0] = (char)(0xC0 | (cp >> 6));
        t[1] = (char)(0x80 | (cp & 0x3F));
        jbuf_put(b, t, 2);
    } else if (cp < 0x10000) {
        t[0] = (char)(0xE0 | (cp >> 12));
        t[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[2] = (char)(0x80 | (cp & 0x3F));
        jbuf_put(b, t, 3);
    } else {
        t[0] = (char)(0xF0 | (cp >> 18));
        t[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        t[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[3] = (char)(0x80 | (cp & 0x3F));
        jbuf_put(b, t, 4);
    }
}

size_t utf8_count(const char *s, size_t n) {
    size_t count = 0, len;
    for (size_t i = 0; i < n; i += len, count++) utf8_decode(s, n, i, &len);
    return count;
}

bool jinja_is_space(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 ||
           cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}
