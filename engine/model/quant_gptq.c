/* GPTQ checkpoints (AutoGPTQ / GPTQModel), 4- or 8-bit (per = 32 / bits values a word), per
 * Linear module:
 *   qweight  I32 [in/per, out]          q of (out o, in i): word [i/per][o], bits (i%per)*bits
 *   qzeros   I32 [groups, out/per]      stored zero of (o, g): word [g][o/per], bits (o%per)*bits
 *   scales   F16 [groups, out]
 *   g_idx    I32 [in]                   group of each input (desc_act: any grouping; optional
 *                                       without desc_act, then i / group_size)
 * w = (q - zero) * scale[g_idx[i]]. checkpoint_format "gptq" (v1) stores zero - 1, so zero =
 * (stored + 1) mod 2^bits; "gptq_v2" stores the zero. A symmetric checkpoint tells which from
 * its data: v1 stores 2^(bits-1) - 1 in every zero, v2 2^(bits-1); when that disagrees with
 * the label the data wins and a note says so. */
#include "error.h"
#include "quant_load.h"

static inline int field(uint32_t w, int bits, int i) {
    return (int)((w >> (bits * i)) & ((1u << bits) - 1u));
}

/* v2 (true) or v1 as the checkpoint's symmetric zeros show it; the label otherwise. */
static bool zeros_v2(quant_loader *ql, const quant_unpacked *u, const st_tensor *qz) {
    const bool label = ql->qc->gptq_v2;
    if (!ql->qc->sym) return label;
    const int per = 32 / u->bits, half = 1 << (u->bits - 1);
    int all_v1 = 1, all_v2 = 1;
    for (int g = 0; g < u->groups; g++)
        for (int o = 0; o < u->out; o++) {
            int z = field(quant_word(qz, (size_t)g * (u->out / per) + o / per), u->bits, o % per);
            all_v1 &= z == half - 1;
            all_v2 &= z == half;
        }
    if (all_v1 && label)
        quant_note(ql, "%s: '%s' is labelled checkpoint_format gptq_v2, but its symmetric "
                   "zeros are stored as %d (gptq v1): assumed gptq (v1)", qz->file, u->module,
                   half - 1);
    if (all_v2 && !label)
        quant_note(ql, "%s: '%s' is labelled checkpoint_format gptq (v1), but its symmetric "
                   "zeros are stored as %d (gptq_v2): assumed gptq_v2", qz->file, u->module,
                   half);
    return all_v1 ? false : all_v2 ? true : label;
}

static void unpack(const st_tensor *qw, const st_tensor *qz, const st_tensor *sc, bool v2,
                   quant_unpacked *u) {
    const int per = 32 / u->bits, mask = (1 << u->bits) - 1;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < u->rows; r++) {
        const int o = u->r0 + r;
        uint8_t *q = u->q + (size_t)r * u->in;
        for (int i = 0; i < u->in; i++)
            q[i] = (uint8_t)field(quant_word(qw, (size_t)(i / per) * u->out + o), u->bits,
                                  i % per);
        for (int g = 0; g < u->groups; g++) {
            int z = field(quant_word(qz, (size_t)g * (u->out / per) + o / per), u->bits, o % per);
            u->zeros[(size_t)r * u->groups + g] = (uint8_t)(v2 ? z : (z + 1) & mask);
            memcpy(&u->scales[(size_t)r * u->groups + g],
                   (const uint16_t *)sc->data + (size_t)g * u->out + o, 2);
        }
    }
}

int quant_read_gptq(quant_loader *ql, quant_unpacked *u) {
    const int per = 32 / u->bits;
    const st_tensor *qw = NULL, *qz = NULL, *sc = NULL;
    if (u->in % per != 0 || u->out % per != 0)
        return folio_fail("%s: layer '%s': GPTQ packs %d values a word, but it is [%d, %d]",
                          ql->dir, u->module, per, u->out, u->in);
    if (quant_tensor(ql, u->module, "qweight", QT(ST_I32), 2, u->in / per, u->out, true, &qw) ||
        quant_tensor(ql, u->module, "qzeros", QT(ST_I32), 2, u->groups, u->out / per, true,
                     &qz) ||
        quant_tensor(ql, u->module, "scales", QT(ST_F16), 2, u->groups, u->out, true, &sc) ||
        quant_read_g_idx(ql, u, "g_idx") < 0)
        return -1;
    u->file = qw->file;
    unpack(qw, qz, sc, zeros_v2(ql, u, qz), u);
    return 0;
}
