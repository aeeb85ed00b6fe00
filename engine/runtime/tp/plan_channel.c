/* Host messages from rank 0: framing, checksum, step plan (de)serialisation, broadcast. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fault.h"
#include "grow.h"
#include "hash.h"
#include "plan_channel.h"

#define PLAN_MAGIC 0x4e4c5046u   /* "FPLN" */
#define PLAN_VERSION 2
#define PLAN_MAX_PAYLOAD ((uint64_t)1 << 30)

typedef struct {
    uint32_t magic;
    uint16_t version, kind;
    int64_t msg_no;
    uint64_t payload_len;
    uint64_t header_check;       /* over the fields above: trusted before payload_len is used */
    uint64_t payload_check;      /* over the payload */
} wire_header;

_Static_assert(sizeof(wire_header) == 40, "wire_header is packed as 40 bytes");
_Static_assert(PLAN_INLINE_BYTES >= sizeof(wire_header), "the header fits the first bcast");

uint64_t plan_checksum(const void *data, size_t n, uint64_t seed) {
    const unsigned char *p = data;
    uint64_t h = seed ^ FOLIO_FNV64_OFFSET;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * FOLIO_FNV64_PRIME;
        h ^= h >> 29;
    }
    for (; i < n; i++) h = (h ^ p[i]) * FOLIO_FNV64_PRIME;
    return folio_mix64(h ^ (uint64_t)n);
}

static uint64_t header_checksum(const wire_header *h) {
    return plan_checksum(h, offsetof(wire_header, header_check), FOLIO_GOLDEN64);
}

void plan_channel_init(plan_channel *ch, comm_ctx *comm) {
    memset(ch, 0, sizeof *ch);
    ch->comm = comm;
    ch->cap = PLAN_INLINE_BYTES;
    ch->buf = folio_xcalloc(1, ch->cap);
}

void plan_channel_free(plan_channel *ch) {
    free(ch->buf);
    memset(ch, 0, sizeof *ch);
}

static void reserve(plan_channel *ch, size_t n) { FOLIO_GROW(ch->buf, ch->cap, n); }

/* Broadcasts ch->buf holding total bytes: the inline part, then the rest if any. */
static int bcast_message(plan_channel *ch, size_t total) {
    MPI_CHECK(MPI_Bcast(ch->buf, PLAN_INLINE_BYTES, MPI_BYTE, 0, ch->comm->comm));
    if (total > PLAN_INLINE_BYTES)
        MPI_CHECK(MPI_Bcast(ch->buf + PLAN_INLINE_BYTES, (int)(total - PLAN_INLINE_BYTES),
                            MPI_BYTE, 0, ch->comm->comm));
    return 0;
}

/* Fills the header of the message now in ch->buf (payload already after the header). */
static size_t frame(plan_channel *ch, plan_msg_kind kind, size_t n) {
    wire_header h = {.magic = PLAN_MAGIC, .version = PLAN_VERSION, .kind = (uint16_t)kind,
                     .msg_no = ch->next_msg++, .payload_len = n};
    h.header_check = header_checksum(&h);
    h.payload_check = plan_checksum(ch->buf + sizeof h, n, (uint64_t)h.msg_no);
    memcpy(ch->buf, &h, sizeof h);
    return sizeof h + n;
}

int plan_channel_send(plan_channel *ch, plan_msg_kind kind, const void *payload, size_t n) {
    if (ch->comm->world == 1) return 0;
    reserve(ch, sizeof(wire_header) + n);
    if (n) memcpy(ch->buf + sizeof(wire_header), payload, n);
    ch->bytes_sent += (int64_t)n;
    return bcast_message(ch, frame(ch, kind, n));
}

int plan_channel_send_stop(plan_channel *ch) {
    return plan_channel_send(ch, PLAN_MSG_STOP, NULL, 0);
}

/* ---- step plan layout: fixed fields, then the arrays, block tables compacted ---- */

typedef struct {
    int64_t step;
    int32_t n_tokens, n_seqs, block_size, max_blocks, n_logits, n_copies;
    int32_t n_table_entries;     /* sum over sequences of their used blocks */
    int32_t pad;
} plan_fixed;

static int32_t used_blocks(const step_plan *p, int s) {
    return (p->context_lens[s] + p->block_size - 1) / p->block_size;
}

static size_t plan_bytes(const plan_fixed *f) {
    return sizeof *f + (size_t)f->n_tokens * (2 * sizeof(int32_t) + sizeof(int64_t)) +
           ((size_t)f->n_seqs + 1 + f->n_seqs) * sizeof(int32_t) +
           (size_t)f->n_logits * sizeof(int32_t) + 2 * (size_t)f->n_copies * sizeof(int32_t) +
           (size_t)f->n_table_entries * sizeof(int32_t);
}

static unsigned char *put(unsigned char *at, const void *src, size_t n) {
    if (n) memcpy(at, src, n);
    return at + n;
}

size_t plan_channel_encode_plan(plan_channel *ch, const step_plan *p) {
    plan_fixed f = {.step = p->step, .n_tokens = p->n_tokens, .n_seqs = p->n_seqs,
                    .block_size = p->block_size, .max_blocks = p->max_blocks,
                    .n_logits = p->n_logits, .n_copies = p->n_copies};
    for (int s = 0; s < p->n_seqs; s++) f.n_table_entries += used_blocks(p, s);
    size_t n = plan_bytes(&f);
    reserve(ch, sizeof(wire_header) + n);
    unsigned char *at = ch->buf + sizeof(wire_header);
    at = put(at, &f, sizeof f);
    at = put(at, p->token_ids, sizeof(int32_t) * p->n_tokens);
    at = put(at, p->positions, sizeof(int32_t) * p->n_tokens);
    at = put(at, p->slot_mapping, sizeof(int64_t) * p->n_tokens);
    at = put(at, p->seq_start, sizeof(int32_t) * (p->n_seqs + 1));
    at = put(at, p->context_lens, sizeof(int32_t) * p->n_seqs);
    at = put(at, p->logits_rows, sizeof(int32_t) * p->n_logits);
    at = put(at, p->copy_src, sizeof(int32_t) * p->n_copies);
    at = put(at, p->copy_dst, sizeof(int32_t) * p->n_copies);
    for (int s = 0; s < p->n_seqs; s++)
        at = put(at, p->block_tables + (size_t)s * p->max_blocks,
                 sizeof(int32_t) * used_blocks(p, s));
    size_t total = frame(ch, PLAN_MSG_STEP, n);
    if (fault_armed("plan", 0, p->step))
        ch->buf[total - 1] ^= 0x5a; /* corrupt after the checksum: receivers must notice */
    return total;
}

int plan_channel_send_plan(plan_channel *ch, const step_plan *p) {
    if (ch->comm->world == 1) return 0;
    size_t total = plan_channel_encode_plan(ch, p);
    ch->bytes_sent += (int64_t)(total - sizeof(wire_header));
    return bcast_message(ch, total);
}

/* ---- receiving ---- */

static int check_header(const plan_channel *ch, const wire_header *h) {
    if (h->magic != PLAN_MAGIC || header_checksum(h) != h->header_check)
        return folio_fail("plan channel: message %lld from rank 0 has a corrupt header (magic "
                          "0x%08x, header checksum mismatch)", (long long)ch->next_msg,
                          (unsigned)h->magic);
    if (h->version != PLAN_VERSION)
        return folio_fail("plan channel: rank 0 speaks protocol version %u, this rank %d "
                          "(different folio builds in one job?)", h->version, PLAN_VERSION);
    if (h->msg_no != ch->next_msg)
        return folio_fail("plan channel: expected message %lld from rank 0, got %lld (ranks "
                          "out of step)", (long long)ch->next_msg, (long long)h->msg_no);
    if (h->payload_len > PLAN_MAX_PAYLOAD || h->kind < PLAN_MSG_SETUP || h->kind > PLAN_MSG_STOP)
        return folio_fail("plan channel: message %lld: kind %u, %llu payload bytes: not valid",
                          (long long)h->msg_no, h->kind, (unsigned long long)h->payload_len);
    return 0;
}

/* The payload's checksum (after the fault hook); advances next_msg when it matches. */
static int verify_payload(plan_channel *ch, const wire_header *h, plan_msg_kind *kind) {
    ch->payload_len = (size_t)h->payload_len;
    unsigned char *payload = ch->buf + sizeof *h;
    if (h->kind == PLAN_MSG_STEP && ch->payload_len >= sizeof(plan_fixed) && ch->comm->rank > 0) {
        plan_fixed f;
        memcpy(&f, payload, sizeof f);
        if (fault_armed("plan", ch->comm->rank, f.step)) payload[ch->payload_len - 1] ^= 0x5a;
    }
    uint64_t sum = plan_checksum(payload, ch->payload_len, (uint64_t)h->msg_no);
    if (sum != h->payload_check)
        return folio_fail("plan channel: message %lld from rank 0 (%llu bytes) fails its "
                          "checksum: %016llx received, %016llx computed; refusing to run it",
                          (long long)h->msg_no, (unsigned long long)h->payload_len,
                          (unsigned long long)h->payload_check, (unsigned long long)sum);
    ch->next_msg++;
    *kind = (plan_msg_kind)h->kind;
    return 0;
}

int plan_channel_verify(plan_channel *ch, plan_msg_kind *kind) {
    wire_header h;
    memcpy(&h, ch->buf, sizeof h);
    if (check_header(ch, &h) != 0) return -1;
    if (sizeof h + h.payload_len > ch->cap)
        return folio_fail("plan channel: message %lld is larger than the buffer holding it",
                          (long long)h.msg_no);
    return verify_payload(ch, &h, kind);
}

int plan_channel_recv(plan_channel *ch, plan_msg_kind *kind) {
    MPI_CHECK(MPI_Bcast(ch->buf, PLAN_INLINE_BYTES, MPI_BYTE, 0, ch->comm->comm));
    wire_header h;
    memcpy(&h, ch->buf, sizeof h);
    if (check_header(ch, &h) != 0) return -1;
    size_t total = sizeof h + (size_t)h.payload_len;
    if (total > PLAN_INLINE_BYTES) {
        reserve(ch, total);
        MPI_CHECK(MPI_Bcast(ch->buf + PLAN_INLINE_BYTES, (int)(total - PLAN_INLINE_BYTES),
                            MPI_BYTE, 0, ch->comm->comm));
    }
    return verify_payload(ch, &h, kind);
}

const void *plan_channel_payload(const plan_channel *ch, size_t *n) {
    *n = ch->payload_len;
    return ch->buf + sizeof(wire_header);
}

static const unsigned char *get(const unsigned char *at, void *dst, size_t n) {
    if (n) memcpy(dst, at, n);
    return at + n;
}

/* The fixed part against p's capacities; n: the payload size. */
static int check_fixed(const plan_fixed *f, const step_plan *p, size_t n) {
    if (f->n_tokens < 0 || f->n_tokens > p->cap_tokens || f->n_seqs < 0 ||
        f->n_seqs > p->cap_seqs || f->n_logits < 0 || f->n_logits > p->cap_tokens ||
        f->n_copies < 0 || f->n_copies > p->cap_seqs || f->n_table_entries < 0 ||
        f->n_table_entries > (long long)p->cap_seqs * p->cap_blocks)
        return folio_fail("plan channel: step %lld (%d tokens, %d sequences, %d copies) exceeds "
                          "this rank's plan capacity (%d tokens, %d sequences)",
                          (long long)f->step, f->n_tokens, f->n_seqs, f->n_copies,
                          p->cap_tokens, p->cap_seqs);
    if (f->block_size != p->block_size || f->max_blocks != p->max_blocks)
        return folio_fail("plan channel: step %lld has block size %d x %d blocks, this rank %d "
                          "x %d", (long long)f->step, f->block_size, f->max_blocks,
                          p->block_size, p->max_blocks);
    if (plan_bytes(f) != n)
        return folio_fail("plan channel: step %lld is %zu bytes, its counts say %zu",
                          (long long)f->step, n, plan_bytes(f));
    return 0;
}

int plan_channel_decode_plan(const plan_channel *ch, step_plan *p) {
    const unsigned char *at = ch->buf + sizeof(wire_header);
    plan_fixed f;
    if (ch->payload_len < sizeof f) return folio_fail("plan channel: short step message");
    at = get(at, &f, sizeof f);
    if (check_fixed(&f, p, ch->payload_len) != 0) return -1;
    step_plan_reset(p, f.step);
    p->n_tokens = f.n_tokens;
    p->n_seqs = f.n_seqs;
    p->n_logits = f.n_logits;
    p->n_copies = f.n_copies;
    at = get(at, p->token_ids, sizeof(int32_t) * f.n_tokens);
    at = get(at, p->positions, sizeof(int32_t) * f.n_tokens);
    at = get(at, p->slot_mapping, sizeof(int64_t) * f.n_tokens);
    at = get(at, p->seq_start, sizeof(int32_t) * (f.n_seqs + 1));
    at = get(at, p->context_lens, sizeof(int32_t) * f.n_seqs);
    at = get(at, p->logits_rows, sizeof(int32_t) * f.n_logits);
    at = get(at, p->copy_src, sizeof(int32_t) * f.n_copies);
    at = get(at, p->copy_dst, sizeof(int32_t) * f.n_copies);
    int32_t left = f.n_table_entries;
    for (int s = 0; s < f.n_seqs; s++) {
        int32_t nb = used_blocks(p, s);
        if (nb < 0 || nb > p->max_blocks || nb > left)
            return folio_fail("plan channel: step %lld sequence %d claims %d blocks",
                              (long long)f.step, s, nb);
        int32_t *row = p->block_tables + (size_t)s * p->max_blocks;
        at = get(at, row, sizeof(int32_t) * nb);
        for (int b = nb; b < p->max_blocks; b++) row[b] = -1;
        left -= nb;
    }
    if (left != 0)
        return folio_fail("plan channel: step %lld has %d block table entries left over",
                          (long long)f.step, left);
    return 0;
}
