/*
 * fuzz_amqp_method.c - fuzz target for the AMQP 0-9-1 method codec (proto/amqp/amqp_method.c).
 *
 * The input is decoded twice: as a whole method payload (class id, method id, arguments), and
 * as the arguments of the method whose index in amqp_method_infos is the first byte (so every
 * method is reached without guessing ids). Promises checked:
 *  - the result is 0, TERN_ENOTSUP (only for ids without a method) or TERN_EPROTO;
 *  - every slice lies inside the input, and every table slice passes table_validate;
 *  - decode -> encode gives as many bytes as the input (encoding preserves length), and
 *    decoding that gives the same struct, whose encoding is byte-identical to the first.
 * A broken promise prints the failed check and aborts.
 */
#include "base/table.h"
#include "base/tern.h"
#include "proto/amqp/amqp_method.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile uint32_t sink; /* keeps the byte reads below from being optimised away */

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_amqp_method: check failed: %s at %s:%d\n", #cond, __FILE__,      \
                    __LINE__);                                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const struct amqp_str *field_str(const struct amqp_method *m,
                                        const struct amqp_method_field *f)
{
    return (const struct amqp_str *)(const void *)((const char *)m + f->offset);
}

static bool is_str(enum amqp_wire_type t)
{
    return t == AMQP_WIRE_SHORTSTR || t == AMQP_WIRE_LONGSTR || t == AMQP_WIRE_TABLE;
}

/* Every slice of m lies inside p[0..n); touch its bytes so ASan sees any stray pointer. */
static void check_slices(const struct amqp_method *m, const uint8_t *p, size_t n)
{
    const struct amqp_method_info *mi = amqp_method_lookup(m->id);
    CHECK(mi != NULL);
    for (unsigned i = 0; i < mi->nfields; i++) {
        if (!is_str(mi->fields[i].type))
            continue;
        const struct amqp_str *s = field_str(m, &mi->fields[i]);
        CHECK(s->p >= p && s->p <= p + n && s->len <= (size_t)(p + n - s->p));
        if (mi->fields[i].type == AMQP_WIRE_SHORTSTR)
            CHECK(s->len <= 255);
        if (mi->fields[i].type == AMQP_WIRE_TABLE)
            CHECK(table_validate(s->p, s->len) == (int)s->len);
        for (uint32_t k = 0; k < s->len; k++)
            sink += s->p[k];
    }
}

/* a and b hold the same arguments (slices compared by content). */
static bool same_args(const struct amqp_method *a, const struct amqp_method *b)
{
    if (a->id != b->id)
        return false;
    const struct amqp_method_info *mi = amqp_method_lookup(a->id);
    for (unsigned i = 0; i < mi->nfields; i++) {
        const struct amqp_method_field *f = &mi->fields[i];
        const char *fa = (const char *)a + f->offset, *fb = (const char *)b + f->offset;
        bool eq;
        switch (f->type) {
        case AMQP_WIRE_OCTET:
            eq = *(const uint8_t *)fa == *(const uint8_t *)fb;
            break;
        case AMQP_WIRE_SHORT:
            eq = *(const uint16_t *)fa == *(const uint16_t *)fb;
            break;
        case AMQP_WIRE_LONG:
            eq = *(const uint32_t *)fa == *(const uint32_t *)fb;
            break;
        case AMQP_WIRE_LONGLONG:
        case AMQP_WIRE_TIMESTAMP:
            eq = *(const uint64_t *)fa == *(const uint64_t *)fb;
            break;
        case AMQP_WIRE_BIT:
            eq = *(const bool *)fa == *(const bool *)fb;
            break;
        default:
            eq = amqp_wire_str_eq(*field_str(a, f), *field_str(b, f));
            break;
        }
        if (!eq) {
            fprintf(stderr, "fuzz_amqp_method: %s.%s differs\n", mi->name, f->name);
            return false;
        }
    }
    return true;
}

static void check_method(const uint8_t *p, size_t n)
{
    struct amqp_method m, m2;
    int rc = amqp_method_decode(p, n, &m);
    CHECK(rc == 0 || rc == TERN_ENOTSUP || rc == TERN_EPROTO);
    if (rc == TERN_ENOTSUP)
        CHECK(n >= 4 && amqp_method_lookup(m.id) == NULL);
    if (rc == TERN_EPROTO && n >= 4)
        CHECK(amqp_method_lookup(m.id) != NULL); /* ids are reported */
    if (rc != 0)
        return;
    check_slices(&m, p, n);
    sink += (uint32_t)strlen(amqp_method_name(m.id)) + amqp_method_synchronous(m.id) +
            amqp_method_has_content(m.id);

    struct buf b = BUF_INIT, b2 = BUF_INIT;
    amqp_method_encode(&m, &b);
    CHECK(b.len == n);
    uint8_t *copy = malloc(b.len); /* exact size, so ASan catches a read past the end */
    CHECK(copy != NULL);
    memcpy(copy, b.p, b.len);
    CHECK(amqp_method_decode(copy, b.len, &m2) == 0);
    check_slices(&m2, copy, b.len);
    CHECK(same_args(&m, &m2));
    amqp_method_encode(&m2, &b2);
    CHECK(b2.len == b.len && memcmp(b.p, b2.p, b.len) == 0);
    free(copy);
    buf_fini(&b);
    buf_fini(&b2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_method(data, size);
    if (size == 0)
        return 0;

    /* the rest of the input as the arguments of a method chosen by the first byte */
    uint32_t id = amqp_method_infos[data[0] % AMQP_METHOD_COUNT].id;
    uint8_t *p = malloc(size + 3);
    CHECK(p != NULL);
    p[0] = (uint8_t)(AMQP_ID_CLASS(id) >> 8);
    p[1] = (uint8_t)AMQP_ID_CLASS(id);
    p[2] = (uint8_t)(AMQP_ID_METHOD(id) >> 8);
    p[3] = (uint8_t)AMQP_ID_METHOD(id);
    memcpy(p + 4, data + 1, size - 1);
    check_method(p, size + 3);
    free(p);
    return 0;
}
