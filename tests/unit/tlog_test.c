/* tlog_test.c - the key=value logger: line format, levels, error suffix. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/tern.h"
#include "base/tlog.h"

static char out[8192];

/* Runs fn with the logger writing into a pipe; returns what it wrote. */
static const char *capture(void (*fn)(void))
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    tlog_set_fd(fds[1]);
    fn();
    tlog_set_fd(2);
    close(fds[1]);
    ssize_t n = read(fds[0], out, sizeof(out) - 1);
    close(fds[0]);
    out[n > 0 ? n : 0] = '\0';
    return out;
}

static void log_info(void)
{
    TLOG_INFO("store", "event=x log=%s n=%d", "a", 3);
}

static void log_err(void)
{
    TLOG_ERRNO("store", -EIO, "event=y");
    TLOG_ERRNO("store", TERN_ECORRUPT, "event=z");
}

static void log_filtered(void)
{
    TLOG_INFO("m", "event=hidden");
    TLOG_WARN("m", "event=shown");
}

static void test_line_format(void **state)
{
    (void)state;
    tlog_set_level(TLOG_LEVEL_INFO);
    const char *s = capture(log_info);
    assert_true(strncmp(s, "ts=", 3) == 0);
    assert_non_null(strstr(s, "Z level=info mod=store event=x log=a n=3\n"));
    assert_int_equal((int)strlen(s), (int)(strchr(s, '\n') - s) + 1); /* one line */
}

static void test_error_suffix(void **state)
{
    (void)state;
    const char *s = capture(log_err);
    assert_non_null(strstr(s, "level=error mod=store event=y err=\"Input/output error\"\n"));
    assert_non_null(strstr(s, "event=z err=\"data corruption detected\"\n"));
}

static void test_levels(void **state)
{
    (void)state;
    enum tlog_level l;
    assert_int_equal(tlog_parse_level("warn", &l), 0);
    assert_int_equal(l, TLOG_LEVEL_WARN);
    assert_int_equal(tlog_parse_level("loud", &l), -EINVAL);
    tlog_set_level(TLOG_LEVEL_WARN);
    const char *s = capture(log_filtered);
    assert_null(strstr(s, "hidden"));
    assert_non_null(strstr(s, "level=warn mod=m event=shown"));
    tlog_set_level(TLOG_LEVEL_INFO);
}

static void test_strerror(void **state)
{
    (void)state;
    assert_string_equal(tern_strerror(TERN_EREADONLY),
                        "log is read-only after a failed write or fsync");
    assert_string_equal(tern_strerror(-ENOENT), "No such file or directory");
    assert_string_equal(tern_strerror(-99999), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_format),
        cmocka_unit_test(test_error_suffix),
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
