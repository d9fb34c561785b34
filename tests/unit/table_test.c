/* table_test.c - typed tables: access, equality, every type letter, nesting, malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/table.h"
#include "base/tern.h"

/* A table pika 1.2.0 encodes (pika.data.encode_table) from the Python dict
 * {'x-max-length': 10, 'x-queue-type': 'quorum', 'flag': True, 'big': 2**40, 'neg': -5,
 *  'dec': Decimal('123.45'), 'ts': datetime(2024,1,2,3,4,5), 'arr': [1, 'a', {'k': None}],
 *  'bytes': b'\x00\x01', 'nested': {'inner': 'v'}} */
static const uint8_t pika_table[] =
    "\x00\x00\x00\x9e\x0c\x78\x2d\x6d\x61\x78\x2d\x6c\x65\x6e\x67\x74\x68\x49\x00\x00\x00\x0a\x0c"
    "\x78"
    "\x2d\x71\x75\x65\x75\x65\x2d\x74\x79\x70\x65\x53\x00\x00\x00\x06\x71\x75\x6f\x72\x75\x6d\x04"
    "\x66"
    "\x6c\x61\x67\x74\x01\x03\x62\x69\x67\x6c\x00\x00\x01\x00\x00\x00\x00\x00\x03\x6e\x65\x67\x49"
    "\xff"
    "\xff\xff\xfb\x03\x64\x65\x63\x44\x02\x00\x00\x30\x39\x02\x74\x73\x54\x00\x00\x00\x00\x65\x93"
    "\x7d"
    "\x25\x03\x61\x72\x72\x41\x00\x00\x00\x13\x49\x00\x00\x00\x01\x53\x00\x00\x00\x01\x61\x46\x00"
    "\x00"
    "\x00\x03\x01\x6b\x56\x05\x62\x79\x74\x65\x73\x78\x00\x00\x00\x02\x00\x01\x06\x6e\x65\x73\x74"
    "\x65"
    "\x64\x46\x00\x00\x00\x0c\x05\x69\x6e\x6e\x65\x72\x53\x00\x00\x00\x01\x76";
#define PIKA_TABLE_LEN (sizeof(pika_table) - 1)

static struct tval tv_int(enum tval_kind kind, int64_t i)
{
    return (struct tval){.kind = kind, .i = i};
}

static struct tval tv_uint(enum tval_kind kind, uint64_t u)
{
    return (struct tval){.kind = kind, .u = u};
}

static struct tval tv_bytes(enum tval_kind kind, const char *p, uint32_t len)
{
    struct tval v = {.kind = kind, .s = {malloc(len + 1), len}};
    memcpy(v.s.p, p, len);
    v.s.p[len] = '\0';
    return v;
}

/* Encodes t, decodes it back, checks equality and that re-encoding gives the same bytes. */
static void check_round_trip(const struct table *t)
{
    struct buf b = BUF_INIT, b2 = BUF_INIT;
    table_encode(t, &b);
    assert_int_equal(table_validate(b.p, b.len), (int)b.len);
    struct table *d;
    assert_int_equal(table_decode(b.p, b.len, &d), (int)b.len);
    assert_true(table_equal(t, d));
    assert_true(table_equal(d, t));
    table_encode(d, &b2);
    assert_int_equal(b.len, b2.len);
    assert_memory_equal(b.p, b2.p, b.len);
    table_free(d);
    buf_fini(&b);
    buf_fini(&b2);
}

/* A table holding one value of every kind, nested ones included. */
static struct table *every_kind(void)
{
    struct table *t = table_new(), *inner = table_new();
    struct tarray *a = calloc(1, sizeof(*a));
    a->cap = 3;
    a->v = calloc(3, sizeof(struct tval));
    a->v[a->n++] = tv_int(TV_I32, -7);
    a->v[a->n++] = tv_bytes(TV_STR, "in array", 8);
    table_set_str(inner, "deep", "value");
    a->v[a->n++] = (struct tval){.kind = TV_TABLE, .t = table_dup(inner)};
    table_set(t, "void", (struct tval){.kind = TV_VOID});
    table_set_bool(t, "bool", true);
    table_set(t, "i8", tv_int(TV_I8, -128));
    table_set(t, "u8", tv_uint(TV_U8, 255));
    table_set(t, "i16", tv_int(TV_I16, -32768));
    table_set(t, "u16", tv_uint(TV_U16, 65535));
    table_set(t, "i32", tv_int(TV_I32, INT32_MIN));
    table_set(t, "u32", tv_uint(TV_U32, UINT32_MAX));
    table_set_int(t, "i64", INT64_MIN);
    table_set(t, "float", (struct tval){.kind = TV_FLOAT, .f = -0.25f});
    table_set(t, "double", (struct tval){.kind = TV_DOUBLE, .d = 3.141592653589793});
    table_set(t, "decimal", (struct tval){.kind = TV_DECIMAL, .dec = {2, 12345}});
    table_set_str(t, "str", "hello");
    table_set(t, "bytes", tv_bytes(TV_BYTES, "\0\1\2\0", 4));
    table_set(t, "time", tv_uint(TV_TIME, 1700000000));
    table_set(t, "table", (struct tval){.kind = TV_TABLE, .t = inner});
    table_set(t, "array", (struct tval){.kind = TV_ARRAY, .a = a});
    return t;
}

static void test_every_kind_round_trip(void **state)
{
    (void)state;
    struct table *t = every_kind();
    assert_int_equal(t->n, 17);
    check_round_trip(t);
    check_round_trip(NULL);
    struct table *empty = table_new();
    check_round_trip(empty);
    table_free(empty);
    table_free(t);
}

/* Each type letter's bytes decode to the expected value. */
static void test_type_letters(void **state)
{
    (void)state;
    /* each entry: key length 1 (octal, so a letter after it is not read as a hex digit), the
     * key (the letter itself), the letter, the payload */
    static const uint8_t in[] = "\x00\x00\x00\x68"
                                "\001tt\x01"
                                "\001bb\xff"
                                "\001BB\xff"
                                "\001ss\xff\xfe"
                                "\001uu\xff\xfe"
                                "\001II\xff\xff\xff\xff"
                                "\001ii\xff\xff\xff\xff"
                                "\001ll\xff\xff\xff\xff\xff\xff\xff\xfe"
                                "\001ff\x3f\xc0\x00\x00"
                                "\001dd\x3f\xf8\x00\x00\x00\x00\x00\x00"
                                "\001DD\x02\x00\x00\x30\x39"
                                "\001TT\x00\x00\x00\x00\x65\x53\xf1\x00"
                                "\001SS\x00\x00\x00\x02hi"
                                "\001xx\x00\x00\x00\x01\x00"
                                "\001VV";
    struct table *t;
    assert_int_equal(table_decode(in, sizeof(in) - 1, &t), (int)sizeof(in) - 1);
    assert_int_equal(t->n, 15);
    int64_t i;
    assert_true(table_get(t, "t")->b);
    assert_true(tval_int(table_get(t, "b"), &i) && i == -1);
    assert_true(tval_int(table_get(t, "B"), &i) && i == 255);
    assert_true(tval_int(table_get(t, "s"), &i) && i == -2);
    assert_true(tval_int(table_get(t, "u"), &i) && i == 65534);
    assert_true(tval_int(table_get(t, "I"), &i) && i == -1);
    assert_true(tval_int(table_get(t, "i"), &i) && i == 4294967295);
    assert_true(tval_int(table_get(t, "l"), &i) && i == -2);
    assert_true(tval_int(table_get(t, "T"), &i) && i == 1700000000);
    assert_true(table_get(t, "f")->f == 1.5f);
    assert_true(table_get(t, "d")->d == 1.5);
    assert_int_equal(table_get(t, "D")->dec.scale, 2);
    assert_int_equal(table_get(t, "D")->dec.value, 12345);
    const char *s;
    uint32_t len;
    assert_true(tval_str(table_get(t, "S"), &s, &len) && len == 2 && strcmp(s, "hi") == 0);
    assert_true(tval_str(table_get(t, "x"), &s, &len) && len == 1 && s[0] == 0);
    assert_int_equal(table_get(t, "V")->kind, TV_VOID);
    assert_false(tval_int(table_get(t, "S"), &i));
    assert_false(tval_str(table_get(t, "I"), &s, &len));

    struct buf b = BUF_INIT;
    table_encode(t, &b);
    assert_int_equal(b.len, sizeof(in) - 1);
    assert_memory_equal(b.p, in, b.len);
    buf_fini(&b);
    table_free(t);
}

static void test_pika_table(void **state)
{
    (void)state;
    struct table *t;
    assert_int_equal(table_validate(pika_table, PIKA_TABLE_LEN), (int)PIKA_TABLE_LEN);
    assert_int_equal(table_decode(pika_table, PIKA_TABLE_LEN, &t), (int)PIKA_TABLE_LEN);
    assert_int_equal(t->n, 10);
    int64_t i;
    const char *s;
    uint32_t len;
    assert_true(tval_int(table_get(t, "x-max-length"), &i) && i == 10);
    assert_int_equal(table_get(t, "x-max-length")->kind, TV_I32);
    assert_true(tval_str(table_get(t, "x-queue-type"), &s, &len) && strcmp(s, "quorum") == 0);
    assert_true(table_get(t, "flag")->b);
    assert_true(tval_int(table_get(t, "big"), &i) && i == 1ll << 40);
    assert_true(tval_int(table_get(t, "neg"), &i) && i == -5);
    assert_int_equal(table_get(t, "dec")->dec.value, 12345);
    assert_true(tval_int(table_get(t, "ts"), &i) && i == 1704164645);
    const struct tval *arr = table_get(t, "arr");
    assert_int_equal(arr->kind, TV_ARRAY);
    assert_int_equal(arr->a->n, 3);
    assert_int_equal(arr->a->v[2].kind, TV_TABLE);
    assert_int_equal(table_get(arr->a->v[2].t, "k")->kind, TV_VOID);
    assert_int_equal(table_get(t, "bytes")->kind, TV_BYTES);
    const struct tval *nested = table_get(t, "nested");
    assert_true(tval_str(table_get(nested->t, "inner"), &s, &len) && strcmp(s, "v") == 0);

    /* canonical: re-encoding gives pika's bytes back */
    struct buf b = BUF_INIT;
    table_encode(t, &b);
    assert_int_equal(b.len, PIKA_TABLE_LEN);
    assert_memory_equal(b.p, pika_table, b.len);
    buf_fini(&b);
    table_free(t);
}

/* Every proper prefix of a valid table is refused by both decode and validate. */
static void test_truncated(void **state)
{
    (void)state;
    struct table *t = every_kind();
    struct buf b = BUF_INIT;
    table_encode(t, &b);
    for (size_t n = 0; n < b.len; n++) {
        uint8_t *copy = malloc(n ? n : 1); /* exact size, so ASan sees any overread */
        memcpy(copy, b.p, n);
        struct table *d = (struct table *)1;
        assert_int_equal(table_validate(copy, n), TERN_EPROTO);
        assert_int_equal(table_decode(copy, n, &d), TERN_EPROTO);
        assert_null(d);
        free(copy);
    }
    /* bytes after the table are not consumed */
    buf_put_u8(&b, 0xAB);
    assert_int_equal(table_validate(b.p, b.len), (int)b.len - 1);
    buf_fini(&b);
    table_free(t);
}

static void expect_bad(const char *what, const uint8_t *p, size_t n)
{
    struct table *d = (struct table *)1;
    int v = table_validate(p, n), rc = table_decode(p, n, &d);
    if (v != TERN_EPROTO || rc != TERN_EPROTO || d != NULL)
        fail_msg("%s: validate %d decode %d", what, v, rc);
}

static void test_malformed(void **state)
{
    (void)state;
#define BAD(what, lit) expect_bad(what, (const uint8_t *)(lit), sizeof(lit) - 1)
    BAD("unknown letter", "\x00\x00\x00\x03\x01kZ");
    BAD("spec's 'U' is not RabbitMQ's", "\x00\x00\x00\x04\x01kU\x00");
    BAD("length past the input", "\x00\x00\x00\x10\x01kV");
    BAD("value past the table", "\x00\x00\x00\x04\x01kI\x00\x00\x00\x01");
    BAD("key past the table", "\x00\x00\x00\x02\x05kV");
    BAD("key with a NUL", "\x00\x00\x00\x04\x02k\x00V");
    BAD("bool 2", "\x00\x00\x00\x04\x01kt\x02");
    /* the bytes a length claims are in the input, but outside the enclosing table or array */
    BAD("longstr past the table", "\x00\x00\x00\x07\x01kS\x00\x00\x00\x02hi");
    BAD("nested length past the outer table", "\x00\x00\x00\x07\x01kF\x00\x00\x00\x03\x01kV");
    BAD("array item past the array", "\x00\x00\x00\x08\x01kA\x00\x00\x00\x01I\x00\x00\x00\x00");
    BAD("array with a bad item", "\x00\x00\x00\x08\x01kA\x00\x00\x00\x01Z");
    BAD("huge length", "\xff\xff\xff\xff\x01kV");
    BAD("huge longstr", "\x00\x00\x00\x07\x01kS\xff\xff\xff\xff");
#undef BAD
    static const uint8_t ok[] = "\x00\x00\x00\x04\x01kt\x00";
    assert_int_equal(table_validate(ok, sizeof(ok) - 1), 8);
    static const uint8_t empty_key[] = "\x00\x00\x00\x02\x00V";
    assert_int_equal(table_validate(empty_key, sizeof(empty_key) - 1), 6);
}

/* levels nested tables: {"n": {"n": ... {}}}; levels counts the outermost. */
static struct table *nest_tables(int levels)
{
    struct table *t = table_new();
    for (int i = 1; i < levels; i++) {
        struct table *outer = table_new();
        table_set(outer, "n", (struct tval){.kind = TV_TABLE, .t = t});
        t = outer;
    }
    return t;
}

/* A table holding levels - 1 arrays nested in one another. */
static struct table *nest_arrays(int levels)
{
    struct tval v = {.kind = TV_ARRAY, .a = calloc(1, sizeof(struct tarray))};
    for (int i = 2; i < levels; i++) {
        struct tarray *a = calloc(1, sizeof(*a));
        a->v = malloc(sizeof(struct tval));
        a->cap = a->n = 1;
        a->v[0] = v;
        v = (struct tval){.kind = TV_ARRAY, .a = a};
    }
    struct table *t = table_new();
    table_set(t, "a", v);
    return t;
}

static void check_depth(struct table *ok, struct table *too_deep)
{
    check_round_trip(ok);
    struct buf b = BUF_INIT;
    table_encode(too_deep, &b);
    expect_bad("too deep", b.p, b.len);
    buf_fini(&b);
    table_free(ok);
    table_free(too_deep);
}

static void test_depth_limit(void **state)
{
    (void)state;
    check_depth(nest_tables(TABLE_MAX_DEPTH), nest_tables(TABLE_MAX_DEPTH + 1));
    check_depth(nest_arrays(TABLE_MAX_DEPTH), nest_arrays(TABLE_MAX_DEPTH + 1));
}

static void test_equal(void **state)
{
    (void)state;
    struct table *a = table_new(), *b = table_new();
    assert_true(table_equal(NULL, NULL));
    assert_true(table_equal(a, NULL));
    assert_true(table_equal(NULL, b));
    table_set_int(a, "x", 1);
    table_set_str(a, "y", "s");
    table_set_str(b, "y", "s");
    assert_false(table_equal(a, b));
    assert_false(table_equal(a, NULL));
    table_set_int(b, "x", 1);
    assert_true(table_equal(a, b)); /* order does not matter */
    table_set(b, "x", tv_int(TV_I32, 1));
    assert_false(table_equal(a, b)); /* same number, another kind */
    table_set(b, "x", tv_int(TV_I64, 2));
    assert_false(table_equal(a, b));
    table_set_int(b, "x", 1);
    table_set_str(b, "y", "t");
    assert_false(table_equal(a, b));
    table_set_str(b, "y", "s");

    /* nested values, NaN, arrays in order */
    struct tval nan = {.kind = TV_DOUBLE, .d = __builtin_nan("")};
    assert_true(tval_equal(&nan, &nan));
    struct table *c = table_dup(a), *d = table_dup(a);
    table_set(a, "t", (struct tval){.kind = TV_TABLE, .t = c});
    table_set(b, "t", (struct tval){.kind = TV_TABLE, .t = d});
    assert_true(table_equal(a, b));
    table_set_bool(d, "extra", false);
    assert_false(table_equal(a, b));
    table_del(d, "extra");
    assert_true(table_equal(a, b));
    table_free(a);
    table_free(b);
}

/* Duplicate keys are legal on the wire: equality compares the entries as multisets. */
static void test_equal_duplicate_keys(void **state)
{
    (void)state;
    static const uint8_t k1k1k2[] = "\x00\x00\x00\x0f\x01kt\x01\x01kt\x01\x01kt\x00\x01jV";
    static const uint8_t k1k2k2[] = "\x00\x00\x00\x0f\x01kt\x01\x01kt\x00\x01kt\x00\x01jV";
    static const uint8_t k2k1k1[] = "\x00\x00\x00\x0f\x01jV\x01kt\x00\x01kt\x01\x01kt\x01";
    struct table *a, *b, *c;
    assert_int_equal(table_decode(k1k1k2, sizeof(k1k1k2) - 1, &a), 19);
    assert_int_equal(table_decode(k1k2k2, sizeof(k1k2k2) - 1, &b), 19);
    assert_int_equal(table_decode(k2k1k1, sizeof(k2k1k1) - 1, &c), 19);
    assert_false(table_equal(a, b));
    assert_true(table_equal(a, c));
    assert_true(table_get(a, "k")->b); /* first match */
    check_round_trip(a);
    table_free(a);
    table_free(b);
    table_free(c);
}

static void test_set_get_del(void **state)
{
    (void)state;
    struct table *t = table_new();
    assert_null(table_get(t, "a"));
    assert_false(table_del(t, "a"));
    for (int i = 0; i < 20; i++) {
        char key[8];
        snprintf(key, sizeof(key), "k%d", i);
        table_set_int(t, key, i);
    }
    assert_int_equal(t->n, 20);
    table_set_str(t, "k3", "replaced");
    assert_int_equal(t->n, 20);
    assert_int_equal(table_get(t, "k3")->kind, TV_STR);
    assert_true(table_del(t, "k0"));
    assert_true(table_del(t, "k19"));
    assert_true(table_del(t, "k10"));
    assert_false(table_del(t, "k10"));
    assert_int_equal(t->n, 17);
    int64_t v;
    assert_true(tval_int(table_get(t, "k11"), &v) && v == 11);
    table_set_bool(t, "b", false);
    assert_false(table_get(t, "b")->b);

    struct tval big = tv_uint(TV_TIME, UINT64_MAX);
    assert_false(tval_int(&big, &v));

    char key[256];
    memset(key, 'k', 255);
    key[255] = '\0';
    table_set_str(t, key, "longest key");
    check_round_trip(t);
    table_free(t);
}

static void test_dup_is_deep(void **state)
{
    (void)state;
    struct table *t = every_kind(), *d = table_dup(t);
    assert_true(table_equal(t, d));
    struct tval copy = tval_dup(table_get(t, "array"));
    table_del(t, "array");
    table_set_str(t, "str", "changed");
    table_set_int(table_get(t, "table")->t, "deep", 1);
    assert_false(table_equal(t, d));
    assert_true(tval_equal(&copy, table_get(d, "array")));
    tval_fini(&copy);
    assert_int_equal(copy.kind, TV_VOID);
    check_round_trip(d);
    assert_null(table_dup(NULL));
    table_free(t);
    table_free(d);
    table_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_kind_round_trip),
        cmocka_unit_test(test_type_letters),
        cmocka_unit_test(test_pika_table),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_equal),
        cmocka_unit_test(test_equal_duplicate_keys),
        cmocka_unit_test(test_set_get_del),
        cmocka_unit_test(test_dup_is_deep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
