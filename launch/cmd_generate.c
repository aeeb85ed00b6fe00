/* folio generate: run a prompt (or a JSONL file of many requests) through the engine loop
 * (scheduler + CPU backend) and print what it generates. Under mpirun rank 0 runs the engine
 * and broadcasts every step plan; the other ranks run the worker loop (backend_tp.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "error.h"
#include "hash.h"
#include "grow.h"
#include "engine_loop.h"
#include "engine_options.h"
#include "model.h"
#include "plan_channel.h"
#include "progress.h"
#include "requests_jsonl.h"
#include "sequence_runner.h"
#include "tokenizer.h"
#include "tokenizer_codec.h"

enum { OPT_PROMPT = 1, OPT_PROMPT_IDS, OPT_MAX_TOKENS, OPT_TEMPERATURE, OPT_TOP_P, OPT_TOP_K,
       OPT_SEED, OPT_IGNORE_EOS, OPT_PRINT_IDS, OPT_REQUESTS, OPT_OUTPUT };

static const char USAGE[] =
    "usage: folio generate --model DIR (--prompt TEXT | --prompt-ids 1,2,3) [options]\n"
    "  --prompt TEXT            text prompt (needs the model's tokenizer)\n"
    "  --prompt-ids IDS         comma-separated prompt token ids (default: the BOS id)\n"
    "  --max-tokens N           tokens to generate (default: 256, or what the context allows)\n"
    "  --temperature T          0 = greedy (default 1.0)\n"
    "  --top-p P                nucleus sampling (default 1.0 = off)\n"
    "  --top-k K                keep the K most likely tokens (default 0 = off)\n"
    "  --seed S                 random seed (default: from the clock)\n"
    "  --ignore-eos             keep generating past end-of-sequence tokens\n"
    "  --print-ids              print only the generated ids, space-separated, on one line\n"
    "  --requests FILE.jsonl    run many requests together (one JSON object a line: prompt_ids\n"
    "                           or prompt, and OpenAI completion parameters)\n"
    "  --output FILE.jsonl      where --requests results go (default: stdout)\n"
    ENGINE_KNOBS_HELP CLI_COMMON_HELP;

typedef struct {
    common_options common;
    const char *prompt_text;
    int32_t *prompt_ids;
    int n_prompt;
    long long max_tokens;        /* -1: not given */
    run_options run;
    int print_ids;
    const char *requests, *output;
    engine_options knobs;
    tokenizer *tok;              /* the model's tokenizer, when text is involved (owned) */
    text_codec codec;            /* over tok */
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
        {"requests", required_argument, 0, OPT_REQUESTS},
        {"output", required_argument, 0, OPT_OUTPUT},
        ENGINE_KNOB_OPTIONS,
        CLI_COMMON_OPTIONS,
        {0, 0, 0, 0}};
    common_options_init(&a->common);
    a->max_tokens = -1;
    engine_options_init(&a->knobs);
    a->run = (run_options){.sampling = {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f},
                           .seed = (uint64_t)time(NULL), .block_size = 16};
    double d;
    long long v;
    int id;
    optind = 1;
    opterr = 0;
    while ((id = cli_next_option(argc, argv, longopts, &a->common, engine_options_take,
                                 &a->knobs)) != -1) {
        switch (id) {
        case CLI_OPTION_FAILED: return -1;
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
        case OPT_REQUESTS: a->requests = optarg; break;
        case OPT_OUTPUT: a->output = optarg; break;
        default: return cli_bad_option("generate", argv);
        }
    }
    if (optind < argc)
        return folio_fail("generate: unexpected argument '%s' (see folio generate --help)",
                          argv[optind]);
    if (a->prompt_text && a->prompt_ids)
        return folio_fail("generate: give --prompt or --prompt-ids, not both");
    if (a->requests && (a->prompt_text || a->prompt_ids))
        return folio_fail("generate: give --requests or a prompt, not both");
    if (a->output && !a->requests)
        return folio_fail("generate: --output goes with --requests");
    return cli_common_check(&a->common, "generate");
}

/* Loads DIR's tokenizer when text is involved: required for --prompt; otherwise used when
 * tokenizer.json exists (text output, text prompts and stop strings in --requests), and ids
 * are printed without it. */
static int open_tokenizer(generate_args *a) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", a->common.model_dir);
    bool present = access(path, R_OK) == 0;
    if (a->prompt_text && !present)
        return folio_fail("generate: --prompt needs %s (not found); give --prompt-ids instead",
                          path);
    if (!present || (a->print_ids && !a->prompt_text && !a->requests)) return 0;
    if (tokenizer_load(a->common.model_dir, &a->tok) != 0) return -1;
    a->codec = tokenizer_codec(a->tok);
    return 0;
}

static const text_codec *codec_of(const generate_args *a) { return a->tok ? &a->codec : NULL; }

/* The prompt as ids: --prompt (encoded), --prompt-ids, or the BOS id alone. */
static int resolve_prompt(generate_args *a, const model_config *cfg) {
    if (a->prompt_text) {
        if (a->codec.encode(a->codec.self, a->prompt_text, &a->prompt_ids, &a->n_prompt) != 0)
            return -1;
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


/* ---- the engine on rank 0 (engine_setup.c: set-up, KV pool, broadcasting backend) ---- */

typedef struct {
    rank_engine re;
    engine *e;
} generate_engine;

static int engine_open(generate_engine *g, const generate_args *a, const device_model *dm,
                       comm_ctx *comm, plan_channel *ch, request_done_fn done, void *user) {
    memset(g, 0, sizeof *g);
    if (rank_engine_open(&g->re, &a->knobs, dm, comm, ch) != 0) return -1;
    engine_config ec = {.sched = g->re.sched, .vocab = dm->m.cfg.vocab, .eos_ids = dm->m.cfg.eos_ids,
                        .n_eos = dm->m.cfg.n_eos, .codec = codec_of(a)};
    g->e = engine_create(&ec, rank_engine_backend(&g->re, ch), done, user);
    if (!g->e) {
        rank_engine_close(&g->re);
        return -1;
    }
    return 0;
}

static void engine_close(generate_engine *g) {
    engine_free(g->e);
    rank_engine_close(&g->re);
}

/* ---- one prompt ---- */

static void print_ids(const int32_t *ids, int n) {
    for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    printf("\n");
}

/* The generated text, as the streaming detokenizer gives it after the prompt (so a prompt
 * ending inside a character or a byte-fallback group continues correctly). */
static int print_text(const generate_args *a, const int32_t *ids, int n) {
    detok_stream *st = detok_stream_new(a->tok, true);
    text_buf out = {0};
    int rc = detok_stream_prime(st, a->prompt_ids, (size_t)a->n_prompt);
    for (int i = 0; rc == 0 && i < n; i++) rc = detok_stream_push(st, ids[i], &out);
    if (rc == 0) {
        detok_stream_flush(st, &out);
        fwrite(out.s ? out.s : "", 1, out.len, stdout);
        printf("\n");
    }
    text_buf_free(&out);
    detok_stream_free(st);
    return rc;
}

typedef struct {
    int32_t *ids;
    int n;
    bool hit_eos;
} single_result;

static void single_done(const request *r, void *user) {
    single_result *out = user;
    const sequence *q = r->seqs[0];
    out->n = sequence_generated(q);
    out->ids = folio_xmalloc(sizeof *out->ids * (out->n ? out->n : 1));
    memcpy(out->ids, q->tokens + q->n_prompt, sizeof *out->ids * out->n);
    out->hit_eos = q->finish == FINISH_STOP;
}

static int run_single(generate_args *a, const device_model *dm, comm_ctx *comm, plan_channel *ch) {
    const model_config *c = &dm->m.cfg;
    if ((long long)a->n_prompt + a->max_tokens > c->max_position)
        return folio_fail("the prompt has %d tokens and %lld more were asked for "
                          "(--max-tokens), %lld in all; the model's context is %d tokens "
                          "(max_position_embeddings)", a->n_prompt, a->max_tokens,
                          a->n_prompt + a->max_tokens, c->max_position);
    if (a->max_tokens == 0) {
        if (comm->rank == 0) printf("\n");
        return 0;
    }
    if (a->knobs.max_model_len <= 0) {
        /* one sequence: a pool just large enough for it, unless told otherwise */
        a->knobs.max_model_len = a->n_prompt + a->max_tokens;
        if (a->knobs.max_batched < a->n_prompt) a->knobs.max_batched = a->n_prompt;
        if (a->knobs.num_kv_blocks <= 0 && a->knobs.kv_memory <= 0)
            a->knobs.num_kv_blocks =
                (a->knobs.max_model_len + a->knobs.block_size - 1) / a->knobs.block_size;
        a->knobs.max_num_seqs = 1;
    }
    single_result res = {0};
    generate_engine g;
    if (engine_open(&g, a, dm, comm, ch, single_done, &res) != 0) return -1;
    request_params p;
    request_params_init(&p);
    p.max_tokens = (int)a->max_tokens;
    p.sampling = a->run.sampling;
    p.seed = a->run.seed;
    p.ignore_eos = a->run.ignore_eos;
    int rc = engine_add(g.e, a->prompt_ids, a->n_prompt, &p, NULL, NULL);
    double t0 = folio_now(), t_first = 0;
    while (rc == 0 && engine_busy(g.e)) {
        rc = engine_step(g.e);
        if (t_first == 0) t_first = folio_now();
    }
    double t_end = folio_now();
    engine_close(&g);
    if (rc == 0 && comm->rank == 0) {
        if (a->tok && !a->print_ids) rc = print_text(a, res.ids, res.n);
        else print_ids(res.ids, res.n);
        double decode_s = t_end - t_first;
        fprintf(stderr, "folio: prompt %d tokens, generated %d tokens%s; prefill %.1f ms, "
                        "decode %.1f tokens/s\n", a->n_prompt, res.n,
                res.hit_eos ? " (stopped at EOS)" : "", (t_first - t0) * 1e3,
                res.n > 1 && decode_s > 0 ? (res.n - 1) / decode_s : 0.0);
    }
    free(res.ids);
    return rc;
}

/* ---- many requests from a JSONL file ---- */

typedef struct {
    char **lines;                /* [n] result lines, NULL until done */
    int n, next_out;
    FILE *out;
    bool write;                  /* rank 0 */
    progress_bar bar;
    long long prompt_tokens, generated_tokens;
} batch_state;

/* Writes finished results in input order, as soon as the next one is there. */
static void flush_in_order(batch_state *b) {
    while (b->next_out < b->n && b->lines[b->next_out]) {
        if (b->write) fprintf(b->out, "%s\n", b->lines[b->next_out]);
        free(b->lines[b->next_out]);
        b->lines[b->next_out] = (char *)"";
        b->next_out++;
    }
    if (b->write) fflush(b->out);
}

static void batch_set(batch_state *b, int index, char *line) {
    b->lines[index] = line;
    progress_add(&b->bar, 1);
    flush_in_order(b);
}

static void batch_done(const request *r, void *user) {
    batch_state *b = user;
    int index = (int)(intptr_t)r->tag;
    b->prompt_tokens += r->n_prompt;
    for (int i = 0; i < r->n_seqs; i++) b->generated_tokens += sequence_generated(r->seqs[i]);
    batch_set(b, index, jsonl_format_result(index, r));
}

/* Reads every line of path into *lines (malloc'd strings; blank lines dropped, their line
 * numbers kept in *line_nos). */
static int read_lines(const char *path, char ***lines, int **line_nos, int *n) {
    FILE *f = fopen(path, "r");
    if (!f) return folio_fail("--requests %s: cannot open it", path);
    char *buf = NULL;
    size_t cap = 0;
    ssize_t len;
    int count = 0, alloc = 0, no = 0;
    *lines = NULL;
    *line_nos = NULL;
    while ((len = getline(&buf, &cap, f)) >= 0) {
        no++;
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) buf[--len] = '\0';
        if (strspn(buf, " \t") == (size_t)len) continue;
        if (count == alloc) {
            alloc = (int)folio_grow_cap((size_t)alloc, (size_t)count + 1);
            *lines = folio_xrealloc(*lines, sizeof **lines * alloc);
            *line_nos = folio_xrealloc(*line_nos, sizeof **line_nos * alloc);
        }
        (*lines)[count] = folio_xstrdup(buf);
        (*line_nos)[count++] = no;
    }
    free(buf);
    fclose(f);
    *n = count;
    return 0;
}

static void print_batch_stats(const batch_state *b, engine *e, double secs) {
    const sched_stats *st = sched_get_stats(engine_scheduler(e));
    const engine_stats *es = engine_get_stats(e);
    double hit = st->prompt_tokens ? 100.0 * st->cached_tokens / st->prompt_tokens : 0.0;
    fprintf(stderr, "folio: %d requests in %.2f s: %.2f requests/s, %.1f tokens/s (%lld prompt "
                    "+ %lld generated), %lld steps, %lld preemptions, prefix-cache hit rate "
                    "%.1f%%, scheduler %.3f ms/step\n", b->n, secs, b->n / secs,
            (b->prompt_tokens + b->generated_tokens) / secs, b->prompt_tokens,
            b->generated_tokens, (long long)st->steps, (long long)st->preemptions, hit,
            st->steps ? es->cpu_s * 1e3 / st->steps : 0.0);
}

static int run_requests(generate_args *a, const device_model *dm, comm_ctx *comm, plan_channel *ch) {
    char **text = NULL;
    int *line_nos = NULL, n = 0;
    if (read_lines(a->requests, &text, &line_nos, &n) != 0) return -1;
    batch_state b = {.n = n, .out = stdout, .write = comm->rank == 0};
    b.lines = folio_xcalloc(n ? n : 1, sizeof *b.lines);
    int rc = 0;
    if (b.write && a->output && !(b.out = fopen(a->output, "w"))) {
        rc = folio_fail("--output %s: cannot create it", a->output);
        b.out = stdout;
    }
    generate_engine g;
    if (rc == 0 && engine_open(&g, a, dm, comm, ch, batch_done, &b) != 0) rc = -1;
    if (rc == 0) {
        progress_start(&b.bar, "requests", (uint64_t)n, "", comm->rank == 0);
        double t0 = folio_now();
        for (int i = 0; i < n; i++) {
            jsonl_request jr;
            jsonl_parse_request(text[i], line_nos[i], i, dm->m.cfg.vocab, codec_of(a),
                                a->run.seed + (uint64_t)i * FOLIO_GOLDEN64, &jr);
            if (!jr.error && engine_add(g.e, jr.prompt_ids, jr.n_prompt, &jr.p,
                                        (void *)(intptr_t)i, NULL) != 0) {
                char msg[512];
                snprintf(msg, sizeof msg, "line %d: %s", line_nos[i], folio_last_error());
                jr.error = folio_xstrdup(msg);
            }
            if (jr.error) batch_set(&b, i, jsonl_format_error(i, jr.error));
            jsonl_request_free(&jr);
            free(text[i]);
        }
        rc = engine_run(g.e);
        progress_finish(&b.bar);
        if (rc == 0 && comm->rank == 0) print_batch_stats(&b, g.e, folio_now() - t0);
        engine_close(&g);
    } else {
        for (int i = 0; i < n; i++) free(text[i]);
    }
    for (int i = b.next_out; i < n; i++)
        if (b.lines[i] && *b.lines[i]) free(b.lines[i]);
    free(b.lines);
    free(text);
    free(line_nos);
    if (b.out != stdout) fclose(b.out);
    return rc;
}

int cmd_generate(int argc, char **argv, comm_ctx *comm) {
    generate_args a = {0};
    device_model m;
    plan_channel ch;
    plan_channel_init(&ch, comm);
    int rc = -1;
    if (parse_args(argc, argv, &a) != 0) goto out;
    if (comm->rank == 0 && open_tokenizer(&a) != 0) goto out;
    if (cli_start_rank(&a.common, comm) != 0) goto out;
    device_options mo = cli_device_options(&a.common);
    if (device_model_open(a.common.model_dir, &mo, comm, &m) != 0)
        goto out;
    if (comm->rank != 0) {
        rc = rank_worker_run(&m, comm, &ch);
    } else if (cli_check_tokenizer(a.tok, &m.m.cfg, a.common.model_dir) == 0) {
        if (a.requests) rc = run_requests(&a, &m, comm, &ch);
        else if (resolve_prompt(&a, &m.m.cfg) == 0) rc = run_single(&a, &m, comm, &ch);
        if (rc == 0) rc = plan_channel_send_stop(&ch);
    }
    device_model_close(&m);
out:
    cli_stop_rank();
    plan_channel_free(&ch);
    tokenizer_free(a.tok);
    free(a.prompt_ids);
    return rc;
}
