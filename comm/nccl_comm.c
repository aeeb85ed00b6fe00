/* NCCL communicator, collectives and a waiting watchdog (CUDA builds only). */
#ifdef FOLIO_HAVE_CUDA

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cuda_check.h"
#include "error.h"
#include "nccl_comm.h"
#include "step_watchdog.h"

int nccl_fail(ncclResult_t rc, const char *call, const char *file, int line) {
    const char *last = ncclGetLastError(NULL);
    return folio_fail("NCCL call %s failed at %s:%d: %s%s%s", call, file, line,
                      ncclGetErrorString(rc), last && *last ? ": " : "", last ? last : "");
}

/* The device for this rank: local rank k drives GPU k when the host's ranks see all its GPUs;
 * a rank that sees exactly one GPU (the launcher gave each rank its own, e.g. Slurm's
 * --gpus-per-task=1) drives that one. */
static int pick_device(const comm_ctx *comm, int count, int *device) {
    if (count >= comm->local_size) {
        *device = comm->local_rank;
        return 0;
    }
    if (count == 1) {
        *device = 0;
        return 0;
    }
    const char *vis = getenv("CUDA_VISIBLE_DEVICES");
    return folio_fail("%d ranks run on %s but it has %d visible GPUs (CUDA_VISIBLE_DEVICES=%s): "
                      "start at most %d ranks per host, one per GPU", comm->local_size,
                      comm->host, count, vis ? vis : "(unset)", count);
}

/* No two ranks of one host on the same GPU: compares the PCI bus ids over all ranks. */
static int check_distinct(const comm_ctx *comm, int device, int count) {
    enum { ID = 32 };
    char mine[ID + 256] = "";
    CUDA_CHECK(cudaDeviceGetPCIBusId(mine, ID, device));
    snprintf(mine + ID, 256, "%s", comm->host);
    if (comm->world == 1) return 0;
    char *all = folio_xmalloc((size_t)comm->world * sizeof mine);
    int rc = MPI_Allgather(mine, sizeof mine, MPI_CHAR, all, sizeof mine, MPI_CHAR, comm->comm);
    if (rc != MPI_SUCCESS) {
        free(all);
        return comm_mpi_fail(rc, "MPI_Allgather(GPU bus ids)", __FILE__, __LINE__);
    }
    int other = -1;
    for (int r = 0; r < comm->world && other < 0; r++) {
        const char *e = all + (size_t)r * sizeof mine;
        if (r != comm->rank && strcmp(e, mine) == 0 && strcmp(e + ID, mine + ID) == 0) other = r;
    }
    free(all);
    if (other >= 0) {
        const char *vis = getenv("CUDA_VISIBLE_DEVICES");
        return folio_fail("ranks %d and %d on %s share GPU %s: %d ranks on this host but %d "
                          "visible GPU%s here (CUDA_VISIBLE_DEVICES=%s); start one rank per GPU",
                          comm->rank < other ? comm->rank : other,
                          comm->rank < other ? other : comm->rank, comm->host, mine,
                          comm->local_size, count, count == 1 ? "" : "s", vis ? vis : "(unset)");
    }
    return 0;
}

int comm_select_gpu(const comm_ctx *comm, int *device) {
    int count = 0;
    cudaError_t rc = cudaGetDeviceCount(&count);
    if (rc != cudaSuccess) {
        (void)cudaGetLastError();
        return folio_fail("no usable GPU on %s: cudaGetDeviceCount: %s", comm->host,
                          cudaGetErrorString(rc));
    }
    if (count == 0) return folio_fail("no GPU on %s (cudaGetDeviceCount found 0)", comm->host);
    if (pick_device(comm, count, device) != 0) return -1;
    CUDA_CHECK(cudaSetDevice(*device));
    return check_distinct(comm, *device, count);
}

static nccl_ctx *g_watched; /* the communicator the step watchdog aborts */

static void abort_watched(void *arg) {
    (void)arg;
    if (g_watched) nccl_abort(g_watched);
}

int nccl_init(nccl_ctx *n, comm_ctx *comm, cudaStream_t stream, double timeout_s) {
    memset(n, 0, sizeof *n);
    n->stream = stream;
    n->rank = comm->rank;
    n->world = comm->world;
    n->timeout_s = timeout_s > 0 ? timeout_s : STEP_TIMEOUT_DEFAULT_S;
    n->host = comm->host;
    CUDA_CHECK(cudaGetDevice(&n->device));
    ncclUniqueId id;
    if (comm->rank == 0) NCCL_CHECK(ncclGetUniqueId(&id));
    if (comm_broadcast(comm, &id, sizeof id) != 0) return -1;
    NCCL_CHECK(ncclCommInitRank(&n->comm, comm->world, id, comm->rank));
    g_watched = n;
    step_watchdog_on_timeout(abort_watched, NULL);
    return 0;
}

void nccl_abort(nccl_ctx *n) {
    if (!n->comm) return;
    ncclCommAbort(n->comm);
    n->comm = NULL;
}

void nccl_free(nccl_ctx *n) {
    if (g_watched == n) {
        step_watchdog_on_timeout(NULL, NULL);
        g_watched = NULL;
    }
    if (n->comm) {
        ncclCommFinalize(n->comm);
        ncclCommDestroy(n->comm);
    }
    memset(n, 0, sizeof *n);
}

int nccl_allreduce_sum(nccl_ctx *n, void *buf, size_t count, ncclDataType_t type) {
    if (n->world == 1) return 0;
    NCCL_CHECK(ncclAllReduce(buf, buf, count, type, ncclSum, n->comm, n->stream));
    return 0;
}

int nccl_allgather(nccl_ctx *n, const void *send, void *recv, size_t count,
                   ncclDataType_t type) {
    NCCL_CHECK(ncclAllGather(send, recv, count, type, n->comm, n->stream));
    return 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The wait itself (nccl_wait marks it as a wait for the other ranks). */
static int wait_stream(nccl_ctx *n) {
    double deadline = now_s() + n->timeout_s;
    const struct timespec nap = {0, 20 * 1000};
    for (;;) {
        cudaError_t q = cudaStreamQuery(n->stream);
        if (q == cudaSuccess) return 0;
        if (q != cudaErrorNotReady) { /* a device fault: fatal (error.h), peers first */
            nccl_abort(n);
            CUDA_CHECK(q);
        }
        ncclResult_t async = ncclSuccess;
        if (n->comm && ncclCommGetAsyncError(n->comm, &async) == ncclSuccess &&
            async != ncclSuccess && async != ncclInProgress) {
            nccl_abort(n);
            return folio_fail("NCCL asynchronous error on rank %d (%s, GPU %d): %s; "
                              "communicator aborted", n->rank, n->host, n->device,
                              ncclGetErrorString(async));
        }
        if (now_s() > deadline) {
            nccl_abort(n);
            return folio_fail("NCCL: collectives on rank %d (%s, GPU %d) did not complete "
                              "within %.0f s (another rank failed or hangs); communicator "
                              "aborted", n->rank, n->host, n->device, n->timeout_s);
        }
        nanosleep(&nap, NULL);
    }
}

int nccl_wait(nccl_ctx *n) {
    step_watchdog_wait_begin("NCCL collectives");
    int rc = wait_stream(n);
    step_watchdog_wait_end();
    return rc;
}

void nccl_describe(char *out, size_t n) {
    int v = 0;
    if (ncclGetVersion(&v) != ncclSuccess) v = 0;
    snprintf(out, n, "NCCL %d.%d.%d", v / 10000, v / 100 % 100, v % 100);
}

#else
#include <stdio.h>

#include "nccl_comm.h"

void nccl_describe(char *out, size_t n) { snprintf(out, n, "no NCCL (built without CUDA)"); }
#endif
