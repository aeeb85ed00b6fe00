/* folio serve: the OpenAI-compatible HTTP server on rank 0 (engine/http_server.c over the
 * engine thread engine/serve_loop.c), with Prometheus metrics and graceful shutdown
 * (SIGTERM / SIGINT: stop accepting, finish what is in flight within --shutdown-timeout,
 * exit 0). */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chat_template.h"
#include "cli.h"
#include "commands.h"
#include "engine_options.h"
#include "error.h"
#include "http_server.h"
#include "json_util.h"
#include "metrics.h"
#include "model.h"
#include "plan_channel.h"
#include "progress.h"
#include "request_json.h"
#include "serve_loop.h"
#include "text_buf.h"
#include "tokenizer.h"
#include "tokenizer_codec.h"

enum { OPT_HOST = 1, OPT_PORT, OPT_API_KEY, OPT_SERVED_NAME, OPT_MAX_QUEUE, OPT_SHUTDOWN_TIMEOUT,
       OPT_LOG_REQUESTS, OPT_CORS, OPT_MAX_BODY, OPT_MAX_QUEUE_TOKENS, OPT_MAX_CONNECTIONS,
       OPT_IDLE_TIMEOUT, OPT_HTTP_THREADS, OPT_MAX_BUFFERED, OPT_MAX_BUFFERED_CLIENT,
       OPT_MAX_TOKENIZE, OPT_TOOL_PARSER, OPT_CHAT_TEMPLATE, OPT_GEN_CONFIG,
       OPT_DISABLE_LOG_REQUESTS, OPT_SESSION_IDLE_TIMEOUT, OPT_MAX_SESSIONS, OPT_IGNORED = 500 };

/* vLLM flags accepted so vLLM command lines run, each changing nothing here (with a one-line
 * note why; docs/serving.md lists them). Only flags whose absence cannot change an answer. */
static const struct {
    const char *name;
    const char *why;
} IGNORED[] = {
    {"enable-auto-tool-choice", "tool calls are read whenever the model's format is known "
                                "(--tool-call-parser)"},
    {"trust-remote-code", "Folio runs no code from the model directory"},
    {"enable-prefix-caching", "prefix caching is on by default (--no-prefix-caching turns it "
                              "off)"},
    {"enable-chunked-prefill", "long prompts are always prefilled in chunks "
                               "(--max-num-batched-tokens)"},
    {"disable-log-stats", "Folio logs no periodic statistics (they are in /metrics)"},
    {"disable-frontend-multiprocessing", "the server is one process"},
};
#define N_IGNORED (int)(sizeof IGNORED / sizeof IGNORED[0])

static const char USAGE[] =
    "usage: folio serve --model DIR [options]   (OpenAI-compatible HTTP server)\n"
    "       folio serve DIR [options]           (vLLM's form: the model first)\n"
    "  --host ADDR              address to listen on (default 127.0.0.1)\n"
    "  --port N                 port (default 8000; 0 = any free port, printed)\n"
    "  --api-key KEY            require 'Authorization: Bearer KEY' on every route but\n"
    "                           /health and /metrics\n"
    "  --served-model-name NAME the model name clients use (default: --model as given)\n"
    "  --max-queue N            sequences (prompts x n) waiting beyond --max-num-seqs running\n"
    "                           before 429 (default 1024)\n"
    "  --max-queue-tokens N     tokens (prompt + max_tokens of every sequence) in flight\n"
    "                           before 429 (default: 16 x the KV cache's tokens)\n"
    "  --shutdown-timeout S     on SIGTERM/SIGINT, seconds to finish in-flight requests\n"
    "                           (default 30)\n"
    "  --log-requests           add each request's parameters to its access line\n"
    "  --disable-log-requests   no access line per request (by default one when it ends:\n"
    "                           client, route, status, tokens, milliseconds)\n"
    "  --chat-template FILE     the chat template (Jinja) in place of the model's; a text\n"
    "                           holding {{ or {% is taken as the template itself (vLLM)\n"
    "  --generation-config auto|vllm|DIR  sampling defaults of requests: the model's\n"
    "                           generation_config.json (auto, the default), vLLM's own (vllm),\n"
    "                           or DIR/generation_config.json\n"
    "  --cors                   allow cross-origin requests (off by default)\n"
    "  --max-body-bytes N       largest request body (default 33554432)\n"
    "  --max-tokenize-bytes N   largest /tokenize or /detokenize body (default: a full\n"
    "                           context's worth, 8 bytes a token, at least 65536)\n"
    "  --max-buffered-bytes N   request body bytes held at once, all clients (503 beyond;\n"
    "                           default 268435456)\n"
    "  --max-buffered-bytes-per-client N\n"
    "                           the same for one client address (429 beyond; default\n"
    "                           67108864)\n"
    "  --max-connections N      connections served at once (503 beyond; default: what the\n"
    "                           open-file limit allows, raised to its hard limit at start)\n"
    "  --idle-timeout S         close a connection silent for S seconds (default 30)\n"
    "  --http-threads N         threads serving the sockets (default 4)\n"
    "  --tool-call-parser NAME  how tool calls are read from the output: auto (from the chat\n"
    "                           template, the default), hermes, llama3_json, mistral, none\n"
    "  --session-idle-timeout S end interactive sessions (session_id) idle for S seconds\n"
    "                           (default 1800; 0 = never)\n"
    "  --max-sessions N         sessions open at once; a turn starting one more gets 429\n"
    "                           (default 10000; 0 = no cap)\n"
    "  --enable-auto-tool-choice, --trust-remote-code, --enable-prefix-caching,\n"
    "  --enable-chunked-prefill, --disable-log-stats, --disable-frontend-multiprocessing\n"
    "                           vLLM's, accepted and ignored (a note says why)\n"
    ENGINE_KNOBS_HELP CLI_COMMON_HELP;

typedef struct {
    common_options common;
    const char *host, *api_key, *served_name, *tool_parser, *chat_template, *gen_config;
    long long port, max_queue, shutdown_timeout, max_body, max_queue_tokens, max_connections,
        idle_timeout, http_threads, max_buffered, max_buffered_client, max_tokenize,
        session_idle_timeout, max_sessions;
    bool log_requests, cors, no_access_log;
    engine_options knobs;
    oai_defaults defaults;       /* --generation-config's (rank 0, before the model loads) */
} serve_args;

static int parse_args(int argc, char **argv, serve_args *a) {
    static const struct option own[] = {
        {"host", required_argument, 0, OPT_HOST},
        {"port", required_argument, 0, OPT_PORT},
        {"api-key", required_argument, 0, OPT_API_KEY},
        {"served-model-name", required_argument, 0, OPT_SERVED_NAME},
        {"max-queue", required_argument, 0, OPT_MAX_QUEUE},
        {"shutdown-timeout", required_argument, 0, OPT_SHUTDOWN_TIMEOUT},
        {"log-requests", no_argument, 0, OPT_LOG_REQUESTS},
        {"cors", no_argument, 0, OPT_CORS},
        {"max-body-bytes", required_argument, 0, OPT_MAX_BODY},
        {"max-queue-tokens", required_argument, 0, OPT_MAX_QUEUE_TOKENS},
        {"max-connections", required_argument, 0, OPT_MAX_CONNECTIONS},
        {"idle-timeout", required_argument, 0, OPT_IDLE_TIMEOUT},
        {"http-threads", required_argument, 0, OPT_HTTP_THREADS},
        {"max-buffered-bytes", required_argument, 0, OPT_MAX_BUFFERED},
        {"max-buffered-bytes-per-client", required_argument, 0, OPT_MAX_BUFFERED_CLIENT},
        {"max-tokenize-bytes", required_argument, 0, OPT_MAX_TOKENIZE},
        {"tool-call-parser", required_argument, 0, OPT_TOOL_PARSER},
        {"chat-template", required_argument, 0, OPT_CHAT_TEMPLATE},
        {"generation-config", required_argument, 0, OPT_GEN_CONFIG},
        {"disable-log-requests", no_argument, 0, OPT_DISABLE_LOG_REQUESTS},
        {"session-idle-timeout", required_argument, 0, OPT_SESSION_IDLE_TIMEOUT},
        {"max-sessions", required_argument, 0, OPT_MAX_SESSIONS},
        ENGINE_KNOB_OPTIONS,
        CLI_COMMON_OPTIONS};
    enum { N_OWN = sizeof own / sizeof own[0] };
    static struct option longopts[N_OWN + N_IGNORED + 1];
    memcpy(longopts, own, sizeof own);
    for (int i = 0; i < N_IGNORED; i++)
        longopts[N_OWN + i] = (struct option){IGNORED[i].name, no_argument, 0, OPT_IGNORED + i};
    common_options_init(&a->common);
    a->host = "127.0.0.1";
    a->port = 8000;
    a->max_queue = 1024;
    a->shutdown_timeout = 30;
    a->max_body = 32 << 20;
    a->max_buffered = 256 << 20;
    a->max_buffered_client = 64 << 20;
    a->idle_timeout = 30;
    a->http_threads = 4;
    a->session_idle_timeout = 1800;
    a->max_sessions = 10000;
    engine_options_init(&a->knobs);
    int id;
    optind = 1;
    opterr = 0;
    while ((id = cli_next_option(argc, argv, longopts, &a->common, engine_options_take,
                                 &a->knobs)) != -1) {
        switch (id) {
        case CLI_OPTION_FAILED: return -1;
        case OPT_HELP: fputs(USAGE, stdout); exit(0);
        case OPT_HOST: a->host = optarg; break;
        case OPT_API_KEY: a->api_key = optarg; break;
        case OPT_SERVED_NAME: a->served_name = optarg; break;
        case OPT_LOG_REQUESTS: a->log_requests = true; break;
        case OPT_CORS: a->cors = true; break;
        case OPT_TOOL_PARSER: a->tool_parser = optarg; break;
        case OPT_CHAT_TEMPLATE: a->chat_template = optarg; break;
        case OPT_GEN_CONFIG: a->gen_config = optarg; break;
        case OPT_DISABLE_LOG_REQUESTS: a->no_access_log = true; break;
#define INT_OPT(ID, NAME, MIN, MAX, FIELD)                                          \
        case ID:                                                                   \
            if (cli_parse_int(NAME, optarg, MIN, MAX, &a->FIELD) != 0) return -1;  \
            break;
        INT_OPT(OPT_PORT, "--port", 0, 65535, port)
        INT_OPT(OPT_MAX_QUEUE, "--max-queue", 0, 1 << 24, max_queue)
        INT_OPT(OPT_SHUTDOWN_TIMEOUT, "--shutdown-timeout", 0, 86400, shutdown_timeout)
        INT_OPT(OPT_MAX_BODY, "--max-body-bytes", 1024, 1LL << 32, max_body)
        INT_OPT(OPT_MAX_QUEUE_TOKENS, "--max-queue-tokens", 1, 1LL << 40, max_queue_tokens)
        INT_OPT(OPT_MAX_CONNECTIONS, "--max-connections", 1, 1 << 20, max_connections)
        INT_OPT(OPT_IDLE_TIMEOUT, "--idle-timeout", 1, 86400, idle_timeout)
        INT_OPT(OPT_HTTP_THREADS, "--http-threads", 1, 256, http_threads)
        INT_OPT(OPT_MAX_BUFFERED, "--max-buffered-bytes", 1024, 1LL << 40, max_buffered)
        INT_OPT(OPT_MAX_BUFFERED_CLIENT, "--max-buffered-bytes-per-client", 1024, 1LL << 40,
                max_buffered_client)
        INT_OPT(OPT_MAX_TOKENIZE, "--max-tokenize-bytes", 64, 1LL << 32, max_tokenize)
        INT_OPT(OPT_SESSION_IDLE_TIMEOUT, "--session-idle-timeout", 0, 1LL << 31,
                session_idle_timeout)
        INT_OPT(OPT_MAX_SESSIONS, "--max-sessions", 0, 1 << 30, max_sessions)
#undef INT_OPT
        default:
            if (id >= OPT_IGNORED && id < OPT_IGNORED + N_IGNORED) {
                fprintf(stderr, "folio: serve: --%s (vLLM's) changes nothing here: %s\n",
                        IGNORED[id - OPT_IGNORED].name, IGNORED[id - OPT_IGNORED].why);
                break;
            }
            return cli_unknown_option("serve", argv, longopts);
        }
    }
    /* vLLM's form: folio serve MODEL [options] (getopt has moved the operands to the end) */
    if (optind < argc && !a->common.model_dir) a->common.model_dir = argv[optind++];
    else if (optind < argc && a->common.model_dir && optind == argc - 1)
        return folio_fail("serve: the model is given twice: '%s' and --model %s", argv[optind],
                          a->common.model_dir);
    if (optind < argc)
        return folio_fail("serve: unexpected argument '%s' (see folio serve --help)", argv[optind]);
    if (a->log_requests && a->no_access_log)
        return folio_fail("serve: --log-requests adds the parameters to each request's access "
                          "line, which --disable-log-requests turns off: give one of them");
    if (cli_common_check(&a->common, "serve") != 0) return -1;
    if (a->max_buffered_client > a->max_buffered)
        return folio_fail("serve: --max-buffered-bytes-per-client %lld is more than "
                          "--max-buffered-bytes %lld", a->max_buffered_client, a->max_buffered);
    if (a->max_body > a->max_buffered_client)
        return folio_fail("serve: --max-body-bytes %lld is more than one client may hold "
                          "(--max-buffered-bytes-per-client %lld): no body that large could be "
                          "read", a->max_body, a->max_buffered_client);
    tool_format tf;
    if (a->tool_parser && strcmp(a->tool_parser, "auto") != 0 &&
        tool_format_parse(a->tool_parser, &tf) != 0)
        return folio_fail_context("serve: --tool-call-parser");
    if (!a->served_name) a->served_name = a->common.model_dir;
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

/* --generation-config: the requests' sampling defaults from DIR/generation_config.json, the
 * fields vLLM takes (temperature, top_p, top_k, min_p, repetition_penalty, max_new_tokens as
 * max_tokens; the EOS ids always come from the model's own file); "vllm": the built-in ones.
 * Says which it uses. 0, or -1 with a message naming the file and field. */
static int generation_defaults(const serve_args *a, oai_defaults *d) {
    *d = oai_defaults_builtin();
    const char *mode = a->gen_config ? a->gen_config : "auto";
    if (strcmp(mode, "vllm") == 0) return 0;
    const char *dir = strcmp(mode, "auto") == 0 ? a->common.model_dir : mode;
    char path[4096];
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    json_t *gen = NULL, *fields = json_object();
    const bool optional = strcmp(mode, "auto") == 0;
    int rc = json_read_file(path, optional, &gen);
    if (rc < 0) {
        if (!optional) folio_fail_context("serve: --generation-config %s", mode);
        json_decref(fields);
        return -1;
    }
    static const char *const KEYS[] = {"temperature", "top_p", "top_k", "min_p",
                                       "repetition_penalty", "max_new_tokens"};
    char said[256] = "";
    for (size_t i = 0; gen && i < sizeof KEYS / sizeof KEYS[0]; i++) {
        json_t *v = json_object_get(gen, KEYS[i]);
        if (!v || json_is_null(v)) continue;
        json_object_set(fields, i == 5 ? "max_tokens" : KEYS[i], v);
        char text[64];
        json_describe(v, text, sizeof text);
        size_t used = strlen(said);
        snprintf(said + used, sizeof said - used, "%s%s=%s", used ? " " : "", KEYS[i], text);
    }
    request_params p;
    request_params_init(&p);
    const json_src src = {path, NULL};
    rc = request_params_from_json(fields, &src, INT32_MAX, 0, &p); /* no ids among the fields */
    if (rc == 0 && said[0]) {
        *d = (oai_defaults){.temperature = p.sampling.temperature, .top_p = p.sampling.top_p,
                            .top_k = p.sampling.top_k, .min_p = p.sampling.min_p,
                            .repetition_penalty = p.proc.repetition_penalty,
                            .max_tokens = json_object_get(fields, "max_tokens") ? p.max_tokens : 0};
        fprintf(stderr, "folio: serve: requests' defaults from %s: %s (--generation-config vllm "
                        "ignores them)\n", path, said);
    }
    request_params_free(&p);
    json_decref(fields);
    json_decref(gen);
    return rc;
}

/* The chat template: --chat-template's (a file, or the template itself when it holds "{{" or
 * "{%", as vLLM takes it) in place of the model's, or the model's. NULL with a message; a
 * model without one is not an error (chat requests get 400, said once), a bad file is. */
static int load_chat_template(const serve_args *a, chat_template **out) {
    *out = NULL;
    const char *given = a->chat_template;
    if (!given) {
        if ((*out = chat_template_load(a->common.model_dir))) return 0;
        fprintf(stderr, "folio: serve: no chat template (%s); /v1/chat/completions will "
                        "answer 400\n", folio_last_error());
        folio_clear_error();
        return 0;
    }
    text_buf src = {0};
    bool inline_text = access(given, F_OK) != 0 && (strstr(given, "{{") || strstr(given, "{%"));
    if (inline_text) text_buf_puts(&src, given);
    else if (text_buf_read_file(&src, given) != 0)
        return folio_fail_context("serve: --chat-template");
    *out = chat_template_load_source(a->common.model_dir, src.s,
                                     inline_text ? "--chat-template" : given);
    text_buf_free(&src);
    if (!*out) return folio_fail_context("serve: --chat-template");
    fprintf(stderr, "folio: serve: chat template from %s (in place of the model's)\n",
            inline_text ? "--chat-template" : given);
    return 0;
}

/* How tool calls will be read (--tool-call-parser, or the chat template), said once. */
static int setup_tools(const serve_args *a, const tokenizer *tok, const chat_template *ct,
                       serve_tools *st) {
    if (serve_tools_resolve(a->tool_parser, ct, tok, st) != 0) return -1;
    if (st->format != TOOL_FORMAT_NONE)
        fprintf(stderr, "folio: serve: tool calls read in the %s format (%s)%s\n",
                tool_format_name(st->format),
                st->from_template ? "from the chat template" : "--tool-call-parser",
                st->keep_special ? "; requests with tools keep special tokens" : "");
    else if (ct && !a->tool_parser)
        fprintf(stderr, "folio: serve: the chat template shows no tool-call format: requests "
                        "with tools get 400 unless tool_choice is \"none\" (see "
                        "--tool-call-parser)\n");
    return 0;
}

/* Rank 0: the engine thread and the HTTP front end over the broadcasting backend, until a
 * signal; returns after the engine thread has stopped. */
static int serve_rank0(const serve_args *a, const device_model *dm, comm_ctx *comm, plan_channel *ch,
                       tokenizer *tok, chat_template *ct) {
    rank_engine re;
    metrics *mt = NULL;
    serve_loop *L = NULL;
    http_server *h = NULL;
    int rc = -1;
    if (rank_engine_open(&re, &a->knobs, dm, comm, ch) != 0) goto out;
    const sched_config *sc = &re.sched;
    text_codec codec = tokenizer_codec(tok);
    engine_config ec = {.sched = *sc, .vocab = dm->m.cfg.vocab, .eos_ids = dm->m.cfg.eos_ids,
                        .n_eos = dm->m.cfg.n_eos, .codec = &codec,
                        .session_idle_s = (double)a->session_idle_timeout,
                        .max_sessions = (int)a->max_sessions};
    mt = metrics_create(a->served_name);
    if (!(L = serve_loop_create(&ec, rank_engine_backend(&re, ch), mt))) goto out;
    if (serve_loop_start(L) != 0) goto out;
    /* the token budget of the queue: 16 KV caches' worth, and always one full batch */
    int64_t queue_tokens = a->max_queue_tokens;
    if (queue_tokens == 0) {
        queue_tokens = 16 * (int64_t)sc->num_blocks * sc->block_size;
        int64_t batch = (int64_t)sc->max_num_seqs * sc->max_model_len;
        if (queue_tokens < batch) queue_tokens = batch;
    }
    /* /tokenize and /detokenize: a full context's text or ids (8 bytes a token) */
    int64_t tokenize_bytes = a->max_tokenize;
    if (tokenize_bytes == 0) {
        tokenize_bytes = 8 * (int64_t)sc->max_model_len;
        if (tokenize_bytes < 65536) tokenize_bytes = 65536;
    }
    http_config hc = {.host = a->host, .port = (int)a->port, .api_key = a->api_key,
                      .served_name = a->served_name, .max_queue = (int)a->max_queue,
                      .max_queue_tokens = queue_tokens, .max_n = sc->max_num_seqs,
                      .max_model_len = sc->max_model_len, .vocab = dm->m.cfg.vocab,
                      .max_body = (size_t)a->max_body,
                      .max_tokenize_body = (size_t)tokenize_bytes,
                      .max_buffered = (size_t)a->max_buffered,
                      .max_buffered_client = (size_t)a->max_buffered_client,
                      .max_connections = (int)a->max_connections,
                      .idle_timeout_s = (int)a->idle_timeout, .threads = (int)a->http_threads,
                      .cors = a->cors, .log_requests = a->log_requests,
                      .access_log = !a->no_access_log, .defaults = &a->defaults};
    if (setup_tools(a, tok, ct, &hc.tools) != 0) goto out;
    if (!(h = http_server_start(&hc, L, tok, ct, mt))) goto out;
    unsigned served, held;
    http_server_connection_limits(h, &served, &held);
    char cap[32] = "no cap", idle[48] = "never ended for idleness";
    if (a->max_sessions) snprintf(cap, sizeof cap, "%lld at once", a->max_sessions);
    if (a->session_idle_timeout)
        snprintf(idle, sizeof idle, "ended after %lld s idle", a->session_idle_timeout);
    fprintf(stderr, "folio: serve: limits: %u connections served at once (%u held open), idle "
                    "timeout %lld s; %lld sequences and %lld tokens in flight; request bodies "
                    "%lld bytes each (%lld for /tokenize), %lld in memory at once (%lld per "
                    "client); sessions: %s, %s\n",
            served, held, a->idle_timeout, (long long)sc->max_num_seqs + a->max_queue,
            (long long)queue_tokens, a->max_body, (long long)tokenize_bytes, a->max_buffered,
            a->max_buffered_client, cap, idle);
    fprintf(stderr, "folio: serving %s as '%s' on http://%s:%d (OpenAI API under /v1)%s; "
                    "pid %d (SIGTERM or SIGINT stops it gracefully)\n",
            a->common.model_dir, a->served_name, a->host, http_server_port(h),
            comm->world > 1 ? " with tensor parallelism over all ranks" : "", (int)getpid());
    fflush(stderr);
    rc = serve_until_signal(a, h, L);
out:
    http_server_stop(h);
    serve_loop_free(L);
    metrics_free(mt);
    rank_engine_close(&re);
    return rc;
}

static void install_signal_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int cmd_serve(int argc, char **argv, comm_ctx *comm) {
    serve_args a = {0};
    tokenizer *tok = NULL;
    chat_template *ct = NULL;
    device_model m;
    bool model_opened = false;
    plan_channel ch;
    plan_channel_init(&ch, comm);
    int rc = -1;
    if (parse_args(argc, argv, &a) != 0) goto out;
    if (comm->rank == 0) {
        if (tokenizer_load(a.common.model_dir, &tok) != 0) goto out;
        if (load_chat_template(&a, &ct) != 0 || generation_defaults(&a, &a.defaults) != 0)
            goto out;
    }
    if (cli_start_rank(&a.common, comm) != 0) goto out;
    device_options mo = cli_device_options(&a.common);
    if (device_model_open(a.common.model_dir, &mo, comm, &m) != 0)
        goto out;
    model_opened = true;
    if (comm->rank != 0) {
        signal(SIGINT, SIG_IGN);                 /* rank 0 drives the shutdown */
        signal(SIGTERM, SIG_IGN);
        rc = rank_worker_run(&m, comm, &ch);     /* until rank 0's stop */
    } else {
        install_signal_handlers();
        rc = cli_check_tokenizer(tok, &m.m.cfg, a.common.model_dir);
        if (rc == 0) rc = serve_rank0(&a, &m, comm, &ch, tok, ct);
        if (plan_channel_send_stop(&ch) != 0) rc = -1;
    }
out:
    cli_stop_rank();
    if (model_opened) device_model_close(&m);
    plan_channel_free(&ch);
    chat_template_free(ct);
    tokenizer_free(tok);
    if (rc == 0 && comm->rank == 0) fprintf(stderr, "folio: server stopped\n");
    return rc;
}
