/* The HTTP side of `folio serve` (rank 0): libmicrohttpd, the OpenAI routes
 * (/v1/completions, /v1/chat/completions, /v1/models), /health, /metrics, /tokenize and
 * /detokenize; Bearer authentication, CORS (off by default), and limits on everything a client
 * can hold (docs/reliability.md, "Server limits").
 *
 * Threads: libmicrohttpd's small pool (epoll) does the sockets and never blocks; a few
 * preparation threads parse bodies, render chat templates, tokenize and submit jobs to the
 * engine thread (serve_loop.h); the engine thread never waits on either. A connection whose
 * job (or preparation) is not ready is suspended ("parked") and resumed as soon as the job
 * tells it something changed (job_set_notify) or its preparation is done; a waker thread
 * looks every 100 ms for parked clients that went away (their jobs are cancelled). A stream is
 * sent from the job's choices as tokens arrive. */
#ifndef FOLIO_HTTP_SERVER_H
#define FOLIO_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat_template.h"
#include "metrics.h"
#include "openai_api.h"
#include "serve_loop.h"
#include "tokenizer.h"
#include "tool_calls.h"

typedef struct {
    const char *host;            /* address to bind (default 127.0.0.1) */
    int port;
    const char *api_key;         /* NULL: no authentication; else every route but /health and
                                  * /metrics needs it */
    const char *served_name;
    int max_queue;               /* sequences beyond max_n running + this many waiting: 429 */
    int64_t max_queue_tokens;    /* tokens (prompt + max_tokens, every sequence) in flight
                                  * beyond which new requests get 429; 0: no limit */
    int max_n;                   /* --max-num-seqs */
    int max_model_len;
    int vocab;
    size_t max_body;             /* bytes; larger bodies get 413 before being read */
    size_t max_tokenize_body;    /* the same for /tokenize and /detokenize */
    size_t max_buffered;         /* body bytes held at once by all clients (503 beyond); 0: none */
    size_t max_buffered_client;  /* ... by one client address (429 beyond); 0: none */
    int max_connections;         /* connections served at once (503 beyond); 0: as many as the
                                  * open-file limit allows */
    int idle_timeout_s;          /* a connection silent this long is closed */
    int threads;                 /* libmicrohttpd's threads */
    bool cors;
    bool access_log;             /* a line per request when it ends (http_server.c log_access) */
    bool log_requests;           /* the generation parameters in the line too */
    const oai_defaults *defaults; /* requests' sampling defaults (NULL: the built-in ones) */
    serve_tools tools;           /* how tool calls are read from the output */
} http_config;

typedef struct http_server http_server;

/* Binds and starts serving. tok: the tokenizer (encoding is serialised here); ct: the chat
 * template, or NULL (chat requests get 400). NULL with a message. */
http_server *http_server_start(const http_config *c, serve_loop *L, tokenizer *tok,
                               const chat_template *ct, metrics *m);
/* The port bound (useful with port 0). */
int http_server_port(const http_server *s);
/* Connections served at once (beyond: 503) and held open at most. */
void http_server_connection_limits(const http_server *s, unsigned *served, unsigned *held);
/* Stops accepting connections; requests in progress go on. */
void http_server_quiesce(http_server *s);
/* Requests being handled now. */
int http_server_active(http_server *s);
void http_server_stop(http_server *s);

#endif
