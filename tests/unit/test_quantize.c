/* Tests of folio quantize's library parts: RTN (every element within scale/2 of its
 * dequantized value, symmetric zero 2^(bits-1), codes in range), the compressed-tensors
 * packing (bit positions), the safetensors writer (one file and shards with an index, read
 * back with the reader, bytes compared) and quantize_model on stories260K. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ct_pack.h"
#include "dtype.h"
#include "error.h"
#include "quantize.h"
#include "quantize_model.h"
#include "safetensors.h"
#include "safetensors_write.h"

static char g_root[64];

static float *random_matrix(int rows, int cols, unsigned seed) {
    float *w = malloc((size_t)rows * cols * sizeof *w);
    srand(seed);
    for (int i = 0; i < rows * cols; i++)
        w[i] = ((float)rand() / (float)RAND_MAX - 0.3f) * (i % 7 == 0 ? 3.0f : 0.5f);
    return w;
}

static void check_round_trip(int bits, int group, bool sym) {
    const int rows = 12, cols = 96;
    float *w = random_matrix(rows, cols, (unsigned)(bits * 100 + group + sym));
    for (int c = 0; c < group; c++) w[c] = 0.0f;       /* an all-zero group */
    for (int c = 0; c < cols; c++) w[cols + c] = 1.0f; /* a constant row */
    rtn_params p = {.bits = bits, .group_size = group, .sym = sym};
    rtn_matrix m;
    assert_int_equal(rtn_quantize(w, rows, cols, &p, "w", &m), 0);
    const int groups = cols / group;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            const int g = c / group;
            const double s = f16_to_f32(m.scales[r * groups + g]);
            assert_true(s > 0);
            assert_true(m.q[r * cols + c] < (1 << bits));
            if (sym) assert_int_equal(m.zeros[r * groups + g], 1 << (bits - 1));
            const double err = fabs(rtn_dequant(&m, r, c) - (double)w[r * cols + c]);
            if (err > s / 2 * (1 + 1e-6)) fail_msg("bits %d group %d sym %d: (%d,%d) error %g > "
                                                   "scale/2 %g", bits, group, sym, r, c, err, s / 2);
        }
    assert_true(rtn_dequant(&m, 0, 0) == 0.0);
    rtn_free(&m);
    free(w);
}

static void test_rtn_round_trip(void **state) {
    (void)state;
    const int groups[] = {32, 96, 16};
    for (int b = 4; b <= 8; b += 4)
        for (int g = 0; g < 3; g++) {
            check_round_trip(b, groups[g], true);
            check_round_trip(b, groups[g], false);
        }
}

static void test_rtn_errors(void **state) {
    (void)state;
    float w[64] = {0};
    rtn_matrix m;
    rtn_params p = {.bits = 4, .group_size = 48, .sym = true};
    assert_int_equal(rtn_quantize(w, 1, 64, &p, "layer.q_proj.weight", &m), -1);
    assert_non_null(strstr(folio_last_error(), "layer.q_proj.weight"));
    p = (rtn_params){.bits = 3, .group_size = 32};
    assert_int_equal(rtn_quantize(w, 1, 64, &p, "x", &m), -1);
    w[5] = 1e9f;
    p = (rtn_params){.bits = 4, .group_size = 32, .sym = true};
    assert_int_equal(rtn_quantize(w, 1, 64, &p, "big", &m), -1);
    assert_non_null(strstr(folio_last_error(), "float16"));
    assert_int_equal(f16_round_up(1.0f), 0x3c00);
    assert_true(f16_to_f32(f16_round_up(0.1f)) >= 0.1f);
}

static void test_ct_pack(void **state) {
    (void)state;
    uint8_t q[2 * 16], z[9 * 2];
    for (int i = 0; i < 32; i++) q[i] = (uint8_t)(i % 16);
    rtn_matrix m = {.rows = 2, .cols = 16, .bits = 4, .group_size = 8, .q = q};
    uint32_t out[8]; /* 8-bit below: 2 rows of 4 words */
    ct_pack_weight(&m, out);
    assert_int_equal(out[0], 0x76543210u);
    assert_int_equal(out[1], 0xfedcba98u);
    for (int i = 0; i < 18; i++) z[i] = (uint8_t)(i % 16);
    rtn_matrix mz = {.rows = 9, .cols = 16, .bits = 4, .group_size = 8, .zeros = z};
    assert_int_equal(ct_zero_rows(&mz), 2);
    uint32_t zo[4];
    ct_pack_zeros(&mz, zo); /* zeros[r][g] = (2r + g) % 16, rows along the word */
    assert_int_equal(zo[0], 0xeca86420u);
    assert_int_equal(zo[1], 0xfdb97531u);
    assert_int_equal(zo[2], 0x0u);  /* row 8: (16 + 0) % 16 */
    assert_int_equal(zo[3], 0x1u);
    m.bits = 8;
    ct_pack_weight(&m, out);
    assert_int_equal(out[0], 0x03020100u);
}

typedef struct {
    const char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[2];
} spec;

static const spec SPECS[] = {
    {"a.weight", ST_F32, 2, {3, 5}}, {"b.bias", ST_F16, 1, {7}}, {"c.packed", ST_I32, 2, {4, 2}},
    {"d.scalar", ST_BF16, 0, {0, 0}}, {"e.bytes", ST_U8, 1, {13}}, {"f.empty", ST_F32, 2, {0, 4}},
};
#define N_SPECS (int)(sizeof SPECS / sizeof SPECS[0])

static uint64_t spec_bytes(const spec *s) {
    uint64_t n = st_dtype_size(s->dtype);
    for (int d = 0; d < s->ndim; d++) n *= (uint64_t)s->shape[d];
    return n;
}

static void fill(uint8_t *buf, uint64_t n, int k) {
    for (uint64_t i = 0; i < n; i++) buf[i] = (uint8_t)(i * 31 + k * 7 + 1);
}

static void write_and_check(const char *dir, uint64_t max_bytes, int want_files) {
    assert_int_equal(mkdir(dir, 0755), 0);
    st_writer *w = st_writer_open(dir, max_bytes);
    uint8_t buf[256];
    for (int i = 0; i < N_SPECS; i++) {
        fill(buf, spec_bytes(&SPECS[i]), i);
        assert_int_equal(st_writer_add(w, SPECS[i].name, SPECS[i].dtype, SPECS[i].ndim,
                                       SPECS[i].shape, buf, spec_bytes(&SPECS[i])), 0);
    }
    int n_files = 0;
    assert_int_equal(st_writer_close(w, &n_files), 0);
    assert_int_equal(n_files, want_files);
    safetensors_model m;
    if (safetensors_open_dir(dir, &m) != 0) fail_msg("%s", folio_last_error());
    assert_int_equal(m.n_files, want_files);
    assert_int_equal(m.n_tensors, N_SPECS);
    for (int i = 0; i < N_SPECS; i++) {
        const st_tensor *t = safetensors_find(&m, SPECS[i].name);
        assert_non_null(t);
        assert_int_equal(t->dtype, SPECS[i].dtype);
        assert_int_equal(t->ndim, SPECS[i].ndim);
        for (int d = 0; d < t->ndim; d++) assert_int_equal(t->shape[d], SPECS[i].shape[d]);
        assert_int_equal(t->nbytes, spec_bytes(&SPECS[i]));
        assert_int_equal((uintptr_t)t->data % st_dtype_size(t->dtype), 0);
        fill(buf, t->nbytes, i);
        if (t->nbytes) assert_memory_equal(t->data, buf, t->nbytes);
    }
    safetensors_close(&m);
}

static void test_writer_round_trip(void **state) {
    (void)state;
    char dir[128];
    snprintf(dir, sizeof dir, "%s/one", g_root);
    write_and_check(dir, 0, 1);
    snprintf(dir, sizeof dir, "%s/sharded", g_root);
    write_and_check(dir, 64, 2); /* 60 bytes | 14 + 32 + 2 + 13 + 0 */
    char path[160];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    assert_int_equal(access(path, F_OK), 0);
}

static void test_writer_errors(void **state) {
    (void)state;
    char dir[128];
    snprintf(dir, sizeof dir, "%s/missing/dir", g_root);
    st_writer *w = st_writer_open(dir, 0);
    const int64_t shape[1] = {4};
    float v[4] = {0};
    assert_int_equal(st_writer_add(w, "x", ST_F32, 1, shape, v, 12), 0);
    assert_int_equal(st_writer_close(w, NULL), -1);
    assert_non_null(strstr(folio_last_error(), "'x'"));
}

/* Unpacks (r, c) of a pack-quantized module from the output and dequantizes it. */
static double ct_dequant(const safetensors_model *m, const char *mod, int r, int c, int group) {
    char name[256];
    snprintf(name, sizeof name, "%s.weight_packed", mod);
    const st_tensor *p = safetensors_find(m, name);
    snprintf(name, sizeof name, "%s.weight_scale", mod);
    const st_tensor *s = safetensors_find(m, name);
    snprintf(name, sizeof name, "%s.weight_zero_point", mod);
    const st_tensor *z = safetensors_find(m, name);
    assert_true(p && s && z);
    const uint32_t *pw = p->data, *zw = z->data;
    const uint16_t *sc = s->data;
    const int g = c / group, groups = (int)s->shape[1];
    const int q = (int)(pw[r * p->shape[1] + c / 8] >> (4 * (c % 8))) & 15;
    const int zero = (int)(zw[(r / 8) * groups + g] >> (4 * (r % 8))) & 15;
    return (double)(q - zero) * f16_to_f32(sc[r * groups + g]);
}

static void test_quantize_stories(void **state) {
    (void)state;
    char out[128];
    snprintf(out, sizeof out, "%s/stories", g_root);
    quantize_options o = {.model_dir = FOLIO_SOURCE_DIR "/configs/stories260K", .out_dir = out,
                          .bits = 4, .group_size = 32, .sym = false};
    quantize_report rep;
    if (quantize_model(&o, &rep) != 0) fail_msg("%s", folio_last_error());
    assert_int_equal(rep.n_quantized, 30);
    assert_int_equal(rep.n_kept, 5); /* down_proj: 172 inputs */
    safetensors_model in, q;
    assert_int_equal(safetensors_open_dir(o.model_dir, &in), 0);
    assert_int_equal(safetensors_open_dir(out, &q), 0);
    const st_tensor *w = safetensors_find(&in, "model.layers.1.self_attn.q_proj.weight");
    const float *wf = w->data;
    const uint16_t *sc = safetensors_find(&q, "model.layers.1.self_attn.q_proj.weight_scale")->data;
    for (int r = 0; r < 64; r++)
        for (int c = 0; c < 64; c++) {
            double d = ct_dequant(&q, "model.layers.1.self_attn.q_proj", r, c, 32);
            assert_true(fabs(d - wf[r * 64 + c]) <= f16_to_f32(sc[r * 2 + c / 32]) / 2 * 1.000001);
        }
    assert_non_null(safetensors_find(&q, "model.layers.0.mlp.down_proj.weight"));
    assert_null(safetensors_find(&q, "model.layers.0.mlp.up_proj.weight"));
    safetensors_close(&in);
    safetensors_close(&q);
    char cfg[192];
    snprintf(cfg, sizeof cfg, "%s/tokenizer.json", out);
    assert_int_equal(access(cfg, F_OK), 0);
    assert_int_equal(quantize_model(&o, &rep), -1); /* the output is not empty now */
    assert_non_null(strstr(folio_last_error(), "not empty"));
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(void) {
    snprintf(g_root, sizeof g_root, "/tmp/folio_test_quantize_XXXXXX");
    if (!mkdtemp(g_root)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rtn_round_trip),    cmocka_unit_test(test_rtn_errors),
        cmocka_unit_test(test_ct_pack),           cmocka_unit_test(test_writer_round_trip),
        cmocka_unit_test(test_writer_errors),     cmocka_unit_test(test_quantize_stories),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    nftw(g_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
