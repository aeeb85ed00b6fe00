/* Element types of weights and activations: names as Hugging Face and safetensors spell them,
 * sizes, and scalar conversions between float32 and the 16-bit formats. */
#ifndef FOLIO_DTYPE_H
#define FOLIO_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum { DTYPE_F32 = 0, DTYPE_F16, DTYPE_BF16, DTYPE_COUNT } folio_dtype;

size_t dtype_size(folio_dtype t);
const char *dtype_name(folio_dtype t);          /* "float32", "float16", "bfloat16" */

/* Parses a torch dtype name ("float32", "bfloat16", "float16", also "fp16", "bf16", "half").
 * Returns 0 and sets *out, or -1 (no message recorded). */
int dtype_parse(const char *s, folio_dtype *out);

float f16_to_f32(uint16_t h);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);                  /* round to nearest even */
uint16_t f32_to_f16(float f);                   /* round to nearest even */

/* Converts n elements of type t at src (any alignment for float32) to float32 at dst and
 * returns how many of them are NaN or infinite (counted in the same pass). */
size_t dtype_to_f32(float *dst, const void *src, folio_dtype t, size_t n);

#endif
