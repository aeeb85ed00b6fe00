/* Test helper: writes a safetensors file from tensors added in memory (tiny checkpoints made
 * by the tests themselves). */
#ifndef FOLIO_ST_WRITER_H
#define FOLIO_ST_WRITER_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char name[192];
    char dtype[8];               /* "F32", "F16", "BF16", "I32", "I64" */
    int ndim;
    int64_t shape[2];
    void *data;                  /* owned copy */
    size_t nbytes;
} st_entry;

typedef struct {
    st_entry *items;
    int n, cap;
} st_writer;

/* Adds a copy of data (nbytes, which must match the dtype and shape). */
void stw_add(st_writer *w, const char *name, const char *dtype, int ndim, int64_t d0,
             int64_t d1, const void *data, size_t nbytes);

/* Writes every tensor added to path and releases them; fails the test on I/O errors. */
void stw_write(st_writer *w, const char *path);

#endif
