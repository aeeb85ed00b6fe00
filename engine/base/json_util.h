/* Typed reads of JSON fields (jansson) for configuration files: config.json,
 * generation_config.json, tokenizer_config.json, server settings. Each failure records one
 * message (folio_fail) naming the source, the field, what was expected and what was found, e.g.
 *   config.json: field 'hidden_size': expected a positive integer, found "abc"
 *   config.json: field 'rope_scaling.factor': expected a positive number, found -2
 * A field that is missing or JSON null counts as absent. */
#ifndef FOLIO_JSON_UTIL_H
#define FOLIO_JSON_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* Where fields are read from, for messages only: the source (a file path or another name) and the
 * dotted path of the object inside it (NULL or "" for the top level). */
typedef struct {
    const char *origin;
    const char *object;
} json_src;

/* Results of the json_get_* readers; failures return -1 with the message recorded. */
enum { JSON_OK = 0, JSON_ABSENT = 1 };

/* Integer field in [min, max]. A real with an integral value (4096.0) is accepted; booleans,
 * strings and fractions are not. Absent: error when required, else JSON_ABSENT, *out untouched.
 * The message says "a positive integer" (min 1), "a non-negative integer" (min 0) or "an integer
 * >= min", and adds "(at most max)" when the value is too large. */
int json_get_int(const json_t *obj, const char *key, const json_src *src, int min, int max,
                 int *out, bool required);

/* Any number (integer or real). */
int json_get_double(const json_t *obj, const char *key, const json_src *src, double *out,
                    bool required);

/* A number > 0. */
int json_get_positive(const json_t *obj, const char *key, const json_src *src, double *out,
                      bool required);

int json_get_bool(const json_t *obj, const char *key, const json_src *src, bool *out,
                  bool required);

/* *out borrows the string, valid while obj lives. */
int json_get_string(const json_t *obj, const char *key, const json_src *src, const char **out,
                    bool required);

/* *out borrows the object / array, valid while obj lives. */
int json_get_object(const json_t *obj, const char *key, const json_src *src, const json_t **out,
                    bool required);
int json_get_array(const json_t *obj, const char *key, const json_src *src, const json_t **out,
                   bool required);

/* Converts one JSON value (an array element, say) to an int in [min, max]; `key` names it in the
 * message ("eos_token_id[2]"). */
int json_value_int(const json_t *v, const char *key, const json_src *src, int min, int max,
                   int *out);

/* Records "ORIGIN: field 'OBJECT.KEY': expected EXPECTED, found FOUND" (found NULL: "found
 * nothing (missing)") and returns -1. For checks the readers above do not make. */
int json_fail_field(const json_src *src, const char *key, const char *expected,
                    const json_t *found);

/* Records "ORIGIN: field 'OBJECT.KEY': WHAT is not supported (found FOUND)" and returns -1: for a
 * well-formed value that names a feature the program lacks. */
int json_fail_unsupported(const json_src *src, const char *key, const char *what,
                          const json_t *found);

/* Compact text of a value for messages ("abc" quoted, 1e-05, [1,2]), cut to fit n bytes with
 * "..." at the end. */
void json_describe(const json_t *v, char *buf, size_t n);

/* Parses text that must hold one JSON object. NULL on failure, with "ORIGIN: invalid JSON at line
 * L, column C: REASON" or "ORIGIN: expected a JSON object at the top level, found ...". */
json_t *json_parse_object(const char *text, const char *origin);

/* Reads the file at path, which must hold one JSON object: JSON_OK with a new reference in *out;
 * JSON_ABSENT when optional and the file does not exist; -1 when it cannot be read (the message
 * names the path and the reason) or does not parse. */
int json_read_file(const char *path, bool optional, json_t **out);

#endif
