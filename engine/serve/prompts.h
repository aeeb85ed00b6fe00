/* Requests -> prompt token ids for the server: chat messages through the chat template,
 * text through the tokenizer (both serialised by one lock), id lists as given; the prompt
 * checks (not empty, shorter than the context) and the max_tokens policy. */
#ifndef FOLIO_PROMPTS_H
#define FOLIO_PROMPTS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "chat_template.h"
#include "openai_api.h"
#include "tokenizer.h"

typedef struct {
    tokenizer *tok;
    const chat_template *ct;     /* NULL: the model has none */
    int max_model_len;
    pthread_mutex_t mu;          /* tokenizer_encode and template rendering */
} prompt_builder;

/* The prompts of one request. */
typedef struct {
    int n;
    int32_t **ids;               /* [n] owned token ids */
    int *len;                    /* [n] */
} prompt_set;

void prompt_builder_init(prompt_builder *b, tokenizer *tok, const chat_template *ct,
                         int max_model_len);
void prompt_builder_destroy(prompt_builder *b);

/* rq's prompts (chat: one) -> ids. 0, or -1 with a message naming the field. */
int prompt_build(prompt_builder *b, const oai_request *rq, prompt_set *out);
void prompt_set_free(prompt_set *ps);

/* The max_tokens a request runs with: as asked; without it, chat gets the room its prompts
 * leave in the context, completions their default cut to that room. */
int prompt_max_tokens(const prompt_builder *b, const oai_request *rq, const prompt_set *ps);

/* The text of ids[0..n) (echo). malloc'd. */
char *prompt_text(const prompt_builder *b, const int32_t *ids, int n, bool skip_special);

/* A /tokenize body (an object: "prompt", or "messages" with "add_generation_prompt" and
 * "tools"; and "add_special_tokens") -> ids. 0, or -1 with a message. */
int prompt_tokenize(prompt_builder *b, const json_t *body, token_ids *out);

#endif
