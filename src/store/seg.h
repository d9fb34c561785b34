/*
 * seg.h - one segment of a log: a data file of RecordBatch v2 batches and its two sparse
 * indexes. Layout in seg.c and docs/STORAGE.md.
 *
 * A segment is owned by its log on the loop thread; references (seg_ref/seg_unref) keep its
 * descriptors open for readers (sendfile) and fsync jobs after the log has removed it.
 */
#ifndef TERN_SEG_H
#define TERN_SEG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/batch.h"

struct uv_loop_s;

#define SEG_NAME_DIGITS 20
#define SEG_INDEX_ENTRY 8  /* u32 relative offset, u32 position */
#define SEG_TIME_ENTRY 12  /* i64 timestamp, u32 relative offset */
/* A compaction writes the new copy of segment B as B.cleaned.log / .index / .timeindex before
 * it replaces B's files; recovery removes leftovers (seg_remove_temps). */
#define SEG_TEMP_SUFFIX ".cleaned"

struct seg_index_entry {
    uint32_t rel;
    uint32_t pos;
};

struct seg_time_entry {
    int64_t ts;
    uint32_t rel;
};

struct seg {
    int64_t base;           /* offset in the file name: no batch in this segment is below it */
    int fd, ifd, tfd;       /* data, offset index, time index */
    uint64_t size;          /* bytes of whole batches in the data file */
    uint64_t synced_size;   /* bytes an fsync has covered (kept by the log) */
    uint64_t uncached;      /* bytes from the start dropped from the page cache, UINT64_MAX
                               for all of it (kept by the log) */
    int64_t next_offset;    /* offset after the last batch (base when empty) */
    int64_t max_ts;         /* largest batch maxTimestamp, -1 when empty */
    int64_t created_ms;     /* for age-based rolling */
    uint32_t interval;      /* index interval in bytes */
    uint64_t last_idx_pos;  /* data position of the newest offset index entry */
    uint64_t last_tidx_pos; /* data position of the newest time index entry */
    struct seg_index_entry *idx;
    uint32_t nidx, capidx;
    struct seg_time_entry *tidx;
    uint32_t ntidx, captidx;
    bool index_dirty;       /* index files hold entries not yet fsynced */
    int64_t clean_ms;       /* when a compaction pass first covered it (0: never; not persisted) */
    uint32_t tombstones;    /* tombstones the last compaction pass kept in it */
    int refs;
    char *path;             /* "<dir>/<20-digit base>" without extension */
    bool removed;           /* its data file is unlinked or replaced (seg_remove, compaction) */
    struct uv_loop_s *loop; /* the owning log's loop: a removed segment is closed on its pool */
};

/* Why a scan stopped before the end of the file. */
struct seg_scan {
    uint64_t valid_end;   /* position after the last valid batch */
    uint64_t bad_pos;     /* position of the first invalid batch (== file size if none) */
    uint64_t file_size;
    uint64_t last_start;  /* position of the last valid batch (valid_end if none) */
    const char *reason;   /* static text, NULL when the whole file was valid */
};

typedef void (*seg_progress_fn)(void *arg, const struct seg *s, uint64_t pos, uint64_t total);

/* Creates an empty segment (truncating leftovers of an un-durable earlier attempt). The caller
 * makes the new directory entries durable (file_sync_dir) before relying on them. Returns 0
 * with *out holding one reference, or -errno. */
int seg_create(const char *dir, int64_t base, uint32_t interval, int64_t now_ms,
               struct seg **out);
/* Creates an empty temporary segment for base in dir, files "<base>" SEG_TEMP_SUFFIX ".log" etc.
 * (truncating leftovers). Written with seg_append, installed with seg_replace or removed with
 * seg_remove. Returns 0 with *out holding one reference, or -errno. */
int seg_create_temp(const char *dir, int64_t base, uint32_t interval, struct seg **out);

/*
 * Installs fresh, a complete temporary segment (seg_create_temp) of old's base, in place of old's
 * files. Crash-safe order: fsync fresh's data and indexes; unlink old's index files and fsync the
 * directory; rename fresh's data file over old's and fsync the directory; rename fresh's index
 * files into place (made durable by the caller's next directory fsync). A crash at any point
 * leaves old's data or fresh's, each with its own index files or none (rebuilt at open). old's
 * descriptors keep reading the old data. *renamed tells whether the data file was renamed: from
 * then on fresh is in place (its path is old's), even if a later step fails.
 * Returns 0 or -errno.
 */
int seg_replace(struct seg *fresh, const struct seg *old, bool *renamed);

/* Removes the temporary files of an interrupted compaction from dir and fsyncs dir when it
 * removed any. Returns the number removed or -errno. */
int seg_remove_temps(const char *dir);

/* Opens an existing segment's files (index files are created when missing) without reading
 * batches. size is the data file size until seg_load or seg_recover runs. */
int seg_open(const char *dir, int64_t base, uint32_t interval, struct seg **out);

/*
 * For a segment trusted to be whole (sealed, or closed cleanly): loads the index files,
 * rebuilding them from the data when missing or inconsistent, and finds the last batch.
 * Returns 0, or TERN_ECORRUPT with *why set when the data itself is damaged (a torn or bad
 * batch where the segment should be whole); *bad_pos is its position.
 */
int seg_load(struct seg *s, const char **why, uint64_t *bad_pos);

/*
 * Recovery scan: reads every batch from the start, checking structure, offsets and CRC, and
 * rebuilds both indexes. Stops at the first invalid batch and reports it in *r; the segment's
 * size, next_offset and max_ts describe the valid prefix. progress (may be NULL) is called
 * every 64 MiB. Returns 0 or -errno for an I/O error.
 */
int seg_recover(struct seg *s, int64_t min_base, struct seg_scan *r, seg_progress_fn progress,
                void *arg);

/* Cuts the data file at pos (a batch boundary) and drops index entries at or after it. */
int seg_truncate(struct seg *s, uint64_t pos, int64_t next_offset);

/* Appends one parsed, offset-assigned batch. Returns 0 or -errno (size is then unchanged). */
int seg_append(struct seg *s, const void *batch, size_t len, const struct batch_hdr *h);

/* Reads and parses the batch header at pos. Returns 0, TERN_ECORRUPT or -errno. */
int seg_read_header(const struct seg *s, uint64_t pos, struct batch_hdr *h);

/* Position of the first batch whose last offset is >= offset. Returns 0 with *pos and *h, or
 * TERN_ERANGE when every batch is below offset. */
int seg_lookup(const struct seg *s, int64_t offset, uint64_t *pos, struct batch_hdr *h);

/* End of the run of whole batches starting at pos: at most max_end (but at least one batch),
 * stopping before the first batch whose base offset is >= limit. Sets *end and *next. */
int seg_extent(const struct seg *s, uint64_t pos, uint64_t max_end, int64_t limit,
               uint64_t *end, int64_t *next);

/* The first offset whose record timestamp is >= ts (for a compressed batch: the base offset of
 * the first batch whose maxTimestamp >= ts), or TERN_ERANGE. */
int seg_find_time(const struct seg *s, int64_t ts, int64_t *offset);

/* Sets the age of a reopened segment for time-based rolling: the first batch's timestamp when
 * it is plausible (not in the future), else now. */
void seg_set_created(struct seg *s, int64_t now_ms);

/* fsyncs the index files (at seal and close). */
int seg_sync_index(struct seg *s);

void seg_ref(struct seg *s);
/* Drops a reference; the last one closes the files and frees the segment. When the segment
 * is removed and has a loop, the closes run on the loop's thread pool: closing the last
 * descriptor of an unlinked file frees its page cache, which took 23 ms for a cached 64 MiB
 * file and 0.4 s for 1 GiB on the development VM. Call it on the loop's thread then. */
void seg_unref(struct seg *s);
/* Unlinks the segment's files (they stay readable through open references) and marks it
 * removed. */
int seg_remove(struct seg *s);

/* Parses a segment data file name "<20 digits>.log". Returns 0 with *base, or -EINVAL. */
int seg_parse_name(const char *name, int64_t *base);

#endif
