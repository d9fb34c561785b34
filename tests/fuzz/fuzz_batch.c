/*
 * fuzz_batch.c - fuzz target for the RecordBatch v2 codec (store/batch.c).
 *
 * Two passes over each input:
 *  1. Parse: the input is a concatenation of batches. Each is parsed (1 MiB cap), its CRC
 *     checked, and an uncompressed batch's records iterated whatever the CRC said, touching
 *     every key, value and header byte so ASan sees any pointer outside the batch. The codec's
 *     promises are checked: records lie inside the batch, offsets inside its offset range.
 *  2. Round trip: up to 8 small records derived from the input are encoded with batch_encode
 *     into an exactly sized buffer (and a one-byte-short one, which must be refused), parsed
 *     back, CRC-checked and compared field by field; changing the base offset or leader epoch
 *     must keep the CRC valid.
 * A broken promise prints the failed check and aborts. Timestamps in pass 2 stay within +-2^42 ms
 * of each other: batch_encode computes timestamp deltas in int64 without an overflow check.
 */
#include "base/tern.h"
#include "store/batch.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_BATCH (1u << 20)
#define FUZZ_MAX_RECS 8

static volatile uint32_t sink; /* keeps the byte reads below from being optimised away */

/* A broken promise of the code under test: say which, then crash so the fuzzer keeps it. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_batch: check failed: %s at %s:%d\n", #cond, __FILE__, __LINE__); \
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

/* Pointer p with n bytes lies inside [lo, hi). */
static int inside(const uint8_t *p, size_t n, const uint8_t *lo, const uint8_t *hi)
{
    return p >= lo && p <= hi && n <= (size_t)(hi - p);
}

static void check_record(const struct batch_record *r, const struct batch_hdr *h, const uint8_t *lo,
                         const uint8_t *hi)
{
    CHECK(r->offset >= h->base_offset && r->offset <= batch_last_offset(h));
    CHECK((r->key == NULL) == (r->key_len < 0) && r->key_len >= -1);
    CHECK((r->value == NULL) == (r->value_len < 0) && r->value_len >= -1);
    CHECK(r->header_count >= 0);
    if (r->key)
        CHECK(inside(r->key, (size_t)r->key_len, lo, hi));
    if (r->value)
        CHECK(inside(r->value, (size_t)r->value_len, lo, hi));
    CHECK(inside(r->headers, r->headers_len, lo, hi));
    if (r->key)
        touch(r->key, (size_t)r->key_len);
    if (r->value)
        touch(r->value, (size_t)r->value_len);
    touch(r->headers, r->headers_len);
}

static void iterate(const uint8_t *b, const struct batch_hdr *h)
{
    struct batch_iter it;
    if (batch_iter_init(&it, b, h) < 0) {
        CHECK(h->attributes & BATCH_ATTR_COMPRESSION_MASK);
        return;
    }
    const uint8_t *lo = b + BATCH_HEADER_SIZE, *hi = b + BATCH_LOG_OVERHEAD + h->length;
    struct batch_record rec;
    int rc, n = 0;
    while ((rc = batch_iter_next(&it, &rec)) == 1) {
        check_record(&rec, h, lo, hi);
        CHECK(++n <= h->record_count);
    }
    CHECK(rc == 0 || rc == TERN_EPROTO);
    if (rc == 0)
        CHECK(n == h->record_count);
}

static void parse_all(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    while (pos < size) {
        struct batch_hdr h;
        int64_t n = batch_parse(data + pos, size - pos, FUZZ_MAX_BATCH, &h);
        if (n <= 0) {
            CHECK(n == TERN_EAGAIN || n == TERN_EPROTO || n == TERN_ETOOBIG);
            return;
        }
        CHECK(n >= BATCH_HEADER_SIZE && (size_t)n <= size - pos && n <= FUZZ_MAX_BATCH);
        CHECK(n == (int64_t)h.length + BATCH_LOG_OVERHEAD);
        int crc = batch_check_crc(data + pos, &h);
        CHECK(crc == 0 || crc == TERN_ECORRUPT);
        iterate(data + pos, &h);
        pos += (size_t)n;
    }
}

/* ---- round trip ------------------------------------------------------------------------ */

/* Takes n bytes from the input cursor (fewer at its end). */
static const uint8_t *take(const uint8_t **p, const uint8_t *end, size_t *n)
{
    if (*n > (size_t)(end - *p))
        *n = (size_t)(end - *p);
    const uint8_t *r = *p;
    *p += *n;
    return r;
}

static uint8_t take_byte(const uint8_t **p, const uint8_t *end)
{
    return *p < end ? *(*p)++ : 0;
}

/* Derives records from the input; returns how many. */
static int derive_records(const uint8_t *data, size_t size, struct batch_rec_in *recs)
{
    const uint8_t *p = data, *end = data + size;
    int n = 1 + take_byte(&p, end) % FUZZ_MAX_RECS;
    int64_t ts = 1700000000000;
    for (int i = 0; i < n; i++) {
        uint8_t flags = take_byte(&p, end);
        size_t klen = take_byte(&p, end) % 32, vlen = take_byte(&p, end);
        int64_t step = (int64_t)(int8_t)take_byte(&p, end);
        ts += (flags & 4) ? step * ((int64_t)1 << 32) : step; /* within +-2^42 of the start */
        const uint8_t *k = take(&p, end, &klen), *v = take(&p, end, &vlen);
        recs[i] = (struct batch_rec_in){
            .key = (flags & 1) ? NULL : k,
            .key_len = (flags & 1) ? -1 : (int32_t)klen,
            .value = (flags & 2) ? NULL : v,
            .value_len = (flags & 2) ? -1 : (int32_t)vlen,
            .timestamp = ts,
        };
    }
    return n;
}

static void check_same(const struct batch_record *r, const struct batch_rec_in *in, int i)
{
    CHECK(r->offset == i && r->timestamp == in->timestamp && r->header_count == 0);
    CHECK((r->key == NULL) == (in->key == NULL) && (r->value == NULL) == (in->value == NULL));
    if (in->key)
        CHECK(r->key_len == in->key_len && memcmp(r->key, in->key, (size_t)in->key_len) == 0);
    if (in->value)
        CHECK(r->value_len == in->value_len &&
              memcmp(r->value, in->value, (size_t)in->value_len) == 0);
}

static void check_decoded(uint8_t *buf, int64_t size, const struct batch_rec_in *recs, int n)
{
    struct batch_hdr h;
    CHECK(batch_parse(buf, (size_t)size, (size_t)size, &h) == size);
    CHECK(batch_check_crc(buf, &h) == 0);
    CHECK(h.base_offset == 0 && h.record_count == n && h.last_offset_delta == n - 1);
    CHECK(h.first_timestamp == recs[0].timestamp && h.producer_id == -1);
    struct batch_iter it;
    struct batch_record rec;
    CHECK(batch_iter_init(&it, buf, &h) == 0);
    for (int i = 0; i < n; i++) {
        CHECK(batch_iter_next(&it, &rec) == 1);
        check_same(&rec, &recs[i], i);
        CHECK(rec.timestamp <= h.max_timestamp);
    }
    CHECK(batch_iter_next(&it, &rec) == 0);

    /* baseOffset and partitionLeaderEpoch are outside the CRC */
    batch_set_base_offset(buf, 1234567);
    batch_set_leader_epoch(buf, 7);
    CHECK(batch_parse(buf, (size_t)size, (size_t)size, &h) == size);
    CHECK(h.base_offset == 1234567 && h.leader_epoch == 7 && batch_check_crc(buf, &h) == 0);
}

static void round_trip(const uint8_t *data, size_t len)
{
    struct batch_rec_in recs[FUZZ_MAX_RECS];
    int n = derive_records(data, len, recs);
    size_t cap = BATCH_HEADER_SIZE;
    for (int i = 0; i < n; i++)
        cap += 40 + (recs[i].key ? (size_t)recs[i].key_len : 0) +
               (recs[i].value ? (size_t)recs[i].value_len : 0);
    uint8_t *buf = malloc(cap);
    CHECK(buf != NULL);
    int64_t size = batch_encode(buf, cap, recs, n);
    CHECK(size >= BATCH_HEADER_SIZE && (size_t)size <= cap);
    free(buf);

    /* again into an exactly sized buffer, so ASan catches a write past the end */
    buf = malloc((size_t)size);
    CHECK(buf != NULL);
    CHECK(batch_encode(buf, (size_t)size - 1, recs, n) == TERN_ETOOBIG);
    CHECK(batch_encode(buf, (size_t)size, recs, n) == size);
    check_decoded(buf, size, recs, n);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    parse_all(data, size);
    round_trip(data, size);
    return 0;
}
