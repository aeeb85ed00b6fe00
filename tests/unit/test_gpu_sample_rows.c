/* Check of sample_rows_cuda (kernels/sampling.cu) against its host twin sample_rows_cpu:
 * random rows of vocabularies 32000 and 151936, batches of 1 to 256, each option alone
 * (greedy, temperature, top-k, top-p, min-p, penalties, bias + min_tokens) and all combined,
 * flat and peaked rows: the ids must be IDENTICAL (kernels/sample_rows.h says why they can
 * be), the processed rows too, logprobs within 1e-3. A row alone gives what it gives in a
 * batch. Then the time of one step at batch 256 x vocab 128256 (CUDA events, L2 flushed),
 * beside the host twin's. Skips (77) without a GPU. */
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
#include "kernels_cuda.h"
#include "progress.h"
#include "sampler.h"

enum { OPT_GREEDY, OPT_TEMP, OPT_TOPK, OPT_TOPP, OPT_MINP, OPT_PEN, OPT_BIAS, OPT_ALL, OPT_MIXED };
static const char *OPT_NAMES[] = {"greedy", "temperature", "top-k", "top-p", "min-p",
                                  "penalties", "bias+min_tokens", "combined", "mixed"};

typedef struct {
    int n, vocab;
    float *logits;               /* host [n][vocab] */
    sample_row_params *params;   /* [n] */
    sample_entry *entries;
    int n_entries;
} batch;

static uint64_t g_rs = 0x1234567;
static uint32_t rnd(void) {
    g_rs ^= g_rs << 13;
    g_rs ^= g_rs >> 7;
    g_rs ^= g_rs << 17;
    return (uint32_t)(g_rs >> 16);
}

static void make_batch(batch *b, int n, int vocab, int opt, int peaked) {
    b->n = n;
    b->vocab = vocab;
    b->logits = gpu_test_rand((size_t)n * vocab, -8, 8, DTYPE_F32);
    b->params = folio_xcalloc(n, sizeof *b->params);
    int cap = n * 700;
    b->entries = folio_xmalloc(sizeof *b->entries * cap);
    b->n_entries = 0;
    int32_t *map = folio_xcalloc(vocab, sizeof *map), hist[600];
    const int32_t eos[2] = {2, vocab - 1};
    for (int r = 0; r < n; r++) {
        float *row = b->logits + (size_t)r * vocab;
        if (peaked) /* a few strong candidates, bf16-like coarse values (ties) */
            for (int k = 0; k < 20; k++) row[rnd() % vocab] = 10.0f + (float)(rnd() % 8);
        const int o = opt == OPT_MIXED ? (int)(rnd() % OPT_MIXED) : opt;
        sample_row_params *p = &b->params[r];
        *p = (sample_row_params){.temperature = 0.4f + (float)(rnd() % 100) / 50.0f,
                                 .top_p = 1.0f, .seed = rnd(), .counter = rnd() % 1000};
        if (o == OPT_GREEDY) p->temperature = 0;
        if (o == OPT_TOPK || o == OPT_ALL) p->top_k = 1 + (int)(rnd() % 100);
        if (o == OPT_TOPP || o == OPT_ALL) p->top_p = 0.05f + (float)(rnd() % 90) / 100.0f;
        if (o == OPT_MINP || o == OPT_ALL) p->min_p = (float)(rnd() % 30) / 100.0f;
        logits_params lp = {0};
        logit_bias_entry bias[4];
        if (o == OPT_PEN || o == OPT_ALL) {
            lp.repetition_penalty = 1.0f + (float)(rnd() % 50) / 100.0f;
            lp.presence_penalty = (float)(rnd() % 100) / 100.0f;
            lp.frequency_penalty = (float)(rnd() % 100) / 100.0f;
        }
        if (o == OPT_BIAS || o == OPT_ALL) {
            for (int k = 0; k < 4; k++) bias[k] = (logit_bias_entry){(int32_t)(rnd() % vocab), (float)(rnd() % 40) - 20.0f};
            lp.bias = bias;
            lp.n_bias = 4;
            lp.min_tokens = 100;
        }
        p->repetition_penalty = lp.repetition_penalty;
        p->presence_penalty = lp.presence_penalty;
        p->frequency_penalty = lp.frequency_penalty;
        /* history: prompt of 300, output of 0..299, drawn from the row's top region often */
        const int n_out = (int)(rnd() % 300);
        for (int i = 0; i < 300 + n_out; i++) hist[i] = (int32_t)(rnd() % (i % 3 ? vocab : 64));
        p->entry_start = b->n_entries;
        p->n_entries = sampler_entries_build(b->entries + b->n_entries, &lp, hist, 300, hist + 300,
                                             n_out, eos, 2, map);
        b->n_entries += p->n_entries;
    }
    free(map);
}

static void free_batch(batch *b) {
    free(b->logits);
    free(b->params);
    free(b->entries);
}

/* GPU ids/logprobs/processed rows of b (host logits untouched) */
static void run_gpu(const batch *b, int32_t *ids, float *lps, float *rows) {
    const size_t nv = (size_t)b->n * b->vocab;
    float *d_l = gpu_test_to_device(b->logits, nv, DTYPE_F32), *d_lp = NULL;
    sample_row_params *d_p = NULL;
    sample_entry *d_e = NULL;
    int32_t *d_ids = NULL;
    CUDA_CHECK(cudaMalloc((void **)&d_p, sizeof *d_p * b->n));
    CUDA_CHECK(cudaMalloc((void **)&d_e, sizeof *d_e * (b->n_entries + 1)));
    CUDA_CHECK(cudaMalloc((void **)&d_ids, sizeof *d_ids * b->n));
    CUDA_CHECK(cudaMalloc((void **)&d_lp, sizeof *d_lp * b->n));
    CUDA_CHECK(cudaMemcpy(d_p, b->params, sizeof *d_p * b->n, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(d_e, b->entries, sizeof *d_e * b->n_entries, cudaMemcpyHostToDevice));
    sample_rows_cuda(d_ids, lps ? d_lp : NULL, d_l, b->n, b->vocab, d_p, d_e, 0);
    CUDA_CHECK(cudaMemcpy(ids, d_ids, sizeof *ids * b->n, cudaMemcpyDeviceToHost));
    if (lps) CUDA_CHECK(cudaMemcpy(lps, d_lp, sizeof *lps * b->n, cudaMemcpyDeviceToHost));
    if (rows) CUDA_CHECK(cudaMemcpy(rows, d_l, sizeof(float) * nv, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaFree(d_l));
    CUDA_CHECK(cudaFree(d_lp));
    CUDA_CHECK(cudaFree(d_p));
    CUDA_CHECK(cudaFree(d_e));
    CUDA_CHECK(cudaFree(d_ids));
}

static void check_case(int n, int vocab, int opt, int peaked) {
    batch b;
    make_batch(&b, n, vocab, opt, peaked);
    const size_t nv = (size_t)n * vocab;
    int32_t *gid = folio_xmalloc(sizeof *gid * n), *cid = folio_xmalloc(sizeof *cid * n);
    float *glp = folio_xmalloc(sizeof *glp * n), *clp = folio_xmalloc(sizeof *clp * n);
    float *grows = folio_xmalloc(sizeof *grows * nv), *crows = folio_xmalloc(sizeof *crows * nv);
    run_gpu(&b, gid, glp, grows);
    memcpy(crows, b.logits, sizeof *crows * nv);
    sample_rows_cpu(cid, clp, crows, n, vocab, b.params, b.entries);
    int bad = 0;
    for (int r = 0; r < n && bad < 10; r++)
        if (gid[r] != cid[r]) {
            printf("  %s n=%d vocab=%d row %d: gpu %d cpu %d (T %g k %d p %g minp %g)\n",
                   OPT_NAMES[opt], n, vocab, r, gid[r], cid[r], b.params[r].temperature,
                   b.params[r].top_k, b.params[r].top_p, b.params[r].min_p);
            bad++;
        }
    if (bad) fail_msg("%s n=%d vocab=%d peaked=%d: ids differ", OPT_NAMES[opt], n, vocab, peaked);
    /* bit for bit (-inf of masked EOS ids included) */
    if (memcmp(grows, crows, sizeof *grows * nv) != 0)
        fail_msg("%s n=%d vocab=%d: processed rows differ", OPT_NAMES[opt], n, vocab);
    assert_int_equal(gpu_test_mismatches("logprobs", glp, clp, n, 1e-3, 1e-4), 0);
    /* the last row alone: the same id */
    batch one = b;
    one.n = 1;
    one.logits = b.logits + (size_t)(n - 1) * vocab;
    sample_row_params solo = b.params[n - 1];
    int32_t id1;
    one.params = &solo;
    run_gpu(&one, &id1, NULL, NULL);
    assert_int_equal(id1, gid[n - 1]);
    free(gid);
    free(cid);
    free(glp);
    free(clp);
    free(grows);
    free(crows);
    free_batch(&b);
}

static void test_identical(void **state) {
    (void)state;
    const int ns[] = {1, 7, 64, 256};
    for (int opt = 0; opt <= OPT_MIXED; opt++)
        for (int k = 0; k < 4; k++) {
            check_case(ns[k], 32000, opt, k % 2);
            if (k < 2 || opt == OPT_ALL || opt == OPT_MIXED) check_case(ns[k] < 64 ? ns[k] : 33, 151936, opt, k % 2);
        }
    printf("  ids identical: 9 options x batches 1..256 x vocab 32000 / 151936\n");
}

typedef struct {
    float *d_l;
    sample_row_params *d_p;
    sample_entry *d_e;
    int32_t *d_ids;
    int n, vocab;
} bench_arg;

static void bench_fn(void *a) {
    bench_arg *b = a;
    sample_rows_cuda(b->d_ids, NULL, b->d_l, b->n, b->vocab, b->d_p, b->d_e, 0);
}

static void test_bench(void **state) {
    (void)state;
    if (!gpu_test_bench_enabled()) return;
    const int n = 256, vocab = 128256;
    batch b;
    make_batch(&b, n, vocab, OPT_GREEDY, 0);
    bench_arg a = {.n = n, .vocab = vocab};
    a.d_l = gpu_test_to_device(b.logits, (size_t)n * vocab, DTYPE_F32);
    CUDA_CHECK(cudaMalloc((void **)&a.d_p, sizeof *a.d_p * n));
    CUDA_CHECK(cudaMalloc((void **)&a.d_e, sizeof *a.d_e));
    CUDA_CHECK(cudaMalloc((void **)&a.d_ids, sizeof *a.d_ids * n));
    const struct {
        const char *name;
        float t;
        int k;
        float p, minp;
    } cfg[] = {{"greedy", 0, 0, 1, 0}, {"temperature 0.8", 0.8f, 0, 1, 0},
               {"top-k 50", 0.8f, 50, 1, 0}, {"top-p 0.9", 0.8f, 0, 0.9f, 0},
               {"top-k 50 + top-p 0.9 + min-p 0.05", 0.8f, 50, 0.9f, 0.05f}};
    sample_row_params *p = folio_xcalloc(n, sizeof *p);
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        for (int r = 0; r < n; r++)
            p[r] = (sample_row_params){.temperature = cfg[c].t, .top_k = cfg[c].k,
                                       .top_p = cfg[c].p, .min_p = cfg[c].minp, .seed = (uint64_t)r};
        CUDA_CHECK(cudaMemcpy(a.d_p, p, sizeof *p * n, cudaMemcpyHostToDevice));
        const double ms = gpu_test_time_ms(bench_fn, &a, 3, 20);
        printf("  bench sample_rows_cuda batch %d x vocab %d, %-34s %.3f ms\n", n, vocab,
               cfg[c].name, ms);
    }
    /* the host twin on the same rows (top-p 0.9), 16 rows timed, scaled to 256 */
    float *row = folio_xmalloc(sizeof *row * vocab);
    const sample_row_params hp = {.temperature = 0.8f, .top_p = 0.9f, .seed = 1};
    const double t0 = folio_now();
    for (int r = 0; r < 16; r++) {
        int32_t id;
        memcpy(row, b.logits + (size_t)r * vocab, sizeof *row * vocab);
        sample_rows_cpu(&id, NULL, row, 1, vocab, &hp, NULL);
    }
    printf("  bench host sample_rows_cpu (top-p 0.9), batch %d x vocab %d: %.3f ms (16 rows timed)\n",
           n, vocab, (folio_now() - t0) * 1e3 * n / 16);
    free(row);
    free(p);
    CUDA_CHECK(cudaFree(a.d_l));
    CUDA_CHECK(cudaFree(a.d_p));
    CUDA_CHECK(cudaFree(a.d_e));
    CUDA_CHECK(cudaFree(a.d_ids));
    free_batch(&b);
}

int main(void) {
    if (gpu_test_skip()) return 77;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_identical),
                                       cmocka_unit_test(test_bench)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#endif
