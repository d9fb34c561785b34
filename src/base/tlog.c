/*
 * tlog.c - key=value logging to one file descriptor.
 */
#include "base/tlog.h"

#include "base/tern.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum tlog_level min_level = TLOG_LEVEL_INFO;
static int out_fd = 2;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void tlog_set_level(enum tlog_level level)
{
    min_level = level;
}

enum tlog_level tlog_get_level(void)
{
    return min_level;
}

int tlog_parse_level(const char *s, enum tlog_level *out)
{
    for (unsigned i = 0; i < TERN_ARRAY_LEN(level_names); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum tlog_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

void tlog_set_fd(int fd)
{
    out_fd = fd;
}

void tlog_write(enum tlog_level level, const char *mod, int err, const char *fmt, ...)
{
    if (level < min_level)
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s mod=%s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, level_names[level], mod);
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if ((size_t)n >= sizeof(line) - 1)
        n = (int)sizeof(line) - 2;
    if (err != 0) {
        n += snprintf(line + n, sizeof(line) - (size_t)n, " err=\"%s\"", tern_strerror(err));
        if ((size_t)n >= sizeof(line) - 1)
            n = (int)sizeof(line) - 2;
    }
    line[n++] = '\n';
    ssize_t w = write(out_fd, line, (size_t)n);
    (void)w; /* nowhere to report a failed log write */
}
