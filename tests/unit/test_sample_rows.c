/* Semantics of sample_rows_cpu (kernels/sample_rows_cpu.c), the host twin of the GPU
 * sampler: its entries process a row exactly as the documented processors (logit bias,
 * min_tokens, HF repetition and OpenAI presence / frequency penalties) do; greedy is the
 * argmax; top-k 1, a tiny top-p and min-p 1 collapse to it; top-k 2 draws only the top two;
 * plain temperature-1 draws follow the softmax; draws depend on (seed, counter) only; the
 * engine's counter-based RNG is the same function. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sample_rows.h"
#include "sampler.h"

#define V 8
static const float LOGITS[V] = {0.5f, 2.0f, -1.0f, 1.5f, 0.0f, -3.0f, 1.0f, 0.25f};

static int sample(const float *row, int vocab, sample_row_params p) {
    float *w = malloc(sizeof *w * vocab);
    memcpy(w, row, sizeof *w * vocab);
    int32_t id;
    sample_rows_cpu(&id, NULL, w, 1, vocab, &p, NULL);
    free(w);
    return id;
}

static sample_row_params params(float t, int k, float top_p, float min_p) {
    return (sample_row_params){.temperature = t, .top_k = k, .top_p = top_p, .min_p = min_p,
                               .seed = 7};
}

static void test_collapse(void **state) {
    (void)state;
    for (uint64_t c = 0; c < 200; c++) {
        sample_row_params p[4] = {params(0, 0, 1, 0), params(1, 1, 1, 0), params(1, 0, 1e-6f, 0),
                                  params(1, 0, 1, 1)};
        for (int i = 0; i < 4; i++) {
            p[i].counter = c;
            assert_int_equal(sample(LOGITS, V, p[i]), 1);
        }
        sample_row_params k2 = params(2, 2, 1, 0);
        k2.counter = c;
        int id = sample(LOGITS, V, k2);
        assert_true(id == 1 || id == 3);
    }
    const float ties[4] = {1, 3, 3, 0};
    assert_int_equal(sample(ties, 4, params(0, 0, 1, 0)), 1);
}

static void test_softmax_frequencies(void **state) {
    (void)state;
    const int draws = 200000;
    double freq[V] = {0}, p[V], sum = 0;
    sample_row_params sp = params(1, 0, 1, 0);
    for (int i = 0; i < draws; i++) {
        sp.counter = (uint64_t)i;
        freq[sample(LOGITS, V, sp)] += 1.0 / draws;
    }
    for (int i = 0; i < V; i++) sum += (p[i] = exp(LOGITS[i]));
    for (int i = 0; i < V; i++) assert_true(fabs(freq[i] - p[i] / sum) < 0.005);
    /* top-p 0.7: the nucleus is {1, 3, 6} (0.39 + 0.24 < 0.7, + 0.14 at 6 reaches it) */
    sp.top_p = 0.7f;
    memset(freq, 0, sizeof freq);
    for (int i = 0; i < draws; i++) {
        sp.counter = (uint64_t)i;
        freq[sample(LOGITS, V, sp)] += 1.0 / draws;
    }
    for (int i = 0; i < V; i++)
        if (i != 1 && i != 3 && i != 6) assert_true(freq[i] == 0.0);
    assert_true(fabs(freq[6] - p[6] / (p[1] + p[3] + p[6])) < 0.005);
}

/* The processors written plainly, one stage at a time over the whole row: bias, EOS masked
 * while n_output < min_tokens, repetition penalty once per distinct token of prompt or
 * output, presence + frequency * count once per distinct output token. */
static void process_reference(float *l, int n, const logits_params *lp, const int32_t *prompt,
                              int n_prompt, const int32_t *output, int n_output,
                              const int32_t *eos, int n_eos) {
    int32_t *count = calloc((size_t)n, sizeof *count);
    unsigned char *seen = calloc((size_t)n, 1);
    for (int i = 0; i < lp->n_bias; i++) l[lp->bias[i].token] += lp->bias[i].bias;
    if (n_output < lp->min_tokens)
        for (int i = 0; i < n_eos; i++) l[eos[i]] = -INFINITY;
    const float rep = lp->repetition_penalty;
    for (int i = 0; i < n_prompt + n_output; i++) {
        const int32_t t = i < n_prompt ? prompt[i] : output[i - n_prompt];
        if (rep > 0.0f && rep != 1.0f && !seen[t]) l[t] = l[t] > 0.0f ? l[t] / rep : l[t] * rep;
        seen[t] = 1;
    }
    for (int i = 0; i < n_output; i++) count[output[i]]++;
    for (int t = 0; t < n; t++)
        if (count[t] > 0) l[t] -= lp->presence_penalty + lp->frequency_penalty * (float)count[t];
    free(seen);
    free(count);
}

static void test_entries_match_processors(void **state) {
    (void)state;
    enum { N = 5000 };
    static float a[N], b[N];
    static int32_t map[N], hist[300];
    srand(3);
    for (int i = 0; i < N; i++) a[i] = b[i] = (float)rand() / RAND_MAX * 20.0f - 10.0f;
    for (int i = 0; i < 300; i++) hist[i] = rand() % 400;
    const logit_bias_entry bias[3] = {{5, 2.5f}, {4000, -100.0f}, {17, 0.75f}};
    const int32_t eos[2] = {2, 4999};
    logits_params lp = {.repetition_penalty = 1.3f, .presence_penalty = 0.4f,
                        .frequency_penalty = 0.25f, .min_tokens = 250, .bias = bias, .n_bias = 3};
    sample_entry *ent = malloc(sizeof *ent * sampler_entries_bound(&lp, 100, 200, 2));
    int n = sampler_entries_build(ent, &lp, hist, 100, hist + 100, 200, eos, 2, map);
    for (int i = 0; i < N; i++) assert_int_equal(map[i], 0);
    process_reference(a, N, &lp, hist, 100, hist + 100, 200, eos, 2);
    sample_row_params p = {.temperature = 0, .repetition_penalty = lp.repetition_penalty,
                           .presence_penalty = lp.presence_penalty,
                           .frequency_penalty = lp.frequency_penalty, .n_entries = n};
    int32_t id;
    sample_rows_cpu(&id, NULL, b, 1, N, &p, ent);
    assert_memory_equal(a, b, sizeof a);
    assert_int_equal(id, sampler_argmax(a, N));
    free(ent);
}

static void test_rng_counter_based(void **state) {
    (void)state;
    sampler_rng r;
    sampler_rng_seed(&r, 99);
    double u0 = sampler_rng_uniform(&r), u1 = sampler_rng_uniform(&r);
    assert_true(u0 == sr_uniform(r.key, 0) && u1 == sr_uniform(r.key, 1));
    assert_true(u0 != u1 && u0 >= 0 && u0 < 1);
    r.counter = 0;
    assert_true(sampler_rng_uniform(&r) == u0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collapse), cmocka_unit_test(test_softmax_frequencies),
        cmocka_unit_test(test_entries_match_processors),
        cmocka_unit_test(test_rng_counter_based),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
