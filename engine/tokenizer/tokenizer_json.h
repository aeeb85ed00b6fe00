/* Fast reading of the two big fields of tokenizer.json, model.vocab and model.merges (most of
 * a 10 MB file): they are located in the raw text, read by a small special-purpose parser, and
 * blanked out so that jansson only parses the (small) rest. Loading stays below the Hugging
 * Face library's own load time. */
#ifndef FOLIO_TOKENIZER_JSON_H
#define FOLIO_TOKENIZER_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

typedef struct {
    size_t start, end; /* [start, end) of the value in the text; end == 0 when absent */
} tj_span;

/* Finds the values of model.vocab and model.merges in the JSON text s[0..n). */
int tj_find_model_fields(const char *s, size_t n, const char *path, tj_span *vocab,
                         tj_span *merges);

/* Overwrites the span with an empty container ("{}" or "[]") padded with spaces. */
void tj_blank(char *s, tj_span sp, char open, char close);

/* Callbacks receive decoded strings (valid until the next call). */
typedef int (*tj_vocab_fn)(void *ctx, const char *key, size_t len, long long id);
typedef int (*tj_merge_fn)(void *ctx, size_t index, const char *a, size_t alen, const char *b,
                           size_t blen, int is_pair);

/* Walks {"token": id, ...}. */
int tj_read_vocab(const char *s, tj_span sp, const char *path, tj_vocab_fn fn, void *ctx);
/* Walks ["a b", ...] or [["a", "b"], ...]; for the string form, a/alen is the whole string and
 * b is NULL (the callback splits it). */
int tj_read_merges(const char *s, tj_span sp, const char *path, tj_merge_fn fn, void *ctx);

#endif
