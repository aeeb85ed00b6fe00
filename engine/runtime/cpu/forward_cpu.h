/* The float32 CPU reference forward: runs one step plan through the model on this rank,
 * writing new K/V into the paged cache and returning full-vocabulary logits for the rows the
 * plan asks for. It is the numerical reference for every later kernel. */
#ifndef FOLIO_FORWARD_CPU_H
#define FOLIO_FORWARD_CPU_H

#include "comm.h"
#include "kv_cache.h"
#include "model_config.h"
#include "step_plan.h"
#include "weights.h"

typedef struct forward_cpu forward_cpu;

/* Creates the workspace for steps of up to max_tokens new tokens and max_logits logits rows,
 * and the rope tables for positions 0 .. n_positions - 1 (the context in use, --max-model-len,
 * not the model's max_position_embeddings). The caller owns it. */
forward_cpu *forward_cpu_create(const model_config *cfg, const model_weights *w, comm_ctx *comm,
                                int max_tokens, int max_logits, int n_positions);
void forward_cpu_free(forward_cpu *f);

/* The inputs of a layer's Linears, as a tap sees them (x [n_tokens][dim], this rank's part):
 *   FWD_TAP_ATTN_IN  the attention norm's output, q/k/v's input        [hidden]
 *   FWD_TAP_O_IN     the attention output, o_proj's input              [n_heads_local * head_dim]
 *   FWD_TAP_MLP_IN   the MLP norm's output, gate/up's input            [hidden]
 *   FWD_TAP_DOWN_IN  silu(gate) * up, down_proj's input                [inter_local] */
typedef enum { FWD_TAP_ATTN_IN, FWD_TAP_O_IN, FWD_TAP_MLP_IN, FWD_TAP_DOWN_IN } forward_tap;
typedef void (*forward_tap_fn)(void *user, int layer, forward_tap tap, const float *x,
                               int n_tokens, int dim);

/* Calls fn with every Linear input of every layer in the steps that follow (NULL: none), for
 * calibration (folio quantize --method awq). */
void forward_cpu_set_tap(forward_cpu *f, forward_tap_fn fn, void *user);

/* Runs one step. logits: [plan->n_logits][cfg->vocab], complete on every rank (the LM head is
 * vocab-parallel; shards are gathered). Returns 0, or -1 with a message. */
int forward_cpu_step(forward_cpu *f, kv_cache *kv, const step_plan *plan, float *logits);

#endif
