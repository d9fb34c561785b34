/* varint_test.c - zig-zag varint round trips and malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/tern.h"
#include "base/varint.h"

static void test_round_trip(void **state)
{
    (void)state;
    const int64_t vals[] = {0, 1, -1, 63, -64, 64, -65, 300, INT32_MAX, INT32_MIN,
                            INT64_MAX, INT64_MIN, 1ll << 40, -(1ll << 40)};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        uint8_t buf[VARINT_MAX_BYTES];
        int n = varint_encode(vals[i], buf);
        assert_int_equal(n, varint_size(vals[i]));
        int64_t out;
        assert_int_equal(varint_decode(buf, buf + n, 10, &out), n);
        assert_true(out == vals[i]);
        /* every proper prefix needs more input */
        for (int k = 0; k < n; k++)
            assert_int_equal(varint_decode(buf, buf + k, 10, &out), TERN_EAGAIN);
    }
}

static void test_known_encodings(void **state)
{
    (void)state;
    uint8_t buf[VARINT_MAX_BYTES];
    assert_int_equal(varint_encode(0, buf), 1);
    assert_int_equal(buf[0], 0x00);
    assert_int_equal(varint_encode(-1, buf), 1);
    assert_int_equal(buf[0], 0x01);
    assert_int_equal(varint_encode(1, buf), 1);
    assert_int_equal(buf[0], 0x02);
    assert_int_equal(varint_encode(64, buf), 2);
    assert_int_equal(buf[0], 0x80);
    assert_int_equal(buf[1], 0x01);
}

static void test_too_long(void **state)
{
    (void)state;
    const uint8_t six[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    int64_t out;
    assert_int_equal(varint_decode(six, six + 6, 5, &out), TERN_EPROTO);
    assert_int_equal(varint_decode(six, six + 6, 10, &out), 6);
    const uint8_t eleven[11] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    assert_int_equal(varint_decode(eleven, eleven + 11, 10, &out), TERN_EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_known_encodings),
        cmocka_unit_test(test_too_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
