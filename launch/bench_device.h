/* The forward that folio bench latency|throughput times, on either device, and the ceilings
 * its rooflines are drawn against, measured on that device first:
 *   CUDA: forward_cuda itself (greedy ids sampled on the GPU, CUDA graphs, FOLIO_PROFILE);
 *         ceilings: a 2 GiB device copy and an 8192^3 bf16 cuBLASLt GEMM.
 *   CPU:  the CPU backend (float32 forward_cpu), greedy ids by argmax on the host;
 *         ceilings: a 128 MiB memcpy and a 512^3 float32 matmul_cpu (the forward's GEMM).
 * The only file of folio bench that knows which device it runs on. */
#ifndef FOLIO_BENCH_DEVICE_H
#define FOLIO_BENCH_DEVICE_H

#include <stdint.h>
#include <stdio.h>

#include "backend.h"
#include "comm.h"
#include "step_plan.h"

typedef struct {
    char name[256];              /* the GPU's name, "cpu" on the CPU backend */
    double copy_gbs;             /* copy bandwidth, read + write, GB/s */
    double gemm_tflops;          /* GEMM rate, TFLOP/s */
    const char *gemm_dtype;      /* "bf16" (CUDA) or "float32" (CPU) */
} bench_ceilings;

/* Measures this rank's device (dm's) ceilings. 0, or -1 with a message. */
int bench_device_ceilings(const device_model *dm, bench_ceilings *c);

/* Parameters that take part in GEMMs for each token (all but the embedding table). */
double bench_gemm_params(const model_config *c);

/* Weight bytes one decode step reads on this rank: every weight but an untied embedding table
 * (a step reads one row of it per token); 4-bit layers on the GPU at their packed size. */
double bench_decode_weight_bytes(const device_model *dm);

typedef struct bench_device bench_device;

/* The forward for sizes s over a KV pool sized by the runtime's one sizer
 * (backend_kv_blocks, from utilization): the smallest of all ranks, at least `need` blocks;
 * s->num_blocks is set. Rank 0 prints the pool's size. NULL with a message. */
bench_device *bench_device_open(const device_model *dm, comm_ctx *comm, double utilization,
                                backend_sizes *s, int need);
/* Runs plan p; ids[plan->n_logits]: the greedy token of each logits row. 0, or -1. */
int bench_device_step(bench_device *d, const step_plan *p, int32_t *ids);
int bench_device_num_blocks(const bench_device *d);
/* "eager", "CUDA graphs" or "CPU"; the all-reduce in use ("none" on one rank or the CPU). */
const char *bench_device_mode(const bench_device *d);
const char *bench_device_allreduce(const bench_device *d);
/* FOLIO_PROFILE=1 per-kernel times (CUDA; nothing on the CPU). */
void bench_device_profile_print(bench_device *d, FILE *out);
void bench_device_close(bench_device *d);

#endif
