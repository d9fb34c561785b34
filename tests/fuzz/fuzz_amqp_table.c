/*
 * fuzz_amqp_table.c - fuzz target for field tables (base/table.c), the part of AMQP arguments
 * and message headers that nests.
 *
 * Promises checked on each input:
 *  - table_validate and table_decode agree (same byte count, or both TERN_EPROTO with *out
 *    NULL), and a valid table's bytes lie inside the input;
 *  - the binary form is canonical: encoding the decoded table gives back exactly the bytes
 *    consumed; decoding that again gives an equal table;
 *  - table_dup and tval_dup give equal copies, table_equal is symmetric, and deleting every
 *    key one by one empties the copy.
 * A broken promise prints the failed check and aborts.
 */
#include "base/table.h"
#include "base/tern.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_amqp_table: check failed: %s at %s:%d\n", #cond, __FILE__,       \
                    __LINE__);                                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void check_copies(const struct table *t)
{
    struct table *d = table_dup(t);
    CHECK(table_equal(t, d) && table_equal(d, t));
    for (size_t i = 0; i < t->n; i++) {
        struct tval v = tval_dup(&t->e[i].v);
        CHECK(tval_equal(&v, &t->e[i].v));
        CHECK(table_get(t, t->e[i].key) != NULL);
        tval_fini(&v);
    }
    while (d->n > 0) {
        size_t n = d->n;
        CHECK(table_del(d, d->e[0].key));
        CHECK(d->n == n - 1);
    }
    CHECK(table_equal(d, NULL) && table_equal(t, NULL) == (t->n == 0));
    table_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct table *t = (struct table *)&t; /* any non-NULL value: decode must reset it */
    int v = table_validate(data, size);
    int d = table_decode(data, size, &t);
    CHECK(v == d);
    if (d < 0) {
        CHECK(d == TERN_EPROTO && t == NULL);
        return 0;
    }
    CHECK(d >= 4 && (size_t)d <= size && t != NULL);

    struct buf b = BUF_INIT;
    table_encode(t, &b);
    CHECK(b.len == (size_t)d && memcmp(b.p, data, b.len) == 0);

    struct table *t2;
    CHECK(table_decode(b.p, b.len, &t2) == d);
    CHECK(table_equal(t, t2) && table_equal(t2, t));
    check_copies(t);

    table_free(t2);
    table_free(t);
    buf_fini(&b);
    return 0;
}
