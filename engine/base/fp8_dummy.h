/* The values of a dummy FP8 model (--load-format dummy --quantization fp8 [--fp8-scheme
 * channel|block]): random e4m3 weights and their scales drawn directly, for benchmarks of
 * real shapes without a checkpoint. Pure functions of (key, FULL-tensor coordinates), usable
 * from C and CUDA device code, so the CPU loader (engine/model/fp8.c's fp8_dummy_matrix, which
 * the CPU backend dequantizes) and a GPU fill draw the same bytes, and every tensor-parallel
 * shard holds its slice of one model.
 *
 * A Linear weight W [out][in] with key = weights_dummy_key(seed, name) (the dense dummy
 * weights' key) and a = weights_dummy_scale(spec) = sqrt(3 / in) (computed on the host):
 *
 *   weight  e4m3 byte of (r, c) = fp8_e4m3_from_float(((u * 2^-23) - 1) * 448), u the top
 *           24 bits of splitmix64(Kw + ((r << 32) | c) * M), Kw = mix64(key ^ FD_SALT_W),
 *           M = 0xd1b54a32d192ed03: uniform over [-448, 448) rounded to e4m3 (every finite
 *           value but NaN; std about 448 / sqrt(3)). The float operations are exact or one
 *           rounded product, so host and device agree bit for bit.
 *   scale   of (i, j) = ((a * FD_NORM) * (97 + 2k)) * 2^-7, k = (hs >> 8) & 31, hs =
 *           splitmix64(Ks + ((i << 32) | j) * M), Ks = mix64(key ^ FD_SALT_S): a factor uniform
 *           over 32 steps in [0.758, 1.242] (mean 1) of a * FD_NORM, FD_NORM = 1 / (448 *
 *           sqrt(E[factor^2])), so W = e4m3 * scale has the dense dummy weights' std a / sqrt(3).
 *           Per channel (i, j) = (r, 0); per 128 x 128 block (r / 128, c / 128).
 * Activations are quantized at run time as the scheme says (channel: per token; block: per
 * token and group of 128). */
#ifndef FOLIO_FP8_DUMMY_H
#define FOLIO_FP8_DUMMY_H

#include <stdint.h>

#include "fp8_layout.h"
#include "hash.h"

#define FD_SALT_W 0x5be0cd19137e2179ull
#define FD_SALT_S 0x1f83d9abfb41bd6bull
#define FD_MUL 0xd1b54a32d192ed03ull
#define FD_NORM 0.002209270494f

/* The e4m3 byte of full-tensor element (row r, input column c). */
F8_FN uint8_t fd_weight(uint64_t key, int64_t r, int64_t c) {
    const uint64_t kw = folio_mix64(key ^ FD_SALT_W);
    const uint64_t h = folio_splitmix64(kw + (((uint64_t)r << 32) | (uint64_t)c) * FD_MUL);
    const float u = (float)(uint32_t)(h >> 40) * (1.0f / 8388608.0f) - 1.0f; /* exact */
    return fp8_e4m3_from_float(u * FP8_E4M3_MAX);
}

/* The scale of (i, j): channel (r, 0), block (r / block_rows, c / block_cols), tensor (0, 0);
 * dense_scale = weights_dummy_scale of the tensor. */
F8_FN float fd_scale(uint64_t key, int64_t i, int64_t j, float dense_scale) {
    const uint64_t ks = folio_mix64(key ^ FD_SALT_S);
    const uint64_t h = folio_splitmix64(ks + (((uint64_t)i << 32) | (uint64_t)j) * FD_MUL);
    const uint32_t k = (uint32_t)((h >> 8) & 31u);
    return ((dense_scale * FD_NORM) * (float)(97u + 2u * k)) * 0.0078125f;
}

#endif
