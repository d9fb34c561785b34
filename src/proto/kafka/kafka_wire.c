/*
 * kafka_wire.c - Kafka primitives, headers and frames (see kafka_wire.h for the encodings).
 *
 * Invariant of the reader: r->p <= r->end always; once r->err is set it stays set and every
 * read returns zero without moving. The writer skips every write once it has failed, and
 * kafka_wire_wr_end() cuts the output back, so a failed encode leaves no partial message.
 */
#include "proto/kafka/kafka_wire.h"

#include <string.h>

#include "base/tern.h"
#include "proto/kafka/kafka_msg.h"

struct kafka_str kafka_str_c(const char *s)
{
    size_t n = strlen(s);
    TERN_ASSERT(n <= INT32_MAX);
    return (struct kafka_str){(const uint8_t *)s, (int32_t)n};
}

bool kafka_str_eq(struct kafka_str a, struct kafka_str b)
{
    if (a.len != b.len)
        return false;
    return a.len <= 0 || memcmp(a.p, b.p, (size_t)a.len) == 0;
}

/* ---- reading --------------------------------------------------------------------------- */

void kafka_wire_rd_init(struct kafka_wire_rd *r, const uint8_t *p, size_t n, struct arena *a)
{
    r->p = p;
    r->end = p + n;
    r->arena = a;
    r->err = 0;
}

int kafka_wire_rd_end(const struct kafka_wire_rd *r)
{
    if (r->err)
        return r->err;
    return r->p == r->end ? 0 : TERN_EPROTO;
}

static void rd_fail(struct kafka_wire_rd *r, int err)
{
    if (!r->err)
        r->err = err;
}

/* Takes n bytes; NULL, with the reader failed, when they don't fit. */
static const uint8_t *take(struct kafka_wire_rd *r, size_t n)
{
    if (r->err || n > (size_t)(r->end - r->p)) {
        rd_fail(r, TERN_EPROTO);
        return NULL;
    }
    const uint8_t *q = r->p;
    r->p += n;
    return q;
}

int8_t kafka_wire_get_i8(struct kafka_wire_rd *r)
{
    const uint8_t *q = take(r, 1);
    return q ? (int8_t)q[0] : 0;
}

int16_t kafka_wire_get_i16(struct kafka_wire_rd *r)
{
    const uint8_t *q = take(r, 2);
    return q ? (int16_t)buf_get_u16(q) : 0;
}

int32_t kafka_wire_get_i32(struct kafka_wire_rd *r)
{
    const uint8_t *q = take(r, 4);
    return q ? (int32_t)buf_get_u32(q) : 0;
}

int64_t kafka_wire_get_i64(struct kafka_wire_rd *r)
{
    const uint8_t *q = take(r, 8);
    return q ? (int64_t)buf_get_u64(q) : 0;
}

bool kafka_wire_get_bool(struct kafka_wire_rd *r)
{
    return kafka_wire_get_i8(r) != 0;
}

uint32_t kafka_wire_get_uvarint(struct kafka_wire_rd *r)
{
    uint32_t v = 0;
    for (int i = 0; i < KAFKA_UVARINT_MAX_BYTES; i++) {
        const uint8_t *q = take(r, 1);
        if (!q)
            return 0;
        if (i == KAFKA_UVARINT_MAX_BYTES - 1 && *q > 0x0f) { /* over 32 bits, or a 6th byte */
            rd_fail(r, TERN_EPROTO);
            return 0;
        }
        v |= (uint32_t)(*q & 0x7f) << (7 * i);
        if (!(*q & 0x80))
            return v;
    }
    return 0; /* not reached: the 5th byte has no continuation bit */
}

/* A length or count: compact ones are uvarint N+1, the others int16 or int32 (wide). */
static int64_t get_len(struct kafka_wire_rd *r, bool compact, bool wide)
{
    if (compact)
        return (int64_t)kafka_wire_get_uvarint(r) - 1;
    return wide ? kafka_wire_get_i32(r) : kafka_wire_get_i16(r);
}

/* The slice of a string or bytes field whose length is len, at most max bytes. */
static struct kafka_str get_slice(struct kafka_wire_rd *r, int64_t len, bool nullable, int64_t max)
{
    struct kafka_str s = {NULL, 0};
    if (r->err)
        return s;
    if (len == -1 && nullable)
        return KAFKA_STR_NULL;
    if (len < 0 || len > max) {
        rd_fail(r, TERN_EPROTO);
        return s;
    }
    const uint8_t *q = take(r, (size_t)len);
    if (q) {
        s.p = q;
        s.len = (int32_t)len;
    }
    return s;
}

struct kafka_str kafka_wire_get_str(struct kafka_wire_rd *r, bool compact, bool nullable)
{
    return get_slice(r, get_len(r, compact, false), nullable, KAFKA_STRING_MAX);
}

struct kafka_str kafka_wire_get_bytes(struct kafka_wire_rd *r, bool compact, bool nullable)
{
    return get_slice(r, get_len(r, compact, true), nullable, INT32_MAX);
}

int32_t kafka_wire_get_array(struct kafka_wire_rd *r, bool compact, bool nullable, size_t min_size)
{
    int64_t n = get_len(r, compact, true);
    if (r->err)
        return 0;
    if (n == -1 && nullable)
        return -1;
    if (n < 0 || n > INT32_MAX || min_size == 0 ||
        (uint64_t)n > (uint64_t)(r->end - r->p) / min_size) {
        rd_fail(r, TERN_EPROTO);
        return 0;
    }
    return (int32_t)n;
}

void *kafka_wire_rd_alloc(struct kafka_wire_rd *r, int32_t n, size_t size)
{
    if (r->err || n <= 0)
        return NULL;
    void *p = r->arena ? arena_alloc(r->arena, (size_t)n, size) : NULL;
    if (!p)
        rd_fail(r, TERN_EFULL);
    return p;
}

bool kafka_wire_get_tag(struct kafka_wire_rd *r, int64_t *prev, uint32_t *tag,
                        struct kafka_wire_rd *sub)
{
    *tag = kafka_wire_get_uvarint(r);
    uint32_t size = kafka_wire_get_uvarint(r);
    if (!r->err && (int64_t)*tag <= *prev)
        rd_fail(r, TERN_EPROTO);
    const uint8_t *q = take(r, size);
    if (!q)
        return false;
    *prev = *tag;
    kafka_wire_rd_init(sub, q, size, r->arena);
    return true;
}

void kafka_wire_tag_end(struct kafka_wire_rd *r, const struct kafka_wire_rd *sub)
{
    if (sub->err)
        rd_fail(r, sub->err);
    else if (sub->p != sub->end)
        rd_fail(r, TERN_EPROTO);
}

void kafka_wire_skip_tags(struct kafka_wire_rd *r)
{
    uint32_t n = kafka_wire_get_uvarint(r);
    int64_t prev = -1;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t tag;
        struct kafka_wire_rd sub;
        if (!kafka_wire_get_tag(r, &prev, &tag, &sub))
            return;
    }
}

/* ---- writing --------------------------------------------------------------------------- */

const uint8_t kafka_wire_gap[1];

void kafka_wire_wr_init(struct kafka_wire_wr *w, struct buf *out)
{
    *w = (struct kafka_wire_wr){.out = out, .start = out->len};
}

void kafka_wire_wr_gaps(struct kafka_wire_wr *w, struct kafka_wire_gap *gaps, int max)
{
    w->gaps = gaps;
    w->maxgaps = max;
    w->ngaps = 0;
}

int kafka_wire_wr_end(struct kafka_wire_wr *w)
{
    if (w->err) {
        w->out->len = w->start;
        w->ngaps = 0;
    }
    return w->err;
}

static void wr_fail(struct kafka_wire_wr *w)
{
    w->err = TERN_EPROTO;
}

void kafka_wire_put_i8(struct kafka_wire_wr *w, int8_t v)
{
    if (!w->err)
        buf_put_u8(w->out, (uint8_t)v);
}

void kafka_wire_put_i16(struct kafka_wire_wr *w, int16_t v)
{
    if (!w->err)
        buf_put_u16(w->out, (uint16_t)v);
}

void kafka_wire_put_i32(struct kafka_wire_wr *w, int32_t v)
{
    if (!w->err)
        buf_put_u32(w->out, (uint32_t)v);
}

void kafka_wire_put_i64(struct kafka_wire_wr *w, int64_t v)
{
    if (!w->err)
        buf_put_u64(w->out, (uint64_t)v);
}

void kafka_wire_put_bool(struct kafka_wire_wr *w, bool v)
{
    kafka_wire_put_i8(w, v ? 1 : 0);
}

void kafka_wire_put_uvarint(struct kafka_wire_wr *w, uint32_t v)
{
    uint8_t x[KAFKA_UVARINT_MAX_BYTES];
    size_t n = 0;
    while (v >= 0x80) {
        x[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    x[n++] = (uint8_t)v;
    if (!w->err)
        buf_put(w->out, x, n);
}

/* A length or count (-1 for null), in the forms of get_len. */
static void put_len(struct kafka_wire_wr *w, int32_t n, bool compact, bool wide)
{
    if (compact)
        kafka_wire_put_uvarint(w, (uint32_t)((int64_t)n + 1));
    else if (wide)
        kafka_wire_put_i32(w, n);
    else
        kafka_wire_put_i16(w, (int16_t)n);
}

static void put_slice(struct kafka_wire_wr *w, struct kafka_str s, bool compact, bool nullable,
                      bool wide)
{
    if (s.len < -1 || (s.len == -1 && !nullable) || (!wide && s.len > KAFKA_STRING_MAX)) {
        wr_fail(w);
        return;
    }
    if (s.p == kafka_wire_gap && s.len > 0 && w->ngaps == w->maxgaps) {
        wr_fail(w); /* no room: a sub-writer, or more gaps than the caller expected */
        return;
    }
    put_len(w, s.len, compact, wide);
    if (s.len <= 0 || w->err)
        return;
    if (s.p == kafka_wire_gap)
        w->gaps[w->ngaps++] = (struct kafka_wire_gap){w->out->len, (size_t)s.len};
    else
        buf_put(w->out, s.p, (size_t)s.len);
}

void kafka_wire_put_str(struct kafka_wire_wr *w, struct kafka_str s, bool compact, bool nullable)
{
    put_slice(w, s, compact, nullable, false);
}

void kafka_wire_put_bytes(struct kafka_wire_wr *w, struct kafka_str s, bool compact, bool nullable)
{
    put_slice(w, s, compact, nullable, true);
}

void kafka_wire_put_array(struct kafka_wire_wr *w, int32_t n, bool compact, bool nullable)
{
    if (n < -1 || (n == -1 && !nullable)) {
        wr_fail(w);
        return;
    }
    put_len(w, n, compact, true);
}

void kafka_wire_put_no_tags(struct kafka_wire_wr *w)
{
    kafka_wire_put_uvarint(w, 0);
}

void kafka_wire_put_tag(struct kafka_wire_wr *w, uint32_t tag, const struct kafka_wire_wr *sub)
{
    if (sub->err) {
        w->err = sub->err;
        return;
    }
    size_t size = sub->out->len - sub->start;
    TERN_ASSERT(size <= UINT32_MAX);
    kafka_wire_put_uvarint(w, tag);
    kafka_wire_put_uvarint(w, (uint32_t)size);
    if (!w->err)
        buf_put(w->out, sub->out->p + sub->start, size);
}

/* ---- headers and frames ---------------------------------------------------------------- */

int kafka_wire_req_hdr_version(int16_t api_key, int16_t api_version)
{
    if (!kafka_msg_api_lookup(api_key))
        return -1;
    return kafka_msg_flexible(api_key, api_version) ? 2 : 1;
}

int kafka_wire_resp_hdr_version(int16_t api_key, int16_t api_version)
{
    if (!kafka_msg_api_lookup(api_key))
        return -1;
    if (api_key == KAFKA_API_API_VERSIONS)
        return 0;
    return kafka_msg_flexible(api_key, api_version) ? 1 : 0;
}

int kafka_wire_req_hdr_decode(const uint8_t *p, size_t n, struct kafka_wire_req_hdr *h)
{
    struct kafka_wire_rd r;
    memset(h, 0, sizeof(*h));
    h->client_id = KAFKA_STR_NULL;
    if (n < 8)
        return TERN_EPROTO;
    kafka_wire_rd_init(&r, p, n, NULL);
    h->api_key = kafka_wire_get_i16(&r);
    h->api_version = kafka_wire_get_i16(&r);
    h->correlation_id = kafka_wire_get_i32(&r);
    int version = kafka_wire_req_hdr_version(h->api_key, h->api_version);
    if (version < 0)
        return TERN_ENOTSUP;
    h->client_id = kafka_wire_get_str(&r, false, true);
    if (version == 2)
        kafka_wire_skip_tags(&r);
    if (r.err) {
        h->client_id = KAFKA_STR_NULL;
        return r.err;
    }
    return (int)(r.p - p);
}

void kafka_wire_req_hdr_encode(const struct kafka_wire_req_hdr *h, struct buf *out)
{
    struct kafka_wire_wr w;
    int version = kafka_wire_req_hdr_version(h->api_key, h->api_version);
    TERN_ASSERT(version > 0);
    kafka_wire_wr_init(&w, out);
    kafka_wire_put_i16(&w, h->api_key);
    kafka_wire_put_i16(&w, h->api_version);
    kafka_wire_put_i32(&w, h->correlation_id);
    kafka_wire_put_str(&w, h->client_id, false, true);
    if (version == 2)
        kafka_wire_put_no_tags(&w);
    TERN_ASSERT(kafka_wire_wr_end(&w) == 0); /* a client id over 32767 bytes */
}

void kafka_wire_resp_hdr_encode(int16_t api_key, int16_t api_version, int32_t correlation_id,
                                struct buf *out)
{
    int version = kafka_wire_resp_hdr_version(api_key, api_version);
    TERN_ASSERT(version >= 0);
    buf_put_u32(out, (uint32_t)correlation_id);
    if (version == 1)
        buf_put_u8(out, 0); /* no tagged fields */
}

int kafka_wire_resp_hdr_decode(const uint8_t *p, size_t n, int16_t api_key, int16_t api_version,
                               int32_t *correlation_id)
{
    struct kafka_wire_rd r;
    int version = kafka_wire_resp_hdr_version(api_key, api_version);
    if (version < 0)
        return TERN_ENOTSUP;
    kafka_wire_rd_init(&r, p, n, NULL);
    *correlation_id = kafka_wire_get_i32(&r);
    if (version == 1)
        kafka_wire_skip_tags(&r);
    return r.err ? r.err : (int)(r.p - p);
}

int kafka_wire_frame(const uint8_t *p, size_t n, int32_t cap)
{
    if (n < 4)
        return TERN_EAGAIN;
    int32_t size = (int32_t)buf_get_u32(p);
    if (size < 0)
        return TERN_EPROTO;
    if (size > cap)
        return TERN_ETOOBIG;
    if (n - 4 < (size_t)size)
        return TERN_EAGAIN;
    return size;
}
