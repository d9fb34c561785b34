/*
 * producers_crash_test.c - the producer snapshot file survives a crash at every step of its
 * write: after the machine dies before any open, write, fdatasync, rename or directory fsync of
 * producers_save_file (its data dropped, or torn to a random prefix), the file loads as the old
 * snapshot or the new one, never as a mix, and nothing half-written loads at all. A failed
 * step is reported, and the old snapshot still loads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/tern.h"
#include "broker/producers.h"
#include "faultfs.h"
#include "testutil.h"

/* A table of n producers, each with up to 5 batches, that differs with salt. */
static struct producers *table_of(int n, int salt)
{
    struct producers *t = producers_new();
    int64_t off = 0;
    for (int p = 0; p < n; p++)
        for (int k = 0; k < 1 + (p + salt) % 7; k++) {
            struct producers_batch b = {k * 3, k * 3 + 2, off, off + 2, 1000 + off + salt};
            producers_record(t, 100 + p, (int16_t)salt, &b);
            off += 3;
        }
    return t;
}

/* The snapshot bytes of t at next (the serialization is deterministic). */
static void image(const struct producers *t, int64_t next, struct buf *out)
{
    buf_clear(out);
    producers_save(t, next, out);
}

/* Loads dir's snapshot and returns 'A' or 'B' when it is exactly one of them. */
static char which(const char *dir, const struct buf *a, const struct buf *b)
{
    struct producers *t = NULL;
    int64_t next = -1;
    int rc = producers_load_file(dir, &t, &next);
    if (rc != 0)
        fail_msg("the snapshot does not load: %s", tern_strerror(rc));
    struct buf got = BUF_INIT;
    image(t, next, &got);
    producers_free(t);
    char w = 0;
    if (got.len == a->len && memcmp(got.p, a->p, a->len) == 0)
        w = 'A';
    else if (got.len == b->len && memcmp(got.p, b->p, b->len) == 0)
        w = 'B';
    buf_fini(&got);
    if (!w)
        fail_msg("the snapshot that loads is neither the old one nor the new one");
    return w;
}

/* A snapshot directory and two tables: A (old, already durable) and B (new, being saved). */
struct pair {
    char *dir;
    struct producers *ta, *tb;
    int64_t na, nb;  /* the next offsets saved with each */
    struct buf a, b; /* their exact images */
};

static void pair_init(struct pair *p, struct producers *ta, int64_t na, struct producers *tb,
                      int64_t nb)
{
    *p = (struct pair){.dir = tu_tmpdir(), .ta = ta, .tb = tb, .na = na, .nb = nb};
    buf_init(&p->a);
    buf_init(&p->b);
    image(ta, na, &p->a);
    image(tb, nb, &p->b);
    faultfs_install();
}

static void pair_fini(struct pair *p)
{
    faultfs_uninstall();
    producers_free(p->ta);
    producers_free(p->tb);
    buf_fini(&p->a);
    buf_fini(&p->b);
    tu_rmrf(p->dir);
    free(p->dir);
}

static void test_crash_at_every_step(void **state)
{
    (void)state;
    static const enum faultfs_op ops[] = {FAULTFS_OP_OPEN, FAULTFS_OP_PWRITE, FAULTFS_OP_FDATASYNC,
                                          FAULTFS_OP_RENAME, FAULTFS_OP_FSYNC_DIR};
    struct pair p;
    pair_init(&p, table_of(40, 1), 1000, table_of(300, 2), 5000);
    int seen_old = 0;
    for (size_t i = 0; i < TERN_ARRAY_LEN(ops); i++) {
        for (int mode = 0; mode < 2; mode++) {
            assert_int_equal(producers_save_file(p.ta, p.na, p.dir), 0); /* durable: the old one */
            faultfs_crash_at(ops[i], 1);
            /* after the crash nothing it reports is durable */
            (void)producers_save_file(p.tb, p.nb, p.dir);
            faultfs_crash_at(ops[i], 0);
            assert_true(faultfs_crashed()); /* the step was reached */
            faultfs_restart(mode ? FAULTFS_TEAR : FAULTFS_DROP, 77 + i);
            char w = which(p.dir, &p.a, &p.b);
            seen_old += w == 'A';
            /* only a crash after the directory fsync began may keep the new one */
            if (ops[i] != FAULTFS_OP_FSYNC_DIR)
                assert_int_equal(w, 'A');
        }
    }
    /* and with no crash, the new one */
    assert_int_equal(producers_save_file(p.tb, p.nb, p.dir), 0);
    faultfs_crash();
    faultfs_restart(FAULTFS_DROP, 1);
    assert_int_equal(which(p.dir, &p.a, &p.b), 'B');
    assert_true(seen_old > 0);
    pair_fini(&p);
}

static void test_failed_steps_keep_the_old_snapshot(void **state)
{
    (void)state;
    static const enum faultfs_op ops[] = {FAULTFS_OP_OPEN, FAULTFS_OP_PWRITE, FAULTFS_OP_FDATASYNC,
                                          FAULTFS_OP_RENAME};
    struct pair p;
    pair_init(&p, table_of(10, 3), 7, table_of(20, 4), 9);
    assert_int_equal(producers_save_file(p.ta, p.na, p.dir), 0);
    for (size_t i = 0; i < TERN_ARRAY_LEN(ops); i++) {
        faultfs_fail(ops[i], 1, -EIO, 1);
        assert_int_equal(producers_save_file(p.tb, p.nb, p.dir), -EIO);
        assert_int_equal(which(p.dir, &p.a, &p.b), 'A');
    }
    /* no snapshot at all, and a removed one */
    assert_int_equal(producers_remove_file(p.dir), 0);
    assert_int_equal(producers_remove_file(p.dir), 0);
    struct producers *t = NULL;
    int64_t next;
    assert_int_equal(producers_load_file(p.dir, &t, &next), -ENOENT);
    assert_null(t);
    pair_fini(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crash_at_every_step),
        cmocka_unit_test(test_failed_steps_keep_the_old_snapshot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
