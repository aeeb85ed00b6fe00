/* The engine's one text path on the mock model with a mock text codec that counts its work:
 * output text is made once, token by token, and stop strings are found in the new bytes only,
 * so 4,000 output tokens with stop strings cost work linear in the output (counted, not
 * timed); a stop string that only matches late, or across token boundaries, cuts the text
 * exactly where a whole decode would; the text streamed through on_token equals the final
 * text, and its final part never changes; n > 1 and preemption by recompute give each
 * sequence the text of its own tokens, once; the token that stops a sequence adds no text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine_loop.h"
#include "error.h"
#include "mock_model.h"

#define VOCAB 48
#define SPECIAL 1                /* EOS: a special token, dropped from the text */
#define LEAD_A 44                /* "\xC3": the first byte of a two-byte character */
#define LEAD_B 45
#define CONT_A 46                /* "\xA9z": its second byte, then a letter */
#define CONT_B 47
#define LONG_OUT 4000
#define MAX_TRACK 16

static const int32_t EOS[] = {SPECIAL};
static const char REPLACEMENT[] = "\xEF\xBF\xBD";

/* ---- the mock codec ---- */

typedef struct {
    int64_t tokens;              /* ids pushed through streams or decoded */
    int64_t bytes;               /* text bytes produced */
    int64_t decodes;             /* whole decodes */
} codec_work;

typedef struct {
    codec_work *work;
    bool skip_special, held, shown;
    char out[16];
} mock_stream;

static codec_work g_work;

static bool is_lead(int32_t id) { return id == LEAD_A || id == LEAD_B; }
static bool is_cont(int32_t id) { return id == CONT_A || id == CONT_B; }

/* A plain token's text: one or two letters, then a space for every third id. */
static size_t plain_piece(int32_t id, char *p) {
    size_t n = 0;
    p[n++] = (char)('a' + id % 26);
    if (id % 4 == 0) p[n++] = (char)('a' + (id * 7) % 26);
    if (id % 3 == 0) p[n++] = ' ';
    return n;
}

static size_t stream_step(mock_stream *s, int32_t id, char *out) {
    size_t n = 0;
    s->work->tokens++;
    if (s->skip_special && id == SPECIAL) return 0;
    if (s->held && is_cont(id)) {
        s->held = false;
        memcpy(out, "\xC3\xA9z", 3);
        n = 3;
    } else {
        if (s->held) {
            memcpy(out, REPLACEMENT, 3);
            n = 3;
            s->held = false;
        }
        if (is_lead(id)) s->held = true;
        else if (is_cont(id)) n += (size_t)snprintf(out + n, 4, "?z");
        else n += plain_piece(id, out + n);
    }
    s->work->bytes += (int64_t)n;
    if (n) s->shown = true;
    return n;
}

static size_t stream_rest(mock_stream *s, char *out) {
    if (!s->held) return 0;
    s->held = false;
    memcpy(out, REPLACEMENT, 3);
    s->work->bytes += 3;
    return 3;
}

static void *m_stream_new(void *self, const int32_t *prompt, int n_prompt, bool skip_special) {
    mock_stream *s = calloc(1, sizeof *s);
    s->work = self;
    s->skip_special = skip_special;
    for (int i = 0; i < n_prompt; i++) stream_step(s, prompt[i], s->out);
    return s;
}

static int m_stream_push(void *stream, int32_t id, text_piece *out) {
    mock_stream *s = stream;
    *out = (text_piece){.s = s->out, .len = stream_step(s, id, s->out)};
    return 0;
}

static void m_stream_flush(void *stream, text_piece *out) {
    mock_stream *s = stream;
    *out = (text_piece){.s = s->out, .len = stream_rest(s, s->out)};
}

static bool m_stream_at_start(const void *stream) { return !((const mock_stream *)stream)->shown; }
static void m_stream_free(void *stream) { free(stream); }

/* The text of ids; flush: with what the stream would still hold. */
static char *decode_ids(codec_work *work, const int32_t *ids, int n, bool flush) {
    mock_stream s = {.work = work, .skip_special = true};
    char *text = malloc((size_t)n * 6 + 4);
    size_t len = 0;
    for (int i = 0; i < n; i++) len += stream_step(&s, ids[i], text + len);
    if (flush) len += stream_rest(&s, text + len);
    text[len] = '\0';
    return text;
}

/* The whole text of ids (what a decode-everything-again path would call at every token). */
static int m_decode(void *self, const int32_t *ids, int n, char **out) {
    ((codec_work *)self)->decodes++;
    *out = decode_ids(self, ids, n, true);
    return 0;
}

static char *copy_str(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(malloc(n), s, n);
}

static int m_encode(void *self, const char *text, int32_t **ids, int *n) {
    (void)self;
    (void)text;
    (void)ids;
    (void)n;
    return folio_fail("mock codec: no encoding");
}

static const text_codec g_codec = {.self = &g_work, .decode = m_decode, .encode = m_encode,
                                   .stream_new = m_stream_new, .stream_push = m_stream_push,
                                   .stream_flush = m_stream_flush,
                                   .stream_at_start = m_stream_at_start,
                                   .stream_free = m_stream_free};

/* ---- what the engine hands out ---- */

typedef struct {
    int tag, sample;
    char *streamed;              /* on_token's pieces, cut as the engine cut q->text */
    size_t len;
    int safe;                    /* q->text_safe after the latest token */
    int n_tokens;
    finish_reason finish;
    char *text;                  /* the final q->text */
    int32_t *ids;                /* the generated ids */
    int n_ids;
} track;

typedef struct {
    track t[MAX_TRACK];
    int n;
} tracker;

static track *track_of(tracker *k, int tag, int sample) {
    for (int i = 0; i < k->n; i++)
        if (k->t[i].tag == tag && k->t[i].sample == sample) return &k->t[i];
    assert_true(k->n < MAX_TRACK);
    track *t = &k->t[k->n++];
    memset(t, 0, sizeof *t);
    t->tag = tag;
    t->sample = sample;
    return t;
}

static void on_token(const request *r, const sequence *q, const char *text, int n_text,
                     finish_reason why, void *user) {
    track *t = track_of(user, (int)(intptr_t)r->tag, q->sample);
    assert_false(t->finish != FINISH_NONE);
    t->streamed = realloc(t->streamed, t->len + (size_t)n_text + 1);
    memcpy(t->streamed + t->len, text, (size_t)n_text);
    t->len += (size_t)n_text;
    assert_true((size_t)q->text_len <= t->len);
    assert_memory_equal(t->streamed, q->text, (size_t)q->text_len);
    /* what was final stays: a cut never reaches before the last text_safe */
    assert_true(q->text_len >= t->safe);
    assert_true(q->text_safe >= t->safe && q->text_safe <= q->text_len);
    t->len = (size_t)q->text_len;
    t->safe = q->text_safe;
    t->n_tokens++;
    t->finish = why;
    if (why != FINISH_NONE) assert_int_equal(q->text_safe, q->text_len);
}

static void on_done(const request *r, void *user) {
    for (int i = 0; i < r->n_seqs; i++) {
        const sequence *q = r->seqs[i];
        track *t = track_of(user, (int)(intptr_t)r->tag, q->sample);
        t->text = copy_str(q->text);
        t->n_ids = sequence_generated(q);
        t->ids = malloc(sizeof *t->ids * (size_t)(t->n_ids ? t->n_ids : 1));
        memcpy(t->ids, q->tokens + q->n_prompt, sizeof *t->ids * (size_t)t->n_ids);
        assert_int_equal((int)strlen(q->text), q->text_len);
        if (q->finish != FINISH_CANCELLED) assert_int_equal(t->finish, q->finish);
    }
}

static void tracker_free(tracker *k) {
    for (int i = 0; i < k->n; i++) {
        free(k->t[i].streamed);
        free(k->t[i].text);
        free(k->t[i].ids);
    }
    k->n = 0;
}

/* ---- running ---- */

typedef struct {
    mock_model m;
    engine *e;
    tracker k;
} rig;

static void rig_open(rig *r, int num_blocks, int max_seqs, int max_model_len) {
    sched_config c = {.num_blocks = num_blocks, .block_size = 16, .max_num_seqs = max_seqs,
                      .max_num_batched_tokens = 256, .max_model_len = max_model_len,
                      .prefix_caching = true};
    memset(&r->k, 0, sizeof r->k);
    mock_model_init(&r->m, VOCAB, num_blocks, 16);
    engine_config ec = {.sched = c, .vocab = VOCAB, .eos_ids = EOS, .n_eos = 1,
                        .codec = &g_codec, .on_token = on_token};
    r->e = engine_create(&ec, mock_backend(&r->m), on_done, &r->k);
    assert_non_null(r->e);
    memset(&g_work, 0, sizeof g_work);
}

static void rig_run(rig *r) {
    while (engine_busy(r->e)) {
        if (engine_step(r->e) != 0) fail_msg("step: %s %s", folio_last_error(), r->m.error);
        if (sched_check(engine_scheduler(r->e)) != 0) fail_msg("%s", folio_last_error());
    }
}

static void rig_close(rig *r) {
    engine_free(r->e);
    mock_model_free(&r->m);
    tracker_free(&r->k);
}

static void add(rig *r, int tag, const int32_t *prompt, int n_prompt, int max_tokens, int n,
                const char *const *stops, int n_stops) {
    request_params p;
    request_params_init(&p);
    p.max_tokens = max_tokens;
    p.n = n;
    p.ignore_eos = true;
    p.sampling.temperature = n > 1 ? 1.0f : 0.0f;
    p.seed = 5;
    p.n_stop = n_stops;
    p.stop = n_stops ? malloc(sizeof *p.stop * (size_t)n_stops) : NULL;
    for (int i = 0; i < n_stops; i++) p.stop[i] = copy_str(stops[i]);
    assert_int_equal(engine_add(r->e, prompt, n_prompt, &p, (void *)(intptr_t)tag, NULL), 0);
    request_params_free(&p);
}

/* The reference: the whole text of ids (flush: with what the stream still holds), cut before
 * the earliest stop string. */
static char *reference_text(const int32_t *ids, int n, bool flush, const char *const *stops,
                            int n_stops, int *cut_at) {
    codec_work scratch = {0};
    char *text = decode_ids(&scratch, ids, n, flush);
    char *cut = NULL;
    for (int i = 0; i < n_stops; i++) {
        char *at = strstr(text, stops[i]);
        if (at && (!cut || at < cut)) cut = at;
    }
    if (cut) *cut = '\0';
    *cut_at = cut ? (int)(cut - text) : -1;
    return text;
}

/* t's text is the reference text of its ids; a stop string ended the output at the token
 * that completed it (none of the text before that token held one). */
static void check_track(const track *t, const char *const *stops, int n_stops) {
    int cut;
    char *want = reference_text(t->ids, t->n_ids, true, stops, n_stops, &cut);
    assert_string_equal(t->text, want);
    assert_int_equal(t->len, strlen(want));
    assert_memory_equal(t->streamed, want, t->len);
    assert_int_equal(t->n_tokens, t->n_ids);
    free(want);
    if (cut >= 0) {
        assert_int_equal(t->finish, FINISH_STOP);
        char *before = reference_text(t->ids, t->n_ids - 1, false, stops, n_stops, &cut);
        assert_int_equal(cut, -1);
        free(before);
    }
}

static const int32_t PROMPT[] = {2, 7, 11, 44, 46, 13, 17, 19};
#define N_PROMPT ((int)(sizeof PROMPT / sizeof PROMPT[0]))

/* The greedy output of PROMPT without stop strings: its ids and text. */
static void plain_run(int max_tokens, track *out) {
    rig r;
    rig_open(&r, 300, 4, LONG_OUT + 64);
    add(&r, 0, PROMPT, N_PROMPT, max_tokens, 1, NULL, 0);
    rig_run(&r);
    assert_int_equal(r.k.n, 1);
    *out = r.k.t[0];
    r.k.n = 0; /* out owns its buffers now */
    rig_close(&r);
}

static void track_release(track *t) {
    free(t->streamed);
    free(t->text);
    free(t->ids);
}

/* Work for 4,000 tokens with stop strings: linear. The old path decoded the whole output at
 * every token (sum of 1..n tokens, about 12 million bytes here) and searched all of it. */
static void run_long(const char *const *stops, int n_stops, int64_t *work, int64_t *n_out,
                     track *got) {
    rig r;
    rig_open(&r, 300, 4, LONG_OUT + 64);
    add(&r, 0, PROMPT, N_PROMPT, LONG_OUT, 1, stops, n_stops);
    rig_run(&r);
    const engine_stats *st = engine_get_stats(r.e);
    assert_int_equal(g_work.decodes, 0);
    *work = g_work.tokens + g_work.bytes + st->stop_scan_bytes;
    *n_out = st->generated_tokens;
    assert_int_equal(r.k.n, 1);
    check_track(&r.k.t[0], stops, n_stops);
    *got = r.k.t[0];
    r.k.n = 0;
    rig_close(&r);
}

static void test_long_output_linear_work(void **state) {
    (void)state;
    static const char *const never[] = {"QQ", "never matches", "xyz!", "\xC3\xA9\xC3\xA9\xC3\xA9"};
    int64_t work, n;
    track got;
    run_long(never, 4, &work, &n, &got);
    assert_int_equal(n, LONG_OUT);
    assert_int_equal(got.finish, FINISH_LENGTH);
    assert_true(got.len > LONG_OUT);
    /* per token: the id, its few bytes, and each stop string's window (its new bytes plus
     * its length - 1); quadratic work would be ~1000 times this */
    print_message("work %lld for %lld tokens, %zu bytes of text\n", (long long)work,
                  (long long)n, got.len);
    assert_true(work < 64 * n);
    track_release(&got);
}

/* A stop string whose first match lies near the end of the 4,000-token output. */
static void test_long_output_late_match(void **state) {
    (void)state;
    track plain;
    plain_run(LONG_OUT, &plain);
    const char *text = plain.text;
    size_t len = strlen(text);
    char late[9] = {0};
    size_t at = len * 9 / 10;
    for (; at + 8 < len; at++) { /* the first 8 bytes from here seen nowhere earlier */
        memcpy(late, text + at, 8);
        if ((size_t)(strstr(text, late) - text) == at) break;
    }
    assert_true(at + 8 < len);
    const char *const stops[] = {"QQ", "never matches", late, "xyz!"};
    int64_t work, n;
    track got;
    run_long(stops, 4, &work, &n, &got);
    assert_int_equal(got.finish, FINISH_STOP);
    assert_int_equal(got.len, at);
    assert_memory_equal(got.text, text, at);
    assert_true(n > LONG_OUT * 8 / 10 && n < LONG_OUT);
    assert_true(work < 64 * n);
    track_release(&got);
    track_release(&plain);
}

/* Stop strings made of the end of one token's text and the start of the next: cut where the
 * whole decode cuts, at the token that completes them, whatever their order in the list. */
static void test_stop_across_tokens(void **state) {
    (void)state;
    track plain;
    plain_run(64, &plain);
    const char *text = plain.text;
    size_t len = strlen(text);
    for (size_t at = 20; at + 6 < len && at < 120; at += 7) {
        char a[4] = {0}, b[6] = {0};
        memcpy(a, text + at, 3);
        memcpy(b, text + at + 1, 5);
        const char *const stops[] = {b, "QQ", a};
        rig r;
        rig_open(&r, 64, 4, 256);
        add(&r, 0, PROMPT, N_PROMPT, 64, 1, stops, 3);
        rig_run(&r);
        check_track(&r.k.t[0], stops, 3);
        assert_int_equal(r.k.t[0].finish, FINISH_STOP);
        assert_true(r.k.t[0].len <= at);
        rig_close(&r);
    }
    track_release(&plain);
}

/* n > 1 and a KV pool small enough to preempt (recompute): each sample's text is that of its
 * own ids, made once (the streamed text would repeat itself otherwise). */
static void test_forks_and_preemption(void **state) {
    (void)state;
    const char *const stops[] = {"ab", "z q", "\xC3\xA9z"};
    rig r;
    rig_open(&r, 14, 8, 128);
    for (int i = 0; i < 4; i++) {
        int32_t prompt[20];
        for (int k = 0; k < 20; k++) prompt[k] = 2 + (k * 5 + i * 11) % (VOCAB - 2);
        add(&r, i, prompt, 20, 48, i % 2 ? 2 : 1, i == 3 ? NULL : stops, i == 3 ? 0 : 3);
    }
    rig_run(&r);
    assert_true(sched_get_stats(engine_scheduler(r.e))->preemptions > 0);
    assert_int_equal(r.k.n, 6);
    for (int i = 0; i < r.k.n; i++) check_track(&r.k.t[i], stops, r.k.t[i].tag == 3 ? 0 : 3);
    rig_close(&r);
}

/* The token that stops a sequence (stop_token_ids, EOS) is not part of its text, as in vLLM,
 * even with special tokens kept: the text is that of the tokens before it. */
static void test_stop_token_not_in_text(void **state) {
    (void)state;
    track plain;
    plain_run(24, &plain);
    int first = 0; /* where the stop token first comes */
    while (plain.ids[first] != plain.ids[10]) first++;
    rig r;
    rig_open(&r, 64, 4, 256);
    request_params p;
    request_params_init(&p);
    p.max_tokens = 24;
    p.ignore_eos = true;
    p.sampling.temperature = 0;
    p.keep_special = true;
    p.stop_ids = malloc(sizeof *p.stop_ids);
    p.stop_ids[0] = plain.ids[10];
    p.n_stop_ids = 1;
    assert_int_equal(engine_add(r.e, PROMPT, N_PROMPT, &p, (void *)(intptr_t)0, NULL), 0);
    request_params_free(&p);
    rig_run(&r);
    assert_int_equal(r.k.n, 1);
    const track *t = &r.k.t[0];
    assert_int_equal(t->finish, FINISH_STOP);
    assert_int_equal(t->n_ids, first + 1);
    codec_work scratch = {0};
    mock_stream ms = {.work = &scratch, .skip_special = false};
    char want[512];
    size_t n = 0;
    for (int i = 0; i < t->n_ids - 1; i++) n += stream_step(&ms, t->ids[i], want + n);
    n += stream_rest(&ms, want + n);
    want[n] = '\0';
    assert_string_equal(t->text, want);
    assert_int_equal(t->len, n);
    assert_memory_equal(t->streamed, want, n);
    track_release(&plain);
    rig_close(&r);
}

/* Cancelled mid-way: the text is that of the ids generated, with what the stream held. */
static void test_cancel_flushes(void **state) {
    (void)state;
    rig r;
    rig_open(&r, 64, 4, 256);
    const int32_t prompt[] = {2, 3, 4};
    add(&r, 0, prompt, 3, 100, 1, NULL, 0);
    for (int i = 0; i < 6; i++) assert_int_equal(engine_step(r.e), 0);
    assert_int_equal(engine_cancel(r.e, 0), 0);
    assert_int_equal(r.k.n, 1);
    int cut;
    char *want = reference_text(r.k.t[0].ids, r.k.t[0].n_ids, true, NULL, 0, &cut);
    assert_string_equal(r.k.t[0].text, want);
    free(want);
    rig_close(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_long_output_linear_work),
        cmocka_unit_test(test_long_output_late_match),
        cmocka_unit_test(test_stop_across_tokens),
        cmocka_unit_test(test_forks_and_preemption),
        cmocka_unit_test(test_cancel_flushes),
        cmocka_unit_test(test_stop_token_not_in_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
