/* The KV block manager: refcounted blocks, a free stack, an LRU of evictable cached blocks,
 * and a chained hash table (buckets of block ids) for the prefix cache. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block_manager.h"
#include "error.h"
#include "hash.h"

enum { WHERE_FREE, WHERE_LRU, WHERE_USED };

typedef struct {
    int32_t ref;
    int32_t hnext;               /* next block in the same hash bucket, -1 = end */
    int32_t prev, next;          /* LRU links (index num_blocks = the list's sentinel) */
    uint8_t where;
    uint8_t cached;              /* in the hash table under `hash` */
    bm_hash hash;
} bm_block;

struct block_manager {
    int num_blocks, block_size;
    bool prefix_caching;
    bm_block *blocks;            /* [num_blocks + 1]: the last one is the LRU sentinel */
    int32_t *free_stack;         /* [num_blocks] */
    int n_free;
    int n_lru;
    int32_t *buckets;            /* [n_buckets] head block of each chain, -1 = empty */
    uint64_t bucket_mask;
    bm_stats stats;
};

/* Programming errors in block ownership (error.h's bugs): never compiled out. */
#define BM_ABORT(...) FOLIO_BUG("block manager: " __VA_ARGS__)

block_manager *bm_create(int num_blocks, int block_size, bool prefix_caching) {
    block_manager *bm = folio_xcalloc(1, sizeof *bm);
    bm->num_blocks = num_blocks;
    bm->block_size = block_size;
    bm->prefix_caching = prefix_caching;
    bm->blocks = folio_xcalloc((size_t)num_blocks + 1, sizeof *bm->blocks);
    bm->free_stack = folio_xmalloc(sizeof *bm->free_stack * (num_blocks ? num_blocks : 1));
    /* pop order 0, 1, 2, ...: the stack holds ids in reverse */
    for (int i = 0; i < num_blocks; i++) {
        bm->free_stack[i] = num_blocks - 1 - i;
        bm->blocks[i] = (bm_block){.ref = 0, .hnext = -1, .prev = -1, .next = -1,
                                   .where = WHERE_FREE};
    }
    bm->n_free = num_blocks;
    bm_block *s = &bm->blocks[num_blocks];
    s->prev = s->next = num_blocks;
    uint64_t nb = 1;
    while (nb < (uint64_t)num_blocks) nb <<= 1;
    bm->buckets = folio_xmalloc(sizeof *bm->buckets * nb);
    memset(bm->buckets, 0xff, sizeof *bm->buckets * nb);
    bm->bucket_mask = nb - 1;
    return bm;
}

void bm_free(block_manager *bm) {
    if (!bm) return;
    free(bm->blocks);
    free(bm->free_stack);
    free(bm->buckets);
    free(bm);
}

int bm_num_blocks(const block_manager *bm) { return bm->num_blocks; }
int bm_block_size(const block_manager *bm) { return bm->block_size; }
int bm_num_available(const block_manager *bm) { return bm->n_free + bm->n_lru; }
int bm_num_free(const block_manager *bm) { return bm->n_free; }
const bm_stats *bm_get_stats(const block_manager *bm) { return &bm->stats; }

static void check_id(const block_manager *bm, int block, const char *op) {
    if (block < 0 || block >= bm->num_blocks)
        BM_ABORT("%s: block %d is outside the pool of %d", op, block, bm->num_blocks);
}

/* ---- LRU of evictable cached blocks (head = least recently used) ---- */

static void lru_unlink(block_manager *bm, int b) {
    bm_block *x = &bm->blocks[b];
    bm->blocks[x->prev].next = x->next;
    bm->blocks[x->next].prev = x->prev;
    x->prev = x->next = -1;
    bm->n_lru--;
}

static void lru_push_tail(block_manager *bm, int b) {
    int s = bm->num_blocks;
    bm_block *x = &bm->blocks[b];
    x->prev = bm->blocks[s].prev;
    x->next = s;
    bm->blocks[x->prev].next = b;
    bm->blocks[s].prev = b;
    bm->n_lru++;
}

/* ---- hash table ---- */

static uint64_t bucket_of(const block_manager *bm, bm_hash h) { return h.lo & bm->bucket_mask; }

static int table_find(const block_manager *bm, bm_hash h) {
    for (int b = bm->buckets[bucket_of(bm, h)]; b >= 0; b = bm->blocks[b].hnext)
        if (bm->blocks[b].hash.lo == h.lo && bm->blocks[b].hash.hi == h.hi) return b;
    return -1;
}

static void table_remove(block_manager *bm, int b) {
    int32_t *link = &bm->buckets[bucket_of(bm, bm->blocks[b].hash)];
    while (*link != b) {
        if (*link < 0) BM_ABORT("block %d is marked cached but is not in its bucket", b);
        link = &bm->blocks[*link].hnext;
    }
    *link = bm->blocks[b].hnext;
    bm->blocks[b].hnext = -1;
    bm->blocks[b].cached = 0;
}

/* ---- allocation and references ---- */

int bm_alloc(block_manager *bm) {
    int b;
    if (bm->n_free > 0) {
        b = bm->free_stack[--bm->n_free];
    } else if (bm->n_lru > 0) {
        b = bm->blocks[bm->num_blocks].next;
        lru_unlink(bm, b);
        table_remove(bm, b);
        bm->stats.evictions++;
    } else {
        return -1;
    }
    bm_block *x = &bm->blocks[b];
    if (x->ref != 0) BM_ABORT("alloc: block %d handed out with ref %d", b, x->ref);
    x->ref = 1;
    x->where = WHERE_USED;
    return b;
}

void bm_ref(block_manager *bm, int block) {
    check_id(bm, block, "ref");
    bm_block *x = &bm->blocks[block];
    if (x->ref <= 0) BM_ABORT("ref: block %d is not in use (ref %d)", block, x->ref);
    x->ref++;
}

void bm_release(block_manager *bm, int block) {
    check_id(bm, block, "release");
    bm_block *x = &bm->blocks[block];
    if (x->ref <= 0) BM_ABORT("double free of block %d (ref %d)", block, x->ref);
    if (--x->ref > 0) return;
    if (x->cached) {
        x->where = WHERE_LRU;
        lru_push_tail(bm, block);
    } else {
        x->where = WHERE_FREE;
        bm->free_stack[bm->n_free++] = block;
    }
}

int bm_refcount(const block_manager *bm, int block) {
    check_id(bm, block, "refcount");
    return bm->blocks[block].ref;
}

int bm_cow(block_manager *bm, int *block, int *src) {
    check_id(bm, *block, "cow");
    if (bm->blocks[*block].ref <= 1) return 0;
    int nb = bm_alloc(bm);
    if (nb < 0) return -1;
    *src = *block;
    bm_release(bm, *block);
    *block = nb;
    bm->stats.cow_copies++;
    return 1;
}

/* ---- prefix hashing ---- */

bm_hash bm_hash_seed(void) { return (bm_hash){0x243f6a8885a308d3ull, 0x13198a2e03707344ull}; }

bm_hash bm_hash_block(bm_hash parent, const int32_t *tokens, int n) {
    /* Two lanes with different multipliers and constants; each step is a bijection of the
     * lane state for a given token, so distinct token strings diverge. */
    uint64_t a = folio_mix64(parent.lo ^ FOLIO_GOLDEN64) ^ parent.hi;
    uint64_t b = folio_mix64(parent.hi ^ 0xd1b54a32d192ed03ull) + parent.lo;
    for (int i = 0; i < n; i++) {
        uint64_t t = (uint64_t)(uint32_t)tokens[i];
        a = folio_mix64((a ^ t) * 0x9fb21c651e98df25ull + 0x2545f4914f6cdd1dull);
        b = folio_mix64((b + t) * 0xbf58476d1ce4e5b9ull ^ 0x94d049bb133111ebull);
    }
    a = folio_mix64(a ^ (uint64_t)n);
    b = folio_mix64(b + (uint64_t)n * 0x632be59bd9b4e019ull);
    return (bm_hash){a, b};
}

int bm_lookup_acquire(block_manager *bm, bm_hash h) {
    if (!bm->prefix_caching) return -1;
    bm->stats.queried_blocks++;
    int b = table_find(bm, h);
    if (b < 0) return -1;
    bm_block *x = &bm->blocks[b];
    if (x->ref == 0) {
        lru_unlink(bm, b);
        x->where = WHERE_USED;
    }
    x->ref++;
    bm->stats.hit_blocks++;
    return b;
}

void bm_register(block_manager *bm, int block, bm_hash h) {
    check_id(bm, block, "register");
    if (!bm->prefix_caching) return;
    bm_block *x = &bm->blocks[block];
    if (x->ref <= 0) BM_ABORT("register: block %d is not in use", block);
    if (x->cached) return;
    if (table_find(bm, h) >= 0) return;
    x->hash = h;
    x->cached = 1;
    uint64_t k = bucket_of(bm, h);
    x->hnext = bm->buckets[k];
    bm->buckets[k] = block;
}

void bm_reset_prefix_cache(block_manager *bm) {
    while (bm->n_lru > 0) {
        int b = bm->blocks[bm->num_blocks].next;
        lru_unlink(bm, b);
        table_remove(bm, b);
        bm->blocks[b].where = WHERE_FREE;
        bm->free_stack[bm->n_free++] = b;
    }
}

/* ---- invariants ---- */

static int check_lists(const block_manager *bm, uint8_t *seen) {
    for (int i = 0; i < bm->n_free; i++) {
        int b = bm->free_stack[i];
        if (b < 0 || b >= bm->num_blocks || seen[b])
            return folio_fail("block manager: free stack entry %d (block %d) is invalid or "
                              "repeated", i, b);
        seen[b] = 1;
        const bm_block *x = &bm->blocks[b];
        if (x->ref != 0 || x->cached || x->where != WHERE_FREE)
            return folio_fail("block manager: free block %d has ref %d cached %d", b, x->ref,
                              x->cached);
    }
    int n = 0, s = bm->num_blocks;
    for (int b = bm->blocks[s].next; b != s; b = bm->blocks[b].next) {
        if (b < 0 || b >= bm->num_blocks || seen[b] || ++n > bm->n_lru)
            return folio_fail("block manager: LRU list is broken at block %d", b);
        seen[b] = 1;
        const bm_block *x = &bm->blocks[b];
        if (x->ref != 0 || !x->cached || x->where != WHERE_LRU)
            return folio_fail("block manager: evictable block %d has ref %d cached %d", b,
                              x->ref, x->cached);
    }
    if (n != bm->n_lru)
        return folio_fail("block manager: LRU holds %d blocks, counted %d", n, bm->n_lru);
    return 0;
}

int bm_check(const block_manager *bm, const int32_t *expected_refs) {
    uint8_t *seen = folio_xcalloc((size_t)bm->num_blocks + 1, 1);
    int rc = check_lists(bm, seen);
    for (int b = 0; rc == 0 && b < bm->num_blocks; b++) {
        const bm_block *x = &bm->blocks[b];
        if (!seen[b] && (x->ref <= 0 || x->where != WHERE_USED))
            rc = folio_fail("block manager: block %d is in no list and has ref %d", b, x->ref);
        else if (expected_refs && x->ref != expected_refs[b])
            rc = folio_fail("block manager: block %d has ref %d but the block tables hold %d "
                            "(%s)", b, x->ref, expected_refs[b],
                            x->ref > expected_refs[b] ? "leak" : "missing reference");
        else if (x->cached && table_find(bm, x->hash) != b)
            rc = folio_fail("block manager: cached block %d is not findable by its hash", b);
    }
    free(seen);
    return rc;
}
