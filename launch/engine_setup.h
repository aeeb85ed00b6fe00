/* Opening the engine on every rank, shared by folio generate and folio serve:
 *  - the engine options both commands take (KV block size and pool size, batch caps, context
 *    length, prefix caching), parsed in one place;
 *  - rank 0 sends the other ranks the set-up (plain data), every rank sizes its own KV pool
 *    from its own memory and all use the minimum; rank 0 then gets a backend that broadcasts
 *    each step plan before running it locally, and every other rank runs the worker loop
 *    (receive a plan, run the forward, join the collectives) until rank 0's stop. */
#ifndef FOLIO_ENGINE_SETUP_H
#define FOLIO_ENGINE_SETUP_H

#include <stdbool.h>

#include "backend_cpu.h"
#ifdef FOLIO_HAVE_CUDA
#include "backend_cuda.h"
#endif
#include "backend_tp.h"
#include "comm.h"
#include "engine_loop.h"
#include "model.h"
#include "plan_channel.h"

typedef struct {
    long long block_size;        /* --block-size (16) */
    long long num_kv_blocks;     /* --num-kv-blocks (0: from memory) */
    long long max_num_seqs;      /* --max-num-seqs (256) */
    long long max_batched;       /* --max-num-batched-tokens (2048) */
    long long kv_memory;         /* --kv-cache-memory bytes (0: from the fraction) */
    long long max_model_len;     /* --max-model-len (0: the model's context) */
    double gpu_util;             /* --gpu-memory-utilization (0.90) */
    bool no_prefix_caching;      /* --no-prefix-caching */
} engine_knobs;

enum { OPT_KNOB_BLOCK_SIZE = 1100, OPT_KNOB_NUM_KV_BLOCKS, OPT_KNOB_MAX_NUM_SEQS,
       OPT_KNOB_MAX_BATCHED, OPT_KNOB_KV_MEMORY, OPT_KNOB_GPU_UTIL, OPT_KNOB_MAX_MODEL_LEN,
       OPT_KNOB_NO_PREFIX_CACHING };

#define ENGINE_KNOB_OPTIONS                                                   \
    {"block-size", required_argument, 0, OPT_KNOB_BLOCK_SIZE},                \
    {"num-kv-blocks", required_argument, 0, OPT_KNOB_NUM_KV_BLOCKS},          \
    {"max-num-seqs", required_argument, 0, OPT_KNOB_MAX_NUM_SEQS},            \
    {"max-num-batched-tokens", required_argument, 0, OPT_KNOB_MAX_BATCHED},   \
    {"kv-cache-memory", required_argument, 0, OPT_KNOB_KV_MEMORY},            \
    {"gpu-memory-utilization", required_argument, 0, OPT_KNOB_GPU_UTIL},      \
    {"max-model-len", required_argument, 0, OPT_KNOB_MAX_MODEL_LEN},          \
    {"no-prefix-caching", no_argument, 0, OPT_KNOB_NO_PREFIX_CACHING}

#define ENGINE_KNOBS_HELP                                                                     \
    "  --block-size N           KV cache block size in tokens (default 16)\n"                \
    "  --max-num-seqs N         sequences per step (default 256)\n"                          \
    "  --max-num-batched-tokens N  tokens per step; longer prompts are chunked (default 2048)\n" \
    "  --max-model-len N        longest context of one sequence (default: the model's)\n"    \
    "  --gpu-memory-utilization F  fraction of device (CPU: host) memory to use (default 0.90)\n" \
    "  --kv-cache-memory BYTES  KV cache size in bytes (overrides the fraction)\n"          \
    "  --num-kv-blocks N        KV cache size in blocks (overrides both)\n"                  \
    "  --no-prefix-caching      do not reuse the KV of shared prompt prefixes\n"

void engine_knobs_init(engine_knobs *k);

/* Handles an engine option id: 1 if handled, 0 if not an engine option, -1 with a message
 * naming the option and value. */
int engine_knobs_option(engine_knobs *k, int id, const char *arg);

/* Rank 0's engine backend: the CPU forward on this rank, wrapped so each plan is broadcast
 * to the other ranks first. */
typedef struct {
    backend_cpu cpu;
#ifdef FOLIO_HAVE_CUDA
    backend_cuda cuda;           /* used instead of cpu when the model is on the GPU */
#endif
    backend_tp tp;
    sched_config sched;          /* as agreed by every rank (num_blocks: the minimum) */
    bool open;
} rank_engine;

/* Rank 0: sends the set-up to the other ranks, agrees on the KV pool, creates the backend.
 * On failure -1 with a message (the caller still sends the stop). */
int rank_engine_open(rank_engine *re, const engine_knobs *k, const model *m, comm_ctx *comm,
                     plan_channel *ch);
engine_backend rank_engine_backend(rank_engine *re, plan_channel *ch);
void rank_engine_close(rank_engine *re);

/* Every rank but 0: waits for rank 0's set-up (or its stop, when it has nothing to run),
 * sizes its pool, then runs the plans rank 0 sends until it stops. */
int rank_worker_run(const model *m, comm_ctx *comm, plan_channel *ch);

#endif
