/* The one registry of the FOLIO_* environment variables the engine reads: name, default and
 * meaning of each (folio --help-env prints the table; docs/launch.md has it too). Every read
 * goes through folio_env, so a variable missing from the table is a bug, not a silent knob.
 * FOLIO_CUDA_SYNC_CHECK is a compile-time define (cuda_check.h), not an environment variable. */
#ifndef FOLIO_ENV_H
#define FOLIO_ENV_H

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *name;
    const char *def;     /* what unset means, in words */
    const char *meaning; /* one line */
} folio_env_var;

/* The variable's value as set in the environment, or NULL when unset (the reader then applies
 * the default the table states). Aborts with FOLIO_BUG when name is not registered. */
const char *folio_env(const char *name);

/* The table: *n entries. */
const folio_env_var *folio_env_vars(int *n);

/* Prints the table, one variable a paragraph (folio --help-env). */
void folio_env_print(FILE *out);

#ifdef __cplusplus
}
#endif

#endif
