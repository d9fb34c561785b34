/*
 * fuzz_kafka_request.c - fuzz target for the Kafka message codec (proto/kafka/kafka_msg.c).
 *
 * Byte 0 picks the API (its index in kafka_msg_apis, modulo the count, so every API is reached
 * without guessing keys), byte 1 is the version as a signed byte (so unsupported versions come
 * up too), and the rest is decoded both as that API's request and as its response. Promises
 * checked for each:
 *  - the result is 0, TERN_EPROTO, TERN_EFULL, or TERN_ENOTSUP exactly when the version is
 *    unsupported;
 *  - every slice lies inside the input, nulls appear only where the version allows them, and
 *    strings are at most 32767 bytes;
 *  - the decoded message encodes, to no more bytes than the input (unknown tags and overlong
 *    varints are dropped), that encoding decodes to an equal message, and encoding that gives
 *    the same bytes again.
 * A broken promise prints the failed check and aborts.
 */
#include "base/arena.h"
#include "base/tern.h"
#include "proto/kafka/kafka_msg.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_CAP (4u << 20)

static volatile uint32_t sink; /* keeps the byte reads below from being optimised away */

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_kafka_request: check failed: %s at %s:%d\n", #cond, __FILE__,    \
                    __LINE__);                                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct input {
    const uint8_t *p;
    size_t n;
};

static bool nullable_at(const struct kafka_msg_field *f, int16_t v)
{
    return f->null_min >= 0 && v >= f->null_min && v <= f->null_max;
}

static void check_struct(const struct kafka_msg_struct *d, int16_t v, const void *s,
                         struct input in);

/* One value (a field, or an element of an array field) at p. */
static void check_value(const struct kafka_msg_field *f, int16_t v, const void *p, bool nullable,
                        struct input in)
{
    if (f->type == KAFKA_MSG_STRUCT) {
        check_struct(f->elem, v, p, in);
        return;
    }
    if (f->type != KAFKA_MSG_STRING && f->type != KAFKA_MSG_BYTES && f->type != KAFKA_MSG_RECORDS)
        return;
    const struct kafka_str *s = p;
    CHECK(s->len >= -1);
    if (s->len == -1) {
        CHECK(nullable && s->p == NULL);
        return;
    }
    if (f->type == KAFKA_MSG_STRING)
        CHECK(s->len <= KAFKA_STRING_MAX);
    CHECK(s->p >= in.p && s->p <= in.p + in.n && (size_t)s->len <= (size_t)(in.p + in.n - s->p));
    for (int32_t i = 0; i < s->len; i++)
        sink += s->p[i];
}

static void check_struct(const struct kafka_msg_struct *d, int16_t v, const void *s,
                         struct input in)
{
    for (unsigned i = 0; i < d->nfields; i++) {
        const struct kafka_msg_field *f = &d->fields[i];
        const char *fp = (const char *)s + f->offset;
        if (v < f->min_version || v > f->max_version)
            continue;
        if (!f->array) {
            check_value(f, v, fp, nullable_at(f, v), in);
            continue;
        }
        const struct kafka_msg_array *x = (const void *)fp;
        CHECK(x->n >= -1);
        CHECK(x->n != -1 || nullable_at(f, v));
        CHECK(x->n <= 0 || x->v != NULL);
        for (int32_t k = 0; k < x->n; k++)
            check_value(f, v, (const char *)x->v + (size_t)k * f->elem_size, false, in);
    }
}

static int decode(const struct kafka_msg_api *api, bool resp, int16_t v, const uint8_t *p, size_t n,
                  struct arena *a, void *out)
{
    return resp ? kafka_msg_response_decode(api->key, v, p, n, a, out)
                : kafka_msg_request_decode(api->key, v, p, n, a, out);
}

static int encode(const struct kafka_msg_api *api, bool resp, int16_t v, const void *m,
                  struct buf *out)
{
    return resp ? kafka_msg_response_encode(api->key, v, m, out)
                : kafka_msg_request_encode(api->key, v, m, out);
}

union msg {
    union kafka_msg_request req;
    union kafka_msg_response resp;
};

/* The decoded message m (from n input bytes) survives encode -> decode -> encode. */
static void check_round_trip(const struct kafka_msg_api *api, bool resp, int16_t v,
                             const union msg *m, size_t n)
{
    const struct kafka_msg_struct *d = resp ? api->response : api->request;
    static union msg m2;
    struct arena a;
    struct buf b = BUF_INIT, b2 = BUF_INIT;
    arena_init(&a, ARENA_CAP);
    CHECK(encode(api, resp, v, m, &b) == 0);
    CHECK(b.len <= n);
    uint8_t *copy = malloc(b.len ? b.len : 1); /* exact size, so ASan catches overreads */
    CHECK(copy != NULL);
    if (b.len)
        memcpy(copy, b.p, b.len);
    CHECK(decode(api, resp, v, copy, b.len, &a, &m2) == 0);
    check_struct(d, v, &m2, (struct input){copy, b.len});
    CHECK(kafka_msg_equal(d, v, m, &m2));
    CHECK(encode(api, resp, v, &m2, &b2) == 0);
    CHECK(b2.len == b.len && (b.len == 0 || memcmp(b.p, b2.p, b.len) == 0));
    free(copy);
    buf_fini(&b);
    buf_fini(&b2);
    arena_fini(&a);
}

static void check_message(const struct kafka_msg_api *api, bool resp, int16_t v, const uint8_t *p,
                          size_t n)
{
    static union msg m; /* static: the unions are a few kilobytes */
    struct arena a;
    arena_init(&a, ARENA_CAP);
    int rc = decode(api, resp, v, p, n, &a, &m);
    bool supported = kafka_msg_supported(api->key, v);
    CHECK(rc == 0 || rc == TERN_EPROTO || rc == TERN_EFULL || rc == TERN_ENOTSUP);
    CHECK((rc == TERN_ENOTSUP) == !supported);
    if (rc == 0) {
        check_struct(resp ? api->response : api->request, v, &m, (struct input){p, n});
        check_round_trip(api, resp, v, &m, n);
    }
    arena_fini(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const struct kafka_msg_api *api = &kafka_msg_apis[data[0] % KAFKA_MSG_API_COUNT];
    int16_t v = (int8_t)data[1];
    uint8_t *body = malloc(size - 2 ? size - 2 : 1); /* exact size, so ASan catches overreads */
    CHECK(body != NULL);
    memcpy(body, data + 2, size - 2);
    check_message(api, false, v, body, size - 2);
    check_message(api, true, v, body, size - 2);
    free(body);
    return 0;
}
