/* Open-addressing (linear probing) hash tables: strmap and u64map (see hashmap.h). */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "grow.h"
#include "hash.h"
#include "hashmap.h"

uint64_t hash_bytes(const void *data, size_t len) {
    const uint8_t *p = data;
    uint64_t h = FOLIO_GOLDEN64 ^ (len * FOLIO_FNV64_PRIME);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ folio_mix64(w)) * FOLIO_GOLDEN64;
        p += 8;
        len -= 8;
    }
    uint64_t tail = 0;
    for (size_t i = 0; i < len; i++) tail |= (uint64_t)p[i] << (8 * i);
    h = (h ^ folio_mix64(tail ^ len)) * FOLIO_GOLDEN64;
    return folio_mix64(h);
}

void strmap_init(strmap *m, size_t expected) {
    m->cap = folio_grow_cap(0, expected * 2 + 1); /* a power of two, at least 16 */
    m->count = 0;
    m->slots = folio_xcalloc(m->cap, sizeof *m->slots);
}

void strmap_free(strmap *m) {
    free(m->slots);
    memset(m, 0, sizeof *m);
}

static strmap_slot *strmap_find(const strmap *m, const char *key, size_t len, uint64_t hash) {
    size_t mask = m->cap - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        strmap_slot *s = &m->slots[i];
        if (!s->key) return s;
        if (s->hash == hash && s->len == len && memcmp(s->key, key, len) == 0) return s;
    }
}

static void strmap_grow(strmap *m) {
    strmap old = *m;
    m->cap *= 2;
    m->count = 0;
    m->slots = folio_xcalloc(m->cap, sizeof *m->slots);
    for (size_t i = 0; i < old.cap; i++) {
        strmap_slot *s = &old.slots[i];
        if (!s->key) continue;
        *strmap_find(m, s->key, s->len, s->hash) = *s;
        m->count++;
    }
    free(old.slots);
}

void strmap_put(strmap *m, const char *key, size_t len, int32_t value) {
    if ((m->count + 1) * 2 > m->cap) strmap_grow(m);
    uint64_t h = hash_bytes(key, len);
    strmap_slot *s = strmap_find(m, key, len, h);
    if (!s->key) m->count++;
    s->key = key ? key : "";
    s->len = (uint32_t)len;
    s->hash = h;
    s->value = value;
}

bool strmap_get_hashed(const strmap *m, const char *key, size_t len, uint64_t hash,
                       int32_t *value) {
    const strmap_slot *s = strmap_find(m, key, len, hash);
    if (!s->key) return false;
    *value = s->value;
    return true;
}

bool strmap_get(const strmap *m, const char *key, size_t len, int32_t *value) {
    return strmap_get_hashed(m, key, len, hash_bytes(key, len), value);
}

void u64map_init(u64map *m, size_t expected) {
    m->cap = folio_grow_cap(0, expected * 2 + 1); /* a power of two, at least 16 */
    m->count = 0;
    m->keys = folio_xmalloc(m->cap * sizeof *m->keys);
    m->values = folio_xmalloc(m->cap * sizeof *m->values);
    memset(m->keys, 0xFF, m->cap * sizeof *m->keys);
}

void u64map_free(u64map *m) {
    free(m->keys);
    free(m->values);
    memset(m, 0, sizeof *m);
}

static size_t u64map_find(const u64map *m, uint64_t key) {
    size_t mask = m->cap - 1;
    for (size_t i = folio_mix64(key) & mask;; i = (i + 1) & mask)
        if (m->keys[i] == key || m->keys[i] == UINT64_MAX) return i;
}

static void u64map_grow(u64map *m) {
    u64map old = *m;
    u64map_init(m, old.cap);
    for (size_t i = 0; i < old.cap; i++)
        if (old.keys[i] != UINT64_MAX) u64map_put(m, old.keys[i], old.values[i]);
    u64map_free(&old);
}

void u64map_put(u64map *m, uint64_t key, uint64_t value) {
    if ((m->count + 1) * 2 > m->cap) u64map_grow(m);
    size_t i = u64map_find(m, key);
    if (m->keys[i] == UINT64_MAX) m->count++;
    m->keys[i] = key;
    m->values[i] = value;
}

bool u64map_get(const u64map *m, uint64_t key, uint64_t *value) {
    size_t i = u64map_find(m, key);
    if (m->keys[i] == UINT64_MAX) return false;
    *value = m->values[i];
    return true;
}

/* Backward-shift deletion: the entries after the hole that probed past it move into it, so
 * lookups stay a probe until the first empty slot (no tombstones). */
bool u64map_del(u64map *m, uint64_t key) {
    size_t mask = m->cap - 1, i = u64map_find(m, key);
    if (m->keys[i] == UINT64_MAX) return false;
    for (size_t j = (i + 1) & mask; m->keys[j] != UINT64_MAX; j = (j + 1) & mask) {
        size_t home = folio_mix64(m->keys[j]) & mask;
        /* j's entry may fill the hole at i unless its home lies cyclically in (i, j] */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays) continue;
        m->keys[i] = m->keys[j];
        m->values[i] = m->values[j];
        i = j;
    }
    m->keys[i] = UINT64_MAX;
    m->count--;
    return true;
}
