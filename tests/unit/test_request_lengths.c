/* request_lengths_read: lengths from prompt_ids and text prompts (stories260K's tokenizer),
 * max_tokens or the default, blank lines skipped, and errors naming the file, line and field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "error.h"
#include "request_lengths.h"

static const char *write_tmp(const char *text) {
    static char path[64];
    strcpy(path, "/tmp/folio_lengths_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_lengths(void **state) {
    (void)state;
    tokenizer *tok;
    assert_int_equal(tokenizer_load(FOLIO_SOURCE_DIR "/configs/stories260K", &tok), 0);
    const char *p = write_tmp("{\"prompt_ids\": [1, 2, 3], \"max_tokens\": 7}\n\n"
                              "{\"prompt\": \"Once upon a time\"}\n");
    int *in, *out, n;
    assert_int_equal(request_lengths_read(p, tok, 99, &in, &out, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(in[0], 3);
    assert_int_equal(out[0], 7);
    assert_int_equal(in[1], 5);   /* BOS + "Once upon a time" in 4 tokens */
    assert_int_equal(out[1], 99);
    free(in);
    free(out);
    unlink(p);
    tokenizer_free(tok);
}

static void test_errors(void **state) {
    (void)state;
    int *in, *out, n;
    const char *p = write_tmp("{\"prompt_ids\": [1]}\n{\"prompt\": \"hi\"}\n");
    assert_int_equal(request_lengths_read(p, NULL, 4, &in, &out, &n), -1);
    assert_non_null(strstr(folio_last_error(), "line 2"));
    assert_non_null(strstr(folio_last_error(), "tokenizer"));
    unlink(p);
    p = write_tmp("{\"prompt_ids\": [1], \"max_tokens\": \"x\"}\n");
    assert_int_equal(request_lengths_read(p, NULL, 4, &in, &out, &n), -1);
    assert_non_null(strstr(folio_last_error(), "max_tokens"));
    unlink(p);
    p = write_tmp("[1, 2]\n");
    assert_int_equal(request_lengths_read(p, NULL, 4, &in, &out, &n), -1);
    assert_non_null(strstr(folio_last_error(), "line 1"));
    unlink(p);
    assert_int_equal(request_lengths_read("/nonexistent/x.jsonl", NULL, 4, &in, &out, &n), -1);
    assert_non_null(strstr(folio_last_error(), "/nonexistent/x.jsonl"));
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_lengths), cmocka_unit_test(test_errors)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
