/*
 * amqp_frame.h - AMQP 0-9-1 framing: the protocol header, frames, content headers and the
 * basic class's properties, plus the reply codes.
 *
 * Pure: no sockets, no allocation, no logging. Parsers return the bytes consumed, TERN_EAGAIN
 * (need more input; they never read past the n bytes given) or a typed error that the session
 * maps to a reply code. Writers append to a struct buf and never fail.
 *
 *   protocol header  "AMQP" 0 0 9 1
 *   frame            u8 type, u16 channel, u32 size, size bytes of payload, u8 0xCE
 *   method payload   u16 class id, u16 method id, arguments (amqp_method.h)
 *   header payload   u16 class id, u16 weight (0), u64 body size, u16 property flags,
 *                    the properties whose flag is set, in flag order
 *   body payload     message bytes
 *   heartbeat        type 8 on channel 0, empty payload
 */
#ifndef TERN_AMQP_FRAME_H
#define TERN_AMQP_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "proto/amqp/amqp_method.h"

enum {
    AMQP_FRAME_METHOD = 1,
    AMQP_FRAME_HEADER = 2,
    AMQP_FRAME_BODY = 3,
    AMQP_FRAME_HEARTBEAT = 8
};

#define AMQP_FRAME_END 0xCE
#define AMQP_FRAME_OVERHEAD 8 /* 7-byte header + frame-end octet */
#define AMQP_FRAME_HEADER_SIZE 7
#define AMQP_FRAME_MIN_SIZE 4096
#define AMQP_PROTOCOL_HEADER_SIZE 8
#define AMQP_CONTENT_HEADER_SIZE 14 /* class, weight, body size, flags: before the properties */

/* Reply codes (connection.close, channel.close, basic.return). */
enum {
    AMQP_REPLY_SUCCESS = 200,
    AMQP_CONTENT_TOO_LARGE = 311,
    AMQP_NO_ROUTE = 312,
    AMQP_NO_CONSUMERS = 313,
    AMQP_CONNECTION_FORCED = 320,
    AMQP_INVALID_PATH = 402,
    AMQP_ACCESS_REFUSED = 403,
    AMQP_NOT_FOUND = 404,
    AMQP_RESOURCE_LOCKED = 405,
    AMQP_PRECONDITION_FAILED = 406,
    AMQP_FRAME_ERROR = 501,
    AMQP_SYNTAX_ERROR = 502,
    AMQP_COMMAND_INVALID = 503,
    AMQP_CHANNEL_ERROR = 504,
    AMQP_UNEXPECTED_FRAME = 505,
    AMQP_RESOURCE_ERROR = 506,
    AMQP_NOT_ALLOWED = 530,
    AMQP_NOT_IMPLEMENTED = 540,
    AMQP_INTERNAL_ERROR = 541,
};

/* RabbitMQ's upper-snake name of a reply code ("NOT_FOUND"), the prefix of its reply texts;
 * "UNKNOWN" for other codes. */
const char *amqp_reply_name(int code);

struct amqp_frame {
    uint8_t type;
    uint16_t channel;
    uint32_t size;          /* payload bytes */
    const uint8_t *payload; /* points into the parsed input */
};

/* Checks the 8-byte protocol header at p[0..n). Returns 8 when it is "AMQP" 0 0 9 1,
 * TERN_EAGAIN when fewer than 8 bytes are there and they match so far, TERN_EPROTO otherwise
 * (the server then answers with its own protocol header and closes). */
int amqp_protocol_header_check(const uint8_t *p, size_t n);
void amqp_protocol_header_put(struct buf *out);

/*
 * Parses one frame from p[0..n). Returns the bytes consumed (size + 8) with *f filled (payload
 * points into p), TERN_EAGAIN when the frame is not complete yet, TERN_ETOOBIG when size + 8 >
 * frame_max (0: no limit but the int return, INT_MAX) - known from the 7-byte header alone, so
 * the caller can close with 501 FRAME_ERROR before the payload arrives - or TERN_EPROTO for an
 * unknown frame type (also known from the header) or a frame-end octet other than 0xCE.
 */
int amqp_frame_parse(const uint8_t *p, size_t n, uint32_t frame_max, struct amqp_frame *f);

/* Appends a whole frame. The caller keeps payloads within the negotiated frame_max. */
void amqp_frame_put_method(struct buf *out, uint16_t channel, const struct amqp_method *m);
/* props: the encoded property flags + property list (as amqp_props_encode produces, or as
 * received in a content header). */
void amqp_frame_put_header(struct buf *out, uint16_t channel, uint16_t class_id, uint64_t body_size,
                           const uint8_t *props, size_t props_len);
void amqp_frame_put_body(struct buf *out, uint16_t channel, const uint8_t *p, size_t n);
void amqp_frame_put_heartbeat(struct buf *out);

/*
 * Parses a content header payload p[0..n): u16 class id, u16 weight (must be 0), u64 body size,
 * then the properties. Returns 0 or TERN_EPROTO; *props, *props_len point at the flags + list
 * inside p, checked with amqp_props_decode (the basic class's layout: the only content class).
 * The class id is not checked against the method: the session does that.
 */
int amqp_header_parse(const uint8_t *p, size_t n, uint16_t *class_id, uint64_t *body_size,
                      const uint8_t **props, size_t *props_len);
/* amqp_header_parse without checking the properties: for a caller that decodes them itself
 * (once, from its own copy) with amqp_props_decode. */
int amqp_header_split(const uint8_t *p, size_t n, uint16_t *class_id, uint64_t *body_size,
                      const uint8_t **props, size_t *props_len);

/* basic class properties, flag bits 15..2 in this order */
enum {
    AMQP_P_CONTENT_TYPE = 1 << 15,
    AMQP_P_CONTENT_ENCODING = 1 << 14,
    AMQP_P_HEADERS = 1 << 13,
    AMQP_P_DELIVERY_MODE = 1 << 12,
    AMQP_P_PRIORITY = 1 << 11,
    AMQP_P_CORRELATION_ID = 1 << 10,
    AMQP_P_REPLY_TO = 1 << 9,
    AMQP_P_EXPIRATION = 1 << 8,
    AMQP_P_MESSAGE_ID = 1 << 7,
    AMQP_P_TIMESTAMP = 1 << 6,
    AMQP_P_TYPE = 1 << 5,
    AMQP_P_USER_ID = 1 << 4,
    AMQP_P_APP_ID = 1 << 3,
    AMQP_P_CLUSTER_ID = 1 << 2,
};
#define AMQP_P_ALL 0xFFFC /* every property flag */

/* The basic class's properties; a field is meaningful only when its flag is set in flags. */
struct amqp_props {
    uint16_t flags;
    struct amqp_str content_type, content_encoding, headers /* whole encoded table */,
        correlation_id, reply_to, expiration, message_id, type, user_id, app_id, cluster_id;
    uint8_t delivery_mode, priority;
    uint64_t timestamp;
};

/* Decodes flags + list from p[0..n), which must be used up exactly. A flags word with bit 0
 * (continuation) or bit 1 set is TERN_EPROTO. Returns 0 or TERN_EPROTO; *out is zeroed first
 * and its slices point into p. */
int amqp_props_decode(const uint8_t *p, size_t n, struct amqp_props *out);
/* Appends flags + list: the properties whose flag is set in pr->flags (bits 1 and 0 are
 * written as zero). Short strings longer than 255 bytes are cut (amqp_wire_put_shortstr). */
void amqp_props_encode(const struct amqp_props *pr, struct buf *out);

#endif
