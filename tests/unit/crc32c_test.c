/* crc32c_test.c - CRC-32C known answers and hardware/software agreement. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/crc32c.h"

static void test_known_answers(void **state)
{
    (void)state;
    assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c_sw(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c(0, "", 0), 0);
    uint8_t zeros[32] = {0};
    assert_int_equal(crc32c(0, zeros, sizeof(zeros)), 0x8A9136AAu); /* RFC 3720 B.4 */
    uint8_t ones[32];
    memset(ones, 0xff, sizeof(ones));
    assert_int_equal(crc32c(0, ones, sizeof(ones)), 0x62A8AB43u);
}

static void test_incremental_and_hw_sw_agree(void **state)
{
    (void)state;
    uint8_t buf[4099];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof(buf); i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    for (size_t off = 0; off < 9; off++) {
        for (size_t len = 0; len + off <= sizeof(buf); len += 97) {
            uint32_t a = crc32c(0, buf + off, len), b = crc32c_sw(0, buf + off, len);
            assert_int_equal(a, b);
            size_t half = len / 3;
            assert_int_equal(crc32c(crc32c(0, buf + off, half), buf + off + half, len - half), a);
        }
    }
}

static void test_long_buffers(void **state)
{
    (void)state;
    /* lengths around and far past the interleaved path's 3 KiB chunk */
    static uint8_t buf[300000];
    uint32_t x = 99;
    for (size_t i = 0; i < sizeof(buf); i++) {
        x = x * 1664525u + 1013904223u;
        buf[i] = (uint8_t)(x >> 24);
    }
    const size_t lens[] = {3071, 3072, 3073, 6143, 6144, 9217, 100003, 299990};
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++)
        for (size_t off = 0; off < 3; off++)
            assert_int_equal(crc32c(7, buf + off, lens[k]), crc32c_sw(7, buf + off, lens[k]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_incremental_and_hw_sw_agree),
        cmocka_unit_test(test_long_buffers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
