/*
 * tlog.h - the logger: one `key=value` line per event on stderr.
 *
 *   ts=2026-11-22T12:00:00.123Z level=info mod=store event=recovered log=t.orders-0 ...
 *
 * The caller writes the event and its context as key=value pairs; tlog adds ts, level and mod.
 * TLOG_DEBUG compiles to nothing in release builds (NDEBUG). TLOG_ERRNO appends
 * `err="<tern_strerror(err)>"`. Thread-safe: each line is written with one write(2).
 */
#ifndef TERN_TLOG_H
#define TERN_TLOG_H

enum tlog_level { TLOG_LEVEL_DEBUG, TLOG_LEVEL_INFO, TLOG_LEVEL_WARN, TLOG_LEVEL_ERROR };

void tlog_set_level(enum tlog_level level);
enum tlog_level tlog_get_level(void);
/* Parses "debug", "info", "warn" or "error". Returns 0, or -EINVAL for anything else. */
int tlog_parse_level(const char *s, enum tlog_level *out);
/* Sends log lines to fd (default 2). Tests use it to capture output. */
void tlog_set_fd(int fd);

void tlog_write(enum tlog_level level, const char *mod, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define TLOG_INFO(mod, ...) tlog_write(TLOG_LEVEL_INFO, mod, 0, __VA_ARGS__)
#define TLOG_WARN(mod, ...) tlog_write(TLOG_LEVEL_WARN, mod, 0, __VA_ARGS__)
#define TLOG_ERROR(mod, ...) tlog_write(TLOG_LEVEL_ERROR, mod, 0, __VA_ARGS__)
/* An error-level line carrying err (negative errno or TERN_E*). */
#define TLOG_ERRNO(mod, err, ...) tlog_write(TLOG_LEVEL_ERROR, mod, err, __VA_ARGS__)
#ifdef NDEBUG
#define TLOG_DEBUG(mod, ...) ((void)0)
#else
#define TLOG_DEBUG(mod, ...) tlog_write(TLOG_LEVEL_DEBUG, mod, 0, __VA_ARGS__)
#endif

#endif
