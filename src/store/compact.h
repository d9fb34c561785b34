/*
 * compact.h - log compaction (cleanup.policy=compact): the per-segment work of a pass.
 *
 * A pass (driven by log.c, which picks the segments and swaps the results in) first builds a
 * map key -> offset of the key's latest record over the dirty segments (compact_map_add), then
 * rewrites every segment of the cleanable range (compact_seg) keeping a record when
 *
 *   - its key is null (records without a key are never compacted), or
 *   - no later record of its key is in the map, and it is not a tombstone (null value) that
 *     may be dropped (the caller's drop_tombstones, see docs/STORAGE.md), or
 *   - it sits in a control batch (kept whole).
 *
 * Output format rules, which keep the store's offset invariants (no gap between batches):
 *   - a batch with records removed keeps its header (baseOffset, lastOffsetDelta, timestamps,
 *     producer fields, leader epoch) and its remaining records byte for byte (their offset and
 *     timestamp deltas stay valid); recordCount, batchLength and the CRC are recomputed; a
 *     compressed batch is decompressed, filtered and recompressed with the same codec;
 *   - a batch left without records becomes an empty batch (recordCount 0, no records,
 *     compression none) with the same baseOffset and lastOffsetDelta; consecutive empty batches
 *     are merged into one spanning them, except that the last batch of each producer id in the
 *     segment keeps its producer fields (and is never merged) so idempotence state survives;
 *   - a batch with nothing removed is copied as it is.
 *
 * Runs on a pool thread: reads only sealed segments (which nobody writes) and creates the
 * temporary output segment; no logging. Not thread-safe per map.
 */
#ifndef TERN_COMPACT_H
#define TERN_COMPACT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/seg.h"

/* Largest decompressed records section read; a larger batch is kept whole and unmapped. */
#define COMPACT_MAX_RECORDS_BYTES (256u << 20)

struct compact_map;

struct compact_map *compact_map_new(void);
void compact_map_free(struct compact_map *m);
/* Keys in the map. */
size_t compact_map_count(const struct compact_map *m);
/* The offset of key's latest record in the map, or -1. */
int64_t compact_map_get(const struct compact_map *m, const void *key, size_t len);

/*
 * Adds every keyed record of segment s to m (a later offset replaces an earlier one; call it
 * for segments in ascending order). Checks each batch's CRC. cancel (may be NULL) is polled
 * between batches. Returns 0, TERN_ECORRUPT (a bad batch), -ECANCELED or -errno.
 */
int compact_map_add(struct compact_map *m, const struct seg *s, const atomic_bool *cancel);

struct compact_seg_stats {
    uint64_t records_removed;
    uint64_t batches_emptied;
    uint32_t tombstones_kept;
    uint64_t bytes_after; /* size of the compacted copy (the old size when unchanged) */
};

/*
 * Compacts sealed segment old with map m. When anything changes, writes the result into a new
 * temporary segment (seg_create_temp in old's directory) and sets *out to it (one reference;
 * install it with seg_replace, or seg_remove + seg_unref it); when nothing changes, *out is NULL
 * and nothing is written. drop_tombstones: tombstones whose key has no later record are
 * removed too. Stats are filled either way.
 * Returns 0, TERN_ECORRUPT (a bad batch in old: nothing is written), -ECANCELED or -errno
 * (the temporary files are removed).
 */
int compact_seg(const struct compact_map *m, const struct seg *old, bool drop_tombstones,
                const atomic_bool *cancel, struct seg **out, struct compact_seg_stats *st);

#endif
