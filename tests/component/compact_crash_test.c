/*
 * compact_crash_test.c - a compaction pass interrupted by a machine crash at every step, under
 * the fault-injecting file layer (tests/support/faultfs).
 *
 * A dry run counts the file operations of one pass (writes of the temporary segment and its
 * indexes, their fsyncs, the unlink of the old indexes, the directory fsyncs, the renames).
 * Then, for every operation n of every kind, a fresh log gets the same appends, the machine
 * dies just before operation n, and the log is reopened. After each crash:
 *   - the log opens (no refusal), with no temporary file left and the same offsets;
 *   - batches are contiguous and every CRC holds;
 *   - every record served is the one appended at that offset, and every key's latest record
 *     and every keyless record are there (each segment is either the old or the new copy);
 *   - a new pass runs to completion and leaves exactly what an uninterrupted pass leaves.
 * Both crash modes run: unsynced bytes dropped, and torn (a random prefix of them survives).
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/tern.h"
#include "faultfs.h"
#include "store/log.h"
#include "testutil.h"

#define NOW 1700000000000ll
#define MAXM 1024

static struct tu_kv model[MAXM];
static int nmodel;
static struct tu_kv got[MAXM];

static const enum faultfs_op ops[] = {
    FAULTFS_OP_OPEN,      FAULTFS_OP_PWRITE, FAULTFS_OP_FDATASYNC, FAULTFS_OP_TRUNCATE,
    FAULTFS_OP_FSYNC_DIR, FAULTFS_OP_RENAME, FAULTFS_OP_UNLINK,
};
static const char *const op_names[] = {"open",      "pwrite", "fdatasync", "truncate",
                                       "fsync_dir", "rename", "unlink",    "close"};

static struct tu_logfx *fx_new(void)
{
    struct tu_logfx *f = tu_logfx_new();
    f->cfg.segment_bytes = 1024;
    f->cfg.index_interval_bytes = 128;
    f->cfg.checkpoint_interval_ms = 0;
    f->cfg.compact = true;
    faultfs_install();
    return f;
}

static void fx_free(struct tu_logfx *f)
{
    if (f->log)
        log_close(f->log, NULL, NULL);
    f->log = NULL;
    faultfs_uninstall();
    tu_logfx_free(f);
}

static void must_open(struct tu_logfx *f)
{
    char err[512];
    int rc = log_open(NULL, f->logdir, &f->cfg, &f->log, err, sizeof(err));
    if (rc != 0)
        fail_msg("log_open: %s (%s)", tern_strerror(rc), err);
}

static void put(struct tu_logfx *f, const char *key, const char *value)
{
    struct tu_kv k = {.timestamp = NOW + nmodel, .null_key = !key, .null_value = !value};
    snprintf(k.key, sizeof(k.key), "%s", key ? key : "");
    snprintf(k.value, sizeof(k.value), "%s", value ? value : "");
    size_t len;
    uint8_t *b = tu_kbatch(&k, 1, 0, &len);
    struct log_append_info info;
    assert_int_equal(log_append(f->log, b, len, NOW, &info), 0);
    free(b);
    k.offset = info.base_offset;
    model[nmodel++] = k;
}

/* The same appends every time: updates of six keys, a tombstone, keyless records, a roll. */
static void fill(struct tu_logfx *f)
{
    nmodel = 0;
    must_open(f);
    for (int i = 0; i < 60; i++) {
        char key[16], val[64];
        snprintf(key, sizeof(key), "k%d", i % 6);
        snprintf(val, sizeof(val), "value-%d-of-%s-xxxxxxxxxxxxxxxxxxxx", i, key);
        put(f, key, val);
        if (i % 9 == 4)
            put(f, NULL, "keyless-record-xxxxxxxxxxxxxxxxxxxxxxxxx");
    }
    put(f, "k5", NULL);
    int segs = log_segment_count(f->log);
    while (log_segment_count(f->log) == segs)
        put(f, "pad", "pad-pad-pad-pad-pad-pad-pad-pad-pad-pad-pad-pad");
    assert_int_equal(log_sync(f->log), 0);
}

static int64_t latest_of(const char *key)
{
    for (int i = nmodel - 1; i >= 0; i--)
        if (!model[i].null_key && strcmp(model[i].key, key) == 0)
            return model[i].offset;
    return -1;
}

static bool same_kv(const struct tu_kv *a, const struct tu_kv *b)
{
    return a->timestamp == b->timestamp && a->null_key == b->null_key &&
           a->null_value == b->null_value && strcmp(a->key, b->key) == 0 &&
           strcmp(a->value, b->value) == 0;
}

static bool temp_files_left(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    bool found = false;
    while ((e = readdir(d)) != NULL)
        found = found || strstr(e->d_name, ".cleaned") != NULL;
    closedir(d);
    return found;
}

/* The log after a crash: valid, a subset of the model holding every key's latest record and
 * every keyless record. Returns the number of records served. */
static int check_after_crash(struct tu_logfx *f, const char *what)
{
    struct tu_walk w;
    int n = tu_read_kv(f->log, got, MAXM, &w);
    if (n < 0)
        fail_msg("%s: reading the log: %s", what, tern_strerror(n));
    assert_false(temp_files_left(f->logdir));
    assert_true(log_start_offset(f->log) == 0);
    assert_true(log_end_offset(f->log) == model[nmodel - 1].offset + 1);
    int j = 0, latest = 0, keyless = 0;
    for (int i = 0; i < n; i++) {
        while (j < nmodel && model[j].offset < got[i].offset)
            j++;
        if (j == nmodel || model[j].offset != got[i].offset || !same_kv(&got[i], &model[j]))
            fail_msg("%s: offset %lld serves a record that was not appended there", what,
                     (long long)got[i].offset);
        latest += !got[i].null_key && latest_of(got[i].key) == got[i].offset;
        keyless += got[i].null_key;
    }
    int want_latest = 0, want_keyless = 0;
    for (int i = 0; i < nmodel; i++) {
        want_latest += !model[i].null_key && latest_of(model[i].key) == model[i].offset;
        want_keyless += model[i].null_key;
    }
    if (latest != want_latest || keyless != want_keyless)
        fail_msg("%s: %d of %d latest records and %d of %d keyless records are there", what,
                 latest, want_latest, keyless, want_keyless);
    return n;
}

/* Records served by an uninterrupted pass (the reference). */
static int reference_count(void)
{
    struct tu_logfx *f = fx_new();
    fill(f);
    assert_int_equal(log_compact(f->log, NOW, true), 1);
    int n = tu_read_kv(f->log, got, MAXM, NULL);
    fx_free(f);
    return n;
}

/* Counts each operation kind during one pass. */
static void dry_run(uint64_t counts[FAULTFS_OP_COUNT])
{
    struct tu_logfx *f = fx_new();
    fill(f);
    uint64_t before[FAULTFS_OP_COUNT];
    for (int op = 0; op < FAULTFS_OP_COUNT; op++)
        before[op] = faultfs_calls((enum faultfs_op)op);
    assert_int_equal(log_compact(f->log, NOW, true), 1);
    for (int op = 0; op < FAULTFS_OP_COUNT; op++)
        counts[op] = faultfs_calls((enum faultfs_op)op) - before[op];
    fx_free(f);
}

static void crash_once(enum faultfs_op op, uint64_t nth, enum faultfs_crash_mode mode,
                       int want_after)
{
    char what[96];
    snprintf(what, sizeof(what), "crash before %s #%llu (%s)", op_names[op],
             (unsigned long long)nth, mode == FAULTFS_DROP ? "drop" : "tear");
    struct tu_logfx *f = fx_new();
    fill(f);
    faultfs_crash_at(op, nth);
    log_compact(f->log, NOW, true); /* whatever it returns, the machine died in it */
    assert_true(faultfs_crashed());
    log_close(f->log, NULL, NULL); /* frees memory; its writes are discarded */
    f->log = NULL;
    faultfs_restart(mode, nth * 7919 + (uint64_t)op);
    must_open(f);
    check_after_crash(f, what);
    /* a pass after recovery completes and leaves what an uninterrupted pass leaves */
    assert_int_equal(log_compact(f->log, NOW, true), 1);
    int n = check_after_crash(f, what);
    if (n != want_after)
        fail_msg("%s: a pass after recovery leaves %d records, not %d", what, n, want_after);
    fx_free(f);
}

static void test_crash_at_every_step(void **state)
{
    (void)state;
    uint64_t counts[FAULTFS_OP_COUNT];
    dry_run(counts);
    /* the steps the design promises to survive are all there */
    assert_true(counts[FAULTFS_OP_PWRITE] > 0 && counts[FAULTFS_OP_FDATASYNC] > 0);
    assert_true(counts[FAULTFS_OP_RENAME] > 0 && counts[FAULTFS_OP_UNLINK] > 0);
    assert_true(counts[FAULTFS_OP_FSYNC_DIR] > 0);
    int want = reference_count();
    int crashes = 0;
    for (unsigned k = 0; k < TERN_ARRAY_LEN(ops); k++) {
        for (uint64_t n = 1; n <= counts[ops[k]]; n++) {
            crash_once(ops[k], n, FAULTFS_DROP, want);
            crash_once(ops[k], n, FAULTFS_TEAR, want);
            crashes += 2;
        }
    }
    print_message("%d crashes in a pass of %llu writes, %llu fsyncs, %llu directory fsyncs, "
                  "%llu renames, %llu unlinks\n",
                  crashes, (unsigned long long)counts[FAULTFS_OP_PWRITE],
                  (unsigned long long)counts[FAULTFS_OP_FDATASYNC],
                  (unsigned long long)counts[FAULTFS_OP_FSYNC_DIR],
                  (unsigned long long)counts[FAULTFS_OP_RENAME],
                  (unsigned long long)counts[FAULTFS_OP_UNLINK]);
}

/* A failed fsync of the temporary segment leaves the old segment and makes the log read-only
 * (it is never retried); reopening recovers a valid log. */
static void test_fsync_failure_in_pass(void **state)
{
    (void)state;
    struct tu_logfx *f = fx_new();
    fill(f);
    faultfs_fail(FAULTFS_OP_FDATASYNC, 1, -EIO, 0);
    assert_int_equal(log_compact(f->log, NOW, true), -EIO);
    assert_int_equal(log_error(f->log), -EIO);
    assert_int_equal(log_compact(f->log, NOW, true), -EIO);
    check_after_crash(f, "fsync failure");
    log_close(f->log, NULL, NULL);
    f->log = NULL;
    must_open(f);
    check_after_crash(f, "fsync failure, reopened");
    assert_int_equal(log_compact(f->log, NOW, true), 1);
    fx_free(f);
}

/* A failed write of the temporary segment (disk full) fails only the pass. */
static void test_write_failure_in_pass(void **state)
{
    (void)state;
    struct tu_logfx *f = fx_new();
    fill(f);
    faultfs_fail(FAULTFS_OP_PWRITE, 3, -ENOSPC, 1);
    assert_int_equal(log_compact(f->log, NOW, true), -ENOSPC);
    assert_int_equal(log_error(f->log), 0);
    assert_false(temp_files_left(f->logdir));
    check_after_crash(f, "write failure");
    assert_int_equal(log_compact(f->log, NOW, true), 1);
    check_after_crash(f, "write failure, next pass");
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crash_at_every_step),
        cmocka_unit_test(test_fsync_failure_in_pass),
        cmocka_unit_test(test_write_failure_in_pass),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
