/* Paged KV cache storage of one rank on the CPU: one zeroed pool of blocks per layer, float32
 * or FP8 bytes. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "kv_cache.h"

size_t kv_cache_block_bytes(int n_layers, int block_size, int n_kv_heads, int head_dim,
                            size_t elem_bytes) {
    return (size_t)2 * n_layers * block_size * n_kv_heads * head_dim * elem_bytes;
}

int kv_cache_create(kv_cache *kv, int n_layers, int num_blocks, int block_size, int n_kv_heads,
                    int head_dim, const float *k_scale, const float *v_scale, bool fp8) {
    memset(kv, 0, sizeof *kv);
    if (num_blocks < 1 || block_size < 1)
        return folio_fail("KV cache: need at least one block of at least one token (asked for "
                          "%d blocks of %d)", num_blocks, block_size);
    const size_t n = (size_t)n_layers * num_blocks * block_size * n_kv_heads * head_dim;
    const size_t esz = fp8 ? 1 : sizeof(float);
    void *k = calloc(n, esz), *v = calloc(n, esz);
    if (!k || !v) {
        free(k);
        free(v);
        return folio_fail("KV cache: cannot allocate %d blocks (%.1f MB); lower --num-kv-blocks",
                          num_blocks, 2.0 * n * esz / 1e6);
    }
    if (fp8) {
        kv->k8 = k;
        kv->v8 = v;
        kv->k_scale = folio_xmalloc(sizeof(float) * (size_t)n_layers);
        kv->v_scale = folio_xmalloc(sizeof(float) * (size_t)n_layers);
        memcpy(kv->k_scale, k_scale, sizeof(float) * (size_t)n_layers);
        memcpy(kv->v_scale, v_scale, sizeof(float) * (size_t)n_layers);
    } else {
        kv->k = k;
        kv->v = v;
    }
    kv->fp8 = fp8;
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
    free(kv->k8);
    free(kv->v8);
    free(kv->k_scale);
    free(kv->v_scale);
    memset(kv, 0, sizeof *kv);
}

size_t kv_cache_offset(const kv_cache *kv, int layer, long long slot) {
    size_t per_slot = (size_t)kv->n_kv_heads * kv->head_dim;
    size_t per_layer = (size_t)kv->num_blocks * kv->block_size * per_slot;
    return (size_t)layer * per_layer + (size_t)slot * per_slot;
}

float *kv_cache_k(const kv_cache *kv, int layer, long long slot) {
    return kv->k + kv_cache_offset(kv, layer, slot);
}

float *kv_cache_v(const kv_cache *kv, int layer, long long slot) {
    return kv->v + kv_cache_offset(kv, layer, slot);
}

void kv_cache_copy_block(kv_cache *kv, int src, int dst) {
    const size_t esz = kv->fp8 ? 1 : sizeof(float);
    const size_t n = (size_t)kv->block_size * kv->n_kv_heads * kv->head_dim * esz;
    const long long s = (long long)src * kv->block_size, d = (long long)dst * kv->block_size;
    char *k = kv->fp8 ? (char *)kv->k8 : (char *)kv->k;
    char *v = kv->fp8 ? (char *)kv->v8 : (char *)kv->v;
    for (int l = 0; l < kv->n_layers; l++) {
        memcpy(k + kv_cache_offset(kv, l, d) * esz, k + kv_cache_offset(kv, l, s) * esz, n);
        memcpy(v + kv_cache_offset(kv, l, d) * esz, v + kv_cache_offset(kv, l, s) * esz, n);
    }
}
