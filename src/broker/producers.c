/*
 * producers.c - idempotent-producer state of one partition (rules and snapshot layout:
 * producers.h).
 *
 * Entries live in an open-addressing hash table keyed by producer id (linear probing, load
 * factor at most 1/2, no deletion in place: producers_expire rebuilds the table). The snapshot
 * writes entries sorted by id, so equal states give equal bytes.
 */
#include "broker/producers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/crc32c.h"
#include "base/tern.h"
#include "os/file.h"

#define SNAP_MAGIC 0x54505253u /* "TPRS" */
#define SNAP_VERSION 1
#define SNAP_HEADER 20
#define SNAP_ENTRY 20 /* id, epoch, count, reserved, last timestamp */
#define SNAP_BATCH 32
#define SNAP_TRAILER 4 /* CRC-32C */

struct producers {
    struct producers_entry **slot; /* cap slots, NULL = empty */
    size_t cap;                    /* a power of two */
    size_t n;
};

static size_t slot_of(const struct producers *t, int64_t id)
{
    uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & (t->cap - 1);
}

/* The slot holding id, or the empty slot where it would go. */
static size_t probe(const struct producers *t, int64_t id)
{
    size_t i = slot_of(t, id);
    while (t->slot[i] && t->slot[i]->producer_id != id)
        i = (i + 1) & (t->cap - 1);
    return i;
}

static void rehash(struct producers *t, size_t cap)
{
    struct producers_entry **old = t->slot;
    size_t old_cap = t->cap;
    t->slot = tern_xcalloc(cap, sizeof(*t->slot));
    t->cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i])
            t->slot[probe(t, old[i]->producer_id)] = old[i];
    free(old);
}

struct producers *producers_new(void)
{
    struct producers *t = tern_xcalloc(1, sizeof(*t));
    t->cap = 16;
    t->slot = tern_xcalloc(t->cap, sizeof(*t->slot));
    return t;
}

void producers_free(struct producers *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->cap; i++)
        free(t->slot[i]);
    free(t->slot);
    free(t);
}

size_t producers_count(const struct producers *t)
{
    return t->n;
}

const struct producers_entry *producers_find(const struct producers *t, int64_t producer_id)
{
    return t->slot[probe(t, producer_id)];
}

/* The entry of id, created (epoch as given, no batches) when missing. */
static struct producers_entry *get_or_add(struct producers *t, int64_t id, int16_t epoch)
{
    size_t i = probe(t, id);
    if (t->slot[i])
        return t->slot[i];
    if (2 * (t->n + 1) > t->cap) {
        rehash(t, 2 * t->cap);
        i = probe(t, id);
    }
    struct producers_entry *e = tern_xcalloc(1, sizeof(*e));
    e->producer_id = id;
    e->epoch = epoch;
    e->last_timestamp = INT64_MIN;
    t->slot[i] = e;
    t->n++;
    return e;
}

int32_t producers_seq_add(int32_t seq, int32_t n)
{
    if (seq > INT32_MAX - n)
        return n - (INT32_MAX - seq) - 1;
    return seq + n;
}

/* next follows last (-1: nothing yet, so next must be 0). */
static bool in_sequence(int32_t last, int32_t next)
{
    return (int64_t)next == (int64_t)last + 1 || (next == 0 && last == INT32_MAX);
}

static int check_same_epoch(const struct producers_entry *e, int32_t first, int32_t last,
                            struct producers_batch *dup)
{
    for (int i = 0; i < e->n; i++) {
        if (e->batches[i].first_seq == first && e->batches[i].last_seq == last) {
            if (dup)
                *dup = e->batches[i];
            return PRODUCERS_DUPLICATE;
        }
    }
    int32_t cur = e->n ? e->batches[e->n - 1].last_seq : -1;
    return in_sequence(cur, first) ? PRODUCERS_APPEND : PRODUCERS_OUT_OF_ORDER;
}

int producers_check(const struct producers *t, int64_t producer_id, int16_t epoch, int32_t base_seq,
                    int32_t count, struct producers_batch *dup)
{
    if (producer_id < 0)
        return PRODUCERS_APPEND;
    if (epoch < 0 || base_seq < 0 || count < 1)
        return TERN_EPROTO;
    const struct producers_entry *e = producers_find(t, producer_id);
    if (!e)
        return PRODUCERS_APPEND; /* no state: any sequence (KIP-360) */
    if (epoch < e->epoch)
        return PRODUCERS_INVALID_EPOCH;
    if (epoch > e->epoch)
        return base_seq == 0 ? PRODUCERS_APPEND : PRODUCERS_OUT_OF_ORDER;
    return check_same_epoch(e, base_seq, producers_seq_add(base_seq, count - 1), dup);
}

/* Moves e to epoch; a change forgets the previous epoch's batches. */
static void set_epoch(struct producers_entry *e, int16_t epoch)
{
    if (e->epoch != epoch) {
        e->epoch = epoch;
        e->n = 0;
    }
}

void producers_record(struct producers *t, int64_t producer_id, int16_t epoch,
                      const struct producers_batch *b)
{
    if (producer_id < 0 || epoch < 0)
        return;
    struct producers_entry *e = get_or_add(t, producer_id, epoch);
    set_epoch(e, epoch);
    if (e->n == PRODUCERS_WINDOW) {
        memmove(&e->batches[0], &e->batches[1], (PRODUCERS_WINDOW - 1) * sizeof(e->batches[0]));
        e->n--;
    }
    e->batches[e->n++] = *b;
    e->last_timestamp = b->timestamp;
}

void producers_apply(struct producers *t, const struct batch_hdr *h)
{
    if (h->producer_id < 0 || h->producer_epoch < 0)
        return;
    if ((h->attributes & BATCH_ATTR_CONTROL) || h->base_sequence < 0) {
        struct producers_entry *e = get_or_add(t, h->producer_id, h->producer_epoch);
        set_epoch(e, h->producer_epoch);
        e->last_timestamp = h->max_timestamp;
        return;
    }
    struct producers_batch b = {
        .first_seq = h->base_sequence,
        .last_seq = producers_seq_add(h->base_sequence, h->last_offset_delta),
        .base_offset = h->base_offset,
        .last_offset = batch_last_offset(h),
        .timestamp = h->max_timestamp,
    };
    producers_record(t, h->producer_id, h->producer_epoch, &b);
}

int64_t producers_replay(struct producers *t, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    size_t pos = 0;
    while (pos < len) {
        struct batch_hdr h;
        int64_t n = batch_parse(p + pos, len - pos, len - pos, &h);
        if (n == TERN_EAGAIN || n == TERN_ETOOBIG) /* ETOOBIG: longer than what is left */
            break;
        if (n < 0)
            return n;
        producers_apply(t, &h);
        pos += (size_t)n;
    }
    return (int64_t)pos;
}

size_t producers_expire(struct producers *t, int64_t min_timestamp)
{
    size_t removed = 0;
    for (size_t i = 0; i < t->cap; i++) {
        if (t->slot[i] && t->slot[i]->last_timestamp < min_timestamp) {
            free(t->slot[i]);
            t->slot[i] = NULL;
            removed++;
        }
    }
    if (removed) {
        t->n -= removed;
        rehash(t, t->cap); /* probe chains may have lost links */
    }
    return removed;
}

/* ---- snapshot ------------------------------------------------------------------------------ */

static int cmp_entry(const void *a, const void *b)
{
    int64_t x = (*(const struct producers_entry *const *)a)->producer_id;
    int64_t y = (*(const struct producers_entry *const *)b)->producer_id;
    return x < y ? -1 : x > y;
}

static void save_entry(const struct producers_entry *e, struct buf *out)
{
    buf_put_u64(out, (uint64_t)e->producer_id);
    buf_put_u16(out, (uint16_t)e->epoch);
    buf_put_u8(out, (uint8_t)e->n);
    buf_put_u8(out, 0);
    buf_put_u64(out, (uint64_t)e->last_timestamp);
    for (int i = 0; i < e->n; i++) {
        const struct producers_batch *b = &e->batches[i];
        buf_put_u32(out, (uint32_t)b->first_seq);
        buf_put_u32(out, (uint32_t)b->last_seq);
        buf_put_u64(out, (uint64_t)b->base_offset);
        buf_put_u64(out, (uint64_t)b->last_offset);
        buf_put_u64(out, (uint64_t)b->timestamp);
    }
}

void producers_save(const struct producers *t, int64_t next_offset, struct buf *out)
{
    struct producers_entry **v = tern_xcalloc(t->n, sizeof(*v));
    size_t k = 0;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slot[i])
            v[k++] = t->slot[i];
    qsort(v, k, sizeof(*v), cmp_entry);
    size_t start = out->len;
    buf_put_u32(out, SNAP_MAGIC);
    buf_put_u16(out, SNAP_VERSION);
    buf_put_u16(out, 0);
    buf_put_u64(out, (uint64_t)next_offset);
    buf_put_u32(out, (uint32_t)k);
    for (size_t i = 0; i < k; i++)
        save_entry(v[i], out);
    buf_put_u32(out, crc32c(0, out->p + start, out->len - start));
    free(v);
}

/* Reads one entry at *pp (< end), advancing *pp. Returns 0 or TERN_ECORRUPT. */
static int load_entry(const uint8_t **pp, const uint8_t *end, struct producers_entry *e)
{
    const uint8_t *p = *pp;
    if (end - p < SNAP_ENTRY)
        return TERN_ECORRUPT;
    e->producer_id = (int64_t)buf_get_u64(p);
    e->epoch = (int16_t)buf_get_u16(p + 8);
    e->n = p[10];
    uint8_t reserved = p[11];
    e->last_timestamp = (int64_t)buf_get_u64(p + 12);
    p += SNAP_ENTRY;
    if (e->producer_id < 0 || e->epoch < 0 || e->n > PRODUCERS_WINDOW || reserved != 0 ||
        end - p < (ptrdiff_t)e->n * SNAP_BATCH)
        return TERN_ECORRUPT;
    for (int i = 0; i < e->n; i++, p += SNAP_BATCH) {
        struct producers_batch *b = &e->batches[i];
        b->first_seq = (int32_t)buf_get_u32(p);
        b->last_seq = (int32_t)buf_get_u32(p + 4);
        b->base_offset = (int64_t)buf_get_u64(p + 8);
        b->last_offset = (int64_t)buf_get_u64(p + 16);
        b->timestamp = (int64_t)buf_get_u64(p + 24);
        if (b->first_seq < 0 || b->last_seq < 0 || b->base_offset < 0 ||
            b->last_offset < b->base_offset)
            return TERN_ECORRUPT;
    }
    *pp = p;
    return 0;
}

/* Checks the fixed parts of a snapshot; *count gets the producer count. */
static int load_header(const uint8_t *p, size_t len, uint32_t *count, int64_t *next_offset)
{
    if (len < SNAP_HEADER + SNAP_TRAILER || buf_get_u32(p) != SNAP_MAGIC)
        return TERN_ECORRUPT;
    if (crc32c(0, p, len - SNAP_TRAILER) != buf_get_u32(p + len - SNAP_TRAILER))
        return TERN_ECORRUPT;
    if (buf_get_u16(p + 4) != SNAP_VERSION)
        return TERN_ENOTSUP;
    *next_offset = (int64_t)buf_get_u64(p + 8);
    *count = buf_get_u32(p + 16);
    if (buf_get_u16(p + 6) != 0 || *next_offset < 0 ||
        *count > (len - SNAP_HEADER - SNAP_TRAILER) / SNAP_ENTRY)
        return TERN_ECORRUPT;
    return 0;
}

int producers_load(const void *data, size_t len, struct producers **out, int64_t *next_offset)
{
    const uint8_t *p = data, *end = p + len - (len >= SNAP_TRAILER ? SNAP_TRAILER : len);
    uint32_t count;
    int64_t next;
    int rc = load_header(p, len, &count, &next);
    if (rc < 0)
        return rc;
    struct producers *t = producers_new();
    const uint8_t *q = p + SNAP_HEADER;
    int64_t prev = -1;
    for (uint32_t i = 0; i < count; i++) {
        struct producers_entry e;
        memset(&e, 0, sizeof(e));
        if ((rc = load_entry(&q, end, &e)) < 0 || e.producer_id <= prev)
            goto fail; /* ids strictly ascend: no duplicates */
        prev = e.producer_id;
        *get_or_add(t, e.producer_id, e.epoch) = e;
    }
    if (q != end)
        goto fail;
    *out = t;
    *next_offset = next;
    return 0;
fail:
    producers_free(t);
    return TERN_ECORRUPT;
}

/* ---- snapshot files ------------------------------------------------------------------------ */

#define SNAPSHOT_TMP PRODUCERS_SNAPSHOT ".tmp"
#define SNAPSHOT_MAX (256u << 20) /* a bigger file is not a snapshot tern wrote */

int producers_write_file(const void *data, size_t len, const char *dir, const char *tmp_name)
{
    char *path = file_join(dir, PRODUCERS_SNAPSHOT), *tmp = file_join(dir, tmp_name);
    int fd = file_open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0644);
    int rc = fd < 0 ? fd : file_pwrite_all(fd, data, len, 0);
    if (rc == 0)
        rc = file_datasync(fd);
    if (fd >= 0)
        file_close(fd);
    if (rc == 0)
        rc = file_rename(tmp, path);
    if (rc == 0)
        rc = file_sync_dir(dir);
    free(tmp);
    free(path);
    return rc;
}

int producers_save_file(const struct producers *t, int64_t next_offset, const char *dir)
{
    struct buf b = BUF_INIT;
    producers_save(t, next_offset, &b);
    int rc = producers_write_file(b.p, b.len, dir, SNAPSHOT_TMP);
    buf_fini(&b);
    return rc;
}

int producers_load_file(const char *dir, struct producers **out, int64_t *next_offset)
{
    char *path = file_join(dir, PRODUCERS_SNAPSHOT);
    int fd = file_open(path, O_RDONLY, 0);
    free(path);
    if (fd < 0)
        return fd;
    int64_t size = file_size(fd);
    int rc = size < 0 ? (int)size : TERN_ECORRUPT;
    if (size > 0 && (uint64_t)size <= SNAPSHOT_MAX) {
        uint8_t *data = tern_xmalloc((size_t)size);
        ssize_t got = file_pread_all(fd, data, (size_t)size, 0);
        rc = got < 0       ? (int)got
             : got != size ? TERN_ECORRUPT
                           : producers_load(data, (size_t)size, out, next_offset);
        free(data);
    }
    file_close(fd);
    return rc;
}

int producers_remove_file(const char *dir)
{
    int rc = 0;
    const char *names[] = {PRODUCERS_SNAPSHOT, SNAPSHOT_TMP, PRODUCERS_SNAPSHOT_BG_TMP};
    for (size_t i = 0; i < TERN_ARRAY_LEN(names); i++) {
        char *path = file_join(dir, names[i]);
        int r = file_unlink(path);
        free(path);
        if (r < 0 && r != -ENOENT && rc == 0)
            rc = r;
    }
    return rc;
}
