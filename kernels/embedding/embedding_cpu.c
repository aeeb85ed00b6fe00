/* Embedding lookup, CPU reference (float32). Vocab-parallel: this rank holds rows
 * [row_start, row_start + n_rows) of the [vocab][dim] table; ids outside that range give a
 * zero row, and the all-reduce over ranks completes the lookup. */
#include <stddef.h>
#include <string.h>

#include "kernels_cpu.h"

void embedding_cpu(float *out,             /* [n][dim] */
                   const float *table,     /* [n_rows][dim], vocab rows row_start.. */
                   const int32_t *ids,     /* [n] token ids in the full vocabulary */
                   int n, int dim, int row_start, int n_rows) {
    const size_t row_bytes = (size_t)dim * sizeof(float);
#pragma omp parallel for schedule(static) if (n >= 64)
    for (int t = 0; t < n; t++) {
        float *o = out + (size_t)t * (size_t)dim;
        const int64_t r = (int64_t)ids[t] - (int64_t)row_start;
        if (r >= 0 && r < (int64_t)n_rows)
            memcpy(o, table + (size_t)r * (size_t)dim, row_bytes);
        else
            memset(o, 0, row_bytes);
    }
}
