/* producers_test.c - idempotent-producer state: verdicts, window, wraparound, snapshot, replay. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/crc32c.h"
#include "base/tern.h"
#include "broker/producers.h"
#include "compress_vectors.h"
#include "store/batch.h"

/* Records a batch of count records at offset base, as the broker does after appending it. */
static void rec(struct producers *t, int64_t pid, int16_t epoch, int32_t seq, int32_t count,
                int64_t base)
{
    struct producers_batch b = {
        .first_seq = seq,
        .last_seq = producers_seq_add(seq, count - 1),
        .base_offset = base,
        .last_offset = base + count - 1,
        .timestamp = 1000 + base,
    };
    producers_record(t, pid, epoch, &b);
}

static int chk(const struct producers *t, int64_t pid, int16_t epoch, int32_t seq, int32_t count)
{
    return producers_check(t, pid, epoch, seq, count, NULL);
}

static void test_unknown_producer(void **state)
{
    (void)state;
    struct producers *t = producers_new();
    assert_int_equal(chk(t, 1, 0, 0, 1), PRODUCERS_APPEND);
    /* no state: any sequence is accepted, as Kafka >= 2.5 does (KIP-360) */
    assert_int_equal(chk(t, 1, 0, 17, 3), PRODUCERS_APPEND);
    assert_int_equal(chk(t, 1, 3, 17, 3), PRODUCERS_APPEND);
    assert_null(producers_find(t, 1));
    rec(t, 1, 3, 17, 3, 0);
    assert_int_equal(chk(t, 1, 3, 20, 1), PRODUCERS_APPEND);
    assert_int_equal(producers_count(t), 1);
    producers_free(t);
}

static void test_in_order_duplicate_gap(void **state)
{
    (void)state;
    struct producers *t = producers_new();
    rec(t, 7, 0, 0, 3, 100); /* seq 0-2 at offsets 100-102 */
    rec(t, 7, 0, 3, 2, 110); /* seq 3-4 at offsets 110-111 */
    assert_int_equal(chk(t, 7, 0, 5, 1), PRODUCERS_APPEND);
    assert_int_equal(chk(t, 7, 0, 6, 1), PRODUCERS_OUT_OF_ORDER); /* gap */
    assert_int_equal(chk(t, 7, 0, 4, 1), PRODUCERS_OUT_OF_ORDER); /* overlaps, not a retry */
    assert_int_equal(chk(t, 7, 0, 2, 3), PRODUCERS_OUT_OF_ORDER);
    struct producers_batch dup;
    memset(&dup, 0, sizeof(dup));
    assert_int_equal(producers_check(t, 7, 0, 3, 2, &dup), PRODUCERS_DUPLICATE);
    assert_true(dup.base_offset == 110 && dup.last_offset == 111);
    assert_true(dup.first_seq == 3 && dup.last_seq == 4 && dup.timestamp == 1110);
    assert_int_equal(producers_check(t, 7, 0, 0, 3, &dup), PRODUCERS_DUPLICATE);
    assert_int_equal(dup.base_offset, 100);
    assert_int_equal(chk(t, 7, 0, 0, 2), PRODUCERS_OUT_OF_ORDER); /* same first, other last */
    /* other producers are independent */
    assert_int_equal(chk(t, 8, 0, 9, 1), PRODUCERS_APPEND);
    producers_free(t);
}

static void test_epochs(void **state)
{
    (void)state;
    struct producers *t = producers_new();
    rec(t, 7, 2, 0, 5, 0);
    assert_int_equal(chk(t, 7, 1, 5, 1), PRODUCERS_INVALID_EPOCH);
    assert_int_equal(chk(t, 7, 1, 0, 5), PRODUCERS_INVALID_EPOCH); /* even a "retry" */
    assert_int_equal(chk(t, 7, 3, 5, 1), PRODUCERS_OUT_OF_ORDER);  /* new epoch: from 0 */
    assert_int_equal(chk(t, 7, 3, 0, 5), PRODUCERS_APPEND);        /* not a duplicate */
    rec(t, 7, 3, 0, 2, 10);
    const struct producers_entry *e = producers_find(t, 7);
    assert_true(e && e->epoch == 3 && e->n == 1); /* the old epoch's batches are gone */
    assert_int_equal(chk(t, 7, 2, 5, 1), PRODUCERS_INVALID_EPOCH);
    assert_int_equal(chk(t, 7, 3, 2, 1), PRODUCERS_APPEND);
    assert_int_equal(chk(t, 7, 3, 0, 2), PRODUCERS_DUPLICATE);
    producers_free(t);
}

static void test_window(void **state)
{
    (void)state;
    struct producers *t = producers_new();
    for (int i = 0; i < 7; i++)
        rec(t, 1, 0, i * 10, 10, i * 100);
    const struct producers_entry *e = producers_find(t, 1);
    assert_int_equal(e->n, PRODUCERS_WINDOW);
    for (int i = 0; i < PRODUCERS_WINDOW; i++)
        assert_int_equal(e->batches[i].first_seq, (i + 2) * 10); /* oldest first */
    /* batches 0 and 1 fell out of the window: their retries are out of order */
    assert_int_equal(chk(t, 1, 0, 0, 10), PRODUCERS_OUT_OF_ORDER);
    assert_int_equal(chk(t, 1, 0, 10, 10), PRODUCERS_OUT_OF_ORDER);
    struct producers_batch dup;
    for (int i = 2; i < 7; i++) {
        assert_int_equal(producers_check(t, 1, 0, i * 10, 10, &dup), PRODUCERS_DUPLICATE);
        assert_int_equal(dup.base_offset, i * 100);
    }
    assert_int_equal(chk(t, 1, 0, 70, 1), PRODUCERS_APPEND);
    producers_free(t);
}

static void test_wraparound(void **state)
{
    (void)state;
    assert_int_equal(producers_seq_add(0, 0), 0);
    assert_int_equal(producers_seq_add(5, 3), 8);
    assert_int_equal(producers_seq_add(INT32_MAX, 0), INT32_MAX);
    assert_int_equal(producers_seq_add(INT32_MAX, 1), 0);
    assert_int_equal(producers_seq_add(INT32_MAX - 1, 3), 1);
    assert_int_equal(producers_seq_add(INT32_MAX - 5, INT32_MAX), INT32_MAX - 6);
    struct producers *t = producers_new();
    rec(t, 1, 0, INT32_MAX - 2, 3, 0); /* ends exactly at INT32_MAX */
    assert_int_equal(chk(t, 1, 0, 0, 4), PRODUCERS_APPEND);
    assert_int_equal(chk(t, 1, 0, 1, 4), PRODUCERS_OUT_OF_ORDER);
    rec(t, 1, 0, 0, 4, 3);
    rec(t, 1, 0, 4, 1, 7);
    /* a batch that itself wraps: INT32_MAX-1, INT32_MAX, 0, 1 */
    struct producers *w = producers_new();
    rec(w, 2, 0, INT32_MAX - 1, 4, 50);
    const struct producers_entry *e = producers_find(w, 2);
    assert_int_equal(e->batches[0].last_seq, 1);
    assert_int_equal(chk(w, 2, 0, 2, 1), PRODUCERS_APPEND);
    assert_int_equal(chk(w, 2, 0, 0, 1), PRODUCERS_OUT_OF_ORDER);
    assert_int_equal(chk(w, 2, 0, INT32_MAX - 1, 4), PRODUCERS_DUPLICATE);
    producers_free(w);
    producers_free(t);
}

static void test_invalid_arguments(void **state)
{
    (void)state;
    struct producers *t = producers_new();
    assert_int_equal(chk(t, -1, -1, -1, 3), PRODUCERS_APPEND); /* not idempotent */
    assert_int_equal(chk(t, 1, -1, 0, 1), TERN_EPROTO);
    assert_int_equal(chk(t, 1, 0, -1, 1), TERN_EPROTO);
    assert_int_equal(chk(t, 1, 0, 0, 0), TERN_EPROTO);
    rec(t, -1, 0, 0, 1, 0); /* ignored */
    assert_int_equal(producers_count(t), 0);
    producers_free(t);
}

static void test_many_producers_and_expire(void **state)
{
    (void)state;
    struct producers *t = producers_new();
    for (int64_t pid = 0; pid < 5000; pid++)
        rec(t, pid * 7919, (int16_t)(pid % 3), 0, 1, pid); /* timestamp 1000 + pid */
    assert_int_equal(producers_count(t), 5000);
    for (int64_t pid = 0; pid < 5000; pid++) {
        const struct producers_entry *e = producers_find(t, pid * 7919);
        assert_non_null(e);
        assert_int_equal(e->epoch, pid % 3);
    }
    assert_int_equal(producers_expire(t, 1000 + 2500), 2500);
    assert_int_equal(producers_count(t), 2500);
    for (int64_t pid = 0; pid < 5000; pid++)
        assert_true((producers_find(t, pid * 7919) != NULL) == (pid >= 2500));
    assert_int_equal(chk(t, 0, 5, 9, 1), PRODUCERS_APPEND); /* forgotten: any sequence */
    producers_free(t);
}

/* ---- snapshot ------------------------------------------------------------------------------ */

static struct producers *sample(void)
{
    struct producers *t = producers_new();
    for (int p = 0; p < 40; p++)
        for (int i = 0; i < p % 8; i++)
            rec(t, 1000 - p, (int16_t)p, i * 3, 3, p * 100 + i * 3);
    rec(t, 5, 1, INT32_MAX - 1, 4, 9000);
    return t;
}

static void assert_same_entry(const struct producers_entry *x, const struct producers_entry *y)
{
    assert_true(x->producer_id == y->producer_id && x->epoch == y->epoch && x->n == y->n);
    assert_int_equal(x->last_timestamp, y->last_timestamp);
    for (int i = 0; i < x->n; i++) {
        const struct producers_batch *a = &x->batches[i], *b = &y->batches[i];
        assert_true(a->first_seq == b->first_seq && a->last_seq == b->last_seq);
        assert_true(a->base_offset == b->base_offset && a->last_offset == b->last_offset);
        assert_int_equal(a->timestamp, b->timestamp);
    }
}

static void test_snapshot_roundtrip(void **state)
{
    (void)state;
    struct producers *t = sample();
    struct buf a = BUF_INIT, b = BUF_INIT;
    producers_save(t, 123456, &a);
    struct producers *u = NULL;
    int64_t next = 0;
    assert_int_equal(producers_load(a.p, a.len, &u, &next), 0);
    assert_int_equal(next, 123456);
    assert_int_equal(producers_count(u), producers_count(t));
    producers_save(u, 123456, &b);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.p, b.p, a.len);
    for (int p = 0; p < 40; p++) {
        const struct producers_entry *x = producers_find(t, 1000 - p);
        const struct producers_entry *y = producers_find(u, 1000 - p);
        assert_true((x == NULL) == (p % 8 == 0) && (y == NULL) == (x == NULL));
        if (!x)
            continue;
        assert_same_entry(x, y);
    }
    struct producers_batch dup;
    assert_int_equal(producers_check(u, 5, 1, INT32_MAX - 1, 4, &dup), PRODUCERS_DUPLICATE);
    assert_int_equal(dup.base_offset, 9000);
    producers_free(u);
    /* an empty table */
    struct producers *e = producers_new();
    buf_clear(&b);
    producers_save(e, 0, &b);
    assert_int_equal(b.len, 24);
    assert_int_equal(producers_load(b.p, b.len, &u, &next), 0);
    assert_int_equal(producers_count(u), 0);
    producers_free(u);
    producers_free(e);
    producers_free(t);
    buf_fini(&a);
    buf_fini(&b);
}

/* Rewrites the CRC after a deliberate change, so the structural checks are what refuse it. */
static void reseal(struct buf *s)
{
    uint32_t c = crc32c(0, s->p, s->len - 4);
    s->p[s->len - 4] = (uint8_t)(c >> 24);
    s->p[s->len - 3] = (uint8_t)(c >> 16);
    s->p[s->len - 2] = (uint8_t)(c >> 8);
    s->p[s->len - 1] = (uint8_t)c;
}

static void expect_load(const struct buf *s, int rc)
{
    struct producers *u = NULL; /* both must stay untouched on failure */
    int64_t next = -7;
    assert_int_equal(producers_load(s->p, s->len, &u, &next), rc);
    assert_true(u == NULL && next == -7);
}

static void test_snapshot_corrupt(void **state)
{
    (void)state;
    struct producers *t = sample();
    struct buf s = BUF_INIT;
    producers_save(t, 77, &s);
    for (size_t i = 0; i < s.len; i++) { /* every single-byte change is caught by the CRC */
        s.p[i] ^= 0x20;
        expect_load(&s, TERN_ECORRUPT);
        s.p[i] ^= 0x20;
    }
    size_t len = s.len;
    for (size_t k = 0; k < len; k++) { /* every truncation */
        s.len = k;
        expect_load(&s, TERN_ECORRUPT);
    }
    s.len = len;
    s.p[5] = 2; /* a future version with a valid CRC */
    reseal(&s);
    expect_load(&s, TERN_ENOTSUP);
    s.p[5] = 1;
    s.p[19] += 1; /* one producer more than the bytes hold */
    reseal(&s);
    expect_load(&s, TERN_ECORRUPT);
    s.p[19] -= 1;
    s.p[30] = 6; /* first entry: 6 batches */
    reseal(&s);
    expect_load(&s, TERN_ECORRUPT);
    producers_free(t);
    /* two entries with the same id, CRC valid */
    struct producers *d = producers_new();
    rec(d, 3, 0, 0, 1, 0);
    rec(d, 4, 0, 0, 1, 1);
    buf_clear(&s);
    producers_save(d, 0, &s);
    s.p[20 + 7 + 20 + 32] = 3; /* second id: 4 -> 3 */
    reseal(&s);
    expect_load(&s, TERN_ECORRUPT);
    producers_free(d);
    buf_fini(&s);
}

/* ---- replay -------------------------------------------------------------------------------- */

static void put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

/* Appends a batch of count records from (pid, epoch, seq) at offset base to log. */
static void log_append(struct buf *log, int64_t pid, int16_t epoch, int32_t seq, int count,
                       int64_t base, int64_t ts)
{
    struct batch_rec_in r[8];
    for (int i = 0; i < count; i++)
        r[i] = (struct batch_rec_in){.value = "v", .value_len = 1, .timestamp = ts};
    uint8_t b[512];
    int64_t n = batch_encode(b, sizeof(b), r, count);
    assert_true(n > 0);
    put_be(b + 43, (uint64_t)pid, 8);
    put_be(b + 51, (uint16_t)epoch, 2);
    put_be(b + 53, (uint32_t)seq, 4);
    batch_update_crc(b, (size_t)n);
    batch_set_base_offset(b, base);
    buf_put(log, b, (size_t)n);
}

/* A partition's life: producers retry, skip, restart with new epochs, wrap their sequences. */
static void simulate(struct producers *live, struct buf *log)
{
    uint32_t x = 12345;
    int32_t next_seq[6] = {0, 0, 0, 0, 0, INT32_MAX - 20}, last_seq[6] = {0}, last_count[6] = {0};
    int16_t epoch[6] = {0};
    int64_t offset = 0;
    int verdicts[4] = {0};
    for (int step = 0; step < 3000; step++) {
        x = x * 1103515245u + 12345u;
        int p = (int)(x >> 16) % 6, count = 1 + (int)(x >> 8) % 5, what = (int)(x >> 24) % 16;
        int64_t pid = p == 5 ? INT64_MAX - 1 : 1000 + p;
        int32_t seq = next_seq[p];
        int16_t ep = epoch[p];
        if (what == 3 && last_count[p] > 0) {
            seq = last_seq[p]; /* a retry of the previous batch */
            count = last_count[p];
        } else if (what == 4 && ep > 0) {
            ep--; /* a zombie of the previous epoch */
        } else if (what == 0)
            seq = producers_seq_add(seq, 1); /* a gap */
        else if (what == 1 && seq >= 3)
            seq -= 3; /* a stale retry */
        else if (what == 2) {
            ep = ++epoch[p]; /* a restarted producer */
            seq = next_seq[p] = 0;
            last_count[p] = 0;
        }
        struct producers_batch dup;
        int v = producers_check(live, pid, ep, seq, count, &dup);
        assert_true(v >= 0 && v < 4);
        verdicts[v]++;
        if (v != PRODUCERS_APPEND)
            continue;
        int64_t ts = 50000 + step;
        log_append(log, pid, ep, seq, count, offset, ts);
        struct producers_batch b = {seq, producers_seq_add(seq, count - 1), offset,
                                    offset + count - 1, ts};
        producers_record(live, pid, ep, &b);
        offset += count;
        next_seq[p] = producers_seq_add(seq, count);
        last_seq[p] = seq;
        last_count[p] = count;
        if (step % 7 == 0) {
            log_append(log, -1, -1, -1, 2, offset, ts); /* not idempotent */
            offset += 2;
        }
    }
    for (int v = 0; v < 4; v++) /* every verdict occurred */
        assert_true(verdicts[v] > 0);
}

static void assert_same_state(const struct producers *a, const struct producers *b)
{
    struct buf x = BUF_INIT, y = BUF_INIT;
    producers_save(a, 0, &x);
    producers_save(b, 0, &y);
    assert_int_equal(x.len, y.len);
    assert_memory_equal(x.p, y.p, x.len);
    buf_fini(&x);
    buf_fini(&y);
}

static void test_replay_equals_live(void **state)
{
    (void)state;
    struct producers *live = producers_new(), *replayed = producers_new();
    struct buf log = BUF_INIT;
    simulate(live, &log);
    assert_int_equal(producers_replay(replayed, log.p, log.len), (int64_t)log.len);
    assert_same_state(live, replayed);
    /* the same in uneven chunks, as a segment is read: partial batches wait for more bytes */
    struct producers *chunked = producers_new();
    size_t pos = 0, chunk = 1;
    while (pos < log.len) {
        size_t n = log.len - pos < chunk ? log.len - pos : chunk;
        int64_t used = producers_replay(chunked, log.p + pos, n);
        assert_true(used >= 0 && (size_t)used <= n);
        if (used == 0)
            chunk *= 2;
        else
            pos += (size_t)used, chunk = 37;
    }
    assert_same_state(live, chunked);
    /* from a snapshot taken halfway, plus the rest of the log */
    struct producers *half = producers_new(), *resumed = NULL;
    size_t mid = 0;
    while (mid < log.len / 2) {
        struct batch_hdr h;
        mid += (size_t)batch_parse(log.p + mid, log.len - mid, log.len, &h);
        producers_apply(half, &h);
    }
    struct buf snap = BUF_INIT;
    producers_save(half, (int64_t)mid, &snap);
    int64_t next;
    assert_int_equal(producers_load(snap.p, snap.len, &resumed, &next), 0);
    assert_int_equal(producers_replay(resumed, log.p + next, log.len - (size_t)next),
                     (int64_t)(log.len - (size_t)next));
    assert_same_state(live, resumed);
    buf_fini(&snap);
    buf_fini(&log);
    producers_free(live);
    producers_free(replayed);
    producers_free(chunked);
    producers_free(half);
    producers_free(resumed);
}

static void test_apply_special_batches(void **state)
{
    (void)state;
    struct producers *t = producers_new();
    struct buf log = BUF_INIT;
    log_append(&log, 9, 0, 0, 3, 0, 100);
    size_t ctl = log.len;
    log_append(&log, 9, 1, -1, 1, 3, 200); /* a transaction marker of epoch 1 */
    log.p[ctl + 22] |= BATCH_ATTR_CONTROL;
    batch_update_crc(log.p + ctl, log.len - ctl);
    assert_int_equal(producers_replay(t, log.p, log.len), (int64_t)log.len);
    const struct producers_entry *e = producers_find(t, 9);
    assert_true(e && e->epoch == 1 && e->n == 0 && e->last_timestamp == 200);
    assert_int_equal(chk(t, 9, 1, 0, 1), PRODUCERS_APPEND);
    assert_int_equal(chk(t, 9, 1, 3, 1), PRODUCERS_OUT_OF_ORDER);
    /* a batch that compaction emptied keeps lastOffsetDelta: its sequence range survives */
    struct batch_hdr h = {.base_offset = 10,
                          .last_offset_delta = 4,
                          .producer_id = 9,
                          .producer_epoch = 1,
                          .base_sequence = 0,
                          .record_count = 1,
                          .max_timestamp = 300};
    producers_apply(t, &h);
    assert_int_equal(chk(t, 9, 1, 5, 1), PRODUCERS_APPEND);
    assert_int_equal(chk(t, 9, 1, 0, 5), PRODUCERS_DUPLICATE);
    /* malformed bytes stop the replay */
    uint8_t junk[64] = {0};
    junk[11] = 52; /* length 52, magic 0 */
    assert_int_equal(producers_replay(t, junk, sizeof(junk)), TERN_EPROTO);
    buf_fini(&log);
    producers_free(t);
}

/* librdkafka's idempotent producer wrote these headers (tests/unit/compress_vectors.h). */
static void test_librdkafka_headers(void **state)
{
    (void)state;
    struct producers *t = producers_new();
    int seen = 0;
    for (size_t i = 0; i < TERN_ARRAY_LEN(compress_vectors); i++) {
        const struct compress_vector *v = &compress_vectors[i];
        struct batch_hdr h;
        assert_int_equal(batch_parse(v->batch, v->len, v->len, &h), (int64_t)v->len);
        if (h.producer_id < 0)
            continue;
        assert_int_equal(producers_check(t, h.producer_id, h.producer_epoch, h.base_sequence,
                                         h.record_count, NULL),
                         PRODUCERS_APPEND);
        producers_apply(t, &h);
        assert_int_equal(producers_check(t, h.producer_id, h.producer_epoch, h.base_sequence,
                                         h.record_count, NULL),
                         PRODUCERS_DUPLICATE);
        assert_int_equal(producers_check(t, h.producer_id, h.producer_epoch,
                                         h.base_sequence + h.record_count, 1, NULL),
                         PRODUCERS_APPEND);
        seen++;
    }
    assert_true(seen >= 1);
    producers_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_producer),
        cmocka_unit_test(test_in_order_duplicate_gap),
        cmocka_unit_test(test_epochs),
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_wraparound),
        cmocka_unit_test(test_invalid_arguments),
        cmocka_unit_test(test_many_producers_and_expire),
        cmocka_unit_test(test_snapshot_roundtrip),
        cmocka_unit_test(test_snapshot_corrupt),
        cmocka_unit_test(test_replay_equals_live),
        cmocka_unit_test(test_apply_special_batches),
        cmocka_unit_test(test_librdkafka_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
