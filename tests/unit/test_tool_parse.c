/* The tool-call parser (engine/chat/tool_parse.c) on outputs as the supported families write
 * them (Qwen2.5 / Qwen3 / Hermes 2 Pro, Llama 3.1-3.3, Mistral v0.3 and tokenizer v11+):
 * every case parsed whole must give its expected content and calls, and the same when fed in
 * two pieces split at every byte, byte by byte, and in random pieces (content released as it
 * streams is then exactly the whole parse's: no markup of a parsed call ever reaches it).
 * Malformed, cut-off or nameless calls come back as content, verbatim. Also: which format a
 * chat template implies, and call ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tool_parse.h"

#define MAX_CALLS 4

typedef struct {
    const char *what;
    tool_format f;
    const char *text;
    const char *content;         /* expected content */
    int n_calls;
    const char *calls[MAX_CALLS][2]; /* name, arguments */
} tcase;

#define H TOOL_FORMAT_HERMES
#define L TOOL_FORMAT_LLAMA3_JSON
#define M TOOL_FORMAT_MISTRAL
#define SAME NULL /* expected content: the text itself */

static const tcase CASES[] = {
    /* ---- hermes: Qwen2.5, Qwen3, Hermes 2 Pro ---- */
    {"qwen2.5 one call", H,
     "<tool_call>\n{\"name\": \"get_current_temperature\", \"arguments\": {\"location\": "
     "\"San Francisco, CA, USA\"}}\n</tool_call>",
     "", 1, {{"get_current_temperature", "{\"location\": \"San Francisco, CA, USA\"}"}}},
    {"qwen2.5 parallel calls", H,
     "<tool_call>\n{\"name\": \"get_current_temperature\", \"arguments\": {\"location\": "
     "\"San Francisco, CA, USA\", \"unit\": \"celsius\"}}\n</tool_call>\n<tool_call>\n"
     "{\"name\": \"get_temperature_date\", \"arguments\": {\"location\": \"San Francisco, CA, "
     "USA\", \"date\": \"2024-10-01\", \"unit\": \"celsius\"}}\n</tool_call>",
     "", 2,
     {{"get_current_temperature",
       "{\"location\": \"San Francisco, CA, USA\", \"unit\": \"celsius\"}"},
      {"get_temperature_date",
       "{\"location\": \"San Francisco, CA, USA\", \"date\": \"2024-10-01\", \"unit\": "
       "\"celsius\"}"}}},
    {"qwen3 thinking, then a call", H,
     "<think>\nThe user wants the weather in Paris. I should call get_weather.\n</think>\n\n"
     "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n"
     "</tool_call>",
     "<think>\nThe user wants the weather in Paris. I should call get_weather.\n</think>", 1,
     {{"get_weather", "{\"city\": \"Paris\"}"}}},
    {"hermes 2 pro: arguments before name", H,
     "<tool_call>\n{\"arguments\": {\"symbol\": \"TSLA\"}, \"name\": "
     "\"get_stock_fundamentals\"}\n</tool_call>",
     "", 1, {{"get_stock_fundamentals", "{\"symbol\": \"TSLA\"}"}}},
    {"text, call, text", H,
     "Let me check that for you.\n<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n"
     "</tool_call>\nDone.",
     "Let me check that for you.Done.", 1, {{"f", "{\"a\": 1}"}}},
    {"closing tag missing at the end", H,
     "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n", "", 1, {{"f", "{}"}}},
    {"closing tag cut short at the end", H,
     "<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_", "", 1, {{"f", "{}"}}},
    {"escapes, unicode, markup and braces inside strings", H,
     "<tool_call>{\"name\": \"write\", \"arguments\": {\"text\": \"h\xc3\xa9llo </tool_call> "
     "<tool_call> {\\\"x\\\": [1, 2]} \\u00e9\\n\", \"n\": -1.5e3, \"ok\": true, \"z\": null, "
     "\"big\": 123456789012345678901234567890}}</tool_call>",
     "", 1,
     {{"write", "{\"text\": \"h\xc3\xa9llo </tool_call> <tool_call> {\\\"x\\\": [1, 2]} "
                "\\u00e9\\n\", \"n\": -1.5e3, \"ok\": true, \"z\": null, \"big\": "
                "123456789012345678901234567890}"}}},
    {"arguments as a JSON string", H,
     "<tool_call>{\"name\": \"f\", \"arguments\": \"{\\\"a\\\": 1}\"}</tool_call>", "", 1,
     {{"f", "{\"a\": 1}"}}},
    {"no arguments", H, "<tool_call>{\"name\": \"get_time\"}</tool_call>", "", 1,
     {{"get_time", "{}"}}},
    {"malformed arguments", H,
     "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": }}\n</tool_call>", SAME,
     0, {{0}}},
    {"missing brace", H,
     "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}\n</tool_call>", SAME, 0, {{0}}},
    {"cut off by max_tokens", H, "Sure.\n<tool_call>\n{\"name\": \"get_weather\", \"argu", SAME,
     0, {{0}}},
    {"no name", H, "<tool_call>\n{\"arguments\": {}}\n</tool_call>", SAME, 0, {{0}}},
    {"arguments an array", H, "<tool_call>{\"name\": \"f\", \"arguments\": [1]}</tool_call>",
     SAME, 0, {{0}}},
    {"duplicate key", H,
     "<tool_call>{\"name\": \"f\", \"name\": \"g\", \"arguments\": {}}</tool_call>", SAME, 0,
     {{0}}},
    {"text after the JSON inside the tags", H,
     "<tool_call>{\"name\": \"f\", \"arguments\": {}} oops</tool_call>", SAME, 0, {{0}}},
    {"a good call, then a bad one", H,
     "<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>\n<tool_call>oops</tool_call>",
     "<tool_call>oops</tool_call>", 1, {{"f", "{}"}}},
    {"a bad opener, then a good call", H,
     "<tool_call> nope <tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>",
     "<tool_call> nope", 1, {{"f", "{}"}}},
    {"prose about the tag", H, "Use the <tool_call> tag to call a tool.", SAME, 0, {{0}}},
    {"plain text", H, "Hello! How can I help you today?\n", SAME, 0, {{0}}},
    {"empty", H, "", SAME, 0, {{0}}},
    {"a partial tag at the end is text", H, "The tag is <tool_", SAME, 0, {{0}}},

    /* ---- llama3_json: Llama 3.1, 3.2, 3.3 ---- */
    {"llama 3.1 with python_tag", L,
     "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}", "", 1,
     {{"get_weather", "{\"city\": \"Paris\"}"}}},
    {"llama 3.1 without python_tag", L,
     "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"days\": 3}}", "", 1,
     {{"get_weather", "{\"city\": \"Paris\", \"days\": 3}"}}},
    {"llama 3.2 several calls", L,
     "{\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"parameters\": {\"x\": 1}}", "", 2,
     {{"a", "{}"}, {"b", "{\"x\": 1}"}}},
    {"calls on separate lines", L,
     "\n\n{\"type\": \"function\", \"name\": \"a\", \"parameters\": {}}\n{\"name\": \"b\", "
     "\"arguments\": {\"y\": \"z\"}}\n",
     "", 2, {{"a", "{}"}, {"b", "{\"y\": \"z\"}"}}},
    {"a call, then text", L, "{\"name\": \"f\", \"parameters\": {}}\nI called it.",
     "I called it.", 1, {{"f", "{}"}}},
    {"a separator at the end", L, "{\"name\": \"f\", \"parameters\": {}};", "", 1,
     {{"f", "{}"}}},
    {"a separator, then text", L, "{\"name\": \"f\", \"parameters\": {}} ; no more",
     "; no more", 1, {{"f", "{}"}}},
    {"plain text", L, "The weather in Paris is sunny.", SAME, 0, {{0}}},
    {"a JSON answer that is no call", L, "{\"answer\": 42}", SAME, 0, {{0}}},
    {"a built-in tool call", L, "<|python_tag|>brave_search.call(query=\"weather\")", SAME, 0,
     {{0}}},
    {"cut off", L, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Par", SAME, 0,
     {{0}}},
    {"text, then JSON: not a call", L, "Sure: {\"name\": \"f\", \"parameters\": {}}", SAME, 0,
     {{0}}},
    {"a good call, then a bad one", L,
     "{\"name\": \"f\", \"parameters\": {}}; {\"name\": 1, \"parameters\": {}}",
     "; {\"name\": 1, \"parameters\": {}}", 1, {{"f", "{}"}}},
    {"whitespace only", L, " \n ", SAME, 0, {{0}}},

    /* ---- mistral ---- */
    {"mistral v0.3", M,
     "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}]", "", 1,
     {{"get_weather", "{\"city\": \"Paris\"}"}}},
    {"mistral v0.3, two calls after a space", M,
     "[TOOL_CALLS] [{\"name\": \"a\", \"arguments\": {}}, {\"name\": \"b\", \"arguments\": "
     "{\"x\": [1, {\"y\": 2}]}}]",
     "", 2, {{"a", "{}"}, {"b", "{\"x\": [1, {\"y\": 2}]}"}}},
    {"text, then calls", M,
     "Let me check.[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {\"q\": \"a]b\"}}]",
     "Let me check.", 1, {{"f", "{\"q\": \"a]b\"}"}}},
    {"with an id field", M,
     "[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {\"a\": 1}, \"id\": \"abc123def\"}]", "", 1,
     {{"f", "{\"a\": 1}"}}},
    {"one object", M, "[TOOL_CALLS]{\"name\": \"f\", \"arguments\": {}}", "", 1, {{"f", "{}"}}},
    {"tokenizer v11: name[ARGS]", M, "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}", "", 1,
     {{"get_weather", "{\"city\": \"Paris\"}"}}},
    {"tokenizer v11: two calls", M,
     "[TOOL_CALLS]a[ARGS]{}[TOOL_CALLS]b.c-d_e[ARGS] {\"x\": 1}", "", 2,
     {{"a", "{}"}, {"b.c-d_e", "{\"x\": 1}"}}},
    {"malformed", M,
     "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": }}]", SAME, 0, {{0}}},
    {"an empty list", M, "[TOOL_CALLS][]", SAME, 0, {{0}}},
    {"a list with a non-call", M, "[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {}}, 3]", SAME,
     0, {{0}}},
    {"cut off in [ARGS]", M, "[TOOL_CALLS]get_weather[AR", SAME, 0, {{0}}},
    {"[ARGS] not an object", M, "[TOOL_CALLS]f[ARGS][1]", SAME, 0, {{0}}},
    {"plain text", M, "No tools are needed for that.", SAME, 0, {{0}}},
};
#define N_CASES (sizeof CASES / sizeof CASES[0])

static const char *expected_content(const tcase *c) { return c->content ? c->content : c->text; }

/* The output equals the case's expectation; markers of parsed calls are not in the content. */
static void check_output(const tcase *c, const tool_output *o, const char *how) {
    const char *want = expected_content(c);
    const char *got = o->content.s ? o->content.s : "";
    if (strcmp(got, want) != 0 || o->n_calls != c->n_calls)
        fail_msg("%s (%s): content [%s] (want [%s]), %d calls (want %d)", c->what, how, got,
                 want, o->n_calls, c->n_calls);
    for (int k = 0; k < c->n_calls; k++) {
        if (strcmp(o->calls[k].name, c->calls[k][0]) != 0 ||
            strcmp(o->calls[k].arguments, c->calls[k][1]) != 0)
            fail_msg("%s (%s): call %d is %s(%s), want %s(%s)", c->what, how, k,
                     o->calls[k].name, o->calls[k].arguments, c->calls[k][0], c->calls[k][1]);
    }
}

/* Two outputs are the same: content, calls, and where each call stands in the content. */
static void check_same(const tcase *c, const tool_output *a, const tool_output *b, const char *how) {
    check_output(c, b, how);
    for (int k = 0; k < a->n_calls; k++)
        if (a->calls[k].content_before != b->calls[k].content_before)
            fail_msg("%s (%s): call %d after %zu content bytes, whole parse %zu", c->what, how, k,
                     b->calls[k].content_before, a->calls[k].content_before);
}

/* Feeds the text in pieces ending at cuts[0..n) (ascending, the last the text's length). */
static void parse_pieces(const tcase *c, const size_t *cuts, int n, tool_output *whole,
                         const char *how) {
    tool_stream *s = tool_stream_new(c->f);
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        size_t before = tool_stream_output(s)->content.len;
        tool_stream_feed(s, c->text + at, cuts[i] - at);
        /* what was released is final: a prefix of the whole content */
        const tool_output *o = tool_stream_output(s);
        if (o->content.len < before || o->content.len > whole->content.len ||
            memcmp(o->content.s, whole->content.s, o->content.len) != 0)
            fail_msg("%s (%s): released content [%s] is not a prefix of [%s]", c->what, how,
                     o->content.s, whole->content.s);
        at = cuts[i];
    }
    tool_stream_finish(s);
    check_same(c, whole, tool_stream_output(s), how);
    tool_stream_free(s);
}

static void test_whole(void **state) {
    (void)state;
    for (size_t i = 0; i < N_CASES; i++) {
        tool_output o = {0};
        tool_parse_text(CASES[i].f, CASES[i].text, strlen(CASES[i].text), &o);
        check_output(&CASES[i], &o, "whole");
        tool_output_free(&o);
    }
}

static void test_split_everywhere(void **state) {
    (void)state;
    uint64_t rng = 0x243f6a8885a308d3ull;
    for (size_t i = 0; i < N_CASES; i++) {
        const tcase *c = &CASES[i];
        size_t n = strlen(c->text);
        tool_output whole = {0};
        tool_parse_text(c->f, c->text, n, &whole);
        size_t *cuts = malloc(sizeof *cuts * (n + 2));
        char how[64];
        for (size_t k = 0; k <= n; k++) { /* two pieces, split at k */
            cuts[0] = k;
            cuts[1] = n;
            snprintf(how, sizeof how, "split at %zu", k);
            parse_pieces(c, cuts, 2, &whole, how);
        }
        for (size_t k = 0; k < n; k++) cuts[k] = k + 1; /* a byte at a time */
        if (n) parse_pieces(c, cuts, (int)n, &whole, "byte by byte");
        for (int r = 0; r < 50; r++) { /* random pieces */
            int m = 0;
            for (size_t k = 1; k < n; k++) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                if ((rng >> 60) < 3) cuts[m++] = k;
            }
            cuts[m++] = n;
            parse_pieces(c, cuts, m, &whole, "random pieces");
        }
        free(cuts);
        tool_output_free(&whole);
    }
}

/* Content is released as soon as no later byte could make it part of a call. */
static void test_holds_back_only_a_possible_marker(void **state) {
    (void)state;
    static const struct {
        tool_format f;
        const char *text, *released;
    } T[] = {
        {H, "Hello wor", "Hello wor"},     {H, "Hello ", "Hello"},
        {H, "Hello <tool", "Hello"},       {H, "Hello <tok", "Hello <tok"},
        {H, "a <tool_call>{\"na", "a"},    {M, "Sure [TOOL", "Sure"},
        {M, "x [TOOLS", "x [TOOLS"},       {L, "  ", ""},
        {L, "<|python", ""},               {L, "Hi", "Hi"},
        {L, "{\"name\": ", ""},            {L, "<|pythonic", "<|pythonic"},
    };
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
        tool_stream *s = tool_stream_new(T[i].f);
        tool_stream_feed(s, T[i].text, strlen(T[i].text));
        const tool_output *o = tool_stream_output(s);
        if (strcmp(o->content.s, T[i].released) != 0)
            fail_msg("[%s]: released [%s], want [%s]", T[i].text, o->content.s, T[i].released);
        tool_stream_free(s);
    }
}

static void test_calls_keep_their_place(void **state) {
    (void)state;
    const char *t = "A <tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call> B "
                    "<tool_call>{\"name\": \"g\", \"arguments\": {}}</tool_call> C";
    tool_output o = {0};
    tool_parse_text(H, t, strlen(t), &o);
    assert_string_equal(o.content.s, "ABC");
    assert_int_equal(o.n_calls, 2);
    assert_int_equal(o.calls[0].content_before, 1);
    assert_int_equal(o.calls[1].content_before, 2);
    tool_output_free(&o);
}

static void test_detect(void **state) {
    (void)state;
    static const struct {
        const char *src;
        tool_format f;
    } T[] = {
        /* Qwen2.5 / Qwen3 */
        {"{{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name "
         "and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": "
         "<function-name>, \\\"arguments\\\": <args-json-object>}\\n</tool_call><|im_end|>\\n\" }}",
         H},
        /* Hermes 2 Pro's tool_use template */
        {"Use the following pydantic model json schema for each tool call you will make: "
         "{\"properties\": {\"name\": {\"title\": \"Name\", \"type\": \"string\"}}}\nFor each "
         "function call return a json object with function name and arguments within "
         "<tool_call></tool_call> XML tags as follows:\n<tool_call>\n{\"name\": <function-name>, "
         "\"arguments\": <args-dict>}\n</tool_call>",
         H},
        /* Qwen3-Coder: XML calls, another format */
        {"<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>\nvalue_1"
         "\n</parameter>\n</function>\n</tool_call>",
         TOOL_FORMAT_NONE},
        /* Llama 3.1 / 3.2 / 3.3 */
        {"{{- 'Respond in the format {\"name\": function name, \"parameters\": dictionary of "
         "argument name and its value}.' }}",
         L},
        {"{{- \"<|python_tag|>\" + tool_call.name + \".call(\" }}", L},
        /* Mistral v0.3 */
        {"{%- if tool_calls %}{{- \"[TOOL_CALLS] [\" }}{%- for tool_call in tool_calls %}", M},
        /* Llama 3 (no tools), ChatML without tools */
        {"{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
         "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}",
         TOOL_FORMAT_NONE},
        {"{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
         "{% endfor %}",
         TOOL_FORMAT_NONE},
    };
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++)
        assert_int_equal(tool_format_detect(T[i].src), T[i].f);
    assert_int_equal(tool_format_detect(NULL), TOOL_FORMAT_NONE);
}

static void test_names(void **state) {
    (void)state;
    tool_format f;
    const tool_format all[] = {TOOL_FORMAT_NONE, H, L, M};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(tool_format_parse(tool_format_name(all[i]), &f), 0);
        assert_int_equal(f, all[i]);
    }
    assert_int_equal(tool_format_parse("qwen", &f), 0);
    assert_int_equal(f, H);
    assert_int_equal(tool_format_parse("pythonic", &f), -1);
    assert_string_equal(tool_format_markers(M)[0], "[TOOL_CALLS]");
    assert_null(tool_format_markers(L)[0]);
}

static void test_ids(void **state) {
    (void)state;
    char a[32], b[32];
    tool_call_id(H, 1, a);
    tool_call_id(H, 2, b);
    assert_int_equal(strlen(a), 29);
    assert_int_equal(strncmp(a, "call_", 5), 0);
    assert_string_not_equal(a, b);
    tool_call_id(M, 1, a);
    assert_int_equal(strlen(a), 9); /* Mistral's templates refuse other ids */
    for (int i = 0; i < 9; i++)
        assert_true((a[i] >= '0' && a[i] <= '9') || (a[i] >= 'a' && a[i] <= 'z') ||
                    (a[i] >= 'A' && a[i] <= 'Z'));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole),
        cmocka_unit_test(test_split_everywhere),
        cmocka_unit_test(test_holds_back_only_a_possible_marker),
        cmocka_unit_test(test_calls_keep_their_place),
        cmocka_unit_test(test_detect),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
