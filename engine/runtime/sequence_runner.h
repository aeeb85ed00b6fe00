/* Runs one sequence through a backend of its own: the prompt in one prefill step, then one
 * decode step per new token, over a KV pool sized to its context. `folio score` and the
 * tests' reference comparisons use it; batches go through the engine loop instead. */
#ifndef FOLIO_SEQUENCE_RUNNER_H
#define FOLIO_SEQUENCE_RUNNER_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "comm.h"
#include "sampler.h"

typedef struct {
    int max_tokens;
    sampling_params sampling;
    uint64_t seed;
    bool ignore_eos;
    int block_size;              /* KV block size in tokens (default 16) */
} run_options;

typedef struct {
    int32_t *ids;                /* [n] generated ids (malloc'd; caller frees) */
    int n;
    bool hit_eos;                /* stopped on an EOS id (which is included in ids) */
    double prefill_s, decode_s;
} run_result;

/* Called on rank 0 for every generated id as soon as it is sampled. */
typedef void (*token_callback)(int32_t id, void *user);

/* Samples with the engine's one sampler (sample_rows), on the device where the backend can.
 * Fails (-1, message) when prompt + max_tokens exceeds the model's context. */
int run_sequence(const device_model *dm, comm_ctx *comm, const int32_t *prompt, int n_prompt,
                 const run_options *o, token_callback cb, void *user, run_result *out);

/* Logits of every position of ids: logits [n][vocab]. */
int score_sequence(const device_model *dm, comm_ctx *comm, const int32_t *ids, int n,
                   int block_size, float *logits);

/* -log p(id) under one row of logits [vocab] (log-softmax, in double). */
double token_nll(const float *logits, int vocab, int32_t id);

/* The perplexity of a long text: ids [n] in windows of at most `window` tokens, the next
 * starting `stride` tokens later (stride <= window), each window a sequence of its own from
 * position 0. A window predicts only the tokens past the previous window's end (the first: all
 * but its first token), so each of ids[1..n) is predicted once, with at least window - stride
 * tokens of context where the text allows (Hugging Face's sliding-window perplexity).
 * Windows run in steps of at most 256 tokens, so the logits held are 256 rows.
 * *nll: the summed negative log-likelihood of the n - 1 predicted tokens. progress: a bar on
 * stderr (rank 0). */
int score_windows(const device_model *dm, comm_ctx *comm, const int32_t *ids, int n, int window,
                  int stride, int block_size, bool progress, double *nll);

#endif
