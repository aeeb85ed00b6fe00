/* RTN weight quantization: scales rounded up to half, zeros, unsigned codes per group. */
#include "quantize.h"

#include <math.h>
#include <stdlib.h>

#include "dtype.h"
#include "error.h"

int rtn_check(const rtn_params *p, int cols, const char *what) {
    if (p->bits != 4 && p->bits != 8)
        return folio_fail("%s: %d-bit quantization is not supported (4 or 8)", what, p->bits);
    if (p->group_size <= 0 || cols % p->group_size != 0)
        return folio_fail("%s: group size %d does not divide the %d input columns", what,
                          p->group_size, cols);
    return 0;
}

uint16_t f16_round_up(float x) {
    if (!(x <= 65504.0f)) return 0x7c00;
    uint16_t h = f32_to_f16(x);
    if (f16_to_f32(h) < x) h++; /* positive halves are ordered like their bit patterns */
    return h;
}

/* One group of n values: its scale (half bits) and zero. */
static int group_params(const float *w, int n, const rtn_params *p, uint16_t *scale, int *zero) {
    float lo = 0.0f, hi = 0.0f, amax = 0.0f;
    for (int i = 0; i < n; i++) {
        lo = fminf(lo, w[i]);
        hi = fmaxf(hi, w[i]);
        amax = fmaxf(amax, fabsf(w[i]));
    }
    float s = p->sym ? amax / (float)((1 << (p->bits - 1)) - 1)
                     : (hi - lo) / (float)((1 << p->bits) - 1);
    *scale = s > 0.0f ? f16_round_up(s) : 0x3c00; /* 1.0 for an all-zero group */
    if (*scale == 0x7c00) return -1;
    float sh = f16_to_f32(*scale);
    int zmax = (1 << p->bits) - 1;
    int z = p->sym ? 1 << (p->bits - 1) : (int)lrintf(-lo / sh);
    *zero = z < 0 ? 0 : z > zmax ? zmax : z;
    return 0;
}

static void quantize_group(const float *w, int n, float s, int z, int bits, uint8_t *q) {
    const int qmax = (1 << bits) - 1;
    for (int i = 0; i < n; i++) {
        long v = lrintf(w[i] / s) + z;
        q[i] = (uint8_t)(v < 0 ? 0 : v > qmax ? qmax : v);
    }
}

int rtn_quantize(const float *w, int rows, int cols, const rtn_params *p, const char *what,
                 rtn_matrix *m) {
    *m = (rtn_matrix){.rows = rows, .cols = cols, .bits = p->bits, .group_size = p->group_size};
    if (rtn_check(p, cols, what) != 0) return -1;
    const int groups = cols / p->group_size;
    m->q = folio_xmalloc((size_t)rows * cols);
    m->zeros = folio_xmalloc((size_t)rows * groups);
    m->scales = folio_xmalloc((size_t)rows * groups * sizeof *m->scales);
    for (int r = 0; r < rows; r++) {
        for (int g = 0; g < groups; g++) {
            const size_t at = (size_t)r * cols + (size_t)g * p->group_size;
            int z;
            if (group_params(w + at, p->group_size, p, &m->scales[r * groups + g], &z) != 0) {
                rtn_free(m);
                return folio_fail("%s: row %d, group %d: the scale does not fit a float16 "
                                  "(|w| too large)", what, r, g);
            }
            m->zeros[r * groups + g] = (uint8_t)z;
            quantize_group(w + at, p->group_size, f16_to_f32(m->scales[r * groups + g]), z,
                           p->bits, m->q + at);
        }
    }
    return 0;
}

int rtn_roundtrip(const float *w, int rows, int cols, const rtn_params *p, float *out) {
    const int group = p->group_size;
    uint8_t *q = folio_xmalloc((size_t)group);
    int rc = 0;
    for (size_t at = 0; at < (size_t)rows * cols && rc == 0; at += (size_t)group) {
        uint16_t scale;
        int z;
        rc = group_params(w + at, group, p, &scale, &z);
        if (rc != 0) break;
        const float s = f16_to_f32(scale);
        quantize_group(w + at, group, s, z, p->bits, q);
        for (int i = 0; i < group; i++) out[at + i] = (float)(q[i] - z) * s;
    }
    free(q);
    return rc;
}

bool rtn_fits(int cols, int bits, int group_size) {
    return cols % (group_size > 0 ? group_size : cols) == 0 && cols % (32 / bits) == 0;
}

double rtn_dequant(const rtn_matrix *m, int r, int c) {
    const int groups = m->cols / m->group_size, g = c / m->group_size;
    const int q = m->q[(size_t)r * m->cols + c], z = m->zeros[r * groups + g];
    return (double)(q - z) * (double)f16_to_f32(m->scales[r * groups + g]);
}

void rtn_free(rtn_matrix *m) {
    free(m->q);
    free(m->zeros);
    free(m->scales);
    m->q = m->zeros = NULL;
    m->scales = NULL;
}
