/* config.json's quantization_config: AWQ (version gemm), GPTQ (checkpoint_format gptq or
 * gptq_v2), compressed-tensors (format pack-quantized: one config group of int weights, no
 * activation quantization; format float-quantized: FP8 e4m3 weights and activations) and
 * block FP8 (quant_method fp8), read into quant_config; everything else is refused by field
 * and value. */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "quant_config_read.h"

const char *quant_method_name(quant_method m) {
    switch (m) {
    case QUANT_AWQ: return "awq";
    case QUANT_GPTQ: return "gptq";
    case QUANT_CT: return "compressed-tensors";
    case QUANT_DUMMY: return "dummy";
    case QUANT_FP8: return "fp8";
    default: return "none";
    }
}

/* "ORIGIN: field 'OBJECT.KEY': VALUE is not supported (SUPPORTED)" */
static int fail_value(const json_src *src, const char *key, const json_t *v,
                      const char *supported) {
    char found[96];
    json_describe(v, found, sizeof found);
    return folio_fail("%s: field '%s%s%s': %s is not supported (%s)", src->origin,
                      src->object ? src->object : "", src->object ? "." : "", key, found,
                      supported);
}

/* An optional string field that must be one of the allowed values (case-insensitive). */
static int read_choice(const json_t *obj, const char *key, const json_src *src,
                       const char *const *allowed, const char *supported, const char **out) {
    int r = json_get_string(obj, key, src, out, false);
    if (r != JSON_OK) return r < 0 ? -1 : 0;
    for (int i = 0; allowed[i]; i++)
        if (strcasecmp(*out, allowed[i]) == 0) {
            *out = allowed[i];
            return 0;
        }
    return fail_value(src, key, json_object_get(obj, key), supported);
}

static int read_bits(const json_t *obj, const char *key, const json_src *src, bool eight_ok,
                     int *bits) {
    *bits = 4;
    if (json_get_int(obj, key, src, 1, 64, bits, false) < 0) return -1;
    if (*bits == 4 || (*bits == 8 && eight_ok)) return 0;
    return fail_value(src, key, json_object_get(obj, key), eight_ok ? "4 or 8" : "4");
}

/* group_size: -1 (per channel) or positive. */
static int read_group(const json_t *obj, const char *key, const json_src *src, bool required,
                      int *group) {
    if (json_get_int(obj, key, src, -1, 1 << 24, group, required) < 0) return -1;
    if (*group == 0) return fail_value(src, key, json_object_get(obj, key), "-1 or positive");
    return 0;
}

static int read_ignore(const json_t *obj, const char *key, const json_src *src,
                       quant_config *q) {
    const json_t *a = NULL;
    if (json_get_array(obj, key, src, &a, false) < 0) return -1;
    size_t n = a ? json_array_size(a) : 0;
    q->ignore = n ? folio_xcalloc(n, sizeof *q->ignore) : NULL;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(a, i);
        char field[64];
        snprintf(field, sizeof field, "%s[%zu]", key, i);
        if (!json_is_string(e)) return json_fail_field(src, field, "a module name", e);
        q->ignore[q->n_ignore++] = folio_xstrdup(json_string_value(e));
    }
    return 0;
}

static int read_awq(const json_t *o, const json_src *src, quant_config *q) {
    static const char *const versions[] = {"gemm", NULL};
    const char *version = "gemm";
    bool zero_point = true;
    if (read_bits(o, "bits", src, false, &q->bits) < 0 ||
        read_group(o, "group_size", src, true, &q->group_size) < 0 ||
        read_choice(o, "version", src, versions, "gemm", &version) < 0 ||
        json_get_bool(o, "zero_point", src, &zero_point, false) < 0 ||
        read_ignore(o, "modules_to_not_convert", src, q) < 0)
        return -1;
    if (!zero_point)
        return fail_value(src, "zero_point", json_object_get(o, "zero_point"), "true");
    q->ignore_substring = true;
    return 0;
}

static int read_gptq(const json_t *o, const json_src *src, quant_config *q) {
    static const char *const formats[] = {"gptq", "gptq_v2", NULL};
    const char *format = "gptq";
    q->sym = true;
    if (read_bits(o, "bits", src, true, &q->bits) < 0 ||
        read_group(o, "group_size", src, true, &q->group_size) < 0 ||
        json_get_bool(o, "desc_act", src, &q->act_order, false) < 0 ||
        json_get_bool(o, "sym", src, &q->sym, false) < 0 ||
        json_get_bool(o, "lm_head", src, &q->lm_head, false) < 0 ||
        read_choice(o, "checkpoint_format", src, formats, "gptq or gptq_v2", &format) < 0)
        return -1;
    const json_t *dynamic = json_object_get(o, "dynamic");
    if (dynamic && !json_is_null(dynamic) && json_object_size(dynamic) > 0)
        return fail_value(src, "dynamic", dynamic, "per-module overrides: null or {}");
    q->gptq_v2 = strcmp(format, "gptq_v2") == 0;
    return 0;
}

/* actorder: null/false/"weight"/"static" (no g_idx needed), true/"group" (g_idx stored). */
static int read_actorder(const json_t *w, const json_src *src, bool *act_order) {
    const json_t *v = json_object_get(w, "actorder");
    *act_order = false;
    if (!v || json_is_null(v) || json_is_false(v)) return 0;
    if (json_is_true(v)) return *act_order = true, 0;
    static const char *const orders[] = {"group", "weight", "static", NULL};
    const char *order = NULL;
    if (read_choice(w, "actorder", src, orders, "group, weight, static or null", &order) < 0)
        return -1;
    *act_order = strcmp(order, "group") == 0;
    return 0;
}

static int read_ct_weights(const json_t *w, const json_src *src, quant_config *q) {
    static const char *const types[] = {"int", NULL}, *const strategies[] = {"group",
                                                                             "channel", NULL};
    const char *type = "int", *strategy = NULL;
    bool dynamic = false;
    q->sym = true;
    if (read_bits(w, "num_bits", src, true, &q->bits) < 0 ||
        read_choice(w, "type", src, types, "int", &type) < 0 ||
        json_get_bool(w, "symmetric", src, &q->sym, false) < 0 ||
        json_get_bool(w, "dynamic", src, &dynamic, false) < 0 ||
        json_get_string(w, "strategy", src, &strategy, true) < 0 ||
        read_choice(w, "strategy", src, strategies, "group or channel", &strategy) < 0 ||
        read_actorder(w, src, &q->act_order) < 0)
        return -1;
    if (dynamic) return fail_value(src, "dynamic", json_object_get(w, "dynamic"), "false");
    q->group_size = -1;
    if (strcmp(strategy, "group") == 0 && read_group(w, "group_size", src, true,
                                                     &q->group_size) < 0)
        return -1;
    return 0;
}

static int check_ct_targets(const json_t *g, const json_src *src) {
    const json_t *t = NULL;
    if (json_get_array(g, "targets", src, &t, true) < 0) return -1;
    for (size_t i = 0; i < json_array_size(t); i++) {
        const json_t *e = json_array_get(t, i);
        if (json_is_string(e) && strcmp(json_string_value(e), "Linear") == 0) return 0;
    }
    return fail_value(src, "targets", t, "targets must include \"Linear\"");
}

/* The one config group: int weights only (input/output activations unquantized). */
static int read_ct_group(const json_t *groups, const json_src *src, quant_config *q,
                         const char **format) {
    if (json_object_size(groups) != 1)
        return fail_value(src, "config_groups", groups, "exactly one config group");
    const char *name = json_object_iter_key(json_object_iter((json_t *)groups));
    const json_t *g = json_object_get(groups, name), *w = NULL;
    char path[128];
    snprintf(path, sizeof path, "%s.config_groups.%s", src->object, name);
    json_src gs = {src->origin, path};
    if (!json_is_object(g)) return json_fail_field(src, name, "an object", g);
    static const char *const acts[] = {"input_activations", "output_activations"};
    for (int i = 0; i < 2; i++)
        if (json_object_get(g, acts[i]) && !json_is_null(json_object_get(g, acts[i])))
            return fail_value(&gs, acts[i], json_object_get(g, acts[i]),
                              "weight-only quantization: null");
    if (check_ct_targets(g, &gs) < 0 ||
        json_get_string(g, "format", &gs, format, false) < 0 ||
        json_get_object(g, "weights", &gs, &w, true) < 0)
        return -1;
    char wpath[160];
    snprintf(wpath, sizeof wpath, "%s.weights", path);
    json_src ws = {src->origin, wpath};
    return read_ct_weights(w, &ws, q);
}

static int read_ct_fp8(const json_t *o, const json_src *src, quant_config *q);

/* The format, top level or in the one config group: "float-quantized" (FP8) or another. */
static bool ct_float_quantized(const json_t *o) {
    const json_t *f = json_object_get(o, "format"), *groups = json_object_get(o, "config_groups");
    if (json_is_string(f)) return strcmp(json_string_value(f), "float-quantized") == 0;
    if (!json_is_object(groups) || json_object_size(groups) != 1) return false;
    const json_t *g = json_object_iter_value(json_object_iter((json_t *)groups));
    f = json_is_object(g) ? json_object_get(g, "format") : NULL;
    return json_is_string(f) && strcmp(json_string_value(f), "float-quantized") == 0;
}

static int read_ct(const json_t *o, const json_src *src, quant_config *q) {
    if (ct_float_quantized(o)) return read_ct_fp8(o, src, q);
    static const char *const formats[] = {"pack-quantized", NULL};
    const char *format = NULL, *group_format = NULL;
    const json_t *groups = NULL, *kv = json_object_get(o, "kv_cache_scheme");
    if (kv && !json_is_null(kv)) return fail_value(src, "kv_cache_scheme", kv, "null");
    if (json_get_object(o, "config_groups", src, &groups, true) < 0 ||
        read_ct_group(groups, src, q, &group_format) < 0 ||
        read_choice(o, "format", src, formats, "pack-quantized or float-quantized", &format) < 0 ||
        read_ignore(o, "ignore", src, q) < 0)
        return -1;
    if (group_format && strcmp(group_format, "pack-quantized") != 0)
        return folio_fail("%s: field '%s.config_groups': format \"%s\" is not supported "
                          "(pack-quantized or float-quantized)", src->origin, src->object,
                          group_format);
    if (!format && !group_format)
        return json_fail_field(src, "format", "\"pack-quantized\"", NULL);
    q->lm_head = true;
    q->lm_head = quant_module_quantized(q, "lm_head");
    return 0;
}

/* ---- FP8 e4m3: compressed-tensors float-quantized, block FP8 (quant_method "fp8") ---- */

/* A block shape ([rows, cols]: weight_block_size, block_structure): each a positive multiple
 * of 128 (the activation group, FP8_ACT_GROUP_SIZE, must tile a block's columns). */
static int read_fp8_block(const json_t *obj, const char *key, const json_src *src,
                          int block[2]) {
    const json_t *a = json_object_get(obj, key);
    if (!json_is_array(a) || json_array_size(a) != 2)
        return json_fail_field(src, key, "[rows, cols], e.g. [128, 128]", a);
    for (int i = 0; i < 2; i++) {
        const json_t *v = json_array_get(a, i);
        const json_int_t b = json_is_integer(v) ? json_integer_value(v) : 0;
        if (b <= 0 || b > (1 << 20) || b % FP8_ACT_GROUP_SIZE != 0)
            return fail_value(src, key, a, "two positive multiples of 128, e.g. [128, 128]");
        block[i] = (int)b;
    }
    return 0;
}

/* A compressed-tensors quantization args object of FP8: num_bits 8, type float, symmetric. */
static int check_ct_float_args(const json_t *a, const json_src *src) {
    static const char *const types[] = {"float", NULL};
    const char *type = NULL;
    int bits = 8;
    bool sym = true;
    if (json_get_int(a, "num_bits", src, 1, 64, &bits, true) < 0 ||
        json_get_string(a, "type", src, &type, true) < 0 ||
        read_choice(a, "type", src, types, "float", &type) < 0 ||
        json_get_bool(a, "symmetric", src, &sym, false) < 0)
        return -1;
    if (bits != 8) return fail_value(src, "num_bits", json_object_get(a, "num_bits"), "8");
    if (!sym) return fail_value(src, "symmetric", json_object_get(a, "symmetric"), "true");
    return 0;
}

/* weights: strategy channel (weight_scale [out, 1]), tensor (a scalar) or block
 * (block_structure, weight_scale [ceil(out/br), ceil(in/bc)]); dynamic false. */
static int read_ct_fp8_weights(const json_t *w, const json_src *src, quant_config *q) {
    static const char *const strategies[] = {"channel", "tensor", "block", NULL};
    const char *strategy = NULL;
    bool dynamic = false;
    if (check_ct_float_args(w, src) < 0 ||
        json_get_bool(w, "dynamic", src, &dynamic, false) < 0 ||
        json_get_string(w, "strategy", src, &strategy, true) < 0 ||
        read_choice(w, "strategy", src, strategies, "channel, tensor or block", &strategy) < 0)
        return -1;
    if (dynamic) return fail_value(src, "dynamic", json_object_get(w, "dynamic"), "false");
    q->fp8_weights = strcmp(strategy, "channel") == 0  ? FP8_W_CHANNEL
                     : strcmp(strategy, "tensor") == 0 ? FP8_W_TENSOR
                                                       : FP8_W_BLOCK;
    return q->fp8_weights == FP8_W_BLOCK ? read_fp8_block(w, "block_structure", src, q->fp8_block)
                                         : 0;
}

/* input_activations: null (weight-only: Folio quantizes the activations per token anyway,
 * docs/quantization.md), dynamic per token, dynamic per group of 128 (FP8_BLOCK), or static
 * per tensor (input_scale). */
static int read_ct_fp8_acts(const json_t *a, const json_src *src, quant_config *q) {
    q->fp8_act = FP8_ACT_TOKEN;
    if (!a || json_is_null(a)) return 0;
    static const char *const strategies[] = {"token", "tensor", "group", NULL};
    const char *strategy = NULL;
    bool dynamic = false;
    int group = 0;
    if (check_ct_float_args(a, src) < 0 ||
        json_get_bool(a, "dynamic", src, &dynamic, true) < 0 ||
        json_get_string(a, "strategy", src, &strategy, true) < 0 ||
        read_choice(a, "strategy", src, strategies, "token, tensor or group", &strategy) < 0)
        return -1;
    if (strcmp(strategy, "token") == 0 && dynamic) return 0;
    if (strcmp(strategy, "tensor") == 0 && !dynamic) return q->fp8_act = FP8_ACT_STATIC, 0;
    if (strcmp(strategy, "group") == 0 && dynamic) {
        if (json_get_int(a, "group_size", src, 1, 1 << 20, &group, true) < 0) return -1;
        if (group != FP8_ACT_GROUP_SIZE)
            return fail_value(src, "group_size", json_object_get(a, "group_size"), "128");
        return q->fp8_act = FP8_ACT_GROUP, 0;
    }
    return fail_value(src, "dynamic", json_object_get(a, "dynamic"),
                      "dynamic per token or group, static per tensor");
}

static int read_ct_fp8(const json_t *o, const json_src *src, quant_config *q) {
    const json_t *groups = NULL, *kv = json_object_get(o, "kv_cache_scheme"), *w = NULL;
    if (kv && !json_is_null(kv)) return fail_value(src, "kv_cache_scheme", kv, "null");
    if (json_get_object(o, "config_groups", src, &groups, true) < 0) return -1;
    if (json_object_size(groups) != 1)
        return fail_value(src, "config_groups", groups, "exactly one config group");
    const char *name = json_object_iter_key(json_object_iter((json_t *)groups));
    const json_t *g = json_object_get(groups, name);
    char path[128], wpath[160], apath[160];
    snprintf(path, sizeof path, "%s.config_groups.%s", src->object, name);
    snprintf(wpath, sizeof wpath, "%s.weights", path);
    snprintf(apath, sizeof apath, "%s.input_activations", path);
    json_src gs = {src->origin, path}, ws = {src->origin, wpath}, as = {src->origin, apath};
    if (!json_is_object(g)) return json_fail_field(src, name, "an object", g);
    const json_t *out_acts = json_object_get(g, "output_activations");
    if (out_acts && !json_is_null(out_acts))
        return fail_value(&gs, "output_activations", out_acts, "null");
    q->method = QUANT_FP8;
    q->fp8_src = FP8_SRC_CT;
    q->bits = 8;
    q->sym = true;
    if (check_ct_targets(g, &gs) < 0 || json_get_object(g, "weights", &gs, &w, true) < 0 ||
        read_ct_fp8_weights(w, &ws, q) < 0 ||
        read_ct_fp8_acts(json_object_get(g, "input_activations"), &as, q) < 0 ||
        read_ignore(o, "ignore", src, q) < 0)
        return -1;
    if (q->fp8_weights == FP8_W_BLOCK && q->fp8_act == FP8_ACT_STATIC)
        return fail_value(&as, "strategy", json_object_get(json_object_get(g,
                          "input_activations"), "strategy"), "block weights: dynamic activations");
    q->lm_head = true;
    q->lm_head = quant_module_quantized(q, "lm_head");
    return 0;
}

/* Block FP8 (transformers' FineGrainedFP8Config, DeepSeek-V3, Qwen3-*-FP8): fmt e4m3,
 * weight_block_size [128, 128] (weight_scale_inv per block; activations dynamic per token and
 * group of 128); without weight_block_size, vLLM's Fp8Config form (a per-tensor weight_scale;
 * activations dynamic per token, or static: input_scale). lm_head is never quantized; modules
 * named (in part) by modules_to_not_convert (transformers) or ignored_layers (vLLM) stay in
 * float. */
static int read_fp8(const json_t *o, const json_src *src, quant_config *q) {
    static const char *const fmts[] = {"e4m3", NULL}, *const schemes[] = {"dynamic", "static",
                                                                          NULL};
    const char *fmt = "e4m3", *scheme = "dynamic";
    q->method = QUANT_FP8;
    q->fp8_src = FP8_SRC_BLOCK;
    q->bits = 8;
    q->sym = true;
    q->fp8_weights = FP8_W_TENSOR;
    q->fp8_act = FP8_ACT_TOKEN;
    q->ignore_substring = true;
    if (read_choice(o, "fmt", src, fmts, "e4m3", &fmt) < 0 ||
        read_choice(o, "activation_scheme", src, schemes, "dynamic or static", &scheme) < 0 ||
        read_ignore(o, json_object_get(o, "ignored_layers") ? "ignored_layers"
                                                           : "modules_to_not_convert", src, q) < 0)
        return -1;
    const json_t *bs = json_object_get(o, "weight_block_size");
    if (bs && !json_is_null(bs)) {
        if (read_fp8_block(o, "weight_block_size", src, q->fp8_block) < 0) return -1;
        if (strcmp(scheme, "dynamic") != 0)
            return fail_value(src, "activation_scheme", json_object_get(o, "activation_scheme"),
                              "dynamic with weight_block_size");
        q->fp8_weights = FP8_W_BLOCK;
        q->fp8_act = FP8_ACT_GROUP;
    } else if (strcmp(scheme, "static") == 0) {
        q->fp8_act = FP8_ACT_STATIC;
    }
    return 0;
}

/* ---- which modules are quantized ---- */

/* "re:REGEX" matches from the start of the name (Python's re.match); other entries match the
 * whole name, or (AWQ) any part of it. */
static bool ignore_matches(const quant_config *q, const char *entry, const char *module) {
    if (strncmp(entry, "re:", 3) == 0) {
        regex_t re;
        regmatch_t m;
        if (regcomp(&re, entry + 3, REG_EXTENDED) != 0) return false;
        bool hit = regexec(&re, module, 1, &m, 0) == 0 && m.rm_so == 0;
        regfree(&re);
        return hit;
    }
    return q->ignore_substring ? strstr(module, entry) != NULL : strcmp(entry, module) == 0;
}

bool quant_module_quantized(const quant_config *q, const char *module) {
    if (q->method == QUANT_NONE) return false;
    for (int i = 0; i < q->n_ignore; i++)
        if (ignore_matches(q, q->ignore[i], module)) return false;
    return strcmp(module, "lm_head") != 0 || q->lm_head;
}

void quant_config_free(quant_config *q) {
    for (int i = 0; i < q->n_ignore; i++) free(q->ignore[i]);
    free(q->ignore);
    memset(q, 0, sizeof *q);
}

void quant_config_dummy(quant_config *q, const dummy_quant *d) {
    quant_config_free(q);
    q->method = QUANT_DUMMY;
    q->bits = 4;
    q->group_size = d->group_size > 0 ? d->group_size : -1;
    q->sym = d->sym;
}

void quant_config_dummy_fp8(quant_config *q, const dummy_quant *d) {
    quant_config_free(q);
    q->method = QUANT_FP8;
    q->fp8_src = FP8_SRC_DUMMY;
    q->bits = 8;
    q->sym = true;
    q->fp8_weights = d->fp8_block ? FP8_W_BLOCK : FP8_W_CHANNEL;
    q->fp8_act = d->fp8_block ? FP8_ACT_GROUP : FP8_ACT_TOKEN;
    if (d->fp8_block) q->fp8_block[0] = q->fp8_block[1] = 128;
}

/* ---- the entry point ---- */

int quant_config_read(const json_t *root, const json_src *src, model_config *cfg) {
    const json_t *o = json_object_get(root, "quantization_config");
    memset(&cfg->quant, 0, sizeof cfg->quant);
    if (!o || json_is_null(o)) return 0;
    if (!json_is_object(o)) return json_fail_field(src, "quantization_config", "an object", o);
    json_src qs = {src->origin, "quantization_config"};
    static const char *const methods[] = {"awq", "gptq", "compressed-tensors", "fp8", NULL};
    const char *method = NULL;
    if (json_get_string(o, "quant_method", &qs, &method, true) < 0 ||
        read_choice(o, "quant_method", &qs, methods, "awq, gptq, compressed-tensors or fp8",
                    &method) < 0)
        return -1;
    quant_config *q = &cfg->quant;
    int rc;
    if (strcmp(method, "awq") == 0) {
        q->method = QUANT_AWQ;
        rc = read_awq(o, &qs, q);
    } else if (strcmp(method, "gptq") == 0) {
        q->method = QUANT_GPTQ;
        rc = read_gptq(o, &qs, q);
    } else if (strcmp(method, "fp8") == 0) {
        rc = read_fp8(o, &qs, q);
    } else {
        q->method = QUANT_CT;
        rc = read_ct(o, &qs, q);
    }
    return rc < 0 ? -1 : 0;
}
