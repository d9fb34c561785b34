/* ackset_test.c - the settled-offset set: merging, low-water mark, lookups, truncation, and a
 * randomized comparison against a plain bitmap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/ackset.h"

static void test_in_order_stays_empty(void **state)
{
    (void)state;
    struct ackset a;
    ackset_init(&a, 0);
    for (int64_t i = 0; i < 100000; i++)
        ackset_add(&a, i, i + 1);
    assert_true(a.low == 100000);
    assert_int_equal(ackset_count(&a), 0);
    assert_true(ackset_next_unsettled(&a, 5) == 100000);
    assert_true(ackset_next_unsettled(&a, 100000) == 100000);
    ackset_fini(&a);
}

static void test_gaps_merge_and_absorb(void **state)
{
    (void)state;
    struct ackset a;
    ackset_init(&a, 10);
    ackset_add(&a, 20, 25);
    ackset_add(&a, 30, 31);
    ackset_add(&a, 27, 28);
    assert_int_equal(ackset_count(&a), 3);
    assert_true(ackset_contains(&a, 22) && !ackset_contains(&a, 25) && ackset_contains(&a, 9));
    assert_true(ackset_next_unsettled(&a, 20) == 25);
    assert_true(ackset_next_unsettled(&a, 26) == 26);
    ackset_add(&a, 25, 27); /* [20,28) now adjacent: one range */
    assert_int_equal(ackset_count(&a), 2);
    assert_true(ackset_next_unsettled(&a, 20) == 28);
    ackset_add(&a, 28, 30); /* [20,31) */
    assert_int_equal(ackset_count(&a), 1);
    ackset_add(&a, 5, 20); /* reaches low: everything to 31 absorbed */
    assert_true(a.low == 31);
    assert_int_equal(ackset_count(&a), 0);
    ackset_add(&a, 3, 8); /* below low: nothing */
    assert_true(a.low == 31 && ackset_high(&a) == 31);
    ackset_add(&a, 40, 40); /* empty */
    assert_int_equal(ackset_count(&a), 0);
    ackset_fini(&a);
}

static void test_overlapping_add(void **state)
{
    (void)state;
    struct ackset a;
    ackset_init(&a, 0);
    for (int64_t i = 10; i < 100; i += 10)
        ackset_add(&a, i, i + 2);
    assert_int_equal(ackset_count(&a), 9);
    ackset_add(&a, 15, 75); /* swallows [20,22) .. [70,72); [10,12) stays apart */
    assert_int_equal(ackset_count(&a), 4);
    assert_true(a.r[1].start == 15 && a.r[1].end == 75);
    assert_true(ackset_high(&a) == 92);
    ackset_fini(&a);
}

static void test_truncate(void **state)
{
    (void)state;
    struct ackset a;
    ackset_init(&a, 0);
    ackset_add(&a, 0, 10);
    ackset_add(&a, 12, 20);
    ackset_add(&a, 25, 30);
    ackset_truncate(&a, 15);
    assert_true(a.low == 10 && ackset_count(&a) == 1 && ackset_high(&a) == 15);
    ackset_truncate(&a, 12); /* the range starting at 12 goes entirely */
    assert_true(ackset_count(&a) == 0 && ackset_high(&a) == 10);
    ackset_truncate(&a, 4); /* below low */
    assert_true(a.low == 4 && !ackset_contains(&a, 4) && ackset_contains(&a, 3));
    ackset_fini(&a);
}

static void test_random_against_bitmap(void **state)
{
    (void)state;
    enum { N = 5000 };
    static bool bits[N + 64];
    struct ackset a;
    ackset_init(&a, 0);
    uint64_t seed = 12345;
    size_t max_ranges = 0;
    for (int round = 0; round < 20000; round++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        int64_t s = (int64_t)((seed >> 33) % N), len = (int64_t)((seed >> 20) % 4);
        ackset_add(&a, s, s + len);
        for (int64_t i = s; i < s + len; i++)
            bits[i] = true;
        if (ackset_count(&a) > max_ranges)
            max_ranges = ackset_count(&a);
        if (round % 997 == 0) {
            for (int64_t i = 0; i < N; i++)
                assert_true(ackset_contains(&a, i) == bits[i]);
        }
    }
    for (int64_t i = 0; i < N; i++) {
        int64_t want = i;
        while (want < N + 8 && bits[want])
            want++;
        assert_true(ackset_next_unsettled(&a, i) == want);
    }
    /* settle everything: the set collapses to its low-water mark and gives memory back */
    ackset_add(&a, 0, N + 8);
    assert_int_equal(ackset_count(&a), 0);
    assert_true(a.cap <= 32);
    assert_true(max_ranges > 100);
    ackset_fini(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order_stays_empty),  cmocka_unit_test(test_gaps_merge_and_absorb),
        cmocka_unit_test(test_overlapping_add),       cmocka_unit_test(test_truncate),
        cmocka_unit_test(test_random_against_bitmap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
