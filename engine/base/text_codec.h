/* The small text interface the engine core needs from a tokenizer: ids -> text (output text,
 * stop strings) and text -> ids (text prompts). The tokenizer module (engine/tokenizer.h)
 * provides one; the engine core works without it on token ids alone. */
#ifndef FOLIO_TEXT_CODEC_H
#define FOLIO_TEXT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes a stream hands out: valid until the stream's next call. */
typedef struct {
    const char *s;
    size_t len;
} text_piece;

typedef struct {
    void *self;
    /* The text of ids[0..n) as one malloc'd NUL-terminated string in *out (caller frees).
     * 0, or -1 with a message. */
    int (*decode)(void *self, const int32_t *ids, int n, char **out);
    /* The ids of a prompt text, malloc'd in *ids (caller frees), with the model's usual
     * special tokens (BOS). 0, or -1 with a message. */
    int (*encode)(void *self, const char *text, int32_t **ids, int *n);
    /* A sequence's output text, one token at a time. stream_new: a stream primed with the
     * prompt (its text counts as shown, so the decoders' start rules see what precedes the
     * output); skip_special drops special tokens from the text. stream_push: the text id
     * completes (possibly none: a character split over tokens is held), 0 or -1 with a
     * message. stream_flush: what is still held, at the end. stream_at_start: nothing has
     * been shown yet (the next token begins the text). */
    void *(*stream_new)(void *self, const int32_t *prompt, int n_prompt, bool skip_special);
    int (*stream_push)(void *stream, int32_t id, text_piece *out);
    void (*stream_flush)(void *stream, text_piece *out);
    bool (*stream_at_start)(const void *stream);
    void (*stream_free)(void *stream);
} text_codec;

#endif
