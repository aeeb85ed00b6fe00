/* Tool calling in the server: the format from the flag or the chat template, and each
 * request's tool options checked against it. */
#include <string.h>

#include "error.h"
#include "openai_format.h"
#include "tool_calls.h"

int serve_tools_resolve(const char *parser, const chat_template *ct, const tokenizer *tok,
                        serve_tools *out) {
    *out = (serve_tools){0};
    if (parser && strcmp(parser, "auto") != 0) {
        if (tool_format_parse(parser, &out->format) != 0)
            return folio_fail_context("--tool-call-parser");
    } else {
        const char *src;
        for (int i = 0; (src = chat_template_source(ct, i)) && !out->format; i++)
            out->format = tool_format_detect(src);
        out->from_template = out->format != TOOL_FORMAT_NONE;
    }
    for (const char *const *m = tool_format_markers(out->format); *m; m++) {
        int32_t id = tokenizer_token_id(tok, *m);
        if (id >= 0 && tokenizer_is_special(tok, id)) out->keep_special = true;
    }
    return 0;
}

int oai_tools_prepare(oai_request *rq, const serve_tools *st, oai_tool_ctx *out) {
    *out = (oai_tool_ctx){.format = TOOL_FORMAT_NONE, .parallel = rq->parallel_tool_calls};
    if (!rq->tools || rq->tool_choice == OAI_TOOLS_NONE) return 0;
    if (st->format == TOOL_FORMAT_NONE)
        return folio_fail("request body: field 'tools': this server reads no tool calls from "
                          "this model's output (its chat template shows none of the hermes, "
                          "llama3_json and mistral formats): start folio serve with "
                          "--tool-call-parser NAME, or send \"tool_choice\": \"none\"");
    out->format = st->format;
    out->forced = rq->tool_choice == OAI_TOOLS_REQUIRED || rq->tool_choice == OAI_TOOLS_NAMED;
    out->named = rq->tool_choice == OAI_TOOLS_NAMED;
    if (st->keep_special) { /* the markers are special tokens: keep them in the text */
        rq->skip_special = false;
        rq->p.keep_special = true;
    }
    return 0;
}

bool oai_tools_shown(const oai_tool_ctx *t, int k) { return t->parallel || k == 0; }

const char *oai_tools_finish(const oai_tool_ctx *t, finish_reason f, int n_calls) {
    if (t->format != TOOL_FORMAT_NONE && n_calls > 0 && !t->named && f == FINISH_STOP)
        return "tool_calls";
    return oai_finish_name(f);
}
