/* This rank's weights on the GPU (see weights_cuda.h). The device arena has exactly the
 * layout of the CPU loader's float32 arena (weights_specs order, no padding), in the compute
 * dtype: so q, k, v (and gate, up, and their biases) are adjacent and form the fused matrices
 * without a copy, and a checkpoint's host arena uploads as one converted stream. */
#ifdef FOLIO_HAVE_CUDA

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "cuda_check.h"
#include "error.h"
#include "kernels_cuda.h"
#include "progress.h"
#include "fp8.h"
#include "quant.h"
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
 * a model_weights' float pointers). Keeps the layers' quant matrices (the quantized load
 * allocates w->layers first). */
static void fuse_layers(const model_config *cfg, const model_weights *shadow, cuda_weights *w) {
    if (!w->layers) w->layers = folio_xcalloc(cfg->n_layers, sizeof *w->layers);
    for (int i = 0; i < cfg->n_layers; i++) {
        const layer_weights *s = &shadow->layers[i];
        layer_weights_cuda *d = &w->layers[i];
        d->attn_norm = s->attn_norm;
        d->w_qkv = s->wq;
        d->b_qkv = s->bq;
        d->q_norm = s->q_norm;
        d->k_norm = s->k_norm;
        d->wo = s->wo;
        d->bo = s->bo;
        d->mlp_norm = s->mlp_norm;
        d->w_gate_up = s->w_gate;
        d->b_gate_up = s->b_gate;
        d->w_down = s->w_down;
        d->b_down = s->b_down;
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

/* ---- quantized checkpoints: dense tensors uploaded one by one, 4-bit Linear weights as
 * device quant matrices ---- */

typedef enum { R_OTHER, R_Q, R_K, R_V, R_O, R_GATE, R_UP, R_DOWN } spec_role;

/* Which layer Linear weight spec s is (its dest points into shadow's layers), else R_OTHER. */
static spec_role role_of(const model_weights *shadow, int n_layers, const tensor_spec *s,
                         int *layer) {
    const uintptr_t base = (uintptr_t)shadow->layers, p = (uintptr_t)s->dest;
    const size_t sz = sizeof(layer_weights);
    *layer = -1;
    if (p < base || p >= base + (uintptr_t)n_layers * sz) return R_OTHER;
    const size_t off = (size_t)(p - base) % sz;
    static const struct { size_t off; spec_role r; } map[] = {
        {offsetof(layer_weights, wq), R_Q},         {offsetof(layer_weights, wk), R_K},
        {offsetof(layer_weights, wv), R_V},         {offsetof(layer_weights, wo), R_O},
        {offsetof(layer_weights, w_gate), R_GATE},  {offsetof(layer_weights, w_up), R_UP},
        {offsetof(layer_weights, w_down), R_DOWN}};
    for (size_t k = 0; k < sizeof map / sizeof map[0]; k++)
        if (off == map[k].off) {
            *layer = (int)((size_t)(p - base) / sz);
            return map[k].r;
        }
    return R_OTHER;
}

/* What the GPU's 4-bit kernels take (w4a16_supported, less the device pointer's alignment);
 * the message names the tensor. */
static int check_gpu_quant(const quant_matrix *m, const char *name, bool fused, folio_dtype dt) {
    if (m->bits != 4)
        return folio_fail("--device cuda: %s is %d-bit: only 4-bit weights run on the GPU yet "
                          "(use --device cpu, which dequantizes them at load)", name, m->bits);
    if (fused && m->perm)
        return folio_fail("--device cuda: %s has an act-order permutation (GPTQ desc_act, "
                          "compressed-tensors actorder): not supported on the GPU yet for the "
                          "fused q/k/v and gate/up products (use --device cpu)", name);
    if (m->group_size < 32 || m->group_size % 32 || m->cols % 32 || m->cols % m->group_size)
        return folio_fail("--device cuda: %s: group size %d over %d input columns: the GPU's "
                          "4-bit kernels need both to be multiples of 32 (use --device cpu)",
                          name, m->group_size, m->cols);
    if (dt != DTYPE_BF16 && dt != DTYPE_F16)
        return folio_fail("--device cuda: %s is 4-bit: the GPU runs 4-bit weights in bfloat16 "
                          "or float16, not %s (--dtype)", name, dtype_name(dt));
    return 0;
}

/* Uploads parts[0..n) (this rank's host quant matrices, same cols / bits / group size; perm
 * only when n == 1) as one matrix of their rows concatenated, packed for the kernels into
 * one device allocation starting at out->tiles. With shards (a dummy 4-bit model), the parts
 * are shapes only (NULL arrays) and the values are drawn on the device from shards[k]. */
static int upload_quant(const quant_matrix *parts, const qd_shard *shards, int n,
                        const char *name, folio_dtype dt, w4a16_tiles *out, size_t *bytes) {
    quant_matrix t = parts[0], *d = &t;
    t.rows = 0;
    for (int k = 0; k < n; k++) {
        const quant_matrix *p = &parts[k];
        if (p->cols != parts[0].cols || p->bits != parts[0].bits ||
            p->group_size != parts[0].group_size || (k > 0 && p->perm))
            return folio_fail("--device cuda: %s: the fused matrices differ in width, bits, "
                              "group size or permutation (use --device cpu)", name);
        t.rows += p->rows;
    }
    if (!w4a16_supported(d, dt))
        return folio_fail("--device cuda: %s: the GPU's 4-bit kernels do not take this matrix "
                          "(%d x %d, group %d)", name, d->rows, d->cols, d->group_size);
    /* the row-major matrix goes up first (one staging allocation), then is packed */
    const size_t wpr = (size_t)ql_words_per_row(d), groups = (size_t)ql_groups(d);
    const size_t wb = (size_t)d->rows * wpr * sizeof(uint32_t);
    const size_t sb = (size_t)d->rows * groups * sizeof(uint16_t), zb = (size_t)d->rows * groups;
    const size_t pb = parts[0].perm ? (size_t)d->cols * sizeof(int32_t) : 0;
    const size_t packed = w4a16_tiles_bytes(d);
    char *stage = NULL, *mem = NULL;
    if (cudaMalloc((void **)&mem, packed) != cudaSuccess ||
        cudaMalloc((void **)&stage, wb + sb + zb + pb + 64) != cudaSuccess) {
        (void)cudaGetLastError();
        if (mem) CUDA_CHECK(cudaFree(mem));
        char need[32];
        return folio_fail("cannot allocate %s of GPU memory for %s (4-bit)",
                          format_bytes((double)(packed + wb + sb + zb + pb), need, sizeof need),
                          name);
    }
    t.qweight = (uint32_t *)stage;
    t.scales = (uint16_t *)(stage + wb);
    t.zeros = (uint8_t *)(stage + wb + sb);
    t.perm = parts[0].perm ? (int32_t *)(stage + ((wb + sb + zb + 15) & ~(size_t)15)) : NULL;
    size_t r0 = 0;
    for (int k = 0; k < n; k++) {
        const quant_matrix *p = &parts[k];
        const size_t r = (size_t)p->rows;
        if (shards) {
            quant_matrix dst = *p;
            dst.qweight = d->qweight + r0 * wpr;
            dst.scales = d->scales + r0 * groups;
            dst.zeros = d->zeros + r0 * groups;
            quant_dummy_fill_cuda(&dst, &shards[k], 0);
            r0 += r;
            continue;
        }
        CUDA_CHECK(cudaMemcpy(d->qweight + r0 * wpr, p->qweight, r * wpr * sizeof(uint32_t),
                              cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(d->scales + r0 * groups, p->scales, r * groups * sizeof(uint16_t),
                              cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(d->zeros + r0 * groups, p->zeros, r * groups,
                              cudaMemcpyHostToDevice));
        r0 += r;
    }
    if (d->perm)
        CUDA_CHECK(cudaMemcpy(d->perm, parts[0].perm, pb, cudaMemcpyHostToDevice));
    w4a16_pack_cuda(out, mem, d, 0); /* owned by the weights from here (out->tiles) */
    CUDA_CHECK(cudaStreamSynchronize(0));
    CUDA_CHECK(cudaFree(stage));
    *bytes += packed;
    return 0;
}

/* Converts n host floats into dst (dtype dt) through the device float32 buffer d_tmp of
 * chunk floats. */
static void upload_f32_via(void *dst, const float *src, size_t n, folio_dtype dt, float *d_tmp,
                           size_t chunk) {
    if (dt == DTYPE_F32) {
        CUDA_CHECK(cudaMemcpy(dst, src, n * sizeof(float), cudaMemcpyHostToDevice));
        return;
    }
    for (size_t off = 0; off < n; off += chunk) {
        const size_t m = n - off < chunk ? n - off : chunk;
        CUDA_CHECK(cudaMemcpy(d_tmp, src + off, m * sizeof(float), cudaMemcpyHostToDevice));
        convert_f32_cuda((char *)dst + off * dtype_size(dt), d_tmp, (int64_t)m, dt, 0);
        CUDA_CHECK(cudaStreamSynchronize(0));
    }
}

static w4a16_tiles *quant_slot(layer_weights_cuda *l, spec_role r) {
    switch (r) {
    case R_Q: case R_K: case R_V: return &l->q_qkv;
    case R_O: return &l->q_o;
    case R_GATE: case R_UP: return &l->q_gate_up;
    default: return &l->q_down;
    }
}

static fp8_matrix *fp8_slot(layer_weights_cuda *l, spec_role r) {
    switch (r) {
    case R_Q: case R_K: case R_V: return &l->f_qkv;
    case R_O: return &l->f_o;
    case R_GATE: case R_UP: return &l->f_gate_up;
    default: return &l->f_down;
    }
}

/* This rank's shard of the FP8 Linear weight s: read, or drawn (a dummy FP8 model). */
static int fp8_part(quant_loader *ql, const model_config *cfg, const load_options *opt,
                    const tensor_spec *s, int world, fp8_matrix *part) {
    if (opt->format == LOAD_DUMMY)
        return fp8_dummy_matrix(&cfg->quant, opt->dummy_seed, s, world, part);
    return fp8_load_matrix(ql, s, part);
}

/* The shape of a dummy 4-bit Linear weight's shard (arrays NULL: drawn on the device from
 * *shard by upload_quant). */
static int dummy_part(const model_config *cfg, const load_options *opt, const tensor_spec *s,
                      int world, quant_matrix *part, qd_shard *shard) {
    if (quant_dummy_plan(&cfg->quant, opt->dummy_seed, s, world, shard) != 0) return -1;
    *part = (quant_matrix){.rows = shard->rows, .cols = shard->cols, .in_cols = shard->cols,
                           .bits = 4, .group_size = shard->group_size};
    return 0;
}

/* A quantized checkpoint (LOAD_AUTO): the dense arena holds every tensor but the 4-bit layer
 * Linear weights (in spec order, so the fused biases stay adjacent); those load as
 * quant_matrix and upload (q|k|v and gate|up concatenated); quantized tensors elsewhere (a
 * quantized LM head) are dequantized into the arena. A dummy 4-bit model (LOAD_DUMMY,
 * QUANT_DUMMY) takes the same path with nothing read: the dense tensors are drawn on the device
 * as dense dummy weights, the 4-bit ones from their quant_dummy.h shards. */
static int load_quantized(const char *dir, const model_config *cfg, const load_options *opt,
                          tensor_spec *specs, int n, const model_weights *shadow,
                          cuda_weights *w) {
    const folio_dtype dt = w->dtype;
    const size_t esz = dtype_size(dt);
    bool *isq = folio_xcalloc((size_t)n, sizeof *isq), *gq = folio_xcalloc((size_t)n, sizeof *gq);
    spec_role *role = folio_xcalloc((size_t)n, sizeof *role);
    int *layer = folio_xcalloc((size_t)n, sizeof *layer);
    size_t dense = 0, max_floats = 1;
    uint64_t total_bytes = 0;
    int rc = 0;
    for (int i = 0; i < n; i++) {
        isq[i] = quant_spec_quantized(&cfg->quant, &specs[i]) != 0;
        role[i] = role_of(shadow, cfg->n_layers, &specs[i], &layer[i]);
        gq[i] = isq[i] && role[i] != R_OTHER;
        const size_t fl = tensor_spec_floats(&specs[i]);
        total_bytes += fl * sizeof(float);
        if (!gq[i]) dense += fl;
        if (fl > max_floats) max_floats = fl;
    }
    /* q/k/v and gate/up are fused: all quantized or none (spec order: q, k, v; gate, up) */
    for (int i = 0; i < n && rc == 0; i++) {
        const int m = role[i] == R_Q ? 3 : role[i] == R_GATE ? 2 : 1;
        for (int k = 1; k < m && rc == 0; k++)
            if (i + k >= n || role[i + k] != role[i] + k || gq[i + k] != gq[i])
                rc = folio_fail("--device cuda: layer %d: %s is %squantized but %s is not "
                                "alike: the GPU fuses q/k/v and gate/up (use --device cpu)",
                                layer[i], specs[i].name, gq[i] ? "" : "not ",
                                i + k < n ? specs[i + k].name : "its partner");
    }
    size_t qbytes = 0;
    if (rc == 0) rc = alloc_arena(w, dense * esz);
    if (rc == 0) {
        size_t off = 0;
        for (int i = 0; i < n; i++) {
            if (gq[i]) {
                *specs[i].dest = NULL;
                continue;
            }
            *specs[i].dest = (float *)((char *)w->arena + off * esz);
            off += tensor_spec_floats(&specs[i]);
        }
        w->layers = folio_xcalloc(cfg->n_layers, sizeof *w->layers);
    }
    safetensors_model m = {0};
    const bool dummy = opt->format == LOAD_DUMMY;
    const bool fp8 = cfg->quant.method == QUANT_FP8;
    if (rc == 0 && !dummy) rc = safetensors_open_dir(dir, &m);
    if (rc == 0) {
        rc = weights_check_layers(&m, cfg);
        quant_loader ql = {.st = &m, .dir = dir, .qc = &cfg->quant, .world = w->shard.world};
        const size_t chunk = max_floats < ((size_t)16 << 20) ? max_floats : (size_t)16 << 20;
        float *host = folio_xmalloc(max_floats * sizeof(float));
        float *d_tmp = NULL;
        CUDA_CHECK(cudaMalloc((void **)&d_tmp, chunk * sizeof(float)));
        quant_matrix parts[3];
        fp8_matrix fparts[3];
        qd_shard shards[3];
        const char *first_name = "";
        int np = 0;
        progress_bar bar;
        progress_start(&bar, "loading", total_bytes, "B", opt->show_progress);
        for (int i = 0; i < n && rc == 0; i++) {
            const tensor_spec *s = &specs[i];
            const size_t fl = tensor_spec_floats(s);
            if (!gq[i] && dummy) {
                fill_spec_dummy(s, *s->dest, opt->dummy_seed, dt);
            } else if (!gq[i]) {
                if (isq[i] && fp8) {
                    fp8_matrix fm;
                    rc = fp8_load_matrix(&ql, s, &fm);
                    if (rc == 0) {
                        fp8_matrix_dequantize(&fm, host);
                        fp8_matrix_free(&fm);
                    }
                } else if (isq[i]) {
                    quant_matrix qm;
                    rc = quant_load_matrix(&ql, s, &qm);
                    if (rc == 0) {
                        quant_matrix_dequantize(&qm, host);
                        quant_matrix_free(&qm);
                    }
                } else {
                    rc = weights_read_spec(dir, &m, s, host);
                }
                if (rc == 0) upload_f32_via(*s->dest, host, fl, dt, d_tmp, chunk);
            } else if (fp8) {
                if (np == 0) first_name = s->name;
                rc = fp8_part(&ql, cfg, opt, s, w->shard.world, &fparts[np]);
                if (rc != 0) break;
                np++;
                const bool fused = role[i] != R_O && role[i] != R_DOWN;
                const bool last = role[i] == R_V || role[i] == R_UP || !fused;
                if (last) {
                    char name[300];
                    snprintf(name, sizeof name, "%s%s", first_name,
                             np > 1 ? (role[i] == R_V ? " (fused with k_proj, v_proj)"
                                                      : " (fused with up_proj)") : "");
                    rc = weights_cuda_upload_fp8(fparts, np, name,
                                                 fp8_slot(&w->layers[layer[i]], role[i]), &qbytes);
                    const fp8_matrix *d = fp8_slot(&w->layers[layer[i]], role[i]);
                    if (rc == 0 && (size_t)d->cols > w->fp8_max_cols) w->fp8_max_cols = d->cols;
                    for (int k = 0; k < np; k++) fp8_matrix_free(&fparts[k]);
                    np = 0;
                }
            } else {
                if (np == 0) first_name = s->name;
                rc = dummy ? dummy_part(cfg, opt, s, w->shard.world, &parts[np], &shards[np])
                           : quant_load_matrix(&ql, s, &parts[np]);
                if (rc != 0) break;
                np++;
                const bool fused = role[i] != R_O && role[i] != R_DOWN;
                rc = check_gpu_quant(&parts[np - 1], s->name, fused, dt);
                const bool last = role[i] == R_V || role[i] == R_UP || !fused;
                if (rc == 0 && last) {
                    char name[300];
                    snprintf(name, sizeof name, "%s%s", first_name,
                             np > 1 ? (role[i] == R_V ? " (fused with k_proj, v_proj)"
                                                      : " (fused with up_proj)") : "");
                    rc = upload_quant(parts, dummy ? shards : NULL, np, name, dt,
                                      quant_slot(&w->layers[layer[i]], role[i]), &qbytes);
                    const w4a16_tiles *d = quant_slot(&w->layers[layer[i]], role[i]);
                    const size_t el = (size_t)d->rows * (size_t)d->cols;
                    if (rc == 0 && el > w->quant_scratch_elems) w->quant_scratch_elems = el;
                }
                if (last || rc != 0) {
                    for (int k = 0; k < np; k++) quant_matrix_free(&parts[k]);
                    np = 0;
                }
            }
            if (rc == 0) progress_add(&bar, fl * sizeof(float));
        }
        for (int k = 0; k < np; k++) {
            if (fp8) fp8_matrix_free(&fparts[k]);
            else quant_matrix_free(&parts[k]);
        }
        progress_finish(&bar);
        CUDA_CHECK(cudaDeviceSynchronize());
        CUDA_CHECK(cudaFree(d_tmp));
        free(host);
        if (!dummy) safetensors_close(&m);
        if (rc == 0 && ql.note[0] && w->shard.rank == 0)
            fprintf(stderr, "folio: warning: %s\n", ql.note);
    }
    w->bytes += qbytes;
    free(isq);
    free(gq);
    free(role);
    free(layer);
    return rc;
}

int weights_cuda_load(const char *dir, const model_config *cfg, const shard_plan *shard,
                      const load_options *opt, folio_dtype dtype, cuda_weights *w) {
    memset(w, 0, sizeof *w);
    w->n_layers = cfg->n_layers;
    w->dtype = dtype;
    w->shard = *shard;
    model_weights shadow = {0};
    int n = 0;
    tensor_spec *specs = weights_specs(cfg, shard, &shadow, &n);
    if (cfg->quant.method != QUANT_NONE) {
        int rc = load_quantized(dir, cfg, opt, specs, n, &shadow, w);
        if (rc == 0) fuse_layers(cfg, &shadow, w);
        free(specs);
        free(shadow.layers);
        if (rc != 0) weights_cuda_free(w);
        return rc;
    }
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
    if (w->layers)
        for (int i = 0; i < w->n_layers; i++) {
            layer_weights_cuda *l = &w->layers[i];
            w4a16_tiles *q[] = {&l->q_qkv, &l->q_o, &l->q_gate_up, &l->q_down};
            fp8_matrix *f[] = {&l->f_qkv, &l->f_o, &l->f_gate_up, &l->f_down};
            for (int k = 0; k < 4; k++) {
                if (q[k]->tiles) CUDA_CHECK(cudaFree(q[k]->tiles));
                if (f[k]->w) CUDA_CHECK(cudaFree(f[k]->w));
            }
        }
    free(w->layers);
    memset(w, 0, sizeof *w);
}

#else
typedef int folio_weights_cuda_unused; /* built without CUDA */
#endif
