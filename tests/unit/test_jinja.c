/* The Jinja interpreter, construct by construct: whitespace control (trim_blocks,
 * lstrip_blocks, '-' and '+'), for/if/set/namespace, expressions and Python value semantics,
 * tests, filters, string methods, slicing, tojson, and errors that name the construct and
 * line (unsupported filter/test/tag, raise_exception, undefined values). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "error.h"
#include "jinja.h"

/* Renders src with the JSON object ctx ("" for none); returns the output (caller frees) or
 * NULL with the message in folio_last_error(). */
static char *render(const char *src, const char *ctx) {
    json_error_t jerr;
    json_t *context = json_loads(ctx[0] ? ctx : "{}", 0, &jerr);
    assert_non_null(context);
    jinja_template *t = jinja_compile(src);
    char *out = NULL;
    size_t len = 0;
    if (t && jinja_render(t, context, &out, &len) != 0) out = NULL;
    jinja_free(t);
    json_decref(context);
    return out;
}

static void expect(const char *src, const char *ctx, const char *want) {
    folio_clear_error();
    char *got = render(src, ctx);
    if (!got) fail_msg("render failed: %s\n  template: %s", folio_last_error(), src);
    if (strcmp(got, want) != 0) fail_msg("template: %s\n  want: [%s]\n  got:  [%s]", src, want, got);
    free(got);
}

/* Expects a failure whose message contains every fragment given. */
static void expect_error(const char *src, const char *ctx, const char *frag1, const char *frag2) {
    folio_clear_error();
    char *got = render(src, ctx);
    if (got) fail_msg("expected an error, got [%s] for %s", got, src);
    const char *msg = folio_last_error();
    if (!strstr(msg, frag1) || (frag2 && !strstr(msg, frag2)))
        fail_msg("error [%s] lacks [%s] or [%s]", msg, frag1, frag2 ? frag2 : "");
}

static void test_text_and_output(void **state) {
    expect("plain", "", "plain");
    expect("{{ 'a' }}{{ \"b\" }}{{ 1 }}{{ 2.5 }}", "", "ab12.5");
    expect("{{ x }}|{{ none }}|{{ true }}|{{ [1, 'a', none] }}|{{ {'k': 1.0} }}", "", "|None|True|[1, 'a', None]|{'k': 1.0}");
    expect("{{ (1, 2) }}{{ ('x',) }}", "", "(1, 2)('x',)");
    expect("{{ 'it''s' }}{{ \"\\n\" == '\n' }}", "", "itsTrue");
    expect("{# comment #}x", "", "x");
    expect("line\n", "", "line"); /* keep_trailing_newline=False */
    expect("a\r\nb", "", "a\nb");
}

static void test_whitespace_control(void **state) {
    expect("a  {{- 'b' -}}  \n c", "", "abc");
    expect("a\n  {%- if true %}b{% endif %}", "", "ab");
    /* trim_blocks: the newline after a block tag goes; lstrip_blocks: indentation before it */
    expect("{% if true %}\n  x\n{% endif %}\ny", "", "  x\ny");
    expect("    {% if true %}x{% endif %}", "", "x");
    expect("a {% if true %}x{% endif %}", "", "a x");
    expect("  {{ 'v' }}\n", "", "  v");
    expect("{% if true +%}\nx{%+ endif %}", "", "\nx");
    expect("  {# c #}\nx", "", "x");
    expect("{{ 'a' }}   {% if true %}b{% endif %}", "", "a   b");
}

static void test_for_loop(void **state) {
    const char *ctx = "{\"xs\": [\"a\", \"b\", \"c\"]}";
    expect("{% for x in xs %}{{ loop.index0 }}{{ loop.index }}{{ x }}{% if loop.first %}F{% endif %}"
           "{% if loop.last %}L{% endif %}{{ loop.length }};{% endfor %}", ctx,
           "01aF3;12b3;23cL3;");
    expect("{% for x in xs if x != 'b' %}{{ x }}{{ loop.length }}{% endfor %}", ctx, "a2c2");
    expect("{% for x in [] %}x{% else %}empty{% endfor %}", "", "empty");
    expect("{% for x in xs %}{% if x == 'b' %}{% continue %}{% endif %}{{ x }}{% endfor %}", ctx, "ac");
    expect("{% for x in xs %}{% if x == 'b' %}{% break %}{% endif %}{{ x }}{% endfor %}", ctx, "a");
    expect("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }},{% endfor %}", "", "a=1,b=2,");
    expect("{% for k in {'a': 1, 'b': 2} %}{{ k }}{% endfor %}", "", "ab");
    expect("{% for c in 'héllo' %}{{ c }}.{% endfor %}", "", "h.é.l.l.o.");
    expect("{% for x in xs %}{{ loop.previtem }}{{ loop.nextitem }}{{ loop.revindex0 }} {% endfor %}", ctx, "b2 ac1 b0 ");
    expect("{% for x in undefined_thing %}x{% endfor %}ok", "", "ok");
}

static void test_if_set_namespace(void **state) {
    expect("{% if 0 %}a{% elif '' %}b{% elif [1] %}c{% else %}d{% endif %}", "", "c");
    expect("{% set x = 1 %}{% for i in [1, 2] %}{% set x = i %}{% endfor %}{{ x }}", "", "1");
    expect("{% set ns = namespace(n=0, s='') %}{% for i in [1, 2, 3] %}{% set ns.n = ns.n + i %}"
           "{% endfor %}{{ ns.n }}", "", "6");
    expect("{% if true %}{% set y = 5 %}{% endif %}{{ y }}", "", "5");
    expect("{% set a, b = 1, 2 %}{{ a }}{{ b }}", "", "12");
    expect("{% set blk %}x{{ 1 + 1 }}{% endset %}[{{ blk }}]", "", "[x2]");
    expect("{% generation %}gen{% endgeneration %}", "", "gen");
}

static void test_expressions(void **state) {
    expect("{{ 'a' ~ 1 ~ none }}|{{ 'a' + 'b' }}|{{ [1] + [2] }}|{{ 1 + 2.0 }}|{{ 7 / 2 }}|{{ 7 // 2 }}"
           "|{{ -7 // 2 }}|{{ -7 % 3 }}|{{ 2 ** 10 }}|{{ 'ab' * 2 }}", "",
           "a1None|ab|[1, 2]|3.0|3.5|3|-4|2|1024|abab");
    expect("{{ 1 < 2 }}{{ 2 <= 1 }}{{ 'a' == 'a' }}{{ 1 == 1.0 }}{{ 'b' in 'abc' }}{{ 3 not in [1, 2] }}"
           "{{ 'k' in {'k': 1} }}{{ 1 < 2 < 3 }}", "", "TrueFalseTrueTrueTrueTrueTrueTrue");
    expect("{{ not 1 }}{{ 0 or 'x' }}{{ 1 and 'y' }}{{ not (true and false) }}", "", "FalsexyTrue");
    expect("{{ 'yes' if 1 else 'no' }}{{ 'yes' if 0 else 'no' }}[{{ 'x' if 0 }}]", "", "yesno[]");
    /* a filter binds tighter than + and unary minus */
    expect("{{ 'a' + ' b ' | trim + 'c' }}|{{ -1 | abs }}", "", "abc|1");
    expect("{{ 0.1 + 0.2 }}|{{ 1e16 }}|{{ 1.5e-7 }}|{{ 100.0 }}|{{ 1e15 }}", "",
           "0.30000000000000004|1e+16|1.5e-07|100.0|1000000000000000.0");
    expect("{{ m.a.b }}{{ m['a']['b'] }}{{ m.missing }}|{{ xs[0] }}{{ xs[-1] }}{{ xs.1 }}{{ xs[9] }}",
           "{\"m\": {\"a\": {\"b\": \"v\"}}, \"xs\": [1, 2, 3]}", "vv|132");
}

static void test_tests(void **state) {
    const char *ctx = "{\"s\": \"x\", \"n\": null, \"d\": {}, \"l\": [], \"i\": 3, \"f\": false}";
    expect("{{ s is defined }}{{ u is defined }}{{ u is undefined }}{{ n is none }}{{ n is not none }}"
           "{{ s is string }}{{ d is mapping }}{{ l is mapping }}{{ l is sequence }}{{ i is number }}"
           "{{ i is integer }}{{ f is false }}{{ f is boolean }}{{ i is odd }}{{ i is divisibleby 3 }}"
           "{{ s is eq 'x' }}{{ s is in ['x'] }}{{ l is iterable }}", ctx,
           "TrueFalseTrueTrueFalseTrueTrueFalseTrueTrueTrueTrueTrueTrueTrueTrueTrueTrue");
    expect("{{ not s is none }}", ctx, "True");
}

static void test_filters(void **state) {
    expect("[{{ '  x \n' | trim }}]{{ 'aXb' | upper }}{{ 'AxB' | lower }}{{ 'héllo' | length }}"
           "{{ [1, 2] | length }}{{ {'a': 1} | count }}", "", "[x]AXBaxb521");
    expect("{{ 'a-b-c' | replace('-', '+') }}{{ u | default('d') }}{{ '' | default('e', true) }}"
           "{{ [1, 'a'] | join(',') }}{{ [3, 4] | first }}{{ [3, 4] | last }}", "", "a+b+cde1,a34");
    expect("{{ {'a': 1} | items | list }}", "", "[('a', 1)]");
    expect("{{ xs | selectattr('t', 'equalto', 'k') | map(attribute='n') | join }}"
           "{{ xs | rejectattr('t', 'eq', 'k') | map(attribute='n') | list }}{{ xs | map(attribute='z', default=0) | list }}",
           "{\"xs\": [{\"t\": \"k\", \"n\": \"a\"}, {\"t\": \"j\", \"n\": \"b\"}, {\"t\": \"k\", \"n\": \"c\"}]}",
           "ac['b'][0, 0, 0]");
    expect("{{ 'ab' | reverse }}{{ [1, 2, 1] | unique | list }}{{ '3' | int + 1 }}{{ 'x' | int }}{{ 2 | float }}"
           "{{ 5 | string + '!' }}", "", "ba[1, 2]402.05!");
    expect("{{ 'a\nb' | indent(2) }}|{{ 'a\nb' | indent(2, true) }}", "", "a\n  b|  a\n  b");
}

static void test_tojson(void **state) {
    expect("{{ v | tojson }}", "{\"v\": {\"s\": \"é\\\"\\n\\u0001\", \"n\": [1, 2.5, 1.0, null, true, {}], \"e\": []}}",
           "{\"s\": \"é\\\"\\n\\u0001\", \"n\": [1, 2.5, 1.0, null, true, {}], \"e\": []}");
    expect("{{ v | tojson(indent=2) }}", "{\"v\": {\"a\": [1, {\"b\": null}], \"c\": {}}}",
           "{\n  \"a\": [\n    1,\n    {\n      \"b\": null\n    }\n  ],\n  \"c\": {}\n}");
    expect("{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}{{ 'x' | tojson }}", "", "{\"a\": 2, \"b\": 1}\"x\"");
    expect_error("{{ u | tojson }}", "", "line 1", "undefined");
}

static void test_string_methods(void **state) {
    expect("[{{ '\n\nx\n'.strip('\n') }}][{{ '  x  '.lstrip() }}][{{ '  x  '.rstrip() }}][{{ 'xxaxx'.strip('x') }}]",
           "", "[x][x  ][  x][a]");
    expect("{{ ' a  b\tc\n'.split() }}{{ 'a,b,,c'.split(',') }}{{ 'a b c'.split(' ', 1) }}", "",
           "['a', 'b', 'c']['a', 'b', '', 'c']['a', 'b c']");
    expect("{{ 'hello'.startswith('he') }}{{ 'hello'.endswith('lo') }}{{ 'hello'.startswith(('x', 'h')) }}"
           "{{ 'abc'.upper() }}{{ 'a b'.title() }}{{ 'aXa'.replace('a', 'b') }}{{ 'abc'.find('c') }}"
           "{{ ','.join(['1', '2']) }}", "", "TrueTrueTrueABCA BbXb21,2");
    expect("{{ 'x</think>y'.split('</think>')[-1] }}{{ d.get('a') }}{{ d.get('z', 'dflt') }}{{ d.keys() | list }}",
           "{\"d\": {\"a\": 1}}", "y1dflt['a']");
}

static void test_slicing(void **state) {
    const char *ctx = "{\"xs\": [1, 2, 3, 4]}";
    expect("{{ xs[1:] }}{{ xs[:2] }}{{ xs[::-1] }}{{ xs[-2:] }}{{ xs[::2] }}{{ xs[1:-1] }}", ctx,
           "[2, 3, 4][1, 2][4, 3, 2, 1][3, 4][1, 3][2, 3]");
    expect("{{ 'héllo'[1:3] }}{{ 'héllo'[::-1] }}{{ 'héllo'[1] }}", "", "élolléhé");
}

static void test_errors_name_construct_and_line(void **state) {
    expect_error("a\n{{ x | frobnicate }}", "", "line 2", "unsupported filter 'frobnicate'");
    expect_error("\n\n{% if x is weird %}{% endif %}", "", "line 3", "unsupported test 'weird'");
    expect_error("{% macro m() %}{% endmacro %}", "", "line 1", "unsupported tag 'macro'");
    expect_error("x\n{% for a in b %}", "", "line 2", "never closed");
    expect_error("{% endif %}", "", "line 1", "unexpected 'endif'");
    expect_error("{{ 1 + }}", "", "line 1", "expected an expression");
    expect_error("{{ 'a\n' }}\n{{ raise_exception('bad role: ' ~ r) }}", "{\"r\": \"x\"}", "line 3",
                 "raise_exception: bad role: x");
    expect_error("{{ m.a.b }}", "{\"m\": {}}", "line 1", "has no attribute 'a'");
    expect_error("{{ nope.x }}", "", "line 1", "'nope' is undefined");
    expect_error("{{ 'a' + 1 }}", "", "line 1", "unsupported operand types for +: 'str' and 'int'");
    expect_error("{{ n + 'x' }}", "{\"n\": null}", "line 1", "'NoneType' and 'str'");
    expect_error("{{ 'x'.zfill(3) }}", "", "line 1", "has no attribute 'zfill'");
    expect_error("{% break %}", "", "line 1", "outside a for loop");
    expect_error("{{ x", "", "line 1", "unclosed");
    expect_error("{% set s = 'x' %}{% set s.a = 1 %}", "", "line 1", "non-namespace");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_and_output),
        cmocka_unit_test(test_whitespace_control),
        cmocka_unit_test(test_for_loop),
        cmocka_unit_test(test_if_set_namespace),
        cmocka_unit_test(test_expressions),
        cmocka_unit_test(test_tests),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_tojson),
        cmocka_unit_test(test_string_methods),
        cmocka_unit_test(test_slicing),
        cmocka_unit_test(test_errors_name_construct_and_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
