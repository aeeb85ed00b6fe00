/* Typed reads of JSON fields with messages naming the source, the field, the expected and the
 * found value; parsing of JSON text and files into a top-level object. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "json_util.h"

static const char *origin_of(const json_src *src) {
    return src && src->origin && src->origin[0] ? src->origin : "JSON";
}

static void field_name(const json_src *src, const char *key, char *buf, size_t n) {
    if (src && src->object && src->object[0])
        snprintf(buf, n, "%s.%s", src->object, key);
    else
        snprintf(buf, n, "%s", key);
}

void json_describe(const json_t *v, char *buf, size_t n) {
    if (n == 0) return;
    if (!v) {
        snprintf(buf, n, "nothing");
        return;
    }
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(10));
    if (!text) {
        snprintf(buf, n, "(unprintable value)");
        return;
    }
    size_t len = strlen(text);
    if (len < n) {
        memcpy(buf, text, len + 1);
    } else if (n > 4) {
        memcpy(buf, text, n - 4);
        memcpy(buf + n - 4, "...", 4);
    } else {
        buf[0] = '\0';
    }
    free(text);
}

int json_fail_field(const json_src *src, const char *key, const char *expected,
                    const json_t *found) {
    char name[256], value[128];
    field_name(src, key, name, sizeof name);
    if (!found) return folio_fail("%s: field '%s': missing (expected %s)", origin_of(src), name,
                                  expected);
    json_describe(found, value, sizeof value);
    return folio_fail("%s: field '%s': expected %s, found %s", origin_of(src), name, expected,
                      value);
}

int json_fail_unsupported(const json_src *src, const char *key, const char *what,
                          const json_t *found) {
    char name[256], value[128];
    field_name(src, key, name, sizeof name);
    json_describe(found, value, sizeof value);
    return folio_fail("%s: field '%s': %s is not supported (found %s)", origin_of(src), name, what,
                      value);
}

/* The field's value, or NULL when it is missing or null. */
static const json_t *present(const json_t *obj, const char *key) {
    const json_t *v = obj ? json_object_get(obj, key) : NULL;
    return v && !json_is_null(v) ? v : NULL;
}

static int absent(const json_t *obj, const char *key, const json_src *src, const char *expected,
                  bool required) {
    if (!required) return JSON_ABSENT;
    return json_fail_field(src, key, expected, obj ? json_object_get(obj, key) : NULL);
}

/* An integer, or a real holding an integral value, within the range of long long. */
static bool integral(const json_t *v, long long *out) {
    if (json_is_integer(v)) {
        *out = (long long)json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (isfinite(d) && floor(d) == d && fabs(d) < 9.0e18) {
            *out = (long long)d;
            return true;
        }
    }
    return false;
}

static void int_expected(int min, int max, bool too_big, char *buf, size_t n) {
    const char *what = min == 1 ? "a positive integer" : min == 0 ? "a non-negative integer" : NULL;
    char tmp[48];
    if (!what) {
        snprintf(tmp, sizeof tmp, "an integer >= %d", min);
        what = tmp;
    }
    if (too_big)
        snprintf(buf, n, "%s (at most %d)", what, max);
    else
        snprintf(buf, n, "%s", what);
}

int json_value_int(const json_t *v, const char *key, const json_src *src, int min, int max,
                   int *out) {
    long long x = 0;
    bool ok = v && integral(v, &x);
    if (!ok || x < min || x > max) {
        char expected[96];
        int_expected(min, max, ok && x > max, expected, sizeof expected);
        return json_fail_field(src, key, expected, v);
    }
    *out = (int)x;
    return JSON_OK;
}

int json_get_int(const json_t *obj, const char *key, const json_src *src, int min, int max,
                 int *out, bool required) {
    const json_t *v = present(obj, key);
    if (!v) {
        char expected[96];
        int_expected(min, max, false, expected, sizeof expected);
        return absent(obj, key, src, expected, required);
    }
    return json_value_int(v, key, src, min, max, out);
}

int json_get_double(const json_t *obj, const char *key, const json_src *src, double *out,
                    bool required) {
    const json_t *v = present(obj, key);
    if (!v) return absent(obj, key, src, "a number", required);
    if (!json_is_number(v)) return json_fail_field(src, key, "a number", v);
    *out = json_number_value(v);
    return JSON_OK;
}

int json_get_positive(const json_t *obj, const char *key, const json_src *src, double *out,
                      bool required) {
    const json_t *v = present(obj, key);
    if (!v) return absent(obj, key, src, "a positive number", required);
    if (!json_is_number(v) || !(json_number_value(v) > 0))
        return json_fail_field(src, key, "a positive number", v);
    *out = json_number_value(v);
    return JSON_OK;
}

int json_get_bool(const json_t *obj, const char *key, const json_src *src, bool *out,
                  bool required) {
    const json_t *v = present(obj, key);
    if (!v) return absent(obj, key, src, "true or false", required);
    if (!json_is_boolean(v)) return json_fail_field(src, key, "true or false", v);
    *out = json_is_true(v);
    return JSON_OK;
}

int json_get_string(const json_t *obj, const char *key, const json_src *src, const char **out,
                    bool required) {
    const json_t *v = present(obj, key);
    if (!v) return absent(obj, key, src, "a string", required);
    if (!json_is_string(v)) return json_fail_field(src, key, "a string", v);
    *out = json_string_value(v);
    return JSON_OK;
}

int json_get_object(const json_t *obj, const char *key, const json_src *src, const json_t **out,
                    bool required) {
    const json_t *v = present(obj, key);
    if (!v) return absent(obj, key, src, "an object", required);
    if (!json_is_object(v)) return json_fail_field(src, key, "an object", v);
    *out = v;
    return JSON_OK;
}

int json_get_array(const json_t *obj, const char *key, const json_src *src, const json_t **out,
                   bool required) {
    const json_t *v = present(obj, key);
    if (!v) return absent(obj, key, src, "an array", required);
    if (!json_is_array(v)) return json_fail_field(src, key, "an array", v);
    *out = v;
    return JSON_OK;
}

/* Takes ownership of root: returns it when it is an object, else releases it and fails. */
static json_t *require_object(json_t *root, const char *origin) {
    if (json_is_object(root)) return root;
    char value[128];
    json_describe(root, value, sizeof value);
    folio_fail("%s: expected a JSON object at the top level, found %s", origin, value);
    json_decref(root);
    return NULL;
}

static void fail_syntax(const char *origin, const json_error_t *err) {
    folio_fail("%s: invalid JSON at line %d, column %d: %s", origin, err->line, err->column,
               err->text);
}

json_t *json_parse_object(const char *text, const char *origin) {
    if (!origin) origin = "JSON";
    if (!text) {
        folio_fail("%s: no JSON text given", origin);
        return NULL;
    }
    json_error_t err;
    json_t *root = json_loads(text, 0, &err);
    if (!root) {
        fail_syntax(origin, &err);
        return NULL;
    }
    return require_object(root, origin);
}

int json_read_file(const char *path, bool optional, json_t **out) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT && optional) return JSON_ABSENT;
        return folio_fail("%s: cannot open: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return folio_fail("%s: cannot read: is a directory, expected a JSON file", path);
    }
    json_error_t err;
    json_t *root = json_loadf(f, 0, &err);
    fclose(f);
    if (!root) {
        fail_syntax(path, &err);
        return -1;
    }
    *out = require_object(root, path);
    return *out ? JSON_OK : -1;
}
