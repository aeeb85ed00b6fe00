/* The one 64-bit mixer of the tree, and the FNV-1a string hash, usable from C and CUDA.
 *
 * folio_mix64 is splitmix64's finaliser (a bijection with full avalanche). The dummy weights
 * (weights.c and its GPU twin weights_fill.cu) and the sampler (kernels/sampling/sample_rows.h,
 * host and device) draw from it, so their values depend on it bit for bit: CPU and GPU agree
 * because both include this one definition; changing it changes every dummy model and every
 * seeded sample. */
#ifndef FOLIO_HASH_H
#define FOLIO_HASH_H

#include <stdint.h>

#ifdef __CUDACC__
#define FOLIO_HASH_FN static inline __host__ __device__
#else
#define FOLIO_HASH_FN static inline
#endif

/* The golden-ratio increment of splitmix64 (also a good odd multiplier). */
#define FOLIO_GOLDEN64 0x9e3779b97f4a7c15ull

FOLIO_HASH_FN uint64_t folio_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* One splitmix64 output for state x (the state advanced by FOLIO_GOLDEN64, then mixed). */
FOLIO_HASH_FN uint64_t folio_splitmix64(uint64_t x) { return folio_mix64(x + FOLIO_GOLDEN64); }

/* FNV-1a over a NUL-terminated string, continuing from h (start with FOLIO_FNV64_OFFSET). */
#define FOLIO_FNV64_OFFSET 0xcbf29ce484222325ull
#define FOLIO_FNV64_PRIME 0x100000001b3ull
/* The start the tree's first FNV-1a users took (FNV's offset basis less its last decimal
 * digit): the dummy weights and the ids of named sessions are drawn from it, so it stays. */
#define FOLIO_FNV64_FOLIO_START 1469598103934665603ull
FOLIO_HASH_FN uint64_t folio_fnv1a64(uint64_t h, const char *s) {
    while (*s) h = (h ^ (unsigned char)*s++) * FOLIO_FNV64_PRIME;
    return h;
}

#endif
