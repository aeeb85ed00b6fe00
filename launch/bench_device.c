/* folio bench's forward and ceilings on the CUDA backend (forward_cuda, timed directly) or the
 * CPU backend (backend_create, argmax on the host); see bench_device.h. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cpu.h"
#include "bench_device.h"
#include "error.h"
#include "kernels_cpu.h"
#include "progress.h"
#ifdef FOLIO_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "backend_cuda.h"
#include "cuda_check.h"
#include "forward_cuda.h"
#include "gemm.h"
#endif

struct bench_device {
    device_kind kind;
    void *forward;               /* CUDA: forward_cuda */
    backend *cpu;                /* CPU: the backend, its interface and logits rows */
    engine_backend iface;
    float *logits;               /* [max_logits][vocab] */
    int vocab, num_blocks;
    bool eager;                  /* CUDA: --enforce-eager */
};

double bench_gemm_params(const model_config *c) {
    const double h = c->hidden, hd = c->head_dim;
    const double per_layer = h * hd * (c->n_heads * 2.0 + c->n_kv_heads * 2.0) +
                             3.0 * h * c->intermediate;
    return per_layer * c->n_layers + h * c->vocab;
}

/* ---- CPU ---- */

/* Best of 4 (after one untimed) of a 128 MiB memcpy (larger than a CPU's last-level cache)
 * and of 3 of a 512^3 float32 matmul_cpu: quick, since a CPU bench is a small model's. */
static int cpu_ceilings(bench_ceilings *c) {
    const size_t bytes = (size_t)128 << 20, n = 512;
    char *a = malloc(bytes), *b = malloc(bytes);
    float *y = malloc(sizeof(float) * n * n);
    if (!a || !b || !y) {
        free(a);
        free(b);
        free(y);
        return folio_fail("bench: no host memory for the 256 MiB ceiling measurement");
    }
    memset(a, 0x3c, bytes); /* float ~0.01: not zeros */
    memset(b, 0, bytes);
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        const double t0 = folio_now();
        memcpy(b, a, bytes);
        const double s = folio_now() - t0;
        if (r > 0 && s < best) best = s;
    }
    c->copy_gbs = 2.0 * bytes / best * 1e-9;
    best = 1e30;
    for (int r = 0; r < 4; r++) {
        const double t0 = folio_now();
        matmul_cpu(y, (const float *)a, (const float *)b + n * n, NULL, (int)n, (int)n, (int)n);
        const double s = folio_now() - t0;
        if (r > 0 && s < best) best = s;
    }
    c->gemm_tflops = 2.0 * n * n * n / best * 1e-12;
    c->gemm_dtype = "float32";
    snprintf(c->name, sizeof c->name, "cpu");
    free(a);
    free(b);
    free(y);
    return 0;
}

/* ---- CUDA ---- */

#ifdef FOLIO_HAVE_CUDA
static float time_ms(cudaEvent_t a, cudaEvent_t b) {
    float ms = 0;
    CUDA_CHECK(cudaEventSynchronize(b));
    CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    return ms;
}

static int cuda_ceilings(bench_ceilings *c) {
    const size_t bytes = (size_t)2 << 30, n = 8192;
    void *a = NULL, *b = NULL, *y = NULL;
    if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) {
        (void)cudaGetLastError();
        if (a) CUDA_CHECK(cudaFree(a));
        return folio_fail("bench: no room for the 4 GiB ceiling measurement (lower "
                          "--gpu-memory-utilization)");
    }
    CUDA_CHECK(cudaMemset(a, 0x3c, bytes)); /* bf16 ~1.2: not zeros */
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    float best = 1e30f;
    for (int r = 0; r < 6; r++) {
        CUDA_CHECK(cudaEventRecord(e0, 0));
        CUDA_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0));
        CUDA_CHECK(cudaEventRecord(e1, 0));
        const float ms = time_ms(e0, e1);
        if (r > 0 && ms < best) best = ms;
    }
    c->copy_gbs = 2.0 * bytes / (best * 1e-3) * 1e-9;
    gemm_ctx *g = gemm_create((size_t)32 << 20);
    if (!g) return -1;
    CUDA_CHECK(cudaMalloc(&y, n * n * 2));
    best = 1e30f;
    for (int r = 0; r < 6; r++) {
        CUDA_CHECK(cudaEventRecord(e0, 0));
        gemm_run(g, y, DTYPE_BF16, a, (char *)a + n * n * 2, NULL, DTYPE_BF16, (int)n, (int)n,
                 (int)n, 0);
        CUDA_CHECK(cudaEventRecord(e1, 0));
        const float ms = time_ms(e0, e1);
        if (r > 0 && ms < best) best = ms;
    }
    c->gemm_tflops = 2.0 * n * n * n / (best * 1e-3) * 1e-12;
    c->gemm_dtype = "bf16";
    gemm_free(g);
    CUDA_CHECK(cudaFree(y));
    CUDA_CHECK(cudaFree(b));
    CUDA_CHECK(cudaFree(a));
    CUDA_CHECK(cudaEventDestroy(e0));
    CUDA_CHECK(cudaEventDestroy(e1));
    struct cudaDeviceProp prop;
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
    snprintf(c->name, sizeof c->name, "%s", prop.name);
    return 0;
}
#endif

int bench_device_ceilings(const device_model *dm, bench_ceilings *c) {
    memset(c, 0, sizeof *c);
#ifdef FOLIO_HAVE_CUDA
    if (dm->device == DEVICE_CUDA) return cuda_ceilings(c);
#endif
    (void)dm;
    return cpu_ceilings(c);
}

double bench_decode_weight_bytes(const device_model *dm) {
    const model_config *c = &dm->m.cfg;
#ifdef FOLIO_HAVE_CUDA
    if (dm->device == DEVICE_CUDA) {
        const cuda_weights *w = dm->gpu_weights;
        const double embed = c->tie_embeddings
                                 ? 0.0
                                 : (double)dm->m.shard.vocab * c->hidden * dtype_size(w->dtype);
        return (double)w->bytes - embed;
    }
#endif
    /* the CPU holds every weight in float32 (quantized checkpoints dequantized), this rank's
     * shard of each */
    return bench_gemm_params(c) / dm->m.shard.world * sizeof(float);
}

/* ---- the forward ---- */

/* The KV pool for sizes s: the smallest of all ranks (block ids must be valid on every rank;
 * every rank fails together when one has no room), at least `need` blocks. -1 with a
 * message. */
static int bench_kv_blocks(const device_model *dm, comm_ctx *comm, double utilization,
                           const backend_sizes *s, int need, int *fewest, size_t *block_bytes) {
    const kv_knobs knobs = {.utilization = utilization};
    int mine = 0;
    if (backend_kv_blocks(dm, comm, s, &knobs, &mine, block_bytes, NULL) != 0) mine = 0;
    *fewest = mine;
    if (comm->world > 1) MPI_CHECK(MPI_Allreduce(&mine, fewest, 1, MPI_INT, MPI_MIN, comm->comm));
    if (mine < 1) return -1; /* the sizer said why */
    if (*fewest < need)
        return folio_fail("bench: room for %d KV blocks of %d tokens%s, %d needed (raise "
                          "--gpu-memory-utilization, or lower --batch-size / --max-num-seqs / "
                          "--max-num-batched-tokens)", *fewest, s->block_size,
                          comm->world > 1 ? " on the smallest rank" : "", need);
    return 0;
}

bench_device *bench_device_open(const device_model *dm, comm_ctx *comm, double utilization,
                                backend_sizes *s, int need) {
    size_t block_bytes = 0;
    if (bench_kv_blocks(dm, comm, utilization, s, need, &s->num_blocks, &block_bytes) != 0)
        return NULL;
    bench_device *d = folio_xcalloc(1, sizeof *d);
    d->kind = dm->device;
    d->num_blocks = s->num_blocks;
    d->vocab = dm->m.cfg.vocab;
    d->eager = dm->enforce_eager;
    size_t ws = 0;
#ifdef FOLIO_HAVE_CUDA
    if (dm->device == DEVICE_CUDA) {
        const forward_cuda_options o = backend_cuda_options(dm, s);
        ws = forward_cuda_workspace_bytes(&dm->m.cfg, dm->gpu_weights, &o);
        d->forward = forward_cuda_create(&dm->m.cfg, dm->gpu_weights, comm, &o);
        if (!d->forward) {
            free(d);
            return NULL;
        }
    }
#endif
    if (dm->device != DEVICE_CUDA) {
        ws = backend_cpu_workspace_bytes(&dm->m.cfg, s->max_tokens, s->max_logits,
                                         s->max_model_len);
        d->cpu = backend_create(dm, comm, s);
        if (!d->cpu) {
            free(d);
            return NULL;
        }
        d->iface = backend_iface(d->cpu);
        d->logits = folio_xmalloc(sizeof(float) * (size_t)s->max_logits * d->vocab);
    }
    if (comm->rank == 0) {
        char kv[32], wsb[32];
        fprintf(stderr, "folio: KV cache: %d blocks of %d tokens (%s%s): %lld tokens; "
                "workspace %s\n", s->num_blocks, s->block_size,
                format_bytes((double)block_bytes * s->num_blocks, kv, sizeof kv),
                comm->world > 1 ? " per rank" : "", (long long)s->num_blocks * s->block_size,
                format_bytes((double)ws, wsb, sizeof wsb));
    }
    return d;
}

int bench_device_step(bench_device *d, const step_plan *p, int32_t *ids) {
#ifdef FOLIO_HAVE_CUDA
    if (d->forward) return forward_cuda_step(d->forward, p, NULL, ids);
#endif
    if (d->iface.step(d->iface.self, p, d->logits) != 0) return -1;
    for (int r = 0; r < p->n_logits; r++) { /* greedy: the first largest logit */
        const float *row = d->logits + (size_t)r * d->vocab;
        int best = 0;
        for (int v = 1; v < d->vocab; v++)
            if (row[v] > row[best]) best = v;
        ids[r] = best;
    }
    return 0;
}

int bench_device_num_blocks(const bench_device *d) {
    return d->num_blocks;
}

const char *bench_device_mode(const bench_device *d) {
#ifdef FOLIO_HAVE_CUDA
    if (d->forward) return d->eager ? "eager" : "CUDA graphs";
#endif
    return "CPU";
}

const char *bench_device_allreduce(const bench_device *d) {
#ifdef FOLIO_HAVE_CUDA
    if (d->forward) return forward_cuda_allreduce_name(d->forward);
#endif
    (void)d;
    return "none";
}

void bench_device_profile_print(bench_device *d, FILE *out) {
#ifdef FOLIO_HAVE_CUDA
    if (d->forward) forward_cuda_profile_print(d->forward, out);
#endif
    (void)d;
    (void)out;
}

void bench_device_close(bench_device *d) {
    if (!d) return;
#ifdef FOLIO_HAVE_CUDA
    if (d->forward) forward_cuda_free(d->forward);
#endif
    if (d->cpu) backend_free(d->cpu);
    free(d->logits);
    free(d);
}
