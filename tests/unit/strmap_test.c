/*
 * strmap_test.c - the string-keyed hash map: put/get/del, overwrite, growth, deletion keeping
 * probe runs intact (checked against a plain array model), iteration.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/strmap.h"

static void test_basic(void **state)
{
    (void)state;
    struct strmap m;
    strmap_init(&m);
    assert_null(strmap_get(&m, "a", 1));
    assert_null(strmap_put(&m, "a", 1, (void *)1));
    assert_ptr_equal(strmap_put(&m, "a", 1, (void *)2), (void *)1);
    assert_ptr_equal(strmap_get(&m, "a", 1), (void *)2);
    assert_null(strmap_put(&m, "", 0, (void *)3)); /* the empty key is a key */
    assert_ptr_equal(strmap_get(&m, "", 0), (void *)3);
    assert_null(strmap_put(&m, "a\0b", 3, (void *)4)); /* embedded NUL */
    assert_ptr_equal(strmap_get(&m, "a\0b", 3), (void *)4);
    assert_ptr_equal(strmap_get(&m, "a", 1), (void *)2);
    assert_int_equal(m.n, 3);
    assert_ptr_equal(strmap_del(&m, "a", 1), (void *)2);
    assert_null(strmap_del(&m, "a", 1));
    assert_int_equal(m.n, 2);
    strmap_fini(&m);
}

/* Random puts and deletes checked against a model array after every step. */
static void test_model(void **state)
{
    (void)state;
    enum { N = 2000 };
    static void *model[N];
    memset(model, 0, sizeof(model));
    struct strmap m;
    strmap_init(&m);
    srand(7);
    char key[16];
    for (int step = 0; step < 50000; step++) {
        int k = rand() % N;
        int len = snprintf(key, sizeof(key), "k%d", k);
        if (rand() % 3 == 0) {
            assert_ptr_equal(strmap_del(&m, key, (size_t)len), model[k]);
            model[k] = NULL;
        } else {
            void *v = (void *)(uintptr_t)(step + 1);
            assert_ptr_equal(strmap_put(&m, key, (size_t)len, v), model[k]);
            model[k] = v;
        }
        if (step % 997 == 0) {
            size_t count = 0;
            for (int i = 0; i < N; i++) {
                len = snprintf(key, sizeof(key), "k%d", i);
                assert_ptr_equal(strmap_get(&m, key, (size_t)len), model[i]);
                count += model[i] != NULL;
            }
            assert_int_equal(m.n, count);
            size_t it = 0, seen = 0;
            const char *ik;
            void *iv;
            while (strmap_next(&m, &it, &ik, &iv)) {
                assert_ptr_equal(model[atoi(ik + 1)], iv);
                seen++;
            }
            assert_int_equal(seen, count);
        }
    }
    strmap_fini(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
