/* hwloc placement of a rank: near its GPU, or an equal share of the host's cores. */
#include <hwloc.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "error.h"
#ifdef FOLIO_HAVE_CUDA
#include <hwloc/cudart.h>

#include "cuda_check.h"
#endif

enum { BIND_LINE = 256 };

/* The cpuset nearest this rank's GPU (its local rank's device); 0 if found, 1 if there is no
 * GPU for it. */
static int gpu_cpuset(hwloc_topology_t topo, const comm_ctx *comm, hwloc_bitmap_t set,
                      char *gpu, size_t gpu_len) {
#ifdef FOLIO_HAVE_CUDA
    int count = cuda_device_count_or_zero(NULL);
    if (comm->local_rank < count &&
        hwloc_cudart_get_device_cpuset(topo, comm->local_rank, set) == 0) {
        snprintf(gpu, gpu_len, "GPU %d", comm->local_rank);
        return 0;
    }
#else
    (void)topo;
    (void)comm;
    (void)set;
#endif
    snprintf(gpu, gpu_len, "no GPU");
    return 1;
}

/* An equal contiguous share of the allowed cores for this local rank; 1 (set untouched) when
 * there are fewer cores than local ranks. */
static int core_share(hwloc_topology_t topo, const comm_ctx *comm, hwloc_bitmap_t set) {
    hwloc_const_cpuset_t allowed = hwloc_topology_get_allowed_cpuset(topo);
    int cores = hwloc_get_nbobjs_inside_cpuset_by_type(topo, allowed, HWLOC_OBJ_CORE);
    if (cores < comm->local_size) return 1;
    int per = cores / comm->local_size, first = comm->local_rank * per;
    hwloc_bitmap_zero(set);
    for (int i = first; i < first + per; i++) {
        hwloc_obj_t core = hwloc_get_obj_inside_cpuset_by_type(topo, allowed, HWLOC_OBJ_CORE, i);
        if (core) hwloc_bitmap_or(set, set, core->cpuset);
    }
    hwloc_bitmap_and(set, set, allowed);
    return hwloc_bitmap_iszero(set) ? 1 : 0;
}

/* Binds to set (threads, then memory); describes the outcome in line. */
static void apply(hwloc_topology_t topo, hwloc_const_cpuset_t set, const char *gpu, char *line) {
    char cpus[96] = "", nodes[64] = "";
    hwloc_bitmap_list_snprintf(cpus, sizeof cpus, set);
    hwloc_nodeset_t nodeset = hwloc_bitmap_alloc();
    hwloc_cpuset_to_nodeset(topo, set, nodeset);
    hwloc_bitmap_list_snprintf(nodes, sizeof nodes, nodeset);
    if (hwloc_set_cpubind(topo, set, HWLOC_CPUBIND_PROCESS) != 0) {
        snprintf(line, BIND_LINE, "%s; warning: cannot bind to CPUs %s (%s), left unbound", gpu,
                 cpus, "hwloc_set_cpubind failed");
        hwloc_bitmap_free(nodeset);
        return;
    }
    int mem = hwloc_set_membind(topo, nodeset, HWLOC_MEMBIND_BIND,
                                HWLOC_MEMBIND_THREAD | HWLOC_MEMBIND_BYNODESET);
    int threads = hwloc_bitmap_weight(set);
    if (!getenv("OMP_NUM_THREADS") && threads > 0) omp_set_num_threads(threads);
    snprintf(line, BIND_LINE, "%s; CPUs %s, NUMA node %s%s; %d OpenMP threads", gpu, cpus,
             nodes, mem == 0 ? "" : " (memory binding refused: first touch)",
             omp_get_max_threads());
    hwloc_bitmap_free(nodeset);
}

static void place(const comm_ctx *comm, bind_mode mode, char *line) {
    if (mode == BIND_NONE) {
        snprintf(line, BIND_LINE, "not bound (--bind none); %d OpenMP threads",
                 omp_get_max_threads());
        return;
    }
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) != 0 || hwloc_topology_load(topo) != 0) {
        snprintf(line, BIND_LINE, "warning: hwloc cannot read the topology; not bound");
        return;
    }
    hwloc_bitmap_t set = hwloc_bitmap_alloc();
    char gpu[32];
    if (gpu_cpuset(topo, comm, set, gpu, sizeof gpu) == 0) {
        /* Ranks whose GPUs hang off the same socket would all get the same cores: keep the
         * part of them inside this rank's equal share of the host, so they split them. */
        hwloc_bitmap_t share = hwloc_bitmap_alloc();
        if (core_share(topo, comm, share) == 0 && hwloc_bitmap_intersects(share, set))
            hwloc_bitmap_and(set, set, share);
        hwloc_bitmap_free(share);
        apply(topo, set, gpu, line);
    } else if (core_share(topo, comm, set) == 0) {
        apply(topo, set, gpu, line);
    } else {
        /* More ranks than cores here: share them, one OpenMP thread each. */
        int cores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
        int threads = cores / comm->local_size > 0 ? cores / comm->local_size : 1;
        if (!getenv("OMP_NUM_THREADS")) omp_set_num_threads(threads);
        snprintf(line, BIND_LINE, "%s; warning: %d ranks on %d cores, not bound; %d OpenMP "
                 "threads", gpu, comm->local_size, cores, omp_get_max_threads());
    }
    hwloc_bitmap_free(set);
    hwloc_topology_destroy(topo);
}

int bind_rank(comm_ctx *comm, bind_mode mode, int verbose) {
    char placed[BIND_LINE], line[BIND_LINE];
    place(comm, mode, placed);
    snprintf(line, sizeof line, "%.64s, local rank %d of %d: %.160s", comm->host,
             comm->local_rank, comm->local_size, placed);
    if (!verbose) return 0;
    char *all = comm->rank == 0 ? folio_xmalloc((size_t)BIND_LINE * comm->world) : NULL;
    if (comm->world > 1) {
        int rc = MPI_Gather(line, BIND_LINE, MPI_CHAR, all, BIND_LINE, MPI_CHAR, 0, comm->comm);
        if (rc != MPI_SUCCESS) {
            free(all);
            return comm_mpi_fail(rc, "MPI_Gather(binding)", __FILE__, __LINE__);
        }
    } else {
        memcpy(all, line, BIND_LINE);
    }
    if (comm->rank == 0) {
        for (int r = 0; r < comm->world; r++)
            fprintf(stderr, "folio: rank %d: %s\n", r, all + (size_t)r * BIND_LINE);
    }
    free(all);
    return 0;
}
