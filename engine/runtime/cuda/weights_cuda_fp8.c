/* FP8 Linear weights onto the GPU (weights_cuda.h): this rank's host fp8_matrix parts (q, k,
 * v or gate, up, or one alone) become one device fp8_matrix of their rows concatenated, in
 * the form the FP8 kernels take (kernels_cuda.h): per-tensor scales expanded into one float
 * a row (each part keeps its own), per-channel scales concatenated, 128 x 128 block scales
 * concatenated by block rows (a part whose rows are not a whole number of blocks cannot be
 * fused: refused, naming the layer). Static activation scales of fused parts become their
 * largest (vLLM does the same): the parts share one quantized input. */
#ifdef FOLIO_HAVE_CUDA

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "cuda_check.h"
#include "error.h"
#include "progress.h"
#include "weights_cuda.h"

/* The fused scale vector's length, or -1 with a message. */
static int fused_scales(const fp8_matrix *parts, int n, const char *name, int *rows) {
    *rows = 0;
    for (int k = 0; k < n; k++) {
        const fp8_matrix *p = &parts[k];
        if (p->cols != parts[0].cols || p->act != parts[0].act ||
            (p->kind == FP8_W_BLOCK) != (parts[0].kind == FP8_W_BLOCK))
            return folio_fail("--device cuda: %s: the fused FP8 matrices differ in width, "
                              "scale kind or activation scheme (use --device cpu)", name);
        if (p->kind == FP8_W_BLOCK &&
            (p->block_rows != parts[0].block_rows || p->block_cols != FP8_ACT_GROUP_SIZE ||
             (k < n - 1 && p->rows % p->block_rows != 0)))
            return folio_fail("--device cuda: %s: block-scaled FP8 weights fuse only in whole "
                              "%d x %d blocks (part %d has %d rows; block %d x %d; use --device "
                              "cpu)", name, FP8_ACT_GROUP_SIZE, FP8_ACT_GROUP_SIZE, k, p->rows,
                              p->block_rows, p->block_cols);
        *rows += p->rows;
    }
    if (parts[0].cols % 16 != 0)
        return folio_fail("--device cuda: %s: %d input columns: the GPU's FP8 products need a "
                          "multiple of 16 (use --device cpu)", name, parts[0].cols);
    return 0;
}

int weights_cuda_upload_fp8(const fp8_matrix *parts, int n, const char *name, fp8_matrix *out,
                            size_t *bytes) {
    int rows;
    if (fused_scales(parts, n, name, &rows) != 0) return -1;
    const bool block = parts[0].kind == FP8_W_BLOCK;
    *out = parts[0];
    out->rows = rows;
    out->kind = block ? FP8_W_BLOCK : FP8_W_CHANNEL;
    out->input_scale = 0.f;
    for (int k = 0; k < n; k++)
        if (parts[k].input_scale > out->input_scale) out->input_scale = parts[k].input_scale;
    const int ns = fp8_scale_count(out);
    float *hs = folio_xmalloc(sizeof(float) * (size_t)ns);
    int at = 0;
    for (int k = 0; k < n; k++) {
        const fp8_matrix *p = &parts[k];
        if (p->kind == FP8_W_TENSOR)
            for (int r = 0; r < p->rows; r++) hs[at++] = p->scale[0];
        else {
            memcpy(hs + at, p->scale, sizeof(float) * (size_t)fp8_scale_count(p));
            at += fp8_scale_count(p);
        }
    }
    const size_t wb = (size_t)rows * (size_t)out->cols;
    const size_t sb = sizeof(float) * (size_t)ns;
    char *mem = NULL;
    if (cudaMalloc((void **)&mem, wb + 256 + sb) != cudaSuccess) {
        (void)cudaGetLastError();
        free(hs);
        char need[32];
        return folio_fail("cannot allocate %s of GPU memory for %s (FP8)",
                          format_bytes((double)(wb + sb), need, sizeof need), name);
    }
    out->w = (uint8_t *)mem;
    out->scale = (float *)(mem + ((wb + 255) & ~(size_t)255));
    size_t off = 0;
    for (int k = 0; k < n; k++) {
        const size_t pb = (size_t)parts[k].rows * (size_t)parts[k].cols;
        CUDA_CHECK(cudaMemcpy(out->w + off, parts[k].w, pb, cudaMemcpyHostToDevice));
        off += pb;
    }
    CUDA_CHECK(cudaMemcpy(out->scale, hs, sb, cudaMemcpyHostToDevice));
    free(hs);
    *bytes += wb + sb;
    return 0;
}

#else
typedef int folio_weights_cuda_fp8_unused; /* built without CUDA */
#endif
