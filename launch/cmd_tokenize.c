/* folio tokenize / folio detokenize: the tokenizer from the command line.
 *   folio tokenize --model DIR (--text T | --jsonl FILE) [--no-special]
 *       one line of space-separated ids per text (--jsonl: one JSON string per line)
 *   folio tokenize --model DIR --bench FILE
 *       load time, encode MB/s (line by line, and the whole file as one text), decode MB/s
 *   folio detokenize --model DIR (--ids 1,2,3 | --ids-file FILE) [--skip-special]
 *       --ids: the text, then a newline; --ids-file: one line of ids (spaces or commas) in,
 *       one JSON string out, per line */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "commands.h"
#include "error.h"
#include "json_line.h"
#include "tokenizer.h"

enum { OPT_TEXT = 1, OPT_JSONL, OPT_NO_SPECIAL, OPT_BENCH, OPT_IDS, OPT_IDS_FILE, OPT_SKIP_SPECIAL };

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void print_ids(const token_ids *ids, text_buf *line) {
    line->len = 0;
    char num[16];
    for (size_t i = 0; i < ids->n; i++) {
        int k = snprintf(num, sizeof num, i ? " %d" : "%d", ids->ids[i]);
        text_buf_append(line, num, (size_t)k);
    }
    text_buf_append(line, "\n", 1);
    fwrite(line->s, 1, line->len, stdout);
}

static int tokenize_jsonl(tokenizer *tok, const char *path, bool special) {
    text_buf data = {0}, text = {0}, line = {0};
    token_ids ids = {0};
    int rc = text_buf_read_file(&data, path);
    size_t pos = 0, lineno = 0;
    while (rc == 0 && pos < data.len) {
        const char *nl = memchr(data.s + pos, '\n', data.len - pos);
        size_t end = nl ? (size_t)(nl - data.s) : data.len;
        char where[512];
        snprintf(where, sizeof where, "%s:%zu", path, ++lineno);
        rc = json_line_parse(data.s + pos, end - pos, where, &text);
        ids.n = 0;
        if (rc == 0) rc = tokenizer_encode(tok, text.s, text.len, special, &ids);
        if (rc == 0) print_ids(&ids, &line);
        pos = end + 1;
    }
    text_buf_free(&data);
    text_buf_free(&text);
    text_buf_free(&line);
    token_ids_free(&ids);
    return rc;
}

/* Encodes the file line by line, then decodes every id in one call. */
static int bench(const char *model_dir, const char *path) {
    double t0 = now_s();
    tokenizer *tok;
    if (tokenizer_load(model_dir, &tok) != 0) return -1;
    double load_s = now_s() - t0;
    text_buf data = {0}, out = {0};
    token_ids ids = {0};
    int rc = text_buf_read_file(&data, path);
    double enc_s = 0, dec_s = 0, whole_s = 0;
    if (rc == 0) {
        t0 = now_s();
        size_t pos = 0;
        while (rc == 0 && pos < data.len) {
            const char *nl = memchr(data.s + pos, '\n', data.len - pos);
            size_t end = nl ? (size_t)(nl - data.s) + 1 : data.len;
            rc = tokenizer_encode(tok, data.s + pos, end - pos, false, &ids);
            pos = end;
        }
        enc_s = now_s() - t0;
    }
    if (rc == 0) { /* the whole file as one text */
        token_ids whole = {0};
        t0 = now_s();
        rc = tokenizer_encode(tok, data.s, data.len, false, &whole);
        whole_s = now_s() - t0;
        token_ids_free(&whole);
    }
    if (rc == 0) {
        t0 = now_s();
        rc = tokenizer_decode(tok, ids.ids, ids.n, false, &out);
        dec_s = now_s() - t0;
    }
    if (rc == 0) {
        printf("file %s: %zu bytes, %zu tokens\n", path, data.len, ids.n);
        printf("load_s %.3f\n", load_s);
        printf("encode_MBps %.2f (%.3f s)\n", (double)data.len / 1e6 / enc_s, enc_s);
        printf("encode_whole_MBps %.2f (%.3f s)\n", (double)data.len / 1e6 / whole_s, whole_s);
        printf("decode_MBps %.2f (%.3f s)\n", (double)out.len / 1e6 / dec_s, dec_s);
        if (out.len != data.len || memcmp(out.s, data.s, data.len) != 0)
            printf("note: decode(encode(lines)) is not the file byte for byte (e.g. a "
                   "SentencePiece \"▁\" prefix on every line)\n");
    }
    tokenizer_free(tok);
    text_buf_free(&data);
    text_buf_free(&out);
    token_ids_free(&ids);
    return rc;
}

static const char TOKENIZE_HELP[] =
    "usage: folio tokenize --model DIR (--text T | --jsonl FILE) [--no-special]\n"
    "       folio tokenize --model DIR --bench FILE\n"
    "  --text T        text to encode\n"
    "  --jsonl FILE    one JSON string per line (\\udc80..\\udcff stand for raw bytes)\n"
    "  --no-special    do not add the post-processor's special tokens (BOS ...)\n"
    "  --bench FILE    print load time, encode and decode MB/s over FILE\n"
    "prints one line of space-separated ids per text\n";

int cmd_tokenize(int argc, char **argv, comm_ctx *comm) {
    (void)comm;
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"text", required_argument, 0, OPT_TEXT},
        {"jsonl", required_argument, 0, OPT_JSONL},
        {"no-special", no_argument, 0, OPT_NO_SPECIAL},
        {"bench", required_argument, 0, OPT_BENCH},
        {0, 0, 0, 0}};
    common_options co;
    common_options_init(&co);
    const char *text = NULL, *jsonl = NULL, *bench_file = NULL;
    bool special = true;
    int c;
    optind = 1;
    while ((c = cli_next_option(argc, argv, opts, &co, NULL, NULL)) != -1) {
        if (c == CLI_OPTION_FAILED) return -1;
        if (c == OPT_HELP) {
            fputs(TOKENIZE_HELP, stdout);
            return 0;
        }
        if (c == OPT_TEXT) text = optarg;
        else if (c == OPT_JSONL) jsonl = optarg;
        else if (c == OPT_NO_SPECIAL) special = false;
        else if (c == OPT_BENCH) bench_file = optarg;
        else return cli_bad_option("tokenize", argv);
    }
    if (!co.model_dir) return folio_fail("tokenize: --model DIR is required");
    if (bench_file) return bench(co.model_dir, bench_file);
    if (!text == !jsonl) return folio_fail("tokenize: give exactly one of --text T or --jsonl FILE");
    tokenizer *tok;
    if (tokenizer_load(co.model_dir, &tok) != 0) return -1;
    int rc;
    if (text) {
        token_ids ids = {0};
        text_buf line = {0};
        rc = tokenizer_encode(tok, text, strlen(text), special, &ids);
        if (rc == 0) print_ids(&ids, &line);
        token_ids_free(&ids);
        text_buf_free(&line);
    } else {
        rc = tokenize_jsonl(tok, jsonl, special);
    }
    tokenizer_free(tok);
    return rc;
}

/* "1 2 3" or "1,2,3" -> ids (appended). */
static int parse_id_line(const char *s, size_t len, const char *where, token_ids *ids) {
    size_t i = 0;
    while (i < len) {
        while (i < len && (s[i] == ' ' || s[i] == ',' || s[i] == '\t' || s[i] == '\r')) i++;
        if (i >= len) break;
        char *end;
        long v = strtol(s + i, &end, 10);
        if (end == s + i || v < 0 || v > INT32_MAX)
            return folio_fail("%s: expected token ids, found '%.20s'", where, s + i);
        token_ids_push(ids, (int32_t)v);
        i = (size_t)(end - s);
    }
    return 0;
}

static int detokenize_file(tokenizer *tok, const char *path, bool skip) {
    text_buf data = {0}, text = {0}, line = {0};
    token_ids ids = {0};
    int rc = text_buf_read_file(&data, path);
    size_t pos = 0, lineno = 0;
    while (rc == 0 && pos < data.len) {
        const char *nl = memchr(data.s + pos, '\n', data.len - pos);
        size_t end = nl ? (size_t)(nl - data.s) : data.len;
        char where[512];
        snprintf(where, sizeof where, "%s:%zu", path, ++lineno);
        ids.n = 0;
        text.len = 0;
        line.len = 0;
        rc = parse_id_line(data.s + pos, end - pos, where, &ids);
        if (rc == 0) rc = tokenizer_decode(tok, ids.ids, ids.n, skip, &text);
        if (rc == 0) {
            json_line_write(text.s, text.len, &line);
            text_buf_append(&line, "\n", 1);
            fwrite(line.s, 1, line.len, stdout);
        }
        pos = end + 1;
    }
    text_buf_free(&data);
    text_buf_free(&text);
    text_buf_free(&line);
    token_ids_free(&ids);
    return rc;
}

static const char DETOKENIZE_HELP[] =
    "usage: folio detokenize --model DIR (--ids 1,2,3 | --ids-file FILE) [--skip-special]\n"
    "  --ids LIST       comma-separated ids; prints the text and a newline\n"
    "  --ids-file FILE  one line of ids per text; prints one JSON string per line\n"
    "  --skip-special   drop special tokens (transformers' skip_special_tokens)\n";

int cmd_detokenize(int argc, char **argv, comm_ctx *comm) {
    (void)comm;
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        {"ids", required_argument, 0, OPT_IDS},
        {"ids-file", required_argument, 0, OPT_IDS_FILE},
        {"skip-special", no_argument, 0, OPT_SKIP_SPECIAL},
        {0, 0, 0, 0}};
    common_options co;
    common_options_init(&co);
    const char *ids_arg = NULL, *ids_file = NULL;
    bool skip = false;
    int c;
    optind = 1;
    while ((c = cli_next_option(argc, argv, opts, &co, NULL, NULL)) != -1) {
        if (c == CLI_OPTION_FAILED) return -1;
        if (c == OPT_HELP) {
            fputs(DETOKENIZE_HELP, stdout);
            return 0;
        }
        if (c == OPT_IDS) ids_arg = optarg;
        else if (c == OPT_IDS_FILE) ids_file = optarg;
        else if (c == OPT_SKIP_SPECIAL) skip = true;
        else return cli_bad_option("detokenize", argv);
    }
    if (!co.model_dir) return folio_fail("detokenize: --model DIR is required");
    if (!ids_arg == !ids_file)
        return folio_fail("detokenize: give exactly one of --ids LIST or --ids-file FILE");
    tokenizer *tok;
    if (tokenizer_load(co.model_dir, &tok) != 0) return -1;
    int rc;
    if (ids_arg) {
        token_ids ids = {0};
        text_buf text = {0};
        rc = parse_id_line(ids_arg, strlen(ids_arg), "detokenize: --ids", &ids);
        if (rc == 0) rc = tokenizer_decode(tok, ids.ids, ids.n, skip, &text);
        if (rc == 0) {
            fwrite(text.s, 1, text.len, stdout);
            fputc('\n', stdout);
        }
        token_ids_free(&ids);
        text_buf_free(&text);
    } else {
        rc = detokenize_file(tok, ids_file, skip);
    }
    tokenizer_free(tok);
    return rc;
}
