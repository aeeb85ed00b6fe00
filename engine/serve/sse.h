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

/* A stream of j's output (accepted by the engine) formatted with x; both borrowed, they
 * outlive the stream. gone(user): the client went away (checked while waiting). */
sse_stream *sse_stream_create(serve_job *j, const oai_response_ctx *x, bool (*gone)(void *),
                              void *user);
void sse_stream_free(sse_stream *s);

/* libmicrohttpd's content reader (cls: the stream): blocks until there is output. */
ssize_t sse_stream_read(void *cls, uint64_t pos, char *buf, size_t max);

#endif
