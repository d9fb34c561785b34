/*
 * batch.c - RecordBatch v2 header parsing, CRC, record iteration and encoding.
 * Layout: see batch.h. Pure: no I/O, no logging, no allocation.
 */
#include "store/batch.h"

#include "base/crc32c.h"
#include "base/tern.h"
#include "base/varint.h"

#include <string.h>

#define CRC_START 21 /* the CRC covers attributes .. end */

static int64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return (int64_t)v;
}

static int32_t get32(const uint8_t *p)
{
    return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
}

static int16_t get16(const uint8_t *p)
{
    return (int16_t)((uint16_t)p[0] << 8 | p[1]);
}

static void put64(uint8_t *p, int64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v = (int64_t)((uint64_t)v >> 8);
    }
}

static void put32(uint8_t *p, int32_t v)
{
    p[0] = (uint8_t)((uint32_t)v >> 24);
    p[1] = (uint8_t)((uint32_t)v >> 16);
    p[2] = (uint8_t)((uint32_t)v >> 8);
    p[3] = (uint8_t)v;
}

static void put16(uint8_t *p, int16_t v)
{
    p[0] = (uint8_t)((uint16_t)v >> 8);
    p[1] = (uint8_t)v;
}

int64_t batch_parse(const void *buf, size_t len, size_t max_size, struct batch_hdr *h)
{
    const uint8_t *p = buf;
    if (len < BATCH_LOG_OVERHEAD)
        return TERN_EAGAIN;
    h->base_offset = get64(p);
    h->length = get32(p + 8);
    if (h->length < BATCH_HEADER_SIZE - BATCH_LOG_OVERHEAD)
        return TERN_EPROTO;
    int64_t total = (int64_t)h->length + BATCH_LOG_OVERHEAD;
    if ((uint64_t)total > max_size)
        return TERN_ETOOBIG;
    if (len < BATCH_HEADER_SIZE) {
        /* magic is at byte 16: reject a non-v2 header as early as it is visible */
        if (len > 16 && p[16] != BATCH_MAGIC)
            return TERN_EPROTO;
        return TERN_EAGAIN;
    }
    h->leader_epoch = get32(p + 12);
    h->magic = (int8_t)p[16];
    h->crc = (uint32_t)get32(p + 17);
    h->attributes = get16(p + 21);
    h->last_offset_delta = get32(p + 23);
    h->first_timestamp = get64(p + 27);
    h->max_timestamp = get64(p + 35);
    h->producer_id = get64(p + 43);
    h->producer_epoch = get16(p + 51);
    h->base_sequence = get32(p + 53);
    h->record_count = get32(p + 57);
    if (h->magic != BATCH_MAGIC || h->last_offset_delta < 0 || h->record_count < 0 ||
        h->base_offset < 0 || h->base_offset > INT64_MAX - h->last_offset_delta)
        return TERN_EPROTO;
    if ((uint64_t)total > len)
        return TERN_EAGAIN;
    return total;
}

int batch_check_crc(const void *buf, const struct batch_hdr *h)
{
    const uint8_t *p = buf;
    size_t total = (size_t)h->length + BATCH_LOG_OVERHEAD;
    return crc32c(0, p + CRC_START, total - CRC_START) == h->crc ? 0 : TERN_ECORRUPT;
}

void batch_update_crc(void *buf, size_t size)
{
    uint8_t *p = buf;
    put32(p + 17, (int32_t)crc32c(0, p + CRC_START, size - CRC_START));
}

void batch_set_base_offset(void *buf, int64_t base_offset)
{
    put64(buf, base_offset);
}

void batch_set_leader_epoch(void *buf, int32_t epoch)
{
    put32((uint8_t *)buf + 12, epoch);
}

void batch_write_header(void *buf, const struct batch_hdr *h)
{
    uint8_t *p = buf;
    put64(p, h->base_offset);
    put32(p + 8, h->length);
    put32(p + 12, h->leader_epoch);
    p[16] = BATCH_MAGIC;
    put16(p + 21, h->attributes);
    put32(p + 23, h->last_offset_delta);
    put64(p + 27, h->first_timestamp);
    put64(p + 35, h->max_timestamp);
    put64(p + 43, h->producer_id);
    put16(p + 51, h->producer_epoch);
    put32(p + 53, h->base_sequence);
    put32(p + 57, h->record_count);
}

int batch_iter_init(struct batch_iter *it, const void *batch, const struct batch_hdr *h)
{
    if (h->attributes & BATCH_ATTR_COMPRESSION_MASK)
        return TERN_EPROTO;
    it->p = (const uint8_t *)batch + BATCH_HEADER_SIZE;
    it->end = (const uint8_t *)batch + BATCH_LOG_OVERHEAD + h->length;
    it->h = h;
    it->left = h->record_count;
    return 0;
}

void batch_iter_init_records(struct batch_iter *it, const struct batch_hdr *h, const void *records,
                             size_t len)
{
    it->p = records;
    it->end = it->p + len;
    it->h = h;
    it->left = h->record_count;
}

/* Reads a varint into *v; returns 0 or TERN_EPROTO (a record never ends inside a varint). */
static int read_varint(const uint8_t **p, const uint8_t *end, int max_bytes, int64_t *v)
{
    int n = varint_decode(*p, end, max_bytes, v);
    if (n < 0)
        return TERN_EPROTO;
    *p += n;
    return 0;
}

/* Reads a varint length and that many bytes (-1 = null). */
static int read_bytes(const uint8_t **p, const uint8_t *end, const uint8_t **out, int32_t *len)
{
    int64_t n;
    if (read_varint(p, end, 5, &n) < 0 || n < -1 || n > end - *p)
        return TERN_EPROTO;
    *len = (int32_t)n;
    *out = n < 0 ? NULL : *p;
    if (n > 0)
        *p += n;
    return 0;
}

int batch_header_next(const uint8_t **p, const uint8_t *end, struct batch_header *out)
{
    if (read_bytes(p, end, &out->key, &out->key_len) < 0 || out->key_len < 0 ||
        read_bytes(p, end, &out->value, &out->value_len) < 0)
        return TERN_EPROTO;
    return 0;
}

int batch_iter_next(struct batch_iter *it, struct batch_record *rec)
{
    if (it->left == 0)
        return it->p == it->end ? 0 : TERN_EPROTO;
    int64_t len, ts_delta, off_delta, nhdr;
    const uint8_t *p = it->p;
    if (read_varint(&p, it->end, 5, &len) < 0 || len < 1 || len > it->end - p)
        return TERN_EPROTO;
    const uint8_t *rend = p + len;
    p++; /* record attributes: unused */
    if (read_varint(&p, rend, 10, &ts_delta) < 0 || read_varint(&p, rend, 5, &off_delta) < 0 ||
        off_delta < 0 || off_delta > it->h->last_offset_delta)
        return TERN_EPROTO;
    if (read_bytes(&p, rend, &rec->key, &rec->key_len) < 0 ||
        read_bytes(&p, rend, &rec->value, &rec->value_len) < 0 ||
        read_varint(&p, rend, 5, &nhdr) < 0 || nhdr < 0 || nhdr > rend - p)
        return TERN_EPROTO;
    rec->headers = p;
    for (int64_t i = 0; i < nhdr; i++) {
        struct batch_header hd;
        if (batch_header_next(&p, rend, &hd) < 0)
            return TERN_EPROTO;
    }
    if (p != rend)
        return TERN_EPROTO;
    rec->headers_len = (size_t)(p - rec->headers);
    rec->header_count = (int32_t)nhdr;
    rec->offset = it->h->base_offset + off_delta;
    rec->timestamp = (int64_t)((uint64_t)it->h->first_timestamp + (uint64_t)ts_delta);
    it->p = rend;
    it->left--;
    return 1;
}

/* timestamp - first as Kafka stores it: two's complement, wrapping instead of overflowing */
static int64_t ts_delta(int64_t ts, int64_t first)
{
    return (int64_t)((uint64_t)ts - (uint64_t)first);
}

static size_t record_body_size(const struct batch_rec_in *r, int64_t ts_delta, int i)
{
    size_t n = 1 + (size_t)varint_size(ts_delta) + (size_t)varint_size(i);
    n += (size_t)varint_size(r->key ? r->key_len : -1) + (r->key ? (size_t)r->key_len : 0);
    n += (size_t)varint_size(r->value ? r->value_len : -1) + (r->value ? (size_t)r->value_len : 0);
    return n + 1; /* header count 0 */
}

static uint8_t *encode_record(uint8_t *q, const struct batch_rec_in *r, int64_t ts_delta, int i)
{
    q += varint_encode((int64_t)record_body_size(r, ts_delta, i), q);
    *q++ = 0;
    q += varint_encode(ts_delta, q);
    q += varint_encode(i, q);
    q += varint_encode(r->key ? r->key_len : -1, q);
    if (r->key && r->key_len > 0) {
        memcpy(q, r->key, (size_t)r->key_len);
        q += r->key_len;
    }
    q += varint_encode(r->value ? r->value_len : -1, q);
    if (r->value && r->value_len > 0) {
        memcpy(q, r->value, (size_t)r->value_len);
        q += r->value_len;
    }
    q += varint_encode(0, q);
    return q;
}

int64_t batch_encode(void *out, size_t cap, const struct batch_rec_in *recs, int n)
{
    if (n < 1)
        return TERN_EPROTO;
    int64_t first_ts = recs[0].timestamp, max_ts = recs[0].timestamp;
    size_t total = BATCH_HEADER_SIZE;
    for (int i = 0; i < n; i++) {
        if (recs[i].timestamp > max_ts)
            max_ts = recs[i].timestamp;
        size_t body = record_body_size(&recs[i], ts_delta(recs[i].timestamp, first_ts), i);
        total += (size_t)varint_size((int64_t)body) + body;
    }
    if (total > cap || total > INT32_MAX)
        return TERN_ETOOBIG;
    uint8_t *p = out;
    put64(p, 0);
    put32(p + 8, (int32_t)(total - BATCH_LOG_OVERHEAD));
    put32(p + 12, 0);
    p[16] = BATCH_MAGIC;
    put16(p + 21, 0);
    put32(p + 23, n - 1);
    put64(p + 27, first_ts);
    put64(p + 35, max_ts);
    put64(p + 43, -1);
    put16(p + 51, -1);
    put32(p + 53, -1);
    put32(p + 57, n);
    uint8_t *q = p + BATCH_HEADER_SIZE;
    for (int i = 0; i < n; i++)
        q = encode_record(q, &recs[i], ts_delta(recs[i].timestamp, first_ts), i);
    batch_update_crc(p, total);
    return (int64_t)total;
}
