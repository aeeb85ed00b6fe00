/* W4A16 at any batch (see gemm.h): the decode kernel up to W4A16_GEMV_MAX_N rows of
 * activations, the warpgroup-MMA mixed-input GEMMs up to W4A16_WGMMA_MAX_N (the first one below
 * W4A16_WS_MIN_N, the warp-specialized one from there; FOLIO_W4A16_GEMM picks one for
 * comparisons), else (prefill, and act-order matrices above the GEMV) dequantize into the
 * scratch and run cuBLASLt. */
#ifdef FOLIO_HAVE_CUDA

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cuda_check.h"
#include "env.h"
#include "gemm.h"
#include "kernels_cuda.h"

/* FOLIO_W4A16_GEMM: "mma" runs the mma.sync GEMM up to W4A16_MMA_MAX_N, "wgmma" the first
 * wgmma GEMM up to W4A16_WGMMA_MAX_N (for comparisons); unset, the warp-specialized one takes
 * W4A16_WS_MIN_N and above. */
typedef enum { TC_DEFAULT, TC_MMA, TC_WGMMA } tc_choice;

static tc_choice w4a16_tc_choice(void) {
    static int on = -1;
    if (on < 0) {
        const char *e = folio_env("FOLIO_W4A16_GEMM");
        on = e == NULL ? TC_DEFAULT
             : strcmp(e, "mma") == 0 ? TC_MMA
             : strcmp(e, "wgmma") == 0 ? TC_WGMMA : TC_DEFAULT;
        if (on == TC_DEFAULT && e && *e)
            fprintf(stderr, "folio: FOLIO_W4A16_GEMM=%s is neither 'mma' nor 'wgmma': ignored "
                            "(the default GEMMs)\n", e);
    }
    return (tc_choice)on;
}

void w4a16_gemm_cuda(gemm_ctx *g, void *y, const void *x, const w4a16_tiles *m,
                     const void *bias, folio_dtype dtype, int n, void *scratch,
                     cudaStream_t stream) {
    if (n == 0) return;
    if (n <= W4A16_GEMV_MAX_N) {
        w4a16_gemv_cuda(y, x, m, bias, dtype, n, stream);
        return;
    }
    CUDA_REQUIRE(scratch != NULL, "w4a16_gemm_cuda: n > W4A16_GEMV_MAX_N needs a rows x in_cols scratch");
    const size_t bytes = (size_t)m->rows * (size_t)m->in_cols * 2; /* the scratch, 16-bit */
    const tc_choice tc = w4a16_tc_choice();
    if (!m->perm && tc != TC_MMA && n >= W4A16_WGMMA_MIN_N && n <= W4A16_WGMMA_MAX_N) {
        if (tc == TC_DEFAULT && n >= W4A16_WS_MIN_N && w4a16_wgmma_ws_workspace(m, n) <= bytes)
            w4a16_wgmma_ws_cuda(y, x, m, bias, dtype, n, scratch, bytes, stream);
        else
            w4a16_wgmma_cuda(y, x, m, bias, dtype, n, scratch, bytes, stream);
        return;
    }
    if (!m->perm && n <= W4A16_MMA_MAX_N) {
        w4a16_mma_cuda(y, x, m, bias, dtype, n, scratch, bytes, stream);
        return;
    }
    w4a16_dequant_cuda(scratch, m, dtype, stream);
    gemm_run(g, y, dtype, x, scratch, bias, dtype, n, m->in_cols, m->rows, stream);
}

#else
typedef int folio_w4a16_gemm_unused; /* built without CUDA */
#endif
