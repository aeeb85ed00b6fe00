/* Tensor-parallel sharding: which heads, FFN columns and vocabulary rows a rank holds. */
#include "error.h"
#include "shard.h"

int shard_plan_make(const model_config *cfg, int rank, int world, shard_plan *out) {
    if (world < 1 || rank < 0 || rank >= world)
        return folio_fail("shard: rank %d of world size %d is not valid", rank, world);
    if (cfg->n_heads % world != 0)
        return folio_fail("tensor parallelism: num_attention_heads %d does not divide by %d "
                          "ranks", cfg->n_heads, world);
    if (cfg->intermediate % world != 0)
        return folio_fail("tensor parallelism: intermediate_size %d does not divide by %d "
                          "ranks", cfg->intermediate, world);
    if (cfg->n_kv_heads % world != 0 && world % cfg->n_kv_heads != 0)
        return folio_fail("tensor parallelism: num_key_value_heads %d neither divides nor is "
                          "divided by %d ranks", cfg->n_kv_heads, world);
    shard_plan s = {.rank = rank, .world = world};
    s.n_heads = cfg->n_heads / world;
    s.head_start = rank * s.n_heads;
    if (cfg->n_kv_heads >= world) {
        s.n_kv_heads = cfg->n_kv_heads / world;
        s.kv_head_start = rank * s.n_kv_heads;
    } else {
        /* Fewer KV heads than ranks: each KV head is replicated on world / n_kv ranks; this
         * rank's query heads all use the KV head of the group they fall in. */
        s.n_kv_heads = 1;
        s.kv_head_start = s.head_start / (cfg->n_heads / cfg->n_kv_heads);
    }
    s.intermediate = cfg->intermediate / world;
    s.inter_start = rank * s.intermediate;
    s.vocab_shard = (cfg->vocab + world - 1) / world;
    s.vocab_start = rank * s.vocab_shard;
    int left = cfg->vocab - s.vocab_start;
    s.vocab = left < 0 ? 0 : (left < s.vocab_shard ? left : s.vocab_shard);
    *out = s;
    return 0;
}
