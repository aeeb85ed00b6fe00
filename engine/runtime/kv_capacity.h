/* KV cache capacity from memory, not guesses: how many blocks fit after the weights and the
 * activation workspace. One function for every backend: the CPU backend passes host memory
 * (MemTotal / MemAvailable), the CUDA backend cudaMemGetInfo's total / free. */
#ifndef FOLIO_KV_CAPACITY_H
#define FOLIO_KV_CAPACITY_H

#include <stddef.h>

/* --gpu-memory-utilization's default: the fraction of device (CPU: host) memory Folio may use. */
#define FOLIO_DEFAULT_MEMORY_UTILIZATION 0.90

typedef struct {
    size_t total_bytes;          /* device (or host) memory */
    size_t free_bytes;           /* free now, after the weights are loaded (0: unknown) */
    size_t workspace_bytes;      /* activations still to be allocated */
    double utilization;          /* --gpu-memory-utilization: fraction of total we may use */
    long long kv_cache_memory;   /* --kv-cache-memory BYTES (> 0 overrides the fraction) */
    int num_blocks_override;     /* --num-kv-blocks (> 0 overrides everything) */
    size_t block_bytes;          /* one block, all layers, K and V, on this rank */
    int max_useful_blocks;       /* no more than this (> 0; e.g. max_num_seqs full contexts) */
} kv_capacity_in;

/* Blocks for the KV pool: override, else kv_cache_memory / block_bytes, else
 * (utilization * total - memory already in use - workspace) / block_bytes, capped at
 * max_useful_blocks. -1 with a message naming the knob when not even one block fits (every
 * figure in it a size, never a negative remainder), or when the workspace alone is larger
 * than free_bytes (when known, > 0), whatever the override. */
int kv_capacity_blocks(const kv_capacity_in *in, int *num_blocks);

/* Host memory for the CPU backend: MemTotal and MemAvailable of /proc/meminfo. */
int kv_capacity_host_memory(size_t *total, size_t *available);

#endif
