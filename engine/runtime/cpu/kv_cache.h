/* Paged KV cache storage of one rank (CPU backend): a pool of fixed-size blocks per layer.
 * Which blocks belong to which sequence is the block tables' business (step plan), not this
 * file's: the pool only stores K and V at slot = block * block_size + offset. */
#ifndef FOLIO_KV_CACHE_H
#define FOLIO_KV_CACHE_H

#include <stddef.h>

typedef struct {
    int n_layers;
    int num_blocks;
    int block_size;              /* tokens per block */
    int n_kv_heads;              /* KV heads held by this rank */
    int head_dim;
    float *k;                    /* [n_layers][num_blocks][block_size][n_kv_heads][head_dim] */
    float *v;                    /* same shape */
} kv_cache;

/* Allocates the pool (zeroed). Returns 0 or -1 with a message naming the size asked for. */
int kv_cache_create(kv_cache *kv, int n_layers, int num_blocks, int block_size, int n_kv_heads,
                    int head_dim);
void kv_cache_free(kv_cache *kv);

/* Bytes one block takes over all layers, K and V. */
size_t kv_cache_block_bytes(int n_layers, int block_size, int n_kv_heads, int head_dim);

/* Pointer to K (or V) of one slot of one layer: [n_kv_heads][head_dim]. */
float *kv_cache_k(const kv_cache *kv, int layer, long long slot);
float *kv_cache_v(const kv_cache *kv, int layer, long long slot);

#endif
