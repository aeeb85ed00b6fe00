/* The continuous-batching scheduler: queues, budget, chunked prefill, preemption by
 * recompute, prefix-cache admission, copy-on-write and parked session KV. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "grow.h"
#include "hashmap.h"
#include "scheduler.h"

/* The two lists a session slot can be on, both in park order (oldest first): idle sessions
 * (no turn in flight; what idle expiry looks at) and sessions whose parked sequence still
 * holds KV blocks (what memory pressure drops). */
enum { LIST_IDLE, LIST_KV, N_LISTS };

typedef struct session_slot {
    int64_t id;
    sequence *parked;            /* the conversation so far (owned), maybe holding blocks */
    double t_park;               /* when its last turn ended */
    bool on[N_LISTS];
    struct session_slot *prev[N_LISTS], *next[N_LISTS];
} session_slot;

typedef struct {
    sequence **items;
    int n, cap;
} seq_list;

struct scheduler {
    sched_config cfg;
    block_manager *bm;
    seq_list waiting;            /* front = next to admit */
    seq_list running;            /* admission order */
    seq_list scheduled;          /* this step, plan order */
    u64map session_ids;          /* session id -> session_slot * (owned) */
    session_slot *head[N_LISTS], *tail[N_LISTS];   /* LIST_IDLE, LIST_KV: oldest first */
    int n_sessions;
    int32_t *pending_src, *pending_dst;   /* copy-on-write pairs of this step */
    int n_pending;
    int64_t admit_counter;
    int budget;
    bool preempted;
    sched_stats stats;
};

/* ---- sequence lists ---- */

static void list_reserve(seq_list *l, int n) { FOLIO_GROW(l->items, l->cap, n); }

static void list_push(seq_list *l, sequence *s) {
    list_reserve(l, l->n + 1);
    l->items[l->n++] = s;
}

static void list_push_front(seq_list *l, sequence *s) {
    list_reserve(l, l->n + 1);
    memmove(l->items + 1, l->items, sizeof *l->items * l->n);
    l->items[0] = s;
    l->n++;
}

static void list_remove_at(seq_list *l, int i) {
    memmove(l->items + i, l->items + i + 1, sizeof *l->items * (l->n - i - 1));
    l->n--;
}

static int list_find(const seq_list *l, const sequence *s) {
    for (int i = l->n - 1; i >= 0; i--)
        if (l->items[i] == s) return i;
    return -1;
}

/* ---- creation ---- */

int sched_config_validate(const sched_config *c) {
    if (c->block_size < 1) return folio_fail("block size %d: must be >= 1", c->block_size);
    if (c->max_num_seqs < 1)
        return folio_fail("--max-num-seqs %d: must be >= 1", c->max_num_seqs);
    if (c->max_model_len < 1)
        return folio_fail("--max-model-len %d: must be >= 1", c->max_model_len);
    if (c->max_num_batched_tokens < 1)
        return folio_fail("--max-num-batched-tokens %d: must be >= 1",
                          c->max_num_batched_tokens);
    long long need = ((long long)c->max_model_len + c->block_size - 1) / c->block_size;
    if (c->num_blocks < need)
        return folio_fail("the KV cache holds %d blocks of %d tokens (%lld tokens), but one "
                          "sequence of --max-model-len %d needs %lld blocks: lower "
                          "--max-model-len or give the KV cache more memory "
                          "(--gpu-memory-utilization, --kv-cache-memory, --num-kv-blocks)",
                          c->num_blocks, c->block_size,
                          (long long)c->num_blocks * c->block_size, c->max_model_len, need);
    return 0;
}

scheduler *sched_create(const sched_config *c) {
    scheduler *s = folio_xcalloc(1, sizeof *s);
    s->cfg = *c;
    s->bm = bm_create(c->num_blocks, c->block_size, c->prefix_caching);
    s->pending_src = folio_xmalloc(sizeof(int32_t) * (c->max_num_seqs + 1));
    s->pending_dst = folio_xmalloc(sizeof(int32_t) * (c->max_num_seqs + 1));
    list_reserve(&s->running, c->max_num_seqs + 1);
    list_reserve(&s->scheduled, c->max_num_seqs + 1);
    u64map_init(&s->session_ids, 16);
    return s;
}

static session_slot *slot_at(const u64map *m, size_t i) {
    return m->keys[i] == UINT64_MAX ? NULL : (session_slot *)(uintptr_t)m->values[i];
}

void sched_free(scheduler *s) {
    if (!s) return;
    for (size_t i = 0; i < s->session_ids.cap; i++) {
        session_slot *ss = slot_at(&s->session_ids, i);
        if (!ss) continue;
        sequence_free(ss->parked);
        free(ss);
    }
    u64map_free(&s->session_ids);
    free(s->waiting.items);
    free(s->running.items);
    free(s->scheduled.items);
    free(s->pending_src);
    free(s->pending_dst);
    bm_free(s->bm);
    free(s);
}

block_manager *sched_blocks(scheduler *s) { return s->bm; }
const sched_stats *sched_get_stats(const scheduler *s) { return &s->stats; }
int sched_num_waiting(const scheduler *s) { return s->waiting.n; }
int sched_num_running(const scheduler *s) { return s->running.n; }

void sched_add(scheduler *s, sequence *seq, int64_t session_id) {
    seq->status = SEQ_WAITING;
    seq->session_id = session_id;
    list_push(&s->waiting, seq);
}


/* ---- blocks of one sequence ---- */

static void release_blocks(scheduler *s, sequence *seq) {
    for (int i = seq->n_blocks - 1; i >= 0; i--) bm_release(s->bm, seq->blocks[i]);
    seq->n_blocks = 0;
    seq->n_computed = 0;
    seq->n_hashed = 0;
    seq->last_hash = bm_hash_seed();
}

static int blocks_for(const scheduler *s, int tokens) {
    return (tokens + s->cfg.block_size - 1) / s->cfg.block_size;
}

/* 1 if writing at position n_computed needs a private copy of a shared block. */
static int needs_cow(const scheduler *s, const sequence *seq) {
    int bs = s->cfg.block_size, b = seq->n_computed / bs;
    return seq->n_computed % bs != 0 && b < seq->n_blocks && bm_refcount(s->bm, seq->blocks[b]) > 1;
}

/* Allocates blocks up to `tokens` tokens and copies a shared partial block; the caller has
 * checked availability. */
static void grow(scheduler *s, sequence *seq, int tokens) {
    if (needs_cow(s, seq)) {
        int b = seq->n_computed / s->cfg.block_size, src;
        if (bm_cow(s->bm, &seq->blocks[b], &src) != 1)
            FOLIO_BUG("copy-on-write of block %d, which is not shared", seq->blocks[b]);
        s->pending_src[s->n_pending] = src;
        s->pending_dst[s->n_pending] = seq->blocks[b];
        s->n_pending++;
    }
    for (int need = blocks_for(s, tokens); seq->n_blocks < need;) {
        int b = bm_alloc(s->bm);
        if (b < 0) FOLIO_BUG("no free block after admission reserved them");
        seq->blocks[seq->n_blocks++] = b;
    }
}

/* ---- session slots: lists in park order ---- */

static void slot_append(scheduler *s, session_slot *ss, int k) {
    if (ss->on[k]) return;
    ss->on[k] = true;
    ss->next[k] = NULL;
    ss->prev[k] = s->tail[k];
    if (s->tail[k]) s->tail[k]->next[k] = ss;
    else s->head[k] = ss;
    s->tail[k] = ss;
}

static void slot_unlink(scheduler *s, session_slot *ss, int k) {
    if (!ss->on[k]) return;
    ss->on[k] = false;
    if (ss->prev[k]) ss->prev[k]->next[k] = ss->next[k];
    else s->head[k] = ss->next[k];
    if (ss->next[k]) ss->next[k]->prev[k] = ss->prev[k];
    else s->tail[k] = ss->prev[k];
    ss->prev[k] = ss->next[k] = NULL;
}

static session_slot *find_session(const scheduler *s, int64_t id) {
    uint64_t v;
    if (id < 0 || !u64map_get(&s->session_ids, (uint64_t)id, &v)) return NULL;
    return (session_slot *)(uintptr_t)v;
}

/* Frees the KV of the least recently parked session holding blocks (not `keep`). */
static bool drop_parked(scheduler *s, int64_t keep) {
    for (session_slot *ss = s->head[LIST_KV]; ss; ss = ss->next[LIST_KV]) {
        if (ss->id == keep) continue;
        release_blocks(s, ss->parked);
        slot_unlink(s, ss, LIST_KV);
        s->stats.session_drops++;
        return true;
    }
    return false;
}

static void preempt(scheduler *s, int running_index) {
    sequence *v = s->running.items[running_index];
    list_remove_at(&s->running, running_index);
    release_blocks(s, v);
    v->status = SEQ_WAITING;
    v->n_preemptions++;
    s->stats.preemptions++;
    s->preempted = true;
    list_push_front(&s->waiting, v);
}

/* Makes room for `extra` more blocks: parked sessions first, then preemption of the most
 * recently admitted unscheduled running sequence. Returns false if `seq` itself was
 * preempted (or, for a waiting seq, if room cannot be made without preempting). */
static bool make_room(scheduler *s, sequence *seq, int tokens, bool may_preempt) {
    for (;;) {
        int extra = blocks_for(s, tokens) - seq->n_blocks + needs_cow(s, seq);
        if (bm_num_available(s->bm) >= extra) return true;
        if (drop_parked(s, seq->session_id)) continue;
        if (!may_preempt) return false;
        int v = s->running.n - 1;
        while (v >= 0 && s->running.items[v]->step_new > 0) v--;
        if (v < 0) return false;
        bool self = s->running.items[v] == seq;
        preempt(s, v);
        if (self) return false;
    }
}

/* ---- scheduling ---- */

static void schedule_seq(scheduler *s, sequence *seq, int n_new) {
    seq->step_new = n_new;
    s->budget -= n_new;
    list_push(&s->scheduled, seq);
}

/* Running sequences: decodes (one new token) when `decodes`, else the prefill remainders. */
static void schedule_running(scheduler *s, bool decodes) {
    for (int i = 0; i < s->running.n && s->budget > 0; i++) {
        sequence *seq = s->running.items[i];
        int left = seq->n_tokens - seq->n_computed;
        if (seq->step_new > 0 || (left == 1) != decodes) continue;
        if (s->scheduled.n == s->cfg.max_num_seqs) break;
        int n_new = left < s->budget ? left : s->budget;
        if (!make_room(s, seq, seq->n_computed + n_new, true)) {
            /* seq itself was preempted (every later unscheduled one went before it): the
             * next sequence now sits at index i */
            if (list_find(&s->running, seq) >= 0) break;
            i--;
            continue;
        }
        grow(s, seq, seq->n_computed + n_new);
        schedule_seq(s, seq, n_new);
    }
}

/* Reuses the prefix cache for a sequence with no blocks: every cached full block of its
 * context except the last token's (at least one token is always computed, into a fresh
 * block). Returns the number of tokens found. */
static int acquire_prefix(scheduler *s, sequence *seq) {
    int bs = s->cfg.block_size, max_blocks = (seq->n_tokens - 1) / bs;
    bm_hash h = bm_hash_seed();
    while (seq->n_blocks < max_blocks) {
        bm_hash next = bm_hash_block(h, seq->tokens + (size_t)seq->n_blocks * bs, bs);
        int b = bm_lookup_acquire(s->bm, next);
        if (b < 0) break;
        seq->blocks[seq->n_blocks++] = b;
        h = next;
    }
    seq->n_hashed = seq->n_blocks;
    seq->last_hash = h;
    seq->n_computed = seq->n_blocks * bs;
    return seq->n_computed;
}

/* Gives seq the KV of its session's parked turn, if the parked sequence still holds it. */
static int adopt_session(scheduler *s, sequence *seq) {
    session_slot *ss = seq->session_id >= 0 ? find_session(s, seq->session_id) : NULL;
    if (!ss || ss->parked->n_blocks == 0) return 0;
    sequence *p = ss->parked;
    memcpy(seq->blocks, p->blocks, sizeof *p->blocks * p->n_blocks);
    seq->n_blocks = p->n_blocks;
    seq->n_computed = p->n_computed;
    seq->n_hashed = p->n_hashed;
    seq->last_hash = p->last_hash;
    p->n_blocks = p->n_computed = p->n_hashed = 0;
    p->last_hash = bm_hash_seed();
    slot_unlink(s, ss, LIST_KV);
    return seq->n_computed;
}

static int seats_of(const sequence *seq) { return seq->fork_pending > 1 ? seq->fork_pending : 1; }

static void schedule_waiting(scheduler *s) {
    int taken = 0; /* running sequences, counting the samples a prefill will fork into */
    for (int i = 0; i < s->running.n; i++) taken += seats_of(s->running.items[i]);
    while (s->waiting.n > 0 && s->budget > 0) {
        sequence *seq = s->waiting.items[0];
        int seats = seats_of(seq);
        if (taken + seats > s->cfg.max_num_seqs ||
            s->scheduled.n == s->cfg.max_num_seqs)
            return;
        int cached = adopt_session(s, seq);
        if (cached == 0) cached = acquire_prefix(s, seq);
        int left = seq->n_tokens - seq->n_computed;
        int n_new = left < s->budget ? left : s->budget;
        if (!make_room(s, seq, seq->n_computed + n_new, false)) {
            release_blocks(s, seq); /* cached blocks go back to the LRU; try next step */
            return;
        }
        list_remove_at(&s->waiting, 0);
        s->stats.prompt_tokens += seq->n_tokens;
        s->stats.cached_tokens += cached;
        if (seq->n_cached < 0) seq->n_cached = cached; /* a recompute after preemption: kept */
        grow(s, seq, seq->n_computed + n_new);
        seq->status = SEQ_RUNNING;
        seq->admitted = s->admit_counter++;
        list_push(&s->running, seq);
        taken += seats;
        schedule_seq(s, seq, n_new);
    }
}

static int build_plan(scheduler *s, step_plan *plan) {
    step_plan_reset(plan, s->stats.steps);
    for (int i = 0; i < s->n_pending; i++)
        if (step_plan_add_copy(plan, s->pending_src[i], s->pending_dst[i]) != 0) return -1;
    for (int i = 0; i < s->scheduled.n; i++) {
        sequence *q = s->scheduled.items[i];
        bool last = q->n_computed + q->step_new == q->n_tokens;
        int idx = step_plan_add(plan, q->tokens + q->n_computed, q->step_new, q->n_computed,
                                q->blocks, q->n_blocks, last, 0);
        if (idx < 0) return -1;
        q->logits_row = last ? plan->n_logits - 1 : -1;
    }
    return 0;
}

int sched_schedule(scheduler *s, step_plan *plan) {
    for (int i = 0; i < s->scheduled.n; i++) s->scheduled.items[i]->step_new = 0;
    s->scheduled.n = 0;
    s->n_pending = 0;
    s->preempted = false;
    s->budget = s->cfg.max_num_batched_tokens;
    if (plan->cap_tokens < s->budget) s->budget = plan->cap_tokens;
    schedule_running(s, true);
    schedule_running(s, false);
    if (!s->preempted) schedule_waiting(s);
    if (build_plan(s, plan) != 0) /* capacities are sized from the same config */
        FOLIO_BUG("step plan over its capacities: %s", folio_last_error());
    s->stats.steps++;
    return s->scheduled.n;
}

sequence *const *sched_scheduled(const scheduler *s, int *n) {
    *n = s->scheduled.n;
    return s->scheduled.items;
}

/* Registers the sequence's newly full, computed blocks in the prefix cache. */
static void hash_full_blocks(scheduler *s, sequence *seq) {
    int bs = s->cfg.block_size;
    while ((seq->n_hashed + 1) * bs <= seq->n_computed) {
        bm_hash h = bm_hash_block(seq->last_hash, seq->tokens + (size_t)seq->n_hashed * bs, bs);
        bm_register(s->bm, seq->blocks[seq->n_hashed], h);
        seq->last_hash = h;
        seq->n_hashed++;
    }
}

void sched_step_done(scheduler *s) {
    for (int i = 0; i < s->scheduled.n; i++) {
        sequence *seq = s->scheduled.items[i];
        seq->n_computed += seq->step_new;
        s->stats.computed_tokens += seq->step_new;
        hash_full_blocks(s, seq);
    }
}

void sched_fork(scheduler *s, sequence *parent, int n, sequence **out) {
    out[0] = parent;
    parent->fork_pending = 0;
    for (int i = 1; i < n; i++) {
        sequence *c = sequence_fork(parent, i);
        for (int b = 0; b < c->n_blocks; b++) bm_ref(s->bm, c->blocks[b]);
        c->step_new = 0;
        c->logits_row = -1;
        c->admitted = s->admit_counter++;
        list_push(&s->running, c);
        out[i] = c;
    }
}

void sched_remove(scheduler *s, sequence *seq) {
    int i = list_find(&s->running, seq);
    if (i >= 0) list_remove_at(&s->running, i);
    else if ((i = list_find(&s->waiting, seq)) >= 0) list_remove_at(&s->waiting, i);
    if ((i = list_find(&s->scheduled, seq)) >= 0) {
        seq->step_new = 0;
        list_remove_at(&s->scheduled, i);
    }
    release_blocks(s, seq);
    seq->status = SEQ_FINISHED;
}

/* ---- sessions ---- */

static void slot_free(scheduler *s, session_slot *ss) {
    for (int k = 0; k < N_LISTS; k++) slot_unlink(s, ss, k);
    release_blocks(s, ss->parked);
    sequence_free(ss->parked);
    u64map_del(&s->session_ids, (uint64_t)ss->id);
    s->n_sessions--;
    free(ss);
}

bool sched_park(scheduler *s, sequence *seq, int64_t session_id, double now) {
    int i = list_find(&s->running, seq);
    if (i >= 0) list_remove_at(&s->running, i);
    else if ((i = list_find(&s->waiting, seq)) >= 0) list_remove_at(&s->waiting, i);
    if ((i = list_find(&s->scheduled, seq)) >= 0) list_remove_at(&s->scheduled, i);
    session_slot *ss = find_session(s, session_id);
    bool fresh = ss == NULL;
    if (fresh) {
        ss = folio_xcalloc(1, sizeof *ss);
        ss->id = session_id;
        u64map_put(&s->session_ids, (uint64_t)session_id, (uint64_t)(uintptr_t)ss);
        s->n_sessions++;
    } else { /* the earlier turn's sequence goes; the slot moves to the back of both lists */
        for (int k = 0; k < N_LISTS; k++) slot_unlink(s, ss, k);
        release_blocks(s, ss->parked);
        sequence_free(ss->parked);
    }
    seq->status = SEQ_PARKED;
    seq->step_new = 0;
    seq->req = NULL;
    ss->parked = seq;
    ss->t_park = now;
    slot_append(s, ss, LIST_IDLE);
    if (seq->n_blocks > 0) slot_append(s, ss, LIST_KV);
    return fresh;
}

void sched_session_busy(scheduler *s, int64_t session_id) {
    session_slot *ss = find_session(s, session_id);
    if (ss) slot_unlink(s, ss, LIST_IDLE); /* back in park order when the turn parks */
}

const sequence *sched_session(const scheduler *s, int64_t session_id) {
    session_slot *ss = find_session(s, session_id);
    return ss ? ss->parked : NULL;
}

int sched_end_session(scheduler *s, int64_t session_id) {
    session_slot *ss = find_session(s, session_id);
    if (!ss) return -1;
    slot_free(s, ss);
    return 0;
}

int sched_num_sessions(const scheduler *s) { return s->n_sessions; }

bool sched_oldest_idle(const scheduler *s, int64_t *session_id, double *t_park) {
    const session_slot *ss = s->head[LIST_IDLE];
    if (!ss) return false;
    *session_id = ss->id;
    *t_park = ss->t_park;
    return true;
}

/* ---- invariants ---- */

static int check_seq(const scheduler *s, const sequence *q, int32_t *refs, const char *where) {
    int bs = s->cfg.block_size;
    if (q->n_computed > q->n_tokens || q->n_blocks * bs < q->n_computed ||
        q->n_blocks > q->cap_blocks || q->n_hashed * bs > q->n_computed ||
        q->n_tokens > q->cap_tokens)
        return folio_fail("scheduler: %s sequence has %d tokens, %d computed, %d blocks, %d "
                          "hashed", where, q->n_tokens, q->n_computed, q->n_blocks, q->n_hashed);
    for (int b = 0; b < q->n_blocks; b++) {
        if (q->blocks[b] < 0 || q->blocks[b] >= s->cfg.num_blocks)
            return folio_fail("scheduler: %s sequence holds block %d", where, q->blocks[b]);
        refs[q->blocks[b]]++;
    }
    return 0;
}

/* Parked sequences' blocks into refs; the map, the count and both lists agree: every slot on
 * the KV list holds blocks and every slot holding blocks is on it, each list in park order. */
static int check_sessions(const scheduler *s, int32_t *refs) {
    int n = 0;
    for (size_t i = 0; i < s->session_ids.cap; i++) {
        const session_slot *ss = slot_at(&s->session_ids, i);
        if (!ss) continue;
        n++;
        if (check_seq(s, ss->parked, refs, "parked") != 0) return -1;
        if ((ss->parked->n_blocks > 0) != ss->on[LIST_KV])
            return folio_fail("scheduler: session %lld holds %d blocks but is%s on the KV list",
                              (long long)ss->id, ss->parked->n_blocks,
                              ss->on[LIST_KV] ? "" : " not");
    }
    if (n != s->n_sessions || (size_t)n != s->session_ids.count)
        return folio_fail("scheduler: %d sessions counted, %d in the map", s->n_sessions, n);
    for (int k = 0; k < N_LISTS; k++) {
        int len = 0;
        for (const session_slot *ss = s->head[k]; ss; ss = ss->next[k], len++) {
            if (!ss->on[k] || find_session(s, ss->id) != ss)
                return folio_fail("scheduler: list %d holds session %lld wrongly", k,
                                  (long long)ss->id);
            if (ss->next[k] && ss->next[k]->t_park < ss->t_park)
                return folio_fail("scheduler: list %d is out of park order at session %lld", k,
                                  (long long)ss->id);
            if (len > n) return folio_fail("scheduler: list %d loops", k);
        }
    }
    return 0;
}

int sched_check(const scheduler *s) {
    int32_t *refs = folio_xcalloc(s->cfg.num_blocks ? s->cfg.num_blocks : 1, sizeof *refs);
    int rc = 0;
    for (int i = 0; rc == 0 && i < s->waiting.n; i++) {
        const sequence *q = s->waiting.items[i];
        if (q->n_blocks != 0 || q->status != SEQ_WAITING)
            rc = folio_fail("scheduler: waiting sequence holds %d blocks (status %d)",
                            q->n_blocks, q->status);
    }
    for (int i = 0; rc == 0 && i < s->running.n; i++) {
        rc = check_seq(s, s->running.items[i], refs, "running");
        if (rc == 0 && s->running.items[i]->status != SEQ_RUNNING)
            rc = folio_fail("scheduler: running sequence has status %d",
                            s->running.items[i]->status);
    }
    if (rc == 0) rc = check_sessions(s, refs);
    if (rc == 0 && s->running.n > s->cfg.max_num_seqs)
        rc = folio_fail("scheduler: %d running sequences, cap %d", s->running.n,
                        s->cfg.max_num_seqs);
    if (rc == 0) rc = bm_check(s->bm, refs);
    free(refs);
    return rc;
}
