/*
 * crash_test.c - simulated crashes under the fault-injecting file layer (tests/support/faultfs).
 *
 * Invariants checked after every crash and restart:
 *   - every offset acknowledged as durable before the crash is there, byte-exact;
 *   - what is served is exactly a prefix of what was appended (nothing after a gap);
 *   - damage before the checkpointed durable position refuses the log, naming file and byte;
 *   - a failed write or fsync turns the log read-only and is never retried.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include <cmocka.h>

#include "base/tern.h"
#include "faultfs.h"
#include "store/log.h"
#include "testutil.h"

#define NOW 1700000000000ll
#define MAXREC 4096


static int setup(void **state)
{
    struct tu_logfx *f = tu_logfx_new();
    f->cfg.segment_bytes = 2048;
    f->cfg.index_interval_bytes = 200;
    f->cfg.checkpoint_interval_ms = 0; /* every fsync also checkpoints */
    faultfs_install();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct tu_logfx *f = *state;
    if (f->log)
        log_close(f->log, NULL, NULL);
    f->log = NULL;
    faultfs_uninstall();
    tu_logfx_free(f);
    return 0;
}

static int open_log(struct tu_logfx *f, char *err, size_t errlen)
{
    return log_open(NULL, f->logdir, &f->cfg, &f->log, err, errlen);
}

static void must_open(struct tu_logfx *f)
{
    char err[512];
    int rc = open_log(f, err, sizeof(err));
    if (rc != 0)
        fail_msg("log_open: %s (%s)", tern_strerror(rc), err);
}

/* The machine dies: the log object is dropped without saving anything, then the files are
 * rewritten to what would survive. */
static void crash(struct tu_logfx *f, enum faultfs_crash_mode mode, uint64_t seed)
{
    faultfs_crash();
    if (f->log)
        log_close(f->log, NULL, NULL); /* frees memory; its writes are discarded */
    f->log = NULL;
    faultfs_restart(mode, seed);
}

static void append_one(struct tu_logfx *f, int i)
{
    char tag[32];
    snprintf(tag, sizeof(tag), "r%d", i);
    size_t len;
    uint8_t *b = tu_batch(tag, 1, 30 + (size_t)(i % 7) * 13, NOW + i, &len);
    struct log_append_info info;
    assert_int_equal(log_append(f->log, b, len, NOW, &info), 0);
    assert_true(info.base_offset == i);
    free(b);
}

/* Every record in the log is r<offset>, from 0 to end with no gap; end >= durable. */
static void check_prefix(struct tu_logfx *f, int64_t durable)
{
    static struct tu_rec r[MAXREC];
    int64_t end = log_end_offset(f->log);
    assert_true(end >= durable);
    assert_true(log_start_offset(f->log) == 0);
    int n = tu_read_all(f->log, 0, end, r, MAXREC);
    assert_int_equal(n, (int)end);
    for (int i = 0; i < n; i++) {
        char want[32];
        snprintf(want, sizeof(want), "r%d-0", i);
        assert_true(r[i].offset == i);
        assert_true(strncmp(r[i].value, want, strlen(want)) == 0);
        assert_true(r[i].timestamp == NOW + i);
    }
}

static void random_crashes(struct tu_logfx *f, enum faultfs_crash_mode mode)
{
    uint64_t seed = 42;
    for (int round = 0; round < 60; round++) {
        must_open(f);
        int next = (int)log_end_offset(f->log);
        int64_t durable = next; /* recovery made everything it kept durable */
        int appends = 1 + (int)(seed % 23);
        for (int i = 0; i < appends && next < MAXREC - 1; i++) {
            append_one(f, next++);
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            if ((seed >> 33) % 4 == 0) {
                assert_int_equal(log_sync(f->log), 0);
                durable = log_durable_offset(f->log);
                assert_true(durable == next);
            }
        }
        crash(f, mode, seed);
        must_open(f);
        check_prefix(f, durable);
        log_close(f->log, NULL, NULL);
        f->log = NULL;
    }
}

static void test_crash_drop_unsynced(void **state)
{
    random_crashes(*state, FAULTFS_DROP);
}

static void test_crash_torn_tail(void **state)
{
    random_crashes(*state, FAULTFS_TEAR);
}

static void test_unsynced_new_segment_vanishes(void **state)
{
    struct tu_logfx *f = *state;
    must_open(f);
    for (int i = 0; i < 10; i++)
        append_one(f, i);
    assert_int_equal(log_sync(f->log), 0);
    int segs = log_segment_count(f->log);
    int i = 10;
    while (log_segment_count(f->log) == segs)
        append_one(f, i++); /* roll into a new segment, never synced */
    crash(f, FAULTFS_DROP, 1);
    must_open(f);
    check_prefix(f, 10);
}

static void on_durable(void *arg, int status)
{
    assert_int_equal(status, 0);
    *(int *)arg = 1;
}

/* Opens (creates) the fixture's log with loop. */
static void open_on_loop(struct tu_logfx *f, uv_loop_t *loop)
{
    char err[512];
    assert_int_equal(uv_loop_init(loop), 0);
    assert_int_equal(log_open(loop, f->logdir, &f->cfg, &f->log, err, sizeof(err)), 0);
}

/* crash(), then lets the closed log's handles go and closes loop. */
static void crash_on_loop(struct tu_logfx *f, uv_loop_t *loop, enum faultfs_crash_mode mode,
                          uint64_t seed)
{
    crash(f, mode, seed);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* A log created with a loop does no fsync on the loop thread; its first pool fsync makes the
 * directory, the segment and the checkpoint durable along with the data it acknowledges. */
static void test_new_log_made_durable_by_first_job(void **state)
{
    struct tu_logfx *f = *state;
    f->cfg.segment_bytes = 1 << 20;
    uv_loop_t loop;
    uint64_t syncs =
        faultfs_thread_calls(FAULTFS_OP_FDATASYNC) + faultfs_thread_calls(FAULTFS_OP_FSYNC_DIR);
    open_on_loop(f, &loop);
    for (int i = 0; i < 5; i++)
        append_one(f, i);
    assert_true(faultfs_thread_calls(FAULTFS_OP_FDATASYNC) +
                    faultfs_thread_calls(FAULTFS_OP_FSYNC_DIR) ==
                syncs);
    int done = 0;
    assert_int_equal(log_wait_durable(f->log, 5, on_durable, &done), 0);
    while (!done)
        uv_run(&loop, UV_RUN_ONCE);
    append_one(f, 5); /* never synced */
    crash_on_loop(f, &loop, FAULTFS_DROP, 3);
    must_open(f);
    check_prefix(f, 5);
    assert_true(log_end_offset(f->log) == 5);
}

/* A crash before a new log's first fsync leaves an empty log (or none): it opens as new. */
static void test_new_log_crash_before_first_job(void **state)
{
    struct tu_logfx *f = *state;
    uv_loop_t loop;
    open_on_loop(f, &loop);
    for (int i = 0; i < 3; i++)
        append_one(f, i);
    crash_on_loop(f, &loop, FAULTFS_TEAR, 5);
    must_open(f);
    check_prefix(f, 0);
    append_one(f, (int)log_end_offset(f->log));
}

/* log_discard (a log about to be deleted) neither fsyncs nor writes the checkpoint or the
 * clean-shutdown marker, and answers durable waiters with TERN_ECLOSED. */
static void on_closed_status(void *arg, int status)
{
    *(int *)arg = status;
}

static void on_discarded(void *arg)
{
    *(int *)arg = 1;
}

static void test_discard_skips_final_sync(void **state)
{
    struct tu_logfx *f = *state;
    must_open(f);
    for (int i = 0; i < 3; i++)
        append_one(f, i);
    assert_int_equal(log_sync(f->log), 0);
    append_one(f, 3);
    int status = 0, closed = 0;
    assert_int_equal(log_wait_durable(f->log, 4, on_closed_status, &status), 0);
    uint64_t before = faultfs_calls(FAULTFS_OP_FDATASYNC) + faultfs_calls(FAULTFS_OP_FSYNC_DIR) +
                      faultfs_calls(FAULTFS_OP_PWRITE) + faultfs_calls(FAULTFS_OP_OPEN);
    log_discard(f->log, on_discarded, &closed);
    f->log = NULL;
    assert_int_equal(closed, 1);
    assert_int_equal(status, TERN_ECLOSED);
    assert_true(faultfs_calls(FAULTFS_OP_FDATASYNC) + faultfs_calls(FAULTFS_OP_FSYNC_DIR) +
                    faultfs_calls(FAULTFS_OP_PWRITE) + faultfs_calls(FAULTFS_OP_OPEN) ==
                before);
}

static void test_bitflip_before_durable_refuses(void **state)
{
    struct tu_logfx *f = *state;
    f->cfg.segment_bytes = 1 << 20;
    must_open(f);
    for (int i = 0; i < 20; i++)
        append_one(f, i);
    assert_int_equal(log_sync(f->log), 0); /* checkpoint: 20 durable */
    crash(f, FAULTFS_DROP, 1);
    const char *seg = tu_path(f->logdir, "00000000000000000000.log");
    tu_flip(seg, 300, 3); /* inside an early batch */
    char err[512];
    int rc = open_log(f, err, sizeof(err));
    assert_int_equal(rc, TERN_ECORRUPT);
    assert_null(f->log);
    assert_non_null(strstr(err, "00000000000000000000.log"));
    assert_non_null(strstr(err, "at byte "));
    /* reopening again still refuses: nothing was truncated */
    assert_int_equal(open_log(f, err, sizeof(err)), TERN_ECORRUPT);
}

static void test_bitflip_after_durable_truncates(void **state)
{
    struct tu_logfx *f = *state;
    f->cfg.segment_bytes = 1 << 20;
    must_open(f);
    for (int i = 0; i < 20; i++)
        append_one(f, i);
    assert_int_equal(log_sync(f->log), 0);
    int64_t synced = tu_file_size(tu_path(f->logdir, "00000000000000000000.log"));
    for (int i = 20; i < 30; i++)
        append_one(f, i);
    /* the process dies but the OS keeps the page cache: the tail is on disk, unsynced */
    faultfs_crash();
    log_close(f->log, NULL, NULL);
    f->log = NULL;
    faultfs_uninstall();
    faultfs_install();
    const char *seg = tu_path(f->logdir, "00000000000000000000.log");
    tu_flip(seg, (uint64_t)synced + 100, 0); /* inside batch 21 or so, after the checkpoint */
    must_open(f);
    int64_t end = log_end_offset(f->log);
    assert_true(end >= 20 && end < 30);
    check_prefix(f, 20);
}

static void test_truncated_index_after_crash(void **state)
{
    struct tu_logfx *f = *state;
    must_open(f);
    for (int i = 0; i < 60; i++)
        append_one(f, i);
    assert_int_equal(log_sync(f->log), 0);
    crash(f, FAULTFS_DROP, 1);
    assert_int_equal(truncate(tu_path(f->logdir, "00000000000000000000.index"), 5), 0);
    assert_int_equal(truncate(tu_path(f->logdir, "00000000000000000000.timeindex"), 0), 0);
    must_open(f);
    check_prefix(f, 60);
}

static void test_fsync_failure_goes_readonly(void **state)
{
    struct tu_logfx *f = *state;
    must_open(f);
    for (int i = 0; i < 5; i++)
        append_one(f, i);
    assert_int_equal(log_sync(f->log), 0);
    for (int i = 5; i < 8; i++)
        append_one(f, i);
    faultfs_fail(FAULTFS_OP_FDATASYNC, 1, -EIO, 0);
    assert_int_equal(log_sync(f->log), -EIO);
    assert_int_equal(log_error(f->log), -EIO);
    assert_true(log_durable_offset(f->log) == 5);
    uint64_t syncs = faultfs_calls(FAULTFS_OP_FDATASYNC);
    assert_int_equal(log_sync(f->log), -EIO); /* never retried */
    assert_int_equal(faultfs_calls(FAULTFS_OP_FDATASYNC), syncs);
    size_t len;
    uint8_t *b = tu_batch("late", 1, 0, NOW, &len);
    assert_int_equal(log_append(f->log, b, len, NOW, NULL), TERN_EREADONLY);
    free(b);
    /* reads below the durable offset still work */
    static struct tu_rec r[8];
    assert_int_equal(tu_read_all(f->log, 0, log_durable_offset(f->log), r, 8), 5);
    crash(f, FAULTFS_DROP, 1);
    must_open(f);
    check_prefix(f, 5);
}

static void test_write_failure_goes_readonly(void **state)
{
    struct tu_logfx *f = *state;
    must_open(f);
    for (int i = 0; i < 5; i++)
        append_one(f, i);
    assert_int_equal(log_sync(f->log), 0);
    faultfs_fail(FAULTFS_OP_PWRITE, 1, -ENOSPC, 1); /* half the batch lands, then disk full */
    size_t len;
    uint8_t *b = tu_batch("r5", 1, 200, NOW + 5, &len);
    assert_int_equal(log_append(f->log, b, len, NOW, NULL), -ENOSPC);
    assert_int_equal(log_append(f->log, b, len, NOW, NULL), TERN_EREADONLY);
    free(b);
    assert_true(log_end_offset(f->log) == 5);
    /* the process is restarted without a machine crash: the half batch is on disk */
    log_close(f->log, NULL, NULL);
    f->log = NULL;
    must_open(f);
    assert_false(log_was_clean(f->log)); /* a failed log does not write the marker */
    check_prefix(f, 5);
    append_one(f, 5); /* writable again after recovery */
}

static void test_checkpoint_torn_slot(void **state)
{
    struct tu_logfx *f = *state;
    must_open(f);
    for (int i = 0; i < 12; i++) {
        append_one(f, i);
        assert_int_equal(log_sync(f->log), 0);
    }
    crash(f, FAULTFS_DROP, 1);
    /* damage one checkpoint slot: the other one still describes a durable state */
    tu_flip(tu_path(f->logdir, "checkpoint"), 70, 2);
    must_open(f);
    check_prefix(f, 11);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_crash_drop_unsynced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsynced_new_segment_vanishes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_log_made_durable_by_first_job, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_log_crash_before_first_job, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discard_skips_final_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bitflip_before_durable_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bitflip_after_durable_truncates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_index_after_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fsync_failure_goes_readonly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_failure_goes_readonly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_torn_slot, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
