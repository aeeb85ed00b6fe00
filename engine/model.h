/* A model opened on this rank: its config, its shard plan and its weights. model_open() is
 * the one path every command takes to get a model (files or dummy), printing progress and a
 * one-line summary on rank 0. */
#ifndef FOLIO_MODEL_H
#define FOLIO_MODEL_H

#include "comm.h"
#include "model_config.h"
#include "shard.h"
#include "weights.h"

typedef struct {
    model_config cfg;
    shard_plan shard;
    model_weights weights;
} model;

/* Opens DIR on this rank. On failure returns -1 with a message and leaves *m empty. */
int model_open(const char *dir, load_format format, comm_ctx *comm, int verbose, model *m);
void model_close(model *m);

#endif
