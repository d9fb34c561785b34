/*
 * queue_crash_test.c - the queue under simulated machine crashes (tests/support/faultfs).
 *
 * Invariants checked after every crash and restart:
 *   - every message whose durability callback reported 0 before the crash is there, and the
 *     survivors come out in publish order;
 *   - a message whose ack was fsynced before the crash does not come back;
 *   - acks of messages the message log lost (delivered before their fsync) do not hide the
 *     new messages that reuse those offsets after the restart.
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
#include "faultfs.h"
#include "store/store.h"
#include "testutil.h"

#define NOW 1700000000000ll
#define MAXMSG 4000

struct fx {
    char *dir;
    uv_loop_t loop;
    struct store_config cfg;
    struct store *st;
    struct queue_engine *e;
    struct queue *q;
    bool crashed;
    /* per message number */
    bool confirmed[MAXMSG];
    bool ack_durable[MAXMSG]; /* its ack was in the ack log's durable part at the crash */
    int64_t ack_end[MAXMSG];  /* ack log end right after its ack was appended; 0: not acked */
    int next_msg;
    /* deliveries */
    int ndel;
    int del_body[MAXMSG];
    int64_t del_off[MAXMSG];
    bool consuming;
};

struct pubarg {
    struct fx *f;
    int i;
};

static struct pubarg args[MAXMSG];

static void on_confirm(void *arg, int status)
{
    struct pubarg *a = arg;
    if (status == 0 && !a->f->crashed)
        a->f->confirmed[a->i] = true;
}

static void start(struct fx *f)
{
    assert_int_equal(store_open(&f->loop, &f->cfg, &f->st), 0);
    f->e = queue_engine_new(&f->loop, f->st);
    int rc = queue_open(f->e, "cq", true, &f->q);
    if (rc != 0)
        fail_msg("queue_open: %s", tern_strerror(rc));
}

static void stop(struct fx *f)
{
    if (f->q)
        queue_close(f->q);
    f->q = NULL;
    queue_engine_free(f->e);
    store_close(f->st, NULL, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    f->st = NULL;
}

/* The machine dies: everything is dropped without saving, then files go back to what an
 * fsync made durable. */
static void crash_and_restart(struct fx *f, uint64_t seed)
{
    faultfs_crash();
    f->crashed = true;
    stop(f);
    faultfs_restart(FAULTFS_DROP, seed);
    f->crashed = false;
    f->ndel = 0;
    start(f);
}

static int setup(void **state)
{
    tlog_set_level(TLOG_LEVEL_ERROR);
    struct fx *f = calloc(1, sizeof(*f));
    f->dir = tu_tmpdir();
    assert_int_equal(uv_loop_init(&f->loop), 0);
    store_config_default(&f->cfg);
    f->cfg.data_dir = f->dir;
    f->cfg.log.segment_bytes = 8192;
    faultfs_install();
    start(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->st)
        stop(f);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    faultfs_uninstall();
    tu_rmrf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void publish(struct fx *f, queue_durable_cb cb)
{
    int i = f->next_msg++;
    TERN_ASSERT(i < MAXMSG);
    char body[64];
    int n = snprintf(body, sizeof(body), "m%d-", i);
    memset(body + n, 'p', sizeof(body) - (size_t)n);
    struct msg m = {.exchange = "",
                    .rk = "cq",
                    .rk_len = 2,
                    .body = (const uint8_t *)body,
                    .body_len = sizeof(body),
                    .persistent = true,
                    .timestamp_ms = NOW + i};
    args[i] = (struct pubarg){f, i};
    int rc = queue_publish(f->q, &m, cb, &args[i]);
    assert_true(rc >= 0);
    if (rc == 1 && cb)
        cb(&args[i], 0);
}

static bool can_take(void *ctx)
{
    return ((struct fx *)ctx)->consuming;
}

static void deliver(void *ctx, struct queue *q, int64_t offset, const struct msg *m,
                    bool redelivered)
{
    (void)q;
    (void)redelivered;
    struct fx *f = ctx;
    assert_true(f->ndel < MAXMSG);
    f->del_body[f->ndel] = atoi((const char *)m->body + 1);
    f->del_off[f->ndel++] = offset;
}

static const struct queue_consumer_ops ops = {can_take, deliver};

/* Delivers everything ready into f->del_*. */
static void drain(struct fx *f)
{
    f->ndel = 0;
    f->consuming = true;
    struct queue_consumer *c = queue_consumer_add(f->q, &ops, f);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    queue_consumer_remove(f->q, c);
    f->consuming = false;
}

static void test_confirmed_survive_acked_stay_gone(void **state)
{
    struct fx *f = *state;
    struct log *alog = store_log_find(f->st, "cq.a");
    uint64_t seed = 99;
    int acked_total = 0;
    for (int round = 0; round < 40; round++) {
        /* publish a burst with durability waits, a few loop turns at a time */
        int burst = 5 + (int)(seed % 30);
        for (int k = 0; k < burst; k++) {
            publish(f, on_confirm);
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            if ((seed >> 40) % 5 == 0)
                uv_run(&f->loop, UV_RUN_ONCE);
        }
        uv_run(&f->loop, UV_RUN_NOWAIT);
        /* now and then consume some and ack every third one */
        if (round % 3 == 1) {
            drain(f);
            for (int d = 0; d < f->ndel; d++) {
                if (f->del_body[d] % 3 == 0) {
                    queue_ack(f->q, f->del_off[d]);
                    queue_flush(f->q);
                    f->ack_end[f->del_body[d]] = log_end_offset(alog);
                    acked_total++;
                } else {
                    queue_requeue(f->q, f->del_off[d]);
                }
            }
        }
        /* the machine dies somewhere in the middle of the work */
        if (round % 10 == 9) {
            for (int i = 0; i < f->next_msg; i++)
                f->ack_durable[i] = f->ack_end[i] && f->ack_end[i] <= log_durable_offset(alog);
            crash_and_restart(f, seed);
            alog = store_log_find(f->st, "cq.a");
            drain(f);
            int prev = -1, confirmed_left = 0;
            bool seen[MAXMSG] = {0};
            for (int d = 0; d < f->ndel; d++) {
                int b = f->del_body[d];
                assert_true(b > prev); /* publish order */
                prev = b;
                seen[b] = true;
                assert_false(f->ack_durable[b]); /* an fsynced ack never comes back */
            }
            for (int i = 0; i < f->next_msg; i++) {
                if (f->confirmed[i] && !f->ack_end[i]) {
                    assert_true(seen[i]); /* confirmed and never acked: still there */
                    confirmed_left++;
                }
            }
            print_message("round %d: published=%d acked=%d delivered after restart=%d "
                          "confirmed unacked=%d\n",
                          round, f->next_msg, acked_total, f->ndel, confirmed_left);
            /* put everything back for the next rounds (requeue = unacked) */
            for (int d = 0; d < f->ndel; d++)
                queue_requeue(f->q, f->del_off[d]);
            /* messages lost with the crash are forgotten by the bookkeeping; those that came
             * back lost their (unsynced) ack and count as unacked again */
            for (int i = 0; i < f->next_msg; i++) {
                if (!seen[i])
                    f->confirmed[i] = false;
                else
                    f->ack_end[i] = 0;
            }
        }
    }
    assert_true(acked_total > 0);
}

/* Delivered before its fsync, acked, ack fsynced, message lost in the crash: the offsets are
 * reused after the restart and the new messages there must not be taken for acked ones. */
static void test_lost_tail_does_not_hide_new_messages(void **state)
{
    struct fx *f = *state;
    stop(f);
    f->cfg.log.checkpoint_interval_ms = 3600 * 1000; /* no periodic fsync of the message log */
    start(f);
    for (int i = 0; i < 10; i++)
        publish(f, NULL); /* nobody waits: the message log is not fsynced */
    drain(f);
    assert_int_equal(f->ndel, 10);
    for (int d = 0; d < 10; d++)
        queue_ack(f->q, f->del_off[d]);
    queue_flush(f->q);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* the ack log's fsync completes */
    struct log *alog = store_log_find(f->st, "cq.a"), *log = store_log_find(f->st, "cq");
    assert_true(log_durable_offset(alog) == log_end_offset(alog));
    assert_true(log_durable_offset(log) == 0);
    crash_and_restart(f, 1);
    log = store_log_find(f->st, "cq");
    assert_true(log_end_offset(log) == 0); /* the ten messages are gone with the crash */
    assert_true(queue_ready_count(f->q) == 0);
    /* ten new messages take offsets 0..9, confirmed this time */
    for (int i = 0; i < 10; i++)
        publish(f, on_confirm);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    for (int i = 10; i < 20; i++)
        assert_true(f->confirmed[i]);
    assert_true(queue_ready_count(f->q) == 10);
    crash_and_restart(f, 2);
    assert_true(queue_ready_count(f->q) == 10);
    drain(f);
    assert_int_equal(f->ndel, 10);
    for (int d = 0; d < 10; d++)
        assert_int_equal(f->del_body[d], 10 + d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_confirmed_survive_acked_stay_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_tail_does_not_hide_new_messages, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
