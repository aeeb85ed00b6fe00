/* The mock model: logits from a hash of the history read through the block tables. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock_model.h"
#include "hash.h"
#include "sample_rows.h"

static uint64_t history_hash(const int32_t *ids, int n) {
    uint64_t h = 0x1234567ull;
    for (int i = 0; i < n; i++) h = folio_mix64(h ^ (uint64_t)(uint32_t)ids[i]) + (uint64_t)i;
    return h;
}

static void logits_of_hash(uint64_t h, int vocab, float *row) {
    for (int v = 0; v < vocab; v++)
        row[v] = (float)(folio_mix64(h + (uint64_t)v * FOLIO_GOLDEN64) >> 40) * (8.0f / 16777216.0f);
}

void mock_logits(const int32_t *ids, int n, int vocab, float *row) {
    logits_of_hash(history_hash(ids, n), vocab, row);
}

void mock_model_init(mock_model *m, int vocab, int num_blocks, int block_size) {
    memset(m, 0, sizeof *m);
    m->vocab = vocab;
    m->num_blocks = num_blocks;
    m->block_size = block_size;
    size_t n = (size_t)num_blocks * block_size;
    m->slot_tok = malloc(sizeof(int32_t) * n);
    m->slot_pos = malloc(sizeof(int32_t) * n);
    memset(m->slot_tok, 0xff, sizeof(int32_t) * n);
    memset(m->slot_pos, 0xff, sizeof(int32_t) * n);
}

void mock_model_free(mock_model *m) {
    free(m->slot_tok);
    free(m->slot_pos);
}

static int mock_fail(mock_model *m, const char *msg, long long a, long long b) {
    snprintf(m->error, sizeof m->error, "mock model step %lld: %s (%lld, %lld)",
             (long long)m->steps, msg, a, b);
    return -1;
}

static int mock_step(void *self, const step_plan *p, float *logits) {
    mock_model *m = self;
    int bs = m->block_size;
    for (int i = 0; i < p->n_copies; i++) {
        size_t d = (size_t)p->copy_dst[i] * bs, s = (size_t)p->copy_src[i] * bs;
        memcpy(m->slot_tok + d, m->slot_tok + s, sizeof(int32_t) * bs);
        memcpy(m->slot_pos + d, m->slot_pos + s, sizeof(int32_t) * bs);
    }
    for (int t = 0; t < p->n_tokens; t++) {
        m->slot_tok[p->slot_mapping[t]] = p->token_ids[t];
        m->slot_pos[p->slot_mapping[t]] = p->positions[t];
    }
    int32_t *hist = malloc(sizeof(int32_t) * ((size_t)p->max_blocks * bs + 1));
    int seq = 0;
    for (int r = 0; r < p->n_logits; r++) {
        int row = p->logits_rows[r];
        while (p->seq_start[seq + 1] <= row) seq++;
        const int32_t *table = p->block_tables + (size_t)seq * p->max_blocks;
        int pos = p->positions[row];
        for (int q = 0; q <= pos; q++) {
            int64_t slot = (int64_t)table[q / bs] * bs + q % bs;
            if (m->slot_pos[slot] != q) {
                free(hist);
                return mock_fail(m, "slot holds another position (position, found)", q,
                                 m->slot_pos[slot]);
            }
            hist[q] = m->slot_tok[slot];
        }
        mock_logits(hist, pos + 1, m->vocab, logits + (size_t)r * m->vocab);
    }
    free(hist);
    m->steps++;
    m->tokens += p->n_tokens;
    return 0;
}

engine_backend mock_backend(mock_model *m) { return (engine_backend){.self = m, .step = mock_step}; }

/* step, then the rows sampled by the GPU sampler's CPU twin; only ids (and the chosen
 * token's logprob) go back, as from the CUDA backend. */
static int mock_step_sample(void *self, const step_plan *p, const sample_row_params *params,
                            const sample_entry *entries, int n_entries, int32_t *ids,
                            float *logprobs) {
    mock_model *m = self;
    float *logits = malloc(sizeof(float) * (size_t)(p->n_logits ? p->n_logits : 1) * m->vocab);
    sample_entry *scratch = malloc(sizeof *scratch * (size_t)(n_entries ? n_entries : 1));
    if (n_entries) memcpy(scratch, entries, sizeof *scratch * (size_t)n_entries);
    int rc = mock_step(self, p, logits);
    if (rc == 0) sample_rows_cpu(ids, logprobs, logits, p->n_logits, m->vocab, params, scratch);
    free(scratch);
    free(logits);
    return rc;
}

engine_backend mock_backend_sampling(mock_model *m) {
    return (engine_backend){.self = m, .step = mock_step, .step_sample = mock_step_sample};
}

static bool in(const int32_t *a, int n, int32_t x) {
    for (int i = 0; i < n; i++)
        if (a[i] == x) return true;
    return false;
}

int mock_reference_greedy(const int32_t *prompt, int n_prompt, int max_tokens, bool ignore_eos,
                          const int32_t *eos, int n_eos, const int32_t *stop_ids, int n_stop,
                          int max_model_len, int vocab, int32_t *out) {
    int32_t *ids = malloc(sizeof(int32_t) * ((size_t)n_prompt + max_tokens));
    float *row = malloc(sizeof(float) * vocab);
    memcpy(ids, prompt, sizeof(int32_t) * n_prompt);
    int n = n_prompt, g = 0;
    while (g < max_tokens) {
        mock_logits(ids, n, vocab, row);
        int best = 0;
        for (int v = 1; v < vocab; v++)
            if (row[v] > row[best]) best = v;
        ids[n++] = out[g++] = best;
        if ((!ignore_eos && in(eos, n_eos, best)) || in(stop_ids, n_stop, best) ||
            n >= max_model_len)
            break;
    }
    free(ids);
    free(row);
    return g;
}
