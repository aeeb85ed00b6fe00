/* UTF-8 helpers for the tokenizer: decoding one character with the "maximal subpart" rule
 * (what Rust's String::from_utf8_lossy and the WHATWG decoder do: each maximal invalid
 * subsequence becomes one U+FFFD), lossy repair of a whole buffer, encoding, and counting
 * characters. */
#ifndef FOLIO_UTF8_H
#define FOLIO_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Result of utf8_decode(). */
typedef enum {
    UTF8_OK,         /* a valid character of `len` bytes */
    UTF8_INVALID,    /* `len` bytes (>= 1) form one maximal invalid subpart */
    UTF8_TRUNCATED,  /* the `len` bytes left are a valid prefix of a character, cut by the end */
} utf8_status;

/* Decodes the character at s[0..n) (n >= 1): sets *len and, when UTF8_OK, *cp. */
utf8_status utf8_decode(const uint8_t *s, size_t n, size_t *len, uint32_t *cp);

/* Writes cp as UTF-8 into out (4 bytes room); returns the byte count. */
size_t utf8_encode(uint32_t cp, char *out);

/* Length of the longest valid UTF-8 prefix of s[0..n). */
size_t utf8_valid_prefix(const uint8_t *s, size_t n);

/* Characters (code points) of s[0..n), each byte of an invalid sequence counting as one. */
size_t utf8_count(const char *s, size_t n);

/* Appends the lossy repair of s[0..n) to *out (a growable buffer of *len bytes, *cap room):
 * each maximal invalid subpart, and a truncated character at the end, becomes U+FFFD. */
void utf8_append_lossy(const uint8_t *s, size_t n, char **out, size_t *len, size_t *cap);

/* Unicode White_Space (the set Rust's char::is_whitespace and Oniguruma's \s use). */
bool utf8_is_space(uint32_t cp);

#endif
