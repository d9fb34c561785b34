/*
 * groupcommit_test.c - the log on a real libuv loop: fsyncs on the thread pool, many appends
 * sharing one fsync, acknowledgements only after the fsync, failures reaching every waiter,
 * interval mode, close with an fsync in flight, crash safety of acknowledged offsets, and a
 * second fsync job overlapping the first (answered in order, failing with it, never with a
 * checkpoint due or beside a large job).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/clock.h"
#include "base/tern.h"
#include "faultfs.h"
#include "store/log.h"
#include "testutil.h"

#define NOW 1700000000000ll
#define APPENDERS 32
#define ROUNDS 25

struct fx {
    char *dir;
    char logdir[4096];
    struct log_config cfg;
    struct log *log;
    uv_loop_t loop;
    /* appenders */
    int acked, failed, in_flight, next_value;
    int64_t max_acked_end;
    int rounds_left[APPENDERS];
    int64_t waiting_for[APPENDERS];
    int last_status;
    bool closed;
    int64_t last_durable_seen;
    int durable_advances; /* distinct durable offsets seen by waiters: one per fsync job */
};

struct appender {
    struct fx *f;
    int id;
};

static struct appender apps[APPENDERS];

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    f->dir = tu_tmpdir();
    snprintf(f->logdir, sizeof(f->logdir), "%s/l", f->dir);
    log_config_default(&f->cfg);
    f->cfg.segment_bytes = 64 * 1024;
    f->cfg.checkpoint_interval_ms = 0;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    faultfs_install();
    char err[256];
    assert_int_equal(log_open(&f->loop, f->logdir, &f->cfg, &f->log, err, sizeof(err)), 0);
    *state = f;
    return 0;
}

static void on_closed(void *arg)
{
    ((struct fx *)arg)->closed = true;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    faultfs_release(); /* a failed test may have left an fsync held */
    if (f->log) {
        log_close(f->log, on_closed, f);
        uv_run(&f->loop, UV_RUN_DEFAULT);
    }
    assert_int_equal(uv_loop_close(&f->loop), 0);
    faultfs_uninstall();
    tu_rmrf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void append_next(struct appender *a);

static void on_durable(void *arg, int status)
{
    struct appender *a = arg;
    struct fx *f = a->f;
    f->in_flight--;
    f->last_status = status;
    if (status != 0) {
        f->failed++;
        return;
    }
    /* acknowledged means an fsync covering it has returned */
    assert_true(log_durable_offset(f->log) >= f->waiting_for[a->id]);
    if (log_durable_offset(f->log) != f->last_durable_seen) {
        f->last_durable_seen = log_durable_offset(f->log);
        f->durable_advances++;
    }
    f->acked++;
    if (f->waiting_for[a->id] > f->max_acked_end)
        f->max_acked_end = f->waiting_for[a->id];
    if (--f->rounds_left[a->id] > 0)
        append_next(a);
}

static void append_next(struct appender *a)
{
    struct fx *f = a->f;
    char tag[32];
    snprintf(tag, sizeof(tag), "a%d", f->next_value++);
    size_t len;
    uint8_t *b = tu_batch(tag, 2, 100, NOW, &len);
    struct log_append_info info;
    int rc = log_append(f->log, b, len, NOW, &info);
    free(b);
    if (rc < 0) {
        f->failed++;
        return;
    }
    f->waiting_for[a->id] = info.last_offset + 1;
    f->in_flight++;
    rc = log_wait_durable(f->log, info.last_offset + 1, on_durable, a);
    if (rc == 1)
        on_durable(a, 0);
    else if (rc < 0)
        on_durable(a, rc);
}

static void start_appenders(struct fx *f, int rounds)
{
    for (int i = 0; i < APPENDERS; i++) {
        apps[i] = (struct appender){f, i};
        f->rounds_left[i] = rounds;
        append_next(&apps[i]);
    }
}

static void test_many_appends_share_fsyncs(void **state)
{
    struct fx *f = *state;
    uint64_t before = faultfs_calls(FAULTFS_OP_FDATASYNC);
    start_appenders(f, ROUNDS);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->failed, 0);
    assert_int_equal(f->acked, APPENDERS * ROUNDS);
    assert_true(log_durable_offset(f->log) == log_end_offset(f->log));
    uint64_t syncs = faultfs_calls(FAULTFS_OP_FDATASYNC) - before;
    print_message("appends=%d fdatasync calls=%llu\n", APPENDERS * ROUNDS,
                  (unsigned long long)syncs);
    /* group commit: far fewer fsyncs than acknowledged appends (each job also syncs the
     * checkpoint, so count generously) */
    assert_true(syncs * 4 <= (uint64_t)(APPENDERS * ROUNDS));
    /* every appender re-appends when answered: all of those appends share the next job, so
     * there is one job per round, not two (the first answered waiter must not start a job
     * that leaves the others behind) */
    print_message("fsync jobs that answered waiters=%d rounds=%d\n", f->durable_advances, ROUNDS);
    assert_true(f->durable_advances <= ROUNDS + 2);
}

static void test_fsync_failure_reaches_every_waiter(void **state)
{
    struct fx *f = *state;
    faultfs_fail(FAULTFS_OP_FDATASYNC, 1, -EIO, 0);
    start_appenders(f, 3);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->acked, 0);
    assert_int_equal(f->failed, APPENDERS);
    assert_int_equal(f->in_flight, 0);
    assert_int_equal(log_error(f->log), -EIO);
    size_t len;
    uint8_t *b = tu_batch("x", 1, 0, NOW, &len);
    assert_int_equal(log_append(f->log, b, len, NOW, NULL), TERN_EREADONLY);
    free(b);
    assert_int_equal(log_wait_durable(f->log, 1, on_durable, &apps[0]), TERN_EREADONLY);
}

static void test_acked_offsets_survive_crash(void **state)
{
    struct fx *f = *state;
    start_appenders(f, 10);
    /* run until a good part is acknowledged, then the machine dies mid-flight */
    while (f->acked < APPENDERS * 4)
        uv_run(&f->loop, UV_RUN_ONCE);
    int64_t acked_end = f->max_acked_end;
    faultfs_crash();
    uv_run(&f->loop, UV_RUN_DEFAULT); /* let in-flight work drain into the void */
    log_close(f->log, NULL, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    f->log = NULL;
    faultfs_restart(FAULTFS_TEAR, 7);
    char err[256];
    assert_int_equal(log_open(NULL, f->logdir, &f->cfg, &f->log, err, sizeof(err)), 0);
    assert_true(log_end_offset(f->log) >= acked_end);
    static struct tu_rec r[APPENDERS * 20 + 1];
    int n = tu_read_all(f->log, 0, log_end_offset(f->log), r, APPENDERS * 20 + 1);
    assert_int_equal(n, (int)log_end_offset(f->log));
    for (int i = 0; i < n; i++)
        assert_true(r[i].offset == i);
    log_close(f->log, NULL, NULL);
    f->log = NULL;
}

static void test_interval_mode_acks_at_once(void **state)
{
    struct fx *f = *state;
    log_close(f->log, NULL, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    f->cfg.fsync_mode = LOG_FSYNC_INTERVAL;
    f->cfg.fsync_interval_ms = 50;
    char err[256];
    assert_int_equal(log_open(&f->loop, f->logdir, &f->cfg, &f->log, err, sizeof(err)), 0);
    size_t len;
    uint8_t *b = tu_batch("i", 3, 10, NOW, &len);
    struct log_append_info info;
    assert_int_equal(log_append(f->log, b, len, NOW, &info), 0);
    free(b);
    /* acknowledged at once: the documented loss window is fsync_interval_ms */
    assert_int_equal(log_wait_durable(f->log, info.last_offset + 1, on_durable, &apps[0]), 1);
    assert_true(log_durable_offset(f->log) < log_end_offset(f->log));
    uint64_t before = faultfs_calls(FAULTFS_OP_FDATASYNC);
    log_tick(f->log, clock_wall_ms()); /* too early: nothing */
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(faultfs_calls(FAULTFS_OP_FDATASYNC), before);
    log_tick(f->log, clock_wall_ms() + 60);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(faultfs_calls(FAULTFS_OP_FDATASYNC) > before);
    assert_true(log_durable_offset(f->log) == log_end_offset(f->log));
}

/* Reopens the log on the loop in the given mode. */
static void reopen_mode(struct fx *f, enum log_fsync_mode mode)
{
    log_close(f->log, NULL, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    f->cfg.fsync_mode = mode;
    f->cfg.segment_bytes = 4096;
    char err[256];
    assert_int_equal(log_open(&f->loop, f->logdir, &f->cfg, &f->log, err, sizeof(err)), 0);
}

static void test_never_mode_loss_window(void **state)
{
    struct fx *f = *state;
    reopen_mode(f, LOG_FSYNC_NEVER);
    uint64_t before = faultfs_calls(FAULTFS_OP_FDATASYNC);
    size_t len;
    uint8_t *b = tu_batch("n", 1, 100, NOW, &len);
    struct log_append_info info;
    assert_int_equal(log_append(f->log, b, len, NOW, &info), 0);
    assert_int_equal(log_wait_durable(f->log, info.last_offset + 1, on_durable, &apps[0]), 1);
    log_tick(f->log, clock_wall_ms() + 3600 * 1000);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(faultfs_calls(FAULTFS_OP_FDATASYNC), before); /* never fsyncs by itself */
    /* a machine crash now loses the acknowledged record: the documented window */
    faultfs_crash();
    log_close(f->log, NULL, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    faultfs_restart(FAULTFS_DROP, 1);
    char err[256];
    assert_int_equal(log_open(&f->loop, f->logdir, &f->cfg, &f->log, err, sizeof(err)), 0);
    assert_true(log_end_offset(f->log) == 0);
    /* a roll makes everything before it durable */
    while (log_segment_count(f->log) < 2)
        assert_int_equal(log_append(f->log, b, len, NOW, &info), 0);
    int64_t rolled_at = info.base_offset;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(faultfs_calls(FAULTFS_OP_FDATASYNC) > before);
    free(b);
    faultfs_crash();
    log_close(f->log, NULL, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    f->log = NULL;
    faultfs_restart(FAULTFS_DROP, 1);
    assert_int_equal(log_open(NULL, f->logdir, &f->cfg, &f->log, err, sizeof(err)), 0);
    assert_true(log_end_offset(f->log) >= rolled_at);
    log_close(f->log, NULL, NULL);
    f->log = NULL;
}

/* Appends one batch of `bytes` value bytes per round, each after the previous was acked. */
static uint64_t sequential_rounds(struct fx *f, int rounds, int value_bytes)
{
    uint64_t t0 = clock_mono_ns();
    apps[0] = (struct appender){f, 0};
    for (int i = 0; i < rounds; i++) {
        size_t len;
        uint8_t *b = tu_batch("g", 1, value_bytes, NOW, &len);
        struct log_append_info info;
        assert_int_equal(log_append(f->log, b, len, NOW, &info), 0);
        free(b);
        f->waiting_for[0] = info.last_offset + 1;
        f->rounds_left[0] = 1; /* on_durable must not append again */
        f->in_flight++;
        assert_int_equal(log_wait_durable(f->log, info.last_offset + 1, on_durable, &apps[0]), 0);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        assert_int_equal(f->in_flight, 0);
    }
    return clock_mono_ns() - t0;
}

static void test_sync_gap_spaces_small_fsyncs(void **state)
{
    struct fx *f = *state;
    log_close(f->log, NULL, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    f->cfg.sync_gap_ms = 30;
    f->cfg.sync_gap_bytes = 16 << 10;
    char err[256];
    assert_int_equal(log_open(&f->loop, f->logdir, &f->cfg, &f->log, err, sizeof(err)), 0);
    /* small appends: each fsync starts at least 30 ms after the previous one started */
    uint64_t ns = sequential_rounds(f, 10, 100);
    print_message("10 small acked appends with a 30 ms gap: %.0f ms\n", ns / 1e6);
    assert_true(ns >= 9ull * 29 * 1000000);
    assert_int_equal(f->failed, 0);
    /* a gap of an hour is skipped for appends of 16 KiB or more */
    log_close(f->log, NULL, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    f->cfg.sync_gap_ms = 3600 * 1000;
    assert_int_equal(log_open(&f->loop, f->logdir, &f->cfg, &f->log, err, sizeof(err)), 0);
    sequential_rounds(f, 5, 20000); /* would not return within the test's timeout otherwise */
    assert_int_equal(f->failed, 0);
    assert_true(log_durable_offset(f->log) == log_end_offset(f->log));
}

static void test_close_with_fsync_in_flight(void **state)
{
    struct fx *f = *state;
    start_appenders(f, 1);
    assert_int_equal(f->in_flight, APPENDERS);
    log_close(f->log, on_closed, f); /* a job is in flight: the close completes after it */
    assert_false(f->closed);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    f->log = NULL;
    assert_true(f->closed);
    assert_int_equal(f->in_flight, 0);
    assert_int_equal(f->acked, APPENDERS); /* the final fsync answered every waiter */
    assert_true(tu_file_size(tu_path(f->logdir, "clean-shutdown")) == 0);
    char err[256];
    assert_int_equal(log_open(NULL, f->logdir, &f->cfg, &f->log, err, sizeof(err)), 0);
    assert_true(log_was_clean(f->log));
    assert_true(log_end_offset(f->log) == APPENDERS * 2);
    log_close(f->log, NULL, NULL);
    f->log = NULL;
}

/* The newest valid checkpoint slot's durable end and its segment's base (STORAGE.md). */
static void read_checkpoint(const char *logdir, int64_t *durable_end, int64_t *seg_base)
{
    uint8_t b[128] = {0};
    FILE *fp = fopen(tu_path(logdir, "checkpoint"), "rb");
    assert_non_null(fp);
    assert_true(fread(b, 1, sizeof(b), fp) >= 64);
    fclose(fp);
    uint64_t best = 0;
    bool found = false;
    for (int slot = 0; slot < 2; slot++) {
        const uint8_t *p = b + 64 * slot;
        uint64_t seq, end, base;
        if (memcmp(p, "TCKP", 4) != 0)
            continue;
        memcpy(&seq, p + 8, 8); /* little-endian, as this machine */
        memcpy(&end, p + 24, 8);
        memcpy(&base, p + 32, 8);
        if (!found || seq > best) {
            found = true;
            best = seq;
            *durable_end = (int64_t)end;
            *seg_base = (int64_t)base;
        }
    }
    assert_true(found);
}

/* A roll while an fsync job is in flight asks for a checkpoint (and a directory fsync) that the
 * job did not write: the job's completion must not drop the request, so the next job writes
 * it rather than the checkpoint interval (an hour here) passing first. */
static void test_roll_during_job_keeps_its_checkpoint(void **state)
{
    struct fx *f = *state;
    log_close(f->log, NULL, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    f->cfg.segment_bytes = 4096;
    f->cfg.checkpoint_interval_ms = 3600 * 1000;
    char err[256];
    assert_int_equal(log_open(&f->loop, f->logdir, &f->cfg, &f->log, err, sizeof(err)), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 3; i++) { /* each append after the first rolls a segment */
        char tag[16];
        snprintf(tag, sizeof(tag), "r%d", i);
        size_t len;
        uint8_t *b = tu_batch(tag, 1, 3000, NOW, &len);
        assert_int_equal(log_append(f->log, b, len, NOW, NULL), 0);
        free(b);
    }
    /* the first roll started a job on the pool; the second came while it was in flight */
    assert_int_equal(log_segment_count(f->log), 3);
    apps[0] = (struct appender){f, 0};
    f->waiting_for[0] = 3;
    f->rounds_left[0] = 1;
    f->in_flight = 1;
    assert_int_equal(log_wait_durable(f->log, 3, on_durable, &apps[0]), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->acked, 1);
    int64_t end = -1, base = -1;
    read_checkpoint(f->logdir, &end, &base);
    assert_int_equal(end, 3);
    assert_int_equal(base, 2); /* the third segment, which the second roll created */
}

/* ---- overlapping fsync jobs ---- */

/* Reopens the log on the loop with checkpoints interval_ms apart, after the first one (which
 * the first job writes): with none due, a data job may start while another is in flight. */
static void reopen_checkpoint_every(struct fx *f, uint32_t interval_ms)
{
    log_close(f->log, NULL, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    f->cfg.checkpoint_interval_ms = interval_ms;
    f->cfg.segment_bytes = 16u << 20; /* no roll (a directory fsync) in the middle */
    char err[256];
    assert_int_equal(log_open(&f->loop, f->logdir, &f->cfg, &f->log, err, sizeof(err)), 0);
    sequential_rounds(f, 1, 10);
}

/* Runs the loop without blocking until cond holds; a liveness guard fails it after 10 s. */
#define RUN_UNTIL(f, cond)                                                                         \
    do {                                                                                           \
        uint64_t t0_ = clock_mono_ns();                                                            \
        while (!(cond)) {                                                                          \
            if (clock_mono_ns() - t0_ > 10ull * 1000000000u)                                       \
                fail_msg("still not: %s", #cond);                                                  \
            uv_run(&(f)->loop, UV_RUN_NOWAIT);                                                     \
            usleep(200);                                                                           \
        }                                                                                          \
    } while (0)

/* Lets completions that could arrive be delivered (what must not happen gets its chance). */
static void run_a_while(struct fx *f)
{
    for (int i = 0; i < 50; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
}

struct answer {
    int who, status;
};
static struct answer answers[8];
static int nanswers;

static void on_answer(void *arg, int status)
{
    answers[nanswers++] = (struct answer){(int)(intptr_t)arg, status};
}

/* Appends one batch and waits for it durable with on_answer(who); returns its end. */
static int64_t append_waiting(struct fx *f, int who)
{
    size_t len;
    uint8_t *b = tu_batch("o", 1, 100, NOW, &len);
    struct log_append_info info;
    assert_int_equal(log_append(f->log, b, len, NOW, &info), 0);
    free(b);
    assert_int_equal(
        log_wait_durable(f->log, info.last_offset + 1, on_answer, (void *)(intptr_t)who), 0);
    return info.last_offset + 1;
}

/* Starts job 1 stuck in its fdatasync, then job 2 beside it, and waits for job 2's fsync to
 * have returned. */
static void two_jobs_first_stuck(struct fx *f, int64_t *end1, int64_t *end2)
{
    nanswers = 0;
    uint64_t base = faultfs_calls(FAULTFS_OP_FDATASYNC), overlaps = log_fsync_overlaps(f->log);
    faultfs_hold_fdatasync(1);
    *end1 = append_waiting(f, 1);
    RUN_UNTIL(f, faultfs_holding());
    *end2 = append_waiting(f, 2);
    /* job 2 fsyncs while job 1 is still in its own */
    assert_true(log_fsync_overlaps(f->log) == overlaps + 1);
    RUN_UNTIL(f, faultfs_calls(FAULTFS_OP_FDATASYNC) == base + 1);
    run_a_while(f);
    /* but it answers nobody before job 1 has: durability is claimed in order */
    assert_int_equal(nanswers, 0);
    assert_true(log_durable_offset(f->log) < *end1);
}

static void test_overlapping_fsyncs_answer_in_order(void **state)
{
    struct fx *f = *state;
    reopen_checkpoint_every(f, 3600 * 1000);
    int64_t end1, end2;
    two_jobs_first_stuck(f, &end1, &end2);
    faultfs_release();
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(nanswers, 2);
    assert_int_equal(answers[0].who, 1);
    assert_int_equal(answers[0].status, 0);
    assert_int_equal(answers[1].who, 2);
    assert_int_equal(answers[1].status, 0);
    assert_true(log_durable_offset(f->log) == end2);
}

/* The younger job's fsync succeeded, but the error of the older one's may have been its own
 * range's too (reported once per open file): both fail, and nothing becomes durable. */
static void test_older_fsync_failure_fails_the_younger(void **state)
{
    struct fx *f = *state;
    reopen_checkpoint_every(f, 3600 * 1000);
    int64_t end1, end2;
    two_jobs_first_stuck(f, &end1, &end2);
    faultfs_fail(FAULTFS_OP_FDATASYNC, 1, -EIO, 0); /* the held call is the next one */
    faultfs_release();
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(nanswers, 2);
    assert_int_equal(answers[0].status, -EIO);
    assert_int_equal(answers[1].status, -EIO);
    assert_int_equal(log_error(f->log), -EIO);
    assert_true(log_durable_offset(f->log) < end1);
}

/* With a checkpoint due, no job overlaps: an overlapping job may not write it, and under a
 * steady stream of appends jobs would always overlap and it would never be written. */
static void test_no_overlap_with_a_checkpoint_due(void **state)
{
    struct fx *f = *state;
    reopen_checkpoint_every(f, 1);
    nanswers = 0;
    uint64_t base = faultfs_calls(FAULTFS_OP_FDATASYNC);
    faultfs_hold_fdatasync(1);
    usleep(3000); /* a checkpoint is due: job 1 writes it, and it stays due until job 1 ends */
    int64_t end1 = append_waiting(f, 1);
    RUN_UNTIL(f, faultfs_holding());
    append_waiting(f, 2);
    run_a_while(f);
    assert_true(faultfs_calls(FAULTFS_OP_FDATASYNC) == base); /* job 2 waits */
    faultfs_release();
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(nanswers, 2);
    assert_int_equal(answers[1].status, 0);
    int64_t end = -1, seg = -1;
    read_checkpoint(f->logdir, &end, &seg);
    assert_true(end >= end1); /* job 1 wrote the one that was due */
}

/* A job in flight that fsyncs 512 KiB or more is left alone: a second beside it would only
 * split the same writeback into more flushes. */
static void test_no_overlap_beside_a_large_job(void **state)
{
    struct fx *f = *state;
    reopen_checkpoint_every(f, 3600 * 1000);
    nanswers = 0;
    uint64_t base = faultfs_calls(FAULTFS_OP_FDATASYNC);
    faultfs_hold_fdatasync(1);
    size_t len;
    uint8_t *b = tu_batch("big", 600, 1000, NOW, &len); /* ~600 KB */
    struct log_append_info info;
    assert_int_equal(log_append(f->log, b, len, NOW, &info), 0);
    free(b);
    assert_int_equal(log_wait_durable(f->log, info.last_offset + 1, on_answer, (void *)1), 0);
    RUN_UNTIL(f, faultfs_holding());
    int64_t end2 = append_waiting(f, 2);
    run_a_while(f);
    assert_true(faultfs_calls(FAULTFS_OP_FDATASYNC) == base); /* job 2 waits */
    assert_true(log_fsync_overlaps(f->log) == 0);
    faultfs_release();
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(nanswers, 2);
    assert_int_equal(answers[1].status, 0);
    assert_true(log_durable_offset(f->log) == end2);
    /* and a small job is overlapped again */
    int64_t end3, end4;
    two_jobs_first_stuck(f, &end3, &end4);
    faultfs_release();
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(log_durable_offset(f->log) == end4);
}

/* Appends that arrive while a job is in flight, as from many connections: one batch and a
 * waiter per loop iteration, so jobs overlap. */
struct streamer {
    uv_idle_t idle;
    struct fx *f;
    int left;
};

struct streamed {
    struct fx *f;
    int64_t end;
};

static void on_streamed(void *arg, int status)
{
    struct streamed *w = arg;
    struct fx *f = w->f;
    f->in_flight--;
    if (status == 0) {
        f->acked++;
        if (w->end > f->max_acked_end)
            f->max_acked_end = w->end;
    } else {
        f->failed++;
    }
    free(w);
}

static void on_stream_idle(uv_idle_t *h)
{
    struct streamer *st = h->data;
    struct fx *f = st->f;
    if (st->left-- <= 0 || faultfs_crashed()) {
        uv_idle_stop(h);
        return;
    }
    size_t len;
    uint8_t *b = tu_batch("s", 2, 200, NOW, &len);
    struct log_append_info info;
    int rc = log_append(f->log, b, len, NOW, &info);
    free(b);
    if (rc < 0) {
        f->failed++;
        uv_idle_stop(h);
        return;
    }
    struct streamed *w = tern_xmalloc(sizeof(*w));
    *w = (struct streamed){f, info.last_offset + 1};
    f->in_flight++;
    rc = log_wait_durable(f->log, w->end, on_streamed, w);
    if (rc != 0)
        on_streamed(w, rc == 1 ? 0 : rc);
}

static void test_acked_offsets_survive_crash_with_overlapping_fsyncs(void **state)
{
    struct fx *f = *state;
    reopen_checkpoint_every(f, 3600 * 1000);
    f->acked = 0;
    struct streamer st = {.f = f, .left = 100000};
    uv_idle_init(&f->loop, &st.idle);
    st.idle.data = &st;
    uv_idle_start(&st.idle, on_stream_idle);
    /* jobs overlapped: the crash finds two in flight at times */
    while ((f->acked < 300 || log_fsync_overlaps(f->log) < 5) && st.left > 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(log_fsync_overlaps(f->log) >= 5);
    int64_t acked_end = f->max_acked_end;
    faultfs_crash();
    uv_idle_stop(&st.idle);
    uv_close((uv_handle_t *)&st.idle, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* in-flight jobs drain into the void */
    log_close(f->log, NULL, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    f->log = NULL;
    assert_int_equal(f->in_flight, 0);
    faultfs_restart(FAULTFS_TEAR, 11);
    char err[256];
    assert_int_equal(log_open(NULL, f->logdir, &f->cfg, &f->log, err, sizeof(err)), 0);
    assert_true(log_end_offset(f->log) >= acked_end);
    int64_t n = log_end_offset(f->log);
    struct tu_rec *r = calloc((size_t)n + 1, sizeof(*r));
    assert_int_equal(tu_read_all(f->log, 0, n, r, (int)n + 1), (int)n);
    for (int64_t i = 0; i < n; i++)
        assert_true(r[i].offset == i);
    free(r);
    log_close(f->log, NULL, NULL);
    f->log = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_many_appends_share_fsyncs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fsync_failure_reaches_every_waiter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acked_offsets_survive_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interval_mode_acks_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_never_mode_loss_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_fsync_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_gap_spaces_small_fsyncs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roll_during_job_keeps_its_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overlapping_fsyncs_answer_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_older_fsync_failure_fails_the_younger, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_no_overlap_with_a_checkpoint_due, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_overlap_beside_a_large_job, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acked_offsets_survive_crash_with_overlapping_fsyncs,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
