/* folio bench latency | throughput: the CUDA backend's speed on a model's real shapes
 * (usually --load-format dummy on configs/), with the roofline printed beside each result.
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
 * untied embedding table; 4-bit layers at their packed size) / copy bandwidth, a prefill cannot beat
 * its FLOPs / GEMM rate; both ceilings are measured here first (2 GiB device copy, 8192^3 bf16
 * GEMM). With FOLIO_PROFILE=1 the steps run eager with per-kernel CUDA-event times, printed
 * at the end (under mpirun, the NCCL all-reduce and logits all-gather are rows of their own:
 * the collectives' share of a step).
 *
 * Tensor parallelism (mpirun -np N, --device cuda): every rank runs this same loop on its own
 * forward_cuda. The plans are a function of the seeded generator and the greedy ids, and the
 * ids are the argmax of the all-gathered logits, bitwise the same on every rank, so every rank
 * builds rank 0's plans without a message per step (a plan channel would add a host round
 * trip to each measured step). After the runs the ranks compare a hash of every id they saw
 * and fail if any differs. Only rank 0 prints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "error.h"
#include "hash.h"

#ifndef FOLIO_HAVE_CUDA
int cmd_bench(int argc, char **argv, comm_ctx *comm) {
    (void)argc;
    (void)argv;
    (void)comm;
    return folio_fail("bench: this folio was built without CUDA (folio bench measures the CUDA "
                      "backend)");
}
#else

#include <cuda_runtime_api.h>

#include "backend.h"
#include "backend_cuda.h"
#include "comm.h"
#include "cuda_check.h"
#include "forward_cuda.h"
#include "gemm.h"
#include "model.h"
#include "progress.h"
#include "quant_config.h"
#include "request_lengths.h"
#include "step_plan.h"

enum { OPT_BATCH = 1, OPT_INPUT_LEN, OPT_OUTPUT_LEN, OPT_ITERS, OPT_WARMUP, OPT_PROMPTS,
       OPT_RANDOM, OPT_MAX_SEQS, OPT_MAX_BATCHED, OPT_GPU_UTIL, OPT_REQUESTS };

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
    CLI_COMMON_HELP;

typedef struct {
    common_options common;
    int latency;
    int batch, input_len, output_len, iters, warmup, prompts, random_lengths, max_seqs,
        max_batched;
    const char *requests;        /* throughput: lengths from this JSONL file */
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
        CLI_COMMON_OPTIONS,
        {0, 0, 0, 0}};
    common_options_init(&a->common);
    a->common.device = DEVICE_CUDA;
    *a = (bench_args){.common = a->common, .batch = 1, .input_len = 128, .output_len = 128,
                      .iters = 5, .warmup = 2, .prompts = 1000, .max_seqs = 256,
                      .max_batched = 8192};
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
    if (a->common.device != DEVICE_CUDA)
        return folio_fail("bench: measures the CUDA backend; use --device cuda (the default)");
    return cli_common_check(&a->common, "bench");
}

/* ---- ceilings ---- */

typedef struct {
    double copy_gbs, gemm_tflops;
} ceilings;

static float time_ms(cudaEvent_t a, cudaEvent_t b) {
    float ms = 0;
    CUDA_CHECK(cudaEventSynchronize(b));
    CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    return ms;
}

static int measure_ceilings(ceilings *c) {
    const size_t bytes = (size_t)2 << 30, n = 8192;
    void *a = NULL, *b = NULL, *y = NULL;
    if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) {
        (void)cudaGetLastError();
        if (a) CUDA_CHECK(cudaFree(a));
        return folio_fail("bench: no room for the 4 GiB ceiling measurement (lower "
                          "--gpu-memory-utilization)");
    }
    CUDA_CHECK(cudaMemset(a, 0x3c, bytes)); /* bf16 ~1.2: not zeros */
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    float best = 1e30f;
    for (int r = 0; r < 6; r++) {
        CUDA_CHECK(cudaEventRecord(e0, 0));
        CUDA_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0));
        CUDA_CHECK(cudaEventRecord(e1, 0));
        const float ms = time_ms(e0, e1);
        if (r > 0 && ms < best) best = ms;
    }
    c->copy_gbs = 2.0 * bytes / (best * 1e-3) * 1e-9;
    gemm_ctx *g = gemm_create((size_t)32 << 20);
    if (!g) return -1;
    CUDA_CHECK(cudaMalloc(&y, n * n * 2));
    best = 1e30f;
    for (int r = 0; r < 6; r++) {
        CUDA_CHECK(cudaEventRecord(e0, 0));
        gemm_run(g, y, DTYPE_BF16, a, (char *)a + n * n * 2, NULL, DTYPE_BF16, (int)n, (int)n,
                 (int)n, 0);
        CUDA_CHECK(cudaEventRecord(e1, 0));
        const float ms = time_ms(e0, e1);
        if (r > 0 && ms < best) best = ms;
    }
    c->gemm_tflops = 2.0 * n * n * n / (best * 1e-3) * 1e-12;
    gemm_free(g);
    CUDA_CHECK(cudaFree(y));
    CUDA_CHECK(cudaFree(b));
    CUDA_CHECK(cudaFree(a));
    CUDA_CHECK(cudaEventDestroy(e0));
    CUDA_CHECK(cudaEventDestroy(e1));
    return 0;
}

/* Parameters that take part in GEMMs for each token (all but the embedding table). */
static double gemm_params(const device_model *dm) {
    const model_config *c = &dm->m.cfg;
    const double h = c->hidden, hd = c->head_dim;
    const double per_layer = h * hd * (c->n_heads * 2.0 + c->n_kv_heads * 2.0) +
                             3.0 * h * c->intermediate;
    return per_layer * c->n_layers + h * c->vocab;
}

/* Weight bytes one decode step reads on this rank: everything on the device but an untied
 * embedding table (a step reads one row of it per token). 4-bit layers count their packed
 * bytes. */
static double decode_weight_bytes(const device_model *dm) {
    const cuda_weights *w = dm->gpu_weights;
    const model_config *c = &dm->m.cfg;
    const double embed = c->tie_embeddings ? 0.0
                                           : (double)dm->m.shard.vocab * c->hidden * dtype_size(w->dtype);
    return (double)w->bytes - embed;
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

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
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

/* ---- the forward ---- */

/* The KV pool for sizes s from the runtime's one sizer (backend_kv_blocks, from
 * --gpu-memory-utilization): the smallest of all ranks (block ids must be valid on every rank;
 * every rank fails together when one has no room), at least `need` blocks. -1 with a message. */
static int bench_kv_blocks(const device_model *dm, comm_ctx *comm, const bench_args *a,
                           const backend_sizes *s, int need, int *fewest, size_t *block_bytes) {
    const kv_knobs knobs = {.utilization = a->common.gpu_memory_utilization};
    int mine = 0;
    if (backend_kv_blocks(dm, comm, s, &knobs, &mine, block_bytes) != 0) mine = 0;
    *fewest = mine;
    if (comm->world > 1) MPI_CHECK(MPI_Allreduce(&mine, fewest, 1, MPI_INT, MPI_MIN, comm->comm));
    if (mine < 1) return -1; /* the sizer said why */
    if (*fewest < need)
        return folio_fail("bench: room for %d KV blocks of %d tokens%s, %d needed (raise "
                          "--gpu-memory-utilization, or lower --batch-size / --max-num-seqs / "
                          "--max-num-batched-tokens)", *fewest, s->block_size,
                          comm->world > 1 ? " on the smallest rank" : "", need);
    return 0;
}

/* The forward for sizes s over a pool from bench_kv_blocks; rank 0 prints its size. NULL with
 * a message. */
static forward_cuda *open_forward(const device_model *dm, comm_ctx *comm, const bench_args *a,
                                  backend_sizes *s, int need) {
    size_t block_bytes = 0;
    if (bench_kv_blocks(dm, comm, a, s, need, &s->num_blocks, &block_bytes) != 0) return NULL;
    const forward_cuda_options o = backend_cuda_options(dm, s);
    if (comm->rank == 0) {
        const size_t ws = forward_cuda_workspace_bytes(&dm->m.cfg, dm->gpu_weights, &o);
        char kv[32], wsb[32];
        fprintf(stderr, "folio: KV cache: %d blocks of %d tokens (%s%s): %lld tokens; "
                "workspace %s\n", s->num_blocks, s->block_size,
                format_bytes((double)block_bytes * s->num_blocks, kv, sizeof kv),
                comm->world > 1 ? " per rank" : "", (long long)s->num_blocks * s->block_size,
                format_bytes((double)ws, wsb, sizeof wsb));
    }
    return forward_cuda_create(&dm->m.cfg, dm->gpu_weights, comm, &o);
}

/* ---- latency ---- */

typedef struct {
    double ttft_ms, tpot_ms, tok_s;
} latency_run;

static int latency_once(forward_cuda *f, const device_model *dm, const bench_args *a, step_plan *p,
                        int32_t *tables, int blocks_per_seq, latency_run *out) {
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
    if (rc == 0) rc = forward_cuda_step(f, p, NULL, ids);
    if (rc == 0) hash_ids(ids, B);
    const double t1 = folio_now();
    for (int step = 1; step < a->output_len && rc == 0; step++) {
        step_plan_reset(p, step);
        for (int s = 0; s < B && rc == 0; s++)
            if (step_plan_add(p, &ids[s], 1, I + step - 1, tables + (size_t)s * blocks_per_seq,
                              blocks_per_seq, 1, 0) < 0)
                rc = -1;
        if (rc == 0) rc = forward_cuda_step(f, p, NULL, ids);
        if (rc == 0) hash_ids(ids, B);
    }
    const double t2 = folio_now();
    out->ttft_ms = (t1 - t0) * 1e3;
    out->tpot_ms = a->output_len > 1 ? (t2 - t1) * 1e3 / (a->output_len - 1) : 0.0;
    out->tok_s = (double)B * a->output_len / (t2 - t0);
    free(prompt);
    free(ids);
    return rc;
}

static int bench_latency(const device_model *dm, comm_ctx *comm, const bench_args *a,
                         const ceilings *c) {
    const int bs = 16, ctx = a->input_len + a->output_len;
    const int per_seq = (ctx + bs - 1) / bs;
    if (ctx > dm->m.cfg.max_position)
        return folio_fail("bench: --input-len + --output-len = %d exceeds the model's context "
                          "of %d", ctx, dm->m.cfg.max_position);
    const int B = a->batch;
    backend_sizes sizes = {.block_size = bs, .max_tokens = B * a->input_len, .max_seqs = B,
                           .max_logits = B, .max_model_len = ctx};
    forward_cuda *f = open_forward(dm, comm, a, &sizes, B * per_seq);
    if (!f) return -1;
    int32_t *tables = folio_xmalloc(sizeof *tables * B * per_seq);
    for (int i = 0; i < B * per_seq; i++) tables[i] = i;
    step_plan p;
    step_plan_create(&p, B * a->input_len, B, per_seq, bs);
    const int runs = a->warmup + a->iters;
    double *ttft = folio_xmalloc(sizeof(double) * runs), *tpot = folio_xmalloc(sizeof(double) * runs);
    double *tps = folio_xmalloc(sizeof(double) * runs);
    int rc = 0, n = 0;
    for (int r = 0; r < runs && rc == 0; r++) {
        latency_run lr;
        rc = latency_once(f, dm, a, &p, tables, per_seq, &lr);
        if (r >= a->warmup) {
            ttft[n] = lr.ttft_ms;
            tpot[n] = lr.tpot_ms;
            tps[n++] = lr.tok_s;
        }
    }
    if (rc == 0) rc = check_same_plans(comm);
    if (rc == 0 && comm->rank == 0) {
        const cuda_weights *w = dm->gpu_weights;
        const double kv_bytes = 2.0 * dm->m.cfg.n_layers * dm->m.shard.n_kv_heads * dm->m.cfg.head_dim *
                                dtype_size(w->dtype) * B * (a->input_len + a->output_len / 2.0);
        const double wbytes = decode_weight_bytes(dm);
        const double decode_floor = (wbytes + kv_bytes) / (c->copy_gbs * 1e9) * 1e3;
        const double prefill_flops = 2.0 * gemm_params(dm) * B * a->input_len +
                                     2.0 * dm->m.cfg.n_layers * dm->m.cfg.n_heads * dm->m.cfg.head_dim *
                                         (double)a->input_len * a->input_len * B; /* causal QK+PV */
        const double prefill_floor = prefill_flops / (c->gemm_tflops * 1e12) * 1e3;
        const double mt = median(ttft, n), mp = median(tpot, n), ms = median(tps, n);
        char note[96];
        printf("latency: batch %d, input %d, output %d, %s%s, %s, TP %d (all-reduce: %s) "
               "(median of %d runs after %d warm-up)\n", B, a->input_len, a->output_len,
               dtype_name(w->dtype), weights_note(dm, note, sizeof note),
               dm->enforce_eager ? "eager" : "CUDA graphs", comm->world,
               forward_cuda_allreduce_name(f), n, a->warmup);
        printf("  time to first token  %9.2f ms   roofline %7.2f ms (%.2f TFLOP / %.0f TFLOP/s)"
               "  = %.0f%%\n", mt, prefill_floor, prefill_flops * 1e-12, c->gemm_tflops,
               100.0 * prefill_floor / mt);
        printf("  per output token     %9.3f ms   roofline %7.3f ms (%.2f GB / %.0f GB/s)"
               "  = %.0f%%\n", mp, decode_floor, (wbytes + kv_bytes) * 1e-9,
               c->copy_gbs, 100.0 * decode_floor / mp);
        printf("  throughput           %9.1f tokens/s\n", ms);
        forward_cuda_profile_print(f, stdout);
    }
    free(ttft);
    free(tpot);
    free(tps);
    free(tables);
    step_plan_free(&p);
    forward_cuda_free(f);
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

static int bench_throughput(const device_model *dm, comm_ctx *comm, const bench_args *a,
                            const ceilings *c) {
    const int bs = 16, S = a->max_seqs;
    int N = a->prompts, *file_in = NULL, *file_out = NULL;
    if (a->requests && request_file_lengths(a, &file_in, &file_out, &N) != 0) return -1;
    request *req = folio_xcalloc(N, sizeof *req);
    int max_len = 0;
    long long total_out = 0, total_in = 0;
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
        total_out += req[i].out_len;
        total_in += req[i].in_len;
    }
    free(file_in);
    free(file_out);
    if (max_len > dm->m.cfg.max_position)
        return folio_fail("bench: requests of %d tokens exceed the model's context of %d",
                          max_len, dm->m.cfg.max_position);
    const int per_seq = (max_len + bs - 1) / bs;
    const int max_tokens = a->max_batched > S ? a->max_batched : S;
    backend_sizes sizes = {.block_size = bs, .max_tokens = max_tokens, .max_seqs = S,
                           .max_logits = S, .max_model_len = max_len};
    forward_cuda *f = open_forward(dm, comm, a, &sizes, 1);
    if (!f) {
        free(req);
        return -1;
    }
    block_pool pool = {.total = forward_cuda_num_blocks(f)};
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
    int rc = 0, peak_blocks = 0;
    long long steps = 0, out_tokens = 0;
    const double t0 = folio_now();
    while (done < N && rc == 0) {
        step_plan_reset(&p, steps++);
        int admitted[512], n_adm = 0, budget = a->max_batched;
        /* prefills first, while slots, blocks and the token budget allow */
        while (next < N && n_running + n_adm < S && n_slot_free > 0 &&
               pool.n_free >= req[next].n_blocks && req[next].in_len <= budget &&
               n_adm < 512) {
            request *r = &req[next];
            r->slot = slot_free[--n_slot_free];
            int32_t *t = tables + (size_t)r->slot * per_seq;
            for (int b = 0; b < r->n_blocks; b++) t[b] = pool.free_blocks[--pool.n_free];
            for (int i = 0; i < r->in_len; i++) prompt[i] = (int32_t)(next_rand() % dm->m.cfg.vocab);
            if (step_plan_add(&p, prompt, r->in_len, 0, t, r->n_blocks, 1, 0) < 0) rc = -1;
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
        if (rc != 0 || (rc = forward_cuda_step(f, &p, NULL, ids)) != 0) break;
        hash_ids(ids, p.n_logits);
        const int used = pool.total - pool.n_free;
        if (used > peak_blocks) peak_blocks = used;
        if (n_adm) {
            for (int i = 0; i < n_adm; i++) {
                request *r = &req[admitted[i]];
                r->last = ids[i];
                r->generated = 1;
                out_tokens++;
                running[n_running++] = admitted[i];
            }
        } else {
            for (int i = 0; i < n_running; i++) {
                req[running[i]].last = ids[i];
                req[running[i]].generated++;
                out_tokens++;
            }
        }
        for (int i = 0; i < n_running;) { /* retire finished requests */
            request *r = &req[running[i]];
            if (r->generated < r->out_len) {
                i++;
                continue;
            }
            int32_t *t = tables + (size_t)r->slot * per_seq;
            for (int b = 0; b < r->n_blocks; b++) pool.free_blocks[pool.n_free++] = t[b];
            slot_free[n_slot_free++] = r->slot;
            running[i] = running[--n_running];
            done++;
        }
    }
    const double secs = folio_now() - t0;
    if (rc == 0) rc = check_same_plans(comm);
    if (rc == 0 && comm->rank == 0) {
        const cuda_weights *w = dm->gpu_weights;
        const double decode_steps = (double)total_out / S;
        const double floor_s = 2.0 * gemm_params(dm) * (double)(total_in + total_out) /
                                   (c->gemm_tflops * 1e12) +
                               decode_steps * decode_weight_bytes(dm) / (c->copy_gbs * 1e9);
        if (a->requests)
            printf("throughput: %d requests from %s (%lld prompt + %lld output tokens), max %d "
                   "running, %s, %s, TP %d\n", N, a->requests, total_in, total_out, S,
                   dtype_name(w->dtype), dm->enforce_eager ? "eager" : "CUDA graphs", comm->world);
        else
        {
            char note[96];
            printf("throughput: %d requests, input %d, output %d%s, max %d running, %s%s, %s, "
                   "TP %d\n", N, a->input_len, a->output_len,
                   a->random_lengths ? " (random)" : "", S, dtype_name(w->dtype),
                   weights_note(dm, note, sizeof note),
                   dm->enforce_eager ? "eager" : "CUDA graphs", comm->world);
        }
        printf("  %.2f s: %.2f requests/s, %.0f output tokens/s, %.0f total tokens/s\n", secs,
               N / secs, out_tokens / secs, (double)(total_in + out_tokens) / secs);
        printf("  roofline %.2f s (all tokens' FLOPs / %.0f TFLOP/s + weight reads of %.0f "
               "full decode steps / %.0f GB/s) = %.0f%%\n", floor_s, c->gemm_tflops,
               decode_steps, c->copy_gbs, 100.0 * floor_s / secs);
        printf("  peak KV use %d of %d blocks (%.1f%%), %lld steps, 0 preemptions (whole "
               "length reserved at admission)\n", peak_blocks, pool.total,
               100.0 * peak_blocks / pool.total, steps);
        forward_cuda_profile_print(f, stdout);
    }
    step_plan_free(&p);
    free(prompt);
    free(ids);
    free(slot_free);
    free(running);
    free(tables);
    free(pool.free_blocks);
    free(req);
    forward_cuda_free(f);
    return rc;
}

int cmd_bench(int argc, char **argv, comm_ctx *comm) {
    bench_args a;
    if (parse(argc, argv, &a) != 0) return -1;
    if (cli_start_rank(&a.common, comm) != 0) return -1;
    device_model m;
    device_options mo = cli_device_options(&a.common);
    if (device_model_open(a.common.model_dir, &mo, comm, &m) != 0) {
        cli_stop_rank();
        return -1;
    }
    ceilings c = {0, 0};
    int rc = measure_ceilings(&c);
    if (rc == 0 && comm->rank == 0) {
        struct cudaDeviceProp prop;
        int dev = 0;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
        printf("device %s: measured ceilings %.0f GB/s copy (read + write), %.0f TFLOP/s bf16 "
               "GEMM\n", prop.name, c.copy_gbs, c.gemm_tflops);
    }
    if (rc == 0)
        rc = a.latency ? bench_latency(&m, comm, &a, &c) : bench_throughput(&m, comm, &a, &c);
    device_model_close(&m);
    cli_stop_rank();
    return rc;
}

#endif
