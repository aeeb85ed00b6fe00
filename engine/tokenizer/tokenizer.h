/* The tokenizer: Hugging Face tokenizer.json (+ tokenizer_config.json) BPE models, encoded and
 * decoded exactly as the Hugging Face tokenizers library does.
 *
 * Supported: model BPE (merges as "a b" strings or ["a","b"] pairs, ignore_merges,
 * byte_fallback, unk/fuse_unk); normalizers NFC/NFD/NFKC/NFKD, Prepend, Replace, Sequence;
 * pre-tokenizers Split (regex via PCRE2 JIT, or string), ByteLevel, Metaspace, Sequence; added tokens
 * (matched before BPE, lstrip/rstrip/single_word/normalized/special); post-processors
 * TemplateProcessing, ByteLevel, Sequence, overridden by add_bos_token/add_eos_token when
 * tokenizer_config.json sets them; decoders ByteLevel, Replace, ByteFallback, Fuse, Strip,
 * Metaspace, Sequence.
 *
 * Text in is UTF-8; invalid bytes are first repaired the lossy way (each maximal invalid
 * subpart becomes U+FFFD), which is what any caller of the Hugging Face library, which only
 * takes valid strings, has to do. Text out is always valid UTF-8.
 *
 * A tokenizer is read-only after loading except for its word cache: do not encode from two
 * threads at once on one tokenizer. Decoding and streaming take it const. */
#ifndef FOLIO_TOKENIZER_H
#define FOLIO_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "text_buf.h"

typedef struct tokenizer tokenizer;

/* A growable array of token ids; zero-initialise, free with token_ids_free. */
typedef struct {
    int32_t *ids;
    size_t n, cap;
} token_ids;

void token_ids_free(token_ids *t);
void token_ids_push(token_ids *t, int32_t id);

/* Loads DIR/tokenizer.json and, when present, DIR/tokenizer_config.json. */
int tokenizer_load(const char *dir, tokenizer **out);
void tokenizer_free(tokenizer *tok);

/* Encodes text[0..len) and APPENDS the ids to *out. add_special adds what the post-processor
 * (and add_bos_token/add_eos_token) add, e.g. BOS; special-token strings inside the text are
 * always recognised, as in Hugging Face. */
int tokenizer_encode(tokenizer *tok, const char *text, size_t len, bool add_special,
                     token_ids *out);

/* Decodes ids and APPENDS the text to *out. skip_special drops special added tokens (as
 * transformers' skip_special_tokens). Fails on an id outside [0, vocab size). */
int tokenizer_decode(const tokenizer *tok, const int32_t *ids, size_t n, bool skip_special,
                     text_buf *out);

/* A token's text as it appears inside a decoded text, appended to *out: its piece after the
 * per-token decoders (so "▁word" keeps its leading space), a byte-fallback token <0xNN> as
 * the byte NN, a byte-level token as its bytes, a special token as its text. at_start: the
 * token begins the text, so the decoders' rules for the start apply too (Strip, Metaspace's
 * first token), as when it is decoded alone. Not repaired: a token that holds part of a
 * character appends an incomplete UTF-8 sequence. So where every token holds whole
 * characters, decode(ids) is the concatenation of the pieces of the ids it does not skip, the
 * first of them at_start (detok_stream_at_start tells it of a stream's next token). -1 on an
 * id outside the vocabulary. */
int tokenizer_token_piece(const tokenizer *tok, int32_t id, bool at_start, text_buf *out);

/* Vocabulary size (largest id + 1, added tokens included). */
int32_t tokenizer_vocab_size(const tokenizer *tok);
/* The token's string as stored in tokenizer.json (model space, e.g. "Ġthe"), or NULL. */
const char *tokenizer_token_text(const tokenizer *tok, int32_t id);
/* Id of a token string (vocabulary or added token), or -1. */
int32_t tokenizer_token_id(const tokenizer *tok, const char *text);
/* BOS / EOS ids from tokenizer_config.json (bos_token / eos_token), or -1 when unset. */
int32_t tokenizer_bos_id(const tokenizer *tok);
int32_t tokenizer_eos_id(const tokenizer *tok);
bool tokenizer_is_special(const tokenizer *tok, int32_t id);

/* Streaming detokenizer, one per sequence. Text comes out only in whole UTF-8 characters
 * (and whole byte-fallback groups), and the concatenation of everything a stream emits,
 * flush included, is exactly tokenizer_decode() of all the ids pushed since the prime.
 *
 *   detok_stream *s = detok_stream_new(tok, skip_special);
 *   detok_stream_prime(s, prompt_ids, n);   // the prompt: its text counts as shown, except a
 *                                           // character left incomplete at its end, which is
 *                                           // emitted with the token that completes it
 *   for each new id: detok_stream_push(s, id, &out);   // appends 0 or more bytes to out
 *   detok_stream_flush(s, &out);            // at the end: whatever is still pending
 *   detok_stream_free(s);
 *
 * So prompt text + streamed text == decode(prompt ids + generated ids), whatever the prompt
 * ends with. */
typedef struct detok_stream detok_stream;

detok_stream *detok_stream_new(const tokenizer *tok, bool skip_special);
void detok_stream_free(detok_stream *s);
int detok_stream_prime(detok_stream *s, const int32_t *ids, size_t n);
int detok_stream_push(detok_stream *s, int32_t id, text_buf *out);
void detok_stream_flush(detok_stream *s, text_buf *out);
/* True while the next token pushed begins the text: every token so far was skipped (special
 * tokens under skip_special), so the decoders' start rules apply to it. */
bool detok_stream_at_start(const detok_stream *s);

#endif
