/* safetensors files: parse and fully validate the header, map the data with mmap, and open a
 * whole Hugging Face model directory (model.safetensors, a sharded
 * model.safetensors.index.json, or every *.safetensors file) as one table of tensors.
 *
 * Ownership: safetensors_open_dir() fills a safetensors_model that owns every mapping and
 * string; safetensors_close() releases them. Tensor data pointers stay valid until then. */
#ifndef FOLIO_SAFETENSORS_H
#define FOLIO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

/* Every dtype the format defines (so sizes can be validated); the loader accepts F32/F16/BF16. */
typedef enum {
    ST_BOOL, ST_U8, ST_I8, ST_I16, ST_U16, ST_F16, ST_BF16, ST_I32, ST_U32, ST_F32, ST_F64,
    ST_I64, ST_U64, ST_F8_E4M3, ST_F8_E5M2, ST_DTYPE_COUNT
} st_dtype;

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER_BYTES (100u << 20) /* the reference implementation's limit */

typedef struct {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    uint64_t offset;         /* start of the data, relative to the file's data section */
    uint64_t nbytes;
    const void *data;        /* into the mapping; NULL from safetensors_parse_header() */
    const char *file;        /* path of the file holding it (owned by the model) */
} st_tensor;

typedef struct {
    st_tensor *tensors;      /* [n_tensors], sorted by name */
    int n_tensors;
    char **files;            /* [n_files] paths */
    void **maps;             /* [n_files] mmap base addresses */
    size_t *map_sizes;       /* [n_files] */
    int n_files;
    uint64_t total_bytes;    /* sum of tensor nbytes */
} safetensors_model;

const char *st_dtype_name(st_dtype t);   /* "F32", "BF16", ... */
size_t st_dtype_size(st_dtype t);        /* bytes per element (1 for BOOL and F8) */

/* Parses and validates one file's header. buf holds the whole file (or at least its first
 * 8 + header bytes when file_size says more): the 8-byte little-endian header length, the
 * JSON header, then data. file_size is the file's full size, used to check every
 * data_offsets pair lies inside it. Checks: length field sane, JSON well formed, every entry
 * has a known dtype, integer non-negative shape, data_offsets [begin, end] with
 * end - begin == numel * size, no overflow, no overlap, entries inside the data section.
 * On success returns 0 with *out (malloc'd array, names malloc'd) and *n_out; caller frees
 * with safetensors_free_tensors(). On failure returns -1 with a message naming `filename`,
 * the tensor and expected versus found. Never reads outside buf[0..buf_len). */
int safetensors_parse_header(const uint8_t *buf, size_t buf_len, uint64_t file_size,
                             const char *filename, st_tensor **out, int *n_out);
void safetensors_free_tensors(st_tensor *t, int n);

/* Opens every safetensors file of a model directory: model.safetensors.index.json if present
 * (every file its weight_map names, and every name must be found in the file it points to),
 * else model.safetensors, else all *.safetensors in the directory. A tensor name present in
 * two files is an error. Returns 0 or -1 with a message. */
int safetensors_open_dir(const char *dir, safetensors_model *m);

/* Looks a tensor up by name; NULL if absent. */
const st_tensor *safetensors_find(const safetensors_model *m, const char *name);

void safetensors_close(safetensors_model *m);

#endif
