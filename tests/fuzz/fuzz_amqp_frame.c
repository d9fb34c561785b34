/*
 * fuzz_amqp_frame.c - fuzz target for AMQP 0-9-1 framing (proto/amqp/amqp_frame.c): the input
 * is what a client might send down a socket.
 *
 * Byte 0 picks frame_max (0 = no limit, or 4096 << k); an optional protocol header follows;
 * then frames are parsed in a loop as a session would, and each payload is decoded: method
 * frames with amqp_method_decode, content headers with amqp_header_parse and
 * amqp_props_decode. Promises checked:
 *  - the parser returns size + 8, TERN_EAGAIN, TERN_ETOOBIG or TERN_EPROTO, never reads past
 *    the bytes given (each frame is parsed again from an exactly sized copy), and any frame
 *    minus its last byte is TERN_EAGAIN;
 *  - ETOOBIG and EPROTO (for a bad type) are decided by the 7-byte header alone;
 *  - an accepted content header's properties re-encode to the same bytes, and the frame
 *    written back by amqp_frame_put_header is byte-identical;
 *  - a decoded method re-encodes (in a frame) to a frame of the same size that decodes again.
 * A broken promise prints the failed check and aborts.
 */
#include "base/tern.h"
#include "proto/amqp/amqp_frame.h"
#include "proto/amqp/amqp_method.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile uint32_t sink; /* keeps the byte reads below from being optimised away */

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_amqp_frame: check failed: %s at %s:%d\n", #cond, __FILE__,       \
                    __LINE__);                                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void touch(const uint8_t *p, size_t n)
{
    uint32_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc += p[i];
    sink += acc;
}

static void touch_str(struct amqp_str s)
{
    touch(s.p, s.len);
}

static void check_header(const struct amqp_frame *f)
{
    uint16_t class_id;
    uint64_t body_size;
    const uint8_t *props;
    size_t props_len;
    if (amqp_header_parse(f->payload, f->size, &class_id, &body_size, &props, &props_len) < 0)
        return;
    CHECK(props == f->payload + 12 && props_len == f->size - 12);
    struct amqp_props pr;
    CHECK(amqp_props_decode(props, props_len, &pr) == 0);
    touch_str(pr.content_type);
    touch_str(pr.headers);
    touch_str(pr.cluster_id);

    struct buf b = BUF_INIT;
    amqp_props_encode(&pr, &b);
    CHECK(b.len == props_len && memcmp(b.p, props, props_len) == 0);
    buf_clear(&b);
    amqp_frame_put_header(&b, f->channel, class_id, body_size, props, props_len);
    CHECK(b.len == f->size + AMQP_FRAME_OVERHEAD);
    CHECK(memcmp(b.p + AMQP_FRAME_HEADER_SIZE, f->payload, f->size) == 0);
    buf_fini(&b);
}

static void check_method(const struct amqp_frame *f)
{
    struct amqp_method m, m2;
    int rc = amqp_method_decode(f->payload, f->size, &m);
    CHECK(rc == 0 || rc == TERN_ENOTSUP || rc == TERN_EPROTO);
    if (rc != 0)
        return;
    struct buf b = BUF_INIT;
    amqp_frame_put_method(&b, f->channel, &m);
    CHECK(b.len == f->size + AMQP_FRAME_OVERHEAD);
    struct amqp_frame g;
    CHECK(amqp_frame_parse(b.p, b.len, 0, &g) == (int)b.len);
    CHECK(g.type == AMQP_FRAME_METHOD && g.channel == f->channel && g.size == f->size);
    CHECK(amqp_method_decode(g.payload, g.size, &m2) == 0 && m2.id == m.id);
    buf_fini(&b);
}

/* Parses the frame at p[0..n) again from exact copies: whole, and short by one byte. */
static void check_exact(const uint8_t *p, size_t len, uint32_t frame_max)
{
    struct amqp_frame f;
    uint8_t *copy = malloc(len);
    CHECK(copy != NULL);
    memcpy(copy, p, len);
    CHECK(amqp_frame_parse(copy, len, frame_max, &f) == (int)len);
    CHECK(amqp_frame_parse(copy, len - 1, frame_max, &f) == TERN_EAGAIN);
    free(copy);
}

static bool known_type(uint8_t t)
{
    return t == AMQP_FRAME_METHOD || t == AMQP_FRAME_HEADER || t == AMQP_FRAME_BODY ||
           t == AMQP_FRAME_HEARTBEAT;
}

/* A refusal is for the right reason, decided as early as the protocol allows. */
static void check_error(const uint8_t *p, size_t n, uint32_t frame_max, int rc)
{
    struct amqp_frame f;
    CHECK(rc == TERN_EAGAIN || rc == TERN_ETOOBIG || rc == TERN_EPROTO);
    if (rc == TERN_EAGAIN) {
        CHECK(n < AMQP_FRAME_OVERHEAD || n < (size_t)buf_get_u32(p + 3) + AMQP_FRAME_OVERHEAD);
    } else if (rc == TERN_ETOOBIG) { /* from the 7-byte header alone */
        CHECK(n >= AMQP_FRAME_HEADER_SIZE);
        CHECK(amqp_frame_parse(p, AMQP_FRAME_HEADER_SIZE, frame_max, &f) == TERN_ETOOBIG);
    } else if (!known_type(p[0])) { /* from the first byte */
        CHECK(amqp_frame_parse(p, 1, frame_max, &f) == TERN_EPROTO);
    } else { /* a bad frame-end octet */
        size_t len = (size_t)buf_get_u32(p + 3) + AMQP_FRAME_OVERHEAD;
        CHECK(n >= len && p[len - 1] != AMQP_FRAME_END);
    }
}

static void parse_stream(const uint8_t *p, size_t n, uint32_t frame_max)
{
    size_t pos = 0;
    for (;;) {
        struct amqp_frame f;
        int rc = amqp_frame_parse(p + pos, n - pos, frame_max, &f);
        if (rc <= 0) {
            check_error(p + pos, n - pos, frame_max, rc);
            return;
        }
        CHECK((size_t)rc == (size_t)f.size + AMQP_FRAME_OVERHEAD && (size_t)rc <= n - pos);
        CHECK(frame_max == 0 || (uint32_t)rc <= frame_max);
        CHECK(f.payload == p + pos + AMQP_FRAME_HEADER_SIZE);
        check_exact(p + pos, (size_t)rc, frame_max);
        touch(f.payload, f.size);
        if (f.type == AMQP_FRAME_METHOD)
            check_method(&f);
        else if (f.type == AMQP_FRAME_HEADER)
            check_header(&f);
        pos += (size_t)rc;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint32_t frame_max = (data[0] & 7) == 7 ? 0 : 4096u << (data[0] & 7);
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    int rc = amqp_protocol_header_check(p, n);
    CHECK(rc == AMQP_PROTOCOL_HEADER_SIZE || rc == TERN_EAGAIN || rc == TERN_EPROTO);
    if (rc == AMQP_PROTOCOL_HEADER_SIZE) {
        p += rc;
        n -= (size_t)rc;
    }
    uint8_t *copy = malloc(n ? n : 1); /* exact size, so ASan catches a read past the end */
    CHECK(copy != NULL);
    if (n)
        memcpy(copy, p, n);
    parse_stream(copy, n, frame_max);
    free(copy);
    return 0;
}
