/* This rank's quant_matrix from an unpacked Linear weight: its input columns (a row-parallel
 * layer keeps a slice of whole groups), sorted by group so each group is contiguous (perm set
 * when that reorders them), and packed in Folio's layout (quant_layout.h). */
#include <stdlib.h>

#include "error.h"
#include "quant_load.h"

/* Every g_idx value names a group, and every group has exactly group_size columns. */
static int check_g_idx(const quant_unpacked *u, int *count) {
    if (!u->g_idx_name) return 0; /* the default, c / group_size */
    for (int c = 0; c < u->in; c++) {
        if (u->g_idx[c] < 0 || u->g_idx[c] >= u->groups)
            return folio_fail("%s: tensor '%s.%s': expected groups 0 .. %d, found %d at "
                              "input %d", u->file, u->module, u->g_idx_name, u->groups - 1,
                              u->g_idx[c], c);
        count[u->g_idx[c]]++;
    }
    for (int g = 0; g < u->groups; g++)
        if (count[g] != u->group_size)
            return folio_fail("%s: tensor '%s.%s': expected %d input columns in every group "
                              "(group_size), found %d in group %d", u->file, u->module,
                              u->g_idx_name, u->group_size, count[g], g);
    return 0;
}

/* Counts the shard's columns of each group; a row-parallel shard must hold groups whole
 * (per-channel scales split freely). */
static int shard_groups(const quant_loader *ql, const quant_unpacked *u, int c0, int nc,
                        int *count) {
    for (int c = c0; c < c0 + nc; c++) count[u->g_idx[c]]++;
    for (int g = 0; u->groups > 1 && g < u->groups; g++)
        if (count[g] != 0 && count[g] != u->group_size)
            return folio_fail("%s: layer '%s': the row-parallel split over %d ranks cuts "
                              "quantization group %d (group_size %d): input columns %d .. %d "
                              "hold %d of its columns (expected all or none)", u->file,
                              u->module, ql->world, g, u->group_size, c0, c0 + nc - 1,
                              count[g]);
    return 0;
}

/* order[k]: the shard input column of kernel column k (a stable sort by group); local[g]: the
 * shard's index of global group g. Returns whether the order is the identity. */
static int sort_columns(const quant_unpacked *u, int c0, int nc, const int *count,
                        int *local, int *order, int *n_local) {
    int *start = folio_xcalloc((size_t)u->groups + 1, sizeof *start);
    *n_local = 0;
    for (int g = 0, at = 0; g < u->groups; g++) {
        local[g] = count[g] ? (*n_local)++ : -1;
        start[g] = at;
        at += count[g];
    }
    int identity = 1;
    for (int c = 0; c < nc; c++) {
        int k = start[u->g_idx[c0 + c]]++;
        order[k] = c;
        identity &= k == c;
    }
    free(start);
    return identity;
}

static void pack(const quant_unpacked *u, int c0, const int *order, const int *local,
                 quant_matrix *m) {
    const int lg = ql_groups(m);
    for (int r = 0; r < m->rows; r++) {
        const uint8_t *q = u->q + (size_t)r * u->in + c0;
        for (int k = 0; k < m->cols; k++) ql_set(m, r, k, q[order[k]]);
        for (int g = 0; g < u->groups; g++) {
            if (local[g] < 0) continue;
            m->zeros[(size_t)r * lg + local[g]] = u->zeros[(size_t)r * u->groups + g];
            m->scales[(size_t)r * lg + local[g]] = u->scales[(size_t)r * u->groups + g];
        }
    }
}

static void alloc_matrix(const quant_unpacked *u, int nc, int group_size, quant_matrix *m) {
    m->rows = u->rows;
    m->cols = nc;
    m->bits = u->bits;
    m->group_size = group_size;
    m->qweight = folio_xcalloc((size_t)m->rows * ql_words_per_row(m), sizeof *m->qweight);
    m->zeros = folio_xmalloc((size_t)m->rows * ql_groups(m));
    m->scales = folio_xmalloc((size_t)m->rows * ql_groups(m) * sizeof *m->scales);
}

int quant_build(const quant_loader *ql, const quant_unpacked *u, const tensor_spec *spec,
                quant_matrix *m) {
    const int c0 = spec->slice == SLICE_COLS ? (int)spec->start : 0;
    const int nc = spec->slice == SLICE_COLS ? (int)spec->count : u->in;
    int *count = folio_xcalloc((size_t)u->groups, sizeof *count);
    int *shard = folio_xcalloc((size_t)u->groups, sizeof *shard);
    int *local = folio_xmalloc((size_t)u->groups * sizeof *local);
    int *order = folio_xmalloc((size_t)nc * sizeof *order);
    int rc = check_g_idx(u, count);
    if (rc == 0) rc = shard_groups(ql, u, c0, nc, shard);
    if (rc == 0 && nc % ql_per_word(u->bits) != 0)
        rc = folio_fail("%s: layer '%s': this rank's %d input columns do not fill whole "
                        "%d-bit words", u->file, u->module, nc, u->bits);
    if (rc == 0) {
        int n_local = 0;
        int identity = sort_columns(u, c0, nc, shard, local, order, &n_local);
        alloc_matrix(u, nc, nc / n_local, m);
        pack(u, c0, order, local, m);
        if (!identity) {
            m->perm = folio_xmalloc((size_t)nc * sizeof *m->perm);
            for (int k = 0; k < nc; k++) m->perm[k] = order[k];
        }
    }
    free(count);
    free(shard);
    free(local);
    free(order);
    return rc;
}
