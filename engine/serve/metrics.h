/* Server metrics in the Prometheus text format, under vLLM's metric names with a "folio:"
 * prefix instead of "vllm:" (so a vLLM dashboard needs only the prefix changed): gauges of
 * running / waiting requests and KV cache usage, counters of tokens, prefix-cache queries and
 * hits, preemptions and finished requests, and histograms (vLLM's buckets) of time to first
 * token, inter-token latency, end-to-end latency and queue time. Folio's own metrics (KV
 * blocks, HTTP errors, interactive sessions) say "(folio)" in their help.
 *
 * The text passes `promtool check metrics` (tests/cli/server_metrics.sh) but for one lint rule
 * vLLM's names break by design: a ':' in a metric name. Counters end in _total and nothing
 * else does; label values are escaped (the model name may hold any byte).
 *
 * Thread-safety: every call locks the metrics' mutex; the engine thread observes, HTTP
 * threads render. Nothing here allocates while observing. */
#ifndef FOLIO_METRICS_H
#define FOLIO_METRICS_H

#include <stdint.h>

typedef enum { HIST_TTFT, HIST_ITL, HIST_E2E, HIST_QUEUE, HIST_COUNT } metrics_hist;

/* Gauges and cumulative engine counters, refreshed from the engine thread after each step. */
typedef struct {
    int running, waiting;
    double kv_usage;             /* fraction of KV blocks held by sequences, [0, 1] */
    int kv_blocks_total, kv_blocks_used;
    int64_t prefix_queries, prefix_hits;   /* tokens */
    int64_t preemptions;
    int64_t steps;
    double backend_s;            /* engine steps' time in the backend (rank 0's view) */
    double plan_s, token_s;      /* and outside it: the plan; the sampled tokens */
    double loop_s;               /* the engine thread's time around back-to-back steps */
    int64_t prompt_steps;        /* steps carrying prompt tokens, and their backend time */
    double prompt_backend_s;
    int sessions;                /* interactive sessions open */
    int64_t sessions_ended_client, sessions_ended_expired;
} metrics_engine;

typedef struct metrics metrics;

metrics *metrics_create(const char *model_name);
void metrics_free(metrics *m);

void metrics_observe(metrics *m, metrics_hist h, double seconds);
/* A finished request: its prompt and generated tokens, and its finish reason
 * ("stop", "length", "abort"). */
void metrics_request_done(metrics *m, int prompt_tokens, int generation_tokens,
                          const char *finish_reason);
void metrics_set_engine(metrics *m, const metrics_engine *e);
void metrics_get_engine(metrics *m, metrics_engine *out);
/* HTTP responses with an error status (4xx/5xx), by status. */
void metrics_http_error(metrics *m, int status);

/* The exposition text, malloc'd (caller frees). */
char *metrics_render(metrics *m);

#endif
