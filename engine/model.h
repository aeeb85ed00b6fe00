/* A model opened on this rank: its config, its shard plan and its weights. model_open() is
 * the one path every command takes to get a model (files or dummy), printing progress and a
 * one-line summary on rank 0. */
#ifndef FOLIO_MODEL_H
#define FOLIO_MODEL_H

#include <stdbool.h>

#include "comm.h"
#include "model_config.h"
#include "shard.h"
#include "weights.h"

typedef struct {
    model_config cfg;
    shard_plan shard;
    model_weights weights;       /* CPU backend (empty on the GPU) */
    /* CUDA backend: weights on the GPU (a cuda_weights, weights_cuda.h), NULL on the CPU */
    void *gpu_weights;
    double gpu_memory_utilization;
    bool enforce_eager;
    bool allreduce_nccl;         /* --all-reduce nccl */
} model;

typedef struct model_open_options {
    load_format format;
    int verbose;
    bool cuda;                   /* --device cuda */
    bool dtype_auto;             /* --dtype auto: the checkpoint's 16-bit type, bf16 for f32 */
    folio_dtype dtype;
    double gpu_memory_utilization; /* 0: 0.90 */
    bool enforce_eager;
    bool allreduce_nccl;         /* CUDA under mpirun: NCCL for every all-reduce */
} model_open_options;

/* model_open on a device: the CPU backend (as model_open) or the GPU. */
int model_open_on(const char *dir, const model_open_options *o, comm_ctx *comm, model *m);

/* Opens DIR on this rank. On failure returns -1 with a message and leaves *m empty. */
int model_open(const char *dir, load_format format, comm_ctx *comm, int verbose, model *m);
void model_close(model *m);

#endif
