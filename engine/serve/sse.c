/* Server-sent events of a streamed generation: the pieces of a job's output as chunks (chat's
 * role chunk or completions' echo first), one token a chunk, then the end of the stream. */
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "error.h"
#include "sse.h"

struct sse_stream {
    serve_job *job;
    const oai_response_ctx *x;
    sse_park_result (*park)(void *);
    void *user;
    bool *started;               /* [choices] the role (chat) or echo chunk is out */
    text_buf out;                /* formatted, not yet sent from out_off */
    size_t out_off;
    bool ended;
};

sse_stream *sse_stream_create(serve_job *j, const oai_response_ctx *x,
                              sse_park_result (*park)(void *), void *user) {
    sse_stream *s = folio_xcalloc(1, sizeof *s);
    s->job = j;
    s->x = x;
    s->park = park;
    s->user = user;
    s->started = folio_xcalloc(job_n_choices(j), sizeof *s->started);
    return s;
}

void sse_stream_free(sse_stream *s) {
    if (!s) return;
    free(s->started);
    text_buf_free(&s->out);
    free(s);
}

/* Chat's first chunk of a choice carries the role; completions with echo send the prompt. */
static void start_choice(sse_stream *s, const serve_output *p) {
    if (s->started[p->choice]) return;
    if (s->x->kind == OAI_CHAT) {
        oai_format_chunk(s->x, p->choice, "", 0, NULL, NULL, true, &s->out);
        s->started[p->choice] = true;
    } else if (s->x->echo) {
        const char *e = s->x->echo[p->prompt];
        oai_format_chunk(s->x, p->choice, e, strlen(e), NULL, NULL, false, &s->out);
        s->started[p->choice] = true;
    }
}

/* job_read's callback: one piece as a chunk. */
static void on_piece(void *user, const serve_output *p) {
    sse_stream *s = user;
    start_choice(s, p);
    const char *finish = p->done ? oai_finish_name(p->finish) : NULL;
    if (p->n_tok == 0) {
        oai_format_chunk(s->x, p->choice, "", 0, NULL, finish, false, &s->out);
        return;
    }
    oai_tokens t = {.ids = p->ids, .lps = p->lps, .offs = p->offs, .n = p->n_tok,
                    .top_n = p->top_logprobs, .n_lead = p->n_lead};
    if (p->len > 0 || p->lps || p->done || s->x->return_token_ids)
        oai_format_chunk(s->x, p->choice, p->text, p->len, &t, finish, false, &s->out);
}

/* The end of the stream: the job's error, or its usage when asked for; then [DONE]. */
static void finish_stream(sse_stream *s) {
    char *failure = job_failure(s->job);
    if (failure) {
        char *e = oai_format_error(failure, "BadRequestError", "", 400);
        text_buf_append(&s->out, "data: ", 6);
        text_buf_append(&s->out, e, strlen(e));
        text_buf_append(&s->out, "\n\n", 2);
        free(e);
        free(failure);
    } else if (s->x->include_usage) {
        serve_stats st;
        job_stats(s->job, &st);
        oai_format_usage_chunk(s->x, st.prompt_tokens, st.completion_tokens, st.cached_tokens,
                               &s->out);
    }
    text_buf_append(&s->out, "data: [DONE]\n\n", 14);
    s->ended = true;
}

ssize_t sse_stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    sse_stream *s = cls;
    (void)pos;
    for (;;) {
        if (s->out_off < s->out.len) {
            size_t n = s->out.len - s->out_off;
            if (n > max) n = max;
            memcpy(buf, s->out.s + s->out_off, n);
            s->out_off += n;
            return (ssize_t)n;
        }
        s->out.len = s->out_off = 0;
        if (s->ended) return MHD_CONTENT_READER_END_OF_STREAM;
        int rc = job_read(s->job, on_piece, s);
        if (rc < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (rc > 0) finish_stream(s);
        if (s->out.len > 0) continue;
        switch (s->park(s->user)) {
        case SSE_PARKED: return 0;
        case SSE_RETRY: continue;
        default: return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}
