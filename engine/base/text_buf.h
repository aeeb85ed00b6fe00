/* A growable text buffer: the one string builder of the tree (the tokenizer's output, the
 * Jinja renderer and JSON writer, the metrics page, the server's bodies and events). */
#ifndef FOLIO_TEXT_BUF_H
#define FOLIO_TEXT_BUF_H

#include <stddef.h>

#include "error.h" /* FOLIO_PRINTF */

/* Zero-initialise; s is NULL until the first append, then always NUL-terminated. */
typedef struct {
    char *s;
    size_t len, cap;
} text_buf;

/* Appends len bytes (data may be NULL when len is 0: that only allocates). */
void text_buf_append(text_buf *b, const void *data, size_t len);
void text_buf_puts(text_buf *b, const char *str);
void text_buf_putc(text_buf *b, char c);
/* Appends printf-formatted text. */
void text_buf_printf(text_buf *b, const char *fmt, ...) FOLIO_PRINTF(2, 3);
/* Empties the buffer, keeping its memory. */
void text_buf_reset(text_buf *b);
/* Hands the string over to the caller (free() it; "" when empty) and empties the buffer. */
char *text_buf_take(text_buf *b);
void text_buf_free(text_buf *b);

/* Appends the whole file at path (an empty file appends "", so out->s is set). 0, or -1 with
 * a message naming the path. */
int text_buf_read_file(text_buf *out, const char *path);

#endif
