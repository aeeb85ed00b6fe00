/* Token sampling: greedy, temperature, top-k, top-p, with a per-sequence xoshiro256** RNG. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include "error.h"
#include "sampler.h"

static uint64_t splitmix64_next(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void sampler_rng_seed(sampler_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64_next(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(sampler_rng *r) {
    uint64_t *s = r->s, result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double sampler_rng_uniform(sampler_rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

int sampling_params_validate(const sampling_params *p) {
    if (!(p->temperature >= 0.0f) || !isfinite(p->temperature))
        return folio_fail("temperature: %g is out of range (must be >= 0)", p->temperature);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return folio_fail("top_p: %g is out of range (0, 1]", p->top_p);
    if (p->top_k < 0) return folio_fail("top_k: %d is out of range (must be >= 0)", p->top_k);
    return 0;
}

int sampler_argmax(const float *logits, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

/* scratch pairs, sorted by probability, descending */
static float *g_sort_p;
static int by_prob_desc(const void *a, const void *b) {
    float pa = g_sort_p[*(const int *)a], pb = g_sort_p[*(const int *)b];
    return pa < pb ? 1 : (pa > pb ? -1 : (*(const int *)a - *(const int *)b));
}

/* Sorts idx[0..n) by p[idx] descending (ties: lower index first). Not re-entrant. */
static void sort_by_prob(int *idx, int n, float *p) {
    g_sort_p = p;
    qsort(idx, n, sizeof *idx, by_prob_desc);
}

int sampler_sample(const float *logits, int n, const sampling_params *p, sampler_rng *rng,
                   float *prob, int *idx) {
    if (p->temperature == 0.0f) return sampler_argmax(logits, n);
    float max = logits[sampler_argmax(logits, n)];
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        prob[i] = expf((logits[i] - max) / p->temperature);
        sum += prob[i];
    }
    int m = 0;
    bool filter = (p->top_k > 0 && p->top_k < n) || p->top_p < 1.0f;
    if (!filter) {
        double r = sampler_rng_uniform(rng) * sum, acc = 0.0;
        for (int i = 0; i < n; i++)
            if ((acc += prob[i]) > r) return i;
        return sampler_argmax(logits, n);
    }
    /* Candidates that could matter: with top-p alone, a token below (1 - top_p) / (n - 1) of
     * the mass can never be inside the nucleus, so it is dropped before sorting. */
    float floor_p = (p->top_p < 1.0f && p->top_k <= 0) ? (float)((1.0 - p->top_p) / (n - 1) * sum)
                                                       : 0.0f;
    for (int i = 0; i < n; i++)
        if (prob[i] >= floor_p) idx[m++] = i;
    sort_by_prob(idx, m, prob);
    if (p->top_k > 0 && p->top_k < m) m = p->top_k;
    double kept = 0.0;
    for (int i = 0; i < m; i++) kept += prob[idx[i]];
    if (p->top_p < 1.0f) {
        /* The nucleus is measured against the whole distribution (after top-k, if any); the
         * pruned candidates still count towards it. */
        double mass = floor_p > 0.0f ? sum : kept, acc = 0.0;
        int cut = m;
        for (int i = 0; i < m; i++) {
            acc += prob[idx[i]];
            if (acc >= p->top_p * mass) {
                cut = i + 1;
                break;
            }
        }
        m = cut;
        kept = acc;
    }
    double r = sampler_rng_uniform(rng) * kept, acc = 0.0;
    for (int i = 0; i < m; i++)
        if ((acc += prob[idx[i]]) > r) return idx[i];
    return idx[m - 1];
}
