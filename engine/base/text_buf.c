/* The growable text buffer (text_buf.h). */
#include "text_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"

/* Room for len more bytes and the NUL. */
static void reserve(text_buf *b, size_t len) {
    size_t need = b->len + len + 1;
    if (need > b->cap) {
        b->cap = folio_grow_cap(b->cap ? b->cap : 256, need);
        b->s = folio_xrealloc(b->s, b->cap);
    }
}

void text_buf_append(text_buf *b, const void *data, size_t len) {
    reserve(b, len);
    if (len) memcpy(b->s + b->len, data, len);
    b->len += len;
    b->s[b->len] = '\0';
}

void text_buf_puts(text_buf *b, const char *str) { text_buf_append(b, str, strlen(str)); }

void text_buf_putc(text_buf *b, char c) { text_buf_append(b, &c, 1); }

void text_buf_printf(text_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) FOLIO_BUG("text_buf_printf: bad format '%s'", fmt);
    if ((size_t)n < sizeof small) {
        text_buf_append(b, small, (size_t)n);
        return;
    }
    reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void text_buf_reset(text_buf *b) {
    b->len = 0;
    if (b->s) b->s[0] = '\0';
}

char *text_buf_take(text_buf *b) {
    char *s = b->s ? b->s : folio_xstrdup("");
    memset(b, 0, sizeof *b);
    return s;
}

void text_buf_free(text_buf *b) {
    free(b->s);
    memset(b, 0, sizeof *b);
}

int text_buf_read_file(text_buf *out, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return folio_fail("%s: cannot open", path);
    char chunk[1 << 16];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) text_buf_append(out, chunk, n);
    int bad = ferror(f);
    fclose(f);
    if (!out->s) text_buf_append(out, "", 0);
    return bad ? folio_fail("%s: read error", path) : 0;
}
