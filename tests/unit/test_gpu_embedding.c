/* Check and timing of embedding_cuda (kernels/embedding.cu) against embedding_cpu, in float32,
 * bfloat16 and float16, with ids inside and outside this rank's vocabulary rows (vocab
 * parallel), row sizes that take the 16-, 4- and 2-byte paths; then GB/s (read + write of the
 * rows) on the Llama-3-8B shape. Skips (77) without a GPU. */
#include <stdio.h>

#ifndef FOLIO_HAVE_CUDA
int main(void) {
    printf("SKIPPED: no CUDA device (built without CUDA)\n");
    return 77;
}
#else

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "cuda_check.h"
#include "error.h"
#include "gpu_test_util.h"
#include "kernels_cpu.h"
#include "kernels_cuda.h"

static void check_case(int n, int dim, int n_rows, int row_start, folio_dtype t) {
    float *table = gpu_test_rand((size_t)n_rows * dim, -1, 1, t);
    int32_t *ids = folio_xmalloc(sizeof *ids * n);
    for (int i = 0; i < n; i++) ids[i] = (int32_t)gpu_test_urand(0, (float)(row_start + n_rows + 5));
    void *d_table = gpu_test_to_device(table, (size_t)n_rows * dim, t), *d_out = NULL;
    int32_t *d_ids = NULL;
    CUDA_CHECK(cudaMalloc((void **)&d_ids, sizeof *ids * n));
    CUDA_CHECK(cudaMemcpy(d_ids, ids, sizeof *ids * n, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMalloc(&d_out, (size_t)n * dim * dtype_size(t)));
    CUDA_CHECK(cudaMemset(d_out, 0x7f, (size_t)n * dim * dtype_size(t))); /* poison */
    embedding_cuda(d_out, d_table, d_ids, n, dim, row_start, n_rows, t, 0);
    float *got = folio_xmalloc(sizeof(float) * n * dim), *want = folio_xmalloc(sizeof(float) * n * dim);
    gpu_test_from_device(got, d_out, (size_t)n * dim, t);
    embedding_cpu(want, table, ids, n, dim, row_start, n_rows);
    char what[96];
    snprintf(what, sizeof what, "%s n=%d dim=%d rows=%d+%d", dtype_name(t), n, dim, row_start,
             n_rows);
    assert_int_equal(gpu_test_mismatches(what, got, want, (size_t)n * dim, 0, 0), 0);
    CUDA_CHECK(cudaFree(d_out));
    CUDA_CHECK(cudaFree(d_ids));
    CUDA_CHECK(cudaFree(d_table));
    free(got);
    free(want);
    free(ids);
    free(table);
}

static void test_embedding(void **state) {
    (void)state;
    const folio_dtype types[] = {DTYPE_F32, DTYPE_BF16, DTYPE_F16};
    for (int i = 0; i < 3; i++) {
        check_case(1, 1, 7, 0, types[i]);
        check_case(5, 3, 9, 4, types[i]);
        check_case(17, 64, 300, 0, types[i]);
        check_case(33, 4096, 1000, 500, types[i]);
        check_case(3, 4098, 50, 0, types[i]);
    }
}

typedef struct {
    void *out, *table;
    int32_t *ids;
    int n, dim;
} bench_args;

static void run_bench(void *p) {
    bench_args *a = p;
    embedding_cuda(a->out, a->table, a->ids, a->n, a->dim, 0, 128256, DTYPE_BF16, 0);
}

static void bench(void) {
    bench_args a = {.n = 2048, .dim = 4096};
    const size_t vocab = 128256;
    CUDA_CHECK(cudaMalloc(&a.table, vocab * a.dim * 2));
    CUDA_CHECK(cudaMemset(a.table, 1, vocab * a.dim * 2));
    CUDA_CHECK(cudaMalloc(&a.out, (size_t)a.n * a.dim * 2));
    int32_t *ids = folio_xmalloc(sizeof *ids * a.n);
    for (int i = 0; i < a.n; i++) ids[i] = (int32_t)gpu_test_urand(0, (float)vocab);
    CUDA_CHECK(cudaMalloc((void **)&a.ids, sizeof *ids * a.n));
    CUDA_CHECK(cudaMemcpy(a.ids, ids, sizeof *ids * a.n, cudaMemcpyHostToDevice));
    const double ms = gpu_test_time_ms(run_bench, &a, 3, 20);
    const double bytes = 2.0 * a.n * a.dim * 2;
    printf("bench embedding_cuda bfloat16 n=%d dim=%d: median %.4f ms (%.0f GB/s)\n", a.n, a.dim,
           ms, bytes / (ms * 1e-3) * 1e-9);
    CUDA_CHECK(cudaFree(a.ids));
    CUDA_CHECK(cudaFree(a.out));
    CUDA_CHECK(cudaFree(a.table));
    free(ids);
}

int main(void) {
    if (gpu_test_skip()) return 77;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_embedding)};
    const int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (!failed && gpu_test_bench_enabled()) bench();
    return failed;
}
#endif
