/* Fuzz target for the OpenAI request parser (engine/openai_api.c): any byte string is a
 * request body for /v1/completions and /v1/chat/completions; oai_parse_request must accept
 * or reject it without crashing or leaking, and an accepted request must satisfy what the
 * server relies on (prompts present with ids inside the vocabulary, n in range, messages
 * non-empty for chat, parameters that pass validation).
 *
 * As a ctest (FOLIO_FUZZ_MAIN): argv[1] (default 20000) mutations of valid seed bodies with a
 * fixed-seed PRNG; memory errors and leaks need the sanitizer build. As a libFuzzer target:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iengine \
 *       tests/fuzz/fuzz_openai_request.c engine/openai_api.c engine/requests_jsonl.c \
 *       engine/json_util.c engine/sampler.c engine/sequence.c engine/error.c \
 *       engine/block_manager.c engine/hashmap.c $(pkg-config --cflags --libs jansson) -lm \
 *       -o build-fuzz/fuzz_oai && build-fuzz/fuzz_oai -max_total_time=60 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "openai_api.h"

#define VOCAB 512

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_openai_request: invariant broken: %s\n", what);
        abort();
    }
}

static int one(const uint8_t *data, size_t size, oai_kind kind) {
    oai_limits lim = {.vocab = VOCAB, .max_n = 8};
    oai_request r;
    int rc = oai_parse_request((const char *)data, size, kind, &lim, 7, &r);
    if (rc == 0) {
        check(r.p.n >= 1 && r.p.n <= 8, "n in range");
        check(r.p.max_tokens >= 1, "max_tokens >= 1");
        if (kind == OAI_CHAT) {
            check(r.messages && json_array_size(r.messages) > 0, "messages non-empty");
            check(!r.tools || json_array_size(r.tools) > 0, "tools non-empty when given");
            check(r.tools || (r.tool_choice != OAI_TOOLS_REQUIRED &&
                              r.tool_choice != OAI_TOOLS_NAMED), "a forced tool_choice has tools");
            check((r.tool_choice == OAI_TOOLS_NAMED) == (r.tool_name != NULL),
                  "a named tool_choice names its function");
        } else {
            check(r.n_prompts >= 1 && r.n_prompts <= OAI_MAX_PROMPTS, "prompt count");
            for (int i = 0; i < r.n_prompts; i++) {
                if (r.prompt_ids) {
                    check(r.n_prompt_ids[i] > 0, "id prompt non-empty");
                    for (int k = 0; k < r.n_prompt_ids[i]; k++)
                        check(r.prompt_ids[i][k] >= 0 && r.prompt_ids[i][k] < VOCAB, "id range");
                } else {
                    check(r.prompt_texts[i] != NULL, "text prompt");
                }
            }
        }
        check(sampling_params_validate(&r.p.sampling) == 0, "sampling valid");
        check(r.p.logprobs <= FOLIO_MAX_LOGPROBS, "logprobs range");
    } else {
        check(folio_last_error()[0] != '\0', "an error message");
    }
    oai_request_free(&r);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    one(data, size, OAI_COMPLETION);
    one(data, size, OAI_CHAT);
    return 0;
}

#ifdef FOLIO_FUZZ_MAIN
static const char *const SEEDS[] = {
    "{\"model\":\"m\",\"prompt\":\"Once upon a time\",\"max_tokens\":16,\"temperature\":0.7,"
    "\"top_p\":0.9,\"n\":2,\"stop\":[\"\\n\",\"The\"],\"seed\":5,\"logprobs\":3,\"echo\":false}",
    "{\"prompt\":[1,2,3,4],\"max_completion_tokens\":4,\"top_k\":20,\"min_p\":0.1,"
    "\"repetition_penalty\":1.2,\"presence_penalty\":0.5,\"frequency_penalty\":-0.5,"
    "\"logit_bias\":{\"3\":-100},\"stop_token_ids\":[2],\"ignore_eos\":true,\"min_tokens\":2}",
    "{\"prompt\":[[1,2],[3,4,5]],\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
    "{\"prompt\":[\"a\"],\"session_id\":\"chat-1\",\"user\":\"u\",\"priority\":3}",
    "{\"messages\":[{\"role\":\"system\",\"content\":\"You are\"},{\"role\":\"user\","
    "\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]},{\"role\":\"assistant\",\"content\":null}],"
    "\"logprobs\":true,\"top_logprobs\":2,\"add_generation_prompt\":true,"
    "\"skip_special_tokens\":false,\"return_token_ids\":true}",
    "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\","
    "\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":"
    "{\"name\":\"f\",\"arguments\":\"{}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"call_1\","
    "\"content\":\"ok\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
    "\"parameters\":{\"type\":\"object\"}}}],\"tool_choice\":{\"type\":\"function\","
    "\"function\":{\"name\":\"f\"}},\"parallel_tool_calls\":false}",
};
#define N_SEEDS (sizeof SEEDS / sizeof SEEDS[0])

static uint64_t rng_state = 0x1234567887654321ull;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static const char *const TOKENS[] = {"{", "}", "[", "]", ",", ":", "\"", "null", "true", "-1",
                                     "1e309", "0.5", "\"prompt\"", "\"messages\"", "\"n\"",
                                     "\"role\"", "\\u0000", "99999999999", "\xff", "[]", "{}",
                                     "\"tools\"", "\"tool_choice\"", "\"required\"",
                                     "\"function\""};

int main(int argc, char **argv) {
    long iters = argc > 1 ? atol(argv[1]) : 20000;
    long accepted = 0, rejected = 0;
    uint8_t buf[4096];
    for (long it = 0; it < iters; it++) {
        const char *seed = SEEDS[rnd() % N_SEEDS];
        size_t len = strlen(seed);
        memcpy(buf, seed, len);
        int edits = 1 + (int)(rnd() % 6);
        for (int e = 0; e < edits; e++) {
            size_t at = len ? rnd() % len : 0;
            switch (rnd() % 4) {
            case 0: buf[at] = (uint8_t)rnd(); break;                 /* flip a byte */
            case 1:                                                     /* delete a span */
                if (len > 1) {
                    size_t n = 1 + rnd() % 8;
                    if (at + n > len) n = len - at;
                    memmove(buf + at, buf + at + n, len - at - n);
                    len -= n;
                }
                break;
            default: {                                                 /* insert a token */
                const char *t = TOKENS[rnd() % (sizeof TOKENS / sizeof TOKENS[0])];
                size_t n = strlen(t);
                if (len + n < sizeof buf) {
                    memmove(buf + at + n, buf + at, len - at);
                    memcpy(buf + at, t, n);
                    len += n;
                }
            }
            }
        }
        if (one(buf, len, it % 2 ? OAI_CHAT : OAI_COMPLETION) == 0) accepted++;
        else rejected++;
    }
    for (size_t i = 0; i < N_SEEDS; i++) /* the seeds themselves parse */
        if (one((const uint8_t *)SEEDS[i], strlen(SEEDS[i]), i >= 4 ? OAI_CHAT : OAI_COMPLETION) != 0) {
            fprintf(stderr, "seed %zu rejected: %s\n", i, folio_last_error());
            return 1;
        }
    printf("fuzz_openai_request: %ld inputs: %ld accepted, %ld rejected\n", iters, accepted,
           rejected);
    return 0;
}
#endif
