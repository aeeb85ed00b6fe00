/* Open-addressing hash tables for the tokenizer (libc has none):
 *   strmap: byte string -> int32 value (vocabulary, added tokens, the BPE word cache);
 *           keys are borrowed: the caller keeps them alive while the map lives.
 *   u64map: uint64 key -> uint64 value (BPE merges: (left id, right id) -> (rank, merged id);
 *           the scheduler's sessions by id); UINT64_MAX is not a key.
 * Both grow by doubling at 50% load; lookups are a hash, a probe and a compare. */
#ifndef FOLIO_HASHMAP_H
#define FOLIO_HASHMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *key; /* NULL marks an empty slot */
    uint32_t len;
    int32_t value;
    uint64_t hash;
} strmap_slot;

typedef struct {
    strmap_slot *slots;
    size_t cap; /* power of two */
    size_t count;
} strmap;

uint64_t hash_bytes(const void *data, size_t len);

void strmap_init(strmap *m, size_t expected);
void strmap_free(strmap *m);
/* Inserts or replaces; the key bytes are borrowed, not copied. */
void strmap_put(strmap *m, const char *key, size_t len, int32_t value);
/* Returns true and sets *value when the key is present. */
bool strmap_get(const strmap *m, const char *key, size_t len, int32_t *value);
bool strmap_get_hashed(const strmap *m, const char *key, size_t len, uint64_t hash,
                       int32_t *value);

typedef struct {
    uint64_t *keys; /* UINT64_MAX marks an empty slot */
    uint64_t *values;
    size_t cap;
    size_t count;
} u64map;

void u64map_init(u64map *m, size_t expected);
void u64map_free(u64map *m);
void u64map_put(u64map *m, uint64_t key, uint64_t value);
bool u64map_get(const u64map *m, uint64_t key, uint64_t *value);
/* Removes the key; false when it was absent. */
bool u64map_del(u64map *m, uint64_t key);

#endif
