/*
 * arena.c - bump allocator (see arena.h).
 *
 * Invariant: the newest block is the only one with free room that is used; pieces are rounded
 * up to ALIGN so every piece starts aligned for any type.
 */
#include "base/arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/tern.h"

#define ALIGN alignof(max_align_t)
#define BLOCK_MIN 4096          /* bytes of room in the first block */
#define BLOCK_MAX (1024 * 1024) /* blocks double up to this, unless one piece needs more */

struct arena_block {
    struct arena_block *next; /* older block */
    size_t size;              /* bytes of room in data */
    size_t off;               /* bytes of data handed out */
    alignas(max_align_t) unsigned char data[];
};

void arena_init(struct arena *a, size_t cap)
{
    a->blocks = NULL;
    a->used = 0;
    a->cap = cap;
}

void arena_fini(struct arena *a)
{
    struct arena_block *b = a->blocks;
    while (b) {
        struct arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->blocks = NULL;
    a->used = 0;
}

void arena_reset(struct arena *a)
{
    struct arena_block *b = a->blocks;
    while (b && b->next) {
        struct arena_block *next = b->next;
        free(b);
        b = next;
    }
    if (b)
        b->off = 0;
    a->blocks = b;
    a->used = 0;
}

/* Opens a block with room for at least n bytes in front of the others. */
static struct arena_block *grow(struct arena *a, size_t n)
{
    size_t size = a->blocks ? a->blocks->size * 2 : BLOCK_MIN;
    if (size > BLOCK_MAX)
        size = BLOCK_MAX;
    if (size < n)
        size = n;
    struct arena_block *b = tern_xmalloc(sizeof(*b) + size);
    b->next = a->blocks;
    b->size = size;
    b->off = 0;
    a->blocks = b;
    return b;
}

void *arena_alloc(struct arena *a, size_t count, size_t size)
{
    if (count == 0 || size == 0 || count > SIZE_MAX / size)
        return NULL;
    size_t n = count * size;
    if (n > SIZE_MAX - ALIGN)
        return NULL;
    n = (n + ALIGN - 1) / ALIGN * ALIGN;
    if (n > a->cap - a->used) /* used <= cap always */
        return NULL;
    struct arena_block *b = a->blocks;
    if (!b || b->size - b->off < n)
        b = grow(a, n);
    void *p = b->data + b->off;
    b->off += n;
    a->used += n;
    memset(p, 0, n);
    return p;
}

size_t arena_used(const struct arena *a)
{
    return a->used;
}
