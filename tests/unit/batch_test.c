/* batch_test.c - RecordBatch v2 parsing, CRC, iteration and encoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/crc32c.h"
#include "base/tern.h"
#include "store/batch.h"

static int64_t encode3(uint8_t *buf, size_t cap)
{
    struct batch_rec_in r[3] = {
        {.key = "k1", .key_len = 2, .value = "hello", .value_len = 5, .timestamp = 1000},
        {.key = NULL, .value = "", .value_len = 0, .timestamp = 1005},
        {.key = "k3", .key_len = 2, .value = NULL, .timestamp = 999},
    };
    return batch_encode(buf, cap, r, 3);
}

static void test_layout(void **state)
{
    (void)state;
    uint8_t buf[512];
    int64_t n = encode3(buf, sizeof(buf));
    assert_true(n > BATCH_HEADER_SIZE);
    struct batch_hdr h;
    assert_int_equal(batch_parse(buf, (size_t)n, 1 << 20, &h), n);
    assert_int_equal(h.length, n - 12);
    assert_int_equal(h.magic, 2);
    assert_int_equal(h.last_offset_delta, 2);
    assert_int_equal(h.record_count, 3);
    assert_true(h.first_timestamp == 1000 && h.max_timestamp == 1005);
    assert_true(h.producer_id == -1 && h.producer_epoch == -1 && h.base_sequence == -1);
    /* byte-level facts of the v2 layout */
    assert_int_equal(buf[16], 2);
    assert_int_equal(crc32c(0, buf + 21, (size_t)n - 21),
                     (uint32_t)buf[17] << 24 | buf[18] << 16 | buf[19] << 8 | buf[20]);
    assert_int_equal(batch_check_crc(buf, &h), 0);
}

static void test_records(void **state)
{
    (void)state;
    uint8_t buf[512];
    int64_t n = encode3(buf, sizeof(buf));
    batch_set_base_offset(buf, 40);
    struct batch_hdr h;
    assert_int_equal(batch_parse(buf, (size_t)n, 1 << 20, &h), n);
    assert_int_equal(batch_check_crc(buf, &h), 0); /* base offset is outside the CRC */
    assert_int_equal(batch_last_offset(&h), 42);
    struct batch_iter it;
    struct batch_record r;
    assert_int_equal(batch_iter_init(&it, buf, &h), 0);
    assert_int_equal(batch_iter_next(&it, &r), 1);
    assert_true(r.offset == 40 && r.timestamp == 1000);
    assert_int_equal(r.key_len, 2);
    assert_memory_equal(r.key, "k1", 2);
    assert_int_equal(r.value_len, 5);
    assert_memory_equal(r.value, "hello", 5);
    assert_int_equal(batch_iter_next(&it, &r), 1);
    assert_true(r.offset == 41 && r.key == NULL && r.key_len == -1 && r.value_len == 0);
    assert_int_equal(batch_iter_next(&it, &r), 1);
    assert_true(r.offset == 42 && r.timestamp == 999 && r.value == NULL && r.value_len == -1);
    assert_int_equal(batch_iter_next(&it, &r), 0);
}

static void test_need_more_and_errors(void **state)
{
    (void)state;
    uint8_t buf[512];
    int64_t n = encode3(buf, sizeof(buf));
    struct batch_hdr h;
    for (int64_t k = 0; k < n; k++)
        assert_int_equal(batch_parse(buf, (size_t)k, 1 << 20, &h), TERN_EAGAIN);
    assert_int_equal(batch_parse(buf, (size_t)n, (size_t)n - 1, &h), TERN_ETOOBIG);
    uint8_t bad[512];
    memcpy(bad, buf, (size_t)n);
    bad[16] = 1; /* magic v1 */
    assert_int_equal(batch_parse(bad, (size_t)n, 1 << 20, &h), TERN_EPROTO);
    assert_int_equal(batch_parse(bad, 20, 1 << 20, &h), TERN_EPROTO);
    memcpy(bad, buf, (size_t)n);
    bad[8] = bad[9] = bad[10] = 0;
    bad[11] = 10; /* batchLength below the header */
    assert_int_equal(batch_parse(bad, (size_t)n, 1 << 20, &h), TERN_EPROTO);
    memcpy(bad, buf, (size_t)n);
    bad[8] = 0x80; /* negative batchLength */
    assert_int_equal(batch_parse(bad, (size_t)n, 1 << 20, &h), TERN_EPROTO);
    /* every single-bit flip in the CRC-covered part is caught */
    for (int64_t pos = 21; pos < n; pos++) {
        memcpy(bad, buf, (size_t)n);
        bad[pos] ^= 0x10;
        int64_t r = batch_parse(bad, (size_t)n, 1 << 20, &h);
        if (r == n)
            assert_int_equal(batch_check_crc(bad, &h), TERN_ECORRUPT);
    }
}

static void test_malformed_records(void **state)
{
    (void)state;
    uint8_t buf[512];
    int64_t n = encode3(buf, sizeof(buf));
    struct batch_hdr h;
    assert_int_equal(batch_parse(buf, (size_t)n, 1 << 20, &h), n);
    h.record_count = 4; /* claims one more record than present */
    struct batch_iter it;
    struct batch_record r;
    assert_int_equal(batch_iter_init(&it, buf, &h), 0);
    int rc;
    while ((rc = batch_iter_next(&it, &r)) == 1)
        ;
    assert_int_equal(rc, TERN_EPROTO);
    h.record_count = 3;
    buf[BATCH_HEADER_SIZE] = 0x7e; /* first record length beyond the batch */
    assert_int_equal(batch_iter_init(&it, buf, &h), 0);
    assert_int_equal(batch_iter_next(&it, &r), TERN_EPROTO);
    h.attributes = 1; /* gzip: records are not readable */
    assert_int_equal(batch_iter_init(&it, buf, &h), TERN_EPROTO);
}

static void test_encode_too_small(void **state)
{
    (void)state;
    uint8_t buf[64];
    struct batch_rec_in r = {.value = "0123456789", .value_len = 10, .timestamp = 1};
    assert_int_equal(batch_encode(buf, sizeof(buf), &r, 1), TERN_ETOOBIG);
    assert_int_equal(batch_encode(buf, sizeof(buf), &r, 0), TERN_EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_records),
        cmocka_unit_test(test_need_more_and_errors),
        cmocka_unit_test(test_malformed_records),
        cmocka_unit_test(test_encode_too_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
