/* The BPE model: one word (a pre-token) -> ids. Initial symbols are the word's characters
 * (byte-level models: its bytes through the ByteLevel table; others: characters, with
 * <0xNN> byte fallback or the unknown token); then the pair of lowest merge rank, leftmost
 * first, is merged until none is left, with a binary heap of candidate merges over a linked
 * list of symbols. ignore_merges emits a word that is itself a token whole. Results are
 * cached per word. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tokenizer_internal.h"
#include "utf8.h"

struct bpe_sym {
    int32_t id;
    int32_t prev, next; /* -1 at the ends */
};

struct bpe_cand {
    uint64_t value; /* rank << 32 | merged id, as in the merges map */
    int32_t pos;
};

#define CACHE_MAX_WORD 256
#define CACHE_MAX_ENTRIES (1u << 20)
#define CACHE_BLOCK (1u << 20)

/* ---------------------------------------------------------------- heap */

static bool cand_less(const struct bpe_cand *a, const struct bpe_cand *b) {
    uint32_t ra = (uint32_t)(a->value >> 32), rb = (uint32_t)(b->value >> 32);
    return ra != rb ? ra < rb : a->pos < b->pos;
}

static void heap_push(bpe_model *m, size_t *n, struct bpe_cand c) {
    FOLIO_GROW(m->heap, m->cap_heap, *n + 1);
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!cand_less(&c, &m->heap[parent])) break;
        m->heap[i] = m->heap[parent];
        i = parent;
    }
    m->heap[i] = c;
}

static struct bpe_cand heap_pop(bpe_model *m, size_t *n) {
    struct bpe_cand top = m->heap[0], last = m->heap[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, best = i;
        const struct bpe_cand *bc = &last;
        if (l < *n && cand_less(&m->heap[l], bc)) best = l, bc = &m->heap[l];
        if (l + 1 < *n && cand_less(&m->heap[l + 1], bc)) best = l + 1;
        if (best == i) break;
        m->heap[i] = m->heap[best];
        i = best;
    }
    if (*n) m->heap[i] = last;
    return top;
}

/* ---------------------------------------------------------------- symbols */

static void push_sym(bpe_model *m, size_t *n, int32_t id) {
    FOLIO_GROW(m->syms, m->cap_syms, *n + 1);
    m->syms[*n].id = id;
    m->syms[*n].prev = (int32_t)*n - 1;
    m->syms[*n].next = -1;
    if (*n) m->syms[*n - 1].next = (int32_t)*n;
    (*n)++;
}

/* One character with no token of its own: byte fallback, or the unknown token. */
static int push_unknown(const tokenizer *tok, bpe_model *m, size_t *n, const char *c, size_t clen) {
    if (m->byte_fallback) {
        bool all = true;
        for (size_t i = 0; i < clen; i++) all = all && m->fallback_ids[(uint8_t)c[i]] >= 0;
        if (all) {
            for (size_t i = 0; i < clen; i++) push_sym(m, n, m->fallback_ids[(uint8_t)c[i]]);
            return 0;
        }
    }
    if (m->unk_id < 0)
        return folio_fail("%s: no token for the character \"%.*s\" and no unk_token", tok->path,
                          (int)clen, c);
    if (m->fuse_unk && *n && m->syms[*n - 1].id == m->unk_id) return 0;
    push_sym(m, n, m->unk_id);
    return 0;
}

static int initial_symbols(const tokenizer *tok, bpe_model *m, const char *w, size_t len,
                           size_t *n) {
    *n = 0;
    if (m->byte_level) {
        for (size_t i = 0; i < len; i++) {
            int32_t id = m->byte_ids[(uint8_t)w[i]];
            if (id < 0 && push_unknown(tok, m, n, w + i, 1) != 0) return -1;
            if (id >= 0) push_sym(m, n, id);
        }
        return 0;
    }
    size_t i = 0;
    while (i < len) {
        uint8_t b = (uint8_t)w[i];
        size_t clen = 1;
        int32_t id = -1;
        if (b < 0x80) id = m->ascii_ids[b];
        else {
            uint32_t cp;
            utf8_decode((const uint8_t *)w + i, len - i, &clen, &cp);
            strmap_get(&m->vocab, w + i, clen, &id);
        }
        if (id < 0 && push_unknown(tok, m, n, w + i, clen) != 0) return -1;
        if (id >= 0) push_sym(m, n, id);
        i += clen;
    }
    return 0;
}

static void try_pair(bpe_model *m, size_t *nh, int32_t pos) {
    if (pos < 0) return;
    int32_t next = m->syms[pos].next;
    if (next < 0) return;
    uint64_t v;
    uint64_t key = (uint64_t)(uint32_t)m->syms[pos].id << 32 | (uint32_t)m->syms[next].id;
    if (u64map_get(&m->merges, key, &v)) heap_push(m, nh, (struct bpe_cand){v, pos});
}

static void merge_all(bpe_model *m, size_t n) {
    size_t nh = 0;
    for (size_t i = 0; i + 1 < n; i++) try_pair(m, &nh, (int32_t)i);
    while (nh) {
        struct bpe_cand c = heap_pop(m, &nh);
        struct bpe_sym *s = &m->syms[c.pos];
        if (s->id < 0 || s->next < 0) continue;
        struct bpe_sym *r = &m->syms[s->next];
        uint64_t v;
        uint64_t key = (uint64_t)(uint32_t)s->id << 32 | (uint32_t)r->id;
        if (!u64map_get(&m->merges, key, &v) || v != c.value) continue; /* stale */
        s->id = (int32_t)(uint32_t)c.value;
        r->id = -1;
        s->next = r->next;
        if (r->next >= 0) m->syms[r->next].prev = c.pos;
        try_pair(m, &nh, s->prev);
        try_pair(m, &nh, c.pos);
    }
}

/* ---------------------------------------------------------------- cache */

static const char *cache_store_word(bpe_model *m, const char *w, size_t len) {
    if (m->n_blocks == 0 || m->block_used + len > CACHE_BLOCK) {
        m->cache_blocks = folio_xrealloc(m->cache_blocks, (m->n_blocks + 1) * sizeof *m->cache_blocks);
        m->cache_blocks[m->n_blocks++] = folio_xmalloc(CACHE_BLOCK);
        m->block_used = 0;
    }
    char *p = m->cache_blocks[m->n_blocks - 1] + m->block_used;
    memcpy(p, w, len);
    m->block_used += len;
    return p;
}

static void cache_clear(bpe_model *m) {
    for (size_t i = 0; i < m->n_blocks; i++) free(m->cache_blocks[i]);
    free(m->cache_blocks);
    m->cache_blocks = NULL;
    m->n_blocks = m->block_used = 0;
    strmap_free(&m->cache);
    m->n_entries = 0;
    m->cache_ids.n = 0;
}

static void cache_put(bpe_model *m, const char *w, size_t len, uint64_t h, const int32_t *ids,
                      size_t n) {
    (void)h;
    if (m->n_entries >= CACHE_MAX_ENTRIES) cache_clear(m);
    if (!m->cache.slots) strmap_init(&m->cache, 1 << 14);
    FOLIO_GROW(m->entries, m->cap_entries, m->n_entries + 1);
    m->entries[m->n_entries] = (cache_entry){(uint32_t)m->cache_ids.n, (uint32_t)n};
    for (size_t i = 0; i < n; i++) token_ids_push(&m->cache_ids, ids[i]);
    strmap_put(&m->cache, cache_store_word(m, w, len), len, (int32_t)m->n_entries++);
}

void bpe_free(bpe_model *m) {
    u64map_free(&m->merges);
    strmap_free(&m->vocab);
    cache_clear(m);
    free(m->entries);
    token_ids_free(&m->cache_ids);
    free(m->syms);
    free(m->heap);
    text_buf_free(&m->word);
}

/* ---------------------------------------------------------------- a word */

/* ignore_merges: the word, in model space, is a token. */
static int32_t whole_word_id(const tokenizer *tok, bpe_model *m, const char *w, size_t len) {
    int32_t id = -1;
    if (!m->byte_level) {
        strmap_get(&m->vocab, w, len, &id);
        return id;
    }
    uint32_t cps[256];
    bytelevel_tables(cps); /* cheap: 256 steps, only on cache misses */
    m->word.len = 0;
    for (size_t i = 0; i < len; i++) {
        char u[4];
        text_buf_append(&m->word, u, utf8_encode(cps[(uint8_t)w[i]], u));
    }
    strmap_get(&m->vocab, m->word.s, m->word.len, &id);
    (void)tok;
    return id;
}

int bpe_encode_word(tokenizer *tok, const char *w, size_t len, token_ids *out) {
    bpe_model *m = &tok->bpe;
    if (len == 0) return 0;
    uint64_t h = 0;
    bool cacheable = len < CACHE_MAX_WORD;
    if (cacheable && m->cache.slots) {
        h = hash_bytes(w, len);
        int32_t e;
        if (strmap_get_hashed(&m->cache, w, len, h, &e)) {
            const cache_entry *ce = &m->entries[e];
            for (uint32_t i = 0; i < ce->n; i++) token_ids_push(out, m->cache_ids.ids[ce->off + i]);
            return 0;
        }
    }
    size_t first = out->n;
    int32_t whole = m->ignore_merges ? whole_word_id(tok, m, w, len) : -1;
    if (whole >= 0) {
        token_ids_push(out, whole);
    } else {
        size_t n;
        if (initial_symbols(tok, m, w, len, &n) != 0) return -1;
        merge_all(m, n);
        for (int32_t i = 0; i >= 0 && n; i = m->syms[i].next) token_ids_push(out, m->syms[i].id);
    }
    if (cacheable) cache_put(m, w, len, h, out->ids + first, out->n - first);
    return 0;
}
