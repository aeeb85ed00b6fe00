/* The server's OpenAI bodies from real jobs: stories260K on the CPU backend behind the serve
 * loop, then openai_format. Logprob token strings are the tokens' text in context (the sampled
 * ones concatenate to the choice's text; a "▁word" keeps its space except at the very start;
 * text_offset counts characters before each token); a byte token that is no whole character
 * is "bytes:\xNN" with its real bytes in chat's "bytes"; usage's
 * prompt_tokens_details.cached_tokens counts the context reused from the prefix cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "backend_cpu.h"
#include "error.h"
#include "fixture_util.h"
#include "metrics.h"
#include "openai_format.h"
#include "serve_loop.h"
#include "tokenizer.h"
#include "tokenizer_codec.h"
#include "utf8.h"

#define BLOCKS 64
#define BLOCK 16

static comm_ctx g_comm;
static device_model g_m;
static tokenizer *g_tok;
static metrics *g_metrics;
static backend_cpu g_be;
static serve_loop *g_loop;
static text_codec g_codec;

static int setup(void **state) {
    (void)state;
    open_stories_or_skip(&g_comm, &g_m);
    if (tokenizer_load(STORIES_DIR, &g_tok) != 0) fail_msg("%s", folio_last_error());
    g_metrics = metrics_create("stories");
    sched_config sc = {.num_blocks = BLOCKS, .block_size = BLOCK, .max_num_seqs = 4,
                       .max_num_batched_tokens = 256, .max_model_len = 256,
                       .prefix_caching = true};
    assert_int_equal(backend_cpu_create(&g_be, &g_m.m, &g_comm, BLOCKS, BLOCK, 256, 4, 256, NULL),
                     0);
    engine_config ec = {.sched = sc, .vocab = g_m.m.cfg.vocab, .eos_ids = g_m.m.cfg.eos_ids,
                        .n_eos = g_m.m.cfg.n_eos, .codec = &g_codec};
    g_codec = tokenizer_codec(g_tok);
    g_loop = serve_loop_create(&ec, backend_cpu_iface(&g_be), g_metrics);
    assert_non_null(g_loop);
    assert_int_equal(serve_loop_start(g_loop), 0);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    serve_loop_free(g_loop);
    backend_cpu_free(&g_be);
    metrics_free(g_metrics);
    tokenizer_free(g_tok);
    device_model_close(&g_m);
    return 0;
}

/* Runs prompt[0..n) greedily for max_tokens (EOS ignored) with top-2 logprobs; bias_id >= 0
 * forces that token. Returns the finished job. */
static serve_job *run_job(const int32_t *prompt, int n, int max_tokens, int32_t bias_id) {
    serve_job *j = job_create(1);
    int32_t *ids = folio_xmalloc(sizeof(int32_t) * n);
    memcpy(ids, prompt, sizeof(int32_t) * n);
    job_set_prompt(j, 0, ids, n);
    request_params p;
    request_params_init(&p);
    p.max_tokens = max_tokens;
    p.sampling.temperature = 0;
    p.ignore_eos = true;
    p.logprobs = 2;
    if (bias_id >= 0) {
        p.owned_bias = folio_xmalloc(sizeof *p.owned_bias);
        p.owned_bias[0] = (logit_bias_entry){bias_id, 100.0f};
        p.proc.bias = p.owned_bias;
        p.proc.n_bias = 1;
    }
    job_set_params(j, &p, true, false);
    request_params_free(&p);
    assert_int_equal(serve_loop_submit(g_loop, j, 0), 0);
    assert_true(job_wait(j, JOB_WAIT_OVER, NULL, NULL));
    serve_stats st;
    job_stats(j, &st);
    assert_int_equal(st.state, JOB_DONE);
    return j;
}

static json_t *format(serve_job *j, oai_kind kind) {
    oai_response_ctx x = {.kind = kind, .id = "cmpl-test", .model = "stories", .tok = g_tok};
    char *body = oai_format_response(&x, j);
    json_error_t err;
    json_t *o = json_loads(body, 0, &err);
    if (!o) fail_msg("response is not JSON (%s): %s", err.text, body);
    free(body);
    return o;
}

static json_t *choice0(const json_t *o) {
    return json_array_get(json_object_get(o, "choices"), 0);
}

/* Completions: tokens concatenate to the text, text_offset counts the characters before each
 * token, and each greedy token is its own top alternative (same string rule). */
static void check_completion(const json_t *o, int n) {
    const json_t *c = choice0(o), *lp = json_object_get(c, "logprobs");
    const char *text = json_string_value(json_object_get(c, "text"));
    const json_t *toks = json_object_get(lp, "tokens"), *offs = json_object_get(lp, "text_offset");
    const json_t *tops = json_object_get(lp, "top_logprobs");
    assert_int_equal(json_array_size(toks), n);
    text_buf cat = {0};
    text_buf_append(&cat, "", 0);
    for (int i = 0; i < n; i++) {
        const char *t = json_string_value(json_array_get(toks, i));
        assert_int_equal(json_integer_value(json_array_get(offs, i)), utf8_count(cat.s, cat.len));
        assert_non_null(json_object_get(json_array_get(tops, i), t));
        text_buf_append(&cat, t, strlen(t));
    }
    assert_string_equal(cat.s, text);
    text_buf_free(&cat);
}

/* Chat: tokens concatenate to the content; "bytes" are each token's bytes. */
static void check_chat(const json_t *o, int n) {
    const json_t *c = choice0(o);
    const char *text = json_string_value(json_object_get(json_object_get(c, "message"), "content"));
    const json_t *content = json_object_get(json_object_get(c, "logprobs"), "content");
    assert_int_equal(json_array_size(content), n);
    text_buf cat = {0};
    text_buf_append(&cat, "", 0);
    for (int i = 0; i < n; i++) {
        const json_t *e = json_array_get(content, i), *bytes = json_object_get(e, "bytes");
        const char *t = json_string_value(json_object_get(e, "token"));
        assert_int_equal(json_array_size(bytes), strlen(t));
        for (size_t k = 0; k < strlen(t); k++)
            assert_int_equal(json_integer_value(json_array_get(bytes, k)), (unsigned char)t[k]);
        assert_int_equal(json_array_size(json_object_get(e, "top_logprobs")), 2);
        text_buf_append(&cat, t, strlen(t));
    }
    assert_string_equal(cat.s, text);
    text_buf_free(&cat);
}

static const char *token_at(const json_t *o, int i) {
    return json_string_value(json_array_get(
        json_object_get(json_object_get(choice0(o), "logprobs"), "tokens"), i));
}

/* A story from the BOS alone: its first token starts the text (no space), later "▁" tokens
 * keep theirs. After "Once", the first token keeps its space. */
static void test_tokens_in_context(void **state) {
    (void)state;
    static const int32_t bos[] = {1}, once[] = {1, 403};
    serve_job *j = run_job(bos, 1, 24, -1);
    json_t *o = format(j, OAI_COMPLETION);
    check_completion(o, 24);
    assert_true(token_at(o, 0)[0] != ' ');
    int spaced = 0;
    for (int i = 1; i < 24; i++) spaced += token_at(o, i)[0] == ' ';
    assert_true(spaced > 3);
    json_decref(o);
    o = format(j, OAI_CHAT);
    check_chat(o, 24);
    json_decref(o);
    job_release(j);

    j = run_job(once, 2, 12, -1);
    o = format(j, OAI_COMPLETION);
    check_completion(o, 12);
    assert_int_equal(token_at(o, 0)[0], ' ');
    json_decref(o);
    job_release(j);
}

/* Streamed one token a chunk (as http_server.c does): the same strings and offsets. */
static void test_stream_chunks(void **state) {
    (void)state;
    static const int32_t bos[] = {1};
    serve_job *j = run_job(bos, 1, 8, -1);
    json_t *whole = format(j, OAI_COMPLETION);
    serve_output c;
    job_output(j, 0, &c);
    oai_response_ctx x = {.kind = OAI_COMPLETION, .id = "cmpl-test", .model = "stories",
                          .tok = g_tok};
    for (int k = 0; k < c.n_tok; k++) {
        oai_tokens t = {.ids = &c.ids[k], .lps = &c.lps[k], .offs = &c.offs[k], .n = 1,
                        .top_n = 2, .n_lead = c.n_lead - k};
        text_buf out = {0};
        oai_format_chunk(&x, 0, "", 0, &t, NULL, false, &out);
        assert_memory_equal(out.s, "data: ", 6);
        json_t *o = json_loads(out.s + 6, 0, NULL);
        assert_non_null(o);
        const json_t *lp = json_object_get(choice0(o), "logprobs");
        assert_string_equal(json_string_value(json_array_get(json_object_get(lp, "tokens"), 0)),
                            token_at(whole, k));
        const json_t *wo = json_object_get(json_object_get(choice0(whole), "logprobs"),
                                           "text_offset");
        assert_int_equal(json_integer_value(json_array_get(json_object_get(lp, "text_offset"), 0)),
                         json_integer_value(json_array_get(wo, k)));
        json_decref(o);
        text_buf_free(&out);
    }
    json_decref(whole);
    job_release(j);
}

/* A byte-fallback token alone is no character: "bytes:\xe4" (the text has U+FFFD there), its
 * chat bytes [228]. */
static void test_byte_tokens(void **state) {
    (void)state;
    static const int32_t once[] = {1, 403};
    int32_t e4 = tokenizer_token_id(g_tok, "<0xE4>");
    serve_job *j = run_job(once, 2, 3, e4);
    json_t *o = format(j, OAI_COMPLETION);
    for (int i = 0; i < 3; i++) assert_string_equal(token_at(o, i), "bytes:\\xe4");
    assert_string_equal(json_string_value(json_object_get(choice0(o), "text")),
                        "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    json_decref(o);
    o = format(j, OAI_CHAT);
    const json_t *e = json_array_get(
        json_object_get(json_object_get(choice0(o), "logprobs"), "content"), 0);
    assert_string_equal(json_string_value(json_object_get(e, "token")), "bytes:\\xe4");
    assert_int_equal(json_array_size(json_object_get(e, "bytes")), 1);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(e, "bytes"), 0)), 0xE4);
    json_decref(o);
    job_release(j);
}

static int cached_of(const json_t *usage) {
    return (int)json_integer_value(
        json_object_get(json_object_get(usage, "prompt_tokens_details"), "cached_tokens"));
}

/* The same 40-token prompt twice: the second reuses its first 2 full blocks. */
static void test_usage_cached_tokens(void **state) {
    (void)state;
    int32_t p[40];
    p[0] = 1;
    for (int k = 1; k < 40; k++) p[k] = 259 + (k * 37) % 250;
    for (int round = 0; round < 2; round++) {
        serve_job *j = run_job(p, 40, 2, -1);
        json_t *o = format(j, OAI_COMPLETION);
        const json_t *u = json_object_get(o, "usage");
        assert_int_equal(json_integer_value(json_object_get(u, "prompt_tokens")), 40);
        assert_int_equal(cached_of(u), round == 0 ? 0 : 32);
        json_decref(o);
        job_release(j);
    }
    oai_response_ctx x = {.kind = OAI_CHAT, .id = "chatcmpl-test", .model = "stories",
                          .tok = g_tok, .include_usage = true};
    text_buf out = {0};
    oai_format_usage_chunk(&x, 40, 2, 32, &out);
    json_t *o = json_loads(out.s + 6, JSON_DISABLE_EOF_CHECK, NULL);
    assert_non_null(o);
    assert_int_equal(cached_of(json_object_get(o, "usage")), 32);
    json_decref(o);
    text_buf_free(&out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens_in_context),
        cmocka_unit_test(test_stream_chunks),
        cmocka_unit_test(test_byte_tokens),
        cmocka_unit_test(test_usage_cached_tokens),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
