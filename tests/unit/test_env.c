/* The FOLIO_* environment registry: every variable has a name, default and meaning; folio_env
 * returns what setenv set and NULL when unset (the reader applies the stated default). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "env.h"

static void test_every_variable_documented(void **state) {
    (void)state;
    int n = 0;
    const folio_env_var *v = folio_env_vars(&n);
    assert_true(n >= 7);
    for (int i = 0; i < n; i++) {
        assert_non_null(v[i].name);
        assert_int_equal(strncmp(v[i].name, "FOLIO_", 6), 0);
        assert_true(v[i].def && *v[i].def);
        assert_true(v[i].meaning && *v[i].meaning);
        for (int j = 0; j < i; j++) assert_string_not_equal(v[i].name, v[j].name);
    }
}

static void test_reads_the_environment(void **state) {
    (void)state;
    int n = 0;
    const folio_env_var *v = folio_env_vars(&n);
    for (int i = 0; i < n; i++) {
        const char *saved = getenv(v[i].name);
        char *keep = saved ? strdup(saved) : NULL;
        unsetenv(v[i].name);
        assert_null(folio_env(v[i].name)); /* unset: the reader's default */
        setenv(v[i].name, "42", 1);
        assert_string_equal(folio_env(v[i].name), "42");
        if (keep) setenv(v[i].name, keep, 1);
        else unsetenv(v[i].name);
        free(keep);
    }
}

static void test_help_lists_all(void **state) {
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    folio_env_print(f);
    fclose(f);
    int n = 0;
    const folio_env_var *v = folio_env_vars(&n);
    for (int i = 0; i < n; i++) {
        assert_non_null(strstr(text, v[i].name));
        assert_non_null(strstr(text, v[i].meaning));
    }
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_variable_documented),
        cmocka_unit_test(test_reads_the_environment),
        cmocka_unit_test(test_help_lists_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
