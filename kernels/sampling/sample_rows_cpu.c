/* Host twin of sample_rows_cuda (kernels/sampling.cu): the same per-row algorithm
 * (kernels/sample_rows.h) written plainly, so its ids match the GPU's bit for bit. Also the
 * engine's one host sampler (engine_loop.c, sequence_runner.c): every backend draws alike.
 * Thresholds are found by sorting keys here (radix selection on the GPU): both give the k-th
 * largest key and the largest key whose upper set reaches the top-p target, exactly. */
#include <stdlib.h>

#include "sample_rows.h"

static int key_desc(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? 1 : (x > y ? -1 : 0);
}

static int argmax_row(const float *row, int vocab) {
    /* as the GPU: the largest number, lowest id on ties, NaN never chosen over a number */
    int bi = 0;
    for (int i = 1; i < vocab; i++) {
        float v = row[i], bv = row[bi];
        if (v > bv || (bv != bv && v == v)) bi = i;
    }
    return bi;
}

/* pairs sorted by key, descending, for the top-p walk */
typedef struct {
    uint32_t key;
    uint32_t pad;
    uint64_t w;
} key_weight;

static int kw_desc(const void *a, const void *b) {
    return key_desc(&((const key_weight *)a)->key, &((const key_weight *)b)->key);
}

static int sample_row(const float *row, int vocab, const sample_row_params *p) {
    const int best = argmax_row(row, vocab);
    if (p->temperature == 0.0f) return best;
    const float max = row[best];
    uint32_t *key = malloc(sizeof *key * vocab);
    uint64_t *w = malloc(sizeof *w * vocab);
    unsigned char *kept = malloc((size_t)vocab);
    for (int i = 0; i < vocab; i++) {
        float e = sr_rel_prob(row[i], max, p->temperature);
        key[i] = sr_float_bits(e);
        w[i] = sr_weight(e);
        kept[i] = !(p->min_p > 0.0f) || e >= p->min_p;
    }
    if (p->top_k > 0 && p->top_k < vocab) {
        uint32_t *s = malloc(sizeof *s * vocab);
        memcpy(s, key, sizeof *s * vocab);
        qsort(s, vocab, sizeof *s, key_desc);
        const uint32_t kth = s[p->top_k - 1];
        for (int i = 0; i < vocab; i++) kept[i] &= key[i] >= kth;
        free(s);
    }
    if (p->top_p < 1.0f) {
        key_weight *s = malloc(sizeof *s * vocab);
        int m = 0;
        uint64_t total = 0;
        for (int i = 0; i < vocab; i++)
            if (kept[i]) {
                s[m++] = (key_weight){.key = key[i], .w = w[i]};
                total += w[i];
            }
        qsort(s, m, sizeof *s, kw_desc);
        const uint64_t target = sr_top_p_target(p->top_p, total);
        uint64_t acc = 0;
        uint32_t thr = 0;
        for (int i = 0; i < m; i++) {
            acc += s[i].w;
            thr = s[i].key;
            if (acc >= target) break;
        }
        for (int i = 0; i < vocab; i++) kept[i] &= key[i] >= thr;
        free(s);
    }
    uint64_t total = 0;
    for (int i = 0; i < vocab; i++)
        if (kept[i]) total += w[i];
    const uint64_t r = sr_draw(p->seed, p->counter, total);
    uint64_t acc = 0;
    int id = best;
    for (int i = 0; i < vocab; i++)
        if (kept[i] && (acc += w[i]) > r) {
            id = i;
            break;
        }
    free(key);
    free(w);
    free(kept);
    return id;
}

void sample_rows_cpu(int32_t *ids, float *logprobs, float *logits, int n, int vocab,
                     const sample_row_params *params, sample_entry *entries) {
    for (int r = 0; r < n; r++) {
        const sample_row_params *p = &params[r];
        float *row = logits + (size_t)r * vocab;
        double lse = 0.0;
        if (logprobs) { /* over the raw row, as sampler_logprobs */
            float max = row[argmax_row(row, vocab)];
            double sum = 0.0;
            for (int i = 0; i < vocab; i++) sum += exp((double)row[i] - max);
            lse = max + log(sum);
        }
        for (int j = 0; j < p->n_entries; j++) {
            sample_entry *e = &entries[p->entry_start + j];
            e->raw = row[e->token];
            row[e->token] = sr_apply_entry(row[e->token], e, p);
        }
        const int id = sample_row(row, vocab, p);
        ids[r] = id;
        if (logprobs) {
            float raw = row[id];
            for (int j = 0; j < p->n_entries; j++)
                if (entries[p->entry_start + j].token == id) raw = entries[p->entry_start + j].raw;
            logprobs[r] = (float)(raw - lse);
        }
    }
}
