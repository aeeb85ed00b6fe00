/* Weight-only quantized matrices at load: the quant_matrix (engine/base/quant_layout.h) of this
 * rank's shard of one Linear weight, built from the checkpoint's own tensors (AWQ GEMM, GPTQ,
 * compressed-tensors pack-quantized; docs/quantization.md gives their layouts), and its
 * dequantization into float32 for the CPU backend. The GPU side uploads the quant_matrix
 * instead of dequantizing. */
#ifndef FOLIO_QUANT_H
#define FOLIO_QUANT_H

#include <stddef.h>

#include "quant_layout.h"
#include "safetensors.h"
#include "weights.h"

/* One loading pass over a checkpoint's quantized tensors. */
typedef struct {
    const safetensors_model *st;   /* the opened checkpoint */
    const char *dir;               /* for messages about missing tensors */
    const quant_config *qc;
    int world;                     /* for messages about row-parallel splits */
    char note[384];                /* what the loader assumed where the checkpoint's label
                                    * disagreed with its data ("" if nothing); the first one */
} quant_loader;

/* Whether spec (a Linear weight) is stored quantized: an INIT_MATRIX spec whose module is
 * quantized under qc. */
int quant_spec_quantized(const quant_config *qc, const tensor_spec *spec);

/* The quant_matrix of this rank's shard of spec (rows: spec's rows or its row slice; columns:
 * spec's columns or its column slice), read from the checkpoint's tensors of spec's module.
 * Act-order: a row-parallel shard's partial groups are padded (quant_layout.h). Malformed
 * tensors (missing, wrong dtype or shape, out-of-range zeros or g_idx) and row-parallel splits
 * that cut a group without act-order: -1 with a message naming the file, the tensor, what
 * was expected and what was found. The caller frees *m with quant_matrix_free. */
int quant_load_matrix(quant_loader *ql, const tensor_spec *spec, quant_matrix *m);

/* out [rows][in_cols] in input column order: W[r][perm ? perm[c] : c] = (q - zero) * scale
 * (padding columns, perm QL_PAD, skipped), each value exact in float32 (|q - zero| < 256
 * times an fp16 scale). */
void quant_matrix_dequantize(const quant_matrix *m, float *out);

void quant_matrix_free(quant_matrix *m);

/* Bytes of m's arrays. */
size_t quant_matrix_bytes(const quant_matrix *m);

#endif
