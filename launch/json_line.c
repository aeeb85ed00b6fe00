/* JSON string literals, one per line (see json_line.h). */
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "json_line.h"
#include "utf8.h"

static int hex4(const char *p, const char *end, unsigned *v) {
    if (end - p < 4) return -1;
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
                   : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                   : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16u;
        if (d == 16) return -1;
        *v = *v * 16 + d;
    }
    return 0;
}

static void put_cp(text_buf *out, unsigned cp) {
    char u[4];
    text_buf_append(out, u, utf8_encode(cp, u));
}

/* A \uXXXX escape (and its pair) at *p; advances *p. */
static int unicode_escape(const char **p, const char *end, text_buf *out) {
    unsigned hi;
    if (hex4(*p, end, &hi) != 0) return -1;
    *p += 4;
    if (hi >= 0xD800 && hi <= 0xDBFF && end - *p >= 6 && (*p)[0] == '\\' && (*p)[1] == 'u') {
        unsigned lo;
        if (hex4(*p + 2, end, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
            *p += 6;
            put_cp(out, 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00));
            return 0;
        }
    }
    if (hi >= 0xDC80 && hi <= 0xDCFF) {
        char b = (char)(hi - 0xDC00);
        text_buf_append(out, &b, 1);
    } else if (hi >= 0xD800 && hi <= 0xDFFF) {
        put_cp(out, 0xFFFD);
    } else {
        put_cp(out, hi);
    }
    return 0;
}

static int simple_escape(char e, text_buf *out) {
    const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
    const char *k = e ? strchr(from, e) : NULL;
    if (!k) return -1;
    text_buf_append(out, &to[k - from], 1);
    return 0;
}

int json_line_parse(const char *line, size_t len, const char *where, text_buf *out) {
    const char *p = line, *end = line + len;
    out->len = 0;
    text_buf_append(out, "", 0);
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r')) p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n')) end--;
    if (p == end || *p != '"' || end - p < 2 || end[-1] != '"')
        return folio_fail("%s: expected one JSON string on the line", where);
    p++;
    end--;
    while (p < end) {
        if (*p != '\\') {
            const char *q = p;
            while (q < end && *q != '\\') q++;
            text_buf_append(out, p, (size_t)(q - p));
            p = q;
            continue;
        }
        if (++p >= end) return folio_fail("%s: unfinished escape", where);
        char e = *p++;
        int rc = e == 'u' ? unicode_escape(&p, end, out) : simple_escape(e, out);
        if (rc != 0) return folio_fail("%s: bad escape \\%c", where, e);
    }
    return 0;
}

void json_line_write(const char *s, size_t len, text_buf *out) {
    text_buf_append(out, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            text_buf_append(out, esc, 2);
        } else if (c < 0x20 || c == 0x7F) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            text_buf_append(out, esc, 6);
        } else {
            text_buf_append(out, s + i, 1);
        }
    }
    text_buf_append(out, "\"", 1);
}
