/*
 * seg.c - a log segment: data file plus sparse offset and time indexes.
 *
 * Files, for a segment whose base offset is B (20 zero-padded digits):
 *
 *   B.log        RecordBatch v2 batches back to back (store/batch.h), exactly as received
 *                except for the broker-assigned baseOffset. Only whole batches count; a
 *                torn or bad batch ends the valid prefix.
 *   B.index      8-byte entries, little-endian: u32 (offset - B), u32 byte position of the
 *                batch starting there. One entry each time >= interval bytes were appended
 *                since the previous entry. Strictly increasing in both fields.
 *   B.timeindex  12-byte entries, little-endian: i64 timestamp, u32 (offset - B): the batch
 *                at that offset raised the segment's max timestamp to `timestamp`. Added when
 *                the max timestamp grows and >= interval bytes passed since the previous one.
 *
 * Indexes are hints: every lookup ends with a forward walk over batch headers, so a sparse or
 * short index is only slower, never wrong. They are rebuilt from the data when missing or
 * inconsistent. Rules: the data file is never modified in place (only appended to and
 * truncated at batch boundaries; compaction replaces a sealed segment's files as a whole, see
 * seg_replace); positions fit in 32 bits (segments are < 4 GiB).
 */
#include "store/seg.h"

#include "base/tern.h"
#include "os/file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define SEG_PROGRESS_BYTES (64u << 20)
#define SEG_SCAN_CHUNK (256u << 10)

static char *seg_file(const struct seg *s, const char *ext)
{
    size_t n = strlen(s->path) + strlen(ext) + 1;
    char *p = tern_xmalloc(n);
    snprintf(p, n, "%s%s", s->path, ext);
    return p;
}

static struct seg *seg_alloc(const char *dir, int64_t base, uint32_t interval, const char *suffix)
{
    struct seg *s = tern_xcalloc(1, sizeof(*s));
    size_t n = strlen(dir) + SEG_NAME_DIGITS + strlen(suffix) + 2;
    s->path = tern_xmalloc(n);
    snprintf(s->path, n, "%s/%020" PRId64 "%s", dir, base, suffix);
    s->base = base;
    s->next_offset = base;
    s->max_ts = -1;
    s->interval = interval ? interval : 1;
    s->fd = s->ifd = s->tfd = -1;
    s->refs = 1;
    return s;
}

/* The descriptors of a removed segment, closed on the pool. */
struct closing {
    uv_work_t req;
    int fds[3];
};

static void close_fds(const int fds[3])
{
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0)
            file_close(fds[i]);
}

static void closing_work(uv_work_t *req)
{
    struct closing *c = req->data;
    close_fds(c->fds);
}

static void closing_done(uv_work_t *req, int status)
{
    (void)status;
    free(req->data);
}

/* Closes s's descriptors: a removed segment's on the pool when it has a loop, else here. */
static void seg_close_files(struct seg *s)
{
    const int fds[3] = {s->fd, s->ifd, s->tfd};
    if (s->removed && s->loop) {
        struct closing *c = tern_xmalloc(sizeof(*c));
        *c = (struct closing){.fds = {fds[0], fds[1], fds[2]}};
        c->req.data = c;
        if (uv_queue_work(s->loop, &c->req, closing_work, closing_done) == 0)
            return;
        free(c);
    }
    close_fds(fds);
}

static void seg_free(struct seg *s)
{
    seg_close_files(s);
    free(s->idx);
    free(s->tidx);
    free(s->path);
    free(s);
}

static int open_ext(struct seg *s, const char *ext, int flags)
{
    char *p = seg_file(s, ext);
    int fd = file_open(p, flags, 0644);
    free(p);
    return fd;
}

static int seg_open_files(struct seg *s, int flags)
{
    s->fd = open_ext(s, ".log", O_RDWR | flags);
    if (s->fd < 0)
        return s->fd;
    s->ifd = open_ext(s, ".index", O_RDWR | O_CREAT | flags);
    if (s->ifd < 0)
        return s->ifd;
    s->tfd = open_ext(s, ".timeindex", O_RDWR | O_CREAT | flags);
    return s->tfd < 0 ? s->tfd : 0;
}

int seg_create(const char *dir, int64_t base, uint32_t interval, int64_t now_ms, struct seg **out)
{
    struct seg *s = seg_alloc(dir, base, interval, "");
    int rc = seg_open_files(s, O_CREAT | O_TRUNC);
    if (rc < 0) {
        seg_free(s);
        return rc;
    }
    s->created_ms = now_ms;
    *out = s;
    return 0;
}

int seg_create_temp(const char *dir, int64_t base, uint32_t interval, struct seg **out)
{
    struct seg *s = seg_alloc(dir, base, interval, SEG_TEMP_SUFFIX);
    int rc = seg_open_files(s, O_CREAT | O_TRUNC);
    if (rc < 0) {
        seg_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int seg_open(const char *dir, int64_t base, uint32_t interval, struct seg **out)
{
    struct seg *s = seg_alloc(dir, base, interval, "");
    int rc = seg_open_files(s, 0);
    int64_t size = rc < 0 ? rc : file_size(s->fd);
    if (size < 0) {
        seg_free(s);
        return (int)size;
    }
    s->size = (uint64_t)size;
    *out = s;
    return 0;
}

/* ---- in-memory index ----------------------------------------------------------------- */

static void put_u32le(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void idx_push(struct seg *s, uint32_t rel, uint32_t pos)
{
    if (s->nidx == s->capidx) {
        s->capidx = s->capidx ? s->capidx * 2 : 64;
        s->idx = tern_xrealloc(s->idx, s->capidx * sizeof(*s->idx));
    }
    s->idx[s->nidx++] = (struct seg_index_entry){rel, pos};
}

static void tidx_push(struct seg *s, int64_t ts, uint32_t rel)
{
    if (s->ntidx == s->captidx) {
        s->captidx = s->captidx ? s->captidx * 2 : 64;
        s->tidx = tern_xrealloc(s->tidx, s->captidx * sizeof(*s->tidx));
    }
    s->tidx[s->ntidx++] = (struct seg_time_entry){ts, rel};
}

/* Records index entries for a batch about to be placed at pos; writes them to the index files
 * when write_files is set. */
static int seg_index_batch(struct seg *s, uint64_t pos, const struct batch_hdr *h, bool write_files)
{
    uint32_t rel = (uint32_t)(h->base_offset - s->base);
    if (pos > 0 && pos - s->last_idx_pos >= s->interval) {
        uint8_t e[SEG_INDEX_ENTRY];
        put_u32le(e, rel);
        put_u32le(e + 4, (uint32_t)pos);
        if (write_files) {
            int rc = file_pwrite_all(s->ifd, e, sizeof(e), (off_t)s->nidx * SEG_INDEX_ENTRY);
            if (rc < 0)
                return rc;
        }
        idx_push(s, rel, (uint32_t)pos);
        s->last_idx_pos = pos;
        s->index_dirty = true;
    }
    if (h->max_timestamp > s->max_ts) {
        if (s->ntidx == 0 || pos - s->last_tidx_pos >= s->interval) {
            uint8_t e[SEG_TIME_ENTRY];
            for (int i = 0; i < 8; i++)
                e[i] = (uint8_t)((uint64_t)h->max_timestamp >> (8 * i));
            put_u32le(e + 8, rel);
            if (write_files) {
                int rc = file_pwrite_all(s->tfd, e, sizeof(e), (off_t)s->ntidx * SEG_TIME_ENTRY);
                if (rc < 0)
                    return rc;
            }
            tidx_push(s, h->max_timestamp, rel);
            s->last_tidx_pos = pos;
            s->index_dirty = true;
        }
        /* without a new entry the newest one stays a lower bound of the max: still correct */
        s->max_ts = h->max_timestamp;
    }
    return 0;
}

/* Writes the whole in-memory index to both files and trims them. */
static int seg_write_index(struct seg *s)
{
    size_t n = (size_t)s->nidx * SEG_INDEX_ENTRY, m = (size_t)s->ntidx * SEG_TIME_ENTRY;
    uint8_t *buf = tern_xmalloc(n > m ? n : m);
    for (uint32_t i = 0; i < s->nidx; i++) {
        put_u32le(buf + i * SEG_INDEX_ENTRY, s->idx[i].rel);
        put_u32le(buf + i * SEG_INDEX_ENTRY + 4, s->idx[i].pos);
    }
    int rc = file_pwrite_all(s->ifd, buf, n, 0);
    if (rc == 0)
        rc = file_truncate(s->ifd, (off_t)n);
    for (uint32_t i = 0; rc == 0 && i < s->ntidx; i++) {
        for (int b = 0; b < 8; b++)
            buf[i * SEG_TIME_ENTRY + b] = (uint8_t)((uint64_t)s->tidx[i].ts >> (8 * b));
        put_u32le(buf + i * SEG_TIME_ENTRY + 8, s->tidx[i].rel);
    }
    if (rc == 0)
        rc = file_pwrite_all(s->tfd, buf, m, 0);
    if (rc == 0)
        rc = file_truncate(s->tfd, (off_t)m);
    free(buf);
    s->index_dirty = true;
    return rc;
}

static void seg_reset_index(struct seg *s)
{
    s->nidx = s->ntidx = 0;
    s->last_idx_pos = s->last_tidx_pos = 0;
    s->max_ts = -1;
    s->next_offset = s->base;
}

/* ---- scanning ------------------------------------------------------------------------ */

/* A buffered forward reader over the data file. */
struct seg_reader {
    const struct seg *s;
    uint8_t *buf;
    size_t cap, len;
    uint64_t buf_pos; /* file position of buf[0] */
};

/* Makes [pos, pos+need) available in the buffer; returns a pointer or NULL at EOF/error. */
static const uint8_t *reader_get(struct seg_reader *r, uint64_t pos, size_t need, int *err)
{
    *err = 0;
    if (pos >= r->buf_pos && pos + need <= r->buf_pos + r->len)
        return r->buf + (pos - r->buf_pos);
    if (need > r->cap) {
        r->cap = need;
        r->buf = tern_xrealloc(r->buf, r->cap);
    }
    ssize_t n = file_pread_all(r->s->fd, r->buf, r->cap, (off_t)pos);
    if (n < 0) {
        *err = (int)n;
        return NULL;
    }
    r->buf_pos = pos;
    r->len = (size_t)n;
    return (size_t)n >= need ? r->buf : NULL;
}

/* Validates the batch at pos. Returns its size, 0 at a clean end of file, or a negative
 * error with *why (TERN_ECORRUPT for invalid data, -errno for I/O). */
static int64_t scan_one(struct seg_reader *r, uint64_t pos, uint64_t end, int64_t min_base,
                        bool check_crc, struct batch_hdr *h, const char **why)
{
    int err;
    if (pos == end)
        return 0;
    if (end - pos < BATCH_HEADER_SIZE) {
        *why = "partial batch header";
        return TERN_ECORRUPT;
    }
    const uint8_t *p = reader_get(r, pos, BATCH_HEADER_SIZE, &err);
    if (!p) {
        *why = "read error";
        return err ? err : TERN_ECORRUPT;
    }
    int64_t n = batch_parse(p, BATCH_HEADER_SIZE, UINT32_MAX, h);
    if (n != TERN_EAGAIN && n < 0) {
        *why = "invalid batch header";
        return TERN_ECORRUPT;
    }
    uint64_t total = (uint64_t)h->length + BATCH_LOG_OVERHEAD;
    if (total > end - pos) {
        *why = "batch extends past end of file";
        return TERN_ECORRUPT;
    }
    if (h->base_offset < min_base || batch_last_offset(h) - r->s->base > (int64_t)UINT32_MAX) {
        *why = "batch offset out of sequence";
        return TERN_ECORRUPT;
    }
    if (check_crc) {
        p = reader_get(r, pos, (size_t)total, &err);
        if (!p) {
            *why = "read error";
            return err ? err : TERN_ECORRUPT;
        }
        if (batch_check_crc(p, h) < 0) {
            *why = "CRC mismatch";
            return TERN_ECORRUPT;
        }
    }
    return (int64_t)total;
}

/* Walks batches from pos to end (rebuilding the index when rebuild is set). */
static int seg_walk(struct seg *s, uint64_t pos, uint64_t end, bool check_crc, bool rebuild,
                    struct seg_scan *res, seg_progress_fn progress, void *arg)
{
    struct seg_reader r = {.s = s, .cap = SEG_SCAN_CHUNK};
    r.buf = tern_xmalloc(r.cap);
    int64_t min_base = s->next_offset;
    uint64_t next_report = pos + SEG_PROGRESS_BYTES;
    int rc = 0;
    res->reason = NULL;
    res->last_start = pos;
    for (;;) {
        struct batch_hdr h;
        int64_t n = scan_one(&r, pos, end, min_base, check_crc, &h, &res->reason);
        if (n <= 0) {
            if (n < 0 && n != TERN_ECORRUPT)
                rc = (int)n;
            break;
        }
        res->last_start = pos;
        if (rebuild)
            seg_index_batch(s, pos, &h, false);
        else if (h.max_timestamp > s->max_ts)
            s->max_ts = h.max_timestamp;
        pos += (uint64_t)n;
        min_base = s->next_offset = batch_last_offset(&h) + 1;
        if (progress && pos >= next_report) {
            progress(arg, s, pos, end);
            next_report = pos + SEG_PROGRESS_BYTES;
        }
    }
    free(r.buf);
    res->valid_end = pos;
    res->bad_pos = res->reason ? pos : end;
    res->file_size = end;
    return rc;
}

int seg_recover(struct seg *s, int64_t min_base, struct seg_scan *r, seg_progress_fn progress,
                void *arg)
{
    int64_t fsize = file_size(s->fd);
    if (fsize < 0)
        return (int)fsize;
    seg_reset_index(s);
    s->next_offset = min_base > s->base ? min_base : s->base;
    int rc = seg_walk(s, 0, (uint64_t)fsize, true, true, r, progress, arg);
    if (rc < 0)
        return rc;
    s->size = r->valid_end;
    return seg_write_index(s);
}

/* Loads and checks the on-disk index; returns false when it must be rebuilt. */
static bool seg_load_index(struct seg *s)
{
    int64_t isz = file_size(s->ifd), tsz = file_size(s->tfd);
    if (isz < 0 || tsz < 0 || isz % SEG_INDEX_ENTRY || tsz % SEG_TIME_ENTRY)
        return false;
    size_t n = (size_t)isz, m = (size_t)tsz;
    uint8_t *buf = tern_xmalloc(n > m ? n : m);
    bool ok = file_pread_all(s->ifd, buf, n, 0) == (ssize_t)n;
    for (size_t i = 0; ok && i < n / SEG_INDEX_ENTRY; i++) {
        uint32_t rel = get_u32le(buf + i * SEG_INDEX_ENTRY), pos = get_u32le(buf + i * 8 + 4);
        if (pos == 0 || pos >= s->size ||
            (s->nidx && (rel <= s->idx[s->nidx - 1].rel || pos <= s->idx[s->nidx - 1].pos)))
            ok = false;
        else
            idx_push(s, rel, pos);
    }
    ok = ok && file_pread_all(s->tfd, buf, m, 0) == (ssize_t)m;
    for (size_t i = 0; ok && i < m / SEG_TIME_ENTRY; i++) {
        uint64_t ts = 0;
        for (int b = 7; b >= 0; b--)
            ts = ts << 8 | buf[i * SEG_TIME_ENTRY + b];
        uint32_t rel = get_u32le(buf + i * SEG_TIME_ENTRY + 8);
        if (s->ntidx && ((int64_t)ts <= s->tidx[s->ntidx - 1].ts))
            ok = false;
        else
            tidx_push(s, (int64_t)ts, rel);
    }
    free(buf);
    return ok;
}

/* Checks that an index entry really starts a batch with the recorded offset. */
static bool seg_entry_ok(const struct seg *s, const struct seg_index_entry *e)
{
    struct batch_hdr h;
    return seg_read_header(s, e->pos, &h) == 0 && h.base_offset == s->base + e->rel;
}

/* Walks from the newest index entry to the end; false when the index misses entries. */
static bool seg_walk_tail(struct seg *s, struct seg_scan *r, int *err)
{
    uint64_t from = s->nidx ? s->idx[s->nidx - 1].pos : 0;
    s->next_offset = s->base + (s->nidx ? s->idx[s->nidx - 1].rel : 0);
    s->max_ts = s->ntidx ? s->tidx[s->ntidx - 1].ts : -1;
    s->last_idx_pos = from;
    s->last_tidx_pos = s->size; /* conservative: the next time entry comes an interval later */
    *err = seg_walk(s, from, s->size, false, false, r, NULL, NULL);
    if (*err < 0 || r->reason)
        return true; /* the caller reports the damage */
    /* appends add an entry once a batch starts `interval` bytes past the previous one */
    if (r->last_start < s->size && r->last_start - from >= s->interval)
        return false;
    return !(s->ntidx == 0 && s->max_ts >= 0);
}

int seg_load(struct seg *s, const char **why, uint64_t *bad_pos)
{
    struct seg_scan r;
    int rc = 0;
    bool ok = seg_load_index(s);
    if (ok && s->nidx > 0)
        ok = seg_entry_ok(s, &s->idx[0]) && seg_entry_ok(s, &s->idx[s->nidx - 1]);
    if (ok)
        ok = seg_walk_tail(s, &r, &rc);
    if (rc < 0)
        return rc;
    if (!ok) {
        rc = seg_recover(s, s->base, &r, NULL, NULL);
        if (rc < 0)
            return rc;
    }
    if (r.reason) {
        *why = r.reason;
        *bad_pos = r.bad_pos;
        return TERN_ECORRUPT;
    }
    return 0;
}

int seg_truncate(struct seg *s, uint64_t pos, int64_t next_offset)
{
    int rc = file_truncate(s->fd, (off_t)pos);
    if (rc < 0)
        return rc;
    s->size = pos;
    if (s->synced_size > pos)
        s->synced_size = pos;
    if (s->uncached > pos)
        s->uncached = pos;
    while (s->nidx && s->idx[s->nidx - 1].pos >= pos)
        s->nidx--;
    while (s->ntidx && s->tidx[s->ntidx - 1].rel >= (uint64_t)(next_offset - s->base))
        s->ntidx--;
    s->last_idx_pos = s->nidx ? s->idx[s->nidx - 1].pos : 0;
    s->max_ts = s->ntidx ? s->tidx[s->ntidx - 1].ts : -1;
    s->next_offset = next_offset;
    return seg_write_index(s);
}

int seg_append(struct seg *s, const void *batch, size_t len, const struct batch_hdr *h)
{
    int rc = file_pwrite_all(s->fd, batch, len, (off_t)s->size);
    if (rc < 0)
        return rc;
    rc = seg_index_batch(s, s->size, h, true);
    if (rc < 0)
        return rc;
    s->size += len;
    s->next_offset = batch_last_offset(h) + 1;
    return 0;
}

int seg_read_header(const struct seg *s, uint64_t pos, struct batch_hdr *h)
{
    uint8_t buf[BATCH_HEADER_SIZE];
    if (pos + BATCH_HEADER_SIZE > s->size)
        return TERN_ECORRUPT;
    ssize_t n = file_pread_all(s->fd, buf, sizeof(buf), (off_t)pos);
    if (n < 0)
        return (int)n;
    if (n != (ssize_t)sizeof(buf))
        return TERN_ECORRUPT;
    int64_t r = batch_parse(buf, sizeof(buf), UINT32_MAX, h);
    return (r < 0 && r != TERN_EAGAIN) ? TERN_ECORRUPT : 0;
}

/* Index of the last entry with rel <= rel_target, or -1. */
static long idx_floor(const struct seg *s, uint64_t rel_target)
{
    long lo = 0, hi = (long)s->nidx - 1, ans = -1;
    while (lo <= hi) {
        long mid = lo + (hi - lo) / 2;
        if (s->idx[mid].rel <= rel_target) {
            ans = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return ans;
}

/* Index of the last entry with pos <= pos_target, or -1. */
static long idx_floor_pos(const struct seg *s, uint64_t pos_target)
{
    long lo = 0, hi = (long)s->nidx - 1, ans = -1;
    while (lo <= hi) {
        long mid = lo + (hi - lo) / 2;
        if (s->idx[mid].pos <= pos_target) {
            ans = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return ans;
}

/* Reads batch headers walking forward, SEG_WALK_CHUNK bytes per pread. */
#define SEG_WALK_CHUNK 8192

struct hdr_walk {
    const struct seg *s;
    uint64_t bpos;
    size_t blen;
    uint8_t buf[SEG_WALK_CHUNK];
};

static int walk_header(struct hdr_walk *w, uint64_t p, struct batch_hdr *h)
{
    if (p + BATCH_HEADER_SIZE > w->s->size)
        return TERN_ECORRUPT;
    if (p < w->bpos || p + BATCH_HEADER_SIZE > w->bpos + w->blen) {
        uint64_t want = w->s->size - p < SEG_WALK_CHUNK ? w->s->size - p : SEG_WALK_CHUNK;
        ssize_t n = file_pread_all(w->s->fd, w->buf, (size_t)want, (off_t)p);
        if (n < 0)
            return (int)n;
        if ((size_t)n < BATCH_HEADER_SIZE)
            return TERN_ECORRUPT;
        w->bpos = p;
        w->blen = (size_t)n;
    }
    int64_t r = batch_parse(w->buf + (p - w->bpos), BATCH_HEADER_SIZE, UINT32_MAX, h);
    return (r < 0 && r != TERN_EAGAIN) ? TERN_ECORRUPT : 0;
}

int seg_lookup(const struct seg *s, int64_t offset, uint64_t *pos, struct batch_hdr *h)
{
    if (offset >= s->next_offset)
        return TERN_ERANGE;
    struct hdr_walk w = {.s = s};
    uint64_t p = 0;
    if (offset > s->base) {
        long i = idx_floor(s, (uint64_t)(offset - s->base));
        /* the entry's batch starts at or below offset, so it or a later one holds offset */
        if (i >= 0)
            p = s->idx[i].pos;
    }
    while (p < s->size) {
        int rc = walk_header(&w, p, h);
        if (rc < 0)
            return rc;
        if (batch_last_offset(h) >= offset) {
            *pos = p;
            return 0;
        }
        p += (uint64_t)h->length + BATCH_LOG_OVERHEAD;
    }
    return TERN_ERANGE;
}

int seg_extent(const struct seg *s, uint64_t pos, uint64_t max_end, int64_t limit, uint64_t *end,
               int64_t *next)
{
    struct hdr_walk w = {.s = s};
    struct batch_hdr h;
    uint64_t p = pos;
    int64_t nx = -1;
    /* jump with the index to the last entry inside the window whose batch is below limit */
    long i = limit > s->base ? idx_floor(s, (uint64_t)(limit - 1 - s->base)) : -1;
    long j = idx_floor_pos(s, max_end);
    if (j < i)
        i = j;
    if (i >= 0 && s->idx[i].pos > p && s->idx[i].pos < s->size) {
        p = s->idx[i].pos;
        nx = s->base + s->idx[i].rel; /* batches are contiguous: the jumped-over ones end here */
    }
    while (p < s->size) {
        int rc = walk_header(&w, p, &h);
        if (rc < 0)
            return rc;
        uint64_t q = p + (uint64_t)h.length + BATCH_LOG_OVERHEAD;
        if (h.base_offset >= limit || (q > max_end && p > pos))
            break;
        nx = batch_last_offset(&h) + 1;
        p = q;
    }
    if (p == pos)
        return TERN_ERANGE;
    *end = p;
    *next = nx;
    return 0;
}

/* The first record of the batch at pos with timestamp >= ts (uncompressed batches); the
 * batch's base offset when its records cannot be read here (compressed). */
static int seg_record_at_time(const struct seg *s, uint64_t pos, const struct batch_hdr *h,
                              int64_t ts, int64_t *offset)
{
    *offset = h->base_offset;
    if (h->attributes & BATCH_ATTR_COMPRESSION_MASK)
        return 0;
    size_t total = (size_t)h->length + BATCH_LOG_OVERHEAD;
    uint8_t *buf = tern_xmalloc(total);
    ssize_t n = file_pread_all(s->fd, buf, total, (off_t)pos);
    struct batch_iter it;
    struct batch_record r;
    int rc = n < 0 ? (int)n : 0;
    if (rc == 0 && (size_t)n == total && batch_iter_init(&it, buf, h) == 0) {
        while (batch_iter_next(&it, &r) == 1) {
            if (r.timestamp >= ts) {
                *offset = r.offset;
                break;
            }
        }
    }
    free(buf);
    return rc;
}

int seg_find_time(const struct seg *s, int64_t ts, int64_t *offset)
{
    if (s->max_ts < ts)
        return TERN_ERANGE;
    /* start after the last time entry below ts: every batch up to it is below ts */
    uint64_t p = 0;
    for (long i = (long)s->ntidx - 1; i >= 0; i--) {
        if (s->tidx[i].ts < ts) {
            struct batch_hdr h;
            uint64_t q;
            if (seg_lookup(s, s->base + s->tidx[i].rel, &q, &h) == 0)
                p = q;
            break;
        }
    }
    while (p < s->size) {
        struct batch_hdr h;
        int rc = seg_read_header(s, p, &h);
        if (rc < 0)
            return rc;
        if (h.max_timestamp >= ts)
            return seg_record_at_time(s, p, &h, ts, offset);
        p += (uint64_t)h.length + BATCH_LOG_OVERHEAD;
    }
    return TERN_ERANGE;
}

void seg_set_created(struct seg *s, int64_t now_ms)
{
    int64_t first = s->ntidx ? s->tidx[0].ts : -1;
    s->created_ms = first > 0 && first <= now_ms ? first : now_ms;
}

int seg_sync_index(struct seg *s)
{
    int rc = file_datasync(s->ifd);
    if (rc == 0)
        rc = file_datasync(s->tfd);
    return rc;
}

void seg_ref(struct seg *s)
{
    s->refs++;
}

void seg_unref(struct seg *s)
{
    TERN_ASSERT(s->refs > 0);
    if (--s->refs == 0)
        seg_free(s);
}

/* Removes one of s's files; a missing one is not an error. */
static int unlink_ext(const struct seg *s, const char *ext)
{
    char *p = seg_file(s, ext);
    int rc = file_unlink(p);
    free(p);
    return rc == -ENOENT ? 0 : rc;
}

int seg_remove(struct seg *s)
{
    static const char *const exts[] = {".log", ".index", ".timeindex"};
    int rc = 0;
    s->removed = true;
    for (unsigned i = 0; i < TERN_ARRAY_LEN(exts); i++) {
        int r = unlink_ext(s, exts[i]);
        if (r < 0 && rc == 0)
            rc = r;
    }
    return rc;
}

/* The directory part of a segment path. */
static char *seg_dir(const struct seg *s)
{
    char *d = tern_xstrdup(s->path);
    char *slash = strrchr(d, '/');
    if (slash)
        *slash = '\0';
    return d;
}

static int rename_ext(const struct seg *from, const struct seg *to, const char *ext)
{
    char *a = seg_file(from, ext), *b = seg_file(to, ext);
    int rc = file_rename(a, b);
    free(a);
    free(b);
    return rc;
}

int seg_replace(struct seg *fresh, const struct seg *old, bool *renamed)
{
    *renamed = false;
    char *dir = seg_dir(old);
    struct seg tmp = {.path = fresh->path}; /* the temporary names, for the index renames */
    int rc = file_datasync(fresh->fd);
    if (rc == 0)
        rc = seg_sync_index(fresh);
    /* without this, a crash could pair the new data with the old (wrong) index files */
    if (rc == 0)
        rc = unlink_ext(old, ".index");
    if (rc == 0)
        rc = unlink_ext(old, ".timeindex");
    if (rc == 0)
        rc = file_sync_dir(dir);
    if (rc == 0)
        rc = rename_ext(fresh, old, ".log");
    if (rc == 0) {
        *renamed = true;
        fresh->path = tern_xstrdup(old->path);
        fresh->index_dirty = false;
        rc = file_sync_dir(dir);
    }
    if (*renamed) {
        /* index files are hints: a failed or undurable rename only costs a rebuild at open */
        int r = rename_ext(&tmp, fresh, ".index");
        if (r == 0)
            r = rename_ext(&tmp, fresh, ".timeindex");
        if (rc == 0)
            rc = r;
        free(tmp.path);
    }
    free(dir);
    return rc;
}

/* True for "<20 digits>.cleaned.log", ".cleaned.index" or ".cleaned.timeindex". */
static bool is_temp_name(const char *name)
{
    static const char *const exts[] = {".log", ".index", ".timeindex"};
    for (int i = 0; i < SEG_NAME_DIGITS; i++)
        if (name[i] < '0' || name[i] > '9')
            return false;
    const char *rest = name + SEG_NAME_DIGITS;
    size_t n = strlen(SEG_TEMP_SUFFIX);
    if (strncmp(rest, SEG_TEMP_SUFFIX, n) != 0)
        return false;
    for (unsigned i = 0; i < TERN_ARRAY_LEN(exts); i++)
        if (strcmp(rest + n, exts[i]) == 0)
            return true;
    return false;
}

int seg_remove_temps(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    int removed = 0, rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && rc == 0) {
        if (strlen(e->d_name) < SEG_NAME_DIGITS || !is_temp_name(e->d_name))
            continue;
        char *p = file_join(dir, e->d_name);
        rc = file_unlink(p);
        free(p);
        removed++;
    }
    closedir(d);
    if (rc == 0 && removed > 0)
        rc = file_sync_dir(dir);
    return rc < 0 ? rc : removed;
}

int seg_parse_name(const char *name, int64_t *base)
{
    if (strlen(name) != SEG_NAME_DIGITS + 4 || strcmp(name + SEG_NAME_DIGITS, ".log") != 0)
        return -EINVAL;
    int64_t v = 0;
    for (int i = 0; i < SEG_NAME_DIGITS; i++) {
        if (name[i] < '0' || name[i] > '9' || v > (INT64_MAX - (name[i] - '0')) / 10)
            return -EINVAL;
        v = v * 10 + (name[i] - '0');
    }
    *base = v;
    return 0;
}
