/* The server's limits that need no running server (issue #13): rate-limited log lines and the
 * escaping of client text for them; the body budget (total and per client address, a table
 * that grows and shrinks); the constant-time key compare; the JSON media type; and what
 * oai_parse_request refuses or clamps: stop strings (count, total bytes, ""), stop ids,
 * repetition_penalty 0, min_tokens above max_tokens, n x prompts above --max-num-seqs,
 * stream_options without stream, logit_bias beyond +-100 (clamped), unknown fields (counted,
 * names cut short). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cmocka.h>

#include "error.h"
#include "hash.h"
#include "http_limits.h"
#include "log_limit.h"
#include "openai_api.h"
#include "request_json.h"

/* ---- log lines ---- */

static void test_escape(void **state) {
    (void)state;
    char out[64];
    const char raw[] = "a\nfolio: error: x\x1b[31m'\\\xc3\xa9";
    folio_escape_log(raw, sizeof raw - 1, out, sizeof out);
    assert_string_equal(out, "a\\nfolio: error: x\\x1b[31m\\x27\\x5c\\xc3\\xa9");
    assert_null(strchr(out, '\n'));
    assert_null(strchr(out, '\x1b'));
    /* cut at a whole escape, "..." at the end, always inside the buffer */
    char small[12];
    folio_escape_log("\x01\x02\x03\x04\x05", 5, small, sizeof small);
    assert_string_equal(small, "\\x01\\x02...");
    char big[4096];
    memset(big, '\n', sizeof big);
    for (size_t cap = 8; cap < 40; cap++) {
        char buf[40];
        memset(buf, '#', sizeof buf);
        folio_escape_log(big, sizeof big, buf, cap);
        assert_true(strlen(buf) < cap);
        assert_int_equal(buf[cap], '#');
        assert_non_null(strstr(buf, "..."));
    }
    folio_escape_log("ok", 2, out, 8);
    assert_string_equal(out, "ok");
}

static void test_rate_limit(void **state) {
    (void)state;
    folio_log_limit l = FOLIO_LOG_LIMIT_INIT(3, 3600.0);
    int printed = 0;
    for (int i = 0; i < 1000; i++) printed += folio_log_limited(&l, "folio: test: line %d", i);
    assert_int_equal(printed, 3);
    assert_int_equal(folio_log_limit_held(&l), 997);
    /* a new window: the next line goes out, with the count of those held back */
    l.start -= 3601.0;
    assert_true(folio_log_limited(&l, "folio: test: after the window"));
    assert_int_equal(folio_log_limit_held(&l), 0);
}

/* ---- the body budget ---- */

static client_key key_of(uint32_t ip) {
    client_key k = {{0}};
    k.b[10] = k.b[11] = 0xff;
    memcpy(k.b + 12, &ip, 4);
    return k;
}

static void test_budget_limits(void **state) {
    (void)state;
    body_budget *b = body_budget_create(1000, 600);
    client_key a = key_of(1), c = key_of(2), d = key_of(3);
    assert_int_equal(body_budget_take(b, &a, 500), BUDGET_OK);
    assert_int_equal(body_budget_take(b, &a, 101), BUDGET_CLIENT_FULL); /* a: 601 > 600 */
    assert_int_equal(body_budget_take(b, &a, 100), BUDGET_OK);
    assert_int_equal(body_budget_take(b, &c, 401), BUDGET_FULL);        /* all: 1001 */
    assert_int_equal(body_budget_take(b, &c, 400), BUDGET_OK);
    assert_int_equal(body_budget_take(b, &d, 1), BUDGET_FULL);
    assert_int_equal(body_budget_total_held(b), 1000);
    body_budget_give(b, &a, 600);
    assert_int_equal(body_budget_held(b, &a), 0);
    assert_int_equal(body_budget_take(b, &d, 600), BUDGET_OK);
    assert_int_equal(body_budget_take(b, &d, 2000), BUDGET_FULL);       /* larger than it all */
    body_budget_give(b, &c, 400);
    body_budget_give(b, &d, 600);
    assert_int_equal(body_budget_total_held(b), 0);
    body_budget_free(b);
}

/* Many clients coming and going (the table grows, and deletes shift entries back): every
 * client's count stays exact. */
static void test_budget_table(void **state) {
    (void)state;
    enum { N = 3000 };
    body_budget *b = body_budget_create(0, 0);
    static size_t held[N];
    memset(held, 0, sizeof held);
    uint64_t r = 12345;
    for (int step = 0; step < 200000; step++) {
        r = folio_splitmix64(r);
        int i = (int)(r % N);
        client_key k = key_of((uint32_t)i * 2654435761u);
        size_t n = (size_t)((r >> 32) % 5) + 1;
        if (held[i] && (r >> 40) % 2) {
            size_t give = n < held[i] ? n : held[i];
            body_budget_give(b, &k, give);
            held[i] -= give;
        } else {
            assert_int_equal(body_budget_take(b, &k, n), BUDGET_OK);
            held[i] += n;
        }
        if (step % 997 == 0)
            for (int j = 0; j < N; j++) {
                client_key kj = key_of((uint32_t)j * 2654435761u);
                assert_int_equal(body_budget_held(b, &kj), held[j]);
            }
    }
    size_t total = 0;
    for (int j = 0; j < N; j++) total += held[j];
    assert_int_equal(body_budget_total_held(b), total);
    body_budget_free(b);
}

static void test_client_key(void **state) {
    (void)state;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 1};
    struct sockaddr_in b2 = {.sin_family = AF_INET, .sin_port = 2};
    a.sin_addr.s_addr = b2.sin_addr.s_addr = htonl(0x7f000001);
    client_key ka, kb;
    client_key_of((struct sockaddr *)&a, &ka);
    client_key_of((struct sockaddr *)&b2, &kb);
    assert_memory_equal(&ka, &kb, sizeof ka); /* the port is not part of the client */
    b2.sin_addr.s_addr = htonl(0x7f000002);
    client_key_of((struct sockaddr *)&b2, &kb);
    assert_memory_not_equal(&ka, &kb, sizeof ka);
}

/* ---- API key, media type ---- */

static void test_ct_equal(void **state) {
    (void)state;
    assert_true(ct_equal("sekrit", 6, "sekrit", 6));
    assert_false(ct_equal("sekrit", 6, "sekriT", 6));
    assert_false(ct_equal("sekrit", 6, "sekri", 5));
    assert_false(ct_equal("sekrit", 6, "sekrit!", 7));
    assert_false(ct_equal("sekrit", 6, "", 0));
    assert_false(ct_equal("", 0, "x", 1));
    assert_true(ct_equal("", 0, "", 0));
}

static void test_media_type(void **state) {
    (void)state;
    assert_true(media_type_is_json("application/json"));
    assert_true(media_type_is_json("Application/JSON; charset=utf-8"));
    assert_true(media_type_is_json(" application/json ;charset=utf-8"));
    assert_false(media_type_is_json("application/x-www-form-urlencoded"));
    assert_false(media_type_is_json("text/plain"));
    assert_false(media_type_is_json("application/jsonp"));
    assert_false(media_type_is_json(""));
}

/* ---- request bodies ---- */

static const oai_limits LIM = {.vocab = 512, .max_n = 8};

/* Parses body as a completion (chat when chat); the return code, with r freed. */
static int parse(const char *body, bool chat) {
    oai_request r;
    int rc = oai_parse_request(body, strlen(body), chat ? OAI_CHAT : OAI_COMPLETION, &LIM, 1, &r);
    oai_request_free(&r);
    return rc;
}

/* The request must be refused with a message naming field. */
static void refused(const char *body, const char *field) {
    if (parse(body, strstr(body, "\"messages\"") != NULL) == 0) fail_msg("accepted: %s", body);
    char want[64];
    snprintf(want, sizeof want, "field '%s'", field);
    if (!strstr(folio_last_error(), want))
        fail_msg("'%s' does not name %s (%s)", folio_last_error(), field, body);
}

static void test_stop_strings(void **state) {
    (void)state;
    refused("{\"prompt\": \"a\", \"stop\": \"\"}", "stop");
    refused("{\"prompt\": \"a\", \"stop\": [\"\"]}", "stop");
    assert_int_equal(parse("{\"prompt\": \"a\", \"stop\": \"x\"}", false), 0);
    /* count */
    char body[20000];
    size_t o = (size_t)snprintf(body, sizeof body, "{\"prompt\": \"a\", \"stop\": [");
    for (int i = 0; i < FOLIO_MAX_STOP_STRINGS; i++)
        o += (size_t)snprintf(body + o, sizeof body - o, "%s\"s%d\"", i ? "," : "", i);
    snprintf(body + o, sizeof body - o, "]}");
    assert_int_equal(parse(body, false), 0);
    snprintf(body + o, sizeof body - o, ",\"one more\"]}");
    refused(body, "stop");
    /* total bytes */
    o = (size_t)snprintf(body, sizeof body, "{\"prompt\": \"a\", \"stop\": [\"");
    memset(body + o, 'x', FOLIO_MAX_STOP_BYTES);
    o += FOLIO_MAX_STOP_BYTES;
    snprintf(body + o, sizeof body - o, "\"]}");
    assert_int_equal(parse(body, false), 0);
    snprintf(body + o, sizeof body - o, "\", \"y\"]}");
    refused(body, "stop");
    /* stop ids */
    o = (size_t)snprintf(body, sizeof body, "{\"prompt\": \"a\", \"stop_token_ids\": [");
    for (int i = 0; i <= FOLIO_MAX_STOP_TOKEN_IDS; i++)
        o += (size_t)snprintf(body + o, sizeof body - o, "%s2", i ? "," : "");
    snprintf(body + o, sizeof body - o, "]}");
    refused(body, "stop_token_ids");
}

static void test_small_checks(void **state) {
    (void)state;
    refused("{\"prompt\": \"a\", \"repetition_penalty\": 0}", "repetition_penalty");
    refused("{\"prompt\": \"a\", \"repetition_penalty\": -1}", "repetition_penalty");
    assert_int_equal(parse("{\"prompt\": \"a\", \"repetition_penalty\": 1.2}", false), 0);
    refused("{\"prompt\": \"a\", \"min_tokens\": 10, \"max_tokens\": 5}", "min_tokens");
    refused("{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}], \"min_tokens\": 10, "
            "\"max_completion_tokens\": 5}", "min_tokens");
    assert_int_equal(parse("{\"prompt\": \"a\", \"min_tokens\": 5, \"max_tokens\": 5}", false), 0);
    refused("{\"prompt\": \"a\", \"stream_options\": {\"include_usage\": true}}", "stream_options");
    refused("{\"prompt\": \"a\", \"stream\": false, \"stream_options\": {}}", "stream_options");
    assert_int_equal(parse("{\"prompt\": \"a\", \"stream\": true, \"stream_options\": "
                           "{\"include_usage\": true}}", false), 0);
    assert_int_equal(parse("{\"prompt\": \"a\", \"stream_options\": null}", false), 0);
    /* n x prompts within --max-num-seqs (8) */
    assert_int_equal(parse("{\"prompt\": [\"a\", \"b\"], \"n\": 4}", false), 0);
    refused("{\"prompt\": [\"a\", \"b\", \"c\"], \"n\": 3}", "n");
    refused("{\"prompt\": [[1], [2], [3], [4], [5], [6], [7], [8], [9]]}", "n");
    refused("{\"prompt\": \"a\", \"n\": 9}", "n");
}

static void test_logit_bias_clamped(void **state) {
    (void)state;
    const char *body = "{\"prompt\": \"a\", \"logit_bias\": {\"5\": 1000, \"6\": -1e9, \"7\": 3.5}}";
    oai_request r;
    assert_int_equal(oai_parse_request(body, strlen(body), OAI_COMPLETION, &LIM, 1, &r), 0);
    assert_int_equal(r.p.proc.n_bias, 3);
    for (int i = 0; i < 3; i++) {
        const logit_bias_entry *e = &r.p.proc.bias[i];
        float want = e->token == 5 ? 100.0f : e->token == 6 ? -100.0f : 3.5f;
        assert_true(e->bias == want);
    }
    oai_request_free(&r);
}

static void test_unknown_fields(void **state) {
    (void)state;
    char body[4096];
    size_t o = (size_t)snprintf(body, sizeof body, "{\"prompt\": \"a\"");
    for (int i = 0; i < 12; i++) o += (size_t)snprintf(body + o, sizeof body - o, ", \"u%d\": 1", i);
    o += (size_t)snprintf(body + o, sizeof body - o, ", \"");
    memset(body + o, 'k', 300);
    o += 300;
    snprintf(body + o, sizeof body - o, "\\n\": 2}");
    oai_request r;
    assert_int_equal(oai_parse_request(body, strlen(body), OAI_COMPLETION, &LIM, 1, &r), 0);
    assert_int_equal(r.n_unknown_total, 13);
    assert_int_equal(r.n_unknown, OAI_MAX_UNKNOWN);
    for (int i = 0; i < r.n_unknown; i++) {
        assert_true(strlen(r.unknown[i]) <= OAI_UNKNOWN_NAME_MAX);
        assert_int_equal(strlen(r.unknown[i]), r.unknown_len[i]);
    }
    oai_request_free(&r);
    /* a long name is cut (and said to be) */
    snprintf(body, sizeof body, "{\"prompt\": \"a\", \"%0300d\": 1}", 7);
    assert_int_equal(oai_parse_request(body, strlen(body), OAI_COMPLETION, &LIM, 1, &r), 0);
    assert_int_equal(r.n_unknown, 1);
    assert_int_equal(r.unknown_len[0], OAI_UNKNOWN_NAME_MAX);
    assert_true(r.unknown_cut[0]);
    oai_request_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_budget_limits),
        cmocka_unit_test(test_budget_table),
        cmocka_unit_test(test_client_key),
        cmocka_unit_test(test_ct_equal),
        cmocka_unit_test(test_media_type),
        cmocka_unit_test(test_stop_strings),
        cmocka_unit_test(test_small_checks),
        cmocka_unit_test(test_logit_bias_clamped),
        cmocka_unit_test(test_unknown_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
