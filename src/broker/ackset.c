/*
 * ackset.c - low-water mark plus sorted interval set of settled offsets (see ackset.h).
 *
 * Invariants: low <= r[0].start - 1 (a range never touches low), r[i].end < r[i+1].start
 * (never adjacent), start < end. Lookups are binary searches; an insertion moves the tail of
 * the array, which stays short because in-order settlement is absorbed into low.
 */
#include "broker/ackset.h"

#include "base/tern.h"

#include <stdlib.h>
#include <string.h>

#define ACKSET_MIN_CAP 16

void ackset_init(struct ackset *a, int64_t low)
{
    memset(a, 0, sizeof(*a));
    a->low = low;
}

void ackset_fini(struct ackset *a)
{
    free(a->r);
    memset(a, 0, sizeof(*a));
}

/* Index of the first range with end >= off (n when none). */
static size_t lower_end(const struct ackset *a, int64_t off)
{
    size_t lo = 0, hi = a->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a->r[mid].end < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void reserve(struct ackset *a, size_t n)
{
    if (n <= a->cap)
        return;
    size_t cap = a->cap ? a->cap * 2 : ACKSET_MIN_CAP;
    while (cap < n)
        cap *= 2;
    a->r = tern_xrealloc(a->r, cap * sizeof(*a->r));
    a->cap = cap;
}

/* Gives memory back after a burst of gaps has been filled. */
static void maybe_shrink(struct ackset *a)
{
    if (a->cap <= ACKSET_MIN_CAP || a->n > a->cap / 4)
        return;
    size_t cap = a->cap;
    while (cap > ACKSET_MIN_CAP && a->n <= cap / 4)
        cap /= 2;
    a->r = tern_xrealloc(a->r, cap * sizeof(*a->r));
    a->cap = cap;
}

/* Replaces ranges [i, j) with `with` (j - i may be 0: an insertion). */
static void splice(struct ackset *a, size_t i, size_t j, const struct ackset_range *with)
{
    size_t add = with ? 1 : 0;
    if (add > j - i)
        reserve(a, a->n + 1);
    if (a->n > j && i + add != j)
        memmove(a->r + i + add, a->r + j, (a->n - j) * sizeof(*a->r));
    a->n = a->n - (j - i) + add;
    if (with)
        a->r[i] = *with;
}

void ackset_add(struct ackset *a, int64_t start, int64_t end)
{
    if (start < a->low)
        start = a->low;
    if (start >= end)
        return;
    size_t i = lower_end(a, start), j = i;
    struct ackset_range m = {start, end};
    while (j < a->n && a->r[j].start <= m.end) {
        if (a->r[j].start < m.start)
            m.start = a->r[j].start;
        if (a->r[j].end > m.end)
            m.end = a->r[j].end;
        j++;
    }
    if (m.start <= a->low) {
        a->low = m.end; /* i == 0 here: nothing lies between low and start */
        splice(a, i, j, NULL);
    } else {
        splice(a, i, j, &m);
    }
    maybe_shrink(a);
}

void ackset_truncate(struct ackset *a, int64_t off)
{
    if (a->low > off) {
        a->low = off;
        a->n = 0;
    } else {
        size_t i = lower_end(a, off + 1); /* first range ending after off */
        if (i < a->n && a->r[i].start < off)
            a->r[i++].end = off;
        a->n = i;
    }
    maybe_shrink(a);
}

int64_t ackset_next_unsettled(const struct ackset *a, int64_t off)
{
    if (off < a->low)
        return a->low;
    size_t i = lower_end(a, off + 1); /* first range with end > off */
    if (i < a->n && a->r[i].start <= off)
        return a->r[i].end;
    return off;
}

int64_t ackset_high(const struct ackset *a)
{
    return a->n ? a->r[a->n - 1].end : a->low;
}
