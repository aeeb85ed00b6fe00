/* AWQ GEMM checkpoints (AutoAWQ, version "gemm"), 4-bit, per Linear module:
 *   qweight  I32 [in, out/8]          q of (out o, in i): word [i][o/8], nibble AWQ_POS[o%8]
 *   qzeros   I32 [in/group, out/8]    zero of (o, group g): word [g][o/8], same nibbles
 *   scales   F16 [in/group, out]
 * w = (q - zero) * scale. AutoAWQ packs the 8 outputs of a word in the order 0 2 4 6 1 3 5 7
 * (nibble k, bits 4k .. 4k+3, holds output 8j + ORDER[k]), so output 8j + m sits in nibble
 * AWQ_POS[m] = 0 4 1 5 2 6 3 7. */
#include "error.h"
#include "quant_load.h"

static const int AWQ_POS[8] = {0, 4, 1, 5, 2, 6, 3, 7};

static inline int awq_nibble(const st_tensor *t, int out, int row, int o) {
    uint32_t w = quant_word(t, (size_t)row * (out / 8) + o / 8);
    return (int)((w >> (4 * AWQ_POS[o % 8])) & 15u);
}

static void unpack(const st_tensor *qw, const st_tensor *qz, const st_tensor *sc,
                   quant_unpacked *u) {
    const uint16_t *s = sc->data;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < u->rows; r++) {
        const int o = u->r0 + r;
        for (int i = 0; i < u->in; i++)
            u->q[(size_t)r * u->in + i] = (uint8_t)awq_nibble(qw, u->out, i, o);
        for (int g = 0; g < u->groups; g++) {
            u->zeros[(size_t)r * u->groups + g] = (uint8_t)awq_nibble(qz, u->out, g, o);
            uint16_t h;
            memcpy(&h, &s[(size_t)g * u->out + o], 2);
            u->scales[(size_t)r * u->groups + g] = h;
        }
    }
}

int quant_read_awq(quant_loader *ql, quant_unpacked *u) {
    const st_tensor *qw = NULL, *qz = NULL, *sc = NULL;
    if (u->out % 8 != 0)
        return folio_fail("%s: layer '%s': AWQ packs 8 outputs a word, but it has %d", ql->dir,
                          u->module, u->out);
    if (quant_tensor(ql, u->module, "qweight", QT(ST_I32), 2, u->in, u->out / 8, true, &qw) ||
        quant_tensor(ql, u->module, "qzeros", QT(ST_I32), 2, u->groups, u->out / 8, true,
                     &qz) ||
        quant_tensor(ql, u->module, "scales", QT(ST_F16), 2, u->groups, u->out, true, &sc))
        return -1;
    u->file = qw->file;
    unpack(qw, qz, sc, u);
    return 0;
}
