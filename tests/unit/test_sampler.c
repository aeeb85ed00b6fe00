/* Sampling: greedy is the argmax; top-k 1 and a tiny top-p collapse to it; seeded draws
 * repeat; drawn frequencies follow softmax(logits / T) restricted to the top-k / nucleus set;
 * out-of-range parameters are refused with the parameter named. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "error.h"
#include "sampler.h"

#define V 8
static const float LOGITS[V] = {0.5f, 2.0f, -1.0f, 1.0f, 1.9f, -3.0f, 0.0f, 1.5f};

static void softmax(const float *x, int n, float t, double *p) {
    double sum = 0;
    for (int i = 0; i < n; i++) sum += (p[i] = exp(x[i] / t));
    for (int i = 0; i < n; i++) p[i] /= sum;
}

static void frequencies(const sampling_params *sp, int draws, double *freq) {
    sampler_rng rng;
    sampler_rng_seed(&rng, 42);
    float sf[V];
    int si[V];
    memset(freq, 0, sizeof(double) * V);
    for (int i = 0; i < draws; i++) freq[sampler_sample(LOGITS, V, sp, &rng, sf, si)] += 1.0 / draws;
}

static void test_greedy_and_collapse(void **state) {
    (void)state;
    float sf[V];
    int si[V];
    sampler_rng rng;
    sampler_rng_seed(&rng, 1);
    assert_int_equal(sampler_argmax(LOGITS, V), 1);
    sampling_params greedy = {.temperature = 0, .top_p = 1};
    sampling_params k1 = {.temperature = 1, .top_k = 1, .top_p = 1};
    sampling_params p_tiny = {.temperature = 1, .top_p = 1e-6f};
    for (int i = 0; i < 100; i++) {
        assert_int_equal(sampler_sample(LOGITS, V, &greedy, &rng, sf, si), 1);
        assert_int_equal(sampler_sample(LOGITS, V, &k1, &rng, sf, si), 1);
        assert_int_equal(sampler_sample(LOGITS, V, &p_tiny, &rng, sf, si), 1);
    }
}

static void test_seed_repeats(void **state) {
    (void)state;
    sampling_params sp = {.temperature = 1.3f, .top_p = 1};
    float sf[V];
    int si[V], a[64], b[64];
    sampler_rng r1, r2;
    sampler_rng_seed(&r1, 99);
    sampler_rng_seed(&r2, 99);
    for (int i = 0; i < 64; i++) a[i] = sampler_sample(LOGITS, V, &sp, &r1, sf, si);
    for (int i = 0; i < 64; i++) b[i] = sampler_sample(LOGITS, V, &sp, &r2, sf, si);
    assert_memory_equal(a, b, sizeof a);
    int distinct = 0;
    for (int i = 1; i < 64; i++) distinct += a[i] != a[0];
    assert_true(distinct > 0);                   /* it really samples */
}

static void test_temperature_distribution(void **state) {
    (void)state;
    sampling_params sp = {.temperature = 0.7f, .top_p = 1};
    double want[V], got[V];
    softmax(LOGITS, V, 0.7f, want);
    frequencies(&sp, 200000, got);
    for (int i = 0; i < V; i++) assert_true(fabs(got[i] - want[i]) < 0.006);
}

static void test_top_k_distribution(void **state) {
    (void)state;
    /* top-3 of LOGITS: ids 1 (2.0), 4 (1.9), 7 (1.5) */
    sampling_params sp = {.temperature = 1, .top_k = 3, .top_p = 1};
    float kept[3] = {2.0f, 1.9f, 1.5f};
    double want[3], got[V];
    softmax(kept, 3, 1, want);
    frequencies(&sp, 200000, got);
    assert_true(fabs(got[1] - want[0]) < 0.006);
    assert_true(fabs(got[4] - want[1]) < 0.006);
    assert_true(fabs(got[7] - want[2]) < 0.006);
    assert_true(got[0] + got[2] + got[3] + got[5] + got[6] == 0.0);
}

static void test_top_p_distribution(void **state) {
    (void)state;
    double p[V], got[V];
    softmax(LOGITS, V, 1, p);
    /* the nucleus: the fewest most-likely ids whose mass reaches top_p */
    int order[V] = {1, 4, 7, 3, 0, 6, 2, 5};
    double top_p = 0.6, acc = 0;
    int m = 0;
    while (acc < top_p) acc += p[order[m++]];
    sampling_params sp = {.temperature = 1, .top_p = (float)top_p};
    frequencies(&sp, 200000, got);
    for (int i = 0; i < m; i++) assert_true(fabs(got[order[i]] - p[order[i]] / acc) < 0.006);
    for (int i = m; i < V; i++) assert_true(got[order[i]] == 0.0);
}

static void test_validation(void **state) {
    (void)state;
    sampling_params bad_t = {.temperature = -1, .top_p = 1};
    assert_int_equal(sampling_params_validate(&bad_t), -1);
    assert_non_null(strstr(folio_last_error(), "temperature"));
    sampling_params bad_p = {.temperature = 1, .top_p = 0};
    assert_int_equal(sampling_params_validate(&bad_p), -1);
    assert_non_null(strstr(folio_last_error(), "top_p"));
    sampling_params bad_k = {.temperature = 1, .top_p = 1, .top_k = -2};
    assert_int_equal(sampling_params_validate(&bad_k), -1);
    assert_non_null(strstr(folio_last_error(), "top_k"));
    sampling_params ok = {.temperature = 0.5f, .top_p = 0.9f, .top_k = 40};
    assert_int_equal(sampling_params_validate(&ok), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_and_collapse), cmocka_unit_test(test_seed_repeats),
        cmocka_unit_test(test_temperature_distribution), cmocka_unit_test(test_top_k_distribution),
        cmocka_unit_test(test_top_p_distribution), cmocka_unit_test(test_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
