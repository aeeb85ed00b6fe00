/* Ranks and collectives: MPI start-up (world rank and size, the local rank on each host from
 * host names), and the collectives the forward needs, implemented over MPI for the CPU
 * backend (the CUDA backend's device collectives are NCCL's: nccl_comm.h). */
#ifndef FOLIO_COMM_H
#define FOLIO_COMM_H

#include <stddef.h>

#include <mpi.h>

typedef struct {
    int rank, world;
    int local_rank, local_size;  /* among the ranks on this host */
    char host[256];
    MPI_Comm comm;
    int owns_mpi;                /* comm_init called MPI_Init */
} comm_ctx;

/* Checks an MPI call; on failure records a message with the call and the MPI error string
 * and returns -1 from the enclosing function. */
#define MPI_CHECK(call)                                                                       \
    do {                                                                                      \
        int mpi_rc_ = (call);                                                                 \
        if (mpi_rc_ != MPI_SUCCESS) return comm_mpi_fail(mpi_rc_, #call, __FILE__, __LINE__); \
    } while (0)

int comm_mpi_fail(int rc, const char *call, const char *file, int line);

/* Initialises MPI (if not yet) and fills ctx. */
int comm_init(int *argc, char ***argv, comm_ctx *ctx);

/* A single-rank context with no MPI (unit tests). */
void comm_init_single(comm_ctx *ctx);

void comm_finalize(comm_ctx *ctx);

/* Aborts every rank of the job with this exit code (after a rank-local failure). */
void comm_abort(comm_ctx *ctx, int code);

/* The transports this build links: "MPI <library and version>; NCCL <version>" (callable
 * before comm_init). */
void comm_describe(char *out, size_t n);

/* In-place sum over ranks of n floats. */
int comm_allreduce_sum(comm_ctx *ctx, float *buf, size_t n);

/* Gathers vocab-parallel rows: each rank holds cols_local = min(shard, total - rank*shard)
 * columns of each of the n_rows rows, in local[n_rows][shard] (only cols_local used); every
 * rank receives out[n_rows][total]. */
int comm_gather_vocab(comm_ctx *ctx, const float *local, int n_rows, int shard, int total,
                      float *out);

/* Broadcast of bytes from rank 0. */
int comm_broadcast(comm_ctx *ctx, void *buf, size_t n);

/* Every rank's n bytes mine into all[world][n] (start-up exchanges; not timed as a wait). */
int comm_allgather(comm_ctx *ctx, const void *mine, size_t n, void *all);

#endif
