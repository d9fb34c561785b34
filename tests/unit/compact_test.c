/*
 * compact_test.c - log compaction (store/compact.c, log_compact): which records survive, the
 * format of rewritten and empty batches, offsets, codecs, producer fields, tombstones, the
 * compaction lag, the dirty ratio, reopening, and the asynchronous pass on a loop.
 *
 * Every check compares what the log serves with a model: of the records below the pass's
 * cleaned_end, a keyed one survives when no later record of its key is below cleaned_end (and,
 * for a tombstone, when tombstones were not due); everything else survives.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/tern.h"
#include "store/batch.h"
#include "store/compress.h"
#include "store/log.h"
#include "testutil.h"

#define NOW 1700000000000ll
#define MAXM 8192

/* Everything appended, in offset order. */
static struct tu_kv model[MAXM];
static int nmodel;
static struct tu_kv got[MAXM];
static int ngot; /* records in got */

static int setup(void **state)
{
    struct tu_logfx *f = tu_logfx_new();
    f->cfg.segment_bytes = 1024;
    f->cfg.index_interval_bytes = 128;
    f->cfg.compact = true;
    f->cfg.delete_retention_ms = 1000;
    /* every fsync moves the checkpoint: a pass covers segments below the checkpoint's one */
    f->cfg.checkpoint_interval_ms = 0;
    nmodel = 0;
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

static struct tu_kv kv(const char *key, const char *value, int64_t ts)
{
    struct tu_kv k = {.timestamp = ts, .null_key = !key, .null_value = !value};
    snprintf(k.key, sizeof(k.key), "%s", key ? key : "");
    snprintf(k.value, sizeof(k.value), "%s", value ? value : "");
    return k;
}

/* Appends a batch made of kvs (codec 0: none) to the log and the model; returns its base. */
static int64_t append_kvs(struct tu_logfx *f, struct tu_kv *kvs, int n, int codec)
{
    size_t len;
    uint8_t *b = tu_kbatch(kvs, n, codec, &len);
    struct log_append_info info;
    assert_int_equal(log_append(f->log, b, len, NOW, &info), 0);
    free(b);
    for (int i = 0; i < n; i++) {
        assert_true(nmodel < MAXM);
        model[nmodel] = kvs[i];
        model[nmodel++].offset = info.base_offset + i;
    }
    return info.base_offset;
}

static int64_t put(struct tu_logfx *f, const char *key, const char *value)
{
    struct tu_kv k = kv(key, value, NOW + nmodel);
    return append_kvs(f, &k, 1, 0);
}

/* Updates keys "k0".."k<nkeys-1>" round-robin, n records, values padded to be sizeable. */
static void updates(struct tu_logfx *f, int nkeys, int n)
{
    for (int i = 0; i < n; i++) {
        char key[16], val[128];
        snprintf(key, sizeof(key), "k%d", i % nkeys);
        snprintf(val, sizeof(val), "v%d-%0*d", nmodel, 60, 0);
        put(f, key, val);
    }
}

/* Rolls the log: pads with records of key "pad" until a new segment starts, then one more. */
static void roll(struct tu_logfx *f)
{
    int segs = log_segment_count(f->log);
    while (log_segment_count(f->log) == segs)
        put(f, "pad", "padding-padding-padding-padding-padding-padding-padding");
}

static int64_t cleaned_end(struct tu_logfx *f)
{
    struct log_compact_stats st;
    log_compact_stats(f->log, &st);
    return st.cleaned_end;
}

static bool same_kv(const struct tu_kv *a, const struct tu_kv *b)
{
    return a->offset == b->offset && a->timestamp == b->timestamp &&
           a->null_key == b->null_key && a->null_value == b->null_value &&
           strcmp(a->key, b->key) == 0 && strcmp(a->value, b->value) == 0;
}

/* Whether model record i survives a pass covering offsets below end. */
static bool survives(int i, int64_t end, bool tombstones_gone)
{
    const struct tu_kv *m = &model[i];
    if (m->offset >= end || m->null_key)
        return true;
    for (int j = i + 1; j < nmodel && model[j].offset < end; j++)
        if (!model[j].null_key && strcmp(model[j].key, m->key) == 0)
            return false;
    return !(m->null_value && tombstones_gone);
}

/* The log serves exactly the surviving model records, contiguous from 0 to the end; every
 * record is also found by a log_read at its own offset. Returns the walk's counts. */
static struct tu_walk check_log(struct tu_logfx *f, bool tombstones_gone)
{
    struct tu_walk w;
    int n = tu_read_kv(f->log, got, MAXM, &w);
    assert_true(n >= 0);
    ngot = n;
    assert_true(log_start_offset(f->log) == 0);
    assert_true(w.end == log_end_offset(f->log));
    assert_true(log_end_offset(f->log) == (nmodel ? model[nmodel - 1].offset + 1 : 0));
    int64_t end = cleaned_end(f);
    int k = 0;
    for (int i = 0; i < nmodel; i++) {
        if (!survives(i, end, tombstones_gone))
            continue;
        assert_true(k < n);
        if (!same_kv(&got[k], &model[i]))
            fail_msg("record %d: got offset %lld key %s value %.20s, want offset %lld key %s "
                     "value %.20s",
                     k, (long long)got[k].offset, got[k].key, got[k].value,
                     (long long)model[i].offset, model[i].key, model[i].value);
        k++;
    }
    assert_int_equal(k, n);
    /* offsets did not move: each survivor is where a read at its offset looks */
    for (int i = 0; i < n; i += 7) {
        struct log_slice s;
        assert_int_equal(log_read(f->log, got[i].offset, 1, log_end_offset(f->log), &s), 0);
        assert_true(s.len > 0 && s.base_offset <= got[i].offset && s.next_offset > got[i].offset);
        log_slice_release(&s);
    }
    return w;
}

static int64_t latest_of(const char *key)
{
    for (int i = nmodel - 1; i >= 0; i--)
        if (!model[i].null_key && strcmp(model[i].key, key) == 0)
            return model[i].offset;
    return -1;
}

static void sync_and_compact(struct tu_logfx *f, int64_t now, int want)
{
    assert_int_equal(log_sync(f->log), 0);
    assert_int_equal(log_compact(f->log, now, true), want);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_latest_value_per_key(void **state)
{
    struct tu_logfx *f = *state;
    open_log(f);
    updates(f, 5, 300);
    roll(f);
    int segs = log_segment_count(f->log);
    uint64_t before = log_size_bytes(f->log);
    assert_true(segs > 10);
    sync_and_compact(f, NOW, 1);
    assert_int_equal(log_segment_count(f->log), segs); /* segments are rewritten, not merged */
    assert_true(log_size_bytes(f->log) < before / 3);
    check_log(f, false);
    /* every key's latest record is there, at its original offset */
    for (int k = 0; k < 5; k++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", k);
        int64_t want = latest_of(key), found = -1;
        for (int i = 0; i < ngot; i++)
            if (strcmp(got[i].key, key) == 0) {
                assert_true(found < 0); /* once */
                found = got[i].offset;
            }
        assert_true(found == want);
    }
    struct log_compact_stats st;
    log_compact_stats(f->log, &st);
    assert_true(st.passes == 1 && st.segments_rewritten > 0 && st.records_removed >= 290);
    assert_int_equal(st.last_error, 0);
}

static void test_repeated_passes_and_ratio(void **state)
{
    struct tu_logfx *f = *state;
    open_log(f);
    updates(f, 4, 200);
    roll(f);
    assert_int_equal(log_sync(f->log), 0);
    assert_int_equal(log_compact(f->log, NOW, false), 1); /* all dirty: due */
    check_log(f, false);
    assert_int_equal(log_compact(f->log, NOW, false), 0); /* nothing dirty */
    /* a little new data: below the 50% dirty ratio */
    updates(f, 4, 4);
    roll(f);
    assert_int_equal(log_sync(f->log), 0);
    assert_int_equal(log_compact(f->log, NOW, false), 0);
    /* a lot: due again; the clean part loses keys the dirty part updates */
    updates(f, 4, 200);
    roll(f);
    assert_int_equal(log_sync(f->log), 0);
    assert_int_equal(log_compact(f->log, NOW, false), 1);
    check_log(f, false);
    /* the active segment is never compacted */
    assert_true(cleaned_end(f) <= model[nmodel - 1].offset);
}

static void test_tombstones_kept_then_removed(void **state)
{
    struct tu_logfx *f = *state;
    open_log(f);
    updates(f, 3, 60);
    put(f, "k1", NULL); /* delete k1 */
    put(f, "k0", "after-the-tombstone");
    put(f, "k2", "after-the-tombstone");
    roll(f);
    sync_and_compact(f, NOW, 1);
    check_log(f, false);
    bool seen = false;
    for (int i = 0; i < ngot && got[i].offset < cleaned_end(f); i++)
        if (strcmp(got[i].key, "k1") == 0) {
            assert_true(got[i].null_value); /* only the tombstone is left of k1 */
            seen = true;
        }
    assert_true(seen);
    /* before delete.retention.ms has passed since that pass: still there */
    sync_and_compact(f, NOW + 999, 1);
    check_log(f, false);
    assert_int_equal(log_compact(f->log, NOW + 999, false), 0);
    /* then due by itself, and gone */
    assert_int_equal(log_compact(f->log, NOW + 1000, false), 1);
    check_log(f, true);
    for (int i = 0; i < ngot && got[i].offset < cleaned_end(f); i++)
        assert_true(strcmp(got[i].key, "k1") != 0);
}

static void test_null_keys_never_compacted(void **state)
{
    struct tu_logfx *f = *state;
    open_log(f);
    for (int i = 0; i < 80; i++) {
        put(f, "same", "keyed-value-keyed-value-keyed-value");
        put(f, NULL, i % 3 ? "no-key-value-no-key-value-no-key" : NULL);
    }
    roll(f);
    sync_and_compact(f, NOW + 5000, 1);
    check_log(f, true);
    int nulls = 0;
    for (int i = 0; i < ngot && got[i].offset < cleaned_end(f); i++)
        nulls += got[i].null_key;
    assert_int_equal(nulls, 80);
}

static void test_compressed_batches(void **state)
{
    static const int codecs[] = {COMPRESS_GZIP, COMPRESS_SNAPPY, COMPRESS_LZ4, COMPRESS_ZSTD};
    struct tu_logfx *f = *state;
    f->cfg.segment_bytes = 4096;
    open_log(f);
    for (int round = 0; round < 12; round++) {
        int codec = codecs[round % 4];
        struct tu_kv kvs[10];
        for (int i = 0; i < 10; i++) {
            char key[16], val[64];
            snprintf(key, sizeof(key), "c%d", (round * 10 + i) % 7);
            snprintf(val, sizeof(val), "%s-r%d-i%d", compress_name(codec), round, i);
            kvs[i] = kv(key, val, NOW + round * 10 + i);
        }
        kvs[3] = kv(NULL, kvs[3].value, kvs[3].timestamp); /* one keyless record per batch */
        append_kvs(f, kvs, 10, codec);
    }
    roll(f);
    sync_and_compact(f, NOW, 1);
    check_log(f, false);
    /* rewritten batches keep their codec; emptied ones carry none */
    struct log_slice s;
    assert_int_equal(log_read(f->log, 0, 1 << 20, cleaned_end(f), &s), 0);
    uint8_t *buf = malloc(s.len);
    assert_true(pread(s.fd, buf, s.len, s.pos) == (ssize_t)s.len);
    int compressed = 0;
    for (size_t pos = 0; pos < s.len;) {
        struct batch_hdr h;
        int64_t n = batch_parse(buf + pos, s.len - pos, UINT32_MAX, &h);
        assert_true(n > 0);
        int codec = h.attributes & BATCH_ATTR_COMPRESSION_MASK;
        if (h.record_count == 0)
            assert_int_equal(codec, 0);
        else if (h.base_offset < 120)
            assert_int_equal(codec, codecs[(h.base_offset / 10) % 4]);
        compressed += codec != 0;
        pos += (size_t)n;
    }
    assert_true(compressed >= 10);
    free(buf);
    log_slice_release(&s);
}

/* Walks every batch of [0, end) and checks empty batches are well-formed. Returns the count of
 * empty batches spanning more than one offset. */
static int check_empty_batches(struct tu_logfx *f, int64_t end)
{
    int merged = 0;
    for (int64_t off = 0; off < end;) {
        struct log_slice s;
        assert_int_equal(log_read(f->log, off, 1, end, &s), 0);
        uint8_t *buf = malloc(s.len);
        assert_true(pread(s.fd, buf, s.len, s.pos) == (ssize_t)s.len);
        struct batch_hdr h;
        assert_true(batch_parse(buf, s.len, UINT32_MAX, &h) > 0);
        assert_int_equal(batch_check_crc(buf, &h), 0);
        if (h.record_count == 0) {
            struct batch_iter it;
            struct batch_record r;
            assert_int_equal(h.length, BATCH_HEADER_SIZE - BATCH_LOG_OVERHEAD);
            assert_int_equal(batch_iter_init(&it, buf, &h), 0);
            assert_int_equal(batch_iter_next(&it, &r), 0);
            merged += h.last_offset_delta > 0;
        }
        off = s.next_offset;
        free(buf);
        log_slice_release(&s);
    }
    return merged;
}

static void test_empty_batches(void **state)
{
    struct tu_logfx *f = *state;
    open_log(f);
    updates(f, 2, 100); /* single-record batches: all but the last two go */
    roll(f);
    sync_and_compact(f, NOW, 1);
    struct tu_walk w = check_log(f, false);
    assert_true(w.empty > 0);
    assert_true(w.batches < 60); /* runs of emptied batches were merged */
    assert_true(check_empty_batches(f, cleaned_end(f)) > 0);
    /* reading at a removed offset lands in the empty batch covering it */
    struct log_slice s;
    assert_int_equal(log_read(f->log, 5, 1, log_end_offset(f->log), &s), 0);
    assert_true(s.base_offset <= 5 && s.next_offset > 5);
    log_slice_release(&s);
    /* a second pass leaves the empty batches as they are */
    uint64_t size = log_size_bytes(f->log);
    sync_and_compact(f, NOW, 1);
    assert_true(log_size_bytes(f->log) == size);
    struct log_compact_stats st;
    log_compact_stats(f->log, &st);
    assert_true(st.segments_rewritten > 0 && st.passes == 2);
}

/* Appends one single-record batch as producer pid, epoch 3, sequence seq. */
static void put_idempotent(struct tu_logfx *f, const char *key, int64_t pid, int32_t seq)
{
    struct tu_kv k = kv(key, "idempotent-value-idempotent-value", NOW + nmodel);
    size_t len;
    uint8_t *b = tu_kbatch(&k, 1, 0, &len);
    struct batch_hdr h;
    assert_true(batch_parse(b, len, len, &h) == (int64_t)len);
    h.producer_id = pid;
    h.producer_epoch = 3;
    h.base_sequence = seq;
    batch_write_header(b, &h);
    batch_update_crc(b, len);
    struct log_append_info info;
    assert_int_equal(log_append(f->log, b, len, NOW, &info), 0);
    free(b);
    model[nmodel] = k;
    model[nmodel++].offset = info.base_offset;
}

static void test_producer_fields_of_last_batch_kept(void **state)
{
    struct tu_logfx *f = *state;
    f->cfg.segment_bytes = 16384; /* one segment for all of it */
    open_log(f);
    int64_t last7 = -1, last9 = -1;
    for (int i = 0; i < 40; i++) {
        put_idempotent(f, "x", 7, i); /* every one superseded by the final "x" below */
        last7 = model[nmodel - 1].offset;
        if (i % 4 == 0) {
            put_idempotent(f, "y", 9, i / 4);
            last9 = model[nmodel - 1].offset;
        }
    }
    put(f, "x", "final");
    put(f, "y", "final");
    roll(f);
    sync_and_compact(f, NOW, 1);
    check_log(f, false);
    /* the last batch of each producer id is an empty batch with its producer fields */
    int found = 0;
    for (int64_t off = 0; off < cleaned_end(f);) {
        struct log_slice s;
        assert_int_equal(log_read(f->log, off, 1, cleaned_end(f), &s), 0);
        uint8_t hdr[BATCH_HEADER_SIZE];
        assert_true(pread(s.fd, hdr, sizeof(hdr), s.pos) == (ssize_t)sizeof(hdr));
        struct batch_hdr h;
        assert_true(batch_parse(hdr, sizeof(hdr), UINT32_MAX, &h) != TERN_EPROTO);
        if (h.base_offset == last7 || h.base_offset == last9) {
            assert_int_equal(h.record_count, 0);
            assert_int_equal(h.last_offset_delta, 0);
            assert_true(h.producer_id == (h.base_offset == last7 ? 7 : 9));
            assert_int_equal(h.producer_epoch, 3);
            assert_int_equal(h.base_sequence, h.base_offset == last7 ? 39 : 9);
            found++;
        } else if (h.record_count == 0) {
            assert_true(h.producer_id == -1); /* merged: producer fields dropped */
        }
        off = s.next_offset;
        log_slice_release(&s);
    }
    assert_int_equal(found, 2);
}

static void test_min_compaction_lag(void **state)
{
    struct tu_logfx *f = *state;
    f->cfg.min_compaction_lag_ms = 10000;
    open_log(f);
    updates(f, 3, 60); /* timestamps NOW .. NOW + 60 */
    roll(f);
    assert_int_equal(log_sync(f->log), 0);
    assert_int_equal(log_compact(f->log, NOW + 5000, true), 0); /* too young */
    assert_true(cleaned_end(f) == 0);
    assert_int_equal(log_compact(f->log, NOW + 20000, true), 1);
    check_log(f, false);
}

static void test_reopen_after_compaction(void **state)
{
    struct tu_logfx *f = *state;
    open_log(f);
    updates(f, 6, 250);
    roll(f);
    sync_and_compact(f, NOW, 1);
    check_log(f, false);
    int64_t end = cleaned_end(f);
    /* clean close: indexes are loaded as they are */
    log_close(f->log, NULL, NULL);
    open_log(f);
    assert_true(log_was_clean(f->log));
    /* the pass state is not persisted: everything is dirty again, and nothing changes */
    struct tu_walk w;
    int n = tu_read_kv(f->log, got, MAXM, &w);
    assert_true(n > 0 && w.end == log_end_offset(f->log));
    assert_true(cleaned_end(f) == 0);
    sync_and_compact(f, NOW, 1);
    assert_true(cleaned_end(f) == end);
    struct log_compact_stats st;
    log_compact_stats(f->log, &st);
    assert_true(st.passes == 1 && st.segments_rewritten == 0 && st.records_removed == 0);
    check_log(f, false);
    /* no clean-shutdown marker: recovery and an index rebuild of the compacted segments */
    log_close(f->log, NULL, NULL);
    f->log = NULL;
    unlink(tu_path(f->logdir, "clean-shutdown"));
    unlink(tu_path(f->logdir, "00000000000000000000.index"));
    open_log(f);
    assert_false(log_was_clean(f->log));
    sync_and_compact(f, NOW, 1);
    check_log(f, false);
    updates(f, 6, 10); /* still appendable */
}

static void test_reader_keeps_old_segment(void **state)
{
    struct tu_logfx *f = *state;
    open_log(f);
    updates(f, 2, 100);
    roll(f);
    assert_int_equal(log_sync(f->log), 0);
    struct log_slice s;
    assert_int_equal(log_read(f->log, 0, 1 << 20, log_end_offset(f->log), &s), 0);
    uint8_t *before = malloc(s.len);
    assert_true(pread(s.fd, before, s.len, s.pos) == (ssize_t)s.len);
    assert_int_equal(log_compact(f->log, NOW, true), 1);
    uint8_t *after = malloc(s.len);
    assert_true(pread(s.fd, after, s.len, s.pos) == (ssize_t)s.len);
    assert_memory_equal(before, after, s.len); /* the slice still reads the old file */
    log_slice_release(&s);
    free(before);
    free(after);
    check_log(f, false);
}

static void test_bad_crc_fails_only_the_pass(void **state)
{
    struct tu_logfx *f = *state;
    open_log(f);
    updates(f, 3, 60);
    roll(f);
    log_close(f->log, NULL, NULL); /* clean: the next open reads no CRC */
    tu_flip(tu_path(f->logdir, "00000000000000000000.log"), 100, 1);
    open_log(f);
    assert_int_equal(log_sync(f->log), 0);
    uint64_t size = log_size_bytes(f->log);
    assert_int_equal(log_compact(f->log, NOW, true), TERN_ECORRUPT);
    assert_int_equal(log_error(f->log), 0); /* still writable */
    assert_true(log_size_bytes(f->log) == size);
    assert_true(tu_file_size(tu_path(f->logdir, "00000000000000000000.cleaned.log")) < 0);
    struct log_compact_stats st;
    log_compact_stats(f->log, &st);
    assert_true(st.passes == 0 && st.last_error == TERN_ECORRUPT && st.cleaned_end == 0);
    updates(f, 3, 1);
}

static void test_off_without_config(void **state)
{
    struct tu_logfx *f = *state;
    f->cfg.compact = false;
    open_log(f);
    updates(f, 2, 100);
    roll(f);
    assert_int_equal(log_sync(f->log), 0);
    assert_int_equal(log_compact(f->log, NOW, true), 0);
    check_log(f, false); /* cleaned_end 0: everything survives */
}

static void test_retention_after_compaction(void **state)
{
    struct tu_logfx *f = *state;
    f->cfg.retention_bytes = 2048;
    open_log(f);
    updates(f, 3, 200);
    roll(f);
    sync_and_compact(f, NOW, 1);
    assert_true(log_retain(f->log, NOW) > 0);
    assert_true(log_start_offset(f->log) > 0);
    assert_int_equal(log_delete_below(f->log, log_start_offset(f->log) + 1), 0);
}

/* ---- on a loop -------------------------------------------------------------------------- */

static void on_durable(void *arg, int status)
{
    assert_int_equal(status, 0);
    *(bool *)arg = true;
}

/* Runs the loop until every append is durable and a forced pass has started. */
static void start_pass(uv_loop_t *loop, struct log *log)
{
    bool done = false;
    int rc = log_wait_durable(log, log_end_offset(log), on_durable, &done);
    assert_true(rc >= 0);
    while (rc == 0 && !done)
        uv_run(loop, UV_RUN_ONCE);
    assert_int_equal(log_compact(log, NOW, true), 1);
}

static void test_async_pass_on_loop(void **state)
{
    struct tu_logfx *f = *state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    char err[512];
    assert_int_equal(log_open(&loop, f->logdir, &f->cfg, &f->log, err, sizeof(err)), 0);
    updates(f, 4, 300);
    roll(f);
    start_pass(&loop, f->log);
    assert_true(log_compacting(f->log));
    assert_int_equal(log_compact(f->log, NOW, true), -EBUSY);
    assert_int_equal(log_truncate(f->log, 10), -EBUSY);
    /* appends, reads and deletions go on while the pass runs */
    updates(f, 4, 3);
    struct log_slice s;
    assert_int_equal(log_read(f->log, 0, 100, log_end_offset(f->log), &s), 0);
    int segs = log_segment_count(f->log);
    while (log_compacting(f->log))
        uv_run(&loop, UV_RUN_ONCE);
    log_slice_release(&s);
    assert_int_equal(log_segment_count(f->log), segs);
    check_log(f, false);
    /* a pass cancelled by close: the log closes cleanly and reopens */
    updates(f, 4, 300);
    roll(f);
    start_pass(&loop, f->log);
    log_close(f->log, NULL, NULL);
    f->log = NULL;
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    open_log(f);
    assert_true(log_was_clean(f->log));
    struct tu_walk w;
    assert_true(tu_read_kv(f->log, got, MAXM, &w) > 0);
    assert_true(w.end == log_end_offset(f->log));
}

static void test_delete_below_waits_for_pass(void **state)
{
    struct tu_logfx *f = *state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    char err[512];
    assert_int_equal(log_open(&loop, f->logdir, &f->cfg, &f->log, err, sizeof(err)), 0);
    updates(f, 4, 300);
    roll(f);
    start_pass(&loop, f->log);
    int segs = log_segment_count(f->log);
    assert_int_equal(log_delete_below(f->log, 150), 0);
    assert_true(log_start_offset(f->log) == 150);
    assert_int_equal(log_segment_count(f->log), segs); /* the segments wait for the pass */
    while (log_compacting(f->log))
        uv_run(&loop, UV_RUN_ONCE);
    assert_true(log_segment_count(f->log) < segs);
    struct log_slice s;
    assert_int_equal(log_read(f->log, 150, 100, log_end_offset(f->log), &s), 0);
    assert_true(s.len > 0 && s.base_offset <= 150);
    log_slice_release(&s);
    log_close(f->log, NULL, NULL);
    f->log = NULL;
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_latest_value_per_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repeated_passes_and_ratio, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tombstones_kept_then_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_null_keys_never_compacted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compressed_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_producer_fields_of_last_batch_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_min_compaction_lag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_after_compaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_keeps_old_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_crc_fails_only_the_pass, setup, teardown),
        cmocka_unit_test_setup_teardown(test_off_without_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_after_compaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_pass_on_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_below_waits_for_pass, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
