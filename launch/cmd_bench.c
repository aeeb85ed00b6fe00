/* folio bench latency | throughput: the speed of the CUDA backend (or, with --device cpu, the
 * CPU backend) on a model's real shapes (usually --load-format dummy on configs/), with the
 * roofline printed beside each result, and with --output-json FILE every figure kept as JSON
 * (bench_report.h; the file's path is checked before the model loads).
 *
 *   latency:    one batch of --batch-size sequences of --input-len prompt tokens, each
 *               generating --output-len tokens greedily; --num-iters timed runs after
 *               --num-warmup; medians of time to first token (the prefill step), ms per output
 *               token (mean decode step) and tokens/s.
 *   throughput: --num-prompts requests (fixed lengths, or uniform in [len/2, 3len/2] with
 *               --random-lengths) under a simple continuous-batching loop: a request is admitted
 *               when a sequence slot and KV blocks for its whole length are free (so nothing is
 *               ever preempted), a step is either prefills (up to --max-num-batched-tokens) or
 *               one decode token for every running request; requests/s, output tokens/s, peak
 *               KV use.
 * Roofline: a decode step cannot beat the weight bytes it reads (all on the device but an
 * untied embedding table; 4-bit layers at their packed size) / copy bandwidth, a prefill cannot
 * beat its FLOPs / GEMM rate; both ceilings are measured on the device first (bench_device.h:
 * on the GPU a 2 GiB device copy and an 8192^3 bf16 GEMM). With FOLIO_PROFILE=1 the steps run
 * eager with per-kernel CUDA-event times, printed at the end (under mpirun, the NCCL all-reduce and logits all-gather are rows of their own:
 * the collectives' share of a step).
 *
 * Tensor parallelism (mpirun -np N, --device cuda): every rank runs this same loop on its own
 * forward_cuda. The plans are a function of the seeded generator and the greedy ids, and the
 * ids are the argmax of the all-gathered logits, bitwise the same on every rank, so every rank
 * builds rank 0's plans without a message per step (a plan channel would add a host round
 * trip to each measured step). After the runs the ranks compare a hash of every id they saw
 * and fail if any differs. Only rank 0 prints and writes the result file. Long runs show a
 * progress bar on a terminal (progress.h), none in a pipe or a log. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "bench_device.h"
#include "bench_report.h"
#include "cli.h"
#include "comm.h"
#include "commands.h"
#include "error.h"
#include "hash.h"
#include "model.h"
#include "progress.h"
#include "quant_config.h"
#include "request_lengths.h"
#include "step_plan.h"

enum { OPT_BATCH = 1, OPT_INPUT_LEN, OPT_OUTPUT_LEN, OPT_ITERS, OPT_WARMUP, OPT_PROMPTS,
       OPT_RANDOM, OPT_MAX_SEQS, OPT_MAX_BATCHED, OPT_GPU_UTIL, OPT_REQUESTS, OPT_OUTPUT_JSON };

static const char USAGE[] =
    "usage: folio bench latency|throughput --model DIR [--load-format dummy] [options]\n"
    "  --batch-size N           latency: sequences in the batch (default 1)\n"
    "  --input-len N            prompt tokens per sequence (default 128)\n"
    "  --output-len N           generated tokens per sequence (default 128)\n"
    "  --num-iters N            latency: timed runs (default 5)\n"
    "  --num-warmup N           latency: untimed runs first (default 2)\n"
    "  --num-prompts N          throughput: requests (default 1000)\n"
    "  --random-lengths         throughput: lengths uniform in [len/2, 3 len/2]\n"
    "  --requests FILE.jsonl    throughput: the lengths of these requests (prompt_ids or\n"
    "                           prompt, max_tokens; the format of folio generate --requests)\n"
    "  --max-num-seqs N         throughput: running requests at most (default 256)\n"
    "  --max-num-batched-tokens N  throughput: prefill tokens per step (default 8192)\n"
    "  --gpu-memory-utilization F  fraction of GPU memory for weights, workspace, KV (0.90)\n"
    "  --output-json FILE       also write every figure, the run's parameters, the device, the\n"
    "                           ceilings, the commit and the date to FILE (vLLM's key names)\n"
    "  (bench runs on --device cuda by default; --device cpu measures the CPU backend)\n"
    CLI_COMMON_HELP;

typedef struct {
    common_options common;
    int latency;
    int batch, input_len, output_len, iters, warmup, prompts, random_lengths, max_seqs,
        max_batched;
    const char *requests;        /* throughput: lengths from this JSONL file */
    const char *output_json;     /* --output-json FILE */
    int argc;                    /* the command line, for the result file */
    char **argv;
} bench_args;

static int parse(int argc, char **argv, bench_args *a) {
    static const struct option longopts[] = {
        {"batch-size", required_argument, 0, OPT_BATCH},
        {"input-len", required_argument, 0, OPT_INPUT_LEN},
        {"output-len", required_argument, 0, OPT_OUTPUT_LEN},
        {"num-iters", required_argument, 0, OPT_ITERS},
        {"num-warmup", required_argument, 0, OPT_WARMUP},
        {"num-prompts", required_argument, 0, OPT_PROMPTS},
        {"random-lengths", no_argument, 0, OPT_RANDOM},
        {"requests", required_argument, 0, OPT_REQUESTS},
        {"max-num-seqs", required_argument, 0, OPT_MAX_SEQS},
        {"max-num-batched-tokens", required_argument, 0, OPT_MAX_BATCHED},
        {"gpu-memory-utilization", required_argument, 0, OPT_GPU_UTIL},
        {"output-json", required_argument, 0, OPT_OUTPUT_JSON},
        CLI_COMMON_OPTIONS,
        {0, 0, 0, 0}};
    common_options_init(&a->common);
    a->common.device = DEVICE_CUDA;
    *a = (bench_args){.common = a->common, .batch = 1, .input_len = 128, .output_len = 128,
                      .iters = 5, .warmup = 2, .prompts = 1000, .max_seqs = 256,
                      .max_batched = 8192, .argc = argc, .argv = argv};
    if (argc < 2 || (strcmp(argv[1], "latency") != 0 && strcmp(argv[1], "throughput") != 0)) {
        if (argc >= 2 && strcmp(argv[1], "--help") == 0) {
            fputs(USAGE, stdout);
            exit(0);
        }
        return folio_fail("bench: say latency or throughput (see folio bench --help)");
    }
    a->latency = strcmp(argv[1], "latency") == 0;
    long long v;
    int id;
    optind = 2;
    opterr = 0;
    while ((id = cli_next_option(argc, argv, longopts, &a->common, NULL, NULL)) != -1) {
        int *dst = NULL;
        const char *name = NULL;
        switch (id) {
        case CLI_OPTION_FAILED: return -1;
        case OPT_HELP: fputs(USAGE, stdout); exit(0);
        case OPT_BATCH: dst = &a->batch; name = "--batch-size"; break;
        case OPT_INPUT_LEN: dst = &a->input_len; name = "--input-len"; break;
        case OPT_OUTPUT_LEN: dst = &a->output_len; name = "--output-len"; break;
        case OPT_ITERS: dst = &a->iters; name = "--num-iters"; break;
        case OPT_WARMUP: dst = &a->warmup; name = "--num-warmup"; break;
        case OPT_PROMPTS: dst = &a->prompts; name = "--num-prompts"; break;
        case OPT_MAX_SEQS: dst = &a->max_seqs; name = "--max-num-seqs"; break;
        case OPT_MAX_BATCHED: dst = &a->max_batched; name = "--max-num-batched-tokens"; break;
        case OPT_RANDOM: a->random_lengths = 1; break;
        case OPT_REQUESTS: a->requests = optarg; break;
        case OPT_OUTPUT_JSON: a->output_json = optarg; break;
        case OPT_GPU_UTIL:
            if (cli_parse_float("--gpu-memory-utilization", optarg, 0.05, 1.0,
                                &a->common.gpu_memory_utilization) != 0)
                return -1;
            break;
        default: return cli_bad_option("bench", argv);
        }
        if (dst) {
            if (cli_parse_int(name, optarg, id == OPT_WARMUP ? 0 : 1, 1 << 24, &v) != 0)
                return -1;
            *dst = (int)v;
        }
    }
    if (optind < argc)
        return folio_fail("bench: unexpected argument '%s' (see folio bench --help)",
                          argv[optind]);
    return cli_common_check(&a->common, "bench");
}

/* ", 4-bit weights (METHOD, group N)" for a quantized model, else "". */
static const char *weights_note(const device_model *dm, char *buf, size_t n) {
    const quant_config *q = &dm->m.cfg.quant;
    if (q->method == QUANT_NONE) return "";
    if (q->group_size > 0)
        snprintf(buf, n, ", %d-bit weights (%s, group %d)", q->bits, quant_method_name(q->method),
                 q->group_size);
    else
        snprintf(buf, n, ", %d-bit weights (%s, per channel)", q->bits,
                 quant_method_name(q->method));
    return buf;
}

static uint64_t g_rng = 88172645463325252ull;
static uint64_t g_ids_hash = FOLIO_FNV64_OFFSET; /* FNV-1a (a word a step) of the greedy ids */

static void hash_ids(const int32_t *ids, int n) {
    for (int i = 0; i < n; i++) g_ids_hash = (g_ids_hash ^ (uint32_t)ids[i]) * FOLIO_FNV64_PRIME;
}

/* Under mpirun: fails unless every rank saw the same ids (so ran the same plans). */
static int check_same_plans(comm_ctx *comm) {
    if (comm->world == 1) return 0;
    unsigned long long mine = g_ids_hash, lo = 0, hi = 0;
    MPI_CHECK(MPI_Allreduce(&mine, &lo, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, comm->comm));
    MPI_CHECK(MPI_Allreduce(&mine, &hi, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, comm->comm));
    if (lo != hi)
        return folio_fail("bench: ranks generated different token ids (hash %llx on rank %d, "
                          "range %llx..%llx): their plans diverged", mine, comm->rank, lo, hi);
    return 0;
}
static uint32_t next_rand(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 11);
}

/* Decimals for a ceiling or a roofline amount: the GPU's large figures as they always were
 * printed, the CPU's small ones readable. */
#define RATE_DIGITS(x) ((x) >= 10 ? 0 : (x) >= 0.01 ? 2 : 5)
#define AMOUNT_DIGITS(x) ((x) >= 0.01 ? 2 : 5)

/* ---- the result file ---- */

/* The result object with the fields every result has and the run's set-up. */
static json_t *result_header(const bench_args *a, const device_model *dm, comm_ctx *comm,
                             const bench_ceilings *c, const bench_device *d) {
    const quant_config *q = &dm->m.cfg.quant;
    json_t *o = bench_json_header(a->latency ? "latency" : "throughput", c->name, a->argc - 1,
                                  a->argv + 1);
    json_object_set_new(o, "model", json_string(a->common.model_dir));
    json_object_set_new(o, "architecture", json_string(dm->m.cfg.arch_name));
    json_object_set_new(o, "load_format",
                        json_string(a->common.load_format == LOAD_DUMMY ? "dummy" : "auto"));
    json_object_set_new(o, "device", json_string(dm->device == DEVICE_CUDA ? "cuda" : "cpu"));
    json_object_set_new(o, "dtype", json_string(dtype_name(dm->dtype)));
    if (q->method == QUANT_NONE) {
        json_object_set_new(o, "quantization", json_null());
    } else {
        json_object_set_new(o, "quantization", json_string(quant_method_name(q->method)));
        json_object_set_new(o, "quantization_bits", json_integer(q->bits));
        json_object_set_new(o, "quantization_group_size", json_integer(q->group_size));
    }
    json_object_set_new(o, "tensor_parallel_size", json_integer(comm->world));
    json_object_set_new(o, "execution", json_string(bench_device_mode(d)));
    json_object_set_new(o, "all_reduce", json_string(bench_device_allreduce(d)));
    json_object_set_new(o, "kv_blocks", json_integer(bench_device_num_blocks(d)));
    json_object_set_new(o, "block_size", json_integer(16));
    json_object_set_new(o, "ceilings",
                        json_pack("{s:o, s:o, s:s}", "copy_gbs", bench_json_real(c->copy_gbs),
                                  "gemm_tflops", bench_json_real(c->gemm_tflops), "gemm_dtype",
                                  c->gemm_dtype));
    return o;
}

/* ---- latency ---- */

typedef struct {
    double ttft_ms, tpot_ms, tok_s, seconds;
} latency_run;

static int latency_once(bench_device *f, const device_model *dm, const bench_args *a,
                        step_plan *p, int32_t *tables, int blocks_per_seq, latency_run *out) {
    const int B = a->batch, I = a->input_len;
    int32_t *prompt = folio_xmalloc(sizeof *prompt * I), *ids = folio_xmalloc(sizeof *ids * B);
    int rc = 0;
    double t0 = folio_now();
    step_plan_reset(p, 0);
    for (int s = 0; s < B && rc == 0; s++) {
        for (int i = 0; i < I; i++) prompt[i] = (int32_t)(next_rand() % dm->m.cfg.vocab);
        if (step_plan_add(p, prompt, I, 0, tables + (size_t)s * blocks_per_seq, blocks_per_seq,
                          1, 0) < 0)
            rc = -1;
    }
    if (rc == 0) rc = bench_device_step(f, p, ids);
    if (rc == 0) hash_ids(ids, B);
    const double t1 = folio_now();
    for (int step = 1; step < a->output_len && rc == 0; step++) {
        step_plan_reset(p, step);
        for (int s = 0; s < B && rc == 0; s++)
            if (step_plan_add(p, &ids[s], 1, I + step - 1, tables + (size_t)s * blocks_per_seq,
                              blocks_per_seq, 1, 0) < 0)
                rc = -1;
        if (rc == 0) rc = bench_device_step(f, p, ids);
        if (rc == 0) hash_ids(ids, B);
    }
    const double t2 = folio_now();
    out->ttft_ms = (t1 - t0) * 1e3;
    out->tpot_ms = a->output_len > 1 ? (t2 - t1) * 1e3 / (a->output_len - 1) : 0.0;
    out->tok_s = (double)B * a->output_len / (t2 - t0);
    out->seconds = t2 - t0;
    free(prompt);
    free(ids);
    return rc;
}

/* Prints the latency table and returns its result object (vLLM's benchmark_latency keys:
 * avg_latency, std_latency, latencies, percentiles; then Folio's medians and rooflines). */
static json_t *latency_report(const device_model *dm, comm_ctx *comm, const bench_args *a,
                              const bench_ceilings *c, bench_device *f, double *ttft,
                              double *tpot, double *tps, double *secs, int n) {
    const int B = a->batch;
    const double kv_bytes = 2.0 * dm->m.cfg.n_layers * dm->m.shard.n_kv_heads *
                            dm->m.cfg.head_dim * dtype_size(dm->dtype) * B *
                            (a->input_len + a->output_len / 2.0);
    const double wbytes = bench_decode_weight_bytes(dm);
    const double decode_floor = (wbytes + kv_bytes) / (c->copy_gbs * 1e9) * 1e3;
    const double prefill_flops = 2.0 * bench_gemm_params(&dm->m.cfg) * B * a->input_len +
                                 2.0 * dm->m.cfg.n_layers * dm->m.cfg.n_heads *
                                     dm->m.cfg.head_dim * (double)a->input_len * a->input_len *
                                     B; /* causal QK+PV */
    const double prefill_floor = prefill_flops / (c->gemm_tflops * 1e12) * 1e3;
    bench_stats st_ttft, st_tpot, st_tps, st_lat;
    bench_stats_of(ttft, n, &st_ttft);
    bench_stats_of(tpot, n, &st_tpot);
    bench_stats_of(tps, n, &st_tps);
    bench_stats_of(secs, n, &st_lat); /* secs sorted from here on */
    const double mt = st_ttft.median, mp = st_tpot.median, ms = st_tps.median;
    char note[96];
    printf("latency: batch %d, input %d, output %d, %s%s, %s, TP %d (all-reduce: %s) "
           "(median of %d runs after %d warm-up)\n", B, a->input_len, a->output_len,
           dtype_name(dm->dtype), weights_note(dm, note, sizeof note), bench_device_mode(f),
           comm->world, bench_device_allreduce(f), n, a->warmup);
    printf("  time to first token  %9.2f ms   roofline %7.2f ms (%.*f TFLOP / %.*f TFLOP/s)"
           "  = %.0f%%\n", mt, prefill_floor, AMOUNT_DIGITS(prefill_flops * 1e-12),
           prefill_flops * 1e-12, RATE_DIGITS(c->gemm_tflops), c->gemm_tflops,
           100.0 * prefill_floor / mt);
    printf("  per output token     %9.3f ms   roofline %7.3f ms (%.*f GB / %.*f GB/s)"
           "  = %.0f%%\n", mp, decode_floor, AMOUNT_DIGITS((wbytes + kv_bytes) * 1e-9),
           (wbytes + kv_bytes) * 1e-9, RATE_DIGITS(c->copy_gbs), c->copy_gbs,
           100.0 * decode_floor / mp);
    printf("  throughput           %9.1f tokens/s\n", ms);
    printf("  whole batch          %9.2f ms mean (std %.2f)\n", st_lat.mean * 1e3,
           st_lat.std * 1e3);

    json_t *o = result_header(a, dm, comm, c, f);
    json_object_set_new(o, "batch_size", json_integer(B));
    json_object_set_new(o, "input_len", json_integer(a->input_len));
    json_object_set_new(o, "output_len", json_integer(a->output_len));
    json_object_set_new(o, "num_iters", json_integer(a->iters));
    json_object_set_new(o, "num_iters_warmup", json_integer(a->warmup));
    json_object_set_new(o, "avg_latency", bench_json_real(st_lat.mean));
    json_object_set_new(o, "std_latency", bench_json_real(st_lat.std));
    json_t *lat = json_array(), *pct = json_object();
    for (int i = 0; i < n; i++) json_array_append_new(lat, bench_json_real(secs[i]));
    static const int PCTS[] = {10, 25, 50, 75, 90, 99};
    for (int i = 0; i < 6; i++) {
        char key[8];
        snprintf(key, sizeof key, "%d", PCTS[i]);
        json_object_set_new(pct, key, bench_json_real(bench_percentile(secs, n, PCTS[i])));
    }
    json_object_set_new(o, "latencies", lat);
    json_object_set_new(o, "percentiles", pct);
    json_object_set_new(o, "ttft_ms", bench_json_real(mt));
    json_object_set_new(o, "tpot_ms", bench_json_real(mp));
    json_object_set_new(o, "output_throughput", bench_json_real(ms));
    json_object_set_new(o, "decode_throughput", bench_json_real(B * 1e3 / mp));
    json_object_set_new(
        o, "roofline",
        json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "ttft_ms", bench_json_real(prefill_floor),
                  "tpot_ms", bench_json_real(decode_floor), "prefill_tflop",
                  bench_json_real(prefill_flops * 1e-12), "decode_gb",
                  bench_json_real((wbytes + kv_bytes) * 1e-9), "ttft_fraction",
                  bench_json_real(prefill_floor / mt), "tpot_fraction",
                  bench_json_real(decode_floor / mp), "decode_throughput",
                  bench_json_real(B * 1e3 / decode_floor)));
    return o;
}

static int bench_latency(const device_model *dm, comm_ctx *comm, const bench_args *a,
                         const bench_ceilings *c, json_t **result) {
    const int bs = 16, ctx = a->input_len + a->output_len;
    const int per_seq = (ctx + bs - 1) / bs;
    if (ctx > dm->m.cfg.max_position)
        return folio_fail("bench: --input-len + --output-len = %d exceeds the model's context "
                          "of %d", ctx, dm->m.cfg.max_position);
    const int B = a->batch;
    backend_sizes sizes = {.block_size = bs, .max_tokens = B * a->input_len, .max_seqs = B,
                           .max_logits = B, .max_model_len = ctx};
    bench_device *f = bench_device_open(dm, comm, a->common.gpu_memory_utilization, &sizes,
                                        B * per_seq);
    if (!f) return -1;
    int32_t *tables = folio_xmalloc(sizeof *tables * B * per_seq);
    for (int i = 0; i < B * per_seq; i++) tables[i] = i;
    step_plan p;
    step_plan_create(&p, B * a->input_len, B, per_seq, bs);
    const int runs = a->warmup + a->iters;
    double *ttft = folio_xmalloc(sizeof(double) * runs);
    double *tpot = folio_xmalloc(sizeof(double) * runs);
    double *tps = folio_xmalloc(sizeof(double) * runs);
    double *secs = folio_xmalloc(sizeof(double) * runs);
    int rc = 0, n = 0;
    progress_bar bar;
    progress_start(&bar, "runs", (uint64_t)runs, "", comm->rank == 0);
    for (int r = 0; r < runs && rc == 0; r++) {
        latency_run lr;
        rc = latency_once(f, dm, a, &p, tables, per_seq, &lr);
        if (r >= a->warmup) {
            ttft[n] = lr.ttft_ms;
            tpot[n] = lr.tpot_ms;
            secs[n] = lr.seconds;
            tps[n++] = lr.tok_s;
        }
        progress_add(&bar, 1);
    }
    progress_finish(&bar);
    if (rc == 0) rc = check_same_plans(comm);
    if (rc == 0 && comm->rank == 0) {
        *result = latency_report(dm, comm, a, c, f, ttft, tpot, tps, secs, n);
        bench_device_profile_print(f, stdout);
    }
    free(ttft);
    free(tpot);
    free(tps);
    free(secs);
    free(tables);
    step_plan_free(&p);
    bench_device_close(f);
    return rc;
}

/* ---- throughput ---- */

typedef struct {
    int in_len, out_len, generated, n_blocks, first_block, slot;
    int32_t last;
} request;

typedef struct {
    int32_t *free_blocks;        /* stack of free block ids */
    int n_free, total;
} block_pool;

/* What a throughput run measured. */
typedef struct {
    int n;                       /* requests */
    long long total_in, total_out, out_tokens, steps, decode_steps;
    int peak_blocks, total_blocks;
    double secs, decode_secs;    /* the whole run; its decode steps */
} throughput_run;

/* The request lengths of --requests FILE (text prompts encoded with the model's tokenizer,
 * when it has one). */
static int request_file_lengths(const bench_args *a, int **in, int **out, int *n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", a->common.model_dir);
    tokenizer *tok = NULL;
    if (access(path, R_OK) == 0 && tokenizer_load(a->common.model_dir, &tok) != 0) return -1;
    int rc = request_lengths_read(a->requests, tok, a->output_len, in, out, n);
    tokenizer_free(tok);
    return rc;
}

/* Prints the throughput table and returns its result object (vLLM's benchmark_throughput
 * keys: elapsed_time, num_requests, total_num_tokens, requests_per_second, tokens_per_second;
 * then its serving names for the rest: total_input_tokens, output_throughput, ...). */
static json_t *throughput_report(const device_model *dm, comm_ctx *comm, const bench_args *a,
                                 const bench_ceilings *c, bench_device *f,
                                 const throughput_run *t) {
    const int S = a->max_seqs, N = t->n;
    const double secs = t->secs;
    const double decode_steps = (double)t->total_out / S;
    const double step_floor_s = bench_decode_weight_bytes(dm) / (c->copy_gbs * 1e9);
    const double floor_s = 2.0 * bench_gemm_params(&dm->m.cfg) *
                               (double)(t->total_in + t->total_out) / (c->gemm_tflops * 1e12) +
                           decode_steps * step_floor_s;
    const long long total_tokens = t->total_in + t->out_tokens;
    const double mean_tpot_ms = t->decode_steps ? t->decode_secs * 1e3 / t->decode_steps : 0.0;
    if (a->requests) {
        printf("throughput: %d requests from %s (%lld prompt + %lld output tokens), max %d "
               "running, %s, %s, TP %d\n", N, a->requests, t->total_in, t->total_out, S,
               dtype_name(dm->dtype), bench_device_mode(f), comm->world);
    } else {
        char note[96];
        printf("throughput: %d requests, input %d, output %d%s, max %d running, %s%s, %s, "
               "TP %d\n", N, a->input_len, a->output_len, a->random_lengths ? " (random)" : "",
               S, dtype_name(dm->dtype), weights_note(dm, note, sizeof note),
               bench_device_mode(f), comm->world);
    }
    printf("  %.2f s: %.2f requests/s, %.0f output tokens/s, %.0f total tokens/s\n", secs,
           N / secs, t->out_tokens / secs, (double)total_tokens / secs);
    printf("  roofline %.*f s (all tokens' FLOPs / %.*f TFLOP/s + weight reads of %.0f "
           "full decode steps / %.*f GB/s) = %.0f%%\n", AMOUNT_DIGITS(floor_s), floor_s,
           RATE_DIGITS(c->gemm_tflops), c->gemm_tflops, decode_steps, RATE_DIGITS(c->copy_gbs),
           c->copy_gbs, 100.0 * floor_s / secs);
    printf("  peak KV use %d of %d blocks (%.1f%%), %lld steps, 0 preemptions (whole "
           "length reserved at admission)\n", t->peak_blocks, t->total_blocks,
           100.0 * t->peak_blocks / t->total_blocks, t->steps);
    printf("  decode step %.3f ms mean (%lld decode steps)\n", mean_tpot_ms, t->decode_steps);

    json_t *o = result_header(a, dm, comm, c, f);
    json_object_set_new(o, "num_prompts", json_integer(N));
    json_object_set_new(o, "input_len", a->requests ? json_null() : json_integer(a->input_len));
    json_object_set_new(o, "output_len", json_integer(a->output_len));
    json_object_set_new(o, "random_lengths", json_boolean(a->random_lengths));
    json_object_set_new(o, "requests_file", a->requests ? json_string(a->requests) : json_null());
    json_object_set_new(o, "max_num_seqs", json_integer(S));
    json_object_set_new(o, "max_num_batched_tokens", json_integer(a->max_batched));
    json_object_set_new(o, "elapsed_time", bench_json_real(secs));
    json_object_set_new(o, "num_requests", json_integer(N));
    json_object_set_new(o, "total_num_tokens", json_integer(total_tokens));
    json_object_set_new(o, "requests_per_second", bench_json_real(N / secs));
    json_object_set_new(o, "tokens_per_second", bench_json_real(total_tokens / secs));
    json_object_set_new(o, "total_input_tokens", json_integer(t->total_in));
    json_object_set_new(o, "total_output_tokens", json_integer(t->out_tokens));
    json_object_set_new(o, "output_throughput", bench_json_real(t->out_tokens / secs));
    json_object_set_new(o, "total_token_throughput", bench_json_real(total_tokens / secs));
    json_object_set_new(o, "num_steps", json_integer(t->steps));
    json_object_set_new(o, "decode_steps", json_integer(t->decode_steps));
    json_object_set_new(o, "mean_tpot_ms", bench_json_real(mean_tpot_ms));
    json_object_set_new(o, "peak_kv_blocks", json_integer(t->peak_blocks));
    json_object_set_new(o, "preemptions", json_integer(0));
    json_object_set_new(
        o, "roofline",
        json_pack("{s:o, s:o, s:o, s:o}", "elapsed_time", bench_json_real(floor_s), "fraction",
                  bench_json_real(floor_s / secs), "output_throughput",
                  bench_json_real(t->total_out / floor_s), "tpot_ms",
                  bench_json_real(step_floor_s * 1e3)));
    return o;
}

static int bench_throughput(const device_model *dm, comm_ctx *comm, const bench_args *a,
                            const bench_ceilings *c, json_t **result) {
    const int bs = 16, S = a->max_seqs;
    int N = a->prompts, *file_in = NULL, *file_out = NULL;
    if (a->requests && request_file_lengths(a, &file_in, &file_out, &N) != 0) return -1;
    request *req = folio_xcalloc(N, sizeof *req);
    int max_len = 0;
    throughput_run t = {.n = N};
    for (int i = 0; i < N; i++) {
        req[i].in_len = file_in ? file_in[i] : a->input_len;
        req[i].out_len = file_out ? file_out[i] : a->output_len;
        if (a->random_lengths && !file_in) {
            req[i].in_len = a->input_len / 2 + (int)(next_rand() % (a->input_len + 1));
            req[i].out_len = a->output_len / 2 + (int)(next_rand() % (a->output_len + 1));
        }
        if (req[i].in_len < 1) req[i].in_len = 1;
        if (req[i].out_len < 1) req[i].out_len = 1;
        req[i].n_blocks = (req[i].in_len + req[i].out_len + bs - 1) / bs;
        if (req[i].in_len + req[i].out_len > max_len) max_len = req[i].in_len + req[i].out_len;
        t.total_out += req[i].out_len;
        t.total_in += req[i].in_len;
    }
    free(file_in);
    free(file_out);
    if (max_len > dm->m.cfg.max_position) {
        free(req);
        return folio_fail("bench: requests of %d tokens exceed the model's context of %d",
                          max_len, dm->m.cfg.max_position);
    }
    const int per_seq = (max_len + bs - 1) / bs;
    const int max_tokens = a->max_batched > S ? a->max_batched : S;
    backend_sizes sizes = {.block_size = bs, .max_tokens = max_tokens, .max_seqs = S,
                           .max_logits = S, .max_model_len = max_len};
    bench_device *f = bench_device_open(dm, comm, a->common.gpu_memory_utilization, &sizes, 1);
    if (!f) {
        free(req);
        return -1;
    }
    block_pool pool = {.total = bench_device_num_blocks(f)};
    pool.n_free = pool.total;
    pool.free_blocks = folio_xmalloc(sizeof(int32_t) * pool.total);
    for (int i = 0; i < pool.total; i++) pool.free_blocks[i] = pool.total - 1 - i;
    int32_t *tables = folio_xmalloc(sizeof(int32_t) * S * per_seq); /* [slot][per_seq] */
    int *running = folio_xmalloc(sizeof(int) * S), n_running = 0, next = 0, done = 0;
    int *slot_free = folio_xmalloc(sizeof(int) * S), n_slot_free = S;
    for (int i = 0; i < S; i++) slot_free[i] = S - 1 - i;
    int32_t *ids = folio_xmalloc(sizeof(int32_t) * S), *prompt = folio_xmalloc(sizeof(int32_t) * (max_len + 1));
    step_plan p;
    step_plan_create(&p, max_tokens, S, per_seq, bs);
    int rc = 0;
    progress_bar bar;
    progress_start(&bar, "requests", (uint64_t)N, "", comm->rank == 0);
    const double t0 = folio_now();
    while (done < N && rc == 0) {
        step_plan_reset(&p, t.steps++);
        int admitted[512], n_adm = 0, budget = a->max_batched;
        /* prefills first, while slots, blocks and the token budget allow */
        while (next < N && n_running + n_adm < S && n_slot_free > 0 &&
               pool.n_free >= req[next].n_blocks && req[next].in_len <= budget &&
               n_adm < 512) {
            request *r = &req[next];
            r->slot = slot_free[--n_slot_free];
            int32_t *tb = tables + (size_t)r->slot * per_seq;
            for (int b = 0; b < r->n_blocks; b++) tb[b] = pool.free_blocks[--pool.n_free];
            for (int i = 0; i < r->in_len; i++) prompt[i] = (int32_t)(next_rand() % dm->m.cfg.vocab);
            if (step_plan_add(&p, prompt, r->in_len, 0, tb, r->n_blocks, 1, 0) < 0) rc = -1;
            budget -= r->in_len;
            admitted[n_adm++] = next++;
        }
        if (n_adm == 0) /* decode every running request */
            for (int i = 0; i < n_running && rc == 0; i++) {
                request *r = &req[running[i]];
                if (step_plan_add(&p, &r->last, 1, r->in_len + r->generated - 1,
                                  tables + (size_t)r->slot * per_seq, r->n_blocks, 1, 0) < 0)
                    rc = -1;
            }
        if (rc == 0 && p.n_tokens == 0) /* nothing runs and nothing fits: a request is too big */
            rc = folio_fail("bench: request %d (%d + %d tokens) does not fit the KV cache of %d "
                            "blocks or --max-num-batched-tokens %d", next, req[next].in_len,
                            req[next].out_len, pool.total, a->max_batched);
        const double step_t0 = folio_now();
        if (rc != 0 || (rc = bench_device_step(f, &p, ids)) != 0) break;
        if (n_adm == 0) {
            t.decode_secs += folio_now() - step_t0;
            t.decode_steps++;
        }
        hash_ids(ids, p.n_logits);
        const int used = pool.total - pool.n_free;
        if (used > t.peak_blocks) t.peak_blocks = used;
        if (n_adm) {
            for (int i = 0; i < n_adm; i++) {
                request *r = &req[admitted[i]];
                r->last = ids[i];
                r->generated = 1;
                t.out_tokens++;
                running[n_running++] = admitted[i];
            }
        } else {
            for (int i = 0; i < n_running; i++) {
                req[running[i]].last = ids[i];
                req[running[i]].generated++;
                t.out_tokens++;
            }
        }
        const int done_before = done;
        for (int i = 0; i < n_running;) { /* retire finished requests */
            request *r = &req[running[i]];
            if (r->generated < r->out_len) {
                i++;
                continue;
            }
            int32_t *tb = tables + (size_t)r->slot * per_seq;
            for (int b = 0; b < r->n_blocks; b++) pool.free_blocks[pool.n_free++] = tb[b];
            slot_free[n_slot_free++] = r->slot;
            running[i] = running[--n_running];
            done++;
        }
        progress_add(&bar, (uint64_t)(done - done_before));
    }
    t.secs = folio_now() - t0;
    progress_finish(&bar);
    t.total_blocks = pool.total;
    if (rc == 0) rc = check_same_plans(comm);
    if (rc == 0 && comm->rank == 0) {
        *result = throughput_report(dm, comm, a, c, f, &t);
        bench_device_profile_print(f, stdout);
    }
    step_plan_free(&p);
    free(prompt);
    free(ids);
    free(slot_free);
    free(running);
    free(tables);
    free(pool.free_blocks);
    free(req);
    bench_device_close(f);
    return rc;
}

int cmd_bench(int argc, char **argv, comm_ctx *comm) {
    bench_args a;
    if (parse(argc, argv, &a) != 0) return -1;
    bench_json_file out;
    if (bench_json_prepare(&out, comm->rank == 0 ? a.output_json : NULL) != 0) return -1;
    if (cli_start_rank(&a.common, comm) != 0) {
        bench_json_abandon(&out);
        return -1;
    }
    device_model m;
    device_options mo = cli_device_options(&a.common);
    if (device_model_open(a.common.model_dir, &mo, comm, &m) != 0) {
        bench_json_abandon(&out);
        cli_stop_rank();
        return -1;
    }
    bench_ceilings c;
    int rc = bench_device_ceilings(&m, &c);
    if (rc == 0 && comm->rank == 0)
        printf("device %s: measured ceilings %.*f GB/s copy (read + write), %.*f TFLOP/s %s "
               "GEMM\n", c.name, RATE_DIGITS(c.copy_gbs), c.copy_gbs, RATE_DIGITS(c.gemm_tflops),
               c.gemm_tflops, c.gemm_dtype);
    json_t *result = NULL;
    if (rc == 0)
        rc = a.latency ? bench_latency(&m, comm, &a, &c, &result)
                       : bench_throughput(&m, comm, &a, &c, &result);
    rc = bench_json_finish(&out, rc, result);
    device_model_close(&m);
    cli_stop_rank();
    return rc;
}
