/* The checks at load (issue 13, items 7 and 9), piece by piece: the float conversion counts
 * NaN and infinite values as it goes; a checkpoint's tensors of layers beyond
 * num_hidden_layers are refused naming the first; KV sizing that does not fit names sizes,
 * never a negative remainder. (tests/cli/model_checks.sh runs them end to end.) */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dtype.h"
#include "error.h"
#include "kv_capacity.h"
#include "weights.h"

static void test_conversion_counts_nonfinite(void **state) {
    (void)state;
    const float in[6] = {1.5f, NAN, -2.0f, INFINITY, -INFINITY, 0.0f};
    float out[6];
    /* float32 from an odd address (safetensors data need not be aligned) */
    unsigned char raw[1 + sizeof in];
    memcpy(raw + 1, in, sizeof in);
    assert_int_equal(dtype_to_f32(out, raw + 1, DTYPE_F32, 6), 3);
    assert_true(out[0] == 1.5f && isnan(out[1]) && out[2] == -2.0f && isinf(out[3]));
    uint16_t h[6], b[6];
    for (int i = 0; i < 6; i++) {
        h[i] = f32_to_f16(in[i]);
        b[i] = f32_to_bf16(in[i]);
    }
    assert_int_equal(dtype_to_f32(out, h, DTYPE_F16, 6), 3);
    assert_true(out[0] == 1.5f && out[5] == 0.0f);
    assert_int_equal(dtype_to_f32(out, b, DTYPE_BF16, 6), 3);
    assert_true(out[2] == -2.0f);
    /* the largest finite values are not counted; float16 overflow to inf is */
    const uint16_t big[3] = {0x7bff, 0xfbff, 0x7c00};
    assert_int_equal(dtype_to_f32(out, big, DTYPE_F16, 3), 1);
    assert_int_equal(dtype_to_f32(out, in, DTYPE_F32, 1), 0);
}

static void test_extra_layers(void **state) {
    (void)state;
    model_config cfg = {.n_layers = 2};
    st_tensor t[6] = {{.name = "lm_head.weight", .file = "m/a.safetensors"},
                      {.name = "model.layers.1.mlp.up_proj.weight", .file = "m/a.safetensors"},
                      {.name = "model.layers.10.input_layernorm.weight", .file = "m/b.safetensors"},
                      {.name = "model.layers.2.input_layernorm.weight", .file = "m/b.safetensors"},
                      {.name = "model.layers.2.mlp.up_proj.weight", .file = "m/b.safetensors"},
                      {.name = "model.layersX.3.weight", .file = "m/b.safetensors"}};
    safetensors_model m = {.tensors = t, .n_tensors = 6};
    assert_int_equal(weights_check_layers(&m, &cfg), -1);
    const char *msg = folio_last_error();
    assert_non_null(strstr(msg, "m/b.safetensors: tensor 'model.layers.2.input_layernorm.weight' "
                                "belongs to layer 2, but config.json says num_hidden_layers is "
                                "2"));
    cfg.n_layers = 11;
    assert_int_equal(weights_check_layers(&m, &cfg), 0);
}

/* No "-<digit>" anywhere: every figure a size. */
static void assert_no_negative(const char *msg) {
    for (const char *p = msg; *p; p++)
        if (p[0] == '-' && p[1] >= '0' && p[1] <= '9') fail_msg("a negative figure: %s", msg);
}

static void test_kv_sizing_messages(void **state) {
    (void)state;
    const size_t G = (size_t)1 << 30;
    int blocks = 0;
    /* fits: (0.9 x 16 GB - 4 GB in use - 1 GB workspace) / 1 MB */
    kv_capacity_in in = {.total_bytes = 16 * G, .free_bytes = 12 * G, .workspace_bytes = G,
                         .utilization = 0.9, .block_bytes = (size_t)1 << 20};
    assert_int_equal(kv_capacity_blocks(&in, &blocks), 0);
    assert_int_equal(blocks, (int)((0.9 * 16 * 1024) - 4 * 1024 - 1024));
    /* the workspace eats more than the fraction allows: once "-47 GB left for the KV cache" */
    in.workspace_bytes = 11 * G;
    assert_int_equal(kv_capacity_blocks(&in, &blocks), -1);
    const char *msg = folio_last_error();
    assert_non_null(strstr(msg, "no memory is left for the KV cache: --gpu-memory-utilization "
                                "0.90 allows 15.5 GB of 17.2 GB; 4.3 GB is in use already"));
    assert_non_null(strstr(msg, "the activation workspace needs 11.8 GB"));
    assert_non_null(strstr(msg, "--max-model-len"));
    assert_no_negative(msg);
    /* more in use than the fraction allows */
    in.workspace_bytes = 0;
    in.utilization = 0.1;
    assert_int_equal(kv_capacity_blocks(&in, &blocks), -1);
    assert_no_negative(folio_last_error());
    /* --kv-cache-memory below one block */
    in.kv_cache_memory = 1000;
    assert_int_equal(kv_capacity_blocks(&in, &blocks), -1);
    assert_non_null(strstr(folio_last_error(), "--kv-cache-memory 1000 bytes is less than one "
                                               "KV block (1.0 MB"));
    /* a workspace larger than free memory is refused even with the pool size given */
    in = (kv_capacity_in){.total_bytes = 16 * G, .free_bytes = 12 * G,
                          .workspace_bytes = 20 * G, .utilization = 0.9,
                          .num_blocks_override = 4, .block_bytes = 1024};
    assert_int_equal(kv_capacity_blocks(&in, &blocks), -1);
    assert_non_null(strstr(folio_last_error(), "the activation workspace needs 21.5 GB, more "
                                               "than the 12.9 GB of memory free"));
    in.free_bytes = 0; /* unknown: not checked */
    assert_int_equal(kv_capacity_blocks(&in, &blocks), 0);
    assert_int_equal(blocks, 4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conversion_counts_nonfinite),
        cmocka_unit_test(test_extra_layers),
        cmocka_unit_test(test_kv_sizing_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
