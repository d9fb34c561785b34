/*
 * buf.c - growable byte buffer (see buf.h).
 */
#include "base/buf.h"

#include <stdlib.h>
#include <string.h>

#include "base/tern.h"

void buf_init(struct buf *b)
{
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
}

void buf_fini(struct buf *b)
{
    free(b->p);
    buf_init(b);
}

uint8_t *buf_reserve(struct buf *b, size_t n)
{
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n)
            cap *= 2;
        b->p = tern_xrealloc(b->p, cap);
        b->cap = cap;
    }
    return b->p + b->len;
}

size_t buf_put(struct buf *b, const void *p, size_t n)
{
    size_t off = b->len;
    if (n) {
        memcpy(buf_reserve(b, n), p, n);
        b->len += n;
    }
    return off;
}

size_t buf_put_u8(struct buf *b, uint8_t v) { return buf_put(b, &v, 1); }

size_t buf_put_u16(struct buf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    return buf_put(b, x, 2);
}

size_t buf_put_u32(struct buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    return buf_put(b, x, 4);
}

size_t buf_put_u64(struct buf *b, uint64_t v)
{
    size_t off = buf_put_u32(b, (uint32_t)(v >> 32));
    buf_put_u32(b, (uint32_t)v);
    return off;
}

void buf_patch_u32(struct buf *b, size_t off, uint32_t v)
{
    TERN_ASSERT(off + 4 <= b->len);
    b->p[off] = (uint8_t)(v >> 24);
    b->p[off + 1] = (uint8_t)(v >> 16);
    b->p[off + 2] = (uint8_t)(v >> 8);
    b->p[off + 3] = (uint8_t)v;
}

void buf_consume(struct buf *b, size_t n)
{
    TERN_ASSERT(n <= b->len);
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

void buf_clear(struct buf *b) { b->len = 0; }
