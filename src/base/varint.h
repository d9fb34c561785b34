/*
 * varint.h - zig-zag base-128 varints as used in Kafka records (pure; no allocation).
 */
#ifndef TERN_VARINT_H
#define TERN_VARINT_H

#include <stddef.h>
#include <stdint.h>

#define VARINT_MAX_BYTES 10

/* Decodes a zig-zag varint of at most max_bytes (5 for int32, 10 for int64).
 * Returns bytes consumed, TERN_EAGAIN if p..end ends inside it, TERN_EPROTO if too long. */
int varint_decode(const uint8_t *p, const uint8_t *end, int max_bytes, int64_t *out);
/* Encodes v zig-zag into out (VARINT_MAX_BYTES room). Returns bytes written. */
int varint_encode(int64_t v, uint8_t *out);
/* Bytes varint_encode would write. */
int varint_size(int64_t v);

#endif
