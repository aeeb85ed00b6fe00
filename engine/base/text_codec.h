/* The small text interface the engine core needs from a tokenizer: ids -> text (output text,
 * stop strings) and text -> ids (text prompts). The tokenizer module (engine/tokenizer.h)
 * provides one; the engine core works without it on token ids alone. */
#ifndef FOLIO_TEXT_CODEC_H
#define FOLIO_TEXT_CODEC_H

#include <stdint.h>

typedef struct {
    void *self;
    /* The text of ids[0..n) as one malloc'd NUL-terminated string in *out (caller frees).
     * 0, or -1 with a message. */
    int (*decode)(void *self, const int32_t *ids, int n, char **out);
    /* The ids of a prompt text, malloc'd in *ids (caller frees), with the model's usual
     * special tokens (BOS). 0, or -1 with a message. */
    int (*encode)(void *self, const char *text, int32_t **ids, int *n);
} text_codec;

#endif
