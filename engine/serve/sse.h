/* A streamed response (server-sent events): the job's output as OpenAI chunks as it arrives,
 * then the error or usage chunk and "data: [DONE]". */
#ifndef FOLIO_SSE_H
#define FOLIO_SSE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "openai_format.h"
#include "serve_loop.h"

typedef struct sse_stream sse_stream;

/* What the stream's owner did when asked to wait for output (park): suspended the connection
 * until the job changes (the reader returns 0 and is called again on resume); nothing, as the
 * job changed meanwhile (the reader looks again); or the client is gone (the stream ends). */
typedef enum { SSE_PARKED, SSE_RETRY, SSE_GONE } sse_park_result;

/* A stream of j's output (accepted by the engine) formatted with x; both borrowed, they
 * outlive the stream. park(user): called when there is nothing to send yet. */
sse_stream *sse_stream_create(serve_job *j, const oai_response_ctx *x,
                              sse_park_result (*park)(void *user), void *user);
void sse_stream_free(sse_stream *s);

/* libmicrohttpd's content reader (cls: the stream). Never blocks: with nothing to send it
 * parks (see above) and returns 0. */
ssize_t sse_stream_read(void *cls, uint64_t pos, char *buf, size_t max);

#endif
