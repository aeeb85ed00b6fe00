/* Memory and text plumbing of the Jinja interpreter: a bump arena (a template's syntax tree, a
 * render's values), and the UTF-8 and whitespace helpers that give strings Python's
 * code-point semantics. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "jinja_internal.h"
#include "utf8.h"

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

void *jarena_grow(jarena *a, const void *old, size_t n, size_t cap, size_t elem) {
    void *p = jarena_alloc(a, cap * elem);
    if (n) memcpy(p, old, n * elem);
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

uint32_t jinja_utf8_at(const char *s, size_t n, size_t i, size_t *len) {
    uint32_t cp = 0;
    if (utf8_decode((const uint8_t *)s + i, n - i, len, &cp) != UTF8_OK) {
        *len = 1;                          /* an invalid byte stands for itself */
        return (unsigned char)s[i];
    }
    return cp;
}

void jinja_utf8_put(text_buf *b, uint32_t cp) {
    char t[4];
    text_buf_append(b, t, utf8_encode(cp, t));
}

bool jinja_is_space(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 ||
           cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}
