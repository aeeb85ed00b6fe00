/* Device memory that every rank of one host can read and write (CUDA builds only): each rank
 * allocates one region, exports it as a CUDA IPC handle, the handles travel over MPI, and
 * every rank maps every other rank's region. The one-shot all-reduce
 * (kernels/oneshot_allreduce.h) keeps its partial sums and barrier flags there.
 *
 * Available when all ranks run on one host, there are at most PEER_MAX_RANKS of them, and the
 * driver maps every pair (peer access: NVLink or PCIe P2P). Every rank learns the same
 * answer: opening is a collective that agrees before it returns. */
#ifndef FOLIO_PEER_MEMORY_H
#define FOLIO_PEER_MEMORY_H

#ifdef FOLIO_HAVE_CUDA

#include <stddef.h>

#include "comm.h"

enum { PEER_MAX_RANKS = 8 };

typedef struct {
    int world, rank;
    size_t bytes;                /* of each rank's region */
    void *base[PEER_MAX_RANKS];  /* rank k's region as mapped here; base[rank]: this rank's
                                  * own (cudaMalloc, zeroed; owned, as are the mappings) */
} peer_memory;

/* A collective over comm (every rank calls it with the same bytes). Returns 0 when mapped;
 * 1 when peer memory is not available here (every rank returns 1; why says the reason, e.g.
 * "ranks on 2 hosts"), nothing held; -1 with a message on an MPI error. */
int peer_memory_open(peer_memory *pm, comm_ctx *comm, size_t bytes, char *why, size_t why_len);

/* Unmaps the peers' regions and frees this rank's (no-op on a zeroed struct). Not a
 * collective, but a rank's region must outlive the other ranks' last use of it. */
void peer_memory_close(peer_memory *pm);

#endif /* FOLIO_HAVE_CUDA */
#endif
