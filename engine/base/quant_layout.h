/* Folio's own layout of a weight-only quantized matrix (W4A16, and W8A16 where the format
 * allows), the one every checkpoint format (AWQ, GPTQ, compressed-tensors pack-quantized) is
 * repacked into at load, and the one the kernels read (kernels/gemm/w4a16*). Plain data and
 * bit operations only, so the loader (engine/model), the kernels and their CPU twins, and
 * `folio quantize` share it without depending on each other.
 *
 * A matrix W [rows][cols] is a Hugging Face Linear weight (out x in). Inputs come in groups
 * of group_size consecutive kernel columns (group_size divides cols; per-channel: group_size
 * = cols). For row r and kernel column c, with g = c / group_size:
 *
 *     W[r][perm ? perm[c] : c] = (q[r][c] - zeros[r][g]) * scales[r][g]
 *
 * (padding columns, perm[c] = QL_PAD, stand for no input and are skipped).
 *
 *   qweight  uint32 [rows][cols / per_word]: per_word = 32 / bits values of row r, kernel
 *            columns per_word*j .. per_word*j + per_word-1 in word j. 4 bits: the nibble order
 *            is 0 2 4 6 1 3 5 7 (bits 0-3 hold column 8j, bits 4-7 column 8j+2, bits 8-11
 *            8j+4, bits 12-15 8j+6, bits 16-19 8j+1, ... bits 28-31 8j+7), so
 *            (word >> 4i) & 0x000F000F holds columns 8j+2i and 8j+2i+1 in the low bits of the
 *            word's two 16-bit halves: OR-ing 0x4300 into each half makes two bf16 values
 *            128 + q, and one subtraction dequantizes both (the kernels' fast path). 8 bits:
 *            byte i of word j holds column 4j+i.
 *   scales   IEEE half [rows][cols / group_size] (AWQ and GPTQ store fp16; compressed-tensors'
 *            bf16 or fp32 scales are converted once at load, checked to be representable).
 *   zeros    uint8 [rows][cols / group_size], 0 .. 2^bits - 1 (symmetric: 2^(bits-1)).
 *   perm     int32 [cols] or NULL: act-order (GPTQ desc_act, compressed-tensors actorder):
 *            kernel column c multiplies input perm[c]; the load sorts the columns by group so
 *            every group is contiguous, and the kernels gather the activation through perm.
 *            perm[c] = QL_PAD (-1) marks a padding column: it has no input, the kernels
 *            gather 0 for it (so it contributes nothing whatever its weight) and dequantizing
 *            writes nothing for it. Its q equals its group's zero (weight exactly 0) anyway.
 *   in_cols  the matrix's input count: x is [n][in_cols] and W [rows][in_cols]. in_cols = cols
 *            unless the matrix has padding columns (then in_cols < cols and perm is set).
 *
 * Padding exists for act-order row-parallel shards: g_idx scatters every group over the
 * whole input, so a rank's slice of the inputs holds part of most groups. The load sorts the
 * slice's columns by group (stable) and pads each partial group with QL_PAD columns up to
 * group_size, so every group is still group_size contiguous kernel columns; each rank's
 * partial sum of the row-parallel product is exact, and the all-reduce adds them.
 *
 * Kernel columns and input columns are the same thing when perm is NULL. */
#ifndef FOLIO_QUANT_LAYOUT_H
#define FOLIO_QUANT_LAYOUT_H

#include <stdint.h>

#ifdef __CUDACC__
#define QL_FN static inline __host__ __device__
#else
#define QL_FN static inline
#endif

typedef struct {
    int rows, cols;              /* out, kernel columns (this rank's shard, padding included) */
    int in_cols;                 /* inputs (this rank's shard): cols less the padding columns */
    int bits;                    /* 4 or 8 */
    int group_size;              /* divides cols */
    uint32_t *qweight;           /* [rows][cols * bits / 32] */
    uint16_t *scales;            /* IEEE half bits [rows][cols / group_size] */
    uint8_t *zeros;              /* [rows][cols / group_size] */
    int32_t *perm;               /* [cols] or NULL; QL_PAD: a padding column */
} quant_matrix;

/* perm's mark of a padding column: no input, contributes nothing. */
#define QL_PAD (-1)

QL_FN int ql_per_word(int bits) { return 32 / bits; }
QL_FN int ql_groups(const quant_matrix *m) { return m->cols / m->group_size; }
QL_FN int ql_words_per_row(const quant_matrix *m) { return m->cols / ql_per_word(m->bits); }

/* The bit offset of kernel column c (c mod per_word = i) inside its word. */
QL_FN int ql_shift(int bits, int i) {
    return bits == 4 ? ((i & 1) ? 16 : 0) + 4 * (i >> 1) : 8 * i;
}

/* q of (row r, kernel column c). */
QL_FN int ql_get(const quant_matrix *m, int r, int c) {
    const int per = ql_per_word(m->bits);
    const uint32_t w = m->qweight[(int64_t)r * ql_words_per_row(m) + c / per];
    return (int)((w >> ql_shift(m->bits, c % per)) & ((1u << m->bits) - 1u));
}

/* Sets q (0 .. 2^bits - 1) of (row r, kernel column c). */
QL_FN void ql_set(quant_matrix *m, int r, int c, int q) {
    const int per = ql_per_word(m->bits), s = ql_shift(m->bits, c % per);
    uint32_t *w = &m->qweight[(int64_t)r * ql_words_per_row(m) + c / per];
    *w = (*w & ~(((1u << m->bits) - 1u) << s)) | ((uint32_t)q << s);
}

#endif
