/* text_codec over the tokenizer: the engine core's view of text. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tokenizer_codec.h"

static int codec_decode(void *self, const int32_t *ids, int n, char **out) {
    text_buf text = {0};
    if (tokenizer_decode(self, ids, (size_t)n, true, &text) != 0) {
        text_buf_free(&text);
        return -1;
    }
    *out = text.s ? text.s : folio_xstrdup("");
    return 0;
}

static int codec_encode(void *self, const char *text, int32_t **ids, int *n) {
    token_ids t = {0};
    if (tokenizer_encode(self, text, strlen(text), true, &t) != 0) {
        token_ids_free(&t);
        return -1;
    }
    *ids = t.ids ? t.ids : folio_xmalloc(sizeof **ids);
    *n = (int)t.n;
    return 0;
}

/* A sequence's stream: the detokenizer and the bytes of its latest push or flush. */
typedef struct {
    detok_stream *ds;
    text_buf out;
} codec_stream;

static void *codec_stream_new(void *self, const int32_t *prompt, int n_prompt,
                              bool skip_special) {
    codec_stream *cs = folio_xcalloc(1, sizeof *cs);
    cs->ds = detok_stream_new(self, skip_special);
    /* a prompt id the vocabulary lacks was refused before; a failure only loses priming */
    if (detok_stream_prime(cs->ds, prompt, (size_t)n_prompt) != 0) folio_clear_error();
    return cs;
}

static int codec_stream_push(void *stream, int32_t id, text_piece *out) {
    codec_stream *cs = stream;
    cs->out.len = 0;
    int rc = detok_stream_push(cs->ds, id, &cs->out);
    *out = (text_piece){.s = cs->out.s, .len = cs->out.len};
    return rc;
}

static void codec_stream_flush(void *stream, text_piece *out) {
    codec_stream *cs = stream;
    cs->out.len = 0;
    detok_stream_flush(cs->ds, &cs->out);
    *out = (text_piece){.s = cs->out.s, .len = cs->out.len};
}

static bool codec_stream_at_start(const void *stream) {
    const codec_stream *cs = stream;
    return detok_stream_at_start(cs->ds);
}

static void codec_stream_free(void *stream) {
    codec_stream *cs = stream;
    if (!cs) return;
    detok_stream_free(cs->ds);
    text_buf_free(&cs->out);
    free(cs);
}

text_codec tokenizer_codec(tokenizer *tok) {
    return (text_codec){.self = tok, .decode = codec_decode, .encode = codec_encode,
                        .stream_new = codec_stream_new, .stream_push = codec_stream_push,
                        .stream_flush = codec_stream_flush,
                        .stream_at_start = codec_stream_at_start,
                        .stream_free = codec_stream_free};
}
