/* safetensors writer: tensors added one by one are written into shards of at most
 * max_shard_bytes of data (a tensor larger than that gets a shard of its own), then named
 * the Hugging Face way: one file model.safetensors, or model-00001-of-0000N.safetensors ...
 * with model.safetensors.index.json ({"metadata": {"total_size"}, "weight_map"}).
 *
 * Each file is written to the format's specification: an 8-byte little-endian header
 * length N, N bytes of JSON header ({"__metadata__": {"format": "pt"}, NAME: {"dtype",
 * "shape", "data_offsets": [begin, end]}, ...}, padded with spaces so the data starts on an
 * 8-byte boundary), then the data of every tensor back to back with no holes, offsets
 * relative to the start of the data. Tensors are laid out by element size, largest first,
 * so every tensor's data is aligned to its element size. Only the current shard is held in
 * memory. */
#ifndef FOLIO_SAFETENSORS_WRITE_H
#define FOLIO_SAFETENSORS_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"

typedef struct st_writer st_writer;

/* A writer into directory dir (which must exist). Never fails. */
st_writer *st_writer_open(const char *dir, uint64_t max_shard_bytes);

/* Adds a tensor (its data is copied; nbytes must equal numel * dtype size). May write a
 * finished shard. 0, or -1 with a message naming the tensor or the file. */
int st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim,
                  const int64_t *shape, const void *data, uint64_t nbytes);

/* Writes what is pending, names the shards, writes the index when there are several, and
 * frees the writer (also on failure). *n_files (may be NULL): how many files. 0 or -1. */
int st_writer_close(st_writer *w, int *n_files);

/* Frees the writer and removes the partial files it wrote. */
void st_writer_abort(st_writer *w);

/* Writes one safetensors file of n tensors at path. 0, or -1 with a message naming path. */
typedef struct {
    const char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
    uint64_t nbytes;
} st_out_tensor;
int safetensors_write_file(const char *path, const st_out_tensor *t, int n);

#endif
