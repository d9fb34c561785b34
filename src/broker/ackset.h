/*
 * ackset.h - the settled offsets of a queue: a low-water mark plus an interval set above it.
 *
 * Every offset below `low` is settled (acked, purged or dead); above it, settled offsets are
 * kept as sorted, disjoint, non-adjacent half-open ranges [start, end), all with start > low.
 * Contiguous settlements merge, and a range that reaches `low` is absorbed into it, so acking
 * in order keeps the set empty and memory follows only the gaps, never the backlog.
 *
 * Pure data structure: no I/O, no logging. Growth aborts on out-of-memory (tern_xrealloc).
 */
#ifndef TERN_ACKSET_H
#define TERN_ACKSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ackset_range {
    int64_t start, end; /* [start, end) */
};

struct ackset {
    int64_t low; /* every offset below it is settled */
    struct ackset_range *r;
    size_t n, cap;
};

/* An empty set with everything below low settled. ackset_fini frees it. */
void ackset_init(struct ackset *a, int64_t low);
void ackset_fini(struct ackset *a);
/* Settles [start, end) (already settled offsets in it are fine). Empty ranges are ignored. */
void ackset_add(struct ackset *a, int64_t start, int64_t end);
/* Unsettles every offset >= off (the message log lost its tail in a crash). */
void ackset_truncate(struct ackset *a, int64_t off);
/* The smallest unsettled offset >= off. */
int64_t ackset_next_unsettled(const struct ackset *a, int64_t off);
static inline bool ackset_contains(const struct ackset *a, int64_t off)
{
    return ackset_next_unsettled(a, off) != off;
}
/* One past the highest settled offset (low when no range is held). */
int64_t ackset_high(const struct ackset *a);
/* Number of ranges held above low: the set's memory is this times 16 bytes. */
static inline size_t ackset_count(const struct ackset *a)
{
    return a->n;
}

#endif
