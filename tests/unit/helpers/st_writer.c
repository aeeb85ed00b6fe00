/* Test helper: a minimal safetensors writer (8-byte little-endian header length, the JSON
 * header padded with spaces to a multiple of 8, then the data in order). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "st_writer.h"

void stw_add(st_writer *w, const char *name, const char *dtype, int ndim, int64_t d0,
             int64_t d1, const void *data, size_t nbytes) {
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 32;
        w->items = realloc(w->items, sizeof *w->items * (size_t)w->cap);
        assert_non_null(w->items);
    }
    st_entry *e = &w->items[w->n++];
    snprintf(e->name, sizeof e->name, "%s", name);
    snprintf(e->dtype, sizeof e->dtype, "%s", dtype);
    e->ndim = ndim;
    e->shape[0] = d0;
    e->shape[1] = d1;
    e->nbytes = nbytes;
    e->data = malloc(nbytes ? nbytes : 1);
    assert_non_null(e->data);
    memcpy(e->data, data, nbytes);
}

static char *header(const st_writer *w, size_t *len) {
    size_t cap = 256 + (size_t)w->n * 320, at = 0, off = 0;
    char *h = malloc(cap);
    assert_non_null(h);
    at += (size_t)snprintf(h + at, cap - at, "{");
    for (int i = 0; i < w->n; i++) {
        const st_entry *e = &w->items[i];
        char shape[64];
        if (e->ndim == 1)
            snprintf(shape, sizeof shape, "[%lld]", (long long)e->shape[0]);
        else
            snprintf(shape, sizeof shape, "[%lld,%lld]", (long long)e->shape[0],
                     (long long)e->shape[1]);
        at += (size_t)snprintf(h + at, cap - at,
                               "%s\"%s\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[%zu,%zu]}",
                               i ? "," : "", e->name, e->dtype, shape, off, off + e->nbytes);
        off += e->nbytes;
    }
    at += (size_t)snprintf(h + at, cap - at, "}");
    while (at % 8) h[at++] = ' ';
    *len = at;
    return h;
}

void stw_write(st_writer *w, const char *path) {
    size_t len = 0;
    char *h = header(w, &len);
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot write %s", path);
    uint64_t n = len;
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)(n >> (8 * i));
    fwrite(le, 1, 8, f);
    fwrite(h, 1, len, f);
    for (int i = 0; i < w->n; i++) fwrite(w->items[i].data, 1, w->items[i].nbytes, f);
    if (fclose(f) != 0) fail_msg("cannot write %s", path);
    free(h);
    for (int i = 0; i < w->n; i++) free(w->items[i].data);
    free(w->items);
    memset(w, 0, sizeof *w);
}
