/* The FOLIO_* environment registry (env.h). */
#include "env.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

static const folio_env_var VARS[] = {
    {"FOLIO_ATTENTION", "the paged kernels where they support the shape",
     "'simple' forces the simple CUDA attention kernel (for comparisons)"},
    {"FOLIO_ONESHOT_MAX_BYTES", "the peer-read budget divided by (ranks - 1)",
     "largest all-reduce, in bytes, that uses the one-shot peer-memory kernel (NCCL above)"},
    {"FOLIO_PROFILE", "off",
     "set (and not '0'): time each CUDA forward stage with events (eager steps) and print it"},
    {"FOLIO_FAULT", "no fault",
     "inject failures for tests: 'RANK:POINT[:N]' entries separated by commas"},
    {"FOLIO_STEP_TIMEOUT", "600",
     "seconds a warm-up step (the first 3) may take before the job ends, and the most any step "
     "may; 0 = no watchdog"},
    {"FOLIO_STEP_TIMEOUT_FLOOR", "30",
     "least seconds a warm step may take before the job ends (the limit is 20 x the step's "
     "measured time, between this floor and FOLIO_STEP_TIMEOUT)"},
    {"FOLIO_HEALTH_STALL", "5",
     "seconds without progress, with requests pending, after which /health answers 503 (or 5 "
     "x the step's measured time, if longer)"},
    {"FOLIO_GEMV", "on", "'0' turns off the GEMV kernel for small batches (cuBLASLt for all)"},
    {"FOLIO_W4A16_WARPS", "chosen by the matrix's shape (kernels/gemm/w4a16.cu)",
     "1 (register form only), 2, 4, 8 or 16: the 4-bit GEMV's warps per 16-row stripe (for "
     "measurements)"},
    {"FOLIO_W4A16_GEMV", "ring",
     "'registers': the 4-bit GEMV (1..16 tokens) loads its tiles straight into registers; "
     "'ring': through a cp.async ring in shared memory"},
    {"FOLIO_W4A16_GEMM", "wgmma below 129 tokens, warp-specialized wgmma from 129 to 256",
     "'mma': 4-bit products of 17..128 tokens run the mma.sync GEMM (above 128, dequantize + "
     "cuBLASLt); 'wgmma': 17..256 run the first wgmma GEMM (for comparisons)"},
    {"FOLIO_FP8_FAST_ACCUM", "on",
     "'0': cuBLASLt's FP8 GEMMs of per-channel weights accumulate without fast accumulation "
     "(block-scaled ones never use it)"},
    {"FOLIO_FP8_GEMM", "cuBLASLt where it offers the scheme's kernel, else Folio's own",
     "'mma': every FP8 product above the GEMV's batch runs Folio's mma.sync FP8 GEMM; "
     "'cublaslt': cuBLASLt only (fails where it has no kernel)"},
    {"FOLIO_L2_PREFETCH_MB", "0 (off)",
     "MB of weights the batch-1 FP8 GEMV asks L2 to fetch before it waits for the kernel "
     "before it (the weights of its later row groups; a hint, for measurements)"},
    {"FOLIO_PREFILL_ATTN", "wgmma",
     "'mma': prefill attention at head_dim 128 runs the mma.sync kernel instead of the Hopper "
     "warpgroup-MMA one (for comparisons)"},
    {"FOLIO_PDL", "on",
     "'0' turns off programmatic dependent launch (kernels launched the ordinary way)"},
};
#define N_VARS (int)(sizeof VARS / sizeof VARS[0])

const char *folio_env(const char *name) {
    for (int i = 0; i < N_VARS; i++)
        if (strcmp(VARS[i].name, name) == 0) return getenv(name);
    FOLIO_BUG("environment variable %s is read but not registered (engine/base/env.c)", name);
}

const folio_env_var *folio_env_vars(int *n) {
    *n = N_VARS;
    return VARS;
}

void folio_env_print(FILE *out) {
    fprintf(out, "environment variables read by folio:\n");
    for (int i = 0; i < N_VARS; i++)
        fprintf(out, "  %s\n      %s\n      unset: %s\n", VARS[i].name, VARS[i].meaning,
                VARS[i].def);
}
