/*
 * log_int.h - what log.c and log_compact.c share: the log object and a few helpers. Private to
 * the store; everyone else uses store/log.h.
 */
#ifndef TERN_LOG_INT_H
#define TERN_LOG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "store/log.h"

struct seg;
struct sync_job;
struct gap_timer;
struct waiter;
struct compact_job;

/* A checkpoint slot's contents (layout: the top of log.c). */
struct ckpt {
    uint64_t seq;
    int64_t start;
    int64_t durable_end;
    int64_t seg_base;
    uint64_t seg_pos;
};

struct log {
    uv_loop_t *loop;
    char *dir;
    struct log_config cfg;
    struct seg **segs; /* ascending base; the last is active */
    int nsegs, capsegs;
    int64_t start_offset, end_offset, durable_offset;
    bool dir_dirty;    /* a segment was created or removed since the last job (dir_changed) */
    bool parent_dirty; /* the directory itself was created and its entry is not yet durable */
    int err;
    bool clean_open;
    bool closing;
    bool discard;         /* closing for deletion: no final fsync, no clean-shutdown marker */
    bool sync_inline;     /* log_sync is completing a job: do not finish a close there */
    bool answering;       /* waiters are being answered: their appends join the next job */
    struct sync_job *job;  /* in flight (the older one when two are) */
    struct sync_job *job2; /* a younger data job overlapping it (job_overlap_ok), or NULL */
    uint64_t overlaps;     /* jobs started as job2 */
    bool force_ckpt;      /* a roll or truncation wants a checkpoint soon */
    int ckpt_fd;
    struct ckpt ckpt; /* last durable checkpoint */
    int64_t ckpt_ms, sync_ms;
    uint64_t job_start_ns;       /* when the last data job started (sync_gap_ms) */
    uint64_t appended;           /* bytes appended since open */
    uint64_t job_start_appended; /* appended when the last data job started */
    struct gap_timer *gap;       /* waits out sync_gap_ms; NULL until first needed */
    struct waiter *waiters;
    size_t nwaiters, capwaiters;
    log_close_cb close_cb;
    void *close_arg;
    struct compact_job *cjob; /* compaction pass in flight */
    int64_t cleaned_end;      /* the last pass covered every offset below it (not persisted) */
    struct log_compact_stats cstats;
};

/* The log's directory name (the last path component). */
const char *log_name(const struct log *log);
/* Makes the log read-only with err and answers every durable waiter with it. */
void log_fail(struct log *log, int err, const char *what);
/* Ends a close once no fsync job or compaction pass is in flight. */
void log_finish_close(struct log *log);
/* Deletes the segments wholly below the start offset (unless a pass holds them). */
int log_drop_below_start(struct log *log);
/* Asks a compaction pass to stop; its completion finishes a pending close. */
void log_compact_cancel(struct compact_job *j);

#endif
