/*
 * fuzz_kafka_header.c - fuzz target for Kafka frames and request headers (proto/kafka/
 * kafka_wire.c), as a broker reads a connection: frames, each a request header and a body.
 *
 * Byte 0 picks the frame size cap (1 << (byte % 24)); the rest is a byte stream cut into
 * frames until one is incomplete or bad. Promises checked:
 *  - kafka_wire_frame returns TERN_EAGAIN, TERN_ETOOBIG, TERN_EPROTO or a size within the cap
 *    whose frame lies inside the input, and TERN_ETOOBIG exactly when the prefix exceeds the
 *    cap;
 *  - the header parser returns TERN_EPROTO, TERN_ENOTSUP (only for keys without a message) or
 *    a size within the frame, with the client id inside the frame; a parsed header encodes to
 *    no more bytes (unknown header tags are dropped) and that parses to the same header;
 *  - the body of a supported request decodes to 0, TERN_EPROTO or TERN_EFULL;
 *  - response headers of the request's kind parse as such: ApiVersions always v0.
 * A broken promise prints the failed check and aborts.
 */
#include "base/arena.h"
#include "base/tern.h"
#include "proto/kafka/kafka_msg.h"
#include "proto/kafka/kafka_wire.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile uint32_t sink; /* keeps the byte reads below from being optimised away */

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_kafka_header: check failed: %s at %s:%d\n", #cond, __FILE__,     \
                    __LINE__);                                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void check_reencode(const struct kafka_wire_req_hdr *h, int size)
{
    struct buf b = BUF_INIT;
    struct kafka_wire_req_hdr h2;
    kafka_wire_req_hdr_encode(h, &b);
    CHECK(b.len <= (size_t)size);
    CHECK(kafka_wire_req_hdr_decode(b.p, b.len, &h2) == (int)b.len);
    CHECK(h2.api_key == h->api_key && h2.api_version == h->api_version);
    CHECK(h2.correlation_id == h->correlation_id && kafka_str_eq(h2.client_id, h->client_id));
    buf_fini(&b);
}

static void check_body(const struct kafka_wire_req_hdr *h, const uint8_t *p, size_t n)
{
    static union kafka_msg_request m;
    struct arena a;
    arena_init(&a, 1u << 20);
    int rc = kafka_msg_request_decode(h->api_key, h->api_version, p, n, &a, &m);
    if (kafka_msg_supported(h->api_key, h->api_version))
        CHECK(rc == 0 || rc == TERN_EPROTO || rc == TERN_EFULL);
    else
        CHECK(rc == TERN_ENOTSUP);
    arena_fini(&a);
}

static void check_response_header(const struct kafka_wire_req_hdr *h, const uint8_t *p, size_t n)
{
    int32_t corr = 0;
    int version = kafka_wire_resp_hdr_version(h->api_key, h->api_version);
    int rc = kafka_wire_resp_hdr_decode(p, n, h->api_key, h->api_version, &corr);
    CHECK(version == 0 || version == 1);
    if (h->api_key == KAFKA_API_API_VERSIONS)
        CHECK(version == 0);
    CHECK(rc == TERN_EPROTO || (rc >= 4 + version && (size_t)rc <= n));
    if (rc == 4)
        CHECK(corr == (int32_t)buf_get_u32(p));
}

/* One frame payload p[0..n) (a copy of exactly n bytes). */
static void check_frame(const uint8_t *p, size_t n)
{
    struct kafka_wire_req_hdr h;
    int rc = kafka_wire_req_hdr_decode(p, n, &h);
    CHECK(rc == TERN_EPROTO || rc == TERN_ENOTSUP || (rc >= 10 && (size_t)rc <= n));
    if (rc == TERN_ENOTSUP)
        CHECK(n >= 8 && kafka_msg_api_lookup(h.api_key) == NULL);
    if (n >= 8)
        CHECK(h.correlation_id == (int32_t)buf_get_u32(p + 4));
    if (rc < 0)
        return;
    if (h.client_id.len >= 0) {
        CHECK(h.client_id.p >= p && h.client_id.p + h.client_id.len <= p + n);
        for (int32_t i = 0; i < h.client_id.len; i++)
            sink += h.client_id.p[i];
    }
    check_reencode(&h, rc);
    check_body(&h, p + rc, n - (size_t)rc);
    check_response_header(&h, p, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int32_t cap = (int32_t)1 << (data[0] % 24);
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    for (;;) {
        int rc = kafka_wire_frame(p, n, cap);
        CHECK(rc == TERN_EAGAIN || rc == TERN_ETOOBIG || rc == TERN_EPROTO || rc >= 0);
        if (n >= 4) {
            int32_t prefix = (int32_t)buf_get_u32(p);
            CHECK((rc == TERN_ETOOBIG) == (prefix > cap));
            CHECK((rc == TERN_EPROTO) == (prefix < 0));
        } else {
            CHECK(rc == TERN_EAGAIN);
        }
        if (rc < 0)
            return 0;
        CHECK(rc <= cap && 4 + (size_t)rc <= n);
        uint8_t *frame = malloc(rc ? (size_t)rc : 1); /* exact size, for ASan */
        CHECK(frame != NULL);
        memcpy(frame, p + 4, (size_t)rc);
        check_frame(frame, (size_t)rc);
        free(frame);
        p += 4 + (size_t)rc;
        n -= 4 + (size_t)rc;
    }
}
