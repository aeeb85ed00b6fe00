/* Test helpers: paths of the committed fixtures, reading transformers' reference files
 * (reference.json ids, logits.f32), and comparing logits. */
#ifndef FOLIO_FIXTURE_UTIL_H
#define FOLIO_FIXTURE_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "comm.h"
#include "backend.h"

#define FIXTURE_MODELS FOLIO_SOURCE_DIR "/tests/fixtures/models"
#define STORIES_DIR FOLIO_SOURCE_DIR "/configs/stories260K"

typedef struct {
    int32_t *prompt;             /* [n_prompt] */
    int n_prompt;
    int32_t *greedy;             /* [n_greedy] (may be 0) */
    int n_greedy;
} fixture_ref;

/* Reads DIR/reference.json ("prompt_ids", "greedy_ids"); aborts the test on failure. */
void fixture_ref_read(const char *dir, fixture_ref *r);
void fixture_ref_free(fixture_ref *r);

/* Reads a float32 file of exactly n floats; aborts the test on failure. Caller frees. */
float *read_f32_file(const char *path, size_t n);

/* max |a - b| / max |b| over n values. */
double max_rel_diff(const float *a, const float *b, size_t n);

/* Opens a model dir on a single rank; fails the test with the error message if it fails. */
void open_model_or_fail(const char *dir, load_format fmt, comm_ctx *comm, device_model *m);

/* Opens stories260K (STORIES_DIR) on a single rank (comm initialised here); exits 77, the
 * test skipped, when it is not there. */
void open_stories_or_skip(comm_ctx *comm, device_model *m);

/* The fixture names under FIXTURE_MODELS (NULL-terminated, static). */
const char *const *fixture_names(void);
/* The quantized fixtures (make_quant_fixtures.py): their references are transformers' run of
 * the dequantized weights. */
const char *const *quant_fixture_names(void);
/* The FP8 fixtures (make_fp8_fixture.py): references of the dequantized weights with every
 * quantized Linear's input quantized-dequantized as the scheme says. */
const char *const *fp8_fixture_names(void);

#endif
