/* Sampling on the GPU, first step: greedy. argmax_cuda picks the largest logit of each row
 * (lowest index on ties, NaN never chosen over a number), so only one int per row comes back
 * to the host. CPU twin: sampler_argmax; check: tests/unit/test_gpu_sampling.c.
 * One block of 1024 threads per row: each thread scans a strided slice, then a warp-shuffle
 * and a shared-memory round reduce (value, index) pairs. */
#include "cuda_types.cuh"
#include "kernels_cuda.h"

namespace {

using namespace folio;

constexpr int kThreads = 1024;

__device__ __forceinline__ bool better(float v, int i, float bv, int bi) {
    return v > bv || (v == bv && i < bi) || (bv != bv && v == v);
}

__global__ void argmax_kernel(int32_t *ids,         /* [n] */
                              const float *logits,  /* [n][vocab] */
                              int vocab) {
    __shared__ float s_val[kThreads / kWarp];
    __shared__ int s_idx[kThreads / kWarp];
    const float *row = logits + (size_t)blockIdx.x * vocab;
    float best = -INFINITY;
    int bi = vocab; /* "none yet" loses every tie */
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
        const float v = row[i];
        if (better(v, i, best, bi)) {
            best = v;
            bi = i;
        }
    }
#pragma unroll
    for (int off = kWarp / 2; off > 0; off /= 2) {
        const float ov = __shfl_xor_sync(0xffffffffu, best, off);
        const int oi = __shfl_xor_sync(0xffffffffu, bi, off);
        if (better(ov, oi, best, bi)) {
            best = ov;
            bi = oi;
        }
    }
    const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
    if (lane == 0) {
        s_val[warp] = best;
        s_idx[warp] = bi;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)(blockDim.x / kWarp); w++)
            if (better(s_val[w], s_idx[w], best, bi)) {
                best = s_val[w];
                bi = s_idx[w];
            }
        ids[blockIdx.x] = bi < vocab ? bi : 0;
    }
}

} // namespace

extern "C" void argmax_cuda(int32_t *ids, const float *logits, int n, int vocab,
                            cudaStream_t stream) {
    CUDA_REQUIRE(n >= 0 && vocab >= 1, "argmax_cuda: need n >= 0 and vocab >= 1");
    if (n == 0) return;
    argmax_kernel<<<n, kThreads, 0, stream>>>(ids, logits, vocab);
    CUDA_CHECK_LAUNCH();
}
