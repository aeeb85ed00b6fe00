/* The one place that chooses a device. A model is opened onto a device (its weights in host
 * memory for the CPU backend, on this rank's GPU for the CUDA backend); the KV pool of that
 * device is sized by kv_capacity; and backend_create builds the engine_backend that runs step
 * plans there. Every command and test gets its backend here; nothing above this file names a
 * device or tests for CUDA. */
#ifndef FOLIO_BACKEND_H
#define FOLIO_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "engine_backend.h"
#include "comm.h"
#include "dtype.h"
#include "kv_scales.h"
#include "model.h"

typedef enum { DEVICE_CPU, DEVICE_CUDA } device_kind;

/* How the model is to be opened: the device and its run-time settings. */
typedef struct {
    device_kind device;
    load_format format;
    dummy_quant quant;           /* --quantization w4a16 (with LOAD_DUMMY): a dummy 4-bit model */
    bool dtype_auto;             /* CUDA: the checkpoint's 16-bit type, bfloat16 for float32 */
    folio_dtype dtype;           /* otherwise */
    bool enforce_eager;          /* CUDA: no CUDA graphs */
    bool allreduce_nccl;         /* CUDA under mpirun: NCCL for every all-reduce */
    bool kv_fp8;                 /* --kv-cache-dtype fp8: an e4m3 KV cache (CPU backend) */
    int verbose;
} device_options;

/* A model on this rank's device. */
typedef struct {
    model m;                     /* config and shard plan; host weights on the CPU */
    device_kind device;
    folio_dtype dtype;           /* compute type */
    void *gpu_weights;           /* CUDA: a cuda_weights (weights_cuda.h), else NULL */
    bool enforce_eager, allreduce_nccl;
    bool kv_fp8;                 /* the KV cache in FP8 e4m3, scaled by kv_scales */
    kv_scales kv_scales;         /* kv_fp8: per-layer K and V scales */
} device_model;

/* Opens DIR onto o->device on this rank (CUDA: the GPU of its local rank). -1 with a message
 * (e.g. --device cuda in a build without CUDA, or no GPU), *dm empty. */
int device_model_open(const char *dir, const device_options *o, comm_ctx *comm,
                      device_model *dm);
void device_model_close(device_model *dm);

/* The sizes a backend is built for. */
typedef struct {
    int num_blocks;              /* KV pool */
    int block_size;              /* tokens per KV block */
    int max_tokens;              /* new tokens in one step */
    int max_seqs;                /* sequences in one step */
    int max_logits;              /* logits rows in one step */
    int max_model_len;           /* longest context */
} backend_sizes;

/* What the user said about KV memory. */
typedef struct {
    double utilization;          /* --gpu-memory-utilization (FOLIO_DEFAULT_MEMORY_UTILIZATION) */
    long long kv_cache_memory;   /* --kv-cache-memory bytes, 0: from the fraction */
    int num_blocks_override;     /* --num-kv-blocks, 0: from memory */
} kv_knobs;

/* This rank's KV pool in blocks for a backend of sizes s (s->num_blocks ignored), from its
 * device's memory (the CPU backend: the host's, shared by the ranks on it), at most what
 * s->max_seqs full contexts use; *block_bytes: one block, all layers, K and V; *memory_blocks
 * (NULL: not wanted): what the memory alone would hold, before that cap. -1 with a message
 * naming the knob when not one block fits. */
int backend_kv_blocks(const device_model *dm, const comm_ctx *comm, const backend_sizes *s,
                      const kv_knobs *k, int *blocks, size_t *block_bytes, int *memory_blocks);

typedef struct backend backend;

/* The device's backend for sizes s. NULL with a message. */
backend *backend_create(const device_model *dm, comm_ctx *comm, const backend_sizes *s);
engine_backend backend_iface(backend *b);
void backend_free(backend *b);

#endif
