/* FP8 GEMMs (gemm.h: fp8_linear_cuda, fp8_gemm_cuda): which kernel runs a product, and
 * cuBLASLt's. The column-major view of gemm.c: D[rows][n] = op(A) B with A = the e4m3 weight
 * [rows][cols] row-major seen as [cols][rows] column-major and transposed ("TN", the only
 * layout cuBLASLt's FP8 kernels take; cols % 16 == 0), B = the e4m3 activations [n][cols]
 * seen as [cols][n]. Scales are cuBLASLt's own (cuBLAS 12.9+ on sm_90), in the two schemes
 * the GPU runs:
 *   channel weights (OUTER_VEC_32F, a float a row) x per-token or static activations
 *     (OUTER_VEC_32F, a float a token), fast accumulation unless FOLIO_FP8_FAST_ACCUM=0;
 *     where cuBLASLt has no OUTER_VEC kernel (cuBLASLt 13.1 on an H100 has none), a unit-scale
 *     FP8 GEMM into bf16 and fp8_rescale_rows_cuda after it (fp16 output would overflow on
 *     the unscaled sums: fp8_mma_cuda runs those), or, through fp8_linear_ex_cuda, the scales
 *     handed to the kernel that reads the output (the forward's SiLU*mul and residual-add
 *     norm apply them as they load it: no pass over the output of its own);
 *   128 x 128 block weights (BLK128x128_32F, [ceil(rows/128)][fp8_block_scale_ld(cols)]) x
 *     per-token 128-column groups (VEC128_32F, [ceil(cols/128)][n], tokens fastest), no fast
 *     accumulation (cuBLASLt refuses it with block scales).
 * Where cuBLASLt has no kernel for a shape (or FOLIO_FP8_GEMM=mma), Folio's own tensor-core
 * FP8 GEMM (fp8_mma_cuda, any n) runs it; the miss is remembered per shape and said once.
 * cuBLASLt's scaled kernels want n a multiple of 8, so fp8_linear_cuda gives cuBLASLt the
 * first n & ~7 tokens and the GEMV (n <= 4 at a time, fp8_gemv_x_cuda: it quantizes the
 * activations itself) the rest: no padded copies. Output and bias in bf16 or fp16; a bias
 * through the BIAS epilogue, or added after the GEMM where cuBLASLt has no such kernel. One
 * plan per shape and alignment, cached in the gemm_ctx. */
#ifdef FOLIO_HAVE_CUDA

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublasLt.h>

#include "env.h"
#include "error.h"
#include "gemm.h"
#include "kernels_cuda.h"
#include "tensor_parallel.h"

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
    int n, cols, rows, has_bias, align;
    bool block;                  /* block weights x group activations (else channel x token) */
    folio_dtype dtype;
    bool epilogue_bias;          /* the bias in cuBLASLt's epilogue (else added after) */
    bool unscaled;               /* channel x token without OUTER_VEC: a unit-scale GEMM, then
                                  * fp8_rescale_rows_cuda applies both scales and the bias */
    bool none;                   /* cuBLASLt has no kernel: fp8_mma_cuda runs it */
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, d;
    cublasLtMatmulAlgo_t algo;
} fp8_plan;

struct fp8_plan_cache {
    fp8_plan plans[FP8_MAX_PLANS];
    int n_plans, next_evict;
    bool fast_accum;
    int force;                   /* FOLIO_FP8_GEMM: GEMM_AUTO, GEMM_LT or GEMM_MMA */
};

enum { GEMM_AUTO = 0, GEMM_LT, GEMM_MMA };

static void destroy_plan(fp8_plan *p) {
    cublasLtMatrixLayoutDestroy(p->a);
    cublasLtMatrixLayoutDestroy(p->b);
    cublasLtMatrixLayoutDestroy(p->d);
    cublasLtMatmulDescDestroy(p->op);
}

void fp8_plan_cache_free(struct fp8_plan_cache *c) {
    if (!c) return;
    for (int i = 0; i < c->n_plans; i++)
        if (!c->plans[i].none) destroy_plan(&c->plans[i]);
    free(c);
}

static struct fp8_plan_cache *cache_of(gemm_ctx *g) {
    struct fp8_plan_cache **slot = gemm_fp8_cache(g);
    if (!*slot) {
        *slot = folio_xcalloc(1, sizeof **slot);
        const char *env = folio_env("FOLIO_FP8_FAST_ACCUM");
        (*slot)->fast_accum = !(env && strcmp(env, "0") == 0);
        const char *force = folio_env("FOLIO_FP8_GEMM");
        if (force && strcmp(force, "mma") == 0) (*slot)->force = GEMM_MMA;
        else if (force && strcmp(force, "cublaslt") == 0) (*slot)->force = GEMM_LT;
        else if (force && *force)
            fprintf(stderr, "folio: FOLIO_FP8_GEMM=%s is neither 'mma' nor 'cublaslt': "
                            "ignored (cuBLASLt where it has the kernel)\n", force);
    }
    return *slot;
}

static void set_attr(cublasLtMatmulDesc_t op, cublasLtMatmulDescAttributes_t a, const void *v,
                     size_t size) {
    LT_CHECK(cublasLtMatmulDescSetAttribute(op, a, v, size));
}

/* Largest power of two <= 256 dividing every pointer. */
static int alignment_of(const void *const *ptrs, int n) {
    uintptr_t bits = 256;
    for (int i = 0; i < n; i++)
        if (ptrs[i]) bits |= (uintptr_t)ptrs[i];
    return (int)(bits & (~bits + 1));
}

/* Builds p's descriptors (with or without the bias epilogue; p->unscaled: no scale modes) and
 * asks the heuristic; false when it has nothing. */
static bool make_plan(gemm_ctx *g, fp8_plan *p, bool fast_accum, bool epilogue_bias) {
    cublasLtHandle_t lt = (cublasLtHandle_t)gemm_lt_handle(g);
    size_t ws_bytes;
    (void)gemm_workspace(g, &ws_bytes);
    LT_CHECK(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    set_attr(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    set_attr(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    const int32_t amode = p->block ? CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F
                                   : CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
    const int32_t bmode = p->block ? CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F
                                   : CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
    if (!p->unscaled) {
        set_attr(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &amode, sizeof amode);
        set_attr(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &bmode, sizeof bmode);
    }
    const int8_t fast = !p->block && fast_accum;
    set_attr(p->op, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof fast);
    const cudaDataType_t out = p->dtype == DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_16F;
    if (epilogue_bias) {
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
    const uint32_t align = (uint32_t)p->align;
    const cublasLtMatmulPreferenceAttributes_t align_attrs[] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4; i++)
        LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, align_attrs[i], &align, sizeof align));
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt, p->op, p->a, p->b, p->d, p->d,
                                                             pref, 1, &res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
        destroy_plan(p);
        return false;
    }
    p->algo = res.algo;
    p->epilogue_bias = epilogue_bias;
    return true;
}

static fp8_plan *find_plan(gemm_ctx *g, const fp8_plan *key) {
    struct fp8_plan_cache *c = cache_of(g);
    for (int i = 0; i < c->n_plans; i++) {
        fp8_plan *p = &c->plans[i];
        if (p->n == key->n && p->cols == key->cols && p->rows == key->rows &&
            p->has_bias == key->has_bias && p->align == key->align && p->block == key->block &&
            p->dtype == key->dtype)
            return p;
    }
    fp8_plan *p;
    if (c->n_plans < FP8_MAX_PLANS) {
        p = &c->plans[c->n_plans++];
    } else {
        p = &c->plans[c->next_evict++ % FP8_MAX_PLANS];
        if (!p->none) destroy_plan(p);
    }
    *p = *key;
    if (make_plan(g, p, c->fast_accum, key->has_bias) ||
        (key->has_bias && make_plan(g, p, c->fast_accum, false)))
        return p;
    /* channel x token: a unit-scale FP8 GEMM and the scales after it; bf16 output only (the
     * unscaled sums, up to 448^2 a product, overflow fp16: fp8_mma_cuda runs those) */
    p->unscaled = !key->block && key->dtype == DTYPE_BF16;
    if (p->unscaled && make_plan(g, p, c->fast_accum, false)) {
        static bool said;
        if (!said)
            fprintf(stderr, "folio: cuBLASLt offers no per-channel x per-token (OUTER_VEC) FP8 "
                            "kernel here; FP8 products run unit-scaled, their scales applied by "
                            "the next kernel or a rescale\n");
        said = true;
        return p;
    }
    p->unscaled = false;
    p->none = true;
    return p;
}

static bool block_scheme(const fp8_matrix *m) { return m->kind == FP8_W_BLOCK; }

/* cuBLASLt's plan for n tokens of m, or NULL where Folio's GEMM runs them: n not a multiple
 * of 8, no cuBLASLt kernel for the shape (said once per scheme), or FOLIO_FP8_GEMM=mma. */
static fp8_plan *lt_plan(gemm_ctx *g, const void *y, const uint8_t *xq, const fp8_matrix *m,
                         const void *bias, folio_dtype dtype, int n) {
    struct fp8_plan_cache *c = cache_of(g);
    if (c->force == GEMM_MMA || n % 8 != 0) return NULL;
    const void *ptrs[] = {y, xq, m->w, bias};
    const fp8_plan key = {.n = n, .cols = m->cols, .rows = m->rows, .has_bias = bias != NULL,
                          .align = alignment_of(ptrs, 4), .block = block_scheme(m),
                          .dtype = dtype};
    fp8_plan *p = find_plan(g, &key);
    if (!p->none) return p;
    const char *what = key.block ? "128 x 128 block weights x group activations"
                                 : "channel weights x token activations";
    if (c->force == GEMM_LT) {
        fprintf(stderr, "fp8_gemm_cuda: FOLIO_FP8_GEMM=cublaslt, but cuBLASLt has no FP8 kernel "
                        "for %s at n=%d, %d x %d (alignment %d)\n", what, n, m->rows, m->cols,
                key.align);
        abort();
    }
    static bool said[2];
    if (!said[key.block])
        fprintf(stderr, "folio: cuBLASLt offers no FP8 kernel for %s (first: n=%d, %d x %d); "
                        "Folio's own tensor-core FP8 GEMM runs those\n", what, n, m->rows,
                m->cols);
    said[key.block] = true;
    return NULL;
}

/* The GEMM on quantized input with plan p (lt_plan's), or fp8_mma_cuda where p is NULL.
 * rescale false: a unit-scale plan's output is left unscaled (the caller defers it). */
static void run_gemm(gemm_ctx *g, fp8_plan *p, void *y, const uint8_t *xq, const float *xs,
                     const fp8_matrix *m, const void *bias, folio_dtype dtype, int n,
                     bool rescale, cudaStream_t stream) {
    size_t ws_bytes;
    void *ws = gemm_workspace(g, &ws_bytes);
    if (!p) {
        fp8_mma_cuda(y, xq, xs, m, bias, dtype, n, ws, ws_bytes, stream);
        return;
    }
    if (!p->unscaled) {
        set_attr(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &m->scale, sizeof m->scale);
        set_attr(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &xs, sizeof xs);
    }
    if (p->epilogue_bias) set_attr(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    const float alpha = 1.0f, beta = 0.0f;
    LT_CHECK(cublasLtMatmul((cublasLtHandle_t)gemm_lt_handle(g), p->op, &alpha, m->w, p->a, xq,
                            p->b, &beta, y, p->d, y, p->d, &p->algo, ws, ws_bytes, stream));
    if (p->unscaled && rescale)
        fp8_rescale_rows_cuda(y, m->scale, xs, bias, n, m->rows, dtype, stream);
    else if (bias && !p->epilogue_bias) add_bias_rows_cuda(y, bias, n, m->rows, dtype, stream);
}

void fp8_gemm_cuda(gemm_ctx *g, void *y, const uint8_t *xq, const float *xs,
                   const fp8_matrix *m, const void *bias, folio_dtype dtype, int n,
                   cudaStream_t stream) {
    run_gemm(g, lt_plan(g, y, xq, m, bias, dtype, n), y, xq, xs, m, bias, dtype, n, true,
             stream);
}

/* fp8_linear_ex_cuda's work (gemm.h): x_quantized says whether xq, xs already hold x's
 * quantization (all n tokens); defer (NULL: never) receives the scales a unit-scale GEMM over
 * all n tokens left undone. */
static int linear(gemm_ctx *g, void *y, const void *x, const fp8_matrix *m, const void *bias,
                  folio_dtype dtype, int n, uint8_t *xq, float *xs, bool x_quantized,
                  fp8_out_scale *defer, cudaStream_t stream) {
    const size_t xb = dtype_size(dtype), yb = dtype_size(dtype);
    const int per_gemv = fp8_gemv_max_tokens(m, dtype);
    if (per_gemv == 0) {
        fprintf(stderr, "fp8_linear_cuda: %d x %d FP8 matrix of an unsupported scheme (weights "
                        "%d, activations %d; weights_cuda_fp8.c refuses these)\n", m->rows,
                m->cols, (int)m->kind, (int)m->act);
        abort();
    }
    int t0 = 0, deferred = 0;
    if (n > per_gemv && n >= 8) {
        /* a GEMM: cuBLASLt the first n & ~7 tokens, Folio's own all n where it runs them */
        fp8_plan *p = lt_plan(g, y, xq, m, bias, dtype, n & ~7);
        const int nb = p ? n & ~7 : n;
        if (!x_quantized)
            fp8_quantize_act_cuda(xq, xs, x, dtype, nb, m->cols, m->act, m->input_scale, stream);
        deferred = defer && p && p->unscaled && !bias && nb == n;
        run_gemm(g, p, y, xq, xs, m, bias, dtype, nb, !deferred, stream);
        t0 = nb;
    }
    while (t0 < n) { /* the rest, up to FP8_GEMV_MAX_N tokens at a time, quantized inside */
        const int k = n - t0 < per_gemv ? n - t0 : per_gemv;
        fp8_gemv_x_cuda((char *)y + (size_t)t0 * m->rows * yb,
                        (const char *)x + (size_t)t0 * m->cols * xb, m, bias, dtype, k, stream);
        t0 += k;
    }
    if (deferred) *defer = (fp8_out_scale){.ws = m->scale, .xs = xs};
    return deferred;
}

int fp8_linear_ex_cuda(gemm_ctx *g, void *y, const void *x, const fp8_matrix *m,
                       const void *bias, folio_dtype dtype, int n, uint8_t *xq, float *xs,
                       bool x_quantized, fp8_out_scale *defer, cudaStream_t stream) {
    return linear(g, y, x, m, bias, dtype, n, xq, xs, x_quantized, defer, stream);
}

void fp8_linear_cuda(gemm_ctx *g, void *y, const void *x, const fp8_matrix *m,
                     const void *bias, folio_dtype dtype, int n, uint8_t *xq, float *xs,
                     cudaStream_t stream) {
    linear(g, y, x, m, bias, dtype, n, xq, xs, false, NULL, stream);
}

void fp8_linear_prequantized_cuda(gemm_ctx *g, void *y, const void *x, const fp8_matrix *m,
                                  const void *bias, folio_dtype dtype, int n,
                                  const uint8_t *xq, const float *xs, cudaStream_t stream) {
    linear(g, y, x, m, bias, dtype, n, (uint8_t *)xq, (float *)xs, true, NULL, stream);
}

int fp8_linear_reads_xq(const fp8_matrix *m, folio_dtype dtype, int n) {
    if (m->act == FP8_ACT_GROUP) return 0;
    const int per_gemv = fp8_gemv_max_tokens(m, dtype);
    return per_gemv > 0 && n > per_gemv && n >= 8;
}

#else
typedef int folio_gemm_fp8_unused; /* built without CUDA */
#endif
