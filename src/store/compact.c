/*
 * compact.c - log compaction: the key map and the rewrite of one sealed segment (compact.h).
 *
 * The rewrite streams the old segment's batches through a filter into a sink. The sink creates
 * the temporary segment only at the first batch that changes (then copies the unchanged prefix
 * into it), so a segment with nothing to remove costs a read and no write. Emptied batches wait
 * in a run until a batch that cannot join it arrives, then go out as one empty batch.
 */
#include "store/compact.h"

#include "base/buf.h"
#include "base/strmap.h"
#include "base/tern.h"
#include "os/file.h"
#include "store/compress.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define READ_CHUNK (1u << 20)
#define BATCH_CRC_POS 17 /* the CRC field's position in a batch header (batch.h) */

struct compact_map {
    struct strmap keys; /* key -> (void *)(offset + 1) */
};

struct compact_map *compact_map_new(void)
{
    struct compact_map *m = tern_xcalloc(1, sizeof(*m));
    strmap_init(&m->keys);
    return m;
}

void compact_map_free(struct compact_map *m)
{
    if (!m)
        return;
    strmap_fini(&m->keys);
    free(m);
}

size_t compact_map_count(const struct compact_map *m)
{
    return m->keys.n;
}

int64_t compact_map_get(const struct compact_map *m, const void *key, size_t len)
{
    void *v = strmap_get(&m->keys, key, len);
    return v ? (int64_t)(intptr_t)v - 1 : -1;
}

static bool cancelled(const atomic_bool *cancel)
{
    return cancel && atomic_load_explicit(cancel, memory_order_relaxed);
}

/* ---- reading ---------------------------------------------------------------------------- */

/* A forward reader of whole batches over a sealed segment's data file. */
struct reader {
    const struct seg *s;
    uint8_t *buf;
    size_t cap, len;
    uint64_t at; /* file position of buf[0] */
};

static int reader_fill(struct reader *r, uint64_t pos, size_t need)
{
    size_t want = need > READ_CHUNK ? need : READ_CHUNK;
    if (want > r->cap) {
        r->buf = tern_xrealloc(r->buf, want);
        r->cap = want;
    }
    ssize_t n = file_pread_all(r->s->fd, r->buf, want, (off_t)pos);
    if (n < 0)
        return (int)n;
    r->at = pos;
    r->len = (size_t)n;
    return (size_t)n < need ? TERN_ECORRUPT : 0;
}

/* The batch at pos: returns its size with *p (valid until the next call) and *h, 0 at the end of
 * the segment, TERN_ECORRUPT for a torn or bad batch, or -errno. The CRC is not checked. */
static int64_t reader_batch(struct reader *r, uint64_t pos, const uint8_t **p, struct batch_hdr *h)
{
    if (pos >= r->s->size)
        return 0;
    size_t need = BATCH_HEADER_SIZE;
    for (;;) {
        if (pos < r->at || pos + need > r->at + r->len) {
            int rc = reader_fill(r, pos, need);
            if (rc < 0)
                return rc;
        }
        size_t avail = (size_t)(r->at + r->len - pos);
        int64_t total = batch_parse(r->buf + (pos - r->at), avail, UINT32_MAX, h);
        if (total > 0) {
            if (pos + (uint64_t)total > r->s->size)
                return TERN_ECORRUPT;
            *p = r->buf + (pos - r->at);
            return total;
        }
        size_t more = (size_t)h->length + BATCH_LOG_OVERHEAD;
        if (total != TERN_EAGAIN || avail < BATCH_HEADER_SIZE || more <= need)
            return TERN_ECORRUPT;
        need = more;
    }
}

/* Decompression scratch, grown on demand up to COMPACT_MAX_RECORDS_BYTES. */
struct scratch {
    uint8_t *p;
    size_t cap;
};

/* Starts iterating a data batch's records. Returns 0, or 1 when they cannot be read here (the
 * batch is then kept whole: an unknown codec, a malformed or oversized stream). */
static int records_open(struct scratch *x, struct batch_iter *it, const uint8_t *b,
                        const struct batch_hdr *h)
{
    for (;;) {
        int rc = compress_iter_init(it, b, h, x->p, x->cap);
        if (rc == 0)
            return 0;
        if (rc != TERN_ETOOBIG || x->cap >= COMPACT_MAX_RECORDS_BYTES)
            return 1;
        x->cap = x->cap ? x->cap * 2 : READ_CHUNK;
        x->p = tern_xrealloc(x->p, x->cap);
    }
}

static bool is_data(const struct batch_hdr *h)
{
    return !(h->attributes & BATCH_ATTR_CONTROL) && h->record_count > 0;
}

/* ---- the map ---------------------------------------------------------------------------- */

static void map_batch(struct compact_map *m, struct scratch *x, const uint8_t *b,
                      const struct batch_hdr *h)
{
    struct batch_iter it;
    struct batch_record rec;
    if (!is_data(h) || records_open(x, &it, b, h) != 0)
        return;
    while (batch_iter_next(&it, &rec) == 1)
        if (rec.key)
            strmap_put(&m->keys, (const char *)rec.key, (size_t)rec.key_len,
                       (void *)(intptr_t)(rec.offset + 1));
}

int compact_map_add(struct compact_map *m, const struct seg *s, const atomic_bool *cancel)
{
    struct reader r = {.s = s};
    struct scratch x = {0};
    uint64_t pos = 0;
    int64_t n;
    const uint8_t *b;
    struct batch_hdr h;
    while ((n = reader_batch(&r, pos, &b, &h)) > 0) {
        if (cancelled(cancel)) {
            n = -ECANCELED;
            break;
        }
        if (batch_check_crc(b, &h) < 0) {
            n = TERN_ECORRUPT;
            break;
        }
        map_batch(m, &x, b, &h);
        pos += (uint64_t)n;
    }
    free(r.buf);
    free(x.p);
    return (int)(n < 0 ? n : 0);
}

/* ---- the rewrite ------------------------------------------------------------------------ */

enum verdict { KEEP_WHOLE, REWRITE, EMPTIED };

/* Where compacted batches go: nowhere while they equal the old segment's, else into fresh. */
struct sink {
    const struct seg *old;
    struct seg *fresh;
};

/* One empty batch standing for a run of consecutive emptied batches. */
struct run {
    bool open;
    bool mergeable; /* no producer fields to keep */
    int n;          /* batches in the run */
    uint64_t pos;   /* old position of its first batch */
    struct batch_hdr h;
    uint8_t orig[BATCH_HEADER_SIZE]; /* a single already-empty batch, as it was */
    bool orig_valid;
};

struct ctx {
    const struct compact_map *m;
    bool drop_tombstones;
    const atomic_bool *cancel;
    struct reader r;
    struct scratch x;
    struct strmap last_of_pid; /* producer id (8 bytes) -> base offset + 1 of its last batch */
    bool have_last_of_pid;     /* last_of_pid is built (on first need: find_last_of_pid) */
    struct sink sink;
    struct run run;
    struct buf recs; /* kept records */
    struct buf out;  /* a rewritten batch (its bytes sit past len: len stays 0) */
    int32_t kept;    /* records in recs */
    struct compact_seg_stats *st;
};

/* Opens the temporary segment and copies the old segment's batches below pos into it. */
static int sink_open(struct sink *k, uint64_t pos)
{
    char *dir = tern_xstrdup(k->old->path);
    *strrchr(dir, '/') = '\0';
    int rc = seg_create_temp(dir, k->old->base, k->old->interval, &k->fresh);
    free(dir);
    struct reader r = {.s = k->old};
    uint64_t p = 0;
    while (rc == 0 && p < pos) {
        const uint8_t *b;
        struct batch_hdr h;
        int64_t n = reader_batch(&r, p, &b, &h);
        rc = n > 0 ? seg_append(k->fresh, b, (size_t)n, &h) : (n == 0 ? TERN_ECORRUPT : (int)n);
        p += n > 0 ? (uint64_t)n : 0;
    }
    free(r.buf);
    return rc;
}

static int sink_append(struct sink *k, const uint8_t *b, size_t len, const struct batch_hdr *h)
{
    if (k->fresh->size + len > UINT32_MAX)
        return TERN_ETOOBIG;
    return seg_append(k->fresh, b, len, h);
}

/* Writes a batch that replaces the old segment's batches from position pos on. */
static int sink_changed(struct sink *k, uint64_t pos, const uint8_t *b, size_t len,
                        const struct batch_hdr *h)
{
    if (!k->fresh) {
        int rc = sink_open(k, pos);
        if (rc < 0)
            return rc;
    }
    return sink_append(k, b, len, h);
}

/* Writes a batch copied as it is from the old segment. */
static int sink_same(struct sink *k, const uint8_t *b, size_t len, const struct batch_hdr *h)
{
    return k->fresh ? sink_append(k, b, len, h) : 0;
}

static int run_flush(struct ctx *c)
{
    struct run *u = &c->run;
    if (!u->open)
        return 0;
    u->open = false;
    uint8_t b[BATCH_HEADER_SIZE] = {0};
    u->h.length = BATCH_HEADER_SIZE - BATCH_LOG_OVERHEAD;
    u->h.record_count = 0;
    batch_write_header(b, &u->h);
    batch_update_crc(b, sizeof(b));
    c->st->bytes_after += sizeof(b);
    if (u->n == 1 && u->orig_valid && memcmp(b, u->orig, sizeof(b)) == 0)
        return sink_same(&c->sink, b, sizeof(b), &u->h);
    return sink_changed(&c->sink, u->pos, b, sizeof(b), &u->h);
}

/* Finds the last batch of each producer id in the segment, with a reader of its own (the walk's
 * reader holds the batch being filtered). */
static int find_last_of_pid(struct ctx *c)
{
    struct reader r = {.s = c->r.s};
    uint64_t pos = 0;
    int64_t n;
    const uint8_t *b;
    struct batch_hdr h;
    while ((n = reader_batch(&r, pos, &b, &h)) > 0) {
        if (h.producer_id >= 0)
            strmap_put(&c->last_of_pid, (const char *)&h.producer_id, sizeof(h.producer_id),
                       (void *)(intptr_t)(h.base_offset + 1));
        pos += (uint64_t)n;
    }
    free(r.buf);
    return (int)n;
}

/* Whether an emptied batch must keep its producer fields: the last batch of its producer id in
 * this segment, or a transactional one. Returns 1 or 0, or a negative error from reading the
 * segment for the map of last batches (built on the first call that needs it). */
static int keeps_producer(struct ctx *c, const struct batch_hdr *h)
{
    if (h->producer_id < 0)
        return 0;
    if (h->attributes & BATCH_ATTR_TRANSACTIONAL)
        return 1;
    if (!c->have_last_of_pid) {
        int rc = find_last_of_pid(c);
        if (rc < 0)
            return rc;
        c->have_last_of_pid = true;
    }
    void *v = strmap_get(&c->last_of_pid, (const char *)&h->producer_id, sizeof(h->producer_id));
    return v && (int64_t)(intptr_t)v - 1 == h->base_offset;
}

/* Adds an emptied batch (at old position pos, total size len) to the run. */
static int run_add(struct ctx *c, uint64_t pos, const uint8_t *b, size_t len,
                   const struct batch_hdr *h)
{
    struct run *u = &c->run;
    int keep = keeps_producer(c, h);
    if (keep < 0)
        return keep;
    bool mergeable = !keep;
    int16_t attrs = (int16_t)(h->attributes & ~BATCH_ATTR_COMPRESSION_MASK);
    int64_t last = batch_last_offset(h);
    if (u->open && (!mergeable || !u->mergeable || attrs != u->h.attributes ||
                    last - u->h.base_offset > INT32_MAX)) {
        int rc = run_flush(c);
        if (rc < 0)
            return rc;
    }
    if (u->open) {
        u->h.last_offset_delta = (int32_t)(last - u->h.base_offset);
        if (h->max_timestamp > u->h.max_timestamp)
            u->h.max_timestamp = h->max_timestamp;
        u->n++;
        return 0;
    }
    *u = (struct run){.open = true, .mergeable = mergeable, .n = 1, .pos = pos, .h = *h};
    u->h.attributes = attrs;
    if (mergeable) {
        u->h.producer_id = -1;
        u->h.producer_epoch = -1;
        u->h.base_sequence = -1;
    }
    u->orig_valid = h->record_count == 0 && len == BATCH_HEADER_SIZE;
    if (u->orig_valid)
        memcpy(u->orig, b, BATCH_HEADER_SIZE);
    return 0;
}

/* Whether record rec (not in a control batch) survives. */
static bool keep_record(const struct ctx *c, const struct batch_record *rec)
{
    if (!rec->key)
        return true;
    int64_t latest = compact_map_get(c->m, rec->key, (size_t)rec->key_len);
    if (latest > rec->offset)
        return false;
    return rec->value || !c->drop_tombstones;
}

/* Filters a data batch's records into c->recs. Returns the verdict. */
static enum verdict filter(struct ctx *c, const uint8_t *b, const struct batch_hdr *h)
{
    struct batch_iter it;
    struct batch_record rec;
    if (!is_data(h))
        return h->record_count == 0 && !(h->attributes & BATCH_ATTR_CONTROL) ? EMPTIED : KEEP_WHOLE;
    if (records_open(&c->x, &it, b, h) != 0)
        return KEEP_WHOLE;
    uint32_t kept = 0, removed = 0, tombs = 0;
    buf_clear(&c->recs);
    const uint8_t *start = it.p;
    int rc;
    while ((rc = batch_iter_next(&it, &rec)) == 1) {
        size_t n = (size_t)(it.p - start);
        if (keep_record(c, &rec)) {
            buf_put(&c->recs, start, n);
            kept++;
            tombs += rec.key && !rec.value;
        } else {
            removed++;
        }
        start = it.p;
    }
    if (rc < 0)
        return KEEP_WHOLE; /* malformed records: not ours to judge, keep them all */
    c->st->records_removed += removed;
    if (removed == 0) {
        c->st->tombstones_kept += tombs;
        return KEEP_WHOLE;
    }
    if (kept == 0) {
        c->st->batches_emptied++;
        return EMPTIED;
    }
    c->st->tombstones_kept += tombs;
    c->kept = (int32_t)kept;
    return REWRITE;
}

/* Builds the rewritten batch from h and the kept records into c->out; returns its size with
 * *nb pointing at it and *nh set to its header (as batch_parse would read it). A compressed
 * batch is first built uncompressed without a CRC: compress_batch computes the final one. */
static int64_t rewrite(struct ctx *c, const struct batch_hdr *h, const uint8_t **nb,
                       struct batch_hdr *nh)
{
    int codec = h->attributes & BATCH_ATTR_COMPRESSION_MASK;
    size_t size = BATCH_HEADER_SIZE + c->recs.len;
    if (size - BATCH_LOG_OVERHEAD > INT32_MAX)
        return TERN_ETOOBIG;
    size_t cap = size + (codec ? BATCH_HEADER_SIZE + compress_bound(codec, c->recs.len) : 0);
    buf_clear(&c->out);
    uint8_t *o = buf_reserve(&c->out, cap);
    *nh = *h;
    nh->length = (int32_t)(size - BATCH_LOG_OVERHEAD);
    nh->record_count = c->kept;
    nh->attributes = (int16_t)(h->attributes & ~BATCH_ATTR_COMPRESSION_MASK);
    batch_write_header(o, nh);
    memcpy(o + BATCH_HEADER_SIZE, c->recs.p, c->recs.len);
    if (!codec) {
        batch_update_crc(o, size);
        nh->crc = buf_get_u32(o + BATCH_CRC_POS);
        *nb = o;
        return (int64_t)size;
    }
    int64_t n = compress_batch(codec, 0, o, size, o + size, cap - size);
    if (n < 0)
        return n;
    *nb = o + size;
    nh->length = (int32_t)(n - BATCH_LOG_OVERHEAD);
    nh->attributes = h->attributes; /* the same codec again */
    nh->crc = buf_get_u32(*nb + BATCH_CRC_POS);
    return n;
}

static int emit(struct ctx *c, uint64_t pos, const uint8_t *b, size_t len,
                const struct batch_hdr *h)
{
    enum verdict v = filter(c, b, h);
    if (v == EMPTIED)
        return run_add(c, pos, b, len, h);
    int rc = run_flush(c);
    if (rc < 0)
        return rc;
    if (v == KEEP_WHOLE) {
        c->st->bytes_after += len;
        return sink_same(&c->sink, b, len, h);
    }
    const uint8_t *nb;
    struct batch_hdr nh;
    int64_t n = rewrite(c, h, &nb, &nh);
    if (n < 0)
        return (int)n;
    c->st->bytes_after += (uint64_t)n;
    return sink_changed(&c->sink, pos, nb, (size_t)n, &nh);
}

static int compact_walk(struct ctx *c)
{
    int rc = 0;
    uint64_t pos = 0;
    int64_t n = 0;
    const uint8_t *b;
    struct batch_hdr h;
    while (rc == 0 && (n = reader_batch(&c->r, pos, &b, &h)) > 0) {
        if (cancelled(c->cancel))
            return -ECANCELED;
        if (batch_check_crc(b, &h) < 0)
            return TERN_ECORRUPT;
        rc = emit(c, pos, b, (size_t)n, &h);
        pos += (uint64_t)n;
    }
    if (rc == 0 && n < 0)
        rc = (int)n;
    return rc < 0 ? rc : run_flush(c);
}

int compact_seg(const struct compact_map *m, const struct seg *old, bool drop_tombstones,
                const atomic_bool *cancel, struct seg **out, struct compact_seg_stats *st)
{
    *out = NULL;
    memset(st, 0, sizeof(*st));
    struct ctx c = {.m = m, .drop_tombstones = drop_tombstones, .cancel = cancel, .st = st};
    c.r.s = old;
    c.sink.old = old;
    strmap_init(&c.last_of_pid);
    int rc = compact_walk(&c);
    free(c.r.buf);
    free(c.x.p);
    buf_fini(&c.recs);
    buf_fini(&c.out);
    strmap_fini(&c.last_of_pid);
    if (rc < 0 && c.sink.fresh) {
        seg_remove(c.sink.fresh);
        seg_unref(c.sink.fresh);
        c.sink.fresh = NULL;
    }
    if (rc < 0)
        return rc;
    *out = c.sink.fresh;
    if (!c.sink.fresh)
        st->bytes_after = old->size;
    return 0;
}
