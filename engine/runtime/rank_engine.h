/* Opening the engine on every rank, shared by folio generate and folio serve: rank 0 sends
 * the other ranks the set-up (plain data), every rank sizes its own KV pool from its own
 * memory (backend_kv_blocks) and all use the minimum; rank 0 then gets a backend that
 * broadcasts each step plan before running it locally (backend_tp), and every other rank runs
 * the worker loop (receive a plan, run the forward, join the collectives) until rank 0's
 * stop. */
#ifndef FOLIO_RANK_ENGINE_H
#define FOLIO_RANK_ENGINE_H

#include <stdbool.h>

#include "backend.h"
#include "backend_tp.h"
#include "comm.h"
#include "plan_channel.h"
#include "scheduler.h"

/* The engine options generate and serve take (launch/engine_options.c parses them). */
typedef struct {
    long long block_size;        /* --block-size (16) */
    long long num_kv_blocks;     /* --num-kv-blocks (0: from memory) */
    long long max_num_seqs;      /* --max-num-seqs (256) */
    long long max_batched;       /* --max-num-batched-tokens (2048) */
    long long kv_memory;         /* --kv-cache-memory bytes (0: from the fraction) */
    long long max_model_len;     /* --max-model-len (0: the model's context) */
    double gpu_util;             /* --gpu-memory-utilization */
    bool no_prefix_caching;      /* --no-prefix-caching */
} engine_options;

/* The defaults above. */
void engine_options_init(engine_options *k);

/* Rank 0's engine backend: this rank's backend, wrapped so each plan is broadcast to the other
 * ranks first. */
typedef struct {
    backend *local;
    backend_tp tp;
    sched_config sched;          /* as agreed by every rank (num_blocks: the minimum) */
} rank_engine;

/* Rank 0: sends the set-up to the other ranks, agrees on the KV pool, creates the backend.
 * On failure -1 with a message (the caller still sends the stop). */
int rank_engine_open(rank_engine *re, const engine_options *k, const device_model *dm,
                     comm_ctx *comm, plan_channel *ch);
engine_backend rank_engine_backend(rank_engine *re, plan_channel *ch);
void rank_engine_close(rank_engine *re);

/* Every rank but 0: waits for rank 0's set-up (or its stop, when it has nothing to run),
 * sizes its pool, then runs the plans rank 0 sends until it stops. */
int rank_worker_run(const device_model *dm, comm_ctx *comm, plan_channel *ch);

#endif
