/* store_test.c - the data directory: lock, log names, create/find/delete, refused logs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>

#include <cmocka.h>

#include "base/tern.h"
#include "store/store.h"
#include "testutil.h"

#define NOW 1700000000000ll

static char *dir;
static struct store_config cfg;

static int setup(void **state)
{
    (void)state;
    dir = tu_tmpdir();
    store_config_default(&cfg);
    cfg.data_dir = dir;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tu_rmrf(dir);
    free(dir);
    return 0;
}

static void put(struct store *st, const char *name, int n)
{
    struct log *log;
    assert_int_equal(store_log(st, name, NULL, &log), 0);
    for (int i = 0; i < n; i++) {
        size_t len;
        uint8_t *b = tu_batch(name, 1, 64, NOW + i, &len);
        assert_int_equal(log_append(log, b, len, NOW, NULL), 0);
        free(b);
    }
    assert_int_equal(log_sync(log), 0);
}

static void test_names(void **state)
{
    (void)state;
    assert_true(store_name_valid("orders-0"));
    assert_true(store_name_valid("q.vhost_1.A-b"));
    assert_false(store_name_valid(""));
    assert_false(store_name_valid("."));
    assert_false(store_name_valid(".."));
    assert_false(store_name_valid("a/b"));
    assert_false(store_name_valid("a b"));
    char long_name[202];
    memset(long_name, 'a', 201);
    long_name[201] = '\0';
    assert_false(store_name_valid(long_name));
    long_name[200] = '\0';
    assert_true(store_name_valid(long_name));
}

static void test_lock(void **state)
{
    (void)state;
    struct store *a, *b;
    assert_int_equal(store_open(NULL, &cfg, &a), 0);
    assert_int_equal(store_open(NULL, &cfg, &b), TERN_ELOCKED);
    store_close(a, NULL, NULL);
    assert_int_equal(store_open(NULL, &cfg, &b), 0);
    store_close(b, NULL, NULL);
}

static void test_create_find_delete_reopen(void **state)
{
    (void)state;
    struct store *st;
    assert_int_equal(store_open(NULL, &cfg, &st), 0);
    struct log *log;
    assert_int_equal(store_log(st, "bad/name", NULL, &log), -EINVAL);
    put(st, "a", 3);
    put(st, "b", 5);
    put(st, "gone", 1);
    assert_int_equal(store_log_count(st), 3);
    assert_int_equal(store_log_delete(st, "gone"), 0);
    assert_int_equal(store_log_delete(st, "gone"), -ENOENT);
    assert_null(store_log_find(st, "gone"));
    store_close(st, NULL, NULL);
    assert_true(access(tu_path(dir, "logs/gone"), F_OK) != 0);
    assert_int_equal(store_open(NULL, &cfg, &st), 0);
    assert_int_equal(store_log_count(st), 2);
    assert_true(log_end_offset(store_log_find(st, "a")) == 3);
    assert_true(log_end_offset(store_log_find(st, "b")) == 5);
    assert_true(log_was_clean(store_log_find(st, "b")));
    store_close(st, NULL, NULL);
}

static void test_corrupt_log_refused_others_work(void **state)
{
    (void)state;
    struct store *st;
    assert_int_equal(store_open(NULL, &cfg, &st), 0);
    put(st, "healthy", 10);
    put(st, "broken", 10);
    store_close(st, NULL, NULL);
    unlink(tu_path(dir, "logs/broken/clean-shutdown"));
    tu_flip(tu_path(dir, "logs/broken/00000000000000000000.log"), 200, 1);
    assert_int_equal(store_open(NULL, &cfg, &st), 0);
    assert_int_equal(store_refused_count(st), 1);
    assert_string_equal(store_refused_name(st, 0), "broken");
    assert_non_null(strstr(store_refused_reason(st, 0), "00000000000000000000.log at byte"));
    struct log *log;
    assert_int_equal(store_log(st, "broken", NULL, &log), TERN_ECORRUPT);
    assert_int_equal(store_log(st, "healthy", NULL, &log), 0);
    assert_true(log_end_offset(log) == 10);
    put(st, "healthy", 1);
    assert_true(log_end_offset(log) == 11);
    /* a refused log can still be deleted */
    assert_int_equal(store_log_delete(st, "broken"), 0);
    assert_int_equal(store_refused_count(st), 0);
    assert_true(access(tu_path(dir, "logs/broken"), F_OK) != 0);
    store_close(st, NULL, NULL);
}

static void on_store_closed(void *arg)
{
    *(int *)arg = 1;
}

static void test_loop_close(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct store *st;
    assert_int_equal(store_open(&loop, &cfg, &st), 0);
    put(st, "x", 2);
    int closed = 0;
    store_close(st, on_store_closed, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_true(access(tu_path(dir, "logs/x/clean-shutdown"), F_OK) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_find_delete_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_log_refused_others_work, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_close, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
