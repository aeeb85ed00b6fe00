/* engine/model internal: the per-format readers of quantized checkpoints (quant_awq.c,
 * quant_gptq.c, quant_ct.c) unpack a Linear weight into one common form, which quant_build.c
 * turns into this rank's quant_matrix. */
#ifndef FOLIO_QUANT_LOAD_H
#define FOLIO_QUANT_LOAD_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "dtype.h"
#include "quant.h"

/* A Linear weight's rows r0 .. r0 + rows - 1 (out) over all `in` input columns, unpacked. */
typedef struct {
    const char *module;          /* "model.layers.0.mlp.down_proj" */
    const char *file;            /* the file holding the packed weight, for messages */
    int out, in;                 /* full shape */
    int r0, rows;                /* rows held */
    int bits;
    int group_size, groups;      /* full-tensor groups (per channel: group_size = in) */
    uint8_t *q;                  /* [rows][in]: 0 .. 2^bits - 1 */
    uint8_t *zeros;              /* [rows][groups]: 0 .. 2^bits - 1 */
    uint16_t *scales;            /* [rows][groups]: fp16 */
    int32_t *g_idx;              /* [in]: group of each input column (default c / group_size) */
    const char *g_idx_name;      /* "g_idx" / "weight_g_idx" when read from the file, else NULL */
} quant_unpacked;

/* Bit mask of accepted dtypes for quant_tensor. */
#define QT(dt) (1u << (dt))

/* The tensor MODULE.SUFFIX, checked to have one of the dtypes and the shape (ndim 1: d0; 2:
 * [d0, d1]). Missing: JSON_ABSENT-like 1 when !required (*t NULL), else -1 naming it. */
int quant_tensor(quant_loader *ql, const char *module, const char *suffix, unsigned dtypes,
                 int ndim, int64_t d0, int64_t d1, bool required, const st_tensor **t);

/* Word i of an int32 tensor (little-endian, alignment-free). */
static inline uint32_t quant_word(const st_tensor *t, size_t i) {
    uint32_t w;
    memcpy(&w, (const char *)t->data + 4 * i, 4);
    return w;
}

/* Element i of an F32, F16 or BF16 tensor (a scale), as float. */
static inline float quant_float_at(const st_tensor *t, size_t i) {
    uint16_t h;
    float f;
    if (t->dtype == ST_F32) return memcpy(&f, (const char *)t->data + 4 * i, 4), f;
    memcpy(&h, (const char *)t->data + 2 * i, 2);
    return t->dtype == ST_F16 ? f16_to_f32(h) : bf16_to_f32(h);
}

int quant_read_awq(quant_loader *ql, quant_unpacked *u);
int quant_read_gptq(quant_loader *ql, quant_unpacked *u);
int quant_read_ct(quant_loader *ql, quant_unpacked *u);

/* Reads the optional g_idx tensor (NAME: "g_idx" or "weight_g_idx") into u->g_idx; required
 * when the config says act-order. */
int quant_read_g_idx(quant_loader *ql, quant_unpacked *u, const char *name);

/* Records note (the first one only) in ql->note. */
void quant_note(quant_loader *ql, const char *fmt, ...);

/* This rank's quant_matrix from u: spec's column slice (row-parallel: whole groups only,
 * except with act-order, where partial groups are padded to group_size with QL_PAD columns),
 * columns sorted by group (perm set where that reorders them or pads). */
int quant_build(const quant_loader *ql, const quant_unpacked *u, const tensor_spec *spec,
                quant_matrix *m);

#endif
