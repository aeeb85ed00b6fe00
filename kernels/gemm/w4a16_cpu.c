/* CPU twin of the W4A16 (and W8A16) matrix products (kernels/gemm/w4a16.cu): dequantize the
 * quant_matrix (engine/base/quant_layout.h) into float, in input-column order, then the float
 * matmul_cpu. Reference only: the dequantized matrix is materialized. */
#include <stdint.h>
#include <stdlib.h>

#include "dtype.h"
#include "kernels_cpu.h"

void w4a16_dequant_cpu(float *w, const quant_matrix *m) {
    const int groups = ql_groups(m);
    for (int r = 0; r < m->rows; r++) {
        for (int c = 0; c < m->cols; c++) {
            const int g = c / m->group_size;
            const float s = f16_to_f32(m->scales[(int64_t)r * groups + g]);
            const int z = m->zeros[(int64_t)r * groups + g];
            const int in_c = m->perm ? m->perm[c] : c;
            if (in_c == QL_PAD) continue; /* no input */
            w[(int64_t)r * m->in_cols + in_c] = (float)(ql_get(m, r, c) - z) * s;
        }
    }
}

int w4a16_cpu(float *out, const float *x, const quant_matrix *m, const float *bias, int n) {
    float *w = malloc(sizeof(float) * (size_t)m->rows * (size_t)m->in_cols);
    if (!w) return -1;
    w4a16_dequant_cpu(w, m);
    matmul_cpu(out, x, w, bias, n, m->in_cols, m->rows);
    free(w);
    return 0;
}
