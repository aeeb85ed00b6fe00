/* The folio command: starts MPI (every run is an MPI program, also with one rank), dispatches
 * to a subcommand, and is the one place errors are printed: with the rank when there are
 * several, and a non-zero exit that ends the whole job. */
#include <stdio.h>
#include <string.h>

#include "build_info.h"
#include "comm.h"
#include "commands.h"
#include "env.h"
#include "error.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv, comm_ctx *comm);
    const char *summary;
} folio_command;

static const folio_command COMMANDS[] = {
    {"generate", cmd_generate, "generate tokens from a prompt"},
    {"score", cmd_score, "perplexity and per-position logits of a token sequence"},
    {"tokenize", cmd_tokenize, "text -> token ids (Hugging Face tokenizer.json)"},
    {"detokenize", cmd_detokenize, "token ids -> text"},
    {"render", cmd_render, "print a model's chat template rendered over a conversation"},
    {"bench", cmd_bench_any, "latency | throughput of a backend (CUDA or CPU); serve: load a running server"},
    {"serve", cmd_serve, "OpenAI-compatible HTTP server (completions, chat, metrics)"},
    {"quantize", cmd_quantize, "float checkpoint -> 4/8-bit compressed-tensors (RTN)"},
};
#define N_COMMANDS (int)(sizeof COMMANDS / sizeof COMMANDS[0])

static void usage(FILE *out) {
    fprintf(out, "usage: folio COMMAND [options]   (under mpirun: one process per GPU)\n\n"
                 "commands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(out, "\n'folio COMMAND --help' lists a command's options; 'folio --version' the "
                 "build;\n'folio --help-env' the environment variables.\n");
}

static const folio_command *find_command(const char *name) {
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(COMMANDS[i].name, name) == 0) return &COMMANDS[i];
    return NULL;
}

/* folio --version: the version, the commit it was built from, and what the build has. */
static void print_version(void) {
    char transports[512];
    comm_describe(transports, sizeof transports);
    printf("folio %s (commit %s)\n", FOLIO_VERSION, FOLIO_GIT_COMMIT);
    printf("CUDA: %s\n", FOLIO_BUILD_CUDA);
    printf("%s\n", transports);
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        print_version();
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--help-env") == 0) {
        folio_env_print(stdout);
        return 0;
    }
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const folio_command *cmd = find_command(argv[1]);
    if (!cmd) {
        fprintf(stderr, "folio: error: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    comm_ctx comm;
    if (comm_init(&argc, &argv, &comm) != 0) {
        fprintf(stderr, "folio: error: %s\n", folio_last_error());
        return 1;
    }
    int rc = cmd->run(argc - 1, argv + 1, &comm);
    fflush(stdout);
    if (rc != 0) {
        if (comm.world > 1)
            fprintf(stderr, "folio: error (rank %d on %s): %s\n", comm.rank, comm.host,
                    folio_last_error());
        else
            fprintf(stderr, "folio: error: %s\n", folio_last_error());
        fflush(stderr);
        if (comm.world > 1) comm_abort(&comm, 1);
    }
    comm_finalize(&comm);
    return rc == 0 ? 0 : 1;
}
