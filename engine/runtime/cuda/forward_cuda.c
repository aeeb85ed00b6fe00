/* CUDA forward of one step plan (see forward_cuda.h). Mirrors forward_cpu.c step for step;
 * the differences are storage (dtype buffers and a device KV pool in the HND layout), the
 * fused q/k/v and gate/up GEMMs, and CUDA graphs for decode steps.
 *
 * The plan travels to the device as one pinned blob copied into one device blob of fixed
 * layout (capacities, not sizes), so a captured graph finds every array at the same address
 * on every replay; block tables always have max_blocks_per_seq columns on the device.
 *
 * Tensor parallelism (world > 1): the forward owns an NCCL communicator on its compute stream
 * (nccl_comm.h) and runs forward_cpu's collectives on the device: the vocab-parallel embedding
 * (zeros outside this rank's rows) and the o / down projections' partial sums are all-reduced,
 * the row-parallel biases added once after the sum. Where the ranks share a host and can map
 * each other's memory (comm/peer_memory.h), steps of up to oneshot_max_bytes per all-reduce
 * (decode steps) use the one-shot all-reduce fused with bias, residual add and the next
 * RMSNorm (kernels/oneshot_allreduce.h); larger ones NCCL in place, then the bias and
 * add_rmsnorm. The partial sums then live in three peer-visible buffers in rotation
 * (embedding, attention, MLP), as the one-shot reuse rule wants. The LM head computes this
 * rank's vocabulary rows into its block of an all-gather buffer, and vocab_unshard_cuda puts
 * the gathered blocks back into [n][vocab] order, so every rank holds the same logits and the
 * same greedy ids. Every collective is enqueued on the stream, so the decode graphs capture
 * them; all ranks capture the same graphs in the same order (same options) and replay them
 * for the same plans (rank 0's, broadcast). */
#ifdef FOLIO_HAVE_CUDA

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "attention_cuda.h"
#include "cuda_check.h"
#include "error.h"
#include "forward_cuda.h"
#include "gemm.h"
#include "kernels_cuda.h"
#include "nccl_comm.h"
#include "oneshot_allreduce.h"
#include "peer_memory.h"
#include "progress.h"
#include "rope_tables.h"
#include "tensor_parallel.h"

enum { MAX_GRAPHS = 16, MAX_PROF_EVENTS = 4096 };

/* Per-kernel profile (FOLIO_PROFILE=1; steps then run eager): an event after every launch,
 * the time since the previous event charged to the launch's category. */
typedef enum {
    PROF_EMBED, PROF_QKV, PROF_ROPE_KV, PROF_ATTENTION, PROF_O, PROF_NORM, PROF_GATE_UP,
    PROF_SILU, PROF_DOWN, PROF_LM_HEAD, PROF_ARGMAX, PROF_ALLREDUCE, PROF_ONESHOT, PROF_GATHER,
    PROF_COUNT
} prof_cat;

static const char *const PROF_NAMES[PROF_COUNT] = {
    "embedding", "qkv GEMM", "rope+KV write", "attention", "o GEMM", "add+rmsnorm",
    "gate_up GEMM", "silu*mul", "down GEMM", "LM head GEMM", "argmax", "all-reduce (NCCL)",
    "all-reduce+norm (one-shot)", "logits all-gather"};

typedef struct {
    bool on;
    cudaEvent_t ev[MAX_PROF_EVENTS];
    int cat[MAX_PROF_EVENTS];
    int n_ev;
    double ms[2][PROF_COUNT];    /* [prefill, decode][category] summed over steps */
    int steps[2];
} profile;
#define GEMM_WORKSPACE_BYTES ((size_t)32 << 20)

/* Offsets (bytes) of the plan arrays inside the blob; block tables last. */
typedef struct {
    size_t token_ids, positions, logits_rows, seq_start, context_lens, slots, block_tables,
        total;
} plan_layout;

/* The buffers the all-reduces sum (the GEMMs' partial sums): one rank or NCCL only, all three
 * are `proj`; with the one-shot all-reduce, three peer-visible buffers in rotation. */
enum { RED_EMBED, RED_ATTN, RED_MLP, RED_COUNT };
_Static_assert((int)PEER_MAX_RANKS == (int)ONESHOT_MAX_RANKS, "peer memory and one-shot rank limits");

/* The largest all-reduce (bytes of one rank's rows) sent one-shot by default: what each rank
 * reads from its peers, (world - 1) x bytes, at most 2 MB. Where one-shot and NCCL (with the
 * norm after it) cross on 2 and 4 H200s (docs/benchmarks.md): one-shot is faster up to 8 MB
 * on 2 ranks and up to about 1 MB on 4. FOLIO_ONESHOT_MAX_BYTES overrides. */
#define ONESHOT_PEER_READ_BYTES ((size_t)2 << 20)

struct forward_cuda {
    const model_config *cfg;
    const cuda_weights *w;
    comm_ctx *comm;
    forward_cuda_options o;
    folio_dtype dt;
    int q_dim, kv_dim, qkv_dim, inter;
    cudaStream_t stream;
    gemm_ctx *gemm;
    float *cos, *sin;            /* [max_position][head_dim / 2] device */
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
    int num_blocks;
    plan_layout lay;
    char *h_plan, *d_plan;       /* pinned host / device blob */
    int32_t *h_ids;              /* pinned [max_logits] */
    float *h_logits;             /* pinned [max_logits][vocab] */
    cudaGraphExec_t graphs[MAX_GRAPHS];
    int graph_batch[MAX_GRAPHS];
    int n_graphs;
    double capture_ms;
    bool paged_attention;        /* the attention branch's kernel (else attention_simple) */
    void *attn_ws;               /* paged_attention_cuda's workspace */
    size_t attn_ws_bytes;
    profile prof;
    /* device sampling (forward_cuda_sample), allocated at first use */
    sample_row_params *d_sparams; /* [max_logits] */
    float *d_lps;                /* [max_logits] */
    sample_entry *d_entries;     /* [cap_entries] */
    int cap_entries;
};

static void prof_mark(forward_cuda *f, prof_cat cat) {
    profile *p = &f->prof;
    if (!p->on || p->n_ev >= MAX_PROF_EVENTS) return;
    CUDA_CHECK(cudaEventRecord(p->ev[p->n_ev], f->stream));
    p->cat[p->n_ev++] = (int)cat;
}

/* After the step's stream is synchronised: charge each interval to its category. */
static void prof_collect(forward_cuda *f, bool decode) {
    profile *p = &f->prof;
    if (!p->on || p->n_ev < 2) return;
    for (int i = 1; i < p->n_ev; i++) {
        float ms = 0;
        CUDA_CHECK(cudaEventElapsedTime(&ms, p->ev[i - 1], p->ev[i]));
        p->ms[decode][p->cat[i]] += ms;
    }
    p->steps[decode]++;
    p->n_ev = 0;
}

static size_t align_up(size_t v) { return (v + 255) & ~(size_t)255; }

static plan_layout make_layout(const forward_cuda_options *o) {
    plan_layout l;
    size_t at = 0;
    l.token_ids = at; at = align_up(at + sizeof(int32_t) * o->max_tokens);
    l.positions = at; at = align_up(at + sizeof(int32_t) * o->max_tokens);
    l.logits_rows = at; at = align_up(at + sizeof(int32_t) * o->max_logits);
    l.seq_start = at; at = align_up(at + sizeof(int32_t) * (o->max_seqs + 1));
    l.context_lens = at; at = align_up(at + sizeof(int32_t) * o->max_seqs);
    l.slots = at; at = align_up(at + sizeof(int64_t) * o->max_tokens);
    l.block_tables = at; at = align_up(at + sizeof(int32_t) * o->max_seqs * o->max_blocks_per_seq);
    l.total = at;
    return l;
}

#define PLAN_PTR(f, base, field, type) ((type *)((base) + (f)->lay.field))

/* Bytes of the activation workspace (everything but weights and KV pool). */
static size_t workspace_bytes(const forward_cuda *f) {
    const model_config *c = f->cfg;
    const size_t T = f->o.max_tokens, L = f->o.max_logits, e = dtype_size(f->dt);
    size_t b = 2 * T * c->hidden * e + T * f->qkv_dim * e + 2 * T * f->q_dim * e +
               T * c->hidden * e + T * 3 * f->inter * e + L * c->hidden * e +
               L * f->w->shard.vocab_shard * sizeof(float) + L * sizeof(int32_t);
    if (f->w->shard.world > 1) {
        b += 2 * T * c->hidden * e + sizeof(oneshot_signal); /* one-shot's other two sums */
        /* the all-gather buffer and the reordered logits */
        b += L * sizeof(float) * ((size_t)f->w->shard.world * f->w->shard.vocab_shard +
                                  (size_t)c->vocab) - L * f->w->shard.vocab_shard * sizeof(float);
    }
    b += 2 * sizeof(float) * (size_t)c->max_position * (c->head_dim / 2);
    b += f->lay.total + GEMM_WORKSPACE_BYTES + ((size_t)64 << 20); /* + slack for cuBLAS */
    return b + f->attn_ws_bytes;
}

static void *dev_alloc(size_t bytes) {
    void *p = NULL;
    CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 16));
    return p;
}

static int plan_kv_pool(forward_cuda *f) {
    const model_config *c = f->cfg;
    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    const size_t block_bytes = 2 * (size_t)c->n_layers * f->w->shard.n_kv_heads *
                               f->o.block_size * c->head_dim * dtype_size(f->dt);
    const double allowed = f->o.gpu_memory_utilization * (double)total_b;
    const double used = (double)(total_b - free_b) + (double)workspace_bytes(f);
    const long long fit = allowed > used ? (long long)((allowed - used) / (double)block_bytes) : 0;
    char a[32], u[32];
    if (fit < 1 || (f->o.num_blocks > 0 && fit < f->o.num_blocks))
        return folio_fail("GPU memory: %s allowed by --gpu-memory-utilization %.2f, %s already "
                          "used by weights, workspace and other processes: room for %lld KV "
                          "blocks of %d tokens, %d needed (raise --gpu-memory-utilization, or "
                          "lower --max-num-seqs / --max-num-batched-tokens)",
                          format_bytes(allowed, a, sizeof a), f->o.gpu_memory_utilization,
                          format_bytes(used, u, sizeof u), fit, f->o.block_size,
                          f->o.num_blocks > 0 ? f->o.num_blocks : 1);
    f->num_blocks = f->o.num_blocks > 0 ? f->o.num_blocks : (int)(fit > 1 << 30 ? 1 << 30 : fit);
    f->layer_stride = (size_t)f->num_blocks * f->w->shard.n_kv_heads * f->o.block_size *
                      c->head_dim;
    const size_t pool = f->layer_stride * c->n_layers * dtype_size(f->dt);
    f->k_pool = dev_alloc(pool);
    f->v_pool = dev_alloc(pool);
    CUDA_CHECK(cudaMemset(f->k_pool, 0, pool));
    CUDA_CHECK(cudaMemset(f->v_pool, 0, pool));
    if (!f->o.quiet && f->comm->rank == 0)
        fprintf(stderr, "folio: KV cache %d blocks x %d tokens = %lld tokens (%s, %s); "
                        "workspace %s\n", f->num_blocks, f->o.block_size,
                (long long)f->num_blocks * f->o.block_size,
                format_bytes(2.0 * (double)pool, a, sizeof a), dtype_name(f->dt),
                format_bytes((double)workspace_bytes(f), u, sizeof u));
    return 0;
}

static void alloc_workspace(forward_cuda *f) {
    const model_config *c = f->cfg;
    const size_t T = f->o.max_tokens, L = f->o.max_logits, e = dtype_size(f->dt);
    const size_t half = (size_t)c->max_position * (c->head_dim / 2);
    float *h_cos = folio_xmalloc(sizeof(float) * half), *h_sin = folio_xmalloc(sizeof(float) * half);
    rope_build_tables(&c->rope, c->head_dim, c->max_position, h_cos, h_sin);
    f->cos = dev_alloc(sizeof(float) * half);
    f->sin = dev_alloc(sizeof(float) * half);
    CUDA_CHECK(cudaMemcpy(f->cos, h_cos, sizeof(float) * half, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(f->sin, h_sin, sizeof(float) * half, cudaMemcpyHostToDevice));
    free(h_cos);
    free(h_sin);
    f->x = dev_alloc(T * c->hidden * e);
    f->xn = dev_alloc(T * c->hidden * e);
    f->qkv = dev_alloc(T * f->qkv_dim * e);
    f->q = dev_alloc(T * f->q_dim * e);
    f->att = dev_alloc(T * f->q_dim * e);
    if (!f->use_oneshot) {
        f->proj = dev_alloc(T * c->hidden * e);
        for (int k = 0; k < RED_COUNT; k++) f->red[k] = f->proj;
    }
    f->gate_up = dev_alloc(T * 2 * f->inter * e);
    f->act = dev_alloc(T * f->inter * e);
    f->last = dev_alloc(L * c->hidden * e);
    const shard_plan *sh = &f->w->shard;
    if (sh->world > 1) {
        f->logits = dev_alloc(L * sh->world * sh->vocab_shard * sizeof(float));
        f->logits_full = dev_alloc(L * c->vocab * sizeof(float));
    } else {
        f->logits = dev_alloc(L * sh->vocab_shard * sizeof(float));
    }
    f->ids = dev_alloc(L * sizeof(int32_t));
    f->d_plan = dev_alloc(f->lay.total);
    if (f->paged_attention) f->attn_ws = dev_alloc(f->attn_ws_bytes);
    CUDA_CHECK(cudaMallocHost((void **)&f->h_plan, f->lay.total));
    CUDA_CHECK(cudaMallocHost((void **)&f->h_ids, L * sizeof(int32_t)));
    CUDA_CHECK(cudaMallocHost((void **)&f->h_logits, L * c->vocab * sizeof(float)));
    memset(f->h_plan, 0, f->lay.total);
}

static ncclDataType_t nccl_type(folio_dtype dt) {
    return dt == DTYPE_F32 ? ncclFloat32 : dt == DTYPE_BF16 ? ncclBfloat16 : ncclFloat16;
}

/* forward_cpu's reduce_rows on the device: the sum over ranks of the partial products in
 * buf ([n][hidden], in place), then the row-parallel bias once (NULL: none). One rank: the
 * bias went into the GEMM already. */
static int reduce_rows(forward_cuda *f, void *buf, const void *bias, int n) {
    if (f->comm->world == 1) return 0;
    const size_t count = (size_t)n * f->cfg->hidden;
    if (nccl_allreduce_sum(&f->nccl, buf, count, nccl_type(f->dt)) != 0) return -1;
    prof_mark(f, PROF_ALLREDUCE);
    add_bias_rows_cuda(buf, bias, n, f->cfg->hidden, f->dt, f->stream);
    return 0;
}

/* After a GEMM left this rank's partial sums of n rows in red[k]: their sum over ranks, the
 * row-parallel bias once (NULL: none), then x += that and xn = rmsnorm(x) * norm. One
 * kernel with the one-shot all-reduce; else NCCL, the bias and add_rmsnorm. */
static int reduce_add_norm(forward_cuda *f, int k, const void *bias, int n, const void *norm) {
    const int dim = f->cfg->hidden;
    const float eps = (float)f->cfg->rms_eps;
    if (f->oneshot_step && (size_t)n * dim * dtype_size(f->dt) <= f->oneshot_max_bytes) {
        oneshot_allreduce_add_rmsnorm_cuda(&f->oneshot[k], f->x, f->xn, bias, norm, n, dim, eps,
                                           f->dt, f->stream);
        prof_mark(f, PROF_ONESHOT);
        return 0;
    }
    if (reduce_rows(f, f->red[k], bias, n) != 0) return -1;
    add_rmsnorm_cuda(f->x, f->red[k], f->xn, norm, n, dim, eps, f->dt, f->stream);
    prof_mark(f, PROF_NORM);
    return 0;
}

/* The bias a row-parallel GEMM adds itself: all of it on one rank, none on more (added after
 * the reduce instead). */
static const void *gemm_bias(const forward_cuda *f, const void *bias) {
    return f->comm->world == 1 ? bias : NULL;
}

/* Shape of one step as the kernels see it. */
typedef struct {
    int n_tokens, n_seqs, n_logits, max_q_len;
} step_shape;

static int attention_block(forward_cuda *f, const step_shape *s, int layer) {
    const model_config *c = f->cfg;
    const layer_weights_cuda *lw = &f->w->layers[layer];
    const shard_plan *sh = &f->w->shard;
    const int T = s->n_tokens;
    char *plan = f->d_plan;
    gemm_run(f->gemm, f->qkv, f->dt, f->xn, lw->w_qkv, lw->b_qkv, f->dt, T, c->hidden,
             f->qkv_dim, f->stream);
    prof_mark(f, PROF_QKV);
    char *kc = (char *)f->k_pool + f->layer_stride * layer * dtype_size(f->dt);
    char *vc = (char *)f->v_pool + f->layer_stride * layer * dtype_size(f->dt);
    rope_kv_write_cuda(f->q, f->qkv, kc, vc, PLAN_PTR(f, plan, slots, int64_t),
                       PLAN_PTR(f, plan, positions, int32_t), f->cos, f->sin, lw->q_norm,
                       lw->k_norm, T, sh->n_heads, sh->n_kv_heads, c->head_dim, f->o.block_size,
                       (float)c->rms_eps, f->dt, f->stream);
    prof_mark(f, PROF_ROPE_KV);
    const paged_attention_params ap = {
        .n_seqs = s->n_seqs, .n_tokens = T, .max_q_len = s->max_q_len,
        .max_context = f->o.max_blocks_per_seq * f->o.block_size,
        .max_blocks = f->o.max_blocks_per_seq, .n_heads = sh->n_heads,
        .n_kv_heads = sh->n_kv_heads, .head_dim = c->head_dim, .block_size = f->o.block_size,
        .window = c->sliding_window[layer], .scale = 1.0f / sqrtf((float)c->head_dim),
        .dtype = f->dt};
    if (f->paged_attention)
        paged_attention_cuda(f->att, f->q, kc, vc, PLAN_PTR(f, plan, block_tables, int32_t),
                             PLAN_PTR(f, plan, seq_start, int32_t),
                             PLAN_PTR(f, plan, context_lens, int32_t), &ap, f->attn_ws,
                             f->stream);
    else
        attention_simple_cuda(f->att, f->q, kc, vc, PLAN_PTR(f, plan, block_tables, int32_t),
                              PLAN_PTR(f, plan, seq_start, int32_t),
                              PLAN_PTR(f, plan, context_lens, int32_t), &ap, f->stream);
    prof_mark(f, PROF_ATTENTION);
    gemm_run(f->gemm, f->red[RED_ATTN], f->dt, f->att, lw->wo, gemm_bias(f, lw->bo), f->dt, T,
             f->q_dim, c->hidden, f->stream);
    prof_mark(f, PROF_O);
    return 0;
}

static void mlp_block(forward_cuda *f, int layer, int T) {
    const model_config *c = f->cfg;
    const layer_weights_cuda *lw = &f->w->layers[layer];
    gemm_run(f->gemm, f->gate_up, f->dt, f->xn, lw->w_gate_up, lw->b_gate_up, f->dt, T,
             c->hidden, 2 * f->inter, f->stream);
    prof_mark(f, PROF_GATE_UP);
    silu_mul_cuda(f->act, f->gate_up, T, f->inter, f->dt, f->stream);
    prof_mark(f, PROF_SILU);
    gemm_run(f->gemm, f->red[RED_MLP], f->dt, f->act, lw->w_down, gemm_bias(f, lw->b_down),
             f->dt, T, f->inter, c->hidden, f->stream);
    prof_mark(f, PROF_DOWN);
}

/* The whole step on f->stream from the device plan: embedding -> layers -> LM head -> argmax. */
static int run_forward(forward_cuda *f, const step_shape *s) {
    const model_config *c = f->cfg;
    const cuda_weights *w = f->w;
    const int T = s->n_tokens;
    char *plan = f->d_plan;
    /* One-shot only in steps that end with the logits all-gather: a rank done with it knows
     * every peer is done reading its region (so it may free it after its last step). */
    f->oneshot_step = f->use_oneshot && s->n_logits > 0;
    prof_mark(f, PROF_EMBED); /* start */
    embedding_cuda(f->red[RED_EMBED], w->embed, PLAN_PTR(f, plan, token_ids, int32_t), T,
                   c->hidden, w->shard.vocab_start, w->shard.vocab, f->dt, f->stream);
    CUDA_CHECK(cudaMemsetAsync(f->x, 0, (size_t)T * c->hidden * dtype_size(f->dt), f->stream));
    prof_mark(f, PROF_EMBED);
    /* x = 0 + the embedding (rows outside a shard are zeros: the sum completes the lookup),
     * then the plain norm of forward_cpu */
    if (reduce_add_norm(f, RED_EMBED, NULL, T, w->layers[0].attn_norm) != 0) return -1;
    for (int l = 0; l < c->n_layers; l++) {
        if (attention_block(f, s, l) != 0) return -1;
        if (reduce_add_norm(f, RED_ATTN, w->layers[l].bo, T, w->layers[l].mlp_norm) != 0)
            return -1;
        mlp_block(f, l, T);
        const void *next = l + 1 < c->n_layers ? w->layers[l + 1].attn_norm : w->final_norm;
        if (reduce_add_norm(f, RED_MLP, w->layers[l].b_down, T, next) != 0) return -1;
    }
    if (s->n_logits == 0) return 0;
    gather_rows_cuda(f->last, f->xn, PLAN_PTR(f, plan, logits_rows, int32_t), s->n_logits,
                     c->hidden, f->dt, f->stream);
    const shard_plan *sh = &w->shard;
    const int L = s->n_logits;
    if (sh->world == 1) {
        gemm_run(f->gemm, f->logits, DTYPE_F32, f->last, w->lm_head, NULL, f->dt, L, c->hidden,
                 sh->vocab, f->stream);
        prof_mark(f, PROF_LM_HEAD);
        argmax_cuda(f->ids, f->logits, L, sh->vocab, f->stream);
        prof_mark(f, PROF_ARGMAX);
        return 0;
    }
    /* This rank's [L][vocab_local] into its block of the all-gather buffer (the last rank's
     * block is only partly used), gather, reorder into [L][vocab]. */
    const size_t count = (size_t)L * sh->vocab_shard;
    float *mine = f->logits + count * sh->rank;
    if (sh->vocab > 0)
        gemm_run(f->gemm, mine, DTYPE_F32, f->last, w->lm_head, NULL, f->dt, L, c->hidden,
                 sh->vocab, f->stream);
    prof_mark(f, PROF_LM_HEAD);
    if (nccl_allgather(&f->nccl, mine, f->logits, count, ncclFloat32) != 0) return -1;
    vocab_unshard_cuda(f->logits_full, f->logits, L, sh->vocab_shard, c->vocab, sh->world,
                       f->stream);
    prof_mark(f, PROF_GATHER);
    argmax_cuda(f->ids, f->logits_full, L, c->vocab, f->stream);
    prof_mark(f, PROF_ARGMAX);
    return 0;
}

/* Packs the plan into the pinned blob, padding a decode batch to `batch` rows (padding rows:
 * token 0 at position 0, no KV write, context 1 in block 0, logits row = itself). */
static void pack_plan(forward_cuda *f, const step_plan *p, int batch) {
    char *h = f->h_plan;
    const int MB = f->o.max_blocks_per_seq;
    int32_t *tok = PLAN_PTR(f, h, token_ids, int32_t), *pos = PLAN_PTR(f, h, positions, int32_t);
    int32_t *rows = PLAN_PTR(f, h, logits_rows, int32_t), *ss = PLAN_PTR(f, h, seq_start, int32_t);
    int32_t *ctx = PLAN_PTR(f, h, context_lens, int32_t);
    int32_t *bt = PLAN_PTR(f, h, block_tables, int32_t);
    int64_t *slot = PLAN_PTR(f, h, slots, int64_t);
    memcpy(tok, p->token_ids, sizeof *tok * p->n_tokens);
    memcpy(pos, p->positions, sizeof *pos * p->n_tokens);
    memcpy(slot, p->slot_mapping, sizeof *slot * p->n_tokens);
    memcpy(rows, p->logits_rows, sizeof *rows * p->n_logits);
    memcpy(ss, p->seq_start, sizeof *ss * (p->n_seqs + 1));
    memcpy(ctx, p->context_lens, sizeof *ctx * p->n_seqs);
    for (int s = 0; s < p->n_seqs; s++) {
        memcpy(bt + (size_t)s * MB, p->block_tables + (size_t)s * p->max_blocks,
               sizeof *bt * p->max_blocks);
    }
    for (int i = p->n_tokens; i < batch; i++) {
        tok[i] = 0;
        pos[i] = 0;
        slot[i] = -1;
        rows[i] = i;
        ss[i + 1] = i + 1;
        ctx[i] = 1;
        memset(bt + (size_t)i * MB, 0, sizeof *bt * MB);
    }
}

static void upload_plan(forward_cuda *f, int n_rows) {
    const size_t bytes = f->lay.block_tables + sizeof(int32_t) * (size_t)n_rows *
                                                   f->o.max_blocks_per_seq;
    CUDA_CHECK(cudaMemcpyAsync(f->d_plan, f->h_plan, bytes, cudaMemcpyHostToDevice, f->stream));
}

/* A padding-only decode step of `batch` rows, run once (cuBLASLt picks its algorithms) and
 * then captured. */
static int capture_graphs(forward_cuda *f) {
    const double t0 = folio_now();
    static const int sizes[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
    step_plan empty = {.n_seqs = 0, .max_blocks = 0};
    int32_t zero = 0;
    empty.seq_start = &zero;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0] && f->n_graphs < MAX_GRAPHS; i++) {
        const int b = sizes[i];
        if (b > f->o.max_seqs || b > f->o.max_tokens || b > f->o.max_logits) break;
        pack_plan(f, &empty, b);
        upload_plan(f, b);
        const step_shape s = {.n_tokens = b, .n_seqs = b, .n_logits = b, .max_q_len = 1};
        if (run_forward(f, &s) != 0) return -1;
        CUDA_CHECK(cudaStreamSynchronize(f->stream));
        cudaGraph_t g;
        CUDA_CHECK(cudaStreamBeginCapture(f->stream, cudaStreamCaptureModeThreadLocal));
        int rc = run_forward(f, &s);
        CUDA_CHECK(cudaStreamEndCapture(f->stream, &g));
        if (rc != 0) return -1;
        CUDA_CHECK(cudaGraphInstantiate(&f->graphs[f->n_graphs], g, 0));
        CUDA_CHECK(cudaGraphDestroy(g));
        f->graph_batch[f->n_graphs++] = b;
    }
    f->capture_ms = (folio_now() - t0) * 1e3;
    if (!f->o.quiet && f->comm->rank == 0)
        fprintf(stderr, "folio: captured %d decode CUDA graphs (batch 1..%d) in %.0f ms\n",
                f->n_graphs, f->n_graphs ? f->graph_batch[f->n_graphs - 1] : 0, f->capture_ms);
    return 0;
}

/* paged_attention_cuda (kernels/paged_attention*.cu) where it supports the shape (head_dim 64
 * or 128, up to 8 query heads per KV head), else the simple kernel; FOLIO_ATTENTION=simple
 * forces the simple one (for comparisons). Sizes the workspace for the largest step. */
static void choose_attention(forward_cuda *f) {
    const shard_plan *sh = &f->w->shard;
    const char *env = getenv("FOLIO_ATTENTION");
    const int ratio = sh->n_kv_heads ? sh->n_heads / sh->n_kv_heads : 0;
    f->paged_attention = !(env && strcmp(env, "simple") == 0) &&
                         (f->cfg->head_dim == 64 || f->cfg->head_dim == 128) && ratio >= 1 &&
                         ratio <= 8;
    if (!f->paged_attention) return;
    const paged_attention_params ap = {
        .n_seqs = f->o.max_seqs, .n_tokens = f->o.max_tokens, .max_q_len = f->o.max_tokens,
        .max_context = f->o.max_blocks_per_seq * f->o.block_size,
        .max_blocks = f->o.max_blocks_per_seq, .n_heads = sh->n_heads,
        .n_kv_heads = sh->n_kv_heads, .head_dim = f->cfg->head_dim,
        .block_size = f->o.block_size, .window = 0, .scale = 1.0f, .dtype = f->dt};
    f->attn_ws_bytes = paged_attention_workspace_bytes(&ap);
}

/* The one-shot all-reduce's peer region, [barrier state][red embed][red attn][red mlp] on
 * every rank, each rank's mapped by all (a collective). Stays off, NCCL then doing every
 * all-reduce, on one rank, with --all-reduce nccl, or where peer memory is not available
 * (rank 0 says why). */
static int open_oneshot(forward_cuda *f) {
    const comm_ctx *comm = f->comm;
    if (comm->world == 1 || f->o.nccl_only) return 0;
    const size_t row = (size_t)f->cfg->hidden * dtype_size(f->dt);
    const size_t buf = align_up((size_t)f->o.max_tokens * row);
    const size_t sig = align_up(sizeof(oneshot_signal));
    char why[256] = "";
    int rc = 1;
    if (row % 16)
        snprintf(why, sizeof why, "hidden size %d does not fill 16-byte packs", f->cfg->hidden);
    else
        rc = peer_memory_open(&f->peers, f->comm, sig + RED_COUNT * buf, why, sizeof why);
    if (rc < 0) return -1;
    if (rc == 1) {
        if (!f->o.quiet && comm->rank == 0)
            fprintf(stderr, "folio: one-shot all-reduce off (%s): NCCL for every all-reduce\n",
                    why);
        return 0;
    }
    const char *env = getenv("FOLIO_ONESHOT_MAX_BYTES");
    f->oneshot_max_bytes = env ? (size_t)strtoull(env, NULL, 10)
                               : ONESHOT_PEER_READ_BYTES / (size_t)(comm->world - 1);
    f->use_oneshot = true;
    snprintf(f->allreduce_name, sizeof f->allreduce_name, "one-shot <= %zu KB, NCCL above",
             f->oneshot_max_bytes >> 10);
    for (int k = 0; k < RED_COUNT; k++) {
        const size_t at = sig + (size_t)k * buf;
        oneshot_peers_init(&f->oneshot[k], f->peers.base, comm->world, comm->rank, at,
                           (unsigned long long)(f->nccl.timeout_s * 1e9));
        f->red[k] = (char *)f->peers.base[comm->rank] + at;
    }
    if (!f->o.quiet && comm->rank == 0)
        fprintf(stderr, "folio: one-shot all-reduce over peer memory for up to %zu KB per rank "
                        "(decode steps), NCCL above\n", f->oneshot_max_bytes >> 10);
    return 0;
}

forward_cuda *forward_cuda_create(const model_config *cfg, const cuda_weights *w,
                                  comm_ctx *comm, const forward_cuda_options *o) {
    forward_cuda *f = folio_xcalloc(1, sizeof *f);
    const shard_plan *sh = &w->shard;
    f->cfg = cfg;
    f->w = w;
    f->comm = comm;
    f->o = *o;
    f->dt = w->dtype;
    f->q_dim = sh->n_heads * cfg->head_dim;
    f->kv_dim = sh->n_kv_heads * cfg->head_dim;
    f->qkv_dim = f->q_dim + 2 * f->kv_dim;
    f->inter = sh->intermediate;
    f->lay = make_layout(o);
    if (cfg->head_dim > 256 || cfg->head_dim % 2) {
        folio_fail("--device cuda: head_dim %d is not supported (even, at most 256)",
                   cfg->head_dim);
        free(f);
        return NULL;
    }
    choose_attention(f);
    CUDA_CHECK(cudaStreamCreateWithFlags(&f->stream, cudaStreamNonBlocking));
    const char *prof_env = getenv("FOLIO_PROFILE");
    f->prof.on = prof_env && strcmp(prof_env, "0") != 0;
    if (f->prof.on) {
        f->o.enforce_eager = true; /* events between launches: eager steps */
        for (int i = 0; i < MAX_PROF_EVENTS; i++) CUDA_CHECK(cudaEventCreate(&f->prof.ev[i]));
    }
    /* the communicator first: its buffers count as used when the pool is planned */
    if (comm->world > 1 && nccl_init(&f->nccl, comm, f->stream, 600.0) != 0) goto fail;
    if (open_oneshot(f) != 0) goto fail;
    f->gemm = gemm_create(GEMM_WORKSPACE_BYTES);
    if (!f->gemm || plan_kv_pool(f) != 0) goto fail;
    alloc_workspace(f);
    if (!f->o.enforce_eager && capture_graphs(f) != 0) goto fail;
    return f;
fail:
    forward_cuda_free(f);
    return NULL;
}

void forward_cuda_free(forward_cuda *f) {
    if (!f) return;
    for (int i = 0; i < f->n_graphs; i++) CUDA_CHECK(cudaGraphExecDestroy(f->graphs[i]));
    if (f->prof.on)
        for (int i = 0; i < MAX_PROF_EVENTS; i++) CUDA_CHECK(cudaEventDestroy(f->prof.ev[i]));
    void *dev[] = {f->cos, f->sin, f->x, f->xn, f->qkv, f->q, f->att, f->proj, f->gate_up,
                   f->act, f->last, f->logits, f->logits_full, f->ids, f->k_pool, f->v_pool,
                   f->d_plan, f->attn_ws, f->d_sparams, f->d_lps, f->d_entries};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        if (dev[i]) CUDA_CHECK(cudaFree(dev[i]));
    if (f->h_plan) CUDA_CHECK(cudaFreeHost(f->h_plan));
    if (f->h_ids) CUDA_CHECK(cudaFreeHost(f->h_ids));
    if (f->h_logits) CUDA_CHECK(cudaFreeHost(f->h_logits));
    gemm_free(f->gemm);
    if (f->nccl.comm) {
        /* A local teardown once this rank's work is done: ncclCommFinalize would wait for the
         * other ranks, and rank 0 closes its engine before it sends them the stop message
         * (they wait in the plan channel): that deadlocks. Abort frees without peers. */
        CUDA_CHECK(cudaStreamSynchronize(f->stream));
        nccl_abort(&f->nccl);
        nccl_free(&f->nccl);
    }
    peer_memory_close(&f->peers); /* its peers may still read it: they are done or failing */
    if (f->stream) CUDA_CHECK(cudaStreamDestroy(f->stream));
    free(f);
}

int forward_cuda_num_blocks(const forward_cuda *f) { return f->num_blocks; }

void forward_cuda_copy_blocks(forward_cuda *f, const int32_t *src, const int32_t *dst, int n) {
    const size_t block = (size_t)f->w->shard.n_kv_heads * f->o.block_size * f->cfg->head_dim *
                         dtype_size(f->dt);
    for (int i = 0; i < n; i++)
        for (int l = 0; l < f->cfg->n_layers; l++) {
            const size_t layer = f->layer_stride * l * dtype_size(f->dt);
            char *k = (char *)f->k_pool + layer, *v = (char *)f->v_pool + layer;
            CUDA_CHECK(cudaMemcpyAsync(k + block * dst[i], k + block * src[i], block,
                                       cudaMemcpyDeviceToDevice, f->stream));
            CUDA_CHECK(cudaMemcpyAsync(v + block * dst[i], v + block * src[i], block,
                                       cudaMemcpyDeviceToDevice, f->stream));
        }
}

size_t forward_cuda_workspace_bytes(const model_config *cfg, const cuda_weights *w,
                                    const forward_cuda_options *o) {
    forward_cuda f = {.cfg = cfg, .w = w, .o = *o, .dt = w->dtype};
    f.q_dim = w->shard.n_heads * cfg->head_dim;
    f.qkv_dim = f.q_dim + 2 * w->shard.n_kv_heads * cfg->head_dim;
    f.inter = w->shard.intermediate;
    f.lay = make_layout(o);
    choose_attention(&f);
    return workspace_bytes(&f);
}

const char *forward_cuda_allreduce_name(const forward_cuda *f) {
    if (f->comm->world == 1) return "none";
    return f->use_oneshot ? f->allreduce_name : "NCCL";
}

double forward_cuda_capture_ms(const forward_cuda *f, int *n_graphs) {
    if (n_graphs) *n_graphs = f->n_graphs;
    return f->capture_ms;
}

void forward_cuda_profile_print(const forward_cuda *f, FILE *out) {
    const profile *p = &f->prof;
    if (!p->on) return;
    double total[2] = {0, 0};
    for (int k = 0; k < 2; k++)
        for (int c = 0; c < PROF_COUNT; c++) total[k] += p->ms[k][c];
    fprintf(out, "profile (CUDA events between launches, eager; ms per step)\n");
    fprintf(out, "  %-16s %14s %14s\n", "kernel", "prefill", "decode");
    for (int c = 0; c < PROF_COUNT; c++) {
        double v[2];
        for (int k = 0; k < 2; k++) v[k] = p->steps[k] ? p->ms[k][c] / p->steps[k] : 0.0;
        fprintf(out, "  %-16s %8.3f %4.1f%% %8.3f %4.1f%%\n", PROF_NAMES[c], v[0],
                total[0] > 0 ? 100.0 * p->ms[0][c] / total[0] : 0.0, v[1],
                total[1] > 0 ? 100.0 * p->ms[1][c] / total[1] : 0.0);
    }
    fprintf(out, "  %-16s %8.3f       %8.3f        (%d prefill, %d decode steps)\n", "total",
            p->steps[0] ? total[0] / p->steps[0] : 0.0, p->steps[1] ? total[1] / p->steps[1] : 0.0,
            p->steps[0], p->steps[1]);
}

static int check_plan(const forward_cuda *f, const step_plan *p) {
    if (p->n_tokens > f->o.max_tokens || p->n_logits > f->o.max_logits ||
        p->n_seqs > f->o.max_seqs || p->max_blocks > f->o.max_blocks_per_seq)
        return folio_fail("forward (cuda): step of %d tokens / %d sequences / %d logits rows / "
                          "%d blocks per sequence exceeds the workspace (%d / %d / %d / %d)",
                          p->n_tokens, p->n_seqs, p->n_logits, p->max_blocks, f->o.max_tokens,
                          f->o.max_seqs, f->o.max_logits, f->o.max_blocks_per_seq);
    if (p->block_size != f->o.block_size)
        return folio_fail("forward (cuda): plan block size %d differs from the KV cache's %d",
                          p->block_size, f->o.block_size);
    for (int t = 0; t < p->n_tokens; t++)
        if (p->positions[t] < 0 || p->positions[t] >= f->cfg->max_position)
            return folio_fail("forward: position %d is outside the model's context of %d "
                              "(max_position_embeddings)", p->positions[t],
                              f->cfg->max_position);
    return step_plan_validate(p, f->num_blocks);
}

/* The captured graph for a decode step of n sequences (-1: none fits, or not a decode). */
static int graph_for(const forward_cuda *f, const step_plan *p) {
    if (p->n_tokens != p->n_seqs || p->n_logits != p->n_seqs) return -1;
    for (int i = 0; i < p->n_logits; i++)
        if (p->logits_rows[i] != i) return -1;
    for (int g = 0; g < f->n_graphs; g++)
        if (f->graph_batch[g] >= p->n_seqs) return g;
    return -1;
}

int forward_cuda_step(forward_cuda *f, const step_plan *p, float *logits, int32_t *greedy_ids) {
    if (check_plan(f, p) != 0) return -1;
    if (p->n_tokens == 0) return 0;
    const int g = graph_for(f, p);
    const int rows = g >= 0 ? f->graph_batch[g] : p->n_seqs;
    pack_plan(f, p, g >= 0 ? rows : p->n_tokens);
    upload_plan(f, rows);
    if (g >= 0) {
        CUDA_CHECK(cudaGraphLaunch(f->graphs[g], f->stream));
    } else {
        int max_q = 0;
        for (int s = 0; s < p->n_seqs; s++)
            if (p->seq_start[s + 1] - p->seq_start[s] > max_q)
                max_q = p->seq_start[s + 1] - p->seq_start[s];
        const step_shape s = {.n_tokens = p->n_tokens, .n_seqs = p->n_seqs,
                              .n_logits = p->n_logits, .max_q_len = max_q};
        if (run_forward(f, &s) != 0) return -1;
    }
    const int L = p->n_logits;
    if (greedy_ids && L)
        CUDA_CHECK(cudaMemcpyAsync(f->h_ids, f->ids, sizeof(int32_t) * L, cudaMemcpyDeviceToHost,
                                   f->stream));
    const bool want_logits = logits && L && f->comm->rank == 0; /* only rank 0 samples */
    if (want_logits)
        CUDA_CHECK(cudaMemcpyAsync(f->h_logits, f->logits_full ? f->logits_full : f->logits,
                                   sizeof(float) * (size_t)L * f->cfg->vocab,
                                   cudaMemcpyDeviceToHost, f->stream));
    CUDA_CHECK(cudaStreamSynchronize(f->stream));
    prof_collect(f, p->n_tokens == p->n_seqs);
    if (greedy_ids && L) memcpy(greedy_ids, f->h_ids, sizeof(int32_t) * L);
    if (want_logits)
        memcpy(logits, f->h_logits, sizeof(float) * (size_t)L * f->cfg->vocab);
    return 0;
}

int forward_cuda_sample(forward_cuda *f, int n_rows, const sample_row_params *params,
                        const sample_entry *entries, int n_entries, int32_t *ids,
                        float *logprobs) {
    if (n_rows > f->o.max_logits)
        return folio_fail("forward (cuda): device sampling of %d rows: at most %d", n_rows,
                          f->o.max_logits);
    if (n_rows == 0) return 0;
    if (!f->d_sparams) {
        f->d_sparams = dev_alloc(sizeof *f->d_sparams * f->o.max_logits);
        f->d_lps = dev_alloc(sizeof *f->d_lps * f->o.max_logits);
    }
    if (n_entries > f->cap_entries) {
        if (f->d_entries) CUDA_CHECK(cudaFree(f->d_entries));
        f->cap_entries = 2 * n_entries;
        f->d_entries = dev_alloc(sizeof *f->d_entries * f->cap_entries);
    }
    CUDA_CHECK(cudaMemcpyAsync(f->d_sparams, params, sizeof *params * n_rows,
                               cudaMemcpyHostToDevice, f->stream));
    if (n_entries)
        CUDA_CHECK(cudaMemcpyAsync(f->d_entries, entries, sizeof *entries * n_entries,
                                   cudaMemcpyHostToDevice, f->stream));
    float *logits = f->logits_full ? f->logits_full : f->logits; /* [n][vocab], modified */
    sample_rows_cuda(f->ids, logprobs ? f->d_lps : NULL, logits, n_rows, f->cfg->vocab,
                     f->d_sparams, f->d_entries, f->stream);
    CUDA_CHECK(cudaMemcpyAsync(f->h_ids, f->ids, sizeof(int32_t) * n_rows,
                               cudaMemcpyDeviceToHost, f->stream));
    if (logprobs)
        CUDA_CHECK(cudaMemcpyAsync(logprobs, f->d_lps, sizeof(float) * n_rows,
                                   cudaMemcpyDeviceToHost, f->stream));
    CUDA_CHECK(cudaStreamSynchronize(f->stream));
    memcpy(ids, f->h_ids, sizeof(int32_t) * n_rows);
    return 0;
}

#else
typedef int folio_forward_cuda_unused; /* built without CUDA */
#endif
