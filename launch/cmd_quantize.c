/* folio quantize: a float Hugging Face checkpoint into a compressed-tensors pack-quantized
 * one (weight-only RTN, engine/model/quantize_model.h).
 *   folio quantize --model DIR --out DIR [--group-size 128] [--sym | --asym] [--method rtn]
 *                  [--bits 4] [--max-shard-size 5GB] */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "commands.h"
#include "error.h"
#include "progress.h"
#include "quantize_model.h"

enum { Q_MODEL = 1, Q_OUT, Q_GROUP, Q_SYM, Q_ASYM, Q_METHOD, Q_BITS, Q_SHARD, Q_HELP };

static const char QUANTIZE_HELP[] =
    "usage: folio quantize --model DIR --out DIR [options]\n"
    "  --model DIR             float checkpoint (config.json, *.safetensors)\n"
    "  --out DIR               output directory (created; must be new or empty)\n"
    "  --group-size N          input columns per scale (default 128; -1: per output channel)\n"
    "  --sym | --asym          symmetric (zero 2^(bits-1), default) or with a zero point\n"
    "  --method rtn            round to nearest (the only method so far)\n"
    "  --bits 4|8              bits per weight (default 4)\n"
    "  --max-shard-size SIZE   safetensors file size limit, e.g. 5GB (default), 500MB\n"
    "writes a compressed-tensors pack-quantized checkpoint: q/k/v/o/gate/up/down projection\n"
    "weights quantized, everything else (embeddings, norms, lm_head) copied unchanged\n";

/* "5GB", "500MB", "64KiB", "1000" -> bytes. */
static int parse_size(const char *arg, uint64_t *out) {
    static const struct { const char *suffix; double mult; } UNITS[] = {
        {"", 1}, {"B", 1}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
        {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}};
    char *end;
    double v = strtod(arg, &end);
    for (size_t i = 0; end != arg && v > 0 && i < sizeof UNITS / sizeof UNITS[0]; i++)
        if (strcasecmp(end, UNITS[i].suffix) == 0) {
            *out = (uint64_t)(v * UNITS[i].mult);
            return 0;
        }
    return folio_fail("--max-shard-size: expected a size such as 5GB or 500MB, found '%s'", arg);
}

static int parse_option(int c, const char *arg, quantize_options *o) {
    long long v;
    switch (c) {
    case Q_MODEL: o->model_dir = arg; return 0;
    case Q_OUT: o->out_dir = arg; return 0;
    case Q_SYM: o->sym = true; return 0;
    case Q_ASYM: o->sym = false; return 0;
    case Q_SHARD: return parse_size(arg, &o->max_shard_bytes);
    case Q_GROUP:
        if (cli_parse_int("--group-size", arg, -1, 1 << 20, &v) != 0) return -1;
        if (v == 0) return folio_fail("--group-size: expected a positive size or -1, found 0");
        o->group_size = (int)v;
        return 0;
    case Q_BITS:
        if (cli_parse_int("--bits", arg, 1, 64, &v) != 0) return -1;
        if (v != 4 && v != 8) return folio_fail("--bits: 4 or 8 are supported, found %lld", v);
        o->bits = (int)v;
        return 0;
    case Q_METHOD:
        if (strcmp(arg, "rtn") == 0) return 0;
        if (strcmp(arg, "awq") == 0 || strcmp(arg, "gptq") == 0)
            return folio_fail("--method %s: not yet supported (calibrated quantization is "
                              "planned; use --method rtn)", arg);
        return folio_fail("--method: unknown method '%s' (rtn)", arg);
    default: return 1;
    }
}

static void print_report(const quantize_options *o, const quantize_report *r, double secs) {
    char in[32], out[32];
    printf("quantized %d matrices to %d bits (%s, %s), copied %d tensors: %s -> %s in %d "
           "file(s), %.1f s\n", r->n_quantized, o->bits, o->sym ? "symmetric" : "asymmetric",
           o->group_size > 0 ? "grouped" : "per channel", r->n_copied,
           format_bytes((double)r->in_bytes, in, sizeof in),
           format_bytes((double)r->out_bytes, out, sizeof out), r->n_files, secs);
    if (r->n_kept)
        printf("kept %d matrices in float (input size not a multiple of the group size %d and "
               "of %d), e.g. %s; they are in the config's ignore list\n", r->n_kept,
               o->group_size, 32 / o->bits, r->first_kept);
    printf("wrote %s\n", o->out_dir);
}

int cmd_quantize(int argc, char **argv, comm_ctx *comm) {
    static const struct option opts[] = {
        {"model", required_argument, 0, Q_MODEL}, {"out", required_argument, 0, Q_OUT},
        {"group-size", required_argument, 0, Q_GROUP}, {"sym", no_argument, 0, Q_SYM},
        {"asym", no_argument, 0, Q_ASYM}, {"method", required_argument, 0, Q_METHOD},
        {"bits", required_argument, 0, Q_BITS},
        {"max-shard-size", required_argument, 0, Q_SHARD}, {"help", no_argument, 0, Q_HELP},
        {0, 0, 0, 0}};
    quantize_options o = {.bits = 4, .group_size = 128, .sym = true,
                          .max_shard_bytes = 5000000000ull, .progress = true};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == Q_HELP) {
            fputs(QUANTIZE_HELP, stdout);
            return 0;
        }
        int r = c == '?' ? 1 : parse_option(c, optarg, &o);
        if (r < 0) return -1;
        if (r == 1) return cli_bad_option("quantize", argv);
    }
    if (!o.model_dir || !o.out_dir) return folio_fail("quantize: --model DIR and --out DIR are required");
    if (comm->world > 1) return folio_fail("quantize: runs on one process (not under mpirun)");
    quantize_report rep;
    double t0 = folio_now();
    if (quantize_model(&o, &rep) != 0) return -1;
    print_report(&o, &rep, folio_now() - t0);
    return 0;
}
