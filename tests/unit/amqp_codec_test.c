/*
 * amqp_codec_test.c - the AMQP 0-9-1 codec: every method round-trips and refuses every
 * truncation, bit packing, unknown ids, frames split at every byte, frame errors, properties
 * with every flag combination, and bytes written by pika 1.2.0 (pika.frame.*.marshal()).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/tern.h"
#include "proto/amqp/amqp_frame.h"
#include "proto/amqp/amqp_method.h"

/* ---- bytes from pika 1.2.0 ------------------------------------------------------------- */

/* Method(1, Basic.Publish(exchange='', routing_key='hello')), Header(1, 12,
 * BasicProperties(content_type='text/plain', delivery_mode=2)), Body(1, b'Hello World!') */
static const uint8_t pika_publish[] =
    "\x01\x00\x01\x00\x00\x00\x0e\x00\x3c\x00\x28\x00\x00\x00\x05\x68\x65\x6c\x6c\x6f\x00\xce"
    "\x02\x00\x01\x00\x00\x00\x1a\x00\x3c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x0c\x90\x00\x0a"
    "\x74\x65\x78\x74\x2f\x70\x6c\x61\x69\x6e\x02\xce\x03\x00\x01\x00\x00\x00\x0c\x48\x65\x6c"
    "\x6c\x6f\x20\x57\x6f\x72\x6c\x64\x21\xce";
/* Method(1, Queue.Declare(queue='task_queue', durable=True,
 *                         arguments={'x-queue-type': 'quorum'})) */
static const uint8_t pika_queue_declare[] =
    "\x01\x00\x01\x00\x00\x00\x2e\x00\x32\x00\x0a\x00\x00\x0a\x74\x61\x73\x6b\x5f\x71\x75\x65"
    "\x75\x65\x02\x00\x00\x00\x18\x0c\x78\x2d\x71\x75\x65\x75\x65\x2d\x74\x79\x70\x65\x53\x00"
    "\x00\x00\x06\x71\x75\x6f\x72\x75\x6d\xce";
/* Method(0, Connection.Tune(channel_max=2047, frame_max=131072, heartbeat=60)): RabbitMQ's
 * defaults, as the server sends them */
static const uint8_t pika_tune[] =
    "\x01\x00\x00\x00\x00\x00\x0c\x00\x0a\x00\x1e\x07\xff\x00\x02\x00\x00\x00\x3c\xce";
/* Method(1, Basic.Nack(delivery_tag=5, multiple=True, requeue=False)) */
static const uint8_t pika_nack[] =
    "\x01\x00\x01\x00\x00\x00\x0d\x00\x3c\x00\x78\x00\x00\x00\x00\x00\x00\x00\x05\x01\xce";
/* Method(1, Basic.Deliver(consumer_tag='ctag1.0', delivery_tag=1, redelivered=True,
 *                         exchange='amq.direct', routing_key='rk')) */
static const uint8_t pika_deliver[] =
    "\x01\x00\x01\x00\x00\x00\x23\x00\x3c\x00\x3c\x07\x63\x74\x61\x67\x31\x2e\x30\x00\x00\x00"
    "\x00\x00\x00\x00\x01\x01\x0a\x61\x6d\x71\x2e\x64\x69\x72\x65\x63\x74\x02\x72\x6b\xce";
/* Heartbeat() */
static const uint8_t pika_heartbeat[] = "\x08\x00\x00\x00\x00\x00\x00\xce";
/* Header(1, 0, BasicProperties(content_type='application/json', content_encoding='gzip',
 * headers={'x-retry': 3}, delivery_mode=2, priority=5, correlation_id='c1',
 * reply_to='amq.rabbitmq.reply-to', expiration='60000', message_id='m1', timestamp=1700000000,
 * type='t', user_id='guest', app_id='app', cluster_id='')) */
static const uint8_t pika_props_all[] =
    "\x02\x00\x01\x00\x00\x00\x6e\x00\x3c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xfc\x10"
    "\x61\x70\x70\x6c\x69\x63\x61\x74\x69\x6f\x6e\x2f\x6a\x73\x6f\x6e\x04\x67\x7a\x69\x70\x00"
    "\x00\x00\x0d\x07\x78\x2d\x72\x65\x74\x72\x79\x49\x00\x00\x00\x03\x02\x05\x02\x63\x31\x15"
    "\x61\x6d\x71\x2e\x72\x61\x62\x62\x69\x74\x6d\x71\x2e\x72\x65\x70\x6c\x79\x2d\x74\x6f\x05"
    "\x36\x30\x30\x30\x30\x02\x6d\x31\x00\x00\x00\x00\x65\x53\xf1\x00\x01\x74\x05\x67\x75\x65"
    "\x73\x74\x03\x61\x70\x70\x00\xce";
#define LIT_LEN(a) (sizeof(a) - 1)

/* A small valid table: {"k": "hi"} */
static const uint8_t small_table[] = "\x00\x00\x00\x09\x01kS\x00\x00\x00\x02hi";

static struct amqp_str str_of(const char *s)
{
    return amqp_wire_cstr(s);
}

static void assert_str(struct amqp_str s, const char *want)
{
    assert_int_equal(s.len, strlen(want));
    assert_memory_equal(s.p, want, s.len);
}

/* A copy of p[0..n) in a block of exactly n bytes, so ASan catches a read past the end. */
static uint8_t *exact_copy(const void *p, size_t n)
{
    uint8_t *q = malloc(n ? n : 1);
    assert_non_null(q);
    if (n)
        memcpy(q, p, n);
    return q;
}

/* ---- generic method filling and comparison --------------------------------------------- */

static char text[32][1100]; /* string contents for the fields being filled */

/* Fills every argument of m (id set) from seed: 0 gives zeros and empty strings and tables,
 * 1 small values, 2 the largest values and strings (255-byte shortstr, 1000-byte longstr). */
static void fill(struct amqp_method *m, unsigned seed)
{
    const struct amqp_method_info *mi = amqp_method_lookup(m->id);
    assert_non_null(mi);
    for (unsigned i = 0; i < mi->nfields; i++) {
        const struct amqp_method_field *f = &mi->fields[i];
        char *fp = (char *)m + f->offset;
        uint64_t v = seed == 0 ? 0 : seed == 1 ? 1000 + i : UINT64_MAX - i;
        size_t len = seed == 0 ? 0 : seed == 1 ? 1 + i : f->type == AMQP_WIRE_LONGSTR ? 1000 : 255;
        for (size_t k = 0; k < len; k++)
            text[i][k] = (char)('a' + (k + i) % 26);
        if (seed == 2 && f->type == AMQP_WIRE_LONGSTR)
            text[i][7] = '\0'; /* longstr may hold any byte */
        struct amqp_str s = {(const uint8_t *)text[i], (uint32_t)len};
        switch (f->type) {
        case AMQP_WIRE_OCTET:
            *(uint8_t *)fp = (uint8_t)v;
            break;
        case AMQP_WIRE_SHORT:
            *(uint16_t *)fp = (uint16_t)v;
            break;
        case AMQP_WIRE_LONG:
            *(uint32_t *)fp = (uint32_t)v;
            break;
        case AMQP_WIRE_LONGLONG:
        case AMQP_WIRE_TIMESTAMP:
            *(uint64_t *)fp = v;
            break;
        case AMQP_WIRE_BIT:
            *(bool *)fp = seed == 2 || (seed == 1 && i % 2);
            break;
        case AMQP_WIRE_TABLE:
            *(struct amqp_str *)fp = seed ? (struct amqp_str){small_table, LIT_LEN(small_table)}
                                          : (struct amqp_str){NULL, 0};
            break;
        default:
            *(struct amqp_str *)fp = s;
            break;
        }
    }
}

/* The encoded size of m's arguments, computed from the descriptors. */
static size_t args_size(const struct amqp_method *m)
{
    const struct amqp_method_info *mi = amqp_method_lookup(m->id);
    size_t n = 0;
    unsigned bits = 8;
    for (unsigned i = 0; i < mi->nfields; i++) {
        const struct amqp_method_field *f = &mi->fields[i];
        const struct amqp_str *s = (const void *)((const char *)m + f->offset);
        static const size_t fixed[] = {[AMQP_WIRE_OCTET] = 1,
                                       [AMQP_WIRE_SHORT] = 2,
                                       [AMQP_WIRE_LONG] = 4,
                                       [AMQP_WIRE_LONGLONG] = 8,
                                       [AMQP_WIRE_TIMESTAMP] = 8};
        if (f->type == AMQP_WIRE_BIT) {
            n += bits == 8;
            bits = bits == 8 ? 1 : bits + 1;
            continue;
        }
        bits = 8;
        if (f->type == AMQP_WIRE_SHORTSTR)
            n += 1 + s->len;
        else if (f->type == AMQP_WIRE_LONGSTR)
            n += 4 + s->len;
        else if (f->type == AMQP_WIRE_TABLE)
            n += s->len ? s->len : 4;
        else
            n += fixed[f->type];
    }
    return n;
}

/* b decoded from a's encoding: every argument equal (an empty table slice becomes 4 zeros). */
static void assert_same_args(const struct amqp_method *a, const struct amqp_method *b)
{
    assert_int_equal(a->id, b->id);
    const struct amqp_method_info *mi = amqp_method_lookup(a->id);
    for (unsigned i = 0; i < mi->nfields; i++) {
        const struct amqp_method_field *f = &mi->fields[i];
        const char *fa = (const char *)a + f->offset, *fb = (const char *)b + f->offset;
        const struct amqp_str *sa = (const void *)fa, *sb = (const void *)fb;
        switch (f->type) {
        case AMQP_WIRE_OCTET:
            assert_int_equal(*(const uint8_t *)fa, *(const uint8_t *)fb);
            break;
        case AMQP_WIRE_SHORT:
            assert_int_equal(*(const uint16_t *)fa, *(const uint16_t *)fb);
            break;
        case AMQP_WIRE_LONG:
            assert_int_equal(*(const uint32_t *)fa, *(const uint32_t *)fb);
            break;
        case AMQP_WIRE_LONGLONG:
        case AMQP_WIRE_TIMESTAMP:
            assert_true(*(const uint64_t *)fa == *(const uint64_t *)fb);
            break;
        case AMQP_WIRE_BIT:
            assert_int_equal(*(const bool *)fa, *(const bool *)fb);
            break;
        default: /* strings and tables */
            if (f->type == AMQP_WIRE_TABLE && sa->len == 0)
                assert_true(amqp_wire_str_eq(*sb, (struct amqp_str){(const uint8_t *)"\0\0\0", 4}));
            else if (!amqp_wire_str_eq(*sa, *sb))
                fail_msg("%s.%s differs", mi->name, f->name);
            break;
        }
    }
}

/* ---- methods --------------------------------------------------------------------------- */

static void round_trip(uint32_t id, unsigned seed)
{
    struct amqp_method m, d, d2;
    memset(&m, 0, sizeof(m));
    m.id = id;
    fill(&m, seed);
    struct buf b = BUF_INIT, b2 = BUF_INIT;
    amqp_method_encode(&m, &b);
    assert_int_equal(b.len, 4 + args_size(&m));
    uint8_t *p = exact_copy(b.p, b.len);
    assert_int_equal(amqp_method_decode(p, b.len, &d), 0);
    assert_same_args(&m, &d);
    amqp_method_encode(&d, &b2); /* and the decoded struct encodes to the same bytes */
    if (seed) {
        assert_int_equal(b2.len, b.len);
        assert_memory_equal(b2.p, b.p, b.len);
    }
    assert_int_equal(amqp_method_decode(b2.p, b2.len, &d2), 0);
    assert_same_args(&d, &d2);
    free(p);
    buf_fini(&b);
    buf_fini(&b2);
}

static void test_round_trip_every_method(void **state)
{
    (void)state;
    for (unsigned i = 0; i < AMQP_METHOD_COUNT; i++)
        for (unsigned seed = 0; seed < 3; seed++)
            round_trip(amqp_method_infos[i].id, seed);
}

/* Every proper prefix of every method is TERN_EPROTO, and so is one trailing byte. */
static void test_truncated_every_method(void **state)
{
    (void)state;
    for (unsigned i = 0; i < AMQP_METHOD_COUNT; i++) {
        struct amqp_method m = {.id = amqp_method_infos[i].id}, d;
        fill(&m, 1);
        struct buf b = BUF_INIT;
        amqp_method_encode(&m, &b);
        for (size_t n = 0; n < b.len; n++) {
            uint8_t *p = exact_copy(b.p, n);
            if (amqp_method_decode(p, n, &d) != TERN_EPROTO)
                fail_msg("%s: prefix of %zu bytes accepted", amqp_method_infos[i].name, n);
            free(p);
        }
        buf_put_u8(&b, 0);
        assert_int_equal(amqp_method_decode(b.p, b.len, &d), TERN_EPROTO);
        assert_int_equal(d.id, m.id); /* ids are reported even on failure */
        buf_fini(&b);
    }
}

static void expect_method_bytes(const struct amqp_method *m, const char *want, size_t n)
{
    struct buf b = BUF_INIT;
    amqp_method_encode(m, &b);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.p, want, n);
    struct amqp_method d;
    assert_int_equal(amqp_method_decode(b.p, b.len, &d), 0);
    assert_same_args(m, &d);
    buf_fini(&b);
}

static void test_bit_packing(void **state)
{
    (void)state;
    struct amqp_method m = {.id = AMQP_QUEUE_DECLARE};
    m.queue_declare.queue = str_of("q");
    m.queue_declare.passive = true;
    m.queue_declare.exclusive = true;
    m.queue_declare.nowait = true;
    /* five bits in one octet, first bit lowest: passive 1, durable 0, exclusive 4, ... */
    expect_method_bytes(&m, "\x00\x32\x00\x0a\x00\x00\x01q\x15\x00\x00\x00\x00", 13);
    m.queue_declare = (struct amqp_queue_declare){.durable = true, .auto_delete = true};
    expect_method_bytes(&m, "\x00\x32\x00\x0a\x00\x00\x00\x0a\x00\x00\x00\x00", 12);

    m = (struct amqp_method){.id = AMQP_BASIC_PUBLISH};
    m.basic_publish.mandatory = true;
    expect_method_bytes(&m, "\x00\x3c\x00\x28\x00\x00\x00\x00\x01", 9);
    m.basic_publish = (struct amqp_basic_publish){.immediate = true};
    expect_method_bytes(&m, "\x00\x3c\x00\x28\x00\x00\x00\x00\x02", 9);

    /* a bit between other fields takes an octet of its own */
    m = (struct amqp_method){.id = AMQP_BASIC_DELIVER};
    m.basic_deliver.delivery_tag = 0x0102030405060708;
    m.basic_deliver.redelivered = true;
    m.basic_deliver.exchange = str_of("x");
    expect_method_bytes(&m, "\x00\x3c\x00\x3c\x00\x01\x02\x03\x04\x05\x06\x07\x08\x01\x01x\x00",
                        17);

    m = (struct amqp_method){.id = AMQP_ACCESS_REQUEST};
    m.access_request.write = true;
    m.access_request.read = true;
    expect_method_bytes(&m, "\x00\x1e\x00\x0a\x00\x18", 6);

    m = (struct amqp_method){.id = AMQP_EXCHANGE_DECLARE};
    m.exchange_declare.internal = true;
    expect_method_bytes(&m, "\x00\x28\x00\x0a\x00\x00\x00\x00\x08\x00\x00\x00\x00", 13);

    /* unused high bits are ignored when reading */
    struct amqp_method d;
    assert_int_equal(
        amqp_method_decode((const uint8_t *)"\x00\x3c\x00\x78\0\0\0\0\0\0\0\x09\xfe", 13, &d), 0);
    assert_int_equal(d.basic_nack.delivery_tag, 9);
    assert_false(d.basic_nack.multiple);
    assert_true(d.basic_nack.requeue);
}

/* The wire layer on its own: a ninth consecutive bit opens a new octet. */
static void test_wire_many_bits(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    struct amqp_wire_wr w;
    amqp_wire_wr_init(&w, &b);
    for (int i = 0; i < 10; i++)
        amqp_wire_put_bit(&w, i == 0 || i == 7 || i == 9);
    amqp_wire_put_octet(&w, 0x55);
    amqp_wire_put_bit(&w, true);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.p, "\x81\x02\x55\x01", 4);
    struct amqp_wire_rd r;
    amqp_wire_rd_init(&r, b.p, b.len);
    for (int i = 0; i < 10; i++)
        assert_int_equal(amqp_wire_get_bit(&r), i == 0 || i == 7 || i == 9);
    assert_int_equal(amqp_wire_get_octet(&r), 0x55);
    assert_true(amqp_wire_get_bit(&r));
    assert_int_equal(amqp_wire_rd_end(&r), 0);
    assert_false(amqp_wire_get_bit(&r)); /* past the end: error, sticky */
    assert_int_equal(amqp_wire_get_long(&r), 0);
    assert_int_equal(amqp_wire_rd_end(&r), TERN_EPROTO);
    buf_fini(&b);
}

static void test_unknown_ids(void **state)
{
    (void)state;
    struct amqp_method m;
    assert_int_equal(amqp_method_decode((const uint8_t *)"\x00\x0a\x00\x63", 4, &m), TERN_ENOTSUP);
    assert_int_equal(m.id, AMQP_ID(10, 99));
    assert_int_equal(amqp_method_decode((const uint8_t *)"\x00\x63\x00\x0a\x01\x02", 6, &m),
                     TERN_ENOTSUP);
    assert_int_equal(amqp_method_decode((const uint8_t *)"\x00\x00\x00\x00", 4, &m), TERN_ENOTSUP);
    assert_int_equal(amqp_method_decode((const uint8_t *)"\x00\x0a", 2, &m), TERN_EPROTO);
    assert_int_equal(amqp_method_decode(NULL, 0, &m), TERN_EPROTO);
    /* exchange.unbind-ok is 51 in RabbitMQ's dialect: 41 is unknown */
    assert_int_equal(amqp_method_decode((const uint8_t *)"\x00\x28\x00\x29", 4, &m), TERN_ENOTSUP);
    assert_int_equal(amqp_method_decode((const uint8_t *)"\x00\x28\x00\x33", 4, &m), 0);
    assert_int_equal(m.id, AMQP_EXCHANGE_UNBIND_OK);
    assert_string_equal(amqp_method_name(AMQP_ID(10, 99)), "unknown");
    assert_false(amqp_method_synchronous(AMQP_ID(10, 99)));
    assert_false(amqp_method_has_content(AMQP_ID(60, 41)));
    assert_null(amqp_method_lookup(0));
    assert_null(amqp_method_lookup(UINT32_MAX));
}

static void test_method_info(void **state)
{
    (void)state;
    assert_int_equal(AMQP_METHOD_COUNT, 66);
    int content = 0, classes = 0;
    for (unsigned i = 0; i < AMQP_METHOD_COUNT; i++) {
        const struct amqp_method_info *mi = &amqp_method_infos[i];
        assert_ptr_equal(amqp_method_lookup(mi->id), mi);
        if (i)
            assert_true(mi->id > amqp_method_infos[i - 1].id);
        classes += !i || AMQP_ID_CLASS(mi->id) != AMQP_ID_CLASS(amqp_method_infos[i - 1].id);
        content += mi->has_content;
        assert_int_equal(mi->fields == NULL, mi->nfields == 0);
    }
    assert_int_equal(classes, 8);
    assert_int_equal(content, 4);
    assert_true(amqp_method_has_content(AMQP_BASIC_PUBLISH));
    assert_true(amqp_method_has_content(AMQP_BASIC_RETURN));
    assert_true(amqp_method_has_content(AMQP_BASIC_DELIVER));
    assert_true(amqp_method_has_content(AMQP_BASIC_GET_OK));
    assert_string_equal(amqp_method_name(AMQP_QUEUE_DECLARE), "queue.declare");
    assert_string_equal(amqp_method_name(AMQP_BASIC_GET_OK), "basic.get-ok");
    assert_string_equal(amqp_method_name(AMQP_CONNECTION_UPDATE_SECRET_OK),
                        "connection.update-secret-ok");
    assert_true(amqp_method_synchronous(AMQP_QUEUE_DECLARE));
    assert_true(amqp_method_synchronous(AMQP_CONFIRM_SELECT));
    assert_true(amqp_method_synchronous(AMQP_BASIC_GET));
    assert_false(amqp_method_synchronous(AMQP_BASIC_PUBLISH));
    assert_false(amqp_method_synchronous(AMQP_BASIC_ACK));
    assert_false(amqp_method_synchronous(AMQP_QUEUE_DECLARE_OK));
    assert_int_equal(AMQP_BASIC_NACK, AMQP_ID(60, 120));
    assert_int_equal(AMQP_ID_METHOD(AMQP_BASIC_NACK), 120);
    assert_int_equal(amqp_method_lookup(AMQP_EXCHANGE_BIND)->nfields, 6);
    assert_string_equal(amqp_method_lookup(AMQP_EXCHANGE_BIND)->fields[3].name, "routing-key");
}

static void test_bad_table_in_method(void **state)
{
    (void)state;
    /* queue.declare whose arguments table holds an unknown type letter */
    static const uint8_t p[] = "\x00\x32\x00\x0a\x00\x00\x00\x00\x00\x00\x00\x03\x01kZ";
    struct amqp_method m;
    assert_int_equal(amqp_method_decode(p, LIT_LEN(p), &m), TERN_EPROTO);
    static const uint8_t ok[] = "\x00\x32\x00\x0a\x00\x00\x00\x00\x00\x00\x00\x03\x01kV";
    assert_int_equal(amqp_method_decode(ok, LIT_LEN(ok), &m), 0);
    assert_int_equal(m.queue_declare.arguments.len, 7);
}

static void test_shortstr_cut_at_255(void **state)
{
    (void)state;
    char text300[300];
    memset(text300, 'x', sizeof(text300));
    struct amqp_method m = {.id = AMQP_CHANNEL_CLOSE}, d;
    m.channel_close.reply_code = AMQP_NOT_FOUND;
    m.channel_close.reply_text = (struct amqp_str){(const uint8_t *)text300, 300};
    struct buf b = BUF_INIT;
    amqp_method_encode(&m, &b);
    assert_int_equal(b.len, 4 + 2 + 1 + 255 + 2 + 2);
    assert_int_equal(amqp_method_decode(b.p, b.len, &d), 0);
    assert_int_equal(d.channel_close.reply_text.len, 255);
    buf_fini(&b);
}

/* ---- frames ---------------------------------------------------------------------------- */

static void test_protocol_header(void **state)
{
    (void)state;
    static const uint8_t good[] = "AMQP\x00\x00\x09\x01"
                                  "extra";
    for (size_t n = 0; n < 8; n++) {
        uint8_t *p = exact_copy(good, n);
        assert_int_equal(amqp_protocol_header_check(p, n), TERN_EAGAIN);
        free(p);
    }
    assert_int_equal(amqp_protocol_header_check(good, 8), 8);
    assert_int_equal(amqp_protocol_header_check(good, LIT_LEN(good)), 8);
    assert_int_equal(amqp_protocol_header_check((const uint8_t *)"AMQP\x01\x01\x00\x09", 8),
                     TERN_EPROTO); /* 0-9 */
    assert_int_equal(amqp_protocol_header_check((const uint8_t *)"AMQP\x00\x00\x09\x00", 8),
                     TERN_EPROTO);
    assert_int_equal(amqp_protocol_header_check((const uint8_t *)"AMQP\x00\x01", 6), TERN_EPROTO);
    assert_int_equal(amqp_protocol_header_check((const uint8_t *)"GET / HTTP/1.1", 14),
                     TERN_EPROTO);
    assert_int_equal(amqp_protocol_header_check((const uint8_t *)"G", 1), TERN_EPROTO);
    struct buf b = BUF_INIT;
    amqp_protocol_header_put(&b);
    assert_int_equal(b.len, 8);
    assert_memory_equal(b.p, good, 8);
    buf_fini(&b);
}

/* A stream of frames as a client sends them, with the ends of each frame. */
static size_t build_stream(struct buf *b, size_t *ends)
{
    size_t n = 0;
    buf_put(b, pika_publish, LIT_LEN(pika_publish)); /* method, header, body */
    ends[n++] = 22;
    ends[n++] = 56;
    ends[n++] = LIT_LEN(pika_publish);
    buf_put(b, pika_heartbeat, LIT_LEN(pika_heartbeat));
    ends[n++] = b->len;
    uint8_t body[5000];
    memset(body, 'b', sizeof(body));
    amqp_frame_put_body(b, 7, body, sizeof(body));
    ends[n++] = b->len;
    amqp_frame_put_body(b, 7, body, 0);
    ends[n++] = b->len;
    buf_put(b, pika_deliver, LIT_LEN(pika_deliver));
    ends[n++] = b->len;
    return n;
}

/* Parses p[0..n) frame by frame; returns the frames parsed and the last result in *rc. */
static size_t parse_frames(const uint8_t *p, size_t n, size_t *pos, int *rc)
{
    struct amqp_frame f;
    size_t count = 0;
    *pos = 0;
    while ((*rc = amqp_frame_parse(p + *pos, n - *pos, 131072, &f)) > 0) {
        assert_int_equal(*rc, f.size + AMQP_FRAME_OVERHEAD);
        assert_ptr_equal(f.payload, p + *pos + 7);
        *pos += (size_t)*rc;
        count++;
    }
    return count;
}

static void test_frame_every_split(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    size_t ends[16], nframes = build_stream(&b, ends);
    for (size_t k = 0; k <= b.len; k++) {
        uint8_t *p = exact_copy(b.p, k);
        size_t pos, whole = 0;
        int rc;
        size_t count = parse_frames(p, k, &pos, &rc);
        while (whole < nframes && ends[whole] <= k)
            whole++;
        assert_int_equal(count, whole); /* every complete frame, and no more */
        assert_int_equal(pos, whole ? ends[whole - 1] : 0);
        assert_int_equal(rc, TERN_EAGAIN); /* the rest is an incomplete frame or nothing */
        free(p);
    }
    buf_fini(&b);
}

static void test_frame_errors(void **state)
{
    (void)state;
    struct amqp_frame f;
    uint8_t fr[LIT_LEN(pika_tune)];
    memcpy(fr, pika_tune, sizeof(fr));
    assert_int_equal(amqp_frame_parse(fr, sizeof(fr), 4096, &f), 20);
    assert_int_equal(f.type, AMQP_FRAME_METHOD);
    assert_int_equal(f.channel, 0);
    assert_int_equal(f.size, 12);
    fr[19] = 0xCD;
    assert_int_equal(amqp_frame_parse(fr, sizeof(fr), 4096, &f), TERN_EPROTO);
    assert_int_equal(amqp_frame_parse(fr, sizeof(fr) - 1, 4096, &f), TERN_EAGAIN);

    /* unknown types are refused from the first byte */
    for (int type = 0; type < 256; type++) {
        if (type == 1 || type == 2 || type == 3 || type == 8)
            continue;
        uint8_t t = (uint8_t)type;
        assert_int_equal(amqp_frame_parse(&t, 1, 4096, &f), TERN_EPROTO);
    }
    assert_int_equal(amqp_frame_parse((const uint8_t *)"AMQP\x00\x00\x09\x01", 8, 4096, &f),
                     TERN_EPROTO);

    /* oversize is known from the 7-byte header alone; size + 8 == frame_max is fine */
    static const uint8_t big[] = "\x03\x00\x01\x00\x00\x0f\xf9";
    uint8_t *hdr = exact_copy(big, 7);
    assert_int_equal(amqp_frame_parse(hdr, 7, 4096, &f), TERN_ETOOBIG);
    assert_int_equal(amqp_frame_parse(hdr, 7, 4097, &f), TERN_EAGAIN);
    assert_int_equal(amqp_frame_parse(hdr, 7, 0, &f), TERN_EAGAIN); /* 0: no limit */
    assert_int_equal(amqp_frame_parse(hdr, 6, 4096, &f), TERN_EAGAIN);
    free(hdr);
    assert_int_equal(amqp_frame_parse((const uint8_t *)"\x03\x00\x01\xff\xff\xff\xff", 7, 0, &f),
                     TERN_ETOOBIG);
    assert_int_equal(amqp_frame_parse(NULL, 0, 4096, &f), TERN_EAGAIN);
}

static void test_put_frames(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    amqp_frame_put_heartbeat(&b);
    assert_int_equal(b.len, LIT_LEN(pika_heartbeat));
    assert_memory_equal(b.p, pika_heartbeat, b.len);
    buf_clear(&b);
    amqp_frame_put_body(&b, 1, (const uint8_t *)"Hello World!", 12);
    assert_memory_equal(b.p, pika_publish + 56, LIT_LEN(pika_publish) - 56);
    buf_clear(&b);

    struct amqp_method m = {.id = AMQP_CONNECTION_TUNE};
    m.connection_tune = (struct amqp_connection_tune){2047, 131072, 60};
    amqp_frame_put_method(&b, 0, &m);
    assert_int_equal(b.len, LIT_LEN(pika_tune));
    assert_memory_equal(b.p, pika_tune, b.len);
    buf_fini(&b);
}

/* Each pika method frame decodes, and our encoder writes the very same frame back. */
static void check_pika_method(const uint8_t *fr, size_t n, struct amqp_method *m)
{
    struct amqp_frame f;
    assert_int_equal(amqp_frame_parse(fr, n, 131072, &f), (int)n);
    assert_int_equal(f.type, AMQP_FRAME_METHOD);
    assert_int_equal(amqp_method_decode(f.payload, f.size, m), 0);
    struct buf b = BUF_INIT;
    amqp_frame_put_method(&b, f.channel, m);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.p, fr, n);
    buf_fini(&b);
}

static void test_pika_methods(void **state)
{
    (void)state;
    struct amqp_method m;
    check_pika_method(pika_publish, 22, &m);
    assert_int_equal(m.id, AMQP_BASIC_PUBLISH);
    assert_str(m.basic_publish.exchange, "");
    assert_str(m.basic_publish.routing_key, "hello");
    assert_false(m.basic_publish.mandatory || m.basic_publish.immediate);

    check_pika_method(pika_queue_declare, LIT_LEN(pika_queue_declare), &m);
    assert_int_equal(m.id, AMQP_QUEUE_DECLARE);
    assert_str(m.queue_declare.queue, "task_queue");
    assert_true(m.queue_declare.durable);
    assert_false(m.queue_declare.passive || m.queue_declare.exclusive ||
                 m.queue_declare.auto_delete || m.queue_declare.nowait);
    assert_int_equal(m.queue_declare.arguments.len, 28);

    check_pika_method(pika_tune, LIT_LEN(pika_tune), &m);
    assert_int_equal(m.connection_tune.channel_max, 2047);
    assert_int_equal(m.connection_tune.frame_max, 131072);
    assert_int_equal(m.connection_tune.heartbeat, 60);

    check_pika_method(pika_nack, LIT_LEN(pika_nack), &m);
    assert_int_equal(m.basic_nack.delivery_tag, 5);
    assert_true(m.basic_nack.multiple);
    assert_false(m.basic_nack.requeue);

    check_pika_method(pika_deliver, LIT_LEN(pika_deliver), &m);
    assert_str(m.basic_deliver.consumer_tag, "ctag1.0");
    assert_int_equal(m.basic_deliver.delivery_tag, 1);
    assert_true(m.basic_deliver.redelivered);
    assert_str(m.basic_deliver.exchange, "amq.direct");
    assert_str(m.basic_deliver.routing_key, "rk");
}

/* Each pika content header parses, and put_header writes the very same frame back. */
static void check_pika_header(const uint8_t *fr, size_t n, struct amqp_props *pr,
                              uint64_t *body_size)
{
    struct amqp_frame f;
    assert_int_equal(amqp_frame_parse(fr, n, 131072, &f), (int)n);
    assert_int_equal(f.type, AMQP_FRAME_HEADER);
    uint16_t class_id;
    const uint8_t *props;
    size_t props_len;
    assert_int_equal(amqp_header_parse(f.payload, f.size, &class_id, body_size, &props, &props_len),
                     0);
    assert_int_equal(class_id, AMQP_CLASS_BASIC);
    assert_int_equal(amqp_props_decode(props, props_len, pr), 0);
    struct buf b = BUF_INIT, pb = BUF_INIT;
    amqp_frame_put_header(&b, f.channel, class_id, *body_size, props, props_len);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.p, fr, n);
    amqp_props_encode(pr, &pb); /* the decoded properties encode to the same bytes */
    assert_int_equal(pb.len, props_len);
    assert_memory_equal(pb.p, props, props_len);
    buf_fini(&b);
    buf_fini(&pb);
}

static void test_pika_headers(void **state)
{
    (void)state;
    struct amqp_props pr;
    uint64_t body_size;
    check_pika_header(pika_publish + 22, 34, &pr, &body_size);
    assert_int_equal(body_size, 12);
    assert_int_equal(pr.flags, AMQP_P_CONTENT_TYPE | AMQP_P_DELIVERY_MODE);
    assert_str(pr.content_type, "text/plain");
    assert_int_equal(pr.delivery_mode, 2);

    check_pika_header(pika_props_all, LIT_LEN(pika_props_all), &pr, &body_size);
    assert_int_equal(body_size, 0);
    assert_int_equal(pr.flags, AMQP_P_ALL);
    assert_str(pr.content_type, "application/json");
    assert_str(pr.content_encoding, "gzip");
    assert_int_equal(pr.headers.len, 17);
    assert_int_equal(pr.delivery_mode, 2);
    assert_int_equal(pr.priority, 5);
    assert_str(pr.correlation_id, "c1");
    assert_str(pr.reply_to, "amq.rabbitmq.reply-to");
    assert_str(pr.expiration, "60000");
    assert_str(pr.message_id, "m1");
    assert_int_equal(pr.timestamp, 1700000000);
    assert_str(pr.type, "t");
    assert_str(pr.user_id, "guest");
    assert_str(pr.app_id, "app");
    assert_str(pr.cluster_id, "");
}

/* ---- properties ------------------------------------------------------------------------ */

static struct amqp_props full_props(void)
{
    return (struct amqp_props){
        .flags = AMQP_P_ALL,
        .content_type = str_of("application/octet-stream"),
        .content_encoding = str_of("utf-8"),
        .headers = {small_table, LIT_LEN(small_table)},
        .delivery_mode = 2,
        .priority = 9,
        .correlation_id = str_of("corr"),
        .reply_to = str_of("reply"),
        .expiration = str_of("1000"),
        .message_id = str_of("mid"),
        .timestamp = 0x0102030405060708,
        .type = str_of("ty"),
        .user_id = str_of("guest"),
        .app_id = str_of("app"),
        .cluster_id = str_of("cl"),
    };
}

static void assert_props_match(const struct amqp_props *in, const struct amqp_props *out)
{
    uint16_t fl = in->flags;
    assert_int_equal(out->flags, fl);
#define STR(flag, field)                                                                           \
    assert_true(amqp_wire_str_eq(out->field, (fl & (flag)) ? in->field : (struct amqp_str){0}))
    STR(AMQP_P_CONTENT_TYPE, content_type);
    STR(AMQP_P_CONTENT_ENCODING, content_encoding);
    STR(AMQP_P_HEADERS, headers);
    STR(AMQP_P_CORRELATION_ID, correlation_id);
    STR(AMQP_P_REPLY_TO, reply_to);
    STR(AMQP_P_EXPIRATION, expiration);
    STR(AMQP_P_MESSAGE_ID, message_id);
    STR(AMQP_P_TYPE, type);
    STR(AMQP_P_USER_ID, user_id);
    STR(AMQP_P_APP_ID, app_id);
    STR(AMQP_P_CLUSTER_ID, cluster_id);
#undef STR
    assert_int_equal(out->delivery_mode, (fl & AMQP_P_DELIVERY_MODE) ? in->delivery_mode : 0);
    assert_int_equal(out->priority, (fl & AMQP_P_PRIORITY) ? in->priority : 0);
    assert_true(out->timestamp == ((fl & AMQP_P_TIMESTAMP) ? in->timestamp : 0));
}

/* All 2^14 combinations of the 14 flags. */
static void test_props_every_combination(void **state)
{
    (void)state;
    struct amqp_props in = full_props(), out;
    struct buf b = BUF_INIT;
    for (uint32_t combo = 0; combo < (1u << 14); combo++) {
        in.flags = (uint16_t)(combo << 2);
        buf_clear(&b);
        amqp_props_encode(&in, &b);
        assert_int_equal(amqp_props_decode(b.p, b.len, &out), 0);
        assert_props_match(&in, &out);
    }
    buf_fini(&b);
}

static void test_props_malformed(void **state)
{
    (void)state;
    struct amqp_props in = full_props(), out;
    struct buf b = BUF_INIT;
    amqp_props_encode(&in, &b);
    for (size_t n = 0; n < b.len; n++) {
        uint8_t *p = exact_copy(b.p, n);
        assert_int_equal(amqp_props_decode(p, n, &out), TERN_EPROTO);
        free(p);
    }
    buf_put_u8(&b, 0);
    assert_int_equal(amqp_props_decode(b.p, b.len, &out), TERN_EPROTO); /* trailing byte */
    assert_int_equal(amqp_props_decode((const uint8_t *)"\x00\x01", 2, &out), TERN_EPROTO);
    assert_int_equal(amqp_props_decode((const uint8_t *)"\x00\x02", 2, &out), TERN_EPROTO);
    assert_int_equal(amqp_props_decode((const uint8_t *)"\x00\x00", 2, &out), 0);
    /* headers with a bad table */
    assert_int_equal(amqp_props_decode((const uint8_t *)"\x20\x00\x00\x00\x00\x03\x01kZ", 9, &out),
                     TERN_EPROTO);
    /* bits 1 and 0 are never written */
    in.flags = 0x0003;
    buf_clear(&b);
    amqp_props_encode(&in, &b);
    assert_int_equal(b.len, 2);
    assert_memory_equal(b.p, "\x00\x00", 2);
    buf_fini(&b);
}

static void test_header_parse_errors(void **state)
{
    (void)state;
    uint16_t class_id;
    uint64_t body_size;
    const uint8_t *props;
    size_t props_len;
    static const uint8_t ok[] = "\x00\x3c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00";
    assert_int_equal(amqp_header_parse(ok, 14, &class_id, &body_size, &props, &props_len), 0);
    assert_int_equal(body_size, 5);
    assert_int_equal(props_len, 2);
    for (size_t n = 0; n < 14; n++) {
        uint8_t *p = exact_copy(ok, n);
        assert_int_equal(amqp_header_parse(p, n, &class_id, &body_size, &props, &props_len),
                         TERN_EPROTO);
        free(p);
    }
    static const uint8_t weight[] = "\x00\x3c\x00\x01\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00";
    assert_int_equal(amqp_header_parse(weight, 14, &class_id, &body_size, &props, &props_len),
                     TERN_EPROTO);
    static const uint8_t flags[] = "\x00\x3c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05\x80\x00";
    assert_int_equal(amqp_header_parse(flags, 14, &class_id, &body_size, &props, &props_len),
                     TERN_EPROTO); /* content-type flagged but absent */
}

static void test_reply_names(void **state)
{
    (void)state;
    static const struct {
        int code;
        const char *name;
    } codes[] = {
        {AMQP_REPLY_SUCCESS, "REPLY_SUCCESS"},
        {AMQP_CONTENT_TOO_LARGE, "CONTENT_TOO_LARGE"},
        {AMQP_NO_ROUTE, "NO_ROUTE"},
        {AMQP_NO_CONSUMERS, "NO_CONSUMERS"},
        {AMQP_CONNECTION_FORCED, "CONNECTION_FORCED"},
        {AMQP_INVALID_PATH, "INVALID_PATH"},
        {AMQP_ACCESS_REFUSED, "ACCESS_REFUSED"},
        {AMQP_NOT_FOUND, "NOT_FOUND"},
        {AMQP_RESOURCE_LOCKED, "RESOURCE_LOCKED"},
        {AMQP_PRECONDITION_FAILED, "PRECONDITION_FAILED"},
        {AMQP_FRAME_ERROR, "FRAME_ERROR"},
        {AMQP_SYNTAX_ERROR, "SYNTAX_ERROR"},
        {AMQP_COMMAND_INVALID, "COMMAND_INVALID"},
        {AMQP_CHANNEL_ERROR, "CHANNEL_ERROR"},
        {AMQP_UNEXPECTED_FRAME, "UNEXPECTED_FRAME"},
        {AMQP_RESOURCE_ERROR, "RESOURCE_ERROR"},
        {AMQP_NOT_ALLOWED, "NOT_ALLOWED"},
        {AMQP_NOT_IMPLEMENTED, "NOT_IMPLEMENTED"},
        {AMQP_INTERNAL_ERROR, "INTERNAL_ERROR"},
    };
    for (size_t i = 0; i < TERN_ARRAY_LEN(codes); i++)
        assert_string_equal(amqp_reply_name(codes[i].code), codes[i].name);
    assert_int_equal(AMQP_NOT_FOUND, 404);
    assert_int_equal(AMQP_FRAME_ERROR, 501);
    assert_string_equal(amqp_reply_name(999), "UNKNOWN");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_method),
        cmocka_unit_test(test_truncated_every_method),
        cmocka_unit_test(test_bit_packing),
        cmocka_unit_test(test_wire_many_bits),
        cmocka_unit_test(test_unknown_ids),
        cmocka_unit_test(test_method_info),
        cmocka_unit_test(test_bad_table_in_method),
        cmocka_unit_test(test_shortstr_cut_at_255),
        cmocka_unit_test(test_protocol_header),
        cmocka_unit_test(test_frame_every_split),
        cmocka_unit_test(test_frame_errors),
        cmocka_unit_test(test_put_frames),
        cmocka_unit_test(test_pika_methods),
        cmocka_unit_test(test_pika_headers),
        cmocka_unit_test(test_props_every_combination),
        cmocka_unit_test(test_props_malformed),
        cmocka_unit_test(test_header_parse_errors),
        cmocka_unit_test(test_reply_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
