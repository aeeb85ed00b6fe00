/* Token sampling from one row of logits: greedy, temperature, top-k, top-p. Each sequence owns
 * its RNG state, so a seeded request samples the same tokens whatever else is in the batch. */
#ifndef FOLIO_SAMPLER_H
#define FOLIO_SAMPLER_H

#include <stdint.h>

typedef struct {
    float temperature;           /* 0 = greedy */
    int top_k;                   /* 0 or <0 = off */
    float top_p;                 /* 1 = off */
} sampling_params;

typedef struct {
    uint64_t s[4];               /* xoshiro256** state */
} sampler_rng;

void sampler_rng_seed(sampler_rng *r, uint64_t seed);
double sampler_rng_uniform(sampler_rng *r);   /* [0, 1) */

/* Checks ranges (temperature >= 0, top_p in (0, 1], top_k >= 0). -1 with a message naming
 * the parameter and value. */
int sampling_params_validate(const sampling_params *p);

/* Index of the largest logit (lowest index on ties). */
int sampler_argmax(const float *logits, int n);

/* Samples one token. scratch: [n] floats and [n] ints the caller provides (no allocation in
 * the hot path). */
int sampler_sample(const float *logits, int n, const sampling_params *p, sampler_rng *rng,
                   float *scratch_f, int *scratch_i);

#endif
