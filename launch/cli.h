/* Command-line options shared by every subcommand (--model, --device, --dtype,
 * --load-format, --verbose) and small parsers for option values that name the option and the
 * value when they fail. */
#ifndef FOLIO_CLI_H
#define FOLIO_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "binding.h"
#include "comm.h"
#include "dtype.h"
#include "tokenizer.h"

typedef struct {
    const char *model_dir;
    device_kind device;
    bool dtype_auto;
    folio_dtype dtype;
    load_format load_format;
    int verbose;
    double gpu_memory_utilization; /* CUDA: fraction of GPU memory to use (0.90; set from the
                                      engine knob --gpu-memory-utilization where there is one) */
    bool enforce_eager;            /* --enforce-eager: CUDA, no CUDA graphs */
    bool allreduce_nccl;           /* --all-reduce nccl: no one-shot all-reduce */
    bool kv_fp8;                   /* --kv-cache-dtype fp8 (or fp8_e4m3) */
    bind_mode bind;              /* --bind auto|none */
    dummy_quant quant;           /* --quantization w4a16 [--group-size N] [--sym] (with
                                  * --load-format dummy: a dummy 4-bit model) */
    bool quant_option_given;     /* --group-size or --sym (without --quantization: an error) */
    long long tp_size;           /* --tensor-parallel-size N (vLLM's): must be the number of
                                  * ranks (0: not given) */
    const char *command;         /* the subcommand (argv[0] of cli_next_option), for messages */
    bool fp8_scheme_given;       /* --fp8-scheme (without --quantization fp8: an error) */
} common_options;

/* Option ids of the common options (above any subcommand's own ids). */
enum { OPT_MODEL = 1000, OPT_DEVICE, OPT_DTYPE, OPT_LOAD_FORMAT, OPT_VERBOSE, OPT_HELP, OPT_BIND,
       OPT_ENFORCE_EAGER, OPT_ALL_REDUCE, OPT_QUANTIZATION, OPT_GROUP_SIZE, OPT_SYM,
       OPT_KV_CACHE_DTYPE, OPT_TP_SIZE, OPT_FP8_SCHEME };

#define CLI_COMMON_OPTIONS                                         \
    {"model", required_argument, 0, OPT_MODEL},                    \
    {"device", required_argument, 0, OPT_DEVICE},                  \
    {"dtype", required_argument, 0, OPT_DTYPE},                    \
    {"load-format", required_argument, 0, OPT_LOAD_FORMAT},        \
    {"verbose", no_argument, 0, OPT_VERBOSE},                      \
    {"enforce-eager", no_argument, 0, OPT_ENFORCE_EAGER},          \
    {"all-reduce", required_argument, 0, OPT_ALL_REDUCE},          \
    {"bind", required_argument, 0, OPT_BIND},                      \
    {"quantization", required_argument, 0, OPT_QUANTIZATION},      \
    {"group-size", required_argument, 0, OPT_GROUP_SIZE},          \
    {"sym", no_argument, 0, OPT_SYM},                              \
    {"kv-cache-dtype", required_argument, 0, OPT_KV_CACHE_DTYPE},  \
    {"tensor-parallel-size", required_argument, 0, OPT_TP_SIZE},   \
    {"fp8-scheme", required_argument, 0, OPT_FP8_SCHEME},          \
    {"help", no_argument, 0, OPT_HELP}

#define CLI_COMMON_HELP                                                                   \
    "  --model DIR              Hugging Face model directory (config.json, *.safetensors)\n" \
    "  --device cpu|cuda        backend (default cpu)\n"                                    \
    "  --dtype auto|float32|bfloat16|float16   compute type (CPU: float32; CUDA auto: the\n" \
    "                           checkpoint's 16-bit type, bfloat16 for float32 files)\n"     \
    "  --enforce-eager          CUDA: no CUDA graphs for decode steps\n"                     \
    "  --all-reduce auto|nccl   CUDA under mpirun: one-shot all-reduce over NVLink peer memory\n" \
    "                           for decode steps, NCCL for the rest (auto), or NCCL only\n"   \
    "  --load-format auto|dummy weights from the files, or random with the config's shapes\n" \
    "  --quantization w4a16     with --load-format dummy: every layer's q/k/v/o/gate/up/down\n" \
    "                           weights random packed 4-bit (a checkpoint brings its own)\n" \
    "  --group-size N           with --quantization: inputs per scale and zero (default 128;\n" \
    "                           -1: per output channel)\n"                                 \
    "  --sym                    with --quantization: symmetric, every zero 8\n"          \
    "  --kv-cache-dtype auto|fp8  the KV cache in the compute type, or FP8 e4m3 with per-layer\n" \
    "                           scales (the checkpoint's k_scale/v_scale, else 1.0); CPU only\n" \
    "  --quantization fp8       with --load-format dummy: those weights random FP8 e4m3\n"  \
    "  --fp8-scheme channel|block  with --quantization fp8: per-channel scales, activations\n" \
    "                           per token (default); or 128x128 blocks, activations per 128\n" \
    "  --bind auto|none         bind each rank to the cores/NUMA node nearest its GPU (no GPU:\n" \
    "                           an equal share of the host's cores); default auto\n"          \
    "  --tensor-parallel-size N vLLM's flag: checked against the ranks of the job (Folio runs\n" \
    "                           one process per GPU: launch/folio-mpirun -np N folio ...)\n"  \
    "  --verbose                more detail on stderr (with it, each rank's placement)\n"

void common_options_init(common_options *o);

/* Handles a common option id. Returns 1 if handled, 0 if not a common option, -1 with a
 * message for a bad value. */
int cli_common_option(common_options *o, int id, const char *arg);

/* getopt_long's next option that the command handles itself (set optind and opterr first):
 * the common options and, where more is not NULL, those more takes (1 taken, 0 not, -1 bad)
 * are handled here. The option's id, -1 at the end, or CLI_OPTION_FAILED with a message (an
 * unknown option: cli_unknown_option's). */
#define CLI_OPTION_FAILED (-2)
int cli_next_option(int argc, char **argv, const struct option *longopts, common_options *co,
                    int (*more)(void *ctx, int id, const char *arg), void *ctx);

/* Starts a model-running rank, before the model loads (a collective: every rank calls it):
 * checks --tensor-parallel-size against the ranks, binds it (--bind; prints the placement with --verbose), exchanges the ranks' host names and
 * watchdog status ports, and starts the step watchdog (step_watchdog.h). 0, or -1 with a
 * message. cli_stop_rank() undoes what it can. */
int cli_start_rank(const common_options *o, comm_ctx *comm);
void cli_stop_rank(void);

/* The tokenizer's special tokens (tokenizer_config.json's bos_token / eos_token) are inside
 * the model's vocabulary (config.json's vocab_size). tok NULL: nothing to check. 0, or -1 with
 * a message naming the file, field, token and id. */
int cli_check_tokenizer(const tokenizer *tok, const model_config *cfg, const char *dir);

/* Checks what every model-running command needs (a --model, a supported device/dtype). */
int cli_common_check(const common_options *o, const char *command);

/* The device_model_open() options (backend.h) the common options ask for. */
device_options cli_device_options(const common_options *o);

int cli_parse_int(const char *option, const char *arg, long long min, long long max,
                  long long *out);
int cli_parse_float(const char *option, const char *arg, double min, double max, double *out);

/* Parses "1,2,3" into a malloc'd array; the caller frees *ids. */
int cli_parse_ids(const char *option, const char *arg, int32_t **ids, int *n);

/* The error for the option getopt_long just refused (argv[optind - 1]) in longopts, the
 * subcommand's table: a missing value, an ambiguous abbreviation (its candidates), or an
 * unknown option with the closest one of the table ("did you mean --max-model-len?"). Always
 * -1. Every subcommand's unknown options go through here. */
int cli_unknown_option(const char *command, char **argv, const struct option *longopts);
/* The name of longopts closest to name (edit distance, or name a prefix of it / it a prefix of
 * name), or NULL when none is close. */
const char *cli_closest_option(const struct option *longopts, const char *name);
/* cli_unknown_option without a table (no suggestion). */
int cli_bad_option(const char *command, char **argv);

#endif
