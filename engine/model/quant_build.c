/* This rank's quant_matrix from an unpacked Linear weight: its input columns (a row-parallel
 * layer keeps a slice: whole groups, or with act-order any columns, each partial group padded
 * to group_size), sorted by group so each group is contiguous (perm set when that reorders
 * them), and packed in Folio's layout (quant_layout.h). */
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

/* The shard's kernel columns: n_local groups of gs columns each. */
typedef struct {
    int gs, n_local, cols;
    int *global;                 /* [n_local]: the checkpoint group of each local group */
    int *order;                  /* [cols]: the shard input column of kernel column k, QL_PAD */
    int identity;                /* order is 0 .. cols - 1 (no perm needed) */
} shard_layout;

/* Whether u's groups are scattered over the inputs (act-order): the config says so, or the
 * stored g_idx is not the default c / group_size. */
static int scattered(const quant_loader *ql, const quant_unpacked *u) {
    if (ql->qc->act_order) return 1;
    for (int c = 0; u->g_idx_name && c < u->in; c++)
        if (u->g_idx[c] != c / u->group_size) return 1;
    return 0;
}

/* Counts the shard's columns of each group. A partial group (per-channel scales split freely)
 * is padded with act-order; without it, groups are contiguous and a row-parallel split must
 * fall on group boundaries. */
static int shard_groups(const quant_loader *ql, const quant_unpacked *u, int c0, int nc,
                        int *count) {
    for (int c = c0; c < c0 + nc; c++) count[u->g_idx[c]]++;
    if (u->groups == 1 || scattered(ql, u)) return 0;
    for (int g = 0; g < u->groups; g++)
        if (count[g] != 0 && count[g] != u->group_size)
            return folio_fail("%s: layer '%s': the row-parallel split over %d ranks cuts "
                              "quantization group %d (group_size %d): input columns %d .. %d "
                              "hold %d of its columns (expected all or none)", u->file,
                              u->module, ql->world, g, u->group_size, c0, c0 + nc - 1,
                              count[g]);
    return 0;
}

/* Local groups in checkpoint-group order, each gs kernel columns: the group's shard columns
 * in input order (a stable sort by group), then QL_PAD up to gs. */
static void sort_columns(const quant_unpacked *u, int c0, int nc, const int *count,
                         shard_layout *L) {
    int *start = folio_xcalloc((size_t)u->groups, sizeof *start);
    L->gs = u->groups == 1 ? nc : u->group_size;
    L->global = folio_xmalloc((size_t)u->groups * sizeof *L->global);
    L->n_local = 0;
    for (int g = 0; g < u->groups; g++) {
        if (!count[g]) continue;
        start[g] = L->n_local * L->gs;
        L->global[L->n_local++] = g;
    }
    L->cols = L->n_local * L->gs;
    L->order = folio_xmalloc((size_t)L->cols * sizeof *L->order);
    for (int k = 0; k < L->cols; k++) L->order[k] = QL_PAD;
    L->identity = L->cols == nc;
    for (int c = 0; c < nc; c++) {
        int k = start[u->g_idx[c0 + c]]++;
        L->order[k] = c;
        L->identity &= k == c;
    }
    free(start);
}

/* Padding columns take their group's zero: their weight is exactly 0. */
static void pack(const quant_unpacked *u, int c0, const shard_layout *L, quant_matrix *m) {
    for (int r = 0; r < m->rows; r++) {
        const uint8_t *q = u->q + (size_t)r * u->in + c0;
        const uint8_t *z = u->zeros + (size_t)r * u->groups;
        const uint16_t *s = u->scales + (size_t)r * u->groups;
        for (int l = 0; l < L->n_local; l++) {
            m->zeros[(size_t)r * L->n_local + l] = z[L->global[l]];
            m->scales[(size_t)r * L->n_local + l] = s[L->global[l]];
        }
        for (int k = 0; k < m->cols; k++) {
            const int c = L->order[k];
            ql_set(m, r, k, c == QL_PAD ? z[L->global[k / L->gs]] : q[c]);
        }
    }
}

static void alloc_matrix(const quant_unpacked *u, int nc, const shard_layout *L,
                         quant_matrix *m) {
    m->rows = u->rows;
    m->cols = L->cols;
    m->in_cols = nc;
    m->bits = u->bits;
    m->group_size = L->gs;
    m->qweight = folio_xcalloc((size_t)m->rows * ql_words_per_row(m), sizeof *m->qweight);
    m->zeros = folio_xmalloc((size_t)m->rows * ql_groups(m));
    m->scales = folio_xmalloc((size_t)m->rows * ql_groups(m) * sizeof *m->scales);
    if (!L->identity) {
        m->perm = folio_xmalloc((size_t)m->cols * sizeof *m->perm);
        for (int k = 0; k < m->cols; k++) m->perm[k] = L->order[k];
    }
}

int quant_build(const quant_loader *ql, const quant_unpacked *u, const tensor_spec *spec,
                quant_matrix *m) {
    const int c0 = spec->slice == SLICE_COLS ? (int)spec->start : 0;
    const int nc = spec->slice == SLICE_COLS ? (int)spec->count : u->in;
    int *count = folio_xcalloc((size_t)u->groups, sizeof *count);
    int *shard = folio_xcalloc((size_t)u->groups, sizeof *shard);
    shard_layout L = {0};
    int rc = check_g_idx(u, count);
    if (rc == 0) rc = shard_groups(ql, u, c0, nc, shard);
    if (rc == 0) sort_columns(u, c0, nc, shard, &L);
    if (rc == 0 && L.cols % ql_per_word(u->bits) != 0)
        rc = folio_fail("%s: layer '%s': this rank's %d input columns do not fill whole "
                        "%d-bit words", u->file, u->module, L.cols, u->bits);
    if (rc == 0) {
        alloc_matrix(u, nc, &L, m);
        pack(u, c0, &L, m);
    }
    free(count);
    free(shard);
    free(L.global);
    free(L.order);
    return rc;
}
