/* The HTTP side of `folio serve` (rank 0): libmicrohttpd, one thread per connection, the
 * OpenAI routes (/v1/completions, /v1/chat/completions, /v1/models), /health, /metrics,
 * /tokenize and /detokenize; Bearer authentication, body limits, CORS (off by default).
 *
 * Connection threads parse and tokenize, submit jobs to the engine thread (serve_loop.h) and
 * wait on the job without holding anything the engine needs; a stream is sent from the
 * job's choices as tokens arrive. A client that goes away (seen within 100 ms while
 * waiting, or on the next write) has its job cancelled. */
#ifndef FOLIO_HTTP_SERVER_H
#define FOLIO_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "chat_template.h"
#include "metrics.h"
#include "serve_loop.h"
#include "tokenizer.h"
#include "tool_calls.h"

typedef struct {
    const char *host;            /* address to bind (default 127.0.0.1) */
    int port;
    const char *api_key;         /* NULL: no authentication */
    const char *served_name;
    int max_queue;               /* jobs beyond max_n running + this many waiting: 429 */
    int max_n;                   /* --max-num-seqs */
    int max_model_len;
    int vocab;
    size_t max_body;             /* bytes; larger bodies get 413 before being read */
    bool cors;
    bool log_requests;           /* log each request's parameters too */
    serve_tools tools;           /* how tool calls are read from the output */
} http_config;

typedef struct http_server http_server;

/* Binds and starts serving. tok: the tokenizer (encoding is serialised here); ct: the chat
 * template, or NULL (chat requests get 400). NULL with a message. */
http_server *http_server_start(const http_config *c, serve_loop *L, tokenizer *tok,
                               const chat_template *ct, metrics *m);
/* The port bound (useful with port 0). */
int http_server_port(const http_server *s);
/* Stops accepting connections; requests in progress go on. */
void http_server_quiesce(http_server *s);
/* Requests being handled now. */
int http_server_active(http_server *s);
void http_server_stop(http_server *s);

#endif
