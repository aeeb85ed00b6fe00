/* The step-plan channel without MPI: a plan encoded by one channel and verified and decoded
 * by another is the same plan (block tables compacted and restored, copies); a
 * flipped byte, a message out of order or a plan larger than the receiver's capacity is
 * refused with a message; FOLIO_FAULT parsing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fault.h"
#include "plan_channel.h"

typedef struct {
    comm_ctx comm;
    plan_channel tx, rx;
    step_plan sent, got;
} fixture;

/* A plan of three sequences with shuffled blocks, a prefill, two decodes, copies. */
static void build_plan(step_plan *p, int64_t step) {
    step_plan_reset(p, step);
    int32_t ids[40], t1[] = {7, 3, 9}, t2[] = {1}, t3[] = {12, 0, 5, 2};
    for (int i = 0; i < 40; i++) ids[i] = 100 + i;
    assert_true(step_plan_add(p, ids, 40, 0, t1, 3, 1, 0) >= 0);
    assert_true(step_plan_add(p, ids, 1, 9, t2, 1, 1, 0) >= 0);
    assert_true(step_plan_add(p, ids + 5, 1, 50, t3, 4, 1, 0) >= 0);
    assert_int_equal(step_plan_add_copy(p, 3, 4), 0);
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    comm_init_single(&f->comm);
    f->comm.world = 2; /* encode/verify never touch MPI */
    plan_channel_init(&f->tx, &f->comm);
    plan_channel_init(&f->rx, &f->comm);
    step_plan_create(&f->sent, 64, 4, 8, 16);
    step_plan_create(&f->got, 64, 4, 8, 16);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    plan_channel_free(&f->tx);
    plan_channel_free(&f->rx);
    step_plan_free(&f->sent);
    step_plan_free(&f->got);
    free(f);
    return 0;
}

/* Copies the sender's message into the receiver's buffer (what the broadcast does). */
static void deliver(fixture *f, size_t n) {
    f->rx.comm->rank = 1;
    if (f->rx.cap < n) {
        f->rx.buf = realloc(f->rx.buf, n);
        f->rx.cap = n;
    }
    memcpy(f->rx.buf, f->tx.buf, n);
}

static void test_roundtrip(void **state) {
    fixture *f = *state;
    for (int64_t step = 0; step < 3; step++) {
        build_plan(&f->sent, step);
        deliver(f, plan_channel_encode_plan(&f->tx, &f->sent));
        plan_msg_kind kind;
        assert_int_equal(plan_channel_verify(&f->rx, &kind), 0);
        assert_int_equal(kind, PLAN_MSG_STEP);
        assert_int_equal(plan_channel_decode_plan(&f->rx, &f->got), 0);
        const step_plan *a = &f->sent, *b = &f->got;
        assert_int_equal(b->step, step);
        assert_int_equal(b->n_tokens, a->n_tokens);
        assert_int_equal(b->n_seqs, 3);
        assert_memory_equal(b->token_ids, a->token_ids, sizeof(int32_t) * a->n_tokens);
        assert_memory_equal(b->positions, a->positions, sizeof(int32_t) * a->n_tokens);
        assert_memory_equal(b->slot_mapping, a->slot_mapping, sizeof(int64_t) * a->n_tokens);
        assert_memory_equal(b->seq_start, a->seq_start, sizeof(int32_t) * 4);
        assert_memory_equal(b->context_lens, a->context_lens, sizeof(int32_t) * 3);
        assert_memory_equal(b->block_tables, a->block_tables, sizeof(int32_t) * 3 * 8);
        assert_memory_equal(b->logits_rows, a->logits_rows, sizeof(int32_t) * a->n_logits);
        assert_int_equal(b->n_copies, 1);
        assert_int_equal(b->copy_dst[0], 4);
        assert_int_equal(step_plan_validate(b, 16), 0);
    }
}

static void test_corruption_refused(void **state) {
    fixture *f = *state;
    build_plan(&f->sent, 0);
    size_t n = plan_channel_encode_plan(&f->tx, &f->sent);
    plan_msg_kind kind;
    for (size_t at = 40; at < n; at += 37) { /* every so often through the payload */
        deliver(f, n);
        f->rx.next_msg = 0;
        f->rx.buf[at] ^= 1;
        assert_int_equal(plan_channel_verify(&f->rx, &kind), -1);
        assert_non_null(strstr(folio_last_error(), "fails its checksum"));
    }
    deliver(f, n);
    f->rx.buf[2] ^= 1; /* the header */
    f->rx.next_msg = 0;
    assert_int_equal(plan_channel_verify(&f->rx, &kind), -1);
    assert_non_null(strstr(folio_last_error(), "corrupt header"));
}

static void test_out_of_order_refused(void **state) {
    fixture *f = *state;
    build_plan(&f->sent, 0);
    plan_channel_encode_plan(&f->tx, &f->sent); /* message 0, never delivered */
    deliver(f, plan_channel_encode_plan(&f->tx, &f->sent));
    plan_msg_kind kind;
    assert_int_equal(plan_channel_verify(&f->rx, &kind), -1);
    assert_non_null(strstr(folio_last_error(), "expected message 0 from rank 0, got 1"));
}

static void test_capacity_refused(void **state) {
    fixture *f = *state;
    build_plan(&f->sent, 0);
    step_plan small;
    step_plan_create(&small, 16, 4, 8, 16);
    deliver(f, plan_channel_encode_plan(&f->tx, &f->sent));
    plan_msg_kind kind;
    assert_int_equal(plan_channel_verify(&f->rx, &kind), 0);
    assert_int_equal(plan_channel_decode_plan(&f->rx, &small), -1);
    assert_non_null(strstr(folio_last_error(), "exceeds this rank's plan capacity"));
    step_plan_free(&small);
}

static void test_checksum(void **state) {
    (void)state;
    unsigned char a[100] = {0}, b[100] = {0};
    assert_true(plan_checksum(a, 100, 0) == plan_checksum(b, 100, 0));
    b[99] = 1;
    assert_true(plan_checksum(a, 100, 0) != plan_checksum(b, 100, 0));
    assert_true(plan_checksum(a, 100, 0) != plan_checksum(a, 100, 1));
    assert_true(plan_checksum(a, 99, 0) != plan_checksum(a, 100, 0));
}

static void test_fault_spec(void **state) {
    (void)state;
    setenv("FOLIO_FAULT", "1:step:3,0:load,2:plan", 1);
    assert_true(fault_armed("step", 1, 3));
    assert_false(fault_armed("step", 1, 2));
    assert_false(fault_armed("step", 0, 3));
    assert_true(fault_armed("load", 0, -1));
    assert_false(fault_armed("load", 1, -1));
    assert_true(fault_armed("plan", 2, 17));
    assert_false(fault_armed("pla", 2, 17));
    assert_int_equal(fault_check("step", 1, 3), -1);
    assert_non_null(strstr(folio_last_error(), "rank 1 fails at step 3"));
    unsetenv("FOLIO_FAULT");
    assert_false(fault_armed("step", 1, 3));
    assert_int_equal(fault_check("load", 0, -1), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corruption_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_order_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capacity_refused, setup, teardown),
        cmocka_unit_test(test_checksum),
        cmocka_unit_test(test_fault_spec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
