/* The sharded safetensors writer (st_writer, safetensors_write.h): holds one shard's tensors,
 * writes it when the next tensor would pass the size limit, names the shards at the end and
 * writes model.safetensors.index.json when there are several. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "error.h"
#include "grow.h"
#include "safetensors_write.h"

struct st_writer {
    char *dir;
    uint64_t max_bytes;
    st_out_tensor *pending;      /* this shard's tensors (names and data owned) */
    int n_pending, cap;
    uint64_t pending_bytes, total_bytes;
    int n_shards;                /* shards written so far */
    char **names;                /* every tensor written, and the shard (1-based) it is in */
    int *shard_of;
    int n_names, names_cap;
};

static char *shard_path(const st_writer *w, int shard, int of) {
    char buf[4096];
    if (of == 0) snprintf(buf, sizeof buf, "%s/model-%05d.safetensors.part", w->dir, shard);
    else if (of == 1) snprintf(buf, sizeof buf, "%s/model.safetensors", w->dir);
    else snprintf(buf, sizeof buf, "%s/model-%05d-of-%05d.safetensors", w->dir, shard, of);
    return folio_xstrdup(buf);
}

st_writer *st_writer_open(const char *dir, uint64_t max_shard_bytes) {
    st_writer *w = folio_xcalloc(1, sizeof *w);
    w->dir = folio_xstrdup(dir);
    w->max_bytes = max_shard_bytes ? max_shard_bytes : UINT64_MAX;
    return w;
}

static void drop_pending(st_writer *w) {
    for (int i = 0; i < w->n_pending; i++) {
        free((char *)w->pending[i].name);
        free((void *)w->pending[i].data);
    }
    w->n_pending = 0;
    w->pending_bytes = 0;
}

static int flush_shard(st_writer *w) {
    if (w->n_pending == 0) return 0;
    char *path = shard_path(w, w->n_shards + 1, 0);
    int rc = safetensors_write_file(path, w->pending, w->n_pending);
    free(path);
    if (rc != 0) return -1;
    w->n_shards++;
    for (int i = 0; i < w->n_pending; i++) {
        if (w->n_names == w->names_cap) {
            w->names_cap = (int)folio_grow_cap((size_t)w->names_cap, (size_t)w->n_names + 1);
            w->names = folio_xrealloc(w->names, (size_t)w->names_cap * sizeof *w->names);
            w->shard_of = folio_xrealloc(w->shard_of, (size_t)w->names_cap * sizeof(int));
        }
        w->names[w->n_names] = folio_xstrdup(w->pending[i].name);
        w->shard_of[w->n_names++] = w->n_shards;
    }
    drop_pending(w);
    return 0;
}

int st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim,
                  const int64_t *shape, const void *data, uint64_t nbytes) {
    if (ndim < 0 || ndim > ST_MAX_DIMS)
        return folio_fail("tensor '%s': %d dimensions (at most %d)", name, ndim, ST_MAX_DIMS);
    if (w->n_pending && w->pending_bytes + nbytes > w->max_bytes && flush_shard(w) != 0)
        return -1;
    FOLIO_GROW(w->pending, w->cap, w->n_pending + 1);
    st_out_tensor *t = &w->pending[w->n_pending++];
    *t = (st_out_tensor){.name = folio_xstrdup(name), .dtype = dtype, .ndim = ndim,
                         .nbytes = nbytes};
    for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
    void *copy = folio_xmalloc(nbytes ? nbytes : 1);
    if (nbytes) memcpy(copy, data, nbytes);
    t->data = copy;
    w->pending_bytes += nbytes;
    w->total_bytes += nbytes;
    return 0;
}

static int write_index(const st_writer *w) {
    json_t *map = json_object();
    for (int i = 0; i < w->n_names; i++) {
        char *file = shard_path(w, w->shard_of[i], w->n_shards);
        json_object_set_new(map, w->names[i], json_string(strrchr(file, '/') + 1));
        free(file);
    }
    json_t *root = json_pack("{s:{s:I}, s:o}", "metadata", "total_size",
                             (json_int_t)w->total_bytes, "weight_map", map);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", w->dir);
    int rc = json_dump_file(root, path, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(root);
    return rc == 0 ? 0 : folio_fail("%s: cannot write", path);
}

static int name_shards(const st_writer *w) {
    for (int s = 1; s <= w->n_shards; s++) {
        char *from = shard_path(w, s, 0), *to = shard_path(w, s, w->n_shards);
        int rc = rename(from, to);
        if (rc != 0) folio_fail("%s: cannot rename to %s: %s", from, to, strerror(errno));
        free(from);
        free(to);
        if (rc != 0) return -1;
    }
    return w->n_shards > 1 ? write_index(w) : 0;
}

static void writer_free(st_writer *w) {
    drop_pending(w);
    for (int i = 0; i < w->n_names; i++) free(w->names[i]);
    free(w->names);
    free(w->shard_of);
    free(w->pending);
    free(w->dir);
    free(w);
}

int st_writer_close(st_writer *w, int *n_files) {
    int rc = flush_shard(w);
    if (rc == 0 && w->n_shards == 0) { /* no tensors: still one (empty) file */
        char *path = shard_path(w, 1, 0);
        rc = safetensors_write_file(path, NULL, 0);
        free(path);
        if (rc == 0) w->n_shards = 1;
    }
    if (rc == 0) rc = name_shards(w);
    if (n_files) *n_files = rc == 0 ? w->n_shards : 0;
    if (rc != 0) st_writer_abort(w);
    else writer_free(w);
    return rc;
}

void st_writer_abort(st_writer *w) {
    for (int s = 1; s <= w->n_shards; s++) {
        char *path = shard_path(w, s, 0);
        remove(path);
        free(path);
    }
    writer_free(w);
}
