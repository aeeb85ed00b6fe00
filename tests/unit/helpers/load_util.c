/* Test helpers: random values and float tensors for test-written checkpoints, loading a rank
 * of one, expecting a load to fail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "error.h"
#include "load_util.h"

uint32_t test_rnd(uint64_t *state) {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return (uint32_t)(*state >> 32);
}

float test_rnd_unit(uint64_t *state) {
    return (float)test_rnd(state) / 4294967296.0f * 2.0f - 1.0f;
}

void put_float_tensor(st_writer *w, uint64_t *state, const char *name, int rows, int cols,
                      float fill) {
    size_t n = (size_t)rows * (cols ? cols : 1);
    float *v = malloc(sizeof *v * n);
    for (size_t i = 0; i < n; i++) v[i] = fill != 0 ? fill : 0.1f * test_rnd_unit(state);
    stw_add(w, name, "F32", cols ? 2 : 1, rows, cols, v, n * sizeof *v);
    free(v);
}

int load_rank_dir(const char *dir, int rank, int world, model_config *cfg, model_weights *w) {
    shard_plan sh;
    load_options o = {.format = LOAD_AUTO};
    if (model_config_load(dir, cfg) != 0) return -1;
    if (shard_plan_make(cfg, rank, world, &sh) != 0 || weights_load(dir, cfg, &sh, &o, w)) {
        model_config_free(cfg);
        return -1;
    }
    return 0;
}

void expect_load_fail_dir(const char *dir, int world, ...) {
    int failed = 0;
    for (int rank = 0; rank < world && !failed; rank++) {
        model_config cfg;
        model_weights w;
        folio_clear_error();
        if (load_rank_dir(dir, rank, world, &cfg, &w) != 0) {
            failed = 1;
            break;
        }
        weights_free(&w);
        model_config_free(&cfg);
    }
    if (!failed) fail_msg("%s: loading at world %d did not fail", dir, world);
    const char *msg = folio_last_error();
    va_list ap;
    va_start(ap, world);
    for (const char *n = va_arg(ap, const char *); n; n = va_arg(ap, const char *))
        if (!strstr(msg, n)) fail_msg("error \"%s\" does not contain \"%s\"", msg, n);
    va_end(ap);
}
