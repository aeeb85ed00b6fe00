/* Opening a model on this rank: config, shard plan, weights, and the loading summary. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "fault.h"
#include "model.h"
#include "progress.h"

static const char *arch_label(const model_config *c) { return c->arch_name; }

int model_open(const char *dir, load_format format, comm_ctx *comm, int verbose, model *m) {
    memset(m, 0, sizeof *m);
    double t0 = folio_now();
    if (model_config_load(dir, &m->cfg) != 0) return -1;
    if (shard_plan_make(&m->cfg, comm->rank, comm->world, &m->shard) != 0) goto fail;
    load_options opt = {.format = format, .show_progress = comm->rank == 0, .dummy_seed = 0};
    if (weights_load(dir, &m->cfg, &m->shard, &opt, &m->weights) != 0) goto fail;
    if (fault_check("load", comm->rank, -1) != 0) {
        weights_free(&m->weights);
        goto fail;
    }
    if (comm->rank == 0) {
        char params[32], bytes[32];
        long long n = model_config_param_count(&m->cfg);
        fprintf(stderr, "folio: loaded %s %s: %s parameters, %s as float32 on %d rank%s, "
                        "%.2f s%s\n", arch_label(&m->cfg), dir,
                format_count((double)n, params, sizeof params),
                format_bytes((double)m->weights.arena_floats * sizeof(float), bytes,
                             sizeof bytes),
                comm->world, comm->world > 1 ? "s (this rank's share)" : "",
                folio_now() - t0, format == LOAD_DUMMY ? " (dummy weights)" : "");
        if (verbose)
            fprintf(stderr, "folio: %d layers, hidden %d, heads %d (kv %d, head_dim %d), ffn %d, "
                            "vocab %d, context %d, rope theta %g\n", m->cfg.n_layers,
                    m->cfg.hidden, m->cfg.n_heads, m->cfg.n_kv_heads, m->cfg.head_dim,
                    m->cfg.intermediate, m->cfg.vocab, m->cfg.max_position, m->cfg.rope.theta);
    }
    return 0;
fail:
    model_config_free(&m->cfg);
    memset(m, 0, sizeof *m);
    return -1;
}

void model_close(model *m) {
    weights_free(&m->weights);
    model_config_free(&m->cfg);
    memset(m, 0, sizeof *m);
}
