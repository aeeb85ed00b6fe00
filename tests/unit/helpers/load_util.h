/* Test helpers for checkpoints the tests write themselves: random values, float tensors,
 * loading one rank's shard through the normal loader, and expecting a load to fail with a
 * given message. */
#ifndef FOLIO_LOAD_UTIL_H
#define FOLIO_LOAD_UTIL_H

#include <stdint.h>

#include "model_config.h"
#include "st_writer.h"
#include "weights.h"

/* One xorshift64 step of *state: 32 random bits; test_rnd_unit: uniform in [-1, 1). */
uint32_t test_rnd(uint64_t *state);
float test_rnd_unit(uint64_t *state);

/* Adds a float32 tensor [rows][cols] (cols 0: [rows]), every value fill, or with fill 0
 * 0.1 * test_rnd_unit(state). */
void put_float_tensor(st_writer *w, uint64_t *state, const char *name, int rows, int cols,
                      float fill);

/* config.json and this rank's weights of DIR at (rank, world); -1 (error recorded) on failure,
 * nothing left to free. */
int load_rank_dir(const char *dir, int rank, int world, model_config *cfg, model_weights *w);

/* Loading DIR fails at some rank of world with a message holding every needle (a
 * NULL-terminated list of strings); else the test fails. */
void expect_load_fail_dir(const char *dir, int world, ...);

#endif
