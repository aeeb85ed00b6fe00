/* The engine's side of sampling: parameter checks, the processors (bias, min_tokens,
 * penalties) as entries and the row parameters of sample_rows_cpu / sample_rows_cuda, a
 * per-sequence counter-based RNG, and logprobs. */
#include <math.h>
#include <stdbool.h>

#include "error.h"
#include "sampler.h"

void sampler_rng_seed(sampler_rng *r, uint64_t seed) {
    r->key = folio_splitmix64(seed);
    r->counter = 0;
}

double sampler_rng_uniform(sampler_rng *r) { return sr_uniform(r->key, r->counter++); }

int sampling_params_validate(const sampling_params *p) {
    if (!(p->temperature >= 0.0f) || !isfinite(p->temperature))
        return folio_fail("temperature: %g is out of range (must be >= 0)", p->temperature);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return folio_fail("top_p: %g is out of range (0, 1]", p->top_p);
    if (p->top_k < 0) return folio_fail("top_k: %d is out of range (must be >= 0)", p->top_k);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return folio_fail("min_p: %g is out of range [0, 1]", p->min_p);
    return 0;
}

int logits_params_validate(const logits_params *p, int vocab) {
    if (!(p->repetition_penalty >= 0.0f) || !isfinite(p->repetition_penalty))
        return folio_fail("repetition_penalty: %g is out of range (must be > 0)",
                          p->repetition_penalty);
    if (!(p->presence_penalty >= -2.0f && p->presence_penalty <= 2.0f))
        return folio_fail("presence_penalty: %g is out of range [-2, 2]", p->presence_penalty);
    if (!(p->frequency_penalty >= -2.0f && p->frequency_penalty <= 2.0f))
        return folio_fail("frequency_penalty: %g is out of range [-2, 2]", p->frequency_penalty);
    if (p->min_tokens < 0)
        return folio_fail("min_tokens: %d is out of range (must be >= 0)", p->min_tokens);
    for (int i = 0; i < p->n_bias; i++)
        if (p->bias[i].token < 0 || p->bias[i].token >= vocab || !isfinite(p->bias[i].bias))
            return folio_fail("logit_bias: token %d (bias %g) is outside the vocabulary of %d "
                              "or not finite", p->bias[i].token, p->bias[i].bias, vocab);
    return 0;
}

static bool penalties_on(const logits_params *lp) {
    return (lp->repetition_penalty > 0.0f && lp->repetition_penalty != 1.0f) ||
           lp->presence_penalty != 0.0f || lp->frequency_penalty != 0.0f;
}

int sampler_entries_bound(const logits_params *lp, int n_prompt, int n_output, int n_eos) {
    return lp->n_bias + (n_output < lp->min_tokens ? n_eos : 0) +
           (penalties_on(lp) ? n_prompt + n_output : 0);
}

/* the entry of token t (map[t] = its index + 1) */
static sample_entry *entry_of(sample_entry *out, int *n, int32_t *map, int32_t t) {
    if (!map[t]) {
        out[*n] = (sample_entry){.token = t};
        map[t] = ++*n;
    }
    return &out[map[t] - 1];
}

int sampler_entries_build(sample_entry *out, const logits_params *lp, const int32_t *prompt,
                          int n_prompt, const int32_t *output, int n_output,
                          const int32_t *eos_ids, int n_eos, int32_t *map) {
    int n = 0;
    for (int i = 0; i < lp->n_bias; i++) entry_of(out, &n, map, lp->bias[i].token)->bias += lp->bias[i].bias;
    if (n_output < lp->min_tokens)
        for (int i = 0; i < n_eos; i++)
            if (eos_ids[i] >= 0) entry_of(out, &n, map, eos_ids[i])->flags |= SR_EOS_MASK;
    if (penalties_on(lp)) {
        for (int i = 0; i < n_output; i++) {
            sample_entry *e = entry_of(out, &n, map, output[i]);
            e->count++;
            e->flags |= SR_HISTORY;
        }
        if (lp->repetition_penalty > 0.0f && lp->repetition_penalty != 1.0f)
            for (int i = 0; i < n_prompt; i++) entry_of(out, &n, map, prompt[i])->flags |= SR_HISTORY;
    }
    for (int i = 0; i < n; i++) map[out[i].token] = 0;
    return n;
}

float sampler_logprobs(const float *logits, int n, int chosen, int top_n, int32_t *top_ids,
                       float *top_lps) {
    float max = logits[sampler_argmax(logits, n)];
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += exp((double)logits[i] - max);
    float lse = max + (float)log(sum);
    int m = 0;
    for (int i = 0; i < n && top_n > 0; i++) {
        float v = logits[i];
        if (m == top_n && !(v > logits[top_ids[m - 1]])) continue;
        int j = m < top_n ? m++ : m - 1;
        while (j > 0 && v > logits[top_ids[j - 1]]) {
            top_ids[j] = top_ids[j - 1];
            j--;
        }
        top_ids[j] = i;
    }
    for (int i = 0; i < m; i++) top_lps[i] = logits[top_ids[i]] - lse;
    return logits[chosen] - lse;
}

/* Two passes: the maximum by 8 independent lanes (the compiler turns them into vector max
 * instructions; one running best-index loop is 5x slower on a 32k vocabulary), then the first
 * index holding it. */
int sampler_argmax(const float *logits, int n) {
    float lane[8];
    int i = 0;
    float best = logits[0];
    if (n >= 16) {
        for (int l = 0; l < 8; l++) lane[l] = logits[l];
        for (i = 8; i + 8 <= n; i += 8)
            for (int l = 0; l < 8; l++) lane[l] = logits[i + l] > lane[l] ? logits[i + l] : lane[l];
        for (int l = 0; l < 8; l++) best = lane[l] > best ? lane[l] : best;
    }
    for (; i < n; i++) best = logits[i] > best ? logits[i] : best;
    for (i = 0; i < n; i++)
        if (logits[i] == best) return i;
    return 0; /* only NaNs */
}

sample_row_params sample_row_params_of(const sampling_params *s, const logits_params *lp,
                                       const sampler_rng *rng, uint64_t counter) {
    sample_row_params p = {.temperature = s->temperature, .top_k = s->top_k, .top_p = s->top_p,
                           .min_p = s->min_p, .seed = rng->key, .counter = counter};
    if (lp) {
        p.repetition_penalty = lp->repetition_penalty;
        p.presence_penalty = lp->presence_penalty;
        p.frequency_penalty = lp->frequency_penalty;
    }
    return p;
}
