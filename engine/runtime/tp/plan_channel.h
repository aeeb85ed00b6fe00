/* The control plane of tensor parallelism: rank 0 sends host messages (the engine set-up, one
 * step plan per step, a stop) to every other rank over MPI; the data plane (all-reduce,
 * all-gather) is comm.h over MPI or nccl_comm.h over NCCL, and never carries these.
 *
 * A message is one contiguous buffer: a fixed header (magic, version, kind, message number,
 * payload size, 64-bit checksum over the header and payload) then the payload. It goes out
 * as one MPI_Bcast of PLAN_INLINE_BYTES (header and the start of the payload: a decode step of
 * a few sequences fits whole) and, only when larger, a second MPI_Bcast of the rest.
 *
 * A receiving rank refuses a message whose magic, version, message number (each message is
 * numbered 0, 1, 2, ... and must arrive in order) or checksum is wrong, with a message naming
 * what differed, so ranks can never silently run different steps.
 *
 * Step plans travel compactly: only the used part of each block table (context_lens[s] /
 * block_size blocks), so the size follows the batch, not max_model_len. */
#ifndef FOLIO_PLAN_CHANNEL_H
#define FOLIO_PLAN_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

#include "comm.h"
#include "step_plan.h"

enum { PLAN_INLINE_BYTES = 4096 };

typedef enum { PLAN_MSG_SETUP = 1, PLAN_MSG_STEP = 2, PLAN_MSG_STOP = 3 } plan_msg_kind;

typedef struct {
    comm_ctx *comm;
    int64_t next_msg;            /* number of the next message sent / expected */
    unsigned char *buf;          /* [cap] serialised message (owned) */
    size_t cap;
    size_t payload_len;          /* of the last message received */
    int64_t bytes_sent;          /* rank 0: payload bytes broadcast (statistics) */
} plan_channel;

void plan_channel_init(plan_channel *ch, comm_ctx *comm);
void plan_channel_free(plan_channel *ch);

/* Rank 0: broadcasts a message of kind with payload [n] bytes (SETUP: the caller's plain-data
 * struct; STOP: n = 0). With one rank, nothing is sent. 0, or -1 with a message. */
int plan_channel_send(plan_channel *ch, plan_msg_kind kind, const void *payload, size_t n);

/* Rank 0: serialises and broadcasts a step plan. */
int plan_channel_send_plan(plan_channel *ch, const step_plan *p);

/* Rank 0: the stop message (workers leave their loop). */
int plan_channel_send_stop(plan_channel *ch);

/* Other ranks: waits for the next message and checks it. *kind: its kind; the payload is
 * plan_channel_payload() until the next receive. -1 with a message on any mismatch. */
int plan_channel_recv(plan_channel *ch, plan_msg_kind *kind);
const void *plan_channel_payload(const plan_channel *ch, size_t *n);

/* Decodes the last received STEP message into p (created with the same capacities as rank
 * 0's plan). -1 with a message when it does not fit p or is inconsistent. */
int plan_channel_decode_plan(const plan_channel *ch, step_plan *p);

/* The halves of send/receive without MPI (tests, and other transports): encode frames a plan
 * as the next message into ch->buf and returns its size in bytes; verify checks the message
 * in ch->buf as plan_channel_recv does after its broadcast. */
size_t plan_channel_encode_plan(plan_channel *ch, const step_plan *p);
int plan_channel_verify(plan_channel *ch, plan_msg_kind *kind);

/* 64-bit checksum (FNV-1a over 8-byte words, then a final mix). */
uint64_t plan_checksum(const void *data, size_t n, uint64_t seed);

#endif
