/* Opening a model on this rank: config, shard plan, weights, and the loading summary. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "fault.h"
#include "model.h"
#include "progress.h"
#ifdef FOLIO_HAVE_CUDA
#include "cuda_check.h"
#include "nccl_comm.h"
#include "weights_cuda.h"
#endif

static const char *arch_label(const model_config *c) { return c->arch_name; }

int model_open(const char *dir, load_format format, comm_ctx *comm, int verbose, model *m) {
    const model_open_options o = {.format = format, .verbose = verbose};
    return model_open_on(dir, &o, comm, m);
}

#ifdef FOLIO_HAVE_CUDA
/* --dtype auto on the GPU: the checkpoint's 16-bit type, bfloat16 for float32 files. */
static folio_dtype gpu_dtype(const model_open_options *o, const model_config *c) {
    if (!o->dtype_auto) return o->dtype;
    return c->dtype == DTYPE_F16 ? DTYPE_F16 : DTYPE_BF16;
}

static int open_gpu(const char *dir, const model_open_options *o, comm_ctx *comm, model *m,
                    double t0) {
    const char *why = "";
    if (cuda_device_count_or_zero(&why) == 0)
        return folio_fail("--device cuda: no CUDA device (%s); use --device cpu", why);
    int device = 0; /* this rank's GPU (local rank k: GPU k) before anything is allocated */
    if (comm_select_gpu(comm, &device) != 0) return -1;
    cuda_weights *w = folio_xcalloc(1, sizeof *w);
    load_options opt = {.format = o->format, .show_progress = comm->rank == 0, .dummy_seed = 0};
    folio_dtype dt = gpu_dtype(o, &m->cfg);
    if (weights_cuda_load(dir, &m->cfg, &m->shard, &opt, dt, w) != 0) {
        free(w);
        return -1;
    }
    m->gpu_weights = w;
    m->gpu_memory_utilization = o->gpu_memory_utilization > 0 ? o->gpu_memory_utilization : 0.90;
    m->enforce_eager = o->enforce_eager;
    m->allreduce_nccl = o->allreduce_nccl;
    if (comm->rank == 0) {
        char bytes[32];
        fprintf(stderr, "folio: loaded %s %s on the GPU: %s as %s, %.2f s%s\n", m->cfg.arch_name,
                dir, format_bytes((double)w->bytes, bytes, sizeof bytes), dtype_name(dt),
                folio_now() - t0, o->format == LOAD_DUMMY ? " (dummy weights)" : "");
    }
    return 0;
}
#endif

int model_open_on(const char *dir, const model_open_options *o, comm_ctx *comm, model *m) {
    load_format format = o->format;
    int verbose = o->verbose;
    memset(m, 0, sizeof *m);
    double t0 = folio_now();
    if (model_config_load(dir, &m->cfg) != 0) return -1;
    if (shard_plan_make(&m->cfg, comm->rank, comm->world, &m->shard) != 0) goto fail;
    if (o->cuda) {
#ifdef FOLIO_HAVE_CUDA
        if (open_gpu(dir, o, comm, m, t0) != 0) goto fail;
        return 0;
#else
        folio_fail("--device cuda: this folio was built without CUDA; use --device cpu");
        goto fail;
#endif
    }
    load_options opt = {.format = format, .show_progress = comm->rank == 0, .dummy_seed = 0};
    if (weights_load(dir, &m->cfg, &m->shard, &opt, &m->weights) != 0) goto fail;
    if (fault_check("load", comm->rank, -1) != 0) {
        weights_free(&m->weights);
        goto fail;
    }
    if (comm->rank == 0) {
        char params[32], bytes[32];
        long long n = model_config_param_count(&m->cfg);
        fprintf(stderr, "folio: loaded %s %s: %s parameters, %s as float32 on %d rank%s, "
                        "%.2f s%s\n", arch_label(&m->cfg), dir,
                format_count((double)n, params, sizeof params),
                format_bytes((double)m->weights.arena_floats * sizeof(float), bytes,
                             sizeof bytes),
                comm->world, comm->world > 1 ? "s (this rank's share)" : "",
                folio_now() - t0, format == LOAD_DUMMY ? " (dummy weights)" : "");
        if (verbose)
            fprintf(stderr, "folio: %d layers, hidden %d, heads %d (kv %d, head_dim %d), ffn %d, "
                            "vocab %d, context %d, rope theta %g\n", m->cfg.n_layers,
                    m->cfg.hidden, m->cfg.n_heads, m->cfg.n_kv_heads, m->cfg.head_dim,
                    m->cfg.intermediate, m->cfg.vocab, m->cfg.max_position, m->cfg.rope.theta);
    }
    return 0;
fail:
    model_config_free(&m->cfg);
    memset(m, 0, sizeof *m);
    return -1;
}

void model_close(model *m) {
#ifdef FOLIO_HAVE_CUDA
    if (m->gpu_weights) weights_cuda_free(m->gpu_weights);
#endif
    free(m->gpu_weights);
    weights_free(&m->weights);
    model_config_free(&m->cfg);
    memset(m, 0, sizeof *m);
}
