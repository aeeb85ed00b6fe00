/* Device sampling after a step (forward_cuda_sample): the step's logits rows stay on the GPU,
 * sample_rows_cuda picks the tokens, and only ids (and the chosen tokens' log-probabilities)
 * come back. Its buffers are allocated at first use; the entries' buffer grows as needed. */
#ifdef FOLIO_HAVE_CUDA

#include <string.h>

#include "cuda_check.h"
#include "error.h"
#include "forward_cuda_internal.h"
#include "kernels_cuda.h"

/* The per-row parameters, log-probabilities and n_entries entries fit on the device. */
static void reserve_sample_buffers(forward_cuda *f, int n_entries) {
    if (!f->d_sparams) {
        f->d_sparams = fc_dev_alloc(sizeof *f->d_sparams * f->o.max_logits);
        f->d_lps = fc_dev_alloc(sizeof *f->d_lps * f->o.max_logits);
    }
    if (n_entries > f->cap_entries) {
        if (f->d_entries) CUDA_CHECK(cudaFree(f->d_entries));
        f->cap_entries = 2 * n_entries;
        f->d_entries = fc_dev_alloc(sizeof *f->d_entries * f->cap_entries);
    }
}

int forward_cuda_sample(forward_cuda *f, int n_rows, const sample_row_params *params,
                        const sample_entry *entries, int n_entries, int32_t *ids,
                        float *logprobs) {
    if (n_rows > f->o.max_logits)
        return folio_fail("forward (cuda): device sampling of %d rows: at most %d", n_rows,
                          f->o.max_logits);
    if (n_rows == 0) return 0;
    reserve_sample_buffers(f, n_entries);
    CUDA_CHECK(cudaMemcpyAsync(f->d_sparams, params, sizeof *params * n_rows,
                               cudaMemcpyHostToDevice, f->stream));
    if (n_entries)
        CUDA_CHECK(cudaMemcpyAsync(f->d_entries, entries, sizeof *entries * n_entries,
                                   cudaMemcpyHostToDevice, f->stream));
    float *logits = f->logits_full ? f->logits_full : f->logits; /* [n][vocab], modified */
    sample_rows_cuda(f->ids, logprobs ? f->d_lps : NULL, logits, n_rows, f->cfg->vocab,
                     f->d_sparams, f->d_entries, f->stream);
    CUDA_CHECK(cudaMemcpyAsync(f->h_ids, f->ids, sizeof(int32_t) * n_rows,
                               cudaMemcpyDeviceToHost, f->stream));
    if (logprobs)
        CUDA_CHECK(cudaMemcpyAsync(logprobs, f->d_lps, sizeof(float) * n_rows,
                                   cudaMemcpyDeviceToHost, f->stream));
    CUDA_CHECK(cudaStreamSynchronize(f->stream));
    memcpy(ids, f->h_ids, sizeof(int32_t) * n_rows);
    return 0;
}

#else
typedef int folio_forward_cuda_sample_unused; /* built without CUDA */
#endif
