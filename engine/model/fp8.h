/* FP8 checkpoints at load: this rank's shard of one Linear weight as an fp8_matrix
 * (engine/base/fp8_layout.h), read from compressed-tensors float-quantized tensors
 * (`weight` float8_e4m3fn, `weight_scale`, optional `input_scale`) or block FP8 ones
 * (`weight`, `weight_scale_inv` [ceil(out/128)][ceil(in/128)]), or drawn for a dummy FP8
 * model; and its dequantization into float32 for the CPU backend (which then quantizes the
 * activations exactly as fp8_matrix.act says: kernels/gemm/fp8_cpu.c). docs/quantization.md
 * gives the layouts. */
#ifndef FOLIO_FP8_H
#define FOLIO_FP8_H

#include <stddef.h>
#include <stdint.h>

#include "fp8_layout.h"
#include "quant.h"

/* The fp8_matrix of this rank's shard of spec (a quant_spec_quantized spec of a QUANT_FP8
 * checkpoint): column-parallel shards take their rows (and their rows' channel or block
 * scales), row-parallel ones their columns; a block-scaled split that cuts a block is an
 * error naming the layer, the block size and the world size. Malformed tensors: -1 with a
 * message naming the file, the tensor, what was expected and what was found. The caller
 * frees *m with fp8_matrix_free. */
int fp8_load_matrix(quant_loader *ql, const tensor_spec *spec, fp8_matrix *m);

/* A dummy FP8 model's shard (engine/base/fp8_dummy.h gives the values, so a GPU fill draws
 * the same ones). */
int fp8_dummy_matrix(const quant_config *qc, uint64_t seed, const tensor_spec *spec, int world,
                     fp8_matrix *m);

/* Checks every quantized Linear shard of this rank of a dummy FP8 model (cfg->quant QUANT_FP8,
 * fp8_src FP8_SRC_DUMMY; else nothing to do) before any weight is drawn: 0, or
 * fp8_dummy_matrix's message for the first block-scaled shard that cuts a block. */
int fp8_dummy_check(const model_config *cfg, const shard_plan *shard);

/* out [rows][cols] = e4m3(w) * scale (float32; the CPU backend's weights). */
void fp8_matrix_dequantize(const fp8_matrix *m, float *out);

void fp8_matrix_free(fp8_matrix *m);

size_t fp8_matrix_bytes(const fp8_matrix *m);

#endif
