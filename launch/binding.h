/* Placing a rank on the machine (hwloc): --bind auto binds the process's threads and memory
 * to the cores and NUMA node nearest its GPU (the GPU of its local rank), or, with no GPU,
 * gives each rank on a host an equal, contiguous share of the cores; --bind none leaves the
 * placement to the launcher. OpenMP then runs one thread per bound core unless
 * OMP_NUM_THREADS says otherwise. Never fatal: where binding is impossible (fewer cores than
 * ranks, a container refusing it) it warns with --verbose and goes on unbound. */
#ifndef FOLIO_BINDING_H
#define FOLIO_BINDING_H

#include "comm.h"

typedef enum { BIND_AUTO, BIND_NONE } bind_mode;

/* Binds this rank; with verbose, rank 0 prints every rank's placement, one line each, in
 * rank order (a collective: every rank calls it). 0, or -1 with a message (MPI failure). */
int bind_rank(comm_ctx *comm, bind_mode mode, int verbose);

#endif
