/* Element types: names, sizes and scalar conversions between float32, float16 and bfloat16. */
#include <math.h>
#include <string.h>

#include "dtype.h"

static const char *const NAMES[DTYPE_COUNT] = {"float32", "float16", "bfloat16"};
static const size_t SIZES[DTYPE_COUNT] = {4, 2, 2};

size_t dtype_size(folio_dtype t) { return SIZES[t]; }
const char *dtype_name(folio_dtype t) { return NAMES[t]; }

int dtype_parse(const char *s, folio_dtype *out) {
    static const struct { const char *name; folio_dtype t; } aliases[] = {
        {"float32", DTYPE_F32}, {"float", DTYPE_F32}, {"fp32", DTYPE_F32}, {"f32", DTYPE_F32},
        {"float16", DTYPE_F16}, {"half", DTYPE_F16}, {"fp16", DTYPE_F16}, {"f16", DTYPE_F16},
        {"bfloat16", DTYPE_BF16}, {"bf16", DTYPE_BF16},
    };
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
        if (strcmp(s, aliases[i].name) == 0) {
            *out = aliases[i].t;
            return 0;
        }
    }
    return -1;
}

static float bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t f32_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

float bf16_to_f32(uint16_t h) { return bits_to_f32((uint32_t)h << 16); }

float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000u | (mant << 13)); /* inf, nan */
    if (exp == 0) {                                                        /* zero, subnormal */
        float v = ldexpf((float)mant, -24);
        return sign ? -v : v;
    }
    return bits_to_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t f32_to_bf16(float f) {
    uint32_t u = f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet nan */
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

uint16_t f32_to_f16(float f) {
    uint32_t u = f32_to_bits(f), sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);          /* nan */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);         /* overflow to inf */
    if (a < 0x38800000u) {                                           /* subnormal or zero */
        float v = bits_to_f32(a) * 16777216.0f;                      /* scale by 2^24 */
        return (uint16_t)(sign | (uint32_t)lrintf(v));
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1) - (112u << 23);
    return (uint16_t)(sign | (r >> 13));
}

/* A value is NaN or infinite when its exponent bits are all set. */
size_t dtype_to_f32(float *dst, const void *src, folio_dtype t, size_t n) {
    const uint16_t *h = src;
    const unsigned char *b = src;
    size_t bad = 0;
    switch (t) {
    case DTYPE_F32:
        for (size_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, b + 4 * i, 4);
            bad += (u & 0x7f800000u) == 0x7f800000u;
            dst[i] = bits_to_f32(u);
        }
        break;
    case DTYPE_F16:
        for (size_t i = 0; i < n; i++) {
            bad += (h[i] & 0x7c00u) == 0x7c00u;
            dst[i] = f16_to_f32(h[i]);
        }
        break;
    case DTYPE_BF16:
        for (size_t i = 0; i < n; i++) {
            bad += (h[i] & 0x7f80u) == 0x7f80u;
            dst[i] = bf16_to_f32(h[i]);
        }
        break;
    default: break;
    }
    return bad;
}
