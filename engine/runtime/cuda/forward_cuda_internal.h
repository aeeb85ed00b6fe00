/* Private to forward_cuda*.c: the forward's state and the functions its files share.
 *   forward_cuda.c          the model math of one step (run_forward)
 *   forward_cuda_step.c     one step: check, pack and upload the plan, replay or run, copy back
 *   forward_cuda_plan.c     the plan blob: its fixed layout, packing, upload, checks
 *   forward_cuda_graphs.c   decode CUDA graphs: capture at creation, choice per step
 *   forward_cuda_setup.c    create / free: workspace sizing and allocation, attention kernel
 *                           choice, the one-shot all-reduce's peer memory
 *   forward_cuda_kv.c       the device KV pool: allocation of num_blocks, block copies
 *   forward_cuda_profile.c  FOLIO_PROFILE: CUDA events between launches
 *   forward_cuda_sample.c   device sampling of the step's logits */
#ifndef FOLIO_FORWARD_CUDA_INTERNAL_H
#define FOLIO_FORWARD_CUDA_INTERNAL_H

#ifdef FOLIO_HAVE_CUDA

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "forward_cuda.h"
#include "gemm.h"
#include "nccl_comm.h"
#include "oneshot_allreduce.h"
#include "peer_memory.h"

enum { MAX_GRAPHS = 128, MAX_PROF_EVENTS = 4096 };

#define GEMM_WORKSPACE_BYTES ((size_t)32 << 20)

/* Per-kernel profile categories (FOLIO_PROFILE=1): the time since the previous event is
 * charged to the launch's category. */
typedef enum {
    PROF_EMBED, PROF_QKV, PROF_ROPE_KV, PROF_ATTENTION, PROF_O, PROF_NORM, PROF_GATE_UP,
    PROF_SILU, PROF_DOWN, PROF_LM_HEAD, PROF_ARGMAX, PROF_ALLREDUCE, PROF_ONESHOT, PROF_GATHER,
    PROF_COUNT
} prof_cat;

typedef struct {
    bool on;
    cudaEvent_t ev[MAX_PROF_EVENTS];
    int cat[MAX_PROF_EVENTS];
    int n_ev;
    double ms[2][PROF_COUNT];    /* [prefill, decode][category] summed over steps */
    int steps[2];
} profile;

/* Offsets (bytes) of the plan arrays inside the blob; block tables last. */
typedef struct {
    size_t token_ids, positions, logits_rows, seq_start, context_lens, slots, block_tables,
        total;
} plan_layout;

#define PLAN_PTR(f, base, field, type) ((type *)((base) + (f)->lay.field))

/* The buffers the all-reduces sum (the GEMMs' partial sums): one rank or NCCL only, all three
 * are `proj`; with the one-shot all-reduce, three peer-visible buffers in rotation. */
enum { RED_EMBED, RED_ATTN, RED_MLP, RED_COUNT };

/* Shape of one step as the kernels see it. max_context bounds the step's context lengths:
 * the decode attention's grid splits that many positions (a graph's: its context bucket). */
typedef struct {
    int n_tokens, n_seqs, n_logits, max_q_len, max_context;
} step_shape;

struct forward_cuda {
    const model_config *cfg;
    const cuda_weights *w;
    comm_ctx *comm;
    forward_cuda_options o;
    folio_dtype dt;
    int q_dim, kv_dim, qkv_dim, inter;
    cudaStream_t stream;
    gemm_ctx *gemm;
    float *cos, *sin;            /* [fc_rope_positions][head_dim / 2] device */
    void *x, *xn;                /* [max_tokens][hidden] residual stream, normalised */
    void *qkv;                   /* [max_tokens][qkv_dim] fused GEMM output */
    void *q, *att;               /* [max_tokens][q_dim] */
    void *proj;                  /* [max_tokens][hidden] o / down / embedding output (NULL
                                  * with the one-shot all-reduce: red[] are peer memory) */
    void *red[RED_COUNT];        /* the all-reduced buffers (see RED_EMBED) */
    peer_memory peers;           /* one-shot all-reduce: every rank's region mapped here */
    oneshot_peers oneshot[RED_COUNT]; /* its view of red[k] on every rank */
    bool use_oneshot;
    char allreduce_name[48];     /* "one-shot <= N KB, NCCL above" */
    bool oneshot_step;           /* this step may use it: it ends with the logits all-gather */
    size_t oneshot_max_bytes;
    void *gate_up;               /* [max_tokens][2 * inter] */
    void *act;                   /* [max_tokens][inter] */
    void *last;                  /* [max_logits][hidden] */
    float *logits;               /* one rank: [max_logits][vocab]; more: [world][max_logits *
                                  * vocab_shard], the all-gather buffer */
    float *logits_full;          /* more ranks: [max_logits][vocab] in vocabulary order */
    nccl_ctx nccl;               /* more ranks: the communicator on `stream` */
    int32_t *ids;                /* [max_logits] greedy ids */
    void *k_pool, *v_pool;       /* [n_layers][num_blocks][n_kv][block_size][head_dim] */
    size_t layer_stride;         /* elements of one layer of the pool */
    size_t kv_elem;              /* bytes of one pool element: dtype's, or 1 (FP8) */
    float *kv_k_scale, *kv_v_scale; /* FP8 pool: host [n_layers] scales; NULL: 16-bit pool */
    int num_blocks;
    plan_layout lay;
    char *h_plan, *d_plan;       /* pinned host / device blob */
    int32_t *h_ids;              /* pinned [max_logits] */
    float *h_logits;             /* pinned [max_logits][vocab] */
    cudaGraphExec_t graphs[MAX_GRAPHS];
    int graph_batch[MAX_GRAPHS];
    int graph_context[MAX_GRAPHS]; /* the context bound each graph was captured with */
    int n_graphs;
    double capture_ms;
    bool paged_attention;        /* the attention branch's kernel (else attention_simple) */
    void *attn_ws;               /* paged_attention_cuda's workspace */
    void *w4_scratch;            /* 4-bit weights: the dequantized matrix of w4a16_gemm_cuda
                                  * above W4A16_GEMV_MAX_N tokens (NULL: none needed) */
    size_t w4_scratch_bytes;
    uint8_t *fp8_xq;             /* FP8 weights: the quantized activations [max_tokens][widest
                                  * FP8 matrix's cols] (NULL: no FP8 weights) */
    float *fp8_xs;               /* and their scales [max_tokens][ceil(cols / 128)] */
    size_t fp8_xq_bytes, fp8_xs_bytes;
    bool xq_ready;               /* fp8_xq/fp8_xs hold the quantization of the next FP8
                                  * product's input (written by the norm or SiLU before it) */
    fp8_out_scale deferred;      /* ws != NULL: the last FP8 product left its output unscaled
                                  * and the kernel that reads it applies these (then clears) */
    size_t attn_ws_bytes;
    profile prof;
    /* device sampling (forward_cuda_sample), allocated at first use */
    sample_row_params *d_sparams; /* [max_logits] */
    float *d_lps;                /* [max_logits] */
    sample_entry *d_entries;     /* [cap_entries] */
    int cap_entries;
};

static inline size_t fc_align_up(size_t v) { return (v + 255) & ~(size_t)255; }

/* forward_cuda.c: the whole step on f->stream from the device plan. */
int fc_run_forward(forward_cuda *f, const step_shape *s);

/* forward_cuda_plan.c */
plan_layout fc_plan_layout(const forward_cuda_options *o);
int fc_check_plan(const forward_cuda *f, const step_plan *p);
int fc_plan_max_context(const step_plan *p);
void fc_pack_plan(forward_cuda *f, const step_plan *p, int batch);
void fc_upload_plan(forward_cuda *f, int n_rows);

/* forward_cuda_graphs.c */
int fc_capture_graphs(forward_cuda *f);
int fc_graph_for(const forward_cuda *f, const step_plan *p, int context);
void fc_graphs_free(forward_cuda *f);

/* forward_cuda_setup.c: cudaMalloc of at least 16 bytes (CUDA_CHECK). */
void *fc_dev_alloc(size_t bytes);
/* forward_cuda_setup.c: positions the rope tables hold (the block tables' longest context). */
int fc_rope_positions(const forward_cuda *f);

/* forward_cuda_kv.c: the pool of f->o.num_blocks blocks. 0, or -1 with a message. */
int fc_kv_pool_alloc(forward_cuda *f);

/* forward_cuda_profile.c */
void fc_prof_init(forward_cuda *f);
void fc_prof_free(forward_cuda *f);
void fc_prof_mark(forward_cuda *f, prof_cat cat);
void fc_prof_collect(forward_cuda *f, bool decode);

#endif
#endif
