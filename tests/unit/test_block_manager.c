/* The block manager: allocation order and exhaustion, references and release, the prefix
 * cache (register, hit, LRU eviction only when needed), copy-on-write, the invariant check
 * catching a leak, and a double free aborting at once (in a child process). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "block_manager.h"
#include "error.h"

static void test_alloc_release(void **state) {
    (void)state;
    block_manager *bm = bm_create(4, 16, true);
    int b[4];
    for (int i = 0; i < 4; i++) assert_int_equal(b[i] = bm_alloc(bm), i);
    assert_int_equal(bm_alloc(bm), -1);
    assert_int_equal(bm_num_available(bm), 0);
    bm_ref(bm, b[2]);
    assert_int_equal(bm_refcount(bm, b[2]), 2);
    bm_release(bm, b[2]);
    assert_int_equal(bm_num_available(bm), 0);
    int32_t refs[4] = {1, 1, 1, 1};
    assert_int_equal(bm_check(bm, refs), 0);
    refs[3] = 0; /* the tables say block 3 is unused: a leak */
    assert_int_equal(bm_check(bm, refs), -1);
    assert_non_null(strstr(folio_last_error(), "leak"));
    for (int i = 0; i < 4; i++) bm_release(bm, b[i]);
    assert_int_equal(bm_num_available(bm), 4);
    assert_int_equal(bm_check(bm, NULL), 0);
    bm_free(bm);
}

static void test_prefix_cache_lru(void **state) {
    (void)state;
    block_manager *bm = bm_create(3, 2, true);
    int32_t t1[2] = {5, 6}, t2[2] = {7, 8};
    bm_hash h1 = bm_hash_block(bm_hash_seed(), t1, 2);
    bm_hash h2 = bm_hash_block(h1, t2, 2);
    bm_hash other = bm_hash_block(bm_hash_seed(), t2, 2);
    assert_false(h1.lo == other.lo && h1.hi == other.hi);
    int a = bm_alloc(bm), b = bm_alloc(bm);
    bm_register(bm, a, h1);
    bm_register(bm, b, h2);
    bm_release(bm, a);
    bm_release(bm, b);
    /* both cached and evictable; the free block goes first */
    assert_int_equal(bm_num_available(bm), 3);
    assert_int_equal(bm_num_free(bm), 1);
    assert_int_equal(bm_lookup_acquire(bm, h1), a);
    bm_release(bm, a); /* a is now the most recently used */
    int c = bm_alloc(bm);
    assert_true(c != a && c != b);
    int d = bm_alloc(bm); /* evicts the least recently used: b */
    assert_int_equal(d, b);
    assert_int_equal(bm_get_stats(bm)->evictions, 1);
    assert_int_equal(bm_lookup_acquire(bm, h2), -1);
    assert_int_equal(bm_lookup_acquire(bm, h1), a);
    assert_int_equal(bm_check(bm, NULL), 0);
    bm_release(bm, a);
    bm_release(bm, c);
    bm_release(bm, d);
    bm_reset_prefix_cache(bm);
    assert_int_equal(bm_num_free(bm), 3);
    assert_int_equal(bm_lookup_acquire(bm, h1), -1);
    bm_free(bm);
}

static void test_cow(void **state) {
    (void)state;
    block_manager *bm = bm_create(2, 4, false);
    int a = bm_alloc(bm), src = -1;
    bm_ref(bm, a);
    int mine = a;
    assert_int_equal(bm_cow(bm, &mine, &src), 1);
    assert_int_equal(src, a);
    assert_true(mine != a);
    assert_int_equal(bm_refcount(bm, a), 1);
    int other = a;
    assert_int_equal(bm_cow(bm, &other, &src), 0); /* private now: write in place */
    assert_int_equal(bm_get_stats(bm)->cow_copies, 1);
    bm_release(bm, mine);
    bm_release(bm, other);
    assert_int_equal(bm_check(bm, NULL), 0);
    bm_free(bm);
}

static void test_double_free_aborts(void **state) {
    (void)state;
    pid_t pid = fork();
    if (pid == 0) {
        close(2);
        block_manager *bm = bm_create(2, 4, true);
        int a = bm_alloc(bm);
        bm_release(bm, a);
        bm_release(bm, a);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_release), cmocka_unit_test(test_prefix_cache_lru),
        cmocka_unit_test(test_cow), cmocka_unit_test(test_double_free_aborts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
