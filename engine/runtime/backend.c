/* The one place that chooses a device (see backend.h): opening a model onto it, sizing its KV
 * pool, building its backend. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_cpu.h"
#include "error.h"
#include "fault.h"
#include "kv_cache.h"
#include "kv_capacity.h"
#include "progress.h"
#ifdef FOLIO_HAVE_CUDA
#include "backend_cuda.h"
#include "cuda_check.h"
#include "nccl_comm.h"
#include "weights_cuda.h"
#endif

struct backend {
    device_kind device;
    backend_cpu cpu;
#ifdef FOLIO_HAVE_CUDA
    backend_cuda cuda;
#endif
};

/* ---- opening a model onto its device ---- */

#ifdef FOLIO_HAVE_CUDA
/* --dtype auto on the GPU: the checkpoint's 16-bit type, bfloat16 for float32 files. */
static folio_dtype gpu_dtype(const device_options *o, const model_config *c) {
    if (!o->dtype_auto) return o->dtype;
    return c->dtype == DTYPE_F16 ? DTYPE_F16 : DTYPE_BF16;
}

static int open_gpu(const char *dir, const device_options *o, comm_ctx *comm,
                    device_model *dm) {
    const double t0 = folio_now();
    /* the config (and a dummy 4-bit model's group sizes) first: its errors do not need a GPU */
    if (model_open_config(dir, &o->quant, comm->rank, comm->world, &dm->m) != 0) return -1;
    const char *why = "";
    if (cuda_device_count_or_zero(&why) == 0)
        return folio_fail("--device cuda: no CUDA device (%s); use --device cpu", why);
    int device = 0; /* this rank's GPU (local rank k: GPU k) before anything is allocated */
    if (comm_select_gpu(comm, &device) != 0) return -1;
    cuda_weights *w = folio_xcalloc(1, sizeof *w);
    load_options opt = {.format = o->format, .show_progress = comm->rank == 0, .dummy_seed = 0};
    dm->dtype = gpu_dtype(o, &dm->m.cfg);
    if (weights_cuda_load(dir, &dm->m.cfg, &dm->m.shard, &opt, dm->dtype, w) != 0) {
        free(w);
        return -1;
    }
    dm->gpu_weights = w;
    if (comm->rank == 0) {
        char bytes[32];
        fprintf(stderr, "folio: loaded %s %s on the GPU: %s as %s, %.2f s%s\n",
                dm->m.cfg.arch_name, dir, format_bytes((double)w->bytes, bytes, sizeof bytes),
                dtype_name(dm->dtype), folio_now() - t0,
                o->format == LOAD_DUMMY ? " (dummy weights)" : "");
    }
    return 0;
}
#endif

/* Quantized checkpoints on the GPU: 4-bit weights (AWQ, GPTQ, compressed-tensors) with group
 * sizes that are multiples of 32 (or per channel), no act-order, run in bfloat16 or float16
 * (weights_cuda keeps them packed; it checks each matrix, naming the layer). Refused here,
 * before loading, with the reason: 8-bit, act-order, other group sizes, --dtype float32. A
 * config that does not parse is left to the normal path to report. */
static int refuse_quantized_gpu(const char *dir, const device_options *o) {
    model_config c;
    if (model_config_load(dir, &c) != 0) {
        folio_clear_error();
        return 0;
    }
    const quant_config q = c.quant;
    const char *method = quant_method_name(q.method);
    int rc = 0;
    if (q.method == QUANT_NONE)
        rc = 0;
    else if (q.method == QUANT_FP8)
        rc = !o->dtype_auto && o->dtype != DTYPE_BF16 && o->dtype != DTYPE_F16
                 ? folio_fail("--device cuda: FP8 weights run with bfloat16 or float16 "
                              "activations on the GPU, not %s (%s; use --dtype bfloat16)",
                              dtype_name(o->dtype), dir)
                 : 0;
    else if (q.bits != 4)
        rc = folio_fail("--device cuda: %d-bit weights are not supported on the GPU yet (%s: "
                        "quant_method %s; use --device cpu, which dequantizes them at load)",
                        q.bits, dir, method);
    else if (q.act_order)
        rc = folio_fail("--device cuda: act-order 4-bit weights (GPTQ desc_act, "
                        "compressed-tensors actorder) are not supported on the GPU yet: q/k/v "
                        "and gate/up are fused there (%s: quant_method %s; use --device cpu)",
                        dir, method);
    else if (q.group_size > 0 && q.group_size % 32 != 0)
        rc = folio_fail("--device cuda: 4-bit group size %d is not supported on the GPU (a "
                        "multiple of 32 is; %s: quant_method %s; use --device cpu)",
                        q.group_size, dir, method);
    else if (!o->dtype_auto && o->dtype != DTYPE_BF16 && o->dtype != DTYPE_F16)
        rc = folio_fail("--device cuda: 4-bit weights run in bfloat16 or float16 on the GPU, "
                        "not %s (%s: quant_method %s; use --dtype bfloat16 or float16)",
                        dtype_name(o->dtype), dir, method);
    model_config_free(&c);
    return rc;
}

/* --kv-cache-dtype fp8: the per-layer scales (the checkpoint's, else 1.0 with a warning). */
static int open_kv_fp8(const char *dir, const device_options *o, comm_ctx *comm,
                       device_model *dm) {
    if (kv_scales_load(dir, &dm->m.cfg, o->format == LOAD_DUMMY, &dm->kv_scales) != 0)
        return -1;
    dm->kv_fp8 = true;
    if (comm->rank == 0 && dm->kv_scales.found < dm->m.cfg.n_layers && o->format != LOAD_DUMMY)
        fprintf(stderr, "folio: warning: --kv-cache-dtype fp8: %s has K/V scales for %d of %d "
                        "layers (model.layers.N.self_attn.k_scale / v_scale); the others use "
                        "1.0 (values beyond +-448 saturate)\n",
                dir, dm->kv_scales.found, dm->m.cfg.n_layers);
    return 0;
}

int device_model_open(const char *dir, const device_options *o, comm_ctx *comm,
                      device_model *dm) {
    memset(dm, 0, sizeof *dm);
    dm->device = o->device;
    dm->enforce_eager = o->enforce_eager;
    dm->allreduce_nccl = o->allreduce_nccl;
    int rc;
    if (o->device == DEVICE_CUDA && o->kv_fp8 && !o->dtype_auto && o->dtype != DTYPE_BF16 &&
        o->dtype != DTYPE_F16) {
        rc = folio_fail("--kv-cache-dtype fp8: the GPU's attention reads an FP8 cache for "
                        "bfloat16 and float16 models, not --dtype %s (use --dtype bfloat16, or "
                        "--device cpu)", dtype_name(o->dtype));
    } else if (o->device == DEVICE_CUDA && !o->quant.w4a16 && refuse_quantized_gpu(dir, o) != 0) {
        rc = -1;
    } else if (o->device == DEVICE_CUDA) {
#ifdef FOLIO_HAVE_CUDA
        rc = open_gpu(dir, o, comm, dm);
#else
        rc = folio_fail("--device cuda: this folio was built without CUDA; use --device cpu");
#endif
    } else {
        dm->dtype = DTYPE_F32;
        rc = model_open(dir, o->format, &o->quant, comm->rank, comm->world, o->verbose,
                        &dm->m);
    }
    if (rc == 0 && o->kv_fp8) rc = open_kv_fp8(dir, o, comm, dm);
    if (rc != 0) device_model_close(dm);
    return rc;
}

void device_model_close(device_model *dm) {
#ifdef FOLIO_HAVE_CUDA
    if (dm->gpu_weights) weights_cuda_free(dm->gpu_weights);
#endif
    free(dm->gpu_weights);
    kv_scales_free(&dm->kv_scales);
    model_close(&dm->m);
    memset(dm, 0, sizeof *dm);
}

/* ---- the KV pool ---- */

int backend_kv_blocks(const device_model *dm, const comm_ctx *comm, const backend_sizes *s,
                      const kv_knobs *k, int *blocks, size_t *block_bytes, int *memory_blocks) {
    const model_config *c = &dm->m.cfg;
    const long long per_seq = (s->max_model_len + s->block_size - 1) / s->block_size;
    const long long useful = (long long)s->max_seqs * per_seq;
    kv_capacity_in in = {
        .utilization = k->utilization, .kv_cache_memory = k->kv_cache_memory,
        .num_blocks_override = k->num_blocks_override,
        .block_bytes = kv_cache_block_bytes(c->n_layers, s->block_size, dm->m.shard.n_kv_heads,
                                            c->head_dim, dm->kv_fp8 ? 1 : dtype_size(dm->dtype)),
        .max_useful_blocks = (int)(useful < (1 << 30) ? useful : (1 << 30))};
    *block_bytes = in.block_bytes;
    if (fault_check("kv", comm->rank, -1) != 0) return -1;
    if (dm->device == DEVICE_CUDA) {
#ifdef FOLIO_HAVE_CUDA
        in.workspace_bytes = backend_cuda_workspace_bytes(dm, s);
        if (backend_cuda_memory(&in.total_bytes, &in.free_bytes) != 0) return -1;
#endif
    } else {
        in.workspace_bytes = backend_cpu_workspace_bytes(c, s->max_tokens, s->max_logits,
                                                         s->max_model_len);
        /* host memory: needed to size the pool, and read anyway (when it can be) to check that
         * the workspace fits */
        const bool sized = k->num_blocks_override > 0 || k->kv_cache_memory > 0;
        if (kv_capacity_host_memory(&in.total_bytes, &in.free_bytes) != 0) {
            if (!sized) return -1;
            folio_clear_error();
            in.total_bytes = in.free_bytes = 0;
        }
        in.total_bytes /= (size_t)comm->local_size;
        in.free_bytes /= (size_t)comm->local_size;
    }
    if (kv_capacity_blocks(&in, blocks) != 0) return -1;
    if (memory_blocks) {
        in.max_useful_blocks = 0; /* the same sizing without the cap: cannot fail now */
        if (kv_capacity_blocks(&in, memory_blocks) != 0) return -1;
    }
    return 0;
}

/* ---- the backend ---- */

backend *backend_create(const device_model *dm, comm_ctx *comm, const backend_sizes *s) {
    backend *b = folio_xcalloc(1, sizeof *b);
    b->device = dm->device;
    int rc;
#ifdef FOLIO_HAVE_CUDA
    if (dm->device == DEVICE_CUDA)
        rc = backend_cuda_create(&b->cuda, dm, comm, s);
    else
#endif
        rc = backend_cpu_create(&b->cpu, &dm->m, comm, s->num_blocks, s->block_size,
                                s->max_tokens, s->max_logits, s->max_model_len,
                                dm->kv_fp8 ? &dm->kv_scales : NULL);
    if (rc != 0) {
        free(b);
        return NULL;
    }
    return b;
}

engine_backend backend_iface(backend *b) {
#ifdef FOLIO_HAVE_CUDA
    if (b->device == DEVICE_CUDA) return backend_cuda_iface(&b->cuda);
#endif
    return backend_cpu_iface(&b->cpu);
}

void backend_free(backend *b) {
    if (!b) return;
#ifdef FOLIO_HAVE_CUDA
    if (b->device == DEVICE_CUDA)
        backend_cuda_free(&b->cuda);
    else
#endif
        backend_cpu_free(&b->cpu);
    free(b);
}
