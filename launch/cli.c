/* Common command-line options and value parsers that name the option and the value. */
#include <errno.h>
#include <stdbool.h>
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
    case OPT_KV_CACHE_DTYPE:
        if (strcmp(arg, "auto") == 0) o->kv_fp8 = false;
        else if (strcmp(arg, "fp8") == 0 || strcmp(arg, "fp8_e4m3") == 0) o->kv_fp8 = true;
        else
            return folio_fail("--kv-cache-dtype: '%s' is not supported (accepted: auto, fp8, "
                              "fp8_e4m3)", arg);
        return 1;
    case OPT_TP_SIZE:
        return cli_parse_int("--tensor-parallel-size", arg, 1, 1 << 16, &o->tp_size) ? -1 : 1;
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
                            .allreduce_nccl = o->allreduce_nccl, .kv_fp8 = o->kv_fp8,
                            .verbose = o->verbose};
}

int cli_start_rank(const common_options *o, comm_ctx *comm) {
    if (o->tp_size && o->tp_size != comm->world) {
        const char *cmd = o->command ? o->command : "COMMAND";
        return folio_fail("--tensor-parallel-size %lld, but this job has %d rank%s: Folio runs "
                          "one process per GPU, each holding its slice; start %lld of them "
                          "(launch/folio-mpirun -np %lld folio %s ..., or mpirun -np %lld / "
                          "srun -n %lld), and --tensor-parallel-size may then be left out",
                          o->tp_size, comm->world, comm->world == 1 ? "" : "s", o->tp_size,
                          o->tp_size, cmd, o->tp_size, o->tp_size);
    }
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

/* Edit distance of a[0..na) and b[0..nb) (insertions, deletions, substitutions and swaps of
 * two neighbours, each 1), or more than cap when it is. */
static int edit_distance(const char *a, size_t na, const char *b, size_t nb, int cap) {
    enum { MAX = 64 };
    if (na > MAX || nb > MAX) return cap + 1;
    int d[MAX + 1][MAX + 1];
    for (size_t i = 0; i <= na; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= nb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= na; i++)
        for (size_t j = 1; j <= nb; j++) {
            int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[na][nb];
}

/* The option name of arg ("--name=value" -> "name", length in *n); NULL when arg is not a
 * long option. */
static const char *option_name(const char *arg, size_t *n) {
    if (!arg || strncmp(arg, "--", 2) != 0 || !arg[2]) return NULL;
    const char *name = arg + 2, *eq = strchr(name, '=');
    *n = eq ? (size_t)(eq - name) : strlen(name);
    return name;
}

/* Close: within a third of the name's length (at least 2), or one name a prefix of the other
 * (4 characters at least: "--port-number" -> --port). */
const char *cli_closest_option(const struct option *longopts, const char *name) {
    const size_t n = strlen(name);
    const int cap = n / 3 > 2 ? (int)(n / 3) : 2;
    const char *best = NULL;
    int best_d = 1 << 30;
    for (const struct option *o = longopts; o && o->name; o++) {
        const size_t m = strlen(o->name), shorter = m < n ? m : n;
        int d = edit_distance(name, n, o->name, m, 1 << 20);
        bool prefix = shorter >= 4 && strncmp(name, o->name, shorter) == 0;
        if ((d <= cap || prefix) && d < best_d) {
            best = o->name;
            best_d = d;
        }
    }
    return best;
}

int cli_unknown_option(const char *command, char **argv, const struct option *longopts) {
    extern int optind;
    const char *arg = optind > 0 ? argv[optind - 1] : NULL;
    size_t n = 0;
    const char *name = option_name(arg, &n);
    if (!name || !longopts)
        return folio_fail("%s: unknown option or missing value: '%s' (see folio %s --help)",
                          command, arg ? arg : "?", command);
    char typed[128];
    snprintf(typed, sizeof typed, "%.*s", (int)(n < 100 ? n : 100), name);
    const bool has_value = name[n] == '=';
    int prefixed = 0;
    char candidates[256] = "";
    for (const struct option *o = longopts; o->name; o++) {
        if (strcmp(o->name, typed) == 0) {
            if (o->has_arg == required_argument && !has_value)
                return folio_fail("%s: option '--%s' needs a value (see folio %s --help)",
                                  command, typed, command);
            if (o->has_arg == no_argument && has_value)
                return folio_fail("%s: option '--%s' takes no value (see folio %s --help)",
                                  command, typed, command);
        }
        if (strncmp(o->name, typed, strlen(typed)) == 0) {
            size_t used = strlen(candidates);
            snprintf(candidates + used, sizeof candidates - used, "%s--%s",
                     prefixed ? " or " : "", o->name);
            prefixed++;
        }
    }
    if (prefixed > 1)
        return folio_fail("%s: option '--%s' is ambiguous: %s? (see folio %s --help)", command,
                          typed, candidates, command);
    const char *close = cli_closest_option(longopts, typed);
    if (close)
        return folio_fail("%s: unknown option '--%s': did you mean --%s? (see folio %s --help)",
                          command, typed, close, command);
    return folio_fail("%s: unknown option '--%s' (see folio %s --help)", command, typed,
                      command);
}

int cli_bad_option(const char *command, char **argv) {
    return cli_unknown_option(command, argv, NULL);
}

int cli_next_option(int argc, char **argv, const struct option *longopts, common_options *co,
                    int (*more)(void *ctx, int id, const char *arg), void *ctx) {
    int id;
    if (!co->command) co->command = argv[0];
    opterr = 0; /* unknown options: cli_unknown_option's message, not getopt's */
    while ((id = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (id == '?') {
            cli_unknown_option(co->command, argv, longopts);
            return CLI_OPTION_FAILED;
        }
        int rc = cli_common_option(co, id, optarg);
        if (rc == 0 && more) rc = more(ctx, id, optarg);
        if (rc < 0) return CLI_OPTION_FAILED;
        if (rc == 0) return id;
    }
    return -1;
}
