/* One-shot all-reduce over peer memory fused with bias, residual add and RMSNorm (see
 * oneshot_allreduce.h). CPU twin: reduce_add_rmsnorm_cpu (kernels/reduce_add_rmsnorm_cpu.c);
 * check and timing against NCCL: tests/unit/test_gpu_nccl.c (under mpirun).
 *
 * Grid: min(n, ONESHOT_MAX_BLOCKS) blocks, block b doing rows b, b + grid, ...; block: one
 * 16-byte pack of the row per thread (up to 1024 threads).
 *
 * The barrier, per block: thread 0 bumps this block's epoch e; thread k < world stores e
 * into rank k's flag[b][me] with release semantics at system scope (what this rank wrote
 * before, the GEMM's partial sums included, is visible to rank k before the flag is), then
 * waits with acquire loads until its own flag[b][k] reaches e (rank k's block b arrived, its
 * partial sums are written). Epochs only grow, so a fast rank that is already announcing e+1
 * can't be missed; compared as a signed difference, they may wrap. A wait that outlives
 * timeout_ns prints the ranks and traps: the host sees a launch failure, never a hang.
 *
 * Peer rows are read with ld.global.cv (no L1 copy: the same addresses hold new sums on the
 * next call), all ranks' packs issued before they are summed. */
#include <stdio.h>

#include "cuda_types.cuh"
#include "oneshot_allreduce.h"

namespace {

using namespace folio;

constexpr int kMaxThreads = 1024;

__device__ __forceinline__ void store_release_sys(uint32_t *p, uint32_t v) {
    asm volatile("st.release.sys.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}

__device__ __forceinline__ uint32_t load_acquire_sys(const uint32_t *p) {
    uint32_t v;
    asm volatile("ld.acquire.sys.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}

__device__ __forceinline__ unsigned long long global_ns() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

/* Block b of every rank meets here (see the file comment). */
__device__ void barrier(const oneshot_peers &p) {
    __shared__ uint32_t epoch;
    oneshot_signal *mine = p.signal[p.rank];
    if (threadIdx.x == 0) {
        epoch = mine->epoch[blockIdx.x] + 1;
        mine->epoch[blockIdx.x] = epoch;
    }
    __syncthreads();
    const uint32_t e = epoch;
    const int peer = threadIdx.x;
    if (peer < p.world) {
        store_release_sys(&p.signal[peer]->flag[blockIdx.x][p.rank], e);
        const uint32_t *flag = &mine->flag[blockIdx.x][peer];
        const unsigned long long start = global_ns();
        while ((int32_t)(load_acquire_sys(flag) - e) < 0) {
            if (global_ns() - start > p.timeout_ns) {
                printf("folio: one-shot all-reduce: rank %d block %d waited %.0f s for rank %d "
                       "(epoch %u); trapping\n", p.rank, (int)blockIdx.x,
                       1e-9 * (double)p.timeout_ns, peer, e);
                __trap();
            }
        }
    }
    __syncthreads();
}

template <typename T, int VEC> __device__ __forceinline__ Pack<T, VEC> load_cv(const T *p) {
    const uint4 u = __ldcv(reinterpret_cast<const uint4 *>(p));
    return *reinterpret_cast<const Pack<T, VEC> *>(&u);
}

/* s[j] = sum over ranks (in rank order) of pack i of row `row`, in float. */
template <typename T, int VEC>
__device__ __forceinline__ void sum_ranks(const oneshot_peers &p, size_t row_off, int i,
                                          float *s) {
    Pack<T, VEC> v[ONESHOT_MAX_RANKS];
#pragma unroll
    for (int k = 0; k < ONESHOT_MAX_RANKS; k++)
        if (k < p.world) v[k] = load_cv<T, VEC>(static_cast<const T *>(p.in[k]) + row_off + i * VEC);
#pragma unroll
    for (int j = 0; j < VEC; j++) s[j] = to_f32(v[0].v[j]);
#pragma unroll
    for (int k = 1; k < ONESHOT_MAX_RANKS; k++)
        if (k < p.world)
#pragma unroll
            for (int j = 0; j < VEC; j++) s[j] += to_f32(v[k].v[j]);
}

template <typename T, int VEC>
__global__ void __launch_bounds__(kMaxThreads)
oneshot_kernel(oneshot_peers p, T *residual, T *out, const T *bias, const T *weight, int n,
               int dim, float eps) {
    using P = Pack<T, VEC>;
    pdl_wait(); /* launched with launch_pdl: the partial sums are the previous kernel's */
    pdl_launch_dependents(); /* the next GEMV streams its first weights while we wait here */
    barrier(p);
    const int n_packs = dim / VEC;
    const P *w = reinterpret_cast<const P *>(weight);
    const P *b = reinterpret_cast<const P *>(bias);
    for (int row = blockIdx.x; row < n; row += gridDim.x) {
        const size_t off = (size_t)row * dim;
        P *r = reinterpret_cast<P *>(residual + off);
        P *o = reinterpret_cast<P *>(out + off);
        float ss = 0.0f;
        for (int i = threadIdx.x; i < n_packs; i += blockDim.x) {
            float s[VEC];
            sum_ranks<T, VEC>(p, off, i, s);
            const P bv = bias ? b[i] : P{};
#pragma unroll
            for (int j = 0; j < VEC; j++) {
                s[j] = to_f32(from_f32<T>(s[j])); /* the reduced projection, as NCCL's */
                if (bias) s[j] = to_f32(from_f32<T>(s[j] + to_f32(bv.v[j])));
            }
            P a = r[i];
            ss += add_residual_pack<T, VEC>(a, s);
            r[i] = a;
        }
        const float inv = rms_inv(ss, dim, eps);
        for (int i = threadIdx.x; i < n_packs; i += blockDim.x)
            o[i] = rmsnorm_pack<T, VEC>(r[i], w[i], inv);
    }
}

} // namespace

extern "C" void oneshot_peers_init(oneshot_peers *p, void *const *bases, int world, int rank,
                                   size_t in_offset, unsigned long long timeout_ns) {
    CUDA_REQUIRE(world >= 1 && world <= ONESHOT_MAX_RANKS, "oneshot_peers_init: world");
    *p = oneshot_peers{};
    p->world = world;
    p->rank = rank;
    p->timeout_ns = timeout_ns;
    for (int k = 0; k < world; k++) {
        p->signal[k] = static_cast<oneshot_signal *>(bases[k]);
        p->in[k] = static_cast<const char *>(bases[k]) + in_offset;
    }
}

extern "C" void oneshot_allreduce_add_rmsnorm_cuda(const oneshot_peers *p, void *residual,
                                                   void *out, const void *bias,
                                                   const void *weight, int n, int dim, float eps,
                                                   folio_dtype dtype, cudaStream_t stream) {
    CUDA_REQUIRE(p->world >= 1 && p->world <= ONESHOT_MAX_RANKS && p->rank >= 0 &&
                     p->rank < p->world,
                 "oneshot_allreduce_add_rmsnorm_cuda: need 1 <= world <= ONESHOT_MAX_RANKS");
    CUDA_REQUIRE(n >= 0 && dim >= 1 && (dim * elem_size(dtype)) % 16 == 0,
                 "oneshot_allreduce_add_rmsnorm_cuda: dim must fill whole 16-byte packs");
    bool aligned = aligned16(residual) && aligned16(out) && aligned16(weight) &&
                   (!bias || aligned16(bias));
    for (int k = 0; k < p->world; k++) aligned = aligned && aligned16(p->in[k]);
    CUDA_REQUIRE(aligned, "oneshot_allreduce_add_rmsnorm_cuda: pointers must be 16-byte aligned");
    if (n == 0) return;
    const int grid = n < ONESHOT_MAX_BLOCKS ? n : ONESHOT_MAX_BLOCKS;
    const int packs = (int)(dim * elem_size(dtype) / 16);
    int threads = (packs + kWarp - 1) / kWarp * kWarp;
    if (threads > kMaxThreads) threads = kMaxThreads; /* >= 32 >= world: the barrier's */
    FOLIO_DISPATCH_DTYPE(dtype, "oneshot_allreduce_add_rmsnorm_cuda",
                         constexpr int kVec = 16 / sizeof(T);
                         launch_pdl(oneshot_kernel<T, kVec>, dim3(grid), dim3(threads), stream,
                                    *p, static_cast<T *>(residual), static_cast<T *>(out),
                                    static_cast<const T *>(bias),
                                    static_cast<const T *>(weight), n, dim, eps);
                         CUDA_CHECK_LAUNCH());
}
