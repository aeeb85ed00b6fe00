/* Check of attention_simple_cuda (kernels/attention_simple.cu, the backend's temporary
 * attention until the attention branch lands) against paged_attention_cpu: a step mixing
 * prefills (after a cached prefix) and decodes, shuffled non-contiguous block tables, context
 * lengths that are not multiples of the block, GQA/MQA/MHA, sliding windows, float32 /
 * bfloat16 / float16. Skips (77) without a GPU. */
#include <stdio.h>

#ifndef FOLIO_HAVE_CUDA
int main(void) {
    printf("SKIPPED: no CUDA device (built without CUDA)\n");
    return 77;
}
#else

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cuda_check.h"
#include "error.h"
#include "gpu_test_util.h"
#include "kernels_cpu.h"
#include "kernels_cuda.h"

/* CPU [blocks][bs][nkv][hd] -> HND [blocks][nkv][bs][hd] */
static void cpu_to_hnd(float *dst, const float *src, int blocks, int nkv, int bs, int hd) {
    for (int b = 0; b < blocks; b++)
        for (int h = 0; h < nkv; h++)
            for (int s = 0; s < bs; s++)
                memcpy(dst + (((size_t)b * nkv + h) * bs + s) * hd,
                       src + (((size_t)b * bs + s) * nkv + h) * hd, sizeof(float) * hd);
}

static int32_t *to_dev_i32(const int32_t *h, size_t n) {
    int32_t *d = NULL;
    CUDA_CHECK(cudaMalloc((void **)&d, sizeof *h * (n ? n : 1)));
    CUDA_CHECK(cudaMemcpy(d, h, sizeof *h * n, cudaMemcpyHostToDevice));
    return d;
}

static void check_case(int n_seqs, int nh, int nkv, int hd, int window, folio_dtype t) {
    const int bs = 16, max_ctx = 300, max_blocks = (max_ctx + bs - 1) / bs;
    const int blocks = n_seqs * max_blocks + 5;
    int32_t *ctx = folio_xmalloc(sizeof *ctx * n_seqs), *ss = folio_xmalloc(sizeof *ss * (n_seqs + 1));
    ss[0] = 0;
    for (int s = 0; s < n_seqs; s++) {
        ctx[s] = 1 + (int)gpu_test_urand(0, max_ctx);
        const int q_len = s % 2 ? 1 : 1 + (int)gpu_test_urand(0, (float)ctx[s]);
        ss[s + 1] = ss[s] + q_len;
    }
    const int n_tok = ss[n_seqs];
    int32_t *pos = folio_xmalloc(sizeof *pos * n_tok);
    for (int s = 0; s < n_seqs; s++)
        for (int i = ss[s]; i < ss[s + 1]; i++) pos[i] = ctx[s] - (ss[s + 1] - i);
    int32_t *perm = folio_xmalloc(sizeof *perm * blocks), *bt = folio_xmalloc(sizeof *bt * n_seqs * max_blocks);
    for (int i = 0; i < blocks; i++) perm[i] = i;
    for (int i = blocks - 1; i > 0; i--) {
        const int j = (int)gpu_test_urand(0, (float)(i + 1));
        const int tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    for (int i = 0; i < n_seqs * max_blocks; i++) bt[i] = perm[i];
    const size_t cache_len = (size_t)blocks * bs * nkv * hd, q_len = (size_t)n_tok * nh * hd;
    float *kc = gpu_test_rand(cache_len, -1, 1, t), *vc = gpu_test_rand(cache_len, -1, 1, t);
    float *q = gpu_test_rand(q_len, -1, 1, t);
    float *want = folio_xmalloc(sizeof(float) * q_len), *got = folio_xmalloc(sizeof(float) * q_len);
    const float scale = 1.0f / sqrtf((float)hd);
    paged_attention_cpu(want, q, kc, vc, bt, max_blocks, ss, pos, n_seqs, nh, nkv, hd, bs, window,
                        scale);
    float *hnd = folio_xmalloc(sizeof(float) * cache_len);
    cpu_to_hnd(hnd, kc, blocks, nkv, bs, hd);
    void *d_kc = gpu_test_to_device(hnd, cache_len, t);
    cpu_to_hnd(hnd, vc, blocks, nkv, bs, hd);
    void *d_vc = gpu_test_to_device(hnd, cache_len, t);
    void *d_q = gpu_test_to_device(q, q_len, t), *d_out = NULL;
    CUDA_CHECK(cudaMalloc(&d_out, q_len * dtype_size(t)));
    int32_t *d_bt = to_dev_i32(bt, (size_t)n_seqs * max_blocks), *d_ss = to_dev_i32(ss, n_seqs + 1);
    int32_t *d_ctx = to_dev_i32(ctx, n_seqs);
    const paged_attention_params p = {.n_seqs = n_seqs, .n_tokens = n_tok, .max_q_len = max_ctx,
                                      .max_context = max_ctx, .max_blocks = max_blocks,
                                      .n_heads = nh, .n_kv_heads = nkv, .head_dim = hd,
                                      .block_size = bs, .window = window, .scale = scale,
                                      .dtype = t};
    attention_simple_cuda(d_out, d_q, d_kc, d_vc, d_bt, d_ss, d_ctx, &p, 0);
    gpu_test_from_device(got, d_out, q_len, t);
    gpu_test_round(want, q_len, t);
    char what[96];
    snprintf(what, sizeof what, "%s seqs=%d tok=%d h=%d/%d hd=%d win=%d", dtype_name(t), n_seqs,
             n_tok, nh, nkv, hd, window);
    const double tol = t == DTYPE_F32 ? 1e-5 : t == DTYPE_BF16 ? 1.0 / 64 : 1.0 / 512;
    assert_int_equal(gpu_test_mismatches(what, got, want, q_len, tol, tol), 0);
    void *dev[] = {d_kc, d_vc, d_q, d_out, d_bt, d_ss, d_ctx};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) CUDA_CHECK(cudaFree(dev[i]));
    void *host[] = {ctx, ss, pos, perm, bt, kc, vc, q, want, got, hnd};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++) free(host[i]);
}

static void test_attention(void **state) {
    (void)state;
    const folio_dtype types[] = {DTYPE_F32, DTYPE_BF16, DTYPE_F16};
    for (int i = 0; i < 3; i++) {
        check_case(1, 4, 2, 16, 0, types[i]);
        check_case(4, 4, 4, 16, 0, types[i]);
        check_case(5, 8, 1, 64, 0, types[i]);
        check_case(3, 8, 2, 128, 37, types[i]);
        check_case(2, 4, 2, 256, 0, types[i]);
        check_case(6, 32, 8, 128, 0, types[i]);
    }
}

int main(void) {
    if (gpu_test_skip()) return 77;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_attention)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#endif
