/* What the engine core needs of a backend: run a step plan on the model (every rank, every
 * device) and return the logits rows it asks for, or sample them where they are. The CPU,
 * CUDA and tensor-parallel backends (engine/runtime) and the unit tests' mock model implement
 * it; the engine core knows no device. */
#ifndef FOLIO_ENGINE_BACKEND_H
#define FOLIO_ENGINE_BACKEND_H

#include <stdint.h>

#include "sample_rows.h"
#include "step_plan.h"

typedef struct {
    void *self;
    /* Copies plan->copy_src[i] -> copy_dst[i] blocks, then runs the forward.
     * logits: [plan->n_logits][vocab]. 0, or -1 with a message. */
    int (*step)(void *self, const step_plan *plan, float *logits);
    /* Optional (NULL: the host samples every step): step, then sample on the device
     * (sample_rows_cuda), copying back only ids [plan->n_logits] and, when logprobs is not
     * NULL, the chosen tokens' log-probabilities [n_logits]. params: [n_logits] per logits
     * row; entries: [n_entries] (kernels/sample_rows.h). The engine uses it on steps where no
     * sequence wants top-N logprobs alternatives or forks into n samples; on the others it
     * calls step and samples on the host with the same algorithm (sample_rows_cpu), so a
     * sequence's tokens do not depend on which path ran. 0, or -1 with a message. */
    int (*step_sample)(void *self, const step_plan *plan, const sample_row_params *params,
                       const sample_entry *entries, int n_entries, int32_t *ids,
                       float *logprobs);
} engine_backend;

#endif
