/* A model opened on this rank: its config, its shard plan and (for the CPU backend) its
 * float32 weights on the host. Knows nothing of devices: a device that keeps its own copy of
 * the weights (engine/runtime) opens the config alone and loads them itself. Prints progress
 * and a one-line summary on rank 0. */
#ifndef FOLIO_MODEL_H
#define FOLIO_MODEL_H

#include "model_config.h"
#include "shard.h"
#include "weights.h"

typedef struct {
    model_config cfg;
    shard_plan shard;
    model_weights weights;       /* host float32 weights (empty after model_open_config) */
} model;

/* The config and this rank's shard plan (rank of world). dq (NULL: none) with dq->w4a16
 * (--quantization w4a16, with --load-format dummy) makes it a dummy 4-bit model: cfg.quant
 * becomes quant_config_dummy's (method QUANT_DUMMY, the mark every loader reads), and every
 * quantized layer's shard is checked (quant_dummy_check: a group size that does not divide
 * a layer's inputs or this rank's slice of them fails here, naming the layer). -1 with a
 * message, *m empty. */
int model_open_config(const char *dir, const dummy_quant *dq, int rank, int world, model *m);

/* model_open_config, then the host float32 weights of this rank's shard (a dummy 4-bit model's
 * Linear weights dequantized). dq->w4a16 without format LOAD_DUMMY is an error. On failure
 * returns -1 with a message and leaves *m empty. */
int model_open(const char *dir, load_format format, const dummy_quant *dq, int rank, int world,
               int verbose, model *m);
void model_close(model *m);

#endif
