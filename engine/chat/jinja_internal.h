/* Internals shared by the Jinja interpreter's files (not a public API): the arena that a
 * compiled template and each render allocate from, UTF-8 helpers, tokens, the syntax tree and
 * run-time values. Text is built in base's text_buf.
 *
 * Ownership: a template's tokens and syntax tree live in the template's arena; every value
 * made during a render lives in that render's arena and is freed with it, so values are
 * shared freely and never freed one by one. Values are immutable except namespaces. */
#ifndef FOLIO_JINJA_INTERNAL_H
#define FOLIO_JINJA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "grow.h"
#include "text_buf.h" /* the growable byte buffer */
#include "utf8.h" /* utf8_count */

/* ---- arena (jinja_text.c) ---- */
typedef struct jarena_block jarena_block;
typedef struct {
    jarena_block *head;
} jarena;

void *jarena_alloc(jarena *a, size_t n); /* zeroed; never NULL */
char *jarena_strndup(jarena *a, const char *s, size_t n);
void jarena_free(jarena *a);
/* A new arena array of cap elements holding a copy of old[0..n) (the old array stays until
 * the arena goes). */
void *jarena_grow(jarena *a, const void *old, size_t n, size_t cap, size_t elem);
/* Makes the arena array ptr (n used of cap, any integer types) hold one more element. */
#define JARENA_PUSH_ROOM(a, ptr, n, cap)                                                   \
    do {                                                                                   \
        if ((size_t)(n) == (size_t)(cap)) {                                                \
            (cap) = folio_grow_cap((size_t)(cap), (size_t)(n) + 1);                        \
            (ptr) = jarena_grow((a), (ptr), (size_t)(n), (size_t)(cap), sizeof *(ptr));    \
        }                                                                                  \
    } while (0)


/* Decodes the code point at s[i] (n bytes in all); *len gets its byte length (1 for a bad
 * byte, which decodes as itself). */
uint32_t jinja_utf8_at(const char *s, size_t n, size_t i, size_t *len);
void jinja_utf8_put(text_buf *b, uint32_t cp);
/* Python's str.isspace for one code point. */
bool jinja_is_space(uint32_t cp);

/* ---- tokens (jinja_lex.c) ---- */
typedef enum {
    TK_TEXT,        /* template text, already stripped per the whitespace rules */
    TK_VAR_BEGIN,   /* {{ */
    TK_VAR_END,     /* }} */
    TK_BLOCK_BEGIN, /* {% */
    TK_BLOCK_END,   /* %} */
    TK_NAME,
    TK_STRING, /* s/n: the decoded value */
    TK_INT,
    TK_FLOAT,
    TK_OP, /* s: the operator, e.g. "==" or "(" */
    TK_EOF
} jtok_kind;

typedef struct {
    jtok_kind kind;
    int line;
    const char *s; /* in the arena, NUL-terminated */
    size_t n;
    long long i;
    double f;
} jtoken;

/* Splits src into tokens (in arena a). Returns 0, or -1 with "chat template line N: ...". */
int jinja_lex(const char *src, jarena *a, jtoken **toks, int *ntoks);

/* ---- syntax tree (jinja_parse.c) ---- */
typedef enum {
    /* expressions */
    E_LIT, E_NAME, E_ATTR, E_ITEM, E_SLICE, E_CALL, E_FILTER, E_TEST, E_NEG, E_POS, E_NOT,
    E_BIN, E_AND, E_OR, E_CMP, E_COND, E_LIST, E_TUPLE, E_DICT,
    /* statements */
    S_TEXT, S_OUT, S_FOR, S_IF, S_SET, S_SET_ATTR, S_SET_BLOCK, S_BREAK, S_CONTINUE, S_BLOCK
} jnode_kind;

typedef struct jval jval;
typedef struct jnode jnode;

struct jnode {
    jnode_kind kind;
    int line;
    const char *op;   /* E_BIN / E_CMP operator */
    const char *name; /* E_NAME, E_ATTR attribute, filter/test name, S_SET_* variable */
    const char *attr; /* S_SET_ATTR attribute */
    bool negated;     /* E_TEST "is not" */
    jval *value;      /* E_LIT; S_TEXT text */
    jnode *a, *b, *c; /* operands; S_FOR: a iterable, b filter condition; S_IF: a condition */
    jnode **kids;     /* args, items, E_SLICE bounds (3, may be NULL), statement bodies */
    int nkids;
    jnode **kids2; /* S_FOR else body, S_IF else body */
    int nkids2;
    const char **kwnames; /* keyword arguments of calls, filters */
    jnode **kwvals;
    int nkw;
    const char **targets; /* S_FOR / S_SET names (more than one: tuple unpacking) */
    int ntargets;
};

/* Parses the tokens into a statement list (in arena a). Returns 0, or -1 with a message. */
int jinja_parse(jtoken *toks, int ntoks, jarena *a, jnode ***body, int *nbody);

/* ---- values (jinja_value.c) ---- */
typedef enum {
    JV_UNDEF, JV_NONE, JV_BOOL, JV_INT, JV_FLOAT, JV_STR, JV_LIST, JV_DICT, JV_NS, JV_FUNC,
    JV_METHOD
} jv_kind;

struct jval {
    jv_kind kind;
    bool tuple; /* JV_LIST shown as a tuple */
    union {
        bool b;
        long long i;
        double f;
        struct {
            const char *s;
            size_t n;
        } str;
        struct {
            jval **items;
            size_t n, cap;
        } list;
        struct { /* JV_DICT and JV_NS: insertion-ordered */
            jval **keys, **vals;
            size_t n, cap;
        } dict;
        struct {
            const char *name; /* JV_FUNC/JV_METHOD: the name; JV_UNDEF: why it is undefined */
            jval *self;       /* JV_METHOD: the receiver */
        } fn;
    } u;
};

jval *jv_undef(jarena *a, const char *why);
jval *jv_none(jarena *a);
jval *jv_bool(jarena *a, bool b);
jval *jv_int(jarena *a, long long i);
jval *jv_float(jarena *a, double f);
jval *jv_str(jarena *a, const char *s, size_t n); /* copies */
jval *jv_str_take_buf(jarena *a, text_buf *b);       /* copies the buffer and frees it */
jval *jv_list(jarena *a);
void jv_list_push(jarena *a, jval *l, jval *x);
jval *jv_dict(jarena *a, jv_kind kind); /* JV_DICT or JV_NS */
void jv_dict_set(jarena *a, jval *d, jval *key, jval *v);
jval *jv_dict_get(const jval *d, const jval *key); /* NULL when absent */
jval *jv_dict_get_str(const jval *d, const char *key);
jval *jv_func(jarena *a, jv_kind kind, const char *name, jval *self);

jval *jv_from_json(jarena *a, const json_t *j);

bool jv_truthy(const jval *v);
bool jv_is_number(const jval *v); /* bool, int, float (Python's bool is an int) */
double jv_num(const jval *v);
bool jv_equal(const jval *x, const jval *y);
/* Python ordering: -1/0/1, or -2 when the two cannot be ordered. */
int jv_compare(const jval *x, const jval *y);
const char *jv_type_name(const jval *v); /* Python's name: 'str', 'NoneType', ... */

void jv_write_str(text_buf *b, const jval *v);  /* Python str(); undefined writes nothing */
void jv_write_repr(text_buf *b, const jval *v); /* Python repr() */
/* json.dumps(v, ensure_ascii=False, indent, sort_keys); indent NULL = one line. Returns 0, or
 * -1 with a message naming the value type that JSON cannot hold. */
int jv_write_json(text_buf *b, const jval *v, const char *indent, bool sort_keys, int level);
void jv_write_float(text_buf *b, double f); /* Python repr(float) */
jval *jv_to_str(jarena *a, const jval *v);

/* ---- evaluation (jinja_eval.c) and built-ins (jinja_builtins.c) ---- */
typedef struct jrender jrender;
jarena *jrender_arena(jrender *r);

typedef struct {
    jval **pos;
    int npos;
    const char **kwnames;
    jval **kwvals;
    int nkw;
} jargs;

bool jinja_filter_known(const char *name);
bool jinja_test_known(const char *name);
/* Applies filter `name` to x. NULL with a message on error. */
jval *jinja_filter(jrender *r, int line, const char *name, jval *x, const jargs *args);
/* Runs test `name` on x: 0/1, or -1 with a message. */
int jinja_test(jrender *r, int line, const char *name, jval *x, const jargs *args);
/* Calls a global function or bound method. NULL with a message on error. */
jval *jinja_call(jrender *r, int line, jval *fn, const jargs *args);
/* The global functions (range, namespace, raise_exception, strftime_now, dict); NULL if not. */
jval *jinja_global(jarena *a, const char *name);
/* The bound method `name` of v (str and dict methods); NULL if v has none of that name. */
jval *jinja_method(jarena *a, jval *v, const char *name);

#endif
