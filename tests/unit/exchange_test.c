/* exchange_test.c - exchanges: binding identity, unbinding, and routing for every type,
 * headers matching as RabbitMQ 4.x does it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>

#include "base/table.h"
#include "broker/exchange.h"

/* ---- helpers -------------------------------------------------------------------------------- */

struct hit {
    void *dest;
    enum exchange_dest_kind kind;
};

struct hits {
    struct hit h[32];
    size_t n;
};

static void collect(void *arg, void *dest, enum exchange_dest_kind kind)
{
    struct hits *s = arg;
    for (size_t i = 0; i < s->n; i++)
        assert_ptr_not_equal(s->h[i].dest, dest); /* each destination once */
    assert_true(s->n < 32);
    s->h[s->n++] = (struct hit){dest, kind};
}

static struct hits route(const struct exchange *x, const char *rk, const struct table *headers)
{
    struct hits s = {.n = 0};
    exchange_route(x, rk, strlen(rk), headers, collect, &s);
    return s;
}

static bool has(const struct hits *s, const void *dest)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->h[i].dest == dest)
            return true;
    }
    return false;
}

/* A table from "key", kind, value triples, ended by NULL. Ints go in as int64_t, floats as
 * double, strings and bytes as const char *; TV_VOID takes no value. */
static struct table *tab(const char *key, ...)
{
    struct table *t = table_new();
    va_list ap;
    va_start(ap, key);
    for (; key; key = va_arg(ap, const char *)) {
        struct tval v = {.kind = (enum tval_kind)va_arg(ap, int)};
        switch (v.kind) {
        case TV_VOID:
            break;
        case TV_BOOL:
            v.b = va_arg(ap, int);
            break;
        case TV_I8:
        case TV_I16:
        case TV_I32:
        case TV_I64:
            v.i = va_arg(ap, int64_t);
            break;
        case TV_FLOAT:
            v.f = (float)va_arg(ap, double);
            break;
        case TV_DOUBLE:
            v.d = va_arg(ap, double);
            break;
        case TV_STR:
        case TV_BYTES: {
            const char *s = va_arg(ap, const char *);
            v.s.len = (uint32_t)strlen(s);
            v.s.p = strdup(s);
            break;
        }
        case TV_TABLE:
            v.t = va_arg(ap, struct table *); /* taken over */
            break;
        default: /* U8, U16, U32, TIME */
            v.u = va_arg(ap, uint64_t);
            break;
        }
        table_set(t, key, v);
    }
    va_end(ap);
    return t;
}

/* Routes headers h through a headers exchange bound once with args; frees both tables. */
static bool hmatch(struct table *args, struct table *h)
{
    int q;
    struct exchange *x = exchange_new("h", EXCHANGE_HEADERS);
    assert_int_equal(exchange_headers_args_valid(args), 0);
    assert_int_equal(exchange_bind(x, &q, EXCHANGE_DEST_QUEUE, "", args), 1);
    struct hits s = route(x, "ignored", h);
    exchange_free(x);
    table_free(args);
    table_free(h);
    return s.n == 1;
}

/* ---- basics --------------------------------------------------------------------------------- */

static void test_types(void **state)
{
    (void)state;
    const char *names[] = {"direct", "fanout", "topic", "headers"};
    for (int i = 0; i < 4; i++) {
        enum exchange_type t;
        assert_int_equal(exchange_type_parse(names[i], strlen(names[i]), &t), 0);
        assert_int_equal(t, i);
        assert_string_equal(exchange_type_name(t), names[i]);
        struct exchange *x = exchange_new("x", t);
        assert_string_equal(exchange_name(x), "x");
        assert_int_equal(exchange_type(x), t);
        exchange_free(x);
    }
    enum exchange_type t;
    assert_int_equal(exchange_type_parse("Direct", 6, &t), -EINVAL);
    assert_int_equal(exchange_type_parse("topic", 4, &t), -EINVAL);
    assert_int_equal(exchange_type_parse("topics", 6, &t), -EINVAL);
    assert_int_equal(exchange_type_parse("", 0, &t), -EINVAL);
    assert_int_equal(exchange_type_parse("x-consistent-hash", 17, &t), -EINVAL);
    assert_string_equal(exchange_type_name((enum exchange_type)42), "unknown");
    exchange_free(NULL);
}

static void test_bind_identity(void **state)
{
    (void)state;
    int q1, q2;
    struct exchange *x = exchange_new("", EXCHANGE_DIRECT);
    assert_int_equal(exchange_bind(x, &q1, EXCHANGE_DEST_QUEUE, "k", NULL), 1);
    assert_int_equal(exchange_bind(x, &q1, EXCHANGE_DEST_QUEUE, "k", NULL), 0);
    struct table *empty = table_new();
    assert_int_equal(exchange_bind(x, &q1, EXCHANGE_DEST_QUEUE, "k", empty), 0); /* NULL = {} */
    struct table *a = tab("a", TV_I64, (int64_t)1, "b", TV_STR, "x", NULL);
    struct table *b = tab("b", TV_STR, "x", "a", TV_I64, (int64_t)1, NULL); /* other order */
    struct table *c = tab("a", TV_I64, (int64_t)2, NULL);
    assert_int_equal(exchange_bind(x, &q1, EXCHANGE_DEST_QUEUE, "k", a), 1);
    assert_int_equal(exchange_bind(x, &q1, EXCHANGE_DEST_QUEUE, "k", b), 0);
    assert_int_equal(exchange_bind(x, &q1, EXCHANGE_DEST_QUEUE, "k", c), 1);
    assert_int_equal(exchange_bind(x, &q2, EXCHANGE_DEST_QUEUE, "k", NULL), 1);
    assert_int_equal(exchange_bind(x, &q1, EXCHANGE_DEST_QUEUE, "", NULL), 1);
    assert_int_equal(exchange_binding_count(x), 5);
    /* args were copied: changing the caller's table changes nothing */
    table_set_int(a, "a", 99);
    assert_int_equal(exchange_bind(x, &q1, EXCHANGE_DEST_QUEUE, "k", b), 0);

    /* q1 has three bindings on "k": routed once */
    struct hits s = route(x, "k", NULL);
    assert_int_equal(s.n, 2);
    assert_ptr_equal(s.h[0].dest, &q1);
    assert_ptr_equal(s.h[1].dest, &q2);

    assert_int_equal(exchange_unbind(x, &q1, "k", a), -ENOENT); /* a is now {a: 99} */
    assert_int_equal(exchange_unbind(x, &q1, "k", b), 0);
    assert_int_equal(exchange_unbind(x, &q1, "k", b), -ENOENT);
    assert_int_equal(exchange_unbind(x, &q1, "nope", NULL), -ENOENT);
    assert_int_equal(exchange_unbind(x, &q2, "", NULL), -ENOENT);
    assert_int_equal(exchange_binding_count(x), 4);
    assert_int_equal(exchange_unbind(x, &q1, "k", empty), 0);
    s = route(x, "k", NULL); /* q1 still bound to "k" with c */
    assert_int_equal(s.n, 2);
    assert_int_equal(exchange_unbind(x, &q1, "k", c), 0);
    s = route(x, "k", NULL);
    assert_int_equal(s.n, 1);
    assert_ptr_equal(s.h[0].dest, &q2);
    assert_true(exchange_has_binding_to(x, &q1)); /* through "" */
    table_free(empty);
    table_free(a);
    table_free(b);
    table_free(c);
    exchange_free(x); /* frees the remaining bindings (ASan checks) */
}

static void test_unbind_dest(void **state)
{
    (void)state;
    int q1, q2, x2, other;
    struct exchange *x = exchange_new("t", EXCHANGE_TOPIC);
    assert_int_equal(exchange_bind(x, &q1, EXCHANGE_DEST_QUEUE, "a.*", NULL), 1);
    assert_int_equal(exchange_bind(x, &x2, EXCHANGE_DEST_EXCHANGE, "a.b", NULL), 1);
    assert_int_equal(exchange_bind(x, &q1, EXCHANGE_DEST_QUEUE, "#", NULL), 1);
    assert_int_equal(exchange_bind(x, &q2, EXCHANGE_DEST_QUEUE, "a.b", NULL), 1);
    struct table *args = tab("x", TV_BOOL, 1, NULL);
    assert_int_equal(exchange_bind(x, &q1, EXCHANGE_DEST_QUEUE, "a.b", args), 1);
    table_free(args);
    assert_int_equal(exchange_binding_count(x), 5);
    assert_true(exchange_has_binding_to(x, &q1));
    assert_false(exchange_has_binding_to(x, &other));

    struct hits s = route(x, "a.b", NULL);
    assert_int_equal(s.n, 3);
    assert_true(has(&s, &q1) && has(&s, &q2) && has(&s, &x2));
    for (size_t i = 0; i < s.n; i++)
        assert_int_equal(s.h[i].kind,
                         s.h[i].dest == &x2 ? EXCHANGE_DEST_EXCHANGE : EXCHANGE_DEST_QUEUE);

    assert_int_equal(exchange_unbind_dest(x, &q1), 3);
    assert_int_equal(exchange_unbind_dest(x, &q1), 0);
    assert_false(exchange_has_binding_to(x, &q1));
    assert_int_equal(exchange_binding_count(x), 2);
    s = route(x, "a.b", NULL);
    assert_int_equal(s.n, 2);
    assert_false(has(&s, &q1));
    assert_int_equal(route(x, "zzz", NULL).n, 0);
    assert_int_equal(exchange_unbind_dest(x, &x2), 1);
    assert_int_equal(exchange_unbind_dest(x, &q2), 1);
    assert_int_equal(exchange_binding_count(x), 0);
    assert_int_equal(route(x, "a.b", NULL).n, 0);
    /* reusable after being emptied */
    assert_int_equal(exchange_bind(x, &q2, EXCHANGE_DEST_QUEUE, "a.b", NULL), 1);
    assert_int_equal(route(x, "a.b", NULL).n, 1);
    exchange_free(x);
}

struct walk {
    struct exchange *x;
    const char *keys[8];
    size_t n, stop_after;
    bool unbind;
};

static int walk_cb(void *arg, void *dest, enum exchange_dest_kind kind, const char *key,
                   const struct table *args)
{
    (void)kind;
    struct walk *w = arg;
    w->keys[w->n++] = key;
    if (w->unbind)
        assert_int_equal(exchange_unbind(w->x, dest, key, args), 0);
    return w->n == w->stop_after;
}

static void test_each_binding(void **state)
{
    (void)state;
    int q1, q2;
    struct exchange *x = exchange_new("f", EXCHANGE_FANOUT);
    exchange_bind(x, &q1, EXCHANGE_DEST_QUEUE, "c", NULL);
    exchange_bind(x, &q2, EXCHANGE_DEST_QUEUE, "a", NULL);
    exchange_bind(x, &q1, EXCHANGE_DEST_QUEUE, "b", NULL);
    struct walk w = {.x = x, .n = 0, .stop_after = 0};
    exchange_each_binding(x, walk_cb, &w);
    assert_int_equal(w.n, 3);
    assert_string_equal(w.keys[0], "c");
    assert_string_equal(w.keys[1], "a");
    assert_string_equal(w.keys[2], "b");
    w = (struct walk){.x = x, .n = 0, .stop_after = 2};
    exchange_each_binding(x, walk_cb, &w);
    assert_int_equal(w.n, 2);
    w = (struct walk){.x = x, .n = 0, .stop_after = 0, .unbind = true};
    exchange_each_binding(x, walk_cb, &w);
    assert_int_equal(w.n, 3);
    assert_int_equal(exchange_binding_count(x), 0);
    exchange_free(x);
}

/* ---- direct and fanout ---------------------------------------------------------------------- */

static void test_direct(void **state)
{
    (void)state;
    int q1, q2, q3;
    struct exchange *x = exchange_new("d", EXCHANGE_DIRECT);
    exchange_bind(x, &q1, EXCHANGE_DEST_QUEUE, "orders", NULL);
    exchange_bind(x, &q2, EXCHANGE_DEST_QUEUE, "orders", NULL);
    exchange_bind(x, &q3, EXCHANGE_DEST_QUEUE, "", NULL);
    exchange_bind(x, &q3, EXCHANGE_DEST_QUEUE, "a.*", NULL);
    struct hits s = route(x, "orders", NULL);
    assert_int_equal(s.n, 2);
    assert_ptr_equal(s.h[0].dest, &q1); /* the order bindings were made in */
    assert_ptr_equal(s.h[1].dest, &q2);
    s = route(x, "", NULL);
    assert_int_equal(s.n, 1);
    assert_ptr_equal(s.h[0].dest, &q3);
    assert_int_equal(route(x, "Orders", NULL).n, 0);
    assert_int_equal(route(x, "order", NULL).n, 0);
    assert_int_equal(route(x, "orders.x", NULL).n, 0);
    assert_int_equal(route(x, "a.b", NULL).n, 0); /* no wildcards in direct */
    assert_int_equal(route(x, "a.*", NULL).n, 1);
    /* the routing key is counted bytes: an embedded NUL is part of it */
    s = (struct hits){.n = 0};
    exchange_route(x, "orders\0x", 8, NULL, collect, &s);
    assert_int_equal(s.n, 0);
    s = (struct hits){.n = 0};
    exchange_route(x, "ordersXX", 6, NULL, collect, &s);
    assert_int_equal(s.n, 2);
    s = (struct hits){.n = 0};
    exchange_route(x, NULL, 0, NULL, collect, &s);
    assert_int_equal(s.n, 1);
    exchange_free(x);
}

static void test_fanout(void **state)
{
    (void)state;
    int q1, q2;
    struct exchange *x = exchange_new("f", EXCHANGE_FANOUT);
    assert_int_equal(route(x, "", NULL).n, 0);
    exchange_bind(x, &q1, EXCHANGE_DEST_QUEUE, "x", NULL);
    exchange_bind(x, &q2, EXCHANGE_DEST_QUEUE, "", NULL);
    exchange_bind(x, &q1, EXCHANGE_DEST_QUEUE, "y", NULL);
    struct hits s = route(x, "anything", NULL);
    assert_int_equal(s.n, 2);
    assert_ptr_equal(s.h[0].dest, &q1);
    assert_ptr_equal(s.h[1].dest, &q2);
    assert_int_equal(route(x, "", NULL).n, 2);
    exchange_unbind(x, &q1, "x", NULL);
    assert_int_equal(route(x, "", NULL).n, 2);
    exchange_unbind(x, &q1, "y", NULL);
    assert_int_equal(route(x, "", NULL).n, 1);
    exchange_free(x);
}

static void test_topic(void **state)
{
    (void)state;
    int q1, q2, q3;
    struct exchange *x = exchange_new("t", EXCHANGE_TOPIC);
    exchange_bind(x, &q1, EXCHANGE_DEST_QUEUE, "stock.*.nyse", NULL);
    exchange_bind(x, &q1, EXCHANGE_DEST_QUEUE, "stock.#", NULL);
    exchange_bind(x, &q2, EXCHANGE_DEST_QUEUE, "#.nyse", NULL);
    exchange_bind(x, &q3, EXCHANGE_DEST_QUEUE, "", NULL);
    struct hits s = route(x, "stock.ibm.nyse", NULL);
    assert_int_equal(s.n, 2);
    assert_true(has(&s, &q1) && has(&s, &q2));
    s = route(x, "stock", NULL);
    assert_int_equal(s.n, 1);
    assert_true(has(&s, &q1));
    s = route(x, "", NULL);
    assert_int_equal(s.n, 1);
    assert_true(has(&s, &q3));
    assert_int_equal(route(x, "bond.x", NULL).n, 0);
    exchange_unbind(x, &q1, "stock.#", NULL);
    s = route(x, "stock.ibm.nyse", NULL);
    assert_int_equal(s.n, 2); /* q1 still through stock.*.nyse */
    assert_int_equal(route(x, "stock", NULL).n, 0);
    exchange_free(x);
}

/* ---- headers -------------------------------------------------------------------------------- */

static void test_headers_modes(void **state)
{
    (void)state;
    /* all (the default): every non-x- argument must match */
    assert_true(hmatch(tab("a", TV_STR, "1", "b", TV_STR, "2", NULL),
                       tab("a", TV_STR, "1", "b", TV_STR, "2", "c", TV_STR, "3", NULL)));
    assert_false(
        hmatch(tab("a", TV_STR, "1", "b", TV_STR, "2", NULL), tab("a", TV_STR, "1", NULL)));
    assert_false(hmatch(tab("x-match", TV_STR, "all", "a", TV_STR, "1", "b", TV_STR, "2", NULL),
                        tab("a", TV_STR, "1", "b", TV_STR, "3", NULL)));
    /* any: one is enough */
    assert_true(hmatch(tab("x-match", TV_STR, "any", "a", TV_STR, "1", "b", TV_STR, "2", NULL),
                       tab("b", TV_STR, "2", NULL)));
    assert_false(hmatch(tab("x-match", TV_STR, "any", "a", TV_STR, "1", "b", TV_STR, "2", NULL),
                        tab("a", TV_STR, "2", "c", TV_STR, "1", NULL)));
    /* no matchable arguments: all matches everything (even no headers), any nothing */
    assert_true(hmatch(table_new(), NULL));
    assert_true(hmatch(tab("x-match", TV_STR, "all", NULL), tab("a", TV_STR, "1", NULL)));
    assert_true(hmatch(tab("x-match", TV_STR, "all", "x-foo", TV_STR, "1", NULL), NULL));
    assert_false(hmatch(tab("x-match", TV_STR, "any", NULL), tab("a", TV_STR, "1", NULL)));
    assert_false(hmatch(tab("x-match", TV_STR, "any", "x-a", TV_STR, "1", NULL),
                        tab("x-a", TV_STR, "1", NULL)));
    /* headers NULL: all with arguments fails */
    assert_false(hmatch(tab("a", TV_STR, "1", NULL), NULL));
}

static void test_headers_with_x(void **state)
{
    (void)state;
    /* x- arguments are ignored by all/any ... */
    assert_true(
        hmatch(tab("x-a", TV_STR, "1", "b", TV_STR, "2", NULL), tab("b", TV_STR, "2", NULL)));
    assert_true(hmatch(tab("x-match", TV_STR, "any", "x-a", TV_STR, "1", "b", TV_STR, "2", NULL),
                       tab("b", TV_STR, "2", NULL)));
    /* ... and count with the -with-x variants (x-match itself never does) */
    assert_false(
        hmatch(tab("x-match", TV_STR, "all-with-x", "x-a", TV_STR, "1", "b", TV_STR, "2", NULL),
               tab("b", TV_STR, "2", NULL)));
    assert_true(
        hmatch(tab("x-match", TV_STR, "all-with-x", "x-a", TV_STR, "1", "b", TV_STR, "2", NULL),
               tab("b", TV_STR, "2", "x-a", TV_STR, "1", NULL)));
    assert_true(
        hmatch(tab("x-match", TV_STR, "any-with-x", "x-a", TV_STR, "1", "b", TV_STR, "2", NULL),
               tab("x-a", TV_STR, "1", NULL)));
    assert_false(hmatch(tab("x-match", TV_STR, "any-with-x", "x-a", TV_STR, "1", NULL),
                        tab("x-a", TV_STR, "2", "x-match", TV_STR, "any-with-x", NULL)));
    assert_true(hmatch(tab("x-match", TV_STR, "all-with-x", NULL), NULL));
    assert_false(hmatch(tab("x-match", TV_STR, "any-with-x", NULL), tab("a", TV_STR, "1", NULL)));
}

static void test_headers_void(void **state)
{
    (void)state;
    /* a void binding value asks only for presence, whatever the header's value and type */
    assert_true(hmatch(tab("a", TV_VOID, NULL), tab("a", TV_I64, (int64_t)7, NULL)));
    assert_true(hmatch(tab("a", TV_VOID, NULL), tab("a", TV_VOID, NULL)));
    assert_true(hmatch(tab("a", TV_VOID, NULL), tab("a", TV_TABLE, table_new(), NULL)));
    assert_false(hmatch(tab("a", TV_VOID, NULL), tab("b", TV_STR, "1", NULL)));
    assert_false(hmatch(tab("a", TV_VOID, NULL), NULL));
    assert_true(hmatch(tab("x-match", TV_STR, "any", "a", TV_VOID, "b", TV_VOID, NULL),
                       tab("b", TV_BOOL, 0, NULL)));
    /* a void header does not equal a non-void binding value */
    assert_false(hmatch(tab("a", TV_STR, "", NULL), tab("a", TV_VOID, NULL)));
    assert_false(hmatch(tab("a", TV_I64, (int64_t)0, NULL), tab("a", TV_VOID, NULL)));
}

static void test_headers_values(void **state)
{
    (void)state;
    /* integers compare by value whatever their width or signedness */
    assert_true(hmatch(tab("a", TV_I8, (int64_t)5, NULL), tab("a", TV_I64, (int64_t)5, NULL)));
    assert_true(hmatch(tab("a", TV_I64, (int64_t)5, NULL), tab("a", TV_U16, (uint64_t)5, NULL)));
    assert_true(hmatch(tab("a", TV_I32, (int64_t)-1, NULL), tab("a", TV_I8, (int64_t)-1, NULL)));
    assert_false(
        hmatch(tab("a", TV_I32, (int64_t)-1, NULL), tab("a", TV_U32, (uint64_t)UINT32_MAX, NULL)));
    assert_false(hmatch(tab("a", TV_I64, (int64_t)5, NULL), tab("a", TV_I64, (int64_t)6, NULL)));
    /* but an integer is not a float, a string or a bool */
    assert_false(hmatch(tab("a", TV_I64, (int64_t)5, NULL), tab("a", TV_DOUBLE, 5.0, NULL)));
    assert_false(hmatch(tab("a", TV_I64, (int64_t)5, NULL), tab("a", TV_STR, "5", NULL)));
    assert_false(hmatch(tab("a", TV_I64, (int64_t)1, NULL), tab("a", TV_BOOL, 1, NULL)));
    /* float and double by value */
    assert_true(hmatch(tab("a", TV_FLOAT, 1.5, NULL), tab("a", TV_DOUBLE, 1.5, NULL)));
    assert_false(hmatch(tab("a", TV_FLOAT, 1.5, NULL), tab("a", TV_DOUBLE, 1.25, NULL)));
    /* a longstr equals a byte array with the same bytes */
    assert_true(hmatch(tab("a", TV_STR, "abc", NULL), tab("a", TV_BYTES, "abc", NULL)));
    assert_false(hmatch(tab("a", TV_STR, "abc", NULL), tab("a", TV_STR, "abcd", NULL)));
    assert_false(hmatch(tab("a", TV_STR, "abc", NULL), tab("a", TV_STR, "ABC", NULL)));
    assert_true(hmatch(tab("a", TV_BOOL, 0, NULL), tab("a", TV_BOOL, 0, NULL)));
    assert_false(hmatch(tab("a", TV_BOOL, 0, NULL), tab("a", TV_BOOL, 1, NULL)));
    /* a header timestamp counts in milliseconds (RabbitMQ 4.x routing_headers) */
    assert_false(
        hmatch(tab("a", TV_TIME, (uint64_t)5, NULL), tab("a", TV_TIME, (uint64_t)5, NULL)));
    assert_true(
        hmatch(tab("a", TV_I64, (int64_t)5000, NULL), tab("a", TV_TIME, (uint64_t)5, NULL)));
    assert_true(hmatch(tab("a", TV_TIME, (uint64_t)5, NULL), tab("a", TV_I64, (int64_t)5, NULL)));
    /* nested tables must be identical, type letters included */
    assert_true(hmatch(tab("a", TV_TABLE, tab("n", TV_I32, (int64_t)1, NULL), NULL),
                       tab("a", TV_TABLE, tab("n", TV_I32, (int64_t)1, NULL), NULL)));
    assert_false(hmatch(tab("a", TV_TABLE, tab("n", TV_I32, (int64_t)1, NULL), NULL),
                        tab("a", TV_TABLE, tab("n", TV_I64, (int64_t)1, NULL), NULL)));
    assert_false(hmatch(tab("a", TV_TABLE, tab("n", TV_I32, (int64_t)1, NULL), NULL),
                        tab("a", TV_I32, (int64_t)1, NULL)));
}

static void test_headers_args_valid(void **state)
{
    (void)state;
    assert_int_equal(exchange_headers_args_valid(NULL), 0);
    const char *ok[] = {"all", "any", "all-with-x", "any-with-x"};
    for (size_t i = 0; i < 4; i++) {
        struct table *t = tab("x-match", TV_STR, ok[i], "a", TV_VOID, NULL);
        assert_int_equal(exchange_headers_args_valid(t), 0);
        table_free(t);
    }
    struct table *bad[] = {
        tab("x-match", TV_STR, "ALL", NULL),
        tab("x-match", TV_STR, "", NULL),
        tab("x-match", TV_STR, "any-with-x ", NULL),
        tab("x-match", TV_BYTES, "any", NULL), /* must be a longstr */
        tab("x-match", TV_I64, (int64_t)1, NULL),
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(exchange_headers_args_valid(bad[i]), -EINVAL);
        table_free(bad[i]);
    }
    /* routing with an unvalidated bad x-match falls back to all, as RabbitMQ does */
    int q;
    struct exchange *x = exchange_new("h", EXCHANGE_HEADERS);
    struct table *args = tab("x-match", TV_STR, "some", "a", TV_STR, "1", "b", TV_STR, "2", NULL);
    exchange_bind(x, &q, EXCHANGE_DEST_QUEUE, "", args);
    struct table *h = tab("a", TV_STR, "1", NULL);
    assert_int_equal(route(x, "", h).n, 0);
    table_set_str(h, "b", "2");
    assert_int_equal(route(x, "", h).n, 1);
    table_free(h);
    table_free(args);
    exchange_free(x);
}

/* Several bindings of one destination match: it is routed to once. */
static void test_headers_distinct(void **state)
{
    (void)state;
    int q1, q2;
    struct exchange *x = exchange_new("h", EXCHANGE_HEADERS);
    struct table *a1 = tab("a", TV_STR, "1", NULL);
    struct table *a2 = tab("x-match", TV_STR, "any", "b", TV_STR, "2", NULL);
    struct table *a3 = tab("c", TV_STR, "3", NULL);
    exchange_bind(x, &q1, EXCHANGE_DEST_QUEUE, "", a1);
    exchange_bind(x, &q1, EXCHANGE_DEST_QUEUE, "", a2);
    exchange_bind(x, &q2, EXCHANGE_DEST_QUEUE, "", a3);
    exchange_bind(x, &q2, EXCHANGE_DEST_QUEUE, "k", a1);
    struct table *h = tab("a", TV_STR, "1", "b", TV_STR, "2", NULL);
    struct hits s = route(x, "zzz", h);
    assert_int_equal(s.n, 2);
    assert_ptr_equal(s.h[0].dest, &q1);
    assert_ptr_equal(s.h[1].dest, &q2);
    table_del(h, "a");
    s = route(x, "", h);
    assert_int_equal(s.n, 1);
    assert_ptr_equal(s.h[0].dest, &q1);
    assert_int_equal(route(x, "", NULL).n, 0);
    table_free(h);
    table_free(a1);
    table_free(a2);
    table_free(a3);
    exchange_free(x);
}

/* ---- many bindings -------------------------------------------------------------------------- */

static int count_cb(void *arg, void *dest, enum exchange_dest_kind kind, const char *key,
                    const struct table *args)
{
    (void)dest, (void)kind, (void)key, (void)args;
    (*(size_t *)arg)++;
    return 0;
}

/* 100k bindings on a direct and a topic exchange: binding, routing and unbinding stay correct
 * (and fast enough for the unit run) with many keys and destinations. */
static void test_many_bindings(void **state)
{
    (void)state;
    enum { N = 100000, QUEUES = 1000 };
    static char queues[QUEUES];
    enum exchange_type types[] = {EXCHANGE_DIRECT, EXCHANGE_TOPIC};
    for (size_t t = 0; t < 2; t++) {
        struct exchange *x = exchange_new("many", types[t]);
        char key[32];
        for (size_t i = 0; i < N; i++) {
            snprintf(key, sizeof(key), "k.%zu", i);
            assert_int_equal(exchange_bind(x, &queues[i % QUEUES], EXCHANGE_DEST_QUEUE, key, NULL),
                             1);
        }
        assert_int_equal(exchange_binding_count(x), N);
        size_t n = 0;
        exchange_each_binding(x, count_cb, &n);
        assert_int_equal(n, N);
        for (size_t i = 0; i < N; i += 7) {
            snprintf(key, sizeof(key), "k.%zu", i);
            struct hits s = route(x, key, NULL);
            assert_int_equal(s.n, 1);
            assert_ptr_equal(s.h[0].dest, &queues[i % QUEUES]);
        }
        assert_int_equal(exchange_unbind_dest(x, &queues[3]), N / QUEUES);
        assert_int_equal(route(x, "k.3", NULL).n, 0);
        assert_int_equal(route(x, "k.4", NULL).n, 1);
        for (size_t i = 0; i < N; i += 2) {
            snprintf(key, sizeof(key), "k.%zu", i);
            assert_int_equal(exchange_unbind(x, &queues[i % QUEUES], key, NULL), 0);
        }
        assert_int_equal(route(x, "k.4", NULL).n, 0);
        assert_int_equal(route(x, "k.5", NULL).n, 1);
        exchange_free(x);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_bind_identity),
        cmocka_unit_test(test_unbind_dest),
        cmocka_unit_test(test_each_binding),
        cmocka_unit_test(test_direct),
        cmocka_unit_test(test_fanout),
        cmocka_unit_test(test_topic),
        cmocka_unit_test(test_headers_modes),
        cmocka_unit_test(test_headers_with_x),
        cmocka_unit_test(test_headers_void),
        cmocka_unit_test(test_headers_values),
        cmocka_unit_test(test_headers_args_valid),
        cmocka_unit_test(test_headers_distinct),
        cmocka_unit_test(test_many_bindings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
