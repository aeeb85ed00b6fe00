/* Rotary position embedding, CPU reference (float32), in Hugging Face's "rotate_half" layout
 * (Llama, Qwen2): feature i of a head is paired with feature i + head_dim/2, and
 *   x'[i]          = x[i] * cos[i] - x[i + half] * sin[i]
 *   x'[i + half]   = x[i + half] * cos[i] + x[i] * sin[i]        (i < half = head_dim/2)
 * with cos/sin read from the engine's tables at the token's position. The two products are
 * rounded separately and then added, as HF's q * cos + rotate_half(q) * sin does. */
#include <stddef.h>

#include "kernels_cpu.h"

void rope_cpu(float *x,                /* [n][n_heads][head_dim], rotated in place */
              const int32_t *positions, /* [n] */
              const float *cos_table,  /* [max_position][head_dim/2] */
              const float *sin_table,  /* [max_position][head_dim/2] */
              int n, int n_heads, int head_dim) {
    const int half = head_dim / 2;
#pragma omp parallel for schedule(static) if ((size_t)n * (size_t)n_heads >= 256)
    for (int t = 0; t < n; t++) {
        const float *c = cos_table + (size_t)positions[t] * (size_t)half;
        const float *s = sin_table + (size_t)positions[t] * (size_t)half;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)t * (size_t)n_heads + (size_t)h) * (size_t)head_dim;
            for (int i = 0; i < half; i++) {
                const float a = v[i], b = v[i + half];
                v[i] = a * c[i] - b * s[i];
                v[i + half] = b * c[i] + a * s[i];
            }
        }
    }
}
