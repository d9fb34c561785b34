/*
 * amqp_frame.c - AMQP 0-9-1 framing, content headers and basic properties (see amqp_frame.h).
 *
 * The properties are described once, in flag order, by a table of (flag, type, member offset);
 * the decoder and the encoder both walk it, so they cannot disagree about order or types.
 */
#include "proto/amqp/amqp_frame.h"

#include <limits.h>
#include <string.h>

#include "base/tern.h"

static const uint8_t protocol_header[AMQP_PROTOCOL_HEADER_SIZE] = {'A', 'M', 'Q', 'P', 0, 0, 9, 1};

const char *amqp_reply_name(int code)
{
    switch (code) {
    case AMQP_REPLY_SUCCESS:
        return "REPLY_SUCCESS";
    case AMQP_CONTENT_TOO_LARGE:
        return "CONTENT_TOO_LARGE";
    case AMQP_NO_ROUTE:
        return "NO_ROUTE";
    case AMQP_NO_CONSUMERS:
        return "NO_CONSUMERS";
    case AMQP_CONNECTION_FORCED:
        return "CONNECTION_FORCED";
    case AMQP_INVALID_PATH:
        return "INVALID_PATH";
    case AMQP_ACCESS_REFUSED:
        return "ACCESS_REFUSED";
    case AMQP_NOT_FOUND:
        return "NOT_FOUND";
    case AMQP_RESOURCE_LOCKED:
        return "RESOURCE_LOCKED";
    case AMQP_PRECONDITION_FAILED:
        return "PRECONDITION_FAILED";
    case AMQP_FRAME_ERROR:
        return "FRAME_ERROR";
    case AMQP_SYNTAX_ERROR:
        return "SYNTAX_ERROR";
    case AMQP_COMMAND_INVALID:
        return "COMMAND_INVALID";
    case AMQP_CHANNEL_ERROR:
        return "CHANNEL_ERROR";
    case AMQP_UNEXPECTED_FRAME:
        return "UNEXPECTED_FRAME";
    case AMQP_RESOURCE_ERROR:
        return "RESOURCE_ERROR";
    case AMQP_NOT_ALLOWED:
        return "NOT_ALLOWED";
    case AMQP_NOT_IMPLEMENTED:
        return "NOT_IMPLEMENTED";
    case AMQP_INTERNAL_ERROR:
        return "INTERNAL_ERROR";
    default:
        return "UNKNOWN";
    }
}

/* ---- protocol header and frames -------------------------------------------------------- */

int amqp_protocol_header_check(const uint8_t *p, size_t n)
{
    size_t k = n < AMQP_PROTOCOL_HEADER_SIZE ? n : AMQP_PROTOCOL_HEADER_SIZE;
    if (k && memcmp(p, protocol_header, k) != 0)
        return TERN_EPROTO;
    return n < AMQP_PROTOCOL_HEADER_SIZE ? TERN_EAGAIN : AMQP_PROTOCOL_HEADER_SIZE;
}

void amqp_protocol_header_put(struct buf *out)
{
    buf_put(out, protocol_header, sizeof(protocol_header));
}

static bool known_type(uint8_t type)
{
    return type == AMQP_FRAME_METHOD || type == AMQP_FRAME_HEADER || type == AMQP_FRAME_BODY ||
           type == AMQP_FRAME_HEARTBEAT;
}

int amqp_frame_parse(const uint8_t *p, size_t n, uint32_t frame_max, struct amqp_frame *f)
{
    if (n >= 1 && !known_type(p[0]))
        return TERN_EPROTO;
    if (n < AMQP_FRAME_HEADER_SIZE)
        return TERN_EAGAIN;
    uint32_t size = buf_get_u32(p + 3);
    uint64_t total = (uint64_t)size + AMQP_FRAME_OVERHEAD;
    if (total > INT_MAX || (frame_max && total > frame_max))
        return TERN_ETOOBIG;
    if (n < total)
        return TERN_EAGAIN;
    if (p[total - 1] != AMQP_FRAME_END)
        return TERN_EPROTO;
    f->type = p[0];
    f->channel = buf_get_u16(p + 1);
    f->size = size;
    f->payload = p + AMQP_FRAME_HEADER_SIZE;
    return (int)total;
}

/* Starts a frame; returns the offset of its size field, patched by frame_end. */
static size_t frame_begin(struct buf *out, uint8_t type, uint16_t channel)
{
    buf_put_u8(out, type);
    buf_put_u16(out, channel);
    return buf_put_u32(out, 0);
}

static void frame_end(struct buf *out, size_t size_off)
{
    size_t size = out->len - size_off - 4;
    TERN_ASSERT(size <= UINT32_MAX);
    buf_patch_u32(out, size_off, (uint32_t)size);
    buf_put_u8(out, AMQP_FRAME_END);
}

void amqp_frame_put_method(struct buf *out, uint16_t channel, const struct amqp_method *m)
{
    size_t off = frame_begin(out, AMQP_FRAME_METHOD, channel);
    amqp_method_encode(m, out);
    frame_end(out, off);
}

void amqp_frame_put_header(struct buf *out, uint16_t channel, uint16_t class_id, uint64_t body_size,
                           const uint8_t *props, size_t props_len)
{
    size_t off = frame_begin(out, AMQP_FRAME_HEADER, channel);
    buf_put_u16(out, class_id);
    buf_put_u16(out, 0); /* weight */
    buf_put_u64(out, body_size);
    buf_put(out, props, props_len);
    frame_end(out, off);
}

void amqp_frame_put_body(struct buf *out, uint16_t channel, const uint8_t *p, size_t n)
{
    size_t off = frame_begin(out, AMQP_FRAME_BODY, channel);
    buf_put(out, p, n);
    frame_end(out, off);
}

void amqp_frame_put_heartbeat(struct buf *out)
{
    frame_end(out, frame_begin(out, AMQP_FRAME_HEARTBEAT, 0));
}

/* ---- content header and properties ----------------------------------------------------- */

int amqp_header_split(const uint8_t *p, size_t n, uint16_t *class_id, uint64_t *body_size,
                      const uint8_t **props, size_t *props_len)
{
    if (n < AMQP_CONTENT_HEADER_SIZE || buf_get_u16(p + 2) != 0)
        return TERN_EPROTO;
    *class_id = buf_get_u16(p);
    *body_size = buf_get_u64(p + 4);
    *props = p + 12;
    *props_len = n - 12;
    return 0;
}

int amqp_header_parse(const uint8_t *p, size_t n, uint16_t *class_id, uint64_t *body_size,
                      const uint8_t **props, size_t *props_len)
{
    struct amqp_props pr;
    if (amqp_header_split(p, n, class_id, body_size, props, props_len) < 0 ||
        amqp_props_decode(*props, *props_len, &pr) < 0)
        return TERN_EPROTO;
    return 0;
}

static const struct {
    uint16_t flag;
    enum amqp_wire_type type;
    uint16_t offset;
} props_layout[] = {
    {AMQP_P_CONTENT_TYPE, AMQP_WIRE_SHORTSTR, offsetof(struct amqp_props, content_type)},
    {AMQP_P_CONTENT_ENCODING, AMQP_WIRE_SHORTSTR, offsetof(struct amqp_props, content_encoding)},
    {AMQP_P_HEADERS, AMQP_WIRE_TABLE, offsetof(struct amqp_props, headers)},
    {AMQP_P_DELIVERY_MODE, AMQP_WIRE_OCTET, offsetof(struct amqp_props, delivery_mode)},
    {AMQP_P_PRIORITY, AMQP_WIRE_OCTET, offsetof(struct amqp_props, priority)},
    {AMQP_P_CORRELATION_ID, AMQP_WIRE_SHORTSTR, offsetof(struct amqp_props, correlation_id)},
    {AMQP_P_REPLY_TO, AMQP_WIRE_SHORTSTR, offsetof(struct amqp_props, reply_to)},
    {AMQP_P_EXPIRATION, AMQP_WIRE_SHORTSTR, offsetof(struct amqp_props, expiration)},
    {AMQP_P_MESSAGE_ID, AMQP_WIRE_SHORTSTR, offsetof(struct amqp_props, message_id)},
    {AMQP_P_TIMESTAMP, AMQP_WIRE_TIMESTAMP, offsetof(struct amqp_props, timestamp)},
    {AMQP_P_TYPE, AMQP_WIRE_SHORTSTR, offsetof(struct amqp_props, type)},
    {AMQP_P_USER_ID, AMQP_WIRE_SHORTSTR, offsetof(struct amqp_props, user_id)},
    {AMQP_P_APP_ID, AMQP_WIRE_SHORTSTR, offsetof(struct amqp_props, app_id)},
    {AMQP_P_CLUSTER_ID, AMQP_WIRE_SHORTSTR, offsetof(struct amqp_props, cluster_id)},
};

int amqp_props_decode(const uint8_t *p, size_t n, struct amqp_props *out)
{
    struct amqp_wire_rd r;
    memset(out, 0, sizeof(*out));
    amqp_wire_rd_init(&r, p, n);
    uint16_t flags = amqp_wire_get_short(&r);
    if (flags & 3)
        return TERN_EPROTO; /* a continuation word, or the unused bit 1 */
    out->flags = flags;
    for (size_t i = 0; i < TERN_ARRAY_LEN(props_layout); i++) {
        if (!(flags & props_layout[i].flag))
            continue;
        char *field = (char *)out + props_layout[i].offset;
        switch (props_layout[i].type) {
        case AMQP_WIRE_OCTET:
            *(uint8_t *)field = amqp_wire_get_octet(&r);
            break;
        case AMQP_WIRE_TIMESTAMP:
            *(uint64_t *)field = amqp_wire_get_timestamp(&r);
            break;
        case AMQP_WIRE_TABLE:
            *(struct amqp_str *)field = amqp_wire_get_table(&r);
            break;
        default:
            *(struct amqp_str *)field = amqp_wire_get_shortstr(&r);
            break;
        }
    }
    return amqp_wire_rd_end(&r);
}

void amqp_props_encode(const struct amqp_props *pr, struct buf *out)
{
    struct amqp_wire_wr w;
    uint16_t flags = pr->flags & AMQP_P_ALL;
    amqp_wire_wr_init(&w, out);
    amqp_wire_put_short(&w, flags);
    for (size_t i = 0; i < TERN_ARRAY_LEN(props_layout); i++) {
        if (!(flags & props_layout[i].flag))
            continue;
        const char *field = (const char *)pr + props_layout[i].offset;
        switch (props_layout[i].type) {
        case AMQP_WIRE_OCTET:
            amqp_wire_put_octet(&w, *(const uint8_t *)field);
            break;
        case AMQP_WIRE_TIMESTAMP:
            amqp_wire_put_timestamp(&w, *(const uint64_t *)field);
            break;
        case AMQP_WIRE_TABLE:
            amqp_wire_put_table(&w, *(const struct amqp_str *)field);
            break;
        default:
            amqp_wire_put_shortstr(&w, *(const struct amqp_str *)field);
            break;
        }
    }
}
