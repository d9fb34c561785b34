/*
 * kafka_codec_test.c - the Kafka codec: every request and response of every API at every
 * supported version round-trips and refuses every truncation; byte vectors written out by hand
 * from the protocol documentation (headers, frames, flexible and tagged encodings); defaults of
 * absent fields; hostile counts and lengths; the API table. The non-flexible vectors (ApiVersions
 * v0, Metadata v1, Produce v3) are also the bytes kafka-python 2.0.2's encoder writes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/arena.h"
#include "base/tern.h"
#include "proto/kafka/kafka_msg.h"
#include "proto/kafka/kafka_wire.h"

#define LIT(s) (const uint8_t *)(s), (sizeof(s) - 1)
#define ARENA_CAP (64u << 20)

/* A copy of p[0..n) in a block of exactly n bytes, so ASan catches a read past the end. */
static uint8_t *exact_copy(const void *p, size_t n)
{
    uint8_t *q = malloc(n ? n : 1);
    assert_non_null(q);
    if (n)
        memcpy(q, p, n);
    return q;
}

static void assert_str(struct kafka_str s, const char *want)
{
    assert_int_equal(s.len, strlen(want));
    assert_memory_equal(s.p, want, (size_t)s.len);
}

/* ---- filling any message from its descriptor ------------------------------------------- */

struct fill {
    struct arena *a; /* strings and arrays of the message being filled */
    unsigned seed;   /* 0: zeros, empty; 1: small distinct values, two elements;
                        2: extremes, long strings, null wherever the version allows it */
    uint32_t k;      /* counter making the values distinct */
};

static bool nullable_at(const struct kafka_msg_field *f, int16_t v)
{
    return f->null_min >= 0 && v >= f->null_min && v <= f->null_max;
}

static struct kafka_str fill_str(struct fill *fl, bool nullable)
{
    if (fl->seed == 0)
        return (struct kafka_str){NULL, 0};
    if (fl->seed == 2 && nullable)
        return KAFKA_STR_NULL;
    size_t n = fl->seed == 1 ? 1 + fl->k % 7 : 200 + fl->k % 3;
    uint8_t *p = arena_alloc(fl->a, n, 1);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)('a' + (fl->k + i) % 26);
    return (struct kafka_str){p, (int32_t)n};
}

static void fill_struct(struct fill *fl, const struct kafka_msg_struct *d, int16_t v, void *s);

static void fill_value(struct fill *fl, const struct kafka_msg_field *f, int16_t v, void *p,
                       bool nullable)
{
    uint32_t k = ++fl->k;
    bool hi = k % 2; /* seed 2 alternates minimum and maximum */
    switch (f->type) {
    case KAFKA_MSG_INT8:
        *(int8_t *)p = fl->seed == 0 ? 0 : fl->seed == 1 ? (int8_t)k : hi ? INT8_MAX : INT8_MIN;
        break;
    case KAFKA_MSG_INT16:
        *(int16_t *)p = fl->seed == 0   ? 0
                        : fl->seed == 1 ? (int16_t)(k * 3)
                        : hi            ? INT16_MAX
                                        : INT16_MIN;
        break;
    case KAFKA_MSG_INT32:
        *(int32_t *)p = fl->seed == 0   ? 0
                        : fl->seed == 1 ? (int32_t)(k * 1000003u)
                        : hi            ? INT32_MAX
                                        : INT32_MIN;
        break;
    case KAFKA_MSG_INT64:
        *(int64_t *)p = fl->seed == 0   ? 0
                        : fl->seed == 1 ? -(int64_t)k * 1000000007
                        : hi            ? INT64_MAX
                                        : INT64_MIN;
        break;
    case KAFKA_MSG_BOOL:
        *(bool *)p = fl->seed == 2 || (fl->seed == 1 && hi);
        break;
    case KAFKA_MSG_STRUCT:
        fill_struct(fl, f->elem, v, p);
        break;
    default:
        *(struct kafka_str *)p = fill_str(fl, nullable);
        break;
    }
}

static void fill_field(struct fill *fl, const struct kafka_msg_field *f, int16_t v, void *p)
{
    if (!f->array) {
        fill_value(fl, f, v, p, nullable_at(f, v));
        return;
    }
    struct kafka_msg_array *x = p;
    x->n = fl->seed == 0 ? 0 : fl->seed == 1 ? 2 : nullable_at(f, v) ? -1 : 1;
    x->v = x->n > 0 ? arena_alloc(fl->a, (size_t)x->n, f->elem_size) : NULL;
    for (int32_t i = 0; i < x->n; i++)
        fill_value(fl, f, v, (char *)x->v + (size_t)i * f->elem_size, false);
}

static void fill_struct(struct fill *fl, const struct kafka_msg_struct *d, int16_t v, void *s)
{
    memset(s, 0, d->size);
    for (unsigned i = 0; i < d->nfields; i++) {
        const struct kafka_msg_field *f = &d->fields[i];
        if (v >= f->min_version && v <= f->max_version)
            fill_field(fl, f, v, (char *)s + f->offset);
    }
}

/* ---- round trips ------------------------------------------------------------------------ */

union msg {
    union kafka_msg_request req;
    union kafka_msg_response resp;
};

static int encode(const struct kafka_msg_api *api, bool resp, int16_t v, const void *m,
                  struct buf *out)
{
    return resp ? kafka_msg_response_encode(api->key, v, m, out)
                : kafka_msg_request_encode(api->key, v, m, out);
}

static int decode(const struct kafka_msg_api *api, bool resp, int16_t v, const uint8_t *p, size_t n,
                  struct arena *a, void *out)
{
    return resp ? kafka_msg_response_decode(api->key, v, p, n, a, out)
                : kafka_msg_request_decode(api->key, v, p, n, a, out);
}

/* Every proper prefix of the encoding fails, and so does one trailing byte. */
static void check_truncations(const struct kafka_msg_api *api, bool resp, int16_t v,
                              const struct buf *b, struct arena *a)
{
    union msg d;
    for (size_t n = 0; n < b->len; n++) {
        uint8_t *p = exact_copy(b->p, n);
        arena_reset(a);
        int rc = decode(api, resp, v, p, n, a, &d);
        if (rc != TERN_EPROTO)
            fail_msg("%s %s v%d: prefix of %zu/%zu bytes gave %d", api->name,
                     resp ? "response" : "request", v, n, b->len, rc);
        free(p);
    }
    uint8_t *p = calloc(1, b->len + 1);
    assert_non_null(p);
    if (b->len)
        memcpy(p, b->p, b->len);
    assert_int_equal(decode(api, resp, v, p, b->len + 1, a, &d), TERN_EPROTO);
    free(p);
}

static void round_trip(const struct kafka_msg_api *api, bool resp, int16_t v, unsigned seed,
                       bool truncate)
{
    const struct kafka_msg_struct *desc = resp ? api->response : api->request;
    struct arena fa, da;
    arena_init(&fa, ARENA_CAP);
    arena_init(&da, ARENA_CAP);
    struct fill fl = {&fa, seed, 0};
    union msg m, d, d2;
    fill_struct(&fl, desc, v, &m);

    struct buf b = BUF_INIT, b2 = BUF_INIT;
    int rc = encode(api, resp, v, &m, &b);
    if (rc != 0)
        fail_msg("%s %s v%d seed %u: encode gave %d", api->name, resp ? "response" : "request", v,
                 seed, rc);
    uint8_t *p = exact_copy(b.p, b.len);
    rc = decode(api, resp, v, p, b.len, &da, &d);
    if (rc != 0)
        fail_msg("%s %s v%d seed %u: decode gave %d", api->name, resp ? "response" : "request", v,
                 seed, rc);
    if (!kafka_msg_equal(desc, v, &m, &d))
        fail_msg("%s %s v%d seed %u: decoded message differs", api->name,
                 resp ? "response" : "request", v, seed);
    assert_int_equal(encode(api, resp, v, &d, &b2), 0);
    assert_int_equal(b2.len, b.len);
    assert_memory_equal(b2.p, b.p, b.len);
    assert_int_equal(decode(api, resp, v, b2.p, b2.len, &da, &d2), 0);
    assert_true(kafka_msg_equal(desc, v, &d, &d2));
    if (truncate)
        check_truncations(api, resp, v, &b, &da);
    free(p);
    buf_fini(&b);
    buf_fini(&b2);
    arena_fini(&fa);
    arena_fini(&da);
}

static void test_round_trip_every_message(void **state)
{
    (void)state;
    for (unsigned i = 0; i < KAFKA_MSG_API_COUNT; i++) {
        const struct kafka_msg_api *api = &kafka_msg_apis[i];
        for (int16_t v = api->min_version; v <= api->max_version; v++)
            for (unsigned seed = 0; seed < 3; seed++) {
                round_trip(api, false, v, seed, false);
                round_trip(api, true, v, seed, false);
            }
    }
}

/* Every truncation of every message, filled each of the three ways. */
static void test_truncated_every_message(void **state)
{
    (void)state;
    for (unsigned i = 0; i < KAFKA_MSG_API_COUNT; i++) {
        const struct kafka_msg_api *api = &kafka_msg_apis[i];
        for (int16_t v = api->min_version; v <= api->max_version; v++)
            for (unsigned seed = 0; seed < 3; seed++) {
                round_trip(api, false, v, seed, true);
                round_trip(api, true, v, seed, true);
            }
    }
}

static void test_unsupported_versions(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, ARENA_CAP);
    for (unsigned i = 0; i < KAFKA_MSG_API_COUNT; i++) {
        const struct kafka_msg_api *api = &kafka_msg_apis[i];
        union msg m;
        memset(&m, 0, sizeof(m));
        struct buf b = BUF_INIT;
        const int16_t bad[] = {(int16_t)(api->min_version - 1), (int16_t)(api->max_version + 1), -1,
                               INT16_MAX};
        for (size_t k = 0; k < TERN_ARRAY_LEN(bad); k++) {
            if (bad[k] >= api->min_version && bad[k] <= api->max_version)
                continue;
            for (int resp = 0; resp < 2; resp++) {
                assert_int_equal(encode(api, resp, bad[k], &m, &b), TERN_ENOTSUP);
                assert_int_equal(decode(api, resp, bad[k], LIT(""), &a, &m), TERN_ENOTSUP);
            }
            assert_false(kafka_msg_supported(api->key, bad[k]));
        }
        assert_int_equal(b.len, 0);
    }
    union msg m;
    struct buf b = BUF_INIT;
    for (int16_t key = -1; key < 100; key++) {
        if (kafka_msg_api_lookup(key))
            continue;
        assert_int_equal(kafka_msg_request_decode(key, 0, LIT(""), &a, &m), TERN_ENOTSUP);
        assert_int_equal(kafka_msg_response_decode(key, 0, LIT(""), &a, &m), TERN_ENOTSUP);
        assert_int_equal(kafka_msg_request_encode(key, 0, &m, &b), TERN_ENOTSUP);
        assert_int_equal(kafka_msg_response_encode(key, 0, &m, &b), TERN_ENOTSUP);
        assert_string_equal(kafka_msg_api_name(key), "unknown");
    }
    arena_fini(&a);
}

/* ---- the table -------------------------------------------------------------------------- */

static void test_api_table(void **state)
{
    (void)state;
    static const struct {
        int16_t key, min, max, flex;
        const char *name;
    } want[] = {
        {0, 3, 7, 9, "Produce"},           {1, 4, 11, 12, "Fetch"},
        {2, 1, 5, 6, "ListOffsets"},       {3, 0, 8, 9, "Metadata"},
        {8, 2, 7, 8, "OffsetCommit"},      {9, 1, 7, 6, "OffsetFetch"},
        {10, 0, 2, 3, "FindCoordinator"},  {11, 0, 5, 6, "JoinGroup"},
        {12, 0, 3, 4, "Heartbeat"},        {13, 0, 3, 4, "LeaveGroup"},
        {14, 0, 3, 4, "SyncGroup"},        {15, 0, 4, 5, "DescribeGroups"},
        {16, 0, 2, 3, "ListGroups"},       {17, 0, 1, -1, "SaslHandshake"},
        {18, 0, 3, 3, "ApiVersions"},      {19, 2, 4, 5, "CreateTopics"},
        {20, 1, 3, 4, "DeleteTopics"},     {21, 0, 1, 2, "DeleteRecords"},
        {22, 0, 4, 2, "InitProducerId"},   {23, 0, 3, 4, "OffsetForLeaderEpoch"},
        {32, 1, 2, 4, "DescribeConfigs"},  {33, 0, 1, 2, "AlterConfigs"},
        {36, 0, 1, 2, "SaslAuthenticate"}, {37, 0, 1, 2, "CreatePartitions"},
        {42, 0, 1, 2, "DeleteGroups"},
    };
    assert_int_equal(KAFKA_MSG_API_COUNT, TERN_ARRAY_LEN(want));
    for (size_t i = 0; i < TERN_ARRAY_LEN(want); i++) {
        const struct kafka_msg_api *api = kafka_msg_api_lookup(want[i].key);
        assert_non_null(api);
        assert_ptr_equal(api, &kafka_msg_apis[i]); /* ordered by key */
        assert_int_equal(api->min_version, want[i].min);
        assert_int_equal(api->max_version, want[i].max);
        assert_int_equal(api->first_flexible, want[i].flex);
        assert_string_equal(api->name, want[i].name);
        assert_string_equal(kafka_msg_api_name(want[i].key), want[i].name);
        assert_true(kafka_msg_supported(want[i].key, want[i].min));
        assert_true(kafka_msg_supported(want[i].key, want[i].max));
    }
    assert_true(kafka_msg_flexible(KAFKA_API_API_VERSIONS, 3));
    assert_true(kafka_msg_flexible(KAFKA_API_API_VERSIONS, 4)); /* unsupported, still flexible */
    assert_false(kafka_msg_flexible(KAFKA_API_API_VERSIONS, 2));
    assert_true(kafka_msg_flexible(KAFKA_API_METADATA, 9));
    assert_false(kafka_msg_flexible(KAFKA_API_METADATA, 8));
    assert_false(kafka_msg_flexible(KAFKA_API_SASL_HANDSHAKE, 1));
    assert_false(kafka_msg_flexible(99, 5));
    assert_null(kafka_msg_api_lookup(4));
    assert_null(kafka_msg_api_lookup(-1));
}

/* ---- headers and frames ----------------------------------------------------------------- */

/* A frame reader and a v1 header: the ApiVersions v0 request librdkafka falls back to. */
static void test_api_versions_v0_request_bytes(void **state)
{
    (void)state;
    static const char frame[] = "\x00\x00\x00\x0e" /* size 14 */
                                "\x00\x12\x00\x00" /* ApiVersions v0 */
                                "\x00\x00\x00\x01" /* correlation id 1 */
                                "\x00\x04test";    /* client id */
    const uint8_t *p = (const uint8_t *)frame;
    assert_int_equal(kafka_wire_frame(p, sizeof(frame) - 1, 1 << 20), 14);
    struct kafka_wire_req_hdr h;
    assert_int_equal(kafka_wire_req_hdr_decode(p + 4, 14, &h), 14);
    assert_int_equal(h.api_key, KAFKA_API_API_VERSIONS);
    assert_int_equal(h.api_version, 0);
    assert_int_equal(h.correlation_id, 1);
    assert_str(h.client_id, "test");
    struct kafka_api_versions_request req;
    assert_int_equal(kafka_api_versions_request_decode(p + 18, 0, 0, NULL, &req), 0);

    struct buf b = BUF_INIT;
    kafka_wire_req_hdr_encode(&h, &b);
    assert_int_equal(kafka_api_versions_request_encode(&req, 0, &b), 0);
    assert_int_equal(b.len, 14);
    assert_memory_equal(b.p, p + 4, 14);
    buf_fini(&b);
}

/* A flexible request: header v2 (client id still int16-prefixed, then tags), compact body. */
static void test_api_versions_v3_request_bytes(void **state)
{
    (void)state;
    static const char msg[] = "\x00\x12\x00\x03\x00\x00\x00\x05" /* ApiVersions v3, id 5 */
                              "\x00\x07rdkafka"                  /* client id */
                              "\x00"                             /* header tags */
                              "\x0blibrdkafka"                   /* compact string, 10 */
                              "\x07v2.0.2"                       /* compact string, 6 */
                              "\x00";                            /* body tags */
    const uint8_t *p = (const uint8_t *)msg;
    size_t n = sizeof(msg) - 1;
    struct kafka_wire_req_hdr h;
    assert_int_equal(kafka_wire_req_hdr_decode(p, n, &h), 18);
    assert_int_equal(h.correlation_id, 5);
    assert_str(h.client_id, "rdkafka");
    struct kafka_api_versions_request req;
    assert_int_equal(kafka_api_versions_request_decode(p + 18, n - 18, 3, NULL, &req), 0);
    assert_str(req.client_software_name, "librdkafka");
    assert_str(req.client_software_version, "v2.0.2");
    /* the same body is not a v2 request (v2 has no fields) */
    struct kafka_api_versions_request v2;
    assert_int_equal(kafka_api_versions_request_decode(p + 18, n - 18, 2, NULL, &v2), TERN_EPROTO);

    struct buf b = BUF_INIT;
    kafka_wire_req_hdr_encode(&h, &b);
    assert_int_equal(kafka_api_versions_request_encode(&req, 3, &b), 0);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.p, p, n);
    buf_fini(&b);
}

/* The KIP-511 rule: a v3 (flexible) ApiVersions response still has a v0 header. */
static void test_api_versions_v3_response_bytes(void **state)
{
    (void)state;
    static const char want[] = "\x00\x00\x00\x2a"             /* header v0: correlation id */
                               "\x00\x00"                     /* error code */
                               "\x03"                         /* compact array of 2 */
                               "\x00\x00\x00\x03\x00\x07\x00" /* Produce 3-7, no tags */
                               "\x00\x12\x00\x00\x00\x03\x00" /* ApiVersions 0-3, no tags */
                               "\x00\x00\x00\x00"             /* throttle time */
                               "\x00";                        /* no tagged fields */
    struct kafka_api_versions_response_api_key keys[] = {{0, 3, 7}, {18, 0, 3}};
    struct kafka_api_versions_response m = {.api_keys = {2, keys}, .finalized_features_epoch = -1};
    struct buf b = BUF_INIT;
    assert_int_equal(kafka_wire_resp_hdr_version(KAFKA_API_API_VERSIONS, 3), 0);
    kafka_wire_resp_hdr_encode(KAFKA_API_API_VERSIONS, 3, 42, &b);
    assert_int_equal(kafka_api_versions_response_encode(&m, 3, &b), 0);
    assert_int_equal(b.len, sizeof(want) - 1);
    assert_memory_equal(b.p, want, b.len);

    int32_t corr = 0;
    assert_int_equal(kafka_wire_resp_hdr_decode(b.p, b.len, KAFKA_API_API_VERSIONS, 3, &corr), 4);
    assert_int_equal(corr, 42);
    struct arena a;
    arena_init(&a, 4096);
    struct kafka_api_versions_response d;
    assert_int_equal(kafka_api_versions_response_decode(b.p + 4, b.len - 4, 3, &a, &d), 0);
    assert_int_equal(d.api_keys.n, 2);
    assert_int_equal(d.api_keys.v[1].api_key, 18);
    assert_int_equal(d.api_keys.v[1].max_version, 3);
    assert_int_equal(d.finalized_features_epoch, -1); /* absent tag: the default */
    assert_int_equal(d.supported_features.n, 0);
    arena_fini(&a);

    /* other flexible responses have a v1 header: correlation id and an empty tag section */
    buf_clear(&b);
    assert_int_equal(kafka_wire_resp_hdr_version(KAFKA_API_INIT_PRODUCER_ID, 2), 1);
    kafka_wire_resp_hdr_encode(KAFKA_API_INIT_PRODUCER_ID, 2, 7, &b);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.p, "\x00\x00\x00\x07\x00", 5);
    assert_int_equal(kafka_wire_resp_hdr_decode(b.p, b.len, KAFKA_API_INIT_PRODUCER_ID, 2, &corr),
                     5);
    buf_clear(&b);
    kafka_wire_resp_hdr_encode(KAFKA_API_INIT_PRODUCER_ID, 1, 7, &b);
    assert_int_equal(b.len, 4);
    buf_fini(&b);
}

/* Tagged fields of the ApiVersions v3 response, written out by hand. */
static void test_tagged_fields(void **state)
{
    (void)state;
    static const char body[] = "\x00\x00\x01\x00\x00\x00\x00" /* no error, no keys, throttle 0 */
                               "\x02"                         /* two tagged fields */
                               "\x01\x08\x00\x00\x00\x00\x00\x00\x00\x05" /* tag 1: epoch 5 */
                               "\x03\x01\x01";                            /* tag 3: zk ready */
    struct arena a;
    arena_init(&a, 4096);
    struct kafka_api_versions_response d;
    assert_int_equal(kafka_api_versions_response_decode(LIT(body), 3, &a, &d), 0);
    assert_int_equal(d.finalized_features_epoch, 5);
    assert_true(d.zk_migration_ready);
    struct buf b = BUF_INIT;
    assert_int_equal(kafka_api_versions_response_encode(&d, 3, &b), 0);
    assert_int_equal(b.len, sizeof(body) - 1);
    assert_memory_equal(b.p, body, b.len);
    buf_fini(&b);

    /* unknown tags are skipped */
    assert_int_equal(
        kafka_api_versions_response_decode(
            LIT("\x00\x00\x01\x00\x00\x00\x00\x02\x07\x02\xab\xcd\x09\x00"), 3, &a, &d),
        0);
    assert_int_equal(d.finalized_features_epoch, -1);
    /* tags out of order, repeated, too short or too long for their value, or cut off */
    static const char *bad[] = {
        "\x00\x00\x01\x00\x00\x00\x00\x02\x03\x01\x01\x01\x08\x00\x00\x00\x00\x00\x00\x00\x05",
        "\x00\x00\x01\x00\x00\x00\x00\x02\x03\x01\x01\x03\x01\x01",
        "\x00\x00\x01\x00\x00\x00\x00\x01\x01\x07\x00\x00\x00\x00\x00\x00\x05",
        "\x00\x00\x01\x00\x00\x00\x00\x01\x03\x02\x01\x01",
        "\x00\x00\x01\x00\x00\x00\x00\x01\x07\x05\x00",
    };
    static const size_t bad_len[] = {21, 14, 17, 12, 11};
    for (size_t i = 0; i < TERN_ARRAY_LEN(bad); i++) {
        uint8_t *p = exact_copy(bad[i], bad_len[i]);
        assert_int_equal(kafka_api_versions_response_decode(p, bad_len[i], 3, &a, &d), TERN_EPROTO);
        free(p);
    }
    arena_fini(&a);
}

/* Metadata v1: an array of structs holding one string; null means "all topics" from v1. */
static void test_metadata_v1_request_bytes(void **state)
{
    (void)state;
    static const char msg[] = "\x00\x03\x00\x01\x00\x00\x00\x07\xff\xff" /* null client id */
                              "\x00\x00\x00\x02\x00\x03"
                              "foo"
                              "\x00\x03"
                              "bar";
    const uint8_t *p = (const uint8_t *)msg;
    struct kafka_wire_req_hdr h;
    assert_int_equal(kafka_wire_req_hdr_decode(p, sizeof(msg) - 1, &h), 10);
    assert_int_equal(h.api_key, KAFKA_API_METADATA);
    assert_int_equal(h.client_id.len, -1);
    struct arena a;
    arena_init(&a, 4096);
    struct kafka_metadata_request m;
    assert_int_equal(kafka_metadata_request_decode(p + 10, sizeof(msg) - 11, 1, &a, &m), 0);
    assert_int_equal(m.topics.n, 2);
    assert_str(m.topics.v[0].name, "foo");
    assert_str(m.topics.v[1].name, "bar");
    assert_true(m.allow_auto_topic_creation);       /* absent before v4: true */
    assert_ptr_equal(m.topics.v[1].name.p, p + 21); /* zero copy */

    assert_int_equal(kafka_metadata_request_decode(LIT("\xff\xff\xff\xff"), 1, &a, &m), 0);
    assert_int_equal(m.topics.n, -1);
    assert_int_equal(kafka_metadata_request_decode(LIT("\xff\xff\xff\xff"), 0, &a, &m),
                     TERN_EPROTO); /* v0 has no null array */
    assert_int_equal(kafka_metadata_request_decode(LIT("\x00\x00\x00\x00\x01"), 4, &a, &m), 0);
    assert_int_equal(m.topics.n, 0);
    assert_true(m.allow_auto_topic_creation);
    assert_int_equal(kafka_metadata_request_decode(LIT("\x00\x00\x00\x00\x00"), 4, &a, &m), 0);
    assert_false(m.allow_auto_topic_creation);

    struct buf b = BUF_INIT;
    buf_put(&b, "xy", 2);
    m.topics.n = -1;
    assert_int_equal(kafka_metadata_request_encode(&m, 0, &b), TERN_EPROTO);
    assert_int_equal(b.len, 2); /* a failed encode leaves nothing behind */
    assert_int_equal(kafka_metadata_request_encode(&m, 1, &b), 0);
    assert_memory_equal(b.p, "xy\xff\xff\xff\xff", 6);
    buf_fini(&b);
    arena_fini(&a);
}

/* Produce v3: records are nullable bytes, sliced out of the input as they are. */
static void test_produce_v3_request_bytes(void **state)
{
    (void)state;
    static const char body[] = "\xff\xff"         /* transactional id null */
                               "\xff\xff"         /* acks -1 */
                               "\x00\x00\x75\x30" /* timeout 30000 */
                               "\x00\x00\x00\x01\x00\x01t"
                               "\x00\x00\x00\x01\x00\x00\x00\x02"
                               "\x00\x00\x00\x04\xde\xad\xbe\xef";
    const uint8_t *p = (const uint8_t *)body;
    struct arena a;
    arena_init(&a, 4096);
    struct kafka_produce_request m;
    assert_int_equal(kafka_produce_request_decode(p, sizeof(body) - 1, 3, &a, &m), 0);
    assert_int_equal(m.transactional_id.len, -1);
    assert_int_equal(m.acks, -1);
    assert_int_equal(m.timeout_ms, 30000);
    assert_int_equal(m.topic_data.n, 1);
    assert_str(m.topic_data.v[0].name, "t");
    assert_int_equal(m.topic_data.v[0].partition_data.v[0].index, 2);
    struct kafka_str rec = m.topic_data.v[0].partition_data.v[0].records;
    assert_int_equal(rec.len, 4);
    assert_ptr_equal(rec.p, p + sizeof(body) - 5);
    struct buf b = BUF_INIT;
    assert_int_equal(kafka_produce_request_encode(&m, 3, &b), 0);
    assert_int_equal(b.len, sizeof(body) - 1);
    assert_memory_equal(b.p, body, b.len);
    buf_fini(&b);
    arena_fini(&a);
}

/* InitProducerId v4: flexible, compact null string, then v3's producer id and epoch. */
static void test_init_producer_id_v4_bytes(void **state)
{
    (void)state;
    static const char body[] = "\x00"                             /* null, compact */
                               "\x00\x00\xea\x60"                 /* timeout 60000 */
                               "\xff\xff\xff\xff\xff\xff\xff\xff" /* producer id -1 */
                               "\xff\xff"                         /* epoch -1 */
                               "\x00";                            /* no tags */
    struct kafka_init_producer_id_request m;
    assert_int_equal(kafka_init_producer_id_request_decode(LIT(body), 4, NULL, &m), 0);
    assert_int_equal(m.transactional_id.len, -1);
    assert_int_equal(m.transaction_timeout_ms, 60000);
    assert_true(m.producer_id == -1);
    assert_int_equal(m.producer_epoch, -1);
    /* v1 of the same request: int16 null, no producer id, no tags */
    assert_int_equal(
        kafka_init_producer_id_request_decode(LIT("\xff\xff\x00\x00\xea\x60"), 1, NULL, &m), 0);
    assert_true(m.producer_id == -1); /* absent: -1 */
    struct buf b = BUF_INIT;
    m.transactional_id = kafka_str_c("tx");
    assert_int_equal(kafka_init_producer_id_request_encode(&m, 2, &b), 0);
    assert_int_equal(b.len, 8);
    assert_memory_equal(b.p, "\x03tx\x00\x00\xea\x60\x00", 8);
    buf_fini(&b);
}

static void test_request_header_errors(void **state)
{
    (void)state;
    struct kafka_wire_req_hdr h;
    assert_int_equal(kafka_wire_req_hdr_decode(LIT("\x00\x03\x00\x01\x00\x00\x00"), &h),
                     TERN_EPROTO);
    /* an api key without a message: the ids are still reported */
    assert_int_equal(kafka_wire_req_hdr_decode(LIT("\x00\x63\x00\x01\x00\x00\x00\x09\xff\xff"), &h),
                     TERN_ENOTSUP);
    assert_int_equal(h.api_key, 99);
    assert_int_equal(h.api_version, 1);
    assert_int_equal(h.correlation_id, 9);
    assert_int_equal(kafka_wire_req_hdr_decode(LIT("\x00\x03\x00\x01\x00\x00\x00\x09\x00\x05"
                                                   "ab"),
                                               &h),
                     TERN_EPROTO); /* client id cut off */
    assert_int_equal(h.correlation_id, 9);
    assert_int_equal(kafka_wire_req_hdr_decode(LIT("\x00\x03\x00\x01\x00\x00\x00\x09\xff\xfe"), &h),
                     TERN_EPROTO); /* length -2 */
    assert_int_equal(kafka_wire_req_hdr_decode(LIT("\x00\x03\x00\x01\x00\x00\x00\x09\xff"), &h),
                     TERN_EPROTO);
    /* v2: unknown header tags are skipped; a missing tag section is an error */
    assert_int_equal(
        kafka_wire_req_hdr_decode(LIT("\x00\x12\x00\x03\x00\x00\x00\x09\xff\xff\x01\x05\x01z"), &h),
        14);
    assert_int_equal(kafka_wire_req_hdr_decode(LIT("\x00\x12\x00\x03\x00\x00\x00\x09\xff\xff"), &h),
                     TERN_EPROTO);
    /* an unsupported version of a known API still parses: the broker answers it */
    assert_int_equal(
        kafka_wire_req_hdr_decode(LIT("\x00\x12\x00\x09\x00\x00\x00\x09\xff\xff\x00"), &h), 11);
    assert_int_equal(kafka_wire_req_hdr_decode(LIT("\x00\x00\x00\x02\x00\x00\x00\x09\xff\xff"), &h),
                     10);
    assert_int_equal(kafka_wire_req_hdr_version(99, 0), -1);
    assert_int_equal(kafka_wire_resp_hdr_version(99, 0), -1);
}

static void test_frames(void **state)
{
    (void)state;
    const uint8_t *f = (const uint8_t *)"\x00\x00\x00\x03"
                                        "abc"
                                        "\x00";
    for (size_t n = 0; n < 7; n++)
        assert_int_equal(kafka_wire_frame(f, n, 100), TERN_EAGAIN);
    assert_int_equal(kafka_wire_frame(f, 7, 100), 3);
    assert_int_equal(kafka_wire_frame(f, 8, 100), 3);
    assert_int_equal(kafka_wire_frame(f, 8, 3), 3);
    assert_int_equal(kafka_wire_frame(f, 4, 2), TERN_ETOOBIG); /* before the payload arrives */
    assert_int_equal(kafka_wire_frame(LIT("\x7f\xff\xff\xff"), INT32_MAX - 1), TERN_ETOOBIG);
    assert_int_equal(kafka_wire_frame(LIT("\x80\x00\x00\x00"), INT32_MAX), TERN_EPROTO);
    assert_int_equal(kafka_wire_frame(LIT("\xff\xff\xff\xff"), INT32_MAX), TERN_EPROTO);
    assert_int_equal(kafka_wire_frame(LIT("\x00\x00\x00\x00"), 0), 0);
}

/* ---- defaults, hostile counts, limits ---------------------------------------------------- */

static void test_absent_field_defaults(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 4096);
    /* Metadata v0 response: one broker without rack; no cluster or controller id */
    static const char md[] = "\x00\x00\x00\x01\x00\x00\x00\x01\x00\x01h\x00\x00\x23\x84"
                             "\x00\x00\x00\x00";
    struct kafka_metadata_response m;
    assert_int_equal(kafka_metadata_response_decode(LIT(md), 0, &a, &m), 0);
    assert_int_equal(m.controller_id, -1);
    assert_int_equal(m.cluster_id.len, -1);
    assert_int_equal(m.brokers.v[0].rack.len, -1);
    assert_int_equal(m.brokers.v[0].port, 9092);
    assert_int_equal(m.cluster_authorized_operations, INT32_MIN);

    /* Fetch v4 request: no session (epoch -1), partitions without epochs or log start */
    static const char fetch[] = "\xff\xff\xff\xff\x00\x00\x01\xf4\x00\x00\x00\x01"
                                "\x00\x10\x00\x00\x00" /* max bytes, level */
                                "\x00\x00\x00\x01\x00\x01t\x00\x00\x00\x01"
                                "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x2a"
                                "\x00\x10\x00\x00";
    struct kafka_fetch_request fr;
    assert_int_equal(kafka_fetch_request_decode(LIT(fetch), 4, &a, &fr), 0);
    assert_int_equal(fr.replica_id, -1);
    assert_int_equal(fr.max_wait_ms, 500);
    assert_int_equal(fr.session_id, 0);
    assert_int_equal(fr.session_epoch, -1);
    assert_int_equal(fr.forgotten_topics_data.n, 0);
    assert_int_equal(fr.topics.v[0].partitions.v[0].current_leader_epoch, -1);
    assert_int_equal(fr.topics.v[0].partitions.v[0].log_start_offset, -1);
    assert_int_equal(fr.topics.v[0].partitions.v[0].fetch_offset, 42);

    struct kafka_offset_for_leader_epoch_request oe;
    assert_int_equal(
        kafka_offset_for_leader_epoch_request_decode(LIT("\x00\x00\x00\x00"), 2, &a, &oe), 0);
    assert_int_equal(oe.replica_id, -2);
    struct kafka_join_group_request jg;
    assert_int_equal(
        kafka_join_group_request_decode(
            LIT("\x00\x01g\x00\x00\x27\x10\x00\x00\x00\x01p\x00\x00\x00\x00"), 0, &a, &jg),
        0);
    assert_int_equal(jg.rebalance_timeout_ms, -1);
    assert_int_equal(jg.group_instance_id.len, -1);
    assert_int_equal(jg.session_timeout_ms, 10000);
    arena_fini(&a);
}

static void test_huge_counts(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, ARENA_CAP);
    struct kafka_metadata_request m;
    uint8_t big[1004];
    memset(big, 0, sizeof(big));
    memcpy(big, "\x7f\xff\xff\xff", 4);
    assert_int_equal(kafka_metadata_request_decode(big, 4, 1, &a, &m), TERN_EPROTO);
    assert_int_equal(kafka_metadata_request_decode(big, sizeof(big), 1, &a, &m), TERN_EPROTO);
    /* 1000 bytes cannot hold 501 topics of at least 2 bytes each */
    memcpy(big, "\x00\x00\x01\xf5", 4);
    assert_int_equal(kafka_metadata_request_decode(big, sizeof(big), 1, &a, &m), TERN_EPROTO);
    assert_int_equal(arena_used(&a), 0); /* refused before allocating */
    memcpy(big, "\x00\x00\x01\xf4", 4);  /* 500 empty names fit exactly */
    assert_int_equal(kafka_metadata_request_decode(big, sizeof(big), 1, &a, &m), 0);
    assert_int_equal(m.topics.n, 500);
    assert_true(arena_used(&a) >= 500 * sizeof(*m.topics.v));
    arena_reset(&a);
    memcpy(big, "\xff\xff\xff\xf0", 4);
    assert_int_equal(kafka_metadata_request_decode(big, sizeof(big), 1, &a, &m), TERN_EPROTO);

    /* compact counts: 2^32 - 2 elements, then a 6-byte varint */
    struct kafka_api_versions_response r;
    assert_int_equal(
        kafka_api_versions_response_decode(LIT("\x00\x00\xff\xff\xff\xff\x0f"), 3, &a, &r),
        TERN_EPROTO);
    assert_int_equal(
        kafka_api_versions_response_decode(LIT("\x00\x00\xff\xff\xff\xff\x8f\x00"), 3, &a, &r),
        TERN_EPROTO);
    assert_int_equal(arena_used(&a), 0);

    /* a message that is valid but needs more than the arena's cap */
    struct arena small;
    arena_init(&small, 1024);
    memcpy(big, "\x00\x00\x01\xf4", 4);
    assert_int_equal(kafka_metadata_request_decode(big, sizeof(big), 1, &small, &m), TERN_EFULL);
    assert_int_equal(kafka_metadata_request_decode(big, sizeof(big), 1, NULL, &m), TERN_EFULL);
    arena_fini(&small);
    arena_fini(&a);
}

static void test_string_limits(void **state)
{
    (void)state;
    static char text[KAFKA_STRING_MAX + 1];
    memset(text, 'x', sizeof(text));
    struct kafka_sasl_handshake_request m = {{(const uint8_t *)text, KAFKA_STRING_MAX}};
    struct buf b = BUF_INIT;
    assert_int_equal(kafka_sasl_handshake_request_encode(&m, 1, &b), 0);
    assert_int_equal(b.len, 2 + KAFKA_STRING_MAX);
    m.mechanism.len++;
    assert_int_equal(kafka_sasl_handshake_request_encode(&m, 1, &b), TERN_EPROTO);
    assert_int_equal(b.len, 2 + KAFKA_STRING_MAX);
    m.mechanism = KAFKA_STR_NULL;
    assert_int_equal(kafka_sasl_handshake_request_encode(&m, 1, &b), TERN_EPROTO);
    m.mechanism.len = -2;
    assert_int_equal(kafka_sasl_handshake_request_encode(&m, 1, &b), TERN_EPROTO);
    buf_fini(&b);

    /* a compact string of 32768 bytes is refused on decode; bytes may be longer */
    struct kafka_api_versions_request r;
    buf_put(&b, "\x81\x80\x02", 3); /* 32769 = length 32768 + 1 */
    buf_put(&b, text, sizeof(text));
    buf_put(&b, "\x01\x00", 2);
    assert_int_equal(kafka_api_versions_request_decode(b.p, b.len, 3, NULL, &r), TERN_EPROTO);
    buf_clear(&b);
    buf_put(&b, "\x80\x80\x02", 3); /* 32768 = length 32767 + 1 */
    buf_put(&b, text, KAFKA_STRING_MAX);
    buf_put(&b, "\x01\x00", 2);
    assert_int_equal(kafka_api_versions_request_decode(b.p, b.len, 3, NULL, &r), 0);
    assert_int_equal(r.client_software_name.len, KAFKA_STRING_MAX);
    assert_int_equal(r.client_software_version.len, 0);
    buf_fini(&b);

    /* a negative non-null length, a null where the version has none */
    struct kafka_sasl_handshake_request s;
    assert_int_equal(kafka_sasl_handshake_request_decode(LIT("\xff\xfe"), 0, NULL, &s),
                     TERN_EPROTO);
    assert_int_equal(kafka_sasl_handshake_request_decode(LIT("\xff\xff"), 0, NULL, &s),
                     TERN_EPROTO);
    struct kafka_sasl_authenticate_request sa;
    assert_int_equal(kafka_sasl_authenticate_request_decode(LIT("\xff\xff\xff\xff"), 0, NULL, &sa),
                     TERN_EPROTO);
    assert_int_equal(
        kafka_sasl_authenticate_request_decode(LIT("\x00\x00\x00\x01\x00"), 1, NULL, &sa), 0);
}

static void test_uvarint(void **state)
{
    (void)state;
    static const uint32_t values[] = {0, 1, 127, 128, 16383, 16384, 0x0fffffff, UINT32_MAX};
    static const size_t sizes[] = {1, 1, 1, 2, 2, 3, 4, 5};
    for (size_t i = 0; i < TERN_ARRAY_LEN(values); i++) {
        struct buf b = BUF_INIT;
        struct kafka_wire_wr w;
        kafka_wire_wr_init(&w, &b);
        kafka_wire_put_uvarint(&w, values[i]);
        assert_int_equal(kafka_wire_wr_end(&w), 0);
        assert_int_equal(b.len, sizes[i]);
        struct kafka_wire_rd r;
        kafka_wire_rd_init(&r, b.p, b.len, NULL);
        assert_true(kafka_wire_get_uvarint(&r) == values[i]);
        assert_int_equal(kafka_wire_rd_end(&r), 0);
        buf_fini(&b);
    }
    struct kafka_wire_rd r;
    kafka_wire_rd_init(&r, LIT("\xff\xff\xff\xff\x1f"), NULL); /* 33 bits */
    kafka_wire_get_uvarint(&r);
    assert_int_equal(kafka_wire_rd_end(&r), TERN_EPROTO);
    kafka_wire_rd_init(&r, LIT("\x80\x80\x80\x80\x80\x00"), NULL); /* 6 bytes */
    kafka_wire_get_uvarint(&r);
    assert_int_equal(kafka_wire_rd_end(&r), TERN_EPROTO);
    kafka_wire_rd_init(&r, LIT("\x80\x00"), NULL); /* overlong but in range: accepted */
    assert_int_equal(kafka_wire_get_uvarint(&r), 0);
    assert_int_equal(kafka_wire_rd_end(&r), 0);
    kafka_wire_rd_init(&r, LIT("\x80"), NULL);
    kafka_wire_get_uvarint(&r);
    assert_int_equal(kafka_wire_rd_end(&r), TERN_EPROTO);
    assert_int_equal(kafka_wire_get_i32(&r), 0); /* sticky */
}

/* Gaps: a Fetch response whose records point at kafka_wire_gap encodes as the normal response
 * with the records' bytes cut out at the offsets the writer noted, at v4 and v11; a writer
 * without room for gaps, or with too little, refuses it and leaves nothing behind. */
static void test_records_gaps(void **state)
{
    (void)state;
    static const uint8_t rec_a[] = "AAAAAAAAAA", rec_b[] = "BBBBBBBBBBBBBBBBBBBBBBBBB";
    for (int16_t v = 4; v <= 11; v += 7) {
        struct kafka_fetch_response_partition ps[3] = {
            {.partition_index = 0, .records = {rec_a, 10}},
            {.partition_index = 1, .records = {(const uint8_t *)"", 0}},
            {.partition_index = 2, .records = {rec_b, 25}},
        };
        for (int i = 0; i < 3; i++)
            ps[i].aborted_transactions.n = -1;
        struct kafka_fetch_response_topic t = {kafka_str_c("topic"), {3, ps}};
        struct kafka_fetch_response m = {.responses = {1, &t}};
        struct buf whole = BUF_INIT, cut = BUF_INIT;
        assert_int_equal(kafka_fetch_response_encode(&m, v, &whole), 0);

        ps[0].records.p = kafka_wire_gap;
        ps[2].records.p = kafka_wire_gap;
        struct kafka_wire_gap gaps[2];
        struct kafka_wire_wr w;
        buf_put(&cut, "hdr", 3); /* offsets are of the buffer, not of the message */
        kafka_wire_wr_init(&w, &cut);
        kafka_wire_wr_gaps(&w, gaps, 1); /* too little room */
        assert_int_equal(kafka_msg_response_write(KAFKA_API_FETCH, v, &m, &w), TERN_EPROTO);
        assert_int_equal(kafka_wire_wr_end(&w), TERN_EPROTO);
        assert_int_equal(cut.len, 3);
        assert_int_equal(w.ngaps, 0);
        kafka_wire_wr_init(&w, &cut); /* no room at all */
        assert_int_equal(kafka_msg_response_write(KAFKA_API_FETCH, v, &m, &w), TERN_EPROTO);
        assert_int_equal(kafka_wire_wr_end(&w), TERN_EPROTO);
        assert_int_equal(kafka_fetch_response_encode(&m, v, &cut), TERN_EPROTO);
        assert_int_equal(cut.len, 3);

        kafka_wire_wr_init(&w, &cut);
        kafka_wire_wr_gaps(&w, gaps, 2);
        assert_int_equal(kafka_msg_response_write(KAFKA_API_FETCH, v, &m, &w), 0);
        assert_int_equal(kafka_wire_wr_end(&w), 0);
        assert_int_equal(w.ngaps, 2);
        assert_int_equal(gaps[0].len, 10);
        assert_int_equal(gaps[1].len, 25);
        assert_int_equal(cut.len - 3 + 35, whole.len);
        /* splice the records back in: the bytes of the normal encoding */
        struct buf spliced = BUF_INIT;
        size_t from = 3;
        const uint8_t *recs[2] = {rec_a, rec_b};
        for (int g = 0; g < 2; g++) {
            buf_put(&spliced, cut.p + from, gaps[g].at - from);
            buf_put(&spliced, recs[g], gaps[g].len);
            from = gaps[g].at;
        }
        buf_put(&spliced, cut.p + from, cut.len - from);
        assert_int_equal(spliced.len, whole.len);
        assert_memory_equal(spliced.p, whole.p, whole.len);
        assert_int_equal(kafka_msg_response_write(KAFKA_API_FETCH, 12, &m, &w), TERN_ENOTSUP);
        buf_fini(&whole);
        buf_fini(&cut);
        buf_fini(&spliced);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_message),
        cmocka_unit_test(test_truncated_every_message),
        cmocka_unit_test(test_unsupported_versions),
        cmocka_unit_test(test_api_table),
        cmocka_unit_test(test_api_versions_v0_request_bytes),
        cmocka_unit_test(test_api_versions_v3_request_bytes),
        cmocka_unit_test(test_api_versions_v3_response_bytes),
        cmocka_unit_test(test_tagged_fields),
        cmocka_unit_test(test_metadata_v1_request_bytes),
        cmocka_unit_test(test_produce_v3_request_bytes),
        cmocka_unit_test(test_init_producer_id_v4_bytes),
        cmocka_unit_test(test_request_header_errors),
        cmocka_unit_test(test_frames),
        cmocka_unit_test(test_absent_field_defaults),
        cmocka_unit_test(test_huge_counts),
        cmocka_unit_test(test_string_limits),
        cmocka_unit_test(test_uvarint),
        cmocka_unit_test(test_records_gaps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
