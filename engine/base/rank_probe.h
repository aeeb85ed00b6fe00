/* A side channel between the ranks' watchdogs, apart from MPI and NCCL (which a hung rank
 * blocks): each rank listens on a TCP port of its own; a connection to it is answered with one
 * status line and closed. When a step stalls, the watchdog asks every other rank at once, so
 * its message can name the rank that stopped answering. Ports and host names are exchanged at
 * start-up over MPI (launch/cli.c); nothing here calls MPI. */
#ifndef FOLIO_RANK_PROBE_H
#define FOLIO_RANK_PROBE_H

#include <stdbool.h>
#include <stddef.h>

#define PROBE_LINE 256           /* bytes of one status line, NUL included */

typedef struct {
    char host[256];              /* the rank's host name (gethostname) */
    int port;                    /* its status port; 0: it has none (watchdog off) */
} probe_peer;

/* A non-blocking listening TCP socket on every interface, on a port the kernel picks. 0 with
 * *fd and *port, or -1 with a message. */
int probe_listen(int *fd, int *port);

/* Answers every connection waiting on listen_fd with line (and a newline), without blocking. */
void probe_answer(int listen_fd, const char *line);

/* Asks peers[0..n) (all but `self` and those without a port) at once and waits at most
 * timeout_s for their lines; answers[i] gets peer i's line, or "" when none came (refused, no
 * route, unresolvable name, or no reply in time). Meanwhile it keeps answering on listen_fd
 * (when >= 0) with my_line, so two ranks that ask each other both hear back. */
void probe_peers(const probe_peer *peers, int n, int self, double timeout_s, int listen_fd,
                 const char *my_line, char (*answers)[PROBE_LINE]);

#endif
