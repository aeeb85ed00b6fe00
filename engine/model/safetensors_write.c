/* Writes one safetensors file: the length field, the JSON header padded to 8 bytes, the data
 * (layout in safetensors_write.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "error.h"
#include "safetensors_write.h"

/* Element size descending, then name: each tensor's data naturally aligned. */
static int cmp_layout(const void *a, const void *b) {
    const st_out_tensor *x = *(const st_out_tensor *const *)a;
    const st_out_tensor *y = *(const st_out_tensor *const *)b;
    size_t sx = st_dtype_size(x->dtype), sy = st_dtype_size(y->dtype);
    if (sx != sy) return sx > sy ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int check_size(const st_out_tensor *t, const char *path) {
    uint64_t numel = 1;
    if (t->ndim < 0 || t->ndim > ST_MAX_DIMS)
        return folio_fail("%s: tensor '%s': %d dimensions (at most %d)", path, t->name, t->ndim,
                          ST_MAX_DIMS);
    for (int d = 0; d < t->ndim; d++) numel *= (uint64_t)t->shape[d];
    if (numel * st_dtype_size(t->dtype) != t->nbytes)
        return folio_fail("%s: tensor '%s': %llu bytes given, its shape and dtype need %llu",
                          path, t->name, (unsigned long long)t->nbytes,
                          (unsigned long long)(numel * st_dtype_size(t->dtype)));
    return 0;
}

static json_t *entry_json(const st_out_tensor *t, uint64_t begin) {
    json_t *shape = json_array();
    for (int d = 0; d < t->ndim; d++) json_array_append_new(shape, json_integer(t->shape[d]));
    json_t *offsets = json_pack("[II]", (json_int_t)begin, (json_int_t)(begin + t->nbytes));
    return json_pack("{s:s, s:o, s:o}", "dtype", st_dtype_name(t->dtype), "shape", shape,
                     "data_offsets", offsets);
}

/* The header text padded with spaces to a multiple of 8 bytes; *len its length. */
static char *header_text(const st_out_tensor *const *order, int n, size_t *len) {
    json_t *root = json_object();
    json_object_set_new(root, "__metadata__", json_pack("{s:s}", "format", "pt"));
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        json_object_set_new(root, order[i]->name, entry_json(order[i], at));
        at += order[i]->nbytes;
    }
    char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text) FOLIO_BUG("json_dumps failed on a safetensors header");
    size_t n0 = strlen(text), padded = (n0 + 7) / 8 * 8;
    char *out = folio_xmalloc(padded);
    memcpy(out, text, n0);
    memset(out + n0, ' ', padded - n0);
    free(text);
    *len = padded;
    return out;
}

static int write_all(FILE *f, const st_out_tensor *const *order, int n, const char *hdr,
                     size_t hlen) {
    uint8_t lenf[8];
    for (int i = 0; i < 8; i++) lenf[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    if (fwrite(lenf, 1, 8, f) != 8 || fwrite(hdr, 1, hlen, f) != hlen) return -1;
    for (int i = 0; i < n; i++)
        if (order[i]->nbytes && fwrite(order[i]->data, 1, order[i]->nbytes, f) != order[i]->nbytes)
            return -1;
    return 0;
}

int safetensors_write_file(const char *path, const st_out_tensor *t, int n) {
    const st_out_tensor **order = folio_xmalloc((size_t)(n ? n : 1) * sizeof *order);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        order[i] = &t[i];
        rc = check_size(&t[i], path);
    }
    FILE *f = rc == 0 ? fopen(path, "wb") : NULL;
    if (rc == 0 && !f) rc = folio_fail("%s: cannot create: %s", path, strerror(errno));
    if (rc == 0) {
        qsort(order, (size_t)n, sizeof *order, cmp_layout);
        size_t hlen;
        char *hdr = header_text(order, n, &hlen);
        if (write_all(f, order, n, hdr, hlen) != 0 || fflush(f) != 0)
            rc = folio_fail("%s: write failed: %s", path, strerror(errno));
        free(hdr);
    }
    if (f && fclose(f) != 0 && rc == 0)
        rc = folio_fail("%s: write failed: %s", path, strerror(errno));
    free(order);
    return rc;
}
