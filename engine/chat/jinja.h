/* A compact Jinja interpreter for chat templates. It follows the environment transformers'
 * apply_chat_template uses (jinja2 ImmutableSandboxedEnvironment with trim_blocks,
 * lstrip_blocks, loop controls, the {% generation %} block, raise_exception, strftime_now,
 * and a tojson that writes like json.dumps(ensure_ascii=False)), and covers what real chat
 * templates use: for/if/set (with namespace), expressions, tests, filters, Python string and
 * dict methods, slicing. Anything else fails with "chat template line N: unsupported ...". */
#ifndef FOLIO_JINJA_H
#define FOLIO_JINJA_H

#include <stddef.h>

#include <jansson.h>

typedef struct jinja_template jinja_template;

/* Compiles a template. Returns NULL with one message recorded (folio_fail) naming the line and
 * the construct on a syntax error or an unsupported tag, filter or test. */
jinja_template *jinja_compile(const char *src);

/* Renders with the variables of `context` (a JSON object; a missing name is undefined). On
 * success *out is a malloc'd NUL-terminated string the caller frees and *out_len its length in
 * bytes (the text may hold NUL bytes if the data does). Returns 0, or -1 with a message naming
 * the line (a type error, an undefined value used, raise_exception's message). */
int jinja_render(const jinja_template *t, const json_t *context, char **out, size_t *out_len);

void jinja_free(jinja_template *t);

#endif
