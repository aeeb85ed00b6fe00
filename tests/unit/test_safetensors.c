/* Tests of the safetensors reader: good files (f32/f16/bf16 values read through the mapping,
 * padded headers, __metadata__, a sharded directory with an index, the *.safetensors fallback)
 * and every validation error, each checked for -1 and a message naming the file and tensor.
 * Files are written from C into a fresh directory under /tmp and removed afterwards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dtype.h"
#include "error.h"
#include "safetensors.h"

static char g_root[64];  /* the temp directory of this run */
static int g_dir_count;  /* numbering of per-test subdirectories */

/* ---------------------------------------------------------------- helpers */

/* Makes a fresh empty subdirectory of the run's temp dir and returns its path (static buffer
 * per call slot: valid until 8 more calls). */
static const char *new_dir(void) {
    static char bufs[8][128];
    char *p = bufs[g_dir_count % 8];
    snprintf(p, sizeof bufs[0], "%s/d%d", g_root, g_dir_count++);
    assert_int_equal(mkdir(p, 0755), 0);
    return p;
}

/* Writes raw bytes to dir/name. */
static void write_raw(const char *dir, const char *name, const void *bytes, size_t n) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(bytes, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Builds a safetensors image in memory: u64 LE length of json (plus `pad` spaces), the JSON,
 * the spaces, then `data`. Returns a malloc'd buffer and its size in *size. */
static uint8_t *make_image(const char *json, size_t pad, const void *data, size_t data_len,
                           size_t *size) {
    size_t jl = strlen(json), hl = jl + pad;
    *size = 8 + hl + data_len;
    uint8_t *b = malloc(*size);
    assert_non_null(b);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, json, jl);
    memset(b + 8 + jl, ' ', pad);
    if (data_len) memcpy(b + 8 + hl, data, data_len);
    return b;
}

/* Writes a safetensors file dir/name (see make_image). */
static void write_st(const char *dir, const char *name, const char *json, size_t pad,
                     const void *data, size_t data_len) {
    size_t n;
    uint8_t *b = make_image(json, pad, data, data_len, &n);
    write_raw(dir, name, b, n);
    free(b);
}

/* Asserts that the recorded error contains every one of the given substrings (NULL ends). */
static void assert_error_has(const char *first, ...) {
    const char *msg = folio_last_error();
    va_list ap;
    va_start(ap, first);
    for (const char *s = first; s; s = va_arg(ap, const char *)) {
        if (!strstr(msg, s)) {
            print_error("error message \"%s\" lacks \"%s\"\n", msg, s);
            va_end(ap);
            fail();
        }
    }
    va_end(ap);
}

/* Parses an in-memory image of json + data_len zero bytes named "mem.safetensors"; expects
 * failure and a message containing each substring (NULL ends). The zeroed-struct promise on
 * failure is checked too. */
static void expect_parse_error(const char *json, size_t data_len, ...) {
    uint8_t *zeros = calloc(1, data_len + 1);
    size_t n;
    uint8_t *b = make_image(json, 0, zeros, data_len, &n);
    st_tensor *t = (st_tensor *)1;
    int nt = 7;
    folio_clear_error();
    assert_int_equal(safetensors_parse_header(b, n, n, "mem.safetensors", &t, &nt), -1);
    assert_null(t);
    assert_int_equal(nt, 0);
    const char *msg = folio_last_error();
    va_list ap;
    va_start(ap, data_len);
    for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *)) {
        if (!strstr(msg, s)) {
            print_error("json %s\nerror message \"%s\" lacks \"%s\"\n", json, msg, s);
            va_end(ap);
            fail();
        }
    }
    va_end(ap);
    free(b);
    free(zeros);
}

/* Opens dir expecting failure; checks *m is left zeroed and close is still safe. */
static void expect_open_error(const char *dir) {
    safetensors_model m;
    memset(&m, 0xab, sizeof m);
    folio_clear_error();
    assert_int_equal(safetensors_open_dir(dir, &m), -1);
    assert_null(m.tensors);
    assert_null(m.files);
    assert_int_equal(m.n_tensors, 0);
    assert_int_equal(m.n_files, 0);
    safetensors_close(&m);
    assert_true(folio_last_error()[0] != '\0');
}

/* ---------------------------------------------------------------- good files */

/* The data section shared by the good-file tests: f32 [2,3] = 0..5 at [0,24), f16 [4] =
 * {1, -2, 0.5, 65504} at [24,32), bf16 [2,2] = {1, -1, 3, 0.25} at [32,40). */
static void good_data(uint8_t data[40]) {
    for (int i = 0; i < 6; i++) {
        float f = (float)i;
        memcpy(data + 4 * i, &f, 4);
    }
    const float h[4] = {1.0f, -2.0f, 0.5f, 65504.0f}, bf[4] = {1.0f, -1.0f, 3.0f, 0.25f};
    for (int i = 0; i < 4; i++) {
        uint16_t a = f32_to_f16(h[i]), b = f32_to_bf16(bf[i]);
        memcpy(data + 24 + 2 * i, &a, 2);
        memcpy(data + 32 + 2 * i, &b, 2);
    }
}

static const char GOOD_JSON[] =
    "{\"w.f32\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
    "\"b.bf16\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[32,40]},"
    "\"a.f16\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[24,32]}}";

/* Checks the three tensors of GOOD_JSON in m: sorted names, shapes, pointers, values. */
static void check_good_model(const safetensors_model *m, size_t header_len) {
    assert_int_equal(m->n_tensors, 3);
    assert_int_equal(m->n_files, 1);
    assert_string_equal(m->tensors[0].name, "a.f16");
    assert_string_equal(m->tensors[1].name, "b.bf16");
    assert_string_equal(m->tensors[2].name, "w.f32");
    assert_int_equal(m->total_bytes, 40);
    const uint8_t *base = (const uint8_t *)m->maps[0] + 8 + header_len;

    const st_tensor *w = safetensors_find(m, "w.f32");
    assert_non_null(w);
    assert_int_equal(w->dtype, ST_F32);
    assert_int_equal(w->ndim, 2);
    assert_int_equal(w->shape[0], 2);
    assert_int_equal(w->shape[1], 3);
    assert_int_equal(w->offset, 0);
    assert_int_equal(w->nbytes, 24);
    assert_ptr_equal(w->data, base);
    assert_ptr_equal(w->file, m->files[0]);
    for (int i = 0; i < 6; i++) {
        float f;
        memcpy(&f, (const uint8_t *)w->data + 4 * i, 4);
        assert_true(f == (float)i);
    }

    const st_tensor *h = safetensors_find(m, "a.f16");
    assert_non_null(h);
    assert_int_equal(h->dtype, ST_F16);
    assert_ptr_equal(h->data, base + 24);
    const float hv[4] = {1.0f, -2.0f, 0.5f, 65504.0f};
    for (int i = 0; i < 4; i++) {
        uint16_t u;
        memcpy(&u, (const uint8_t *)h->data + 2 * i, 2);
        assert_true(f16_to_f32(u) == hv[i]);
    }

    const st_tensor *b = safetensors_find(m, "b.bf16");
    assert_non_null(b);
    assert_int_equal(b->dtype, ST_BF16);
    assert_int_equal(b->nbytes, 8);
    assert_ptr_equal(b->data, base + 32);
    const float bv[4] = {1.0f, -1.0f, 3.0f, 0.25f};
    for (int i = 0; i < 4; i++) {
        uint16_t u;
        memcpy(&u, (const uint8_t *)b->data + 2 * i, 2);
        assert_true(bf16_to_f32(u) == bv[i]);
    }
    assert_null(safetensors_find(m, "missing"));
    assert_null(safetensors_find(m, "a"));
}

static void test_good_single_file(void **state) {
    (void)state;
    const char *dir = new_dir();
    uint8_t data[40];
    good_data(data);
    write_st(dir, "model.safetensors", GOOD_JSON, 0, data, sizeof data);
    write_st(dir, "other.safetensors", "{}", 0, NULL, 0); /* ignored: model.safetensors wins */
    safetensors_model m;
    assert_int_equal(safetensors_open_dir(dir, &m), 0);
    check_good_model(&m, strlen(GOOD_JSON));
    assert_non_null(strstr(m.files[0], "/model.safetensors"));
    safetensors_close(&m);
    assert_null(m.tensors);
    safetensors_close(&m); /* twice is fine */
}

static void test_header_padding(void **state) {
    (void)state;
    const char *dir = new_dir();
    uint8_t data[40];
    good_data(data);
    size_t jl = strlen(GOOD_JSON), pad = 8 - (8 + jl) % 8 + 16; /* 8-aligned data + spaces */
    write_st(dir, "model.safetensors", GOOD_JSON, pad, data, sizeof data);
    safetensors_model m;
    assert_int_equal(safetensors_open_dir(dir, &m), 0);
    check_good_model(&m, jl + pad);
    assert_int_equal((uintptr_t)m.tensors[0].data % 8, 0);
    safetensors_close(&m);
}

static void test_metadata_ignored(void **state) {
    (void)state;
    const char *dir = new_dir();
    char json[1024];
    snprintf(json, sizeof json, "{\"__metadata__\":{\"format\":\"pt\",\"x\":\"y\"},%s",
             GOOD_JSON + 1);
    uint8_t data[40];
    good_data(data);
    write_st(dir, "model.safetensors", json, 3, data, sizeof data);
    safetensors_model m;
    assert_int_equal(safetensors_open_dir(dir, &m), 0);
    check_good_model(&m, strlen(json) + 3);
    assert_null(safetensors_find(&m, "__metadata__"));
    safetensors_close(&m);
}

/* parse_header on its own: names sorted, data NULL, scalars, empty tensors, gaps allowed. */
static void test_parse_header_direct(void **state) {
    (void)state;
    const char *json = "{\"s\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[8,16]},"
                       "\"e\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[4,4]},"
                       "\"z\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,8,0],"
                       "\"data_offsets\":[8,8]},"
                       "\"u\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,2],"
                       "\"data_offsets\":[0,2]},"
                       "\"v\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[16,18],"
                       "\"extra\":1}}";
    uint8_t zeros[20] = {0};
    size_t n;
    uint8_t *b = make_image(json, 0, zeros, sizeof zeros, &n);
    st_tensor *t;
    int nt;
    assert_int_equal(safetensors_parse_header(b, n, n, "mem", &t, &nt), 0);
    assert_int_equal(nt, 5);
    const char *order[5] = {"e", "s", "u", "v", "z"};
    for (int i = 0; i < 5; i++) {
        assert_string_equal(t[i].name, order[i]);
        assert_null(t[i].data);
    }
    assert_int_equal(t[1].ndim, 0);
    assert_int_equal(t[1].nbytes, 8);
    assert_int_equal(t[2].ndim, 8);
    assert_int_equal(t[4].nbytes, 0);
    assert_int_equal(t[4].shape[0], 4611686018427387904LL); /* overflow before the 0 */
    safetensors_free_tensors(t, nt);
    free(b);
    assert_string_equal(st_dtype_name(ST_BF16), "BF16");
    assert_int_equal(st_dtype_size(ST_F64), 8);
    assert_int_equal(st_dtype_size(ST_F8_E5M2), 1);
}

/* Two shards and an index; a stray *.safetensors beside them must be ignored. */
static void test_sharded_index(void **state) {
    (void)state;
    const char *dir = new_dir();
    float a[4] = {1, 2, 3, 4}, b[2] = {5, 6};
    write_st(dir, "model-00001-of-00002.safetensors",
             "{\"layers.0.w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 0,
             a, sizeof a);
    write_st(dir, "model-00002-of-00002.safetensors",
             "{\"__metadata__\":{\"format\":\"pt\"},"
             "\"lm_head\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"layers.1.w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]}}",
             5, b, sizeof b);
    write_st(dir, "stray.safetensors", "not json", 0, NULL, 0);
    const char *index = "{\"metadata\":{\"total_size\":24},\"weight_map\":{"
                        "\"layers.0.w\":\"model-00001-of-00002.safetensors\","
                        "\"layers.1.w\":\"model-00002-of-00002.safetensors\","
                        "\"lm_head\":\"model-00002-of-00002.safetensors\"}}";
    write_raw(dir, "model.safetensors.index.json", index, strlen(index));
    safetensors_model m;
    assert_int_equal(safetensors_open_dir(dir, &m), 0);
    assert_int_equal(m.n_files, 2);
    assert_int_equal(m.n_tensors, 3);
    assert_int_equal(m.total_bytes, 24);
    assert_non_null(strstr(m.files[0], "model-00001-of-00002.safetensors"));
    assert_non_null(strstr(m.files[1], "model-00002-of-00002.safetensors"));
    const st_tensor *w = safetensors_find(&m, "layers.0.w"), *h = safetensors_find(&m, "lm_head");
    assert_non_null(w);
    assert_non_null(h);
    assert_ptr_equal(w->file, m.files[0]);
    assert_ptr_equal(h->file, m.files[1]);
    float x;
    memcpy(&x, (const uint8_t *)w->data + 12, 4);
    assert_true(x == 4.0f);
    memcpy(&x, (const uint8_t *)h->data + 4, 4);
    assert_true(x == 6.0f);
    assert_non_null(safetensors_find(&m, "layers.1.w"));
    safetensors_close(&m);
}

/* No index and no model.safetensors: every visible *.safetensors, sorted; the merged table is
 * sorted by name across files ("zz" of a.safetensors after "y" of b.safetensors). */
static void test_glob_fallback(void **state) {
    (void)state;
    const char *dir = new_dir();
    uint8_t four[4] = {1, 2, 3, 4};
    write_st(dir, "b.safetensors", "{\"y\":{\"dtype\":\"U8\",\"shape\":[4],"
             "\"data_offsets\":[0,4]}}", 0, four, 4);
    write_st(dir, "a.safetensors", "{\"zz\":{\"dtype\":\"I8\",\"shape\":[2],"
             "\"data_offsets\":[2,4]}}", 0, four, 4);
    write_st(dir, ".hidden.safetensors", "garbage", 0, NULL, 0);
    write_raw(dir, "notes.txt", "hello", 5);
    safetensors_model m;
    assert_int_equal(safetensors_open_dir(dir, &m), 0);
    assert_int_equal(m.n_files, 2);
    assert_non_null(strstr(m.files[0], "/a.safetensors"));
    assert_non_null(strstr(m.files[1], "/b.safetensors"));
    assert_string_equal(m.tensors[0].name, "y");
    assert_string_equal(m.tensors[1].name, "zz");
    assert_non_null(safetensors_find(&m, "y"));
    const st_tensor *x = safetensors_find(&m, "zz");
    assert_non_null(x);
    assert_int_equal(((const uint8_t *)x->data)[0], 3);
    assert_ptr_equal(x->file, m.files[0]);
    safetensors_close(&m);
}

static void test_close_zeroed(void **state) {
    (void)state;
    safetensors_model m;
    memset(&m, 0, sizeof m);
    safetensors_close(&m);
    safetensors_close(NULL);
    assert_null(safetensors_find(&m, "x"));
}

/* ---------------------------------------------------------------- header errors */

static void test_error_header_length(void **state) {
    (void)state;
    /* Length field larger than the file. */
    const char *dir = new_dir();
    uint8_t b[16] = {200, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    write_raw(dir, "big.safetensors", b, sizeof b);
    expect_open_error(dir);
    assert_error_has("big.safetensors", "header length 200", "8 bytes after", NULL);

    /* Length field over ST_MAX_HEADER_BYTES, even when the file claims to be huge. */
    uint8_t h[16] = {0, 0, 0, 0x40, 0, 0, 0, 0};
    st_tensor *t;
    int n;
    assert_int_equal(safetensors_parse_header(h, sizeof h, 1ull << 40, "huge.st", &t, &n), -1);
    assert_error_has("huge.st", "1073741824", "limit", NULL);
    /* Length field with the top bit set. */
    memset(h, 0xff, 8);
    assert_int_equal(safetensors_parse_header(h, sizeof h, sizeof h, "ff.st", &t, &n), -1);
    assert_error_has("ff.st", "18446744073709551615", NULL);
    /* Buffer one byte shorter than the header it announces (the file is long enough). */
    uint8_t s[12] = {5, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' '};
    assert_int_equal(safetensors_parse_header(s, sizeof s, 4096, "short.st", &t, &n), -1);
    assert_error_has("short.st", "header length 5", "only 4", NULL);
    /* File one byte shorter than the header it announces; exactly long enough is fine. */
    s[0] = 5;
    assert_int_equal(safetensors_parse_header(s, sizeof s, sizeof s, "one.st", &t, &n), -1);
    assert_error_has("one.st", "header length 5 is larger than the 4 bytes", NULL);
    s[0] = 4;
    assert_int_equal(safetensors_parse_header(s, sizeof s, sizeof s, "one.st", &t, &n), 0);
    assert_int_equal(n, 0);
    safetensors_free_tensors(t, n);
    /* Fewer than 8 bytes given of a longer file. */
    assert_int_equal(safetensors_parse_header(s, 4, 4096, "part.st", &t, &n), -1);
    assert_error_has("part.st", "only 4 bytes", "at least 8", NULL);
    /* Fewer than 8 bytes in all. */
    assert_int_equal(safetensors_parse_header(s, 7, 7, "tiny.st", &t, &n), -1);
    assert_error_has("tiny.st", "file is 7 bytes", "at least 8", NULL);
}

static void test_error_file_too_short(void **state) {
    (void)state;
    const char *dir = new_dir();
    write_raw(dir, "model.safetensors", "\x02\0\0\0", 4);
    expect_open_error(dir);
    assert_error_has("model.safetensors", "4 bytes", "at least 8", NULL);
    const char *empty = new_dir();
    write_raw(empty, "model.safetensors", "", 0);
    expect_open_error(empty);
    assert_error_has("model.safetensors", "file is 0 bytes", NULL); /* before mmap(0) */
}

static void test_error_json(void **state) {
    (void)state;
    expect_parse_error("{\"w\":{\"dtype\":\"F32\"", 0, "mem.safetensors", "not valid JSON",
                       NULL);
    expect_parse_error("[1,2]", 0, "mem.safetensors", "expected a JSON object",
                       "array of 2", NULL);
    expect_parse_error("", 0, "mem.safetensors", "not valid JSON", NULL);
    expect_parse_error("{\"w\":{},\"w\":{}}", 0, "mem.safetensors", "duplicate", NULL);
    expect_parse_error("{\"w\":[1]}", 0, "mem.safetensors", "'w'", "expected an object",
                       NULL);
    expect_parse_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":"
                       "[0,18446744073709551615]}}", 4, "mem.safetensors", "not valid JSON",
                       NULL);
    expect_parse_error("{\"__metadata__\":[\"x\"]}", 0, "mem.safetensors", "__metadata__",
                       "expected an object", NULL);
    expect_parse_error("{\"__metadata__\":{\"k\":1}}", 0, "mem.safetensors", "'k'",
                       "expected a string", NULL);
}

static void test_error_dtype(void **state) {
    (void)state;
    expect_parse_error("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "mem.safetensors",
                       "'w'", "dtype", "key missing", NULL);
    expect_parse_error("{\"w\":{\"dtype\":\"Q4_K\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                       "mem.safetensors", "'w'", "dtype", "\"Q4_K\"", NULL);
    expect_parse_error("{\"w\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                       "'w'", "\"f32\"", NULL);
    expect_parse_error("{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                       "'w'", "dtype", "found 4", NULL);
}

static void test_error_shape(void **state) {
    (void)state;
    expect_parse_error("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4,
                       "mem.safetensors", "'w'", "shape", "key missing", NULL);
    expect_parse_error("{\"w\":{\"dtype\":\"F32\",\"shape\":\"2x2\",\"data_offsets\":[0,4]}}", 4,
                       "mem.safetensors", "'w'", "shape", "\"2x2\"", NULL);
    expect_parse_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,4]}}", 4,
                       "mem.safetensors", "'w'", "shape[1]", "non-negative", "-1", NULL);
    expect_parse_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4,
                       "'w'", "shape[0]", "real number 1.5", NULL);
    expect_parse_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
                       "\"data_offsets\":[0,4]}}", 4,
                       "mem.safetensors", "'w'", "at most 8", "found 9", NULL);
    /* Element count past 2^64 and byte count past 2^64. */
    expect_parse_error("{\"w\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],"
                       "\"data_offsets\":[0,4]}}", 4,
                       "mem.safetensors", "'w'", "[4294967296, 4294967296]", "64 bits", NULL);
    expect_parse_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,2],"
                       "\"data_offsets\":[0,0]}}", 4, "mem.safetensors", "'w'", "64 bits",
                       NULL);
    /* 2^62 elements of 4 bytes wrap to 0: must not be taken as a 0-byte tensor. */
    expect_parse_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],"
                       "\"data_offsets\":[0,0]}}", 4, "mem.safetensors", "'w'", "64 bits",
                       NULL);
}

static void test_error_offsets(void **state) {
    (void)state;
    expect_parse_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "mem.safetensors", "'w'",
                       "data_offsets", "key missing", NULL);
    expect_parse_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8,
                       "mem.safetensors", "'w'", "two integers", "array of 3", NULL);
    expect_parse_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 8,
                       "mem.safetensors", "'w'", "data_offsets[0]", "-4", NULL);
    expect_parse_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,\"4\"]}}", 8,
                       "mem.safetensors", "'w'", "data_offsets[1]", "\"4\"", NULL);
    expect_parse_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8,
                       "mem.safetensors", "'w'", "begin <= end", "[8, 4]", NULL);
    expect_parse_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8,
                       "mem.safetensors", "'w'", "hold 4 bytes", "expected 8", "[2]", "F32",
                       NULL);
    expect_parse_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8,
                       "mem.safetensors", "'w'", "hold 8 bytes", "expected 4", NULL);
    expect_parse_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1,9]}}", 8,
                       "mem.safetensors", "'w'", "end 9", "past the end", "8 bytes", NULL);
    expect_parse_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 8,
                       "mem.safetensors", "'w'", "end 12", "past the end", "8 bytes", NULL);
    expect_parse_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],"
                       "\"data_offsets\":[9223372036854775807,9223372036854775807]}}", 8,
                       "'w'", "past the end", NULL);
}

static void test_error_overlap(void **state) {
    (void)state;
    expect_parse_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                       "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", 24,
                       "mem.safetensors", "'b'", "'a'", "overlap", NULL);
    /* b lies inside a long tensor a; c after b but still inside a. */
    expect_parse_error("{\"a\":{\"dtype\":\"U8\",\"shape\":[100],\"data_offsets\":[0,100]},"
                       "\"b\":{\"dtype\":\"U8\",\"shape\":[10],\"data_offsets\":[0,10]},"
                       "\"c\":{\"dtype\":\"U8\",\"shape\":[10],\"data_offsets\":[50,60]}}", 100,
                       "mem.safetensors", "overlap", NULL);
    expect_parse_error("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                       "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4,
                       "mem.safetensors", "'b'", "'a'", "overlap", NULL);
    /* One shared byte is enough. */
    expect_parse_error("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                       "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[3,7]}}", 8,
                       "mem.safetensors", "'b'", "[3, 7]", "'a'", "[0, 4]", NULL);
    /* Adjacent and empty tensors are fine. */
    const char *ok = "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                     "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]},"
                     "\"c\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[2,2]}}";
    uint8_t zeros[8] = {0};
    size_t n;
    uint8_t *b = make_image(ok, 0, zeros, 8, &n);
    st_tensor *t;
    int nt;
    assert_int_equal(safetensors_parse_header(b, n, n, "ok", &t, &nt), 0);
    assert_int_equal(nt, 3);
    safetensors_free_tensors(t, nt);
    free(b);
}

/* A file cut short after its header: the tensor's data_offsets run past the end. */
static void test_error_truncated_file(void **state) {
    (void)state;
    const char *dir = new_dir();
    float v[3] = {1, 2, 3};
    write_st(dir, "model.safetensors",
             "{\"embed\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 0, v,
             sizeof v);
    expect_open_error(dir);
    assert_error_has("model.safetensors", "'embed'", "past the end", "12 bytes", "truncated",
                     NULL);
}

/* ---------------------------------------------------------------- directory errors */

static void test_error_no_files(void **state) {
    (void)state;
    const char *dir = new_dir();
    write_raw(dir, "config.json", "{}", 2);
    expect_open_error(dir);
    assert_error_has(dir, "model.safetensors.index.json", "model.safetensors", "*.safetensors",
                     NULL);
    char missing[256];
    snprintf(missing, sizeof missing, "%s/does-not-exist", g_root);
    expect_open_error(missing);
    assert_error_has("does-not-exist", NULL);
}

static void test_error_duplicate_across_files(void **state) {
    (void)state;
    const char *dir = new_dir();
    uint8_t four[4] = {0};
    write_st(dir, "part1.safetensors", "{\"dup.w\":{\"dtype\":\"U8\",\"shape\":[4],"
             "\"data_offsets\":[0,4]}}", 0, four, 4);
    write_st(dir, "part2.safetensors", "{\"x\":{\"dtype\":\"U8\",\"shape\":[2],"
             "\"data_offsets\":[0,2]},\"dup.w\":{\"dtype\":\"U8\",\"shape\":[2],"
             "\"data_offsets\":[2,4]}}", 0, four, 4);
    expect_open_error(dir);
    assert_error_has("'dup.w'", "part1.safetensors", "part2.safetensors", NULL);
}

/* A bad header in the second of several files: names that file; the first is released. */
static void test_error_second_file(void **state) {
    (void)state;
    const char *dir = new_dir();
    uint8_t four[4] = {0};
    write_st(dir, "a.safetensors", "{\"x\":{\"dtype\":\"U8\",\"shape\":[4],"
             "\"data_offsets\":[0,4]}}", 0, four, 4);
    write_st(dir, "b.safetensors", "{\"y\":{\"dtype\":\"U8\",\"shape\":[5],"
             "\"data_offsets\":[0,4]}}", 0, four, 4);
    expect_open_error(dir);
    assert_error_has("b.safetensors", "'y'", "expected 5", NULL);
}

/* Writes an index whose weight_map is the given JSON object text. */
static void write_index(const char *dir, const char *weight_map) {
    char json[1024];
    snprintf(json, sizeof json, "{\"metadata\":{},\"weight_map\":%s}", weight_map);
    write_raw(dir, "model.safetensors.index.json", json, strlen(json));
}

static void test_error_index(void **state) {
    (void)state;
    uint8_t four[4] = {0};
    const char *shard = "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}";

    /* A name the index maps to a file that does not contain it. */
    const char *d1 = new_dir();
    write_st(d1, "s1.safetensors", shard, 0, four, 4);
    write_st(d1, "s2.safetensors", "{\"b\":{\"dtype\":\"U8\",\"shape\":[4],"
             "\"data_offsets\":[0,4]}}", 0, four, 4);
    write_index(d1, "{\"a\":\"s1.safetensors\",\"b\":\"s1.safetensors\"}");
    expect_open_error(d1);
    assert_error_has("model.safetensors.index.json", "'b'", "s1.safetensors",
                     "does not contain", NULL);
    write_index(d1, "{\"a\":\"s1.safetensors\",\"zz\":\"s2.safetensors\"}");
    expect_open_error(d1);
    assert_error_has("model.safetensors.index.json", "'zz'", "s2.safetensors", NULL);

    /* Path traversal and subdirectories. */
    write_index(d1, "{\"a\":\"../s1.safetensors\"}");
    expect_open_error(d1);
    assert_error_has("model.safetensors.index.json", "'a'", "../s1.safetensors", "no '/'",
                     NULL);
    write_index(d1, "{\"a\":\"sub/s1.safetensors\"}");
    expect_open_error(d1);
    assert_error_has("index.json", "'a'", "sub/s1.safetensors", NULL);
    write_index(d1, "{\"a\":\"..\"}");
    expect_open_error(d1);
    assert_error_has("index.json", "'a'", NULL);
    write_index(d1, "{\"a\":\"\"}");
    expect_open_error(d1);
    assert_error_has("index.json", "'a'", "found \"\"", NULL);
    write_index(d1, "{\"a\":7}");
    expect_open_error(d1);
    assert_error_has("index.json", "'a'", "found 7", NULL);

    /* A shard the index names that is not there. */
    write_index(d1, "{\"a\":\"s1.safetensors\",\"b\":\"gone.safetensors\"}");
    expect_open_error(d1);
    assert_error_has("index.json", "gone.safetensors", "cannot open", NULL);

    /* No weight_map, an empty one, broken JSON. */
    write_raw(d1, "model.safetensors.index.json", "{\"metadata\":{}}", 15);
    expect_open_error(d1);
    assert_error_has("index.json", "weight_map", "key missing", NULL);
    write_index(d1, "{}");
    expect_open_error(d1);
    assert_error_has("index.json", "empty", NULL);
    write_raw(d1, "model.safetensors.index.json", "{\"weight_map\":", 14);
    expect_open_error(d1);
    assert_error_has("index.json", "JSON", NULL);

    /* And the good one still opens. */
    write_index(d1, "{\"a\":\"s1.safetensors\",\"b\":\"s2.safetensors\"}");
    safetensors_model m;
    assert_int_equal(safetensors_open_dir(d1, &m), 0);
    assert_int_equal(m.n_tensors, 2);
    safetensors_close(&m);
}

/* ---------------------------------------------------------------- runner */

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state) {
    (void)state;
    snprintf(g_root, sizeof g_root, "/tmp/folio_st_XXXXXX");
    return mkdtemp(g_root) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    return nftw(g_root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_single_file),
        cmocka_unit_test(test_header_padding),
        cmocka_unit_test(test_metadata_ignored),
        cmocka_unit_test(test_parse_header_direct),
        cmocka_unit_test(test_sharded_index),
        cmocka_unit_test(test_glob_fallback),
        cmocka_unit_test(test_close_zeroed),
        cmocka_unit_test(test_error_header_length),
        cmocka_unit_test(test_error_file_too_short),
        cmocka_unit_test(test_error_json),
        cmocka_unit_test(test_error_dtype),
        cmocka_unit_test(test_error_shape),
        cmocka_unit_test(test_error_offsets),
        cmocka_unit_test(test_error_overlap),
        cmocka_unit_test(test_error_truncated_file),
        cmocka_unit_test(test_error_no_files),
        cmocka_unit_test(test_error_duplicate_across_files),
        cmocka_unit_test(test_error_second_file),
        cmocka_unit_test(test_error_index),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
