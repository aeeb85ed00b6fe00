/* This rank's weights on the GPU (see weights_cuda.h). The device arena has exactly the
 * layout of the CPU loader's float32 arena (weights_specs order, no padding), in the compute
 * dtype: so q, k, v (and gate, up, and their biases) are adjacent and form the fused matrices
 * without a copy, and a checkpoint's host arena uploads as one converted stream. */
#ifdef FOLIO_HAVE_CUDA

#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "cuda_check.h"
#include "error.h"
#include "kernels_cuda.h"
#include "progress.h"
#include "weights_cuda.h"

static size_t total_elems(const tensor_spec *specs, int n) {
    size_t total = 0;
    for (int i = 0; i < n; i++) total += tensor_spec_floats(&specs[i]);
    return total;
}

size_t weights_cuda_bytes(const model_config *cfg, const shard_plan *shard, folio_dtype dtype) {
    return weights_bytes_f32(cfg, shard) / sizeof(float) * dtype_size(dtype);
}

static void fill_spec_dummy(const tensor_spec *s, void *dst, uint64_t seed, folio_dtype dt) {
    const size_t n = tensor_spec_floats(s);
    if (s->init == INIT_NORM) return fill_cuda(dst, (int64_t)n, 1.0f, dt, 0);
    if (s->init == INIT_BIAS) return fill_cuda(dst, (int64_t)n, 0.0f, dt, 0);
    const int64_t rows = s->slice == SLICE_ROWS ? s->count : s->rows;
    const int64_t cols = s->slice == SLICE_COLS ? s->count : s->cols;
    dummy_fill_cuda(dst, rows, cols, s->slice == SLICE_ROWS ? s->start : 0,
                    s->slice == SLICE_COLS ? s->start : 0, s->cols,
                    weights_dummy_key(seed, s->name), weights_dummy_scale(s), dt, 0);
}

/* Uploads the host float32 arena (n elements) into the device arena in dtype, through a
 * pinned staging buffer and a device float32 buffer, chunk by chunk. */
static void upload_f32(void *dst, const float *src, size_t n, folio_dtype dt) {
    if (dt == DTYPE_F32) {
        CUDA_CHECK(cudaMemcpy(dst, src, n * sizeof(float), cudaMemcpyHostToDevice));
        return;
    }
    const size_t chunk = (size_t)16 << 20; /* floats */
    float *d_tmp = NULL;
    CUDA_CHECK(cudaMalloc((void **)&d_tmp, chunk * sizeof(float)));
    for (size_t off = 0; off < n; off += chunk) {
        const size_t m = n - off < chunk ? n - off : chunk;
        CUDA_CHECK(cudaMemcpy(d_tmp, src + off, m * sizeof(float), cudaMemcpyHostToDevice));
        convert_f32_cuda((char *)dst + off * dtype_size(dt), d_tmp, (int64_t)m, dt, 0);
    }
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaFree(d_tmp));
}

/* Device pointers of the fused per-layer tensors from the shadow (device addresses stored in
 * a model_weights' float pointers). */
static void fuse_layers(const model_config *cfg, const model_weights *shadow, cuda_weights *w) {
    w->layers = folio_xcalloc(cfg->n_layers, sizeof *w->layers);
    for (int i = 0; i < cfg->n_layers; i++) {
        const layer_weights *s = &shadow->layers[i];
        w->layers[i] = (layer_weights_cuda){
            .attn_norm = s->attn_norm, .w_qkv = s->wq, .b_qkv = s->bq, .q_norm = s->q_norm,
            .k_norm = s->k_norm, .wo = s->wo, .bo = s->bo, .mlp_norm = s->mlp_norm,
            .w_gate_up = s->w_gate, .b_gate_up = s->b_gate, .w_down = s->w_down,
            .b_down = s->b_down};
    }
    w->embed = shadow->embed;
    w->final_norm = shadow->final_norm;
    w->lm_head = cfg->tie_embeddings ? shadow->embed : shadow->lm_head;
}

static int alloc_arena(cuda_weights *w, size_t bytes) {
    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    char need[32], have[32];
    if (bytes > free_b)
        return folio_fail("the weights need %s on the GPU in %s, but only %s is free (use a "
                          "smaller --dtype, or tensor parallelism over more GPUs)",
                          format_bytes((double)bytes, need, sizeof need), dtype_name(w->dtype),
                          format_bytes((double)free_b, have, sizeof have));
    if (cudaMalloc(&w->arena, bytes ? bytes : 16) != cudaSuccess) {
        (void)cudaGetLastError();
        return folio_fail("cannot allocate %s of GPU memory for the weights",
                          format_bytes((double)bytes, need, sizeof need));
    }
    w->bytes = bytes;
    return 0;
}

int weights_cuda_load(const char *dir, const model_config *cfg, const shard_plan *shard,
                      const load_options *opt, folio_dtype dtype, cuda_weights *w) {
    memset(w, 0, sizeof *w);
    w->dtype = dtype;
    w->shard = *shard;
    model_weights shadow = {0};
    int n = 0;
    tensor_spec *specs = weights_specs(cfg, shard, &shadow, &n);
    const size_t elems = total_elems(specs, n), esz = dtype_size(dtype);
    int rc = alloc_arena(w, elems * esz);
    if (rc == 0) {
        size_t off = 0;
        for (int i = 0; i < n; i++) {
            *specs[i].dest = (float *)((char *)w->arena + off * esz); /* a device address */
            off += tensor_spec_floats(&specs[i]);
        }
        if (opt->format == LOAD_DUMMY) {
            for (int i = 0; i < n; i++) fill_spec_dummy(&specs[i], *specs[i].dest,
                                                        opt->dummy_seed, dtype);
            CUDA_CHECK(cudaDeviceSynchronize());
        } else {
            model_weights host;
            rc = weights_load(dir, cfg, shard, opt, &host);
            if (rc == 0) {
                upload_f32(w->arena, host.arena, host.arena_floats, dtype);
                weights_free(&host);
            }
        }
    }
    if (rc == 0) fuse_layers(cfg, &shadow, w);
    free(specs);
    free(shadow.layers);
    if (rc != 0) weights_cuda_free(w);
    return rc;
}

void weights_cuda_free(cuda_weights *w) {
    if (w->arena) CUDA_CHECK(cudaFree(w->arena));
    free(w->layers);
    memset(w, 0, sizeof *w);
}

#else
typedef int folio_weights_cuda_unused; /* built without CUDA */
#endif
