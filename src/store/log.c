/*
 * log.c - a durable log: segments, recovery, group commit, reads and retention.
 *
 * Directory of a log:
 *
 *   <20-digit base>.log / .index / .timeindex   segments (seg.c), base offsets ascending
 *   checkpoint                                  two 64-byte slots, written alternately:
 *       0 u32 magic "TCKP"   4 u16 version (1)   6 u16 reserved   8 u64 sequence
 *      16 i64 start offset  24 i64 durable end offset (every offset below it was fsynced)
 *      32 i64 base of the segment holding the durable end   40 u64 its byte position there
 *      48 12 bytes reserved (zero)   60 u32 CRC-32C of bytes 0..59     (all little-endian)
 *   clean-shutdown                              present only after a clean close
 *
 * Recovery (log_open): with the clean-shutdown marker every segment is loaded without a scan.
 * Without it, segments before the checkpoint's segment are loaded as sealed (they were fsynced
 * before the checkpoint was written); from the checkpoint's segment on, every batch is read
 * and its CRC checked. A bad batch before the checkpoint's durable position is corruption: the
 * log is refused with the file and position. A bad batch after it is a torn tail: the file is
 * cut there and later segments are deleted, so nothing after a gap is ever served. The
 * checkpoint is made durable at most every checkpoint_interval_ms, at every roll and at close.
 *
 * A log created with a loop is not fsynced on the loop thread: its directory's entry, its first
 * segment's entries and its first checkpoint are made durable by its first fsync job (the
 * first durable wait's, an interval fsync, or its close), before any offset of it is reported
 * durable. A crash before then leaves no log, or an empty one, which recovery opens as new. Closing
 * with log_discard (the log is about to be deleted) skips the final fsync and the marker.
 *
 * Group commit: appends go to the page cache on the loop thread. One fsync job at a time runs
 * on the libuv thread pool, covering every segment with unsynced bytes; appends made meanwhile
 * wait for the next job. A failed write or fsync is never retried: the log turns read-only.
 *
 * Compaction (cfg.compact, log_compact.c): one pass at a time runs on the pool (store/compact.c
 * does the work per segment, seg_replace installs each result) and its completion swaps the new
 * segment objects in on the loop. The pass holds references to the segments it covers;
 * retention and deletion wait for its end so that no file it renames is unlinked under it.
 * Format and crash rules: docs/STORAGE.md, "Compaction".
 */
#include "store/log.h"
#include "store/log_int.h"

#include "base/clock.h"
#include "base/crc32c.h"
#include "base/tern.h"
#include "base/tlog.h"
#include "os/file.h"
#include "store/compact.h"
#include "store/seg.h"

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CKPT_MAGIC 0x504B4354u /* "TCKP" little-endian */
#define CKPT_VERSION 1
#define CKPT_SLOT 64
#define CLEAN_MARKER "clean-shutdown"

struct waiter {
    int64_t end;
    log_durable_cb cb;
    void *arg;
};

/* A segment an fsync job covers: unsynced data or index, or page cache to drop. */
struct job_seg {
    struct seg *s;               /* referenced */
    uint64_t size;               /* at prepare time: what the fsync makes durable */
    bool seal;                   /* sealed: fsync its index files too */
    bool sync;                   /* fsync it (otherwise it is here only for the cache drop) */
    uint64_t drop_from, drop_to; /* then drop [drop_from, drop_to) from the page cache */
};

/* One fsync job: prepared on the loop, run on a pool thread, completed on the loop. */
struct sync_job {
    uv_work_t req;
    struct log *log;
    struct job_seg *segs;
    int nsegs;
    int64_t target; /* durable end once the job succeeds */
    bool write_ckpt;
    bool sync_dir;    /* segments were created or removed: fsync the directory first */
    bool sync_parent; /* the directory was created: fsync its parent before that */
    struct ckpt ckpt; /* written after the data fsyncs */
    int ckpt_fd;
    int rc;
    bool ran;       /* a younger job that ran before the older one finished: it completes after it */
    uint64_t bytes; /* appended since the previous data job started (job_start) */
};

void log_config_default(struct log_config *cfg)
{
    *cfg = (struct log_config){
        .segment_bytes = 1ull << 30,
        .segment_ms = 7ll * 24 * 3600 * 1000,
        .index_interval_bytes = 4096,
        .max_batch_bytes = 8u << 20,
        .fsync_mode = LOG_FSYNC_ALWAYS,
        .fsync_interval_ms = 1000,
        .checkpoint_interval_ms = 1000,
        .retention_ms = -1,
        .retention_bytes = -1,
        .compact = false,
        .delete_retention_ms = 86400000,
        .min_compaction_lag_ms = 0,
        .sync_gap_bytes = 16u << 10,
        .cache_bytes = 1ull << 30,
    };
}

const char *log_name(const struct log *log)
{
    const char *s = strrchr(log->dir, '/');
    return s ? s + 1 : log->dir;
}

static struct seg *active(const struct log *log)
{
    return log->segs[log->nsegs - 1];
}

/* ---- checkpoint ---------------------------------------------------------------------- */

static void le_put(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t le_get(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void ckpt_encode(const struct ckpt *c, uint8_t *b)
{
    memset(b, 0, CKPT_SLOT);
    le_put(b, CKPT_MAGIC, 4);
    le_put(b + 4, CKPT_VERSION, 2);
    le_put(b + 8, c->seq, 8);
    le_put(b + 16, (uint64_t)c->start, 8);
    le_put(b + 24, (uint64_t)c->durable_end, 8);
    le_put(b + 32, (uint64_t)c->seg_base, 8);
    le_put(b + 40, c->seg_pos, 8);
    le_put(b + 60, crc32c(0, b, 60), 4);
}

static bool ckpt_decode(const uint8_t *b, struct ckpt *c)
{
    if (le_get(b, 4) != CKPT_MAGIC || le_get(b + 4, 2) != CKPT_VERSION ||
        le_get(b + 60, 4) != crc32c(0, b, 60))
        return false;
    c->seq = le_get(b + 8, 8);
    c->start = (int64_t)le_get(b + 16, 8);
    c->durable_end = (int64_t)le_get(b + 24, 8);
    c->seg_base = (int64_t)le_get(b + 32, 8);
    c->seg_pos = le_get(b + 40, 8);
    return c->start >= 0 && c->durable_end >= c->start && c->seg_base >= 0;
}

/* Writes and fsyncs checkpoint slot seq % 2. Safe on any thread (touches only fd and c). */
static int ckpt_write(int fd, const struct ckpt *c)
{
    uint8_t b[CKPT_SLOT];
    ckpt_encode(c, b);
    int rc = file_pwrite_all(fd, b, sizeof(b), (off_t)(c->seq % 2) * CKPT_SLOT);
    return rc < 0 ? rc : file_datasync(fd);
}

/* Reads the newest valid slot. Returns 1 when found, 0 when none, or -errno. */
static int ckpt_read(int fd, struct ckpt *out)
{
    uint8_t b[2 * CKPT_SLOT];
    ssize_t n = file_pread_all(fd, b, sizeof(b), 0);
    if (n < 0)
        return (int)n;
    int found = 0;
    for (int i = 0; i < 2; i++) {
        struct ckpt c;
        if ((i + 1) * CKPT_SLOT <= n && ckpt_decode(b + i * CKPT_SLOT, &c) &&
            (!found || c.seq > out->seq)) {
            *out = c;
            found = 1;
        }
    }
    return found;
}

/* The checkpoint describing the log with everything below `end` durable. */
static struct ckpt ckpt_now(const struct log *log, int64_t end, uint64_t seq)
{
    const struct seg *a = active(log);
    return (struct ckpt){.seq = seq,
                         .start = log->start_offset,
                         .durable_end = end,
                         .seg_base = a->base,
                         .seg_pos = end == a->next_offset ? a->size : a->synced_size};
}

/* ---- failure --------------------------------------------------------------------------- */

static void waiters_fire(struct log *log, int status);

void log_fail(struct log *log, int err, const char *what)
{
    if (log->err)
        return;
    log->err = err;
    TLOG_ERRNO("store", err, "event=log_readonly log=%s dir=%s op=%s", log_name(log), log->dir,
               what);
    waiters_fire(log, err);
}

/* ---- group commit ---------------------------------------------------------------------- */

/* The kernel drops only whole folios, and a file written in large appends sits in folios of up
 * to 2 MiB: a drop starts this far before where the last one ended, so that a folio it cut
 * through goes now. A segment wholly outside the window is dropped to its end (DROP_ALL). */
#define DROP_REWIND (2u << 20)
#define DROP_ALL UINT64_MAX

/* Where the page cache of s may end, given `after` bytes of the log after it: below the newest
 * cache_bytes of the log, rounded down to a page (0: nothing to drop). */
static uint64_t drop_target(const struct log *log, const struct seg *s, uint64_t after)
{
    uint64_t keep = log->cfg.cache_bytes;
    if (keep == 0)
        return 0;
    if (after >= keep)
        return DROP_ALL;
    uint64_t here = keep - after; /* of the window, what falls in s */
    return s->size > here ? (s->size - here) & ~(uint64_t)4095 : 0;
}

/* A job fsyncs every segment with unsynced data (data) or none (a job for the directory and
 * the checkpoint only: it claims nothing new as durable). A data job also drops from the page
 * cache the bytes that fell out of the log's newest cache_bytes (they are fsynced first). */
static struct sync_job *job_prepare(struct log *log, int64_t now_ms, bool data)
{
    struct sync_job *j = tern_xcalloc(1, sizeof(*j));
    j->log = log;
    j->sync_dir = log->dir_dirty;
    j->sync_parent = log->parent_dirty;
    log->dir_dirty = log->parent_dirty = false;
    j->target = data ? log->end_offset : log->durable_offset;
    j->segs = tern_xcalloc((size_t)log->nsegs, sizeof(*j->segs));
    uint64_t after = data ? log_size_bytes(log) : 0; /* bytes after the segment at hand */
    for (int i = 0; data && i < log->nsegs; i++) {
        struct seg *s = log->segs[i];
        bool sealed = i < log->nsegs - 1;
        after -= s->size;
        bool sync = s->synced_size < s->size || (sealed && s->index_dirty);
        uint64_t drop = drop_target(log, s, after);
        if (sync || drop > s->uncached) {
            seg_ref(s);
            struct job_seg *js = &j->segs[j->nsegs++];
            *js = (struct job_seg){.s = s, .size = s->size, .seal = sealed, .sync = sync};
            if (drop > s->uncached) {
                js->drop_from = s->uncached & ~(uint64_t)(DROP_REWIND - 1);
                js->drop_to = drop;
            }
        }
    }
    /* only a job alone in flight writes the checkpoint: one write at a time, each after the
     * fsyncs of everything it claims (an older job's too) */
    if (!log->job &&
        (log->force_ckpt || now_ms - log->ckpt_ms >= (int64_t)log->cfg.checkpoint_interval_ms ||
         log->closing)) {
        /* served now, as dir_dirty is: a roll while the job runs asks again, and the
         * completion then submits the next job (clearing it there lost that request) */
        log->force_ckpt = false;
        j->write_ckpt = true;
        j->ckpt = ckpt_now(log, j->target, log->ckpt.seq + 1);
        j->ckpt_fd = log->ckpt_fd;
    }
    return j;
}

static void job_run(struct sync_job *j)
{
    if (j->sync_parent)
        j->rc = file_sync_parent(j->log->dir);
    if (j->sync_dir && j->rc == 0)
        j->rc = file_sync_dir(j->log->dir);
    for (int i = 0; i < j->nsegs && j->rc == 0; i++) {
        const struct job_seg *js = &j->segs[i];
        if (!js->sync)
            continue;
        j->rc = file_datasync(js->s->fd);
        if (j->rc == 0 && js->seal)
            j->rc = seg_sync_index(js->s);
    }
    if (j->rc == 0 && j->write_ckpt)
        j->rc = ckpt_write(j->ckpt_fd, &j->ckpt);
    /* the dropped pages are clean now; advisory, so a failure costs only memory */
    for (int i = 0; i < j->nsegs && j->rc == 0; i++) {
        const struct job_seg *js = &j->segs[i];
        if (js->drop_to > js->drop_from && js->drop_from < js->size)
            file_drop_cache(js->s->fd, (off_t)js->drop_from,
                            js->drop_to == DROP_ALL ? 0 /* to the end of the file */
                                                    : (off_t)(js->drop_to - js->drop_from));
    }
}

static void job_submit(struct log *log);
static void job_start(struct log *log, bool data);

/* Completes the oldest job in flight, log->job; a younger one that already ran completes
 * right after it, so durability is only ever claimed in order. */
static void job_complete(struct sync_job *j)
{
    struct log *log = j->log;
    TERN_ASSERT(j == log->job);
    log->job = log->job2;
    log->job2 = NULL;
    for (int i = 0; i < j->nsegs; i++) {
        struct job_seg *js = &j->segs[i];
        if (j->rc == 0) {
            if (js->s->synced_size < js->size)
                js->s->synced_size = js->size;
            if (js->seal)
                js->s->index_dirty = false;
            if (js->s->uncached < js->drop_to)
                js->s->uncached = js->drop_to;
        }
        seg_unref(js->s);
    }
    free(j->segs);
    if (log->discard) {
        /* being deleted: its files may already be renamed away, and nobody needs them durable;
         * log_finish_close answers the waiters */
    } else if (j->rc < 0) {
        log_fail(log, j->rc, "fsync");
    } else if (log->err) {
        /* an older job failed: its fsync may have taken the error this one's range also had
         * (errseq reports it once per open file), so this success proves nothing */
    } else {
        if (j->target > log->durable_offset)
            log->durable_offset = j->target;
        if (j->write_ckpt) {
            log->ckpt = j->ckpt;
            log->ckpt_ms = clock_wall_ms();
        }
        log->sync_ms = clock_wall_ms();
        /* waiters that append and wait again must all share the next fsync, so none of them
         * may start it: it is submitted once, below, after every waiter has run */
        log->answering = true;
        waiters_fire(log, 0);
        log->answering = false;
    }
    free(j);
    if (log->job && log->job->ran) {
        job_complete(log->job);
        return;
    }
    if (log->closing && !log->sync_inline && !log->cjob && !log->job)
        log_finish_close(log);
    else if (!log->err && log->loop &&
             ((log->cfg.fsync_mode == LOG_FSYNC_ALWAYS && log->nwaiters > 0) || log->force_ckpt))
        job_submit(log);
}

static void job_work_cb(uv_work_t *req)
{
    job_run((struct sync_job *)req->data);
}

static void job_after_cb(uv_work_t *req, int status)
{
    struct sync_job *j = req->data;
    if (status < 0 && j->rc == 0)
        j->rc = status;
    if (j != j->log->job) {
        j->ran = true; /* the older job has not finished: complete after it */
        return;
    }
    job_complete(j);
}

/* The timer that starts a data job once sync_gap_ms has passed; outlives its log (log NULL)
 * until libuv has closed it. */
struct gap_timer {
    uv_timer_t t;
    struct log *log;
};

static void on_gap_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_gap(uv_timer_t *t)
{
    struct gap_timer *g = t->data;
    if (g->log)
        job_start(g->log, true);
}

static void gap_free(struct log *log)
{
    if (!log->gap)
        return;
    log->gap->log = NULL;
    uv_close((uv_handle_t *)&log->gap->t, on_gap_closed);
    log->gap = NULL;
}

/* True when a data job must wait for sync_gap_ms (the timer then starts it). */
static bool gap_wait(struct log *log)
{
    uint64_t gap_ns = (uint64_t)log->cfg.sync_gap_ms * 1000000u;
    uint64_t now = clock_mono_ns();
    /* a large pending write is worth its fsync now: the gap is for trickles of small ones */
    bool big = log->appended - log->job_start_appended >= log->cfg.sync_gap_bytes;
    if (!gap_ns || log->cfg.fsync_mode != LOG_FSYNC_ALWAYS || log->closing || big ||
        now - log->job_start_ns >= gap_ns) {
        log->job_start_ns = now;
        log->job_start_appended = log->appended;
        if (log->gap)
            uv_timer_stop(&log->gap->t); /* a job starts now: nothing left to wait for */
        return false;
    }
    if (!log->gap) {
        log->gap = tern_xcalloc(1, sizeof(*log->gap));
        log->gap->log = log;
        uv_timer_init(log->loop, &log->gap->t);
        log->gap->t.data = log->gap;
    }
    if (!uv_is_active((uv_handle_t *)&log->gap->t)) {
        uint64_t left_ms = (gap_ns - (now - log->job_start_ns) + 999999u) / 1000000u;
        uv_timer_start(&log->gap->t, on_gap, left_ms, 0);
    }
    return true;
}

/* A job in flight that fsyncs this much or more is not overlapped: its fsync is bound by
 * writing the data, not by the fixed cost of a flush, and a second one beside it only splits
 * the same writeback into more flushes (Kafka's 1 KiB acks=all producer row ran ~12% slower
 * with every job overlapped; confirm rows of small messages gain from overlapping). */
#define OVERLAP_MAX_BYTES (512u << 10)

/*
 * Whether a second data job may start while log->job runs. Waiting for it to finish before
 * the next fsync starts leaves the disk idle for the round trip through the loop and costs a
 * waiter that arrives just after a job started almost two fsyncs; overlapping, the next fsync
 * starts as soon as there is data and someone waiting. Only a plain one overlaps: no directory
 * entry to make durable (simpler to reason about) and no checkpoint due, which an overlapping
 * job may not write (job_prepare) and which would otherwise wait as long as jobs overlap.
 */
static bool job_overlap_ok(const struct log *log, bool data)
{
    if (!data || log->job2 || log->cfg.fsync_mode != LOG_FSYNC_ALWAYS || log->nwaiters == 0 ||
        log->job->bytes >= OVERLAP_MAX_BYTES || log->end_offset <= log->job->target ||
        log->dir_dirty || log->parent_dirty || log->force_ckpt)
        return false;
    return clock_wall_ms() - log->ckpt_ms < (int64_t)log->cfg.checkpoint_interval_ms;
}

/* Starts an fsync job on the pool unless one is in flight and this one may not overlap it
 * (the completion resubmits). */
static void job_start(struct log *log, bool data)
{
    /* while closing, log_finish_close syncs inline: a pool job would outlive the log */
    if (log->err || !log->loop || log->answering || log->closing)
        return;
    if (log->job && !job_overlap_ok(log, data))
        return;
    uint64_t bytes = log->appended - log->job_start_appended; /* gap_wait moves the mark */
    if (data && gap_wait(log))
        return;
    struct sync_job *j = job_prepare(log, clock_wall_ms(), data);
    j->bytes = data ? bytes : 0;
    if (log->job) {
        log->job2 = j;
        log->overlaps++;
    } else
        log->job = j;
    j->req.data = j;
    int rc = uv_queue_work(log->loop, &j->req, job_work_cb, job_after_cb);
    if (rc < 0) {
        j->rc = rc;
        if (j == log->job)
            job_complete(j);
        else
            j->ran = true;
    }
}

static void job_submit(struct log *log)
{
    job_start(log, true);
}

int log_sync(struct log *log)
{
    if (log->err)
        return log->err;
    if (log->job)
        return -EBUSY;
    struct sync_job *j = job_prepare(log, clock_wall_ms(), true);
    log->job = j;
    job_run(j);
    log->sync_inline = true;
    job_complete(j);
    log->sync_inline = false;
    return log->err;
}

/* ---- waiters --------------------------------------------------------------------------- */

static void waiters_fire(struct log *log, int status)
{
    size_t n = 0, keep = 0;
    struct waiter *ready = NULL;
    for (size_t i = 0; i < log->nwaiters; i++) {
        struct waiter w = log->waiters[i];
        if (status != 0 || w.end <= log->durable_offset) {
            if (!ready)
                ready = tern_xmalloc(log->nwaiters * sizeof(*ready));
            ready[n++] = w;
        } else {
            log->waiters[keep++] = w;
        }
    }
    log->nwaiters = keep;
    /* callbacks may append and wait again: call them after the array is consistent */
    for (size_t i = 0; i < n; i++)
        ready[i].cb(ready[i].arg, status);
    free(ready);
}

int log_wait_durable(struct log *log, int64_t end, log_durable_cb cb, void *arg)
{
    if (log->err)
        return TERN_EREADONLY;
    if (log->closing)
        return TERN_ECLOSED;
    if (end <= log->durable_offset || log->cfg.fsync_mode != LOG_FSYNC_ALWAYS)
        return 1;
    if (log->nwaiters == log->capwaiters) {
        log->capwaiters = log->capwaiters ? log->capwaiters * 2 : 16;
        log->waiters = tern_xrealloc(log->waiters, log->capwaiters * sizeof(*log->waiters));
    }
    log->waiters[log->nwaiters++] = (struct waiter){end, cb, arg};
    job_submit(log);
    return 0;
}

/* ---- segments list --------------------------------------------------------------------- */

static void segs_push(struct log *log, struct seg *s)
{
    if (log->nsegs == log->capsegs) {
        log->capsegs = log->capsegs ? log->capsegs * 2 : 8;
        log->segs = tern_xrealloc(log->segs, (size_t)log->capsegs * sizeof(*log->segs));
    }
    s->loop = log->loop;
    log->segs[log->nsegs++] = s;
}

/* Segment files were created or removed. With a loop the next fsync job makes the directory
 * durable (before it reports anything durable, so no acknowledged data depends on an entry
 * that a crash could lose), keeping a directory fsync off the loop thread; without one it
 * happens now. data: the job also fsyncs the data (a roll seals a segment; in every fsync
 * mode that makes what came before it durable). */
static int dir_changed(struct log *log, bool data)
{
    if (!log->loop)
        return file_sync_dir(log->dir);
    log->dir_dirty = true;
    log->force_ckpt = true;
    job_start(log, data);
    return 0;
}

/* Removes the first n segments from the list and their files. */
static int segs_drop_front(struct log *log, int n)
{
    int rc = 0;
    for (int i = 0; i < n; i++) {
        int r = seg_remove(log->segs[i]);
        if (r < 0 && rc == 0)
            rc = r;
        seg_unref(log->segs[i]);
    }
    memmove(log->segs, log->segs + n, (size_t)(log->nsegs - n) * sizeof(*log->segs));
    log->nsegs -= n;
    if (rc == 0)
        rc = dir_changed(log, false);
    return rc;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Lists segment bases in dir, ascending. Returns the count or -errno. */
static int list_segments(const char *dir, int64_t **out)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    int n = 0, cap = 0;
    int64_t *bases = NULL;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int64_t base;
        if (seg_parse_name(e->d_name, &base) < 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            bases = tern_xrealloc(bases, (size_t)cap * sizeof(*bases));
        }
        bases[n++] = base;
    }
    closedir(d);
    if (n > 1)
        qsort(bases, (size_t)n, sizeof(*bases), cmp_i64);
    *out = bases;
    return n;
}

/* ---- open and recovery ----------------------------------------------------------------- */

struct recovery {
    struct log *log;
    struct ckpt ckpt;
    bool have_ckpt;
    char *errbuf;
    size_t errlen;
    uint64_t scanned;
};

static void recovery_progress(void *arg, const struct seg *s, uint64_t pos, uint64_t total)
{
    struct recovery *rc = arg;
    TLOG_INFO("store",
              "event=recovery_progress log=%s segment=%020" PRId64 " pos=%" PRIu64 " size=%" PRIu64
              " pct=%d",
              log_name(rc->log), s->base, pos, total, total ? (int)(pos * 100 / total) : 100);
}

static int corrupt(struct recovery *r, const struct seg *s, uint64_t pos, const char *why)
{
    if (r->errbuf)
        snprintf(r->errbuf, r->errlen, "%s in %s.log at byte %" PRIu64, why, s->path, pos);
    return TERN_ECORRUPT;
}

/* Drops segments [from, nsegs) entirely: data after a torn tail is never served. */
static int drop_tail_segments(struct log *log, int from)
{
    int rc = 0;
    for (int i = from; i < log->nsegs; i++) {
        TLOG_WARN("store",
                  "event=torn_tail log=%s file=%s.log pos=0 dropped_bytes=%" PRIu64
                  " reason=\"after a torn segment\"",
                  log_name(log), log->segs[i]->path, log->segs[i]->size);
        int r = seg_remove(log->segs[i]);
        if (r < 0 && rc == 0)
            rc = r;
        seg_unref(log->segs[i]);
    }
    log->nsegs = from;
    return rc;
}

/* Scans segment i (at or after the checkpoint's segment) and handles a torn tail. */
static int recover_scan(struct recovery *r, int i, int64_t min_base, bool *torn)
{
    struct log *log = r->log;
    struct seg *s = log->segs[i];
    struct seg_scan sc;
    uint64_t durable_pos = 0;
    if (r->have_ckpt && s->base == r->ckpt.seg_base)
        durable_pos = r->ckpt.seg_pos;
    int rc = seg_recover(s, min_base, &sc, recovery_progress, r);
    if (rc < 0)
        return rc;
    r->scanned += sc.file_size;
    if (!sc.reason)
        return 0;
    if (sc.bad_pos < durable_pos)
        return corrupt(r, s, sc.bad_pos, sc.reason);
    TLOG_WARN("store",
              "event=torn_tail log=%s file=%s.log pos=%" PRIu64 " dropped_bytes=%" PRIu64
              " reason=\"%s\"",
              log_name(log), s->path, sc.bad_pos, sc.file_size - sc.valid_end, sc.reason);
    rc = seg_truncate(s, sc.valid_end, s->next_offset);
    if (rc == 0)
        rc = file_datasync(s->fd);
    *torn = true;
    return rc;
}

/* Loads or scans every segment; sets start/end offsets. */
static int recover_segments(struct recovery *r)
{
    struct log *log = r->log;
    int64_t prev_end = -1;
    for (int i = 0; i < log->nsegs; i++) {
        struct seg *s = log->segs[i];
        int64_t min_base = prev_end > s->base ? prev_end : s->base;
        bool trusted = log->clean_open || (r->have_ckpt && s->base < r->ckpt.seg_base);
        if (prev_end > s->base)
            return corrupt(r, s, 0, "segment overlaps the previous one");
        if (!trusted && prev_end >= 0 && s->base > prev_end) {
            /* the previous segment lost its unsynced tail: what follows is past a gap */
            int rc = drop_tail_segments(log, i);
            if (rc < 0)
                return rc;
            break;
        }
        if (trusted) {
            const char *why = NULL;
            uint64_t bad = 0;
            int rc = seg_load(s, &why, &bad);
            if (rc == TERN_ECORRUPT && log->clean_open && i == log->nsegs - 1 &&
                !(r->have_ckpt && s->base < r->ckpt.seg_base)) {
                trusted = false; /* a marker does not excuse a damaged tail: scan it */
            } else if (rc == TERN_ECORRUPT) {
                return corrupt(r, s, bad, why);
            } else if (rc < 0) {
                return rc;
            }
        }
        if (!trusted) {
            bool torn = false;
            int rc = recover_scan(r, i, min_base, &torn);
            if (rc < 0)
                return rc;
            if (torn) {
                rc = drop_tail_segments(log, i + 1);
                if (rc < 0)
                    return rc;
            }
        }
        /* a scanned segment may hold bytes that sit only in the page cache */
        s->synced_size = trusted ? s->size : 0;
        seg_set_created(s, clock_wall_ms());
        prev_end = s->next_offset;
    }
    return 0;
}

/* Opens the segment files named in the directory. */
static int open_segments(struct log *log)
{
    int64_t *bases = NULL;
    int n = list_segments(log->dir, &bases);
    int rc = n < 0 ? n : 0;
    for (int i = 0; i < n && rc == 0; i++) {
        struct seg *s;
        rc = seg_open(log->dir, bases[i], log->cfg.index_interval_bytes, &s);
        if (rc == 0)
            segs_push(log, s);
    }
    free(bases);
    return rc;
}

/* Removes the clean-shutdown marker; returns 1 when it was there, 0 if not, or -errno. */
static int take_clean_marker(struct log *log)
{
    char *p = file_join(log->dir, CLEAN_MARKER);
    int rc = file_unlink(p);
    free(p);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    rc = file_sync_dir(log->dir);
    return rc < 0 ? rc : 1;
}

/* Settles offsets after recovery, creates a first segment when needed and makes it all
 * durable with a fresh checkpoint. */
static int recover_finish(struct recovery *r)
{
    struct log *log = r->log;
    int64_t start = r->have_ckpt ? r->ckpt.start : 0;
    if (log->nsegs > 0 && log->segs[0]->base > start)
        start = log->segs[0]->base;
    int64_t end = log->nsegs ? active(log)->next_offset : start;
    if (end < start)
        end = start;
    if (r->have_ckpt && end < r->ckpt.durable_end) {
        if (r->errbuf)
            snprintf(r->errbuf, r->errlen,
                     "checkpoint says offsets below %" PRId64 " are durable but the log in %s "
                     "ends at %" PRId64,
                     r->ckpt.durable_end, log->dir, end);
        return TERN_ECORRUPT;
    }
    /* a new log (nothing to recover): the first pool job makes it durable, see the top */
    bool fresh = log->nsegs == 0 && !r->have_ckpt && log->loop;
    if (log->nsegs == 0) {
        struct seg *s = NULL;
        int rc = seg_create(log->dir, end, log->cfg.index_interval_bytes, clock_wall_ms(), &s);
        if (rc == 0 && !fresh)
            rc = file_sync_dir(log->dir);
        if (rc < 0) {
            if (s)
                seg_unref(s);
            return rc;
        }
        segs_push(log, s);
    }
    log->start_offset = start;
    log->end_offset = end;
    log->ckpt = r->have_ckpt ? r->ckpt : (struct ckpt){0};
    if (fresh) {
        /* the first job writes the checkpoint too (none written yet: ckpt_ms is 0) */
        log->dir_dirty = true;
        return 0;
    }
    log->force_ckpt = true;
    return log_sync(log);
}

static int log_recover(struct log *log, char *errbuf, size_t errlen)
{
    struct recovery r = {.log = log, .errbuf = errbuf, .errlen = errlen};
    int rc = file_mkdir_nosync(log->dir);
    if (rc < 0)
        return rc;
    bool created = rc == 1;
    log->parent_dirty = created; /* the next job (this function's log_sync at the latest) */
    char *cp = file_join(log->dir, "checkpoint");
    log->ckpt_fd = file_open(cp, O_RDWR | O_CREAT, 0644);
    free(cp);
    if (log->ckpt_fd < 0)
        return log->ckpt_fd;
    if (created)
        return recover_finish(&r); /* an empty directory: nothing to read or recover */
    rc = ckpt_read(log->ckpt_fd, &r.ckpt);
    if (rc < 0)
        return rc;
    r.have_ckpt = rc == 1;
    rc = take_clean_marker(log);
    if (rc < 0)
        return rc;
    log->clean_open = rc == 1;
    rc = seg_remove_temps(log->dir); /* an interrupted compaction's output */
    if (rc > 0)
        TLOG_INFO("store", "event=compaction_leftovers_removed log=%s files=%d", log_name(log), rc);
    if (rc >= 0)
        rc = open_segments(log);
    if (rc == 0)
        rc = recover_segments(&r);
    if (rc == 0)
        rc = recover_finish(&r);
    if (rc == 0)
        TLOG_INFO("store",
                  "event=log_recovered log=%s clean=%s start=%" PRId64 " end=%" PRId64
                  " segments=%d scanned_bytes=%" PRIu64,
                  log_name(log), log->clean_open ? "true" : "false", log->start_offset,
                  log->end_offset, log->nsegs, r.scanned);
    return rc;
}

static void log_free(struct log *log)
{
    gap_free(log);
    for (int i = 0; i < log->nsegs; i++)
        seg_unref(log->segs[i]);
    if (log->ckpt_fd >= 0)
        file_close(log->ckpt_fd);
    free(log->segs);
    free(log->waiters);
    free(log->dir);
    free(log);
}

int log_open(uv_loop_t *loop, const char *dir, const struct log_config *cfg, struct log **out,
             char *errbuf, size_t errlen)
{
    struct log *log = tern_xcalloc(1, sizeof(*log));
    log->loop = loop;
    log->dir = tern_xstrdup(dir);
    log->ckpt_fd = -1;
    if (cfg)
        log->cfg = *cfg;
    else
        log_config_default(&log->cfg);
    if (errbuf && errlen)
        errbuf[0] = '\0';
    int rc = log_recover(log, errbuf, errlen);
    if (rc < 0) {
        if (errbuf && errlen && !errbuf[0])
            snprintf(errbuf, errlen, "%s: %s", dir, tern_strerror(rc));
        log->err = rc;
        log->nwaiters = 0;
        log_free(log);
        return rc;
    }
    *out = log;
    return 0;
}

/* ---- close ----------------------------------------------------------------------------- */

void log_finish_close(struct log *log)
{
    if (!log->err && !log->discard) {
        log->force_ckpt = true;
        log_sync(log);
    }
    if (!log->err && !log->discard) { /* log_sync may have failed the log */
        char *p = file_join(log->dir, CLEAN_MARKER);
        int fd = file_open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        free(p);
        int rc = fd < 0 ? fd : file_close(fd);
        if (rc == 0)
            rc = file_sync_dir(log->dir);
        if (rc < 0)
            TLOG_ERRNO("store", rc, "event=clean_marker_failed log=%s", log_name(log));
    }
    waiters_fire(log, TERN_ECLOSED);
    log_close_cb cb = log->close_cb;
    void *arg = log->close_arg;
    log_free(log);
    if (cb)
        cb(arg);
}

void log_discard(struct log *log, log_close_cb cb, void *arg)
{
    log->discard = true;
    log_close(log, cb, arg);
}

void log_close(struct log *log, log_close_cb cb, void *arg)
{
    log->close_cb = cb;
    log->close_arg = arg;
    log->closing = true;
    if (log->cjob)
        log_compact_cancel(log->cjob); /* its completion finishes the close */
    else if (!log->job)
        log_finish_close(log);
}

/* ---- append ---------------------------------------------------------------------------- */

static bool should_roll(const struct log *log, size_t len, int64_t now_ms, int64_t last)
{
    const struct seg *s = active(log);
    if (s->size == 0)
        return false;
    return s->size + len > log->cfg.segment_bytes || s->size + len > UINT32_MAX ||
           now_ms - s->created_ms >= log->cfg.segment_ms || last - s->base > (int64_t)UINT32_MAX;
}

static int log_roll(struct log *log, int64_t now_ms)
{
    struct seg *s;
    int rc = seg_create(log->dir, log->end_offset, log->cfg.index_interval_bytes, now_ms, &s);
    if (rc < 0)
        return rc;
    segs_push(log, s);
    rc = dir_changed(log, true);
    if (rc < 0)
        return rc;
    TLOG_DEBUG("store", "event=segment_roll log=%s base=%" PRId64, log_name(log), s->base);
    return 0;
}

static int append(struct log *log, void *batch, size_t size, int64_t now_ms,
                  struct log_append_info *info, bool check_crc)
{
    struct batch_hdr h;
    if (log->err)
        return TERN_EREADONLY;
    if (log->closing)
        return TERN_ECLOSED;
    int64_t n = batch_parse(batch, size, log->cfg.max_batch_bytes, &h);
    if (n == TERN_ETOOBIG)
        return TERN_ETOOBIG;
    if (n < 0 || (size_t)n != size)
        return TERN_EPROTO;
    if (check_crc && batch_check_crc(batch, &h) < 0)
        return TERN_ECORRUPT;
    h.base_offset = log->end_offset;
    if (should_roll(log, size, now_ms, batch_last_offset(&h))) {
        int rc = log_roll(log, now_ms);
        if (rc < 0) {
            log_fail(log, rc, "roll");
            return rc;
        }
    }
    batch_set_base_offset(batch, h.base_offset);
    int rc = seg_append(active(log), batch, size, &h);
    if (rc < 0) {
        log_fail(log, rc, "write");
        return rc;
    }
    log->end_offset = batch_last_offset(&h) + 1;
    log->appended += size;
    if (info)
        *info = (struct log_append_info){h.base_offset, batch_last_offset(&h), h.max_timestamp};
    if (log->force_ckpt || (log->cfg.fsync_mode == LOG_FSYNC_ALWAYS && log->nwaiters))
        job_submit(log);
    return 0;
}

int log_append(struct log *log, void *batch, size_t size, int64_t now_ms,
               struct log_append_info *info)
{
    return append(log, batch, size, now_ms, info, true);
}

int log_append_checked(struct log *log, void *batch, size_t size, int64_t now_ms,
                       struct log_append_info *info)
{
    return append(log, batch, size, now_ms, info, false);
}

/* ---- read ------------------------------------------------------------------------------ */

/* Index of the segment that holds offset (or the first one after a gap), or -1. */
static int seg_for(const struct log *log, int64_t offset)
{
    int lo = 0, hi = log->nsegs - 1, ans = 0;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (log->segs[mid]->base <= offset) {
            ans = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    while (ans < log->nsegs && log->segs[ans]->next_offset <= offset)
        ans++;
    return ans < log->nsegs ? ans : -1;
}

int log_read(struct log *log, int64_t offset, size_t max_bytes, int64_t limit,
             struct log_slice *out)
{
    memset(out, 0, sizeof(*out));
    out->fd = -1;
    if (limit > log->end_offset)
        limit = log->end_offset;
    if (offset < log->start_offset || offset > limit)
        return TERN_ERANGE;
    out->base_offset = out->next_offset = offset;
    if (offset == limit)
        return 0;
    int i = seg_for(log, offset);
    if (i < 0)
        return 0;
    struct seg *s = log->segs[i];
    struct batch_hdr h;
    uint64_t pos, end;
    int64_t next;
    int rc = seg_lookup(s, offset, &pos, &h);
    if (rc == TERN_ERANGE)
        return 0;
    if (rc < 0)
        return rc;
    if (h.base_offset >= limit)
        return 0;
    uint64_t max_end = max_bytes > s->size - pos ? s->size : pos + max_bytes;
    rc = seg_extent(s, pos, max_end, limit, &end, &next);
    if (rc < 0)
        return rc == TERN_ERANGE ? 0 : rc;
    seg_ref(s);
    *out = (struct log_slice){.fd = s->fd,
                              .pos = (int64_t)pos,
                              .len = (size_t)(end - pos),
                              .base_offset = h.base_offset,
                              .next_offset = next,
                              .seg = s};
    return 0;
}

void log_slice_release(struct log_slice *s)
{
    if (s->seg)
        seg_unref(s->seg);
    s->seg = NULL;
    s->fd = -1;
}

int log_slice_read(const struct log_slice *s, void *dst)
{
    ssize_t n = file_pread_all(s->fd, dst, s->len, (off_t)s->pos);
    return n < 0 ? (int)n : (size_t)n == s->len ? 0 : TERN_ECORRUPT;
}

int log_find_time(struct log *log, int64_t ts, int64_t *offset_out)
{
    for (int i = 0; i < log->nsegs; i++) {
        int rc = seg_find_time(log->segs[i], ts, offset_out);
        if (rc != TERN_ERANGE) {
            if (rc == 0 && *offset_out < log->start_offset)
                *offset_out = log->start_offset;
            return rc;
        }
    }
    return TERN_ERANGE;
}

/* ---- deletion -------------------------------------------------------------------------- */

/* Writes checkpoint c now (on the loop thread) and adopts it; a failure fails the log. */
static int ckpt_commit(struct log *log, const struct ckpt *c)
{
    int rc = ckpt_write(log->ckpt_fd, c);
    if (rc < 0) {
        log_fail(log, rc, "checkpoint");
        return rc;
    }
    log->ckpt = *c;
    return 0;
}

/* Makes the start offset durable: with a loop by the next fsync job's checkpoint, without one
 * with a checkpoint written now. */
static int log_persist_start(struct log *log)
{
    if (log->err)
        return log->err;
    if (log->job || log->loop) {
        log->force_ckpt = true; /* the next job writes it; the start only ever moves up */
        job_start(log, false);
        return 0;
    }
    struct ckpt c = log->ckpt; /* the same durability claim, with the new start */
    c.seq++;
    c.start = log->start_offset;
    return ckpt_commit(log, &c);
}

/* Deletes the segments wholly below the start offset (never the active one), unless a
 * compaction pass holds them: its completion calls this again. */
int log_drop_below_start(struct log *log)
{
    if (log->cjob)
        return 0;
    int n = 0;
    while (n < log->nsegs - 1 && log->segs[n]->next_offset <= log->start_offset)
        n++;
    return n > 0 ? segs_drop_front(log, n) : 0;
}

int log_delete_below(struct log *log, int64_t offset)
{
    if (offset > log->end_offset || offset < 0)
        return TERN_ERANGE;
    if (offset <= log->start_offset)
        return 0;
    log->start_offset = offset;
    int rc = log_persist_start(log);
    if (rc == 0)
        rc = log_drop_below_start(log);
    return rc;
}

int log_retain(struct log *log, int64_t now_ms)
{
    const struct log_config *c = &log->cfg;
    if (log->cjob)
        return 0; /* the pass holds the oldest segments; the next tick retries */
    uint64_t total = log_size_bytes(log);
    int n = 0;
    while (n < log->nsegs - 1) {
        const struct seg *s = log->segs[n];
        bool old = c->retention_ms >= 0 && s->max_ts >= 0 && now_ms - s->max_ts > c->retention_ms;
        bool big = c->retention_bytes >= 0 && total - s->size >= (uint64_t)c->retention_bytes;
        if (!old && !big)
            break;
        total -= s->size;
        n++;
    }
    if (n == 0)
        return 0;
    int64_t start = log->segs[n]->base;
    if (start > log->start_offset)
        log->start_offset = start;
    int rc = log_persist_start(log);
    if (rc == 0)
        rc = segs_drop_front(log, n);
    TLOG_INFO("store", "event=retention log=%s deleted_segments=%d start=%" PRId64, log_name(log),
              n, log->start_offset);
    return rc < 0 ? rc : n;
}

int log_truncate(struct log *log, int64_t offset)
{
    if (log->err)
        return log->err;
    if (log->job || log->cjob)
        return -EBUSY;
    if (offset >= log->end_offset)
        return 0;
    if (offset < log->start_offset)
        offset = log->start_offset;
    int i = seg_for(log, offset);
    TERN_ASSERT(i >= 0);
    struct seg *s = log->segs[i];
    struct batch_hdr h;
    uint64_t pos = s->size;
    int rc = seg_lookup(s, offset, &pos, &h);
    if (rc < 0 && rc != TERN_ERANGE)
        return rc;
    int64_t new_end = rc == 0 ? h.base_offset : s->next_offset;
    /* drop later segments first, newest first, so a crash leaves a prefix */
    while (log->nsegs > i + 1) {
        struct seg *t = log->segs[--log->nsegs];
        seg_remove(t);
        seg_unref(t);
    }
    rc = seg_truncate(s, pos, new_end);
    if (rc == 0)
        rc = file_datasync(s->fd);
    if (rc == 0)
        rc = file_sync_dir(log->dir);
    if (rc < 0) {
        log_fail(log, rc, "truncate");
        return rc;
    }
    log->end_offset = new_end;
    if (log->durable_offset > new_end)
        log->durable_offset = new_end;
    if (log->cleaned_end > new_end)
        log->cleaned_end = new_end;
    struct ckpt c = ckpt_now(log, log->durable_offset, log->ckpt.seq + 1);
    return ckpt_commit(log, &c);
}

void log_tick(struct log *log, int64_t now_ms)
{
    if (log->err || log->closing || log->job || !log->loop)
        return;
    const struct log_config *c = &log->cfg;
    bool dirty = log->durable_offset < log->end_offset;
    bool want = log->force_ckpt;
    if (dirty && c->fsync_mode == LOG_FSYNC_INTERVAL)
        want = want || now_ms - log->sync_ms >= (int64_t)c->fsync_interval_ms;
    else if (dirty && c->fsync_mode == LOG_FSYNC_ALWAYS)
        want = want || now_ms - log->sync_ms >= (int64_t)c->checkpoint_interval_ms;
    if (log->ckpt.durable_end < log->durable_offset &&
        now_ms - log->ckpt_ms >= (int64_t)c->checkpoint_interval_ms)
        want = true;
    if (want)
        job_submit(log);
}

/* ---- accessors ------------------------------------------------------------------------- */

int64_t log_start_offset(const struct log *log)
{
    return log->start_offset;
}

int64_t log_end_offset(const struct log *log)
{
    return log->end_offset;
}

int64_t log_durable_offset(const struct log *log)
{
    return log->durable_offset;
}

uint64_t log_fsync_overlaps(const struct log *log)
{
    return log->overlaps;
}

int log_error(const struct log *log)
{
    return log->err;
}

const char *log_dir(const struct log *log)
{
    return log->dir;
}

uint64_t log_size_bytes(const struct log *log)
{
    uint64_t n = 0;
    for (int i = 0; i < log->nsegs; i++)
        n += log->segs[i]->size;
    return n;
}

int log_segment_count(const struct log *log)
{
    return log->nsegs;
}

bool log_was_clean(const struct log *log)
{
    return log->clean_open;
}

void log_set_config(struct log *log, const struct log_config *cfg)
{
    log->cfg = *cfg;
}

const struct log_config *log_get_config(const struct log *log)
{
    return &log->cfg;
}
