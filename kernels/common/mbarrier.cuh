/* Shared-memory barriers of the warp-specialized kernels (sm_90): an mbarrier counts arrivals
 * (and, for bulk copies, bytes) and flips its phase bit when the count it was initialised with
 * is reached and the bytes it expects have landed; a waiter spins on the parity of the phase it
 * expects. A producer/consumer ring keeps two per stage: "full" (the stage's bulk copies have
 * landed) and "empty" (the consumers are done reading it). Also the bulk copy itself
 * (cp.async.bulk: the copy engine moves contiguous bytes, no thread waits on it) and the
 * register reallocation between warpgroups (setmaxnreg). CUDA C++ only. */
#ifndef FOLIO_MBARRIER_CUH
#define FOLIO_MBARRIER_CUH

#include <stdint.h>

namespace folio {

/* One thread, before a __syncthreads() that publishes it. */
__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}

__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}

/* Arrives and adds tx_bytes to the bytes the current phase waits for (the bulk copies that
 * complete_tx on this barrier). */
__device__ __forceinline__ void mbar_arrive_expect_tx(uint32_t bar, uint32_t tx_bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar),
                 "r"(tx_bytes)
                 : "memory");
}

/* bytes (a multiple of 16, both addresses 16-byte aligned) global -> shared by the copy
 * engine, counted on bar when they land. */
__device__ __forceinline__ void bulk_copy(uint32_t dst, const void *src, uint32_t bytes,
                                          uint32_t bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], "
                 "%2, [%3];\n" ::"r"(dst),
                 "l"(src), "r"(bytes), "r"(bar)
                 : "memory");
}

/* Until the phase with this parity (0, 1, 0, ... from init) has completed. */
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
    uint32_t done = 0;
    while (!done)
        asm volatile("{\n.reg .pred p;\n"
                     "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                     "selp.b32 %0, 1, 0, p;\n}\n"
                     : "=r"(done)
                     : "r"(bar), "r"(parity)
                     : "memory");
}

/* The warpgroup's registers per thread, given back (producers) or taken (consumers); every
 * warp of the warpgroup executes it. */
template <int kRegs> __device__ __forceinline__ void regs_dealloc() {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}
template <int kRegs> __device__ __forceinline__ void regs_alloc() {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}

} // namespace folio

#endif
