/*
 * amqp_wire.h - AMQP 0-9-1 argument primitives: the readers and writers that the generated
 * method codec (amqp_method.c) and the frame codec (amqp_frame.c) are made of.
 *
 * Pure: no allocation, no I/O, no logging. Integers are big-endian.
 *
 *   octet u8   short u16   long u32   longlong u64   timestamp u64 (POSIX seconds)
 *   shortstr   u8 length + bytes       longstr   u32 length + bytes
 *   table      u32 length + entries (base/table.h); kept here as a raw slice, prefix included
 *   bit        consecutive bit arguments share one octet, the first in the least significant
 *              bit; any other argument, or the end of the method, closes the octet, and a ninth
 *              consecutive bit opens a new one. Unused high bits are written as zero and ignored
 *              on read (RabbitMQ ignores them too).
 *
 * Reading goes through a cursor with a sticky error: a read that does not fit (or a table that
 * fails table_validate) marks the cursor failed and returns zero or an empty slice, and every
 * later read does the same. Decoders read all their fields unconditionally and ask
 * amqp_wire_rd_end() once at the end. Slices point into the input; nothing is copied.
 */
#ifndef TERN_AMQP_WIRE_H
#define TERN_AMQP_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

/* A zero-copy slice of a decoded payload (or of caller memory, for encoding). */
struct amqp_str {
    const uint8_t *p;
    uint32_t len;
};

/* The argument types of amqp_spec.def. */
enum amqp_wire_type {
    AMQP_WIRE_OCTET = 1,
    AMQP_WIRE_SHORT,
    AMQP_WIRE_LONG,
    AMQP_WIRE_LONGLONG,
    AMQP_WIRE_SHORTSTR,
    AMQP_WIRE_LONGSTR,
    AMQP_WIRE_BIT,
    AMQP_WIRE_TABLE,
    AMQP_WIRE_TIMESTAMP,
};

#define AMQP_WIRE_SHORTSTR_MAX 255

/* A slice of a NUL-terminated C string (the string must outlive the slice). */
struct amqp_str amqp_wire_cstr(const char *s);
/* True when a and b hold the same bytes. */
bool amqp_wire_str_eq(struct amqp_str a, struct amqp_str b);
/* Copies s into dst (cap bytes) as a NUL-terminated string, cut to cap - 1 bytes. */
void amqp_wire_str_copy(char *dst, size_t cap, struct amqp_str s);

struct amqp_wire_rd {
    const uint8_t *p, *end;
    uint8_t bits;  /* the open bit octet */
    uint8_t nbits; /* bits of it used; 8 when no octet is open */
    bool err;
};

/* Starts reading p[0..n). */
void amqp_wire_rd_init(struct amqp_wire_rd *r, const uint8_t *p, size_t n);
uint8_t amqp_wire_get_octet(struct amqp_wire_rd *r);
uint16_t amqp_wire_get_short(struct amqp_wire_rd *r);
uint32_t amqp_wire_get_long(struct amqp_wire_rd *r);
uint64_t amqp_wire_get_longlong(struct amqp_wire_rd *r);
uint64_t amqp_wire_get_timestamp(struct amqp_wire_rd *r);
struct amqp_str amqp_wire_get_shortstr(struct amqp_wire_rd *r);
struct amqp_str amqp_wire_get_longstr(struct amqp_wire_rd *r);
/* The whole table (length prefix included), checked with table_validate. */
struct amqp_str amqp_wire_get_table(struct amqp_wire_rd *r);
bool amqp_wire_get_bit(struct amqp_wire_rd *r);
/* 0 when every read fitted and the input is used up exactly, else TERN_EPROTO (a read failed,
 * or bytes are left over). */
int amqp_wire_rd_end(const struct amqp_wire_rd *r);

struct amqp_wire_wr {
    struct buf *out;
    size_t bitoff; /* offset in out of the open bit octet */
    uint8_t nbits; /* bits of it used; 8 when no octet is open */
};

/* Starts appending to out. Writers never fail (buf aborts on out-of-memory). */
void amqp_wire_wr_init(struct amqp_wire_wr *w, struct buf *out);
void amqp_wire_put_octet(struct amqp_wire_wr *w, uint8_t v);
void amqp_wire_put_short(struct amqp_wire_wr *w, uint16_t v);
void amqp_wire_put_long(struct amqp_wire_wr *w, uint32_t v);
void amqp_wire_put_longlong(struct amqp_wire_wr *w, uint64_t v);
void amqp_wire_put_timestamp(struct amqp_wire_wr *w, uint64_t v);
/* Writes at most AMQP_WIRE_SHORTSTR_MAX bytes of s: longer strings are cut there, as RabbitMQ
 * cuts reply texts (a reply text built from a 255-byte name must not become a bad frame). */
void amqp_wire_put_shortstr(struct amqp_wire_wr *w, struct amqp_str s);
void amqp_wire_put_longstr(struct amqp_wire_wr *w, struct amqp_str s);
/* t holds a whole encoded table (as table_encode writes it, or as decoded); len 0 writes an
 * empty table. A slice whose length prefix disagrees with its length is a caller bug (abort). */
void amqp_wire_put_table(struct amqp_wire_wr *w, struct amqp_str t);
void amqp_wire_put_bit(struct amqp_wire_wr *w, bool v);

#endif
