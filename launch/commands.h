/* The subcommands of `folio`. Each takes the arguments after its name (argv[0] is the
 * subcommand) and the MPI context, and returns 0 or -1 with a message recorded
 * (folio_fail); main prints the message once. */
#ifndef FOLIO_COMMANDS_H
#define FOLIO_COMMANDS_H

#include "comm.h"

int cmd_generate(int argc, char **argv, comm_ctx *comm);
int cmd_score(int argc, char **argv, comm_ctx *comm);
int cmd_tokenize(int argc, char **argv, comm_ctx *comm);
int cmd_detokenize(int argc, char **argv, comm_ctx *comm);
int cmd_render(int argc, char **argv, comm_ctx *comm);
int cmd_bench(int argc, char **argv, comm_ctx *comm);
int cmd_bench_serve(int argc, char **argv, comm_ctx *comm);
int cmd_bench_any(int argc, char **argv, comm_ctx *comm);
int cmd_serve(int argc, char **argv, comm_ctx *comm);
int cmd_quantize(int argc, char **argv, comm_ctx *comm);

#endif
