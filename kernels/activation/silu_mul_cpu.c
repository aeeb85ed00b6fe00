/* SwiGLU activation, CPU reference (float32): out = silu(gate) * up with
 * silu(x) = x / (1 + exp(-x)), the form torch's float32 SiLU computes. For x very negative
 * exp(-x) overflows to inf and silu gives -0, as torch does. */
#include <math.h>
#include <stddef.h>

#include "kernels_cpu.h"

void silu_mul_cpu(float *out,        /* [n][d], may alias gate or up */
                  const float *gate, /* [n][d] */
                  const float *up,   /* [n][d] */
                  int n, int d) {
    const size_t total = (size_t)n * (size_t)d;
#pragma omp parallel for schedule(static) if (total >= 65536)
    for (size_t i = 0; i < total; i++) {
        const float g = gate[i];
        out[i] = (g / (1.0f + expf(-g))) * up[i];
    }
}
