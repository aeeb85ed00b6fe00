/* The server's limits on what clients may hold, without libmicrohttpd (unit-tested alone):
 *   - body_budget: bytes of request bodies held in memory, across all connections and per
 *     client address. A request reserves its declared Content-Length (or each piece of a
 *     chunked upload as it comes) before it is read, and gives it back once parsed.
 *   - the file descriptors the server may spend on connections (from RLIMIT_NOFILE);
 *   - the constant-time comparison of the API key and the JSON media-type check. */
#ifndef FOLIO_HTTP_LIMITS_H
#define FOLIO_HTTP_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A client address (IPv4 as IPv4-mapped IPv6; the port is not part of it). */
typedef struct {
    uint8_t b[16];
} client_key;

void client_key_of(const struct sockaddr *a, client_key *k);

typedef struct body_budget body_budget;

typedef enum {
    BUDGET_OK = 0,
    BUDGET_FULL = -1,            /* all clients together hold the total: 503 */
    BUDGET_CLIENT_FULL = -2,     /* this client holds its share: 429 */
} budget_result;

/* total, per_client: bytes (0: no limit). */
body_budget *body_budget_create(size_t total, size_t per_client);
void body_budget_free(body_budget *b);
/* Reserves n bytes for client k; nothing is reserved when it fails. */
budget_result body_budget_take(body_budget *b, const client_key *k, size_t n);
/* Gives back n bytes of k's (what it took). */
void body_budget_give(body_budget *b, const client_key *k, size_t n);
/* Bytes held now: by everyone, and by k. */
size_t body_budget_held(body_budget *b, const client_key *k);
size_t body_budget_total_held(body_budget *b);

/* Equal strings, compared in time that depends on the lengths only (not on where they first
 * differ): the API key. */
bool ct_equal(const char *a, size_t an, const char *b, size_t bn);

/* A Content-Type naming JSON: "application/json", any case, with parameters (charset). */
bool media_type_is_json(const char *content_type);

/* File descriptors and connections: raises the soft RLIMIT_NOFILE to the hard one, then
 * splits what is left after `reserve` descriptors (model files, MPI, logs) and those open
 * now: *open_max connections the HTTP library may hold, of which *serve_max are served
 * (requests beyond get a cheap 503). want > 0: serve at most that many. *soft_before and
 * *soft_after: the soft limit before and after raising it. */
void fd_connection_limits(int want, int reserve, unsigned *serve_max, unsigned *open_max,
                          long *soft_before, long *soft_after);

#endif
