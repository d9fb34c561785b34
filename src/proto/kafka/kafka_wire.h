/*
 * kafka_wire.h - Kafka protocol primitives: the readers and writers that the generated message
 * codec (kafka_msg.c) is made of, the request and response headers, and the frame reader.
 *
 * Pure: no I/O, no logging; the only allocation is from the caller's arena (decoded arrays).
 * Encodings (KIP-482 "compact" forms in flexible versions):
 *
 *   int8 int16 int32 int64   big-endian, two's complement; bool is one byte (any non-zero
 *                            byte reads as true, true is written as 1)
 *   uvarint                  unsigned base-128, least significant group first, at most 5 bytes
 *                            and at most UINT32_MAX (not the zig-zag varints of records)
 *   string                   int16 length + bytes; length -1 is null
 *   compact string           uvarint length+1 + bytes; 0 is null; at most 0x7fff bytes either way
 *   bytes                    int32 length + bytes; -1 is null
 *   compact bytes            uvarint length+1 + bytes; 0 is null
 *   array                    int32 count + elements; -1 is null
 *   compact array            uvarint count+1 + elements; 0 is null
 *   tagged fields            uvarint count, then per field uvarint tag, uvarint size, size bytes;
 *                            tags strictly ascending. Every struct of a flexible version ends
 *                            with this section (the generator knows which tags a struct has).
 *
 * A null where the version does not allow one is malformed. The reader keeps a sticky error:
 * a read that does not fit, or malformed data, sets r->err and returns zero, an empty slice or
 * count 0, and every later read does the same; decoders read unconditionally and ask
 * kafka_wire_rd_end() once. Slices point into the input: nothing is copied, so the input must
 * outlive every struct decoded from it.
 *
 * Headers: a request header is v1 (api_key int16, api_version int16, correlation_id int32,
 * client_id nullable string) or, when the request's version is flexible, v2 (v1 + tagged
 * fields; client_id keeps its int16 length). A response header is v0 (correlation_id) or, for
 * flexible versions, v1 (+ tagged fields) - except ApiVersions, whose response header is v0 at
 * every version (KIP-511: a client that does not know the broker's versions must parse it).
 */
#ifndef TERN_KAFKA_WIRE_H
#define TERN_KAFKA_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/buf.h"

/* A zero-copy slice of a string, bytes or records field; len -1 is null. */
struct kafka_str {
    const uint8_t *p;
    int32_t len;
};

#define KAFKA_STR_NULL ((struct kafka_str){NULL, -1})
#define KAFKA_STRING_MAX 0x7fff /* longest string, compact or not */
#define KAFKA_UVARINT_MAX_BYTES 5

/* A slice of a NUL-terminated C string (the string must outlive the slice). */
struct kafka_str kafka_str_c(const char *s);
/* Same nullness and bytes. */
bool kafka_str_eq(struct kafka_str a, struct kafka_str b);

/* ---- reading ---- */

struct kafka_wire_rd {
    const uint8_t *p, *end;
    struct arena *arena; /* decoded arrays come from here */
    int err;             /* 0, TERN_EPROTO or TERN_EFULL (arena cap reached) */
};

/* Starts reading p[0..n); arrays are allocated from a. */
void kafka_wire_rd_init(struct kafka_wire_rd *r, const uint8_t *p, size_t n, struct arena *a);
/* The sticky error; else TERN_EPROTO when bytes are left over; else 0. */
int kafka_wire_rd_end(const struct kafka_wire_rd *r);
int8_t kafka_wire_get_i8(struct kafka_wire_rd *r);
int16_t kafka_wire_get_i16(struct kafka_wire_rd *r);
int32_t kafka_wire_get_i32(struct kafka_wire_rd *r);
int64_t kafka_wire_get_i64(struct kafka_wire_rd *r);
bool kafka_wire_get_bool(struct kafka_wire_rd *r);
uint32_t kafka_wire_get_uvarint(struct kafka_wire_rd *r);
/* A string (compact or not); null only when nullable. */
struct kafka_str kafka_wire_get_str(struct kafka_wire_rd *r, bool compact, bool nullable);
/* Bytes or records (compact or not); null only when nullable. */
struct kafka_str kafka_wire_get_bytes(struct kafka_wire_rd *r, bool compact, bool nullable);
/*
 * An array count: -1 for null (only when nullable), else 0..INT32_MAX. Each element takes at
 * least min_size > 0 bytes, so a count that the bytes left cannot hold is malformed: checked
 * here, before anything is allocated for the elements.
 */
int32_t kafka_wire_get_array(struct kafka_wire_rd *r, bool compact, bool nullable, size_t min_size);
/* Zeroed room for n elements of size bytes from the arena; NULL (and no error) for n <= 0,
 * NULL with TERN_EFULL when the arena is at its cap, NULL when the reader has failed. */
void *kafka_wire_rd_alloc(struct kafka_wire_rd *r, int32_t n, size_t size);
/* Reads a tagged-field section whose tags are all unknown, skipping their values. */
void kafka_wire_skip_tags(struct kafka_wire_rd *r);
/*
 * Reads the next tag of a tagged-field section: its number into *tag and its value as a
 * sub-reader *sub (sharing the arena); r moves past the value. *prev is the previous tag (-1
 * before the first): tags must ascend. False, with r failed, on malformed input.
 */
bool kafka_wire_get_tag(struct kafka_wire_rd *r, int64_t *prev, uint32_t *tag,
                        struct kafka_wire_rd *sub);
/* Ends the value of a known tag: the sub-reader's error, or TERN_EPROTO when it was not read
 * to its end, fails r. */
void kafka_wire_tag_end(struct kafka_wire_rd *r, const struct kafka_wire_rd *sub);

/* ---- writing ---- */

/*
 * Gaps: a bytes or records value whose p is kafka_wire_gap is written as its length only; the
 * writer notes where its len bytes belong (at: the offset in out where they would start) and
 * the caller sends them from elsewhere (a file, with sendfile) between the encoded pieces.
 * Only a writer given room for gaps takes them (a sub-writer for a tagged field never does);
 * any other fails with TERN_EPROTO.
 */
extern const uint8_t kafka_wire_gap[1];

struct kafka_wire_gap {
    size_t at;
    size_t len;
};

struct kafka_wire_wr {
    struct buf *out;
    size_t start;                /* out->len when writing began */
    int err;                     /* 0 or TERN_EPROTO: a value that this version cannot carry */
    struct kafka_wire_gap *gaps; /* NULL unless the caller gave room (kafka_wire_wr_gaps) */
    int ngaps, maxgaps;
};

/* Starts appending to out (taking no gaps). */
void kafka_wire_wr_init(struct kafka_wire_wr *w, struct buf *out);
/* Lets w take up to max gaps, noted in gaps[0..w->ngaps) (the caller's array). */
void kafka_wire_wr_gaps(struct kafka_wire_wr *w, struct kafka_wire_gap *gaps, int max);
/* 0, or the sticky error after truncating out back to where writing began (and dropping the
 * gaps noted). */
int kafka_wire_wr_end(struct kafka_wire_wr *w);
void kafka_wire_put_i8(struct kafka_wire_wr *w, int8_t v);
void kafka_wire_put_i16(struct kafka_wire_wr *w, int16_t v);
void kafka_wire_put_i32(struct kafka_wire_wr *w, int32_t v);
void kafka_wire_put_i64(struct kafka_wire_wr *w, int64_t v);
void kafka_wire_put_bool(struct kafka_wire_wr *w, bool v);
void kafka_wire_put_uvarint(struct kafka_wire_wr *w, uint32_t v);
/* Fails w (TERN_EPROTO) for a null that is not allowed, a string over KAFKA_STRING_MAX bytes
 * or a length below -1. */
void kafka_wire_put_str(struct kafka_wire_wr *w, struct kafka_str s, bool compact, bool nullable);
void kafka_wire_put_bytes(struct kafka_wire_wr *w, struct kafka_str s, bool compact, bool nullable);
/* An array count; -1 is null. Fails w for a null that is not allowed or a count below -1. */
void kafka_wire_put_array(struct kafka_wire_wr *w, int32_t n, bool compact, bool nullable);
/* An empty tagged-field section. */
void kafka_wire_put_no_tags(struct kafka_wire_wr *w);
/* Appends a tagged field: tag, size, then the value that sub wrote into its own buffer
 * (sub->out, from sub->start). The sub-writer's error fails w. */
void kafka_wire_put_tag(struct kafka_wire_wr *w, uint32_t tag, const struct kafka_wire_wr *sub);

/* ---- headers and frames ---- */

struct kafka_wire_req_hdr {
    int16_t api_key;
    int16_t api_version;
    int32_t correlation_id;
    struct kafka_str client_id; /* may be null */
};

/*
 * Parses the request header at the start of a frame payload p[0..n). Returns the header's
 * size (the body starts there), TERN_EPROTO when it is malformed or shorter than 8 bytes, or
 * TERN_ENOTSUP for an api key without a message (kafka_msg.h), whose header version is
 * unknown. api_key, api_version and correlation_id are filled whenever n >= 8, even on
 * failure, so the caller can name the request. client_id points into p.
 */
int kafka_wire_req_hdr_decode(const uint8_t *p, size_t n, struct kafka_wire_req_hdr *h);
/* Appends h as a v1 or v2 header, chosen by h's api key and version (a client's encoder, for
 * tests). An api key without a message is a caller bug (abort). */
void kafka_wire_req_hdr_encode(const struct kafka_wire_req_hdr *h, struct buf *out);
/* The request header version (1 or 2) and response header version (0 or 1) of a request;
 * -1 for an api key without a message. */
int kafka_wire_req_hdr_version(int16_t api_key, int16_t api_version);
int kafka_wire_resp_hdr_version(int16_t api_key, int16_t api_version);
/* Appends the response header of the given request. An api key without a message is a caller
 * bug (abort). */
void kafka_wire_resp_hdr_encode(int16_t api_key, int16_t api_version, int32_t correlation_id,
                                struct buf *out);
/* Parses a response header (a client's decoder, for tests): returns its size, TERN_EPROTO, or
 * TERN_ENOTSUP for an api key without a message. */
int kafka_wire_resp_hdr_decode(const uint8_t *p, size_t n, int16_t api_key, int16_t api_version,
                               int32_t *correlation_id);

/*
 * The frame at p[0..n): an int32 size, then that many bytes. Returns the size once the whole
 * frame is in p (the payload is p[4..4+size)), TERN_EAGAIN while it is not, TERN_ETOOBIG as
 * soon as the size prefix exceeds cap (before the payload arrives), TERN_EPROTO for a negative
 * size.
 */
int kafka_wire_frame(const uint8_t *p, size_t n, int32_t cap);

#endif
