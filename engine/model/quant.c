/* A quant_matrix dequantized into float32, W[r][perm ? perm[c] : c] = (q - zero) * scale
 * (padding columns skipped), and its release. */
#include <stdlib.h>
#include <string.h>

#include "dtype.h"
#include "quant.h"

void quant_matrix_dequantize(const quant_matrix *m, float *out) {
    const int groups = ql_groups(m);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < m->rows; r++) {
        const uint8_t *z = m->zeros + (size_t)r * groups;
        const uint16_t *s = m->scales + (size_t)r * groups;
        float *row = out + (size_t)r * m->in_cols;
        for (int c = 0; c < m->cols; c++) {
            const int in_c = m->perm ? m->perm[c] : c, g = c / m->group_size;
            if (in_c == QL_PAD) continue;
            row[in_c] = (float)(ql_get(m, r, c) - (int)z[g]) * f16_to_f32(s[g]);
        }
    }
}

void quant_matrix_free(quant_matrix *m) {
    free(m->qweight);
    free(m->scales);
    free(m->zeros);
    free(m->perm);
    memset(m, 0, sizeof *m);
}

size_t quant_matrix_bytes(const quant_matrix *m) {
    size_t rg = (size_t)m->rows * ql_groups(m);
    return (size_t)m->rows * ql_words_per_row(m) * 4 + rg * 3 +
           (m->perm ? (size_t)m->cols * 4 : 0);
}
