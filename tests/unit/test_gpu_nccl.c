/* The device collectives under MPI. NCCL (comm/nccl_comm.c): correctness of the all-reduce
 * (sum, in place) and the all-gather the forward uses, then their bus bandwidth from 8 KB to
 * 256 MB, nccl-tests style: algorithm bandwidth = bytes / time (the slowest rank's time), bus
 * bandwidth = algbw x 2(n-1)/n for all-reduce and algbw x (n-1)/n for all-gather (bytes = the
 * gathered size). The one-shot all-reduce over peer memory (kernels/oneshot_allreduce.h,
 * comm/peer_memory.h): against its CPU twin in float32 and bfloat16, every rank's output
 * bit-identical, thousands of calls back to back and replayed from a CUDA graph without a
 * hang, then its time per call against NCCL + add_rmsnorm at decode sizes, both in graphs.
 *
 * Run under mpirun with one rank per GPU: tests/gpu/run_nccl_checks.sh. Exits 77 (skipped,
 * with the reason) built without CUDA, with no GPU, with fewer than 2 GPUs, or with one rank.
 * FOLIO_BENCH=0 keeps the correctness part only. */
#include <stdio.h>

#ifndef FOLIO_HAVE_CUDA

int main(void) {
    printf("SKIPPED: no CUDA device (built without CUDA)\n");
    return 77;
}

#else

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "cuda_check.h"
#include "error.h"
#include "gpu_test_util.h"
#include "kernels_cpu.h"
#include "kernels_cuda.h"
#include "nccl_comm.h"
#include "oneshot_allreduce.h"
#include "peer_memory.h"

static comm_ctx g_comm;

/* Every rank's decision the same way: skip (77) or go on. */
static int should_skip(void) {
    const char *why = NULL;
    int gpus = cuda_device_count_or_zero(&why);
    if (g_comm.world < 2) {
        if (g_comm.rank == 0)
            printf("SKIPPED: one rank; run under mpirun -np 2.. (tests/gpu/run_nccl_checks.sh)\n");
        return 1;
    }
    int lacking = gpus < 2 || gpus < g_comm.local_size, any = 0;
    MPI_Allreduce(&lacking, &any, 1, MPI_INT, MPI_MAX, g_comm.comm);
    if (any && g_comm.rank == 0)
        printf("SKIPPED: needs >= 2 GPUs and one per local rank (this host: %d; %s)\n", gpus,
               gpus ? "" : why);
    return any;
}

/* value element i of rank r contributes: small integers, so float sums are exact */
static float contribution(int r, size_t i) { return (float)(r + 1) + (float)(i % 13); }

/* All-reduce of count floats: checks every element against the exact sum. */
static int check_allreduce(nccl_ctx *n, size_t count) {
    float *h = malloc(sizeof(float) * count), *d = NULL;
    for (size_t i = 0; i < count; i++) h[i] = contribution(n->rank, i);
    CUDA_CHECK(cudaMalloc((void **)&d, sizeof(float) * count));
    CUDA_CHECK(cudaMemcpy(d, h, sizeof(float) * count, cudaMemcpyHostToDevice));
    int rc = nccl_allreduce_sum(n, d, count, ncclFloat32);
    if (rc == 0) rc = nccl_wait(n);
    if (rc == 0) CUDA_CHECK(cudaMemcpy(h, d, sizeof(float) * count, cudaMemcpyDeviceToHost));
    long bad = 0;
    float ranks_sum = (float)(n->world * (n->world + 1) / 2);
    for (size_t i = 0; rc == 0 && i < count; i++) {
        float want = ranks_sum + (float)n->world * (float)(i % 13);
        if (h[i] != want && bad++ < 5)
            fprintf(stderr, "rank %d: allreduce[%zu] = %g, expected %g\n", n->rank, i, h[i], want);
    }
    CUDA_CHECK(cudaFree(d));
    free(h);
    return rc != 0 ? rc : (bad ? -1 : 0);
}

/* All-gather of count floats per rank (in place at recv + rank * count). */
static int check_allgather(nccl_ctx *n, size_t count) {
    size_t total = count * (size_t)n->world;
    float *h = malloc(sizeof(float) * total), *d = NULL;
    for (size_t i = 0; i < count; i++) h[i] = contribution(n->rank, i) * 0.5f;
    CUDA_CHECK(cudaMalloc((void **)&d, sizeof(float) * total));
    CUDA_CHECK(cudaMemcpy(d + count * n->rank, h, sizeof(float) * count, cudaMemcpyHostToDevice));
    int rc = nccl_allgather(n, d + count * n->rank, d, count, ncclFloat32);
    if (rc == 0) rc = nccl_wait(n);
    if (rc == 0) CUDA_CHECK(cudaMemcpy(h, d, sizeof(float) * total, cudaMemcpyDeviceToHost));
    long bad = 0;
    for (int r = 0; rc == 0 && r < n->world; r++)
        for (size_t i = 0; i < count; i++)
            if (h[(size_t)r * count + i] != contribution(r, i) * 0.5f && bad++ < 5)
                fprintf(stderr, "rank %d: allgather[%d][%zu] = %g\n", n->rank, r, i,
                        h[(size_t)r * count + i]);
    CUDA_CHECK(cudaFree(d));
    free(h);
    return rc != 0 ? rc : (bad ? -1 : 0);
}

/* Seconds per operation (the slowest rank's), iters after warm-up, CUDA events. */
static double time_op(nccl_ctx *n, int gather, float *d, size_t count, int iters) {
    cudaEvent_t a, b;
    CUDA_CHECK(cudaEventCreate(&a));
    CUDA_CHECK(cudaEventCreate(&b));
    for (int it = -3; it < iters; it++) {
        if (it == 0) CUDA_CHECK(cudaEventRecord(a, n->stream));
        int rc = gather ? nccl_allgather(n, d + count * n->rank, d, count, ncclFloat32)
                        : nccl_allreduce_sum(n, d, count, ncclFloat32);
        if (rc != 0) return -1;
    }
    CUDA_CHECK(cudaEventRecord(b, n->stream));
    if (nccl_wait(n) != 0) return -1;
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    double mine = ms * 1e-3 / iters, slowest = mine;
    MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, g_comm.comm);
    CUDA_CHECK(cudaEventDestroy(a));
    CUDA_CHECK(cudaEventDestroy(b));
    return slowest;
}

static int bench(nccl_ctx *n) {
    size_t max_bytes = (size_t)256 << 20;
    float *d = NULL;
    CUDA_CHECK(cudaMalloc((void **)&d, max_bytes * (size_t)n->world));
    CUDA_CHECK(cudaMemset(d, 0, max_bytes * (size_t)n->world));
    double nn = n->world;
    if (n->rank == 0)
        printf("%12s %10s %9s %9s   %10s %9s %9s   (%d ranks)\n", "bytes", "ar us", "algbw",
               "busbw", "ag us", "algbw", "busbw", n->world);
    for (size_t bytes = 8 << 10; bytes <= max_bytes; bytes *= 4) {
        size_t count = bytes / sizeof(float);
        int iters = bytes <= (1 << 20) ? 200 : bytes <= (16 << 20) ? 50 : 10;
        double t_ar = time_op(n, 0, d, count, iters);
        /* all-gather: each rank contributes bytes / world, the result is bytes */
        double t_ag = time_op(n, 1, d, count / n->world, iters);
        if (t_ar < 0 || t_ag < 0) return -1;
        double ar_alg = bytes / t_ar * 1e-9, ag_alg = bytes / t_ag * 1e-9;
        if (n->rank == 0)
            printf("%12zu %10.1f %9.2f %9.2f   %10.1f %9.2f %9.2f\n", bytes, t_ar * 1e6, ar_alg,
                   ar_alg * 2 * (nn - 1) / nn, t_ag * 1e6, ag_alg, ag_alg * (nn - 1) / nn);
    }
    CUDA_CHECK(cudaFree(d));
    return 0;
}

/* ---- the one-shot all-reduce ---- */

enum { N_BUFS = 3, SIGNAL_BYTES = 4096, MAX_ROWS = 512, MAX_DIM = 8192 };
_Static_assert(sizeof(oneshot_signal) <= SIGNAL_BYTES, "signal area");

typedef struct {
    peer_memory pm;
    oneshot_peers op[N_BUFS];    /* call k % N_BUFS reads buffer k: the reuse rule */
    void *buf[N_BUFS];           /* this rank's partial sums */
    void *residual, *out, *weight, *bias;
    int calls;
} oneshot_rig;

static size_t buf_bytes(void) { return (size_t)MAX_ROWS * MAX_DIM * sizeof(float); }

static int rig_open(oneshot_rig *r) {
    memset(r, 0, sizeof *r);
    char why[256];
    int rc = peer_memory_open(&r->pm, &g_comm, SIGNAL_BYTES + N_BUFS * buf_bytes(), why,
                              sizeof why);
    if (rc != 0) {
        if (rc == 1) folio_fail("one-shot all-reduce: peer memory not available: %s", why);
        return -1;
    }
    for (int k = 0; k < N_BUFS; k++) {
        const size_t at = SIGNAL_BYTES + (size_t)k * buf_bytes();
        oneshot_peers_init(&r->op[k], r->pm.base, g_comm.world, g_comm.rank, at,
                           60ull * 1000000000ull);
        r->buf[k] = (char *)r->pm.base[g_comm.rank] + at;
    }
    const size_t b = buf_bytes();
    CUDA_CHECK(cudaMalloc(&r->residual, b));
    CUDA_CHECK(cudaMalloc(&r->out, b));
    CUDA_CHECK(cudaMalloc(&r->weight, MAX_DIM * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&r->bias, MAX_DIM * sizeof(float)));
    return 0;
}

static void rig_close(oneshot_rig *r) {
    void *d[] = {r->residual, r->out, r->weight, r->bias};
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) CUDA_CHECK(cudaFree(d[i]));
    CUDA_CHECK(cudaDeviceSynchronize());
    MPI_Barrier(g_comm.comm); /* no rank frees its region while a peer may read it */
    peer_memory_close(&r->pm);
}

/* The next call, on the buffer the rotation gives it. */
static void rig_call(oneshot_rig *r, int k, bool bias, int n, int dim, folio_dtype t,
                     cudaStream_t st) {
    oneshot_allreduce_add_rmsnorm_cuda(&r->op[k], r->residual, r->out, bias ? r->bias : NULL,
                                       r->weight, n, dim, 1e-5f, t, st);
    r->calls++;
}

/* Every rank's bytes of out equal (a checksum compared over ranks). */
static bool same_on_all_ranks(const void *d, size_t bytes) {
    unsigned char *h = malloc(bytes);
    CUDA_CHECK(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost));
    unsigned long long sum = 1469598103934665603ull, lo = 0, hi = 0;
    for (size_t i = 0; i < bytes; i++) sum = (sum ^ h[i]) * 1099511628211ull;
    free(h);
    MPI_Allreduce(&sum, &lo, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, g_comm.comm);
    MPI_Allreduce(&sum, &hi, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, g_comm.comm);
    return lo == hi;
}

/* One call of n rows x dim against reduce_add_rmsnorm_cpu. Every rank draws every rank's
 * partial sums in the same order (the same generator), so each can compute the reference. */
static int check_oneshot(oneshot_rig *r, cudaStream_t st, folio_dtype t, int n, int dim,
                         bool bias) {
    const size_t nd = (size_t)n * dim;
    const int W = g_comm.world;
    float *parts[ONESHOT_MAX_RANKS];
    for (int q = 0; q < W; q++) parts[q] = gpu_test_rand(nd, -1.0f, 1.0f, t);
    float *res = gpu_test_rand(nd, -2.0f, 2.0f, t), *w = gpu_test_rand(dim, 0.5f, 1.5f, t);
    float *b = gpu_test_rand(dim, -0.5f, 0.5f, t);
    const int k = r->calls % N_BUFS;
    const struct { void *dst; const float *src; size_t n; } up[] = {
        {r->buf[k], parts[g_comm.rank], nd}, {r->residual, res, nd}, {r->weight, w, dim},
        {r->bias, b, dim}};
    for (size_t i = 0; i < sizeof up / sizeof up[0]; i++) {
        void *d = gpu_test_to_device(up[i].src, up[i].n, t);
        CUDA_CHECK(cudaMemcpy(up[i].dst, d, up[i].n * dtype_size(t), cudaMemcpyDeviceToDevice));
        CUDA_CHECK(cudaFree(d));
    }
    MPI_Barrier(g_comm.comm); /* every rank's partials are in place (the test's own writes) */
    rig_call(r, k, bias, n, dim, t, st);
    CUDA_CHECK(cudaStreamSynchronize(st));
    float *want_out = malloc(sizeof(float) * nd), *sum = malloc(sizeof(float) * nd);
    float *got_res = malloc(sizeof(float) * nd), *got_out = malloc(sizeof(float) * nd);
    reduce_add_rmsnorm_cpu(res, want_out, sum, (const float *const *)parts, W, bias ? b : NULL,
                           w, n, dim, 1e-5f);
    gpu_test_from_device(got_res, r->residual, nd, t);
    gpu_test_from_device(got_out, r->out, nd, t);
    const double tol = t == DTYPE_F32 ? 1e-5 : 2e-2;
    size_t bad = gpu_test_mismatches("residual", got_res, res, nd, tol, tol) +
                 gpu_test_mismatches("out", got_out, want_out, nd, tol, tol);
    const bool same = same_on_all_ranks(r->out, nd * dtype_size(t)) &&
                      same_on_all_ranks(r->residual, nd * dtype_size(t));
    if (g_comm.rank == 0)
        printf("%s: one-shot all-reduce+norm %s %d x %d%s on %d ranks vs the CPU twin%s\n",
               bad || !same ? "FAIL" : "ok", dtype_name(t), n, dim, bias ? " +bias" : "", W,
               same ? ", bit-identical on every rank" : ", RANKS DIFFER");
    for (int q = 0; q < W; q++) free(parts[q]);
    free(res); free(w); free(b); free(want_out); free(sum); free(got_res); free(got_out);
    return bad || !same ? -1 : 0;
}

/* Many calls back to back, then the same from a captured graph replayed: must neither hang
 * (the barrier traps after 60 s) nor leave the ranks' epochs apart (the check after it). */
static int stress_oneshot(oneshot_rig *r, cudaStream_t st) {
    for (int i = 0; i < 3000; i++)
        rig_call(r, r->calls % N_BUFS, i % 2, 1 + i % 7, 4096, DTYPE_BF16, st);
    CUDA_CHECK(cudaStreamSynchronize(st));
    cudaGraph_t g;
    cudaGraphExec_t ge;
    CUDA_CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < 3 * 20; i++) rig_call(r, r->calls % N_BUFS, false, 64, 4096, DTYPE_BF16, st);
    CUDA_CHECK(cudaStreamEndCapture(st, &g));
    CUDA_CHECK(cudaGraphInstantiate(&ge, g, 0));
    for (int i = 0; i < 50; i++) CUDA_CHECK(cudaGraphLaunch(ge, st));
    CUDA_CHECK(cudaStreamSynchronize(st));
    CUDA_CHECK(cudaGraphExecDestroy(ge));
    CUDA_CHECK(cudaGraphDestroy(g));
    if (g_comm.rank == 0)
        printf("ok: 3000 one-shot calls, then 50 replays of a 60-call graph, no hang\n");
    return 0;
}

/* Microseconds per all-reduce+norm of n x dim bf16 (the slowest rank's), 100 calls captured
 * in one graph (as in a decode step): one-shot, or NCCL + add_rmsnorm. */
static double time_reduce_norm(oneshot_rig *r, nccl_ctx *nc, bool oneshot, int n, int dim) {
    cudaStream_t st = nc->stream;
    enum { CALLS = 100 };
    cudaGraph_t g;
    cudaGraphExec_t ge;
    CUDA_CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < CALLS; i++) {
        const int k = r->calls % N_BUFS;
        if (oneshot) {
            rig_call(r, k, false, n, dim, DTYPE_BF16, st);
        } else {
            if (nccl_allreduce_sum(nc, r->buf[k], (size_t)n * dim, ncclBfloat16) != 0) return -1;
            add_rmsnorm_cuda(r->residual, r->buf[k], r->out, r->weight, n, dim, 1e-5f,
                             DTYPE_BF16, st);
        }
    }
    CUDA_CHECK(cudaStreamEndCapture(st, &g));
    CUDA_CHECK(cudaGraphInstantiate(&ge, g, 0));
    cudaEvent_t a, b;
    CUDA_CHECK(cudaEventCreate(&a));
    CUDA_CHECK(cudaEventCreate(&b));
    CUDA_CHECK(cudaGraphLaunch(ge, st)); /* warm-up */
    CUDA_CHECK(cudaEventRecord(a, st));
    for (int i = 0; i < 5; i++) CUDA_CHECK(cudaGraphLaunch(ge, st));
    CUDA_CHECK(cudaEventRecord(b, st));
    if (nccl_wait(nc) != 0) return -1;
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    double mine = ms * 1e3 / (5.0 * CALLS), slowest = mine;
    MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, g_comm.comm);
    CUDA_CHECK(cudaEventDestroy(a));
    CUDA_CHECK(cudaEventDestroy(b));
    CUDA_CHECK(cudaGraphExecDestroy(ge));
    CUDA_CHECK(cudaGraphDestroy(g));
    return slowest;
}

static int bench_oneshot(oneshot_rig *r, nccl_ctx *nc) {
    static const int shapes[][2] = {{1, 4096}, {1, 8192}, {8, 4096}, {16, 8192}, {64, 4096},
                                    {64, 8192}, {128, 8192}, {256, 8192}, {512, 8192}};
    if (g_comm.rank == 0)
        printf("%10s %10s %14s %14s   (bf16, %d ranks, us per call, 100 calls in a graph)\n",
               "rows x dim", "bytes", "one-shot+norm", "NCCL+norm", g_comm.world);
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int n = shapes[i][0], dim = shapes[i][1];
        const double t1 = time_reduce_norm(r, nc, true, n, dim);
        const double t2 = time_reduce_norm(r, nc, false, n, dim);
        if (t1 < 0 || t2 < 0) return -1;
        if (g_comm.rank == 0)
            printf("%4d x %-5d %10zu %14.2f %14.2f\n", n, dim, (size_t)n * dim * 2, t1, t2);
    }
    return 0;
}

static int run_oneshot(nccl_ctx *nc) {
    oneshot_rig r;
    if (rig_open(&r) != 0) return -1;
    static const struct { folio_dtype t; int n, dim; bool bias; } cases[] = {
        {DTYPE_F32, 1, 64, false}, {DTYPE_F32, 3, 4096, true}, {DTYPE_F32, 100, 1024, false},
        {DTYPE_BF16, 1, 4096, false}, {DTYPE_BF16, 1, 8192, true}, {DTYPE_BF16, 64, 4096, true},
        {DTYPE_BF16, 130, 8192, false}, {DTYPE_F16, 5, 5120, true}};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof cases / sizeof cases[0]; i++)
        rc = check_oneshot(&r, nc->stream, cases[i].t, cases[i].n, cases[i].dim, cases[i].bias);
    if (rc == 0) rc = stress_oneshot(&r, nc->stream);
    if (rc == 0) rc = check_oneshot(&r, nc->stream, DTYPE_BF16, 64, 4096, true); /* after it */
    if (rc == 0 && gpu_test_bench_enabled()) rc = bench_oneshot(&r, nc);
    rig_close(&r);
    return rc;
}

static int run(void) {
    int device;
    if (comm_select_gpu(&g_comm, &device) != 0) return -1;
    cudaStream_t stream;
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    nccl_ctx n;
    if (nccl_init(&n, &g_comm, stream, 120.0) != 0) return -1;
    size_t sizes[] = {1, 7, 4096, 5000, 65536 + 3, (size_t)1 << 22};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof sizes / sizeof sizes[0]; i++) {
        rc = check_allreduce(&n, sizes[i]);
        if (rc == 0) rc = check_allgather(&n, sizes[i]);
        int bad = rc != 0, any = 0;
        MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, g_comm.comm);
        if (g_comm.rank == 0)
            printf("%s: all-reduce and all-gather of %zu floats on %d ranks\n",
                   any ? "FAIL" : "ok", sizes[i], g_comm.world);
        if (any) rc = -1;
    }
    if (rc == 0) rc = run_oneshot(&n);
    if (rc == 0 && gpu_test_bench_enabled()) rc = bench(&n);
    nccl_free(&n);
    CUDA_CHECK(cudaStreamDestroy(stream));
    return rc;
}

int main(int argc, char **argv) {
    if (comm_init(&argc, &argv, &g_comm) != 0) {
        fprintf(stderr, "test_gpu_nccl: %s\n", folio_last_error());
        return 1;
    }
    if (should_skip()) {
        comm_finalize(&g_comm);
        return 77;
    }
    int rc = run();
    if (rc != 0) {
        fprintf(stderr, "test_gpu_nccl: error (rank %d on %s): %s\n", g_comm.rank, g_comm.host,
                folio_last_error());
        comm_abort(&g_comm, 1);
    }
    comm_finalize(&g_comm);
    return 0;
}

#endif
