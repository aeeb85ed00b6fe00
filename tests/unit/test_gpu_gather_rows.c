/* Check of gather_rows_cuda (kernels/gather_rows.cu) against gather_rows_cpu: random rows
 * (repeats allowed), float32 / bfloat16 / float16, 16-, 4- and 2-byte row paths. Skips (77)
 * without a GPU. */
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

static void check_case(int n, int m, int dim, folio_dtype t) {
    float *x = gpu_test_rand((size_t)n * dim, -1, 1, t);
    int32_t *rows = folio_xmalloc(sizeof *rows * m);
    for (int i = 0; i < m; i++) rows[i] = (int32_t)gpu_test_urand(0, (float)n);
    void *d_x = gpu_test_to_device(x, (size_t)n * dim, t), *d_out = NULL;
    int32_t *d_rows = NULL;
    CUDA_CHECK(cudaMalloc((void **)&d_rows, sizeof *rows * m));
    CUDA_CHECK(cudaMemcpy(d_rows, rows, sizeof *rows * m, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMalloc(&d_out, (size_t)m * dim * dtype_size(t)));
    gather_rows_cuda(d_out, d_x, d_rows, m, dim, t, 0);
    float *got = folio_xmalloc(sizeof(float) * m * dim), *want = folio_xmalloc(sizeof(float) * m * dim);
    gpu_test_from_device(got, d_out, (size_t)m * dim, t);
    gather_rows_cpu(want, x, rows, m, dim);
    char what[64];
    snprintf(what, sizeof what, "%s n=%d m=%d dim=%d", dtype_name(t), n, m, dim);
    assert_int_equal(gpu_test_mismatches(what, got, want, (size_t)m * dim, 0, 0), 0);
    CUDA_CHECK(cudaFree(d_out));
    CUDA_CHECK(cudaFree(d_rows));
    CUDA_CHECK(cudaFree(d_x));
    free(got);
    free(want);
    free(rows);
    free(x);
}

static void test_gather_rows(void **state) {
    (void)state;
    const folio_dtype types[] = {DTYPE_F32, DTYPE_BF16, DTYPE_F16};
    for (int i = 0; i < 3; i++) {
        check_case(1, 1, 1, types[i]);
        check_case(10, 3, 5, types[i]);
        check_case(300, 64, 4096, types[i]);
        check_case(7, 7, 4098, types[i]);
    }
}

int main(void) {
    if (gpu_test_skip()) return 77;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_gather_rows)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#endif
