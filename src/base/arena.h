/*
 * arena.h - a bump allocator for the short-lived objects of one request (decoded Kafka arrays).
 *
 * Memory comes in blocks; arena_alloc hands out aligned, zeroed pieces of the newest block and
 * opens a bigger block when it is full. Nothing is freed one by one: arena_reset() drops every
 * piece at once (keeping the first block for the next request) and arena_fini() frees it all.
 *
 * The arena is the account of a decoder's data-path memory: `cap` limits the bytes handed out
 * since the last reset, so a hostile array count cannot make a decoder allocate more than the
 * caller allowed. A request past the cap gets NULL (nothing else fails: a block that cannot be
 * allocated aborts, as for any control-plane allocation, see tern.h).
 */
#ifndef TERN_ARENA_H
#define TERN_ARENA_H

#include <stddef.h>

struct arena_block;

struct arena {
    struct arena_block *blocks; /* newest first; the last one is kept by arena_reset */
    size_t used;                /* bytes handed out since the last reset, padding included */
    size_t cap;                 /* limit on used */
};

/* An empty arena that will hand out at most cap bytes between resets. Allocates nothing yet. */
void arena_init(struct arena *a, size_t cap);
/* Frees every block; the arena is empty (and reusable) afterwards. */
void arena_fini(struct arena *a);
/* Forgets every piece handed out (their memory is reused); keeps the first block. */
void arena_reset(struct arena *a);
/*
 * count * size zeroed bytes aligned for any type, owned by the arena (valid until the next
 * reset or fini). NULL when count or size is 0, when count * size overflows, or when the
 * piece would take the arena past its cap (the arena is unchanged then).
 */
void *arena_alloc(struct arena *a, size_t count, size_t size);
/* Bytes handed out since the last reset. */
size_t arena_used(const struct arena *a);

#endif
