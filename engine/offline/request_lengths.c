/* Prompt and output lengths of the requests in a JSONL file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "error.h"
#include "grow.h"
#include "request_lengths.h"

/* One line's lengths; -1 with a message naming the field. */
static int line_lengths(json_t *o, tokenizer *tok, int default_out, int *in, int *out) {
    json_t *ids = json_object_get(o, "prompt_ids"), *text = json_object_get(o, "prompt");
    if (json_is_array(ids)) {
        *in = (int)json_array_size(ids);
    } else if (json_is_string(text)) {
        if (!tok) return folio_fail("field 'prompt': a text prompt needs the model's tokenizer");
        token_ids t = {0};
        int rc = tokenizer_encode(tok, json_string_value(text), json_string_length(text), true, &t);
        *in = (int)t.n;
        token_ids_free(&t);
        if (rc != 0) return -1;
    } else {
        return folio_fail("no 'prompt_ids' array or 'prompt' string");
    }
    json_t *max = json_object_get(o, "max_tokens");
    if (max && !json_is_integer(max)) return folio_fail("field 'max_tokens': expected an integer");
    *out = max ? (int)json_integer_value(max) : default_out;
    if (*in < 1 || *out < 1)
        return folio_fail("a prompt of %d tokens asking for %d: both must be at least 1", *in,
                          *out);
    return 0;
}

int request_lengths_read(const char *path, tokenizer *tok, int default_out, int **in_lens,
                         int **out_lens, int *n) {
    FILE *f = fopen(path, "r");
    if (!f) return folio_fail("%s: cannot open it", path);
    int cap = 0, count = 0, line_no = 0, rc = 0;
    int *in = NULL, *out = NULL;
    char *line = NULL;
    size_t line_cap = 0;
    while (rc == 0 && getline(&line, &line_cap, f) >= 0) {
        line_no++;
        if (strspn(line, " \t\r\n") == strlen(line)) continue;
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        if (!json_is_object(o)) {
            rc = folio_fail("%s line %d: not a JSON object (%s)", path, line_no,
                            o ? "another JSON value" : err.text);
            json_decref(o);
            break;
        }
        if (count == cap) {
            cap = (int)folio_grow_cap((size_t)cap, (size_t)count + 1);
            in = folio_xrealloc(in, sizeof *in * cap);
            out = folio_xrealloc(out, sizeof *out * cap);
        }
        if (line_lengths(o, tok, default_out, &in[count], &out[count]) != 0)
            rc = folio_fail_context("%s line %d", path, line_no);
        else
            count++;
        json_decref(o);
    }
    free(line);
    fclose(f);
    if (rc == 0 && count == 0) rc = folio_fail("%s: no requests in it", path);
    if (rc != 0) {
        free(in);
        free(out);
        return -1;
    }
    *in_lens = in;
    *out_lens = out;
    *n = count;
    return 0;
}
