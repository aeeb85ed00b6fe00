/* One JSON string per line, in and out, for the tokenizer commands (--jsonl, --ids-file).
 * Reading follows Python's "surrogateescape" convention so that test corpora can hold
 * invalid UTF-8: a lone low surrogate escape \udc80..\udcff stands for the raw byte 0x80..0xff;
 * any other lone surrogate becomes U+FFFD. */
#ifndef FOLIO_JSON_LINE_H
#define FOLIO_JSON_LINE_H

#include <stddef.h>

#include "tokenizer.h"

/* Parses the JSON string literal in line[0..len) (surrounding whitespace allowed) into out
 * (replacing its contents). Returns 0, or -1 with a message naming `where`. */
int json_line_parse(const char *line, size_t len, const char *where, text_buf *out);

/* Appends s[0..len) to out as a JSON string literal (valid UTF-8 assumed). */
void json_line_write(const char *s, size_t len, text_buf *out);

#endif
