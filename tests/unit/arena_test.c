/*
 * arena_test.c - the bump allocator: alignment, zeroing, the cap, reset and large pieces.
 */
#include <setjmp.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/arena.h"

static void test_alignment_and_zeroing(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 1 << 20);
    for (size_t n = 1; n < 300; n += 7) {
        unsigned char *p = arena_alloc(&a, n, 1);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % alignof(max_align_t), 0);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(p[i], 0);
        memset(p, 0xab, n); /* ASan: the whole piece is ours */
    }
    arena_reset(&a);
    unsigned char *p = arena_alloc(&a, 64, 1);
    assert_non_null(p);
    for (size_t i = 0; i < 64; i++)
        assert_int_equal(p[i], 0); /* reused memory is zeroed again */
    arena_fini(&a);
}

static void test_cap(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 1000);
    assert_null(arena_alloc(&a, 1001, 1));
    assert_int_equal(arena_used(&a), 0);
    assert_non_null(arena_alloc(&a, 500, 1));
    size_t used = arena_used(&a);
    assert_true(used >= 500 && used < 500 + alignof(max_align_t));
    assert_null(arena_alloc(&a, 600, 1)); /* would pass the cap: refused, nothing changes */
    assert_int_equal(arena_used(&a), used);
    assert_non_null(arena_alloc(&a, 400, 1));
    arena_reset(&a);
    assert_int_equal(arena_used(&a), 0);
    assert_non_null(arena_alloc(&a, 900, 1));
    arena_fini(&a);
}

static void test_bad_sizes(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, SIZE_MAX);
    assert_null(arena_alloc(&a, 0, 8));
    assert_null(arena_alloc(&a, 8, 0));
    assert_null(arena_alloc(&a, SIZE_MAX / 2, 3)); /* count * size overflows */
    assert_null(arena_alloc(&a, SIZE_MAX - 3, 1)); /* rounding up overflows */
    assert_int_equal(arena_used(&a), 0);
    arena_fini(&a);
}

/* Pieces larger than any block, and many blocks, all stay valid until the reset. */
static void test_large_and_many(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 64 << 20);
    unsigned char *big = arena_alloc(&a, 3 << 20, 1);
    assert_non_null(big);
    memset(big, 1, 3 << 20);
    unsigned char *small[1000];
    for (int i = 0; i < 1000; i++) {
        small[i] = arena_alloc(&a, 100, 1);
        assert_non_null(small[i]);
        memset(small[i], i & 0xff, 100);
    }
    for (int i = 0; i < 1000; i++)
        assert_int_equal(small[i][99], i & 0xff);
    assert_int_equal(big[(3 << 20) - 1], 1);
    arena_reset(&a);
    assert_non_null(arena_alloc(&a, 5 << 20, 1));
    arena_fini(&a);
    arena_fini(&a); /* fini twice is harmless */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alignment_and_zeroing),
        cmocka_unit_test(test_cap),
        cmocka_unit_test(test_bad_sizes),
        cmocka_unit_test(test_large_and_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
