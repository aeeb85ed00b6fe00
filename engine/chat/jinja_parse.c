/* Jinja parser: tokens -> syntax tree, by recursive descent with jinja2's precedence
 * (lowest first): "x if c else y", or, and, not, comparisons and "in", + -, ~, * / // %, **,
 * unary - +, then primaries with .attr, [index], [a:b:c], (call), |filter and "is test".
 * Statements: for (with loop filter and else), if/elif/else, set (name, tuple, ns.attr,
 * block), break, continue, generation. Unknown tags, filters and tests fail here, naming the
 * construct and its line. */
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "jinja_internal.h"

typedef struct {
    jtoken *t;
    int n, i;
    jarena *a;
    int loop_depth;
} parser;

typedef struct { /* a growable node list */
    jnode **items;
    int n, cap;
} nodes;

static void nodes_push(parser *P, nodes *l, jnode *x) {
    JARENA_PUSH_ROOM(P->a, l->items, l->n, l->cap);
    l->items[l->n++] = x;
}

static jtoken *peek(parser *P) { return &P->t[P->i]; }
static jtoken *peek2(parser *P) { return &P->t[P->i + 1 < P->n ? P->i + 1 : P->i]; }
static jtoken *next(parser *P) {
    jtoken *t = &P->t[P->i];
    if (P->i + 1 < P->n) P->i++;
    return t;
}

static bool is_op(const jtoken *t, const char *op) {
    return t->kind == TK_OP && strcmp(t->s, op) == 0;
}
static bool is_name(const jtoken *t, const char *name) {
    return t->kind == TK_NAME && strcmp(t->s, name) == 0;
}
static bool accept_op(parser *P, const char *op) {
    if (!is_op(peek(P), op)) return false;
    next(P);
    return true;
}
static bool accept_name(parser *P, const char *name) {
    if (!is_name(peek(P), name)) return false;
    next(P);
    return true;
}

static const char *describe(const jtoken *t) {
    switch (t->kind) {
    case TK_EOF: return "end of template";
    case TK_BLOCK_END: return "'%}'";
    case TK_VAR_END: return "'}}'";
    case TK_TEXT: return "template text";
    default: return t->s;
    }
}

static int fail_at(const jtoken *t, const char *what) {
    return folio_fail("chat template line %d: %s, found %s%s%s", t->line, what,
                      t->kind == TK_STRING ? "'" : "", describe(t),
                      t->kind == TK_STRING ? "'" : "");
}

static int expect_op(parser *P, const char *op) {
    if (accept_op(P, op)) return 0;
    char what[64];
    snprintf(what, sizeof what, "expected '%s'", op);
    return fail_at(peek(P), what);
}

static jnode *node(parser *P, jnode_kind kind, int line) {
    jnode *x = jarena_alloc(P->a, sizeof *x);
    x->kind = kind;
    x->line = line;
    return x;
}

static jnode *parse_expression(parser *P, bool with_condexpr);
static jnode *parse_or(parser *P);
static jnode *parse_unary(parser *P, bool with_filter);

/* ( args ) after the '(' : positional and name=value arguments. */
static int parse_args(parser *P, jnode *x) {
    nodes pos = {0}, kwv = {0};
    const char **kwn = NULL;
    int nkw = 0, cap = 0;
    while (!accept_op(P, ")")) {
        if (pos.n + nkw > 0 && expect_op(P, ",") != 0) return -1;
        if (accept_op(P, ")")) break;
        if (is_op(peek(P), "*") || is_op(peek(P), "**"))
            return folio_fail("chat template line %d: unsupported *args/**kwargs in a call",
                              peek(P)->line);
        if (peek(P)->kind == TK_NAME && is_op(peek2(P), "=")) {
            const char *name = next(P)->s;
            next(P);
            jnode *v = parse_expression(P, true);
            if (!v) return -1;
            JARENA_PUSH_ROOM(P->a, kwn, nkw, cap);
            kwn[nkw++] = name;
            nodes_push(P, &kwv, v);
        } else {
            if (nkw > 0)
                return fail_at(peek(P), "positional argument after keyword argument");
            jnode *v = parse_expression(P, true);
            if (!v) return -1;
            nodes_push(P, &pos, v);
        }
    }
    x->kids = pos.items;
    x->nkids = pos.n;
    x->kwnames = kwn;
    x->kwvals = kwv.items;
    x->nkw = nkw;
    return 0;
}

static jnode *parse_subscript(parser *P, jnode *obj) {
    int line = peek(P)->line;
    if (accept_op(P, ".")) {
        jtoken *t = next(P);
        if (t->kind == TK_NAME) {
            jnode *x = node(P, E_ATTR, line);
            x->a = obj;
            x->name = t->s;
            return x;
        }
        if (t->kind == TK_INT) {
            jnode *x = node(P, E_ITEM, line), *k = node(P, E_LIT, line);
            k->value = jv_int(P->a, t->i);
            x->a = obj;
            x->b = k;
            return x;
        }
        fail_at(t, "expected an attribute name after '.'");
        return NULL;
    }
    next(P); /* '[' */
    jnode *bounds[3] = {NULL, NULL, NULL};
    int nb = 0;
    bool slice = false;
    while (1) {
        if (!is_op(peek(P), ":") && !is_op(peek(P), "]")) {
            if (!(bounds[nb] = parse_expression(P, true))) return NULL;
        }
        if (nb < 2 && accept_op(P, ":")) {
            slice = true;
            nb++;
            continue;
        }
        break;
    }
    if (expect_op(P, "]") != 0) return NULL;
    jnode *x = node(P, slice ? E_SLICE : E_ITEM, line);
    x->a = obj;
    if (slice) {
        x->kids = jarena_alloc(P->a, 3 * sizeof *x->kids);
        memcpy(x->kids, bounds, sizeof bounds);
        x->nkids = 3;
    } else {
        if (!bounds[0]) {
            fail_at(peek(P), "expected an index");
            return NULL;
        }
        x->b = bounds[0];
    }
    return x;
}

/* A call of x: its arguments after the "(" at the parser (on line line); NULL on an error. */
static jnode *parse_call(parser *P, jnode *x, int line) {
    next(P);
    jnode *call = node(P, E_CALL, line);
    call->a = x;
    return parse_args(P, call) != 0 ? NULL : call;
}

static jnode *parse_postfix(parser *P, jnode *x) {
    while (x) {
        jtoken *t = peek(P);
        if (is_op(t, ".") || is_op(t, "[")) {
            x = parse_subscript(P, x);
        } else if (is_op(t, "(")) {
            if (!(x = parse_call(P, x, t->line))) return NULL;
        } else {
            break;
        }
    }
    return x;
}

static jnode *parse_list_literal(parser *P, int line, bool dict) {
    jnode *x = node(P, dict ? E_DICT : E_LIST, line);
    nodes items = {0};
    const char *close = dict ? "}" : "]";
    while (!accept_op(P, close)) {
        if (items.n > 0 && expect_op(P, ",") != 0) return NULL;
        if (accept_op(P, close)) break;
        jnode *k = parse_expression(P, true);
        if (!k) return NULL;
        nodes_push(P, &items, k);
        if (dict) {
            if (expect_op(P, ":") != 0) return NULL;
            jnode *v = parse_expression(P, true);
            if (!v) return NULL;
            nodes_push(P, &items, v);
        }
    }
    x->kids = items.items;
    x->nkids = items.n;
    return x;
}

static jnode *parse_paren(parser *P, int line) {
    if (accept_op(P, ")")) {
        jnode *x = node(P, E_TUPLE, line);
        return x;
    }
    jnode *first = parse_expression(P, true);
    if (!first) return NULL;
    if (!is_op(peek(P), ",")) return expect_op(P, ")") == 0 ? first : NULL;
    jnode *x = node(P, E_TUPLE, line);
    nodes items = {0};
    nodes_push(P, &items, first);
    while (accept_op(P, ",")) {
        if (is_op(peek(P), ")")) break;
        jnode *k = parse_expression(P, true);
        if (!k) return NULL;
        nodes_push(P, &items, k);
    }
    if (expect_op(P, ")") != 0) return NULL;
    x->kids = items.items;
    x->nkids = items.n;
    return x;
}

static jnode *literal(parser *P, int line, jval *v) {
    jnode *x = node(P, E_LIT, line);
    x->value = v;
    return x;
}

static jnode *parse_primary(parser *P) {
    jtoken *t = next(P);
    switch (t->kind) {
    case TK_NAME:
        if (!strcmp(t->s, "true") || !strcmp(t->s, "True")) return literal(P, t->line, jv_bool(P->a, true));
        if (!strcmp(t->s, "false") || !strcmp(t->s, "False")) return literal(P, t->line, jv_bool(P->a, false));
        if (!strcmp(t->s, "none") || !strcmp(t->s, "None")) return literal(P, t->line, jv_none(P->a));
        {
            jnode *x = node(P, E_NAME, t->line);
            x->name = t->s;
            return x;
        }
    case TK_STRING: {
        text_buf b = {0};
        text_buf_append(&b, t->s, t->n);
        while (peek(P)->kind == TK_STRING) {
            jtoken *more = next(P);
            text_buf_append(&b, more->s, more->n);
        }
        jval *v = jv_str_take_buf(P->a, &b);
        return literal(P, t->line, v);
    }
    case TK_INT: return literal(P, t->line, jv_int(P->a, t->i));
    case TK_FLOAT: return literal(P, t->line, jv_float(P->a, t->f));
    case TK_OP:
        if (!strcmp(t->s, "(")) return parse_paren(P, t->line);
        if (!strcmp(t->s, "[")) return parse_list_literal(P, t->line, false);
        if (!strcmp(t->s, "{")) return parse_list_literal(P, t->line, true);
        break;
    default: break;
    }
    P->i--;
    fail_at(t, "expected an expression");
    return NULL;
}

static jnode *parse_test(parser *P, jnode *operand, int line) {
    jnode *x = node(P, E_TEST, line);
    x->a = operand;
    x->negated = accept_name(P, "not");
    jtoken *t = next(P);
    if (t->kind != TK_NAME) {
        fail_at(t, "expected a test name after 'is'");
        return NULL;
    }
    x->name = t->s;
    if (!jinja_test_known(x->name)) {
        folio_fail("chat template line %d: unsupported test '%s'", t->line, x->name);
        return NULL;
    }
    jtoken *n = peek(P);
    if (is_op(n, "(")) {
        next(P);
        if (parse_args(P, x) != 0) return NULL;
    } else if ((n->kind == TK_NAME || n->kind == TK_STRING || n->kind == TK_INT ||
                n->kind == TK_FLOAT || is_op(n, "(") || is_op(n, "[") || is_op(n, "{")) &&
               !is_name(n, "else") && !is_name(n, "or") && !is_name(n, "and")) {
        jnode *arg = parse_postfix(P, parse_primary(P));
        if (!arg) return NULL;
        x->kids = jarena_alloc(P->a, sizeof *x->kids);
        x->kids[0] = arg;
        x->nkids = 1;
    }
    return x;
}

static jnode *parse_filter_expr(parser *P, jnode *x) {
    while (x) {
        jtoken *t = peek(P);
        if (is_op(t, "|")) {
            next(P);
            jtoken *name = next(P);
            if (name->kind != TK_NAME) {
                fail_at(name, "expected a filter name after '|'");
                return NULL;
            }
            if (!jinja_filter_known(name->s)) {
                folio_fail("chat template line %d: unsupported filter '%s'", name->line,
                           name->s);
                return NULL;
            }
            jnode *f = node(P, E_FILTER, name->line);
            f->a = x;
            f->name = name->s;
            if (accept_op(P, "(") && parse_args(P, f) != 0) return NULL;
            x = f;
        } else if (is_name(t, "is")) {
            next(P);
            x = parse_test(P, x, t->line);
        } else if (is_op(t, "(")) {
            if (!(x = parse_call(P, x, t->line))) return NULL;
        } else {
            break;
        }
    }
    return x;
}

static jnode *parse_unary(parser *P, bool with_filter) {
    jtoken *t = peek(P);
    jnode *x;
    if (is_op(t, "-") || is_op(t, "+")) {
        next(P);
        x = node(P, is_op(t, "-") ? E_NEG : E_POS, t->line);
        if (!(x->a = parse_unary(P, false))) return NULL;
    } else {
        x = parse_postfix(P, parse_primary(P));
    }
    return with_filter ? parse_filter_expr(P, x) : x;
}

static jnode *binary(parser *P, const char *op, int line, jnode *l, jnode *r) {
    if (!l || !r) return NULL;
    jnode *x = node(P, E_BIN, line);
    x->op = op;
    x->a = l;
    x->b = r;
    return x;
}

static jnode *parse_pow(parser *P) {
    jnode *x = parse_unary(P, true);
    while (x && is_op(peek(P), "**")) {
        int line = next(P)->line;
        x = binary(P, "**", line, x, parse_unary(P, true));
    }
    return x;
}

static jnode *parse_math2(parser *P) {
    jnode *x = parse_pow(P);
    while (x) {
        jtoken *t = peek(P);
        if (!is_op(t, "*") && !is_op(t, "/") && !is_op(t, "//") && !is_op(t, "%")) break;
        next(P);
        x = binary(P, t->s, t->line, x, parse_pow(P));
    }
    return x;
}

static jnode *parse_concat(parser *P) {
    jnode *x = parse_math2(P);
    while (x && is_op(peek(P), "~")) {
        int line = next(P)->line;
        x = binary(P, "~", line, x, parse_math2(P));
    }
    return x;
}

static jnode *parse_math1(parser *P) {
    jnode *x = parse_concat(P);
    while (x && (is_op(peek(P), "+") || is_op(peek(P), "-"))) {
        jtoken *t = next(P);
        x = binary(P, t->s, t->line, x, parse_concat(P));
    }
    return x;
}

/* Comparisons; a chain "a < b < c" becomes "a < b and b < c". */
static jnode *parse_compare(parser *P) {
    jnode *x = parse_math1(P), *chain = NULL, *left = x;
    while (left) {
        jtoken *t = peek(P);
        const char *op = NULL;
        static const char *const CMP[] = {"==", "!=", "<", "<=", ">", ">=", NULL};
        for (int k = 0; CMP[k]; k++)
            if (is_op(t, CMP[k])) op = CMP[k];
        if (is_name(t, "in")) op = "in";
        if (is_name(t, "not") && is_name(peek2(P), "in")) {
            next(P);
            op = "not in";
        }
        if (!op) break;
        next(P);
        jnode *right = parse_math1(P);
        if (!right) return NULL;
        jnode *cmp = node(P, E_CMP, t->line);
        cmp->op = op;
        cmp->a = left;
        cmp->b = right;
        if (chain) {
            jnode *both = node(P, E_AND, t->line);
            both->a = chain;
            both->b = cmp;
            chain = both;
        } else {
            chain = cmp;
        }
        left = right;
    }
    return left ? (chain ? chain : x) : NULL;
}

static jnode *parse_not(parser *P) {
    jtoken *t = peek(P);
    if (is_name(t, "not")) {
        next(P);
        jnode *x = node(P, E_NOT, t->line);
        return (x->a = parse_not(P)) ? x : NULL;
    }
    return parse_compare(P);
}

static jnode *parse_and(parser *P) {
    jnode *x = parse_not(P);
    while (x && is_name(peek(P), "and")) {
        jnode *y = node(P, E_AND, next(P)->line);
        y->a = x;
        if (!(y->b = parse_not(P))) return NULL;
        x = y;
    }
    return x;
}

static jnode *parse_or(parser *P) {
    jnode *x = parse_and(P);
    while (x && is_name(peek(P), "or")) {
        jnode *y = node(P, E_OR, next(P)->line);
        y->a = x;
        if (!(y->b = parse_and(P))) return NULL;
        x = y;
    }
    return x;
}

static jnode *parse_expression(parser *P, bool with_condexpr) {
    jnode *x = parse_or(P);
    while (with_condexpr && x && is_name(peek(P), "if")) {
        jnode *c = node(P, E_COND, next(P)->line);
        c->a = x;
        if (!(c->b = parse_or(P))) return NULL;
        if (accept_name(P, "else") && !(c->c = parse_expression(P, true))) return NULL;
        x = c;
    }
    return x;
}

/* An expression, or a tuple when commas follow ("a, b"). */
static jnode *parse_tuple(parser *P) {
    int line = peek(P)->line;
    jnode *first = parse_expression(P, true);
    if (!first || !is_op(peek(P), ",")) return first;
    jnode *x = node(P, E_TUPLE, line);
    nodes items = {0};
    nodes_push(P, &items, first);
    while (accept_op(P, ",")) {
        jnode *k = parse_expression(P, true);
        if (!k) return NULL;
        nodes_push(P, &items, k);
    }
    x->kids = items.items;
    x->nkids = items.n;
    return x;
}

/* ---- statements ---- */

static int expect_block_end(parser *P) {
    if (peek(P)->kind == TK_BLOCK_END) {
        next(P);
        return 0;
    }
    return fail_at(peek(P), "expected '%}'");
}

/* Names of a for/set target: "x" or "a, b" (or "(a, b)"). */
static int parse_targets(parser *P, jnode *x) {
    bool paren = accept_op(P, "(");
    const char **names = NULL;
    int n = 0, cap = 0;
    do {
        jtoken *t = next(P);
        if (t->kind != TK_NAME) return fail_at(t, "expected a variable name");
        JARENA_PUSH_ROOM(P->a, names, n, cap);
        names[n++] = t->s;
    } while (accept_op(P, ","));
    if (paren && expect_op(P, ")") != 0) return -1;
    x->targets = names;
    x->ntargets = n;
    return 0;
}

static int parse_body(parser *P, const char *const *ends, nodes *out, const char **which);

/* Parses a body up to one of `ends`; reports the missing end tag with the opening line. */
static int parse_block_body(parser *P, const char *const *ends, jnode ***kids, int *nkids,
                            const char **which, const char *opener, int line) {
    nodes body = {0};
    if (parse_body(P, ends, &body, which) != 0) return -1;
    if (!*which)
        return folio_fail("chat template line %d: '%s' tag is never closed (expected "
                          "'{%% %s %%}')", line, opener, ends[0]);
    *kids = body.items;
    *nkids = body.n;
    return 0;
}

static jnode *parse_for(parser *P, int line) {
    jnode *x = node(P, S_FOR, line);
    if (parse_targets(P, x) != 0) return NULL;
    if (!accept_name(P, "in")) {
        fail_at(peek(P), "expected 'in' in a for tag");
        return NULL;
    }
    if (!(x->a = parse_expression(P, false))) return NULL;
    if (accept_name(P, "if") && !(x->b = parse_expression(P, false))) return NULL;
    if (is_name(peek(P), "recursive")) {
        folio_fail("chat template line %d: unsupported recursive for loop", line);
        return NULL;
    }
    if (expect_block_end(P) != 0) return NULL;
    static const char *const ENDS[] = {"endfor", "else", NULL};
    const char *which = NULL;
    P->loop_depth++;
    int rc = parse_block_body(P, ENDS, &x->kids, &x->nkids, &which, "for", line);
    P->loop_depth--;
    if (rc != 0 || expect_block_end(P) != 0) return NULL;
    if (strcmp(which, "else") == 0) {
        static const char *const END[] = {"endfor", NULL};
        if (parse_block_body(P, END, &x->kids2, &x->nkids2, &which, "for", line) != 0 ||
            expect_block_end(P) != 0)
            return NULL;
    }
    return x;
}

static jnode *parse_if(parser *P, int line) {
    jnode *x = node(P, S_IF, line);
    if (!(x->a = parse_expression(P, false)) || expect_block_end(P) != 0) return NULL;
    static const char *const ENDS[] = {"endif", "elif", "else", NULL};
    const char *which = NULL;
    if (parse_block_body(P, ENDS, &x->kids, &x->nkids, &which, "if", line) != 0) return NULL;
    if (strcmp(which, "elif") == 0) {
        jnode *elif = parse_if(P, peek(P)->line);
        if (!elif) return NULL;
        x->kids2 = jarena_alloc(P->a, sizeof *x->kids2);
        x->kids2[0] = elif;
        x->nkids2 = 1;
        return x; /* the nested if consumed the endif */
    }
    if (expect_block_end(P) != 0) return NULL;
    if (strcmp(which, "else") == 0) {
        static const char *const END[] = {"endif", NULL};
        if (parse_block_body(P, END, &x->kids2, &x->nkids2, &which, "if", line) != 0 ||
            expect_block_end(P) != 0)
            return NULL;
    }
    return x;
}

static jnode *parse_set(parser *P, int line) {
    jtoken *t = peek(P);
    if (t->kind == TK_NAME && is_op(peek2(P), ".")) {
        jnode *x = node(P, S_SET_ATTR, line);
        x->name = next(P)->s;
        next(P);
        jtoken *attr = next(P);
        if (attr->kind != TK_NAME) {
            fail_at(attr, "expected an attribute name");
            return NULL;
        }
        x->attr = attr->s;
        if (expect_op(P, "=") != 0 || !(x->a = parse_tuple(P)) || expect_block_end(P) != 0)
            return NULL;
        return x;
    }
    jnode *x = node(P, S_SET, line);
    if (parse_targets(P, x) != 0) return NULL;
    if (accept_op(P, "=")) {
        if (!(x->a = parse_tuple(P)) || expect_block_end(P) != 0) return NULL;
        return x;
    }
    if (x->ntargets != 1 || peek(P)->kind != TK_BLOCK_END) {
        fail_at(peek(P), "expected '=' in a set tag");
        return NULL;
    }
    next(P);
    x->kind = S_SET_BLOCK;
    x->name = x->targets[0];
    static const char *const END[] = {"endset", NULL};
    const char *which = NULL;
    if (parse_block_body(P, END, &x->kids, &x->nkids, &which, "set", line) != 0 ||
        expect_block_end(P) != 0)
        return NULL;
    return x;
}

static jnode *parse_statement(parser *P) {
    jtoken *t = next(P);
    if (t->kind != TK_NAME) {
        fail_at(t, "expected a tag name after '{%'");
        return NULL;
    }
    if (!strcmp(t->s, "for")) return parse_for(P, t->line);
    if (!strcmp(t->s, "if")) return parse_if(P, t->line);
    if (!strcmp(t->s, "set")) return parse_set(P, t->line);
    if (!strcmp(t->s, "break") || !strcmp(t->s, "continue")) {
        if (P->loop_depth == 0) {
            folio_fail("chat template line %d: '%s' outside a for loop", t->line, t->s);
            return NULL;
        }
        jnode *x = node(P, t->s[0] == 'b' ? S_BREAK : S_CONTINUE, t->line);
        return expect_block_end(P) == 0 ? x : NULL;
    }
    if (!strcmp(t->s, "generation")) {
        jnode *x = node(P, S_BLOCK, t->line);
        static const char *const END[] = {"endgeneration", NULL};
        const char *which = NULL;
        if (expect_block_end(P) != 0 ||
            parse_block_body(P, END, &x->kids, &x->nkids, &which, "generation", t->line) != 0 ||
            expect_block_end(P) != 0)
            return NULL;
        return x;
    }
    folio_fail("chat template line %d: unsupported tag '%s'", t->line, t->s);
    return NULL;
}

static bool in_list(const char *s, const char *const *list) {
    for (int k = 0; list && list[k]; k++)
        if (strcmp(s, list[k]) == 0) return true;
    return false;
}

static bool is_end_tag(const char *s) {
    return strncmp(s, "end", 3) == 0 || !strcmp(s, "else") || !strcmp(s, "elif");
}

/* Statements until a block tag named in `ends` (consumed up to its name; *which = the name)
 * or the end of the template (*which = NULL). */
static int parse_body(parser *P, const char *const *ends, nodes *out, const char **which) {
    *which = NULL;
    while (1) {
        jtoken *t = peek(P);
        if (t->kind == TK_EOF) return 0;
        if (t->kind == TK_TEXT) {
            next(P);
            jnode *x = node(P, S_TEXT, t->line);
            x->value = jv_str(P->a, t->s, t->n);
            nodes_push(P, out, x);
        } else if (t->kind == TK_VAR_BEGIN) {
            next(P);
            jnode *x = node(P, S_OUT, t->line);
            if (!(x->a = parse_tuple(P))) return -1;
            if (peek(P)->kind != TK_VAR_END) return fail_at(peek(P), "expected '}}'");
            next(P);
            nodes_push(P, out, x);
        } else if (t->kind == TK_BLOCK_BEGIN) {
            jtoken *name = peek2(P);
            if (name->kind == TK_NAME && in_list(name->s, ends)) {
                next(P);
                next(P);
                *which = name->s;
                return 0;
            }
            if (name->kind == TK_NAME && is_end_tag(name->s))
                return folio_fail("chat template line %d: unexpected '%s'", name->line,
                                  name->s);
            next(P);
            jnode *x = parse_statement(P);
            if (!x) return -1;
            nodes_push(P, out, x);
        } else {
            return fail_at(t, "unexpected token");
        }
    }
}

int jinja_parse(jtoken *toks, int ntoks, jarena *a, jnode ***body, int *nbody) {
    parser P = {toks, ntoks, 0, a, 0};
    nodes out = {0};
    const char *which = NULL;
    if (parse_body(&P, NULL, &out, &which) != 0) return -1;
    *body = out.items;
    *nbody = out.n;
    return 0;
}
