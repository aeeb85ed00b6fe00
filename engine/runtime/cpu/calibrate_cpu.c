/* Calibration forward (calibrate_cpu.h): one prefill step per window over a KV pool of one
 * window, no logits. */
#include "calibrate_cpu.h"

#include <stdlib.h>

#include "error.h"
#include "forward_cpu.h"
#include "kv_cache.h"
#include "progress.h"
#include "step_plan.h"

static void add_input(void *user, int layer, forward_tap tap, const float *x, int n, int dim) {
    static const awq_group_kind GROUP[] = {[FWD_TAP_ATTN_IN] = AWQ_QKV, [FWD_TAP_O_IN] = AWQ_O,
                                           [FWD_TAP_MLP_IN] = AWQ_GATE_UP,
                                           [FWD_TAP_DOWN_IN] = AWQ_DOWN};
    awq_calib_add(user, layer, GROUP[tap], x, n, dim);
}

int calibrate_cpu(const model *m, comm_ctx *comm, const int32_t *ids, int n, int window,
                  awq_calib *c, bool progress) {
    const model_config *cfg = &m->cfg;
    const int block_size = 16, n_blocks = (window + block_size - 1) / block_size;
    if (window < 1 || window > cfg->max_position)
        return folio_fail("calibration: window of %d tokens (the model's context is %d)", window,
                          cfg->max_position);
    kv_cache kv;
    if (kv_cache_create(&kv, cfg->n_layers, n_blocks, block_size, m->shard.n_kv_heads,
                        cfg->head_dim, NULL, NULL, false) != 0)
        return -1;
    forward_cpu *f = forward_cpu_create(cfg, &m->weights, comm, window, 1, window);
    forward_cpu_set_tap(f, add_input, c);
    int32_t *table = folio_xmalloc(sizeof *table * n_blocks);
    for (int b = 0; b < n_blocks; b++) table[b] = b;
    step_plan plan;
    step_plan_create(&plan, window, 1, n_blocks, block_size);
    progress_bar bar;
    progress_start(&bar, "calibrating", (uint64_t)n, "tokens", progress);
    int rc = 0;
    for (int at = 0; at < n && rc == 0; at += window) {
        const int len = n - at < window ? n - at : window;
        step_plan_reset(&plan, at / window);
        rc = step_plan_add(&plan, ids + at, len, 0, table, n_blocks, 0, 0) < 0
                 ? -1
                 : forward_cpu_step(f, &kv, &plan, NULL);
        progress_add(&bar, (uint64_t)len);
    }
    progress_finish(&bar);
    step_plan_free(&plan);
    free(table);
    forward_cpu_free(f);
    kv_cache_free(&kv);
    return rc;
}
