/*
 * fuzz_segment.c - fuzz target for log recovery (store/log.c, store/seg.c): the input becomes
 * the files of a log directory, which is then opened, read and closed.
 *
 * Input layout (tests/fuzz/mkcorpus.py writes seeds in it):
 *
 *   byte 0   flags: 0x01 .index, 0x02 .timeindex, 0x04 checkpoint, 0x08 clean-shutdown marker,
 *            0x10 split the data into two segments, 0x20 append a batch after opening,
 *            0x40 log_truncate, 0x80 log_delete_below
 *   then, only for the flags set and in this order: .index length / 4 (1 byte), .timeindex
 *   length / 4 (1), checkpoint length / 4 (1), split position (u16 LE) and base offset of the
 *   second segment (1), truncate delta (1), delete-below delta (1)
 *   then the .index, .timeindex and checkpoint bytes (cut short at the end of the input)
 *   the rest: the data file 00000000000000000000.log (its first `split` bytes when splitting;
 *   the remainder goes to the second segment's .log).
 *
 * Each run works in a fresh mkdtemp directory under $TMPDIR (default /tmp) and removes it. Any
 * return code of the store is fine; crashes, leaks, UB and broken read promises are not. Log
 * lines are suppressed.
 */
#include "base/tern.h"
#include "base/tlog.h"
#include "os/file.h"
#include "store/batch.h"
#include "store/log.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
    F_INDEX = 0x01,
    F_TIMEINDEX = 0x02,
    F_CKPT = 0x04,
    F_CLEAN = 0x08,
    F_SPLIT = 0x10,
    F_APPEND = 0x20,
    F_TRUNCATE = 0x40,
    F_DELETE = 0x80,
};

#define READ_BYTES_BIG 4096
#define READ_BYTES_SMALL 150 /* about one seed batch: windows end in the middle of batches */
#define MAX_READS 4096

/* A broken promise of the code under test: say which, then crash so the fuzzer keeps it. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_segment: check failed: %s at %s:%d\n", #cond, __FILE__,          \
                    __LINE__);                                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The decoded input. */
struct input {
    uint8_t flags;
    const uint8_t *index, *timeindex, *ckpt, *data;
    size_t index_len, timeindex_len, ckpt_len, data_len;
    size_t split;         /* bytes of data in the first segment */
    int64_t second_base;  /* base offset of the second segment */
    uint8_t trunc, below; /* deltas from the start offset */
};

struct cursor {
    const uint8_t *p, *end;
};

static uint8_t next_byte(struct cursor *c)
{
    return c->p < c->end ? *c->p++ : 0;
}

static const uint8_t *next_bytes(struct cursor *c, size_t *n)
{
    if (*n > (size_t)(c->end - c->p))
        *n = (size_t)(c->end - c->p);
    const uint8_t *r = c->p;
    c->p += *n;
    return r;
}

static void decode_input(const uint8_t *data, size_t size, struct input *in)
{
    struct cursor c = {data, data + size};
    memset(in, 0, sizeof(*in));
    in->flags = next_byte(&c);
    in->index_len = (in->flags & F_INDEX) ? 4u * next_byte(&c) : 0;
    in->timeindex_len = (in->flags & F_TIMEINDEX) ? 4u * next_byte(&c) : 0;
    in->ckpt_len = (in->flags & F_CKPT) ? 4u * next_byte(&c) : 0;
    if (in->flags & F_SPLIT) {
        in->split = next_byte(&c);
        in->split |= (size_t)next_byte(&c) << 8;
        in->second_base = next_byte(&c);
    }
    in->trunc = (in->flags & F_TRUNCATE) ? next_byte(&c) : 0;
    in->below = (in->flags & F_DELETE) ? next_byte(&c) : 0;
    in->index = next_bytes(&c, &in->index_len);
    in->timeindex = next_bytes(&c, &in->timeindex_len);
    in->ckpt = next_bytes(&c, &in->ckpt_len);
    in->data_len = (size_t)(c.end - c.p);
    in->data = c.p;
    if (!(in->flags & F_SPLIT) || in->split > in->data_len)
        in->split = in->data_len;
}

/* ---- the directory -------------------------------------------------------------------- */

static int write_file(const char *dir, const char *name, const uint8_t *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -1;
    ssize_t w = n ? write(fd, p, n) : 0;
    close(fd);
    return w == (ssize_t)n ? 0 : -1;
}

static int write_files(const char *dir, const struct input *in)
{
    char name[64];
    int rc = write_file(dir, "00000000000000000000.log", in->data, in->split);
    if (rc == 0 && (in->flags & F_INDEX))
        rc = write_file(dir, "00000000000000000000.index", in->index, in->index_len);
    if (rc == 0 && (in->flags & F_TIMEINDEX))
        rc = write_file(dir, "00000000000000000000.timeindex", in->timeindex, in->timeindex_len);
    if (rc == 0 && (in->flags & F_CKPT))
        rc = write_file(dir, "checkpoint", in->ckpt, in->ckpt_len);
    if (rc == 0 && (in->flags & F_CLEAN))
        rc = write_file(dir, "clean-shutdown", NULL, 0);
    if (rc == 0 && (in->flags & F_SPLIT)) {
        snprintf(name, sizeof(name), "%020" PRId64 ".log", in->second_base);
        rc = write_file(dir, name, in->data + in->split, in->data_len - in->split);
    }
    return rc;
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char path[512];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* ---- exercising the log ------------------------------------------------------------------ */

/* Checks the whole batches of a slice: parsed, in offset order, within what log_read said. */
static void check_slice(const struct log_slice *s, int64_t asked)
{
    uint8_t *buf = malloc(s->len ? s->len : 1);
    CHECK(buf != NULL);
    ssize_t n = file_pread_all(s->fd, buf, s->len, s->pos);
    CHECK(n == (ssize_t)s->len); /* a slice names bytes that exist */
    size_t pos = 0;
    int64_t prev_last = -1;
    while (pos < s->len) {
        struct batch_hdr h;
        int64_t sz = batch_parse(buf + pos, s->len - pos, s->len - pos, &h);
        CHECK(sz > 0); /* a slice is a run of whole batches */
        if (pos == 0)
            CHECK(h.base_offset == s->base_offset && batch_last_offset(&h) >= asked);
        CHECK(h.base_offset > prev_last);              /* offsets ascend */
        CHECK(batch_last_offset(&h) < s->next_offset); /* next_offset is past the slice */
        prev_last = batch_last_offset(&h);
        pos += (size_t)sz;
    }
    free(buf);
}

/* Reads every offset from start to end, slice by slice of at most max_bytes. */
static void read_all_by(struct log *log, size_t max_bytes)
{
    int64_t off = log_start_offset(log), end = log_end_offset(log);
    for (int i = 0; i < MAX_READS && off < end; i++) {
        struct log_slice s;
        int rc = log_read(log, off, max_bytes, end, &s);
        if (rc < 0)
            return;
        if (s.len == 0) {
            log_slice_release(&s);
            return;
        }
        CHECK(s.next_offset > off); /* a non-empty slice moves the reader on */
        check_slice(&s, off);
        off = s.next_offset;
        log_slice_release(&s);
    }
}

static void read_all(struct log *log)
{
    read_all_by(log, READ_BYTES_BIG);
    read_all_by(log, READ_BYTES_SMALL);
}

static void find_times(struct log *log, const struct input *in)
{
    int64_t ts[] = {INT64_MIN, -1, 0, 1700000000000, 1700000002500, INT64_MAX, 0};
    if (in->data_len >= 35) /* the first batch's baseTimestamp, as written */
        for (int i = 0; i < 8; i++)
            ts[6] = (int64_t)((uint64_t)ts[6] << 8 | in->data[27 + i]);
    for (size_t i = 0; i < TERN_ARRAY_LEN(ts); i++) {
        int64_t off;
        if (log_find_time(log, ts[i], &off) == 0)
            CHECK(off >= 0 && off < log_end_offset(log)); /* a batch base may be below start */
    }
}

static void append_one(struct log *log)
{
    struct batch_rec_in recs[2] = {
        {.key = "k", .key_len = 1, .value = "fuzz", .value_len = 4, .timestamp = 1700000009000},
        {.key = NULL, .key_len = -1, .value = NULL, .value_len = -1, .timestamp = 1700000009001},
    };
    uint8_t buf[256];
    int64_t n = batch_encode(buf, sizeof(buf), recs, 2);
    CHECK(n > 0);
    int64_t end = log_end_offset(log);
    struct log_append_info info;
    if (log_append(log, buf, (size_t)n, 1700000009000, &info) == 0) {
        CHECK(info.base_offset == end && info.last_offset == end + 1);
        CHECK(log_end_offset(log) == end + 2);
    }
    log_sync(log);
}

static void exercise(struct log *log, const struct input *in)
{
    CHECK(log_start_offset(log) <= log_end_offset(log));
    read_all(log);
    find_times(log, in);
    if (in->flags & F_APPEND) {
        append_one(log);
        read_all(log);
    }
    if (in->flags & F_TRUNCATE) {
        log_truncate(log, log_start_offset(log) + in->trunc);
        read_all(log);
    }
    if (in->flags & F_DELETE) {
        log_delete_below(log, log_start_offset(log) + in->below);
        read_all(log);
    }
}

static void quiet_logs(void)
{
    static int done;
    if (!done) {
        tlog_set_level((enum tlog_level)(TLOG_LEVEL_ERROR + 1));
        done = 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    quiet_logs();
    struct input in;
    decode_input(data, size, &in);
    const char *tmp = getenv("TMPDIR");
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/fuzz_segment.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        return 0;
    if (write_files(dir, &in) == 0) {
        struct log_config cfg;
        log_config_default(&cfg);
        cfg.segment_bytes = 2048;
        cfg.index_interval_bytes = 64;
        cfg.max_batch_bytes = 1u << 20;
        struct log *log;
        char errbuf[512];
        if (log_open(NULL, dir, &cfg, &log, errbuf, sizeof(errbuf)) == 0) {
            exercise(log, &in);
            log_close(log, NULL, NULL);
        } else {
            CHECK(memchr(errbuf, '\0', sizeof(errbuf)) != NULL && errbuf[0] != '\0');
        }
    }
    remove_dir(dir);
    return 0;
}
