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

text_codec tokenizer_codec(tokenizer *tok) {
    return (text_codec){.self = tok, .decode = codec_decode, .encode = codec_encode};
}
