/* log_test.c - the log in synchronous mode: append, read, roll, search, retention, reopen. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <dirent.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <cmocka.h>

#include "base/tern.h"
#include "base/tlog.h"
#include "store/log.h"
#include "testutil.h"

#define NOW 1700000000000ll


static int setup(void **state)
{
    struct tu_logfx *f = tu_logfx_new();
    f->cfg.segment_bytes = 4096;
    f->cfg.index_interval_bytes = 256;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    tu_logfx_free(*state);
    return 0;
}

static void open_log(struct tu_logfx *f)
{
    char err[512];
    int rc = log_open(NULL, f->logdir, &f->cfg, &f->log, err, sizeof(err));
    if (rc != 0)
        fail_msg("log_open: %s (%s)", tern_strerror(rc), err);
}

static void reopen(struct tu_logfx *f)
{
    log_close(f->log, NULL, NULL);
    f->log = NULL;
    open_log(f);
}

/* Appends batches first..first+n-1 of k records ("b<i>-<j>") with timestamps NOW + i. */
static void fill_at(struct tu_logfx *f, int first, int n, int k, size_t vsize)
{
    for (int i = first; i < first + n; i++) {
        char tag[32];
        snprintf(tag, sizeof(tag), "b%d", i);
        size_t len;
        uint8_t *b = tu_batch(tag, k, vsize, NOW + i, &len);
        struct log_append_info info;
        int64_t end = log_end_offset(f->log);
        assert_int_equal(log_append(f->log, b, len, NOW, &info), 0);
        assert_true(info.base_offset == end && info.last_offset == end + k - 1);
        free(b);
    }
}

/* Appends n batches of k records ("b<i>-<j>") with timestamps NOW + i. */
static void fill(struct tu_logfx *f, int n, int k, size_t vsize)
{
    fill_at(f, 0, n, k, vsize);
}

static void check_records(struct tu_logfx *f, int64_t from, int n_batches, int k)
{
    int total = n_batches * k;
    struct tu_rec *r = calloc((size_t)total + 1, sizeof(*r));
    int got = tu_read_all(f->log, from, log_end_offset(f->log), r, total + 1);
    assert_int_equal(got, total - (int)from);
    for (int i = 0; i < got; i++) {
        int64_t off = from + i;
        char want[64];
        snprintf(want, sizeof(want), "b%d-%d", (int)(off / k), (int)(off % k));
        assert_true(r[i].offset == off);
        assert_true(strncmp(r[i].value, want, strlen(want)) == 0);
        assert_true(r[i].timestamp == NOW + off / k);
    }
    free(r);
}

static void test_append_read(void **state)
{
    struct tu_logfx *f = *state;
    open_log(f);
    assert_true(log_start_offset(f->log) == 0 && log_end_offset(f->log) == 0);
    fill(f, 50, 3, 20);
    assert_true(log_end_offset(f->log) == 150);
    assert_true(log_durable_offset(f->log) == 0);
    assert_int_equal(log_sync(f->log), 0);
    assert_true(log_durable_offset(f->log) == 150);
    assert_true(log_segment_count(f->log) > 1); /* 4 KiB segments rolled */
    check_records(f, 0, 50, 3);
    check_records(f, 77, 50, 3); /* starts inside a batch, in a later segment */
}

static void test_read_limits(void **state)
{
    struct tu_logfx *f = *state;
    open_log(f);
    fill(f, 10, 2, 0);
    struct log_slice s;
    assert_int_equal(log_read(f->log, 21, 100, log_end_offset(f->log), &s), TERN_ERANGE);
    assert_int_equal(log_read(f->log, 20, 100, 20, &s), 0);
    assert_int_equal((int)s.len, 0);
    /* limit stops before the batch holding offset 6 */
    assert_int_equal(log_read(f->log, 0, 1 << 20, 6, &s), 0);
    assert_true(s.base_offset == 0 && s.next_offset == 6);
    log_slice_release(&s);
    /* max_bytes smaller than one batch still returns that batch */
    assert_int_equal(log_read(f->log, 3, 1, 20, &s), 0);
    assert_true(s.base_offset == 2 && s.next_offset == 4);
    log_slice_release(&s);
}

static void test_reopen_clean(void **state)
{
    struct tu_logfx *f = *state;
    open_log(f);
    fill(f, 40, 2, 30);
    int segs = log_segment_count(f->log);
    reopen(f);
    assert_true(log_was_clean(f->log));
    assert_true(log_end_offset(f->log) == 80 && log_durable_offset(f->log) == 80);
    assert_int_equal(log_segment_count(f->log), segs);
    check_records(f, 0, 40, 2);
    fill(f, 1, 2, 0);
    assert_true(log_end_offset(f->log) == 82);
    /* a reopened segment keeps its age: the append did not roll a new one */
    assert_int_equal(log_segment_count(f->log), segs);
}

static void test_read_in_small_chunks(void **state)
{
    struct tu_logfx *f = *state;
    f->cfg.segment_bytes = 1 << 20;
    open_log(f);
    fill(f, 40, 1, 3000); /* ~3 KiB batches, an index entry about every batch */
    int64_t off = 0, n = 0;
    for (size_t max = 1; off < log_end_offset(f->log); max = max * 3 + 1000) {
        struct log_slice s;
        assert_int_equal(log_read(f->log, off, max % 20000, log_end_offset(f->log), &s), 0);
        assert_true(s.len > 0);
        assert_true(s.base_offset == off);
        assert_true(s.next_offset > off); /* every read makes progress */
        n += s.next_offset - off;
        off = s.next_offset;
        log_slice_release(&s);
    }
    assert_true(n == 40);
}

static void test_reopen_unclean_scans(void **state)
{
    struct tu_logfx *f = *state;
    open_log(f);
    fill(f, 40, 2, 30);
    reopen(f);
    unlink(tu_path(f->logdir, "clean-shutdown"));
    reopen(f); /* reopen writes a marker again: remove it before reading */
    assert_true(log_was_clean(f->log));
    log_close(f->log, NULL, NULL);
    f->log = NULL;
    unlink(tu_path(f->logdir, "clean-shutdown"));
    open_log(f);
    assert_false(log_was_clean(f->log));
    assert_true(log_end_offset(f->log) == 80);
    check_records(f, 0, 40, 2);
}

static void test_missing_and_damaged_index(void **state)
{
    struct tu_logfx *f = *state;
    f->cfg.segment_bytes = 1 << 20;
    open_log(f);
    fill(f, 200, 1, 40);
    reopen(f);
    char idx[4096];
    snprintf(idx, sizeof(idx), "%s", tu_path(f->logdir, "00000000000000000000.index"));
    int64_t isz = tu_file_size(idx);
    assert_true(isz > 8 * 5);
    assert_int_equal(truncate(idx, isz - 3), 0); /* torn entry */
    reopen(f);
    assert_true(tu_file_size(idx) == isz);       /* rebuilt in full */
    check_records(f, 0, 200, 1);
    unlink(idx);
    unlink(tu_path(f->logdir, "00000000000000000000.timeindex"));
    reopen(f);
    assert_true(tu_file_size(idx) == isz);
    check_records(f, 0, 200, 1);
    int64_t off;
    assert_int_equal(log_find_time(f->log, NOW + 150, &off), 0);
    assert_true(off == 150);
    /* an entry pointing into the middle of a batch is detected and rebuilt */
    tu_flip(idx, isz - 2, 0);
    reopen(f);
    check_records(f, 0, 200, 1);
}

static void test_find_time(void **state)
{
    struct tu_logfx *f = *state;
    open_log(f);
    fill(f, 60, 2, 40);
    int64_t off;
    assert_int_equal(log_find_time(f->log, 0, &off), 0);
    assert_true(off == 0);
    for (int i = 0; i < 60; i += 7) {
        assert_int_equal(log_find_time(f->log, NOW + i, &off), 0);
        assert_true(off == 2 * i);
    }
    assert_int_equal(log_find_time(f->log, NOW + 60, &off), TERN_ERANGE);
}

static void test_find_time_inside_batch(void **state)
{
    struct tu_logfx *f = *state;
    open_log(f);
    /* timestamps need not be ordered inside a batch: Kafka's rule is the first offset whose
     * timestamp is >= T */
    struct batch_rec_in r[4] = {
        {.value = "a", .value_len = 1, .timestamp = NOW + 5},
        {.value = "b", .value_len = 1, .timestamp = NOW + 10},
        {.value = "c", .value_len = 1, .timestamp = NOW + 3},
        {.value = "d", .value_len = 1, .timestamp = NOW + 20},
    };
    uint8_t buf[512];
    int64_t n = batch_encode(buf, sizeof(buf), r, 4);
    assert_true(n > 0);
    fill(f, 1, 1, 0);
    assert_int_equal(log_append(f->log, buf, (size_t)n, NOW, NULL), 0); /* offsets 1..4 */
    int64_t off;
    assert_int_equal(log_find_time(f->log, NOW + 8, &off), 0);
    assert_true(off == 2);
    assert_int_equal(log_find_time(f->log, NOW + 11, &off), 0);
    assert_true(off == 4);
    assert_int_equal(log_find_time(f->log, NOW + 1, &off), 0);
    assert_true(off == 1);
}

static void test_roll_by_age(void **state)
{
    struct tu_logfx *f = *state;
    f->cfg.segment_bytes = 1 << 20;
    f->cfg.segment_ms = 1000;
    open_log(f);
    size_t len;
    uint8_t *b = tu_batch("a", 1, 0, NOW, &len);
    assert_int_equal(log_append(f->log, b, len, NOW, NULL), 0);
    free(b);
    b = tu_batch("b", 1, 0, NOW, &len);
    assert_int_equal(log_append(f->log, b, len, NOW + 10, NULL), 0);
    free(b);
    int segs = log_segment_count(f->log);
    b = tu_batch("c", 1, 0, NOW, &len);
    /* far in the future relative to the segment's creation (wall clock at create) */
    assert_int_equal(log_append(f->log, b, len, INT64_MAX / 2, NULL), 0);
    free(b);
    assert_int_equal(log_segment_count(f->log), segs + 1);
}

static void test_delete_below_and_retention(void **state)
{
    struct tu_logfx *f = *state;
    open_log(f);
    fill(f, 120, 2, 40);
    int segs = log_segment_count(f->log);
    assert_int_equal(log_delete_below(f->log, 71), 0);
    assert_true(log_start_offset(f->log) == 71);
    assert_true(log_segment_count(f->log) < segs);
    struct log_slice s;
    assert_int_equal(log_read(f->log, 70, 100, 120, &s), TERN_ERANGE);
    check_records(f, 71, 120, 2);
    reopen(f);
    assert_true(log_start_offset(f->log) == 71); /* durable */
    /* retention by bytes keeps at least the newest segments under the limit */
    struct log_config c = f->cfg;
    c.retention_bytes = 4096 * 2;
    log_set_config(f->log, &c);
    int n = log_retain(f->log, NOW);
    assert_true(n > 0);
    assert_true(log_size_bytes(f->log) <= 4096 * 3);
    int64_t start = log_start_offset(f->log);
    assert_true(start > 71);
    check_records(f, start, 120, 2);
    /* retention by time deletes every closed segment older than the limit */
    c.retention_bytes = -1;
    c.retention_ms = 1000;
    log_set_config(f->log, &c);
    assert_true(log_retain(f->log, NOW + 10 * 1000) > 0);
    assert_int_equal(log_segment_count(f->log), 1);
}

static void test_truncate(void **state)
{
    struct tu_logfx *f = *state;
    open_log(f);
    fill(f, 40, 2, 40);
    assert_int_equal(log_truncate(f->log, 51), 0); /* inside batch 50-51: cut at 50 */
    assert_true(log_end_offset(f->log) == 50);
    check_records(f, 0, 25, 2);
    fill(f, 1, 2, 0);
    assert_true(log_end_offset(f->log) == 52);
    reopen(f);
    assert_true(log_end_offset(f->log) == 52);
}

static void test_rejects_bad_batches(void **state)
{
    struct tu_logfx *f = *state;
    f->cfg.max_batch_bytes = 1024;
    open_log(f);
    size_t len;
    uint8_t *b = tu_batch("x", 1, 2000, NOW, &len);
    assert_int_equal(log_append(f->log, b, len, NOW, NULL), TERN_ETOOBIG);
    free(b);
    b = tu_batch("x", 2, 10, NOW, &len);
    b[len - 1] ^= 1;
    assert_int_equal(log_append(f->log, b, len, NOW, NULL), TERN_ECORRUPT);
    assert_int_equal(log_append(f->log, b, len - 1, NOW, NULL), TERN_EPROTO);
    /* the caller-checked append skips only the CRC: the header is still checked */
    assert_int_equal(log_append_checked(f->log, b, len - 1, NOW, NULL), TERN_EPROTO);
    free(b);
    b = tu_batch("x", 1, 2000, NOW, &len);
    assert_int_equal(log_append_checked(f->log, b, len, NOW, NULL), TERN_ETOOBIG);
    free(b);
    assert_true(log_end_offset(f->log) == 0);
    b = tu_batch("y", 2, 10, NOW, &len);
    assert_int_equal(log_append_checked(f->log, b, len, NOW, NULL), 0);
    free(b);
    assert_true(log_end_offset(f->log) == 2);
}

static void test_long_recovery_logs_progress(void **state)
{
    struct tu_logfx *f = *state;
    f->cfg.segment_bytes = 1u << 30;
    f->cfg.max_batch_bytes = 2u << 20;
    open_log(f);
    size_t len;
    uint8_t *b = tu_batch("big", 1, 1u << 20, NOW, &len);
    for (int i = 0; i < 70; i++) /* 70 MiB: past the 64 MiB progress step */
        assert_int_equal(log_append(f->log, b, len, NOW, NULL), 0);
    free(b);
    log_close(f->log, NULL, NULL);
    f->log = NULL;
    unlink(tu_path(f->logdir, "clean-shutdown"));
    char logfile[4096];
    snprintf(logfile, sizeof(logfile), "%s/tlog.txt", f->dir);
    int fd = open(logfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    tlog_set_fd(fd);
    open_log(f);
    tlog_set_fd(2);
    close(fd);
    assert_true(log_end_offset(f->log) == 70);
    FILE *in = fopen(logfile, "r");
    char line[1024];
    int progress = 0;
    while (fgets(line, sizeof(line), in))
        if (strstr(line, "event=recovery_progress") && strstr(line, "pct="))
            progress++;
    fclose(in);
    assert_int_equal(progress, 1);
}

/* Pages of [from, to) of the file at path that are in the page cache, and how many pages
 * that range has. */
static int resident_pages(const char *path, uint64_t from, uint64_t to, int *pages)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    size_t size = (size_t)st.st_size, page = 4096, n = (size + page - 1) / page;
    void *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    assert_true(m != MAP_FAILED);
    unsigned char *vec = malloc(n);
    assert_int_equal(mincore(m, size, vec), 0);
    int in = 0;
    *pages = 0;
    for (size_t i = from / page; i < n && i * page < to; i++) {
        (*pages)++;
        in += vec[i] & 1;
    }
    free(vec);
    munmap(m, size);
    close(fd);
    return in;
}

/* The data files of the fixture's log, oldest first, with their sizes. */
static int segment_files(struct tu_logfx *f, char paths[][4200], uint64_t *sizes, int max)
{
    int n = 0;
    DIR *d = opendir(f->logdir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len != 24 || strcmp(e->d_name + 20, ".log") != 0)
            continue;
        assert_true(n < max);
        snprintf(paths[n], 4200, "%s/%s", f->logdir, e->d_name);
        n++;
    }
    closedir(d);
    qsort(paths, (size_t)n, 4200, (int (*)(const void *, const void *))strcmp);
    for (int i = 0; i < n; i++)
        sizes[i] = (uint64_t)tu_file_size(paths[i]);
    return n;
}

/* A filesystem whose page cache can be dropped: tmpfs pages cannot, so then the working
 * directory (the build tree) holds the log. */
static void use_disk_dir(struct tu_logfx *f)
{
    struct statfs sf;
    assert_int_equal(statfs(f->dir, &sf), 0);
    if (sf.f_type != TMPFS_MAGIC)
        return;
    tu_rmrf(f->dir);
    free(f->dir);
    char tmpl[] = "./tern-test-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    f->dir = tern_xstrdup(tmpl);
    snprintf(f->logdir, sizeof(f->logdir), "%s/l", f->dir);
    assert_int_equal(statfs(f->dir, &sf), 0);
    if (sf.f_type == TMPFS_MAGIC)
        fail_msg("the page cache test needs a disk filesystem, and /tmp and . are tmpfs");
}

/* Once fsynced, the segments wholly older than the newest cache_bytes of the log leave the page
 * cache, including the tail of a segment an earlier fsync covered (dropped by a later job),
 * and the newest cache_bytes stay; the data reads back the same. With cache_bytes 0 everything
 * stays cached (so this filesystem would show a missing drop). */
static void test_cache_window(void **state)
{
    struct tu_logfx *f = *state;
    use_disk_dir(f);
    const uint64_t window = 64 << 10;
    for (int pass = 0; pass < 2; pass++) {
        f->cfg.segment_bytes = 256 << 10;
        f->cfg.cache_bytes = pass == 0 ? window : 0;
        open_log(f);
        /* ~287 KiB: the first segment is sealed and fsynced with its last ~30 KiB inside the
         * window; the second fill pushes them out, and only a later job can drop them */
        fill(f, 70, 4, 1000);
        assert_int_equal(log_sync(f->log), 0);
        fill_at(f, 70, 130, 4, 1000);
        assert_int_equal(log_sync(f->log), 0);
        char paths[16][4200];
        uint64_t sizes[16];
        int n = segment_files(f, paths, sizes, 16);
        assert_true(n >= 3);
        uint64_t total = 0;
        for (int i = 0; i < n; i++)
            total += sizes[i];
        assert_true(total == log_size_bytes(f->log));
        /* log position where the window starts, and of each file's first byte */
        uint64_t keep_from = total - window, at = 0;
        int dropped_in = 0, dropped_pages = 0, kept_in = 0, kept_pages = 0;
        for (int i = 0; i < n; i++) {
            uint64_t end = at + sizes[i];
            int pages;
            if (end <= keep_from) { /* wholly below the window (the kernel drops whole
                                       folios: the one holding the window's start may stay) */
                dropped_in += resident_pages(paths[i], 0, sizes[i], &pages);
                dropped_pages += pages;
            }
            if (end > keep_from) { /* whole pages inside it */
                uint64_t from = keep_from > at ? keep_from - at : 0;
                kept_in +=
                    resident_pages(paths[i], (from + 4095) & ~(uint64_t)4095, sizes[i], &pages);
                kept_pages += pages;
            }
            at = end;
        }
        assert_true(dropped_pages > 100 && kept_pages >= 15);
        if (pass == 0) {
            if (dropped_in != 0)
                fail_msg("%d of %d pages below the window are still cached", dropped_in,
                         dropped_pages);
        } else {
            assert_int_equal(dropped_in, dropped_pages);
        }
        assert_int_equal(kept_in, kept_pages);
        check_records(f, 0, 200, 4);
        log_close(f->log, NULL, NULL);
        f->log = NULL;
        tu_rmrf(f->logdir);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_clean, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_in_small_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_unclean_scans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_and_damaged_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_find_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_find_time_inside_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roll_by_age, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_below_and_retention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejects_bad_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_recovery_logs_progress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_window, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
