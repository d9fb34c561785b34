/*
 * log.h - a durable, append-only log of RecordBatch v2 batches with 64-bit offsets.
 *
 * Every queue, stream and topic partition in tern is a log. A log is a directory of segments
 * (store/seg.h) plus a checkpoint file and, after a clean close, a clean-shutdown marker; the
 * byte layout is in docs/STORAGE.md and at the top of log.c and seg.c.
 *
 * Threading: a log is owned by the thread running its uv loop. fdatasync runs on the libuv
 * thread pool (group commit: every append made while one fsync runs shares the next one) and
 * the result comes back to the loop. With loop == NULL the log is synchronous: nothing is
 * fsynced until log_sync() is called (tools, tests, fuzzing).
 *
 * Offsets: log_start_offset() <= offsets < log_end_offset(). log_durable_offset() is the end
 * of what an fsync has covered; with fsync mode ALWAYS, acknowledge only below it.
 */
#ifndef TERN_LOG_H
#define TERN_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "store/batch.h"

enum log_fsync_mode {
    LOG_FSYNC_ALWAYS,   /* acknowledge after the fsync covering the data */
    LOG_FSYNC_INTERVAL, /* fsync every fsync_interval_ms; acknowledge at once */
    LOG_FSYNC_NEVER,    /* fsync only at segment roll and close; acknowledge at once */
};

struct log_config {
    uint64_t segment_bytes;          /* roll when the active segment would exceed this */
    int64_t segment_ms;              /* roll when the active segment is older than this */
    uint32_t index_interval_bytes;   /* bytes between sparse index entries */
    uint32_t max_batch_bytes;        /* largest batch accepted */
    enum log_fsync_mode fsync_mode;
    uint32_t fsync_interval_ms;      /* for LOG_FSYNC_INTERVAL */
    uint32_t checkpoint_interval_ms; /* how often the recovery checkpoint is made durable */
    int64_t retention_ms;            /* -1: keep forever */
    int64_t retention_bytes;         /* -1: no size limit */
    uint32_t sync_gap_ms;            /* mode ALWAYS: least time between the starts of two
                                        fsync jobs of this log (0: none). Fewer, larger fsyncs:
                                        less kernel work competing with the loop at a cost of
                                        up to this much added confirm latency */
    uint32_t sync_gap_bytes;         /* ...unless this many bytes were appended since the last
                                        fsync started: then it starts at once */
    uint64_t cache_bytes;            /* page cache kept for the newest bytes of the log: older
                                        bytes are dropped from it once fsynced, by the fsync
                                        job (0: keep everything; see log.c) */
    bool compact;                    /* keep only the latest record of each key (log_compact) */
    int64_t delete_retention_ms;     /* how long a compacted tombstone stays readable */
    int64_t min_compaction_lag_ms;   /* records younger than this are not compacted */
};

/* Defaults: 1 GiB / 7 day segments, 4 KiB index interval, 8 MiB max batch, fsync ALWAYS,
 * checkpoint every 1000 ms, unlimited retention, no compaction (tombstones kept 1 day after
 * compaction, no compaction lag), the newest 1 GiB kept in the page cache. */
void log_config_default(struct log_config *cfg);

struct log;

/* Called on the loop thread; status 0 when the offsets waited for are durable, else the error
 * (TERN_EREADONLY, TERN_ECLOSED or -errno). */
typedef void (*log_durable_cb)(void *arg, int status);
typedef void (*log_close_cb)(void *arg);

/*
 * Opens (creating if missing) the log in dir and recovers it. loop may be NULL (synchronous).
 * On success *out owns the log. On failure returns -errno or TERN_ECORRUPT and, when errbuf is
 * not NULL, writes a reason naming the file and byte position into it.
 */
int log_open(uv_loop_t *loop, const char *dir, const struct log_config *cfg, struct log **out,
             char *errbuf, size_t errlen);

/*
 * Closes the log: waits for an fsync in flight, fsyncs what remains, writes the checkpoint and
 * the clean-shutdown marker, frees the log, then calls cb (if any). With a loop, cb runs from
 * the loop; without one, before log_close returns. Durable waiters are answered first.
 */
void log_close(struct log *log, log_close_cb cb, void *arg);

/* Closes a log that is about to be deleted, as log_close does but without the final fsync, the
 * checkpoint and the clean-shutdown marker: nothing on the loop thread waits for the disk.
 * Durable waiters get TERN_ECLOSED; a failure of an fsync still in flight is ignored. */
void log_discard(struct log *log, log_close_cb cb, void *arg);

/* Information about an appended batch. */
struct log_append_info {
    int64_t base_offset;
    int64_t last_offset;
    int64_t max_timestamp;
};

/*
 * Appends one RecordBatch v2 (size bytes at batch). Checks header and CRC, assigns the base
 * offset by patching the batch in place (the caller's buffer is modified), rolls the segment
 * when needed, and starts an fsync in mode ALWAYS. now_ms drives age-based rolling.
 * Returns 0, TERN_EPROTO (bad header), TERN_ECORRUPT (bad CRC), TERN_ETOOBIG,
 * TERN_EREADONLY (an earlier write or fsync failed), TERN_ECLOSED, or -errno of a failed write
 * (which also makes the log read-only).
 */
int log_append(struct log *log, void *batch, size_t size, int64_t now_ms,
               struct log_append_info *info);
/* As log_append, without checking the CRC: for a caller that has just checked it (a produce
 * request's batches) or computed it (batch_encode). The header is still checked. */
int log_append_checked(struct log *log, void *batch, size_t size, int64_t now_ms,
                       struct log_append_info *info);

/*
 * Calls cb once every offset below end_offset is durable (or fails). Returns 0 when cb will be
 * called later, 1 when those offsets are already acknowledgeable (cb is not called; in modes
 * INTERVAL and NEVER that is at once), or a negative error (cb is not called).
 */
int log_wait_durable(struct log *log, int64_t end_offset, log_durable_cb cb, void *arg);

/* fsyncs everything appended, on the calling thread, and answers durable waiters. Returns 0,
 * the log's error, or -EBUSY while a pool fsync is in flight. */
int log_sync(struct log *log);

/* Periodic work, called by the store's timer: the interval fsync (mode INTERVAL), an fsync of
 * unwaited appends and a checkpoint refresh every checkpoint_interval_ms. */
void log_tick(struct log *log, int64_t now_ms);

/* A contiguous run of whole batches in one segment file, for pread or sendfile. */
struct log_slice {
    int fd;
    int64_t pos;
    size_t len;
    int64_t base_offset; /* base offset of the first batch (may be below the offset asked) */
    int64_t next_offset; /* offset after the last batch in the slice */
    struct seg *seg;     /* held reference; release with log_slice_release */
};

/*
 * Finds the batches holding offsets from `offset` up to `limit` (exclusive; pass
 * log_durable_offset() or log_end_offset()), at most max_bytes but always at least the first
 * batch. Returns 0 (len 0 when offset == limit), or TERN_ERANGE when offset is below the start
 * or above limit. On success the slice holds a segment reference.
 */
int log_read(struct log *log, int64_t offset, size_t max_bytes, int64_t limit,
             struct log_slice *out);
void log_slice_release(struct log_slice *s);
/* Reads the slice's s->len bytes into dst. Returns 0, -errno, or TERN_ECORRUPT when the file
 * is shorter than the slice. */
int log_slice_read(const struct log_slice *s, void *dst);

/* The first offset whose record timestamp is >= ts, or TERN_ERANGE if none. In a compressed
 * batch, records are not read: the answer is that batch's base offset. */
int log_find_time(struct log *log, int64_t ts, int64_t *offset_out);

/* Moves the start offset up to `offset` and deletes segments wholly below it (while a
 * compaction pass runs, the deletion waits for its end). The new start and the directory
 * change become durable with the next fsync job (with a loop; at once without one); a crash
 * before that can only bring back whole segments below the start. */
int log_delete_below(struct log *log, int64_t offset);
/* Applies the configured retention.ms / retention.bytes; never deletes the active segment.
 * Returns the number of segments deleted (0 while a compaction pass runs) or a negative
 * error. */
int log_retain(struct log *log, int64_t now_ms);
/* Removes every offset >= offset (rounded down to a batch boundary) and fsyncs. Returns 0,
 * the log's error, or -EBUSY while an fsync job or a compaction pass is in flight. */
int log_truncate(struct log *log, int64_t offset);

/*
 * Compaction (cfg.compact; docs/STORAGE.md, "Compaction"). A pass covers the cleanable
 * segments: the sealed ones from the start, below the checkpoint's segment (fsynced), up to the
 * first whose newest record is younger than min_compaction_lag_ms. It maps each key to its
 * latest offset over the dirty ones (not compacted by an earlier pass of this process) and
 * rewrites every cleanable segment that loses records, keeping offsets. A tombstone goes once
 * delete_retention_ms have passed since a pass first covered its segment.
 *
 * Starts a pass when one is due (the dirty segments hold at least half of the cleanable bytes,
 * or kept tombstones have become removable) or, with force, whenever a segment is cleanable.
 * With a loop the pass runs on the thread pool and the segments are swapped on the loop when it
 * ends (readers holding a slice keep the old file); without one it runs before returning.
 * Returns 1 when a pass started (with a loop) or completed (without), 0 when none was needed or
 * compaction is off, -EBUSY while a pass is in flight, TERN_ECLOSED, or an error (a failed
 * fsync, rename or unlink makes the log read-only; a bad batch fails only the pass).
 */
int log_compact(struct log *log, int64_t now_ms, bool force);
/* True while a compaction pass is in flight. */
bool log_compacting(const struct log *log);

struct log_compact_stats {
    uint64_t passes;             /* completed passes */
    uint64_t segments_rewritten; /* segments replaced by a compacted copy */
    uint64_t records_removed;
    uint64_t bytes_removed;
    int64_t cleaned_end;         /* the last pass covered every offset below this */
    int last_error;              /* of the last pass (0: it succeeded) */
};
void log_compact_stats(const struct log *log, struct log_compact_stats *out);

int64_t log_start_offset(const struct log *log);
int64_t log_end_offset(const struct log *log);
int64_t log_durable_offset(const struct log *log);
/* fsync jobs started while another was in flight, since the log was opened. */
uint64_t log_fsync_overlaps(const struct log *log);
/* 0 while writable; the error that made the log read-only otherwise. */
int log_error(const struct log *log);
const char *log_dir(const struct log *log);
uint64_t log_size_bytes(const struct log *log);
int log_segment_count(const struct log *log);
/* Recovery result of the last open: true when the clean-shutdown marker let it skip the scan. */
bool log_was_clean(const struct log *log);
void log_set_config(struct log *log, const struct log_config *cfg);
const struct log_config *log_get_config(const struct log *log);

#endif
