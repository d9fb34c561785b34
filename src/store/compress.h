/*
 * compress.h - Kafka's batch compression codecs. When bits 0-2 of a RecordBatch v2's attributes
 * name a codec, the records section (batch bytes 61 .. end) is one compressed stream of the
 * records back to back; the 61-byte header stays uncompressed.
 *
 * Stream formats, as Kafka clients write them:
 *   1 gzip    RFC 1952 gzip; several members back to back are accepted.
 *   2 snappy  raw snappy (librdkafka) or xerial framing (Java client, kafka-python): the 8 bytes
 *             82 'S' 'N' 'A' 'P' 'P' 'Y' 00, int32 version, int32 compatible version, then
 *             blocks of int32 length + one raw snappy block (integers big-endian). The magic
 *             tells the two apart, as librdkafka and the Java client do.
 *   3 lz4     LZ4 frame format (magic 04 22 4D 18), one frame or several, as Kafka >= 0.10
 *             writes it (magic-0 messages' wrong header checksum is not accepted).
 *   4 zstd    zstd frames (magic 28 B5 2F FD; skippable frames are skipped). Pre-1.0 "legacy"
 *             zstd frames are refused: no Kafka client writes them.
 *
 * Decompression writes into a caller-given buffer and never writes past its capacity; a stream
 * that would expand beyond it fails with TERN_ETOOBIG. A decompression bomb therefore costs at
 * most that capacity plus each library's bounded working state (zlib's 32 KiB window, an lz4
 * block buffer of at most 4 MiB, a zstd context; zstd decodes into the caller's buffer and
 * allocates no window).
 *
 * Pure codec: no I/O, no logging; the only allocation is the libraries' per-call contexts.
 */
#ifndef TERN_COMPRESS_H
#define TERN_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "store/batch.h"

enum compress_codec {
    COMPRESS_NONE = 0,
    COMPRESS_GZIP = 1,
    COMPRESS_SNAPPY = 2, /* encodes xerial framing, as the Java client does */
    COMPRESS_LZ4 = 3,
    COMPRESS_ZSTD = 4,
    /* Encode only: raw snappy, as librdkafka writes it (a batch's attributes still say 2). */
    COMPRESS_SNAPPY_RAW = 0x102,
};

/* The codec's name ("none", "gzip", "snappy", "lz4", "zstd"), or "unknown". Static string. */
const char *compress_name(int codec);

/*
 * Decompresses len bytes at src, a stream of the given codec (0-4; COMPRESS_NONE copies), into
 * out, writing at most cap bytes (caps above 4 GiB count as 4 GiB). Nothing is allocated that
 * the caller must free; out's bytes past the returned length are unspecified.
 * Returns the decompressed size; TERN_ETOOBIG when the output would exceed cap; TERN_EPROTO
 * when the stream is malformed, truncated, has trailing bytes, or is empty; TERN_ENOTSUP for
 * an unknown codec (5-7 and anything else); -ENOMEM when a library context cannot be allocated.
 */
int64_t compress_decode(int codec, const void *src, size_t len, void *out, size_t cap);

/*
 * The output capacity compress_encode needs for len input bytes with this codec, or 0 for an
 * unknown codec.
 */
size_t compress_bound(int codec, size_t len);

/*
 * Compresses len bytes at src into out (cap bytes) with codec (COMPRESS_NONE copies) at level:
 * 0 picks the codec's default (gzip 6, lz4 fast, zstd 3); otherwise gzip 1-9, lz4 1-12 (high
 * compression from 3), zstd 1-22, clamped into that range; snappy has no levels. Output is what
 * the Java client writes: gzip with mtime 0, xerial snappy with 32 KiB blocks, LZ4 frames with
 * 64 KiB independent blocks and no checksums but the header's.
 * Returns the compressed size; TERN_ETOOBIG when cap < compress_bound(codec, len) (checked
 * first, so nothing is written); TERN_ENOTSUP for an unknown codec; -ENOMEM on allocation
 * failure inside a library.
 */
int64_t compress_encode(int codec, int level, const void *src, size_t len, void *out, size_t cap);

/*
 * Starts iterating the records of any batch, compressed or not, with batch_iter_next. The
 * records of an uncompressed batch are read in place; a compressed batch's records section is
 * decompressed into scratch (cap bytes), and the records then point into scratch. batch, h and
 * scratch are borrowed: keep them unchanged until the iteration is over. An empty records section
 * with recordCount 0 iterates nothing whatever the codec. h comes from batch_parse on the whole
 * batch; the CRC is not checked here.
 * Returns 0; TERN_ETOOBIG when the decompressed records exceed cap; TERN_EPROTO when the
 * compressed stream is malformed; TERN_ENOTSUP for an unknown codec (attributes 5-7); -ENOMEM.
 */
int compress_iter_init(struct batch_iter *it, const void *batch, const struct batch_hdr *h,
                       void *scratch, size_t cap);

/*
 * Writes a compressed copy of an uncompressed batch (size bytes, as batch_parse measured it) to
 * out: the same header with the codec in the attributes, batchLength and CRC recomputed, and the
 * records section compressed with codec and level (see compress_encode), for compaction when it
 * rewrites a batch. cap >= BATCH_HEADER_SIZE + compress_bound(codec, size - 61) always
 * suffices. batch is only read.
 * Returns the new batch's size; TERN_ETOOBIG when cap is too small or the result exceeds
 * INT32_MAX; TERN_EPROTO when batch is not a whole uncompressed v2 batch; TERN_ENOTSUP for an
 * unknown codec or COMPRESS_NONE; -ENOMEM.
 */
int64_t compress_batch(int codec, int level, const void *batch, size_t size, void *out, size_t cap);

#endif
