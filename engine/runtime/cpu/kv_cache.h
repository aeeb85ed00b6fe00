/* Paged KV cache storage of one rank (CPU backend): a pool of fixed-size blocks per layer,
 * float32, or FP8 e4m3 (--kv-cache-dtype fp8: one byte an element, one K and one V scale per
 * layer; kernels_cpu.h's kv_write_fp8_cpu / paged_attention_fp8_cpu read and write it).
 * Which blocks belong to which sequence is the block tables' business (step plan), not this
 * file's: the pool only stores K and V at slot = block * block_size + offset. */
#ifndef FOLIO_KV_CACHE_H
#define FOLIO_KV_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int n_layers;
    int num_blocks;
    int block_size;              /* tokens per block */
    int n_kv_heads;              /* KV heads held by this rank */
    int head_dim;
    bool fp8;                    /* e4m3 bytes in k8/v8 (else floats in k/v) */
    float *k;                    /* [n_layers][num_blocks][block_size][n_kv_heads][head_dim] */
    float *v;                    /* same shape */
    uint8_t *k8, *v8;            /* fp8: the same shapes in bytes */
    float *k_scale, *v_scale;    /* fp8: [n_layers] */
} kv_cache;

/* Allocates the pool (zeroed); fp8: with the per-layer scales (copied, [n_layers]). Returns 0
 * or -1 with a message naming the size asked for. */
int kv_cache_create(kv_cache *kv, int n_layers, int num_blocks, int block_size, int n_kv_heads,
                    int head_dim, const float *k_scale, const float *v_scale, bool fp8);
void kv_cache_free(kv_cache *kv);

/* Bytes one block takes over all layers, K and V, at elem_bytes an element. */
size_t kv_cache_block_bytes(int n_layers, int block_size, int n_kv_heads, int head_dim,
                            size_t elem_bytes);

/* Element offset of one slot of one layer in k/v (or k8/v8): [n_kv_heads][head_dim] there. */
size_t kv_cache_offset(const kv_cache *kv, int layer, long long slot);

/* Pointer to K (or V) of one slot of one layer (float pool). */
float *kv_cache_k(const kv_cache *kv, int layer, long long slot);
float *kv_cache_v(const kv_cache *kv, int layer, long long slot);

/* Copies block src to block dst in every layer's K and V (copy-on-write). */
void kv_cache_copy_block(kv_cache *kv, int src, int dst);

#endif
