/* Built-ins of the Jinja interpreter: the filters and tests chat templates use, Python's str
 * and dict methods (strip, split, startswith, items, get, ...), and the globals of transformers'
 * chat-template environment (raise_exception, strftime_now, namespace, range, dict). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "jinja_internal.h"

/* ---- arguments ---- */

/* Argument `k` by position, or by keyword `name`; NULL when absent. */
static jval *arg(const jargs *a, int k, const char *name) {
    if (k >= 0 && k < a->npos) return a->pos[k];
    for (int i = 0; name && i < a->nkw; i++)
        if (strcmp(a->kwnames[i], name) == 0) return a->kwvals[i];
    return NULL;
}

static int need_str(int line, const char *what, const jval *v) {
    if (v && v->kind == JV_STR) return 0;
    return folio_fail("chat template line %d: %s expects a string, not %s", line, what,
                      v ? jv_type_name(v) : "nothing");
}

static int check_count(int line, const char *what, const jargs *a, int max) {
    if (a->npos + a->nkw <= max) return 0;
    return folio_fail("chat template line %d: %s takes at most %d argument%s (%d given)", line,
                      what, max, max == 1 ? "" : "s", a->npos + a->nkw);
}

/* ---- strings ---- */

static bool cp_in(uint32_t cp, const jval *chars) {
    if (!chars) return jinja_is_space(cp);
    size_t len;
    for (size_t i = 0; i < chars->u.str.n; i += len)
        if (jinja_utf8_at(chars->u.str.s, chars->u.str.n, i, &len) == cp) return true;
    return false;
}

/* str.strip / lstrip / rstrip (chars NULL: whitespace). */
static jval *str_strip(jarena *a, const jval *s, const jval *chars, bool left, bool right) {
    const char *p = s->u.str.s;
    size_t n = s->u.str.n, start = 0, end = n, len;
    if (left)
        while (start < n && cp_in(jinja_utf8_at(p, n, start, &len), chars)) start += len;
    if (right) {
        size_t i = start, keep = start;
        while (i < n) {
            uint32_t cp = jinja_utf8_at(p, n, i, &len);
            i += len;
            if (!cp_in(cp, chars)) keep = i;
        }
        end = keep;
    }
    return jv_str(a, p + start, end - start);
}

static jval *str_split(jarena *a, int line, const jval *s, const jval *sep, long long maxsplit) {
    jval *out = jv_list(a);
    const char *p = s->u.str.s;
    size_t n = s->u.str.n, i = 0, len;
    if (!sep) { /* whitespace runs; empty pieces dropped */
        while (1) {
            while (i < n && jinja_is_space(jinja_utf8_at(p, n, i, &len))) i += len;
            if (i >= n) break;
            size_t start = i;
            if (maxsplit >= 0 && (long long)out->u.list.n >= maxsplit) {
                size_t end = n, k = start;
                while (k < n) {
                    uint32_t cp = jinja_utf8_at(p, n, k, &len);
                    k += len;
                    if (!jinja_is_space(cp)) end = k;
                }
                jv_list_push(a, out, jv_str(a, p + start, end - start));
                break;
            }
            while (i < n && !jinja_is_space(jinja_utf8_at(p, n, i, &len))) i += len;
            jv_list_push(a, out, jv_str(a, p + start, i - start));
        }
        return out;
    }
    if (sep->u.str.n == 0) {
        folio_fail("chat template line %d: split: empty separator", line);
        return NULL;
    }
    size_t start = 0;
    while (maxsplit < 0 || (long long)out->u.list.n < maxsplit) {
        const char *hit = memmem(p + start, n - start, sep->u.str.s, sep->u.str.n);
        if (!hit) break;
        jv_list_push(a, out, jv_str(a, p + start, (size_t)(hit - p) - start));
        start = (size_t)(hit - p) + sep->u.str.n;
    }
    jv_list_push(a, out, jv_str(a, p + start, n - start));
    return out;
}

static jval *str_replace(jarena *a, const jval *s, const jval *old, const jval *new_,
                         long long count) {
    text_buf b = {0};
    const char *p = s->u.str.s;
    size_t n = s->u.str.n, i = 0;
    long long done = 0;
    if (old->u.str.n == 0) { /* Python inserts `new` between every character */
        size_t len;
        for (; i <= n && (count < 0 || done < count); done++) {
            text_buf_append(&b, new_->u.str.s, new_->u.str.n);
            if (i == n) {
                i++;
                break;
            }
            jinja_utf8_at(p, n, i, &len);
            text_buf_append(&b, p + i, len);
            i += len;
        }
        if (i < n) text_buf_append(&b, p + i, n - i);
        return jv_str_take_buf(a, &b);
    }
    while (count < 0 || done < count) {
        const char *hit = memmem(p + i, n - i, old->u.str.s, old->u.str.n);
        if (!hit) break;
        text_buf_append(&b, p + i, (size_t)(hit - p) - i);
        text_buf_append(&b, new_->u.str.s, new_->u.str.n);
        i = (size_t)(hit - p) + old->u.str.n;
        done++;
    }
    text_buf_append(&b, p + i, n - i);
    return jv_str_take_buf(a, &b);
}

static char ascii_case(char c, bool upper) {
    if (upper && c >= 'a' && c <= 'z') return (char)(c - 32);
    if (!upper && c >= 'A' && c <= 'Z') return (char)(c + 32);
    return c;
}

/* mode: 'u' upper, 'l' lower, 'c' capitalize, 't' title (ASCII letters change case). */
static jval *str_case(jarena *a, const jval *s, char mode) {
    jval *v = jv_str(a, s->u.str.s, s->u.str.n);
    char *p = (char *)v->u.str.s;
    bool word_start = true;
    for (size_t i = 0; i < v->u.str.n; i++) {
        bool alpha = (p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z');
        if (mode == 'u' || mode == 'l') p[i] = ascii_case(p[i], mode == 'u');
        else if (mode == 'c') p[i] = ascii_case(p[i], i == 0);
        else p[i] = ascii_case(p[i], word_start);
        word_start = !alpha && !((unsigned char)p[i] & 0x80);
    }
    return v;
}

static bool affix_match(const jval *s, const jval *x, bool prefix) {
    if (x->u.str.n > s->u.str.n) return false;
    const char *p = prefix ? s->u.str.s : s->u.str.s + s->u.str.n - x->u.str.n;
    return memcmp(p, x->u.str.s, x->u.str.n) == 0;
}

/* str.startswith / endswith with a string or a tuple of strings. */
static jval *str_affix(jarena *a, int line, const jval *s, const jval *x, bool prefix) {
    const char *what = prefix ? "startswith" : "endswith";
    if (x && x->kind == JV_LIST) {
        for (size_t k = 0; k < x->u.list.n; k++) {
            if (need_str(line, what, x->u.list.items[k]) != 0) return NULL;
            if (affix_match(s, x->u.list.items[k], prefix)) return jv_bool(a, true);
        }
        return jv_bool(a, false);
    }
    if (need_str(line, what, x) != 0) return NULL;
    return jv_bool(a, affix_match(s, x, prefix));
}

/* ---- sequences ---- */

static jval *to_list(jarena *a, int line, const jval *v) {
    if (v->kind == JV_LIST) return (jval *)v;
    jval *l = jv_list(a);
    if (v->kind == JV_DICT || v->kind == JV_NS) {
        for (size_t k = 0; k < v->u.dict.n; k++) jv_list_push(a, l, v->u.dict.keys[k]);
    } else if (v->kind == JV_STR) {
        size_t len;
        for (size_t i = 0; i < v->u.str.n; i += len) {
            jinja_utf8_at(v->u.str.s, v->u.str.n, i, &len);
            jv_list_push(a, l, jv_str(a, v->u.str.s + i, len));
        }
    } else if (v->kind != JV_UNDEF) {
        folio_fail("chat template line %d: '%s' object is not iterable", line, jv_type_name(v));
        return NULL;
    }
    return l;
}

static jval *length_of(jarena *a, int line, const jval *v) {
    switch (v->kind) {
    case JV_STR: return jv_int(a, (long long)utf8_count(v->u.str.s, v->u.str.n));
    case JV_LIST: return jv_int(a, (long long)v->u.list.n);
    case JV_DICT: case JV_NS: return jv_int(a, (long long)v->u.dict.n);
    case JV_UNDEF: return jv_int(a, 0);
    default:
        folio_fail("chat template line %d: object of type '%s' has no len()", line,
                   jv_type_name(v));
        return NULL;
    }
}

static jval *dict_items(jarena *a, const jval *d) {
    jval *l = jv_list(a);
    if (d->kind != JV_DICT && d->kind != JV_NS) return l;
    for (size_t k = 0; k < d->u.dict.n; k++) {
        jval *pair = jv_list(a);
        pair->tuple = true;
        jv_list_push(a, pair, d->u.dict.keys[k]);
        jv_list_push(a, pair, d->u.dict.vals[k]);
        jv_list_push(a, l, pair);
    }
    return l;
}

static jval *str_join(jrender *r, int line, const jval *seq, const jval *sep, const jval *attr) {
    jarena *a = jrender_arena(r);
    jval *items = to_list(a, line, seq);
    if (!items) return NULL;
    text_buf b = {0};
    for (size_t k = 0; k < items->u.list.n; k++) {
        if (k && sep) jv_write_str(&b, sep);
        jval *x = items->u.list.items[k];
        if (attr && (x->kind == JV_DICT || x->kind == JV_NS)) {
            jval *v = jv_dict_get(x, attr);
            x = v ? v : jv_undef(a, "missing attribute");
        }
        jv_write_str(&b, x);
    }
    return jv_str_take_buf(a, &b);
}

/* The value of `attr` (dotted path "a.b") of x, or undefined. */
static jval *attr_path(jarena *a, jval *x, const jval *attr) {
    if (attr->kind != JV_STR) return (x->kind == JV_DICT && jv_dict_get(x, attr)) ? jv_dict_get(x, attr) : jv_undef(a, "missing attribute");
    const char *p = attr->u.str.s, *end = p + attr->u.str.n;
    while (x && p < end) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        size_t n = dot ? (size_t)(dot - p) : (size_t)(end - p);
        jval *key = jv_str(a, p, n);
        x = (x->kind == JV_DICT || x->kind == JV_NS) ? jv_dict_get(x, key) : NULL;
        p += n + (dot ? 1 : 0);
    }
    return x ? x : jv_undef(a, "missing attribute");
}

/* selectattr / rejectattr (attr[, test[, args...]]) and select / reject (test[, args]). */
static jval *select_items(jrender *r, int line, const char *name, jval *seq, const jargs *args) {
    jarena *a = jrender_arena(r);
    bool by_attr = strstr(name, "attr") != NULL, reject = name[0] == 'r';
    int first_test = by_attr ? 1 : 0;
    if (by_attr && (!arg(args, 0, NULL) || arg(args, 0, NULL)->kind != JV_STR)) {
        folio_fail("chat template line %d: %s expects an attribute name", line, name);
        return NULL;
    }
    jval *test = arg(args, first_test, NULL);
    if (test && need_str(line, name, test) != 0) return NULL;
    if (test && !jinja_test_known(test->u.str.s)) {
        folio_fail("chat template line %d: unsupported test '%s'", line, test->u.str.s);
        return NULL;
    }
    jargs targs = {0};
    if (args->npos > first_test + 1) {
        targs.pos = args->pos + first_test + 1;
        targs.npos = args->npos - first_test - 1;
    }
    jval *items = to_list(a, line, seq), *out = jv_list(a);
    if (!items) return NULL;
    for (size_t k = 0; k < items->u.list.n; k++) {
        jval *x = items->u.list.items[k];
        jval *v = by_attr ? attr_path(a, x, arg(args, 0, NULL)) : x;
        int t = test ? jinja_test(r, line, test->u.str.s, v, &targs) : jv_truthy(v);
        if (t < 0) return NULL;
        if (t != reject) jv_list_push(a, out, x);
    }
    return out;
}

static jval *map_items(jrender *r, int line, jval *seq, const jargs *args) {
    jarena *a = jrender_arena(r);
    jval *items = to_list(a, line, seq), *out = jv_list(a);
    if (!items) return NULL;
    jval *attr = arg(args, -1, "attribute"), *dflt = arg(args, -1, "default");
    jval *fname = attr ? NULL : arg(args, 0, NULL);
    if (!attr && (!fname || fname->kind != JV_STR || !jinja_filter_known(fname->u.str.s))) {
        folio_fail("chat template line %d: map expects attribute= or a known filter name", line);
        return NULL;
    }
    jargs fargs = {0};
    if (fname && args->npos > 1) {
        fargs.pos = args->pos + 1;
        fargs.npos = args->npos - 1;
    }
    for (size_t k = 0; k < items->u.list.n; k++) {
        jval *x = items->u.list.items[k], *v;
        if (attr) {
            v = attr_path(a, x, attr);
            if (v->kind == JV_UNDEF && dflt) v = dflt;
        } else if (!(v = jinja_filter(r, line, fname->u.str.s, x, &fargs))) {
            return NULL;
        }
        jv_list_push(a, out, v);
    }
    return out;
}

static jval *unique_items(jarena *a, int line, jval *seq) {
    jval *items = to_list(a, line, seq), *out = jv_list(a);
    if (!items) return NULL;
    for (size_t k = 0; k < items->u.list.n; k++) {
        bool seen = false;
        for (size_t j = 0; j < out->u.list.n && !seen; j++)
            seen = jv_equal(out->u.list.items[j], items->u.list.items[k]);
        if (!seen) jv_list_push(a, out, items->u.list.items[k]);
    }
    return out;
}

static jval *reversed(jarena *a, int line, jval *v) {
    if (v->kind == JV_STR) {
        jval *chars = to_list(a, line, v);
        text_buf b = {0};
        for (size_t k = chars->u.list.n; k-- > 0;) jv_write_str(&b, chars->u.list.items[k]);
        return jv_str_take_buf(a, &b);
    }
    jval *items = to_list(a, line, v), *out = jv_list(a);
    if (!items) return NULL;
    for (size_t k = items->u.list.n; k-- > 0;) jv_list_push(a, out, items->u.list.items[k]);
    return out;
}

/* ---- tojson, indent, numbers ---- */

static jval *to_json(jarena *a, int line, jval *x, const jargs *args) {
    jval *ind = arg(args, 0, "indent"), *sk = arg(args, -1, "sort_keys");
    char spaces[64] = "";
    const char *indent = NULL;
    if (ind && ind->kind == JV_INT) {
        long long n = ind->u.i < 0 ? 0 : ind->u.i > 63 ? 63 : ind->u.i;
        memset(spaces, ' ', (size_t)n);
        spaces[n] = '\0';
        indent = spaces;
    } else if (ind && ind->kind == JV_STR) {
        indent = ind->u.str.s;
    } else if (ind && ind->kind != JV_NONE) {
        folio_fail("chat template line %d: tojson: indent must be an integer or a string", line);
        return NULL;
    }
    text_buf b = {0};
    if (jv_write_json(&b, x, indent, sk && jv_truthy(sk), 0) != 0) {
        text_buf_free(&b);
        folio_fail_context("chat template line %d: tojson", line);
        return NULL;
    }
    return jv_str_take_buf(a, &b);
}

static jval *indent_lines(jarena *a, const jval *s, const jargs *args) {
    jval *w = arg(args, 0, "width"), *first = arg(args, 1, "first"), *blank = arg(args, 2, "blank");
    text_buf pad = {0}, b = {0};
    if (w && w->kind == JV_STR) text_buf_append(&pad, w->u.str.s, w->u.str.n);
    else
        for (long long k = 0; k < (w && w->kind == JV_INT ? w->u.i : 4); k++) text_buf_putc(&pad, ' ');
    const char *p = s->u.str.s;
    size_t n = s->u.str.n, i = 0;
    bool line0 = true;
    while (i <= n) {
        const char *nl = memchr(p + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - p) : n;
        bool empty = end == i;
        if ((!line0 || (first && jv_truthy(first))) && (!empty || (blank && jv_truthy(blank))))
            text_buf_append(&b, pad.s ? pad.s : "", pad.len);
        text_buf_append(&b, p + i, end - i);
        if (!nl) break;
        text_buf_putc(&b, '\n');
        i = end + 1;
        line0 = false;
    }
    text_buf_free(&pad);
    return jv_str_take_buf(a, &b);
}

static jval *to_number(jarena *a, jval *x, const jargs *args, bool want_int) {
    jval *dflt = arg(args, 0, "default");
    double f = 0;
    bool ok = true;
    if (jv_is_number(x)) {
        f = jv_num(x);
    } else if (x->kind == JV_STR) {
        char *end;
        f = strtod(x->u.str.s, &end);
        ok = end != x->u.str.s && *end == '\0';
    } else {
        ok = false;
    }
    if (!ok) return dflt ? dflt : want_int ? jv_int(a, 0) : jv_float(a, 0.0);
    if (want_int) return jv_int(a, x->kind == JV_INT ? x->u.i : (long long)f);
    return jv_float(a, f);
}

/* ---- filters ---- */

static const char *const FILTERS[] = {
    "trim", "length", "count", "tojson", "upper", "lower", "capitalize", "title", "replace",
    "default", "d", "join", "first", "last", "items", "list", "string", "int", "float", "abs",
    "selectattr", "rejectattr", "select", "reject", "map", "unique", "reverse", "safe",
    "indent", "wordcount", "dictsort", NULL};

bool jinja_filter_known(const char *name) {
    for (int k = 0; FILTERS[k]; k++)
        if (strcmp(FILTERS[k], name) == 0) return true;
    return false;
}

static jval *filter_on_string(jrender *r, int line, const char *name, jval *x,
                              const jargs *args) {
    jarena *a = jrender_arena(r);
    jval *s = jv_to_str(a, x);
    if (!strcmp(name, "trim")) {
        jval *chars = arg(args, 0, "chars");
        if (chars && chars->kind == JV_NONE) chars = NULL;
        if (chars && need_str(line, "trim", chars) != 0) return NULL;
        return str_strip(a, s, chars, true, true);
    }
    if (!strcmp(name, "upper")) return str_case(a, s, 'u');
    if (!strcmp(name, "lower")) return str_case(a, s, 'l');
    if (!strcmp(name, "capitalize")) return str_case(a, str_case(a, s, 'l'), 'c');
    if (!strcmp(name, "title")) return str_case(a, str_case(a, s, 'l'), 't');
    if (!strcmp(name, "string")) return s;
    if (!strcmp(name, "indent")) return indent_lines(a, s, args);
    if (!strcmp(name, "wordcount"))
        return jv_int(a, (long long)str_split(a, line, s, NULL, -1)->u.list.n);
    /* replace */
    jval *old = arg(args, 0, "old"), *new_ = arg(args, 1, "new"), *cnt = arg(args, 2, "count");
    if (need_str(line, "replace", old) != 0 || need_str(line, "replace", new_) != 0) return NULL;
    return str_replace(a, s, old, new_, cnt && cnt->kind == JV_INT ? cnt->u.i : -1);
}

static jval *filter_first_last(jrender *r, int line, const char *name, jval *x) {
    jarena *a = jrender_arena(r);
    jval *items = to_list(a, line, x);
    if (!items) return NULL;
    if (items->u.list.n == 0) return jv_undef(a, "the sequence is empty");
    return items->u.list.items[name[0] == 'f' ? 0 : items->u.list.n - 1];
}

static jval *dict_sorted(jrender *r, int line, jval *x) {
    jarena *a = jrender_arena(r);
    if (x->kind != JV_DICT) {
        folio_fail("chat template line %d: dictsort expects a dict", line);
        return NULL;
    }
    jval *items = dict_items(a, x);
    for (size_t i = 1; i < items->u.list.n; i++) /* insertion sort by key */
        for (size_t k = i; k > 0; k--) {
            jval **it = items->u.list.items;
            int c = jv_compare(it[k - 1]->u.list.items[0], it[k]->u.list.items[0]);
            if (c <= 0 && c != -2) break;
            jval *t = it[k];
            it[k] = it[k - 1];
            it[k - 1] = t;
        }
    return items;
}

jval *jinja_filter(jrender *r, int line, const char *name, jval *x, const jargs *args) {
    jarena *a = jrender_arena(r);
    if (!strcmp(name, "default") || !strcmp(name, "d")) {
        jval *dflt = arg(args, 0, "default_value"), *boolean = arg(args, 1, "boolean");
        bool use = x->kind == JV_UNDEF || (boolean && jv_truthy(boolean) && !jv_truthy(x));
        return use ? (dflt ? dflt : jv_str(a, "", 0)) : x;
    }
    if (x->kind == JV_UNDEF && strcmp(name, "length") && strcmp(name, "count") &&
        strcmp(name, "items") && strcmp(name, "list") && strcmp(name, "join") &&
        strcmp(name, "string") && strcmp(name, "trim")) {
        folio_fail("chat template line %d: %s", line, x->u.fn.name);
        return NULL;
    }
    if (!strcmp(name, "length") || !strcmp(name, "count")) return length_of(a, line, x);
    if (!strcmp(name, "tojson")) return to_json(a, line, x, args);
    if (!strcmp(name, "safe")) return x;
    if (!strcmp(name, "join"))
        return str_join(r, line, x, arg(args, 0, "d"), arg(args, 1, "attribute"));
    if (!strcmp(name, "first") || !strcmp(name, "last")) return filter_first_last(r, line, name, x);
    if (!strcmp(name, "items")) return dict_items(a, x);
    if (!strcmp(name, "dictsort")) return dict_sorted(r, line, x);
    if (!strcmp(name, "list")) {
        jval *l = to_list(a, line, x);
        if (l && l == x && x->tuple) {
            l = jv_list(a);
            for (size_t k = 0; k < x->u.list.n; k++) jv_list_push(a, l, x->u.list.items[k]);
        }
        return l;
    }
    if (!strcmp(name, "int") || !strcmp(name, "float")) return to_number(a, x, args, name[0] == 'i');
    if (!strcmp(name, "abs")) {
        if (!jv_is_number(x)) {
            folio_fail("chat template line %d: bad operand type for abs(): '%s'", line, jv_type_name(x));
            return NULL;
        }
        if (x->kind == JV_FLOAT) return jv_float(a, x->u.f < 0 ? -x->u.f : x->u.f);
        long long i = x->kind == JV_INT ? x->u.i : x->u.b;
        return jv_int(a, i < 0 ? -i : i);
    }
    if (strstr(name, "select") || strstr(name, "reject")) return select_items(r, line, name, x, args);
    if (!strcmp(name, "map")) return map_items(r, line, x, args);
    if (!strcmp(name, "unique")) return unique_items(a, line, x);
    if (!strcmp(name, "reverse")) return reversed(a, line, x);
    return filter_on_string(r, line, name, x, args);
}

/* ---- tests ---- */

static const char *const TESTS[] = {
    "defined", "undefined", "none", "string", "mapping", "sequence", "iterable", "number",
    "integer", "float", "boolean", "true", "false", "callable", "odd", "even", "divisibleby",
    "eq", "equalto", "==", "ne", "!=", "lt", "lessthan", "le", "gt", "greaterthan", "ge", "in",
    "lower", "upper", "sameas", NULL};

bool jinja_test_known(const char *name) {
    for (int k = 0; TESTS[k]; k++)
        if (strcmp(TESTS[k], name) == 0) return true;
    return false;
}

static int compare_test(jrender *r, int line, const char *name, jval *x, jval *y) {
    if (!strcmp(name, "eq") || !strcmp(name, "equalto") || !strcmp(name, "==")) return jv_equal(x, y);
    if (!strcmp(name, "ne") || !strcmp(name, "!=")) return !jv_equal(x, y);
    if (!strcmp(name, "sameas"))
        return x == y || (x->kind == y->kind && (x->kind == JV_NONE || x->kind == JV_UNDEF ||
                                                 (x->kind == JV_BOOL && x->u.b == y->u.b)));
    if (!strcmp(name, "in")) {
        jval *l = to_list(jrender_arena(r), line, y);
        if (!l) return -1;
        if (y->kind == JV_STR && x->kind == JV_STR)
            return memmem(y->u.str.s, y->u.str.n, x->u.str.s, x->u.str.n) != NULL;
        for (size_t k = 0; k < l->u.list.n; k++)
            if (jv_equal(l->u.list.items[k], x)) return 1;
        return 0;
    }
    int c = jv_compare(x, y);
    if (c == -2)
        return folio_fail("chat template line %d: test '%s' cannot compare '%s' and '%s'", line,
                          name, jv_type_name(x), jv_type_name(y));
    if (!strcmp(name, "lt") || !strcmp(name, "lessthan")) return c < 0;
    if (!strcmp(name, "le")) return c <= 0;
    if (!strcmp(name, "gt") || !strcmp(name, "greaterthan")) return c > 0;
    return c >= 0;
}

int jinja_test(jrender *r, int line, const char *name, jval *x, const jargs *args) {
    jv_kind k = x->kind;
    jval *y = arg(args, 0, NULL);
    if (!strcmp(name, "defined")) return k != JV_UNDEF;
    if (!strcmp(name, "undefined")) return k == JV_UNDEF;
    if (!strcmp(name, "none")) return k == JV_NONE;
    if (!strcmp(name, "string")) return k == JV_STR;
    if (!strcmp(name, "mapping")) return k == JV_DICT;
    if (!strcmp(name, "sequence")) return k == JV_STR || k == JV_LIST || k == JV_DICT;
    if (!strcmp(name, "iterable")) return k == JV_STR || k == JV_LIST || k == JV_DICT || k == JV_UNDEF;
    if (!strcmp(name, "number")) return k == JV_INT || k == JV_FLOAT || k == JV_BOOL;
    if (!strcmp(name, "integer")) return k == JV_INT;
    if (!strcmp(name, "float")) return k == JV_FLOAT;
    if (!strcmp(name, "boolean")) return k == JV_BOOL;
    if (!strcmp(name, "true")) return k == JV_BOOL && x->u.b;
    if (!strcmp(name, "false")) return k == JV_BOOL && !x->u.b;
    if (!strcmp(name, "callable")) return k == JV_FUNC || k == JV_METHOD;
    if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
        if (k != JV_STR) return 0;
        jval *c = str_case(jrender_arena(r), x, name[0]);
        return memcmp(c->u.str.s, x->u.str.s, x->u.str.n) == 0;
    }
    if (!strcmp(name, "odd") || !strcmp(name, "even") || !strcmp(name, "divisibleby")) {
        if (k != JV_INT && k != JV_BOOL)
            return folio_fail("chat template line %d: test '%s' expects an integer", line, name);
        long long i = k == JV_INT ? x->u.i : x->u.b;
        if (name[0] == 'o') return i % 2 != 0;
        if (name[0] == 'e') return i % 2 == 0;
        if (!y || y->kind != JV_INT || y->u.i == 0)
            return folio_fail("chat template line %d: divisibleby expects a non-zero integer", line);
        return i % y->u.i == 0;
    }
    if (!y) return folio_fail("chat template line %d: test '%s' needs an argument", line, name);
    return compare_test(r, line, name, x, y);
}

/* ---- methods ---- */

static const char *const STR_METHODS[] = {
    "strip", "lstrip", "rstrip", "split", "startswith", "endswith", "upper", "lower", "title",
    "capitalize", "replace", "find", "count", "join", NULL};
static const char *const DICT_METHODS[] = {"items", "keys", "values", "get", NULL};

jval *jinja_method(jarena *a, jval *v, const char *name) {
    const char *const *list = v->kind == JV_STR ? STR_METHODS : v->kind == JV_DICT ? DICT_METHODS : NULL;
    for (int k = 0; list && list[k]; k++)
        if (strcmp(list[k], name) == 0) return jv_func(a, JV_METHOD, list[k], v);
    return NULL;
}

static jval *dict_method(jarena *a, int line, const char *name, jval *d, const jargs *args) {
    if (!strcmp(name, "items")) return dict_items(a, d);
    if (!strcmp(name, "get")) {
        jval *key = arg(args, 0, NULL), *dflt = arg(args, 1, NULL);
        if (!key) {
            folio_fail("chat template line %d: get expected at least 1 argument", line);
            return NULL;
        }
        jval *v = jv_dict_get(d, key);
        return v ? v : dflt ? dflt : jv_none(a);
    }
    jval *l = jv_list(a);
    for (size_t k = 0; k < d->u.dict.n; k++)
        jv_list_push(a, l, name[0] == 'k' ? d->u.dict.keys[k] : d->u.dict.vals[k]);
    return l;
}

static jval *str_find_count(jarena *a, int line, const char *name, jval *s, jval *sub) {
    if (need_str(line, name, sub) != 0) return NULL;
    if (name[0] == 'f') {
        const char *hit = sub->u.str.n ? memmem(s->u.str.s, s->u.str.n, sub->u.str.s, sub->u.str.n) : s->u.str.s;
        return jv_int(a, hit ? (long long)utf8_count(s->u.str.s, (size_t)(hit - s->u.str.s)) : -1);
    }
    if (sub->u.str.n == 0) return jv_int(a, (long long)utf8_count(s->u.str.s, s->u.str.n) + 1);
    long long c = 0;
    const char *p = s->u.str.s, *end = p + s->u.str.n, *hit;
    while ((hit = memmem(p, (size_t)(end - p), sub->u.str.s, sub->u.str.n))) {
        c++;
        p = hit + sub->u.str.n;
    }
    return jv_int(a, c);
}

static jval *str_method(jrender *r, int line, const char *name, jval *s, const jargs *args) {
    jarena *a = jrender_arena(r);
    jval *x = arg(args, 0, NULL);
    if (x && x->kind == JV_NONE && (strstr(name, "strip") || !strcmp(name, "split"))) x = NULL;
    if (strstr(name, "strip")) {
        if (x && need_str(line, name, x) != 0) return NULL;
        return str_strip(a, s, x, name[0] != 'r', name[0] != 'l');
    }
    if (!strcmp(name, "split")) {
        jval *m = arg(args, 1, "maxsplit");
        if (!x) x = arg(args, -1, "sep");
        if (x && x->kind == JV_NONE) x = NULL;
        if (x && need_str(line, name, x) != 0) return NULL;
        return str_split(a, line, s, x, m && m->kind == JV_INT ? m->u.i : -1);
    }
    if (!strcmp(name, "startswith") || !strcmp(name, "endswith"))
        return str_affix(a, line, s, x, name[0] == 's');
    if (!strcmp(name, "upper") || !strcmp(name, "lower")) return str_case(a, s, name[0]);
    if (!strcmp(name, "title") || !strcmp(name, "capitalize"))
        return str_case(a, str_case(a, s, 'l'), name[0]);
    if (!strcmp(name, "replace")) {
        jval *y = arg(args, 1, NULL), *c = arg(args, 2, "count");
        if (need_str(line, name, x) != 0 || need_str(line, name, y) != 0) return NULL;
        return str_replace(a, s, x, y, c && c->kind == JV_INT ? c->u.i : -1);
    }
    if (!strcmp(name, "join")) return x ? str_join(r, line, x, s, NULL) : NULL;
    return str_find_count(a, line, name, s, x);
}

/* ---- globals ---- */

static const char *const GLOBALS[] = {"raise_exception", "namespace", "range", "strftime_now",
                                      "dict", NULL};

jval *jinja_global(jarena *a, const char *name) {
    for (int k = 0; GLOBALS[k]; k++)
        if (strcmp(GLOBALS[k], name) == 0) return jv_func(a, JV_FUNC, GLOBALS[k], NULL);
    return NULL;
}

static jval *make_range(jarena *a, int line, const jargs *args) {
    long long v[3] = {0, 0, 1};
    if (args->npos < 1 || args->npos > 3) {
        folio_fail("chat template line %d: range expects 1 to 3 integers", line);
        return NULL;
    }
    for (int k = 0; k < args->npos; k++) {
        if (args->pos[k]->kind != JV_INT) {
            folio_fail("chat template line %d: range expects integers", line);
            return NULL;
        }
        v[args->npos == 1 ? 1 : k] = args->pos[k]->u.i;
    }
    if (v[2] == 0 || (v[1] - v[0]) / v[2] > 100000) {
        folio_fail("chat template line %d: range too large or step zero", line);
        return NULL;
    }
    jval *l = jv_list(a);
    for (long long i = v[0]; v[2] > 0 ? i < v[1] : i > v[1]; i += v[2]) jv_list_push(a, l, jv_int(a, i));
    return l;
}

static jval *global_call(jrender *r, int line, const char *name, const jargs *args) {
    jarena *a = jrender_arena(r);
    if (!strcmp(name, "raise_exception")) {
        text_buf b = {0};
        if (args->npos > 0) jv_write_str(&b, args->pos[0]);
        folio_fail("chat template line %d: raise_exception: %s", line, b.s ? b.s : "");
        text_buf_free(&b);
        return NULL;
    }
    if (!strcmp(name, "namespace") || !strcmp(name, "dict")) {
        jval *d = jv_dict(a, name[0] == 'n' ? JV_NS : JV_DICT);
        if (args->npos > 0 && args->pos[0]->kind == JV_DICT)
            for (size_t k = 0; k < args->pos[0]->u.dict.n; k++)
                jv_dict_set(a, d, args->pos[0]->u.dict.keys[k], args->pos[0]->u.dict.vals[k]);
        for (int k = 0; k < args->nkw; k++)
            jv_dict_set(a, d, jv_str(a, args->kwnames[k], strlen(args->kwnames[k])), args->kwvals[k]);
        return d;
    }
    if (!strcmp(name, "range")) return make_range(a, line, args);
    /* strftime_now(format): the local time, as transformers' global does */
    jval *fmt = arg(args, 0, NULL);
    if (need_str(line, name, fmt) != 0) return NULL;
    char out[256];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    size_t n = strftime(out, sizeof out, fmt->u.str.s, &tm);
    return jv_str(a, out, n);
}

jval *jinja_call(jrender *r, int line, jval *fn, const jargs *args) {
    if (fn->kind == JV_FUNC) return global_call(r, line, fn->u.fn.name, args);
    jval *self = fn->u.fn.self;
    if (self->kind == JV_DICT) {
        if (check_count(line, fn->u.fn.name, args, 2) != 0) return NULL;
        return dict_method(jrender_arena(r), line, fn->u.fn.name, self, args);
    }
    if (check_count(line, fn->u.fn.name, args, 3) != 0) return NULL;
    jval *v = str_method(r, line, fn->u.fn.name, self, args);
    if (!v && !strcmp(fn->u.fn.name, "join") && !arg(args, 0, NULL))
        folio_fail("chat template line %d: join expects an iterable", line);
    return v;
}
