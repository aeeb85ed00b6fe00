/* RoPE tables: the inverse frequencies of every rope type the loader accepts (default,
 * linear, llama3, yarn), and the cos/sin tables [max_position][head_dim/2] built from them,
 * computed the way transformers does (frequencies in float32, angle = position * frequency
 * rounded to float32, yarn's attention factor folded into cos and sin). */
#ifndef FOLIO_ROPE_TABLES_H
#define FOLIO_ROPE_TABLES_H

#include "model_config.h"

/* inv_freq: [head_dim / 2]. */
void rope_inv_freq(const rope_config *rope, int head_dim, float *inv_freq);

/* cos_table, sin_table: [n_positions][head_dim / 2], caller-allocated. */
void rope_build_tables(const rope_config *rope, int head_dim, int n_positions, float *cos_table,
                       float *sin_table);

#endif
