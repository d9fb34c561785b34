/* store_test.c - the data directory: lock, log names, create/find/delete, refused logs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>

#include <cmocka.h>

#include "base/tern.h"
#include "faultfs.h"
#include "store/store.h"
#include "testutil.h"

#include <dirent.h>
#include <sys/stat.h>

#define NOW 1700000000000ll

static char *dir;
static struct store_config cfg;

static int setup(void **state)
{
    (void)state;
    dir = tu_tmpdir();
    store_config_default(&cfg);
    cfg.data_dir = dir;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_rmrf(dir);
    free(dir);
    return 0;
}

static void put(struct store *st, const char *name, int n)
{
    struct log *log;
    assert_int_equal(store_log(st, name, NULL, &log), 0);
    for (int i = 0; i < n; i++) {
        size_t len;
        uint8_t *b = tu_batch(name, 1, 64, NOW + i, &len);
        assert_int_equal(log_append(log, b, len, NOW, NULL), 0);
        free(b);
    }
    assert_int_equal(log_sync(log), 0);
}

static void test_names(void **state)
{
    (void)state;
    assert_true(store_name_valid("orders-0"));
    assert_true(store_name_valid("q.vhost_1.A-b"));
    assert_false(store_name_valid(""));
    assert_false(store_name_valid("."));
    assert_false(store_name_valid(".."));
    assert_false(store_name_valid("a/b"));
    assert_false(store_name_valid("a b"));
    char long_name[202];
    memset(long_name, 'a', 201);
    long_name[201] = '\0';
    assert_false(store_name_valid(long_name));
    long_name[200] = '\0';
    assert_true(store_name_valid(long_name));
}

static void test_lock(void **state)
{
    (void)state;
    struct store *a, *b;
    assert_int_equal(store_open(NULL, &cfg, &a), 0);
    assert_int_equal(store_open(NULL, &cfg, &b), TERN_ELOCKED);
    store_close(a, NULL, NULL);
    assert_int_equal(store_open(NULL, &cfg, &b), 0);
    store_close(b, NULL, NULL);
}

static void test_create_find_delete_reopen(void **state)
{
    (void)state;
    struct store *st;
    assert_int_equal(store_open(NULL, &cfg, &st), 0);
    struct log *log;
    assert_int_equal(store_log(st, "bad/name", NULL, &log), -EINVAL);
    put(st, "a", 3);
    put(st, "b", 5);
    put(st, "gone", 1);
    assert_int_equal(store_log_count(st), 3);
    assert_int_equal(store_log_delete(st, "gone"), 0);
    assert_int_equal(store_log_delete(st, "gone"), -ENOENT);
    assert_null(store_log_find(st, "gone"));
    store_close(st, NULL, NULL);
    assert_true(access(tu_path(dir, "logs/gone"), F_OK) != 0);
    assert_int_equal(store_open(NULL, &cfg, &st), 0);
    assert_int_equal(store_log_count(st), 2);
    assert_true(log_end_offset(store_log_find(st, "a")) == 3);
    assert_true(log_end_offset(store_log_find(st, "b")) == 5);
    assert_true(log_was_clean(store_log_find(st, "b")));
    store_close(st, NULL, NULL);
}

/* Damages closed log name before its checkpoint's durable position: the next open refuses it. */
static void break_log(const char *name)
{
    char p[256];
    snprintf(p, sizeof(p), "logs/%s/clean-shutdown", name);
    unlink(tu_path(dir, p));
    snprintf(p, sizeof(p), "logs/%s/00000000000000000000.log", name);
    tu_flip(tu_path(dir, p), 200, 1);
}

static void test_corrupt_log_refused_others_work(void **state)
{
    (void)state;
    struct store *st;
    assert_int_equal(store_open(NULL, &cfg, &st), 0);
    put(st, "healthy", 10);
    put(st, "broken", 10);
    store_close(st, NULL, NULL);
    break_log("broken");
    assert_int_equal(store_open(NULL, &cfg, &st), 0);
    assert_int_equal(store_refused_count(st), 1);
    assert_string_equal(store_refused_name(st, 0), "broken");
    assert_non_null(strstr(store_refused_reason(st, 0), "00000000000000000000.log at byte"));
    struct log *log;
    assert_int_equal(store_log(st, "broken", NULL, &log), TERN_ECORRUPT);
    assert_int_equal(store_log(st, "healthy", NULL, &log), 0);
    assert_true(log_end_offset(log) == 10);
    put(st, "healthy", 1);
    assert_true(log_end_offset(log) == 11);
    /* a refused log can still be deleted */
    assert_int_equal(store_log_delete(st, "broken"), 0);
    assert_int_equal(store_refused_count(st), 0);
    assert_true(access(tu_path(dir, "logs/broken"), F_OK) != 0);
    store_close(st, NULL, NULL);
}

static void on_store_closed(void *arg)
{
    *(int *)arg = 1;
}

static void test_loop_close(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct store *st;
    assert_int_equal(store_open(&loop, &cfg, &st), 0);
    put(st, "x", 2);
    int closed = 0;
    store_close(st, on_store_closed, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_true(access(tu_path(dir, "logs/x/clean-shutdown"), F_OK) == 0);
}

static int durable_calls;

static void on_durable(void *arg, int status)
{
    assert_int_equal(status, *(int *)arg);
    durable_calls++;
}

static void append_n(struct log *log, const char *tag, int n)
{
    for (int i = 0; i < n; i++) {
        size_t len;
        uint8_t *b = tu_batch(tag, 1, 64, NOW + i, &len);
        assert_int_equal(log_append(log, b, len, NOW, NULL), 0);
        free(b);
    }
}

/* Entries of logs/ whose name starts with prefix. */
static int count_entries(const char *prefix)
{
    DIR *d = opendir(tu_path(dir, "logs"));
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

static uint64_t disk_waits(void)
{
    return faultfs_thread_calls(FAULTFS_OP_FDATASYNC) + faultfs_thread_calls(FAULTFS_OP_FSYNC_DIR) +
           faultfs_thread_calls(FAULTFS_OP_UNLINK);
}

/* Runs loop until the pool has removed every deleted log's directory (within seconds). */
static void wait_trash_gone(uv_loop_t *loop)
{
    for (int i = 0; uv_run(loop, UV_RUN_NOWAIT) != 0 || count_entries(".deleted.") != 0; i++) {
        assert_true(i < 10000);
        usleep(1000);
    }
}

/* Opens the store on a new loop under faultfs (which counts calls per thread). */
static struct store *open_on_loop(uv_loop_t *loop)
{
    faultfs_install();
    assert_int_equal(uv_loop_init(loop), 0);
    struct store *st;
    assert_int_equal(store_open(loop, &cfg, &st), 0);
    return st;
}

/* Closes st, runs loop until everything on it ended, closes it and removes faultfs. */
static void close_on_loop(uv_loop_t *loop, struct store *st)
{
    int closed = 0;
    store_close(st, on_store_closed, &closed);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    assert_int_equal(uv_loop_close(loop), 0);
    faultfs_uninstall();
}

/* With a loop, creating and deleting a log leave every fsync and unlink to the thread pool
 * (an AMQP client declaring and deleting reply queues must not stall the loop), and a deleted
 * name is free at once even while the old log's fsync is still in flight. */
static void test_create_delete_off_loop(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct store *st = open_on_loop(&loop);
    uint64_t before = disk_waits();
    struct log *log;
    assert_int_equal(store_log(st, "q", NULL, &log), 0);
    append_n(log, "old", 3);
    int want = TERN_ECLOSED; /* the deletion answers it: the log is gone */
    durable_calls = 0;
    assert_int_equal(log_wait_durable(log, 3, on_durable, &want), 0); /* a pool fsync starts */
    assert_int_equal(store_log_delete(st, "q"), 0);
    assert_true(disk_waits() == before); /* nothing so far waited for the disk on this thread */
    assert_int_equal(count_entries("q"), 0);
    /* the name is free: a new log under it starts empty, whatever the old one's fsync does */
    assert_int_equal(store_log(st, "q", NULL, &log), 0);
    assert_true(log_end_offset(log) == 0);
    append_n(log, "new", 2);
    assert_int_equal(log_sync(log), 0);
    wait_trash_gone(&loop);
    assert_int_equal(durable_calls, 1);
    close_on_loop(&loop, st);
    assert_int_equal(store_open(NULL, &cfg, &st), 0);
    assert_int_equal(store_log_count(st), 1);
    assert_true(log_end_offset(store_log_find(st, "q")) == 2);
    store_close(st, NULL, NULL);
}

/* Deleting a refused (corrupt) log frees its name at once and leaves the unlinks to the pool,
 * as for any other log. */
static void test_refused_deleted_off_loop(void **state)
{
    (void)state;
    struct store *st;
    assert_int_equal(store_open(NULL, &cfg, &st), 0);
    put(st, "broken", 10);
    store_close(st, NULL, NULL);
    break_log("broken");
    uv_loop_t loop;
    st = open_on_loop(&loop);
    assert_int_equal(store_refused_count(st), 1);
    uint64_t before = disk_waits();
    assert_int_equal(store_log_delete(st, "broken"), 0);
    assert_true(disk_waits() == before);
    assert_int_equal(store_refused_count(st), 0);
    assert_true(access(tu_path(dir, "logs/broken"), F_OK) != 0); /* the name is free */
    wait_trash_gone(&loop);
    close_on_loop(&loop, st);
}

/* A deletion interrupted by a crash leaves a renamed directory: the next open removes it and
 * does not take it for a log. */
static void test_deletion_leftover_removed(void **state)
{
    (void)state;
    struct store *st;
    assert_int_equal(store_open(NULL, &cfg, &st), 0);
    put(st, "kept", 2);
    store_close(st, NULL, NULL);
    assert_int_equal(mkdir(tu_path(dir, "logs/.deleted.7.q"), 0755), 0);
    FILE *fp = fopen(tu_path(dir, "logs/.deleted.7.q/00000000000000000000.log"), "w");
    assert_non_null(fp);
    fputs("leftover", fp);
    fclose(fp);
    assert_int_equal(store_open(NULL, &cfg, &st), 0);
    assert_int_equal(store_log_count(st), 1);
    assert_int_equal(store_refused_count(st), 0);
    assert_int_equal(count_entries(".deleted."), 0);
    store_close(st, NULL, NULL);
}

/* Data files (*.log, not *.cleaned.log) in a log's directory. */
static int count_segments(const char *name)
{
    char sub[256];
    snprintf(sub, sizeof(sub), "logs/%s", name);
    DIR *d = opendir(tu_path(dir, sub));
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        n += len == 24 && strcmp(e->d_name + 20, ".log") == 0;
    }
    closedir(d);
    return n;
}

/* Runs loop until the pool has made `want` closes since `base` (faultfs_calls). */
static void wait_closes(uv_loop_t *loop, uint64_t base, uint64_t want)
{
    for (int i = 0;
         uv_run(loop, UV_RUN_NOWAIT) != 0 || faultfs_calls(FAULTFS_OP_CLOSE) - base < want; i++) {
        assert_true(i < 10000);
        usleep(1000);
    }
    assert_true(faultfs_calls(FAULTFS_OP_CLOSE) - base == want);
}

/* Segments a queue's reclaim or retention deletes are closed on the pool, never on the loop
 * (the last close of an unlinked, cached 1 GiB segment took 0.4 s on the development VM),
 * including when a reader still held one: its files stay readable until it lets go. */
static void test_removed_segments_closed_off_loop(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct store *st = open_on_loop(&loop);
    struct log_config lc = cfg.log;
    lc.segment_bytes = 4096;
    struct log *log;
    assert_int_equal(store_log(st, "r", &lc, &log), 0);
    append_n(log, "r", 100);
    int segs = count_segments("r");
    assert_true(segs >= 3);
    assert_int_equal(log_segment_count(log), segs);
    struct log_slice held;
    assert_int_equal(log_read(log, 0, 4096, 100, &held), 0);
    uint8_t *want = tern_xmalloc(held.len), *got = tern_xmalloc(held.len);
    assert_int_equal(log_slice_read(&held, want), 0);
    uint64_t loop_closes = faultfs_thread_calls(FAULTFS_OP_CLOSE);
    uint64_t closes = faultfs_calls(FAULTFS_OP_CLOSE);

    assert_int_equal(log_delete_below(log, 99), 0);
    assert_int_equal(log_segment_count(log), 1);
    assert_int_equal(count_segments("r"), 1); /* unlinked at once */
    /* every dropped segment but the held one is closed on the pool: 3 files each */
    wait_closes(&loop, closes, 3 * (uint64_t)(segs - 2));
    assert_int_equal(log_slice_read(&held, got), 0); /* the reader's file is still open */
    assert_memory_equal(want, got, held.len);
    log_slice_release(&held);
    wait_closes(&loop, closes, 3 * (uint64_t)(segs - 1));
    assert_true(faultfs_thread_calls(FAULTFS_OP_CLOSE) == loop_closes);
    free(want);
    free(got);

    close_on_loop(&loop, st);
    assert_int_equal(store_open(NULL, &cfg, &st), 0);
    assert_true(log_start_offset(store_log_find(st, "r")) == 99);
    assert_true(log_end_offset(store_log_find(st, "r")) == 100);
    store_close(st, NULL, NULL);
}

/* A compaction pass renames its output over the old segments; the old copies' last closes
 * (which free their page cache) run on the pool too. */
static void test_compacted_segments_closed_off_loop(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct store *st = open_on_loop(&loop);
    struct log_config lc = cfg.log;
    lc.segment_bytes = 2048;
    lc.compact = true;
    struct log *log;
    assert_int_equal(store_log(st, "c", &lc, &log), 0);
    for (int i = 0; i < 60; i++) {
        struct tu_kv kv = {.timestamp = NOW + i};
        snprintf(kv.key, sizeof(kv.key), "k%d", i % 3);
        snprintf(kv.value, sizeof(kv.value), "value-%d-%040d", i, i);
        size_t len;
        uint8_t *b = tu_kbatch(&kv, 1, 0, &len);
        assert_int_equal(log_append(log, b, len, NOW, NULL), 0);
        free(b);
    }
    assert_true(log_segment_count(log) >= 3);
    /* a pass covers only durable segments */
    int ok = 0;
    durable_calls = 0;
    assert_int_equal(log_wait_durable(log, log_end_offset(log), on_durable, &ok), 0);
    for (int i = 0; durable_calls == 0; i++) {
        assert_true(i < 10000);
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    uint64_t loop_closes = faultfs_thread_calls(FAULTFS_OP_CLOSE);
    assert_int_equal(log_compact(log, NOW + 1000, true), 1);
    for (int i = 0; uv_run(&loop, UV_RUN_NOWAIT) != 0 || log_compacting(log); i++) {
        assert_true(i < 10000);
        usleep(1000);
    }
    struct log_compact_stats cs;
    log_compact_stats(log, &cs);
    assert_int_equal(cs.last_error, 0);
    assert_true(cs.segments_rewritten > 0);
    assert_true(faultfs_thread_calls(FAULTFS_OP_CLOSE) == loop_closes);
    close_on_loop(&loop, st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_find_delete_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_log_refused_others_work, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_delete_off_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deletion_leftover_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_deleted_off_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_removed_segments_closed_off_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compacted_segments_closed_off_loop, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
