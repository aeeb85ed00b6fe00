/* RoPE inverse frequencies for each scaling type, and the cos/sin tables. */
#include <math.h>

#include "rope_tables.h"

static void default_inv_freq(double theta, int head_dim, double *f) {
    for (int i = 0; i < head_dim / 2; i++) {
        float exponent = (float)(2 * i) / (float)head_dim;   /* float32, as transformers */
        f[i] = 1.0 / (double)(float)pow(theta, (double)exponent);
    }
}

/* Llama 3.1: long wavelengths divided by factor, short ones kept, a smooth blend between. */
static void llama3_adjust(const rope_config *r, int head_dim, double *f) {
    double old_ctx = r->original_max_position;
    double low_wavelen = old_ctx / r->low_freq_factor;
    double high_wavelen = old_ctx / r->high_freq_factor;
    for (int i = 0; i < head_dim / 2; i++) {
        double wavelen = 2.0 * M_PI / f[i];
        if (wavelen > low_wavelen) {
            f[i] /= r->factor;
        } else if (wavelen >= high_wavelen) {
            double smooth = (old_ctx / wavelen - r->low_freq_factor) /
                            (r->high_freq_factor - r->low_freq_factor);
            f[i] = (1.0 - smooth) * f[i] / r->factor + smooth * f[i];
        }
    }
}

/* Dimension at which a wavelength makes num_rotations turns over the original context. */
static double yarn_correction_dim(double num_rotations, int dim, double base, double max_pos) {
    return dim * log(max_pos / (num_rotations * 2.0 * M_PI)) / (2.0 * log(base));
}

/* YaRN: interpolate (divide by factor) below the correction range, extrapolate (keep) above
 * it, with a linear ramp across it. */
static void yarn_adjust(const rope_config *r, int head_dim, double *f) {
    double low = yarn_correction_dim(r->beta_fast, head_dim, r->theta, r->original_max_position);
    double high = yarn_correction_dim(r->beta_slow, head_dim, r->theta, r->original_max_position);
    if (r->truncate) {
        low = floor(low);
        high = ceil(high);
    }
    if (low < 0) low = 0;
    if (high > head_dim - 1) high = head_dim - 1;
    if (low == high) high += 0.001;
    for (int i = 0; i < head_dim / 2; i++) {
        double ramp = ((double)i - low) / (high - low);
        ramp = ramp < 0 ? 0 : (ramp > 1 ? 1 : ramp);
        double extrapolation = 1.0 - ramp;
        f[i] = (f[i] / r->factor) * (1.0 - extrapolation) + f[i] * extrapolation;
    }
}

void rope_inv_freq(const rope_config *rope, int head_dim, float *inv_freq) {
    double f[MODEL_MAX_HEAD_DIM / 2];
    int half = head_dim / 2;
    default_inv_freq(rope->theta, head_dim, f);
    switch (rope->kind) {
    case ROPE_LINEAR:
        for (int i = 0; i < half; i++) f[i] /= rope->factor;
        break;
    case ROPE_LLAMA3: llama3_adjust(rope, head_dim, f); break;
    case ROPE_YARN: yarn_adjust(rope, head_dim, f); break;
    case ROPE_DEFAULT: break;
    }
    for (int i = 0; i < half; i++) inv_freq[i] = (float)f[i];
}

void rope_build_tables(const rope_config *rope, int head_dim, int n_positions, float *cos_table,
                       float *sin_table) {
    int half = head_dim / 2;
    float inv_freq[MODEL_MAX_HEAD_DIM / 2];
    rope_inv_freq(rope, head_dim, inv_freq);
    double scale = rope->kind == ROPE_YARN ? rope->attention_factor : 1.0;
    for (int p = 0; p < n_positions; p++) {
        for (int i = 0; i < half; i++) {
            float angle = (float)p * inv_freq[i];
            cos_table[(size_t)p * half + i] = (float)(cos((double)angle) * scale);
            sin_table[(size_t)p * half + i] = (float)(sin((double)angle) * scale);
        }
    }
}
