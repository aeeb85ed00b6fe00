/* Activation-aware weight quantization (AWQ, Lin et al. 2023), the arithmetic behind
 * `folio quantize --method awq`: statistics of every Linear's input over a calibration text,
 * the search of per-input-channel scales and of clipping ranges, and their folding into a
 * whole model's float32 weights. What runs the model over the text lives in the runtime
 * (calibrate_cpu.h); this file only sees the activations it is handed.
 *
 * The idea: a Linear y = x W^T computes the same as y = (x / s) (W diag(s))^T for any positive
 * per-input-channel s. Scaling up the columns that meet large activations makes their
 * quantization error relatively smaller, at the cost of the others; 1/s is folded into the
 * op that produces x, so the forward is unchanged and costs nothing. For each layer, four
 * groups of Linears share an input and a producing op:
 *
 *   group   Linears           their input                    1/s folded into
 *   qkv     q, k, v           attention norm output [hidden]  the attention RMSNorm weight
 *   o       o                 attention output [q_dim]        v's output rows (and bias)
 *   gate_up gate, up          MLP norm output [hidden]        the MLP RMSNorm weight
 *   down    down              silu(gate) * up [inter]         up's output rows (and bias)
 *
 * With grouped-query attention a row of v feeds the same channel of every query head of its
 * group, so o's scale is tied across those heads (its statistics averaged over them).
 * For each group, s = m^alpha / sqrt(max(m^alpha) * min(m^alpha)), m the mean |x| of each
 * channel over every calibration token (floored at 1e-4), alpha searched on a grid of n_grid
 * values in [0, 1): the alpha whose quantized Linears give the least output error
 *   sum over the group's Linears W of || X (W - Q(W diag(s)) diag(1/s))^T ||^2
 * on the sampled calibration inputs X, Q the RTN quantizer the checkpoint will use. alpha = 0
 * is s = 1, i.e. RTN, so on those inputs the chosen scales are never worse than RTN.
 * Then (clip) every Linear but q and k, scaled, gets per row and group the clipping range
 * [-c, c], c = max|w| * (1 - i / n_grid), i < n_grid / 2, that minimises that group's
 * contribution to the output error on the scaled inputs X / s (AutoAWQ's auto_clip; q and k
 * are left alone as there, their error passing through the softmax).
 * A group whose Linears the checkpoint keeps in float (rtn_fits false) is left unscaled. */
#ifndef FOLIO_AWQ_H
#define FOLIO_AWQ_H

#include <stdbool.h>
#include <stdint.h>

#include "dtype.h"
#include "model_config.h"
#include "quantize.h"
#include "weights.h"

/* ---- calibration statistics ---- */

typedef enum { AWQ_QKV, AWQ_O, AWQ_GATE_UP, AWQ_DOWN, AWQ_N_GROUPS } awq_group_kind;

/* One Linear input of one layer over the calibration run. */
typedef struct {
    int dim;
    double *abs_sum;             /* [dim] sum of |x| over every token seen */
    long long seen;              /* tokens seen */
    float *rows;                 /* [cap][dim] the sampled tokens' inputs */
    int n, cap;
} awq_act;

typedef struct {
    int n_layers;
    int stride;                  /* every stride-th token seen is sampled */
    awq_act *act;                /* [n_layers][AWQ_N_GROUPS] */
} awq_calib;

/* Statistics for cfg's layers (one rank, the whole model) over a run of n_tokens tokens, of
 * which at most max_samples, evenly spread, are kept for the searches. */
void awq_calib_init(awq_calib *c, const model_config *cfg, long long n_tokens, int max_samples);
/* Adds x [n][dim], the input of group g of layer `layer`, for n tokens in run order. */
void awq_calib_add(awq_calib *c, int layer, awq_group_kind g, const float *x, int n, int dim);
void awq_calib_free(awq_calib *c);

/* ---- the searches (exposed for tests) ---- */

/* Linears sharing one input. */
typedef struct {
    const float *x;              /* [n][in] sampled inputs */
    int n, in;
    const float *mag;            /* [in] mean |x| per channel (tied where s must be) */
    const float *const *w;       /* [n_w] weights, each [rows[i]][in] */
    const int *rows;
    int n_w;
} awq_linears;

typedef struct {
    float alpha;                 /* the exponent chosen */
    double err;                  /* output error with the chosen scales */
    double err_rtn;              /* output error of plain RTN (alpha 0) */
} awq_choice;

/* The scale search above: writes scale [in], fills *out. 0, or -1 with a message naming
 * `what` when a scale of the quantizer does not fit a half. */
int awq_search_scale(const awq_linears *g, const rtn_params *p, int n_grid, const char *what,
                     float *scale, awq_choice *out);

/* The clip search above on w [rows][in] (already scaled) with inputs x [n][in] (already
 * divided by the scale): clamps w in place. *err_before / *err_after: its output error
 * unclipped and clipped. 0, or -1 with a message naming `what`. */
int awq_search_clip(float *w, int rows, const float *x, int n, int in, const rtn_params *p,
                    int n_grid, const char *what, double *err_before, double *err_after);

/* ---- a whole model ---- */

typedef struct {
    rtn_params q;                /* the quantizer the checkpoint will use (group_size <= 0:
                                    per channel) */
    int n_grid;                  /* 20 */
    bool clip;
    folio_dtype dense_dtype;     /* the checkpoint's type for norms and dense tensors: folded
                                    norm weights are rounded to it and s compensated */
} awq_options;

typedef struct {
    int n_scaled;                /* groups scaled */
    int n_skipped;               /* groups left alone (kept in float) */
    int n_clipped;               /* Linears clip-searched */
    double err_rtn, err_awq;     /* output error over the scaled groups, RTN vs the chosen
                                    scales (before clipping) */
    float *alpha;                /* [n_layers][AWQ_N_GROUPS], -1 where skipped (malloc'd) */
} awq_report;

/* Searches and folds every layer's scales (and clipping, o->clip) into w in place: w must be
 * one rank's whole model (no tensor-parallel shard) in float32. On return, quantizing w's
 * Linears with o->q and running the result is AWQ's model. 0, or -1 with a message.
 * progress: a bar on stderr over the layers. */
int awq_apply(model_weights *w, const model_config *cfg, const awq_calib *c,
              const awq_options *o, bool progress, awq_report *rep);
void awq_report_free(awq_report *r);

#endif
