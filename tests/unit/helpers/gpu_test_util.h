/* Helpers of the GPU tests (test_gpu_*.c): host <-> device copies in any dtype, random
 * inputs exactly representable in a dtype, tolerance checks that print the first mismatches,
 * the skip-without-GPU check, and a CUDA-event timer that flushes L2 between repeats.
 * Available with CUDA (FOLIO_HAVE_CUDA). */
#ifndef FOLIO_GPU_TEST_UTIL_H
#define FOLIO_GPU_TEST_UTIL_H

#ifdef FOLIO_HAVE_CUDA

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dtype.h"

/* Uniform in [lo, hi) from the tests' xorshift generator. */
float gpu_test_urand(float lo, float hi);
/* n random values in [lo, hi), rounded to dtype t (so CPU and GPU start equal). Caller frees. */
float *gpu_test_rand(size_t n, float lo, float hi, folio_dtype t);
/* Device copy of host floats converted to t (cudaMalloc'd; caller cudaFrees). */
void *gpu_test_to_device(const float *h, size_t n, folio_dtype t);
/* Host floats from n device elements of type t. */
void gpu_test_from_device(float *h, const void *d, size_t n, folio_dtype t);
/* Rounds h[0..n) to dtype t in place. */
void gpu_test_round(float *h, size_t n, folio_dtype t);
/* Mismatches of |got - want| > atol + rtol |want| (NaN counts); prints the first ten. */
size_t gpu_test_mismatches(const char *what, const float *got, const float *want, size_t n,
                           double atol, double rtol);
/* Bytes of xq [n][k] and scales xs [n] (device) that differ from fp8_quantize_act_cuda's
 * quantization of the device activations x (dtype t) with act (per token or static) and
 * input_scale: what a kernel that quantizes its own output must match bit for bit; prints the
 * counts when any differ. */
size_t gpu_test_fp8_quant_diff(const char *what, const void *x, const uint8_t *xq,
                               const float *xs, int n, int k, folio_dtype t, int act,
                               float input_scale);
/* Elements of the two device arrays (n of dtype t) whose bits differ. */
size_t gpu_test_bits_diff(const void *a, const void *b, size_t n, folio_dtype t);
/* The same over `bytes` bytes in elements of `elem` bytes. */
size_t gpu_test_device_diff(const void *a, const void *b, size_t bytes, size_t elem);
/* What a kernel that quantizes its own output writes (device): out [len] of dtype t, its
 * e4m3 bytes q [len] and scales s [n]; for comparing a fused form with its reference. */
typedef struct {
    void *out;
    uint8_t *q;
    float *s;
} gpu_test_fp8_out;
void gpu_test_fp8_out_alloc(gpu_test_fp8_out *o, size_t len, int n, folio_dtype t);
/* Two of them for a check of a kernel taking deferred FP8 scales (fp8_out_scale) against the
 * rescale + the plain kernel: a->s holds the device token scales xs (n), as in the forward,
 * where the kernel reads them from the buffer it writes its own scales to. */
void gpu_test_fp8_out_pair(gpu_test_fp8_out *a, gpu_test_fp8_out *b, size_t len, int n,
                           folio_dtype t, const float *xs);
/* Elements of out, bytes of q and scales of s that differ between a and b. */
size_t gpu_test_fp8_out_diff(const gpu_test_fp8_out *a, const gpu_test_fp8_out *b, size_t len,
                             int n, folio_dtype t);
void gpu_test_fp8_out_free(gpu_test_fp8_out *o);
/* true (after printing "SKIPPED: ...") when there is no usable GPU. */
bool gpu_test_skip(void);
/* true unless FOLIO_BENCH=0. */
bool gpu_test_bench_enabled(void);

/* Median milliseconds of `reps` runs of fn(arg) after `warmup`, L2 flushed before each. */
double gpu_test_time_ms(void (*fn)(void *), void *arg, int warmup, int reps);

/* Median microseconds per call of back-to-back calls fn(arg, i % copies) (one warm-up call
 * per copy, then 7 timed runs of at least 40 calls): the benches' decode-like timing, each
 * call reading another copy of its weights so L2 does not hold them. */
double gpu_test_rotating_us(void (*fn)(void *arg, int copy), void *arg, int copies);

/* The device-to-device copy rate in GB/s (read + write) of a 2 GiB cudaMemcpyAsync, median of
 * 5 after a warm-up: the bandwidth ceiling the benches quote. */
double gpu_test_copy_gbps(void);

#endif
#endif
