/* folio score: run a token sequence, print its perplexity, optionally write every position's
 * logits (float32 little-endian, row-major [n_tokens][vocab]). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "commands.h"
#include "error.h"
#include "model.h"
#include "sequence_runner.h"

enum { OPT_PROMPT_IDS = 1, OPT_LOGITS_OUT };

static const char USAGE[] =
    "usage: folio score --model DIR --prompt-ids 1,2,3 [--logits-out FILE]\n"
    "  --prompt-ids IDS         the token sequence (at least 2 ids for a perplexity)\n"
    "  --logits-out FILE        write logits of every position: float32 LE [n_tokens][vocab]\n"
    CLI_COMMON_HELP;

/* Perplexity of ids[1..n) given the logits of positions [0..n-1): exp(mean NLL). */
static double perplexity(const float *logits, const int32_t *ids, int n, int vocab) {
    double nll = 0.0;
    for (int t = 0; t + 1 < n; t++) {
        const float *row = logits + (size_t)t * vocab;
        float max = row[0];
        for (int i = 1; i < vocab; i++)
            if (row[i] > max) max = row[i];
        double sum = 0.0;
        for (int i = 0; i < vocab; i++) sum += exp((double)row[i] - max);
        nll += -((double)row[ids[t + 1]] - max - log(sum));
    }
    return exp(nll / (n - 1));
}

static int write_logits(const char *path, const float *logits, size_t count) {
    FILE *f = fopen(path, "wb");
    if (!f) return folio_fail("--logits-out: cannot open %s for writing", path);
    size_t wrote = fwrite(logits, sizeof(float), count, f);
    int closed = fclose(f);
    if (wrote != count || closed != 0)
        return folio_fail("--logits-out: writing %s failed (disk full?)", path);
    return 0;
}

int cmd_score(int argc, char **argv, comm_ctx *comm) {
    static const struct option longopts[] = {{"prompt-ids", required_argument, 0, OPT_PROMPT_IDS},
                                             {"logits-out", required_argument, 0, OPT_LOGITS_OUT},
                                             CLI_COMMON_OPTIONS,
                                             {0, 0, 0, 0}};
    common_options common;
    common_options_init(&common);
    int32_t *ids = NULL;
    int n = 0, id, rc = -1;
    const char *logits_out = NULL;
    float *logits = NULL;
    optind = 1;
    opterr = 0;
    while ((id = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        int c = cli_common_option(&common, id, optarg);
        if (c < 0) goto out;
        if (c > 0) continue;
        if (id == OPT_HELP) {
            fputs(USAGE, stdout);
            exit(0);
        } else if (id == OPT_PROMPT_IDS) {
            free(ids);
            if (cli_parse_ids("--prompt-ids", optarg, &ids, &n) != 0) goto out;
        } else if (id == OPT_LOGITS_OUT) {
            logits_out = optarg;
        } else {
            cli_bad_option("score", argv);
            goto out;
        }
    }
    if (!ids) {
        folio_fail("score: --prompt-ids is required");
        goto out;
    }
    if (cli_common_check(&common, "score") != 0) goto out;
    if (cli_start_rank(&common, comm) != 0) goto out;
    device_model m;
    device_options mo = cli_device_options(&common);
    if (device_model_open(common.model_dir, &mo, comm, &m) != 0) goto out;
    for (int i = 0; i < n; i++)
        if (ids[i] >= m.m.cfg.vocab) {
            folio_fail("--prompt-ids: id %d is outside the vocabulary (vocab_size %d)", ids[i],
                       m.m.cfg.vocab);
            goto close;
        }
    logits = folio_xmalloc(sizeof(float) * n * m.m.cfg.vocab);
    if (score_sequence(&m, comm, ids, n, 16, logits) != 0) goto close;
    if (comm->rank == 0) {
        if (n > 1)
            printf("perplexity %.6f over %d tokens\n", perplexity(logits, ids, n, m.m.cfg.vocab),
                   n - 1);
        else
            printf("perplexity n/a (a single token has nothing to predict)\n");
        if (logits_out && write_logits(logits_out, logits, (size_t)n * m.m.cfg.vocab) != 0)
            goto close;
    }
    rc = 0;
close:
    device_model_close(&m);
out:
    cli_stop_rank();
    free(logits);
    free(ids);
    return rc;
}
