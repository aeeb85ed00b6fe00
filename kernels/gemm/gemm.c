/* cuBLASLt GEMMs of the CUDA backend (see gemm.h). Column-major view: cuBLASLt computes
 * D[m][n] (column-major, m = out_f, ldd = out_f) = op(A) B with A = w seen column-major as
 * [in_f][out_f] (lda = in_f, transposed) and B = x seen column-major as [in_f][n] (ldb = in_f),
 * which is y[n][out_f] row-major. Bias through the BIAS epilogue. */
#ifdef FOLIO_HAVE_CUDA

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublasLt.h>

#include "cuda_check.h"
#include "env.h"
#include "error.h"
#include "gemm.h"
#include "kernels_cuda.h"

#define CUBLAS_CHECK(call)                                                                    \
    do {                                                                                      \
        const cublasStatus_t cublas_check_st_ = (call);                                       \
        if (cublas_check_st_ != CUBLAS_STATUS_SUCCESS) {                                      \
            fprintf(stderr, "%s:%d: cuBLAS error: %s failed: %s\n", __FILE__, __LINE__,       \
                    #call, cublasGetStatusString(cublas_check_st_));                          \
            abort();                                                                          \
        }                                                                                     \
    } while (0)

enum { MAX_PLANS = 256 };

typedef struct {
    int n, in_f, out_f, has_bias, align;
    folio_dtype dtype, y_type;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, d;
    cublasLtMatmulAlgo_t algo;
} gemm_plan;

struct gemm_ctx {
    cublasLtHandle_t lt;
    void *workspace;
    size_t workspace_bytes;
    gemm_plan plans[MAX_PLANS];
    int n_plans, next_evict;
    bool use_gemv;               /* skinny 16-bit GEMMs through gemv_cuda */
    struct fp8_plan_cache *fp8;  /* gemm_fp8.c's plans (NULL until the first FP8 GEMM) */
};

static cudaDataType_t cuda_type(folio_dtype t) {
    return t == DTYPE_F32 ? CUDA_R_32F : t == DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_16F;
}

/* Largest power of two <= 256 dividing every pointer (cuBLASLt's alignment preference). */
static int common_alignment(const void *const *ptrs, int n) {
    uintptr_t bits = 256;
    for (int i = 0; i < n; i++)
        if (ptrs[i]) bits |= (uintptr_t)ptrs[i];
    return (int)(bits & (~bits + 1));
}

gemm_ctx *gemm_create(size_t workspace_bytes) {
    gemm_ctx *g = folio_xcalloc(1, sizeof *g);
    if (cublasLtCreate(&g->lt) != CUBLAS_STATUS_SUCCESS) {
        free(g);
        folio_fail("cuBLASLt: cannot create a handle");
        return NULL;
    }
    if (workspace_bytes && cudaMalloc(&g->workspace, workspace_bytes) != cudaSuccess) {
        (void)cudaGetLastError();
        cublasLtDestroy(g->lt);
        free(g);
        folio_fail("cuBLASLt: cannot allocate a %zu-byte workspace "
                   "(lower --gpu-memory-utilization)", workspace_bytes);
        return NULL;
    }
    g->workspace_bytes = workspace_bytes;
    const char *env = folio_env("FOLIO_GEMV");
    g->use_gemv = !(env && strcmp(env, "0") == 0);
    return g;
}

void gemm_set_gemv(gemm_ctx *g, bool on) { g->use_gemv = on; }

void *gemm_lt_handle(gemm_ctx *g) { return g->lt; }

struct fp8_plan_cache **gemm_fp8_cache(gemm_ctx *g) { return &g->fp8; }

void *gemm_workspace(gemm_ctx *g, size_t *bytes) {
    *bytes = g->workspace_bytes;
    return g->workspace;
}

void gemm_free(gemm_ctx *g) {
    if (!g) return;
    for (int i = 0; i < g->n_plans; i++) {
        gemm_plan *p = &g->plans[i];
        cublasLtMatrixLayoutDestroy(p->a);
        cublasLtMatrixLayoutDestroy(p->b);
        cublasLtMatrixLayoutDestroy(p->d);
        cublasLtMatmulDescDestroy(p->op);
    }
    fp8_plan_cache_free(g->fp8);
    if (g->workspace) CUDA_CHECK(cudaFree(g->workspace));
    cublasLtDestroy(g->lt);
    free(g);
}

static void make_plan(gemm_ctx *g, gemm_plan *p) {
    const cublasComputeType_t compute = CUBLAS_COMPUTE_32F; /* float32 in: no TF32 */
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->op, compute, CUDA_R_32F));
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    if (p->has_bias) {
        const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        const cudaDataType_t bt = cuda_type(p->y_type);
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi,
                                                    sizeof epi));
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                    &bt, sizeof bt));
    }
    const cudaDataType_t in = cuda_type(p->dtype), out = cuda_type(p->y_type);
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->a, in, p->in_f, p->out_f, p->in_f));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->b, in, p->in_f, p->n, p->in_f));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->d, out, p->out_f, p->n, p->out_f));

    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &g->workspace_bytes,
        sizeof g->workspace_bytes));
    const uint32_t align = (uint32_t)p->align;
    const cublasLtMatmulPreferenceAttributes_t align_attrs[] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4; i++)
        CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, align_attrs[i], &align,
                                                          sizeof align));
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(g->lt, p->op, p->a, p->b, p->d, p->d, pref, 1,
                                                &res, &found));
    cublasLtMatmulPreferenceDestroy(pref);
    if (found == 0) {
        fprintf(stderr, "gemm: cuBLASLt has no algorithm for n=%d in=%d out=%d %s -> %s\n", p->n,
                p->in_f, p->out_f, dtype_name(p->dtype), dtype_name(p->y_type));
        abort();
    }
    p->algo = res.algo;
}

static gemm_plan *find_plan(gemm_ctx *g, const gemm_plan *key) {
    for (int i = 0; i < g->n_plans; i++) {
        gemm_plan *p = &g->plans[i];
        if (p->n == key->n && p->in_f == key->in_f && p->out_f == key->out_f &&
            p->has_bias == key->has_bias && p->align == key->align && p->dtype == key->dtype &&
            p->y_type == key->y_type)
            return p;
    }
    gemm_plan *p;
    if (g->n_plans < MAX_PLANS) {
        p = &g->plans[g->n_plans++];
    } else { /* full (many prefill lengths): replace plans round-robin */
        p = &g->plans[g->next_evict++ % MAX_PLANS];
        cublasLtMatrixLayoutDestroy(p->a);
        cublasLtMatrixLayoutDestroy(p->b);
        cublasLtMatrixLayoutDestroy(p->d);
        cublasLtMatmulDescDestroy(p->op);
    }
    *p = *key;
    make_plan(g, p);
    return p;
}

void gemm_run(gemm_ctx *g, void *y, folio_dtype y_type, const void *x, const void *w,
              const void *bias, folio_dtype dtype, int n, int in_f, int out_f,
              cudaStream_t stream) {
    if (n == 0) return;
    /* gemv_cuda beats cuBLASLt at n = 1 only (H200: 2.4-3.6 TB/s against 1.9-2.9 on the 8B
     * projections; at n = 8 it is twice slower, re-reading the activations) */
    if (g->use_gemv && n == 1 && gemv_supported(n, in_f, dtype, x, w)) {
        gemv_cuda(y, y_type, x, w, bias, dtype, n, in_f, out_f, stream);
        return;
    }
    const void *ptrs[] = {y, x, w, bias};
    gemm_plan key = {.n = n, .in_f = in_f, .out_f = out_f, .has_bias = bias != NULL,
                     .align = common_alignment(ptrs, 4), .dtype = dtype, .y_type = y_type};
    gemm_plan *p = find_plan(g, &key);
    if (bias)
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                    &bias, sizeof bias));
    const float alpha = 1.0f, beta = 0.0f;
    CUBLAS_CHECK(cublasLtMatmul(g->lt, p->op, &alpha, w, p->a, x, p->b, &beta, y, p->d, y, p->d,
                                &p->algo, g->workspace, g->workspace_bytes, stream));
}

#else
typedef int folio_gemm_unused; /* built without CUDA */
#endif
