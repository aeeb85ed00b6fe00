/* Sampling of many logits rows at once, on the GPU (sample_rows_cuda, kernels/sampling.cu)
 * or on the host (its twin sample_rows_cpu, kernels/sample_rows_cpu.c), with results that
 * are bit-identical between the two: every decision is taken on integers or on floats made by
 * the inline functions below, which both sides share (no fused multiply-adds: sampling.cu is
 * built with --fmad=false, sample_rows_cpu.c with -ffp-contract=off; exp is a polynomial of
 * our own made of correctly rounded operations, not the libraries' expf).
 *
 * The engine's one sampler: every backend (the CPU, one GPU, TP ranks) draws its tokens with
 * these two, so a seeded request gives the same tokens on all of them. Per row, in this order:
 *   1. entries: logit bias, min_tokens EOS masking, repetition / presence / frequency
 *      penalties, one entry per distinct token (sampler_entries_build makes them);
 *   2. temperature 0: the argmax (lowest id on ties);
 *   3. otherwise e_i = exp((l_i - max) / T) (the probability relative to the top token) and
 *      w_i = floor(e_i * 2^40), an integer weight; min-p keeps e_i >= min_p; top-k keeps keys
 *      (the bits of e_i) >= the k-th largest key; top-p keeps the largest keys whose weight
 *      reaches ceil(top_p * kept weight). Ties at a top-k / top-p threshold are all kept
 *      (top-k may keep more than k tokens, top-p more than the fewest reaching the target).
 *   4. the draw: u = uniform(seed, counter) (counter-based, so it depends on the sequence's
 *      seed and token index only, never on the batch), r = floor(u * W) over the kept weight W,
 *      and the token where the running weight in id order first exceeds r. */
#ifndef FOLIO_SAMPLE_ROWS_H
#define FOLIO_SAMPLE_ROWS_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "hash.h"

#ifdef __CUDACC__
#define SR_FN static inline __host__ __device__
#else
#define SR_FN static inline
#endif

enum { SR_HISTORY = 1, SR_EOS_MASK = 2 };

typedef struct {
    int32_t token;
    int32_t count;               /* occurrences in the generated tokens */
    float bias;                  /* logit bias (entries of the same token summed) */
    uint32_t flags;              /* SR_HISTORY: in prompt or output; SR_EOS_MASK */
    float raw;                   /* written by sample_rows_*: the logit before the entry */
} sample_entry;

typedef struct {
    float temperature;           /* 0 = greedy */
    int32_t top_k;               /* <= 0 or >= vocab: off */
    float top_p;                 /* >= 1: off */
    float min_p;                 /* <= 0: off */
    float repetition_penalty;    /* 0 or 1: off */
    float presence_penalty, frequency_penalty;
    int32_t entry_start, n_entries; /* this row's entries */
    uint64_t seed;               /* the sequence's RNG key (sampler_rng.key) */
    uint64_t counter;            /* the token's index in the sequence's output */
} sample_row_params;

/* Uniform in [0, 1) from (key, counter): folio_mix64 (base/hash.h) is the one definition host
 * and device share. */
SR_FN double sr_uniform(uint64_t key, uint64_t counter) {
    uint64_t z = folio_mix64(key ^ folio_mix64(counter * FOLIO_GOLDEN64 + 0x632be59bd9b4e019ull));
    return (double)(z >> 11) * 0x1.0p-53;
}

SR_FN float sr_bits_float(uint32_t b) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(b);
#else
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
#endif
}

SR_FN uint32_t sr_float_bits(float f) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
#endif
}

/* exp(x) for x <= 0 (0 below -80 and for NaN): 2^n * poly(r), r = x - n ln2, a degree-7
 * Taylor polynomial by fmaf (relative error ~1e-7). */
SR_FN float sr_exp(float x) {
    if (!(x > -80.0f)) return 0.0f;
    if (x > 0.0f) x = 0.0f;
    const float n = rintf(x * 1.44269504f);
    float r = fmaf(n, -0.693145751953125f, x);
    r = fmaf(n, -1.42860677e-06f, r);
    float p = 1.98412698e-04f;             /* 1/7! */
    p = fmaf(p, r, 1.38888889e-03f);
    p = fmaf(p, r, 8.33333333e-03f);
    p = fmaf(p, r, 4.16666667e-02f);
    p = fmaf(p, r, 1.66666667e-01f);
    p = fmaf(p, r, 0.5f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    return p * sr_bits_float((uint32_t)((int)n + 127) << 23);
}

/* A logit after its entry: bias, EOS mask, repetition penalty (HF: divided when positive,
 * multiplied when negative), then presence + frequency * count (OpenAI). */
SR_FN float sr_apply_entry(float l, const sample_entry *e, const sample_row_params *p) {
    const float rep = p->repetition_penalty;
    l = l + e->bias;
    if (e->flags & SR_EOS_MASK) l = -INFINITY;
    if (rep > 0.0f && rep != 1.0f && (e->flags & SR_HISTORY)) l = l > 0.0f ? l / rep : l * rep;
    if (e->count > 0) l -= p->presence_penalty + p->frequency_penalty * (float)e->count;
    return l;
}

/* e_i of a logit, given the row's max and the temperature */
SR_FN float sr_rel_prob(float l, float max, float t) { return sr_exp((l - max) / t); }
SR_FN uint64_t sr_weight(float e) { return (uint64_t)(e * 1099511627776.0f); /* 2^40 */ }

/* The top-p target: ceil(top_p * W), in [1, W]. */
SR_FN uint64_t sr_top_p_target(float top_p, uint64_t w) {
    double t = ceil((double)top_p * (double)w);
    uint64_t r = t >= (double)w ? w : (uint64_t)t;
    return r ? r : 1;
}

/* The draw: floor(u * W), in [0, W). */
SR_FN uint64_t sr_draw(uint64_t seed, uint64_t counter, uint64_t w) {
    if (w == 0) return 0; /* nothing to draw (every logit -inf): the argmax is taken */
    uint64_t r = (uint64_t)(sr_uniform(seed, counter) * (double)w);
    return r >= w ? w - 1 : r;
}

#ifdef __cplusplus
extern "C" {
#endif

/* Host twin of sample_rows_cuda (same arguments, host pointers): ids [n], logprobs [n] or
 * NULL (the chosen token's log-probability under the raw row), logits [n][vocab] (entries
 * applied in place), params [n], entries (raw fields written). */
void sample_rows_cpu(int32_t *ids, float *logprobs, float *logits, int n, int vocab,
                     const sample_row_params *params, sample_entry *entries);

#ifdef __cplusplus
}
#endif

#endif
