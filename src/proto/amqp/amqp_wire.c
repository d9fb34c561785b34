/*
 * amqp_wire.c - AMQP 0-9-1 argument readers and writers (see amqp_wire.h for the encodings).
 *
 * Invariant of the reader: r->p <= r->end always; once r->err is set it stays set and every
 * read returns zero without moving.
 */
#include "proto/amqp/amqp_wire.h"

#include <string.h>

#include "base/table.h"
#include "base/tern.h"

struct amqp_str amqp_wire_cstr(const char *s)
{
    size_t n = strlen(s);
    TERN_ASSERT(n <= UINT32_MAX);
    return (struct amqp_str){(const uint8_t *)s, (uint32_t)n};
}

bool amqp_wire_str_eq(struct amqp_str a, struct amqp_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

void amqp_wire_str_copy(char *dst, size_t cap, struct amqp_str s)
{
    size_t n = s.len < cap ? s.len : cap - 1;
    if (n)
        memcpy(dst, s.p, n);
    dst[n] = '\0';
}

/* ---- reading --------------------------------------------------------------------------- */

void amqp_wire_rd_init(struct amqp_wire_rd *r, const uint8_t *p, size_t n)
{
    r->p = p;
    r->end = p + n;
    r->bits = 0;
    r->nbits = 8;
    r->err = false;
}

/* Takes n bytes (closing any open bit octet); NULL, with the error set, when they don't fit. */
static const uint8_t *take(struct amqp_wire_rd *r, size_t n)
{
    r->nbits = 8;
    if (r->err || n > (size_t)(r->end - r->p)) {
        r->err = true;
        return NULL;
    }
    const uint8_t *q = r->p;
    r->p += n;
    return q;
}

uint8_t amqp_wire_get_octet(struct amqp_wire_rd *r)
{
    const uint8_t *q = take(r, 1);
    return q ? q[0] : 0;
}

uint16_t amqp_wire_get_short(struct amqp_wire_rd *r)
{
    const uint8_t *q = take(r, 2);
    return q ? buf_get_u16(q) : 0;
}

uint32_t amqp_wire_get_long(struct amqp_wire_rd *r)
{
    const uint8_t *q = take(r, 4);
    return q ? buf_get_u32(q) : 0;
}

uint64_t amqp_wire_get_longlong(struct amqp_wire_rd *r)
{
    const uint8_t *q = take(r, 8);
    return q ? buf_get_u64(q) : 0;
}

uint64_t amqp_wire_get_timestamp(struct amqp_wire_rd *r)
{
    return amqp_wire_get_longlong(r);
}

/* A string of len bytes at the cursor. */
static struct amqp_str get_bytes(struct amqp_wire_rd *r, size_t len)
{
    const uint8_t *q = take(r, len);
    if (!q)
        return (struct amqp_str){NULL, 0};
    return (struct amqp_str){q, (uint32_t)len};
}

struct amqp_str amqp_wire_get_shortstr(struct amqp_wire_rd *r)
{
    uint8_t len = amqp_wire_get_octet(r);
    return get_bytes(r, len);
}

struct amqp_str amqp_wire_get_longstr(struct amqp_wire_rd *r)
{
    uint32_t len = amqp_wire_get_long(r);
    return get_bytes(r, len);
}

struct amqp_str amqp_wire_get_table(struct amqp_wire_rd *r)
{
    if (r->err)
        return (struct amqp_str){NULL, 0};
    int n = table_validate(r->p, (size_t)(r->end - r->p));
    if (n < 0) {
        r->err = true;
        r->nbits = 8;
        return (struct amqp_str){NULL, 0};
    }
    return get_bytes(r, (size_t)n);
}

bool amqp_wire_get_bit(struct amqp_wire_rd *r)
{
    if (r->nbits == 8) {
        uint8_t octet = amqp_wire_get_octet(r);
        if (r->err)
            return false;
        r->bits = octet;
        r->nbits = 0;
    }
    return (r->bits >> r->nbits++) & 1;
}

int amqp_wire_rd_end(const struct amqp_wire_rd *r)
{
    return r->err || r->p != r->end ? TERN_EPROTO : 0;
}

/* ---- writing --------------------------------------------------------------------------- */

void amqp_wire_wr_init(struct amqp_wire_wr *w, struct buf *out)
{
    w->out = out;
    w->bitoff = 0;
    w->nbits = 8;
}

void amqp_wire_put_octet(struct amqp_wire_wr *w, uint8_t v)
{
    w->nbits = 8;
    buf_put_u8(w->out, v);
}

void amqp_wire_put_short(struct amqp_wire_wr *w, uint16_t v)
{
    w->nbits = 8;
    buf_put_u16(w->out, v);
}

void amqp_wire_put_long(struct amqp_wire_wr *w, uint32_t v)
{
    w->nbits = 8;
    buf_put_u32(w->out, v);
}

void amqp_wire_put_longlong(struct amqp_wire_wr *w, uint64_t v)
{
    w->nbits = 8;
    buf_put_u64(w->out, v);
}

void amqp_wire_put_timestamp(struct amqp_wire_wr *w, uint64_t v)
{
    amqp_wire_put_longlong(w, v);
}

void amqp_wire_put_shortstr(struct amqp_wire_wr *w, struct amqp_str s)
{
    uint8_t len = s.len > AMQP_WIRE_SHORTSTR_MAX ? AMQP_WIRE_SHORTSTR_MAX : (uint8_t)s.len;
    amqp_wire_put_octet(w, len);
    buf_put(w->out, s.p, len);
}

void amqp_wire_put_longstr(struct amqp_wire_wr *w, struct amqp_str s)
{
    amqp_wire_put_long(w, s.len);
    buf_put(w->out, s.p, s.len);
}

void amqp_wire_put_table(struct amqp_wire_wr *w, struct amqp_str t)
{
    if (t.len == 0) {
        amqp_wire_put_long(w, 0);
        return;
    }
    TERN_ASSERT(t.len >= 4 && buf_get_u32(t.p) == t.len - 4);
    w->nbits = 8;
    buf_put(w->out, t.p, t.len);
}

void amqp_wire_put_bit(struct amqp_wire_wr *w, bool v)
{
    if (w->nbits == 8) {
        w->bitoff = buf_put_u8(w->out, 0);
        w->nbits = 0;
    }
    if (v)
        w->out->p[w->bitoff] |= (uint8_t)(1u << w->nbits);
    w->nbits++;
}
