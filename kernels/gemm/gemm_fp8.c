/* FP8 GEMMs through cuBLASLt (gemm.h: fp8_linear_cuda, fp8_gemm_cuda). The column-major view
 * of gemm.c: D[rows][n] = op(A) B with A = the e4m3 weight [rows][cols] row-major seen as
 * [cols][rows] column-major and transposed ("TN", the only layout cuBLASLt's FP8 kernels
 * take), B = the e4m3 activations [n][cols] seen as [cols][n]. The scales are cuBLASLt's:
 * A per output channel (OUTER_VEC_32F, one float a row) or per 128 x 128 block
 * (BLK128x128_32F; the checkpoint's [ceil(rows/128)][ceil(cols/128)] row-major is that
 * layout, the block index along cols running fastest); B per token (OUTER_VEC_32F) or per
 * token and 128-column group (VEC128_32F, the group index running fastest: xs[t][g]). Output
 * and bias in bf16 or fp16 with float accumulation. One plan per shape, cached. */
#ifdef FOLIO_HAVE_CUDA

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cublasLt.h>

#include "gemm.h"
#include "kernels_cuda.h"

#define LT_CHECK(call)                                                                        \
    do {                                                                                      \
        const cublasStatus_t lt_check_st_ = (call);                                           \
        if (lt_check_st_ != CUBLAS_STATUS_SUCCESS) {                                          \
            fprintf(stderr, "%s:%d: cuBLAS error: %s failed: %s\n", __FILE__, __LINE__,       \
                    #call, cublasGetStatusString(lt_check_st_));                              \
            abort();                                                                          \
        }                                                                                     \
    } while (0)

enum { FP8_MAX_PLANS = 128 };

typedef struct {
    int n, cols, rows, has_bias;
    fp8_weight_scale wkind;
    fp8_act act;
    folio_dtype dtype;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, d;
    cublasLtMatmulAlgo_t algo;
} fp8_plan;

static fp8_plan plans[FP8_MAX_PLANS];
static int n_plans, next_evict;

static void destroy_plan(fp8_plan *p) {
    cublasLtMatrixLayoutDestroy(p->a);
    cublasLtMatrixLayoutDestroy(p->b);
    cublasLtMatrixLayoutDestroy(p->d);
    cublasLtMatmulDescDestroy(p->op);
}

static void set_attr(cublasLtMatmulDesc_t op, cublasLtMatmulDescAttributes_t a, const void *v,
                     size_t size) {
    LT_CHECK(cublasLtMatmulDescSetAttribute(op, a, v, size));
}

/* Builds p's descriptors and asks the heuristic; false when it has nothing. */
static bool make_plan(gemm_ctx *g, fp8_plan *p) {
    cublasLtHandle_t lt = (cublasLtHandle_t)gemm_lt_handle(g);
    size_t ws_bytes;
    (void)gemm_workspace(g, &ws_bytes);
    LT_CHECK(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    set_attr(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    set_attr(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    const int32_t amode = p->wkind == FP8_W_BLOCK ? CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F
                                                  : CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
    const int32_t bmode = p->act == FP8_ACT_GROUP ? CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F
                                                  : CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
    set_attr(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &amode, sizeof amode);
    set_attr(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &bmode, sizeof bmode);
    const int8_t fast = p->wkind != FP8_W_BLOCK; /* blocks: cuBLASLt promotes per block */
    set_attr(p->op, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof fast);
    const cudaDataType_t out = p->dtype == DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_16F;
    if (p->has_bias) {
        const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        set_attr(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
        set_attr(p->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &out, sizeof out);
    }
    LT_CHECK(cublasLtMatrixLayoutCreate(&p->a, CUDA_R_8F_E4M3, p->cols, p->rows, p->cols));
    LT_CHECK(cublasLtMatrixLayoutCreate(&p->b, CUDA_R_8F_E4M3, p->cols, p->n, p->cols));
    LT_CHECK(cublasLtMatrixLayoutCreate(&p->d, out, p->rows, p->n, p->rows));
    cublasLtMatmulPreference_t pref;
    LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                  &ws_bytes, sizeof ws_bytes));
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt, p->op, p->a, p->b, p->d, p->d,
                                                             pref, 1, &res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || found == 0) return false;
    p->algo = res.algo;
    return true;
}

static fp8_plan *find_plan(gemm_ctx *g, const fp8_plan *key) {
    for (int i = 0; i < n_plans; i++) {
        fp8_plan *p = &plans[i];
        if (p->n == key->n && p->cols == key->cols && p->rows == key->rows &&
            p->has_bias == key->has_bias && p->wkind == key->wkind && p->act == key->act &&
            p->dtype == key->dtype)
            return p;
    }
    fp8_plan *p;
    if (n_plans < FP8_MAX_PLANS) {
        p = &plans[n_plans++];
    } else {
        p = &plans[next_evict++ % FP8_MAX_PLANS];
        destroy_plan(p);
    }
    *p = *key;
    if (!make_plan(g, p)) {
        fprintf(stderr, "fp8_gemm_cuda: cuBLASLt has no FP8 algorithm for n=%d cols=%d rows=%d "
                        "(weights %s, activations %s, bias %d): this cuBLAS is too old for "
                        "these scale modes (CUDA 12.9+ on sm_90)\n",
                p->n, p->cols, p->rows, p->wkind == FP8_W_BLOCK ? "block" : "channel",
                p->act == FP8_ACT_GROUP ? "group" : "token", p->has_bias);
        abort();
    }
    return p;
}

void fp8_gemm_cuda(gemm_ctx *g, void *y, const uint8_t *xq, const float *xs,
                   const fp8_matrix *m, const void *bias, folio_dtype dtype, int n,
                   cudaStream_t stream) {
    fp8_plan key = {.n = n, .cols = m->cols, .rows = m->rows, .has_bias = bias != NULL,
                    .wkind = m->kind, .act = m->act, .dtype = dtype};
    fp8_plan *p = find_plan(g, &key);
    set_attr(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &m->scale, sizeof m->scale);
    set_attr(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &xs, sizeof xs);
    if (bias) set_attr(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    size_t ws_bytes;
    void *ws = gemm_workspace(g, &ws_bytes);
    const float alpha = 1.0f, beta = 0.0f;
    LT_CHECK(cublasLtMatmul((cublasLtHandle_t)gemm_lt_handle(g), p->op, &alpha, m->w, p->a, xq,
                            p->b, &beta, y, p->d, y, p->d, &p->algo, ws, ws_bytes, stream));
}

void fp8_linear_cuda(gemm_ctx *g, void *y, const void *x, const fp8_matrix *m,
                     const void *bias, folio_dtype dtype, int n, uint8_t *xq, float *xs,
                     cudaStream_t stream) {
    if (n == 0) return;
    fp8_quantize_act_cuda(xq, xs, x, dtype, n, m->cols, m->act, m->input_scale, stream);
    if (fp8_gemv_supported(m, dtype, n)) fp8_gemv_cuda(y, xq, xs, m, bias, dtype, n, stream);
    else fp8_gemm_cuda(g, y, xq, xs, m, bias, dtype, n, stream);
}

#else
typedef int folio_gemm_fp8_unused; /* built without CUDA */
#endif
