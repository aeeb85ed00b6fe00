/* Run-time values of the Jinja interpreter with Python's semantics: construction (also from
 * JSON input), truthiness, equality and ordering, str() and repr() as Python writes them
 * (floats in shortest round-trip form), and json.dumps(ensure_ascii=False) for tojson. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "jinja_internal.h"

static jval *make(jarena *a, jv_kind kind) {
    jval *v = jarena_alloc(a, sizeof *v);
    v->kind = kind;
    return v;
}

jval *jv_undef(jarena *a, const char *why) {
    jval *v = make(a, JV_UNDEF);
    v->u.fn.name = why;
    return v;
}
jval *jv_none(jarena *a) { return make(a, JV_NONE); }
jval *jv_bool(jarena *a, bool b) {
    jval *v = make(a, JV_BOOL);
    v->u.b = b;
    return v;
}
jval *jv_int(jarena *a, long long i) {
    jval *v = make(a, JV_INT);
    v->u.i = i;
    return v;
}
jval *jv_float(jarena *a, double f) {
    jval *v = make(a, JV_FLOAT);
    v->u.f = f;
    return v;
}
jval *jv_str(jarena *a, const char *s, size_t n) {
    jval *v = make(a, JV_STR);
    v->u.str.s = jarena_strndup(a, s, n);
    v->u.str.n = n;
    return v;
}
jval *jv_str_take_buf(jarena *a, text_buf *b) {
    jval *v = jv_str(a, b->s ? b->s : "", b->len);
    text_buf_free(b);
    return v;
}
jval *jv_list(jarena *a) { return make(a, JV_LIST); }

void jv_list_push(jarena *a, jval *l, jval *x) {
    JARENA_PUSH_ROOM(a, l->u.list.items, l->u.list.n, l->u.list.cap);
    l->u.list.items[l->u.list.n++] = x;
}

jval *jv_dict(jarena *a, jv_kind kind) { return make(a, kind); }

jval *jv_dict_get(const jval *d, const jval *key) {
    for (size_t k = 0; k < d->u.dict.n; k++)
        if (jv_equal(d->u.dict.keys[k], key)) return d->u.dict.vals[k];
    return NULL;
}

jval *jv_dict_get_str(const jval *d, const char *key) {
    size_t n = strlen(key);
    for (size_t k = 0; k < d->u.dict.n; k++) {
        const jval *x = d->u.dict.keys[k];
        if (x->kind == JV_STR && x->u.str.n == n && memcmp(x->u.str.s, key, n) == 0)
            return d->u.dict.vals[k];
    }
    return NULL;
}

void jv_dict_set(jarena *a, jval *d, jval *key, jval *v) {
    for (size_t k = 0; k < d->u.dict.n; k++)
        if (jv_equal(d->u.dict.keys[k], key)) {
            d->u.dict.vals[k] = v;
            return;
        }
    if (d->u.dict.n == d->u.dict.cap) {
        size_t n = d->u.dict.n, cap = folio_grow_cap(d->u.dict.cap, n + 1);
        d->u.dict.keys = jarena_grow(a, d->u.dict.keys, n, cap, sizeof *d->u.dict.keys);
        d->u.dict.vals = jarena_grow(a, d->u.dict.vals, n, cap, sizeof *d->u.dict.vals);
        d->u.dict.cap = cap;
    }
    d->u.dict.keys[d->u.dict.n] = key;
    d->u.dict.vals[d->u.dict.n++] = v;
}

jval *jv_func(jarena *a, jv_kind kind, const char *name, jval *self) {
    jval *v = make(a, kind);
    v->u.fn.name = name;
    v->u.fn.self = self;
    return v;
}

jval *jv_from_json(jarena *a, const json_t *j) {
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        jval *d = jv_dict(a, JV_DICT);
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)j, key, v)
            jv_dict_set(a, d, jv_str(a, key, strlen(key)), jv_from_json(a, v));
        return d;
    }
    case JSON_ARRAY: {
        jval *l = jv_list(a);
        for (size_t k = 0; k < json_array_size(j); k++)
            jv_list_push(a, l, jv_from_json(a, json_array_get(j, k)));
        return l;
    }
    case JSON_STRING: return jv_str(a, json_string_value(j), json_string_length(j));
    case JSON_INTEGER: return jv_int(a, (long long)json_integer_value(j));
    case JSON_REAL: return jv_float(a, json_real_value(j));
    case JSON_TRUE: return jv_bool(a, true);
    case JSON_FALSE: return jv_bool(a, false);
    default: return jv_none(a);
    }
}

bool jv_truthy(const jval *v) {
    switch (v->kind) {
    case JV_UNDEF: case JV_NONE: return false;
    case JV_BOOL: return v->u.b;
    case JV_INT: return v->u.i != 0;
    case JV_FLOAT: return v->u.f != 0.0;
    case JV_STR: return v->u.str.n > 0;
    case JV_LIST: return v->u.list.n > 0;
    case JV_DICT: return v->u.dict.n > 0;
    default: return true;
    }
}

bool jv_is_number(const jval *v) {
    return v->kind == JV_BOOL || v->kind == JV_INT || v->kind == JV_FLOAT;
}

double jv_num(const jval *v) {
    return v->kind == JV_FLOAT ? v->u.f : v->kind == JV_INT ? (double)v->u.i : (double)v->u.b;
}

static bool dict_equal(const jval *x, const jval *y) {
    if (x->u.dict.n != y->u.dict.n) return false;
    for (size_t k = 0; k < x->u.dict.n; k++) {
        const jval *o = jv_dict_get(y, x->u.dict.keys[k]);
        if (!o || !jv_equal(x->u.dict.vals[k], o)) return false;
    }
    return true;
}

bool jv_equal(const jval *x, const jval *y) {
    if (jv_is_number(x) && jv_is_number(y)) {
        if (x->kind != JV_FLOAT && y->kind != JV_FLOAT) {
            long long a = x->kind == JV_INT ? x->u.i : x->u.b;
            long long b = y->kind == JV_INT ? y->u.i : y->u.b;
            return a == b;
        }
        return jv_num(x) == jv_num(y);
    }
    if (x->kind != y->kind) return false;
    switch (x->kind) {
    case JV_UNDEF: case JV_NONE: return true;
    case JV_STR:
        return x->u.str.n == y->u.str.n && memcmp(x->u.str.s, y->u.str.s, x->u.str.n) == 0;
    case JV_LIST:
        if (x->tuple != y->tuple || x->u.list.n != y->u.list.n) return false;
        for (size_t k = 0; k < x->u.list.n; k++)
            if (!jv_equal(x->u.list.items[k], y->u.list.items[k])) return false;
        return true;
    case JV_DICT: return dict_equal(x, y);
    default: return x == y;
    }
}

int jv_compare(const jval *x, const jval *y) {
    if (jv_is_number(x) && jv_is_number(y)) {
        double a = jv_num(x), b = jv_num(y);
        if (x->kind != JV_FLOAT && y->kind != JV_FLOAT) {
            long long p = x->kind == JV_INT ? x->u.i : x->u.b;
            long long q = y->kind == JV_INT ? y->u.i : y->u.b;
            return p < q ? -1 : p > q;
        }
        return a < b ? -1 : a > b;
    }
    if (x->kind == JV_STR && y->kind == JV_STR) {
        size_t n = x->u.str.n < y->u.str.n ? x->u.str.n : y->u.str.n;
        int c = memcmp(x->u.str.s, y->u.str.s, n);
        if (c) return c < 0 ? -1 : 1;
        return x->u.str.n < y->u.str.n ? -1 : x->u.str.n > y->u.str.n;
    }
    if (x->kind == JV_LIST && y->kind == JV_LIST && x->tuple == y->tuple) {
        for (size_t k = 0; k < x->u.list.n && k < y->u.list.n; k++) {
            if (jv_equal(x->u.list.items[k], y->u.list.items[k])) continue;
            return jv_compare(x->u.list.items[k], y->u.list.items[k]);
        }
        return x->u.list.n < y->u.list.n ? -1 : x->u.list.n > y->u.list.n;
    }
    return -2;
}

const char *jv_type_name(const jval *v) {
    switch (v->kind) {
    case JV_UNDEF: return "Undefined";
    case JV_NONE: return "NoneType";
    case JV_BOOL: return "bool";
    case JV_INT: return "int";
    case JV_FLOAT: return "float";
    case JV_STR: return "str";
    case JV_LIST: return v->tuple ? "tuple" : "list";
    case JV_DICT: return "dict";
    case JV_NS: return "Namespace";
    default: return "function";
    }
}

/* Python's repr(float): the shortest digits that read back as f, in fixed notation for
 * exponents -4..15 and scientific otherwise. */
void jv_write_float(text_buf *b, double f) {
    if (isnan(f)) { text_buf_puts(b, "nan"); return; }
    if (isinf(f)) { text_buf_puts(b, f < 0 ? "-inf" : "inf"); return; }
    char tmp[64];
    for (int p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, f);
        if (strtod(tmp, NULL) == f) break;
    }
    char digits[32];
    int nd = 0;
    const char *s = tmp;
    if (*s == '-') {
        text_buf_putc(b, '-');
        s++;
    }
    for (; *s && *s != 'e'; s++)
        if (*s != '.') digits[nd++] = *s;
    int exp = atoi(s + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    if (exp >= -4 && exp < 16) {
        if (exp < 0) {
            text_buf_puts(b, "0.");
            for (int k = 0; k < -exp - 1; k++) text_buf_putc(b, '0');
            text_buf_append(b, digits, (size_t)nd);
            return;
        }
        for (int k = 0; k <= exp; k++) text_buf_putc(b, k < nd ? digits[k] : '0');
        text_buf_putc(b, '.');
        if (nd > exp + 1) text_buf_append(b, digits + exp + 1, (size_t)(nd - exp - 1));
        else text_buf_putc(b, '0');
        return;
    }
    text_buf_putc(b, digits[0]);
    if (nd > 1) {
        text_buf_putc(b, '.');
        text_buf_append(b, digits + 1, (size_t)(nd - 1));
    }
    snprintf(tmp, sizeof tmp, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    text_buf_puts(b, tmp);
}

static void write_str_repr(text_buf *b, const char *s, size_t n) {
    bool has_single = memchr(s, '\'', n) != NULL, has_double = memchr(s, '"', n) != NULL;
    char q = has_single && !has_double ? '"' : '\'';
    text_buf_putc(b, q);
    size_t len;
    for (size_t i = 0; i < n; i += len) {
        uint32_t cp = jinja_utf8_at(s, n, i, &len);
        char tmp[16];
        if (cp == (uint32_t)q || cp == '\\') {
            text_buf_putc(b, '\\');
            text_buf_putc(b, (char)cp);
        } else if (cp == '\n') text_buf_puts(b, "\\n");
        else if (cp == '\r') text_buf_puts(b, "\\r");
        else if (cp == '\t') text_buf_puts(b, "\\t");
        else if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0) || cp == 0xAD) {
            snprintf(tmp, sizeof tmp, "\\x%02x", cp);
            text_buf_puts(b, tmp);
        } else if (cp == 0x2028 || cp == 0x2029) {
            snprintf(tmp, sizeof tmp, "\\u%04x", cp);
            text_buf_puts(b, tmp);
        } else {
            text_buf_append(b, s + i, len);
        }
    }
    text_buf_putc(b, q);
}

void jv_write_repr(text_buf *b, const jval *v) {
    switch (v->kind) {
    case JV_STR: write_str_repr(b, v->u.str.s, v->u.str.n); return;
    case JV_LIST:
        text_buf_putc(b, v->tuple ? '(' : '[');
        for (size_t k = 0; k < v->u.list.n; k++) {
            if (k) text_buf_puts(b, ", ");
            jv_write_repr(b, v->u.list.items[k]);
        }
        if (v->tuple && v->u.list.n == 1) text_buf_putc(b, ',');
        text_buf_putc(b, v->tuple ? ')' : ']');
        return;
    case JV_DICT:
        text_buf_putc(b, '{');
        for (size_t k = 0; k < v->u.dict.n; k++) {
            if (k) text_buf_puts(b, ", ");
            jv_write_repr(b, v->u.dict.keys[k]);
            text_buf_puts(b, ": ");
            jv_write_repr(b, v->u.dict.vals[k]);
        }
        text_buf_putc(b, '}');
        return;
    default: jv_write_str(b, v); return;
    }
}

void jv_write_str(text_buf *b, const jval *v) {
    char tmp[32];
    switch (v->kind) {
    case JV_UNDEF: return;
    case JV_NONE: text_buf_puts(b, "None"); return;
    case JV_BOOL: text_buf_puts(b, v->u.b ? "True" : "False"); return;
    case JV_INT:
        snprintf(tmp, sizeof tmp, "%lld", v->u.i);
        text_buf_puts(b, tmp);
        return;
    case JV_FLOAT: jv_write_float(b, v->u.f); return;
    case JV_STR: text_buf_append(b, v->u.str.s, v->u.str.n); return;
    case JV_LIST: case JV_DICT: jv_write_repr(b, v); return;
    case JV_NS: text_buf_puts(b, "<Namespace>"); return;
    default:
        text_buf_puts(b, "<function ");
        text_buf_puts(b, v->u.fn.name);
        text_buf_putc(b, '>');
        return;
    }
}

jval *jv_to_str(jarena *a, const jval *v) {
    if (v->kind == JV_STR) return (jval *)v;
    text_buf b = {0};
    jv_write_str(&b, v);
    return jv_str_take_buf(a, &b);
}

static void write_json_string(text_buf *b, const char *s, size_t n) {
    text_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char tmp[8];
        switch (c) {
        case '"': text_buf_puts(b, "\\\""); break;
        case '\\': text_buf_puts(b, "\\\\"); break;
        case '\n': text_buf_puts(b, "\\n"); break;
        case '\r': text_buf_puts(b, "\\r"); break;
        case '\t': text_buf_puts(b, "\\t"); break;
        case '\b': text_buf_puts(b, "\\b"); break;
        case '\f': text_buf_puts(b, "\\f"); break;
        default:
            if (c < 0x20) {
                snprintf(tmp, sizeof tmp, "\\u%04x", c);
                text_buf_puts(b, tmp);
            } else {
                text_buf_putc(b, (char)c);
            }
        }
    }
    text_buf_putc(b, '"');
}

static void json_newline(text_buf *b, const char *indent, int level) {
    text_buf_putc(b, '\n');
    for (int k = 0; k < level; k++) text_buf_puts(b, indent);
}

/* A dict key as json.dumps writes it: strings as they are, numbers, bools and None as text. */
static int write_json_key(text_buf *b, const jval *k) {
    if (k->kind == JV_STR) {
        write_json_string(b, k->u.str.s, k->u.str.n);
        return 0;
    }
    text_buf t = {0};
    if (k->kind == JV_BOOL) text_buf_puts(&t, k->u.b ? "true" : "false");
    else if (k->kind == JV_NONE) text_buf_puts(&t, "null");
    else if (k->kind == JV_INT || k->kind == JV_FLOAT) jv_write_str(&t, k);
    else return folio_fail("keys must be str, int, float, bool or None, not %s",
                           jv_type_name(k));
    write_json_string(b, t.s, t.len);
    text_buf_free(&t);
    return 0;
}

static int compare_keys(const void *x, const void *y) {
    int c = jv_compare(*(jval *const *)x, *(jval *const *)y);
    return c == -2 ? 0 : c;
}

static int write_json_dict(text_buf *b, const jval *v, const char *indent, bool sort_keys,
                           int level) {
    size_t n = v->u.dict.n;
    if (n == 0) {
        text_buf_puts(b, "{}");
        return 0;
    }
    jval **order = folio_xmalloc(n * sizeof *order);
    memcpy(order, v->u.dict.keys, n * sizeof *order);
    if (sort_keys) qsort(order, n, sizeof *order, compare_keys);
    int rc = 0;
    text_buf_putc(b, '{');
    for (size_t k = 0; k < n && rc == 0; k++) {
        if (k) text_buf_puts(b, indent ? "," : ", ");
        if (indent) json_newline(b, indent, level + 1);
        rc = write_json_key(b, order[k]);
        text_buf_puts(b, ": ");
        if (rc == 0) rc = jv_write_json(b, jv_dict_get(v, order[k]), indent, sort_keys, level + 1);
    }
    if (indent) json_newline(b, indent, level);
    text_buf_putc(b, '}');
    free(order);
    return rc;
}

int jv_write_json(text_buf *b, const jval *v, const char *indent, bool sort_keys, int level) {
    switch (v->kind) {
    case JV_NONE: text_buf_puts(b, "null"); return 0;
    case JV_BOOL: text_buf_puts(b, v->u.b ? "true" : "false"); return 0;
    case JV_INT: jv_write_str(b, v); return 0;
    case JV_FLOAT:
        if (isnan(v->u.f)) text_buf_puts(b, "NaN");
        else if (isinf(v->u.f)) text_buf_puts(b, v->u.f < 0 ? "-Infinity" : "Infinity");
        else jv_write_float(b, v->u.f);
        return 0;
    case JV_STR: write_json_string(b, v->u.str.s, v->u.str.n); return 0;
    case JV_LIST:
        if (v->u.list.n == 0) {
            text_buf_puts(b, "[]");
            return 0;
        }
        text_buf_putc(b, '[');
        for (size_t k = 0; k < v->u.list.n; k++) {
            if (k) text_buf_puts(b, indent ? "," : ", ");
            if (indent) json_newline(b, indent, level + 1);
            if (jv_write_json(b, v->u.list.items[k], indent, sort_keys, level + 1) != 0)
                return -1;
        }
        if (indent) json_newline(b, indent, level);
        text_buf_putc(b, ']');
        return 0;
    case JV_DICT: return write_json_dict(b, v, indent, sort_keys, level);
    default:
        return folio_fail("Object of type %s is not JSON serializable", jv_type_name(v));
    }
}
