/* compressed-tensors "pack-quantized" checkpoints (llm-compressor), 4- or 8-bit int weights
 * (per = 32 / bits values a word), per Linear module:
 *   weight_packed      I32 [out, in/per]     stored q of (o, i): word [o][i/per], bits
 *                                            (i%per)*bits
 *   weight_scale       F16/BF16/F32 [out, groups]   (strategy channel: [out, 1])
 *   weight_zero_point  I32 [ceil(out/per), groups]  asymmetric only: stored zero of (o, g):
 *                                            word [o/per][g], bits (o%per)*bits
 *   weight_shape       I32/I64 [2] = [out, in]
 *   weight_g_idx       I32 [in]              optional (actorder "group": required)
 * Values are signed in [-2^(bits-1), 2^(bits-1)) and packed as unsigned value + 2^(bits-1)
 * (pack_to_int32), zero points likewise, so with stored values q and z,
 * w = (q - 2^(bits-1) - (z - 2^(bits-1))) * scale = (q - z) * scale: Folio's q and zero are the
 * stored ones; symmetric: zero = 2^(bits-1). Scales are kept as fp16, each checked to convert
 * exactly. */
#include "dtype.h"
#include "error.h"
#include "quant_load.h"

static inline int field(uint32_t w, int bits, int i) {
    return (int)((w >> (bits * i)) & ((1u << bits) - 1u));
}

static int check_shape(const st_tensor *t, const quant_unpacked *u) {
    int64_t v[2];
    for (int i = 0; i < 2; i++) {
        if (t->dtype == ST_I64)
            memcpy(&v[i], (const char *)t->data + 8 * i, 8);
        else
            v[i] = (int32_t)quant_word(t, (size_t)i);
    }
    if (v[0] == u->out && v[1] == u->in) return 0;
    return folio_fail("%s: tensor '%s.weight_shape': expected [%d, %d] (from config.json), found "
                      "[%lld, %lld]", t->file, u->module, u->out, u->in, (long long)v[0],
                      (long long)v[1]);
}

static int read_scales(const st_tensor *t, quant_unpacked *u) {
    for (int r = 0; r < u->rows; r++)
        for (int g = 0; g < u->groups; g++) {
            float f = quant_float_at(t, (size_t)(u->r0 + r) * u->groups + g);
            uint16_t h = f32_to_f16(f);
            if (f16_to_f32(h) != f)
                return folio_fail("%s: tensor '%s.weight_scale': expected values fp16 can hold "
                                  "exactly (the kernels' scale type), found %g at [%d, %d]",
                                  t->file, u->module, (double)f, u->r0 + r, g);
            u->scales[(size_t)r * u->groups + g] = h;
        }
    return 0;
}

static void unpack(const st_tensor *wp, const st_tensor *zp, quant_unpacked *u) {
    const int per = 32 / u->bits, half = 1 << (u->bits - 1);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < u->rows; r++) {
        const int o = u->r0 + r;
        uint8_t *q = u->q + (size_t)r * u->in;
        for (int i = 0; i < u->in; i++)
            q[i] = (uint8_t)field(quant_word(wp, (size_t)o * (u->in / per) + i / per), u->bits,
                                  i % per);
        for (int g = 0; g < u->groups; g++)
            u->zeros[(size_t)r * u->groups + g] =
                (uint8_t)(zp ? field(quant_word(zp, (size_t)(o / per) * u->groups + g), u->bits,
                                     o % per)
                             : half);
    }
}

int quant_read_ct(quant_loader *ql, quant_unpacked *u) {
    const int per = 32 / u->bits;
    const st_tensor *wp = NULL, *sc = NULL, *zp = NULL, *shape = NULL;
    if (u->in % per != 0)
        return folio_fail("%s: layer '%s': pack-quantized packs %d values a word, but its input "
                          "size is %d", ql->dir, u->module, per, u->in);
    if (quant_tensor(ql, u->module, "weight_packed", QT(ST_I32), 2, u->out, u->in / per, true,
                     &wp) ||
        quant_tensor(ql, u->module, "weight_shape", QT(ST_I32) | QT(ST_I64), 1, 2, 0, true,
                     &shape) ||
        check_shape(shape, u) < 0 ||
        quant_tensor(ql, u->module, "weight_scale", QT(ST_F16) | QT(ST_BF16) | QT(ST_F32), 2,
                     u->out, u->groups, true, &sc) ||
        (!ql->qc->sym &&
         quant_tensor(ql, u->module, "weight_zero_point", QT(ST_I32), 2,
                      (u->out + per - 1) / per, u->groups, true, &zp)) ||
        quant_read_g_idx(ql, u, "weight_g_idx") < 0)
        return -1;
    u->file = wp->file;
    if (read_scales(sc, u) < 0) return -1;
    unpack(wp, zp, u);
    return 0;
}
