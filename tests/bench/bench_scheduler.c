/* Rank-0 CPU time per decode step with 256 running sequences: schedule, build the step plan,
 * sample and update (stop checks, prefix-cache hashing of filled blocks), with a null forward
 * (the backend only fills logits, excluded from the time). Prints ms per step for a small
 * vocabulary (bookkeeping alone) and for a 32k / 128k vocabulary (greedy sampling included:
 * an argmax over the vocabulary per sequence on the CPU).
 *   usage: bench_scheduler [steps]     (ctest runs it with a few steps as a smoke test) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_loop.h"
#include "error.h"
#include "progress.h"

typedef struct {
    int vocab;
} null_model;

static int null_step(void *self, const step_plan *p, float *logits) {
    null_model *m = self;
    for (int r = 0; r < p->n_logits; r++) {
        float *row = logits + (size_t)r * m->vocab;
        memset(row, 0, sizeof(float) * m->vocab);
        row[(p->token_ids[p->logits_rows[r]] * 7 + 3) % m->vocab] = 1.0f;
    }
    return 0;
}

static double bench(int vocab, int steps, int n_seqs) {
    null_model m = {.vocab = vocab};
    int max_len = 32 + steps + 64;
    sched_config sc = {.block_size = 16, .max_num_seqs = n_seqs, .max_num_batched_tokens = 8192,
                       .max_model_len = max_len, .prefix_caching = true};
    sc.num_blocks = n_seqs * ((max_len + 15) / 16 + 1);
    int32_t eos = 2;
    engine_config ec = {.sched = sc, .vocab = vocab, .eos_ids = &eos, .n_eos = 1};
    engine *e = engine_create(&ec, (engine_backend){.self = &m, .step = null_step}, NULL, NULL);
    if (!e) {
        fprintf(stderr, "bench: %s\n", folio_last_error());
        exit(1);
    }
    int32_t prompt[32];
    for (int i = 0; i < n_seqs; i++) {
        for (int k = 0; k < 32; k++) prompt[k] = 3 + (i * 131 + k * 17) % (vocab - 3);
        request_params p;
        request_params_init(&p);
        p.sampling.temperature = 0;
        p.max_tokens = steps + 32;
        p.ignore_eos = true;
        if (engine_add(e, prompt, 32, &p, NULL, NULL) != 0) exit(1);
    }
    /* prefill everything first, then time decode steps only */
    while (sched_num_waiting(engine_scheduler(e)) > 0) engine_step(e);
    engine_step(e);
    const engine_stats *st = engine_get_stats(e);
    double cpu0 = st->cpu_s, t0 = folio_now();
    for (int s = 0; s < steps; s++)
        if (engine_step(e) != 0) exit(1);
    double per_step = (st->cpu_s - cpu0) / steps;
    printf("vocab %6d, %d running sequences: %.4f ms rank-0 CPU per decode step "
           "(wall %.4f ms with the null forward)\n", vocab, n_seqs, per_step * 1e3,
           (folio_now() - t0) / steps * 1e3);
    engine_free(e);
    return per_step;
}

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 1000;
    if (steps < 1) steps = 1;
    bench(8, steps, 256);
    bench(32000, steps, 256);
    bench(128256, steps / 4 + 1, 256);
    return 0;
}
