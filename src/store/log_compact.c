/*
 * log_compact.c - a log's compaction passes (cfg.compact): planned on the loop, run on the
 * thread pool (store/compact.c compacts each segment, seg_replace installs it), swapped into
 * the segment list on the loop. Rules: the top of log.c and docs/STORAGE.md, "Compaction".
 */
#include "base/clock.h"
#include "base/tern.h"
#include "base/tlog.h"
#include "os/file.h"
#include "store/compact.h"
#include "store/log.h"
#include "store/log_int.h"
#include "store/seg.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* One compaction pass: planned on the loop, run on a pool thread, swapped in on the loop. */
struct compact_job {
    uv_work_t req;
    struct log *log;
    struct seg **segs;  /* referenced: the cleanable segments, ascending */
    struct seg **fresh; /* per segment: its installed replacement, or NULL */
    bool *drop_tombs;   /* per segment: its tombstones may go */
    struct compact_seg_stats *stats;
    int nsegs;
    int dirty_from; /* segments from here on feed the key map */
    int done;       /* segments compacted (and installed when changed) */
    int64_t now_ms;
    uint64_t started_ns; /* monotonic, for the log line */
    uint64_t keys;
    atomic_bool cancel;
    bool fatal; /* an fsync, unlink or rename failed: the log turns read-only */
    int rc;
};

/* The cleanable segments [0, n) and the first dirty one. */
struct compact_plan {
    int n, dirty_from;
    uint64_t bytes, dirty_bytes;
    bool tombstones_due;
};

static bool seg_cleanable(const struct log *log, const struct seg *s, int64_t now_ms)
{
    int64_t lag = log->cfg.min_compaction_lag_ms;
    /* below the checkpoint's segment: fsynced with its indexes, and trusted at open */
    if (s->base >= log->ckpt.seg_base || s->synced_size < s->size || s->index_dirty)
        return false;
    return lag <= 0 || s->max_ts < 0 || now_ms - s->max_ts >= lag;
}

static void compact_plan(const struct log *log, int64_t now_ms, struct compact_plan *p)
{
    *p = (struct compact_plan){.dirty_from = -1};
    int64_t horizon = log->cfg.delete_retention_ms;
    while (p->n < log->nsegs - 1 && seg_cleanable(log, log->segs[p->n], now_ms)) {
        const struct seg *s = log->segs[p->n];
        p->bytes += s->size;
        if (s->next_offset > log->cleaned_end) {
            if (p->dirty_from < 0)
                p->dirty_from = p->n;
            p->dirty_bytes += s->size;
        }
        if (s->tombstones && s->clean_ms > 0 && now_ms - s->clean_ms >= horizon)
            p->tombstones_due = true;
        p->n++;
    }
    if (p->dirty_from < 0)
        p->dirty_from = p->n;
}

static struct compact_job *cjob_prepare(struct log *log, const struct compact_plan *p,
                                        int64_t now_ms)
{
    struct compact_job *j = tern_xcalloc(1, sizeof(*j));
    j->log = log;
    j->nsegs = p->n;
    j->dirty_from = p->dirty_from;
    j->now_ms = now_ms;
    j->started_ns = clock_mono_ns();
    atomic_init(&j->cancel, false);
    j->segs = tern_xcalloc((size_t)p->n, sizeof(*j->segs));
    j->fresh = tern_xcalloc((size_t)p->n, sizeof(*j->fresh));
    j->drop_tombs = tern_xcalloc((size_t)p->n, sizeof(*j->drop_tombs));
    j->stats = tern_xcalloc((size_t)p->n, sizeof(*j->stats));
    for (int i = 0; i < p->n; i++) {
        struct seg *s = log->segs[i];
        seg_ref(s);
        j->segs[i] = s;
        j->drop_tombs[i] = s->clean_ms > 0 && now_ms - s->clean_ms >= log->cfg.delete_retention_ms;
    }
    return j;
}

/* Puts segment i's compacted copy in place of its files (pool thread). */
static int cjob_install(struct compact_job *j, int i)
{
    bool renamed;
    int rc = seg_replace(j->fresh[i], j->segs[i], &renamed);
    if (rc < 0) {
        j->fatal = true;
        if (!renamed) {
            seg_remove(j->fresh[i]);
            seg_unref(j->fresh[i]);
            j->fresh[i] = NULL;
        }
    }
    return rc;
}

static void cjob_run(struct compact_job *j)
{
    struct compact_map *m = compact_map_new();
    bool installed = false;
    for (int i = j->dirty_from; i < j->nsegs && j->rc == 0; i++)
        j->rc = compact_map_add(m, j->segs[i], &j->cancel);
    j->keys = compact_map_count(m);
    /* ascending: an older record goes before (or with) the tombstone that made it obsolete */
    for (int i = 0; i < j->nsegs && j->rc == 0; i++) {
        j->rc =
            compact_seg(m, j->segs[i], j->drop_tombs[i], &j->cancel, &j->fresh[i], &j->stats[i]);
        if (j->rc == 0 && j->fresh[i]) {
            j->rc = cjob_install(j, i);
            installed = true;
        }
        if (j->rc == 0)
            j->done = i + 1;
    }
    compact_map_free(m);
    if (installed) {
        /* the index renames; the data renames were made durable one by one */
        int rc = file_sync_dir(j->log->dir);
        if (rc < 0 && j->rc == 0) {
            j->rc = rc;
            j->fatal = true;
        }
    }
}

/* Replaces old by fresh in the segment list; the log's reference to old goes (readers'
 * references keep its file open). */
static void seg_swap(struct log *log, struct seg *old, struct seg *fresh)
{
    int k = 0;
    while (k < log->nsegs && log->segs[k] != old)
        k++;
    TERN_ASSERT(k < log->nsegs); /* retention and truncation wait for the pass */
    fresh->synced_size = fresh->size;
    fresh->created_ms = old->created_ms;
    fresh->clean_ms = old->clean_ms;
    fresh->loop = log->loop;
    log->segs[k] = fresh;
    old->removed = true; /* renamed over: its last close frees the old copy's page cache */
    seg_unref(old);
}

static void cjob_log(struct log *log, const struct compact_job *j, uint64_t before, uint64_t after,
                     uint64_t removed, int rewritten)
{
    if (j->rc < 0 && j->rc != -ECANCELED)
        TLOG_ERRNO("store", j->rc, "event=compaction_failed log=%s segments=%d done=%d",
                   log_name(log), j->nsegs, j->done);
    else if (j->rc == 0)
        TLOG_INFO("store",
                  "event=compaction log=%s segments=%d dirty=%d keys=%" PRIu64
                  " rewritten=%d removed_records=%" PRIu64 " bytes_before=%" PRIu64
                  " bytes_after=%" PRIu64 " cleaned_end=%" PRId64 " ms=%" PRId64,
                  log_name(log), j->nsegs, j->nsegs - j->dirty_from, j->keys, rewritten, removed,
                  before, after, log->cleaned_end,
                  (int64_t)((clock_mono_ns() - j->started_ns) / 1000000));
}

/* Swaps the pass's results in (loop thread). Returns the pass's result. */
static int cjob_complete(struct compact_job *j)
{
    struct log *log = j->log;
    uint64_t before = 0, after = 0, removed = 0;
    int rewritten = 0;
    int64_t range_end = j->nsegs > 0 ? j->segs[j->nsegs - 1]->next_offset : 0;
    log->cjob = NULL;
    for (int i = 0; i < j->nsegs; i++) {
        struct seg *s = j->segs[i];
        if (i < j->done) {
            before += s->size;
            after += j->stats[i].bytes_after;
            removed += j->stats[i].records_removed;
        }
        if (j->fresh[i]) {
            seg_swap(log, s, j->fresh[i]);
            s = j->fresh[i];
            rewritten++;
        }
        if (i < j->done) {
            if (s->clean_ms == 0)
                s->clean_ms = j->now_ms;
            s->tombstones = j->stats[i].tombstones_kept;
        }
        seg_unref(j->segs[i]);
    }
    if (j->rc == 0 && j->nsegs > 0)
        log->cleaned_end = range_end;
    log->cstats.passes += j->rc == 0;
    log->cstats.segments_rewritten += (uint64_t)rewritten;
    log->cstats.records_removed += removed;
    log->cstats.bytes_removed += before > after ? before - after : 0;
    log->cstats.last_error = j->rc;
    cjob_log(log, j, before, after, removed, rewritten);
    int rc = j->rc;
    if (rc < 0 && j->fatal)
        log_fail(log, rc, "compaction");
    free(j->segs);
    free(j->fresh);
    free(j->drop_tombs);
    free(j->stats);
    free(j);
    if (log->closing) {
        if (!log->job)
            log_finish_close(log);
        return rc;
    }
    if (!log->err)
        log_drop_below_start(log); /* deletions that waited for the pass */
    return rc;
}

void log_compact_cancel(struct compact_job *j)
{
    atomic_store(&j->cancel, true);
}

static void cjob_work_cb(uv_work_t *req)
{
    cjob_run(req->data);
}

static void cjob_after_cb(uv_work_t *req, int status)
{
    struct compact_job *j = req->data;
    if (status < 0 && j->rc == 0)
        j->rc = status;
    cjob_complete(j);
}

int log_compact(struct log *log, int64_t now_ms, bool force)
{
    if (log->err)
        return log->err;
    if (log->closing)
        return TERN_ECLOSED;
    if (!log->cfg.compact)
        return 0;
    if (log->cjob)
        return -EBUSY;
    struct compact_plan p;
    compact_plan(log, now_ms, &p);
    bool due = p.dirty_bytes > 0 && 2 * p.dirty_bytes >= p.bytes;
    if (p.n == 0 || !(force || due || p.tombstones_due))
        return 0;
    struct compact_job *j = cjob_prepare(log, &p, now_ms);
    log->cjob = j;
    j->req.data = j;
    if (!log->loop) {
        cjob_run(j);
        int rc = cjob_complete(j);
        return rc < 0 ? rc : 1;
    }
    int rc = uv_queue_work(log->loop, &j->req, cjob_work_cb, cjob_after_cb);
    if (rc < 0) {
        j->rc = rc;
        cjob_complete(j);
        return rc;
    }
    return 1;
}

bool log_compacting(const struct log *log)
{
    return log->cjob != NULL;
}

void log_compact_stats(const struct log *log, struct log_compact_stats *out)
{
    *out = log->cstats;
    out->cleaned_end = log->cleaned_end;
}
