/* NCCL under MPI (comm/nccl_comm.c): correctness of the all-reduce (sum, in place) and the
 * all-gather the forward uses, then their bus bandwidth from 8 KB to 256 MB, nccl-tests style:
 * algorithm bandwidth = bytes / time (the slowest rank's time), bus bandwidth = algbw x
 * 2(n-1)/n for all-reduce and algbw x (n-1)/n for all-gather (bytes = the gathered size).
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
#include "nccl_comm.h"

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
    const char *b = getenv("FOLIO_BENCH");
    if (rc == 0 && !(b && strcmp(b, "0") == 0)) rc = bench(&n);
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
