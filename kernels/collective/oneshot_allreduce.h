/* The one-shot all-reduce over peer memory, fused with what follows every all-reduce of the
 * forward (kernels/oneshot_allreduce.cu); CUDA builds only (FOLIO_HAVE_CUDA).
 *
 * Every rank of one host keeps its partial sums in device memory the others have mapped
 * (comm/peer_memory.h). One kernel per all-reduce: its blocks meet the same blocks of the
 * other ranks at a flag barrier, then every rank reads all ranks' rows over NVLink, sums them
 * in rank order (so every rank gets the same bits), adds the row-parallel bias, adds the sum
 * into the residual stream and writes the next RMSNorm's output:
 *     s = sum_k in_k[row]; s += bias; residual[row] += s; out[row] = rmsnorm(residual[row]) * w
 * rounded to the storage type at the same points as NCCL + add_bias_rows_cuda +
 * add_rmsnorm_cuda (twin: reduce_add_rmsnorm_cpu). For small messages (decode steps) this is
 * one kernel and one NVLink round trip where NCCL takes three kernels and several.
 *
 * Reuse rule (what makes one barrier per call enough): a rank may overwrite its in-buffer only
 * after it has run a later one-shot or NCCL collective than the one that read it. The forward
 * keeps three buffers (embedding, attention, MLP) in rotation, which satisfies it. */
#ifndef FOLIO_ONESHOT_ALLREDUCE_H
#define FOLIO_ONESHOT_ALLREDUCE_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { ONESHOT_MAX_RANKS = 8, ONESHOT_MAX_BLOCKS = 64 };

/* The barrier state of one rank, in its peer-visible memory, zeroed before first use:
 * flag[b][r] is the last barrier epoch rank r's block b announced to this rank; epoch[b]
 * counts this rank's barriers of block b (only this rank touches it). */
typedef struct {
    uint32_t flag[ONESHOT_MAX_BLOCKS][ONESHOT_MAX_RANKS];
    uint32_t epoch[ONESHOT_MAX_BLOCKS];
} oneshot_signal;

/* One call's view of the ranks, passed to the kernel by value (its addresses are captured
 * in CUDA graphs). */
typedef struct {
    const void *in[ONESHOT_MAX_RANKS];          /* rank k's partial sums [n][dim], mapped here */
    oneshot_signal *signal[ONESHOT_MAX_RANKS];  /* rank k's barrier state, mapped here */
    int world, rank;
    unsigned long long timeout_ns;  /* a barrier waiting longer traps (a peer died or hangs) */
} oneshot_peers;

/* The view of one sum buffer: every rank's region starts with its oneshot_signal (the layout
 * all callers share); the buffer lies in_offset bytes into each region. bases[k]: rank k's
 * region as mapped here (comm/peer_memory.h). */
void oneshot_peers_init(oneshot_peers *p, void *const *bases, int world, int rank,
                        size_t in_offset, unsigned long long timeout_ns);

/* residual[t] += sum_k in_k[t] (+ bias); out[t] = rmsnorm(residual[t]) * weight, for t < n.
 * residual, out: [n][dim] this rank's; bias: [dim] or NULL; weight: [dim]. Every rank of
 * p->world calls it with the same n, dim and dtype, in the same order as its other one-shot
 * calls. dim * element size must be a multiple of 16 and every pointer 16-byte aligned. */
void oneshot_allreduce_add_rmsnorm_cuda(const oneshot_peers *p, void *residual, void *out,
                                        const void *bias, const void *weight, int n, int dim,
                                        float eps, folio_dtype dtype, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
