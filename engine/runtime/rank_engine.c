/* Opening the engine on every rank: the set-up rank 0 sends, the KV pool every rank agrees
 * on, rank 0's broadcasting backend and the other ranks' worker loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "kv_capacity.h"
#include "progress.h"
#include "rank_engine.h"

void engine_options_init(engine_options *k) {
    memset(k, 0, sizeof *k);
    k->block_size = 16;
    k->max_num_seqs = 256;
    k->max_batched = 2048;
    k->gpu_util = FOLIO_DEFAULT_MEMORY_UTILIZATION;
}

/* What rank 0 sends the other ranks before the first step (plain data, one build per job):
 * the scheduler's sizes, from which they size their plans and workspaces, and the KV knobs,
 * from which each sizes its own pool. */
typedef struct {
    sched_config sched;          /* num_blocks: agreed later (minimum over ranks) */
    kv_knobs kv;
} rank_setup;

static int setup_from_options(const engine_options *k, const model_config *c, rank_setup *s) {
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
    s->kv = (kv_knobs){.utilization = k->gpu_util, .kv_cache_memory = k->kv_memory,
                       .num_blocks_override = (int)k->num_kv_blocks};
    return 0;
}

/* The backend sizes of the engine's scheduler. */
static backend_sizes sizes_of(const sched_config *sc) {
    return (backend_sizes){.num_blocks = sc->num_blocks, .block_size = sc->block_size,
                           .max_tokens = sc->max_num_batched_tokens, .max_seqs = sc->max_num_seqs,
                           .max_logits = sc->max_num_seqs, .max_model_len = sc->max_model_len};
}

/* The start-up line of the KV pool; memory_blocks: what the memory would hold without the
 * cap of --max-num-seqs full contexts (said when the cap is what stopped the pool). */
static void print_kv_pool(const sched_config *sc, const device_model *dm, const comm_ctx *comm,
                          size_t block_bytes, int memory_blocks) {
    char bytes[32];
    const long long tokens = (long long)sc->num_blocks * sc->block_size;
    const long long per_seq = (sc->max_model_len + sc->block_size - 1) / sc->block_size;
    fprintf(stderr, "folio: KV cache: %d blocks of %d tokens (%s%s, %s): %lld tokens fit, "
                    "%lld sequences of the full context at once; the largest context of one "
                    "sequence is %lld tokens (--max-model-len %d)\n",
            sc->num_blocks, sc->block_size,
            format_bytes((double)block_bytes * sc->num_blocks, bytes, sizeof bytes),
            comm->world > 1 ? " per rank, the minimum over ranks" : "",
            dm->kv_fp8 ? "fp8 e4m3" : dtype_name(dm->dtype), tokens, sc->num_blocks / per_seq,
            tokens < sc->max_model_len ? tokens : (long long)sc->max_model_len,
            sc->max_model_len);
    if (memory_blocks > sc->num_blocks)
        fprintf(stderr, "folio: KV cache: the pool stops at --max-num-seqs %d full contexts; the "
                        "memory would hold %d blocks (%lld sequences of the full context)\n",
                sc->max_num_seqs, memory_blocks, memory_blocks / per_seq);
}

/* Every rank: sizes its own pool, then all use the minimum over ranks (block ids in the plan
 * must be valid everywhere); rank 0 prints what fits. */
static int agree_kv_blocks(rank_setup *s, const device_model *dm, comm_ctx *comm) {
    int mine[2], all[2]; /* the pool, and what the memory alone would hold */
    size_t block_bytes;
    const backend_sizes sizes = sizes_of(&s->sched);
    if (backend_kv_blocks(dm, comm, &sizes, &s->kv, &mine[0], &block_bytes, &mine[1]) != 0)
        return -1;
    all[0] = mine[0];
    all[1] = mine[1];
    if (comm->world > 1) MPI_CHECK(MPI_Allreduce(mine, all, 2, MPI_INT, MPI_MIN, comm->comm));
    s->sched.num_blocks = all[0];
    if (sched_config_validate(&s->sched) != 0) return -1;
    if (comm->rank == 0) print_kv_pool(&s->sched, dm, comm, block_bytes, all[1]);
    return 0;
}

int rank_engine_open(rank_engine *re, const engine_options *k, const device_model *dm,
                     comm_ctx *comm, plan_channel *ch) {
    rank_setup s;
    memset(re, 0, sizeof *re);
    if (setup_from_options(k, &dm->m.cfg, &s) != 0) return -1;
    if (plan_channel_send(ch, PLAN_MSG_SETUP, &s, sizeof s) != 0) return -1;
    if (agree_kv_blocks(&s, dm, comm) != 0) return -1;
    const backend_sizes sizes = sizes_of(&s.sched);
    re->local = backend_create(dm, comm, &sizes);
    if (!re->local) return -1;
    re->sched = s.sched;
    return 0;
}

engine_backend rank_engine_backend(rank_engine *re, plan_channel *ch) {
    return backend_tp_iface(&re->tp, backend_iface(re->local), ch);
}

void rank_engine_close(rank_engine *re) {
    backend_free(re->local);
    re->local = NULL;
}

int rank_worker_run(const device_model *dm, comm_ctx *comm, plan_channel *ch) {
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
    if (agree_kv_blocks(&s, dm, comm) != 0) return -1;
    const sched_config *sc = &s.sched;
    /* the same backend as rank 0's, created with the same sizes (on CUDA: the same graphs,
     * captured in the same order, so the collectives inside them pair up) */
    const backend_sizes sizes = sizes_of(sc);
    backend *local = backend_create(dm, comm, &sizes);
    if (!local) return -1;
    step_plan plan;
    step_plan_create(&plan, sc->max_num_batched_tokens, sc->max_num_seqs,
                     (sc->max_model_len + sc->block_size - 1) / sc->block_size, sc->block_size);
    float *logits = folio_xmalloc(sizeof(float) * (size_t)sc->max_num_seqs * dm->m.cfg.vocab);
    long long steps = 0;
    int rc = tp_worker_loop(ch, backend_iface(local), &plan, logits, &steps);
    free(logits);
    step_plan_free(&plan);
    backend_free(local);
    return rc;
}
