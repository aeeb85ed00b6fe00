/* The KV block manager (rank 0): the pool of fixed-size KV blocks handed out to sequences,
 * with reference counts, a free list, and the prefix cache.
 *
 * Ownership: a block is held by every sequence whose block table names it (one reference
 * each). A block is in exactly one of three places:
 *   - in use      ref > 0
 *   - free        ref == 0, no cached content (a stack of ids)
 *   - evictable   ref == 0, holds a cached full block (LRU list; evicted only when the free
 *                 stack is empty and a block is needed)
 * Releasing a block whose ref is already 0 is a double free: the manager aborts at once.
 *
 * Prefix cache: a FULL, computed block is identified by a 128-bit chained hash,
 * H(block) = hash(H(parent), its block_size token ids); the first block's parent is a fixed
 * seed. 128 bits (two independent 64-bit lanes) make a collision between two different token
 * prefixes impossible in practice (about n^2 / 2^129 for n cached blocks), so a hit is trusted
 * without comparing token ids. Only full blocks are ever hashed, and a hashed block is never
 * written again (its sequences write only to later positions). */
#ifndef FOLIO_BLOCK_MANAGER_H
#define FOLIO_BLOCK_MANAGER_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    uint64_t lo, hi;
} bm_hash;

typedef struct block_manager block_manager;

typedef struct {
    int64_t hit_blocks;          /* prefix-cache blocks reused by bm_lookup_acquire */
    int64_t queried_blocks;      /* full blocks looked up */
    int64_t evictions;           /* cached blocks dropped to satisfy an allocation */
    int64_t cow_copies;
} bm_stats;

/* A pool of num_blocks blocks of block_size tokens. prefix_caching false: nothing is ever
 * registered or found. The caller owns it (bm_free). */
block_manager *bm_create(int num_blocks, int block_size, bool prefix_caching);
void bm_free(block_manager *bm);

int bm_num_blocks(const block_manager *bm);
int bm_block_size(const block_manager *bm);
/* Blocks an allocation can still get: free plus evictable. */
int bm_num_available(const block_manager *bm);
/* Blocks on the free stack alone (no cached content). */
int bm_num_free(const block_manager *bm);
const bm_stats *bm_get_stats(const block_manager *bm);

/* A block with ref 1: from the free stack, else the least recently used evictable block
 * (which leaves the prefix cache). -1 when none is left (no message: the scheduler decides). */
int bm_alloc(block_manager *bm);

/* One more reference to an in-use block (sharing: forks, n > 1). Aborts if ref is 0. */
void bm_ref(block_manager *bm, int block);

/* Drops one reference; at 0 the block goes to the evictable LRU (if cached) or the free
 * stack. Aborts on a double free (ref already 0) or an id outside the pool. */
void bm_release(block_manager *bm, int block);

int bm_refcount(const block_manager *bm, int block);

/* Copy-on-write: if *block is shared (ref > 1), allocates a private block, drops one
 * reference to the shared one and returns 1 with *block set to the new id and *src to the
 * old (the caller copies the KV src -> new). Returns 0 if *block was already private, -1 if
 * no block could be allocated (nothing changed). */
int bm_cow(block_manager *bm, int *block, int *src);

/* The hash of a full block whose parent block hashed to `parent` (bm_hash_seed() for the
 * first block). */
bm_hash bm_hash_seed(void);
bm_hash bm_hash_block(bm_hash parent, const int32_t *tokens, int n);

/* Prefix cache lookup: the block cached under h, with one more reference (taking it off the
 * evictable list if it was there), or -1 on a miss. Counts a query and a hit in the stats. */
int bm_lookup_acquire(block_manager *bm, bm_hash h);

/* Makes an in-use, full, computed block findable under h. If another block is already
 * cached under h (two sequences computed the same prefix in one step), nothing changes. */
void bm_register(block_manager *bm, int block, bm_hash h);

/* Drops every evictable cached block (they become plain free blocks). */
void bm_reset_prefix_cache(block_manager *bm);

/* Invariant check for tests and debug builds: every block in exactly one place, the free
 * stack and LRU well formed, counts consistent, hashed blocks findable; and when expected_refs
 * is given ([num_blocks], the references the sequences' block tables hold), every refcount
 * equals it (a leak or a missing reference is reported with the block id). Returns 0, or -1
 * with a message naming the first violation. */
int bm_check(const block_manager *bm, const int32_t *expected_refs);

#endif
