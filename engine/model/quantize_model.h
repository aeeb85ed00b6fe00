/* `folio quantize`'s work: a float Hugging Face checkpoint directory in, a compressed-tensors
 * pack-quantized checkpoint directory out (ct_pack.h for the tensors), or with fp8 an FP8 one
 * (quantize_fp8.h: compressed-tensors float-quantized FP8_DYNAMIC, or block FP8).
 *
 * Every 2-D ".weight" of a q/k/v/o/gate/up/down_proj module is RTN-quantized (quantize.h);
 * one whose input size is not a multiple of the group size and of 32 / bits is kept in float
 * and named in the config's ignore list (reported). Every other tensor (embeddings, norms,
 * biases, lm_head) is copied unchanged, same name, dtype and bytes. config.json is the
 * input's plus quantization_config; tokenizer.json, tokenizer_config.json,
 * generation_config.json and special_tokens_map.json are copied when present.
 *
 * Tensors named in `values` (float32, e.g. AWQ's scaled weights and folded norms, awq.h) are
 * taken from there instead of the input files: quantized the same way when they are targets,
 * otherwise written in the input tensor's dtype. */
#ifndef FOLIO_QUANTIZE_MODEL_H
#define FOLIO_QUANTIZE_MODEL_H

#include <stdbool.h>
#include <stdint.h>

/* A tensor's values given in float32: numel must equal the input tensor's. */
typedef struct {
    const char *name;
    const float *data;
    int64_t numel;
} quantize_values;

typedef struct {
    const char *model_dir;
    const char *out_dir;         /* created; must not exist or be empty */
    int bits;                    /* 4 or 8 (int formats) */
    bool fp8;                    /* --format fp8: e4m3 weights (bits, group_size, sym unused) */
    bool fp8_block;              /* --scheme block (else dynamic: per channel, per token) */
    int group_size;              /* <= 0: per channel */
    bool sym;
    uint64_t max_shard_bytes;    /* 0: one file */
    bool progress;               /* a bar on stderr (when it is a terminal) */
    const quantize_values *values; /* [n_values] tensors to take from here, or NULL */
    int n_values;
} quantize_options;

typedef struct {
    int n_quantized;             /* matrices quantized */
    int n_kept;                  /* target matrices kept in float (shape does not fit) */
    int n_copied;                /* other tensors copied */
    uint64_t in_bytes, out_bytes;
    int n_files;                 /* safetensors files written */
    char first_kept[256];        /* the first matrix kept in float, for the report */
} quantize_report;

/* What quantize_model checks before any work: the input's config.json is readable and not
 * quantized already, bits is 4 or 8, the output directory is new or empty. 0, or -1 with a
 * message. */
int quantize_check(const quantize_options *o);

/* 0, or -1 with a message naming the file or tensor. */
int quantize_model(const quantize_options *o, quantize_report *rep);

#endif
