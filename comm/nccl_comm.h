/* The data plane on GPUs (CUDA builds only, FOLIO_HAVE_CUDA): one GPU per local rank and an
 * NCCL communicator over all ranks, created from a unique id that rank 0 makes and broadcasts
 * over MPI. The collectives the forward needs, enqueued on the compute stream:
 *   all-reduce (sum, in place) after the attention block and after the MLP block;
 *   all-gather of vocab-parallel logits.
 * The CPU backend uses the same two collectives over MPI (comm.h).
 *
 * Never hang: nccl_wait() waits for the stream with a deadline while polling
 * ncclCommGetAsyncError; on an error or the deadline it aborts the communicator (so no rank
 * stays inside NCCL) and returns -1 with a message naming the rank, host and cause. The step
 * watchdog (step_watchdog.h) also aborts the communicator before it ends the process. */
#ifndef FOLIO_NCCL_COMM_H
#define FOLIO_NCCL_COMM_H

#include <stddef.h>

/* "NCCL 2.x.y", the library linked in, or that the build has none (any build). */
void nccl_describe(char *out, size_t n);

#ifdef FOLIO_HAVE_CUDA

#include <stddef.h>

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "comm.h"

/* Checks an NCCL call (error.h's policy: a runtime error); on failure records the call, file:line, ncclGetErrorString and
 * ncclGetLastError, and returns -1 from the enclosing function. */
#define NCCL_CHECK(call)                                                                      \
    do {                                                                                      \
        ncclResult_t nccl_rc_ = (call);                                                       \
        if (nccl_rc_ != ncclSuccess && nccl_rc_ != ncclInProgress)                            \
            return nccl_fail(nccl_rc_, #call, __FILE__, __LINE__);                            \
    } while (0)

int nccl_fail(ncclResult_t rc, const char *call, const char *file, int line);

typedef struct {
    ncclComm_t comm;
    cudaStream_t stream;         /* the compute stream (not owned) */
    int rank, world, device;
    double timeout_s;            /* nccl_wait's deadline */
    const char *host;
} nccl_ctx;

/* One GPU per rank (a collective): local rank k selects device k when the host's ranks see
 * at least local_size GPUs, device 0 when each rank sees exactly one (the launcher isolated
 * them); then checks by PCI bus id that no two ranks of a host share a GPU. Errors name the
 * host, the numbers of ranks and GPUs, and CUDA_VISIBLE_DEVICES. *device: the one selected. */
int comm_select_gpu(const comm_ctx *comm, int *device);

/* Creates the communicator (a collective over comm: every rank calls it after
 * comm_select_gpu). timeout_s: deadline of nccl_wait (<= 0: STEP_TIMEOUT_DEFAULT_S). */
int nccl_init(nccl_ctx *n, comm_ctx *comm, cudaStream_t stream, double timeout_s);
void nccl_free(nccl_ctx *n);

/* In-place sum over ranks of count elements of buf (device memory), on n->stream. */
int nccl_allreduce_sum(nccl_ctx *n, void *buf, size_t count, ncclDataType_t type);

/* recv[world][count] <- every rank's send[count] (device memory; send may be
 * recv + rank * count, in place), on n->stream. */
int nccl_allgather(nccl_ctx *n, const void *send, void *recv, size_t count,
                   ncclDataType_t type);

/* Waits for n->stream: 0 when done; on an NCCL async error or after timeout_s, aborts the
 * communicator and returns -1 with a message. */
int nccl_wait(nccl_ctx *n);

/* Aborts the communicator (idempotent); for watchdogs and failure paths. */
void nccl_abort(nccl_ctx *n);

#endif /* FOLIO_HAVE_CUDA */
#endif
