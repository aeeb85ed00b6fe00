/* Request lengths from a JSONL request file (the --requests format of folio generate): what
 * folio bench throughput replays when given a file instead of fixed or random lengths. */
#ifndef FOLIO_REQUEST_LENGTHS_H
#define FOLIO_REQUEST_LENGTHS_H

#include "tokenizer.h"

/* Reads every non-blank line of path: the prompt length from "prompt_ids" (an array) or from
 * "prompt" (a string, encoded with tok; an error when tok is NULL), the output length from
 * "max_tokens" (default_out when absent). *in_lens and *out_lens are malloc'd [*n] arrays the
 * caller frees. -1 with a message naming the file, the line and the field. */
int request_lengths_read(const char *path, tokenizer *tok, int default_out, int **in_lens,
                         int **out_lens, int *n);

#endif
