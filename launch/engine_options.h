/* The engine options folio generate and folio serve share (KV block size and pool size, batch
 * caps, context length, prefix caching): their getopt entries, help text and parser. The
 * values land in the runtime's engine_options (rank_engine.h). */
#ifndef FOLIO_ENGINE_OPTIONS_H
#define FOLIO_ENGINE_OPTIONS_H

#include <getopt.h>

#include "rank_engine.h"

enum { OPT_KNOB_BLOCK_SIZE = 1100, OPT_KNOB_NUM_KV_BLOCKS, OPT_KNOB_MAX_NUM_SEQS,
       OPT_KNOB_MAX_BATCHED, OPT_KNOB_KV_MEMORY, OPT_KNOB_GPU_UTIL, OPT_KNOB_MAX_MODEL_LEN,
       OPT_KNOB_NO_PREFIX_CACHING };

#define ENGINE_KNOB_OPTIONS                                                   \
    {"block-size", required_argument, 0, OPT_KNOB_BLOCK_SIZE},                \
    {"num-kv-blocks", required_argument, 0, OPT_KNOB_NUM_KV_BLOCKS},          \
    {"max-num-seqs", required_argument, 0, OPT_KNOB_MAX_NUM_SEQS},            \
    {"max-num-batched-tokens", required_argument, 0, OPT_KNOB_MAX_BATCHED},   \
    {"kv-cache-memory", required_argument, 0, OPT_KNOB_KV_MEMORY},            \
    {"gpu-memory-utilization", required_argument, 0, OPT_KNOB_GPU_UTIL},      \
    {"max-model-len", required_argument, 0, OPT_KNOB_MAX_MODEL_LEN},          \
    {"no-prefix-caching", no_argument, 0, OPT_KNOB_NO_PREFIX_CACHING}

#define ENGINE_KNOBS_HELP                                                                     \
    "  --block-size N           KV cache block size in tokens (default 16)\n"                \
    "  --max-num-seqs N         sequences per step (default 256)\n"                          \
    "  --max-num-batched-tokens N  tokens per step; longer prompts are chunked (default 2048)\n" \
    "  --max-model-len N        longest context of one sequence (default: the model's)\n"    \
    "  --gpu-memory-utilization F  fraction of device (CPU: host) memory to use (default 0.90)\n" \
    "  --kv-cache-memory BYTES  KV cache size in bytes (overrides the fraction)\n"          \
    "  --num-kv-blocks N        KV cache size in blocks (overrides both)\n"                  \
    "  --no-prefix-caching      do not reuse the KV of shared prompt prefixes\n"

/* Handles an engine option id: 1 if handled, 0 if not an engine option, -1 with a message
 * naming the option and value. */
int engine_options_parse(engine_options *k, int id, const char *arg);
/* engine_options_parse for cli_next_option (knobs: the engine_options). */
int engine_options_take(void *knobs, int id, const char *arg);

#endif
