/* Row gather, CPU reference: out[i] = x[rows[i]] (the rows that want logits, before the LM
 * head). */
#include <string.h>

#include "kernels_cpu.h"

void gather_rows_cpu(float *out,          /* [m][dim] */
                     const float *x,      /* [n][dim] */
                     const int32_t *rows, /* [m] indices into x */
                     int m, int dim) {
    for (int i = 0; i < m; i++)
        memcpy(out + (size_t)i * dim, x + (size_t)rows[i] * dim, sizeof(float) * (size_t)dim);
}
