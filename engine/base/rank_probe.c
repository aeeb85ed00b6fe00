/* The watchdogs' status channel: plain non-blocking TCP, one line a connection. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "rank_probe.h"

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int probe_listen(int *fd, int *port) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0) return folio_fail("watchdog status port: socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
    socklen_t len = sizeof a;
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 64) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) != 0) {
        int e = errno;
        close(s);
        return folio_fail("watchdog status port: bind/listen: %s", strerror(e));
    }
    *fd = s;
    *port = ntohs(a.sin_port);
    return 0;
}

void probe_answer(int listen_fd, const char *line) {
    if (listen_fd < 0) return;
    char buf[PROBE_LINE + 1];
    int n = snprintf(buf, sizeof buf, "%s\n", line);
    if (n < 0 || n >= (int)sizeof buf) n = (int)sizeof buf - 1;
    for (;;) {
        int c = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) return; /* EAGAIN: none waiting (or an error: nothing to do about it) */
        /* a fresh socket's send buffer takes one short line whole */
        ssize_t w = send(c, buf, (size_t)n, MSG_NOSIGNAL);
        (void)w;
        close(c);
    }
}

/* A non-blocking connect to host:port; -1 when it fails at once. */
static int connect_peer(const probe_peer *p) {
    char port[16];
    snprintf(port, sizeof port, "%d", p->port);
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(p->host, port, &hints, &res) != 0 || !res) return -1;
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s >= 0 && connect(s, res->ai_addr, res->ai_addrlen) != 0 && errno != EINPROGRESS) {
        close(s);
        s = -1;
    }
    freeaddrinfo(res);
    return s;
}

void probe_peers(const probe_peer *peers, int n, int self, double timeout_s, int listen_fd,
                 const char *my_line, char (*answers)[PROBE_LINE]) {
    struct pollfd *pf = folio_xcalloc((size_t)n + 1, sizeof *pf);
    size_t *got = folio_xcalloc((size_t)n, sizeof *got);
    int open = 0;
    for (int i = 0; i < n; i++) {
        answers[i][0] = '\0';
        pf[i].fd = -1;
        if (i == self || peers[i].port <= 0) continue;
        pf[i].fd = connect_peer(&peers[i]);
        pf[i].events = POLLIN;
        if (pf[i].fd >= 0) open++;
    }
    pf[n].fd = listen_fd;
    pf[n].events = POLLIN;
    const double deadline = mono_s() + timeout_s;
    while (open > 0) {
        double left = deadline - mono_s();
        if (left <= 0) break;
        int r = poll(pf, (nfds_t)n + 1, (int)(left * 1000) + 1);
        if (r < 0 && errno != EINTR) break;
        if (pf[n].revents) probe_answer(listen_fd, my_line);
        for (int i = 0; i < n; i++) {
            if (pf[i].fd < 0 || !pf[i].revents) continue;
            ssize_t k = recv(pf[i].fd, answers[i] + got[i], PROBE_LINE - 1 - got[i], 0);
            if (k < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (k > 0) got[i] += (size_t)k;
            answers[i][got[i]] = '\0';
            char *nl = strchr(answers[i], '\n');
            if (k <= 0 || nl || got[i] == PROBE_LINE - 1) { /* the end, complete or not */
                if (nl) *nl = '\0';
                else answers[i][0] = '\0';
                close(pf[i].fd);
                pf[i].fd = -1;
                open--;
            }
        }
    }
    for (int i = 0; i < n; i++)
        if (pf[i].fd >= 0) {
            answers[i][0] = '\0'; /* no whole line in time */
            close(pf[i].fd);
        }
    free(got);
    free(pf);
}
