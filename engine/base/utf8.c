/* UTF-8 decoding with the maximal-subpart rule, lossy repair, encoding, counting (see utf8.h). */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "grow.h"
#include "utf8.h"

/* Allowed range of the second byte for each lead byte; the others are 80..BF. */
static void second_range(uint8_t lead, uint8_t *lo, uint8_t *hi) {
    *lo = 0x80;
    *hi = 0xBF;
    if (lead == 0xE0) *lo = 0xA0;
    else if (lead == 0xED) *hi = 0x9F;
    else if (lead == 0xF0) *lo = 0x90;
    else if (lead == 0xF4) *hi = 0x8F;
}

utf8_status utf8_decode(const uint8_t *s, size_t n, size_t *len, uint32_t *cp) {
    uint8_t b = s[0];
    if (b < 0x80) {
        *len = 1;
        *cp = b;
        return UTF8_OK;
    }
    size_t need;
    uint32_t v;
    if (b >= 0xC2 && b <= 0xDF) need = 2, v = b & 0x1F;
    else if (b >= 0xE0 && b <= 0xEF) need = 3, v = b & 0x0F;
    else if (b >= 0xF0 && b <= 0xF4) need = 4, v = b & 0x07;
    else {
        *len = 1;
        return UTF8_INVALID;
    }
    uint8_t lo, hi;
    second_range(b, &lo, &hi);
    for (size_t i = 1; i < need; i++) {
        if (i >= n) {
            *len = i;
            return UTF8_TRUNCATED;
        }
        uint8_t c = s[i];
        uint8_t l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (c < l || c > h) {
            *len = i;
            return UTF8_INVALID;
        }
        v = (v << 6) | (c & 0x3F);
    }
    *len = need;
    *cp = v;
    return UTF8_OK;
}

size_t utf8_encode(uint32_t cp, char *out) {
    uint8_t *o = (uint8_t *)out;
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xC0 | (cp >> 6));
        o[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (cp >> 12));
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | (cp >> 18));
    o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

size_t utf8_valid_prefix(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp;
        if (utf8_decode(s + i, n - i, &len, &cp) != UTF8_OK) return i;
        i += len;
    }
    return n;
}

size_t utf8_count(const char *s, size_t n) {
    size_t count = 0, len;
    uint32_t cp;
    for (size_t i = 0; i < n; i += len, count++)
        if (utf8_decode((const uint8_t *)s + i, n - i, &len, &cp) != UTF8_OK) len = 1;
    return count;
}

static void reserve(char **out, size_t *cap, size_t need) {
    if (need <= *cap) return;
    *cap = folio_grow_cap(*cap, need);
    *out = folio_xrealloc(*out, *cap);
}

void utf8_append_lossy(const uint8_t *s, size_t n, char **out, size_t *len, size_t *cap) {
    reserve(out, cap, *len + n * 3 + 1);
    char *o = *out + *len;
    size_t i = 0;
    while (i < n) {
        size_t ok = utf8_valid_prefix(s + i, n - i);
        memcpy(o, s + i, ok);
        o += ok;
        i += ok;
        if (i >= n) break;
        size_t bad;
        uint32_t cp;
        utf8_decode(s + i, n - i, &bad, &cp);
        memcpy(o, "\xEF\xBF\xBD", 3);
        o += 3;
        i += bad;
    }
    *len = (size_t)(o - *out);
}

bool utf8_is_space(uint32_t cp) {
    if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
    if (cp < 0x85) return false;
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}
