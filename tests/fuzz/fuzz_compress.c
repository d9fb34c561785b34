/*
 * fuzz_compress.c - fuzz target for the Kafka batch codecs (store/compress.c).
 *
 * Input: byte 0 picks the codec (bits 0-2: 0-4 Kafka's codecs, 5-7 unknown ones) and the output
 * cap (bits 3-7: 0 means 1 MiB, n means n*n*64 bytes); the rest is a compressed stream.
 * Output buffers end exactly at their cap, at the end of a heap block (allocated once: a fresh
 * 1 MiB block per run costs page faults, not coverage), so ASan reports any write past it.
 *
 *  1. Decode with the cap: the result is a size <= cap, TERN_ETOOBIG, TERN_EPROTO or (unknown
 *     codecs only) TERN_ENOTSUP, or -ENOMEM; every output byte is read.
 *  2. The cap only limits: when it was below 1 MiB, decoding again with 1 MiB gives the same
 *     bytes after a success, and no success of at most the small cap after TERN_ETOOBIG.
 *  3. Round trip: the stream's bytes, compressed with the codec (snappy also raw), decode to
 *     themselves into a buffer of exactly their size, and fail with TERN_ETOOBIG one byte short.
 *  4. The stream as the records section of a batch: compress_iter_init + batch_iter_next with a
 *     scratch of the cap; records must lie inside the scratch.
 * A broken promise prints the failed check and aborts.
 */
#include "base/tern.h"
#include "store/batch.h"
#include "store/compress.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CAP (1u << 20)

static volatile uint32_t sink;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_compress: check failed: %s at %s:%d\n", #cond, __FILE__,         \
                    __LINE__);                                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void touch(const uint8_t *p, size_t n)
{
    uint32_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc += p[i];
    sink += acc;
}

static size_t cap_of(uint8_t sel)
{
    return sel == 0 ? FUZZ_CAP : (size_t)sel * sel * 64;
}

/* The last cap bytes of heap block i (0-2) of FUZZ_CAP bytes, kept for the whole run. */
static uint8_t *tail_buf(int i, size_t cap)
{
    static uint8_t *blocks[3];
    if (!blocks[i])
        blocks[i] = malloc(FUZZ_CAP);
    CHECK(blocks[i] != NULL && cap <= FUZZ_CAP);
    return blocks[i] + FUZZ_CAP - cap;
}

static void check_rc(int64_t rc, int codec, size_t cap)
{
    if (rc >= 0) {
        CHECK((size_t)rc <= cap);
        return;
    }
    if (codec > COMPRESS_ZSTD)
        CHECK(rc == TERN_ENOTSUP);
    else
        CHECK(rc == TERN_ETOOBIG || rc == TERN_EPROTO || rc == -ENOMEM);
}

/* Pass 2: a small cap must agree with the 1 MiB one. */
static void check_cap(int codec, const uint8_t *s, size_t len, const uint8_t *small, int64_t rc,
                      size_t cap)
{
    if (cap >= FUZZ_CAP || rc == TERN_EPROTO || rc == TERN_ENOTSUP)
        return;
    uint8_t *big = tail_buf(1, FUZZ_CAP);
    int64_t rc2 = compress_decode(codec, s, len, big, FUZZ_CAP);
    if (rc >= 0)
        CHECK(rc2 == rc && memcmp(big, small, (size_t)rc) == 0);
    else if (rc == TERN_ETOOBIG)
        CHECK(rc2 < 0 || (size_t)rc2 > cap);
}

static void roundtrip(int codec, const uint8_t *s, size_t len)
{
    size_t bound = compress_bound(codec, len);
    uint8_t *c = malloc(bound ? bound : 1), *d = malloc(len ? len : 1);
    CHECK(c != NULL && d != NULL);
    if (bound > 0)
        CHECK(compress_encode(codec, 0, s, len, c, bound - 1) == TERN_ETOOBIG);
    int64_t n = compress_encode(codec, (int)(len % 4), s, len, c, bound);
    CHECK(n >= (codec == COMPRESS_NONE ? 0 : 1) && (size_t)n <= bound);
    int dcodec = codec == COMPRESS_SNAPPY_RAW ? COMPRESS_SNAPPY : codec;
    CHECK(compress_decode(dcodec, c, (size_t)n, d, len) == (int64_t)len);
    CHECK(len == 0 || memcmp(d, s, len) == 0);
    if (len > 0)
        CHECK(compress_decode(dcodec, c, (size_t)n, d, len - 1) == TERN_ETOOBIG);
    free(c);
    free(d);
}

/* Pass 4: the stream as a compressed batch's records section (3 records claimed). */
static void as_batch(int codec, const uint8_t *s, size_t len, size_t cap)
{
    size_t total = BATCH_HEADER_SIZE + len;
    uint8_t *b = calloc(1, total);
    uint8_t *scratch = tail_buf(2, cap);
    CHECK(b != NULL);
    uint32_t blen = (uint32_t)(total - BATCH_LOG_OVERHEAD);
    b[8] = (uint8_t)(blen >> 24), b[9] = (uint8_t)(blen >> 16), b[10] = (uint8_t)(blen >> 8);
    b[11] = (uint8_t)blen;
    b[16] = BATCH_MAGIC;
    b[22] = (uint8_t)codec;
    b[26] = 2; /* lastOffsetDelta */
    b[60] = 3; /* recordCount */
    memcpy(b + BATCH_HEADER_SIZE, s, len);
    struct batch_hdr h;
    CHECK(batch_parse(b, total, total, &h) == (int64_t)total);
    struct batch_iter it;
    if (compress_iter_init(&it, b, &h, scratch, cap) == 0) {
        struct batch_record r;
        const uint8_t *lo = codec ? scratch : b, *hi = codec ? scratch + cap : b + total;
        while (batch_iter_next(&it, &r) == 1) {
            CHECK(r.headers >= lo && r.headers + r.headers_len <= hi);
            if (r.value)
                touch(r.value, (size_t)r.value_len);
        }
    }
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int codec = data[0] & 7;
    size_t cap = cap_of(data[0] >> 3), len = size - 1;
    const uint8_t *s = data + 1;
    uint8_t *out = tail_buf(0, cap);
    int64_t rc = compress_decode(codec, s, len, out, cap);
    check_rc(rc, codec, cap);
    if (rc > 0)
        touch(out, (size_t)rc);
    check_cap(codec, s, len, out, rc, cap);
    if (codec <= COMPRESS_ZSTD) {
        roundtrip(codec, s, len);
        if (codec == COMPRESS_SNAPPY)
            roundtrip(COMPRESS_SNAPPY_RAW, s, len);
        as_batch(codec, s, len, cap);
    }
    return 0;
}
