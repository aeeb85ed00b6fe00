/* A mock model for engine tests: a backend whose logits are a deterministic function of the
 * whole token history of a sequence, read back through the step plan's block tables from a
 * KV pool of (token, position) pairs. A wrong block table, a missing copy-on-write, a stale
 * prefix-cache hit or a slot written twice changes the history it reads and so the output;
 * a slot read before it was written is reported as an error. The greedy output of a request
 * alone is then computable without the engine (mock_reference_greedy). */
#ifndef FOLIO_MOCK_MODEL_H
#define FOLIO_MOCK_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "engine_loop.h"

typedef struct {
    int vocab, num_blocks, block_size;
    int32_t *slot_tok;           /* [num_blocks * block_size], -1 = never written */
    int32_t *slot_pos;
    int64_t steps, tokens;
    char error[256];
} mock_model;

void mock_model_init(mock_model *m, int vocab, int num_blocks, int block_size);
void mock_model_free(mock_model *m);
engine_backend mock_backend(mock_model *m);

/* The same model behind a backend that also samples "on the device" (step_sample), with
 * sample_rows_cpu, the CPU twin of the GPU sampler: it drives the engine's device-sampling
 * path, as the CUDA backend does, and must give what the host path gives. */
engine_backend mock_backend_sampling(mock_model *m);

/* The logits row the mock gives after the history ids[0..n). */
void mock_logits(const int32_t *ids, int n, int vocab, float *row);

/* Greedy output of a request alone: stops at an EOS id (unless ignore_eos), a stop id,
 * max_tokens or max_model_len. Returns the count written to out. */
int mock_reference_greedy(const int32_t *prompt, int n_prompt, int max_tokens, bool ignore_eos,
                          const int32_t *eos, int n_eos, const int32_t *stop_ids, int n_stop,
                          int max_model_len, int vocab, int32_t *out);

#endif
