/*
 * queue_test.c - the queue on a real libuv loop and a store in a temporary directory:
 * ordering, round robin, backpressure, requeue order, basic.get, purge, counts, durability
 * callbacks after the fsync, restart (what survives and what does not), non-durable queues,
 * ack log snapshots and message log reclaim, and bounded memory with a 1M-message backlog.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/tern.h"
#include "base/tlog.h"
#include "broker/queue.h"
#include "store/store.h"
#include "testutil.h"

#define NOW 1700000000000ll
#define MAXD 20000

struct fx {
    char *dir;
    uv_loop_t loop;
    struct store_config cfg;
    struct store *st;
    struct queue_engine *e;
    struct queue_tuning tuning;
    struct queue *q;
};

/* A consumer that records its deliveries. */
struct cons {
    struct fx *f;
    int limit;     /* can_take while outstanding < limit (0: unlimited) */
    bool paused;   /* can_take false */
    bool auto_ack; /* acks inside deliver (a no-ack consumer) */
    int outstanding;
    int n;
    int64_t off[MAXD];
    int body[MAXD]; /* the number in the body "m<i>" */
    bool redelivered[MAXD];
    struct queue_consumer *h;
};

static struct fx *fx_new(void)
{
    struct fx *f = calloc(1, sizeof(*f));
    f->dir = tu_tmpdir();
    assert_int_equal(uv_loop_init(&f->loop), 0);
    store_config_default(&f->cfg);
    f->cfg.data_dir = f->dir;
    f->cfg.log.segment_bytes = 1 << 20;
    queue_tuning_default(&f->tuning);
    return f;
}

static void fx_start(struct fx *f)
{
    assert_int_equal(store_open(&f->loop, &f->cfg, &f->st), 0);
    f->e = queue_engine_new(&f->loop, f->st);
    queue_engine_set_tuning(f->e, &f->tuning);
}

static void fx_open(struct fx *f, const char *name, bool durable)
{
    int rc = queue_open(f->e, name, durable, &f->q);
    if (rc != 0)
        fail_msg("queue_open: %s", tern_strerror(rc));
}

/* Closes the queue (if open), the engine and the store, and runs the loop dry. */
static void fx_stop(struct fx *f)
{
    if (f->q)
        queue_close(f->q);
    f->q = NULL;
    queue_engine_free(f->e);
    store_close(f->st, NULL, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    f->st = NULL;
    f->e = NULL;
}

static void fx_restart(struct fx *f, const char *name, bool durable)
{
    fx_stop(f);
    fx_start(f);
    fx_open(f, name, durable);
}

static int setup(void **state)
{
    tlog_set_level(TLOG_LEVEL_WARN);
    struct fx *f = fx_new();
    fx_start(f);
    fx_open(f, "q1", true);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->st)
        fx_stop(f);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    tu_rmrf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void run(struct fx *f)
{
    uv_run(&f->loop, UV_RUN_DEFAULT);
}

/* ---- publishing ------------------------------------------------------------------------- */

struct confirms {
    int ok, failed, closed;
    int64_t durable_seen; /* log_durable_offset when the last one came */
    struct fx *f;
};

static struct confirms conf;

static void on_confirm(void *arg, int status)
{
    struct confirms *c = arg;
    if (status == 0)
        c->ok++;
    else if (status == TERN_ECLOSED)
        c->closed++;
    else
        c->failed++;
    if (c->f && c->f->st) {
        struct log *log = store_log_find(c->f->st, "q1");
        if (log)
            c->durable_seen = log_durable_offset(log);
    }
}

static size_t pad; /* bodies are padded with 'x' to this length */

/* Publishes "m<i>" (padded); returns queue_publish's result. */
static int pub(struct fx *f, int i, bool persistent, bool wait)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "m%d", i);
    for (; (size_t)n < pad && (size_t)n < sizeof(body); n++)
        body[n] = 'x';
    static const uint8_t props[] = {0x90, 0x00, 0x02};
    struct msg m = {.exchange = "amq.direct",
                    .exchange_len = 10,
                    .rk = "key",
                    .rk_len = 3,
                    .props = props,
                    .props_len = sizeof(props),
                    .body = (const uint8_t *)body,
                    .body_len = (size_t)n,
                    .persistent = persistent,
                    .timestamp_ms = NOW + i};
    return queue_publish(f->q, &m, wait ? on_confirm : NULL, &conf);
}

static void pub_many(struct fx *f, int from, int to, bool persistent)
{
    for (int i = from; i < to; i++)
        assert_true(pub(f, i, persistent, false) >= 0);
}

/* ---- consuming -------------------------------------------------------------------------- */

static bool can_take(void *ctx)
{
    struct cons *c = ctx;
    return !c->paused && (c->limit == 0 || c->outstanding < c->limit);
}

static int body_num(const struct msg *m)
{
    char tmp[256];
    assert_true(m->body_len < sizeof(tmp) && m->body_len > 1 && m->body[0] == 'm');
    memcpy(tmp, m->body + 1, m->body_len - 1);
    tmp[m->body_len - 1] = '\0';
    return atoi(tmp); /* stops at the padding */
}

static void deliver(void *ctx, struct queue *q, int64_t offset, const struct msg *m,
                    bool redelivered)
{
    struct cons *c = ctx;
    if (c->n >= MAXD) { /* past the recorder: count only */
        c->n++;
        if (c->auto_ack)
            queue_ack(q, offset);
        return;
    }
    assert_int_equal(m->exchange_len, 10);
    assert_memory_equal(m->exchange, "amq.direct", 10);
    assert_int_equal(m->rk_len, 3);
    assert_int_equal(m->props_len, 3);
    assert_int_equal(m->props[0], 0x90);
    c->off[c->n] = offset;
    c->body[c->n] = body_num(m);
    assert_true(m->timestamp_ms == NOW + c->body[c->n]);
    c->redelivered[c->n] = redelivered;
    c->n++;
    if (c->auto_ack)
        queue_ack(q, offset);
    else
        c->outstanding++;
}

static const struct queue_consumer_ops cons_ops = {can_take, deliver};

static struct cons *cons_add(struct fx *f, int limit)
{
    struct cons *c = calloc(1, sizeof(*c));
    c->f = f;
    c->limit = limit;
    c->h = queue_consumer_add(f->q, &cons_ops, c);
    return c;
}

/* Acks delivery i of c. */
static void cons_ack(struct fx *f, struct cons *c, int i)
{
    queue_ack(f->q, c->off[i]);
    c->outstanding--;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_publish_consume_order(void **state)
{
    struct fx *f = *state;
    conf = (struct confirms){.f = f};
    for (int i = 0; i < 10; i++)
        assert_int_equal(pub(f, i, true, true), 0);
    assert_true(queue_ready_count(f->q) == 10); /* counted while still buffered */
    struct cons *c = cons_add(f, 0);
    run(f);
    assert_int_equal(c->n, 10);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(c->body[i], i);
        assert_true(c->off[i] == i);
        assert_false(c->redelivered[i]);
    }
    assert_int_equal(conf.ok, 10);
    assert_true(queue_ready_count(f->q) == 0 && queue_unacked_count(f->q) == 10);
    for (int i = 0; i < 10; i++)
        cons_ack(f, c, i);
    assert_true(queue_unacked_count(f->q) == 0);
    queue_ack(f->q, c->off[3]); /* a second ack is ignored */
    queue_ack(f->q, 999);       /* so is an offset that does not exist */
    assert_true(queue_unacked_count(f->q) == 0);
    run(f);
    free(c);
}

static void test_round_robin(void **state)
{
    struct fx *f = *state;
    struct cons *a = cons_add(f, 0), *b = cons_add(f, 0);
    assert_int_equal(queue_consumer_count(f->q), 2);
    pub_many(f, 0, 10, true);
    run(f);
    assert_int_equal(a->n, 5);
    assert_int_equal(b->n, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(a->body[i], 2 * i);
        assert_int_equal(b->body[i], 2 * i + 1);
    }
    /* a consumer that cannot take is passed over; the other gets everything */
    a->paused = true;
    pub_many(f, 10, 14, true);
    run(f);
    assert_int_equal(a->n, 5);
    assert_int_equal(b->n, 9);
    queue_consumer_remove(f->q, b->h);
    assert_int_equal(queue_consumer_count(f->q), 1);
    free(a);
    free(b);
}

static void test_can_take_and_kick(void **state)
{
    struct fx *f = *state;
    struct cons *c = cons_add(f, 3); /* prefetch 3 */
    pub_many(f, 0, 10, true);
    run(f);
    assert_int_equal(c->n, 3);
    assert_true(queue_ready_count(f->q) == 7 && queue_unacked_count(f->q) == 3);
    cons_ack(f, c, 0);
    cons_ack(f, c, 1);
    queue_kick(f->q);
    run(f);
    assert_int_equal(c->n, 5);
    c->paused = true;
    cons_ack(f, c, 2);
    cons_ack(f, c, 3);
    cons_ack(f, c, 4);
    run(f);
    assert_int_equal(c->n, 5); /* paused: acks alone deliver nothing */
    c->paused = false;
    queue_kick(f->q);
    queue_kick(f->q); /* idempotent */
    run(f);
    assert_int_equal(c->n, 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(c->body[i], i);
    free(c);
}

static void test_requeue_order(void **state)
{
    struct fx *f = *state;
    struct cons *c = cons_add(f, 10);
    pub_many(f, 0, 10, true);
    run(f);
    assert_int_equal(c->n, 10);
    /* ack the even ones, requeue the odd ones in a scrambled order (a channel closing) */
    for (int i = 0; i < 10; i += 2)
        cons_ack(f, c, i);
    c->paused = true;
    static const int order[] = {9, 3, 7, 1, 5};
    for (size_t k = 0; k < 5; k++) {
        queue_requeue(f->q, c->off[order[k]]);
        c->outstanding--;
    }
    assert_true(queue_ready_count(f->q) == 5 && queue_unacked_count(f->q) == 0);
    struct queue_stats s;
    queue_stats(f->q, &s);
    assert_int_equal(s.requeued, 5);
    pub_many(f, 10, 12, true); /* newer messages wait behind the requeued ones */
    c->paused = false;
    queue_kick(f->q);
    run(f);
    assert_int_equal(c->n, 17);
    static const int want[] = {1, 3, 5, 7, 9, 10, 11};
    for (int i = 0; i < 7; i++) {
        assert_int_equal(c->body[10 + i], want[i]);
        assert_true(c->redelivered[10 + i] == (i < 5));
    }
    free(c);
}

static void test_basic_get(void **state)
{
    struct fx *f = *state;
    struct msg m;
    int64_t off;
    bool redelivered;
    assert_int_equal(queue_get(f->q, &m, &off, &redelivered), 0);
    pub_many(f, 0, 3, true);
    /* published in this iteration: basic.get appends them first */
    assert_int_equal(queue_get(f->q, &m, &off, &redelivered), 1);
    assert_true(off == 0 && !redelivered && body_num(&m) == 0);
    assert_true(queue_ready_count(f->q) == 2 && queue_unacked_count(f->q) == 1);
    queue_requeue(f->q, off);
    assert_int_equal(queue_get(f->q, &m, &off, &redelivered), 1);
    assert_true(off == 0 && redelivered);
    queue_ack(f->q, off);
    assert_int_equal(queue_get(f->q, &m, &off, &redelivered), 1);
    assert_true(off == 1 && body_num(&m) == 1);
    queue_ack(f->q, off);
    assert_int_equal(queue_get(f->q, &m, &off, &redelivered), 1);
    assert_true(off == 2);
    assert_int_equal(queue_get(f->q, &m, &off, &redelivered), 0);
    assert_true(queue_ready_count(f->q) == 0 && queue_unacked_count(f->q) == 1);
    run(f);
}

static void test_purge(void **state)
{
    struct fx *f = *state;
    struct cons *c = cons_add(f, 3);
    pub_many(f, 0, 10, true);
    run(f);
    assert_int_equal(c->n, 3);
    c->paused = true;
    queue_requeue(f->q, c->off[2]); /* a requeued message is ready: purged too */
    c->outstanding--;
    pub_many(f, 10, 12, true); /* buffered: purged too */
    assert_true(queue_ready_count(f->q) == 10);
    assert_true(queue_purge(f->q) == 10);
    assert_true(queue_ready_count(f->q) == 0 && queue_unacked_count(f->q) == 2);
    assert_true(queue_purge(f->q) == 0);
    c->paused = false;
    queue_kick(f->q);
    run(f);
    assert_int_equal(c->n, 3); /* nothing left to deliver */
    /* unacked ones survive the purge and, unacked at restart, come back */
    queue_consumer_remove(f->q, c->h);
    free(c);
    fx_restart(f, "q1", true);
    assert_true(queue_ready_count(f->q) == 2);
    c = cons_add(f, 0);
    run(f);
    assert_int_equal(c->n, 2);
    assert_int_equal(c->body[0], 0);
    assert_int_equal(c->body[1], 1);
    free(c);
}

static void test_durable_callback_after_fsync(void **state)
{
    struct fx *f = *state;
    struct log *log = store_log_find(f->st, "q1");
    assert_non_null(log);
    conf = (struct confirms){.f = f};
    for (int i = 0; i < 50; i++)
        assert_int_equal(pub(f, i, true, true), 0);
    assert_int_equal(pub(f, 50, false, true), 1); /* transient: nothing to wait for */
    assert_int_equal(pub(f, 51, true, false), 1); /* no callback wanted */
    assert_int_equal(conf.ok, 0);
    assert_true(log_end_offset(log) == 0); /* buffered until the loop turns */
    uv_run(&f->loop, UV_RUN_NOWAIT);       /* one iteration: one batch, one fsync request */
    assert_true(log_end_offset(log) == 52);
    run(f);
    assert_int_equal(conf.ok, 50);
    assert_true(conf.durable_seen >= 50); /* answered only once an fsync covered them */
    /* a non-durable queue never makes the publisher wait */
    struct queue *durable = f->q;
    fx_open(f, "t1", false);
    assert_int_equal(pub(f, 0, true, true), 1);
    assert_false(queue_durable(f->q));
    assert_string_equal(queue_log_name(f->q), "t1");
    queue_close(f->q);
    f->q = durable;
    assert_true(queue_durable(f->q));
}

static void test_callbacks_answered_on_close(void **state)
{
    struct fx *f = *state;
    conf = (struct confirms){0};
    for (int i = 0; i < 5; i++)
        assert_int_equal(pub(f, i, true, true), 0);
    queue_close(f->q); /* buffered, never appended: close appends, fsyncs and answers */
    f->q = NULL;
    assert_int_equal(conf.ok, 5);
    fx_open(f, "q1", true);
    assert_true(queue_ready_count(f->q) == 5);
    /* with an fsync in flight, close cannot make them durable itself: TERN_ECLOSED */
    conf = (struct confirms){0};
    for (int i = 5; i < 8; i++)
        assert_int_equal(pub(f, i, true, true), 0);
    queue_flush(f->q); /* appended, the pool fsync requested */
    assert_int_equal(pub(f, 8, true, true), 0);
    queue_close(f->q);
    f->q = NULL;
    assert_int_equal(conf.ok + conf.closed, 4);
    assert_true(conf.closed >= 3);
    run(f); /* the orphaned fsync completes and frees its group */
    fx_open(f, "q1", true);
    assert_true(queue_ready_count(f->q) == 9);
}

/* Deleting a queue confirms what it held, as RabbitMQ does, without an fsync of a log that is
 * about to go (buffered messages and ones whose fsync is in flight alike). */
static void test_destroy_confirms_without_fsync(void **state)
{
    struct fx *f = *state;
    conf = (struct confirms){0};
    for (int i = 0; i < 3; i++)
        assert_int_equal(pub(f, i, true, true), 0);
    queue_flush(f->q); /* appended, the pool fsync requested */
    for (int i = 3; i < 5; i++)
        assert_int_equal(pub(f, i, true, true), 0); /* buffered */
    queue_destroy(f->q); /* a close would answer the in-flight ones TERN_ECLOSED */
    f->q = NULL;
    assert_int_equal(conf.ok, 5);
    assert_int_equal(conf.closed + conf.failed, 0);
    run(f); /* the orphaned fsync completes and frees its group */
    assert_int_equal(conf.ok, 5);
}

static void test_restart_keeps_exactly_the_unsettled(void **state)
{
    struct fx *f = *state;
    struct cons *c = cons_add(f, 0);
    /* 0..29: i % 3 == 2 transient; acked: multiples of 4 among the delivered */
    for (int i = 0; i < 30; i++)
        assert_true(pub(f, i, i % 3 != 2, false) >= 0);
    run(f);
    assert_int_equal(c->n, 30);
    int acked = 0, transient_unacked = 0;
    for (int i = 0; i < 30; i++) {
        if (c->body[i] % 4 == 0) {
            cons_ack(f, c, i);
            acked++;
        } else if (c->body[i] % 3 == 2) {
            transient_unacked++;
        }
    }
    queue_requeue(f->q, c->off[5]); /* requeued, not acked: survives */
    c->paused = true;
    pub_many(f, 30, 40, true); /* ready, never delivered */
    run(f);
    assert_true(queue_unacked_count(f->q) == (uint64_t)(30 - acked - 1));
    free(c);
    fx_restart(f, "q1", true);
    /* persistent and unsettled: 0..29 minus acked minus transient, plus 30..39 */
    int want = 0;
    for (int i = 0; i < 30; i++)
        want += i % 4 != 0 && i % 3 != 2;
    assert_true(queue_ready_count(f->q) == (uint64_t)want + 10);
    assert_true(queue_unacked_count(f->q) == 0);
    c = cons_add(f, 0);
    run(f);
    assert_int_equal(c->n, want + 10);
    int prev = -1;
    for (int i = 0; i < c->n; i++) {
        int b = c->body[i];
        assert_true(b > prev); /* original order */
        assert_true(b >= 30 || (b % 4 != 0 && b % 3 != 2));
        prev = b;
    }
    (void)transient_unacked;
    /* the dead transient ones were settled at open: a second restart agrees */
    free(c);
    fx_restart(f, "q1", true);
    assert_true(queue_ready_count(f->q) == (uint64_t)want + 10);
}

static void test_non_durable_queue(void **state)
{
    struct fx *f = *state;
    queue_close(f->q);
    fx_open(f, "tq", false);
    conf = (struct confirms){0};
    assert_int_equal(pub(f, 0, true, true), 1);
    pub_many(f, 1, 20, true);
    run(f);
    assert_int_equal(conf.ok + conf.failed, 0);
    struct log *log = store_log_find(f->st, "tq");
    assert_int_equal(log_get_config(log)->fsync_mode, LOG_FSYNC_NEVER);
    struct cons *c = cons_add(f, 0);
    run(f);
    assert_int_equal(c->n, 20);
    free(c);
    /* the caller deletes it at restart; if it opens it instead, nothing survives */
    fx_restart(f, "tq", false);
    assert_true(queue_ready_count(f->q) == 0);
    queue_destroy(f->q);
    f->q = NULL;
    run(f);
    assert_null(store_log_find(f->st, "tq"));
    assert_null(store_log_find(f->st, "tq.a"));
}

/* Acks delivery i in its own loop iteration (one ack log append each) and waits for the ack
 * log's fsync, so snapshots start and finish at the same points on a fast or a slow disk. */
static void ack_slowly(struct fx *f, struct cons *c, int i)
{
    cons_ack(f, c, i);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    struct log *alog = store_log_find(f->st, "q1.a");
    while (log_durable_offset(alog) < log_end_offset(alog))
        uv_run(&f->loop, UV_RUN_ONCE);
}

static void test_snapshot_and_reclaim(void **state)
{
    struct fx *f = *state;
    fx_stop(f);
    f->cfg.log.segment_bytes = 4096; /* message log segments of ~30 messages */
    f->tuning.ack_segment_bytes = 2048;
    f->tuning.ack_snapshot_bytes = 8192;
    f->tuning.reclaim_interval_ms = 0;
    fx_start(f);
    fx_open(f, "q1", true);
    struct log *log = store_log_find(f->st, "q1"), *alog = store_log_find(f->st, "q1.a");
    struct cons *c = cons_add(f, 0);
    pad = 100;
    for (int i = 0; i < 600; i++) {
        assert_true(pub(f, i, true, false) >= 0);
        if (i % 10 == 9)
            uv_run(&f->loop, UV_RUN_NOWAIT); /* batches of 10: several per segment */
    }
    pad = 0;
    run(f);
    assert_int_equal(c->n, 600);
    int segs = log_segment_count(log);
    print_message("message log segments before acks: %d\n", segs);
    /* odd ones first, out of order, one flush each: the ack log grows past the snapshot size */
    for (int i = 599; i > 0; i -= 2)
        ack_slowly(f, c, i);
    struct queue_stats s;
    queue_stats(f->q, &s);
    assert_true(s.ack_ranges == 300 && s.low == 0);
    for (int i = 0; i < 600; i += 2)
        ack_slowly(f, c, i);
    run(f);
    queue_stats(f->q, &s);
    assert_true(s.ack_ranges == 0 && s.low == 600);
    print_message("ack log: start=%lld end=%lld segments=%d bytes=%llu\n",
                  (long long)log_start_offset(alog), (long long)log_end_offset(alog),
                  log_segment_count(alog), (unsigned long long)log_size_bytes(alog));
    assert_true(log_start_offset(alog) > 0); /* snapshots let old ack records go */
    assert_true(log_size_bytes(alog) < 3 * 8192 + 2048);
    /* a segment whose messages are all acked is deleted */
    assert_true(segs > 10);
    assert_true(log_start_offset(log) == 600);
    assert_true(log_segment_count(log) <= 2);
    free(c);
    fx_restart(f, "q1", true);
    assert_true(queue_ready_count(f->q) == 0);
    queue_stats(f->q, &s);
    assert_true(s.low == 600 && s.ack_ranges == 0);
}

static void test_destroy_removes_logs(void **state)
{
    struct fx *f = *state;
    conf = (struct confirms){0};
    assert_int_equal(pub(f, 0, true, true), 0);
    queue_destroy(f->q);
    f->q = NULL;
    assert_int_equal(conf.ok + conf.closed, 1);
    run(f);
    assert_null(store_log_find(f->st, "q1"));
    fx_open(f, "q1", true);
    assert_true(queue_ready_count(f->q) == 0);
}

static void test_dispatch_pass_is_capped(void **state)
{
    struct fx *f = *state;
    struct cons *c = cons_add(f, 0);
    struct queue_tuning t;
    queue_tuning_default(&t);
    int total = (int)t.dispatch_batch + 5000;
    c->auto_ack = true;
    pub_many(f, 0, total, false);
    queue_flush(f->q); /* appends, then one dispatch pass */
    assert_int_equal(c->n, t.dispatch_batch);
    run(f);
    assert_int_equal(c->n, total);
    assert_true(queue_unacked_count(f->q) == 0 && queue_ready_count(f->q) == 0);
    free(c);
}

static void test_bad_arguments(void **state)
{
    struct fx *f = *state;
    char big[300];
    memset(big, 'k', sizeof(big));
    struct msg m = {.rk = big, .rk_len = 256, .body = (const uint8_t *)"", .persistent = true};
    assert_int_equal(queue_publish(f->q, &m, NULL, NULL), -EINVAL);
    m.rk_len = 255;
    assert_int_equal(queue_publish(f->q, &m, NULL, NULL), 1);
    m.body_len = 9u << 20; /* over the 8 MiB max batch (checked before the body is read) */
    assert_int_equal(queue_publish(f->q, &m, NULL, NULL), TERN_ETOOBIG);
    struct queue *q2;
    assert_int_equal(queue_open(f->e, "bad/name", true, &q2), -EINVAL);
    char longname[200];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[199] = '\0';
    assert_int_equal(queue_open(f->e, longname, true, &q2), -EINVAL);
    int user;
    queue_set_user(f->q, &user);
    assert_ptr_equal(queue_user(f->q), &user);
}

/* A backlog of 1M messages: delivery state stays a cursor, a few ranges and one buffer. */
static void test_million_backlog_memory(void **state)
{
    struct fx *f = *state;
    enum { N = 1000000 };
    for (int i = 0; i < N; i++) {
        assert_true(pub(f, i, true, false) >= 0);
        if (i % 10000 == 9999)
            uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    run(f);
    struct queue_stats s;
    queue_stats(f->q, &s);
    assert_true(queue_ready_count(f->q) == N);
    assert_true(s.ack_ranges == 0 && s.requeued == 0 && s.buffered == 0);
    fx_restart(f, "q1", true);
    assert_true(queue_ready_count(f->q) == N);
    queue_stats(f->q, &s);
    assert_true(s.ack_ranges == 0 && s.readahead_bytes == 0);
    /* consume all but the first message, acking as we go */
    struct cons *c = cons_add(f, 0);
    c->auto_ack = true;
    struct msg m;
    int64_t off;
    bool redelivered;
    assert_int_equal(queue_get(f->q, &m, &off, &redelivered), 1); /* offset 0 stays unacked */
    run(f);
    assert_int_equal(c->n, N - 1);
    queue_stats(f->q, &s);
    print_message("after 1M deliveries: ranges=%zu requeued=%zu readahead=%zu low=%lld\n",
                  s.ack_ranges, s.requeued, s.readahead_bytes, (long long)s.low);
    assert_true(queue_ready_count(f->q) == 0 && queue_unacked_count(f->q) == 1);
    assert_int_equal(s.ack_ranges, 1); /* [1, N): one range above the unacked offset 0 */
    assert_true(s.low == 0);
    assert_true(s.readahead_bytes <= 2 * (256u << 10) + (64u << 10));
    queue_ack(f->q, 0);
    queue_stats(f->q, &s);
    assert_true(s.ack_ranges == 0 && s.low == N);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_publish_consume_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_robin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_can_take_and_kick, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requeue_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_basic_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_durable_callback_after_fsync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_callbacks_answered_on_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_confirms_without_fsync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_keeps_exactly_the_unsettled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_non_durable_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_and_reclaim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_removes_logs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_pass_is_capped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_million_backlog_memory, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
