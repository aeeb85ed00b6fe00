/* The engine core's text_codec (ids <-> text) backed by a model's tokenizer: what turns
 * text prompts into ids and generated ids into text and stop-string matches. */
#ifndef FOLIO_TOKENIZER_CODEC_H
#define FOLIO_TOKENIZER_CODEC_H

#include "text_codec.h"
#include "tokenizer.h"

/* A codec over tok (borrowed: tok must outlive the codec). Decoding skips special tokens,
 * as transformers' skip_special_tokens; encoding adds the model's special tokens (BOS). */
text_codec tokenizer_codec(tokenizer *tok);

#endif
