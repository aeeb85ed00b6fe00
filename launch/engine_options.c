/* Parsing the engine options of folio generate and folio serve (engine_options.h). */
#include <stdint.h>

#include "cli.h"
#include "engine_options.h"

int engine_options_parse(engine_options *k, int id, const char *arg) {
    switch (id) {
    case OPT_KNOB_BLOCK_SIZE:
        return cli_parse_int("--block-size", arg, 1, 1024, &k->block_size) ? -1 : 1;
    case OPT_KNOB_NUM_KV_BLOCKS:
        return cli_parse_int("--num-kv-blocks", arg, 1, 1 << 30, &k->num_kv_blocks) ? -1 : 1;
    case OPT_KNOB_MAX_NUM_SEQS:
        return cli_parse_int("--max-num-seqs", arg, 1, 1 << 20, &k->max_num_seqs) ? -1 : 1;
    case OPT_KNOB_MAX_BATCHED:
        return cli_parse_int("--max-num-batched-tokens", arg, 1, 1 << 24, &k->max_batched) ? -1 : 1;
    case OPT_KNOB_KV_MEMORY:
        return cli_parse_int("--kv-cache-memory", arg, 1, INT64_MAX, &k->kv_memory) ? -1 : 1;
    case OPT_KNOB_GPU_UTIL:
        return cli_parse_float("--gpu-memory-utilization", arg, 1e-6, 1, &k->gpu_util) ? -1 : 1;
    case OPT_KNOB_MAX_MODEL_LEN:
        return cli_parse_int("--max-model-len", arg, 1, 1 << 30, &k->max_model_len) ? -1 : 1;
    case OPT_KNOB_NO_PREFIX_CACHING: k->no_prefix_caching = true; return 1;
    default: return 0;
    }
}

int engine_options_take(void *knobs, int id, const char *arg) {
    return engine_options_parse(knobs, id, arg);
}
