/* MPI bootstrap and the CPU backend's collectives. With one rank no MPI call is made on the
 * data path, so single-process runs and unit tests cost nothing extra. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm.h"
#include "error.h"
#include "nccl_comm.h"
#include "step_watchdog.h"

int comm_mpi_fail(int rc, const char *call, const char *file, int line) {
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return folio_fail("MPI call %s failed at %s:%d: %s", call, file, line, msg);
}

void comm_init_single(comm_ctx *ctx) {
    memset(ctx, 0, sizeof *ctx);
    ctx->world = ctx->local_size = 1;
    ctx->comm = MPI_COMM_NULL;
    if (gethostname(ctx->host, sizeof ctx->host - 1) != 0) strcpy(ctx->host, "localhost");
}

/* Local rank = how many lower ranks share this host name; local size = how many share it. */
static int find_local_rank(comm_ctx *ctx) {
    char *all = folio_xcalloc((size_t)ctx->world, sizeof ctx->host);
    int rc = MPI_Allgather(ctx->host, sizeof ctx->host, MPI_CHAR, all, sizeof ctx->host,
                           MPI_CHAR, ctx->comm);
    if (rc != MPI_SUCCESS) {
        free(all);
        return comm_mpi_fail(rc, "MPI_Allgather(host names)", __FILE__, __LINE__);
    }
    ctx->local_rank = 0;
    ctx->local_size = 0;
    for (int r = 0; r < ctx->world; r++) {
        if (strcmp(all + (size_t)r * sizeof ctx->host, ctx->host) != 0) continue;
        if (r < ctx->rank) ctx->local_rank++;
        ctx->local_size++;
    }
    free(all);
    return 0;
}

int comm_init(int *argc, char ***argv, comm_ctx *ctx) {
    comm_init_single(ctx);
    int initialized = 0, provided = 0;
    MPI_Initialized(&initialized);
    /* SERIALIZED: MPI is called by one thread at a time, not always the main one (the
     * server's engine thread broadcasts the step plans). */
    if (!initialized) {
        MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided));
        ctx->owns_mpi = 1;
    } else {
        MPI_Query_thread(&provided);
    }
    MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &ctx->comm));
    MPI_CHECK(MPI_Comm_set_errhandler(ctx->comm, MPI_ERRORS_RETURN));
    MPI_CHECK(MPI_Comm_rank(ctx->comm, &ctx->rank));
    MPI_CHECK(MPI_Comm_size(ctx->comm, &ctx->world));
    if (ctx->world > 1 && provided < MPI_THREAD_SERIALIZED)
        return folio_fail("MPI provides thread level %d, below MPI_THREAD_SERIALIZED (%d), which "
                          "the engine needs with several ranks", provided,
                          MPI_THREAD_SERIALIZED);
    return find_local_rank(ctx);
}

void comm_finalize(comm_ctx *ctx) {
    if (ctx->comm != MPI_COMM_NULL) MPI_Comm_free(&ctx->comm);
    if (ctx->owns_mpi) MPI_Finalize();
    ctx->owns_mpi = 0;
}

void comm_abort(comm_ctx *ctx, int code) {
    MPI_Abort(ctx->comm != MPI_COMM_NULL ? ctx->comm : MPI_COMM_WORLD, code);
}

int comm_allreduce_sum(comm_ctx *ctx, float *buf, size_t n) {
    if (ctx->world == 1) return 0;
    step_watchdog_wait_begin("all-reduce");
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, ctx->comm);
    step_watchdog_wait_end();
    return rc == MPI_SUCCESS ? 0 : comm_mpi_fail(rc, "MPI_Allreduce", __FILE__, __LINE__);
}

int comm_gather_vocab(comm_ctx *ctx, const float *local, int n_rows, int shard, int total,
                      float *out) {
    if (ctx->world == 1) {
        for (int r = 0; r < n_rows; r++)
            memcpy(out + (size_t)r * total, local + (size_t)r * shard, sizeof(float) * total);
        return 0;
    }
    size_t per_rank = (size_t)n_rows * shard;
    float *all = folio_xmalloc(sizeof(float) * per_rank * ctx->world);
    step_watchdog_wait_begin("all-gather");
    int rc = MPI_Allgather(local, (int)per_rank, MPI_FLOAT, all, (int)per_rank, MPI_FLOAT,
                           ctx->comm);
    step_watchdog_wait_end();
    if (rc != MPI_SUCCESS) {
        free(all);
        return comm_mpi_fail(rc, "MPI_Allgather(logits)", __FILE__, __LINE__);
    }
    for (int k = 0; k < ctx->world; k++) {
        int start = k * shard, cols = total - start < shard ? total - start : shard;
        if (cols <= 0) continue;
        for (int r = 0; r < n_rows; r++)
            memcpy(out + (size_t)r * total + start, all + per_rank * k + (size_t)r * shard,
                   sizeof(float) * cols);
    }
    free(all);
    return 0;
}

int comm_broadcast(comm_ctx *ctx, void *buf, size_t n) {
    if (ctx->world == 1) return 0;
    MPI_CHECK(MPI_Bcast(buf, (int)n, MPI_BYTE, 0, ctx->comm));
    return 0;
}

int comm_allgather(comm_ctx *ctx, const void *mine, size_t n, void *all) {
    if (ctx->world == 1) {
        memcpy(all, mine, n);
        return 0;
    }
    MPI_CHECK(MPI_Allgather(mine, (int)n, MPI_BYTE, all, (int)n, MPI_BYTE, ctx->comm));
    return 0;
}

void comm_describe(char *out, size_t n) {
    char mpi[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    if (MPI_Get_library_version(mpi, &len) != MPI_SUCCESS) snprintf(mpi, sizeof mpi, "unknown");
    char *nl = strchr(mpi, '\n'); /* first line: the library and its version */
    if (nl) *nl = '\0';
    char *comma = strchr(mpi, ',');
    if (comma) *comma = '\0';
    char nccl[64];
    nccl_describe(nccl, sizeof nccl);
    snprintf(out, n, "MPI %s; %s", mpi, nccl);
}
