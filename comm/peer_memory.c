/* Peer-visible device memory over CUDA IPC handles exchanged through MPI (see peer_memory.h). */
#ifdef FOLIO_HAVE_CUDA

#include <stdio.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "error.h"
#include "peer_memory.h"

/* Every rank's ok (1) or not (0) -> whether all are ok; MPI errors as -1. */
static int all_agree(comm_ctx *comm, int ok) {
    int all = 0;
    MPI_CHECK(MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, comm->comm));
    return all;
}

/* This rank's region, zeroed and finished (before any peer can write its flags), and its
 * handle; 0, or 1 with the reason. */
static int alloc_own(peer_memory *pm, cudaIpcMemHandle_t *h, char *why, size_t why_len) {
    cudaError_t rc = cudaMalloc(&pm->base[pm->rank], pm->bytes);
    if (rc == cudaSuccess) rc = cudaMemset(pm->base[pm->rank], 0, pm->bytes);
    if (rc == cudaSuccess) rc = cudaDeviceSynchronize();
    if (rc == cudaSuccess) rc = cudaIpcGetMemHandle(h, pm->base[pm->rank]);
    if (rc == cudaSuccess) return 0;
    (void)cudaGetLastError();
    snprintf(why, why_len, "rank %d: %s: %s", pm->rank,
             pm->base[pm->rank] ? "cudaIpcGetMemHandle" : "cudaMalloc", cudaGetErrorString(rc));
    return 1;
}

/* Maps every other rank's region; 0, or 1 with the reason (what was mapped stays in base[]
 * for peer_memory_close). */
static int map_peers(peer_memory *pm, const cudaIpcMemHandle_t *all, char *why, size_t why_len) {
    for (int k = 0; k < pm->world; k++) {
        if (k == pm->rank) continue;
        cudaError_t rc = cudaIpcOpenMemHandle(&pm->base[k], all[k],
                                              cudaIpcMemLazyEnablePeerAccess);
        if (rc != cudaSuccess) {
            (void)cudaGetLastError();
            pm->base[k] = NULL;
            snprintf(why, why_len, "rank %d cannot map rank %d's GPU memory "
                     "(cudaIpcOpenMemHandle: %s)", pm->rank, k, cudaGetErrorString(rc));
            return 1;
        }
    }
    return 0;
}

int peer_memory_open(peer_memory *pm, comm_ctx *comm, size_t bytes, char *why, size_t why_len) {
    memset(pm, 0, sizeof *pm);
    pm->world = comm->world;
    pm->rank = comm->rank;
    pm->bytes = bytes;
    snprintf(why, why_len, "another rank could not map peer memory (see its log)");
    if (comm->world > PEER_MAX_RANKS) {
        snprintf(why, why_len, "%d ranks (at most %d)", comm->world, PEER_MAX_RANKS);
        return 1;
    }
    if (comm->local_size != comm->world) {
        snprintf(why, why_len, "the %d ranks span more than one host", comm->world);
        return 1;
    }
    cudaIpcMemHandle_t all[PEER_MAX_RANKS], mine;
    memset(&mine, 0, sizeof mine);
    int ok = alloc_own(pm, &mine, why, why_len) == 0;
    int rc = MPI_Allgather(&mine, sizeof mine, MPI_BYTE, all, sizeof mine, MPI_BYTE, comm->comm);
    if (rc != MPI_SUCCESS) {
        peer_memory_close(pm);
        return comm_mpi_fail(rc, "MPI_Allgather(IPC handles)", __FILE__, __LINE__);
    }
    int agreed = all_agree(comm, ok);
    if (agreed == 1) {
        ok = map_peers(pm, all, why, why_len) == 0;
        agreed = all_agree(comm, ok);
    }
    if (agreed == 1) return 0;
    peer_memory_close(pm);
    return agreed < 0 ? -1 : 1;
}

void peer_memory_close(peer_memory *pm) {
    for (int k = 0; k < pm->world && k < PEER_MAX_RANKS; k++) {
        if (!pm->base[k]) continue;
        if (k == pm->rank) (void)cudaFree(pm->base[k]);
        else (void)cudaIpcCloseMemHandle(pm->base[k]);
        pm->base[k] = NULL;
    }
    (void)cudaGetLastError();
}

#else
typedef int folio_peer_memory_unused; /* an ISO C translation unit is never empty */
#endif
