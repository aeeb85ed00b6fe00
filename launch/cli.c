/* Common command-line options and value parsers that name the option and the value. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "error.h"
#include "grow.h"
#include "kv_capacity.h"
#include "model.h"
#include "step_watchdog.h"

void common_options_init(common_options *o) {
    memset(o, 0, sizeof *o);
    o->device = DEVICE_CPU;
    o->dtype_auto = true;
    o->dtype = DTYPE_F32;
    o->load_format = LOAD_AUTO;
    o->gpu_memory_utilization = FOLIO_DEFAULT_MEMORY_UTILIZATION;
    o->bind = BIND_AUTO;
    o->quant.group_size = DUMMY_QUANT_GROUP_DEFAULT;
}

int cli_common_option(common_options *o, int id, const char *arg) {
    switch (id) {
    case OPT_MODEL: o->model_dir = arg; return 1;
    case OPT_VERBOSE: o->verbose++; return 1;
    case OPT_DEVICE:
        if (strcmp(arg, "cpu") == 0) o->device = DEVICE_CPU;
        else if (strcmp(arg, "cuda") == 0) o->device = DEVICE_CUDA;
        else return folio_fail("--device: unknown device '%s' (expected cpu or cuda)", arg);
        return 1;
    case OPT_DTYPE:
        if (strcmp(arg, "auto") == 0) {
            o->dtype_auto = true;
            return 1;
        }
        if (dtype_parse(arg, &o->dtype) != 0)
            return folio_fail("--dtype: unknown type '%s' (expected auto, float32, bfloat16 or "
                              "float16)", arg);
        o->dtype_auto = false;
        return 1;
    case OPT_ENFORCE_EAGER: o->enforce_eager = true; return 1;
    case OPT_ALL_REDUCE:
        if (strcmp(arg, "auto") == 0) o->allreduce_nccl = false;
        else if (strcmp(arg, "nccl") == 0) o->allreduce_nccl = true;
        else return folio_fail("--all-reduce: unknown mode '%s' (expected auto or nccl)", arg);
        return 1;
    case OPT_BIND:
        if (strcmp(arg, "auto") == 0) o->bind = BIND_AUTO;
        else if (strcmp(arg, "none") == 0) o->bind = BIND_NONE;
        else return folio_fail("--bind: unknown mode '%s' (expected auto or none)", arg);
        return 1;
    case OPT_QUANTIZATION:
        if (strcasecmp(arg, "fp8") == 0) return o->quant.fp8 = true, 1;
        if (strcasecmp(arg, "w4a16") != 0)
            return folio_fail("--quantization: '%s' is not supported (accepted: w4a16 or fp8, "
                              "with --load-format dummy)", arg);
        o->quant.w4a16 = true;
        return 1;
    case OPT_FP8_SCHEME:
        if (strcmp(arg, "channel") != 0 && strcmp(arg, "block") != 0)
            return folio_fail("--fp8-scheme: unknown scheme '%s' (expected channel or block)",
                              arg);
        o->quant.fp8_block = strcmp(arg, "block") == 0;
        o->fp8_scheme_given = true;
        return 1;
    case OPT_GROUP_SIZE: {
        long long g = 0;
        if (cli_parse_int("--group-size", arg, -1, 1 << 24, &g) != 0) return -1;
        o->quant.group_size = g > 0 ? (int)g : -1;
        o->quant_option_given = true;
        return 1;
    }
    case OPT_SYM:
        o->quant.sym = true;
        o->quant_option_given = true;
        return 1;
    case OPT_LOAD_FORMAT:
        if (strcmp(arg, "auto") == 0) o->load_format = LOAD_AUTO;
        else if (strcmp(arg, "dummy") == 0) o->load_format = LOAD_DUMMY;
        else return folio_fail("--load-format: unknown format '%s' (expected auto or dummy)", arg);
        return 1;
    default: return 0;
    }
}

int cli_common_check(const common_options *o, const char *command) {
    if (!o->model_dir) return folio_fail("%s: --model DIR is required", command);
    if (o->quant_option_given && !o->quant.w4a16)
        return folio_fail("%s: --group-size and --sym go with --quantization w4a16", command);
    if (o->fp8_scheme_given && !o->quant.fp8)
        return folio_fail("%s: --fp8-scheme goes with --quantization fp8", command);
    if ((o->quant.w4a16 || o->quant.fp8) && o->load_format != LOAD_DUMMY)
        return folio_fail("%s: --quantization %s needs --load-format dummy (it draws random "
                          "quantized weights; a quantized checkpoint brings its own "
                          "quantization_config)", command, o->quant.fp8 ? "fp8" : "w4a16");
    if (o->device == DEVICE_CPU && !o->dtype_auto && o->dtype != DTYPE_F32)
        return folio_fail("%s: --dtype %s: the CPU backend computes in float32 only; use "
                          "--dtype auto or float32", command, dtype_name(o->dtype));
    return 0;
}

device_options cli_device_options(const common_options *o) {
    return (device_options){.device = o->device, .format = o->load_format, .quant = o->quant,
                            .dtype_auto = o->dtype_auto, .dtype = o->dtype,
                            .enforce_eager = o->enforce_eager,
                            .allreduce_nccl = o->allreduce_nccl, .verbose = o->verbose};
}

int cli_start_rank(const common_options *o, comm_ctx *comm) {
    if (bind_rank(comm, o->bind, o->verbose) != 0) return -1;
    /* every rank's host and watchdog status port, so a stalled rank can ask the others */
    probe_peer me = {.port = 0};
    snprintf(me.host, sizeof me.host, "%s", comm->host);
    if (step_watchdog_prepare(comm->world, &me.port) != 0) return -1;
    probe_peer *peers = folio_xcalloc((size_t)comm->world, sizeof *peers);
    int rc = comm_allgather(comm, &me, sizeof me, peers);
    if (rc == 0) rc = step_watchdog_start(comm->rank, comm->world, peers);
    free(peers);
    return rc;
}

void cli_stop_rank(void) { step_watchdog_stop(); }

int cli_check_tokenizer(const tokenizer *tok, const model_config *cfg, const char *dir) {
    if (!tok) return 0;
    const struct {
        const char *field;
        int32_t id;
    } special[] = {{"bos_token", tokenizer_bos_id(tok)}, {"eos_token", tokenizer_eos_id(tok)}};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) {
        const int32_t id = special[i].id;
        if (id < cfg->vocab) continue;
        const char *text = tokenizer_token_text(tok, id);
        return folio_fail("%s/tokenizer_config.json: field '%s': \"%.60s\" is token %d of "
                          "tokenizer.json, outside the model's vocabulary (vocab_size %d in "
                          "config.json)", dir, special[i].field, text ? text : "?", id,
                          cfg->vocab);
    }
    return 0;
}

int cli_parse_int(const char *option, const char *arg, long long min, long long max,
                  long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    if (errno || end == arg || *end != '\0')
        return folio_fail("%s: '%s' is not an integer", option, arg);
    if (v < min || v > max)
        return folio_fail("%s: %lld is out of range [%lld, %lld]", option, v, min, max);
    *out = v;
    return 0;
}

int cli_parse_float(const char *option, const char *arg, double min, double max, double *out) {
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (errno || end == arg || *end != '\0')
        return folio_fail("%s: '%s' is not a number", option, arg);
    if (!(v >= min && v <= max))
        return folio_fail("%s: %g is out of range [%g, %g]", option, v, min, max);
    *out = v;
    return 0;
}

int cli_parse_ids(const char *option, const char *arg, int32_t **ids, int *n) {
    int cap = 16, count = 0;
    int32_t *out = folio_xmalloc(sizeof *out * cap);
    const char *p = arg;
    while (*p) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (errno || end == p || v < 0 || v > INT32_MAX || (*end != ',' && *end != '\0')) {
            free(out);
            return folio_fail("%s: '%s' is not a comma-separated list of token ids (at "
                              "character %d)", option, arg, (int)(p - arg) + 1);
        }
        FOLIO_GROW(out, cap, count + 1);
        out[count++] = (int32_t)v;
        p = *end ? end + 1 : end;
    }
    if (count == 0) {
        free(out);
        return folio_fail("%s: empty list of token ids", option);
    }
    *ids = out;
    *n = count;
    return 0;
}

int cli_bad_option(const char *command, char **argv) {
    extern int optind;
    const char *arg = argv[optind - 1];
    return folio_fail("%s: unknown option or missing value: '%s' (see folio %s --help)",
                      command, arg ? arg : "?", command);
}

int cli_next_option(int argc, char **argv, const struct option *longopts, common_options *co,
                    int (*more)(void *ctx, int id, const char *arg), void *ctx) {
    int id;
    while ((id = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        int rc = cli_common_option(co, id, optarg);
        if (rc == 0 && more) rc = more(ctx, id, optarg);
        if (rc < 0) return CLI_OPTION_FAILED;
        if (rc == 0) return id;
    }
    return -1;
}
