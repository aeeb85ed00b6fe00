/* Opening the engine on every rank: shared engine options, the set-up rank 0 sends, the KV
 * pool every rank agrees on, rank 0's broadcasting backend and the other ranks' worker loop. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "engine_setup.h"
#include "error.h"
#include "fault.h"
#include "kv_capacity.h"
#include "progress.h"

void engine_knobs_init(engine_knobs *k) {
    memset(k, 0, sizeof *k);
    k->block_size = 16;
    k->max_num_seqs = 256;
    k->max_batched = 2048;
    k->gpu_util = 0.90;
}

int engine_knobs_option(engine_knobs *k, int id, const char *arg) {
    switch (id) {
    case OPT_KNOB_BLOCK_SIZE: return cli_parse_int("--block-size", arg, 1, 1024, &k->block_size) ? -1 : 1;
    case OPT_KNOB_NUM_KV_BLOCKS:
        return cli_parse_int("--num-kv-blocks", arg, 1, 1 << 30, &k->num_kv_blocks) ? -1 : 1;
    case OPT_KNOB_MAX_NUM_SEQS:
        return cli_parse_int("--max-num-seqs", arg, 1, 1 << 20, &k->max_num_seqs) ? -1 : 1;
    case OPT_KNOB_MAX_BATCHED:
        return cli_parse_int("--max-num-batched-tokens", arg, 1, 1 << 24, &k->max_batched) ? -1 : 1;
    case OPT_KNOB_KV_MEMORY:
        return cli_parse_int("--kv-cache-memory", arg, 1, INT64_MAX, &k->kv_memory) ? -1 : 1;
    case OPT_KNOB_GPU_UTIL:
        return cli_parse_float("--gpu-memory-utilization", arg, 1e-6, 1, &k->gpu_util) ? -1 : 1;
    case OPT_KNOB_MAX_MODEL_LEN:
        return cli_parse_int("--max-model-len", arg, 1, 1 << 30, &k->max_model_len) ? -1 : 1;
    case OPT_KNOB_NO_PREFIX_CACHING: k->no_prefix_caching = true; return 1;
    default: return 0;
    }
}

/* What rank 0 sends the other ranks before the first step (plain data, one build per job):
 * the scheduler's sizes, from which they size their plans and workspaces, and the KV knobs,
 * from which each sizes its own pool. */
typedef struct {
    sched_config sched;          /* num_blocks: agreed later (minimum over ranks) */
    double utilization;
    long long kv_cache_memory;
    int num_blocks_override;
} rank_setup;

static int setup_from_knobs(const engine_knobs *k, const model *m, rank_setup *s) {
    const model_config *c = &m->cfg;
    if (k->max_model_len > c->max_position)
        return folio_fail("--max-model-len %lld is longer than the model's context of %d "
                          "(max_position_embeddings)", k->max_model_len, c->max_position);
    memset(s, 0, sizeof *s);
    s->sched = (sched_config){.block_size = (int)k->block_size,
                              .max_num_seqs = (int)k->max_num_seqs,
                              .max_num_batched_tokens = (int)k->max_batched,
                              .max_model_len = k->max_model_len > 0 ? (int)k->max_model_len
                                                                    : c->max_position,
                              .prefix_caching = !k->no_prefix_caching};
    s->utilization = k->gpu_util;
    s->kv_cache_memory = k->kv_memory;
    s->num_blocks_override = (int)k->num_kv_blocks;
    return 0;
}

/* This rank's KV blocks from its own memory: on the CPU backend the host's memory, shared
 * by the ranks on this host. */
static int local_kv_blocks(const rank_setup *s, const model *m, const comm_ctx *comm,
                           int *blocks, size_t *block_bytes) {
    const model_config *c = &m->cfg;
    const sched_config *sc = &s->sched;
    long long per_seq = (sc->max_model_len + sc->block_size - 1) / sc->block_size;
    long long useful = sc->max_num_seqs * per_seq;
    kv_capacity_in in = {.utilization = s->utilization, .kv_cache_memory = s->kv_cache_memory,
                         .num_blocks_override = s->num_blocks_override,
                         .block_bytes = kv_cache_block_bytes(c->n_layers, sc->block_size,
                                                             m->shard.n_kv_heads, c->head_dim),
                         .workspace_bytes = backend_cpu_workspace_bytes(
                             c, sc->max_num_batched_tokens, sc->max_num_seqs),
                         .max_useful_blocks = (int)(useful < (1 << 30) ? useful : (1 << 30))};
#ifdef FOLIO_HAVE_CUDA
    if (m->gpu_weights) { /* the GPU's memory: fp16/bf16 blocks, forward_cuda's workspace */
        const cuda_weights *w = m->gpu_weights;
        in.block_bytes = in.block_bytes / sizeof(float) * dtype_size(w->dtype);
        in.workspace_bytes = backend_cuda_workspace_bytes(m, sc->block_size,
                                                          sc->max_num_batched_tokens,
                                                          sc->max_num_seqs, sc->max_model_len);
        *block_bytes = in.block_bytes;
        if (fault_check("kv", comm->rank, -1) != 0) return -1;
        if (backend_cuda_memory(&in.total_bytes, &in.free_bytes) != 0) return -1;
        return kv_capacity_blocks(&in, blocks);
    }
#endif
    *block_bytes = in.block_bytes;
    if (fault_check("kv", comm->rank, -1) != 0) return -1;
    if (s->num_blocks_override <= 0 && s->kv_cache_memory <= 0) {
        if (kv_capacity_host_memory(&in.total_bytes, &in.free_bytes) != 0) return -1;
        in.total_bytes /= (size_t)comm->local_size;
        in.free_bytes /= (size_t)comm->local_size;
    }
    return kv_capacity_blocks(&in, blocks);
}

/* Every rank: sizes its own pool, then all use the minimum over ranks (block ids in the plan
 * must be valid everywhere); rank 0 prints what fits. */
static int agree_kv_blocks(rank_setup *s, const model *m, comm_ctx *comm) {
    int mine, all;
    size_t block_bytes;
    if (local_kv_blocks(s, m, comm, &mine, &block_bytes) != 0) return -1;
    all = mine;
    if (comm->world > 1) MPI_CHECK(MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, comm->comm));
    s->sched.num_blocks = all;
    if (sched_config_validate(&s->sched) != 0) return -1;
    if (comm->rank == 0) {
        const sched_config *sc = &s->sched;
        char bytes[32];
        long long tokens = (long long)sc->num_blocks * sc->block_size;
        fprintf(stderr, "folio: KV cache: %d blocks of %d tokens (%s%s): %lld tokens fit; the "
                        "largest context of one sequence is %lld tokens (--max-model-len %d)\n",
                sc->num_blocks, sc->block_size,
                format_bytes((double)block_bytes * sc->num_blocks, bytes, sizeof bytes),
                comm->world > 1 ? " per rank, the minimum over ranks" : "", tokens,
                tokens < m->cfg.max_position ? tokens : (long long)m->cfg.max_position,
                sc->max_model_len);
    }
    return 0;
}

int rank_engine_open(rank_engine *re, const engine_knobs *k, const model *m, comm_ctx *comm,
                     plan_channel *ch) {
    rank_setup s;
    memset(re, 0, sizeof *re);
    if (setup_from_knobs(k, m, &s) != 0) return -1;
    if (plan_channel_send(ch, PLAN_MSG_SETUP, &s, sizeof s) != 0) return -1;
    if (agree_kv_blocks(&s, m, comm) != 0) return -1;
    const sched_config *sc = &s.sched;
#ifdef FOLIO_HAVE_CUDA
    if (m->gpu_weights) {
        if (backend_cuda_create(&re->cuda, m, comm, sc->num_blocks, sc->block_size,
                                sc->max_num_batched_tokens, sc->max_num_seqs,
                                sc->max_model_len) != 0)
            return -1;
        re->sched = *sc;
        re->open = true;
        return 0;
    }
#endif
    if (backend_cpu_create(&re->cpu, m, comm, sc->num_blocks, sc->block_size,
                           sc->max_num_batched_tokens, sc->max_num_seqs) != 0)
        return -1;
    re->sched = *sc;
    re->open = true;
    return 0;
}

engine_backend rank_engine_backend(rank_engine *re, plan_channel *ch) {
#ifdef FOLIO_HAVE_CUDA
    if (re->cuda.fwd) return backend_tp_iface(&re->tp, backend_cuda_iface(&re->cuda), ch);
#endif
    return backend_tp_iface(&re->tp, backend_cpu_iface(&re->cpu), ch);
}

void rank_engine_close(rank_engine *re) {
#ifdef FOLIO_HAVE_CUDA
    if (re->open && re->cuda.fwd) {
        backend_cuda_free(&re->cuda);
        re->open = false;
        return;
    }
#endif
    if (re->open) backend_cpu_free(&re->cpu);
    re->open = false;
}

int rank_worker_run(const model *m, comm_ctx *comm, plan_channel *ch) {
    plan_msg_kind kind;
    if (plan_channel_recv(ch, &kind) != 0) return -1;
    if (kind == PLAN_MSG_STOP) return 0;
    size_t n;
    const void *payload = plan_channel_payload(ch, &n);
    if (kind != PLAN_MSG_SETUP || n != sizeof(rank_setup))
        return folio_fail("worker: expected the set-up message from rank 0 (kind %d, %zu "
                          "bytes), got kind %d with %zu bytes", PLAN_MSG_SETUP,
                          sizeof(rank_setup), (int)kind, n);
    rank_setup s;
    memcpy(&s, payload, sizeof s);
    if (agree_kv_blocks(&s, m, comm) != 0) return -1;
    const sched_config *sc = &s.sched;
    /* the same backend as rank 0's, created with the same sizes (on CUDA: the same graphs,
     * captured in the same order, so the collectives inside them pair up) */
    engine_backend local;
    backend_cpu be;
#ifdef FOLIO_HAVE_CUDA
    backend_cuda bc;
    if (m->gpu_weights) {
        if (backend_cuda_create(&bc, m, comm, sc->num_blocks, sc->block_size,
                                sc->max_num_batched_tokens, sc->max_num_seqs,
                                sc->max_model_len) != 0)
            return -1;
        local = backend_cuda_iface(&bc);
    } else
#endif
    {
        if (backend_cpu_create(&be, m, comm, sc->num_blocks, sc->block_size,
                               sc->max_num_batched_tokens, sc->max_num_seqs) != 0)
            return -1;
        local = backend_cpu_iface(&be);
    }
    step_plan plan;
    step_plan_create(&plan, sc->max_num_batched_tokens, sc->max_num_seqs,
                     (sc->max_model_len + sc->block_size - 1) / sc->block_size, sc->block_size);
    float *logits = folio_xmalloc(sizeof(float) * (size_t)sc->max_num_seqs * m->cfg.vocab);
    long long steps = 0;
    int rc = tp_worker_loop(ch, local, &plan, logits, &steps);
    free(logits);
    step_plan_free(&plan);
#ifdef FOLIO_HAVE_CUDA
    if (m->gpu_weights) {
        backend_cuda_free(&bc);
        return rc;
    }
#endif
    backend_cpu_free(&be);
    return rc;
}
