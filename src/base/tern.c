/*
 * tern.c - error names, the assertion handler and control-plane allocation.
 */
#include "base/tern.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

const char *tern_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case TERN_EAGAIN:
        return "need more input";
    case TERN_EPROTO:
        return "protocol error";
    case TERN_ECORRUPT:
        return "data corruption detected";
    case TERN_EFULL:
        return "limit reached";
    case TERN_EREADONLY:
        return "log is read-only after a failed write or fsync";
    case TERN_ERANGE:
        return "offset out of range";
    case TERN_ETOOBIG:
        return "size exceeds limit";
    case TERN_ECLOSED:
        return "closed";
    case TERN_ELOCKED:
        return "data directory is locked by another process";
    case TERN_ENOTSUP:
        return "unknown or unsupported message";
    default:
        break;
    }
    if (err < 0 && err > -4096)
        return strerror(-err);
    return "unknown error";
}

_Noreturn void tern_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "level=fatal event=assert expr=\"%s\" at=%s:%d\n", expr, file, line);
    fflush(stderr);
    abort();
}

static void *oom(unsigned long n)
{
    fprintf(stderr, "level=fatal event=oom bytes=%lu\n", n);
    abort();
}

void *tern_xmalloc(unsigned long n)
{
    void *p = malloc(n ? n : 1);
    return p ? p : oom(n);
}

void *tern_xcalloc(unsigned long n, unsigned long size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    return p ? p : oom(n * size);
}

void *tern_xrealloc(void *p, unsigned long n)
{
    void *q = realloc(p, n ? n : 1);
    return q ? q : oom(n);
}

char *tern_xstrdup(const char *s)
{
    char *p = strdup(s);
    return p ? p : oom(strlen(s) + 1);
}

void tern_random(void *p, unsigned long n)
{
    if (getrandom(p, n, 0) == (ssize_t)n)
        return;
    static unsigned long long counter;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long long x = (unsigned long long)ts.tv_nsec ^ (unsigned long long)ts.tv_sec << 30;
    x ^= ++counter * 0x9E3779B97F4A7C15ull;
    unsigned char *b = p;
    for (unsigned long i = 0; i < n; i++) { /* splitmix64, a byte at a time */
        unsigned long long z = (x += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        b[i] = (unsigned char)(z ^ (z >> 31));
    }
}
