/* Sampling on the GPU, first step: greedy. argmax_cuda picks the largest logit of each row
 * (lowest index on ties, NaN never chosen over a number), so only one int per row comes back
 * to the host. CPU twin: sampler_argmax; check: tests/unit/test_gpu_sampling.c.
 * One block of 1024 threads per row: each thread scans a strided slice, then a warp-shuffle
 * and a shared-memory round reduce (value, index) pairs. */
#include "cuda_types.cuh"
#include "kernels_cuda.h"
#include "sample_rows.h"

namespace {

using namespace folio;

constexpr int kThreads = 1024;

__device__ __forceinline__ bool better(float v, int i, float bv, int bi) {
    return v > bv || (v == bv && i < bi) || (bv != bv && v == v);
}

/* The row's argmax over the block (lowest id on ties, a number over NaN), returned to every
 * thread with its value; 0 for a row of NaNs. Called at most once per kernel. */
__device__ int block_argmax(const float *row, int vocab, float *best_out) {
    __shared__ float s_val[kThreads / kWarp];
    __shared__ int s_idx[kThreads / kWarp];
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
    best = s_val[0];
    bi = s_idx[0];
    for (int w = 1; w < (int)(blockDim.x / kWarp); w++)
        if (better(s_val[w], s_idx[w], best, bi)) {
            best = s_val[w];
            bi = s_idx[w];
        }
    *best_out = best;
    return bi < vocab ? bi : 0;
}

__global__ void argmax_kernel(int32_t *ids,         /* [n] */
                              const float *logits,  /* [n][vocab] */
                              int vocab) {
    float best;
    const int id = block_argmax(logits + (size_t)blockIdx.x * vocab, vocab, &best);
    if (threadIdx.x == 0) ids[blockIdx.x] = id;
}

} // namespace

extern "C" void argmax_cuda(int32_t *ids, const float *logits, int n, int vocab,
                            cudaStream_t stream) {
    CUDA_REQUIRE(n >= 0 && vocab >= 1, "argmax_cuda: need n >= 0 and vocab >= 1");
    if (n == 0) return;
    argmax_kernel<<<n, kThreads, 0, stream>>>(ids, logits, vocab);
    CUDA_CHECK_LAUNCH();
}

/* ---- sample_rows_cuda: the whole sampler on the GPU (kernels/sample_rows.h) ----
 * Three kernels: the raw rows' log-sum-exp (only when logprobs are wanted), the entries
 * (bias, EOS mask, penalties: one thread per entry, in place), then one block of 1024
 * threads per row that samples. The row stays in global memory (up to 152k floats, more than
 * shared memory holds) and is read once per pass: max; three radix passes of 11/11/10 bits
 * over the keys (bits of e_i) for the top-k threshold (counts) and three for the top-p one
 * (integer weights); a pass of per-thread contiguous chunk weights, a block scan, and a
 * rescan of the one chunk holding the draw. Weights are integers, so the sums do not depend
 * on the order of the atomics and match the host twin exactly. */

namespace {

constexpr int kBins = 2048;                   /* 11-bit digits */
__device__ __forceinline__ int digit_shift(int pass) { return pass == 0 ? 21 : (pass == 1 ? 10 : 0); }
__device__ __forceinline__ uint32_t digit_mask(int pass) { return pass == 2 ? 0x3ffu : 0x7ffu; }

typedef unsigned long long u64;

/* Inclusive scan of one value per thread over the block (1024 threads); *total = the sum. */
__device__ u64 block_scan(u64 v, u64 *total) {
    __shared__ u64 s_warp[kThreads / kWarp];
    const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
#pragma unroll
    for (int off = 1; off < kWarp; off *= 2) {
        const u64 o = __shfl_up_sync(0xffffffffu, v, off);
        if (lane >= off) v += o;
    }
    if (lane == kWarp - 1) s_warp[warp] = v;
    __syncthreads();
    if (warp == 0) {
        u64 w = s_warp[lane];
#pragma unroll
        for (int off = 1; off < kWarp; off *= 2) {
            const u64 o = __shfl_up_sync(0xffffffffu, w, off);
            if (lane >= off) w += o;
        }
        s_warp[lane] = w;
    }
    __syncthreads();
    const u64 r = v + (warp ? s_warp[warp - 1] : 0);
    *total = s_warp[kThreads / kWarp - 1];
    __syncthreads();
    return r;
}

struct row_ctx {
    const float *row;
    int vocab;
    float max, t, min_p;
    uint32_t k_thr, p_thr;       /* keys below are dropped */
};

__device__ __forceinline__ bool token_kept(const row_ctx &c, float e, uint32_t key) {
    return key >= c.k_thr && key >= c.p_thr && (!(c.min_p > 0.0f) || e >= c.min_p);
}

/* Radix selection of a threshold key: by counts (top-k: the k-th largest key over all
 * tokens) or by weights (top-p: the largest key whose upper set of kept tokens reaches
 * target; target 0 = ceil(top_p * the kept weight), found in the first pass). */
template <bool kMass>
__device__ uint32_t select_threshold(const row_ctx &c, u64 need, float top_p) {
    __shared__ u64 s_hist[kBins];
    __shared__ uint32_t s_prefix;
    __shared__ u64 s_need;
    uint32_t prefix = 0, pmask = 0;
    for (int pass = 0; pass < 3; pass++) {
        for (int b = threadIdx.x; b < kBins; b += blockDim.x) s_hist[b] = 0;
        __syncthreads();
        for (int i = threadIdx.x; i < c.vocab; i += blockDim.x) {
            const float e = sr_rel_prob(c.row[i], c.max, c.t);
            const uint32_t key = sr_float_bits(e);
            if ((key & pmask) != prefix) continue;
            if (kMass && !token_kept(c, e, key)) continue;
            const u64 add = kMass ? (u64)sr_weight(e) : 1ull;
            if (add) atomicAdd(&s_hist[(key >> digit_shift(pass)) & digit_mask(pass)], add);
        }
        __syncthreads();
        /* thread t holds bins 2047-2t (a) and 2046-2t (b): a scan from the top bin down */
        const int ba = kBins - 1 - 2 * threadIdx.x, bb = ba - 1;
        const u64 ca = s_hist[ba], cb = s_hist[bb];
        u64 total;
        const u64 incl = block_scan(ca + cb, &total);
        if (kMass && pass == 0) need = sr_top_p_target(top_p, total);
        const u64 excl = incl - ca - cb;
        if (excl < need && need <= excl + ca) {
            s_prefix = (uint32_t)ba;
            s_need = need - excl;
        } else if (excl + ca < need && need <= excl + ca + cb) {
            s_prefix = (uint32_t)bb;
            s_need = need - excl - ca;
        }
        __syncthreads();
        prefix |= s_prefix << digit_shift(pass);
        pmask |= digit_mask(pass) << digit_shift(pass);
        need = s_need;
        __syncthreads();
    }
    return prefix;
}

__global__ void row_lse_kernel(float *lse,          /* [n] */
                               const float *logits, /* [n][vocab] */
                               int vocab) {
    __shared__ float s_red[kThreads / kWarp];
    const float *row = logits + (size_t)blockIdx.x * vocab;
    float m = -INFINITY;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) m = fmaxf(m, row[i]);
    for (int off = kWarp / 2; off > 0; off /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
    const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
    if (lane == 0) s_red[warp] = m;
    __syncthreads();
    m = s_red[0];
    for (int w = 1; w < kThreads / kWarp; w++) m = fmaxf(m, s_red[w]);
    __syncthreads();
    float s = 0.0f;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) s += expf(row[i] - m);
    for (int off = kWarp / 2; off > 0; off /= 2) s += __shfl_xor_sync(0xffffffffu, s, off);
    if (lane == 0) s_red[warp] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        float t = 0.0f;
        for (int w = 0; w < kThreads / kWarp; w++) t += s_red[w];
        lse[blockIdx.x] = m + logf(t);
    }
}

__global__ void apply_entries_kernel(float *logits,                  /* [n][vocab] */
                                     int vocab, const sample_row_params *params, /* [n] */
                                     sample_entry *entries) {
    const sample_row_params p = params[blockIdx.x];
    float *row = logits + (size_t)blockIdx.x * vocab;
    for (int j = threadIdx.x; j < p.n_entries; j += blockDim.x) {
        sample_entry *e = &entries[p.entry_start + j];
        const float l = row[e->token];
        e->raw = l;
        row[e->token] = sr_apply_entry(l, e, &p);
    }
}

__global__ void __launch_bounds__(kThreads)
sample_rows_kernel(int32_t *ids,                   /* [n] */
                   float *logprobs,                /* [n] lse in, logprob out; or NULL */
                   const float *logits,            /* [n][vocab] entries applied */
                   int vocab, const sample_row_params *params, /* [n] */
                   const sample_entry *entries) {
    __shared__ int s_id;
    __shared__ float s_raw;
    const sample_row_params p = params[blockIdx.x];
    const float *row = logits + (size_t)blockIdx.x * vocab;
    /* pass 1: the argmax */
    float best;
    const int bi = block_argmax(row, vocab, &best);
    if (threadIdx.x == 0) s_id = bi;
    if (p.temperature != 0.0f) {
        row_ctx c = {row, vocab, best, p.temperature, p.min_p, 0u, 0u};
        if (p.top_k > 0 && p.top_k < vocab) c.k_thr = select_threshold<false>(c, (u64)p.top_k, 0.0f);
        if (p.top_p < 1.0f) c.p_thr = select_threshold<true>(c, 0, p.top_p);
        /* the draw: contiguous chunks per thread, in id order */
        const int chunk = (vocab + kThreads - 1) / kThreads;
        const int lo = min(vocab, (int)threadIdx.x * chunk), hi = min(vocab, lo + chunk);
        u64 mine = 0;
        for (int i = lo; i < hi; i++) {
            const float e = sr_rel_prob(row[i], c.max, c.t);
            if (token_kept(c, e, sr_float_bits(e))) mine += sr_weight(e);
        }
        u64 total;
        const u64 incl = block_scan(mine, &total);
        const u64 r = sr_draw(p.seed, p.counter, total);
        u64 acc = incl - mine;
        if (total > 0 && acc <= r && r < incl) {
            for (int i = lo; i < hi; i++) {
                const float e = sr_rel_prob(row[i], c.max, c.t);
                if (token_kept(c, e, sr_float_bits(e)) && (acc += sr_weight(e)) > r) {
                    s_id = i;
                    break;
                }
            }
        }
    }
    __syncthreads();
    const int id = s_id;
    if (threadIdx.x == 0) {
        ids[blockIdx.x] = id;
        s_raw = row[id];
    }
    if (!logprobs) return;
    __syncthreads();
    for (int j = threadIdx.x; j < p.n_entries; j += blockDim.x)
        if (entries[p.entry_start + j].token == id) s_raw = entries[p.entry_start + j].raw;
    __syncthreads();
    if (threadIdx.x == 0) logprobs[blockIdx.x] = s_raw - logprobs[blockIdx.x];
}

} // namespace

extern "C" void sample_rows_cuda(int32_t *ids, float *logprobs, float *logits, int n, int vocab,
                                 const sample_row_params *params, sample_entry *entries,
                                 cudaStream_t stream) {
    CUDA_REQUIRE(n >= 0 && vocab >= 1, "sample_rows_cuda: need n >= 0 and vocab >= 1");
    if (n == 0) return;
    if (logprobs) {
        row_lse_kernel<<<n, kThreads, 0, stream>>>(logprobs, logits, vocab);
        CUDA_CHECK_LAUNCH();
    }
    apply_entries_kernel<<<n, 256, 0, stream>>>(logits, vocab, params, entries);
    CUDA_CHECK_LAUNCH();
    sample_rows_kernel<<<n, kThreads, 0, stream>>>(ids, logprobs, logits, vocab, params, entries);
    CUDA_CHECK_LAUNCH();
}
