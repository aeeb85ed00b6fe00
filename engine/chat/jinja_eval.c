/* Jinja evaluator: walks the syntax tree with a chain of variable frames (the context at the
 * root; a fresh frame per for-loop iteration, so a `set` inside a loop does not leak out, as in
 * jinja2), writes output into a buffer, and implements jinja_compile / jinja_render. Attribute
 * and item lookups follow jinja2's sandbox: a missing key is undefined, and using an undefined
 * value for anything but printing, testing or iterating is an error naming it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "jinja.h"
#include "jinja_internal.h"

struct jinja_template {
    jarena arena;
    jnode **body;
    int nbody;
};

typedef struct jframe {
    struct jframe *parent;
    const char **names;
    jval **vals;
    int n, cap;
} jframe;

typedef enum { CTL_NONE, CTL_BREAK, CTL_CONTINUE } jctl;

struct jrender {
    jarena arena;
    jframe *frame;
    text_buf *out;
    jctl ctl;
};

jarena *jrender_arena(jrender *r) { return &r->arena; }

static jframe *frame_push(jrender *r) {
    jframe *f = jarena_alloc(&r->arena, sizeof *f);
    f->parent = r->frame;
    r->frame = f;
    return f;
}

static void frame_set(jrender *r, jframe *f, const char *name, jval *v) {
    for (int k = 0; k < f->n; k++)
        if (strcmp(f->names[k], name) == 0) {
            f->vals[k] = v;
            return;
        }
    if (f->n == f->cap) {
        size_t n = (size_t)f->n, cap = folio_grow_cap((size_t)f->cap, n + 1);
        f->names = jarena_grow(&r->arena, f->names, n, cap, sizeof *f->names);
        f->vals = jarena_grow(&r->arena, f->vals, n, cap, sizeof *f->vals);
        f->cap = (int)cap;
    }
    f->names[f->n] = name;
    f->vals[f->n++] = v;
}

static jval *lookup(jrender *r, const char *name) {
    for (jframe *f = r->frame; f; f = f->parent)
        for (int k = f->n - 1; k >= 0; k--)
            if (strcmp(f->names[k], name) == 0) return f->vals[k];
    jval *g = jinja_global(&r->arena, name);
    if (g) return g;
    text_buf b = {0};
    text_buf_putc(&b, '\'');
    text_buf_puts(&b, name);
    text_buf_puts(&b, "' is undefined");
    return jv_undef(&r->arena, jv_str_take_buf(&r->arena, &b)->u.str.s);
}

static int fail_undefined(int line, const jval *v) {
    return folio_fail("chat template line %d: %s", line, v->u.fn.name);
}

static jval *undefined_member(jrender *r, const jval *obj, const char *what, const jval *key) {
    text_buf b = {0};
    text_buf_putc(&b, '\'');
    text_buf_puts(&b, jv_type_name(obj));
    text_buf_puts(&b, " object' has no ");
    text_buf_puts(&b, what);
    text_buf_putc(&b, ' ');
    jv_write_repr(&b, key);
    return jv_undef(&r->arena, jv_str_take_buf(&r->arena, &b)->u.str.s);
}

static jval *eval(jrender *r, const jnode *e);

/* ---- lookups ---- */

static jval *get_attr(jrender *r, int line, jval *obj, const char *name) {
    if (obj->kind == JV_UNDEF) {
        fail_undefined(line, obj);
        return NULL;
    }
    jval *m = jinja_method(&r->arena, obj, name);
    if (m) return m;
    if (obj->kind == JV_DICT || obj->kind == JV_NS) {
        jval *v = jv_dict_get_str(obj, name);
        if (v) return v;
    }
    return undefined_member(r, obj, "attribute", jv_str(&r->arena, name, strlen(name)));
}

/* Byte offset of code point index k in s (k clamped to [0, count]). */
static size_t cp_offset(const char *s, size_t n, long long k) {
    size_t i = 0, len;
    for (long long c = 0; c < k && i < n; c++) {
        jinja_utf8_at(s, n, i, &len);
        i += len;
    }
    return i;
}

static jval *get_item(jrender *r, int line, jval *obj, jval *key) {
    if (obj->kind == JV_UNDEF) {
        fail_undefined(line, obj);
        return NULL;
    }
    if (obj->kind == JV_DICT || obj->kind == JV_NS) {
        jval *v = jv_dict_get(obj, key);
        if (v) return v;
    } else if ((obj->kind == JV_LIST || obj->kind == JV_STR) &&
               (key->kind == JV_INT || key->kind == JV_BOOL)) {
        long long k = key->kind == JV_INT ? key->u.i : key->u.b;
        long long n = obj->kind == JV_LIST ? (long long)obj->u.list.n
                                           : (long long)utf8_count(obj->u.str.s, obj->u.str.n);
        if (k < 0) k += n;
        if (k >= 0 && k < n) {
            if (obj->kind == JV_LIST) return obj->u.list.items[k];
            size_t i = cp_offset(obj->u.str.s, obj->u.str.n, k), len;
            jinja_utf8_at(obj->u.str.s, obj->u.str.n, i, &len);
            return jv_str(&r->arena, obj->u.str.s + i, len);
        }
    }
    if (key->kind == JV_STR) {
        jval *m = jinja_method(&r->arena, obj, key->u.str.s);
        if (m) return m;
    }
    return undefined_member(r, obj, "element", key);
}

static int slice_bound(jrender *r, const jnode *e, long long *out, bool *given) {
    *given = false;
    if (!e) return 0;
    jval *v = eval(r, e);
    if (!v) return -1;
    if (v->kind == JV_NONE) return 0;
    if (v->kind != JV_INT && v->kind != JV_BOOL)
        return folio_fail("chat template line %d: slice indices must be integers, not %s",
                          e->line, jv_type_name(v));
    *out = v->kind == JV_INT ? v->u.i : v->u.b;
    *given = true;
    return 0;
}

/* Python slice semantics: obj[start:stop:step] over list items or code points. */
static jval *eval_slice(jrender *r, const jnode *e) {
    jval *obj = eval(r, e->a);
    if (!obj) return NULL;
    long long start = 0, stop = 0, step = 1;
    bool has_start, has_stop, has_step;
    if (slice_bound(r, e->kids[0], &start, &has_start) || slice_bound(r, e->kids[1], &stop, &has_stop) ||
        slice_bound(r, e->kids[2], &step, &has_step))
        return NULL;
    if (step == 0) {
        folio_fail("chat template line %d: slice step cannot be zero", e->line);
        return NULL;
    }
    if (obj->kind != JV_LIST && obj->kind != JV_STR) {
        if (obj->kind == JV_UNDEF) fail_undefined(e->line, obj);
        else folio_fail("chat template line %d: cannot slice a %s", e->line, jv_type_name(obj));
        return NULL;
    }
    bool is_str = obj->kind == JV_STR;
    long long n = is_str ? (long long)utf8_count(obj->u.str.s, obj->u.str.n) : (long long)obj->u.list.n;
    if (!has_start) start = step > 0 ? 0 : n - 1;
    else if (start < 0) start = start + n < 0 ? (step > 0 ? 0 : -1) : start + n;
    else if (start >= n) start = step > 0 ? n : n - 1;
    if (!has_stop) stop = step > 0 ? n : -1;
    else if (stop < 0) stop = stop + n < 0 ? (step > 0 ? 0 : -1) : stop + n;
    else if (stop >= n) stop = step > 0 ? n : n - 1;
    jval *list = jv_list(&r->arena);
    text_buf b = {0};
    for (long long k = start; step > 0 ? k < stop : k > stop; k += step) {
        if (!is_str) {
            jv_list_push(&r->arena, list, obj->u.list.items[k]);
            continue;
        }
        size_t i = cp_offset(obj->u.str.s, obj->u.str.n, k), len;
        jinja_utf8_at(obj->u.str.s, obj->u.str.n, i, &len);
        text_buf_append(&b, obj->u.str.s + i, len);
    }
    if (is_str) return jv_str_take_buf(&r->arena, &b);
    list->tuple = obj->tuple;
    return list;
}

/* ---- operators ---- */

static jval *type_error(int line, const char *op, const jval *x, const jval *y) {
    folio_fail("chat template line %d: unsupported operand types for %s: '%s' and '%s'", line,
               op, jv_type_name(x), jv_type_name(y));
    return NULL;
}

static jval *concat_seq(jrender *r, const jval *x, const jval *y) {
    if (x->kind == JV_STR) {
        text_buf b = {0};
        text_buf_append(&b, x->u.str.s, x->u.str.n);
        text_buf_append(&b, y->u.str.s, y->u.str.n);
        return jv_str_take_buf(&r->arena, &b);
    }
    jval *l = jv_list(&r->arena);
    for (size_t k = 0; k < x->u.list.n; k++) jv_list_push(&r->arena, l, x->u.list.items[k]);
    for (size_t k = 0; k < y->u.list.n; k++) jv_list_push(&r->arena, l, y->u.list.items[k]);
    l->tuple = x->tuple;
    return l;
}

static jval *repeat_seq(jrender *r, const jval *seq, long long times) {
    jval *l = jv_list(&r->arena);
    text_buf b = {0};
    for (long long t = 0; t < times; t++) {
        if (seq->kind == JV_STR) text_buf_append(&b, seq->u.str.s, seq->u.str.n);
        else
            for (size_t k = 0; k < seq->u.list.n; k++)
                jv_list_push(&r->arena, l, seq->u.list.items[k]);
    }
    if (seq->kind == JV_STR) return jv_str_take_buf(&r->arena, &b);
    l->tuple = seq->tuple;
    return l;
}

static long long as_int(const jval *v) { return v->kind == JV_INT ? v->u.i : v->u.b; }

static jval *arith(jrender *r, int line, const char *op, jval *x, jval *y) {
    if (x->kind == JV_UNDEF || y->kind == JV_UNDEF) {
        fail_undefined(line, x->kind == JV_UNDEF ? x : y);
        return NULL;
    }
    char o = op[0];
    bool both_num = jv_is_number(x) && jv_is_number(y);
    bool ints = both_num && x->kind != JV_FLOAT && y->kind != JV_FLOAT;
    if (o == '+' && !both_num) {
        bool same_seq = (x->kind == JV_STR && y->kind == JV_STR) ||
                        (x->kind == JV_LIST && y->kind == JV_LIST && x->tuple == y->tuple);
        return same_seq ? concat_seq(r, x, y) : type_error(line, op, x, y);
    }
    if (o == '*' && op[1] == '\0' && !both_num) {
        if ((x->kind == JV_STR || x->kind == JV_LIST) && (y->kind == JV_INT || y->kind == JV_BOOL))
            return repeat_seq(r, x, as_int(y));
        if ((y->kind == JV_STR || y->kind == JV_LIST) && (x->kind == JV_INT || x->kind == JV_BOOL))
            return repeat_seq(r, y, as_int(x));
        return type_error(line, op, x, y);
    }
    if (!both_num) return type_error(line, op, x, y);
    double a = jv_num(x), b = jv_num(y);
    long long p = ints ? as_int(x) : 0, q = ints ? as_int(y) : 0;
    if ((o == '/' || o == '%') && b == 0) {
        folio_fail("chat template line %d: division by zero", line);
        return NULL;
    }
    if (!strcmp(op, "+")) return ints ? jv_int(&r->arena, p + q) : jv_float(&r->arena, a + b);
    if (!strcmp(op, "-")) return ints ? jv_int(&r->arena, p - q) : jv_float(&r->arena, a - b);
    if (!strcmp(op, "*")) return ints ? jv_int(&r->arena, p * q) : jv_float(&r->arena, a * b);
    if (!strcmp(op, "/")) return jv_float(&r->arena, a / b);
    if (!strcmp(op, "//")) {
        if (!ints) return jv_float(&r->arena, floor(a / b));
        long long d = p / q;
        if ((p % q != 0) && ((p < 0) != (q < 0))) d--;
        return jv_int(&r->arena, d);
    }
    if (!strcmp(op, "%")) {
        if (!ints) {
            double m = fmod(a, b);
            if (m != 0 && ((m < 0) != (b < 0))) m += b;
            return jv_float(&r->arena, m);
        }
        long long m = p % q;
        if (m != 0 && ((m < 0) != (q < 0))) m += q;
        return jv_int(&r->arena, m);
    }
    if (ints && q >= 0) {
        long long v = 1;
        for (long long k = 0; k < q; k++) v *= p;
        return jv_int(&r->arena, v);
    }
    return jv_float(&r->arena, pow(a, b));
}

static jval *tilde(jrender *r, jval *x, jval *y) {
    text_buf b = {0};
    jv_write_str(&b, x);
    jv_write_str(&b, y);
    return jv_str_take_buf(&r->arena, &b);
}

static int contains(int line, const jval *item, const jval *seq) {
    switch (seq->kind) {
    case JV_STR:
        if (item->kind != JV_STR)
            return folio_fail("chat template line %d: 'in <string>' requires string as left "
                              "operand, not %s", line, jv_type_name(item));
        if (item->u.str.n == 0) return 1;
        return memmem(seq->u.str.s, seq->u.str.n, item->u.str.s, item->u.str.n) != NULL;
    case JV_LIST:
        for (size_t k = 0; k < seq->u.list.n; k++)
            if (jv_equal(seq->u.list.items[k], item)) return 1;
        return 0;
    case JV_DICT: case JV_NS: return jv_dict_get(seq, item) != NULL;
    case JV_UNDEF: return 0;
    default:
        return folio_fail("chat template line %d: argument of type '%s' is not iterable", line,
                          jv_type_name(seq));
    }
}

static jval *compare(jrender *r, const jnode *e, jval *x, jval *y) {
    const char *op = e->op;
    if (!strcmp(op, "==")) return jv_bool(&r->arena, jv_equal(x, y));
    if (!strcmp(op, "!=")) return jv_bool(&r->arena, !jv_equal(x, y));
    if (!strcmp(op, "in") || !strcmp(op, "not in")) {
        int c = contains(e->line, x, y);
        if (c < 0) return NULL;
        return jv_bool(&r->arena, op[0] == 'n' ? !c : c);
    }
    if (x->kind == JV_UNDEF || y->kind == JV_UNDEF) {
        fail_undefined(e->line, x->kind == JV_UNDEF ? x : y);
        return NULL;
    }
    int c = jv_compare(x, y);
    if (c == -2) {
        folio_fail("chat template line %d: '%s' not supported between instances of '%s' and "
                   "'%s'", e->line, op, jv_type_name(x), jv_type_name(y));
        return NULL;
    }
    bool v = !strcmp(op, "<") ? c < 0 : !strcmp(op, "<=") ? c <= 0 : !strcmp(op, ">") ? c > 0 : c >= 0;
    return jv_bool(&r->arena, v);
}

/* ---- calls ---- */

static int eval_args(jrender *r, const jnode *e, jargs *args) {
    memset(args, 0, sizeof *args);
    args->npos = e->nkids;
    args->pos = jarena_alloc(&r->arena, (size_t)(e->nkids + 1) * sizeof *args->pos);
    for (int k = 0; k < e->nkids; k++)
        if (!(args->pos[k] = eval(r, e->kids[k]))) return -1;
    args->nkw = e->nkw;
    args->kwnames = e->kwnames;
    args->kwvals = jarena_alloc(&r->arena, (size_t)(e->nkw + 1) * sizeof *args->kwvals);
    for (int k = 0; k < e->nkw; k++)
        if (!(args->kwvals[k] = eval(r, e->kwvals[k]))) return -1;
    return 0;
}

static jval *eval_call(jrender *r, const jnode *e) {
    jval *fn = eval(r, e->a);
    if (!fn) return NULL;
    jargs args;
    if (eval_args(r, e, &args) != 0) return NULL;
    if (fn->kind == JV_UNDEF) {
        fail_undefined(e->line, fn);
        return NULL;
    }
    if (fn->kind != JV_FUNC && fn->kind != JV_METHOD) {
        folio_fail("chat template line %d: '%s' object is not callable", e->line,
                   jv_type_name(fn));
        return NULL;
    }
    return jinja_call(r, e->line, fn, &args);
}

static jval *eval_filter(jrender *r, const jnode *e) {
    jval *x = eval(r, e->a);
    jargs args;
    if (!x || eval_args(r, e, &args) != 0) return NULL;
    return jinja_filter(r, e->line, e->name, x, &args);
}

static jval *eval_test(jrender *r, const jnode *e) {
    jval *x = eval(r, e->a);
    jargs args;
    if (!x || eval_args(r, e, &args) != 0) return NULL;
    int t = jinja_test(r, e->line, e->name, x, &args);
    if (t < 0) return NULL;
    return jv_bool(&r->arena, e->negated ? !t : t);
}

static jval *eval_collection(jrender *r, const jnode *e) {
    if (e->kind == E_DICT) {
        jval *d = jv_dict(&r->arena, JV_DICT);
        for (int k = 0; k + 1 < e->nkids; k += 2) {
            jval *key = eval(r, e->kids[k]), *v = key ? eval(r, e->kids[k + 1]) : NULL;
            if (!v) return NULL;
            jv_dict_set(&r->arena, d, key, v);
        }
        return d;
    }
    jval *l = jv_list(&r->arena);
    l->tuple = e->kind == E_TUPLE;
    for (int k = 0; k < e->nkids; k++) {
        jval *v = eval(r, e->kids[k]);
        if (!v) return NULL;
        jv_list_push(&r->arena, l, v);
    }
    return l;
}

static jval *eval_unary(jrender *r, const jnode *e) {
    jval *x = eval(r, e->a);
    if (!x) return NULL;
    if (e->kind == E_NOT) return jv_bool(&r->arena, !jv_truthy(x));
    if (x->kind == JV_UNDEF) {
        fail_undefined(e->line, x);
        return NULL;
    }
    if (!jv_is_number(x)) {
        folio_fail("chat template line %d: bad operand type for unary %s: '%s'", e->line,
                   e->kind == E_NEG ? "-" : "+", jv_type_name(x));
        return NULL;
    }
    if (e->kind == E_POS) return x->kind == JV_BOOL ? jv_int(&r->arena, x->u.b) : x;
    return x->kind == JV_FLOAT ? jv_float(&r->arena, -x->u.f) : jv_int(&r->arena, -as_int(x));
}

static jval *eval(jrender *r, const jnode *e) {
    jval *x, *y;
    switch (e->kind) {
    case E_LIT: return e->value;
    case E_NAME: return lookup(r, e->name);
    case E_ATTR: return (x = eval(r, e->a)) ? get_attr(r, e->line, x, e->name) : NULL;
    case E_ITEM:
        if (!(x = eval(r, e->a)) || !(y = eval(r, e->b))) return NULL;
        return get_item(r, e->line, x, y);
    case E_SLICE: return eval_slice(r, e);
    case E_CALL: return eval_call(r, e);
    case E_FILTER: return eval_filter(r, e);
    case E_TEST: return eval_test(r, e);
    case E_NEG: case E_POS: case E_NOT: return eval_unary(r, e);
    case E_BIN:
        if (!(x = eval(r, e->a)) || !(y = eval(r, e->b))) return NULL;
        return e->op[0] == '~' ? tilde(r, x, y) : arith(r, e->line, e->op, x, y);
    case E_AND:
        if (!(x = eval(r, e->a))) return NULL;
        return jv_truthy(x) ? eval(r, e->b) : x;
    case E_OR:
        if (!(x = eval(r, e->a))) return NULL;
        return jv_truthy(x) ? x : eval(r, e->b);
    case E_CMP:
        if (!(x = eval(r, e->a)) || !(y = eval(r, e->b))) return NULL;
        return compare(r, e, x, y);
    case E_COND:
        if (!(x = eval(r, e->b))) return NULL;
        if (jv_truthy(x)) return eval(r, e->a);
        return e->c ? eval(r, e->c) : jv_undef(&r->arena, "the 'if' expression had no else");
    case E_LIST: case E_TUPLE: case E_DICT: return eval_collection(r, e);
    default:
        folio_fail("chat template line %d: internal error: statement in an expression", e->line);
        return NULL;
    }
}

/* ---- statements ---- */

static int exec_body(jrender *r, jnode *const *body, int n);

/* Binds loop or set targets: one name takes the value; several unpack a list or tuple. */
static int bind_targets(jrender *r, jframe *f, const jnode *s, jval *v) {
    if (s->ntargets == 1) {
        frame_set(r, f, s->targets[0], v);
        return 0;
    }
    if (v->kind != JV_LIST || v->u.list.n != (size_t)s->ntargets)
        return folio_fail("chat template line %d: cannot unpack a %s into %d names", s->line,
                          jv_type_name(v), s->ntargets);
    for (int k = 0; k < s->ntargets; k++) frame_set(r, f, s->targets[k], v->u.list.items[k]);
    return 0;
}

/* The items a for loop walks: list items, dict keys, string characters; undefined is empty. */
static jval *iterable_items(jrender *r, int line, jval *v) {
    if (v->kind == JV_LIST) return v;
    jval *l = jv_list(&r->arena);
    if (v->kind == JV_DICT) {
        for (size_t k = 0; k < v->u.dict.n; k++) jv_list_push(&r->arena, l, v->u.dict.keys[k]);
    } else if (v->kind == JV_STR) {
        size_t len;
        for (size_t i = 0; i < v->u.str.n; i += len) {
            jinja_utf8_at(v->u.str.s, v->u.str.n, i, &len);
            jv_list_push(&r->arena, l, jv_str(&r->arena, v->u.str.s + i, len));
        }
    } else if (v->kind != JV_UNDEF) {
        folio_fail("chat template line %d: '%s' object is not iterable", line, jv_type_name(v));
        return NULL;
    }
    return l;
}

/* Items that pass the loop's "if" filter (evaluated with the loop variables bound). */
static jval *filter_items(jrender *r, const jnode *s, jval *items) {
    if (!s->b) return items;
    jval *kept = jv_list(&r->arena);
    for (size_t k = 0; k < items->u.list.n; k++) {
        jframe *saved = r->frame;
        jframe *f = frame_push(r);
        int rc = bind_targets(r, f, s, items->u.list.items[k]);
        jval *c = rc == 0 ? eval(r, s->b) : NULL;
        r->frame = saved;
        if (!c) return NULL;
        if (jv_truthy(c)) jv_list_push(&r->arena, kept, items->u.list.items[k]);
    }
    return kept;
}

static jval *loop_object(jrender *r, jval *items, size_t k) {
    jarena *a = &r->arena;
    size_t n = items->u.list.n;
    jval *d = jv_dict(a, JV_DICT);
#define LOOP_FIELD(name, v) jv_dict_set(a, d, jv_str(a, name, strlen(name)), v)
    LOOP_FIELD("index0", jv_int(a, (long long)k));
    LOOP_FIELD("index", jv_int(a, (long long)k + 1));
    LOOP_FIELD("revindex0", jv_int(a, (long long)(n - k - 1)));
    LOOP_FIELD("revindex", jv_int(a, (long long)(n - k)));
    LOOP_FIELD("first", jv_bool(a, k == 0));
    LOOP_FIELD("last", jv_bool(a, k + 1 == n));
    LOOP_FIELD("length", jv_int(a, (long long)n));
    LOOP_FIELD("depth", jv_int(a, 1));
    LOOP_FIELD("depth0", jv_int(a, 0));
    if (k > 0) LOOP_FIELD("previtem", items->u.list.items[k - 1]);
    if (k + 1 < n) LOOP_FIELD("nextitem", items->u.list.items[k + 1]);
#undef LOOP_FIELD
    return d;
}

static int exec_for(jrender *r, const jnode *s) {
    jval *v = eval(r, s->a);
    if (!v) return -1;
    jval *items = iterable_items(r, s->a->line, v);
    if (!items || !(items = filter_items(r, s, items))) return -1;
    if (items->u.list.n == 0) return exec_body(r, s->kids2, s->nkids2);
    jframe *saved = r->frame;
    for (size_t k = 0; k < items->u.list.n; k++) {
        jframe *f = frame_push(r);
        frame_set(r, f, "loop", loop_object(r, items, k));
        int rc = bind_targets(r, f, s, items->u.list.items[k]);
        if (rc == 0) rc = exec_body(r, s->kids, s->nkids);
        r->frame = saved;
        if (rc != 0) return -1;
        jctl ctl = r->ctl;
        r->ctl = CTL_NONE;
        if (ctl == CTL_BREAK) break;
    }
    return 0;
}

static int exec_set(jrender *r, const jnode *s) {
    if (s->kind == S_SET_BLOCK) {
        text_buf b = {0}, *saved = r->out;
        r->out = &b;
        int rc = exec_body(r, s->kids, s->nkids);
        r->out = saved;
        jval *v = jv_str_take_buf(&r->arena, &b);
        if (rc == 0) frame_set(r, r->frame, s->name, v);
        return rc;
    }
    jval *v = eval(r, s->a);
    if (!v) return -1;
    if (s->kind == S_SET) return bind_targets(r, r->frame, s, v);
    jval *ns = lookup(r, s->name);
    if (ns->kind != JV_NS)
        return folio_fail("chat template line %d: cannot assign attribute on non-namespace "
                          "object '%s'", s->line, s->name);
    jv_dict_set(&r->arena, ns, jv_str(&r->arena, s->attr, strlen(s->attr)), v);
    return 0;
}

static int exec_stmt(jrender *r, const jnode *s) {
    jval *v;
    switch (s->kind) {
    case S_TEXT: text_buf_append(r->out, s->value->u.str.s, s->value->u.str.n); return 0;
    case S_OUT:
        if (!(v = eval(r, s->a))) return -1;
        jv_write_str(r->out, v);
        return 0;
    case S_FOR: return exec_for(r, s);
    case S_IF:
        if (!(v = eval(r, s->a))) return -1;
        return jv_truthy(v) ? exec_body(r, s->kids, s->nkids) : exec_body(r, s->kids2, s->nkids2);
    case S_SET: case S_SET_ATTR: case S_SET_BLOCK: return exec_set(r, s);
    case S_BREAK: r->ctl = CTL_BREAK; return 0;
    case S_CONTINUE: r->ctl = CTL_CONTINUE; return 0;
    case S_BLOCK: return exec_body(r, s->kids, s->nkids);
    default: return folio_fail("chat template line %d: internal error: bad statement", s->line);
    }
}

static int exec_body(jrender *r, jnode *const *body, int n) {
    for (int k = 0; k < n && r->ctl == CTL_NONE; k++)
        if (exec_stmt(r, body[k]) != 0) return -1;
    return 0;
}

/* ---- API ---- */

jinja_template *jinja_compile(const char *src) {
    jinja_template *t = folio_xcalloc(1, sizeof *t);
    jtoken *toks;
    int ntoks;
    if (jinja_lex(src, &t->arena, &toks, &ntoks) != 0 ||
        jinja_parse(toks, ntoks, &t->arena, &t->body, &t->nbody) != 0) {
        jinja_free(t);
        return NULL;
    }
    return t;
}

int jinja_render(const jinja_template *t, const json_t *context, char **out, size_t *out_len) {
    jrender r = {0};
    text_buf b = {0};
    r.out = &b;
    jframe *root = frame_push(&r);
    if (context) {
        if (!json_is_object(context)) {
            jarena_free(&r.arena);
            return folio_fail("chat template context must be a JSON object");
        }
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)context, key, v)
            frame_set(&r, root, jarena_strndup(&r.arena, key, strlen(key)),
                      jv_from_json(&r.arena, v));
    }
    frame_push(&r); /* top-level sets shadow the context */
    int rc = exec_body(&r, t->body, t->nbody);
    jarena_free(&r.arena);
    if (rc != 0) {
        text_buf_free(&b);
        return -1;
    }
    if (!b.s) text_buf_append(&b, "", 0);
    *out = b.s;
    *out_len = b.len;
    return 0;
}

void jinja_free(jinja_template *t) {
    if (!t) return;
    jarena_free(&t->arena);
    free(t);
}
