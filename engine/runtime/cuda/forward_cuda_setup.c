/* Creating and freeing a CUDA forward: the sizes derived from the model and its shard, the
 * attention kernel's choice, the workspace (its size, for planning, and its allocation with
 * the rope tables and the pinned host buffers), the NCCL communicator and the one-shot
 * all-reduce's peer memory, then the KV pool and the decode graphs. */
#ifdef FOLIO_HAVE_CUDA

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention_cuda.h"
#include "cuda_check.h"
#include "env.h"
#include "error.h"
#include "forward_cuda_internal.h"
#include "kernels_cuda.h"
#include "rope_tables.h"
#include "step_watchdog.h"

_Static_assert((int)PEER_MAX_RANKS == (int)ONESHOT_MAX_RANKS,
               "peer memory and one-shot rank limits");

/* The largest all-reduce (bytes of one rank's rows) sent one-shot by default: what each rank
 * reads from its peers, (world - 1) x bytes, at most 2 MB. Where one-shot and NCCL (with the
 * norm after it) cross on 2 and 4 H200s (docs/benchmarks.md): one-shot is faster up to 8 MB
 * on 2 ranks and up to about 1 MB on 4. FOLIO_ONESHOT_MAX_BYTES overrides. */
#define ONESHOT_PEER_READ_BYTES ((size_t)2 << 20)

void *fc_dev_alloc(size_t bytes) {
    void *p = NULL;
    CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 16));
    return p;
}

/* Positions the rope tables hold: the longest context the block tables allow (--max-model-len
 * rounded up to whole blocks), not the model's max_position_embeddings. */
int fc_rope_positions(const forward_cuda *f) { return f->o.max_blocks_per_seq * f->o.block_size; }

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
    b += 2 * sizeof(float) * (size_t)fc_rope_positions(f) * (c->head_dim / 2);
    b += f->lay.total + GEMM_WORKSPACE_BYTES + ((size_t)64 << 20); /* + slack for cuBLAS */
    return b + f->attn_ws_bytes + f->w4_scratch_bytes + f->fp8_xq_bytes + f->fp8_xs_bytes;
}

/* The rope tables, [fc_rope_positions][head_dim / 2] cos and sin, built on the host and
 * uploaded. */
static void upload_rope_tables(forward_cuda *f) {
    const model_config *c = f->cfg;
    const int n_positions = fc_rope_positions(f);
    const size_t half = (size_t)n_positions * (c->head_dim / 2);
    float *h_cos = folio_xmalloc(sizeof(float) * half);
    float *h_sin = folio_xmalloc(sizeof(float) * half);
    rope_build_tables(&c->rope, c->head_dim, n_positions, h_cos, h_sin);
    f->cos = fc_dev_alloc(sizeof(float) * half);
    f->sin = fc_dev_alloc(sizeof(float) * half);
    CUDA_CHECK(cudaMemcpy(f->cos, h_cos, sizeof(float) * half, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(f->sin, h_sin, sizeof(float) * half, cudaMemcpyHostToDevice));
    free(h_cos);
    free(h_sin);
}

static void alloc_workspace(forward_cuda *f) {
    const model_config *c = f->cfg;
    const size_t T = f->o.max_tokens, L = f->o.max_logits, e = dtype_size(f->dt);
    upload_rope_tables(f);
    f->x = fc_dev_alloc(T * c->hidden * e);
    f->xn = fc_dev_alloc(T * c->hidden * e);
    f->qkv = fc_dev_alloc(T * f->qkv_dim * e);
    f->q = fc_dev_alloc(T * f->q_dim * e);
    f->att = fc_dev_alloc(T * f->q_dim * e);
    if (!f->use_oneshot) {
        f->proj = fc_dev_alloc(T * c->hidden * e);
        for (int k = 0; k < RED_COUNT; k++) f->red[k] = f->proj;
    }
    f->gate_up = fc_dev_alloc(T * 2 * f->inter * e);
    f->act = fc_dev_alloc(T * f->inter * e);
    f->last = fc_dev_alloc(L * c->hidden * e);
    const shard_plan *sh = &f->w->shard;
    if (sh->world > 1) {
        f->logits = fc_dev_alloc(L * sh->world * sh->vocab_shard * sizeof(float));
        f->logits_full = fc_dev_alloc(L * c->vocab * sizeof(float));
    } else {
        f->logits = fc_dev_alloc(L * sh->vocab_shard * sizeof(float));
    }
    f->ids = fc_dev_alloc(L * sizeof(int32_t));
    f->d_plan = fc_dev_alloc(f->lay.total);
    if (f->paged_attention) f->attn_ws = fc_dev_alloc(f->attn_ws_bytes);
    if (f->w4_scratch_bytes) f->w4_scratch = fc_dev_alloc(f->w4_scratch_bytes);
    if (f->fp8_xq_bytes) {
        f->fp8_xq = fc_dev_alloc(f->fp8_xq_bytes);
        f->fp8_xs = fc_dev_alloc(f->fp8_xs_bytes);
    }
    CUDA_CHECK(cudaMallocHost((void **)&f->h_plan, f->lay.total));
    CUDA_CHECK(cudaMallocHost((void **)&f->h_ids, L * sizeof(int32_t)));
    CUDA_CHECK(cudaMallocHost((void **)&f->h_logits, L * c->vocab * sizeof(float)));
    memset(f->h_plan, 0, f->lay.total);
}

/* paged_attention_cuda (kernels/attention/paged_attention*.cu) where it supports the shape (head_dim 64
 * or 128, up to 8 query heads per KV head), else the simple kernel; FOLIO_ATTENTION=simple
 * forces the simple one (for comparisons). Sizes the workspace for the largest step. */
static void choose_attention(forward_cuda *f) {
    const shard_plan *sh = &f->w->shard;
    const char *env = folio_env("FOLIO_ATTENTION");
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

/* The options, the model's sizes on this shard, the plan layout and the attention kernel:
 * everything the workspace's size depends on (no device memory yet). */
static void init_sizes(forward_cuda *f, const model_config *cfg, const cuda_weights *w,
                       const forward_cuda_options *o) {
    f->cfg = cfg;
    f->w = w;
    f->o = *o;
    f->dt = w->dtype;
    f->q_dim = w->shard.n_heads * cfg->head_dim;
    f->kv_dim = w->shard.n_kv_heads * cfg->head_dim;
    f->qkv_dim = f->q_dim + 2 * f->kv_dim;
    f->inter = w->shard.intermediate;
    f->lay = fc_plan_layout(o);
    f->kv_elem = o->kv_k_scale ? 1 : dtype_size(f->dt);
    choose_attention(f);
    /* 4-bit weights: batches above the GEMV's dequantize the matrix into this scratch */
    if (o->max_tokens > W4A16_GEMV_MAX_N && w->quant_scratch_elems)
        f->w4_scratch_bytes = fc_align_up(w->quant_scratch_elems * dtype_size(f->dt));
    /* FP8 weights: every product quantizes its activations into this scratch first */
    if (w->fp8_max_cols) {
        const size_t groups = (w->fp8_max_cols + FP8_ACT_GROUP_SIZE - 1) / FP8_ACT_GROUP_SIZE;
        f->fp8_xq_bytes = fc_align_up((size_t)o->max_tokens * w->fp8_max_cols);
        f->fp8_xs_bytes = fc_align_up((size_t)o->max_tokens * groups * sizeof(float));
    }
}

/* The one-shot all-reduce's peer region, [barrier state][red embed][red attn][red mlp] on
 * every rank, each rank's mapped by all (a collective). Stays off, NCCL then doing every
 * all-reduce, on one rank, with --all-reduce nccl, or where peer memory is not available
 * (rank 0 says why). */
static int open_oneshot(forward_cuda *f) {
    const comm_ctx *comm = f->comm;
    if (comm->world == 1 || f->o.nccl_only) return 0;
    const size_t row = (size_t)f->cfg->hidden * dtype_size(f->dt);
    const size_t buf = fc_align_up((size_t)f->o.max_tokens * row);
    const size_t sig = fc_align_up(sizeof(oneshot_signal));
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
    const char *env = folio_env("FOLIO_ONESHOT_MAX_BYTES");
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

/* --kv-cache-dtype fp8: the paged kernels read e4m3 for bfloat16 and float16 models; keeps
 * its own copy of the per-layer scales. */
static int copy_kv_scales(forward_cuda *f) {
    if (!f->paged_attention || f->dt == DTYPE_F32)
        return folio_fail("--kv-cache-dtype fp8 on the GPU needs bfloat16 or float16 (not %s) "
                          "and the paged attention kernels (head_dim 64 or 128, up to 8 query "
                          "heads per KV head; this model: head_dim %d%s)",
                          dtype_name(f->dt), f->cfg->head_dim,
                          folio_env("FOLIO_ATTENTION") ? ", FOLIO_ATTENTION is set" : "");
    const size_t n = (size_t)f->cfg->n_layers;
    f->kv_k_scale = folio_xcalloc(n, sizeof *f->kv_k_scale);
    f->kv_v_scale = folio_xcalloc(n, sizeof *f->kv_v_scale);
    memcpy(f->kv_k_scale, f->o.kv_k_scale, n * sizeof *f->kv_k_scale);
    memcpy(f->kv_v_scale, f->o.kv_v_scale, n * sizeof *f->kv_v_scale);
    f->o.kv_k_scale = f->o.kv_v_scale = NULL; /* the caller's arrays need not outlive this */
    return 0;
}

forward_cuda *forward_cuda_create(const model_config *cfg, const cuda_weights *w,
                                  comm_ctx *comm, const forward_cuda_options *o) {
    if (cfg->head_dim > 256 || cfg->head_dim % 2) {
        folio_fail("--device cuda: head_dim %d is not supported (even, at most 256)",
                   cfg->head_dim);
        return NULL;
    }
    if (o->num_blocks < 1) {
        folio_fail("forward (cuda): a KV pool of %d blocks (size it with backend_kv_blocks)",
                   o->num_blocks);
        return NULL;
    }
    forward_cuda *f = folio_xcalloc(1, sizeof *f);
    init_sizes(f, cfg, w, o);
    f->comm = comm;
    if (o->kv_k_scale && copy_kv_scales(f) != 0) goto fail;
    CUDA_CHECK(cudaStreamCreateWithFlags(&f->stream, cudaStreamNonBlocking));
    fc_prof_init(f);
    if (comm->world > 1 && nccl_init(&f->nccl, comm, f->stream, STEP_TIMEOUT_DEFAULT_S) != 0) goto fail;
    if (open_oneshot(f) != 0) goto fail;
    f->gemm = gemm_create(GEMM_WORKSPACE_BYTES);
    if (!f->gemm || fc_kv_pool_alloc(f) != 0) goto fail;
    alloc_workspace(f);
    if (!f->o.enforce_eager && fc_capture_graphs(f) != 0) goto fail;
    return f;
fail:
    forward_cuda_free(f);
    return NULL;
}

void forward_cuda_free(forward_cuda *f) {
    if (!f) return;
    fc_graphs_free(f);
    fc_prof_free(f);
    void *dev[] = {f->cos, f->sin, f->x, f->xn, f->qkv, f->q, f->att, f->proj, f->gate_up,
                   f->act, f->last, f->logits, f->logits_full, f->ids, f->k_pool, f->v_pool,
                   f->d_plan, f->attn_ws, f->d_sparams, f->d_lps, f->d_entries,
                   f->w4_scratch, f->fp8_xq, f->fp8_xs};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        if (dev[i]) CUDA_CHECK(cudaFree(dev[i]));
    if (f->h_plan) CUDA_CHECK(cudaFreeHost(f->h_plan));
    if (f->h_ids) CUDA_CHECK(cudaFreeHost(f->h_ids));
    if (f->h_logits) CUDA_CHECK(cudaFreeHost(f->h_logits));
    free(f->kv_k_scale);
    free(f->kv_v_scale);
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

size_t forward_cuda_workspace_bytes(const model_config *cfg, const cuda_weights *w,
                                    const forward_cuda_options *o) {
    forward_cuda f;
    memset(&f, 0, sizeof f);
    init_sizes(&f, cfg, w, o);
    return workspace_bytes(&f);
}

const char *forward_cuda_allreduce_name(const forward_cuda *f) {
    if (f->comm->world == 1) return "none";
    return f->use_oneshot ? f->allreduce_name : "NCCL";
}

#else
typedef int folio_forward_cuda_setup_unused; /* built without CUDA */
#endif
