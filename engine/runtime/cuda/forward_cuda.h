/* The CUDA forward of one step plan on one rank's GPU: the same step plans and the same math
 * as forward_cpu (per layer: norm -> fused qkv GEMM -> [q/k norm] + rope + KV write ->
 * paged attention -> o GEMM -> all-reduce -> residual + norm -> fused gate_up GEMM ->
 * silu*mul -> down GEMM -> all-reduce -> residual + next norm; then the LM head on the rows
 * that want logits), in the weights' dtype with float32 accumulation, over a paged KV pool on
 * the device (HND layout, attention_cuda.h). Memory is allocated once at creation: the
 * workspace and a KV pool of the num_blocks the caller sized (backend_kv_blocks, backend.h,
 * the one sizer of KV pools, from what --gpu-memory-utilization leaves). Decode steps
 * run as CUDA graphs captured at creation for batch sizes 1, 2, 4, 8, 16, ... up to max_seqs
 * (a batch is padded up to the next size) and context buckets 512, 2048, 8192, ... up to the
 * whole context (forward_cuda_graphs.c) unless enforce_eager. Under mpirun (comm->world > 1)
 * the forward creates its own NCCL communicator (a collective: every rank creates its forward
 * with the same options, after comm_select_gpu) and runs the step tensor-parallel on the
 * rank's shard of the weights. Available with CUDA. */
#ifndef FOLIO_FORWARD_CUDA_H
#define FOLIO_FORWARD_CUDA_H

#ifdef FOLIO_HAVE_CUDA

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "comm.h"
#include "model_config.h"
#include "sample_rows.h"
#include "step_plan.h"
#include "weights_cuda.h"

typedef struct forward_cuda forward_cuda;

typedef struct {
    int max_tokens;              /* new tokens in one step */
    int max_seqs;                /* sequences in one step (largest captured decode batch) */
    int max_logits;              /* rows of logits in one step */
    int max_blocks_per_seq;      /* row length of the device block tables */
    int block_size;
    int num_blocks;              /* KV pool blocks (> 0), sized by backend_kv_blocks */
    bool enforce_eager;          /* no CUDA graphs */
    bool nccl_only;              /* --all-reduce nccl: no one-shot all-reduce over peer memory */
    bool quiet;                  /* no summary lines on stderr */
    const float *kv_k_scale;     /* host [n_layers]: an FP8 (e4m3) KV cache with these K and V */
    const float *kv_v_scale;     /* scales per layer (--kv-cache-dtype fp8); NULL: KV in dtype.
                                  * Copied at creation. */
} forward_cuda_options;

/* Allocates the workspace and the KV pool of o->num_blocks blocks, uploads the rope tables,
 * captures the decode graphs. NULL with a message (num_blocks < 1, no room for the pool). w
 * must outlive the forward. */
forward_cuda *forward_cuda_create(const model_config *cfg, const cuda_weights *w,
                                  comm_ctx *comm, const forward_cuda_options *o);
void forward_cuda_free(forward_cuda *f);

int forward_cuda_num_blocks(const forward_cuda *f);

/* Bytes of device memory besides weights and KV pool that forward_cuda_create will take for
 * these options (for sizing the KV pool before creating it). */
size_t forward_cuda_workspace_bytes(const model_config *cfg, const cuda_weights *w,
                                    const forward_cuda_options *o);

/* Copies KV blocks src[i] -> dst[i] in every layer (copy-on-write of shared prefixes),
 * asynchronously on the forward's stream, before the next step. */
void forward_cuda_copy_blocks(forward_cuda *f, const int32_t *src, const int32_t *dst, int n);

/* Runs one step. logits: host [n_logits][vocab] float32, or NULL (filled on rank 0 only:
 * only rank 0 samples; other ranks' buffers are left as they were); greedy_ids: host
 * [n_logits], the argmax of each row computed on the GPU over the whole vocabulary (the same
 * on every rank), or NULL. Returns 0, or -1 with a
 * message (plan too large for the workspace, positions outside the context). */
int forward_cuda_step(forward_cuda *f, const step_plan *p, float *logits, int32_t *greedy_ids);

/* After forward_cuda_step(f, p, NULL, NULL): samples its n_rows logits rows on the GPU
 * (sample_rows_cuda) and copies back only ids [n_rows] and, when logprobs is not NULL, the
 * chosen tokens' log-probabilities [n_rows]. Under tensor parallelism rank 0 calls it alone
 * (every rank holds the gathered logits; sampling is rank 0's); no collective. params: host [n_rows]; entries: host
 * [n_entries] (uploaded; the device buffer grows as needed). 0, or -1 with a message. */
int forward_cuda_sample(forward_cuda *f, int n_rows, const sample_row_params *params,
                        const sample_entry *entries, int n_entries, int32_t *ids,
                        float *logprobs);

/* With FOLIO_PROFILE=1 in the environment at creation, steps run eager with a CUDA event
 * after every launch; this prints the mean milliseconds per step of each kernel kind, prefill
 * and decode steps apart. Nothing otherwise. */
void forward_cuda_profile_print(const forward_cuda *f, FILE *out);

/* How the all-reduces run: "none" (one rank), "NCCL", or "one-shot <= N KB, NCCL above"
 * (a static or per-forward string). */
const char *forward_cuda_allreduce_name(const forward_cuda *f);

/* Milliseconds the last graph capture took in all (0 when eager), and graphs captured. */
double forward_cuda_capture_ms(const forward_cuda *f, int *n_graphs);

#endif
#endif
