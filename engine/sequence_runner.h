/* Runs one sequence through the CPU forward: the prompt in one prefill step, then one decode
 * step per new token, over a paged KV cache with a block table of its own. It is what
 * `folio generate` and `folio score` use until the scheduler (batches, #4) takes over. */
#ifndef FOLIO_SEQUENCE_RUNNER_H
#define FOLIO_SEQUENCE_RUNNER_H

#include <stdbool.h>
#include <stdint.h>

#include "comm.h"
#include "model.h"
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

/* Fails (-1, message) when prompt + max_tokens exceeds the model's context. */
int run_sequence(const model *m, comm_ctx *comm, const int32_t *prompt, int n_prompt,
                 const run_options *o, token_callback cb, void *user, run_result *out);

/* Logits of every position of ids: logits [n][vocab]. */
int score_sequence(const model *m, comm_ctx *comm, const int32_t *ids, int n, int block_size,
                   float *logits);

#endif
