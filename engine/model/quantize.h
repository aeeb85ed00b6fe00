/* Round-to-nearest (RTN) weight quantization of one float matrix, the arithmetic behind
 * `folio quantize --method rtn`, and its inverse for checks.
 *
 * A matrix W [rows][cols] (a Hugging Face Linear weight, out x in, row-major) is cut into
 * groups of group_size consecutive columns of a row (group_size = cols: per channel). Every
 * group gets a scale s (stored as IEEE half) and a zero z, and every element an unsigned
 * q in 0 .. 2^bits - 1 with W ~ (q - z) * s:
 *   asymmetric: lo = min(0, min w), hi = max(0, max w), s = (hi - lo) / (2^bits - 1),
 *               z = round(-lo / s)
 *   symmetric:  s = max |w| / (2^(bits-1) - 1), z = 2^(bits-1) (so q - z is in
 *               -(2^(bits-1) - 1) .. 2^(bits-1) - 1; the most negative code is never used)
 * then q = clamp(round(w / s) + z). The scale is rounded UP to the next half value before
 * q is computed, so the range always fits and |W - (q - z) * s| <= s / 2 for every element
 * with the stored s. A group of zeros gets s = 1. */
#ifndef FOLIO_QUANTIZE_H
#define FOLIO_QUANTIZE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int bits;                    /* 4 or 8 */
    int group_size;              /* divides cols */
    bool sym;
} rtn_params;

typedef struct {
    int rows, cols, bits, group_size;
    uint8_t *q;                  /* [rows][cols], 0 .. 2^bits - 1 */
    uint8_t *zeros;              /* [rows][cols / group_size] */
    uint16_t *scales;            /* IEEE half bits [rows][cols / group_size] */
} rtn_matrix;

/* Checks the parameters against a matrix of `cols` columns: bits 4 or 8, group_size > 0
 * dividing cols. 0, or -1 with a message naming `what` (a tensor name). */
int rtn_check(const rtn_params *p, int cols, const char *what);

/* Quantizes w [rows][cols] into m (allocated here; rtn_free releases). 0, or -1 with a
 * message naming `what` when a scale does not fit a half (|w| too large). */
int rtn_quantize(const float *w, int rows, int cols, const rtn_params *p, const char *what,
                 rtn_matrix *m);

/* What rtn_quantize then rtn_dequant give, element by element, without keeping the codes:
 * out [rows][cols] (may be w itself). The fake quantization that AWQ's searches measure, equal
 * to what the checkpoint will hold. 0, or -1 when a scale does not fit a half (no message). */
int rtn_roundtrip(const float *w, int rows, int cols, const rtn_params *p, float *out);

/* Whether `folio quantize` quantizes a matrix of cols input columns: the group size (<= 0:
 * per channel) and 32 / bits both divide cols. Otherwise the matrix stays in float. */
bool rtn_fits(int cols, int bits, int group_size);

/* (q - z) * s of (r, c). */
double rtn_dequant(const rtn_matrix *m, int r, int c);

void rtn_free(rtn_matrix *m);

/* The smallest IEEE half >= x (x >= 0, finite); 0x7c00 (infinity) when x > 65504. */
uint16_t f16_round_up(float x);

#endif
