/*
 * buf.h - a growable byte buffer for encoders and output queues.
 *
 * Appends grow the buffer (control-plane allocation: aborts on out-of-memory, see tern.h); the
 * caller accounts data-path bytes before appending. Multi-byte integers are big-endian (network
 * order), as AMQP and Kafka put them on the wire.
 */
#ifndef TERN_BUF_H
#define TERN_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    uint8_t *p;
    size_t len; /* bytes held */
    size_t cap; /* bytes allocated */
};

#define BUF_INIT {NULL, 0, 0}

void buf_init(struct buf *b);
/* Frees the storage; the buffer is empty and reusable afterwards. */
void buf_fini(struct buf *b);
/* Ensures room for n more bytes and returns a pointer to where they go (len is unchanged). */
uint8_t *buf_reserve(struct buf *b, size_t n);
/* Appends n bytes; returns the offset where they start. */
size_t buf_put(struct buf *b, const void *p, size_t n);
size_t buf_put_u8(struct buf *b, uint8_t v);
size_t buf_put_u16(struct buf *b, uint16_t v);
size_t buf_put_u32(struct buf *b, uint32_t v);
size_t buf_put_u64(struct buf *b, uint64_t v);
/* Overwrites 4 bytes at off (a length prefix written before its contents were known). */
void buf_patch_u32(struct buf *b, size_t off, uint32_t v);
/* Drops the first n bytes (n <= len), moving the rest to the front. */
void buf_consume(struct buf *b, size_t n);
void buf_clear(struct buf *b);

/* Big-endian loads from untrusted input; the caller has checked the length. */
static inline uint16_t buf_get_u16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t buf_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t buf_get_u64(const uint8_t *p)
{
    return (uint64_t)buf_get_u32(p) << 32 | buf_get_u32(p + 4);
}

#endif
