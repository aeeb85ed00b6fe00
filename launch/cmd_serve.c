/* folio serve: the OpenAI-compatible HTTP server on rank 0 (engine/http_server.c over the
 * engine thread engine/serve_loop.c), with Prometheus metrics and graceful shutdown
 * (SIGTERM / SIGINT: stop accepting, finish what is in flight within --shutdown-timeout,
 * exit 0). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend_cpu.h"
#include "chat_template.h"
#include "cli.h"
#include "commands.h"
#include "error.h"
#include "http_server.h"
#include "kv_capacity.h"
#include "metrics.h"
#include "model.h"
#include "progress.h"
#include "serve_loop.h"
#include "tokenizer.h"
#include "tokenizer_codec.h"

enum { OPT_HOST = 1, OPT_PORT, OPT_API_KEY, OPT_SERVED_NAME, OPT_MAX_QUEUE, OPT_SHUTDOWN_TIMEOUT,
       OPT_LOG_REQUESTS, OPT_CORS, OPT_MAX_BODY, OPT_BLOCK_SIZE, OPT_NUM_KV_BLOCKS,
       OPT_MAX_NUM_SEQS, OPT_MAX_BATCHED, OPT_KV_MEMORY, OPT_GPU_UTIL, OPT_MAX_MODEL_LEN,
       OPT_NO_PREFIX_CACHING };

static const char USAGE[] =
    "usage: folio serve --model DIR [options]   (OpenAI-compatible HTTP server)\n"
    "  --host ADDR              address to listen on (default 127.0.0.1)\n"
    "  --port N                 port (default 8000; 0 = any free port, printed)\n"
    "  --api-key KEY            require 'Authorization: Bearer KEY' on /v1/ routes\n"
    "  --served-model-name NAME the model name clients use (default: --model as given)\n"
    "  --max-queue N            requests waiting beyond --max-num-seqs running before 429\n"
    "                           (default 1024)\n"
    "  --shutdown-timeout S     on SIGTERM/SIGINT, seconds to finish in-flight requests\n"
    "                           (default 30)\n"
    "  --log-requests           log each request's parameters with its line\n"
    "  --cors                   allow cross-origin requests (off by default)\n"
    "  --max-body-bytes N       largest request body (default 33554432)\n"
    "  --block-size N           KV cache block size in tokens (default 16)\n"
    "  --max-num-seqs N         sequences per step (default 256)\n"
    "  --max-num-batched-tokens N  tokens per step (default 2048)\n"
    "  --max-model-len N        longest context of one sequence (default: the model's)\n"
    "  --gpu-memory-utilization F  fraction of device (CPU: host) memory to use (default 0.90)\n"
    "  --kv-cache-memory BYTES  KV cache size in bytes\n"
    "  --num-kv-blocks N        KV cache size in blocks\n"
    "  --no-prefix-caching      do not reuse the KV of shared prompt prefixes\n" CLI_COMMON_HELP;

typedef struct {
    common_options common;
    const char *host, *api_key, *served_name;
    long long port, max_queue, shutdown_timeout, max_body;
    bool log_requests, cors, no_prefix_caching;
    long long block_size, num_kv_blocks, max_num_seqs, max_batched, kv_memory, max_model_len;
    double gpu_util;
} serve_args;

static int parse_args(int argc, char **argv, serve_args *a) {
    static const struct option longopts[] = {
        {"host", required_argument, 0, OPT_HOST},
        {"port", required_argument, 0, OPT_PORT},
        {"api-key", required_argument, 0, OPT_API_KEY},
        {"served-model-name", required_argument, 0, OPT_SERVED_NAME},
        {"max-queue", required_argument, 0, OPT_MAX_QUEUE},
        {"shutdown-timeout", required_argument, 0, OPT_SHUTDOWN_TIMEOUT},
        {"log-requests", no_argument, 0, OPT_LOG_REQUESTS},
        {"cors", no_argument, 0, OPT_CORS},
        {"max-body-bytes", required_argument, 0, OPT_MAX_BODY},
        {"block-size", required_argument, 0, OPT_BLOCK_SIZE},
        {"num-kv-blocks", required_argument, 0, OPT_NUM_KV_BLOCKS},
        {"max-num-seqs", required_argument, 0, OPT_MAX_NUM_SEQS},
        {"max-num-batched-tokens", required_argument, 0, OPT_MAX_BATCHED},
        {"kv-cache-memory", required_argument, 0, OPT_KV_MEMORY},
        {"gpu-memory-utilization", required_argument, 0, OPT_GPU_UTIL},
        {"max-model-len", required_argument, 0, OPT_MAX_MODEL_LEN},
        {"no-prefix-caching", no_argument, 0, OPT_NO_PREFIX_CACHING},
        CLI_COMMON_OPTIONS,
        {0, 0, 0, 0}};
    common_options_init(&a->common);
    a->host = "127.0.0.1";
    a->port = 8000;
    a->max_queue = 1024;
    a->shutdown_timeout = 30;
    a->max_body = 32 << 20;
    a->block_size = 16;
    a->max_num_seqs = 256;
    a->max_batched = 2048;
    a->gpu_util = 0.90;
    int id;
    optind = 1;
    opterr = 0;
    while ((id = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        int rc = cli_common_option(&a->common, id, optarg);
        if (rc < 0) return -1;
        if (rc > 0) continue;
        switch (id) {
        case OPT_HELP: fputs(USAGE, stdout); exit(0);
        case OPT_HOST: a->host = optarg; break;
        case OPT_API_KEY: a->api_key = optarg; break;
        case OPT_SERVED_NAME: a->served_name = optarg; break;
        case OPT_LOG_REQUESTS: a->log_requests = true; break;
        case OPT_CORS: a->cors = true; break;
        case OPT_NO_PREFIX_CACHING: a->no_prefix_caching = true; break;
#define INT_OPT(ID, NAME, MIN, MAX, FIELD)                                          \
        case ID:                                                                   \
            if (cli_parse_int(NAME, optarg, MIN, MAX, &a->FIELD) != 0) return -1;  \
            break;
        INT_OPT(OPT_PORT, "--port", 0, 65535, port)
        INT_OPT(OPT_MAX_QUEUE, "--max-queue", 0, 1 << 24, max_queue)
        INT_OPT(OPT_SHUTDOWN_TIMEOUT, "--shutdown-timeout", 0, 86400, shutdown_timeout)
        INT_OPT(OPT_MAX_BODY, "--max-body-bytes", 1024, 1LL << 32, max_body)
        INT_OPT(OPT_BLOCK_SIZE, "--block-size", 1, 1024, block_size)
        INT_OPT(OPT_NUM_KV_BLOCKS, "--num-kv-blocks", 1, 1 << 30, num_kv_blocks)
        INT_OPT(OPT_MAX_NUM_SEQS, "--max-num-seqs", 1, 1 << 20, max_num_seqs)
        INT_OPT(OPT_MAX_BATCHED, "--max-num-batched-tokens", 1, 1 << 24, max_batched)
        INT_OPT(OPT_KV_MEMORY, "--kv-cache-memory", 1, INT64_MAX, kv_memory)
        INT_OPT(OPT_MAX_MODEL_LEN, "--max-model-len", 1, 1 << 30, max_model_len)
#undef INT_OPT
        case OPT_GPU_UTIL:
            if (cli_parse_float("--gpu-memory-utilization", optarg, 1e-6, 1, &a->gpu_util) != 0)
                return -1;
            break;
        default: return cli_bad_option("serve", argv);
        }
    }
    if (optind < argc)
        return folio_fail("serve: unexpected argument '%s' (see folio serve --help)", argv[optind]);
    if (cli_common_check(&a->common, "serve") != 0) return -1;
    if (!a->served_name) a->served_name = a->common.model_dir;
    return 0;
}

/* KV pool size from memory (or the overrides), as folio generate sizes it. */
static int plan_capacity(const serve_args *a, const model *m, sched_config *sc) {
    const model_config *c = &m->cfg;
    if (a->max_model_len > c->max_position)
        return folio_fail("--max-model-len %lld is longer than the model's context of %d "
                          "(max_position_embeddings)", a->max_model_len, c->max_position);
    *sc = (sched_config){.block_size = (int)a->block_size, .max_num_seqs = (int)a->max_num_seqs,
                         .max_num_batched_tokens = (int)a->max_batched,
                         .max_model_len = a->max_model_len > 0 ? (int)a->max_model_len
                                                               : c->max_position,
                         .prefix_caching = !a->no_prefix_caching};
    long long per_seq = (sc->max_model_len + sc->block_size - 1) / sc->block_size;
    long long useful = sc->max_num_seqs * per_seq;
    kv_capacity_in in = {.utilization = a->gpu_util, .kv_cache_memory = a->kv_memory,
                         .num_blocks_override = (int)a->num_kv_blocks,
                         .block_bytes = kv_cache_block_bytes(c->n_layers, sc->block_size,
                                                             m->shard.n_kv_heads, c->head_dim),
                         .workspace_bytes = backend_cpu_workspace_bytes(
                             c, sc->max_num_batched_tokens, sc->max_num_seqs),
                         .max_useful_blocks = (int)(useful < (1 << 30) ? useful : (1 << 30))};
    if (a->num_kv_blocks <= 0 && a->kv_memory <= 0 &&
        kv_capacity_host_memory(&in.total_bytes, &in.free_bytes) != 0)
        return -1;
    if (kv_capacity_blocks(&in, &sc->num_blocks) != 0) return -1;
    if (sched_config_validate(sc) != 0) return -1;
    char bytes[32];
    fprintf(stderr, "folio: KV cache: %d blocks of %d tokens (%s); --max-model-len %d\n",
            sc->num_blocks, sc->block_size,
            format_bytes((double)in.block_bytes * sc->num_blocks, bytes, sizeof bytes),
            sc->max_model_len);
    return 0;
}

static volatile sig_atomic_t g_signals;

static void on_signal(int sig) {
    (void)sig;
    g_signals++;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Serves until a signal; then drains within the deadline. */
static int serve_until_signal(const serve_args *a, http_server *h, serve_loop *L) {
    while (g_signals == 0 && !serve_loop_failure(L)) sleep_ms(50);
    if (serve_loop_failure(L)) {
        http_server_quiesce(h);
        serve_loop_cancel_all(L);
        return folio_fail("serve: the engine failed: %s", serve_loop_failure(L));
    }
    int n = serve_loop_in_flight(L);
    fprintf(stderr, "folio: shutting down: no new connections; finishing %d request%s "
                    "(--shutdown-timeout %lld s)\n", n, n == 1 ? "" : "s", a->shutdown_timeout);
    http_server_quiesce(h);
    serve_loop_drain(L);
    double deadline = folio_now() + (double)a->shutdown_timeout;
    while (serve_loop_in_flight(L) > 0 && folio_now() < deadline && g_signals < 2) sleep_ms(20);
    if (serve_loop_in_flight(L) > 0) {
        fprintf(stderr, "folio: shutdown: cancelling %d unfinished request(s)\n",
                serve_loop_in_flight(L));
        serve_loop_cancel_all(L);
    }
    /* let the connection threads send what they have */
    double until = folio_now() + 5.0;
    while (http_server_active(h) > 0 && folio_now() < until) sleep_ms(20);
    return 0;
}

int cmd_serve(int argc, char **argv, comm_ctx *comm) {
    serve_args a = {0};
    tokenizer *tok = NULL;
    chat_template *ct = NULL;
    model m;
    bool model_opened = false, backend_made = false;
    backend_cpu be;
    metrics *mt = NULL;
    serve_loop *L = NULL;
    http_server *h = NULL;
    int rc = -1;
    if (parse_args(argc, argv, &a) != 0) goto out;
    if (comm->world > 1) {
        folio_fail("serve: tensor parallelism is not wired into the server yet (world %d); run "
                   "folio serve on one rank (mpirun -np 1) until the plan broadcast lands",
                   comm->world);
        goto out;
    }
    if (tokenizer_load(a.common.model_dir, &tok) != 0) goto out;
    ct = chat_template_load(a.common.model_dir);
    if (!ct) {
        fprintf(stderr, "folio: serve: no chat template (%s); /v1/chat/completions will answer "
                        "400\n", folio_last_error());
        folio_clear_error();
    }
    if (model_open(a.common.model_dir, a.common.load_format, comm, a.common.verbose, &m) != 0)
        goto out;
    model_opened = true;
    sched_config sc;
    if (plan_capacity(&a, &m, &sc) != 0) goto out;
    if (backend_cpu_create(&be, &m, comm, sc.num_blocks, sc.block_size,
                           sc.max_num_batched_tokens, sc.max_num_seqs) != 0)
        goto out;
    backend_made = true;
    text_codec codec = tokenizer_codec(tok);
    engine_config ec = {.sched = sc, .vocab = m.cfg.vocab, .eos_ids = m.cfg.eos_ids,
                        .n_eos = m.cfg.n_eos, .codec = &codec};
    mt = metrics_create(a.served_name);
    if (!(L = serve_loop_create(&ec, backend_cpu_iface(&be), tok, mt))) goto out;
    if (serve_loop_start(L) != 0) goto out;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    http_config hc = {.host = a.host, .port = (int)a.port, .api_key = a.api_key,
                      .served_name = a.served_name, .max_queue = (int)a.max_queue,
                      .max_n = sc.max_num_seqs, .max_model_len = sc.max_model_len,
                      .vocab = m.cfg.vocab, .max_body = (size_t)a.max_body, .cors = a.cors,
                      .log_requests = a.log_requests};
    if (!(h = http_server_start(&hc, L, tok, ct, mt))) goto out;
    fprintf(stderr, "folio: serving %s as '%s' on http://%s:%d (OpenAI API under /v1)\n",
            a.common.model_dir, a.served_name, a.host, http_server_port(h));
    fflush(stderr);
    rc = serve_until_signal(&a, h, L);
out:
    http_server_stop(h);
    serve_loop_free(L);
    metrics_free(mt);
    if (backend_made) backend_cpu_free(&be);
    if (model_opened) model_close(&m);
    chat_template_free(ct);
    tokenizer_free(tok);
    if (rc == 0) fprintf(stderr, "folio: server stopped\n");
    return rc;
}
