/* folio bench serve: a load client for a running `folio serve` (or any OpenAI-compatible
 * server). It streams --num-prompts completions over --concurrency connections (or at a
 * Poisson --request-rate), each a prompt of --input-len random token ids (or the prompts of a
 * JSONL file) asking for --output-len tokens with ignore_eos, and reports requests/s, output
 * tokens/s and the percentiles of time to first token, inter-token latency and end-to-end
 * latency, and with --output-json FILE all of it as JSON under the names of vLLM's
 * benchmark_serving (bench_report.h). Plain HTTP/1.0 over loopback sockets: the response is
 * the server-sent event stream until the server closes the connection. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "bench_report.h"
#include "cli.h"
#include "commands.h"
#include "error.h"
#include "grow.h"
#include "hash.h"
#include "progress.h"

enum { OPT_URL = 1, OPT_PROMPTS, OPT_CONCURRENCY, OPT_RATE, OPT_INPUT_LEN, OPT_OUTPUT_LEN,
       OPT_VOCAB, OPT_SEED, OPT_REQUESTS, OPT_NAME, OPT_OUTPUT_JSON, OPT_METADATA };

static const char USAGE[] =
    "usage: folio bench serve [--url http://127.0.0.1:8000] [options]\n"
    "  --num-prompts N          requests to send (default 200)\n"
    "  --concurrency N          streams in flight at once (default 64)\n"
    "  --request-rate R         Poisson arrivals at R requests/s (default: as fast as the\n"
    "                           concurrency allows)\n"
    "  --input-len N            random prompt length in tokens (default 128)\n"
    "  --output-len N           tokens asked of each request, with ignore_eos (default 128)\n"
    "  --vocab N                random prompt ids are drawn from [3, N) (default 512)\n"
    "  --requests FILE.jsonl    prompts from a file instead (\"prompt\" or \"prompt_ids\" a line)\n"
    "  --served-model-name NAME the \"model\" field to send (default: none)\n"
    "  --seed S                 seed of the random prompts and arrivals (default 0)\n"
    "  --output-json FILE       also write the results as JSON (vLLM's benchmark_serving keys)\n"
    "  --metadata KEY=VALUE     a string field for the JSON, e.g. gpu=\"NVIDIA H100\" (the\n"
    "                           client cannot see the server's device); may repeat\n";

typedef struct {
    char host[256];
    int port;
    long long prompts, concurrency, input_len, output_len, vocab, seed;
    double rate;
    const char *requests, *name;
    const char *output_json;     /* --output-json FILE */
    const char *metadata[16];    /* --metadata KEY=VALUE */
    int n_metadata;
    int argc;                    /* the command line, for the result file */
    char **argv;
} bench_serve_args;

typedef struct {
    char *body;                  /* the request body (owned) */
    double start_at;             /* seconds after the run's start (rate mode), else 0 */
    /* results */
    double ttft, e2e;            /* seconds; < 0 when the request failed */
    long long prompt_tokens;     /* usage.prompt_tokens */
    double *gaps;                /* inter-token gaps (owned) */
    int n_gaps, cap_gaps;
    long long tokens;            /* completion tokens (usage) */
    char error[160];
} bench_request;

typedef struct {
    const bench_serve_args *a;
    bench_request *reqs;
    int n;
    int next;                    /* next request to send (under lock) */
    pthread_mutex_t lock;
    double t0;
    progress_bar bar;
} bench_run;

static int parse_url(const char *url, bench_serve_args *a) {
    const char *p = url;
    if (strncmp(p, "http://", 7) == 0) p += 7;
    const char *colon = strchr(p, ':'), *slash = strchr(p, '/');
    size_t host_len = colon ? (size_t)(colon - p) : slash ? (size_t)(slash - p) : strlen(p);
    if (host_len == 0 || host_len >= sizeof a->host)
        return folio_fail("--url: '%s' has no host", url);
    memcpy(a->host, p, host_len);
    a->host[host_len] = '\0';
    a->port = 80;
    if (colon) {
        long long port;
        char buf[16] = "";
        size_t n = slash ? (size_t)(slash - colon - 1) : strlen(colon + 1);
        if (n == 0 || n >= sizeof buf) return folio_fail("--url: '%s' has a bad port", url);
        memcpy(buf, colon + 1, n);
        if (cli_parse_int("--url port", buf, 1, 65535, &port) != 0) return -1;
        a->port = (int)port;
    }
    return 0;
}

static int parse_args(int argc, char **argv, bench_serve_args *a) {
    static const struct option longopts[] = {
        {"url", required_argument, 0, OPT_URL},
        {"num-prompts", required_argument, 0, OPT_PROMPTS},
        {"concurrency", required_argument, 0, OPT_CONCURRENCY},
        {"request-rate", required_argument, 0, OPT_RATE},
        {"input-len", required_argument, 0, OPT_INPUT_LEN},
        {"output-len", required_argument, 0, OPT_OUTPUT_LEN},
        {"vocab", required_argument, 0, OPT_VOCAB},
        {"seed", required_argument, 0, OPT_SEED},
        {"requests", required_argument, 0, OPT_REQUESTS},
        {"served-model-name", required_argument, 0, OPT_NAME},
        {"output-json", required_argument, 0, OPT_OUTPUT_JSON},
        {"metadata", required_argument, 0, OPT_METADATA},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    *a = (bench_serve_args){.port = 8000, .prompts = 200, .concurrency = 64, .input_len = 128,
                            .output_len = 128, .vocab = 512, .argc = argc, .argv = argv};
    strcpy(a->host, "127.0.0.1");
    int id;
    optind = 1;
    opterr = 0;
    while ((id = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        int rc = 0;
        switch (id) {
        case 'h': fputs(USAGE, stdout); exit(0);
        case OPT_URL: rc = parse_url(optarg, a); break;
        case OPT_PROMPTS: rc = cli_parse_int("--num-prompts", optarg, 1, 1 << 24, &a->prompts); break;
        case OPT_CONCURRENCY:
            rc = cli_parse_int("--concurrency", optarg, 1, 4096, &a->concurrency);
            break;
        case OPT_RATE: rc = cli_parse_float("--request-rate", optarg, 1e-6, 1e9, &a->rate); break;
        case OPT_INPUT_LEN: rc = cli_parse_int("--input-len", optarg, 1, 1 << 20, &a->input_len); break;
        case OPT_OUTPUT_LEN:
            rc = cli_parse_int("--output-len", optarg, 1, 1 << 20, &a->output_len);
            break;
        case OPT_VOCAB: rc = cli_parse_int("--vocab", optarg, 4, 1 << 24, &a->vocab); break;
        case OPT_SEED: rc = cli_parse_int("--seed", optarg, 0, INT64_MAX, &a->seed); break;
        case OPT_REQUESTS: a->requests = optarg; break;
        case OPT_NAME: a->name = optarg; break;
        case OPT_OUTPUT_JSON: a->output_json = optarg; break;
        case OPT_METADATA:
            if (!strchr(optarg, '=') || optarg[0] == '=')
                return folio_fail("--metadata '%s': expected KEY=VALUE", optarg);
            if (a->n_metadata == 16) return folio_fail("--metadata: at most 16 of them");
            a->metadata[a->n_metadata++] = optarg;
            break;
        default: return cli_unknown_option("bench serve", argv, longopts);
        }
        if (rc != 0) return -1;
    }
    if (optind < argc)
        return folio_fail("bench serve: unexpected argument '%s' (see folio bench serve --help)",
                          argv[optind]);
    return 0;
}

/* ---- request bodies ---- */

static uint64_t next_random(uint64_t *s) {
    return folio_mix64(*s += FOLIO_GOLDEN64);
}

/* Adds the fields every request carries: streaming with usage, the length, no early stop. */
static char *finish_body(json_t *body, const bench_serve_args *a) {
    if (a->name) json_object_set_new(body, "model", json_string(a->name));
    if (!json_object_get(body, "max_tokens"))
        json_object_set_new(body, "max_tokens", json_integer(a->output_len));
    json_object_set_new(body, "ignore_eos", json_true());
    json_object_set_new(body, "stream", json_true());
    json_object_set_new(body, "stream_options", json_pack("{s:b}", "include_usage", 1));
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    return text;
}

static char *random_body(const bench_serve_args *a, uint64_t *rng) {
    json_t *ids = json_array();
    for (long long i = 0; i < a->input_len; i++)
        json_array_append_new(ids, json_integer(3 + (long long)(next_random(rng) %
                                                                (uint64_t)(a->vocab - 3))));
    json_t *body = json_pack("{s:o, s:f}", "prompt", ids, "temperature", 0.0);
    return finish_body(body, a);
}

/* One request a line of FILE: its "prompt" or "prompt_ids" (and "max_tokens" if given). */
static int file_bodies(const bench_serve_args *a, bench_request *reqs, int n) {
    FILE *f = fopen(a->requests, "r");
    if (!f) return folio_fail("--requests %s: cannot open it", a->requests);
    char *line = NULL;
    size_t cap = 0;
    int count = 0, line_no = 0, rc = 0;
    while (count < n && getline(&line, &cap, f) >= 0) {
        line_no++;
        json_error_t err;
        json_t *in = json_loads(line, 0, &err);
        if (!in) {
            if (strspn(line, " \t\r\n") == strlen(line)) continue;
            rc = folio_fail("--requests %s line %d: %s", a->requests, line_no, err.text);
            break;
        }
        json_t *body = json_object();
        json_t *prompt = json_object_get(in, "prompt");
        if (!prompt) prompt = json_object_get(in, "prompt_ids");
        if (!prompt) {
            json_decref(in);
            json_decref(body);
            rc = folio_fail("--requests %s line %d: no \"prompt\" or \"prompt_ids\"", a->requests,
                            line_no);
            break;
        }
        json_object_set(body, "prompt", prompt);
        json_t *max = json_object_get(in, "max_tokens");
        if (max) json_object_set(body, "max_tokens", max);
        json_object_set_new(body, "temperature", json_real(0.0));
        json_decref(in);
        reqs[count++].body = finish_body(body, a);
    }
    free(line);
    fclose(f);
    if (rc == 0 && count < n)
        rc = folio_fail("--requests %s has %d requests, fewer than --num-prompts %d", a->requests,
                        count, n);
    return rc;
}

/* ---- one streamed request over HTTP/1.0 ---- */

static int connect_to(const bench_serve_args *a) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    char port[16];
    snprintf(port, sizeof port, "%d", a->port);
    if (getaddrinfo(a->host, port, &hints, &res) != 0) return -1;
    int fd = -1;
    for (struct addrinfo *r = res; r && fd < 0; r = r->ai_next) {
        fd = socket(r->ai_family, r->ai_socktype, r->ai_protocol);
        if (fd >= 0 && connect(fd, r->ai_addr, r->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

static int send_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void add_gap(bench_request *r, double gap) {
    FOLIO_GROW(r->gaps, r->cap_gaps, r->n_gaps + 1);
    r->gaps[r->n_gaps++] = gap;
}

/* Handles one "data: ..." event: a chunk with text is a token arrival; usage gives the
 * count. Returns 1 at [DONE]. */
static int on_event(bench_request *r, const char *data, double start, double *last) {
    if (strcmp(data, "[DONE]") == 0) return 1;
    json_t *ev = json_loads(data, 0, NULL);
    if (!ev) return 0;
    json_t *choices = json_object_get(ev, "choices"), *usage = json_object_get(ev, "usage");
    json_t *c0 = json_array_get(choices, 0);
    const char *text = json_string_value(json_object_get(c0, "text"));
    if (text && *text) {
        double now = folio_now();
        if (r->ttft < 0) r->ttft = now - start;
        else add_gap(r, now - *last);
        *last = now;
    }
    if (json_is_object(usage)) {
        r->tokens = json_integer_value(json_object_get(usage, "completion_tokens"));
        r->prompt_tokens = json_integer_value(json_object_get(usage, "prompt_tokens"));
    }
    json_decref(ev);
    return 0;
}

static void run_request(const bench_serve_args *a, bench_request *r) {
    r->ttft = r->e2e = -1;
    int fd = connect_to(a);
    if (fd < 0) {
        snprintf(r->error, sizeof r->error, "cannot connect to %.100s:%d", a->host, a->port);
        return;
    }
    char head[512];
    size_t body_len = strlen(r->body);
    int hn = snprintf(head, sizeof head, "POST /v1/completions HTTP/1.0\r\nHost: %s\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                      a->host, body_len);
    double start = folio_now(), last = start;
    if (send_all(fd, head, (size_t)hn) != 0 || send_all(fd, r->body, body_len) != 0) {
        snprintf(r->error, sizeof r->error, "sending failed");
        close(fd);
        return;
    }
    size_t cap = 1 << 16, len = 0, scan = 0;
    char *buf = folio_xmalloc(cap);
    bool headers_done = false, done = false;
    int status = 0;
    while (!done) {
        FOLIO_GROW(buf, cap, len + 4096);
        ssize_t got = recv(fd, buf + len, cap - len - 1, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        len += (size_t)got;
        buf[len] = '\0';
        if (!headers_done) {
            char *end = strstr(buf, "\r\n\r\n");
            if (!end) continue;
            sscanf(buf, "HTTP/%*s %d", &status);
            headers_done = true;
            scan = (size_t)(end + 4 - buf);
        }
        char *ev;
        while ((ev = strstr(buf + scan, "\n\n"))) {  /* whole events only */
            *ev = '\0';
            char *data = strstr(buf + scan, "data: ");
            if (data && status == 200 && on_event(r, data + 6, start, &last)) done = true;
            scan = (size_t)(ev + 2 - buf);
        }
    }
    if (status != 200)
        snprintf(r->error, sizeof r->error, "HTTP %d: %.120s", status,
                 headers_done ? strstr(buf, "\r\n\r\n") + 4 : "no response");
    else if (!done)
        snprintf(r->error, sizeof r->error, "the stream ended before [DONE]");
    else
        r->e2e = folio_now() - start;
    free(buf);
    close(fd);
}

/* ---- the run: workers take requests in order, waiting for their arrival time ---- */

static void *worker(void *arg) {
    bench_run *run = arg;
    for (;;) {
        pthread_mutex_lock(&run->lock);
        int i = run->next < run->n ? run->next++ : -1;
        pthread_mutex_unlock(&run->lock);
        if (i < 0) return NULL;
        bench_request *r = &run->reqs[i];
        double wait = run->t0 + r->start_at - folio_now();
        if (wait > 0) usleep((useconds_t)(wait * 1e6));
        run_request(run->a, r);
        pthread_mutex_lock(&run->lock);
        progress_add(&run->bar, 1);
        pthread_mutex_unlock(&run->lock);
    }
}

/* One latency metric (seconds, n values, sorted here): a row of the printed table, and
 * vLLM's mean_KEY_ms, median_KEY_ms, std_KEY_ms, p50_KEY_ms, p90_KEY_ms, p99_KEY_ms in o (null
 * when no request gave one). */
static void add_metric(json_t *o, const char *label, const char *key, double *v, int n) {
    static const int PCTS[] = {50, 90, 99};
    bench_stats st = {0};
    if (n > 0) bench_stats_of(v, n, &st);
    double pct[3];
    for (int i = 0; i < 3; i++) pct[i] = n > 0 ? bench_percentile(v, n, PCTS[i]) * 1e3 : 0;
    if (n == 0) printf("  %-22s n/a\n", label);
    else
        printf("  %-22s mean %8.2f ms   p50 %8.2f   p90 %8.2f   p99 %8.2f\n", label,
               st.mean * 1e3, pct[0], pct[1], pct[2]);
    char name[64];
    const struct { const char *stat; double value; } F[] = {
        {"mean", st.mean * 1e3}, {"median", st.median * 1e3}, {"std", st.std * 1e3},
        {"p50", pct[0]}, {"p90", pct[1]}, {"p99", pct[2]}};
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof name, "%s_%s_ms", F[i].stat, key);
        json_object_set_new(o, name, n > 0 ? bench_json_real(F[i].value) : json_null());
    }
}

/* The run's set-up in vLLM's result names (date, backend, model_id, num_prompts,
 * request_rate, burstiness, max_concurrency) and Folio's (base_url, lengths, seed). */
static json_t *result_header(const bench_serve_args *a) {
    json_t *o = bench_json_header("serve", NULL, a->argc, a->argv);
    char url[300];
    snprintf(url, sizeof url, "http://%s:%d", a->host, a->port);
    json_object_set_new(o, "backend", json_string("openai"));
    json_object_set_new(o, "base_url", json_string(url));
    json_object_set_new(o, "model_id", a->name ? json_string(a->name) : json_null());
    json_object_set_new(o, "num_prompts", json_integer(a->prompts));
    json_object_set_new(o, "request_rate", a->rate > 0 ? json_real(a->rate) : json_string("inf"));
    json_object_set_new(o, "burstiness", json_real(1.0));
    json_object_set_new(o, "max_concurrency", json_integer(a->concurrency));
    json_object_set_new(o, "input_len", a->requests ? json_null() : json_integer(a->input_len));
    json_object_set_new(o, "output_len", json_integer(a->output_len));
    json_object_set_new(o, "requests_file", a->requests ? json_string(a->requests) : json_null());
    json_object_set_new(o, "seed", json_integer(a->seed));
    for (int i = 0; i < a->n_metadata; i++) { /* KEY=VALUE, checked by parse_args */
        const char *eq = strchr(a->metadata[i], '=');
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)(eq - a->metadata[i]), a->metadata[i]);
        json_object_set_new(o, key, json_string(eq + 1));
    }
    return o;
}

/* Prints the results and returns them as a result object. */
static json_t *report(const bench_serve_args *a, bench_request *reqs, int n, double secs) {
    int ok = 0, errors = 0;
    long long tokens = 0, prompt_tokens = 0, gaps = 0;
    for (int i = 0; i < n; i++) {
        if (reqs[i].e2e >= 0) {
            ok++;
            tokens += reqs[i].tokens;
            prompt_tokens += reqs[i].prompt_tokens;
            gaps += reqs[i].n_gaps;
        } else if (errors++ < 3) {
            fprintf(stderr, "folio: bench serve: request %d failed: %s\n", i, reqs[i].error);
        }
    }
    double *ttft = folio_xmalloc(sizeof(double) * (n ? n : 1));
    double *tpot = folio_xmalloc(sizeof(double) * (n ? n : 1));
    double *e2e = folio_xmalloc(sizeof(double) * (n ? n : 1));
    double *itl = folio_xmalloc(sizeof(double) * (gaps ? gaps : 1));
    int k = 0, g = 0, t = 0;
    for (int i = 0; i < n; i++) {
        if (reqs[i].e2e < 0) continue;
        ttft[k] = reqs[i].ttft;
        e2e[k++] = reqs[i].e2e;
        if (reqs[i].tokens > 1) /* vLLM's TPOT: the time after the first token, per token */
            tpot[t++] = (reqs[i].e2e - reqs[i].ttft) / (double)(reqs[i].tokens - 1);
        for (int j = 0; j < reqs[i].n_gaps; j++) itl[g++] = reqs[i].gaps[j];
    }
    printf("bench serve: %d requests to %s:%d, %s, input %lld, output %lld\n", n, a->host,
           a->port, a->rate > 0 ? "Poisson arrivals" : "closed loop", a->input_len, a->output_len);
    if (a->rate > 0) printf("  request rate %.2f/s, at most %lld in flight\n", a->rate, a->concurrency);
    else printf("  concurrency %lld\n", a->concurrency);
    printf("  %.2f s: %.2f requests/s, %.1f output tokens/s; %d ok, %d failed, %lld output "
           "tokens\n", secs, ok / secs, tokens / secs, ok, errors, tokens);
    json_t *o = result_header(a);
    json_object_set_new(o, "duration", bench_json_real(secs));
    json_object_set_new(o, "completed", json_integer(ok));
    json_object_set_new(o, "failed", json_integer(errors));
    json_object_set_new(o, "total_input_tokens", json_integer(prompt_tokens));
    json_object_set_new(o, "total_output_tokens", json_integer(tokens));
    json_object_set_new(o, "request_throughput", bench_json_real(ok / secs));
    json_object_set_new(o, "output_throughput", bench_json_real(tokens / secs));
    json_object_set_new(o, "total_token_throughput",
                        bench_json_real((prompt_tokens + tokens) / secs));
    add_metric(o, "time to first token", "ttft", ttft, k);
    add_metric(o, "time per output token", "tpot", tpot, t);
    add_metric(o, "inter-token latency", "itl", itl, g);
    add_metric(o, "end-to-end latency", "e2el", e2e, k);
    free(ttft);
    free(tpot);
    free(e2e);
    free(itl);
    return o;
}

static int prepare(const bench_serve_args *a, bench_request *reqs, int n) {
    uint64_t rng = (uint64_t)a->seed * FOLIO_GOLDEN64 + 1;
    if (a->requests) {
        if (file_bodies(a, reqs, n) != 0) return -1;
    } else {
        for (int i = 0; i < n; i++) reqs[i].body = random_body(a, &rng);
    }
    double t = 0;
    for (int i = 0; i < n && a->rate > 0; i++) {
        double u = ((next_random(&rng) >> 11) + 0.5) * 0x1.0p-53;
        t += -log(u) / a->rate;
        reqs[i].start_at = t;
    }
    return 0;
}

int cmd_bench_serve(int argc, char **argv, comm_ctx *comm) {
    bench_serve_args a;
    if (parse_args(argc, argv, &a) != 0) return -1;
    if (comm->rank != 0) return 0;             /* a client: one process does the work */
    bench_json_file out;
    if (bench_json_prepare(&out, a.output_json) != 0) return -1;
    json_t *result = NULL;
    int n = (int)a.prompts, rc = 0;
    bench_request *reqs = folio_xcalloc(n, sizeof *reqs);
    if (prepare(&a, reqs, n) == 0) {
        int threads = (int)(a.concurrency < n ? a.concurrency : n);
        pthread_t *tid = folio_xmalloc(sizeof *tid * threads);
        bench_run run = {.a = &a, .reqs = reqs, .n = n, .t0 = folio_now()};
        pthread_mutex_init(&run.lock, NULL);
        progress_start(&run.bar, "requests", (uint64_t)n, "", true);
        int started = 0;
        for (; started < threads; started++)
            if (pthread_create(&tid[started], NULL, worker, &run) != 0) break;
        for (int i = 0; i < started; i++) pthread_join(tid[i], NULL);
        progress_finish(&run.bar);
        double secs = folio_now() - run.t0;
        pthread_mutex_destroy(&run.lock);
        free(tid);
        if (started == 0) rc = folio_fail("bench serve: cannot start client threads");
        else result = report(&a, reqs, n, secs);
        int failed = 0;
        for (int i = 0; i < n; i++) failed += reqs[i].e2e < 0;
        if (rc == 0 && failed == n)
            rc = folio_fail("bench serve: every request failed (is a server at %s:%d?)", a.host,
                            a.port);
    } else {
        rc = -1;
    }
    rc = bench_json_finish(&out, rc, result);
    for (int i = 0; i < n; i++) {
        free(reqs[i].body);
        free(reqs[i].gaps);
    }
    free(reqs);
    return rc;
}

/* folio bench MODE: `serve` is this client; latency and throughput run the engine
 * (cmd_bench.c). */
int cmd_bench_any(int argc, char **argv, comm_ctx *comm) {
    if (argc >= 2 && strcmp(argv[1], "serve") == 0) return cmd_bench_serve(argc - 1, argv + 1, comm);
    return cmd_bench(argc, argv, comm);
}
