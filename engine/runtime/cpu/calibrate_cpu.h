/* The calibration forward of `folio quantize --method awq`: the float32 CPU forward of a whole
 * model (one rank) over a token sequence, every Linear's input handed to AWQ's statistics
 * (awq.h) through the forward's tap. */
#ifndef FOLIO_CALIBRATE_CPU_H
#define FOLIO_CALIBRATE_CPU_H

#include <stdbool.h>
#include <stdint.h>

#include "awq.h"
#include "comm.h"
#include "model.h"

/* Runs ids [n] through m in windows of `window` tokens, each a sequence of its own from
 * position 0 (window <= the model's context), adding every layer's Linear inputs to c (made
 * by awq_calib_init for n tokens). progress: a bar on stderr. 0, or -1 with a message. */
int calibrate_cpu(const model *m, comm_ctx *comm, const int32_t *ids, int n, int window,
                  awq_calib *c, bool progress);

#endif
