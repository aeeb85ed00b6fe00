/* The forward's device KV pool: K and V for every layer, [n_layers][num_blocks][n_kv]
 * [block_size][head_dim] each, of the num_blocks the caller sized (backend_kv_blocks, the one
 * sizer), elements of the forward's dtype or e4m3 bytes (--kv-cache-dtype fp8, with per-layer
 * scales); allocated and zeroed at creation, and copied block by block for copy-on-write. */
#ifdef FOLIO_HAVE_CUDA

#include "cuda_check.h"
#include "error.h"
#include "forward_cuda_internal.h"
#include "progress.h"

/* cudaMalloc of `bytes`, zeroed; NULL (the error cleared) when the GPU has no room. */
static void *try_alloc_zeroed(size_t bytes) {
    void *p = NULL;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    CUDA_CHECK(cudaMemset(p, 0, bytes));
    return p;
}

int fc_kv_pool_alloc(forward_cuda *f) {
    const model_config *c = f->cfg;
    f->num_blocks = f->o.num_blocks;
    f->layer_stride = (size_t)f->num_blocks * f->w->shard.n_kv_heads * f->o.block_size *
                      c->head_dim;
    const size_t pool = f->layer_stride * c->n_layers * f->kv_elem;
    f->k_pool = try_alloc_zeroed(pool);
    f->v_pool = f->k_pool ? try_alloc_zeroed(pool) : NULL;
    if (!f->v_pool) {
        char a[32];
        return folio_fail("GPU memory: no room for the KV cache of %d blocks of %d tokens (%s), "
                          "sized before: lower --gpu-memory-utilization, or free the GPU of "
                          "other processes", f->num_blocks,
                          f->o.block_size, format_bytes(2.0 * (double)pool, a, sizeof a));
    }
    return 0;
}

int forward_cuda_num_blocks(const forward_cuda *f) { return f->num_blocks; }

void forward_cuda_copy_blocks(forward_cuda *f, const int32_t *src, const int32_t *dst, int n) {
    const size_t block = (size_t)f->w->shard.n_kv_heads * f->o.block_size * f->cfg->head_dim *
                         f->kv_elem;
    for (int i = 0; i < n; i++)
        for (int l = 0; l < f->cfg->n_layers; l++) {
            const size_t layer = f->layer_stride * l * f->kv_elem;
            char *k = (char *)f->k_pool + layer, *v = (char *)f->v_pool + layer;
            CUDA_CHECK(cudaMemcpyAsync(k + block * dst[i], k + block * src[i], block,
                                       cudaMemcpyDeviceToDevice, f->stream));
            CUDA_CHECK(cudaMemcpyAsync(v + block * dst[i], v + block * src[i], block,
                                       cudaMemcpyDeviceToDevice, f->stream));
        }
}

#else
typedef int folio_forward_cuda_kv_unused; /* built without CUDA */
#endif
