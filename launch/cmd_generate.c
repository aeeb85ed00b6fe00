/* folio generate: run a prompt through the model and print what it generates. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "error.h"
#include "model.h"
#include "sequence_runner.h"
#include "tokenizer.h"

enum { OPT_PROMPT = 1, OPT_PROMPT_IDS, OPT_MAX_TOKENS, OPT_TEMPERATURE, OPT_TOP_P, OPT_TOP_K,
       OPT_SEED, OPT_IGNORE_EOS, OPT_PRINT_IDS, OPT_BLOCK_SIZE };

static const char USAGE[] =
    "usage: folio generate --model DIR (--prompt TEXT | --prompt-ids 1,2,3) [options]\n"
    "  --prompt TEXT            text prompt (encoded with the model's tokenizer.json)\n"
    "  --prompt-ids IDS         comma-separated prompt token ids (default: the BOS id)\n"
    "  --max-tokens N           tokens to generate (default: 256, or what the context allows)\n"
    "  --temperature T          0 = greedy (default 1.0)\n"
    "  --top-p P                nucleus sampling (default 1.0 = off)\n"
    "  --top-k K                keep the K most likely tokens (default 0 = off)\n"
    "  --seed S                 random seed (default: from the clock)\n"
    "  --ignore-eos             keep generating past end-of-sequence tokens\n"
    "  --print-ids              print only the generated ids, space-separated, on one line\n"
    "                           (default: the generated text, streamed as it comes)\n"
    "  --block-size N           KV cache block size in tokens (default 16)\n" CLI_COMMON_HELP;

typedef struct {
    common_options common;
    const char *prompt_text;
    int32_t *prompt_ids;
    int n_prompt;
    long long max_tokens;        /* -1: not given */
    run_options run;
    int print_ids;
} generate_args;

static int parse_args(int argc, char **argv, generate_args *a) {
    static const struct option longopts[] = {
        {"prompt", required_argument, 0, OPT_PROMPT},
        {"prompt-ids", required_argument, 0, OPT_PROMPT_IDS},
        {"max-tokens", required_argument, 0, OPT_MAX_TOKENS},
        {"temperature", required_argument, 0, OPT_TEMPERATURE},
        {"top-p", required_argument, 0, OPT_TOP_P},
        {"top-k", required_argument, 0, OPT_TOP_K},
        {"seed", required_argument, 0, OPT_SEED},
        {"ignore-eos", no_argument, 0, OPT_IGNORE_EOS},
        {"print-ids", no_argument, 0, OPT_PRINT_IDS},
        {"block-size", required_argument, 0, OPT_BLOCK_SIZE},
        CLI_COMMON_OPTIONS,
        {0, 0, 0, 0}};
    common_options_init(&a->common);
    a->max_tokens = -1;
    a->run = (run_options){.sampling = {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f},
                           .seed = (uint64_t)time(NULL), .block_size = 16};
    double d;
    long long v;
    int id;
    optind = 1;
    opterr = 0;
    while ((id = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        int rc = cli_common_option(&a->common, id, optarg);
        if (rc < 0) return -1;
        if (rc > 0) continue;
        switch (id) {
        case OPT_HELP: fputs(USAGE, stdout); exit(0);
        case OPT_PROMPT: a->prompt_text = optarg; break;
        case OPT_PROMPT_IDS:
            free(a->prompt_ids);
            if (cli_parse_ids("--prompt-ids", optarg, &a->prompt_ids, &a->n_prompt) != 0)
                return -1;
            break;
        case OPT_MAX_TOKENS:
            if (cli_parse_int("--max-tokens", optarg, 0, 1 << 30, &a->max_tokens) != 0) return -1;
            break;
        case OPT_TEMPERATURE:
            if (cli_parse_float("--temperature", optarg, 0, 1e6, &d) != 0) return -1;
            a->run.sampling.temperature = (float)d;
            break;
        case OPT_TOP_P:
            if (cli_parse_float("--top-p", optarg, 1e-9, 1, &d) != 0) return -1;
            a->run.sampling.top_p = (float)d;
            break;
        case OPT_TOP_K:
            if (cli_parse_int("--top-k", optarg, 0, 1 << 30, &v) != 0) return -1;
            a->run.sampling.top_k = (int)v;
            break;
        case OPT_SEED:
            if (cli_parse_int("--seed", optarg, 0, INT64_MAX, &v) != 0) return -1;
            a->run.seed = (uint64_t)v;
            break;
        case OPT_IGNORE_EOS: a->run.ignore_eos = true; break;
        case OPT_PRINT_IDS: a->print_ids = 1; break;
        case OPT_BLOCK_SIZE:
            if (cli_parse_int("--block-size", optarg, 1, 1024, &v) != 0) return -1;
            a->run.block_size = (int)v;
            break;
        default: return cli_bad_option("generate", argv);
        }
    }
    if (optind < argc)
        return folio_fail("generate: unexpected argument '%s' (see folio generate --help)",
                          argv[optind]);
    if (a->prompt_text && a->prompt_ids)
        return folio_fail("generate: give --prompt or --prompt-ids, not both");
    return cli_common_check(&a->common, "generate");
}

/* Loads DIR's tokenizer when text is involved: for --prompt (required) and for printing text
 * (optional: without tokenizer.json the ids are printed). */
static int open_tokenizer(const generate_args *a, tokenizer **tok) {
    *tok = NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", a->common.model_dir);
    bool needed = a->prompt_text != NULL, wanted = needed || !a->print_ids;
    if (!wanted || (!needed && access(path, R_OK) != 0)) return 0;
    if (needed && access(path, R_OK) != 0)
        return folio_fail("generate: --prompt needs %s (not found); give --prompt-ids instead",
                          path);
    return tokenizer_load(a->common.model_dir, tok);
}

/* The prompt as ids: --prompt (encoded), --prompt-ids, or the BOS id alone. */
static int resolve_prompt(generate_args *a, const model_config *cfg, tokenizer *tok) {
    if (a->prompt_text) {
        token_ids ids = {0};
        if (tokenizer_encode(tok, a->prompt_text, strlen(a->prompt_text), true, &ids) != 0)
            return -1;
        a->prompt_ids = ids.ids;
        a->n_prompt = (int)ids.n;
        if (a->n_prompt == 0) return folio_fail("generate: --prompt encodes to no tokens");
    }
    if (!a->prompt_ids) {
        if (cfg->bos_id < 0)
            return folio_fail("generate: no prompt given and %s has no bos_token_id to start "
                              "from", a->common.model_dir);
        a->prompt_ids = folio_xmalloc(sizeof *a->prompt_ids);
        a->prompt_ids[0] = cfg->bos_id;
        a->n_prompt = 1;
    }
    for (int i = 0; i < a->n_prompt; i++)
        if (a->prompt_ids[i] >= cfg->vocab)
            return folio_fail("--prompt-ids: id %d is outside the vocabulary (vocab_size %d)",
                              a->prompt_ids[i], cfg->vocab);
    if (a->max_tokens < 0) {
        long long room = (long long)cfg->max_position - a->n_prompt;
        if (room <= 0)
            return folio_fail("generate: the prompt has %d tokens, which fills the model's "
                              "context of %d (max_position_embeddings): no room to generate",
                              a->n_prompt, cfg->max_position);
        a->max_tokens = room < 256 ? room : 256;
    }
    a->run.max_tokens = (int)a->max_tokens;
    return 0;
}

static void print_summary(const run_result *r, int n_prompt) {
    double decode_tps = r->n > 1 && r->decode_s > 0 ? (r->n - 1) / r->decode_s : 0.0;
    fprintf(stderr, "folio: prompt %d tokens, generated %d tokens%s; prefill %.1f ms, decode "
                    "%.1f tokens/s\n", n_prompt, r->n, r->hit_eos ? " (stopped at EOS)" : "",
            r->prefill_s * 1e3, decode_tps);
}

/* Streams generated text to stdout as whole UTF-8 characters (rank 0). */
typedef struct {
    detok_stream *stream;
    text_buf text;
} text_printer;

static void print_token_text(int32_t id, void *user) {
    text_printer *p = user;
    p->text.len = 0;
    if (detok_stream_push(p->stream, id, &p->text) == 0 && p->text.len) {
        fwrite(p->text.s, 1, p->text.len, stdout);
        fflush(stdout);
    }
}

static void print_ids(const run_result *r) {
    for (int i = 0; i < r->n; i++) printf(i ? " %d" : "%d", r->ids[i]);
    printf("\n");
}

int cmd_generate(int argc, char **argv, comm_ctx *comm) {
    generate_args a = {0};
    model m;
    run_result r = {0};
    tokenizer *tok = NULL;
    text_printer printer = {0};
    int rc = -1;
    if (parse_args(argc, argv, &a) != 0 || open_tokenizer(&a, &tok) != 0) goto out;
    model_open_options mo;
    cli_model_options(&a.common, &mo);
    if (model_open_on(a.common.model_dir, &mo, comm, &m) != 0)
        goto out;
    if (resolve_prompt(&a, &m.cfg, tok) != 0) goto close;
    bool stream_text = tok && !a.print_ids;
    if (stream_text) {
        printer.stream = detok_stream_new(tok, true);
        if (detok_stream_prime(printer.stream, a.prompt_ids, a.n_prompt) != 0) goto close;
    }
    if (run_sequence(&m, comm, a.prompt_ids, a.n_prompt, &a.run,
                     stream_text ? print_token_text : NULL, &printer, &r) != 0)
        goto close;
    if (comm->rank == 0) {
        if (stream_text) {
            printer.text.len = 0;
            detok_stream_flush(printer.stream, &printer.text);
            fwrite(printer.text.s ? printer.text.s : "", 1, printer.text.len, stdout);
            printf("\n");
        } else {
            print_ids(&r);
        }
        print_summary(&r, a.n_prompt);
    }
    rc = 0;
close:
    model_close(&m);
out:
    detok_stream_free(printer.stream);
    text_buf_free(&printer.text);
    tokenizer_free(tok);
    free(r.ids);
    free(a.prompt_ids);
    return rc;
}
