/* folio score: run a token sequence, print its perplexity, optionally write every position's
 * logits (float32 little-endian, row-major [n_tokens][vocab]); or the perplexity of a text
 * file of any length, in sliding windows of the model's context (score_windows). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "error.h"
#include "model.h"
#include "sequence_runner.h"
#include "tokenizer.h"

enum { OPT_PROMPT_IDS = 1, OPT_LOGITS_OUT, OPT_TEXT, OPT_WINDOW, OPT_STRIDE };

static const char USAGE[] =
    "usage: folio score --model DIR (--prompt-ids 1,2,3 [--logits-out FILE] | --text FILE\n"
    "                   [--window N] [--stride N])\n"
    "  --prompt-ids IDS         the token sequence (at least 2 ids for a perplexity)\n"
    "  --logits-out FILE        write logits of every position: float32 LE [n_tokens][vocab]\n"
    "  --text FILE              the perplexity of a text (tokenized with the model's tokenizer,\n"
    "                           BOS first where it adds one), in sliding windows\n"
    "  --window N               tokens per window (default: the model's context, at most 4096)\n"
    "  --stride N               tokens from one window to the next (default: window / 2); each\n"
    "                           window predicts only the tokens past the previous one\n"
    CLI_COMMON_HELP;

/* --window's default: the context, capped so a long-context model scores in sensible time. */
#define SCORE_MAX_WINDOW 4096

/* Perplexity of ids[1..n) given the logits of positions [0..n-1): exp(mean NLL). */
static double perplexity(const float *logits, const int32_t *ids, int n, int vocab) {
    double nll = 0.0;
    for (int t = 0; t + 1 < n; t++) nll += token_nll(logits + (size_t)t * vocab, vocab, ids[t + 1]);
    return exp(nll / (n - 1));
}

static int encode_file(const char *model_dir, const char *path, int32_t **ids, int *n) {
    text_buf text = {0};
    token_ids t = {0};
    tokenizer *tok = NULL;
    int rc = text_buf_read_file(&text, path);
    if (rc == 0) rc = tokenizer_load(model_dir, &tok);
    if (rc == 0) {
        rc = tokenizer_encode(tok, text.s, text.len, true, &t);
        tokenizer_free(tok);
    }
    text_buf_free(&text);
    *ids = t.ids;
    *n = (int)t.n;
    return rc;
}

/* The text's perplexity over windows, printed on rank 0. */
static int score_text(const device_model *m, comm_ctx *comm, const char *path,
                      const int32_t *ids, int n, int window, int stride) {
    const int ctx = m->m.cfg.max_position;
    if (window == 0) window = ctx < SCORE_MAX_WINDOW ? ctx : SCORE_MAX_WINDOW;
    if (stride == 0) stride = window / 2 > 0 ? window / 2 : 1;
    double nll;
    if (score_windows(m, comm, ids, n, window, stride, 16, true, &nll) != 0)
        return folio_fail_context("--text %s", path);
    if (comm->rank == 0)
        printf("perplexity %.6f over %d tokens of %s (windows of %d tokens, stride %d)\n",
               exp(nll / (n - 1)), n - 1, path, window, stride);
    return 0;
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
                                             {"text", required_argument, 0, OPT_TEXT},
                                             {"window", required_argument, 0, OPT_WINDOW},
                                             {"stride", required_argument, 0, OPT_STRIDE},
                                             CLI_COMMON_OPTIONS,
                                             {0, 0, 0, 0}};
    common_options common;
    common_options_init(&common);
    int32_t *ids = NULL;
    int n = 0, id, rc = -1;
    const char *logits_out = NULL, *text = NULL;
    long long window = 0, stride = 0;
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
        } else if (id == OPT_TEXT) {
            text = optarg;
        } else if (id == OPT_WINDOW || id == OPT_STRIDE) {
            if (cli_parse_int(id == OPT_WINDOW ? "--window" : "--stride", optarg, 1, 1 << 30,
                              id == OPT_WINDOW ? &window : &stride) != 0)
                goto out;
        } else {
            cli_unknown_option("score", argv, longopts);
            goto out;
        }
    }
    if (!ids == !text) {
        folio_fail("score: give --prompt-ids or --text (one of them)");
        goto out;
    }
    if (text && logits_out) {
        folio_fail("score: --logits-out goes with --prompt-ids, not --text");
        goto out;
    }
    if (!text && (window || stride)) {
        folio_fail("score: --window and --stride go with --text");
        goto out;
    }
    if (cli_common_check(&common, "score") != 0) goto out;
    if (text && encode_file(common.model_dir, text, &ids, &n) != 0) goto out;
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
    if (text) {
        rc = score_text(&m, comm, text, ids, n, (int)window, (int)stride);
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
