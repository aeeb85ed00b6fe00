/* folio quantize: a float Hugging Face checkpoint into a compressed-tensors pack-quantized
 * one (weight-only, engine/model/quantize_model.h): round to nearest, or AWQ (awq.h) with
 * scales searched on Folio's own CPU forward over a calibration text (calibrate_cpu.h); or
 * (--format fp8) an FP8 e4m3 one (quantize_fp8.h).
 *   folio quantize --model DIR --out DIR [--group-size 128] [--sym | --asym]
 *                  [--method rtn | awq [--calibration FILE.txt] [--no-clip]]
 *                  [--bits 4] [--max-shard-size 5GB]
 *   folio quantize --model DIR --out DIR --format fp8 [--scheme dynamic | block] */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "awq.h"
#include "calibrate_cpu.h"
#include "cli.h"
#include "commands.h"
#include "error.h"
#include "model.h"
#include "progress.h"
#include "quantize_model.h"
#include "tokenizer.h"

#include "calibration_text.h" /* DEFAULT_CALIBRATION_TEXT: configs/calibration/stories.txt */

enum { Q_MODEL = 1, Q_OUT, Q_GROUP, Q_SYM, Q_ASYM, Q_METHOD, Q_BITS, Q_SHARD, Q_CALIBRATION,
       Q_NO_CLIP, Q_SAMPLES, Q_VERBOSE, Q_FORMAT, Q_SCHEME, Q_HELP };

/* AWQ's settings beside quantize_options. */
typedef struct {
    bool awq;
    const char *calibration;     /* a text file, or NULL: the built-in text */
    bool clip;
    int samples;                 /* calibration tokens kept for the searches */
    bool verbose;
    const char *awq_only;        /* an option given that only --method awq takes, or NULL */
    const char *int_only;        /* an option given that only the int format takes, or NULL */
    bool scheme_given;           /* --scheme (only with --format fp8) */
} awq_cli;

/* Calibration windows: the model's context, at most this many tokens (AutoAWQ's 512). */
#define AWQ_WINDOW 512

static const char QUANTIZE_HELP[] =
    "usage: folio quantize --model DIR --out DIR [options]\n"
    "  --model DIR             float checkpoint (config.json, *.safetensors)\n"
    "  --out DIR               output directory (created; must be new or empty)\n"
    "  --group-size N          input columns per scale (default 128; -1: per output channel)\n"
    "  --sym | --asym          symmetric (zero 2^(bits-1), default) or with a zero point\n"
    "  --method rtn|awq        round to nearest (default), or activation-aware (AWQ): per-channel\n"
    "                          scales searched on a calibration run and folded into the norms\n"
    "  --calibration FILE      AWQ: the calibration text (default: a built-in few KB of short\n"
    "                          stories, configs/calibration/stories.txt)\n"
    "  --calibration-samples N AWQ: calibration tokens the searches use (default 512)\n"
    "  --no-clip               AWQ: scales only, no clipping search\n"
    "  --verbose               AWQ: the exponent chosen for every layer and group\n"
    "  --bits 4|8              bits per weight (default 4)\n"
    "  --max-shard-size SIZE   safetensors file size limit, e.g. 5GB (default), 500MB\n"
    "  --format int|fp8        int (default: 4-/8-bit pack-quantized) or fp8: e4m3 weights\n"
    "  --scheme dynamic|block  fp8: per-channel scales and per-token activations, as\n"
    "                          llm-compressor's FP8_DYNAMIC (default), or 128x128 block scales\n"
    "                          and per-128-group activations (quant_method fp8, as Qwen3-FP8)\n"
    "writes a compressed-tensors pack-quantized checkpoint: q/k/v/o/gate/up/down projection\n"
    "weights quantized, everything else (embeddings, norms, lm_head) copied unchanged (AWQ:\n"
    "the norms and v/up biases carry the folded scales)\n";

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

static int parse_option(int c, const char *arg, quantize_options *o, awq_cli *a) {
    long long v;
    switch (c) {
    case Q_CALIBRATION: a->awq_only = "--calibration"; a->calibration = arg; return 0;
    case Q_NO_CLIP: a->awq_only = "--no-clip"; a->clip = false; return 0;
    case Q_VERBOSE: a->awq_only = "--verbose"; a->verbose = true; return 0;
    case Q_SAMPLES:
        a->awq_only = "--calibration-samples";
        if (cli_parse_int("--calibration-samples", arg, 1, 1 << 20, &v) != 0) return -1;
        a->samples = (int)v;
        return 0;
    case Q_FORMAT:
        if (strcmp(arg, "int") != 0 && strcmp(arg, "fp8") != 0)
            return folio_fail("--format: unknown format '%s' (int or fp8)", arg);
        o->fp8 = strcmp(arg, "fp8") == 0;
        return 0;
    case Q_SCHEME:
        if (strcmp(arg, "dynamic") != 0 && strcmp(arg, "block") != 0)
            return folio_fail("--scheme: unknown scheme '%s' (dynamic or block)", arg);
        o->fp8_block = strcmp(arg, "block") == 0;
        a->scheme_given = true;
        return 0;
    case Q_MODEL: o->model_dir = arg; return 0;
    case Q_OUT: o->out_dir = arg; return 0;
    case Q_SYM: a->int_only = "--sym"; o->sym = true; return 0;
    case Q_ASYM: a->int_only = "--asym"; o->sym = false; return 0;
    case Q_SHARD: return parse_size(arg, &o->max_shard_bytes);
    case Q_GROUP:
        a->int_only = "--group-size";
        if (cli_parse_int("--group-size", arg, -1, 1 << 20, &v) != 0) return -1;
        if (v == 0) return folio_fail("--group-size: expected a positive size or -1, found 0");
        o->group_size = (int)v;
        return 0;
    case Q_BITS:
        a->int_only = "--bits";
        if (cli_parse_int("--bits", arg, 1, 64, &v) != 0) return -1;
        if (v != 4 && v != 8) return folio_fail("--bits: 4 or 8 are supported, found %lld", v);
        o->bits = (int)v;
        return 0;
    case Q_METHOD:
        a->int_only = "--method";
        a->awq = strcmp(arg, "awq") == 0;
        if (a->awq || strcmp(arg, "rtn") == 0) return 0;
        if (strcmp(arg, "gptq") == 0)
            return folio_fail("--method gptq: not yet supported (use --method awq or rtn)");
        return folio_fail("--method: unknown method '%s' (rtn or awq)", arg);
    default: return 1;
    }
}

/* The calibration text's ids (BOS first where the tokenizer adds one). */
static int calibration_ids(const char *model_dir, const awq_cli *a, token_ids *ids) {
    text_buf file = {0};
    const char *text = DEFAULT_CALIBRATION_TEXT;
    if (a->calibration) {
        if (text_buf_read_file(&file, a->calibration) != 0) return -1;
        text = file.s;
    }
    tokenizer *tok;
    int rc = tokenizer_load(model_dir, &tok);
    if (rc == 0) {
        rc = tokenizer_encode(tok, text, strlen(text), true, ids);
        tokenizer_free(tok);
    }
    text_buf_free(&file);
    if (rc == 0 && ids->n < 16)
        return folio_fail("--calibration %s: %zu tokens; AWQ needs a text of at least 16",
                          a->calibration ? a->calibration : "(built in)", ids->n);
    return rc;
}

static void print_awq(const awq_cli *a, const model_config *cfg, const awq_report *r,
                      size_t n_tokens, int samples) {
    printf("awq: calibrated on %zu tokens of %s (%d sampled for the searches); scaled %d groups "
           "(%d left unscaled, their Linears kept in float), clip-searched %d Linears; "
           "output error on the calibration samples %.3fx RTN's\n", n_tokens,
           a->calibration ? a->calibration : "the built-in text", samples, r->n_scaled,
           r->n_skipped, r->n_clipped, r->err_rtn > 0 ? r->err_awq / r->err_rtn : 1.0);
    for (int l = 0; a->verbose && l < cfg->n_layers; l++) {
        static const char *const NAMES[AWQ_N_GROUPS] = {"q/k/v", "o", "gate/up", "down"};
        printf("awq: layer %d alpha", l);
        for (int g = 0; g < AWQ_N_GROUPS; g++) {
            const float alpha = r->alpha[l * AWQ_N_GROUPS + g];
            if (alpha < 0) printf("  %s -", NAMES[g]);
            else printf("  %s %.2f", NAMES[g], alpha);
        }
        printf("\n");
    }
}

/* AWQ: the float model in memory, the calibration forward, the searches folded into its
 * weights; then *values lists every tensor of it for quantize_model (*specs owns the names;
 * the caller frees it and closes m). */
static int awq_prepare(quantize_options *o, const awq_cli *a, comm_ctx *comm, model *m,
                       tensor_spec **specs) {
    token_ids ids = {0};
    if (calibration_ids(o->model_dir, a, &ids) != 0) {
        token_ids_free(&ids);
        return -1;
    }
    if (model_open(o->model_dir, LOAD_AUTO, NULL, 0, 1, 0, m) != 0) {
        token_ids_free(&ids);
        return -1;
    }
    awq_calib calib;
    awq_calib_init(&calib, &m->cfg, (long long)ids.n, a->samples);
    const int window = m->cfg.max_position < AWQ_WINDOW ? m->cfg.max_position : AWQ_WINDOW;
    int rc = calibrate_cpu(m, comm, ids.ids, (int)ids.n, window, &calib, o->progress);
    const awq_options ao = {.q = {.bits = o->bits, .group_size = o->group_size, .sym = o->sym},
                            .n_grid = 20, .clip = a->clip, .dense_dtype = m->cfg.dtype};
    awq_report rep = {0};
    if (rc == 0) rc = awq_apply(&m->weights, &m->cfg, &calib, &ao, o->progress, &rep);
    if (rc == 0) print_awq(a, &m->cfg, &rep, ids.n, calib.act[0].n);
    awq_report_free(&rep);
    awq_calib_free(&calib);
    token_ids_free(&ids);
    if (rc != 0) return -1;
    int n;
    *specs = weights_specs(&m->cfg, &m->shard, &m->weights, &n);
    quantize_values *v = folio_xmalloc(sizeof *v * n);
    for (int i = 0; i < n; i++)
        v[i] = (quantize_values){.name = (*specs)[i].name, .data = *(*specs)[i].dest,
                                 .numel = (int64_t)tensor_spec_floats(&(*specs)[i])};
    o->values = v;
    o->n_values = n;
    return 0;
}

static void print_report(const quantize_options *o, const quantize_report *r, double secs) {
    char in[32], out[32];
    if (o->fp8) {
        printf("quantized %d matrices to FP8 e4m3 (%s), copied %d tensors: %s -> %s in %d "
               "file(s), %.1f s\nwrote %s\n", r->n_quantized,
               o->fp8_block ? "128x128 block scales, activations per token and group of 128"
                            : "per-channel scales, activations per token", r->n_copied,
               format_bytes((double)r->in_bytes, in, sizeof in),
               format_bytes((double)r->out_bytes, out, sizeof out), r->n_files, secs,
               o->out_dir);
        return;
    }
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
        {"max-shard-size", required_argument, 0, Q_SHARD},
        {"calibration", required_argument, 0, Q_CALIBRATION},
        {"calibration-samples", required_argument, 0, Q_SAMPLES},
        {"no-clip", no_argument, 0, Q_NO_CLIP}, {"verbose", no_argument, 0, Q_VERBOSE},
        {"format", required_argument, 0, Q_FORMAT}, {"scheme", required_argument, 0, Q_SCHEME},
        {"help", no_argument, 0, Q_HELP}, {0, 0, 0, 0}};
    quantize_options o = {.bits = 4, .group_size = 128, .sym = true,
                          .max_shard_bytes = 5000000000ull, .progress = true};
    awq_cli a = {.clip = true, .samples = 512};
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == Q_HELP) {
            fputs(QUANTIZE_HELP, stdout);
            return 0;
        }
        int r = c == '?' ? 1 : parse_option(c, optarg, &o, &a);
        if (r < 0) return -1;
        if (r == 1) return cli_unknown_option("quantize", argv, opts);
    }
    if (!o.model_dir || !o.out_dir) return folio_fail("quantize: --model DIR and --out DIR are required");
    if (comm->world > 1) return folio_fail("quantize: runs on one process (not under mpirun)");
    if (!a.awq && a.awq_only)
        return folio_fail("quantize: %s goes with --method awq", a.awq_only);
    if (o.fp8 && a.int_only)
        return folio_fail("quantize: %s goes with --format int (fp8 has no groups, zeros or "
                          "methods to choose)", a.int_only);
    if (!o.fp8 && a.scheme_given) return folio_fail("quantize: --scheme goes with --format fp8");
    if (quantize_check(&o) != 0) return -1;
    quantize_report rep;
    double t0 = folio_now();
    model m = {0};
    tensor_spec *specs = NULL;
    int rc = a.awq ? awq_prepare(&o, &a, comm, &m, &specs) : 0;
    if (rc == 0) rc = quantize_model(&o, &rep);
    if (rc == 0) print_report(&o, &rep, folio_now() - t0);
    free((void *)o.values);
    free(specs);
    model_close(&m);
    return rc;
}
