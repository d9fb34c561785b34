/*
 * batch.h - Kafka RecordBatch v2: the unit tern stores on disk and sends to Kafka consumers.
 *
 * Byte layout (big-endian), 61-byte header followed by the records:
 *
 *   off size field
 *     0   8  baseOffset            assigned by the broker at append (not covered by the CRC)
 *     8   4  batchLength           bytes after this field (total size = 12 + batchLength)
 *    12   4  partitionLeaderEpoch  set by the broker (not covered by the CRC)
 *    16   1  magic                 always 2
 *    17   4  crc                   CRC-32C of bytes 21 .. end
 *    21   2  attributes            bits 0-2 compression, 3 timestamp type, 4 transactional,
 *                                  5 control
 *    23   4  lastOffsetDelta
 *    27   8  baseTimestamp (firstTimestamp)
 *    35   8  maxTimestamp
 *    43   8  producerId
 *    51   2  producerEpoch
 *    53   4  baseSequence
 *    57   4  recordCount
 *    61   .. records (compressed as a whole when attributes say so)
 *
 * Each uncompressed record: length varint, attributes int8, timestampDelta varlong,
 * offsetDelta varint, keyLength varint (-1 = null), key, valueLength varint, value,
 * headerCount varint, then per header keyLength varint, key, valueLength varint, value.
 *
 * This module is a pure codec: no I/O, no logging, no allocation.
 */
#ifndef TERN_BATCH_H
#define TERN_BATCH_H

#include <stddef.h>
#include <stdint.h>

#define BATCH_HEADER_SIZE 61
#define BATCH_LOG_OVERHEAD 12 /* baseOffset + batchLength */
#define BATCH_MAGIC 2
#define BATCH_ATTR_COMPRESSION_MASK 0x07
#define BATCH_ATTR_LOG_APPEND_TIME 0x08
#define BATCH_ATTR_TRANSACTIONAL 0x10
#define BATCH_ATTR_CONTROL 0x20

struct batch_hdr {
    int64_t base_offset;
    int32_t length; /* batchLength */
    int32_t leader_epoch;
    int8_t magic;
    uint32_t crc;
    int16_t attributes;
    int32_t last_offset_delta;
    int64_t first_timestamp;
    int64_t max_timestamp;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    int32_t record_count;
};

/*
 * Parses and structurally checks the batch header at buf (len bytes available).
 * max_size caps the whole batch (12 + batchLength). Does not check the CRC.
 * Returns the batch's total size when the whole batch is in buf, TERN_EAGAIN when more bytes
 * are needed, TERN_ETOOBIG when the length exceeds max_size, TERN_EPROTO when the header is
 * not a valid v2 batch header.
 */
int64_t batch_parse(const void *buf, size_t len, size_t max_size, struct batch_hdr *out);
/* Checks the CRC of a whole parsed batch. Returns 0 or TERN_ECORRUPT. */
int batch_check_crc(const void *buf, const struct batch_hdr *h);
/* Recomputes and stores the CRC (after changing covered fields). */
void batch_update_crc(void *buf, size_t size);
void batch_set_base_offset(void *buf, int64_t base_offset);
void batch_set_leader_epoch(void *buf, int32_t epoch);
/*
 * Writes every header field of h (baseOffset .. recordCount; magic is always 2) into the first
 * BATCH_HEADER_SIZE bytes of buf, leaving the CRC field alone: call batch_update_crc once the
 * records follow. For compaction, which rewrites a batch's records under the same header.
 */
void batch_write_header(void *buf, const struct batch_hdr *h);

static inline int64_t batch_last_offset(const struct batch_hdr *h)
{
    return h->base_offset + h->last_offset_delta;
}

/* One record of an uncompressed batch, pointing into the batch's bytes. */
struct batch_record {
    int64_t offset;
    int64_t timestamp;
    const uint8_t *key; /* NULL for a null key */
    int32_t key_len;
    const uint8_t *value; /* NULL for a null value (tombstone) */
    int32_t value_len;
    const uint8_t *headers; /* raw header bytes, header_count entries */
    int32_t header_count;
    size_t headers_len;
};

/* Iterates the records of an uncompressed batch (or of a decompressed records section). */
struct batch_iter {
    const uint8_t *p, *end;
    const struct batch_hdr *h;
    int32_t left;
};

/* Starts iterating. Returns 0, or TERN_EPROTO for a compressed batch (records not readable). */
int batch_iter_init(struct batch_iter *it, const void *batch, const struct batch_hdr *h);
/* Returns 1 with *rec filled, 0 at the end, TERN_EPROTO on malformed records. */
int batch_iter_next(struct batch_iter *it, struct batch_record *rec);
/*
 * Starts iterating h's records held elsewhere: records..records+len are the batch's records
 * section already decompressed (see compress_iter_init in store/compress.h). The records and h
 * are borrowed and must outlive the iteration. Cannot fail.
 */
void batch_iter_init_records(struct batch_iter *it, const struct batch_hdr *h, const void *records,
                             size_t len);

/* One record header (key is never null; a null value has value NULL, value_len -1). */
struct batch_header {
    const uint8_t *key;
    int32_t key_len;
    const uint8_t *value;
    int32_t value_len;
};

/* Reads the next header from *p (advancing it) within [*p, end); a record's headers start at
 * batch_record.headers. Returns 0, or TERN_EPROTO when malformed. */
int batch_header_next(const uint8_t **p, const uint8_t *end, struct batch_header *out);

/* A record to encode. */
struct batch_rec_in {
    const void *key; /* NULL = null key */
    int32_t key_len;
    const void *value; /* NULL = null value */
    int32_t value_len;
    int64_t timestamp;
};

/*
 * Encodes an uncompressed v2 batch of n records into out (cap bytes), base offset 0,
 * producer id -1, CRC set. Returns the batch size, or TERN_ETOOBIG when cap is too small.
 */
int64_t batch_encode(void *out, size_t cap, const struct batch_rec_in *recs, int n);

#endif
