/* FOLIO_PROFILE=1 at creation: steps run eager with a CUDA event recorded after every launch;
 * after each step the time between consecutive events is charged to the launch's category,
 * prefill and decode steps apart, and forward_cuda_profile_print reports the means. */
#ifdef FOLIO_HAVE_CUDA

#include <stdlib.h>
#include <string.h>

#include "cuda_check.h"
#include "env.h"
#include "forward_cuda_internal.h"

static const char *const PROF_NAMES[PROF_COUNT] = {
    "embedding", "qkv GEMM", "rope+KV write", "attention", "o GEMM", "add+rmsnorm",
    "gate_up GEMM", "silu*mul", "down GEMM", "LM head GEMM", "argmax", "all-reduce (NCCL)",
    "all-reduce+norm (one-shot)", "logits all-gather"};

/* On with FOLIO_PROFILE set (and not "0"): the events, and eager steps. */
void fc_prof_init(forward_cuda *f) {
    const char *env = folio_env("FOLIO_PROFILE");
    f->prof.on = env && strcmp(env, "0") != 0;
    if (!f->prof.on) return;
    f->o.enforce_eager = true; /* events between launches: eager steps */
    for (int i = 0; i < MAX_PROF_EVENTS; i++) CUDA_CHECK(cudaEventCreate(&f->prof.ev[i]));
}

void fc_prof_free(forward_cuda *f) {
    if (!f->prof.on) return;
    for (int i = 0; i < MAX_PROF_EVENTS; i++) CUDA_CHECK(cudaEventDestroy(f->prof.ev[i]));
}

void fc_prof_mark(forward_cuda *f, prof_cat cat) {
    profile *p = &f->prof;
    if (!p->on || p->n_ev >= MAX_PROF_EVENTS) return;
    CUDA_CHECK(cudaEventRecord(p->ev[p->n_ev], f->stream));
    p->cat[p->n_ev++] = (int)cat;
}

/* After the step's stream is synchronised: charge each interval to its category. */
void fc_prof_collect(forward_cuda *f, bool decode) {
    profile *p = &f->prof;
    if (!p->on || p->n_ev < 2) return;
    for (int i = 1; i < p->n_ev; i++) {
        float ms = 0;
        CUDA_CHECK(cudaEventElapsedTime(&ms, p->ev[i - 1], p->ev[i]));
        p->ms[decode][p->cat[i]] += ms;
    }
    p->steps[decode]++;
    p->n_ev = 0;
}

void forward_cuda_profile_print(const forward_cuda *f, FILE *out) {
    const profile *p = &f->prof;
    if (!p->on) return;
    double total[2] = {0, 0};
    for (int k = 0; k < 2; k++)
        for (int c = 0; c < PROF_COUNT; c++) total[k] += p->ms[k][c];
    fprintf(out, "profile (CUDA events between launches, eager; ms per step)\n");
    fprintf(out, "  %-16s %14s %14s\n", "kernel", "prefill", "decode");
    for (int c = 0; c < PROF_COUNT; c++) {
        double v[2];
        for (int k = 0; k < 2; k++) v[k] = p->steps[k] ? p->ms[k][c] / p->steps[k] : 0.0;
        fprintf(out, "  %-16s %8.3f %4.1f%% %8.3f %4.1f%%\n", PROF_NAMES[c], v[0],
                total[0] > 0 ? 100.0 * p->ms[0][c] / total[0] : 0.0, v[1],
                total[1] > 0 ? 100.0 * p->ms[1][c] / total[1] : 0.0);
    }
    fprintf(out, "  %-16s %8.3f       %8.3f        (%d prefill, %d decode steps)\n", "total",
            p->steps[0] ? total[0] / p->steps[0] : 0.0, p->steps[1] ? total[1] / p->steps[1] : 0.0,
            p->steps[0], p->steps[1]);
}

#else
typedef int folio_forward_cuda_profile_unused; /* built without CUDA */
#endif
