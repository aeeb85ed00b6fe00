/* The tokenizer's internal structure, shared by its source files (tokenizer_load.c,
 * normalize.c, pretokenize.c, added_tokens.c, bpe.c, tokenizer.c, detok_stream.c).
 * Not part of the public API: include tokenizer.h instead. */
#ifndef FOLIO_TOKENIZER_INTERNAL_H
#define FOLIO_TOKENIZER_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdlib.h>

#include "error.h"
#include "grow.h"
#include "hashmap.h"
#include "tokenizer.h"

/* ---- normalizers ---- */
typedef enum { NORM_NFC, NORM_NFD, NORM_NFKC, NORM_NFKD, NORM_PREPEND, NORM_REPLACE } norm_kind;

typedef struct {
    norm_kind kind;
    char *pattern; /* Prepend: the prefix; Replace: the string replaced */
    size_t pattern_len;
    char *content; /* Replace: the replacement */
    size_t content_len;
} norm_step;

/* ---- pre-tokenizers ---- */
typedef enum { PRE_SPLIT, PRE_BYTELEVEL, PRE_METASPACE } pre_kind;
typedef enum { PREPEND_NEVER, PREPEND_ALWAYS, PREPEND_FIRST } prepend_scheme;
typedef enum { SPLIT_ISOLATED, SPLIT_REMOVED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT } split_behavior;

typedef struct {
    pre_kind kind;
    pcre2_code *re;          /* Split pattern, or ByteLevel's regex when use_regex */
    split_behavior behavior; /* Split */
    bool add_prefix_space;   /* ByteLevel */
    char rep[8];             /* Metaspace: the replacement of ' ' (UTF-8) */
    size_t rep_len;
    prepend_scheme prepend;  /* Metaspace */
    bool split;              /* Metaspace: split before each replacement character */
} pre_step;

/* A piece of text: [off, off+len) in some buffer. */
typedef struct {
    uint32_t off, len;
} span;

typedef struct {
    span *v;
    size_t n, cap;
} span_list;

/* ---- added tokens ---- */
typedef struct {
    char *content; /* as written in tokenizer.json */
    size_t len;
    char *norm; /* content after the normalizer (for normalized tokens) */
    size_t norm_len;
    int32_t id;
    bool lstrip, rstrip, single_word, normalized, special;
} added_token;

/* Tokens of one matching set (normalized or not), bucketed by first byte, longest first. */
typedef struct {
    int32_t *order;     /* indices into tokenizer.added */
    uint32_t start[257]; /* order[start[b] .. start[b+1]) begin with byte b */
    size_t n;
} added_set;

/* ---- BPE model ---- */
typedef struct {
    uint32_t off, n; /* ids in cache_ids */
} cache_entry;

typedef struct {
    u64map merges;  /* (left << 32 | right) -> (rank << 32 | merged id) */
    strmap vocab;   /* model vocabulary: token string -> id */
    int32_t unk_id; /* -1 when none */
    bool fuse_unk, byte_fallback, ignore_merges;
    bool byte_level;           /* words are raw bytes mapped through the ByteLevel table */
    bool split_on_metaspace;   /* no pre-tokenizer, but "▁" boundaries are safe to split at */
    int32_t fallback_ids[256]; /* <0xNN> ids, -1 when absent */
    int32_t ascii_ids[128];    /* id of each single ASCII character token, -1 when absent */
    int32_t byte_ids[256];     /* byte-level: id of the mapped character of each byte */
    /* word cache: word bytes -> ids */
    strmap cache;
    cache_entry *entries;
    size_t n_entries, cap_entries;
    token_ids cache_ids;
    char **cache_blocks; /* word bytes, in blocks that never move */
    size_t n_blocks, block_used;
    /* merge-loop scratch */
    struct bpe_sym *syms;
    size_t cap_syms;
    struct bpe_cand *heap;
    size_t cap_heap;
    text_buf word;
} bpe_model;

/* ---- decoder ---- */
typedef struct {
    bool byte_level;       /* ByteLevel: concatenate bytes, lossy repair across tokens */
    bool byte_fallback;    /* <0xNN> tokens become bytes, grouped */
    int strip_start;       /* Strip after Fuse: leading `strip_char`s removed from the output */
    bool strip_first_token; /* Metaspace (prepend_scheme != never): the first token loses
                             * every replacement character (HF's rule) */
    char meta_rep[8];        /* Metaspace replacement */
    char strip_char;
} decoder_spec;

/* ---- the tokenizer ---- */
struct tokenizer {
    char *path; /* tokenizer.json, for messages */
    /* vocabulary, id -> string (model space) */
    int32_t n_vocab;
    char *arena; /* every token string, NUL-terminated */
    size_t arena_len;
    uint32_t *tok_off; /* [n_vocab]; UINT32_MAX when the id has no token */
    uint32_t *tok_len;
    uint8_t *is_special; /* [n_vocab] special added token */
    strmap added_ids; /* added token string -> id (the model vocabulary is bpe.vocab) */
    /* per-id decoded piece (after the per-token decoders) */
    char *dec_arena;
    uint32_t *dec_off, *dec_len;
    int16_t *dec_byte; /* byte-fallback byte value, or -1 */
    uint8_t *dec_plain; /* piece is complete UTF-8 and no byte-fallback byte: copied as is */
    decoder_spec dec;
    /* pipeline */
    norm_step *norm;
    size_t n_norm;
    pre_step *pre;
    size_t n_pre;
    added_token *added;
    size_t n_added;
    added_set set_raw, set_norm;
    bpe_model bpe;
    token_ids prefix, suffix; /* post-processor ids around the sequence */
    int32_t bos_id, eos_id;
    bool piece_first; /* the piece being encoded starts the input text (Metaspace "first") */
    /* encode scratch */
    pcre2_match_data *md;
    text_buf clean, normed, pre_buf;
    span_list pieces, pieces2;
};

/* Loading (tokenizer_load.c) helpers used by other parts. */
int norm_apply(const tokenizer *tok, const char *s, size_t len, text_buf *out);
bool norm_is_identity(const tokenizer *tok);
int pretokenize(tokenizer *tok, const char *s, size_t len, span_list *out, text_buf *buf,
                const char **base);
int bpe_encode_word(tokenizer *tok, const char *w, size_t len, token_ids *out);
void bpe_free(bpe_model *m);
int pretok_compile(const char *pattern, bool literal, const char *where, pcre2_code **out);
void added_set_build(tokenizer *tok, added_set *set, bool normalized);
/* Finds the next added-token match in s[from..len): returns its token index or -1, and sets
 * [*start, *end) to the span it takes (lstrip/rstrip included) and *resume to where scanning
 * goes on. */
int added_find(const tokenizer *tok, const added_set *set, const char *s, size_t len,
               size_t from, size_t *start, size_t *end);
void span_push(span_list *l, uint32_t off, uint32_t len);
void bytelevel_tables(uint32_t byte_to_cp[256]);

#endif
