/*
 * producers.h - the idempotent-producer state of one partition: for each producer id its epoch
 * and the metadata of its last PRODUCERS_WINDOW appended batches, enough to deduplicate a retried
 * batch and to refuse one that skips or rewinds its sequence numbers. It follows Kafka's
 * ProducerStateManager / ProducerAppendInfo (2.5 and later, still so in 4.x):
 *
 *   - a producer id we hold no state for is accepted at any sequence (KIP-360: its records may
 *     have been deleted by retention; Kafka 2.0-2.4 answered UNKNOWN_PRODUCER_ID instead);
 *   - an epoch below the producer's current one is stale (INVALID_PRODUCER_EPOCH);
 *   - a higher epoch starts over and must start at sequence 0 (else OUT_OF_ORDER_SEQUENCE);
 *   - in the same epoch, a batch whose first and last sequence equal a retained batch's is a
 *     duplicate: answer with that batch's offsets and append nothing; otherwise the first
 *     sequence must follow the last retained one (INT32_MAX is followed by 0), or OUT_OF_ORDER.
 *
 * State is rebuilt from the log itself (producers_apply over every batch header: batches with
 * producerId >= 0 recover it exactly), or loaded from a snapshot (producers_save/load) and the
 * log replayed from the offset the snapshot names.
 *
 * Snapshot layout (big-endian):
 *     0  4  magic "TPRS"
 *     4  2  version (1)
 *     6  2  reserved (0)
 *     8  8  next offset: where replaying the log resumes (the caller's choice)
 *    16  4  producer count
 *    20  .. producers in ascending id order, each:
 *             i64 producer id, i16 epoch, u8 batch count (0-5), u8 reserved (0),
 *             i64 last timestamp, then per batch (oldest first):
 *             i32 first sequence, i32 last sequence, i64 base offset, i64 last offset,
 *             i64 timestamp
 *   end-4 4 CRC-32C of every byte before it
 *
 * No protocol knowledge: the verdicts name Kafka's error codes for the session to send. Not
 * thread-safe: one partition's state belongs to the thread that appends to that partition.
 */
#ifndef TERN_PRODUCERS_H
#define TERN_PRODUCERS_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "store/batch.h"

#define PRODUCERS_WINDOW 5 /* batches retained per producer (Kafka's NUM_BATCHES_TO_RETAIN) */

enum producers_verdict {
    PRODUCERS_APPEND = 0,        /* new and in order (or not idempotent): append it */
    PRODUCERS_DUPLICATE = 1,     /* a retry of a retained batch: answer with *dup, append nothing */
    PRODUCERS_OUT_OF_ORDER = 2,  /* Kafka error 45 OUT_OF_ORDER_SEQUENCE_NUMBER */
    PRODUCERS_INVALID_EPOCH = 3, /* Kafka error 47 INVALID_PRODUCER_EPOCH */
};

/* Metadata of one appended batch. */
struct producers_batch {
    int32_t first_seq;
    int32_t last_seq;
    int64_t base_offset;
    int64_t last_offset;
    int64_t timestamp; /* the batch's maxTimestamp */
};

/* One producer's state. */
struct producers_entry {
    int64_t producer_id;
    int16_t epoch;
    int n;                  /* retained batches, 0..PRODUCERS_WINDOW */
    int64_t last_timestamp; /* of the newest batch or marker: drives producers_expire */
    struct producers_batch batches[PRODUCERS_WINDOW]; /* oldest first */
};

struct producers;

/* An empty table; free with producers_free. Allocation failure aborts (control plane). */
struct producers *producers_new(void);
/* Frees t and every entry; NULL is a no-op. */
void producers_free(struct producers *t);
/* Number of producers held. */
size_t producers_count(const struct producers *t);
/* The entry of producer_id, or NULL. Borrowed from t: valid until t is next modified. */
const struct producers_entry *producers_find(const struct producers *t, int64_t producer_id);

/* seq + n for n >= 0, wrapping from INT32_MAX to 0 as Kafka's sequences do. */
int32_t producers_seq_add(int32_t seq, int32_t n);

/*
 * Judges an incoming batch of count records from (producer_id, epoch) starting at base_seq,
 * without changing t. A producer_id below 0 (not idempotent) always gets PRODUCERS_APPEND.
 * On PRODUCERS_DUPLICATE, *dup (if not NULL) receives the original batch's metadata.
 * Returns a verdict (>= 0), or TERN_EPROTO when producer_id >= 0 but epoch or base_seq is
 * negative or count < 1.
 */
int producers_check(const struct producers *t, int64_t producer_id, int16_t epoch, int32_t base_seq,
                    int32_t count, struct producers_batch *dup);

/*
 * Records a batch that was appended for (producer_id, epoch): creates the producer if new; a
 * different epoch drops the retained batches first; the oldest batch falls out of the window
 * when it is full. A producer_id or epoch below 0 is ignored. b is copied.
 */
void producers_record(struct producers *t, int64_t producer_id, int16_t epoch,
                      const struct producers_batch *b);

/*
 * Records what the batch header h says, as appended to the log (h->base_offset is its offset):
 * used after an append and when replaying the log. Batches with producerId or producerEpoch
 * below 0 are ignored; a control batch (transaction marker) or one without a sequence only
 * moves the epoch. The last sequence and offset come from lastOffsetDelta, so a batch that
 * compaction emptied still counts.
 */
void producers_apply(struct producers *t, const struct batch_hdr *h);

/*
 * Replays the whole batches at buf[0..len), concatenated as in a segment file, through
 * producers_apply (CRCs are not checked: the log's recovery does that).
 * Returns the bytes of whole batches consumed (a partial batch at the end is left for the next
 * call), or TERN_EPROTO at a malformed header (batches before it were applied).
 */
int64_t producers_replay(struct producers *t, const void *buf, size_t len);

/*
 * Forgets every producer whose last_timestamp is below min_timestamp (Kafka's
 * producer.id.expiration.ms: the caller passes now - that age). Returns how many were removed.
 */
size_t producers_expire(struct producers *t, int64_t min_timestamp);

/* Appends the snapshot of t (layout above) to out; next_offset is stored with it. */
void producers_save(const struct producers *t, int64_t next_offset, struct buf *out);

/*
 * Parses a snapshot of len bytes. On success *out is a new table the caller frees with
 * producers_free and *next_offset the offset stored with it; data is only read.
 * Returns 0, TERN_ECORRUPT when the CRC or the structure is wrong, or TERN_ENOTSUP for a
 * version this build does not know; on failure *out is unchanged and nothing is left allocated.
 */
int producers_load(const void *data, size_t len, struct producers **out, int64_t *next_offset);

/*
 * Snapshot files: PRODUCERS_SNAPSHOT in a directory, written whole or not at all. save writes
 * a temporary, fsyncs it, renames it over the old one and fsyncs dir: after a crash the file
 * is the old snapshot or the new one. Returns 0 or -errno.
 */
#define PRODUCERS_SNAPSHOT "producers.snapshot"
int producers_save_file(const struct producers *t, int64_t next_offset, const char *dir);
/* Writes data (a producers_save result) as dir's snapshot the same way, through the temporary
 * tmp_name: a writer on the thread pool uses its own, so that it never shares a temporary with
 * producers_save_file on the loop. */
#define PRODUCERS_SNAPSHOT_BG_TMP PRODUCERS_SNAPSHOT ".bg.tmp"
int producers_write_file(const void *data, size_t len, const char *dir, const char *tmp_name);
/* Loads dir's snapshot as producers_load does. Returns 0, -ENOENT when there is none, -errno,
 * TERN_ECORRUPT or TERN_ENOTSUP; on failure *out is unchanged. */
int producers_load_file(const char *dir, struct producers **out, int64_t *next_offset);
/* Removes dir's snapshot (and leftover temporaries); 0 when there was none. */
int producers_remove_file(const char *dir);

#endif
