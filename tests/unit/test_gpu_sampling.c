/* Check of argmax_cuda (kernels/sampling.cu) against sampler_argmax: random rows of several
 * vocabulary sizes, planted maxima at the ends, ties (lowest index wins). Skips (77) without a
 * GPU. */
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
#include "kernels_cuda.h"
#include "sampler.h"

static void check_case(int n, int vocab, int ties) {
    float *l = gpu_test_rand((size_t)n * vocab, -10, 10, DTYPE_F32);
    for (int r = 0; r < n; r++) {
        float *row = l + (size_t)r * vocab;
        if (ties) /* a few coarse values: many ties at the top */
            for (int i = 0; i < vocab; i++) row[i] = (float)(int)(row[i] / 4);
        if (r % 3 == 1) row[vocab - 1] = 100.0f;
        if (r % 3 == 2) row[0] = 100.0f;
    }
    void *d_l = gpu_test_to_device(l, (size_t)n * vocab, DTYPE_F32);
    int32_t *d_ids = NULL, *ids = folio_xmalloc(sizeof *ids * n);
    CUDA_CHECK(cudaMalloc((void **)&d_ids, sizeof *ids * n));
    argmax_cuda(d_ids, d_l, n, vocab, 0);
    CUDA_CHECK(cudaMemcpy(ids, d_ids, sizeof *ids * n, cudaMemcpyDeviceToHost));
    for (int r = 0; r < n; r++) {
        const int want = sampler_argmax(l + (size_t)r * vocab, vocab);
        if (ids[r] != want) fail_msg("n=%d vocab=%d ties=%d row %d: gpu %d cpu %d", n, vocab,
                                     ties, r, ids[r], want);
    }
    CUDA_CHECK(cudaFree(d_ids));
    CUDA_CHECK(cudaFree(d_l));
    free(ids);
    free(l);
}

static void test_argmax(void **state) {
    (void)state;
    check_case(1, 1, 0);
    check_case(3, 256, 0);
    check_case(7, 32000, 0);
    check_case(5, 128256, 0);
    check_case(6, 151936, 1);
    check_case(9, 1000, 1);
}

int main(void) {
    if (gpu_test_skip()) return 77;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_argmax)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#endif
