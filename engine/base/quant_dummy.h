/* The values of a dummy 4-bit model (--load-format dummy --quantization w4a16): random packed
 * weights drawn directly in Folio's quantized layout (quant_layout.h), for benchmarks of real
 * shapes without a checkpoint. Pure functions of (key, FULL-tensor coordinates), usable from C
 * and from CUDA device code, so the CPU loader (engine/model/quant_dummy.c, which dequantizes
 * them into its float32 arena) and a GPU fill draw the same numbers, and every tensor-parallel
 * shard sees the slice of one model whatever the sharding.
 *
 * A Linear weight W [out][in] (Hugging Face out x in) with key = weights_dummy_key(seed, name)
 * (engine/model/weights.h, the key the dense dummy weights use), group size S (per channel:
 * S = in) and dense_scale = weights_dummy_scale(spec) = sqrt(3 / in) (the bound of the dense
 * dummy weights, uniform(-a, a), std a / sqrt(3)) is, for row r and input column c, g = c / S:
 *
 *     W[r][c] = (qd_q(key, r, c) - qd_zero(key, r, g, sym)) * half(qd_scale(key, r, g, a, sym))
 *
 *   q      0..15, uniform: nibble c % 16 of h = splitmix64(Kq + ((r << 32) | c / 16) * M),
 *          Kq = mix64(key ^ QD_SALT_Q), M = 0xd1b54a32d192ed03 (nibble k: bits 4k .. 4k+3).
 *          So one hash gives 16 consecutive columns; qd_word packs 8 of them.
 *   zero   asymmetric (the default): 4 + (hg & 7), uniform in 4..11, where
 *          hg = splitmix64(Kg + ((r << 32) | g) * M), Kg = mix64(key ^ QD_SALT_G);
 *          symmetric (--sym): 8.
 *   scale  IEEE half bits of ((a * N) * (97 + 2 * ((hg >> 8) & 31))) * 2^-7: a per-group
 *          factor uniform over 32 steps in [0.758, 1.242] (mean 1) of a * N, N =
 *          QD_NORM_ASYM or QD_NORM_SYM chosen so that the dequantized weights have the std
 *          of the dense dummy weights, a / sqrt(3) (E[(q - z)^2] is 26.5 asymmetric, 21.5
 *          symmetric; E[factor^2] = 16725 / 16384). Products only (no contraction into FMAs
 *          can change them) and an integer float -> half rounding (to nearest even, as
 *          dtype.c's f32_to_f16): bit-identical on the host and the device, given the same
 *          float a (compute it on the host with weights_dummy_scale and pass it down).
 *
 * Values depend on full-tensor (r, c, g) only, never on a shard's offsets: a column-parallel
 * shard (q/k/v/gate/up: rows r0 .. r0 + rows - 1) and a row-parallel one (o/down: input
 * columns c0 .. c0 + cols - 1, cut at group boundaries; per channel: anywhere, the shard
 * holds part of the one group 0) take their slice of the same matrices. They also depend on
 * the group size (g = c / S): models of different --group-size differ in scales and zeros.
 *
 * A shard as a quant_matrix (no perm): qd_shard (below) holds its offsets; word j of local row
 * r is qd_shard_word, scale and zero of local group l are qd_shard_scale / qd_shard_zero,
 * local group l being full-tensor group g0 + l. engine/model/quant_dummy.c's
 * quant_dummy_plan fills a qd_shard for a tensor_spec and checks the group size. */
#ifndef FOLIO_QUANT_DUMMY_H
#define FOLIO_QUANT_DUMMY_H

#include <stdint.h>
#include <string.h>

#include "hash.h"
#include "quant_layout.h"

#ifdef __CUDACC__
#define QD_FN static inline __host__ __device__
#else
#define QD_FN static inline
#endif

/* Salts of the two sub-keys (q; zero and scale). */
#define QD_SALT_Q 0x71c4a3d2e5f60b19ull
#define QD_SALT_G 0x3c6ef372fe94f82bull
/* The index multiplier (the dense dummy weights' too). */
#define QD_MUL 0xd1b54a32d192ed03ull
/* 1 / sqrt(3 * E[(q - z)^2] * E[factor^2]): asymmetric 26.5, symmetric 21.5. */
#define QD_NORM_ASYM 0.111005205f
#define QD_NORM_SYM 0.123238683f

/* The bits of a float. */
QD_FN uint32_t qd_f32_bits(float f) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
#endif
}

/* IEEE half bits of f, rounded to nearest even (integer operations only; = dtype.c's
 * f32_to_f16, but usable on the device); overflow gives infinity, NaN a quiet NaN. */
QD_FN uint16_t qd_f32_to_f16(float f) {
    const uint32_t u = qd_f32_bits(f), sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);
    if (a < 0x38800000u) { /* a half subnormal (or 0): round a * 2^24 to an integer */
        const uint32_t e = a >> 23, mant = (a & 0x7fffffu) | (e ? 0x800000u : 0u);
        const uint32_t shift = 126u - (e ? e : 1u); /* value * 2^24 = mant >> shift */
        if (shift > 24u) return (uint16_t)sign;
        const uint32_t r = mant >> shift, rem = mant & ((1u << shift) - 1u),
                       half = 1u << (shift - 1u);
        return (uint16_t)(sign | (r + (rem > half || (rem == half && (r & 1u)))));
    }
    return (uint16_t)(sign | ((a + 0xfffu + ((a >> 13) & 1u) - (112u << 23)) >> 13));
}

/* The 16 nibbles of row r, full columns 16 * (c / 16) .. + 15 (column c's at bits
 * 4 * (c % 16)). */
QD_FN uint64_t qd_q16(uint64_t key, int64_t r, int64_t c) {
    const uint64_t kq = folio_mix64(key ^ QD_SALT_Q);
    return folio_splitmix64(kq + (((uint64_t)r << 32) | ((uint64_t)c >> 4)) * QD_MUL);
}

/* q (0..15) of full-tensor element (row r, input column c). */
QD_FN int qd_q(uint64_t key, int64_t r, int64_t c) {
    return (int)((qd_q16(key, r, c) >> (4 * (c & 15))) & 15u);
}

/* The packed word (quant_layout.h's 4-bit nibble order 0 2 4 6 1 3 5 7) of full columns
 * c .. c + 7 of row r; c a multiple of 8. */
QD_FN uint32_t qd_word(uint64_t key, int64_t r, int64_t c) {
    const uint32_t v = (uint32_t)(qd_q16(key, r, c) >> (4 * (c & 8))); /* column c+i: bits 4i */
    uint32_t w = 0;
    for (int i = 0; i < 8; i++) w |= ((v >> (4 * i)) & 15u) << ql_shift(4, i);
    return w;
}

/* The hash of (row r, full-tensor group g) that zero and scale are drawn from. */
QD_FN uint64_t qd_group_hash(uint64_t key, int64_t r, int64_t g) {
    const uint64_t kg = folio_mix64(key ^ QD_SALT_G);
    return folio_splitmix64(kg + (((uint64_t)r << 32) | (uint64_t)g) * QD_MUL);
}

/* The zero (4..11 drawn; symmetric: 8) of (row r, full-tensor group g). */
QD_FN int qd_zero(uint64_t key, int64_t r, int64_t g, int sym) {
    return sym ? 8 : 4 + (int)(qd_group_hash(key, r, g) & 7u);
}

/* The scale, IEEE half bits, of (row r, full-tensor group g); dense_scale =
 * weights_dummy_scale of the tensor (sqrt(3 / in), computed on the host). */
QD_FN uint16_t qd_scale(uint64_t key, int64_t r, int64_t g, float dense_scale, int sym) {
    const uint32_t k = (uint32_t)((qd_group_hash(key, r, g) >> 8) & 31u);
    const float norm = sym ? QD_NORM_SYM : QD_NORM_ASYM;
    const float s = ((dense_scale * norm) * (float)(97u + 2u * k)) * 0.0078125f;
    return qd_f32_to_f16(s);
}

/* ---- one shard as a quant_matrix (rows x cols, no perm, in_cols = cols) ---- */

typedef struct {
    uint64_t key;                /* weights_dummy_key(seed, tensor name) */
    float dense_scale;           /* weights_dummy_scale(spec) */
    int sym;                     /* zero 8 */
    int64_t r0, c0;              /* full-tensor row and input column of the shard's (0, 0) */
    int rows, cols;              /* the shard's rows and input (= kernel) columns */
    int group_size;              /* the shard's groups (per channel: cols); divides cols */
    int64_t g0;                  /* full-tensor group of the shard's group 0 */
} qd_shard;

/* Word j (kernel columns 8j .. 8j+7) of the shard's row r. */
QD_FN uint32_t qd_shard_word(const qd_shard *s, int r, int j) {
    const int64_t c = s->c0 + 8 * (int64_t)j;
    if ((c & 7) == 0) return qd_word(s->key, s->r0 + r, c);
    uint32_t w = 0; /* a shard starting inside a word: column by column */
    for (int i = 0; i < 8; i++) w |= (uint32_t)qd_q(s->key, s->r0 + r, c + i) << ql_shift(4, i);
    return w;
}

/* Scale (half bits) and zero of the shard's row r, group l. */
QD_FN uint16_t qd_shard_scale(const qd_shard *s, int r, int l) {
    return qd_scale(s->key, s->r0 + r, s->g0 + l, s->dense_scale, s->sym);
}
QD_FN uint8_t qd_shard_zero(const qd_shard *s, int r, int l) {
    return (uint8_t)qd_zero(s->key, s->r0 + r, s->g0 + l, s->sym);
}

#endif
