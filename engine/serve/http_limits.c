/* Body budget, file-descriptor limits, constant-time compare, media type (http_limits.h). */
#include "http_limits.h"

#include <strings.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "error.h"
#include "hash.h"

void client_key_of(const struct sockaddr *a, client_key *k) {
    memset(k, 0, sizeof *k);
    if (!a) return;
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)a;
        k->b[10] = k->b[11] = 0xff;
        memcpy(k->b + 12, &v4->sin_addr, 4);
    } else if (a->sa_family == AF_INET6) {
        memcpy(k->b, &((const struct sockaddr_in6 *)a)->sin6_addr, 16);
    }
}

/* ---- body budget: an open-addressing table of the clients holding bytes ---- */

typedef struct {
    client_key k;
    size_t held;                 /* 0: an empty slot */
} budget_slot;

struct body_budget {
    pthread_mutex_t mu;
    size_t total, per_client;    /* limits (0: none) */
    size_t held;                 /* by everyone */
    budget_slot *slots;          /* [cap], cap a power of two, at most half full */
    size_t cap, used;
};

body_budget *body_budget_create(size_t total, size_t per_client) {
    body_budget *b = folio_xcalloc(1, sizeof *b);
    pthread_mutex_init(&b->mu, NULL);
    b->total = total;
    b->per_client = per_client;
    b->cap = 64;
    b->slots = folio_xcalloc(b->cap, sizeof *b->slots);
    return b;
}

void body_budget_free(body_budget *b) {
    if (!b) return;
    pthread_mutex_destroy(&b->mu);
    free(b->slots);
    free(b);
}

static size_t home_of(const body_budget *b, const client_key *k) {
    uint64_t h1, h2;
    memcpy(&h1, k->b, 8);
    memcpy(&h2, k->b + 8, 8);
    return (size_t)folio_mix64(h1 ^ folio_mix64(h2)) & (b->cap - 1);
}

/* k's slot, or the empty slot where it would go. */
static budget_slot *find(body_budget *b, const client_key *k) {
    size_t i = home_of(b, k);
    while (b->slots[i].held && memcmp(&b->slots[i].k, k, sizeof *k) != 0) i = (i + 1) & (b->cap - 1);
    return &b->slots[i];
}

static void grow(body_budget *b) {
    budget_slot *old = b->slots;
    size_t n = b->cap;
    b->cap *= 2;
    b->slots = folio_xcalloc(b->cap, sizeof *b->slots);
    for (size_t i = 0; i < n; i++)
        if (old[i].held) *find(b, &old[i].k) = old[i];
    free(old);
}

/* Empties slot i, shifting back the entries of its probe run (no tombstones). */
static void erase(body_budget *b, size_t i) {
    size_t mask = b->cap - 1, j = i;
    b->slots[i].held = 0;
    for (;;) {
        j = (j + 1) & mask;
        if (!b->slots[j].held) return;
        size_t h = home_of(b, &b->slots[j].k);
        /* j's entry may fill the hole at i when its home is not within (i, j] */
        if (((j - h) & mask) >= ((j - i) & mask)) {
            b->slots[i] = b->slots[j];
            b->slots[j].held = 0;
            i = j;
        }
    }
}

budget_result body_budget_take(body_budget *b, const client_key *k, size_t n) {
    if (n == 0) return BUDGET_OK;
    pthread_mutex_lock(&b->mu);
    budget_result r = BUDGET_OK;
    budget_slot *s = find(b, k);
    if (b->total && (n > b->total || b->held > b->total - n)) r = BUDGET_FULL;
    else if (b->per_client && (n > b->per_client || s->held > b->per_client - n))
        r = BUDGET_CLIENT_FULL;
    if (r == BUDGET_OK) {
        if (!s->held) {
            s->k = *k;
            b->used++;
        }
        s->held += n;
        b->held += n;
        if (b->used * 2 > b->cap) grow(b);
    }
    pthread_mutex_unlock(&b->mu);
    return r;
}

void body_budget_give(body_budget *b, const client_key *k, size_t n) {
    if (n == 0) return;
    pthread_mutex_lock(&b->mu);
    budget_slot *s = find(b, k);
    if (!s->held || s->held < n || b->held < n)
        FOLIO_BUG("body budget: giving back %zu bytes a client does not hold", n);
    s->held -= n;
    b->held -= n;
    if (!s->held) {
        b->used--;
        erase(b, (size_t)(s - b->slots));
    }
    pthread_mutex_unlock(&b->mu);
}

size_t body_budget_held(body_budget *b, const client_key *k) {
    pthread_mutex_lock(&b->mu);
    size_t n = find(b, k)->held;
    pthread_mutex_unlock(&b->mu);
    return n;
}

size_t body_budget_total_held(body_budget *b) {
    pthread_mutex_lock(&b->mu);
    size_t n = b->held;
    pthread_mutex_unlock(&b->mu);
    return n;
}

/* ---- the rest ---- */

bool ct_equal(const char *a, size_t an, const char *b, size_t bn) {
    /* every byte of b is read whatever a holds; a is read cyclically when shorter */
    volatile unsigned char diff = (unsigned char)(an != bn);
    for (size_t i = 0; i < bn; i++)
        diff |= (unsigned char)(an ? a[i % an] ^ b[i] : 1);
    return diff == 0;
}

bool media_type_is_json(const char *ct) {
    if (!ct) return false;
    while (*ct == ' ' || *ct == '\t') ct++;
    static const char want[] = "application/json";
    size_t n = sizeof want - 1;
    if (strncasecmp(ct, want, n) != 0) return false;
    ct += n;
    while (*ct == ' ' || *ct == '\t') ct++;
    return *ct == '\0' || *ct == ';';
}

/* Descriptors open now (/proc/self/fd; 0 when it cannot be read). */
static int fds_open(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return 0;
    int n = 0;
    while (readdir(d)) n++;
    closedir(d);
    return n > 3 ? n - 3 : 0; /* ".", ".." and the directory's own descriptor */
}

void fd_connection_limits(int want, int reserve, unsigned *serve_max, unsigned *open_max,
                          long *soft_before, long *soft_after) {
    struct rlimit rl;
    long soft = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        soft = rl.rlim_cur == RLIM_INFINITY ? (1L << 20) : (long)rl.rlim_cur;
        *soft_before = soft;
        if (rl.rlim_cur != rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
                soft = rl.rlim_cur == RLIM_INFINITY ? (1L << 20) : (long)rl.rlim_cur;
        }
    } else {
        *soft_before = soft;
    }
    *soft_after = soft;
    if (soft > (1L << 20)) soft = 1L << 20; /* beyond a million connections: other limits */
    long left = soft - fds_open() - reserve;
    if (left < 16) left = 16; /* too few to serve well; still serve */
    /* a few slots past the served ones so the over-limit requests can be answered 503 */
    long spare = left / 16 < 8 ? 8 : left / 16;
    long served = left - spare < 8 ? 8 : left - spare;
    if (want > 0 && want < served) served = want;
    *serve_max = (unsigned)served;
    *open_max = (unsigned)(served + spare < left ? served + spare : left);
    if (*open_max <= *serve_max) *open_max = *serve_max + 1;
}
