/* The engine's side of token sampling: the request's parameters (sampling and the logits
 * processors: logit bias, min_tokens, repetition / presence / frequency penalties) and their
 * validation, the processors as entries and the row parameters of the one sampler
 * (sample_rows_cuda on the GPU, its bit-identical host twin sample_rows_cpu:
 * kernels/sampling/sample_rows.h), the per-sequence counter-based RNG, and logprobs with top-N
 * alternatives. Each sequence owns its RNG key, so a seeded request samples the same tokens
 * whatever else is in the batch, on any backend. */
#ifndef FOLIO_SAMPLER_H
#define FOLIO_SAMPLER_H

#include <stdint.h>

#include "sample_rows.h"

typedef struct {
    float temperature;           /* 0 = greedy */
    int top_k;                   /* 0 or <0 = off */
    float top_p;                 /* 1 = off */
    float min_p;                 /* 0 = off: drop tokens below min_p * the top probability */
} sampling_params;

typedef struct {
    int32_t token;
    float bias;
} logit_bias_entry;

/* What runs on the raw logits before sampling, in this order: logit bias, min_tokens (EOS
 * ids masked while fewer than min_tokens were generated), repetition penalty (HF: logits of
 * tokens in the prompt or output divided by it when positive, multiplied when negative),
 * presence and frequency penalties (OpenAI: over the output tokens). Zero-initialised = off. */
typedef struct {
    float repetition_penalty;    /* 1 or 0 = off */
    float presence_penalty;      /* 0 = off */
    float frequency_penalty;     /* 0 = off */
    int min_tokens;              /* 0 = off */
    const logit_bias_entry *bias;   /* [n_bias], owned by the request */
    int n_bias;
} logits_params;

/* Counter-based: draw i is a hash of (key, i) (sr_uniform, kernels/sample_rows.h), so the
 * sampler makes the same draws from the key and a token index alone: a token's row
 * parameters carry the key and its index in the output (sample_row_params_of). */
typedef struct {
    uint64_t key;
    uint64_t counter;            /* the next draw's index */
} sampler_rng;

void sampler_rng_seed(sampler_rng *r, uint64_t seed);
double sampler_rng_uniform(sampler_rng *r);   /* [0, 1); advances counter */

/* Checks ranges (temperature >= 0, top_p in (0, 1], top_k >= 0). -1 with a message naming
 * the parameter and value. */
int sampling_params_validate(const sampling_params *p);

/* Checks ranges (penalties in [-2, 2], repetition_penalty > 0 or 0 = off, min_tokens >= 0,
 * bias ids inside vocab). -1 with a message naming the parameter. */
int logits_params_validate(const logits_params *p, int vocab);

/* Log-probability of token `chosen` under softmax(logits), and the top_n most likely tokens
 * (descending, ties: lower id first) in top_ids / top_lps (each [top_n]). */
float sampler_logprobs(const float *logits, int n, int chosen, int top_n, int32_t *top_ids,
                       float *top_lps);

/* The processors of lp as one sample_entry per distinct token (for sample_rows_cpu/_cuda):
 * bias summed per token, EOS masked while n_output < min_tokens, history counts when a
 * penalty is on. prompt/output: the sequence's tokens before generation and its generated
 * tokens. out: room for sampler_entries_bound() entries; map: [vocab] ints, all zero
 * on entry and on return. Returns the number of entries. */
int sampler_entries_build(sample_entry *out, const logits_params *lp, const int32_t *prompt,
                          int n_prompt, const int32_t *output, int n_output,
                          const int32_t *eos_ids, int n_eos, int32_t *map);
int sampler_entries_bound(const logits_params *lp, int n_prompt, int n_output, int n_eos);

/* The row parameters of sample_rows_cpu / sample_rows_cuda for one token: sampling s, the
 * processors lp (NULL: none), the sequence's RNG key, the token's index in the output
 * (counter); no entries yet (entry_start and n_entries 0). */
sample_row_params sample_row_params_of(const sampling_params *s, const logits_params *lp,
                                       const sampler_rng *rng, uint64_t counter);

/* Index of the largest logit (lowest index on ties). */
int sampler_argmax(const float *logits, int n);

#endif
