/* Loading a tokenizer: DIR/tokenizer.json (model, added tokens, normalizer, pre-tokenizer,
 * post-processor, decoder) and DIR/tokenizer_config.json (add_bos_token, add_eos_token,
 * bos_token, eos_token), parsed with jansson into the tables of tokenizer_internal.h.
 * Unsupported components fail with a message naming the file, the field and the value. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "tokenizer_internal.h"
#include "tokenizer_json.h"
#include "utf8.h"

/* ---------------------------------------------------------------- small JSON helpers */

static const char *jstr(const json_t *obj, const char *key) {
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool jbool(const json_t *obj, const char *key, bool dflt) {
    const json_t *v = json_object_get(obj, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* A token given as "text" or {"content": "text"} (tokenizer_config.json style). */
static const char *token_content(const json_t *v) {
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_object(v)) return jstr(v, "content");
    return NULL;
}

static char *dup_len(const char *s, size_t len) {
    char *p = folio_xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

/* ---------------------------------------------------------------- vocabulary */

/* model.vocab as read by tj_read_vocab: keys NUL-separated in `keys`. */
typedef struct {
    text_buf keys;
    uint32_t *off, *len;
    int32_t *id;
    size_t n, cap;
    long long max_id;
    const char *path;
} raw_vocab;

static int raw_vocab_add(void *ctx, const char *key, size_t len, long long id) {
    raw_vocab *v = ctx;
    if (id < 0 || id > 10000000)
        return folio_fail("%s: model.vocab[\"%s\"]: id %lld is outside [0, 10000000]", v->path,
                          key, id);
    if (v->n == v->cap) {
        v->cap = folio_grow_cap(v->cap, v->n + 1);
        v->off = folio_xrealloc(v->off, v->cap * sizeof *v->off);
        v->len = folio_xrealloc(v->len, v->cap * sizeof *v->len);
        v->id = folio_xrealloc(v->id, v->cap * sizeof *v->id);
    }
    v->off[v->n] = (uint32_t)v->keys.len;
    v->len[v->n] = (uint32_t)len;
    v->id[v->n++] = (int32_t)id;
    text_buf_append(&v->keys, key, len + 1); /* with the NUL */
    if (id > v->max_id) v->max_id = id;
    return 0;
}

static void raw_vocab_free(raw_vocab *v) {
    text_buf_free(&v->keys);
    free(v->off);
    free(v->len);
    free(v->id);
}

static int check_added(tokenizer *t, const json_t *added, long long *max_id) {
    size_t i;
    const json_t *v;
    json_array_foreach(added, i, v) {
        const json_t *id = json_object_get(v, "id");
        if (!json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) > 10000000 || !jstr(v, "content"))
            return folio_fail("%s: added_tokens[%zu]: expected \"id\" in [0, 10000000] and "
                              "a \"content\" string", t->path, i);
        if (json_integer_value(id) > *max_id) *max_id = json_integer_value(id);
    }
    return 0;
}

/* Moves the vocabulary into one arena (added tokens appended) and builds the id tables. */
static int load_vocab(tokenizer *t, raw_vocab *rv, const json_t *added) {
    long long max_id = rv->max_id;
    if (check_added(t, added, &max_id) != 0) return -1;
    if (max_id < 0) return folio_fail("%s: model.vocab is empty", t->path);
    t->n_vocab = (int32_t)(max_id + 1);
    t->tok_off = folio_xmalloc((size_t)t->n_vocab * sizeof *t->tok_off);
    t->tok_len = folio_xcalloc((size_t)t->n_vocab, sizeof *t->tok_len);
    t->is_special = folio_xcalloc((size_t)t->n_vocab, 1);
    memset(t->tok_off, 0xFF, (size_t)t->n_vocab * sizeof *t->tok_off);
    text_buf arena = rv->keys;
    memset(&rv->keys, 0, sizeof rv->keys);
    for (size_t k = 0; k < rv->n; k++) {
        t->tok_off[rv->id[k]] = rv->off[k];
        t->tok_len[rv->id[k]] = rv->len[k];
    }
    size_t i;
    const json_t *v;
    json_array_foreach(added, i, v) {
        int32_t id = (int32_t)json_integer_value(json_object_get(v, "id"));
        const json_t *c = json_object_get(v, "content");
        t->tok_off[id] = (uint32_t)arena.len;
        t->tok_len[id] = (uint32_t)json_string_length(c);
        text_buf_append(&arena, json_string_value(c), json_string_length(c) + 1);
    }
    t->arena = arena.s ? arena.s : folio_xcalloc(1, 1);
    t->arena_len = arena.len;
    strmap_init(&t->bpe.vocab, rv->n);
    for (size_t k = 0; k < rv->n; k++)
        strmap_put(&t->bpe.vocab, t->arena + rv->off[k], rv->len[k], rv->id[k]);
    strmap_init(&t->added_ids, json_array_size(added));
    json_array_foreach(added, i, v) {
        int32_t id = (int32_t)json_integer_value(json_object_get(v, "id"));
        strmap_put(&t->added_ids, t->arena + t->tok_off[id], t->tok_len[id], id);
    }
    return 0;
}

/* ---------------------------------------------------------------- BPE model */

static int32_t vocab_id(const tokenizer *t, const char *s, size_t len) {
    int32_t id;
    return strmap_get(&t->bpe.vocab, s, len, &id) ? id : -1;
}

typedef struct {
    tokenizer *t;
    text_buf scratch;
} merge_ctx;

static int add_merge(void *ctx, size_t rank, const char *a, size_t alen, const char *b,
                     size_t blen, int is_pair) {
    merge_ctx *mc = ctx;
    tokenizer *t = mc->t;
    if (!is_pair) { /* "a b" */
        const char *sp = memchr(a, ' ', alen);
        if (!sp) return folio_fail("%s: model.merges[%zu]: \"%s\" has no space", t->path, rank, a);
        b = sp + 1;
        blen = alen - (size_t)(b - a);
        alen = (size_t)(sp - a);
    }
    int32_t ia = vocab_id(t, a, alen), ib = vocab_id(t, b, blen);
    mc->scratch.len = 0;
    text_buf_append(&mc->scratch, a, alen);
    text_buf_append(&mc->scratch, b, blen);
    int32_t im = vocab_id(t, mc->scratch.s, alen + blen);
    if (ia < 0 || ib < 0 || im < 0)
        return folio_fail("%s: model.merges[%zu]: \"%.*s\" + \"%.*s\": %s is not in the "
                          "vocabulary", t->path, rank, (int)alen, a, (int)blen, b,
                          ia < 0 ? "the left part" : ib < 0 ? "the right part" : "the merge");
    if (rank > UINT32_MAX - 1) return folio_fail("%s: model.merges: too many merges", t->path);
    u64map_put(&t->bpe.merges, (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib,
               (uint64_t)rank << 32 | (uint32_t)im);
    return 0;
}

static int load_merges(tokenizer *t, const char *raw, tj_span sp) {
    u64map_init(&t->bpe.merges, 1 << 16);
    if (sp.end == 0) return 0; /* no merges: a character-level model */
    merge_ctx mc = {t, {0}};
    int rc = tj_read_merges(raw, sp, t->path, add_merge, &mc);
    text_buf_free(&mc.scratch);
    return rc;
}

/* No vocabulary token has "▁" right after another character: then "▁" starts are word
 * boundaries no merge crosses, and a pre-tokenizer-less model may be encoded word by word. */
static bool metaspace_split_safe(const tokenizer *t) {
    static const char meta[] = "\xE2\x96\x81";
    strmap_slot *slots = t->bpe.vocab.slots;
    for (size_t i = 0; i < t->bpe.vocab.cap; i++) {
        if (!slots[i].key) continue;
        const char *s = slots[i].key;
        size_t n = slots[i].len;
        for (size_t j = 1; j + 3 <= n; j++)
            if (memcmp(s + j, meta, 3) == 0 && (j < 3 || memcmp(s + j - 3, meta, 3) != 0))
                return false;
    }
    return true;
}

static void byte_tables(tokenizer *t) {
    bpe_model *m = &t->bpe;
    char name[8];
    for (int b = 0; b < 256; b++) {
        snprintf(name, sizeof name, "<0x%02X>", b);
        m->fallback_ids[b] = vocab_id(t, name, 6);
    }
    for (int c = 0; c < 128; c++) {
        char ch = (char)c;
        m->ascii_ids[c] = vocab_id(t, &ch, 1);
    }
    uint32_t cps[256];
    bytelevel_tables(cps);
    for (int b = 0; b < 256; b++) {
        char u[4];
        size_t n = utf8_encode(cps[b], u);
        m->byte_ids[b] = vocab_id(t, u, n);
    }
}

static int load_model(tokenizer *t, const json_t *model, const json_t *added, const char *raw,
                      tj_span vocab_sp, tj_span merges_sp) {
    const char *type = jstr(model, "type");
    if (!type || strcmp(type, "BPE") != 0)
        return folio_fail("%s: model.type: expected \"BPE\", found \"%s\"", t->path,
                          type ? type : "(none)");
    if (vocab_sp.end == 0 || raw[vocab_sp.start] != '{')
        return folio_fail("%s: model.vocab: expected an object", t->path);
    if (!json_is_array(added)) return folio_fail("%s: added_tokens: expected an array", t->path);
    const char *cont = jstr(model, "continuing_subword_prefix");
    const char *suffix = jstr(model, "end_of_word_suffix");
    if ((cont && *cont) || (suffix && *suffix))
        return folio_fail("%s: model: continuing_subword_prefix / end_of_word_suffix are not "
                          "supported (found \"%s\" / \"%s\")", t->path, cont ? cont : "",
                          suffix ? suffix : "");
    const json_t *dropout = json_object_get(model, "dropout");
    if (dropout && !json_is_null(dropout) && json_number_value(dropout) != 0.0)
        return folio_fail("%s: model.dropout: BPE dropout is not supported", t->path);
    raw_vocab rv = {.max_id = -1, .path = t->path};
    int rc = tj_read_vocab(raw, vocab_sp, t->path, raw_vocab_add, &rv);
    if (rc == 0) rc = load_vocab(t, &rv, added);
    raw_vocab_free(&rv);
    if (rc != 0 || load_merges(t, raw, merges_sp) != 0) return -1;
    bpe_model *m = &t->bpe;
    m->fuse_unk = jbool(model, "fuse_unk", false);
    m->byte_fallback = jbool(model, "byte_fallback", false);
    m->ignore_merges = jbool(model, "ignore_merges", false);
    m->unk_id = -1;
    const char *unk = jstr(model, "unk_token");
    if (unk) {
        int32_t id;
        if ((id = tokenizer_token_id(t, unk)) < 0)
            return folio_fail("%s: model.unk_token \"%s\" is not in the vocabulary", t->path, unk);
        m->unk_id = id;
    }
    byte_tables(t);
    return 0;
}

/* ---------------------------------------------------------------- added tokens */

static int load_added(tokenizer *t, const json_t *added) {
    t->n_added = json_array_size(added);
    t->added = folio_xcalloc(t->n_added, sizeof *t->added);
    size_t i;
    const json_t *v;
    json_array_foreach(added, i, v) {
        added_token *a = &t->added[i];
        const json_t *c = json_object_get(v, "content");
        a->len = json_string_length(c);
        if (a->len == 0) return folio_fail("%s: added_tokens[%zu]: empty content", t->path, i);
        a->content = dup_len(json_string_value(c), a->len);
        a->id = (int32_t)json_integer_value(json_object_get(v, "id"));
        int32_t in_vocab; /* HF: a token already in the vocabulary keeps that id */
        if (strmap_get(&t->bpe.vocab, a->content, a->len, &in_vocab)) a->id = in_vocab;
        a->lstrip = jbool(v, "lstrip", false);
        a->rstrip = jbool(v, "rstrip", false);
        a->single_word = jbool(v, "single_word", false);
        a->normalized = jbool(v, "normalized", true);
        a->special = jbool(v, "special", false);
        if (a->special) t->is_special[a->id] = 1;
    }
    return 0;
}

/* Normalized added tokens are matched in normalized text: normalize their content too. */
static int normalize_added(tokenizer *t) {
    text_buf b = {0};
    for (size_t i = 0; i < t->n_added; i++) {
        added_token *a = &t->added[i];
        if (!a->normalized) continue;
        b.len = 0;
        if (norm_apply(t, a->content, a->len, &b) != 0) {
            text_buf_free(&b);
            return -1;
        }
        a->norm = dup_len(b.s ? b.s : "", b.len);
        a->norm_len = b.len;
    }
    text_buf_free(&b);
    added_set_build(t, &t->set_raw, false);
    added_set_build(t, &t->set_norm, true);
    return 0;
}

/* ---------------------------------------------------------------- normalizer */

static int load_normalizer(tokenizer *t, const json_t *n, const char *where);

static void push_norm(tokenizer *t, norm_step s) {
    t->norm = folio_xrealloc(t->norm, (t->n_norm + 1) * sizeof *t->norm);
    t->norm[t->n_norm++] = s;
}

static int load_replace_pattern(tokenizer *t, const json_t *n, const char *where,
                                norm_step *s) {
    const json_t *pat = json_object_get(n, "pattern");
    const char *str = jstr(pat, "String");
    const char *content = jstr(n, "content");
    if (!str || !content)
        return folio_fail("%s: %s: Replace needs pattern.String and content (regex patterns "
                          "are not supported)", t->path, where);
    if (!*str) return folio_fail("%s: %s: Replace pattern is empty", t->path, where);
    s->pattern = folio_xstrdup(str);
    s->pattern_len = strlen(str);
    s->content = folio_xstrdup(content);
    s->content_len = strlen(content);
    return 0;
}

static int load_normalizer(tokenizer *t, const json_t *n, const char *where) {
    if (!n || json_is_null(n)) return 0;
    const char *type = jstr(n, "type");
    if (!type) return folio_fail("%s: %s: missing \"type\"", t->path, where);
    norm_step s = {0};
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(n, "normalizers");
        size_t i;
        const json_t *v;
        json_array_foreach(list, i, v) if (load_normalizer(t, v, where) != 0) return -1;
        return 0;
    }
    if (strcmp(type, "NFC") == 0) s.kind = NORM_NFC;
    else if (strcmp(type, "NFD") == 0) s.kind = NORM_NFD;
    else if (strcmp(type, "NFKC") == 0) s.kind = NORM_NFKC;
    else if (strcmp(type, "NFKD") == 0) s.kind = NORM_NFKD;
    else if (strcmp(type, "Prepend") == 0) {
        const char *p = jstr(n, "prepend");
        if (!p) return folio_fail("%s: %s: Prepend needs \"prepend\"", t->path, where);
        s.kind = NORM_PREPEND;
        s.pattern = folio_xstrdup(p);
        s.pattern_len = strlen(p);
    } else if (strcmp(type, "Replace") == 0) {
        s.kind = NORM_REPLACE;
        if (load_replace_pattern(t, n, where, &s) != 0) return -1;
    } else {
        return folio_fail("%s: %s: normalizer type \"%s\" is not supported", t->path, where, type);
    }
    push_norm(t, s);
    return 0;
}

/* ---------------------------------------------------------------- pre-tokenizer */

static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static void push_pre(tokenizer *t, pre_step s) {
    t->pre = folio_xrealloc(t->pre, (t->n_pre + 1) * sizeof *t->pre);
    t->pre[t->n_pre++] = s;
}

static int load_split(tokenizer *t, const json_t *p, pre_step *s) {
    const json_t *pat = json_object_get(p, "pattern");
    const char *re = jstr(pat, "Regex"), *str = jstr(pat, "String");
    const char *beh = jstr(p, "behavior");
    if (jbool(p, "invert", false))
        return folio_fail("%s: pre_tokenizer Split: invert=true is not supported", t->path);
    if (!beh) beh = "(none)";
    if (strcmp(beh, "Isolated") == 0) s->behavior = SPLIT_ISOLATED;
    else if (strcmp(beh, "Removed") == 0) s->behavior = SPLIT_REMOVED;
    else if (strcmp(beh, "MergedWithPrevious") == 0) s->behavior = SPLIT_MERGED_PREV;
    else if (strcmp(beh, "MergedWithNext") == 0) s->behavior = SPLIT_MERGED_NEXT;
    else
        return folio_fail("%s: pre_tokenizer Split: behavior \"%s\" is not supported", t->path, beh);
    if (!re && !str) return folio_fail("%s: pre_tokenizer Split: missing pattern", t->path);
    s->kind = PRE_SPLIT;
    return pretok_compile(re ? re : str, re == NULL, t->path, &s->re);
}

static int load_metaspace(tokenizer *t, const json_t *p, pre_step *s) {
    const char *rep = jstr(p, "replacement");
    const char *scheme = jstr(p, "prepend_scheme");
    if (!rep) rep = "\xE2\x96\x81";
    if (!*rep || strlen(rep) >= sizeof s->rep)
        return folio_fail("%s: pre_tokenizer Metaspace: bad replacement \"%s\"", t->path, rep);
    s->kind = PRE_METASPACE;
    strcpy(s->rep, rep);
    s->rep_len = strlen(rep);
    s->split = jbool(p, "split", true);
    if (!scheme) s->prepend = jbool(p, "add_prefix_space", true) ? PREPEND_ALWAYS : PREPEND_NEVER;
    else if (strcmp(scheme, "always") == 0) s->prepend = PREPEND_ALWAYS;
    else if (strcmp(scheme, "first") == 0) s->prepend = PREPEND_FIRST;
    else if (strcmp(scheme, "never") == 0) s->prepend = PREPEND_NEVER;
    else
        return folio_fail("%s: pre_tokenizer Metaspace: prepend_scheme \"%s\" is not one of "
                          "always, first, never", t->path, scheme);
    return 0;
}

static int load_pretokenizer(tokenizer *t, const json_t *p) {
    if (!p || json_is_null(p)) return 0;
    const char *type = jstr(p, "type");
    if (!type) return folio_fail("%s: pre_tokenizer: missing \"type\"", t->path);
    pre_step s = {0};
    if (strcmp(type, "Sequence") == 0) {
        size_t i;
        const json_t *v;
        json_array_foreach(json_object_get(p, "pretokenizers"), i, v)
            if (load_pretokenizer(t, v) != 0) return -1;
        return 0;
    }
    if (strcmp(type, "Split") == 0) {
        if (load_split(t, p, &s) != 0) return -1;
    } else if (strcmp(type, "ByteLevel") == 0) {
        s.kind = PRE_BYTELEVEL;
        s.add_prefix_space = jbool(p, "add_prefix_space", true);
        if (jbool(p, "use_regex", true) && pretok_compile(GPT2_PATTERN, false, t->path, &s.re) != 0)
            return -1;
        t->bpe.byte_level = true;
    } else if (strcmp(type, "Metaspace") == 0) {
        if (load_metaspace(t, p, &s) != 0) return -1;
    } else {
        return folio_fail("%s: pre_tokenizer type \"%s\" is not supported", t->path, type);
    }
    push_pre(t, s);
    return 0;
}

/* ---------------------------------------------------------------- post-processor */

static int template_special(tokenizer *t, const json_t *pp, const char *name, token_ids *out) {
    const json_t *sp = json_object_get(json_object_get(pp, "special_tokens"), name);
    const json_t *ids = json_object_get(sp, "ids");
    if (!json_is_array(ids))
        return folio_fail("%s: post_processor.special_tokens[\"%s\"].ids: missing", t->path, name);
    size_t i;
    const json_t *v;
    json_array_foreach(ids, i, v) {
        long long id = json_integer_value(v);
        if (!json_is_integer(v) || id < 0 || id >= t->n_vocab)
            return folio_fail("%s: post_processor.special_tokens[\"%s\"].ids[%zu]: not a valid "
                              "id", t->path, name, i);
        token_ids_push(out, (int32_t)id);
    }
    return 0;
}

static int load_template(tokenizer *t, const json_t *pp) {
    const json_t *single = json_object_get(pp, "single");
    if (!json_is_array(single))
        return folio_fail("%s: post_processor.single: expected an array", t->path);
    bool seen_seq = false;
    t->prefix.n = t->suffix.n = 0;
    size_t i;
    const json_t *item;
    json_array_foreach(single, i, item) {
        const json_t *st = json_object_get(item, "SpecialToken");
        if (st) {
            const char *id = jstr(st, "id");
            if (!id || template_special(t, pp, id, seen_seq ? &t->suffix : &t->prefix) != 0)
                return id ? -1 : folio_fail("%s: post_processor.single[%zu]: missing id", t->path, i);
        } else if (json_object_get(item, "Sequence")) {
            seen_seq = true;
        } else {
            return folio_fail("%s: post_processor.single[%zu]: unknown item", t->path, i);
        }
    }
    return 0;
}

static int pair_token(tokenizer *t, const json_t *pp, const char *key, token_ids *out) {
    const json_t *p = json_object_get(pp, key);
    const json_t *id = json_array_get(p, 1);
    if (!json_is_integer(id))
        return folio_fail("%s: post_processor.%s: expected [token, id]", t->path, key);
    token_ids_push(out, (int32_t)json_integer_value(id));
    return 0;
}

static int load_postprocessor(tokenizer *t, const json_t *pp) {
    if (!pp || json_is_null(pp)) return 0;
    const char *type = jstr(pp, "type");
    if (!type) return folio_fail("%s: post_processor: missing \"type\"", t->path);
    if (strcmp(type, "ByteLevel") == 0) return 0; /* offsets only */
    if (strcmp(type, "TemplateProcessing") == 0) return load_template(t, pp);
    if (strcmp(type, "RobertaProcessing") == 0 || strcmp(type, "BertProcessing") == 0) {
        t->prefix.n = t->suffix.n = 0;
        return pair_token(t, pp, "cls", &t->prefix) || pair_token(t, pp, "sep", &t->suffix);
    }
    if (strcmp(type, "Sequence") == 0) {
        size_t i;
        const json_t *v;
        json_array_foreach(json_object_get(pp, "processors"), i, v)
            if (load_postprocessor(t, v) != 0) return -1;
        return 0;
    }
    return folio_fail("%s: post_processor type \"%s\" is not supported", t->path, type);
}

/* ---------------------------------------------------------------- decoder */

typedef struct {
    char *from[8], *to[8]; /* per-token Replace steps, in order */
    int n_replace;
    bool fused;
    int strip_token_start; /* Strip before Fuse: per token */
    char strip_token_char;
} decoder_plan;

static int load_decoder_step(tokenizer *t, const json_t *d, decoder_plan *plan) {
    const char *type = jstr(d, "type");
    if (!type) return folio_fail("%s: decoder: missing \"type\"", t->path);
    decoder_spec *ds = &t->dec;
    if (strcmp(type, "Sequence") == 0) {
        size_t i;
        const json_t *v;
        json_array_foreach(json_object_get(d, "decoders"), i, v)
            if (load_decoder_step(t, v, plan) != 0) return -1;
        return 0;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        ds->byte_level = true;
    } else if (strcmp(type, "ByteFallback") == 0) {
        ds->byte_fallback = true;
    } else if (strcmp(type, "Fuse") == 0) {
        plan->fused = true;
    } else if (strcmp(type, "Replace") == 0) {
        norm_step s = {0};
        if (load_replace_pattern(t, d, "decoder", &s) != 0) return -1;
        if (plan->n_replace == 8) return folio_fail("%s: decoder: too many Replace steps", t->path);
        plan->from[plan->n_replace] = s.pattern;
        plan->to[plan->n_replace++] = s.content;
    } else if (strcmp(type, "Strip") == 0) {
        const char *c = jstr(d, "content");
        long long start = json_integer_value(json_object_get(d, "start"));
        long long stop = json_integer_value(json_object_get(d, "stop"));
        if (!c || strlen(c) != 1 || stop != 0 || start < 0 || start > 16)
            return folio_fail("%s: decoder Strip: only a one-byte content, start <= 16 and "
                              "stop 0 are supported", t->path);
        if (plan->fused) {
            ds->strip_start = (int)start;
            ds->strip_char = c[0];
        } else {
            plan->strip_token_start = (int)start;
            plan->strip_token_char = c[0];
        }
    } else if (strcmp(type, "Metaspace") == 0) {
        const char *rep = jstr(d, "replacement");
        const char *scheme = jstr(d, "prepend_scheme");
        if (plan->n_replace == 8) return folio_fail("%s: decoder: too many Replace steps", t->path);
        if (!rep) rep = "\xE2\x96\x81";
        if (!*rep || strlen(rep) >= sizeof ds->meta_rep)
            return folio_fail("%s: decoder Metaspace: bad replacement \"%s\"", t->path, rep);
        strcpy(ds->meta_rep, rep);
        plan->from[plan->n_replace] = folio_xstrdup(rep);
        plan->to[plan->n_replace++] = folio_xstrdup(" ");
        ds->strip_first_token = scheme ? strcmp(scheme, "never") != 0
                                       : jbool(d, "add_prefix_space", true);
    } else {
        return folio_fail("%s: decoder type \"%s\" is not supported", t->path, type);
    }
    return 0;
}

/* Replaces every `from` by `to` in b (in place, through a scratch copy). */
static void replace_all(text_buf *b, const char *from, const char *to, text_buf *tmp) {
    size_t fl = strlen(from), tl = strlen(to);
    if (!b->len || !memmem(b->s, b->len, from, fl)) return;
    tmp->len = 0;
    size_t i = 0;
    while (i < b->len) {
        const char *hit = memmem(b->s + i, b->len - i, from, fl);
        size_t upto = hit ? (size_t)(hit - b->s) : b->len;
        text_buf_append(tmp, b->s + i, upto - i);
        if (!hit) break;
        text_buf_append(tmp, to, tl);
        i = upto + fl;
    }
    b->len = 0;
    text_buf_append(b, tmp->s, tmp->len);
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* "<0xNN>" -> NN, else -1. */
static int fallback_byte(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int hi = hexval(s[3]), lo = hexval(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/* ByteLevel: each character back to its byte; a token with a character outside the table
 * is taken as it is (as Hugging Face does). */
static void bytelevel_unmap(text_buf *b, const uint8_t *cp_to_byte, text_buf *tmp) {
    tmp->len = 0;
    size_t i = 0;
    while (i < b->len) {
        size_t len;
        uint32_t cp;
        if (utf8_decode((const uint8_t *)b->s + i, b->len - i, &len, &cp) != UTF8_OK || cp >= 324 ||
            (cp_to_byte[cp] == 0 && cp != 256))
            return; /* keep the raw text */
        uint8_t byte = cp_to_byte[cp];
        text_buf_append(tmp, &byte, 1);
        i += len;
    }
    b->len = 0;
    text_buf_append(b, tmp->s, tmp->len);
}

/* Computes each id's decoded piece once, so decoding is a table walk. */
static void decoder_pieces(tokenizer *t, const decoder_plan *plan) {
    uint32_t cps[256];
    uint8_t cp_to_byte[324] = {0};
    bytelevel_tables(cps);
    for (int b = 0; b < 256; b++) cp_to_byte[cps[b]] = (uint8_t)b; /* byte 0 maps to cp 256 */
    text_buf all = {0}, b = {0}, tmp = {0};
    t->dec_off = folio_xmalloc((size_t)t->n_vocab * sizeof *t->dec_off);
    t->dec_len = folio_xcalloc((size_t)t->n_vocab, sizeof *t->dec_len);
    t->dec_byte = folio_xmalloc((size_t)t->n_vocab * sizeof *t->dec_byte);
    t->dec_plain = folio_xcalloc((size_t)t->n_vocab, 1);
    for (int32_t id = 0; id < t->n_vocab; id++) {
        t->dec_byte[id] = -1;
        t->dec_off[id] = (uint32_t)all.len;
        if (t->tok_off[id] == UINT32_MAX) continue;
        b.len = 0;
        text_buf_append(&b, t->arena + t->tok_off[id], t->tok_len[id]);
        for (int r = 0; r < plan->n_replace; r++) replace_all(&b, plan->from[r], plan->to[r], &tmp);
        if (t->dec.byte_fallback) t->dec_byte[id] = (int16_t)fallback_byte(b.s, b.len);
        if (t->dec.byte_level) bytelevel_unmap(&b, cp_to_byte, &tmp);
        size_t skip = 0;
        while ((int)skip < plan->strip_token_start && skip < b.len && b.s[skip] == plan->strip_token_char)
            skip++;
        text_buf_append(&all, b.s + skip, b.len - skip);
        t->dec_len[id] = (uint32_t)(b.len - skip);
        t->dec_plain[id] = t->dec_byte[id] < 0 &&
            utf8_valid_prefix((const uint8_t *)b.s + skip, b.len - skip) == b.len - skip;
    }
    t->dec_arena = all.s ? all.s : folio_xcalloc(1, 1);
    text_buf_free(&b);
    text_buf_free(&tmp);
}

static int load_decoder(tokenizer *t, const json_t *d) {
    decoder_plan plan = {0};
    int rc = 0;
    if (d && !json_is_null(d)) rc = load_decoder_step(t, d, &plan);
    if (rc == 0) decoder_pieces(t, &plan);
    for (int r = 0; r < plan.n_replace; r++) {
        free(plan.from[r]);
        free(plan.to[r]);
    }
    return rc;
}

/* ---------------------------------------------------------------- tokenizer_config.json */

static int32_t config_token(tokenizer *t, const json_t *cfg, const char *key) {
    const char *s = token_content(json_object_get(cfg, key));
    return s ? tokenizer_token_id(t, s) : -1;
}

/* transformers rebuilds the template from add_bos_token / add_eos_token when they are set. */
static void apply_config(tokenizer *t, const json_t *cfg) {
    t->bos_id = config_token(t, cfg, "bos_token");
    t->eos_id = config_token(t, cfg, "eos_token");
    const json_t *ab = json_object_get(cfg, "add_bos_token");
    if (json_is_boolean(ab)) {
        if (t->prefix.n && t->prefix.ids[0] == t->bos_id) {
            memmove(t->prefix.ids, t->prefix.ids + 1, (t->prefix.n - 1) * sizeof(int32_t));
            t->prefix.n--;
        }
        if (json_is_true(ab) && t->bos_id >= 0) {
            token_ids_push(&t->prefix, 0);
            memmove(t->prefix.ids + 1, t->prefix.ids, (t->prefix.n - 1) * sizeof(int32_t));
            t->prefix.ids[0] = t->bos_id;
        }
    }
    const json_t *ae = json_object_get(cfg, "add_eos_token");
    if (json_is_boolean(ae)) {
        if (t->suffix.n && t->suffix.ids[t->suffix.n - 1] == t->eos_id) t->suffix.n--;
        if (json_is_true(ae) && t->eos_id >= 0) token_ids_push(&t->suffix, t->eos_id);
    }
}

/* ---------------------------------------------------------------- entry point */

static int read_whole(const char *path, text_buf *out) {
    FILE *f = fopen(path, "rb");
    if (!f) return folio_fail("%s: cannot open", path);
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && st.st_size > 0) {
        out->len = 0;
        text_buf_append(out, NULL, 0);
        size_t want = (size_t)st.st_size;
        out->s = folio_xrealloc(out->s, want + 1);
        out->cap = want + 1;
        out->len = fread(out->s, 1, want, f);
        out->s[out->len] = '\0';
    }
    int bad = ferror(f);
    fclose(f);
    return bad ? folio_fail("%s: read error", path) : 0;
}

static json_t *parse_json(const char *path, const char *s, size_t n, size_t flags, int *rc) {
    json_error_t err;
    json_t *root = json_loadb(s, n, flags, &err);
    *rc = 0;
    if (!root) *rc = folio_fail("%s:%d: invalid JSON: %s", path, err.line, err.text);
    else if (!json_is_object(root)) {
        json_decref(root);
        root = NULL;
        *rc = folio_fail("%s: expected a JSON object at the top", path);
    }
    return root;
}

static json_t *read_json(const char *path, bool required, size_t flags, int *rc) {
    struct stat st;
    *rc = 0;
    if (stat(path, &st) != 0) {
        if (required) *rc = folio_fail("%s: cannot open (no such file)", path);
        return NULL;
    }
    text_buf b = {0};
    json_t *root = NULL;
    *rc = read_whole(path, &b);
    if (*rc == 0) root = parse_json(path, b.s ? b.s : "", b.len, flags, rc);
    text_buf_free(&b);
    return root;
}

static int load_parts(tokenizer *t, const json_t *root, const char *raw, tj_span vocab_sp,
                      tj_span merges_sp) {
    const json_t *added = json_object_get(root, "added_tokens");
    json_t *empty = json_array();
    if (!added) added = empty;
    int rc = load_model(t, json_object_get(root, "model"), added, raw, vocab_sp, merges_sp);
    if (rc == 0) rc = load_added(t, added);
    if (rc == 0) rc = load_normalizer(t, json_object_get(root, "normalizer"), "normalizer");
    if (rc == 0) rc = normalize_added(t);
    if (rc == 0) rc = load_pretokenizer(t, json_object_get(root, "pre_tokenizer"));
    if (rc == 0) rc = load_postprocessor(t, json_object_get(root, "post_processor"));
    if (rc == 0) rc = load_decoder(t, json_object_get(root, "decoder"));
    json_decref(empty);
    if (rc == 0 && t->n_pre == 0 && !t->bpe.ignore_merges) t->bpe.split_on_metaspace = metaspace_split_safe(t);
    return rc;
}

/* tokenizer.json: vocab and merges by tokenizer_json.c, the rest by jansson. */
static int load_tokenizer_json(tokenizer *t) {
    text_buf raw = {0};
    if (read_whole(t->path, &raw) != 0) return -1;
    if (!raw.s) text_buf_append(&raw, "", 0);
    tj_span vocab_sp, merges_sp;
    int rc = tj_find_model_fields(raw.s, raw.len, t->path, &vocab_sp, &merges_sp);
    char *rest = NULL;
    if (rc == 0) {
        rest = folio_xmalloc(raw.len + 1);
        memcpy(rest, raw.s, raw.len + 1);
        tj_blank(rest, vocab_sp, '{', '}');
        tj_blank(rest, merges_sp, '[', ']');
    }
    json_t *root = rc == 0 ? parse_json(t->path, rest, raw.len, 0, &rc) : NULL;
    free(rest);
    if (root) rc = load_parts(t, root, raw.s, vocab_sp, merges_sp);
    json_decref(root);
    text_buf_free(&raw);
    return rc;
}

int tokenizer_load(const char *dir, tokenizer **out) {
    *out = NULL;
    tokenizer *t = folio_xcalloc(1, sizeof *t);
    size_t n = strlen(dir) + 32;
    t->path = folio_xmalloc(n);
    snprintf(t->path, n, "%s/tokenizer.json", dir);
    int rc = load_tokenizer_json(t);
    if (rc == 0) {
        char *cpath = folio_xmalloc(n + 8);
        snprintf(cpath, n + 8, "%s/tokenizer_config.json", dir);
        json_t *cfg = read_json(cpath, false, JSON_DECODE_INT_AS_REAL, &rc);
        free(cpath);
        json_t *none = json_object();
        if (rc == 0) apply_config(t, cfg ? cfg : none);
        json_decref(none);
        json_decref(cfg);
    }
    if (rc == 0) t->md = pcre2_match_data_create(64, NULL);
    if (rc != 0) {
        tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}
