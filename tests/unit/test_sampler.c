/* Sampling through the engine's one sampler (sample_rows_cpu, the GPU sampler's host twin,
 * fed by sample_row_params_of and sampler_entries_build): greedy is the argmax; top-k 1, a
 * tiny top-p and min-p 1 collapse to it; seeded draws repeat; drawn frequencies follow
 * softmax(logits / T) restricted to the top-k / nucleus set (ties at the top-k threshold all
 * kept); logit bias, min_tokens and the penalties change the choice as documented;
 * out-of-range parameters are refused with the parameter named. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "error.h"
#include "sampler.h"

#define V 8
static const float LOGITS[V] = {0.5f, 2.0f, -1.0f, 1.0f, 1.9f, -3.0f, 0.0f, 1.5f};

/* The sequence a token is drawn for: its processors and tokens so far. */
typedef struct {
    const logits_params *lp;     /* NULL: none */
    const int32_t *prompt, *output;
    int n_prompt, n_output;
    const int32_t *eos;
    int n_eos;
} history;

/* The token the engine's host path draws from row [n] for sp after h, with the RNG r and
 * the token index counter. */
static int sample_after(const float *row, int n, const sampling_params *sp, const history *h,
                        const sampler_rng *r, uint64_t counter) {
    static const logits_params none = {0};
    const logits_params *lp = h && h->lp ? h->lp : &none;
    const int n_prompt = h ? h->n_prompt : 0, n_output = h ? h->n_output : 0;
    const int n_eos = h ? h->n_eos : 0;
    float *w = malloc(sizeof *w * n);
    int32_t *map = calloc((size_t)n, sizeof *map);
    const int bound = sampler_entries_bound(lp, n_prompt, n_output, n_eos);
    sample_entry *ent = malloc(sizeof *ent * (size_t)(bound ? bound : 1));
    sample_row_params p = sample_row_params_of(sp, lp, r, counter);
    p.n_entries = sampler_entries_build(ent, lp, h ? h->prompt : NULL, n_prompt,
                                        h ? h->output : NULL, n_output, h ? h->eos : NULL,
                                        n_eos, map);
    memcpy(w, row, sizeof *w * n);
    int32_t id;
    sample_rows_cpu(&id, NULL, w, 1, n, &p, ent);
    free(ent);
    free(map);
    free(w);
    return id;
}

static int sample(const sampling_params *sp, const sampler_rng *r, uint64_t counter) {
    return sample_after(LOGITS, V, sp, NULL, r, counter);
}

static void softmax(const float *x, int n, float t, double *p) {
    double sum = 0;
    for (int i = 0; i < n; i++) sum += (p[i] = exp(x[i] / t));
    for (int i = 0; i < n; i++) p[i] /= sum;
}

static void frequencies(const sampling_params *sp, int draws, double *freq) {
    sampler_rng rng;
    sampler_rng_seed(&rng, 42);
    memset(freq, 0, sizeof(double) * V);
    for (int i = 0; i < draws; i++) freq[sample(sp, &rng, (uint64_t)i)] += 1.0 / draws;
}

static void test_greedy_and_collapse(void **state) {
    (void)state;
    sampler_rng rng;
    sampler_rng_seed(&rng, 1);
    assert_int_equal(sampler_argmax(LOGITS, V), 1);
    sampling_params greedy = {.temperature = 0, .top_p = 1};
    sampling_params k1 = {.temperature = 1, .top_k = 1, .top_p = 1};
    sampling_params p_tiny = {.temperature = 1, .top_p = 1e-6f};
    sampling_params min_p1 = {.temperature = 1, .top_p = 1, .min_p = 1};
    for (uint64_t i = 0; i < 100; i++) {
        assert_int_equal(sample(&greedy, &rng, i), 1);
        assert_int_equal(sample(&k1, &rng, i), 1);
        assert_int_equal(sample(&p_tiny, &rng, i), 1);
        assert_int_equal(sample(&min_p1, &rng, i), 1);
    }
}

static void test_seed_repeats(void **state) {
    (void)state;
    sampling_params sp = {.temperature = 1.3f, .top_p = 1};
    int a[64], b[64], c[64];
    sampler_rng r1, r2, r3;
    sampler_rng_seed(&r1, 99);
    sampler_rng_seed(&r2, 99);
    sampler_rng_seed(&r3, 100);
    for (int i = 0; i < 64; i++) a[i] = sample(&sp, &r1, (uint64_t)i);
    for (int i = 0; i < 64; i++) b[i] = sample(&sp, &r2, (uint64_t)i);
    for (int i = 0; i < 64; i++) c[i] = sample(&sp, &r3, (uint64_t)i);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);    /* another seed, other draws */
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
    /* a tie at the threshold keeps both tokens (kernels/sample_rows.h) */
    const float ties[4] = {1, 3, 3, 0};
    sampling_params k1 = {.temperature = 1, .top_k = 1, .top_p = 1};
    sampler_rng rng;
    sampler_rng_seed(&rng, 5);
    int seen[4] = {0};
    for (uint64_t i = 0; i < 200; i++) seen[sample_after(ties, 4, &k1, NULL, &rng, i)]++;
    assert_true(seen[1] > 0 && seen[2] > 0 && seen[0] + seen[3] == 0);
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

/* Greedy after the processors: LOGITS' argmax is 1 (2.0), then 4 (1.9). */
static int greedy_after(const logits_params *lp, const int32_t *prompt, int n_prompt,
                        const int32_t *output, int n_output) {
    static const int32_t eos[1] = {1};
    sampling_params greedy = {.temperature = 0, .top_p = 1};
    history h = {.lp = lp, .prompt = prompt, .n_prompt = n_prompt, .output = output,
                 .n_output = n_output, .eos = eos, .n_eos = 1};
    sampler_rng rng;
    sampler_rng_seed(&rng, 3);
    return sample_after(LOGITS, V, &greedy, &h, &rng, (uint64_t)n_output);
}

static void test_processors(void **state) {
    (void)state;
    const int32_t none[1] = {0}, one[2] = {1, 1}, four[2] = {4, 4};
    const logit_bias_entry bias[2] = {{5, 4.0f}, {5, 1.5f}}; /* summed: -3 + 5.5 = 2.5 */
    logits_params lp = {.bias = bias, .n_bias = 2};
    assert_int_equal(greedy_after(&lp, none, 1, none, 0), 5);
    lp = (logits_params){.min_tokens = 2}; /* EOS (1) masked before 2 generated tokens */
    assert_int_equal(greedy_after(&lp, none, 1, one, 1), 4);
    assert_int_equal(greedy_after(&lp, none, 1, one, 2), 1);
    lp = (logits_params){.repetition_penalty = 2.0f}; /* 2.0 / 2 below 1.9, prompt or output */
    assert_int_equal(greedy_after(&lp, one, 1, none, 0), 4);
    assert_int_equal(greedy_after(&lp, none, 1, one, 1), 4);
    assert_int_equal(greedy_after(&lp, none, 1, four, 1), 1);
    lp = (logits_params){.presence_penalty = 0.5f}; /* output tokens only */
    assert_int_equal(greedy_after(&lp, one, 1, none, 0), 1);
    assert_int_equal(greedy_after(&lp, none, 1, one, 1), 4);
    lp = (logits_params){.frequency_penalty = 0.06f}; /* 2.0 - 0.06 n: below 1.9 at n = 2 */
    assert_int_equal(greedy_after(&lp, none, 1, one, 1), 1);
    assert_int_equal(greedy_after(&lp, none, 1, one, 2), 4);
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
        cmocka_unit_test(test_top_p_distribution), cmocka_unit_test(test_processors),
        cmocka_unit_test(test_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
