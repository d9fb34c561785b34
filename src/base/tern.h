/*
 * tern.h - the project-wide error convention.
 *
 * Every fallible function returns int: 0 (or a byte count) on success, a negative value on
 * failure. System failures are -errno; tern's own failures are the TERN_E* codes below, in a
 * range (-10000 and below) that no errno reaches. tern_strerror() names either kind.
 */
#ifndef TERN_H
#define TERN_H

#include <stddef.h>

enum {
    TERN_EAGAIN = -10001,    /* codec: need more input */
    TERN_EPROTO = -10002,    /* malformed protocol data */
    TERN_ECORRUPT = -10003,  /* on-disk data failed a checksum or structural check */
    TERN_EFULL = -10004,     /* a configured limit was reached */
    TERN_EREADONLY = -10005, /* the log failed a write or fsync and takes no more appends */
    TERN_ERANGE = -10006,    /* offset outside the log */
    TERN_ETOOBIG = -10007,   /* a length exceeds its configured cap */
    TERN_ECLOSED = -10008,   /* the object is shutting down */
    TERN_ELOCKED = -10009,   /* another process holds the data directory */
    TERN_ENOTSUP = -10010,   /* codec: a well-formed but unknown or unsupported message */
};

/* A static, human-readable description of a negative error code (errno or TERN_E*). */
const char *tern_strerror(int err);

#define TERN_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
/* The struct of type holding member at p. */
#define TERN_CONTAINER_OF(p, type, member) ((type *)(void *)((char *)(p)-offsetof(type, member)))

/* Always-on invariant check: a failure here would corrupt data, so abort. */
#define TERN_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond))                                                                               \
            tern_assert_fail(#cond, __FILE__, __LINE__);                                           \
    } while (0)

_Noreturn void tern_assert_fail(const char *expr, const char *file, int line);

/* Control-plane allocation: aborts on failure (see docs/ARCHITECTURE.md, memory policy). */
void *tern_xmalloc(unsigned long n);
void *tern_xcalloc(unsigned long n, unsigned long size);
void *tern_xrealloc(void *p, unsigned long n);
char *tern_xstrdup(const char *s);

/* n random bytes from the kernel (getrandom); should it fail, bytes mixed from the clock and a
 * counter: unique names, not secrets. */
void tern_random(void *p, unsigned long n);

#endif
