/* A model's chat template: the Jinja source from DIR/chat_template.jinja or
 * DIR/tokenizer_config.json ("chat_template" as a string, or a list of {name, template} of which
 * "default" is used, or "tool_use" when tools are given, as transformers does), the bos/eos
 * token strings (a string or {"content": ...}), and rendering of a conversation with the
 * variables transformers' apply_chat_template passes. */
#ifndef FOLIO_CHAT_TEMPLATE_H
#define FOLIO_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

typedef struct chat_template chat_template;

/* Loads and compiles the template(s) of model_dir. Returns NULL with a message naming the file
 * (missing, not JSON, no chat_template, a syntax error with its line). */
chat_template *chat_template_load(const char *model_dir);

/* The same with src (Jinja text) as the one template in place of the model's own (vLLM's
 * --chat-template); origin names it in messages (the file). The bos/eos token strings still
 * come from model_dir's tokenizer_config.json, which may be missing. */
chat_template *chat_template_load_source(const char *model_dir, const char *src,
                                         const char *origin);

/* Renders messages (a JSON array of message objects) with tools (a JSON array, or NULL for
 * none) and add_generation_prompt. *out is malloc'd (caller frees), *out_len its byte length.
 * Returns 0, or -1 with a message. */
int chat_template_render(const chat_template *ct, const json_t *messages, const json_t *tools,
                         bool add_generation_prompt, char **out, size_t *out_len);

/* The Jinja source of template i (0 <= i), or NULL past the last one. */
const char *chat_template_source(const chat_template *ct, int i);

void chat_template_free(chat_template *ct);

#endif
