/* Opening a model on this rank: config, shard plan, host weights, and the loading summary. */
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "fault.h"
#include "fp8.h"
#include "model.h"
#include "progress.h"
#include "quant.h"

int model_open_config(const char *dir, const dummy_quant *dq, int rank, int world, model *m) {
    memset(m, 0, sizeof *m);
    if (model_config_load(dir, &m->cfg) != 0) return -1;
    if (dq && dq->w4a16) quant_config_dummy(&m->cfg.quant, dq);
    if (dq && dq->fp8) quant_config_dummy_fp8(&m->cfg.quant, dq);
    if (shard_plan_make(&m->cfg, rank, world, &m->shard) != 0 ||
        quant_dummy_check(&m->cfg, &m->shard) != 0 || fp8_dummy_check(&m->cfg, &m->shard) != 0) {
        model_close(m);
        return -1;
    }
    return 0;
}

static void print_summary(const model *m, const char *dir, load_format format, int world,
                          int verbose, double seconds) {
    char params[32], bytes[32];
    long long n = model_config_param_count(&m->cfg);
    fprintf(stderr, "folio: loaded %s %s: %s parameters, %s as float32 on %d rank%s, %.2f s%s\n",
            m->cfg.arch_name, dir, format_count((double)n, params, sizeof params),
            format_bytes((double)m->weights.arena_floats * sizeof(float), bytes, sizeof bytes),
            world, world > 1 ? "s (this rank's share)" : "", seconds,
            format == LOAD_DUMMY ? " (dummy weights)" : "");
    const quant_config *q = &m->cfg.quant;
    if (q->method == QUANT_DUMMY) {
        char group[32] = "per channel";
        if (q->group_size > 0) snprintf(group, sizeof group, "group size %d", q->group_size);
        fprintf(stderr, "folio: dummy 4-bit Linear weights (--quantization w4a16, %s, %s) "
                        "dequantized to float32 at load\n", group,
                q->sym ? "symmetric" : "asymmetric");
    } else if (q->method == QUANT_FP8 && (q->fp8_src == FP8_SRC_DUMMY || format != LOAD_DUMMY)) {
        fprintf(stderr, "folio: %sFP8 e4m3 Linear weights (%s scales, activations quantized %s) "
                        "dequantized to float32 at load\n",
                q->fp8_src == FP8_SRC_DUMMY ? "dummy " : "",
                q->fp8_weights == FP8_W_BLOCK ? "block" : q->fp8_weights == FP8_W_CHANNEL
                                                              ? "per-channel" : "per-tensor",
                q->fp8_act == FP8_ACT_GROUP ? "per token and group of 128"
                : q->fp8_act == FP8_ACT_STATIC ? "with static input scales" : "per token");
    } else if (q->method != QUANT_NONE && format != LOAD_DUMMY)
        fprintf(stderr, "folio: %d-bit %s weights (group size %d%s) dequantized to float32 at "
                        "load\n", q->bits, quant_method_name(q->method), q->group_size,
                q->act_order ? ", act-order" : "");
    if (verbose)
        fprintf(stderr, "folio: %d layers, hidden %d, heads %d (kv %d, head_dim %d), ffn %d, "
                        "vocab %d, context %d, rope theta %g\n", m->cfg.n_layers,
                m->cfg.hidden, m->cfg.n_heads, m->cfg.n_kv_heads, m->cfg.head_dim,
                m->cfg.intermediate, m->cfg.vocab, m->cfg.max_position, m->cfg.rope.theta);
}

int model_open(const char *dir, load_format format, const dummy_quant *dq, int rank, int world,
               int verbose, model *m) {
    double t0 = folio_now();
    if (dq && (dq->w4a16 || dq->fp8) && format != LOAD_DUMMY)
        return folio_fail("--quantization %s draws a dummy model: it needs --load-format "
                          "dummy (a checkpoint carries its own quantization_config)",
                          dq->fp8 ? "fp8" : "w4a16");
    if (model_open_config(dir, dq, rank, world, m) != 0) return -1;
    load_options opt = {.format = format, .show_progress = rank == 0, .dummy_seed = 0};
    if (weights_load(dir, &m->cfg, &m->shard, &opt, &m->weights) != 0 ||
        fault_check("load", rank, -1) != 0) {
        model_close(m);
        return -1;
    }
    if (rank == 0) print_summary(m, dir, format, world, verbose, folio_now() - t0);
    return 0;
}

void model_close(model *m) {
    weights_free(&m->weights);
    model_config_free(&m->cfg);
    memset(m, 0, sizeof *m);
}
