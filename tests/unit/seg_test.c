/* seg_test.c - one segment: append, index entries, lookup, extent, time search, truncate,
 * recovery scan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include <cmocka.h>

#include "base/tern.h"
#include "store/seg.h"
#include "testutil.h"

#define NOW 1700000000000ll

static char *dir;

static int setup(void **state)
{
    (void)state;
    dir = tu_tmpdir();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_rmrf(dir);
    free(dir);
    return 0;
}

/* Appends n one-record batches with offsets from s->next_offset; returns their positions. */
static void fill(struct seg *s, int n, uint64_t *pos)
{
    for (int i = 0; i < n; i++) {
        size_t len;
        uint8_t *b = tu_batch("v", 1, 100, NOW + i, &len);
        struct batch_hdr h;
        assert_true(batch_parse(b, len, 1 << 20, &h) == (int64_t)len);
        h.base_offset = s->next_offset;
        batch_set_base_offset(b, h.base_offset);
        if (pos)
            pos[i] = s->size;
        assert_int_equal(seg_append(s, b, len, &h), 0);
        free(b);
    }
}

static void test_names(void **state)
{
    (void)state;
    int64_t base;
    assert_int_equal(seg_parse_name("00000000000000004711.log", &base), 0);
    assert_true(base == 4711);
    assert_int_equal(seg_parse_name("0000000000000000471.log", &base), -EINVAL);
    assert_int_equal(seg_parse_name("00000000000000004711.index", &base), -EINVAL);
    assert_int_equal(seg_parse_name("0000000000000000471x.log", &base), -EINVAL);
    assert_int_equal(seg_parse_name("99999999999999999999.log", &base), -EINVAL); /* > int64 */
}

static void test_append_lookup_extent(void **state)
{
    (void)state;
    struct seg *s;
    uint64_t pos[50];
    assert_int_equal(seg_create(dir, 100, 512, NOW, &s), 0);
    fill(s, 50, pos);
    assert_true(s->next_offset == 150);
    assert_true(s->nidx > 5); /* sparse: one entry per ~512 bytes */
    assert_true(s->nidx < 50);
    for (int i = 0; i < 50; i++) {
        uint64_t p;
        struct batch_hdr h;
        assert_int_equal(seg_lookup(s, 100 + i, &p, &h), 0);
        assert_true(p == pos[i] && h.base_offset == 100 + i);
    }
    uint64_t p;
    struct batch_hdr h;
    assert_int_equal(seg_lookup(s, 150, &p, &h), TERN_ERANGE);
    assert_int_equal(seg_lookup(s, 10, &p, &h), 0); /* below base: the first batch */
    assert_true(p == 0);
    uint64_t end;
    int64_t next;
    /* the window holds batches 3..9 whole; the limit stops at offset 108 */
    assert_int_equal(seg_extent(s, pos[3], pos[10], 1000, &end, &next), 0);
    assert_true(end == pos[10] && next == 110);
    assert_int_equal(seg_extent(s, pos[3], pos[40], 108, &end, &next), 0);
    assert_true(end == pos[8] && next == 108);
    assert_int_equal(seg_extent(s, pos[3], pos[3] + 1, 1000, &end, &next), 0); /* >= 1 batch */
    assert_true(end == pos[4] && next == 104);
    seg_unref(s);
}

static void test_find_time_and_truncate(void **state)
{
    (void)state;
    struct seg *s;
    uint64_t pos[30];
    assert_int_equal(seg_create(dir, 0, 256, NOW, &s), 0);
    fill(s, 30, pos);
    int64_t off;
    assert_int_equal(seg_find_time(s, NOW + 17, &off), 0);
    assert_true(off == 17);
    assert_int_equal(seg_find_time(s, NOW + 30, &off), TERN_ERANGE);
    assert_int_equal(seg_truncate(s, pos[20], 20), 0);
    assert_true(s->size == pos[20] && s->next_offset == 20);
    assert_int_equal(seg_find_time(s, NOW + 25, &off), TERN_ERANGE);
    assert_true(tu_file_size(tu_path(dir, "00000000000000000000.log")) == (int64_t)pos[20]);
    seg_unref(s);
}

static void test_recover_stops_at_bad_batch(void **state)
{
    (void)state;
    struct seg *s;
    uint64_t pos[20];
    assert_int_equal(seg_create(dir, 0, 256, NOW, &s), 0);
    fill(s, 20, pos);
    uint64_t size = s->size;
    seg_unref(s);
    tu_flip(tu_path(dir, "00000000000000000000.log"), pos[12] + 70, 4); /* a record byte */
    assert_int_equal(seg_open(dir, 0, 256, &s), 0);
    struct seg_scan r;
    assert_int_equal(seg_recover(s, 0, &r, NULL, NULL), 0);
    assert_string_equal(r.reason, "CRC mismatch");
    assert_true(r.bad_pos == pos[12] && r.valid_end == pos[12] && r.file_size == size);
    assert_true(s->next_offset == 12 && s->size == pos[12]);
    seg_unref(s);
}

static void test_load_detects_torn_sealed_segment(void **state)
{
    (void)state;
    struct seg *s;
    assert_int_equal(seg_create(dir, 0, 256, NOW, &s), 0);
    fill(s, 10, NULL);
    seg_unref(s);
    tu_append_raw(tu_path(dir, "00000000000000000000.log"), "\0\0\0\0\0\0\0\x0a\0\0", 10);
    assert_int_equal(seg_open(dir, 0, 256, &s), 0);
    const char *why = NULL;
    uint64_t bad = 0;
    assert_int_equal(seg_load(s, &why, &bad), TERN_ECORRUPT);
    assert_non_null(why);
    seg_unref(s);
}

static void test_removed_segment_stays_readable(void **state)
{
    (void)state;
    struct seg *s;
    assert_int_equal(seg_create(dir, 0, 256, NOW, &s), 0);
    fill(s, 5, NULL);
    seg_ref(s); /* a reader */
    assert_int_equal(seg_remove(s), 0);
    seg_unref(s); /* the log lets go */
    assert_true(tu_file_size(tu_path(dir, "00000000000000000000.log")) < 0);
    struct batch_hdr h;
    assert_int_equal(seg_read_header(s, 0, &h), 0);
    assert_true(h.base_offset == 0);
    seg_unref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test_setup_teardown(test_append_lookup_extent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_find_time_and_truncate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_stops_at_bad_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_detects_torn_sealed_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_removed_segment_stays_readable, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
