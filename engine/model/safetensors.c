/* safetensors reader: parses and fully validates a file's JSON header (jansson), maps files
 * read-only with mmap, and opens a Hugging Face model directory (sharded index, single file, or
 * every *.safetensors file) as one name-sorted table of tensors.
 *
 * Every failure records one message with folio_fail() naming the file, the tensor and the
 * expected versus found value, releases whatever it had built, and returns -1. Nothing here
 * prints. Sizes and offsets are 64-bit throughout; every product is overflow-checked. */
#include "safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "grow.h"

#define ST_INDEX_NAME "model.safetensors.index.json"
#define ST_SINGLE_NAME "model.safetensors"
#define ST_SUFFIX ".safetensors"
#define ST_LEN_FIELD 8u /* bytes of the little-endian header length in front of the JSON */

/* ---------------------------------------------------------------- dtypes */

static const struct {
    const char *name;
    size_t size;
} DTYPES[ST_DTYPE_COUNT] = {
    [ST_BOOL] = {"BOOL", 1},         [ST_U8] = {"U8", 1},     [ST_I8] = {"I8", 1},
    [ST_I16] = {"I16", 2},           [ST_U16] = {"U16", 2},   [ST_F16] = {"F16", 2},
    [ST_BF16] = {"BF16", 2},         [ST_I32] = {"I32", 4},   [ST_U32] = {"U32", 4},
    [ST_F32] = {"F32", 4},           [ST_F64] = {"F64", 8},   [ST_I64] = {"I64", 8},
    [ST_U64] = {"U64", 8},           [ST_F8_E4M3] = {"F8_E4M3", 1},
    [ST_F8_E5M2] = {"F8_E5M2", 1},
};

/* Name of t as the format spells it; "?" for a value outside the enum. */
const char *st_dtype_name(st_dtype t) {
    return (unsigned)t < (unsigned)ST_DTYPE_COUNT ? DTYPES[t].name : "?";
}

/* Bytes per element; 0 for a value outside the enum. */
size_t st_dtype_size(st_dtype t) {
    return (unsigned)t < (unsigned)ST_DTYPE_COUNT ? DTYPES[t].size : 0;
}

/* Exact, case-sensitive lookup of a format dtype name. Returns 0 and sets *out, or -1. */
static int st_dtype_lookup(const char *s, st_dtype *out) {
    for (int i = 0; i < ST_DTYPE_COUNT; i++) {
        if (strcmp(s, DTYPES[i].name) == 0) {
            *out = (st_dtype)i;
            return 0;
        }
    }
    return -1;
}

/* ---------------------------------------------------------------- messages */

/* Records "FILE: tensor 'NAME': MESSAGE", or "FILE: MESSAGE" when tensor is NULL; returns -1.
 * Long names are cut by folio_fail's buffer, never overrun it. */
static int st_fail(const char *file, const char *tensor, const char *fmt, ...)
    FOLIO_PRINTF(3, 4);
static int st_fail(const char *file, const char *tensor, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (tensor) return folio_fail("%s: tensor '%s': %s", file, tensor, msg);
    return folio_fail("%s: %s", file, msg);
}

/* Writes a short description of a JSON value into buf (for "found ..." in messages): the
 * number, the start of the string, or the kind of container. v == NULL means the key is absent.
 * Returns buf. */
static const char *json_describe(const json_t *v, char *buf, size_t n) {
    if (!v) {
        snprintf(buf, n, "nothing (key missing)");
        return buf;
    }
    switch (json_typeof(v)) {
    case JSON_INTEGER:
        snprintf(buf, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL: snprintf(buf, n, "the real number %g", json_real_value(v)); break;
    case JSON_STRING: {
        const char *s = json_string_value(v);
        snprintf(buf, n, "\"%.40s%s\"", s, strlen(s) > 40 ? "..." : "");
        break;
    }
    case JSON_ARRAY: snprintf(buf, n, "an array of %zu elements", json_array_size(v)); break;
    case JSON_OBJECT: snprintf(buf, n, "an object"); break;
    case JSON_TRUE: snprintf(buf, n, "true"); break;
    case JSON_FALSE: snprintf(buf, n, "false"); break;
    default: snprintf(buf, n, "null"); break;
    }
    return buf;
}

/* Formats a shape as "[d0, d1, ...]" into buf (large enough for ST_MAX_DIMS 64-bit dims). */
static const char *shape_string(const int64_t *shape, int ndim, char *buf, size_t n) {
    size_t used = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (used < n) snprintf(buf + used, n - used, "]");
    return buf;
}

/* ---------------------------------------------------------------- header: one entry */

/* Reads "dtype": must be a string naming a format dtype. */
static int entry_dtype(const json_t *v, const char *file, const char *name, st_dtype *out) {
    char found[96];
    if (!json_is_string(v))
        return st_fail(file, name, "dtype: expected a string such as \"F32\", found %s",
                       json_describe(v, found, sizeof found));
    if (st_dtype_lookup(json_string_value(v), out) != 0)
        return st_fail(file, name,
                       "dtype: expected a safetensors dtype (F32, F16, BF16, F64, I8..I64, "
                       "U8..U64, BOOL, F8_E4M3, F8_E5M2), found %s",
                       json_describe(v, found, sizeof found));
    return 0;
}

/* Reads "shape" into t->shape/t->ndim and its element count into *numel. Every dimension must
 * be a non-negative integer, at most ST_MAX_DIMS of them; [] is a scalar (1 element). A shape
 * with a zero dimension has 0 elements even if the others would overflow; otherwise a product
 * past 2^64 - 1 is an error. */
static int entry_shape(const json_t *v, const char *file, const char *name, st_tensor *t,
                       uint64_t *numel) {
    char found[96], shape[256];
    if (!json_is_array(v))
        return st_fail(file, name, "shape: expected an array of non-negative integers, found %s",
                       json_describe(v, found, sizeof found));
    size_t nd = json_array_size(v);
    if (nd > ST_MAX_DIMS)
        return st_fail(file, name, "shape: expected at most %d dimensions, found %zu",
                       ST_MAX_DIMS, nd);
    int has_zero = 0;
    for (size_t i = 0; i < nd; i++) {
        const json_t *d = json_array_get(v, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return st_fail(file, name, "shape[%zu]: expected a non-negative integer, found %s",
                           i, json_describe(d, found, sizeof found));
        t->shape[i] = (int64_t)json_integer_value(d);
        has_zero |= t->shape[i] == 0;
    }
    t->ndim = (int)nd;
    uint64_t n = 1;
    for (size_t i = 0; i < nd && !has_zero; i++) {
        uint64_t d = (uint64_t)t->shape[i];
        if (n > UINT64_MAX / d)
            return st_fail(file, name, "shape %s: element count does not fit in 64 bits",
                           shape_string(t->shape, t->ndim, shape, sizeof shape));
        n *= d;
    }
    *numel = has_zero ? 0 : n;
    return 0;
}

/* Reads "data_offsets": exactly two non-negative integers [begin, end] with begin <= end. */
static int entry_offsets(const json_t *v, const char *file, const char *name, uint64_t *begin,
                         uint64_t *end) {
    char found[96];
    if (!json_is_array(v) || json_array_size(v) != 2)
        return st_fail(file, name,
                       "data_offsets: expected an array of two integers [begin, end], found %s",
                       json_describe(v, found, sizeof found));
    uint64_t be[2];
    for (size_t i = 0; i < 2; i++) {
        const json_t *x = json_array_get(v, i);
        if (!json_is_integer(x) || json_integer_value(x) < 0)
            return st_fail(file, name, "data_offsets[%zu]: expected a non-negative integer, "
                           "found %s", i, json_describe(x, found, sizeof found));
        be[i] = (uint64_t)json_integer_value(x);
    }
    if (be[0] > be[1])
        return st_fail(file, name, "data_offsets: expected begin <= end, found [%" PRIu64
                       ", %" PRIu64 "]", be[0], be[1]);
    *begin = be[0];
    *end = be[1];
    return 0;
}

/* Validates one tensor entry against a data section of data_size bytes and fills *t (name
 * malloc'd, data and file NULL). On failure *t holds no allocation. */
static int entry_parse(const char *name, const json_t *v, const char *file, uint64_t data_size,
                       st_tensor *t) {
    char found[96], shape[256];
    memset(t, 0, sizeof *t);
    if (!json_is_object(v))
        return st_fail(file, name, "expected an object with dtype, shape and data_offsets, "
                       "found %s", json_describe(v, found, sizeof found));
    uint64_t numel = 0, begin = 0, end = 0;
    if (entry_dtype(json_object_get(v, "dtype"), file, name, &t->dtype) != 0 ||
        entry_shape(json_object_get(v, "shape"), file, name, t, &numel) != 0 ||
        entry_offsets(json_object_get(v, "data_offsets"), file, name, &begin, &end) != 0)
        return -1;
    if (end > data_size)
        return st_fail(file, name, "data_offsets end %" PRIu64 " is past the end of the data "
                       "section (%" PRIu64 " bytes): file truncated or header corrupt",
                       end, data_size);
    uint64_t esize = st_dtype_size(t->dtype);
    shape_string(t->shape, t->ndim, shape, sizeof shape);
    if (numel > UINT64_MAX / esize)
        return st_fail(file, name, "shape %s of %s: byte size does not fit in 64 bits", shape,
                       st_dtype_name(t->dtype));
    if (end - begin != numel * esize)
        return st_fail(file, name, "data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64
                       " bytes, expected %" PRIu64 " (shape %s of %s)", begin, end,
                       end - begin, numel * esize, shape, st_dtype_name(t->dtype));
    t->offset = begin;
    t->nbytes = end - begin;
    t->name = folio_xstrdup(name);
    return 0;
}

/* "__metadata__" is optional and ignored, but must be what the format says: string -> string. */
static int metadata_check(const json_t *v, const char *file) {
    char found[96];
    if (!json_is_object(v))
        return st_fail(file, NULL, "__metadata__: expected an object of strings, found %s",
                       json_describe(v, found, sizeof found));
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val) {
        if (!json_is_string(val))
            return st_fail(file, NULL, "__metadata__ key '%s': expected a string, found %s",
                           key, json_describe(val, found, sizeof found));
    }
    return 0;
}

/* ---------------------------------------------------------------- header: whole table */

/* Orders tensors by name (byte-wise strcmp, the order safetensors_find searches). */
static int cmp_name(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

/* Orders tensor pointers by data offset, ties by name (deterministic messages). */
static int cmp_offset(const void *a, const void *b) {
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Fails if two tensors share a byte of the data section, naming both. Empty tensors hold no
 * bytes and never overlap. Sorted by begin, each tensor must start at or after the end of the
 * one before it: until the first overlap the ranges are disjoint and ascending, so the previous
 * tensor is also the one reaching furthest. */
static int check_overlap(const st_tensor *t, int n, const char *file) {
    const st_tensor **by = folio_xmalloc((size_t)n * sizeof *by);
    int k = 0, rc = 0;
    for (int i = 0; i < n; i++)
        if (t[i].nbytes > 0) by[k++] = &t[i];
    qsort(by, (size_t)k, sizeof *by, cmp_offset);
    for (int i = 1; i < k && rc == 0; i++) {
        const st_tensor *a = by[i - 1], *b = by[i];
        if (b->offset < a->offset + a->nbytes)
            rc = st_fail(file, b->name, "data_offsets [%" PRIu64 ", %" PRIu64 "] overlap "
                         "tensor '%s' at [%" PRIu64 ", %" PRIu64 "]; expected disjoint ranges",
                         b->offset, b->offset + b->nbytes, a->name, a->offset,
                         a->offset + a->nbytes);
    }
    free(by);
    return rc;
}

/* Builds the tensor array from the header object: every key but __metadata__ is a tensor.
 * On failure frees what it built and leaves *out NULL. */
static int tensors_from_json(const json_t *root, const char *file, uint64_t data_size,
                             st_tensor **out, int *n_out) {
    size_t cap = json_object_size(root);
    if (cap > (size_t)INT_MAX) return st_fail(file, NULL, "header has too many entries");
    st_tensor *t = folio_xcalloc(cap, sizeof *t);
    int n = 0;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)root, key, val) {
        int is_meta = strcmp(key, "__metadata__") == 0;
        int rc = is_meta ? metadata_check(val, file)
                         : entry_parse(key, val, file, data_size, &t[n]);
        if (rc != 0) {
            safetensors_free_tensors(t, n);
            return -1;
        }
        n += !is_meta;
    }
    *out = t;
    *n_out = n;
    return 0;
}

/* Checks the 8-byte little-endian length field and returns the JSON length in *hlen: it must
 * fit the file (file_size - 8), the buffer (buf_len - 8) and ST_MAX_HEADER_BYTES. */
static int header_length(const uint8_t *buf, size_t buf_len, uint64_t file_size,
                         const char *file, uint64_t *hlen) {
    if (file_size < ST_LEN_FIELD)
        return st_fail(file, NULL, "file is %" PRIu64 " bytes, expected at least 8 (the header "
                       "length field); not a safetensors file", file_size);
    if (buf_len < ST_LEN_FIELD)
        return st_fail(file, NULL, "only %zu bytes of the file were given, expected at least 8",
                       buf_len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | buf[i];
    if (n > ST_MAX_HEADER_BYTES)
        return st_fail(file, NULL, "header length %" PRIu64 " exceeds the limit of %u bytes; "
                       "file corrupt or not safetensors", n, (unsigned)ST_MAX_HEADER_BYTES);
    if (n > file_size - ST_LEN_FIELD)
        return st_fail(file, NULL, "header length %" PRIu64 " is larger than the %" PRIu64
                       " bytes after the length field; file truncated or corrupt", n,
                       file_size - ST_LEN_FIELD);
    if (n > buf_len - ST_LEN_FIELD)
        return st_fail(file, NULL, "header length %" PRIu64 " but only %zu header bytes were "
                       "given", n, buf_len - ST_LEN_FIELD);
    *hlen = n;
    return 0;
}

/* safetensors_parse_header() plus the file offset where the data section begins. */
static int parse_header_at(const uint8_t *buf, size_t buf_len, uint64_t file_size,
                           const char *file, st_tensor **out, int *n_out, uint64_t *data_start) {
    *out = NULL;
    *n_out = 0;
    uint64_t hlen = 0;
    if (header_length(buf, buf_len, file_size, file, &hlen) != 0) return -1;
    json_error_t jerr;
    json_t *root = json_loadb((const char *)buf + ST_LEN_FIELD, (size_t)hlen,
                              JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return st_fail(file, NULL, "header is not valid JSON (line %d, column %d): %s",
                       jerr.line, jerr.column, jerr.text);
    char found[96];
    st_tensor *t = NULL;
    int n = 0, rc;
    if (!json_is_object(root))
        rc = st_fail(file, NULL, "header: expected a JSON object of tensors, found %s",
                     json_describe(root, found, sizeof found));
    else
        rc = tensors_from_json(root, file, file_size - ST_LEN_FIELD - hlen, &t, &n);
    json_decref(root);
    if (rc == 0 && check_overlap(t, n, file) != 0) {
        safetensors_free_tensors(t, n);
        rc = -1;
    }
    if (rc != 0) return -1;
    qsort(t, (size_t)n, sizeof *t, cmp_name);
    *out = t;
    *n_out = n;
    *data_start = ST_LEN_FIELD + hlen;
    return 0;
}

/* See safetensors.h. The returned tensors are sorted by name. */
int safetensors_parse_header(const uint8_t *buf, size_t buf_len, uint64_t file_size,
                             const char *filename, st_tensor **out, int *n_out) {
    uint64_t data_start = 0;
    return parse_header_at(buf, buf_len, file_size, filename, out, n_out, &data_start);
}

/* Frees the names and the array; NULL is fine. */
void safetensors_free_tensors(st_tensor *t, int n) {
    if (!t) return;
    for (int i = 0; i < n; i++) free(t[i].name);
    free(t);
}

/* ---------------------------------------------------------------- files */

/* Returns dir + "/" + name, malloc'd. */
static char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = folio_xmalloc(a + b + 2);
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

/* True when path exists (or cannot be checked for a reason other than absence, so that opening
 * it reports the real problem). */
static int path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 || errno != ENOENT;
}

/* Maps a whole regular file read-only (MAP_PRIVATE). A file under 8 bytes is an error naming
 * it. The file must not be truncated by someone else while mapped (reads would SIGBUS). */
static int map_file(const char *path, void **base, size_t *size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return st_fail(path, NULL, "cannot open: %s", strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0)
        rc = st_fail(path, NULL, "cannot stat: %s", strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = st_fail(path, NULL, "not a regular file");
    else if (st.st_size < (off_t)ST_LEN_FIELD)
        rc = st_fail(path, NULL, "file is %lld bytes, expected at least 8 (the header length "
                     "field); not a safetensors file", (long long)st.st_size);
    else if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX)
        rc = st_fail(path, NULL, "file of %lld bytes does not fit the address space",
                     (long long)st.st_size);
    if (rc == 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            rc = st_fail(path, NULL, "mmap of %lld bytes failed: %s", (long long)st.st_size,
                         strerror(errno));
        } else {
            *base = p;
            *size = (size_t)st.st_size;
        }
    }
    close(fd);
    return rc;
}

/* Maps file i of m (its path already in m->files[i]), validates its header and appends its
 * tensors, with data pointers into the mapping, to m->tensors. */
static int model_load_file(safetensors_model *m, int i) {
    const char *path = m->files[i];
    if (map_file(path, &m->maps[i], &m->map_sizes[i]) != 0) return -1;
    st_tensor *t;
    int n;
    uint64_t data_start = 0;
    if (parse_header_at(m->maps[i], m->map_sizes[i], m->map_sizes[i], path, &t, &n,
                        &data_start) != 0)
        return -1;
    if (n > INT_MAX - m->n_tensors) {
        safetensors_free_tensors(t, n);
        return st_fail(path, NULL, "too many tensors in the model");
    }
    st_tensor *all = realloc(m->tensors, ((size_t)m->n_tensors + (size_t)n + 1) * sizeof *all);
    if (!all) {
        safetensors_free_tensors(t, n);
        return st_fail(path, NULL, "out of memory for the tensor table");
    }
    m->tensors = all;
    for (int k = 0; k < n; k++) {
        t[k].data = (const uint8_t *)m->maps[i] + data_start + t[k].offset;
        t[k].file = path;
        m->total_bytes += t[k].nbytes;
        all[m->n_tensors++] = t[k]; /* the name moves to the model */
    }
    free(t);
    return 0;
}

/* Opens dir/names[0..n) into m (files, maps, tensors), in that order. On failure m holds what
 * was opened so far; safetensors_close() releases it. */
static int model_load_files(safetensors_model *m, const char *dir, const char *const *names,
                            int n) {
    m->files = folio_xcalloc((size_t)n, sizeof *m->files);
    m->maps = folio_xcalloc((size_t)n, sizeof *m->maps);
    m->map_sizes = folio_xcalloc((size_t)n, sizeof *m->map_sizes);
    m->n_files = n;
    for (int i = 0; i < n; i++) {
        m->files[i] = path_join(dir, names[i]);
        if (model_load_file(m, i) != 0) return -1;
    }
    return 0;
}

/* Sorts the table by name and fails on a name present in two files, naming both. */
static int model_finish(safetensors_model *m) {
    if (m->n_tensors > 1) qsort(m->tensors, (size_t)m->n_tensors, sizeof *m->tensors, cmp_name);
    for (int i = 1; i < m->n_tensors; i++) {
        const st_tensor *a = &m->tensors[i - 1], *b = &m->tensors[i];
        if (strcmp(a->name, b->name) == 0)
            return folio_fail("tensor '%s' is in both %s and %s; expected each tensor in "
                              "exactly one file", a->name, a->file, b->file);
    }
    return 0;
}

/* Orders an array of C strings (file names) byte-wise. */
static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A shard named by an index must be a plain file name inside the model directory. */
static int shard_name_ok(const char *s) {
    return s[0] != '\0' && strchr(s, '/') == NULL && strstr(s, "..") == NULL;
}

/* Checks the index's weight_map against the opened files: every name must be in the file it
 * points to. */
static int index_check_names(const safetensors_model *m, const char *dir, const char *index,
                             const json_t *wm) {
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)wm, key, val) {
        char *want = path_join(dir, json_string_value(val));
        const st_tensor *t = safetensors_find(m, key);
        int ok = t && strcmp(t->file, want) == 0;
        if (!ok) {
            if (t)
                st_fail(index, key, "weight_map points to %s, which does not contain it "
                        "(found in %s)", want, t->file);
            else
                st_fail(index, key, "weight_map points to %s, which does not contain it", want);
        }
        free(want);
        if (!ok) return -1;
    }
    return 0;
}

/* Collects the distinct shard file names of weight_map (validated) into a sorted, malloc'd
 * array of pointers into the JSON (*names) with *n entries. */
static int index_shard_names(const json_t *wm, const char *index, const char ***names, int *n) {
    char found[96];
    size_t cap = json_object_size(wm);
    if (cap == 0) return st_fail(index, NULL, "weight_map is empty; expected tensor -> file");
    if (cap > (size_t)INT_MAX) return st_fail(index, NULL, "weight_map has too many entries");
    const char **v = folio_xmalloc(cap * sizeof *v);
    int k = 0;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)wm, key, val) {
        if (!json_is_string(val) || !shard_name_ok(json_string_value(val))) {
            free(v);
            return st_fail(index, key, "weight_map: expected a file name in the model "
                           "directory (no '/' or '..'), found %s",
                           json_describe(val, found, sizeof found));
        }
        v[k++] = json_string_value(val);
    }
    qsort(v, (size_t)k, sizeof *v, cmp_str);
    int u = 0;
    for (int i = 0; i < k; i++)
        if (u == 0 || strcmp(v[u - 1], v[i]) != 0) v[u++] = v[i];
    *names = v;
    *n = u;
    return 0;
}

/* Opens a sharded model through its model.safetensors.index.json: each distinct file of the
 * weight_map once, sorted by name. A shard may hold tensors the map does not list (they are
 * kept); every listed name must be in its file. */
static int open_indexed(const char *dir, const char *index, safetensors_model *m) {
    char found[96];
    json_error_t jerr;
    json_t *root = json_load_file(index, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return st_fail(index, NULL, "cannot read the index as JSON (line %d, column %d): %s",
                       jerr.line, jerr.column, jerr.text);
    const json_t *wm = json_object_get(root, "weight_map");
    const char **names = NULL;
    int n = 0, rc;
    if (!json_is_object(wm))
        rc = st_fail(index, NULL, "expected a \"weight_map\" object of tensor -> file, found %s",
                     json_describe(wm, found, sizeof found));
    else
        rc = index_shard_names(wm, index, &names, &n);
    if (rc == 0 && model_load_files(m, dir, names, n) != 0)
        rc = folio_fail_context("shard listed in %s", index);
    if (rc == 0) rc = model_finish(m);
    if (rc == 0) rc = index_check_names(m, dir, index, wm);
    free(names);
    json_decref(root);
    return rc;
}

/* True for a visible file name ending in ".safetensors" (what the shell's *.safetensors
 * matches). */
static int is_safetensors_name(const char *s) {
    size_t n = strlen(s), k = strlen(ST_SUFFIX);
    return s[0] != '.' && n > k && strcmp(s + n - k, ST_SUFFIX) == 0;
}

/* Opens every *.safetensors file of dir, in sorted order. No such file is an error saying
 * where and what was looked for. */
static int open_glob(const char *dir, safetensors_model *m) {
    DIR *d = opendir(dir);
    if (!d) return folio_fail("model directory '%s': cannot open: %s", dir, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0, rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!is_safetensors_name(e->d_name)) continue;
        FOLIO_GROW(names, cap, n + 1);
        names[n++] = folio_xstrdup(e->d_name);
    }
    closedir(d);
    if (rc == 0 && n == 0)
        rc = folio_fail("model directory '%s': no weights found; looked for %s, %s and "
                        "*%s", dir, ST_INDEX_NAME, ST_SINGLE_NAME, ST_SUFFIX);
    if (rc == 0) {
        qsort(names, (size_t)n, sizeof *names, cmp_str);
        rc = model_load_files(m, dir, (const char *const *)names, n);
    }
    if (rc == 0) rc = model_finish(m);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

/* See safetensors.h. On failure *m is left zeroed with nothing to release. */
int safetensors_open_dir(const char *dir, safetensors_model *m) {
    safetensors_model tmp;
    memset(&tmp, 0, sizeof tmp);
    memset(m, 0, sizeof *m);
    char *index = path_join(dir, ST_INDEX_NAME), *single = path_join(dir, ST_SINGLE_NAME);
    int rc;
    if (path_exists(index)) {
        rc = open_indexed(dir, index, &tmp);
    } else if (path_exists(single)) {
        const char *one[1] = {ST_SINGLE_NAME};
        rc = model_load_files(&tmp, dir, one, 1);
        if (rc == 0) rc = model_finish(&tmp);
    } else {
        rc = open_glob(dir, &tmp);
    }
    free(index);
    free(single);
    if (rc != 0) {
        safetensors_close(&tmp);
        return -1;
    }
    *m = tmp;
    return 0;
}

/* bsearch comparator: a name against a tensor. */
static int cmp_key_name(const void *key, const void *elem) {
    return strcmp((const char *)key, ((const st_tensor *)elem)->name);
}

/* Binary search of the name-sorted table; NULL when absent or m is empty. */
const st_tensor *safetensors_find(const safetensors_model *m, const char *name) {
    if (!m || !name || m->n_tensors <= 0) return NULL;
    return bsearch(name, m->tensors, (size_t)m->n_tensors, sizeof *m->tensors, cmp_key_name);
}

/* Unmaps and frees everything and zeroes *m. Safe on a zeroed struct and twice in a row. */
void safetensors_close(safetensors_model *m) {
    if (!m) return;
    safetensors_free_tensors(m->tensors, m->n_tensors);
    for (int i = 0; i < m->n_files; i++) {
        if (m->maps && m->maps[i] && m->map_sizes[i]) munmap(m->maps[i], m->map_sizes[i]);
        if (m->files) free(m->files[i]);
    }
    free(m->files);
    free(m->maps);
    free(m->map_sizes);
    memset(m, 0, sizeof *m);
}
