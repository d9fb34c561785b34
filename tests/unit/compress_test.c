/* compress_test.c - Kafka batch codecs: round trips, real clients' batches, damaged input, caps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/tern.h"
#include "compress_vectors.h"
#include "store/batch.h"
#include "store/compress.h"

static const int codecs[] = {COMPRESS_NONE,       COMPRESS_GZIP, COMPRESS_SNAPPY,
                             COMPRESS_SNAPPY_RAW, COMPRESS_LZ4,  COMPRESS_ZSTD};

/* The codec a stream encoded with c is decoded with. */
static int dec(int c)
{
    return c == COMPRESS_SNAPPY_RAW ? COMPRESS_SNAPPY : c;
}

/* Deterministic test data: text-like when compressible, else pseudo-random bytes. */
static uint8_t *make_data(size_t n, int compressible)
{
    uint8_t *p = malloc(n ? n : 1);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        p[i] = compressible ? (uint8_t)("kafka-record-"[i % 13] + (i / 4096) % 3) : (uint8_t)x;
    }
    return p;
}

/* Compresses src into a malloc'ed buffer of compress_bound bytes; *n gets the size. */
static uint8_t *enc(int codec, int level, const uint8_t *src, size_t len, size_t *n)
{
    size_t bound = compress_bound(codec, len);
    uint8_t *c = malloc(bound ? bound : 1);
    int64_t rc = compress_encode(codec, level, src, len, c, bound);
    assert_true(rc >= 0 && (size_t)rc <= bound);
    *n = (size_t)rc;
    return c;
}

static void roundtrip_one(int codec, int level, const uint8_t *src, size_t len)
{
    size_t n;
    uint8_t *c = enc(codec, level, src, len, &n);
    uint8_t *d = malloc(len ? len : 1); /* exactly the size: the cap that must still work */
    assert_int_equal(compress_decode(dec(codec), c, n, d, len), (int64_t)len);
    assert_memory_equal(d, src, len);
    if (len > 0)
        assert_int_equal(compress_decode(dec(codec), c, n, d, len - 1), TERN_ETOOBIG);
    free(d);
    free(c);
}

static void test_roundtrip(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 100, 32 * 1024, 32 * 1024 + 1, 200 * 1000};
    static const int levels[] = {0, 1, 9, 100};
    for (size_t s = 0; s < TERN_ARRAY_LEN(sizes); s++) {
        for (int comp = 0; comp < 2; comp++) {
            uint8_t *src = make_data(sizes[s], comp);
            for (size_t c = 0; c < TERN_ARRAY_LEN(codecs); c++)
                for (size_t l = 0; l < TERN_ARRAY_LEN(levels); l++)
                    roundtrip_one(codecs[c], levels[l], src, sizes[s]);
            free(src);
        }
    }
}

static void test_encode_needs_bound(void **state)
{
    (void)state;
    uint8_t src[64] = {1}, out[256];
    for (size_t c = 1; c < TERN_ARRAY_LEN(codecs); c++) {
        size_t bound = compress_bound(codecs[c], sizeof(src));
        assert_true(bound > 0 && bound <= sizeof(out));
        assert_int_equal(compress_encode(codecs[c], 0, src, sizeof(src), out, bound - 1),
                         TERN_ETOOBIG);
    }
    assert_int_equal(compress_bound(5, 10), 0);
    assert_int_equal(compress_encode(5, 0, src, sizeof(src), out, sizeof(out)), TERN_ENOTSUP);
    assert_int_equal(compress_decode(5, src, sizeof(src), out, sizeof(out)), TERN_ENOTSUP);
    assert_int_equal(compress_decode(7, src, sizeof(src), out, sizeof(out)), TERN_ENOTSUP);
    assert_int_equal(compress_decode(COMPRESS_SNAPPY_RAW, src, 1, out, 1), TERN_ENOTSUP);
    assert_string_equal(compress_name(COMPRESS_ZSTD), "zstd");
    assert_string_equal(compress_name(6), "unknown");
}

/* Kafka output details that other clients rely on. */
static void test_encoded_framing(void **state)
{
    (void)state;
    uint8_t *src = make_data(70000, 1);
    size_t n;
    uint8_t *c = enc(COMPRESS_SNAPPY, 0, src, 70000, &n);
    assert_memory_equal(c, "\x82SNAPPY\0\0\0\0\1\0\0\0\1", 16); /* xerial, version 1, compat 1 */
    free(c);
    c = enc(COMPRESS_LZ4, 0, src, 70000, &n);
    assert_memory_equal(c, "\x04\x22\x4d\x18", 4);
    assert_int_equal(c[4], 0x60); /* FLG: version 01, independent blocks, no checksums/size */
    assert_int_equal(c[5], 0x40); /* BD: 64 KiB blocks */
    free(c);
    c = enc(COMPRESS_GZIP, 0, src, 70000, &n);
    assert_memory_equal(c, "\x1f\x8b\x08", 3);
    free(c);
    c = enc(COMPRESS_ZSTD, 0, src, 70000, &n);
    assert_memory_equal(c, "\x28\xb5\x2f\xfd", 4);
    free(c);
    free(src);
}

/* The records every real-client vector carries (see mkcorpus_compress.py). */
static void check_vector_records(const struct compress_vector *v, struct batch_iter *it)
{
    struct batch_record r;
    char key[16], val[80];
    int n = 0;
    int rc;
    while ((rc = batch_iter_next(it, &r)) == 1) {
        assert_int_equal(r.offset, 100 + n);
        if (v->big) {
            assert_true(r.key_len == 3 && memcmp(r.key, "big", 3) == 0);
            assert_int_equal(r.value_len, 40000);
            for (int i = 0; i < 40000; i++)
                assert_int_equal(r.value[i], '0' + i % 10);
        } else {
            snprintf(key, sizeof(key), "k%d", n);
            snprintf(val, sizeof(val), "value-%dvalue-%dvalue-%d", n, n, n);
            assert_int_equal(r.timestamp, 1700000000000 + n);
            assert_true(r.key_len == 2 && memcmp(r.key, key, 2) == 0);
            assert_true(r.value_len == 21 && memcmp(r.value, val, 21) == 0);
            assert_int_equal(r.header_count, 1);
            const uint8_t *p = r.headers;
            struct batch_header hd;
            assert_int_equal(batch_header_next(&p, r.headers + r.headers_len, &hd), 0);
            assert_true(hd.key_len == 1 && hd.key[0] == 'h' && hd.value_len == 1 &&
                        hd.value[0] == 'v');
        }
        n++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(n, v->big ? 1 : 3);
}

static void test_client_vectors(void **state)
{
    (void)state;
    uint8_t scratch[64 * 1024];
    for (size_t i = 0; i < TERN_ARRAY_LEN(compress_vectors); i++) {
        const struct compress_vector *v = &compress_vectors[i];
        uint8_t *b = malloc(v->len);
        memcpy(b, v->batch, v->len);
        batch_set_base_offset(b, 100); /* as the log assigns it */
        struct batch_hdr h;
        assert_int_equal(batch_parse(b, v->len, 1 << 20, &h), (int64_t)v->len);
        assert_int_equal(batch_check_crc(b, &h), 0);
        assert_int_equal(h.attributes & BATCH_ATTR_COMPRESSION_MASK, v->codec);
        struct batch_iter it;
        assert_int_equal(batch_iter_init(&it, b, &h), TERN_EPROTO); /* compressed: not in place */
        assert_int_equal(compress_iter_init(&it, b, &h, scratch, sizeof(scratch)), 0);
        check_vector_records(v, &it);
        /* a scratch smaller than the records */
        assert_int_equal(compress_iter_init(&it, b, &h, scratch, 50), TERN_ETOOBIG);
        free(b);
    }
}

static void test_client_vectors_both_snappy_framings(void **state)
{
    (void)state;
    int xerial = 0, raw = 0;
    for (size_t i = 0; i < TERN_ARRAY_LEN(compress_vectors); i++) {
        const struct compress_vector *v = &compress_vectors[i];
        if (v->codec != COMPRESS_SNAPPY)
            continue;
        if (memcmp(v->batch + BATCH_HEADER_SIZE, "\x82SNAPPY", 7) == 0)
            xerial++;
        else
            raw++;
    }
    assert_true(xerial >= 1 && raw >= 1);
}

static uint8_t *encode_batch(int n, size_t vsize, size_t *len)
{
    struct batch_rec_in r[8];
    uint8_t *val = make_data(vsize, 1);
    for (int i = 0; i < n; i++)
        r[i] = (struct batch_rec_in){.key = "key",
                                     .key_len = 3,
                                     .value = val,
                                     .value_len = (int32_t)vsize,
                                     .timestamp = 5000 + i};
    size_t cap = 128 + (size_t)n * (vsize + 32);
    uint8_t *b = malloc(cap);
    int64_t sz = batch_encode(b, cap, r, n);
    assert_true(sz > 0);
    free(val);
    *len = (size_t)sz;
    return b;
}

static void test_compress_batch(void **state)
{
    (void)state;
    size_t len;
    uint8_t *plain = encode_batch(8, 5000, &len);
    memset(plain + 43, 0, 8); /* producer id 7: header fields must survive */
    plain[50] = 7;
    batch_update_crc(plain, len);
    for (size_t c = 1; c < TERN_ARRAY_LEN(codecs); c++) {
        size_t cap = BATCH_HEADER_SIZE + compress_bound(codecs[c], len - BATCH_HEADER_SIZE);
        uint8_t *z = malloc(cap), *scratch = malloc(len);
        int64_t n = compress_batch(codecs[c], 0, plain, len, z, cap);
        assert_true(n > BATCH_HEADER_SIZE && (size_t)n < len);
        struct batch_hdr h, ph;
        assert_int_equal(batch_parse(z, (size_t)n, 1 << 20, &h), n);
        assert_int_equal(batch_parse(plain, len, 1 << 20, &ph), (int64_t)len);
        assert_int_equal(batch_check_crc(z, &h), 0);
        assert_int_equal(h.attributes, dec(codecs[c]));
        assert_true(h.producer_id == 7 && h.record_count == 8 && h.last_offset_delta == 7);
        assert_true(h.first_timestamp == ph.first_timestamp && h.max_timestamp == ph.max_timestamp);
        struct batch_iter it, pit;
        struct batch_record r, pr;
        assert_int_equal(compress_iter_init(&it, z, &h, scratch, len - BATCH_HEADER_SIZE), 0);
        assert_int_equal(compress_iter_init(&pit, plain, &ph, NULL, 0), 0);
        for (int i = 0; i < 8; i++) {
            assert_int_equal(batch_iter_next(&it, &r), 1);
            assert_int_equal(batch_iter_next(&pit, &pr), 1);
            assert_true(r.offset == pr.offset && r.timestamp == pr.timestamp);
            assert_true(r.value_len == pr.value_len);
            assert_memory_equal(r.value, pr.value, (size_t)r.value_len);
        }
        assert_int_equal(batch_iter_next(&it, &r), 0);
        /* a compressed batch is not compressed again; the cap is checked */
        assert_int_equal(compress_batch(COMPRESS_GZIP, 0, z, (size_t)n, z, cap), TERN_EPROTO);
        assert_int_equal(compress_batch(codecs[c], 0, plain, len, z, BATCH_HEADER_SIZE + 1),
                         TERN_ETOOBIG);
        free(scratch);
        free(z);
    }
    uint8_t out[16];
    assert_int_equal(compress_batch(COMPRESS_NONE, 0, plain, len, out, 16), TERN_ENOTSUP);
    assert_int_equal(compress_batch(6, 0, plain, len, out, 16), TERN_ENOTSUP);
    assert_int_equal(compress_batch(COMPRESS_LZ4, 0, plain, len - 1, out, 16), TERN_EPROTO);
    free(plain);
}

/* Every proper prefix of a one-frame stream fails cleanly (xerial: the bare header is valid). */
static void test_truncated(void **state)
{
    (void)state;
    uint8_t *src = make_data(3000, 0), out[4000];
    for (size_t c = 1; c < TERN_ARRAY_LEN(codecs); c++) {
        size_t n;
        uint8_t *z = enc(codecs[c], 0, src, 3000, &n);
        for (size_t k = 0; k < n; k++) {
            uint8_t *copy = malloc(k ? k : 1); /* exact size, so ASan sees over-reads */
            memcpy(copy, z, k);
            int64_t rc = compress_decode(dec(codecs[c]), copy, k, out, sizeof(out));
            if (codecs[c] == COMPRESS_SNAPPY && k == 16)
                assert_int_equal(rc, 0);
            else
                assert_int_equal(rc, TERN_EPROTO);
            free(copy);
        }
        free(z);
    }
    free(src);
}

/* Damaged streams never crash or overrun; where the format has a check, it is used. */
static void test_corrupt(void **state)
{
    (void)state;
    uint8_t *src = make_data(3000, 1), out[3000];
    for (size_t c = 1; c < TERN_ARRAY_LEN(codecs); c++) {
        size_t n;
        uint8_t *z = enc(codecs[c], 0, src, 3000, &n);
        for (size_t k = 0; k < n; k++) {
            for (int bit = 0; bit < 8; bit++) {
                z[k] ^= (uint8_t)(1 << bit);
                int64_t rc = compress_decode(dec(codecs[c]), z, n, out, sizeof(out));
                assert_true(rc == TERN_EPROTO || rc == TERN_ETOOBIG || (rc >= 0 && rc <= 3000));
                z[k] ^= (uint8_t)(1 << bit);
            }
        }
        free(z);
    }
    free(src);
}

static void test_corrupt_detected(void **state)
{
    (void)state;
    uint8_t *src = make_data(3000, 1), out[3000];
    size_t n;
    uint8_t *z = enc(COMPRESS_GZIP, 0, src, 3000, &n);
    z[n - 8] ^= 1; /* gzip CRC-32 */
    assert_int_equal(compress_decode(COMPRESS_GZIP, z, n, out, sizeof(out)), TERN_EPROTO);
    z[n - 8] ^= 1;
    z[n - 1] ^= 1; /* gzip ISIZE */
    assert_int_equal(compress_decode(COMPRESS_GZIP, z, n, out, sizeof(out)), TERN_EPROTO);
    free(z);
    z = enc(COMPRESS_LZ4, 0, src, 3000, &n);
    z[6] ^= 0xff; /* frame header checksum */
    assert_int_equal(compress_decode(COMPRESS_LZ4, z, n, out, sizeof(out)), TERN_EPROTO);
    z[0] ^= 1; /* magic */
    assert_int_equal(compress_decode(COMPRESS_LZ4, z, n, out, sizeof(out)), TERN_EPROTO);
    free(z);
    z = enc(COMPRESS_ZSTD, 0, src, 3000, &n);
    z[0] = 0x27; /* a legacy zstd magic (0xFD2FB527): refused */
    assert_int_equal(compress_decode(COMPRESS_ZSTD, z, n, out, sizeof(out)), TERN_EPROTO);
    free(z);
    /* empty input, trailing garbage, a xerial block longer than the stream */
    assert_int_equal(compress_decode(COMPRESS_GZIP, "", 0, out, sizeof(out)), TERN_EPROTO);
    assert_int_equal(compress_decode(COMPRESS_ZSTD, "", 0, out, sizeof(out)), TERN_EPROTO);
    uint8_t *g = enc(COMPRESS_GZIP, 0, src, 100, &n);
    uint8_t *g2 = malloc(n + 3);
    memcpy(g2, g, n);
    memcpy(g2 + n, "xyz", 3);
    assert_int_equal(compress_decode(COMPRESS_GZIP, g2, n + 3, out, sizeof(out)), TERN_EPROTO);
    free(g2);
    free(g);
    static const uint8_t xer[] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0, 0, 0, 0,
                                  1,    0,   0,   0,   1,   0,   0,   0, 9, 1, 'a'};
    assert_int_equal(compress_decode(COMPRESS_SNAPPY, xer, sizeof(xer), out, sizeof(out)),
                     TERN_EPROTO);
    free(src);
}

/* Streams of several gzip members, lz4 frames, zstd frames (with a skippable one) decode whole. */
static void test_concatenated(void **state)
{
    (void)state;
    uint8_t *a = make_data(1000, 1), *b = make_data(700, 0), out[2000];
    static const int multi[] = {COMPRESS_GZIP, COMPRESS_LZ4, COMPRESS_ZSTD};
    for (size_t c = 0; c < TERN_ARRAY_LEN(multi); c++) {
        size_t na, nb;
        uint8_t *za = enc(multi[c], 0, a, 1000, &na), *zb = enc(multi[c], 0, b, 700, &nb);
        size_t skip = multi[c] == COMPRESS_ZSTD ? 11 : 0;
        uint8_t *z = malloc(na + nb + skip);
        memcpy(z, za, na);
        memcpy(z + na, "\x50\x2a\x4d\x18\x03\0\0\0abc", skip); /* skippable frame, 3 bytes */
        memcpy(z + na + skip, zb, nb);
        assert_int_equal(compress_decode(multi[c], z, na + nb + skip, out, sizeof(out)), 1700);
        assert_memory_equal(out, a, 1000);
        assert_memory_equal(out + 1000, b, 700);
        assert_int_equal(compress_decode(multi[c], z, na + nb + skip, out, 1699), TERN_ETOOBIG);
        free(z);
        free(za);
        free(zb);
    }
    free(a);
    free(b);
}

/* Resets the peak-RSS counter when the kernel lets us (Linux >= 4.0); returns VmHWM in KiB. */
static long peak_rss_kib(int reset)
{
    if (reset) {
        FILE *c = fopen("/proc/self/clear_refs", "w");
        if (c) {
            fputs("5", c);
            fclose(c);
        }
    }
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmHWM: %ld kB", &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

/* A stream that expands to 64 MiB of zeros: 64 concatenated 1 MiB frames/members (xerial: one
 * header, then 2048 blocks of 32 KiB; raw snappy has one stream: 2 MiB). */
static uint8_t *make_bomb(int codec, size_t *len)
{
    size_t unit = codec == COMPRESS_SNAPPY_RAW ? 2u << 20 : 1u << 20, n;
    uint8_t *zeros = calloc(1, unit);
    uint8_t *z = enc(codec, 1, zeros, codec == COMPRESS_SNAPPY ? 32 * 1024 : unit, &n);
    free(zeros);
    if (codec == COMPRESS_SNAPPY_RAW) {
        *len = n;
        return z;
    }
    size_t head = codec == COMPRESS_SNAPPY ? 16 : 0, reps = codec == COMPRESS_SNAPPY ? 2048 : 64;
    uint8_t *b = malloc(head + reps * (n - head));
    memcpy(b, z, head);
    for (size_t i = 0; i < reps; i++)
        memcpy(b + head + i * (n - head), z + head, n - head);
    free(z);
    *len = head + reps * (n - head);
    return b;
}

/* Bombs against a 1 MiB cap: ETOOBIG, and no big allocation meanwhile. */
static void test_bomb(void **state)
{
    (void)state;
    size_t cap = 1u << 20;
    uint8_t *out = malloc(cap);
    memset(out, 1, cap);
    for (size_t c = 1; c < TERN_ARRAY_LEN(codecs); c++) {
        size_t n;
        uint8_t *z = make_bomb(codecs[c], &n);
        long before = peak_rss_kib(1);
        assert_int_equal(compress_decode(dec(codecs[c]), z, n, out, cap), TERN_ETOOBIG);
        long after = peak_rss_kib(0);
        if (before > 0 && after > 0)
            assert_true(after - before < 16 * 1024); /* KiB: far below the 64 MiB expansion */
        free(z);
    }
    /* a zstd frame header announcing 2^40 bytes is refused before anything is decoded */
    static const uint8_t zhuge[] = {0x28, 0xb5, 0x2f, 0xfd, 0xc0, 0x00, /* FHD: 8-byte size */
                                    0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, /* 2^40 */
                                    0x01, 0x00, 0x00}; /* last block, empty */
    assert_int_equal(compress_decode(COMPRESS_ZSTD, zhuge, sizeof(zhuge), out, cap), TERN_ETOOBIG);
    free(out);
}

static void test_none(void **state)
{
    (void)state;
    uint8_t out[4];
    assert_int_equal(compress_decode(COMPRESS_NONE, "abcd", 4, out, 4), 4);
    assert_memory_equal(out, "abcd", 4);
    assert_int_equal(compress_decode(COMPRESS_NONE, "abcd", 4, out, 3), TERN_ETOOBIG);
    assert_int_equal(compress_decode(COMPRESS_NONE, "", 0, out, 0), 0);
}

/* compress_iter_init: uncompressed batches in place, empty compressed ones, errors. */
static void test_iter_init(void **state)
{
    (void)state;
    size_t len;
    uint8_t *plain = encode_batch(2, 10, &len);
    struct batch_hdr h;
    struct batch_iter it;
    struct batch_record r;
    assert_int_equal(batch_parse(plain, len, len, &h), (int64_t)len);
    assert_int_equal(compress_iter_init(&it, plain, &h, NULL, 0), 0);
    assert_int_equal(batch_iter_next(&it, &r), 1);
    assert_true(r.value >= plain && r.value < plain + len); /* read in place */
    /* a header-only batch: recordCount 0, codec gzip, no records bytes */
    uint8_t empty[BATCH_HEADER_SIZE];
    memcpy(empty, plain, BATCH_HEADER_SIZE);
    empty[11] = BATCH_HEADER_SIZE - BATCH_LOG_OVERHEAD;
    empty[22] = COMPRESS_GZIP;
    memset(empty + 57, 0, 4);
    assert_int_equal(batch_parse(empty, sizeof(empty), 1 << 20, &h), BATCH_HEADER_SIZE);
    assert_int_equal(compress_iter_init(&it, empty, &h, NULL, 0), 0);
    assert_int_equal(batch_iter_next(&it, &r), 0);
    /* codec 5 */
    plain[22] = 5;
    assert_int_equal(batch_parse(plain, len, len, &h), (int64_t)len);
    uint8_t scratch[256];
    assert_int_equal(compress_iter_init(&it, plain, &h, scratch, sizeof(scratch)), TERN_ENOTSUP);
    /* codec 3 over bytes that are not lz4 */
    plain[22] = COMPRESS_LZ4;
    assert_int_equal(batch_parse(plain, len, len, &h), (int64_t)len);
    assert_int_equal(compress_iter_init(&it, plain, &h, scratch, sizeof(scratch)), TERN_EPROTO);
    free(plain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_encode_needs_bound),
        cmocka_unit_test(test_encoded_framing),
        cmocka_unit_test(test_client_vectors),
        cmocka_unit_test(test_client_vectors_both_snappy_framings),
        cmocka_unit_test(test_compress_batch),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_corrupt_detected),
        cmocka_unit_test(test_concatenated),
        cmocka_unit_test(test_bomb),
        cmocka_unit_test(test_none),
        cmocka_unit_test(test_iter_init),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
