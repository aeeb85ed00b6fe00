/* Paged KV cache storage of one rank on the CPU: one zeroed pool of blocks per layer. */
#include <stdlib.h>

#include "error.h"
#include "kv_cache.h"

size_t kv_cache_block_bytes(int n_layers, int block_size, int n_kv_heads, int head_dim) {
    return (size_t)2 * n_layers * block_size * n_kv_heads * head_dim * sizeof(float);
}

int kv_cache_create(kv_cache *kv, int n_layers, int num_blocks, int block_size, int n_kv_heads,
                    int head_dim) {
    if (num_blocks < 1 || block_size < 1)
        return folio_fail("KV cache: need at least one block of at least one token (asked for "
                          "%d blocks of %d)", num_blocks, block_size);
    size_t n = (size_t)n_layers * num_blocks * block_size * n_kv_heads * head_dim;
    kv->k = calloc(n, sizeof(float));
    kv->v = calloc(n, sizeof(float));
    if (!kv->k || !kv->v) {
        free(kv->k);
        free(kv->v);
        kv->k = kv->v = NULL;
        return folio_fail("KV cache: cannot allocate %d blocks (%.1f MB); lower --num-kv-blocks",
                          num_blocks, 2.0 * n * sizeof(float) / 1e6);
    }
    kv->n_layers = n_layers;
    kv->num_blocks = num_blocks;
    kv->block_size = block_size;
    kv->n_kv_heads = n_kv_heads;
    kv->head_dim = head_dim;
    return 0;
}

void kv_cache_free(kv_cache *kv) {
    free(kv->k);
    free(kv->v);
    kv->k = kv->v = NULL;
}

static size_t slot_offset(const kv_cache *kv, int layer, long long slot) {
    size_t per_slot = (size_t)kv->n_kv_heads * kv->head_dim;
    size_t per_layer = (size_t)kv->num_blocks * kv->block_size * per_slot;
    return (size_t)layer * per_layer + (size_t)slot * per_slot;
}

float *kv_cache_k(const kv_cache *kv, int layer, long long slot) {
    return kv->k + slot_offset(kv, layer, slot);
}

float *kv_cache_v(const kv_cache *kv, int layer, long long slot) {
    return kv->v + slot_offset(kv, layer, slot);
}
