/* Weight-only quantized matrices at load: the quant_matrix (engine/base/quant_layout.h) of this
 * rank's shard of one Linear weight, built from the checkpoint's own tensors (AWQ GEMM, GPTQ,
 * compressed-tensors pack-quantized; docs/quantization.md gives their layouts), and its
 * dequantization into float32 for the CPU backend. The GPU side uploads the quant_matrix
 * instead of dequantizing. */
#ifndef FOLIO_QUANT_H
#define FOLIO_QUANT_H

#include <stddef.h>

#include "quant_dummy.h"
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

/* ---- a dummy 4-bit model (qc->method QUANT_DUMMY: --load-format dummy --quantization
 * w4a16): the values of engine/base/quant_dummy.h, key weights_dummy_key(seed, spec->name) ---- */

/* This rank's shard of the Linear weight spec (a quant_spec_quantized spec) as a qd_shard:
 * key, dense scale, row and column offsets, size and groups. -1 with a message naming the layer
 * when the group size does not divide its input size, when a row-parallel shard (world ranks)
 * would cut a group, or when the shard's columns do not fill whole 4-bit words. */
int quant_dummy_plan(const quant_config *qc, uint64_t seed, const tensor_spec *spec, int world,
                     qd_shard *out);

/* That shard drawn as a host quant_matrix (no perm; the GPU may upload it as a checkpoint's).
 * -1 with quant_dummy_plan's message. The caller frees *m with quant_matrix_free. */
int quant_dummy_matrix(const quant_config *qc, uint64_t seed, const tensor_spec *spec, int world,
                       quant_matrix *m);

/* Plans every quantized Linear weight of this rank (cfg->quant QUANT_DUMMY; else nothing to
 * do): 0, or quant_dummy_plan's message for the first layer that does not fit. */
int quant_dummy_check(const model_config *cfg, const shard_plan *shard);

#endif
