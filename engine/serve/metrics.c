/* Prometheus metrics of the server (vLLM's names and buckets, "folio:" prefix). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "metrics.h"
#include "text_buf.h"
#include "utf8.h"

#define MAX_BUCKETS 24

typedef struct {
    const char *name, *help;
    int n;
    double le[MAX_BUCKETS];
    uint64_t counts[MAX_BUCKETS]; /* per bucket (not cumulative) */
    uint64_t count;
    double sum;
} histogram;

/* vLLM's buckets (vllm/v1/metrics/loggers.py). */
static const histogram HISTS[HIST_COUNT] = {
    [HIST_TTFT] = {"time_to_first_token_seconds", "Histogram of time to first token in seconds.",
                   22, {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
                        2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0}, {0}, 0, 0},
    [HIST_ITL] = {"inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
                  19, {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
                       5.0, 7.5, 10.0, 20.0, 40.0, 80.0}, {0}, 0, 0},
    [HIST_E2E] = {"e2e_request_latency_seconds",
                  "Histogram of e2e request latency in seconds.",
                  21, {0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
                       60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0}, {0}, 0, 0},
    [HIST_QUEUE] = {"request_queue_time_seconds",
                    "Histogram of time spent in WAITING phase for request.",
                    21, {0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0,
                         50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0}, {0}, 0, 0},
};

enum { FIN_STOP, FIN_LENGTH, FIN_ABORT, FIN_COUNT };
static const char *const FIN_NAMES[FIN_COUNT] = {"stop", "length", "abort"};

struct metrics {
    pthread_mutex_t mu;
    char *model;                 /* the model name as a label value: escaped */
    histogram h[HIST_COUNT];
    uint64_t prompt_tokens, generation_tokens;
    uint64_t success[FIN_COUNT];
    uint64_t http_errors[600];
    metrics_engine eng;
};

/* A label value in the text format: valid UTF-8 (invalid bytes become U+FFFD), with
 * backslash, double quote and line feed escaped. malloc'd. */
static char *label_value(const char *v) {
    char *u = NULL;
    size_t n = 0, cap = 0;
    utf8_append_lossy((const uint8_t *)v, strlen(v), &u, &n, &cap);
    text_buf o = {0};
    for (size_t i = 0; i < n; i++) {
        if (u[i] == '\\') text_buf_puts(&o, "\\\\");
        else if (u[i] == '"') text_buf_puts(&o, "\\\"");
        else if (u[i] == '\n') text_buf_puts(&o, "\\n");
        else text_buf_putc(&o, u[i]);
    }
    free(u);
    return text_buf_take(&o);
}

metrics *metrics_create(const char *model_name) {
    metrics *m = folio_xcalloc(1, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    m->model = label_value(model_name);
    memcpy(m->h, HISTS, sizeof m->h);
    return m;
}

void metrics_free(metrics *m) {
    if (!m) return;
    pthread_mutex_destroy(&m->mu);
    free(m->model);
    free(m);
}

void metrics_observe(metrics *m, metrics_hist which, double seconds) {
    pthread_mutex_lock(&m->mu);
    histogram *h = &m->h[which];
    int b = 0;
    while (b < h->n && seconds > h->le[b]) b++;
    if (b < h->n) h->counts[b]++;
    h->count++;
    h->sum += seconds;
    pthread_mutex_unlock(&m->mu);
}

void metrics_request_done(metrics *m, int prompt_tokens, int generation_tokens,
                          const char *finish_reason) {
    int f = FIN_ABORT;
    for (int i = 0; i < FIN_COUNT; i++)
        if (strcmp(finish_reason, FIN_NAMES[i]) == 0) f = i;
    pthread_mutex_lock(&m->mu);
    m->prompt_tokens += (uint64_t)prompt_tokens;
    m->generation_tokens += (uint64_t)generation_tokens;
    m->success[f]++;
    pthread_mutex_unlock(&m->mu);
}

void metrics_set_engine(metrics *m, const metrics_engine *e) {
    pthread_mutex_lock(&m->mu);
    m->eng = *e;
    pthread_mutex_unlock(&m->mu);
}

void metrics_get_engine(metrics *m, metrics_engine *out) {
    pthread_mutex_lock(&m->mu);
    *out = m->eng;
    pthread_mutex_unlock(&m->mu);
}

void metrics_http_error(metrics *m, int status) {
    if (status < 0 || status >= 600) return;
    pthread_mutex_lock(&m->mu);
    m->http_errors[status]++;
    pthread_mutex_unlock(&m->mu);
}

/* ---- rendering ---- */

static void header(text_buf *o, const char *name, const char *type, const char *help) {
    text_buf_printf(o, "# HELP folio:%s %s\n# TYPE folio:%s %s\n", name, help, name, type);
}

static void gauge(text_buf *o, const char *model, const char *name, const char *help, double v) {
    header(o, name, "gauge", help);
    text_buf_printf(o, "folio:%s{model_name=\"%s\"} %.17g\n", name, model, v);
}

static void counter(text_buf *o, const char *model, const char *name, const char *help,
                    uint64_t v) {
    header(o, name, "counter", help);
    text_buf_printf(o, "folio:%s{model_name=\"%s\"} %llu\n", name, model, (unsigned long long)v);
}

char *metrics_render(metrics *m) {
    text_buf o = {0};
    pthread_mutex_lock(&m->mu);
    const char *mn = m->model;
    const metrics_engine *e = &m->eng;
    gauge(&o, mn, "num_requests_running", "Number of requests in model execution batches.",
          e->running);
    gauge(&o, mn, "num_requests_waiting", "Number of requests waiting to be processed.",
          e->waiting);
    gauge(&o, mn, "kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.",
          e->kv_usage);
    gauge(&o, mn, "gpu_cache_usage_perc", "KV-cache usage (vLLM v0 name). 1 means 100 percent.",
          e->kv_usage);
    gauge(&o, mn, "kv_cache_num_blocks", "KV cache blocks in the pool (folio).",
          e->kv_blocks_total);
    gauge(&o, mn, "kv_cache_blocks_used", "KV cache blocks held by sequences (folio).",
          e->kv_blocks_used);
    counter(&o, mn, "prefix_cache_queries_total", "Prefix cache queries, in terms of number "
            "of queried tokens.", (uint64_t)e->prefix_queries);
    counter(&o, mn, "prefix_cache_hits_total", "Prefix cache hits, in terms of number of "
            "cached tokens.", (uint64_t)e->prefix_hits);
    counter(&o, mn, "num_preemptions_total", "Cumulative number of preemptions.",
            (uint64_t)e->preemptions);
    counter(&o, mn, "engine_steps_total", "Engine steps run (folio).", (uint64_t)e->steps);
    header(&o, "engine_step_seconds_total", "counter", "Time of the engine steps by part: "
           "backend (the forward and sampling on the device, rank 0's view), plan (scheduling "
           "and the step's plan), tokens (the sampled tokens: stop checks, text, streaming to "
           "the requests) and loop (the engine thread around steps run back to back: "
           "admission, cancels, metrics) (folio).");
    static const char *const PARTS[] = {"backend", "plan", "tokens", "loop"};
    const double part_s[] = {e->backend_s, e->plan_s, e->token_s, e->loop_s};
    for (int i = 0; i < 4; i++)
        text_buf_printf(&o, "folio:engine_step_seconds_total{model_name=\"%s\",part=\"%s\"} "
                            "%.6f\n", mn, PARTS[i], part_s[i]);
    counter(&o, mn, "engine_prompt_steps_total", "Engine steps that carried prompt tokens "
            "(prefill chunks, alone or beside decodes; such steps run without CUDA graphs) "
            "(folio).", (uint64_t)e->prompt_steps);
    header(&o, "engine_prompt_step_backend_seconds_total", "counter", "Backend time of the "
           "engine steps that carried prompt tokens (folio).");
    text_buf_printf(&o, "folio:engine_prompt_step_backend_seconds_total{model_name=\"%s\"} "
                        "%.6f\n", mn, e->prompt_backend_s);
    gauge(&o, mn, "num_sessions", "Interactive sessions open: parked between turns or in their "
          "first turn (folio).", e->sessions);
    header(&o, "sessions_ended_total", "counter", "Interactive sessions ended, by reason: "
           "client (end_session or DELETE /v1/sessions) or expired (--session-idle-timeout) "
           "(folio).");
    text_buf_printf(&o, "folio:sessions_ended_total{model_name=\"%s\",reason=\"client\"} %llu\n"
                        "folio:sessions_ended_total{model_name=\"%s\",reason=\"expired\"} %llu\n",
                    mn, (unsigned long long)e->sessions_ended_client, mn,
                    (unsigned long long)e->sessions_ended_expired);
    counter(&o, mn, "prompt_tokens_total", "Number of prefill tokens processed.", m->prompt_tokens);
    counter(&o, mn, "generation_tokens_total", "Number of generation tokens processed.",
            m->generation_tokens);
    header(&o, "request_success_total", "counter", "Count of successfully processed requests.");
    for (int f = 0; f < FIN_COUNT; f++)
        text_buf_printf(
            &o, "folio:request_success_total{finished_reason=\"%s\",model_name=\"%s\"} %llu\n",
            FIN_NAMES[f], mn, (unsigned long long)m->success[f]);
    header(&o, "http_errors_total", "counter", "HTTP responses with an error status (folio).");
    for (int s = 0; s < 600; s++)
        if (m->http_errors[s])
            text_buf_printf(&o, "folio:http_errors_total{status=\"%d\"} %llu\n", s,
                            (unsigned long long)m->http_errors[s]);
    for (int i = 0; i < HIST_COUNT; i++) {
        const histogram *h = &m->h[i];
        header(&o, h->name, "histogram", h->help);
        uint64_t cum = 0;
        for (int b = 0; b < h->n; b++) {
            cum += h->counts[b];
            text_buf_printf(&o, "folio:%s_bucket{le=\"%g\",model_name=\"%s\"} %llu\n", h->name,
                            h->le[b], mn, (unsigned long long)cum);
        }
        text_buf_printf(&o, "folio:%s_bucket{le=\"+Inf\",model_name=\"%s\"} %llu\n", h->name, mn,
                        (unsigned long long)h->count);
        text_buf_printf(&o, "folio:%s_count{model_name=\"%s\"} %llu\n", h->name, mn,
                        (unsigned long long)h->count);
        text_buf_printf(&o, "folio:%s_sum{model_name=\"%s\"} %.9g\n", h->name, mn, h->sum);
    }
    pthread_mutex_unlock(&m->mu);
    return text_buf_take(&o);
}
