/* Fuzz target for the tool-call parser (engine/chat/tool_parse.c): any byte string is a
 * model's output in one of the formats (the first byte picks it). The parser must not crash
 * or leak, and must keep its promises on every input: fed in pieces (split where the input
 * says, and byte by byte) it releases exactly what it releases for the whole text; content it
 * released is never taken back; calls stand in content order and have names; with no call
 * parsed, the content is the text itself.
 *
 * As a ctest (FOLIO_FUZZ_MAIN): argv[1] (default 20000) mutations of outputs the formats'
 * models write, with a fixed-seed PRNG. As a libFuzzer target:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iengine/chat -Iengine/base \
 *       tests/fuzz/fuzz_tool_parse.c engine/chat/tool_parse*.c engine/base/error.c \
 *       engine/base/grow.c engine/base/text_buf.c $(pkg-config --cflags --libs jansson) \
 *       -o build-fuzz/fuzz_tool_parse && build-fuzz/fuzz_tool_parse -max_total_time=60 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool_parse.h"

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_tool_parse: invariant broken: %s\n", what);
        abort();
    }
}

static void same(const tool_output *a, const tool_output *b) {
    check(a->content.len == b->content.len &&
              memcmp(a->content.s, b->content.s, a->content.len) == 0,
          "split: the same content");
    check(a->n_calls == b->n_calls, "split: the same calls");
    for (int i = 0; i < a->n_calls; i++)
        check(strcmp(a->calls[i].name, b->calls[i].name) == 0 &&
                  strcmp(a->calls[i].arguments, b->calls[i].arguments) == 0 &&
                  a->calls[i].content_before == b->calls[i].content_before,
              "split: the same call");
}

/* Feeds text in pieces of `step` bytes (0: up to cut, then the rest) and compares with the
 * whole text's output. */
static void pieces(tool_format f, const char *text, size_t n, size_t cut, size_t step,
                   const tool_output *whole) {
    tool_stream *s = tool_stream_new(f);
    size_t released = 0;
    for (size_t at = 0; at < n;) {
        size_t k = step ? step : (at == 0 && cut > 0 ? cut : n - at);
        if (k > n - at) k = n - at;
        tool_stream_feed(s, text + at, k);
        const tool_output *o = tool_stream_output(s);
        check(o->content.len >= released && o->content.len <= whole->content.len &&
                  memcmp(o->content.s, whole->content.s, o->content.len) == 0,
              "released content is a prefix of the whole content");
        released = o->content.len;
        at += k;
    }
    tool_stream_finish(s);
    same(whole, tool_stream_output(s));
    tool_stream_free(s);
}

static long with_calls; /* inputs in which a call parsed */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    static const tool_format F[] = {TOOL_FORMAT_HERMES, TOOL_FORMAT_LLAMA3_JSON,
                                    TOOL_FORMAT_MISTRAL};
    tool_format f = F[data[0] % 3];
    size_t cut = data[1] % size;
    const char *text = (const char *)data + 2;
    size_t n = size - 2;
    tool_output whole = {0};
    tool_parse_text(f, text, n, &whole);
    size_t prev = 0;
    for (int i = 0; i < whole.n_calls; i++) {
        check(whole.calls[i].content_before >= prev &&
                  whole.calls[i].content_before <= whole.content.len,
              "calls in content order");
        prev = whole.calls[i].content_before;
        check(whole.calls[i].name[0] != '\0', "a call has a name");
    }
    if (whole.n_calls > 0) with_calls++;
    if (whole.n_calls == 0)
        check(whole.content.len == n && memcmp(whole.content.s, text, n) == 0,
              "no call: the content is the text");
    pieces(f, text, n, cut > n ? n : cut, 0, &whole);
    if (n <= 512) pieces(f, text, n, 0, 1, &whole);
    tool_output_free(&whole);
    return 0;
}

#ifdef FOLIO_FUZZ_MAIN
/* format byte, cut byte, output */
static const char *const SEEDS[] = {
    "\x00\x10Sure.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}"
    "\n</tool_call>\n<tool_call>\n{\"arguments\": {\"q\": [1, {\"a\": null}]}, \"name\": \"f\"}"
    "\n</tool_call>",
    "\x01\x05<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}; "
    "{\"name\": \"b\", \"parameters\": {\"s\": \"x\\\"y\"}}",
    "\x02\x20Let me see.[TOOL_CALLS][{\"name\": \"a\", \"arguments\": {}}, {\"name\": \"b\", "
    "\"arguments\": \"{\\\"x\\\": 1}\"}][TOOL_CALLS]c[ARGS]{\"y\": true}",
    "\x00\x03Plain text with <tool and [TOOL and {braces} and <|python",
};
#define N_SEEDS (sizeof SEEDS / sizeof SEEDS[0])

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static const char *const TOKENS[] = {
    "<tool_call>", "</tool_call>", "[TOOL_CALLS]", "[ARGS]", "<|python_tag|>", "{", "}", "[",
    "]", ",", ":", "\"", "\\", "\"name\": \"f\"", "\"arguments\": {}", "\"parameters\": ",
    "; ", " ", "\n", "null", "1e5", "\xc3\xa9", "\xff", "<", "<tool", "[TOOL_", "\\u0000"};

int main(int argc, char **argv) {
    long iters = argc > 1 ? atol(argv[1]) : 20000;
    uint8_t buf[2048];
    for (size_t i = 0; i < N_SEEDS; i++)
        LLVMFuzzerTestOneInput((const uint8_t *)SEEDS[i], strlen(SEEDS[i] + 2) + 2);
    for (long it = 0; it < iters; it++) {
        const char *seed = SEEDS[rnd() % N_SEEDS];
        size_t len = strlen(seed + 2) + 2;
        memcpy(buf, seed, len);
        buf[0] = (uint8_t)rnd();
        buf[1] = (uint8_t)rnd();
        int edits = 1 + (int)(rnd() % 6);
        for (int e = 0; e < edits; e++) {
            size_t at = 2 + (len > 2 ? rnd() % (len - 2) : 0);
            switch (rnd() % 4) {
            case 0:
                if (at < len) buf[at] = (uint8_t)rnd();
                break;
            case 1:
                if (len > 3 && at < len) {
                    size_t n = 1 + rnd() % 12;
                    if (at + n > len) n = len - at;
                    memmove(buf + at, buf + at + n, len - at - n);
                    len -= n;
                }
                break;
            default: {
                const char *t = TOKENS[rnd() % (sizeof TOKENS / sizeof TOKENS[0])];
                size_t n = strlen(t);
                if (len + n < sizeof buf && at <= len) {
                    memmove(buf + at + n, buf + at, len - at);
                    memcpy(buf + at, t, n);
                    len += n;
                }
            }
            }
        }
        LLVMFuzzerTestOneInput(buf, len);
    }
    printf("fuzz_tool_parse: %ld inputs (%ld with calls), all promises kept\n", iters,
           with_calls);
    return 0;
}
#endif
