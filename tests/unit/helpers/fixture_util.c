/* Test helpers for reading transformers' reference outputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "error.h"
#include "fixture_util.h"

static const char *const NAMES[] = {
    "llama_mha_f32", "llama_gqa_tied", "llama3_rope_parameters", "llama3_rope_classic",
    "llama_linear_mqa", "llama_bf16", "llama_f16", "llama_bias", "llama_sharded",
    "mistral_swa_headdim", "qwen2_bias_tied", "qwen2_swa", "qwen2_yarn", "qwen3_qknorm", NULL};

/* tests/fixtures/make_quant_fixtures.py's checkpoints (AWQ, GPTQ, compressed-tensors) */
static const char *const QUANT_NAMES[] = {
    "quant_awq_g32", "quant_awq_g64_tp", "quant_gptq_v1_sym_g32", "quant_gptq_v2_asym_g32",
    "quant_gptq_actorder_g32", "quant_gptq_8bit_g64", "quant_ct_sym_g32_bf16",
    "quant_ct_asym_g128_tp", "quant_ct_asym_g32", "quant_ct_channel", "quant_ct_8bit_g32", NULL};

/* tests/fixtures/make_fp8_fixture.py's FP8 checkpoints (compressed-tensors float-quantized,
 * block FP8): their references quantize activations, a discontinuous step */
static const char *const FP8_NAMES[] = {"fp8_ct_channel", "fp8_ct_static", "fp8_block", NULL};

const char *const *fixture_names(void) { return NAMES; }
const char *const *fp8_fixture_names(void) { return FP8_NAMES; }
const char *const *quant_fixture_names(void) { return QUANT_NAMES; }

static int32_t *read_ids(json_t *root, const char *key, int *n) {
    json_t *arr = json_object_get(root, key);
    *n = 0;
    if (!json_is_array(arr)) return NULL;
    *n = (int)json_array_size(arr);
    int32_t *ids = folio_xmalloc(sizeof *ids * (*n ? *n : 1));
    for (int i = 0; i < *n; i++) ids[i] = (int32_t)json_integer_value(json_array_get(arr, i));
    return ids;
}

void fixture_ref_read(const char *dir, fixture_ref *r) {
    char path[1024];
    snprintf(path, sizeof path, "%s/reference.json", dir);
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root) fail_msg("%s: %s", path, err.text);
    r->prompt = read_ids(root, "prompt_ids", &r->n_prompt);
    r->greedy = read_ids(root, "greedy_ids", &r->n_greedy);
    json_decref(root);
    if (!r->prompt) fail_msg("%s: no prompt_ids", path);
}

void fixture_ref_free(fixture_ref *r) {
    free(r->prompt);
    free(r->greedy);
}

float *read_f32_file(const char *path, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    float *x = folio_xmalloc(sizeof *x * n);
    size_t got = fread(x, sizeof *x, n, f);
    int extra = fgetc(f);
    fclose(f);
    if (got != n || extra != EOF) fail_msg("%s: expected exactly %zu floats", path, n);
    return x;
}

double max_rel_diff(const float *a, const float *b, size_t n) {
    double max_diff = 0.0, max_ref = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = a[i] - (double)b[i];
        if (d < 0) d = -d;
        if (d > max_diff || d != d) max_diff = d != d ? 1e30 : d;
        double r = b[i] < 0 ? -b[i] : b[i];
        if (r > max_ref) max_ref = r;
    }
    return max_ref > 0 ? max_diff / max_ref : max_diff;
}

void open_model_or_fail(const char *dir, load_format fmt, comm_ctx *comm, device_model *m) {
    const device_options o = {.device = DEVICE_CPU, .format = fmt};
    if (device_model_open(dir, &o, comm, m) != 0)
        fail_msg("opening %s: %s", dir, folio_last_error());
}

void open_stories_or_skip(comm_ctx *comm, device_model *m) {
    if (access(STORIES_DIR "/config.json", R_OK) != 0) {
        print_message("SKIPPED: %s not found\n", STORIES_DIR);
        exit(77);
    }
    comm_init_single(comm);
    open_model_or_fail(STORIES_DIR, LOAD_AUTO, comm, m);
}
