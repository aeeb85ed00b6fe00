/* Tensor-parallel sharding, decided once: for a (rank, world) pair, which query heads, KV
 * heads, FFN columns and vocabulary rows this rank holds (Megatron-style). Used by the loader,
 * the forward and the KV pool so they always agree. */
#ifndef FOLIO_SHARD_H
#define FOLIO_SHARD_H

#include "model_config.h"

typedef struct {
    int rank, world;
    int n_heads;          /* query heads held here: n_heads / world */
    int head_start;       /* first query head */
    int n_kv_heads;       /* KV heads held here: n_kv / world, or 1 when replicated */
    int kv_head_start;    /* first KV head (replicated: the one this rank's query heads use) */
    int intermediate;     /* FFN columns held here */
    int inter_start;
    int vocab_shard;      /* ceil(vocab / world): rows per rank, the last may hold fewer */
    int vocab_start;      /* first vocabulary row held here */
    int vocab;            /* rows actually held: min(vocab_shard, vocab - vocab_start) */
} shard_plan;

/* Fails (-1, message naming the dimension and the world size) when heads or the FFN size do
 * not divide by world, or KV heads neither divide nor are divided by it. */
int shard_plan_make(const model_config *cfg, int rank, int world, shard_plan *out);

#endif
